// The chaos run, short: 4 seeded faults (the master SIGSTOPped into a failover and resumed as a
// stale master, sentinel-switch SIGKILLed mid-failover, a sentinel down during a failover, a
// manual failover) on the real sandbox, with 2 extra racing replicas on one of them, judged by
// the independent checker of `npm run chaos`. The API-server fault is left to `npm run chaos`
// (it stops the API server that every test file shares, and takes ~20 s).
// Plus the schedule's determinism and the wrong-write rule on hand-made histories (pure logic).
// The stale write the chaos run found (fixed in 83ca3f9) needs a replica slowed on its way to the
// API server to show; `npm run chaos` does that through scripts/lib/chaos-proxy.ts.
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { classifyWrite } from '../scripts/lib/chaos-checker.ts';
import { runChaos } from '../scripts/lib/chaos-run.ts';
import { makeSchedule } from '../scripts/lib/chaos-schedule.ts';
import { testCluster } from './harness/k8s.ts';
import { type Stack, startStack } from './harness/stack.ts';
import { repoRoot } from './harness/switch.ts';

const SEED = 2;
const KINDS = ['pause-master', 'switch-killed', 'sentinel-down', 'failover'] as const;

describe('the chaos schedule', () => {
  it('is the same for the same seed, covers every kind in its first round, and races replicas at least once', () => {
    const a = makeSchedule(SEED, 4, { kinds: KINDS });
    expect(makeSchedule(SEED, 4, { kinds: KINDS })).toEqual(a);
    expect(makeSchedule(SEED + 1, 4, { kinds: KINDS })).not.toEqual(a);
    expect(new Set(a.map((f) => f.kind))).toEqual(new Set(KINDS));
    expect(a.some((f) => f.replicas)).toBe(true);
    const pause = a.find((f) => f.kind === 'pause-master')!;
    expect(pause.pauseMs).toBeGreaterThanOrEqual(3_000); // down-after-milliseconds is 1000
  });
});

describe('the wrong-write rule', () => {
  // Epoch 1: node-0 (first seen at t=0), 2: node-1 (t=10 000), 3: node-2 (t=20 000).
  const epochs = new Map([
    [1, { node: 'node-0', firstSeen: 0 }],
    [2, { node: 'node-1', firstSeen: 10_000 }],
    [3, { node: 'node-2', firstSeen: 20_000 }],
  ]);
  const base = { epochs, raceGraceMs: 6_000, from: 'x', to: 'x' };

  it('ok: the written node is the verified master right after the write', () => {
    expect(classifyWrite({ ...base, node: 'node-2', commitMs: 20_050, truth: { master: 'node-2', epoch: 3 }, serviceEpoch: 2 })).toMatchObject({ verdict: 'ok', epoch: 3 });
  });
  it('raced: the previous master, written just after a failover the writer could not have seen', () => {
    expect(classifyWrite({ ...base, node: 'node-1', commitMs: 20_030, truth: { master: 'node-2', epoch: 3 }, serviceEpoch: 1 })).toMatchObject({ verdict: 'raced', epoch: 2 });
  });
  it('wrong: the previous master, written long after the failover', () => {
    expect(classifyWrite({ ...base, node: 'node-1', commitMs: 27_000, truth: { master: 'node-2', epoch: 3 }, serviceEpoch: 1 }).verdict).toBe('wrong');
  });
  it('wrong: an older target written over a newer one, however soon after the failover (stale overwrite)', () => {
    const v = classifyWrite({ ...base, node: 'node-1', commitMs: 20_030, truth: { master: 'node-2', epoch: 3 }, serviceEpoch: 3 });
    expect(v.verdict).toBe('wrong');
    expect(v.why).toMatch(/stale overwrite/);
  });
  it('wrong: a node that was never the master, or a name that is no node', () => {
    expect(classifyWrite({ ...base, node: 'node-9', commitMs: 20_030, truth: { master: 'node-2', epoch: 3 }, serviceEpoch: 2 }).verdict).toBe('wrong');
    expect(classifyWrite({ ...base, node: undefined, commitMs: 20_030, truth: { master: 'node-2', epoch: 3 }, serviceEpoch: 2 }).verdict).toBe('wrong');
  });
});

describe('chaos, short', () => {
  let stack: Stack | undefined;
  afterAll(async () => {
    await stack?.stop();
  });

  it(`seed ${SEED}: every fault converges within one reconcile interval + slack of being healthy again, and no write is wrong`, async () => {
    const schedule = makeSchedule(SEED, 4, { kinds: KINDS });
    stack = await startStack({
      dir: mkdtempSync(join(repoRoot, '.sandbox', 'chaos-test-')),
      cluster: await testCluster(),
      config: { reconcileIntervalSeconds: 5, logLevel: 'info' },
    });
    const lines: string[] = [];
    const report = await runChaos({
      stack,
      schedule,
      reconcileIntervalSeconds: 5,
      say: (l) => {
        lines.push(l);
        console.log(l);
      },
    });
    const story = `\n${lines.join('\n')}`;
    expect(report.faults, story).toBe(4);
    expect(report.shouldConverge, `every fault must end healthy again:${story}`).toBe(4);
    expect(report.converged, story).toBe(report.shouldConverge);
    expect(report.wrongWrites, story).toBe(0);
    expect(report.unjudgedWrites, story).toBe(0);
    expect(report.anomalies, story).toEqual([]);
    // Each fault of this schedule moves the master.
    expect(report.failovers, story).toBe(4);
  }, 360_000);
});
