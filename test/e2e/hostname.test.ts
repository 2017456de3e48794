// Sentinel as the Bitnami chart runs it by default (`sentinel resolve-hostnames yes`,
// `sentinel announce-hostnames yes`, every sentinel and replica announcing its pod's DNS name),
// end to end inside the sandbox namespace: real Sentinel resolves the names through the real
// CoreDNS, runs the real hook with names, and sentinel-switch writes the name it was given.
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveName, testCluster } from '../harness/k8s.ts';
import { type Stack, startStack } from '../harness/stack.ts';
import { repoRoot } from '../harness/switch.ts';

const sandbox = (name: string): string => mkdtempSync(join(repoRoot, '.sandbox', `${name}-`));
const nowMs = () => performance.timeOrigin + performance.now();

interface HookLine { role: string; from: { host: string; port: number }; to: { host: string; port: number }; time: number }
const hookEvents = (stack: Stack, since: number): HookLine[] =>
  stack.service!.logLines().filter((l) => l.msg === 'hook event' && (l.time as number) > since) as unknown as HookLine[];
const writesSince = (stack: Stack, since: number): number => stack.serviceChanges.filter((c) => c.type === 'MODIFIED' && c.atMs > since).length;

describe('Sentinel announcing hostnames, through the cluster DNS', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ dir: sandbox('e2e-hostname'), cluster: await testCluster(), redis: { announce: 'hostname' } });
  });
  afterAll(async () => stack?.stop());

  it('Sentinel names the master by its pod DNS name, which CoreDNS resolves to the pod', async () => {
    const master = await stack.redis.masterByMajority();
    const node = stack.redis.nodes.find((n) => n.announced === master.host)!;
    expect(master.host).toBe(`${node.name}.redis-headless.${stack.namespace}.svc.cluster.local`);
    expect(await resolveName(master.host)).toEqual([node.host]);
    expect((await stack.readService()).externalName).toBe(master.host);
  });

  it('SENTINEL FAILOVER: the hook gets names, and the Service is written once with exactly that name', async () => {
    const before = await stack.redis.masterByMajority();
    const watcher = stack.redis.watchSwitches();
    try {
      await watcher.ready();
      const since = nowMs();
      await stack.redis.failover();
      const sw = await watcher.waitForNext(20_000);
      // +switch-master itself carries names.
      expect(sw.from.host).toBe(before.host);
      expect(sw.to.host).toMatch(new RegExp(`^redis-node-\\d\\.redis-headless\\.${stack.namespace}\\.svc\\.cluster\\.local$`));
      expect(sw.to.host).not.toBe(before.host);
      await stack.waitForTarget(sw.to.host, 15_000);
      // Every sentinel's hook ran, with names as arguments (the service logs what it received).
      await expect.poll(() => hookEvents(stack, since).length, { timeout: 15_000 }).toBe(3);
      const hooks = hookEvents(stack, since);
      expect(hooks.map((h) => h.role).sort()).toEqual(['leader', 'observer', 'observer']);
      for (const h of hooks) {
        expect(h.from.host).toBe(before.host);
        expect(h.to.host).toBe(sw.to.host);
      }
      await new Promise((r) => setTimeout(r, 1_500)); // past the follow-up runs
      expect(writesSince(stack, since)).toBe(1);
      const svc = await stack.readService();
      expect(svc.externalName).toBe(sw.to.host);
      expect(svc.annotations['sentinel-switch.io/previous-target']).toBe(before.host);
      // The new target resolves, through the Service, to the promoted node's pod IP.
      const promoted = stack.redis.nodes.find((n) => n.announced === sw.to.host)!;
      expect(await stack.redis.roleOf(promoted)).toBe('master');
      await expect.poll(() => resolveName(`redis-master.${stack.namespace}.svc.cluster.local`), { timeout: 10_000 }).toEqual([promoted.host]);
    } finally {
      await watcher.close();
    }
  });
});
