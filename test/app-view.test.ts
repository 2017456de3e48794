// The pieces of `npm run bench:app` (and of the chaos run's lostAcked) against real components: an
// app writer that knows only the stable name, one SENTINEL FAILOVER, and the judge of its writes
// against what the final master holds. What the failover costs is measured by the benchmark, not
// asserted here; what is asserted is what must hold whatever fencing does: nothing acknowledged
// before the failover began is lost, every write has an outcome, and the writer reaches the new
// master through the name.
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { externalNameResolver, judgeWindow, recordsIn, stableName, waitNewAck } from '../scripts/lib/app-view.ts';
import { type AppWriter, presentKeys, startAppWriter } from './harness/app-client.ts';
import { testCluster } from './harness/k8s.ts';
import { type Stack, startStack, TARGET } from './harness/stack.ts';
import { repoRoot } from './harness/switch.ts';

const now = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('app view: a writer on the stable name through one SENTINEL FAILOVER', () => {
  let stack: Stack;
  let writer: AppWriter | undefined;
  let clusterDns = false;
  beforeAll(async () => {
    const cluster = await testCluster();
    clusterDns = cluster.dataPlane;
    stack = await startStack({ dir: mkdtempSync(join(repoRoot, '.sandbox', 'app-view-')), cluster, config: { logLevel: 'info' } });
  });
  afterAll(async () => {
    await writer?.stop();
    await stack?.stop();
  });

  it('presentKeys finds exactly the keys the node holds', async () => {
    const m = await stack.redis.masterByMajority();
    const node = { ...m, password: stack.redis.password };
    const w = startAppWriter({ host: m.host, port: m.port, password: stack.redis.password, rate: 200, keyPrefix: `pk:${process.pid}`, resolve: async (h) => h });
    await sleep(500);
    await w.stop();
    const acked = w.records.filter((r) => r.ackAt !== undefined).map((r) => r.key);
    expect(acked.length).toBeGreaterThan(20);
    const present = await presentKeys(node, [...acked, `pk:${process.pid}:never-written`]);
    expect([...present].sort()).toEqual([...acked].sort());
  });

  it('nothing acknowledged before the failover is lost; the writer reaches the new master through the name; every write is judged once', async () => {
    const redis = stack.redis;
    const name = stableName(TARGET, stack.namespace);
    const current = (): string | undefined => stack.serviceChanges.findLast((c) => c.type !== 'DELETED')?.externalName;
    writer = startAppWriter({
      host: name, port: redis.nodes[0]!.port, password: redis.password, rate: 100, keyPrefix: `app-view:${process.pid}`,
      // The cluster's DNS where the sandbox has one (its network namespace), else the Service's current target.
      resolve: clusterDns ? undefined : externalNameResolver({ name, nodes: redis.nodes, dnsName: stack.dnsName, current }),
    });
    await sleep(1_000);
    const before = await redis.masterByMajority();
    const watcher = redis.watchSwitches();
    await watcher.ready();
    const windowStart = now() - 3_000;
    const tFailover = now();
    await redis.failover();
    const first = await watcher.waitForNext(30_000);
    await watcher.close();
    expect(first.to.host).not.toBe(before.host);
    await redis.waitStable(60_000);
    const final = await redis.masterByMajority();
    expect(final.host).toBe(first.to.host);
    const master = { ...final, password: redis.password };
    const reached = await waitNewAck({ writer, switchAtMs: first.atMs, master, deadlineMs: first.atMs + 30_000 });
    expect(reached).toBeDefined();
    // The window reaches past that write, and all its writes have their outcome (command timeout 2 s).
    await sleep(Math.max(0, reached!.sentAt + 2_600 - now()));
    const windowEnd = now() - 2_500;

    const v = await judgeWindow({ writer, fromMs: windowStart, toMs: windowEnd, master, switchAtMs: first.atMs });
    const window = recordsIn(writer.records, windowStart, windowEnd);
    expect(v.sent).toBe(window.length);
    expect(v.sent).toBeGreaterThan(200); // 3 s before the failover at least, at 100 writes/s
    // Every write has an outcome: acknowledged, or an error the client saw.
    expect(window.every((r) => r.ackAt !== undefined || r.error !== undefined)).toBe(true);
    expect(v.acked + Object.values(v.errors).reduce((a, b) => a + b, 0)).toBe(v.sent);
    expect(v.firstNewAckMs).toBeDefined();
    expect(v.firstNewAckMs!).toBeGreaterThanOrEqual(0);
    expect(v.lostAcked).toBeLessThanOrEqual(v.acked);
    // Replication is asynchronous, but writes acknowledged well before the failover began are on every replica.
    const present = await presentKeys(master, window.filter((r) => r.ackAt !== undefined && r.ackAt < tFailover - 500).map((r) => r.key));
    expect(window.filter((r) => r.ackAt !== undefined && r.ackAt < tFailover - 500 && !present.has(r.key))).toEqual([]);
    console.log(`app view, one SENTINEL FAILOVER at 100 writes/s: ${v.acked}/${v.sent} acked, lost acked ${v.lostAcked}, first new ack ${v.firstNewAckMs?.toFixed(0)} ms after +switch-master, errors ${JSON.stringify(v.errors)}`);
  });
});
