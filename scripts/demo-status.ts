// npm run demo:status [-- --json]
// `sentinel-switch status` on the demo sandbox (1 master + 2 replicas + 3 sentinels running our
// hook, the real kube-apiserver, sentinel-switch as its own process), run as in the pod
// (`kubectl exec deploy/sentinel-switch -- sentinel-switch status`: everything from the config):
// at rest; with the Service changed by hand to name a replica (drift) and after the reconcile
// that repairs it; right after a SIGKILL of the master, while Sentinel has not failed over yet;
// and after the failover. Prints each table with its exit code, then times 30 GET /v1/status
// and 10 runs of the command (a node process each); with --json the last line is a JSON summary
// of those times. Stops everything it started.
import { execFile } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { kubectl, startCluster } from '../test/harness/k8s.ts';
import { type Stack, startStack, TARGET } from '../test/harness/stack.ts';
import { repoRoot } from '../test/harness/switch.ts';
import { stopOnSignals } from './lib/signals.ts';
import { percentile } from './lib/stats.ts';

const { values } = parseArgs({ options: { json: { type: 'boolean', default: false } } });

const dir = join(repoRoot, '.sandbox', `demo-status-${process.pid}`);
mkdirSync(dir, { recursive: true });
const say = (s: string): void => void process.stdout.write(`${s}\n`);

const cluster = await startCluster({ dir: join(dir, 'k8s'), ownerPid: process.pid });
let stack: Stack | undefined;
stopOnSignals(async () => {
  await stack?.stop();
  await cluster.stop();
});

let failed = false;
let summary: Record<string, unknown> | undefined;
try {
  // No timer run: the drift made by hand stays until the reconcile below.
  stack = await startStack({ dir, cluster, config: { reconcileIntervalSeconds: 3600 } });
  const s = stack;
  const status = async (title: string, expected: number): Promise<void> => {
    const r = await new Promise<{ code: number; out: string }>((resolve) => {
      execFile(process.execPath, [join(repoRoot, 'bin/sentinel-switch'), 'status'], { env: { PATH: process.env.PATH ?? '', SENTINEL_SWITCH_CONFIG: s.service!.configPath } }, (err, stdout, stderr) => {
        resolve({ code: err ? Number((err as { code?: number }).code ?? -1) : 0, out: stdout + stderr });
      });
    });
    say(`\n=== ${title}\n$ sentinel-switch status\n${r.out.trimEnd()}\n(exit ${r.code})`);
    if (r.code !== expected) {
      failed = true;
      say(`!!! expected exit ${expected}`);
    }
  };

  await status('at rest', 0);

  const master = await s.redis.masterByMajority();
  const replica = s.redis.nodes.find((n) => n.host !== master.host)!;
  await kubectl(s.adminKubeconfig, ['patch', 'service', TARGET, '-n', s.namespace, '--type=merge', '-p', JSON.stringify({ spec: { externalName: s.dnsName(replica) } })]);
  await status(`Service ${s.namespace}/${TARGET} changed by hand to name the replica ${replica.name}`, 1);
  await fetch(`${s.service!.url}/v1/reconcile`, { method: 'POST', headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/json' }, body: '{}' });
  await status('after POST /v1/reconcile', 0);

  const killed = await s.redis.killMaster();
  await status(`right after SIGKILL of the master ${killed.name} (Sentinel has not failed over yet)`, 1);
  await new Promise<void>((resolve, reject) => {
    const deadline = Date.now() + 30_000;
    const poll = async (): Promise<void> => {
      const now = await s.redis.masterByMajority().catch(() => undefined);
      if (now && now.host !== killed.host) return resolve();
      if (Date.now() > deadline) return reject(new Error('no failover within 30 s'));
      setTimeout(() => void poll(), 100);
    };
    void poll();
  });
  const after = await s.redis.masterByMajority();
  await s.waitForTarget(s.dnsName(after), 20_000);
  await s.redis.startNode(killed);
  await s.redis.waitStable(60_000);
  await status('after the failover (the killed node back as a replica)', 0);

  // How long one look takes: the route (all questions of one round) and the whole command.
  const routeMs: number[] = [];
  const serverMs: number[] = [];
  for (let i = 0; i < 30; i++) {
    const t0 = performance.now();
    const res = await fetch(`${s.service!.url}/v1/status`, { headers: { authorization: `Bearer ${s.token}` } });
    const body = (await res.json()) as { masterSets: { durationMs: number }[] };
    routeMs.push(performance.now() - t0);
    serverMs.push(body.masterSets[0]!.durationMs);
  }
  const cliMs: number[] = [];
  for (let i = 0; i < 10; i++) {
    const t0 = performance.now();
    await new Promise<void>((resolve) => execFile(process.execPath, [join(repoRoot, 'bin/sentinel-switch'), 'status', '--json'], { env: { PATH: process.env.PATH ?? '', SENTINEL_SWITCH_CONFIG: s.service!.configPath } }, () => resolve()));
    cliMs.push(performance.now() - t0);
  }
  const p = (xs: number[]) => ({ p50: round(percentile(xs, 50)), p99: round(percentile(xs, 99)) });
  summary = { masterSets: 1, nodes: s.redis.nodes.length, sentinels: s.redis.sentinels.length, statusRouteMs: p(routeMs), questionsMs: p(serverMs), commandMs: p(cliMs) };
  say(`\nGET /v1/status x30: p50 ${fmt(percentile(routeMs, 50))}, p99 ${fmt(percentile(routeMs, 99))} (questions of one master set: p50 ${fmt(percentile(serverMs, 50))}); sentinel-switch status --json x10 (a node process each): p50 ${fmt(percentile(cliMs, 50))}, p99 ${fmt(percentile(cliMs, 99))}`);
} finally {
  await stack?.stop();
  await cluster.stop();
}
rmSync(join(dir, 'k8s', 'etcd-data'), { recursive: true, force: true });
if (values.json && summary) say(JSON.stringify(summary));
process.exit(failed ? 1 : 0);

function round(x: number | undefined): number | null {
  return x === undefined ? null : Math.round(x * 10) / 10;
}
function fmt(ms: number | undefined): string {
  return ms === undefined ? 'n/a' : `${ms.toFixed(1)} ms`;
}
