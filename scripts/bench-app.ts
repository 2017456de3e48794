// npm run bench:app [-- --failovers N] [-- --kills N] [-- --stale-returns N] [-- --rate R]
//                   [-- --client reconnect|sticky] [-- --fencing on|off|both] [-- --corefile NAME]
//                   [-- --minutes M] [-- --json]
// The application's view of a failover: what a Sentinel-unaware client that knows only a stable
// name sees, for each mechanism that keeps that name on the master, side by side on the SAME
// failovers of the same Redis (each mechanism has its own name and its own writer):
//   sentinel-switch   ExternalName Service redis-master, moved by our hook -> sentinel-switch
//   sentinel-switch-endpointslice
//                     selector-less ClusterIP Service redis-master-slice whose EndpointSlice a
//                     second sentinel-switch (target.kind endpointSlice) moves; kube-proxy routes
//                     the cluster IP, no DNS answer changes. Only inside the sandbox namespace
//                     (the API server refuses loopback IPs in a slice). The hook calls the first
//                     sentinel-switch only: this one is triggered by Sentinel's pub/sub
//                     (+switch-master), which every sentinel publishes as it runs the hook.
//                     Fencing follows the phase in both (each fences the same Redis).
//   seed-poll-5s      ExternalName Service seed-master, moved by scripts/peers/seed-poll.sh
//   bitnami-label-1s  selector Service bitnami-master (app=redis,isMaster=true), whose Pod labels
//                     scripts/peers/bitnami-label.sh moves (Bitnami's sentinel.masterService)
// Failover kinds (interleaved, so machine load falls on all of them alike):
//   failover      SENTINEL FAILOVER
//   kill          SIGKILL of the master; it is restarted (as a replica) once the majority moved
//   stale-return  SIGSTOP of the master until the failover is done, SIGCONT RESUME_AFTER_SWITCH_MS
//                 after the first +switch-master: a stale master returns
// Each writer (test/harness/app-client.ts) writes unique keys at --rate per second and records
// every write. Per round, once the sandbox is stable again: the writes of the round's window are
// checked against the final master (MGET). lostAcked = acknowledged, absent from the final
// master; firstNewAckMs = the first +switch-master to the first write acknowledged by the new
// master; lostAckedBuffered (stale returns) = sent while the node was frozen, acknowledged when it
// resumed, lost; those are not counted in lostAcked. With --json the LAST line is one JSON object:
//   {"writesPerSecond":R,"kinds":{"failover":{"sentinel-switch":{"n":..,"lostAcked":..,
//    "firstNewAckMs":{"p50":..,"p99":..},...},"seed-poll-5s":{...},"bitnami-label-1s":{...}},
//    "kill":{...},"stale-return":{...}},"corefile":"kubeadm","fencing":{...},...}
// Fencing (when src/config.ts knows masterSets[].fencing): --fencing off|on|both (default both):
// sentinel-switch is restarted with fencing {enabled: false|true} for each phase. "sentinel-switch"
// is then the fenced one and "sentinel-switch-nofence" the other; the peers are judged only where
// our fencing is off (it acts on the shared Redis and would save their clients too).
// Name resolution: inside the sandbox's network namespace (npm run / scripts/dev.sh run enter it)
// the system resolver -> CoreDNS (--corefile kubeadm|plugin-default|kubeadm-legacy) and kube-proxy
// for the ClusterIP; elsewhere emulated from the objects (scripts/lib/app-view.ts).
// Bounded: the rounds given, and --minutes for everything (a watchdog stops the run). Everything
// started here is stopped here, by PID (also on error and on Ctrl-C).
import { EventEmitter } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseYaml, stringify } from 'yaml';
import { configSchema } from '../src/config.ts';
import { type AppWriter, type ClientMode, startAppWriter, type WriteRecord } from '../test/harness/app-client.ts';
import {
  COREFILES, type Corefile, type Cluster, createClusterIPService, createEndpointSlice, createSelectorlessService, kubectl, resolveName, startCluster,
} from '../test/harness/k8s.ts';
import { inSandboxNamespace } from '../test/harness/netns.ts';
import type { RedisNode } from '../test/harness/redis.ts';
import { type Stack, startStack, TARGET } from '../test/harness/stack.ts';
import { repoRoot, type SwitchProcess } from '../test/harness/switch.ts';
import {
  addErrors, externalNameResolver, judgeWindow, type Resolve, selectorResolver, stableName, waitNewAck, type WindowVerdict,
} from './lib/app-view.ts';
import { percentile } from './lib/stats.ts';
import { ObjectWatch, type Peers, peerHook, SEED_SERVICE, startPeers, stopBenchSandbox } from './peers/peers.ts';
import { stopOnSignals } from './lib/signals.ts';

// ------------------------------------------------------------------------------------ options
// `dev.sh run scripts/bench-app.ts -- --kills 2` hands the `--` through (npm run strips it).
const argv = process.argv.slice(2);
const { values } = parseArgs({
  args: argv[0] === '--' ? argv.slice(1) : argv,
  options: {
    failovers: { type: 'string', default: '6' },
    kills: { type: 'string', default: '4' },
    'stale-returns': { type: 'string', default: '4' },
    rate: { type: 'string', default: '100' },
    client: { type: 'string', default: 'reconnect' },
    fencing: { type: 'string' },
    corefile: { type: 'string' },
    minutes: { type: 'string', default: '30' },
    json: { type: 'boolean', default: false },
  },
});
const count = (name: string, v: string | undefined, max: number): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > max) throw new Error(`--${name} must be 0..${max}`);
  return n;
};
const counts = { failover: count('failovers', values.failovers, 50), kill: count('kills', values.kills, 50), 'stale-return': count('stale-returns', values['stale-returns'], 50) };
const rate = Number(values.rate);
if (!(rate >= 1 && rate <= 2_000)) throw new Error('--rate must be 1..2000 writes/s');
const clientMode = values.client as ClientMode;
if (clientMode !== 'reconnect' && clientMode !== 'sticky') throw new Error('--client must be reconnect or sticky');
const minutes = Number(values.minutes);
if (!(minutes > 0 && minutes <= 120)) throw new Error('--minutes must be in (0, 120]');
if (counts.failover + counts.kill + counts['stale-return'] === 0) throw new Error('nothing to do: every round count is 0');

/** Whether this build's config schema knows masterSets[].fencing (the fencing branch). */
const fencingKnown = configSchema.safeParse({
  token: { env: 'T' },
  masterSets: [{ name: 'm', sentinels: ['s:1'], target: { namespace: 'n', name: 't' }, fencing: { enabled: false } }],
}).success;
const fencingFlag = values.fencing ?? (fencingKnown ? 'both' : 'off');
if (!['on', 'off', 'both'].includes(fencingFlag)) throw new Error('--fencing must be on, off or both');
if (fencingFlag !== 'off' && !fencingKnown) throw new Error(`--fencing ${fencingFlag}: this build has no fencing (src/config.ts knows no masterSets[].fencing)`);
type Fencing = 'on' | 'off';
const phases: Fencing[] = fencingFlag === 'both' ? ['off', 'on'] : [fencingFlag as Fencing];

const KINDS = ['failover', 'kill', 'stale-return'] as const;
type Kind = (typeof KINDS)[number];
const ALL_MECHANISMS = ['sentinel-switch', 'sentinel-switch-endpointslice', 'seed-poll-5s', 'bitnami-label-1s'] as const;
type Mechanism = (typeof ALL_MECHANISMS)[number];
/** Ours: judged in every round (the peers only where our fence is off). */
const OURS: readonly Mechanism[] = ['sentinel-switch', 'sentinel-switch-endpointslice'];
/** The endpointSlice target needs the data plane (pod-like IPs, kube-proxy): sandbox namespace only. */
const MECHANISMS: readonly Mechanism[] = inSandboxNamespace() ? ALL_MECHANISMS : ALL_MECHANISMS.filter((m) => m !== 'sentinel-switch-endpointslice');
const SLICE_SERVICE = 'redis-master-slice';
const BITNAMI_SERVICE = 'bitnami-master';
const COMMAND_TIMEOUT_MS = 2_000;
const CONNECT_TIMEOUT_MS = 1_000;
/** A killed master's process is started again this long after the majority named another. */
const RESTART_AFTER_MOVE_MS = 1_000;
/** A stale master returns this long after the first +switch-master. */
const RESUME_AFTER_SWITCH_MS = 1_500;
/** How long after the first +switch-master a writer may take to reach the new master. */
const NEW_ACK_BOUND_MS = 45_000;
/** A window ends this far in the past, so that every write in it has its outcome. */
const WINDOW_LAG_MS = COMMAND_TIMEOUT_MS + 500;

// --------------------------------------------------------------------------------- sandbox
// A writer's commands to a frozen node each hold a socket listener until they time out (ioredis):
// hundreds at 100 writes/s, by design here.
EventEmitter.defaultMaxListeners = 1_000;
const dir = join(repoRoot, '.sandbox', `bench-app-${process.pid}`);
mkdirSync(dir, { recursive: true });
const now = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const say = (s: string): void => void process.stdout.write(`${s}\n`);
const startedAt = now();

let cluster: Cluster | undefined;
let stack: Stack | undefined;
let watch: ObjectWatch | undefined;
let peers: Peers | undefined;
/** The second sentinel-switch, target.kind endpointSlice (sandbox namespace only). */
let sliceSwitch: SwitchProcess | undefined;
const writers = new Map<Mechanism, AppWriter>();
let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await Promise.allSettled([...writers.values()].map((w) => w.stop()));
    await stopBenchSandbox({ peers, watch, stack, cluster, dir, say });
  })();
  return cleaning;
}
let interrupted = false;
stopOnSignals(() => {
  interrupted = true;
  return cleanup();
});
const watchdog = setTimeout(() => {
  interrupted = true;
  say(`\ntime budget of ${minutes} min exhausted: stopping everything`);
  void cleanup().finally(() => process.exit(3));
}, minutes * 60_000);
watchdog.unref();

interface RoundResult {
  i: number;
  kind: Kind;
  fencing: Fencing;
  from: string;
  to: string;
  verdicts: Partial<Record<Mechanism, WindowVerdict>>;
  /** Masters named by +switch-master during the round, in order (Sentinel sometimes fails over twice). */
  switches: string[];
  note?: string;
  error?: string;
}
const rounds: RoundResult[] = [];

/** failover, kill, stale-return, failover, ... until each kind has its count. */
function schedule(): Kind[] {
  const left = { ...counts };
  const out: Kind[] = [];
  while (KINDS.some((k) => left[k] > 0)) for (const k of KINDS) if (left[k]-- > 0) out.push(k);
  return out;
}

/** Writes masterSets[0].fencing into a running service's config and restarts it. */
async function setFencing(svc: SwitchProcess, f: Fencing): Promise<void> {
  await svc.stop();
  const config = parseYaml(readFileSync(svc.configPath, 'utf8')) as { masterSets: Record<string, unknown>[] };
  config.masterSets[0]!.fencing = { enabled: f === 'on' };
  writeFileSync(svc.configPath, stringify(config));
  await svc.restart();
}

// Inside the sandbox's network namespace (scripts/dev.sh run enters it) the cluster has CoreDNS
// and kube-proxy: the writers resolve through the system resolver. Elsewhere: emulated.
const inNamespace = inSandboxNamespace();
if (values.corefile !== undefined && !COREFILES.includes(values.corefile as Corefile)) throw new Error(`--corefile must be one of ${COREFILES.join(', ')}`);
if (values.corefile !== undefined && !inNamespace) throw new Error('--corefile needs the sandbox\'s cluster DNS: run inside its network namespace (npm run bench:app / scripts/dev.sh run)');
let dnsMode: 'system' | 'emulated' = 'emulated';
let corefile: Corefile | null = null;

try {
  say(`sentinel-switch app-view bench: ${counts.failover} SENTINEL FAILOVER, ${counts.kill} SIGKILL, ${counts['stale-return']} stale returns; ${rate} writes/s per mechanism, client ${clientMode}; fencing ${phases.join(' then ')}${fencingKnown ? '' : ' (this build has no fencing)'}; sandbox ${dir}`);
  let t = now();
  cluster = await startCluster({ dir: join(dir, 'k8s'), ownerPid: process.pid, ...(inNamespace ? { corefile: (values.corefile ?? 'kubeadm') as Corefile } : {}) });
  if (cluster.dataPlane) {
    dnsMode = 'system';
    corefile = (await cluster.corefile()) ?? null;
  }
  const hook = peerHook(dir);
  stack = await startStack({ dir, cluster, hookScript: hook.hookScript, hookEnv: hook.hookEnv, startService: false });
  const s = stack;
  if (fencingKnown) (s.switchConfig.masterSets[0] as Record<string, unknown>).fencing = { enabled: phases[0] === 'on' };
  s.service = await s.startService();
  watch = await ObjectWatch.start(s.adminKubeconfig, s.namespace);
  peers = await startPeers({ stack: s, cluster, dir: join(dir, 'peers'), bitnamiDir: hook.bitnamiDir, maxSeconds: minutes * 60 + 60 });
  const w = watch;
  if (dnsMode === 'system') {
    // Bitnami's `<fullname>-master` Service: ClusterIP, selecting the pod labelled isMaster=true.
    await createClusterIPService(s.adminKubeconfig, s.namespace, BITNAMI_SERVICE, { app: 'redis', isMaster: 'true' }, [{ name: 'redis', port: s.redis.nodes[0]!.port }]);
    sliceSwitch = await startSliceSwitch(s);
  }
  const names: Record<Mechanism, string> = {
    'sentinel-switch': stableName(TARGET, s.namespace),
    'sentinel-switch-endpointslice': stableName(SLICE_SERVICE, s.namespace),
    'seed-poll-5s': stableName(SEED_SERVICE, s.namespace),
    'bitnami-label-1s': stableName(BITNAMI_SERVICE, s.namespace),
  };
  const resolvers: Record<Mechanism, Resolve | undefined> = dnsMode === 'system'
    ? { 'sentinel-switch': undefined, 'sentinel-switch-endpointslice': undefined, 'seed-poll-5s': undefined, 'bitnami-label-1s': undefined }
    : {
        'sentinel-switch-endpointslice': undefined, // not run here (MECHANISMS)
        'sentinel-switch': externalNameResolver({ name: names['sentinel-switch'], nodes: s.redis.nodes, dnsName: s.dnsName, current: () => w.latest('service', TARGET)?.externalName }),
        'seed-poll-5s': externalNameResolver({ name: names['seed-poll-5s'], nodes: s.redis.nodes, dnsName: s.dnsName, current: () => w.latest('service', SEED_SERVICE)?.externalName }),
        'bitnami-label-1s': selectorResolver({
          name: names['bitnami-label-1s'], nodes: s.redis.nodes, connectTimeoutMs: CONNECT_TIMEOUT_MS,
          selected: () => s.redis.nodes.filter((n) => w.latest('pod', n.name)?.isMaster === 'true').map((n) => n.name),
        }),
      };
  // The watch must have the objects' current state before a writer resolves through it.
  for (;;) {
    if (w.latest('service', TARGET) && w.latest('service', SEED_SERVICE) && s.redis.nodes.every((n) => w.latest('pod', n.name)?.isMaster !== undefined)) break;
    if (now() - t > 60_000) throw new Error('the API watch did not list the Services and labelled Pods within 60 s');
    await sleep(50);
  }
  if (dnsMode === 'system') {
    for (const m of MECHANISMS) {
      while ((await resolveName(names[m])).length === 0) {
        if (now() - t > 90_000) throw new Error(`${names[m]} does not resolve (CoreDNS log in ${join(dir, 'k8s')})`);
        await sleep(100);
      }
    }
  }
  for (const m of MECHANISMS) {
    writers.set(m, startAppWriter({
      host: names[m], port: s.redis.nodes[0]!.port, password: s.redis.password, rate, mode: clientMode,
      keyPrefix: `app:${m}:${process.pid}`, resolve: resolvers[m], commandTimeoutMs: COMMAND_TIMEOUT_MS, connectTimeoutMs: CONNECT_TIMEOUT_MS,
    }));
  }
  say(`  API server, Redis 1+2, 3 sentinels, sentinel-switch, the peer loops and 3 writers up in ${Math.round(now() - t)} ms (namespace ${s.namespace})`);
  say(`  names: ${MECHANISMS.map((m) => `${m} -> ${names[m]}`).join('; ')}`);
  say(dnsMode === 'emulated'
    ? '  DNS and data plane EMULATED (loopback; no cluster DNS, no kube-proxy): a name resolves to the node its object names at that instant (lower bounds)'
    : `  DNS: the system resolver in the sandbox's network namespace -> CoreDNS (Corefile ${corefile ?? 'kubeadm'}); bitnami-master is a ClusterIP routed by kube-proxy`);
  // Every writer connected and acknowledged before the first window opens (a ClusterIP can take
  // kube-proxy's first sync).
  while (![...writers.values()].every((x) => x.records.some((r) => r.ackAt !== undefined))) {
    if (now() - t > 120_000) throw new Error(`a writer got no write acknowledged within 120 s: ${MECHANISMS.map((m) => `${m} ${writers.get(m)!.records.filter((r) => r.ackAt !== undefined).length} acked`).join(', ')}`);
    await sleep(100);
  }
  await sleep(1_000);
  say('');
  say(`  ${'#'.padStart(2)}  ${'kind'.padEnd(12)} ${'fence'.padEnd(5)} ${'master'.padEnd(28)}  ${MECHANISMS.map((m) => m.padStart(30)).join('  ')}`);
  say(`  ${''.padStart(2)}  ${''.padEnd(12)} ${''.padEnd(5)} ${''.padEnd(28)}  ${MECHANISMS.map(() => 'lost(+buf) / 1st new ack / err'.padStart(30)).join('  ')}`);

  let windowStart = now() - WINDOW_LAG_MS;
  let i = 0;
  for (const fencing of phases) {
    if (fencing !== phases[0]) {
      for (const svc of [s.service!, sliceSwitch].filter((x) => x !== undefined)) await setFencing(svc, fencing);
      await s.redis.waitStable(60_000);
    }
    for (const kind of schedule()) {
      i++;
      const r = await runRound(s, i, kind, fencing, windowStart);
      windowStart = r.windowEnd;
      rounds.push(r.result);
      say(rowLine(r.result));
    }
  }
} catch (err) {
  if (!interrupted) say(`\nbench failed: ${(err as Error).stack ?? String(err)}`);
  await cleanup();
  if (interrupted) await new Promise(() => undefined);
  process.exit(1);
}
await cleanup();
clearTimeout(watchdog);
const totalSeconds = Math.round((now() - startedAt) / 100) / 10;

// ------------------------------------------------------------------------------------ a round
async function runRound(s: Stack, i: number, kind: Kind, fencing: Fencing, windowStart: number): Promise<{ result: RoundResult; windowEnd: number }> {
  const redis = s.redis;
  const before = await redis.masterByMajority();
  const oldNode = redis.nodes.find((n) => n.host === before.host)!;
  const result: RoundResult = { i, kind, fencing, from: oldNode.name, to: '?', verdicts: {}, switches: [] };
  const watcher = redis.watchSwitches();
  let switchAt: number | undefined;
  let frozen: { fromMs: number; toMs: number } | undefined;
  let killed: RedisNode | undefined;
  let paused = false;
  try {
    await watcher.ready();
    if (kind === 'failover') await redis.failover();
    else if (kind === 'kill') killed = await redis.killMaster();
    else {
      frozen = { fromMs: now(), toMs: Infinity };
      await redis.stopNode(oldNode, 'SIGSTOP');
      paused = true;
    }
    const first = await watcher.waitForNext(30_000);
    switchAt = first.atMs;
    result.to = redis.nodes.find((n) => n.host === first.to.host)?.name ?? first.to.host;
    if (kind === 'stale-return') {
      await sleep(Math.max(0, first.atMs + RESUME_AFTER_SWITCH_MS - now()));
      await redis.stopNode(oldNode, 'SIGCONT');
      paused = false;
      frozen!.toMs = now();
    }
    if (killed) {
      // Restarted as the new master's replica (what the Bitnami start script does) a moment after
      // the majority moved, as a container restarts.
      const deadline = now() + 20_000;
      while (now() < deadline && (await redis.masterByMajority().catch(() => before)).host === before.host) await sleep(50);
      await sleep(RESTART_AFTER_MOVE_MS);
      await redis.startNode(killed);
      killed = undefined;
    }
  } catch (err) {
    result.error = (err as Error).message.split('\n')[0];
  } finally {
    if (paused) await redis.stopNode(oldNode, 'SIGCONT').catch(() => undefined);
    if (frozen && frozen.toMs === Infinity) frozen.toMs = now();
    if (killed) await redis.startNode(killed).catch(() => undefined);
  }
  await redis.waitStable(90_000);
  const stableAt = now();
  const final = await redis.masterByMajority();
  await watcher.close();
  const nameOf = (host: string): string => redis.nodes.find((n) => n.host === host)?.name ?? host;
  for (const e of watcher.events) if (nameOf(e.to.host) !== result.switches.at(-1)) result.switches.push(nameOf(e.to.host));
  result.to = nameOf(final.host);
  if (result.switches.length > 1) result.note = `Sentinel failed over ${result.switches.length} times: ${result.switches.join(' -> ')}`;
  const master = { host: final.host, port: final.port, password: redis.password };
  // The window closes no earlier than the moment the sandbox was stable (the old master demoted),
  // so a write acknowledged by a stale master is judged in the round that caused it, and after
  // every writer's first write to the new master.
  const judged: readonly Mechanism[] = fencing === 'off' ? MECHANISMS : MECHANISMS.filter((m) => OURS.includes(m));
  let closeAfter = stableAt;
  let firsts: (WriteRecord | undefined)[] = [];
  if (switchAt !== undefined) {
    const at = switchAt;
    firsts = await Promise.all(MECHANISMS.map((m) => (judged.includes(m) ? waitNewAck({ writer: writers.get(m)!, switchAtMs: at, master, deadlineMs: at + NEW_ACK_BOUND_MS }) : undefined)));
    for (const f of firsts) if (f) closeAfter = Math.max(closeAfter, f.sentAt + 1);
    if (process.env.BENCH_APP_DUMP) say(`    first new acks (ms after the switch): ${firsts.map((f) => (f ? `#${f.seq} sent ${(f.sentAt - at).toFixed(0)} acked ${(f.ackAt! - at).toFixed(0)}` : 'none')).join(', ')}; stable ${(stableAt - at).toFixed(0)}, now ${(now() - at).toFixed(0)}`);
  }
  // A timer may fire a few ms early against performance.now() (libuv's loop clock is taken at the
  // start of the iteration): sleep again until the window really reaches past every first new ack.
  for (const until = closeAfter + WINDOW_LAG_MS; now() < until;) await sleep(until - now());
  const windowEnd = now() - WINDOW_LAG_MS;
  for (const m of judged) {
    const v = await judgeWindow({ writer: writers.get(m)!, fromMs: windowStart, toMs: windowEnd, master, switchAtMs: switchAt, frozen });
    result.verdicts[m] = v;
    const f = firsts[MECHANISMS.indexOf(m)];
    if (f && v.firstNewAckMs === undefined) say(`    warning: ${m}: write #${f.seq} (sent ${(f.sentAt - switchAt!).toFixed(0)} ms after the switch) reached the new master, yet the window up to ${(windowEnd - switchAt!).toFixed(0)} ms shows none`);
  }
  if (process.env.BENCH_APP_DUMP) {
    // Post-mortem: every write of the window, times relative to the first +switch-master.
    const t0 = switchAt ?? windowStart;
    const rel = (x: number | undefined): number | undefined => (x === undefined ? undefined : Math.round((x - t0) * 10) / 10);
    writeFileSync(join(dir, `round-${i}-${kind}.json`), JSON.stringify({
      kind, fencing, switches: watcher.events.map((e) => ({ at: rel(e.atMs), sentinel: e.sentinel, to: nameOf(e.to.host) })),
      frozen: frozen && { from: rel(frozen.fromMs), to: rel(frozen.toMs) }, stableAt: rel(stableAt), windowEnd: rel(windowEnd), final: nameOf(final.host),
      writes: Object.fromEntries(MECHANISMS.map((m) => [m, writers.get(m)!.records.filter((r) => r.sentAt >= windowStart && r.sentAt < windowEnd)
        .map((r) => [r.seq, rel(r.sentAt), rel(r.ackAt), r.addr && nameOf(r.addr), r.error])])),
    }));
  }
  return { result, windowEnd };
}

// ------------------------------------------------------------------------------------ summary
type Key = Mechanism | 'sentinel-switch-nofence' | 'sentinel-switch-endpointslice-nofence';
/** Which rounds count for which JSON key: peers only where our fence is off (it would save their clients too). */
function keysOf(r: RoundResult): [Key, Mechanism][] {
  const ours = MECHANISMS.filter((m) => OURS.includes(m));
  if (r.fencing === 'on') return ours.map((m) => [m, m]);
  const unfenced = ours.map((m): [Key, Mechanism] => [phases.includes('on') ? (`${m}-nofence` as Key) : m, m]);
  return [...unfenced, ['seed-poll-5s', 'seed-poll-5s'], ['bitnami-label-1s', 'bitnami-label-1s']];
}
const r1 = (x: number | undefined): number | null => (x === undefined ? null : Math.round(x * 10) / 10);
interface Cell {
  n: number;
  lostAcked: number;
  lostAckedPerRound: { min: number | null; max: number | null };
  lostAckedBuffered?: number;
  firstNewAckMs: { p50: number | null; p99: number | null; max: number | null };
  noNewAck: number;
  acked: number;
  errors: Record<string, number>;
}
const table: Partial<Record<Kind, Partial<Record<Key, Cell>>>> = {};
for (const kind of KINDS) {
  if (counts[kind] === 0) continue;
  const cells: Partial<Record<Key, Cell>> = {};
  for (const r of rounds.filter((x) => x.kind === kind)) {
    for (const [key, m] of keysOf(r)) {
      const v = r.verdicts[m];
      if (!v) continue;
      const c = (cells[key] ??= { n: 0, lostAcked: 0, lostAckedPerRound: { min: null, max: null }, firstNewAckMs: { p50: null, p99: null, max: null }, noNewAck: 0, acked: 0, errors: {}, ...(kind === 'stale-return' ? { lostAckedBuffered: 0 } : {}) });
      c.n++;
      c.lostAcked += v.lostAcked;
      c.lostAckedPerRound.min = Math.min(c.lostAckedPerRound.min ?? Infinity, v.lostAcked);
      c.lostAckedPerRound.max = Math.max(c.lostAckedPerRound.max ?? -Infinity, v.lostAcked);
      if (kind === 'stale-return') c.lostAckedBuffered! += v.lostAckedBuffered;
      if (v.firstNewAckMs === undefined) c.noNewAck++;
      c.acked += v.acked;
      addErrors(c.errors, v.errors);
    }
  }
  for (const [key, c] of Object.entries(cells) as [Key, Cell][]) {
    const samples = rounds.filter((x) => x.kind === kind).flatMap((r) => keysOf(r).filter(([k]) => k === key).flatMap(([, m]) => {
      const ms = r.verdicts[m]?.firstNewAckMs;
      return ms === undefined ? [] : [ms];
    }));
    c.firstNewAckMs = { p50: r1(percentile(samples, 50)), p99: r1(percentile(samples, 99)), max: r1(samples.length ? Math.max(...samples) : undefined) };
  }
  table[kind] = cells;
}

const KIND_TEXT: Record<Kind, string> = { failover: 'SENTINEL FAILOVER', kill: 'SIGKILL master', 'stale-return': 'stale master returns' };
say('');
say(`summary (${rate} writes/s per mechanism, client ${clientMode}; ${dnsMode === 'emulated' ? 'DNS/data plane emulated on loopback' : `Corefile ${corefile ?? 'kubeadm'}`}; ${totalSeconds} s in all)`);
say(`  ${'kind'.padEnd(20)} ${'mechanism'.padEnd(41)} ${'rounds'.padStart(6)} ${'lost acked'.padStart(10)} ${'per round'.padStart(11)} ${'buffered'.padStart(8)} ${'1st new ack p50'.padStart(15)} ${'p99'.padStart(10)} ${'none'.padStart(4)}  errors seen by the client`);
for (const kind of KINDS) {
  for (const [key, c] of Object.entries(table[kind] ?? {}) as [Key, Cell][]) {
    const label = OURS.includes(key as Mechanism) && phases.includes('on') ? `${key}+fence` : key.endsWith('-nofence') ? `${key.slice(0, -'-nofence'.length)} (no fence)` : key;
    const per = c.n ? `${c.lostAckedPerRound.min}-${c.lostAckedPerRound.max}` : '-';
    const errors = Object.entries(c.errors).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
    say(`  ${KIND_TEXT[kind].padEnd(20)} ${label.padEnd(41)} ${String(c.n).padStart(6)} ${String(c.lostAcked).padStart(10)} ${per.padStart(11)} ${(c.lostAckedBuffered === undefined ? '' : String(c.lostAckedBuffered)).padStart(8)} ${ms(c.firstNewAckMs.p50).padStart(15)} ${ms(c.firstNewAckMs.p99).padStart(10)} ${String(c.noNewAck).padStart(4)}  ${errors}`);
  }
}
say('');
say('legend:');
say('  lost acked = writes the client got OK for that the final master does not hold (per round: min-max); each round\'s window runs from the');
say('  end of the previous one to when the sandbox was stable again and every writer had reached the new master.');
say(`  buffered (stale returns) = sent while the master was frozen, acknowledged the moment it resumed, lost: not in "lost acked".`);
say(`  1st new ack = first +switch-master (any sentinel) -> first write acknowledged by the new master; none = not within ${NEW_ACK_BOUND_MS / 1000} s.`);
say(`  client ${clientMode}: ${clientMode === 'reconnect' ? 'any error drops the connection and reconnects (re-resolving the name) after 20 ms' : 'only a closed connection reconnects; READONLY/timeouts are failed writes'}; command timeout ${COMMAND_TIMEOUT_MS} ms, connect timeout ${CONNECT_TIMEOUT_MS} ms.`);
say(`  stale return: SIGSTOP of the master, SIGCONT ${RESUME_AFTER_SWITCH_MS} ms after the first +switch-master.`);
if (phases.includes('on')) say('  peers are measured only in rounds with our fencing OFF: our fence acts on the shared Redis and would save their clients too.');
if (!fencingKnown) say('  fencing: this build has none (every round is "off").');
if (dnsMode === 'emulated') say('  DNS and data plane are emulated (no network namespace yet): real clusters add their DNS TTL/cache and kube-proxy sync on top.');

const kindsJson = Object.fromEntries(KINDS.filter((k) => table[k]).map((k) => [k, table[k]]));
const repeated = rounds.filter((r) => r.switches.length > 1);
if (repeated.length) say(`  ${repeated.length} round(s) where Sentinel failed over more than once (its own race: a sentinel flagged the fresh master down and won a new election): ${repeated.map((r) => `#${r.i} ${r.switches.join(' -> ')}`).join(', ')}; judged against the final master.`);
const json = {
  writesPerSecond: rate,
  kinds: kindsJson,
  corefile,
  dns: dnsMode === 'emulated' ? 'emulated-loopback' : 'system',
  client: clientMode,
  fencing: { measured: phases, known: fencingKnown, peers: 'off' },
  rounds: rounds.length,
  repeatedFailovers: repeated.length,
  failedRounds: rounds.filter((r) => r.error).length,
  totalSeconds,
};
if (values.json) say(JSON.stringify(json));
process.exit(rounds.every((r) => !r.error) ? 0 : 1);

// ---------------------------------------------------------------------- the endpointSlice target
/**
 * The selector-less ClusterIP Service and its EndpointSlice (as the chart creates them, holding
 * the master now), RBAC for them on top of deploy/rbac.yaml (whose resourceNames name only
 * redis-master), and a second sentinel-switch with target.kind endpointSlice writing the slice.
 */
async function startSliceSwitch(s: Stack): Promise<SwitchProcess> {
  const admin = s.adminKubeconfig;
  const port = { name: 'tcp-redis', port: s.redis.nodes[0]!.port };
  await createSelectorlessService(admin, s.namespace, SLICE_SERVICE, [port]);
  await createEndpointSlice(admin, s.namespace, { name: SLICE_SERVICE, service: SLICE_SERVICE, port, addresses: [(await s.redis.masterByMajority()).host] });
  const role = 'sentinel-switch-slice';
  await kubectl(admin, ['create', 'role', role, '-n', s.namespace, '--verb=get', `--resource=services`, `--resource-name=${SLICE_SERVICE}`]);
  await kubectl(admin, ['patch', 'role', role, '-n', s.namespace, '--type=json', '-p', JSON.stringify([{ op: 'add', path: '/rules/-', value: { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], resourceNames: [SLICE_SERVICE], verbs: ['get', 'patch'] } }])]);
  await kubectl(admin, ['create', 'rolebinding', role, '-n', s.namespace, `--role=${role}`, `--serviceaccount=${s.namespace}:sentinel-switch`]);
  const set = s.switchConfig.masterSets[0] as Record<string, unknown>;
  return s.startService('sentinel-switch-endpointslice', { masterSets: [{ ...set, target: { kind: 'endpointSlice', namespace: s.namespace, name: SLICE_SERVICE } }] });
}

// ------------------------------------------------------------------------------------ formatting
function ms(x: number | null | undefined): string {
  return x === null || x === undefined ? 'n/a' : `${x.toFixed(0)} ms`;
}
function rowLine(r: RoundResult): string {
  const cells = MECHANISMS.map((m) => {
    const v = r.verdicts[m];
    if (!v) return '(not judged: fence on)'.padStart(30);
    const errs = Object.values(v.errors).reduce((a, b) => a + b, 0);
    const lost = r.kind === 'stale-return' ? `${v.lostAcked}(+${v.lostAckedBuffered})` : String(v.lostAcked);
    return `${lost} / ${v.firstNewAckMs === undefined ? 'none' : ms(v.firstNewAckMs)} / ${errs}`.padStart(30);
  }).join('  ');
  const notes = [r.note, r.error && `ERROR: ${r.error}`].filter(Boolean).join('; ');
  return `  ${String(r.i).padStart(2)}  ${r.kind.padEnd(12)} ${r.fencing.padEnd(5)} ${`${r.from} -> ${r.to}`.padEnd(28)}  ${cells}${notes ? `  (${notes})` : ''}`;
}
