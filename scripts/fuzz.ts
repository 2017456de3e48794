// npm run fuzz [-- --runs N] [-- --seed S] [-- --json]
// The long version of test/fuzz.test.ts: the same properties (test/fuzz/properties.ts) against ONE
// real sentinel-switch on a sandbox of its own (kube-apiserver in .sandbox/fuzz-<pid>, Redis + 3
// Sentinels, the service as a process). N HTTP cases are shared out over the properties by weight
// (plus bursts of concurrent cases and 200-event identical bursts); each configuration property
// runs N cases too (they are pure and fast). Prints the counts per property and status code, then
// a summary line (with --json, a JSON line last). Exit 0 if every property held, else 1.
// Stops everything it started, also on SIGINT/SIGTERM.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  closeFuzzContext,
  finalChecks,
  FuzzStats,
  fuzzConfigFiles,
  fuzzConfigMutations,
  fuzzConfigObjects,
  fuzzHttpProperty,
  fuzzIdenticalBurst,
  fuzzMixedBursts,
  fuzzTokenFiles,
  HTTP_PROPERTIES,
  shareRuns,
} from '../test/fuzz/properties.ts';
import { type Cluster, startCluster } from '../test/harness/k8s.ts';
import { type Stack, startStack } from '../test/harness/stack.ts';
import { repoRoot } from '../test/harness/switch.ts';
import { stopOnSignals } from './lib/signals.ts';

// `dev.sh run scripts/fuzz.ts -- --runs N` passes the "--" on; `npm run fuzz -- --runs N` does not.
const argv = process.argv.slice(2);
const { values } = parseArgs({
  args: argv[0] === '--' ? argv.slice(1) : argv,
  options: { runs: { type: 'string', default: '1000' }, seed: { type: 'string' }, json: { type: 'boolean', default: false } },
});
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 10 || runs > 1_000_000) throw new Error('--runs must be an integer 10..1000000');
const seed = values.seed === undefined ? (Date.now() ^ Math.floor(Math.random() * 0x7fffffff)) | 0 : Number(values.seed);
if (!Number.isInteger(seed)) throw new Error('--seed must be an integer');

const say = (s: string): void => void process.stdout.write(`${s}\n`);
const dir = join(repoRoot, '.sandbox', `fuzz-${process.pid}`);
mkdirSync(dir, { recursive: true });
const stats = new FuzzStats();
const failures: { property: string; error: string }[] = [];
const started = performance.now();

let cluster: Cluster | undefined;
let stack: Stack | undefined;
let stopping: Promise<void> | undefined;
const stopAll = (): Promise<void> =>
  (stopping ??= (async () => {
    if (stack) await closeFuzzContext(stack).catch(() => undefined);
    await stack?.stop().catch((e: unknown) => say(`stopping the stack: ${String(e)}`));
    await cluster?.stop().catch((e: unknown) => say(`stopping the cluster: ${String(e)}`));
    rmSync(join(dir, 'k8s', 'etcd-data'), { recursive: true, force: true });
  })());
stopOnSignals(stopAll);

async function step(property: string, n: number, run: () => Promise<void>): Promise<void> {
  const t = performance.now();
  try {
    await run();
    say(`  ${property.padEnd(18)} ${String(n).padStart(7)} cases  ok      ${((performance.now() - t) / 1000).toFixed(1)} s`);
  } catch (err) {
    const cause = (err as Error).cause;
    const error = (err as Error).message + (cause instanceof Error ? `\nCaused by: ${cause.message}` : '');
    failures.push({ property, error });
    say(`  ${property.padEnd(18)} ${String(n).padStart(7)} cases  FAILED  ${((performance.now() - t) / 1000).toFixed(1)} s\n${error.split('\n').map((l) => `      ${l}`).join('\n')}`);
  }
}

const identical = Math.max(1, Math.round(runs / 2_000));
say(`sentinel-switch fuzz: ${runs} HTTP cases (+ ${identical} burst(s) of 200 identical events) + ${runs} per configuration property, seed ${seed} (replay: npm run fuzz -- --runs ${runs} --seed ${seed})`);
say(`  sandbox ${dir}`);
let summary: Record<string, unknown> = {};
try {
  cluster = await startCluster({ dir: join(dir, 'k8s'), ownerPid: process.pid });
  stack = await startStack({ dir, cluster, config: { logLevel: 'info' } });
  say(`  sentinel-switch pid ${stack.service!.pid()} at ${stack.service!.url}, Service ${stack.namespace}/redis-master -> ${(await stack.readService()).externalName}`);

  const configOpts = { numRuns: runs, seed, stats, dir: join(dir, 'config') };
  say('configuration:');
  await step('config-objects', runs, () => fuzzConfigObjects(configOpts));
  await step('config-mutations', runs, () => fuzzConfigMutations(configOpts));
  await step('config-files', runs, () => fuzzConfigFiles(configOpts));
  await step('token-files', runs, () => fuzzTokenFiles(configOpts));

  say('HTTP:');
  const shares = shareRuns(runs);
  const s = stack;
  for (const p of HTTP_PROPERTIES) {
    const n = shares.get(p.name)!;
    await step(p.name, n, () => fuzzHttpProperty(p.name, { stack: s, numRuns: n, seed, stats }));
  }
  const bursts = shares.get('mixed-bursts')!;
  await step('mixed-bursts', bursts, () => fuzzMixedBursts({ stack: s, numRuns: bursts, seed, stats }));
  await step('identical-burst', identical, () => fuzzIdenticalBurst({ stack: s, stats, times: identical }));
  let writes: number | undefined;
  await step('final-checks', 1, async () => {
    writes = (await finalChecks(s)).writes;
  });

  const totals = stats.totals();
  say('\ncounts per property and status code (HTTP) or outcome (configuration):');
  for (const line of stats.table()) say(`  ${line}`);
  const http = Object.fromEntries(Object.entries(totals.byStatus).filter(([k]) => /^\d+$|^(closed|timeout|error)$/.test(k)));
  const httpCases = HTTP_PROPERTIES.reduce((a, p) => a + (stats.cases.get(p.name) ?? 0), 0) + (stats.cases.get('mixed-bursts') ?? 0);
  const httpRequests = Object.values(http).reduce((a, b) => a + b, 0);
  const configCases = ['config-objects', 'config-mutations', 'config-files', 'token-files'].reduce((a, p) => a + (stats.cases.get(p) ?? 0), 0);
  summary = {
    ok: failures.length === 0,
    seed,
    runs,
    httpCases,
    httpRequests,
    statuses: http,
    fiveHundreds: Object.entries(http).filter(([k]) => /^5/.test(k)).reduce((a, [, v]) => a + v, 0),
    configCases,
    serviceWrites: writes ?? null,
    identicalBurstReconcileRuns: stats.burstRuns,
    failures: failures.map((f) => f.property),
    seconds: Math.round((performance.now() - started) / 100) / 10,
  };
  say(
    `\nfuzz: ${failures.length === 0 ? 'PASS' : `FAIL (${failures.map((f) => f.property).join(', ')})`}: ${httpCases} HTTP cases + ${stats.burstRuns.length} x 200 identical events (${httpRequests} requests: ${Object.entries(http).map(([k, v]) => `${k}:${v}`).join(' ')}), ` +
      `${configCases} configuration cases; Service writes ${writes ?? 'n/a'}; 200 identical concurrent events -> ${stats.burstRuns.join(', ')} reconcile run(s); ${summary.seconds} s; seed ${seed}`,
  );
} catch (err) {
  failures.push({ property: 'setup', error: (err as Error).stack ?? String(err) });
  say(`fuzz: FAIL: ${(err as Error).stack ?? String(err)}`);
  summary = { ok: false, seed, runs, failures: ['setup'] };
} finally {
  await stopAll();
}
if (values.json) say(JSON.stringify(summary));
process.exit(failures.length === 0 ? 0 : 1);
