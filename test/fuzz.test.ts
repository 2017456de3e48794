// Hostile input against one real sentinel-switch (startStack: real Redis + 3 Sentinels, a real
// kube-apiserver, the service as its own process), a few hundred cases per run; the long version
// is `npm run fuzz -- --runs 10000` (scripts/fuzz.ts), with the very same properties
// (test/fuzz/properties.ts). A failure prints fast-check's seed and path: replay it with
// `npm run fuzz -- --seed S`.
import { mkdirSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
} from './fuzz/properties.ts';
import { testCluster } from './harness/k8s.ts';
import { type Stack, startStack } from './harness/stack.ts';
import { repoRoot } from './harness/switch.ts';

/** HTTP cases per run, shared out over the properties by weight. */
const HTTP_RUNS = 200;
/** Cases per configuration property (pure, fast). */
const CONFIG_RUNS = 50;

mkdirSync(join(repoRoot, '.sandbox'), { recursive: true });
const dir = mkdtempSync(join(repoRoot, '.sandbox', 'fuzz-test-'));
const stats = new FuzzStats();

describe('hostile HTTP input: a 4xx or the documented 2xx, never a 5xx, a crash or a write', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ dir, cluster: await testCluster(), config: { logLevel: 'info' } });
  });
  afterAll(async () => {
    if (stack) await closeFuzzContext(stack);
    await stack?.stop();
    for (const line of stats.table()) console.log(`fuzz ${line}`);
  });

  const runs = shareRuns(HTTP_RUNS);
  for (const p of HTTP_PROPERTIES) {
    it(`${p.name} (${runs.get(p.name)} cases)`, async () => {
      await fuzzHttpProperty(p.name, { stack, numRuns: runs.get(p.name)!, stats });
    });
  }

  it(`mixed concurrent bursts (${runs.get('mixed-bursts')} bursts of 5..40)`, async () => {
    await fuzzMixedBursts({ stack, numRuns: runs.get('mixed-bursts')!, stats });
  });

  it('200 concurrent identical events naming the true master: all 200, a couple of reconcile runs, no write', async () => {
    await fuzzIdenticalBurst({ stack, stats, times: 1 });
    expect(stats.burstRuns[0]).toBeLessThanOrEqual(20);
  });

  it('the token file ends in a newline (the harness writes it so) and "Bearer <token>" is accepted', async () => {
    const res = await fetch(`${stack.service!.url}/v1/reconcile`, { method: 'POST', headers: { authorization: `Bearer ${stack.token}`, 'content-type': 'application/json' }, body: '{}' });
    expect(res.status).toBe(200);
  });

  it('afterwards: alive, /healthz and /readyz 200, no error logged, not one Service write', async () => {
    const { writes } = await finalChecks(stack);
    expect(writes).toBe(0);
    expect(stack.serviceChanges.filter((c) => c.type === 'MODIFIED')).toEqual([]);
  });
});

describe('hostile configuration: a Config or a ConfigError naming the field, never another exception', () => {
  const opts = { numRuns: CONFIG_RUNS, stats, dir: join(dir, 'config') };
  it('random values given to parseConfig', () => fuzzConfigObjects(opts));
  it('valid configurations parse; one changed field is refused naming that field', () => fuzzConfigMutations(opts));
  it('random files given to loadConfigFile', () => fuzzConfigFiles(opts));
  it('token files: one trailing newline (LF or CRLF) is not part of the token', () => fuzzTokenFiles(opts));
});
