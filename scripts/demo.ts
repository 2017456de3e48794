// npm run demo [-- --failovers N] [-- --json]
// The main job on a local sandbox: 1 master + 2 replicas + 3 sentinels running our hook, a real
// kube-apiserver holding the ExternalName Service, and sentinel-switch with the shipped RBAC.
// Performs failovers (alternating SENTINEL FAILOVER and SIGKILL of the master) and prints a
// timeline of each. With --json the last line is a JSON summary. Stops everything it started.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startCluster } from '../test/harness/k8s.ts';
import { type Stack, startStack } from '../test/harness/stack.ts';
import { repoRoot } from '../test/harness/switch.ts';
import { percentile } from './lib/stats.ts';
import { stopOnSignals } from './lib/signals.ts';

const { values } = parseArgs({ options: { failovers: { type: 'string', default: '4' }, json: { type: 'boolean', default: false } } });
const failovers = Number(values.failovers);
if (!Number.isInteger(failovers) || failovers < 1 || failovers > 50) throw new Error('--failovers must be 1..50');

const dir = join(repoRoot, '.sandbox', `demo-${process.pid}`);
mkdirSync(dir, { recursive: true });
const now = (): number => performance.timeOrigin + performance.now();
const say = (s: string): void => void process.stdout.write(`${s}\n`);

// Sentinel runs this wrapper, which notes when it was invoked and hands over to the real hook:
// that is the only way to know "hook invoked" to the microsecond without trusting the service.
const hookLog = join(dir, 'hook-calls.log');
const wrapper = join(dir, 'hook-wrapper.sh');
writeFileSync(wrapper, `#!/usr/bin/env bash\nprintf '%s %s\\n' "\${EPOCHREALTIME/[.,]/}" "$*" >> '${hookLog}'\nexec bash '${join(repoRoot, 'scripts/client-reconfig.sh')}' "$@"\n`, { mode: 0o755 });

say(`sentinel-switch demo: ${failovers} failovers; sandbox in ${dir}`);
let t = now();
const cluster = await startCluster({ dir: join(dir, 'k8s'), ownerPid: process.pid });
say(`  kube-apiserver ready in ${Math.round(now() - t)} ms (${cluster.server})`);
let stack: Stack | undefined;
stopOnSignals(async () => {
  await stack?.stop();
  await cluster.stop();
});
const results: { kind: string; converged: boolean; writes: number; hookToPatchMs?: number; switchToPatchMs?: number }[] = [];
try {
  t = now();
  stack = await startStack({ dir, cluster, hookScript: wrapper });
  say(`  Redis 1 master + 2 replicas, 3 sentinels, Service ${stack.namespace}/redis-master and sentinel-switch up in ${Math.round(now() - t)} ms`);
  say(`  Service names ${(await stack.readService()).externalName}`);

  for (let i = 1; i <= failovers; i++) {
    const kind = i % 2 === 1 ? 'SENTINEL FAILOVER' : 'SIGKILL master';
    const s = stack;
    const before = await s.redis.masterByMajority();
    const watcher = s.redis.watchSwitches();
    await watcher.ready();
    const hookLinesBefore = readLines(hookLog).length;
    const logBefore = s.service!.logLines().length;
    const changesBefore = s.serviceChanges.length;
    const t0 = now();
    const killed = kind === 'SENTINEL FAILOVER' ? (await s.redis.failover(), undefined) : await s.redis.killMaster();
    let converged = false;
    let patchAt: number | undefined;
    let after = before;
    try {
      const first = await watcher.waitForNext(30_000);
      after = first.to;
      patchAt = (await s.waitForTarget(s.dnsName(after), 20_000)).atMs;
      converged = true;
    } catch (err) {
      say(`  failover ${i}: did not converge: ${(err as Error).message}`);
    }
    await new Promise((r) => setTimeout(r, 300)); // late hook calls and their (empty) runs
    const switches = watcher.events.filter((e) => e.atMs >= t0);
    await watcher.close();
    const hooks = readLines(hookLog).slice(hookLinesBefore).map((l) => {
      const [us, ...args] = l.split(' ');
      return { atMs: Number(us) / 1000, role: args[1] ?? '?' };
    });
    const runs = s.service!.logLines().slice(logBefore).filter((l) => typeof l.result === 'string');
    const writes = s.serviceChanges.slice(changesBefore).filter((c) => c.type === 'MODIFIED').length;
    const firstSwitch = switches[0]?.atMs;
    const firstHook = hooks[0]?.atMs;
    const r = {
      kind,
      converged,
      writes,
      hookToPatchMs: patchAt !== undefined && firstHook !== undefined ? patchAt - firstHook : undefined,
      switchToPatchMs: patchAt !== undefined && firstSwitch !== undefined ? patchAt - firstSwitch : undefined,
    };
    results.push(r);

    const rel = (at: number): string => `+${(at - t0).toFixed(1).padStart(8)} ms`;
    say(`\nfailover ${i}/${failovers} (${kind}): ${s.dnsName(before).split('.')[0]} -> ${s.dnsName(after).split('.')[0]}`);
    const timeline: [number, string][] = [[t0, kind === 'SENTINEL FAILOVER' ? 'SENTINEL FAILOVER sent' : `SIGKILL ${killed?.name}`]];
    for (const sw of switches) timeline.push([sw.atMs, `+switch-master on ${sw.sentinel}`]);
    for (const h of hooks) timeline.push([h.atMs, `hook invoked (${h.role})`]);
    for (const run of runs) {
      const atEnd = run.time as number;
      const votes = (run.votes as { master?: string }[]) ?? [];
      const agreeing = votes.filter((v) => v.master && v.master === run.master).length;
      timeline.push([atEnd, `reconcile (${run.reason}) ${run.result}: ${agreeing}/${votes.length} sentinels, ROLE ${run.role ?? '-'}${run.result === 'switched' ? ', Service patched' : ''} (${run.duration_ms} ms)`]);
    }
    if (patchAt !== undefined) timeline.push([patchAt, `Service change seen by API watch: ${s.dnsName(after)}`]);
    for (const [at, text] of timeline.sort((a, b) => a[0] - b[0])) say(`  ${rel(at)}  ${text}`);
    say(`  => hook->patch ${fmt(r.hookToPatchMs)}, +switch-master->patch ${fmt(r.switchToPatchMs)}, writes ${writes}`);

    if (killed) await s.redis.startNode(killed);
    await s.redis.waitStable(60_000);
  }
} finally {
  await stack?.stop();
  await cluster.stop();
}
rmSync(join(dir, 'k8s', 'etcd-data'), { recursive: true, force: true });

const hookTimes = results.flatMap((r) => (r.hookToPatchMs === undefined ? [] : [r.hookToPatchMs]));
const switchTimes = results.flatMap((r) => (r.switchToPatchMs === undefined ? [] : [r.switchToPatchMs]));
const summary = {
  failovers,
  converged: results.filter((r) => r.converged).length,
  writes: results.reduce((n, r) => n + r.writes, 0),
  hookToPatchMs: { p50: round(percentile(hookTimes, 50)), p99: round(percentile(hookTimes, 99)) },
  switchToPatchMs: { p50: round(percentile(switchTimes, 50)), p99: round(percentile(switchTimes, 99)) },
};
say(`\nsummary: ${summary.converged}/${failovers} converged, ${summary.writes} writes; hook->patch p50 ${fmt(summary.hookToPatchMs.p50)} p99 ${fmt(summary.hookToPatchMs.p99)}; +switch-master->patch p50 ${fmt(summary.switchToPatchMs.p50)} p99 ${fmt(summary.switchToPatchMs.p99)}`);
if (values.json) say(JSON.stringify(summary));
process.exit(summary.converged === failovers ? 0 : 1);

function readLines(file: string): string[] {
  try {
    return readFileSync(file, 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
}
function fmt(ms: number | null | undefined): string {
  return ms === undefined || ms === null ? "n/a" : `${ms.toFixed(1)} ms`;
}
function round(x: number | undefined): number | null {
  return x === undefined ? null : Math.round(x * 10) / 10;
}
