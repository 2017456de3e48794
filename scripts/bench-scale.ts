// npm run bench:scale [-- --master-sets 100] [-- --window-seconds 60] [-- --failovers 3] [-- --reconciles 5] [-- --json]
// One sentinel-switch serving many master sets, on one sandbox: 3 redis-sentinel processes that
// ALL monitor N master sets (each one master + one replica: 2N redis-server processes, hz 1 so
// that 200 idle Redis do not load the machine), N ExternalName Services and 2N Ready Pods in one
// namespace of a real kube-apiserver, the shipped RBAC (its resourceNames listing the N
// Services), sentinel-switch as its own process (node src/server.ts) with the default 30 s timer.
// Measured, for N master sets and then for 1 (the same sandbox, a config with only the first
// master set), so growth per master set and the failover time can be compared:
//   - full reconcile: POST /v1/reconcile without masterSet (every master set, nothing drifted),
//     --reconciles times, median; Service writes counted by an API watch (must be 0); the
//     outcomes' timings_ms say which step (read = Service GET, sentinels, role, target = pod
//     lookup) the time goes to;
//   - idle CPU: utime+stime from /proc/<pid>/stat over --window-seconds with nothing sent to the
//     process (the 30 s timer runs as in production), in mCPU;
//   - RSS: VmRSS at the end of the window;
//   - connections: CLIENT LIST on each sentinel, sentinel-switch's own (subscriber / command);
//   - failovers: SENTINEL FAILOVER of one master set (a different one each time), ms from the
//     first +switch-master seen by this process to the API watch event of that Service; writes.
// Targets are printed next to the figures; nothing fails on them. With --json the LAST line is
// {"masterSets":N,"fullReconcileMs":..,"writes":0,"idleMilliCpu":..,"rssMiB":..,...}.
// Linux only (/proc). Stops everything it started, by PID, also on SIGINT/SIGTERM and when its
// watchdog (--max-minutes, default 20) fires.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { parseAllDocuments, stringify } from 'yaml';
import { type Cluster, createExternalNameService, createNamespace, createPod, kubectl, serviceAccountKubeconfig, startCluster } from '../test/harness/k8s.ts';
import { type SharedSentinels, startSharedSentinels } from '../test/harness/shared-sentinels.ts';
import { freePort, repoRoot } from '../test/harness/switch.ts';
import { ObjectWatch } from './peers/peers.ts';
import { stopOnSignals } from './lib/signals.ts';
import { percentile } from './lib/stats.ts';

const TARGETS = { fullReconcileMs: 1_000, writes: 0, idleMilliCpu: 5 };
const HEADLESS = 'redis-headless';
const SETTLE_MS = 5_000;

const argv = process.argv.slice(2);
const { values } = parseArgs({
  // `dev.sh run scripts/bench-scale.ts -- --json` passes the "--" on; `npm run bench:scale -- --json` does not.
  args: argv[0] === '--' ? argv.slice(1) : argv,
  options: {
    'master-sets': { type: 'string', default: '100' },
    'window-seconds': { type: 'string', default: '60' },
    failovers: { type: 'string', default: '3' },
    reconciles: { type: 'string', default: '5' },
    'max-minutes': { type: 'string', default: '20' },
    /** Writes a V8 CPU profile of each sentinel-switch run into this directory (node --cpu-prof). */
    'cpu-prof': { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
const int = (name: string, min: number, max: number): number => {
  const v = Number(values[name as keyof typeof values]);
  if (!Number.isInteger(v) || v < min || v > max) throw new Error(`--${name} must be an integer ${min}..${max}`);
  return v;
};
const N = int('master-sets', 1, 250);
const windowSeconds = int('window-seconds', 5, 3_600);
const failovers = int('failovers', 0, 20);
const reconciles = int('reconciles', 1, 50);
const maxMinutes = int('max-minutes', 2, 240);
if (!existsSync('/proc/self/stat')) throw new Error('bench:scale needs Linux /proc');

const say = (s: string): void => void process.stdout.write(`${s}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const now = (): number => performance.timeOrigin + performance.now();
const r1 = (x: number): number => Math.round(x * 10) / 10;
const median = (xs: number[]): number => percentile(xs, 50) ?? NaN;
const load = (): string => loadavg().map((l) => l.toFixed(2)).join(' ');
const dir = join(repoRoot, '.sandbox', `bench-scale-${process.pid}`);
mkdirSync(dir, { recursive: true });
const clkTck = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());

// ------------------------------------------------------------------------------- cleanup

let cluster: Cluster | undefined;
let redis: SharedSentinels | undefined;
let watch: ObjectWatch | undefined;
let child: ChildProcess | undefined;
let stopping: Promise<void> | undefined;
const stopAll = (): Promise<void> =>
  (stopping ??= (async () => {
    await stopChild();
    watch?.stop();
    await redis?.stop().catch((e: unknown) => say(`stopping Redis/Sentinel: ${String(e)}`));
    await cluster?.stop().catch((e: unknown) => say(`stopping the cluster: ${String(e)}`));
    rmSync(join(dir, 'k8s', 'etcd-data'), { recursive: true, force: true });
  })());
stopOnSignals(stopAll);
const watchdog = setTimeout(() => {
  say(`\nwatchdog: bench:scale still running after ${maxMinutes} min (--max-minutes); stopping everything it started`);
  void stopAll().finally(() => process.exit(124));
}, maxMinutes * 60_000);

async function stopChild(): Promise<void> {
  const c = child;
  child = undefined;
  if (!c || c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise<void>((r) => c.once('exit', () => r()));
  c.kill('SIGTERM');
  const timer = setTimeout(() => c.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

// ------------------------------------------------------------------------------- measuring

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

function rssKiB(pid: number): number {
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
}

/** An RBAC like deploy/rbac.yaml for one namespace, its resourceNames listing our Services. */
function rbacFor(namespace: string, services: string[]): string {
  type Doc = { rules?: { resourceNames?: string[] }[]; subjects?: { namespace?: string }[] };
  const docs = parseAllDocuments(readFileSync(join(repoRoot, 'deploy/rbac.yaml'), 'utf8')).map((d) => d.toJS() as Doc);
  for (const doc of docs) {
    for (const s of doc?.subjects ?? []) s.namespace = namespace;
    for (const rule of doc?.rules ?? []) if (rule.resourceNames) rule.resourceNames = services;
  }
  return docs.map((d) => stringify(d)).join('---\n');
}

/** At most `limit` at a time. */
async function pool<T>(items: T[], limit: number, work: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await work(items[next++]!);
  }));
}

interface Outcome {
  masterSet: string;
  result: string;
  durationMs: number;
  timingsMs?: Record<string, number>;
}

interface Run {
  masterSets: number;
  pid: number;
  startToReadyMs: number;
  fullReconcileMs: number[];
  /** Per step of the median full reconcile: median and max over the master sets. */
  steps: Record<string, { p50: number; max: number }>;
  results: Record<string, number>;
  writesNoDrift: number;
  idleMilliCpu: number;
  timerRunsInWindow: number;
  rssMiB: number;
  heap: { heapUsedMiB: number; heapTotalMiB: number; externalMiB: number };
  connections: { subscribers: number; commands: number; perSentinel: string };
  failoverMs: number[];
  failoverWrites: number;
  failoverNotes: string[];
}

async function post(port: number, token: string, path: string, body: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

async function metric(port: number, name: string, match: string): Promise<number> {
  const body = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let n = 0;
  for (const l of body.split('\n')) if (l.startsWith(`${name}{`) && l.includes(match)) n += Number(l.slice(l.lastIndexOf(' ') + 1));
  return n;
}

/** V8 heap and off-heap memory from prom-client's default metrics, in MiB. */
async function heap(port: number): Promise<{ heapUsedMiB: number; heapTotalMiB: number; externalMiB: number }> {
  const body = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const g = (name: string): number => r1(Number(new RegExp(`^${name} (\\S+)`, 'm').exec(body)?.[1] ?? NaN) / 1024 / 1024);
  return { heapUsedMiB: g('sentinel_switch_nodejs_heap_size_used_bytes'), heapTotalMiB: g('sentinel_switch_nodejs_heap_size_total_bytes'), externalMiB: g('sentinel_switch_nodejs_external_memory_bytes') };
}

/** sentinel-switch's connections on each sentinel (CLIENT LIST, by client name). */
async function ourConnections(r: SharedSentinels): Promise<Run['connections']> {
  let subscribers = 0;
  let commands = 0;
  const per: string[] = [];
  for (const s of r.sentinels) {
    const list = String(await r.sentinelCommand(s, ['CLIENT', 'LIST'])).trim().split('\n').filter((l) => / name=sentinel-switch /.test(l));
    const sub = list.filter((l) => !/ sub=0 psub=0 /.test(l)).length;
    subscribers += sub;
    commands += list.length - sub;
    per.push(`${s.name} ${sub}+${list.length - sub}`);
  }
  return { subscribers, commands, perSentinel: per.join(', ') };
}

async function measure(o: { sets: string[]; config: Record<string, unknown>; env: Record<string, string>; token: string; services: (set: string) => string; dnsOf: (host: string) => string; failoverSets: string[] }): Promise<Run> {
  const r = redis!;
  const port = await freePort();
  const configPath = join(dir, `sentinel-switch-${o.sets.length}.yaml`);
  writeFileSync(configPath, stringify({ ...o.config, listen: { host: '127.0.0.1', port } }));
  const logPath = join(dir, `sentinel-switch-${o.sets.length}.log`);
  const log = openSync(logPath, 'a');
  const t0 = performance.now();
  const c = spawn(process.execPath, [join(repoRoot, 'src/server.ts'), '--config', configPath], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...o.env, ...(values['cpu-prof'] ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${values['cpu-prof']}` } : {}) },
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  child = c;
  const pid = c.pid!;
  for (;;) {
    if (c.exitCode !== null || c.signalCode !== null) throw new Error(`sentinel-switch exited at start; see ${logPath}`);
    if (performance.now() - t0 > 60_000) throw new Error(`sentinel-switch not ready within 60 s; see ${logPath}`);
    const ok = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(5_000) }).then((res) => res.ok, () => false);
    if (ok) break;
    await sleep(20);
  }
  const startToReadyMs = r1(performance.now() - t0);
  say(`  ${o.sets.length} master set(s): /readyz 200 after ${startToReadyMs} ms (pid ${pid}); settling ${SETTLE_MS / 1000} s`);
  await sleep(SETTLE_MS);

  // Full reconciles, nothing drifted.
  const since = now();
  const times: number[] = [];
  const all: Outcome[][] = [];
  for (let i = 0; i < reconciles; i++) {
    const t = performance.now();
    const res = await post(port, o.token, '/v1/reconcile', {});
    times.push(performance.now() - t);
    const outcomes = (res.json as { outcomes: Outcome[] }).outcomes;
    all.push(outcomes);
    await sleep(200);
  }
  const mid = all[times.indexOf(median(times))] ?? all[0]!;
  const results: Record<string, number> = {};
  for (const x of all.flat()) results[x.result] = (results[x.result] ?? 0) + 1;
  const steps: Run['steps'] = {};
  for (const step of ['read', 'sentinels', 'role', 'target']) {
    const xs = mid.flatMap((x) => (x.timingsMs?.[step] === undefined ? [] : [x.timingsMs[step]!]));
    if (xs.length) steps[step] = { p50: r1(median(xs)), max: r1(Math.max(...xs)) };
  }
  steps.total = { p50: r1(median(mid.map((x) => x.durationMs))), max: r1(Math.max(...mid.map((x) => x.durationMs))) };
  say(`  full reconcile of ${o.sets.length} (POST /v1/reconcile, ${reconciles}x): ${times.map((x) => `${Math.round(x)}`).join(' / ')} ms; results ${JSON.stringify(results)}`);
  say(`    steps of the median run, ms from each run's start (p50 / max over master sets): ${Object.entries(steps).map(([k, v]) => `${k} ${v.p50}/${v.max}`).join(', ')}`);

  // Idle window.
  await sleep(500);
  const runsBefore = await metric(port, 'sentinel_switch_reconcile_runs_total', 'reason="timer"');
  await sleep(500);
  const w0 = performance.now();
  const c0 = cpuTicks(pid);
  await sleep(windowSeconds * 1000);
  const c1 = cpuTicks(pid);
  const seconds = (performance.now() - w0) / 1000;
  const rss = rssKiB(pid);
  const runsAfter = await metric(port, 'sentinel_switch_reconcile_runs_total', 'reason="timer"');
  const mem = await heap(port);
  const writesNoDrift = watch!.writes((e) => e.kind === 'service', since, now());
  const idleMilliCpu = Math.round(((c1 - c0) / clkTck / seconds) * 1000 * 100) / 100;
  const connections = await ourConnections(r);
  say(`  idle ${r1(seconds)} s: ${c1 - c0} ticks -> ${idleMilliCpu} mCPU, ${runsAfter - runsBefore} timer runs; RSS ${r1(rss / 1024)} MiB; Service writes since the first full reconcile: ${writesNoDrift}`);
  say(`  sentinel-switch's connections on the sentinels (subscriber+command): ${connections.perSentinel}; V8 heap ${mem.heapUsedMiB} used / ${mem.heapTotalMiB} MiB, external ${mem.externalMiB} MiB`);

  // Failovers, one master set at a time.
  const failoverMs: number[] = [];
  const notes: string[] = [];
  let failoverWrites = 0;
  for (const set of o.failoverSets) {
    const group = r.groups.find((g) => g.masterSet === set)!;
    const before = await r.masterByMajority(set);
    const sub = await switchWatcher(set);
    const t = now();
    try {
      await r.failover(set);
      const first = await sub.next(30_000);
      const to = group.nodes.find((n) => n.host === first.to)!;
      const hit = await watch!.waitFor('service', o.services(set), (e) => e.externalName === o.dnsOf(to.host), t, 15_000);
      if (hit) failoverMs.push(hit.atMs - first.atMs);
      else notes.push(`${set}: the Service did not name ${to.name} within 15 s`);
      await r.waitStable(60_000, [set]);
      await sleep(1_000);
      const writes = watch!.writes((e) => e.kind === 'service', t, now());
      failoverWrites += writes;
      say(`  failover of ${set} (${group.nodes.find((n) => n.host === before.host)?.name} -> ${to.name}): ${hit ? `${r1(hit.atMs - first.atMs)} ms` : 'not converged'} from the first +switch-master (${first.sentinel}) to the Service; ${writes} write(s)`);
    } finally {
      sub.close();
    }
  }
  await stopChild();
  return {
    masterSets: o.sets.length, pid, startToReadyMs, fullReconcileMs: times.map(r1), steps, results, writesNoDrift, idleMilliCpu,
    timerRunsInWindow: runsAfter - runsBefore, rssMiB: r1(rss / 1024), heap: mem, connections, failoverMs: failoverMs.map(r1), failoverWrites, failoverNotes: notes,
  };
}

/** +switch-master of one master set on every sentinel, on the harness's own connections. */
async function switchWatcher(set: string): Promise<{ next(ms: number): Promise<{ atMs: number; sentinel: string; to: string }>; close(): void }> {
  const r = redis!;
  const seen: { atMs: number; sentinel: string; to: string }[] = [];
  let wake: (() => void) | undefined;
  const subs = await Promise.all(r.sentinels.map(async (s) => {
    const c = new Redis({ host: s.host, port: s.port, password: r.password, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    c.on('error', () => undefined);
    c.on('message', (_ch: string, msg: string) => {
      const f = msg.split(' ');
      if (f[0] !== set) return;
      seen.push({ atMs: now(), sentinel: s.name, to: f[3]! });
      wake?.();
    });
    await c.connect();
    await c.subscribe('+switch-master');
    return c;
  }));
  return {
    async next(ms) {
      const deadline = now() + ms;
      while (!seen.length) {
        if (now() > deadline) throw new Error(`no +switch-master of ${set} within ${ms} ms`);
        await new Promise<void>((res) => {
          wake = res;
          setTimeout(res, 100);
        });
      }
      return seen[0]!;
    },
    close: () => subs.forEach((c) => c.disconnect()),
  };
}

// ------------------------------------------------------------------------------- the run

const runs: Run[] = [];
let failed: string | undefined;
let sandboxText = '';
try {
  say(`sentinel-switch bench:scale: ${N} master sets on shared sentinels; idle window ${windowSeconds} s; ${failovers} failover(s) per configuration; load ${load()}`);
  say(`  sandbox ${dir}`);
  let t = performance.now();
  const [c, r] = await Promise.all([
    startCluster({ dir: join(dir, 'k8s'), ownerPid: process.pid, dataPlane: false }),
    startSharedSentinels({ dir: join(dir, 'redis'), groups: N, replicas: 1, sentinels: 3, hz: 1, startTimeoutMs: 180_000 }),
  ]);
  cluster = c;
  redis = r;
  sandboxText = `3 sentinels monitoring ${N} master sets, each 1 master + 1 replica (${2 * N} redis-server processes, hz 1)`;
  say(`  ${sandboxText}, and the API server up in ${Math.round(performance.now() - t)} ms`);

  t = performance.now();
  const admin = cluster.kubeconfigPath;
  const namespace = await createNamespace(admin, 'scale');
  const podDns = (name: string): string => `${name}.${HEADLESS}.${namespace}.svc.cluster.local`;
  const nodes = r.groups.flatMap((g) => g.nodes);
  const dnsOf = (host: string): string => podDns(nodes.find((n) => n.host === host)!.name);
  const service = (set: string): string => `redis-${set}`;
  await pool(nodes, 4, (n) => createPod(admin, namespace, { name: n.name, hostname: n.name, subdomain: HEADLESS, podIP: n.host, labels: { app: 'redis' } }));
  await pool(r.groups, 4, async (g) => createExternalNameService(admin, namespace, service(g.masterSet), dnsOf((await r.masterByMajority(g.masterSet)).host)));
  await kubectl(admin, ['apply', '-n', namespace, '-f', '-'], rbacFor(namespace, r.groups.map((g) => service(g.masterSet))));
  const kubeconfig = await serviceAccountKubeconfig(cluster, namespace, 'sentinel-switch');
  watch = await ObjectWatch.start(admin, namespace);
  say(`  ${nodes.length} Pods, ${N} ExternalName Services, RBAC (deploy/rbac.yaml, resourceNames = the ${N} Services) in ${namespace} in ${Math.round(performance.now() - t)} ms`);

  const token = randomBytes(24).toString('hex');
  const tokenPath = join(dir, 'token');
  writeFileSync(tokenPath, `${token}\n`, { mode: 0o600 });
  const env = { REDIS_PASSWORD: r.password };
  const configFor = (sets: string[]) => ({
    token: { file: tokenPath },
    kubernetes: { kubeconfig, clusterDomain: 'cluster.local' },
    masterSets: sets.map((name) => ({
      name,
      sentinels: r.sentinels.map((s) => `${s.host}:${s.port}`),
      sentinelAuth: { password: { env: 'REDIS_PASSWORD' } },
      redisAuth: { password: { env: 'REDIS_PASSWORD' } },
      target: { namespace, name: service(name) },
    })),
  });
  const allSets = r.groups.map((g) => g.masterSet);
  // Failovers spread over the master sets; the 1-set run fails over its only one.
  const pick = Array.from({ length: failovers }, (_, i) => allSets[Math.floor(((i + 0.5) * N) / failovers)]!);
  say(`\n${N} master sets:`);
  runs.push(await measure({ sets: allSets, config: configFor(allSets), env, token, services: service, dnsOf, failoverSets: pick }));
  if (N > 1) {
    say(`\n1 master set (${allSets[0]}), same sandbox:`);
    runs.push(await measure({ sets: [allSets[0]!], config: configFor([allSets[0]!]), env, token, services: service, dnsOf, failoverSets: Array.from({ length: failovers }, () => allSets[0]!) }));
  }
} catch (err) {
  failed = (err as Error).stack ?? String(err);
  say(`bench:scale FAILED: ${failed}`);
} finally {
  await stopAll();
  clearTimeout(watchdog);
}

const many = runs[0];
const one = runs.find((x) => x.masterSets === 1 && x !== many) ?? (many?.masterSets === 1 ? many : undefined);
const rssPerSetKiB = many && one && many !== one ? Math.round(((many.rssMiB - one.rssMiB) * 1024) / (many.masterSets - 1)) : undefined;
if (many) {
  const mark = (v: number, target: number): string => (v <= target ? 'ok' : 'OVER');
  const fr = median(many.fullReconcileMs);
  say('');
  say(`${'figure'.padEnd(44)}${'target'.padEnd(15)}${`${N} master sets`.padEnd(28)}1 master set`);
  const row = (name: string, target: string, a: string, b: string): void => say(`${name.padEnd(44)}${target.padEnd(15)}${a.padEnd(28)}${b}`);
  row('full reconcile, nothing drifted', `<= ${TARGETS.fullReconcileMs} ms`, `${fr} ms ${mark(fr, TARGETS.fullReconcileMs)}`, one && one !== many ? `${median(one.fullReconcileMs)} ms` : '');
  row('Service writes when nothing drifted', '0', `${many.writesNoDrift} ${mark(many.writesNoDrift, 0)}`, one && one !== many ? `${one.writesNoDrift}` : '');
  row(`idle CPU (${windowSeconds} s window)`, `<= ${TARGETS.idleMilliCpu} mCPU`, `${many.idleMilliCpu} mCPU ${mark(many.idleMilliCpu, TARGETS.idleMilliCpu)}`, one && one !== many ? `${one.idleMilliCpu} mCPU` : '');
  row('RSS at end of window', '', `${many.rssMiB} MiB`, one && one !== many ? `${one.rssMiB} MiB` : '');
  if (rssPerSetKiB !== undefined) row('RSS growth per master set', '', `${rssPerSetKiB} KiB`, '');
  row('failover, +switch-master -> Service (p50)', 'same as 1 set', many.failoverMs.length ? `${median(many.failoverMs)} ms (${many.failoverMs.join(', ')})` : 'n/a', one && one !== many && one.failoverMs.length ? `${median(one.failoverMs)} ms (${one.failoverMs.join(', ')})` : '');
  row('writes per failover', '1', `${failovers ? r1(many.failoverWrites / failovers) : 'n/a'}`, one && one !== many && failovers ? `${r1(one.failoverWrites / failovers)}` : '');
  row('connections on the sentinels (sub+cmd)', '', `${many.connections.subscribers}+${many.connections.commands}`, one && one !== many ? `${one.connections.subscribers}+${one.connections.commands}` : '');
  say(`sandbox: ${sandboxText}; load at the end ${load()}`);
  for (const n of [...many.failoverNotes, ...(one?.failoverNotes ?? [])]) say(`  note: ${n}`);
}
if (values.json) {
  say(
    JSON.stringify(
      many
        ? {
            masterSets: many.masterSets,
            fullReconcileMs: median(many.fullReconcileMs),
            writes: many.writesNoDrift,
            idleMilliCpu: many.idleMilliCpu,
            rssMiB: many.rssMiB,
            rssPerSetKiB,
            rssMiBOneSet: one && one !== many ? one.rssMiB : undefined,
            heap: many.heap,
            heapOneSet: one && one !== many ? one.heap : undefined,
            idleMilliCpuOneSet: one && one !== many ? one.idleMilliCpu : undefined,
            failoverMs: many.failoverMs.length ? median(many.failoverMs) : null,
            failoverMsOneSet: one && one !== many && one.failoverMs.length ? median(one.failoverMs) : null,
            failoverWrites: many.failoverWrites,
            failovers,
            steps: many.steps,
            fullReconcileRunsMs: many.fullReconcileMs,
            connections: many.connections,
            sandbox: sandboxText,
            windowSeconds,
            load: loadavg().map((l) => Math.round(l * 100) / 100),
            targets: TARGETS,
            ...(failed ? { error: failed.split('\n')[0] } : {}),
          }
        : { error: failed ?? 'nothing measured' },
    ),
  );
}
process.exit(failed ? 1 : 0);
