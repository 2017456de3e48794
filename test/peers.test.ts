// The bench's peers (scripts/peers/) really work: after one failover each moves its own object,
// seen through the API watch the bench times them with.
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ObjectWatch, type Peers, peerHook, SEED_SERVICE, startPeers } from '../scripts/peers/peers.ts';
import { testCluster } from './harness/k8s.ts';
import { type Stack, startStack } from './harness/stack.ts';
import { repoRoot } from './harness/switch.ts';

describe('bench peers: seed-poll-5s and bitnami-label-1s', () => {
  let stack: Stack;
  let watch: ObjectWatch;
  let peers: Peers;
  beforeAll(async () => {
    const dir = mkdtempSync(join(repoRoot, '.sandbox', 'peers-'));
    const cluster = await testCluster();
    const hook = peerHook(dir);
    stack = await startStack({ dir, cluster, hookScript: hook.hookScript, hookEnv: hook.hookEnv });
    watch = await ObjectWatch.start(stack.adminKubeconfig, stack.namespace);
    peers = await startPeers({ stack, cluster, dir: join(dir, 'peers'), bitnamiDir: hook.bitnamiDir, maxSeconds: 300 });
  });
  afterAll(async () => {
    await peers?.stop();
    watch?.stop();
    await stack?.stop();
  });

  it('one SENTINEL FAILOVER: Service seed-master and the isMaster labels follow the new master', async () => {
    const before = await stack.redis.masterByMajority();
    const since = performance.timeOrigin + performance.now();
    await stack.redis.failover();
    await expect.poll(async () => (await stack.redis.masterByMajority()).host, { timeout: 20_000 }).not.toBe(before.host);
    const after = await stack.redis.masterByMajority();
    const node = (host: string) => stack.redis.nodes.find((n) => n.host === host)!;
    const [seed, isMaster, notMaster] = await Promise.all([
      watch.waitFor('service', SEED_SERVICE, (e) => e.externalName === stack.dnsName(after), since, 15_000),
      watch.waitFor('pod', node(after.host).name, (e) => e.isMaster === 'true', since, 10_000),
      watch.waitFor('pod', node(before.host).name, (e) => e.isMaster === 'false', since, 10_000),
    ]);
    expect(seed?.type).toBe('MODIFIED');
    expect(isMaster?.type).toBe('MODIFIED');
    expect(notMaster?.type).toBe('MODIFIED');
    // sentinel-switch still gets its hook through the combined wrapper.
    await stack.waitForTarget(stack.dnsName(after), 15_000);
  });

  it('stop() ends every peer loop', async () => {
    await peers.stop();
    expect(peers.processes.map((p) => p.pid())).toEqual(peers.processes.map(() => undefined));
  });
});
