// npm run bench [-- --failovers N] [-- --json]
// sentinel-switch against what users run today (docs/peers.md), on the same failovers of the same
// Sentinels, each mechanism moving its own object in the same real API server:
//   sentinel-switch   hook -> service -> ExternalName Service redis-master (exactly startStack)
//   seed-poll-5s      scripts/peers/seed-poll.sh -> ExternalName Service seed-master
//   bitnami-label-1s  hook writes a file, scripts/peers/bitnami-label.sh -> Pod label isMaster
// Failovers alternate SENTINEL FAILOVER and SIGKILL of the master (restarted, then waitStable).
// Time = API watch event in this process - first +switch-master seen from any sentinel; writes =
// MODIFIED watch events on each mechanism's objects. With --json the last line is one JSON object.
// Everything started here is stopped here (also on error and on Ctrl-C); the peer loops also stop
// by themselves once this process is gone or after a maximum runtime.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type Cluster, startCluster } from '../test/harness/k8s.ts';
import type { RedisNode } from '../test/harness/redis.ts';
import { type Stack, startStack, TARGET } from '../test/harness/stack.ts';
import { repoRoot } from '../test/harness/switch.ts';
import { percentile } from './lib/stats.ts';
import { ObjectWatch, PEER_RBAC, type Peers, peerHook, SEED_SERVICE, startPeers, stopBenchSandbox } from './peers/peers.ts';
import { stopOnSignals } from './lib/signals.ts';

// `dev.sh run scripts/bench.ts -- --failovers 2` hands the `--` through (npm run strips it).
const argv = process.argv.slice(2);
const { values } = parseArgs({ args: argv[0] === '--' ? argv.slice(1) : argv, options: { failovers: { type: 'string', default: '10' }, json: { type: 'boolean', default: false } } });
const failovers = Number(values.failovers);
if (!Number.isInteger(failovers) || failovers < 1 || failovers > 50) throw new Error('--failovers must be 1..50');

const MECHANISMS = ['sentinel-switch', 'seed-poll-5s', 'bitnami-label-1s'] as const;
type Mechanism = (typeof MECHANISMS)[number];
/** A mechanism has converged if its object names the new master within this long after the first +switch-master. */
const CONVERGE_BOUND_MS = 15_000;
/** After convergence, time for trailing writes (other label loops, late hooks) before counting. */
const SETTLE_MS = 1_500;

const dir = join(repoRoot, '.sandbox', `bench-${process.pid}`);
mkdirSync(dir, { recursive: true });
const now = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const say = (s: string): void => void process.stdout.write(`${s}\n`);

interface Row {
  i: number;
  kind: string;
  from: string;
  to: string;
  ms: Record<Mechanism, number | undefined>;
  writes: Record<Mechanism, number>;
  note?: string;
}

let cluster: Cluster | undefined;
let stack: Stack | undefined;
let watch: ObjectWatch | undefined;
let peers: Peers | undefined;
let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await stopBenchSandbox({ peers, watch, stack, cluster, dir, say });
  })();
  return cleaning;
}
let interrupted = false;
stopOnSignals(() => {
  interrupted = true;
  return cleanup();
});

const rows: Row[] = [];
const short = (node: { name: string } | undefined): string => node?.name ?? '?';
try {
  say(`sentinel-switch bench: ${failovers} failovers, 3 mechanisms on the same Sentinels; sandbox in ${dir}`);
  let t = now();
  cluster = await startCluster({ dir: join(dir, 'k8s'), ownerPid: process.pid });
  const hook = peerHook(dir);
  stack = await startStack({ dir, cluster, hookScript: hook.hookScript, hookEnv: hook.hookEnv });
  const s = stack;
  watch = await ObjectWatch.start(s.adminKubeconfig, s.namespace);
  peers = await startPeers({ stack: s, cluster, dir: join(dir, 'peers'), bitnamiDir: hook.bitnamiDir, maxSeconds: 60 * 60 });
  say(`  API server, Redis 1+2, 3 sentinels, sentinel-switch and the peer loops up in ${Math.round(now() - t)} ms (namespace ${s.namespace})`);
  say(`  objects: Service ${TARGET} (sentinel-switch), Service ${SEED_SERVICE} (seed-poll-5s), Pods ${s.redis.nodes.map((n) => n.name).join(', ')} label isMaster (bitnami-label-1s)`);
  say('');
  say(header());

  for (let i = 1; i <= failovers; i++) {
    const kind = i % 2 === 1 ? 'SENTINEL FAILOVER' : 'SIGKILL master';
    const before = await s.redis.masterByMajority();
    const watcher = s.redis.watchSwitches();
    await watcher.ready();
    const t0 = now();
    const killed: RedisNode | undefined = kind === 'SENTINEL FAILOVER' ? (await s.redis.failover(), undefined) : await s.redis.killMaster();
    const row: Row = {
      i, kind, from: short(s.redis.nodes.find((n) => n.host === before.host)), to: '?',
      ms: { 'sentinel-switch': undefined, 'seed-poll-5s': undefined, 'bitnami-label-1s': undefined },
      writes: { 'sentinel-switch': 0, 'seed-poll-5s': 0, 'bitnami-label-1s': 0 },
    };
    try {
      const first = await watcher.waitForNext(30_000);
      const node = s.redis.nodes.find((n) => n.host === first.to.host);
      if (!node) throw new Error(`+switch-master names ${first.to.host}, not a node of the sandbox`);
      row.to = node.name;
      const dns = s.dnsName(node);
      const left = Math.max(0, first.atMs + CONVERGE_BOUND_MS - now());
      const [ss, seed, bitnami] = await Promise.all([
        watch.waitFor('service', TARGET, (e) => e.externalName === dns, t0, left),
        watch.waitFor('service', SEED_SERVICE, (e) => e.externalName === dns, t0, left),
        watch.waitFor('pod', node.name, (e) => e.isMaster === 'true', t0, left),
      ]);
      // Not clamped: Sentinel runs the leader's hook before it publishes +switch-master.
      const since = (e: { atMs: number } | undefined): number | undefined => (e ? e.atMs - first.atMs : undefined);
      row.ms = { 'sentinel-switch': since(ss), 'seed-poll-5s': since(seed), 'bitnami-label-1s': since(bitnami) };
    } catch (err) {
      row.note = (err as Error).message.split('\n')[0];
    }
    await sleep(SETTLE_MS);
    await watcher.close();
    if (killed) await s.redis.startNode(killed);
    await s.redis.waitStable(60_000);
    const end = now();
    const podNames = new Set(s.redis.nodes.map((n) => n.name));
    row.writes = {
      'sentinel-switch': watch.writes((e) => e.kind === 'service' && e.name === TARGET, t0, end),
      'seed-poll-5s': watch.writes((e) => e.kind === 'service' && e.name === SEED_SERVICE, t0, end),
      'bitnami-label-1s': watch.writes((e) => e.kind === 'pod' && podNames.has(e.name), t0, end),
    };
    rows.push(row);
    say(rowLine(row));
  }
} catch (err) {
  // After Ctrl-C the run fails as its processes go away: the signal handler reports and exits.
  if (!interrupted) say(`\nbench failed: ${(err as Error).stack ?? String(err)}`);
  await cleanup();
  if (interrupted) await new Promise(() => undefined);
  process.exit(1);
}
await cleanup();

// ---------------------------------------------------------------------------------- summary
const r1 = (x: number | undefined): number | null => (x === undefined ? null : Math.round(x * 10) / 10);
const r2 = (x: number | undefined): number | null => (x === undefined ? null : Math.round(x * 100) / 100);
const stats = Object.fromEntries(MECHANISMS.map((m) => {
  const samples = rows.flatMap((r) => (r.ms[m] === undefined ? [] : [r.ms[m]!]));
  return [m, {
    p50: r1(percentile(samples, 50)), p95: r1(percentile(samples, 95)), p99: r1(percentile(samples, 99)),
    converged: samples.length, writes: rows.reduce((n, r) => n + r.writes[m], 0),
  }];
})) as Record<Mechanism, { p50: number | null; p95: number | null; p99: number | null; converged: number; writes: number }>;
const base = stats['sentinel-switch'].p50;
const ratio = (m: Mechanism): number | null => {
  const p = stats[m].p50;
  return p === null || base === null || base <= 0 ? null : r1(p / base);
};
const ratioP50 = { 'seed-poll-5s': ratio('seed-poll-5s'), 'bitnami-label-1s': ratio('bitnami-label-1s') };
const exactlyOne = rows.filter((r) => r.writes['sentinel-switch'] === 1).length;

say('');
say(`summary over ${failovers} failovers (ms from the first +switch-master to the API watch event; nearest-rank percentiles)`);
say(`  ${'mechanism'.padEnd(18)} ${'p50'.padStart(9)} ${'p95'.padStart(9)} ${'p99'.padStart(9)}  converged  writes/failover  p50 ratio`);
for (const m of MECHANISMS) {
  const st = stats[m];
  const ratioText = m === 'sentinel-switch' ? '1' : `${ratioP50[m] ?? 'n/a'}x`;
  say(`  ${m.padEnd(18)} ${fmt(st.p50, 9)} ${fmt(st.p95, 9)} ${fmt(st.p99, 9)}  ${`${st.converged}/${failovers}`.padStart(9)}  ${String(r2(st.writes / failovers)).padStart(15)}  ${ratioText.padStart(9)}`);
}
say('');
say('targets from the issue (reported, not enforced: one small sandbox on a shared 2-core machine):');
const mark = (ok: boolean): string => (ok ? 'met   ' : 'MISSED');
const p99 = stats['sentinel-switch'].p99;
say(`  ${mark(base !== null && base <= 10)} sentinel-switch p50 <= 10 ms: ${fmt(base)}`);
say(`  ${mark(p99 !== null && p99 <= 25)} sentinel-switch p99 <= 25 ms: ${fmt(p99)}`);
say(`  ${mark((ratioP50['seed-poll-5s'] ?? 0) >= 100)} p50 ratio vs seed-poll-5s >= 100: ${ratioP50['seed-poll-5s'] ?? 'n/a'}`);
say(`  ${mark((ratioP50['bitnami-label-1s'] ?? 0) >= 20)} p50 ratio vs bitnami-label-1s >= 20: ${ratioP50['bitnami-label-1s'] ?? 'n/a'}`);
say(`  ${mark(exactlyOne === failovers)} exactly 1 write per failover (sentinel-switch): ${exactlyOne}/${failovers} failovers, ${stats['sentinel-switch'].writes} writes in all`);
say('');
say('legend:');
say('  times are API watch events in this process minus the first +switch-master from any sentinel. Negative values are kept:');
say('  Sentinel runs the hook on the leader BEFORE it publishes +switch-master, so a hook-driven object may move first.');
say(`  converged = the object named the new master within ${CONVERGE_BOUND_MS / 1000} s; writes = MODIFIED watch events on the mechanism's objects`);
say('  (bitnami-label-1s: the Pods; relabelling the new and the old master is 2 writes).');
say('  seed-poll-5s asks ONE sentinel directly with redis-cli (the original goes through kubectl exec: slower) and maps the IP to');
say('  the pod DNS name via a pod lookup; bitnami-label-1s runs one loop per sentinel (one sidecar per Redis pod in the chart).');
say('  RBAC: sentinel-switch runs with deploy/rbac.yaml; the peers with ServiceAccounts granted what they need, broader in reality:');
for (const [m, text] of Object.entries(PEER_RBAC)) say(`    ${m}: ${text}`);
if (values.json) {
  say(JSON.stringify({ failovers, mechanisms: stats, ratioP50 }));
}
process.exit(stats['sentinel-switch'].converged === failovers ? 0 : 1);

// ---------------------------------------------------------------------------------- formatting
function fmt(ms: number | null | undefined, width = 0): string {
  const text = ms === undefined || ms === null ? 'n/a' : `${ms.toFixed(1)} ms`;
  return text.padStart(width);
}
function header(): string {
  return `  ${'#'.padStart(2)}  ${'failover'.padEnd(17)}  ${'master'.padEnd(28)}  ${MECHANISMS.map((m) => m.padStart(16)).join('  ')}  writes ss/seed/bitnami`;
}
function rowLine(r: Row): string {
  const cells = MECHANISMS.map((m) => (r.ms[m] === undefined ? 'not converged' : fmt(r.ms[m])).padStart(16)).join('  ');
  const writes = MECHANISMS.map((m) => r.writes[m]).join('/');
  return `  ${String(r.i).padStart(2)}  ${r.kind.padEnd(17)}  ${`${r.from} -> ${r.to}`.padEnd(28)}  ${cells}  ${writes.padStart(22)}${r.note ? `  (${r.note})` : ''}`;
}
