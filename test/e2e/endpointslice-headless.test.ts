// target.kind endpointSlice, headless variant (the chart's target.headless: a selector-less Service
// with clusterIP: None), inside the sandbox namespace: no cluster IP and no kube-proxy; the
// sandbox's CoreDNS answers the Service's name with the address of the EndpointSlice that
// sentinel-switch writes. Real Sentinel, the real hook, the ServiceAccount token of deploy/rbac.yaml.
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitNewAck } from '../../scripts/lib/app-view.ts';
import { type AppWriter, startAppWriter } from '../harness/app-client.ts';
import { kubectl, resolveName, testCluster } from '../harness/k8s.ts';
import { type Stack, startStack, TARGET } from '../harness/stack.ts';
import { repoRoot } from '../harness/switch.ts';

const nowMs = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sliceWritesSince = (s: Stack, since: number): number => s.sliceChanges.filter((c) => c.type === 'MODIFIED' && c.atMs > since).length;

/**
 * Asks the system resolver (-> CoreDNS) for `name` every 20 ms until stopped; every answer that is
 * not exactly one address is kept, so a test can say DNS never gave two masters (or none) at once.
 */
function sampleAnswers(name: string): { stop(): Promise<{ answers: number; odd: string[][] }> } {
  let running = true;
  let answers = 0;
  const odd: string[][] = [];
  const loop = (async () => {
    while (running) {
      const got = await resolveName(name);
      answers++;
      if (got.length !== 1) odd.push(got);
      await sleep(20);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { answers, odd };
    },
  };
}

describe('target.kind endpointSlice, headless Service: CoreDNS answers exactly the master pod IP, and the new one after a failover', () => {
  let stack: Stack;
  let app: AppWriter | undefined;
  beforeAll(async () => {
    stack = await startStack({ dir: mkdtempSync(join(repoRoot, '.sandbox', 'e2e-es-headless-')), cluster: await testCluster(), target: 'endpointSlice', headless: true });
  });
  afterAll(async () => {
    await app?.stop();
    await stack?.stop();
  });

  it('the Service has no cluster IP, and its name resolves to exactly the master pod IP', async () => {
    const { stdout } = await kubectl(stack.adminKubeconfig, ['get', 'service', TARGET, '-n', stack.namespace, '-o', 'jsonpath={.spec.clusterIP}|{.spec.selector}']);
    expect(stdout).toBe('None|');
    const master = await stack.redis.masterByMajority();
    await expect.poll(() => resolveName(stack.stableName), { timeout: 10_000 }).toEqual([master.host]);
  });

  it('SENTINEL FAILOVER: one write of the slice; the name then resolves to exactly the new master pod IP, never to two addresses, and an app dialling the name reaches it', async () => {
    const before = await stack.redis.masterByMajority();
    app = startAppWriter({ host: stack.stableName, port: before.port, password: stack.redis.password, rate: 50, keyPrefix: `app:es-headless:${process.pid}` });
    await expect.poll(() => app!.records.some((r) => r.ackAt !== undefined), { timeout: 15_000 }).toBe(true);
    const sampler = sampleAnswers(stack.stableName);
    const since = nowMs();
    await stack.redis.failover();
    await expect.poll(async () => (await stack.redis.masterByMajority()).host, { timeout: 20_000 }).not.toBe(before.host);
    const after = await stack.redis.masterByMajority();
    const moved = await stack.waitForSlice(after.host, 15_000);
    await expect.poll(() => resolveName(stack.stableName), { timeout: 10_000 }).toEqual([after.host]);
    await sleep(1_500); // past every hook call and the follow-up runs
    const { answers, odd } = await sampler.stop();
    expect(answers).toBeGreaterThan(10);
    expect(odd, 'answers with other than one address while the master moved').toEqual([]);
    expect(sliceWritesSince(stack, since)).toBe(1);
    expect((await stack.readEndpointSlice()).addresses).toEqual([after.host]);
    // The pod IP itself, not a cluster IP: the app's connection goes to the new master's address.
    // Counted from the slice's write (after the promotion): the old master's acks from then on
    // never reach the new one.
    const hit = await waitNewAck({ writer: app, switchAtMs: moved.atMs, master: { ...after, password: stack.redis.password }, deadlineMs: nowMs() + 20_000 });
    expect(hit, 'a write acknowledged by the new master, dialled by the Service name').toBeDefined();
    expect(hit!.addr).toBe(after.host);
    await app.stop();
    app = undefined;
    await stack.redis.waitStable(30_000);
  });

  it('SIGKILL of the master: the name resolves to exactly the promoted replica, after one write', async () => {
    const since = nowMs();
    const killed = await stack.redis.killMaster();
    await expect.poll(async () => (await stack.redis.masterByMajority()).host, { timeout: 30_000 }).not.toBe(killed.host);
    const after = await stack.redis.masterByMajority();
    await stack.waitForSlice(after.host, 20_000);
    await expect.poll(() => resolveName(stack.stableName), { timeout: 10_000 }).toEqual([after.host]);
    await sleep(500);
    expect(sliceWritesSince(stack, since)).toBe(1);
    await stack.redis.startNode(killed);
    await stack.redis.waitStable(30_000);
    // The restarted old master is a replica now: the name stays on the promoted one.
    expect(await resolveName(stack.stableName)).toEqual([after.host]);
  });
});
