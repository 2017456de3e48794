// npm run chaos [-- --faults N] [-- --minutes M] [-- --seed S] [-- --kinds a,b] [-- --replicas P] [-- --json]
//
// A bounded, seeded, randomized schedule of faults on the local sandbox (Redis 1 master + 2
// replicas, 3 Sentinels running our hook, a real kube-apiserver, sentinel-switch with the shipped
// RBAC), with an independent checker:
//   failover        SENTINEL FAILOVER
//   kill-master     SIGKILL of the master, restarted (as a replica) after the switch
//   pause-master    SIGSTOP of the master for >= 3 s (down-after 1000 ms) until the majority has
//                   moved, then SIGCONT: the old master is back as a stale master until Sentinel
//                   demotes it (the split-brain moment)
//   sentinel-down   one sentinel SIGKILLed, a failover (or master kill) without it, then it is
//                   back and catches up (and runs the hook late)
//   switch-killed   sentinel-switch SIGKILLed mid-failover, down 1-4 s, restarted: either after
//                   the failover command / master kill but before the hooks (they find it dead
//                   and retry), or 0-20 ms after the first hook call reached it
//   api-down        the API server stopped, a failover as soon as it stops answering, the API
//                   server started again (~18 s in all: kube-apiserver takes ~16 s to exit while
//                   a watch is open; it refuses new requests from the first moment)
//   +2 replicas     (on a fraction --replicas of the faults, default 0.35) two more sentinel-switch
//                   replicas with a 1 s reconcile interval race the one the hooks reach; the
//                   second reaches the API server through a proxy that delays its requests by
//                   200-700 ms, so its checks and writes straddle the failover: optimistic
//                   concurrency must still prevent every stale write
// sentinel-switch runs with reconcileIntervalSeconds 5 here (30 by default), so "converged" is:
// once everything is healthy again (processes back, every sentinel answers and agrees, no
// failover under way, ROLE master, API up), the Service names that master within 1.1 x 5 s +
// 2 s. A write is ok/raced/wrong by the rule of classifyWrite() in scripts/lib/chaos-checker.ts.
//
// Prints a line per fault once it is over (time = when it started, relative to the first fault;
// what moved; when healthy again; convergence; the writes and their verdicts), a line at once
// for every write that is not ok, and a summary; with --json the LAST line is
//   {"seed":S,"faults":F,"failovers":N,"converged":C,"wrongWrites":W,"lostAcked":L,"convergeMs":{"p50":..,"p99":..,...},...}
// lostAcked: an app writer (test/harness/app-client.ts, 100 writes/s, mode reconnect) on the
// Service's stable name; per fault, its writes acknowledged and then absent from the master once
// the sandbox is stable again (see scripts/lib/app-view.ts). Reported, not part of the exit code.
// Exit 0 when every fault that became healthy converged and no write was wrong; 1 otherwise;
// 3 when the time budget (--minutes, default 10, everything included) ran out. The sandbox
// (configs, every process's log) stays in .sandbox/chaos-<pid> unless the run passed (--keep
// keeps it anyway). CHAOS_DEBUG=1 prints why the checker is still waiting.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type Cluster, startCluster } from '../test/harness/k8s.ts';
import { type Stack, startStack } from '../test/harness/stack.ts';
import { repoRoot } from '../test/harness/switch.ts';
import { runChaos } from './lib/chaos-run.ts';
import { FAULT_KINDS, type FaultKind, describeFault, makeSchedule } from './lib/chaos-schedule.ts';

const DEFAULT_SEED = 20240611;
const INTERVAL_SECONDS = 5;

// `dev.sh run scripts/chaos.ts -- --faults 4` hands node the `--` too (npm run strips it).
const argv = process.argv.slice(2);
const { values } = parseArgs({
  args: argv[0] === '--' ? argv.slice(1) : argv,
  options: {
    faults: { type: 'string' },
    minutes: { type: 'string', default: '10' },
    seed: { type: 'string', default: String(DEFAULT_SEED) },
    kinds: { type: 'string' },
    replicas: { type: 'string', default: '0.35' },
    json: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
  },
});
const minutes = Number(values.minutes);
if (!(minutes > 0 && minutes <= 60)) throw new Error('--minutes must be in (0, 60]');
const seed = Number(values.seed);
if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new Error('--seed must be an integer 0..4294967295');
const faultCount = values.faults === undefined ? 200 : Number(values.faults);
if (!Number.isInteger(faultCount) || faultCount < 1 || faultCount > 200) throw new Error('--faults must be 1..200');
const kinds = (values.kinds?.split(',').map((k) => k.trim()).filter(Boolean) ?? [...FAULT_KINDS]) as FaultKind[];
const replicasProbability = Number(values.replicas);
if (!(replicasProbability >= 0 && replicasProbability <= 1)) throw new Error('--replicas must be a probability 0..1');
const schedule = makeSchedule(seed, faultCount, { kinds, replicasProbability });

const say = (s: string): void => void process.stdout.write(`${s}\n`);
const startedAt = Date.now();
const deadline = startedAt + minutes * 60_000;
const dir = join(repoRoot, '.sandbox', `chaos-${process.pid}`);
mkdirSync(dir, { recursive: true });
say(`sentinel-switch chaos: seed ${seed}, ${values.faults === undefined ? 'as many faults as fit' : `${faultCount} faults`} in at most ${minutes} min (kinds: ${kinds.join(', ')}); sandbox ${dir}`);
say(`  sentinel-switch reconcileIntervalSeconds ${INTERVAL_SECONDS} (extra replicas: 1); rerun with --seed ${seed} for the same schedule`);

let exitCode = 1;
let cluster: Cluster | undefined;
let stack: Stack | undefined;
let abort = false;
let cleaning: Promise<void> | undefined;
const cleanup = (): Promise<void> =>
  (cleaning ??= (async () => {
    await stack?.stop().catch((err: unknown) => say(`cleanup: ${(err as Error).message}`));
    await cluster?.stop().catch((err: unknown) => say(`cleanup: ${(err as Error).message}`));
    rmSync(join(dir, 'k8s', 'etcd-data'), { recursive: true, force: true });
    // Logs and configs stay for a post-mortem unless the run passed.
    if (exitCode === 0 && !values.keep) rmSync(dir, { recursive: true, force: true });
  })());
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    say(`\n${sig}: stopping everything`);
    abort = true;
    void cleanup().then(() => process.exit(130));
  });
}
// The hard bound: whatever hangs, the run ends by the deadline.
const watchdog = setTimeout(() => {
  say(`\ntime budget of ${minutes} min exhausted: stopping everything`);
  abort = true;
  void cleanup().then(() => process.exit(3));
}, Math.max(1, deadline - Date.now() - 20_000));
watchdog.unref();

let jsonLine: string | undefined;
try {
  cluster = await startCluster({ dir: join(dir, 'k8s'), ownerPid: process.pid });
  stack = await startStack({ dir, cluster, config: { reconcileIntervalSeconds: INTERVAL_SECONDS, logLevel: 'info' } });
  say(`  stack up in ${((Date.now() - startedAt) / 1000).toFixed(1)} s: namespace ${stack.namespace}, Service names ${(await stack.readService()).externalName}`);
  if (values.faults !== undefined) for (const f of schedule) say(`  planned #${f.n}: ${describeFault(f)}`);
  const report = await runChaos({
    stack,
    cluster,
    schedule,
    reconcileIntervalSeconds: INTERVAL_SECONDS,
    deadlineMs: deadline,
    reserveMs: 90_000,
    say,
    aborted: () => abort,
  });
  const r = report;
  const fmt = (s: { n: number; p50: number | null; p99: number | null }): string => (s.n ? `p50 ${s.p50} ms, p99 ${s.p99} ms (n=${s.n})` : 'n/a');
  say('');
  say(`summary: ${r.faults} faults, ${r.failovers} failovers, ${r.converged}/${r.shouldConverge} converged (${r.faults - r.shouldConverge} never healthy again), writes ${r.writes}: ${r.wrongWrites} wrong, ${r.racedWrites} raced, ${r.unjudgedWrites} unjudged; watch re-established ${r.watchRestarts}x`);
  say(`  convergence from healthy: ${fmt(r.convergeMs)}; delivered by a hook: ${fmt(r.convergeMs.hook)}; by a timer/startup reconcile: ${fmt(r.convergeMs.timer)}`);
  say(`  new epoch -> Service: ${fmt(r.switchToServiceMs)}`);
  say(`  app writer on the stable name (${r.appWrites.acked}/${r.appWrites.sent} writes acknowledged): lost acked ${r.lostAcked}${r.lostAckedBuffered ? ` (+${r.lostAckedBuffered} sent to a frozen master, acknowledged when it resumed)` : ''}; per fault kind: ${Object.entries(r.lostAckedByKind).map(([k, n]) => `${k} ${n}`).join(', ') || 'n/a'}`);
  for (const a of r.anomalies) say(`  anomaly: ${a}`);
  for (const res of r.results.filter((x) => x.outcome !== 'converged')) say(`  #${res.fault.n} ${res.fault.kind}: ${res.outcome}${res.error ? `: ${res.error}` : ''}`);
  exitCode = r.converged === r.shouldConverge && r.wrongWrites === 0 && r.faults > 0 ? 0 : 1;
  if (values.json) {
    jsonLine = JSON.stringify({
        seed,
        faults: r.faults,
        failovers: r.failovers,
        converged: r.converged,
        wrongWrites: r.wrongWrites,
        lostAcked: r.lostAcked,
        lostAckedBuffered: r.lostAckedBuffered,
        lostAckedByKind: r.lostAckedByKind,
        convergeMs: { p50: r.convergeMs.p50, p99: r.convergeMs.p99, hook: r.convergeMs.hook, timer: r.convergeMs.timer },
        shouldConverge: r.shouldConverge,
        racedWrites: r.racedWrites,
        writes: r.writes,
        reconcileIntervalSeconds: INTERVAL_SECONDS,
        kinds: Object.fromEntries(kinds.map((k) => [k, r.results.filter((x) => x.fault.kind === k).length])),
      });
  }
} catch (err) {
  say(`chaos run failed: ${(err as Error).stack ?? String(err)}`);
  exitCode = 1;
} finally {
  clearTimeout(watchdog);
  if (!abort) await cleanup();
}
if (!abort) {
  if (jsonLine) say(jsonLine);
  process.exit(exitCode);
}
