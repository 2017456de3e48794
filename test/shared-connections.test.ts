// Many master sets on the same sentinels share their connections: one subscriber and one command
// connection per sentinel for all master sets that connect as the same client, and each master
// set still gets its own events and switches its own Service. Master sets with other credentials
// never share a connection. Everything real: 3 redis-sentinel processes monitoring two Redis
// groups (1 master + 1 replica each), the test run's kube-apiserver, the service in this process.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createService, type Service } from '../src/app.ts';
import { parseConfig } from '../src/config.ts';
import { SentinelEvents } from '../src/sentinel/events.ts';
import { Connections } from '../src/sentinel/connections.ts';
import { SentinelClient } from '../src/sentinel/index.ts';
import { createExternalNameService, createNamespace, createPod, kubectl, testCluster } from './harness/k8s.ts';
import { type SharedSentinels, type SharedSentinel, startSharedSentinels } from './harness/shared-sentinels.ts';
import { resumableWatch, type ResumableWatch } from './harness/watch.ts';
import { pino } from 'pino';

const HEADLESS = 'redis-headless';
const nowMs = (): number => performance.timeOrigin + performance.now();

/** CLIENT LIST of a sentinel, as one record per connection. */
async function clients(redis: SharedSentinels, s: SharedSentinel): Promise<Record<string, string>[]> {
  const text = String(await redis.sentinelCommand(s, ['CLIENT', 'LIST']));
  return text.trim().split('\n').map((line) => Object.fromEntries(line.split(' ').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])));
}
const ours = (list: Record<string, string>[]) => list.filter((c) => c.name === 'sentinel-switch');
const subscribers = (list: Record<string, string>[]) => ours(list).filter((c) => Number(c.sub) > 0 || Number(c.psub) > 0);
const commanders = (list: Record<string, string>[]) => ours(list).filter((c) => Number(c.sub) === 0 && Number(c.psub) === 0);

describe('master sets on the same sentinels share connections (real Sentinel, 2 groups)', () => {
  let redis: SharedSentinels;
  let kubeconfig: string;
  let namespace: string;
  let service: Service;
  let watch: ResumableWatch;
  const writes: { name: string; externalName?: string; atMs: number }[] = [];
  const sets = ['set0', 'set1'];
  const svcName = (set: string) => `redis-${set}`;
  const dnsName = (podName: string) => `${podName}.${HEADLESS}.${namespace}.svc.cluster.local`;

  beforeAll(async () => {
    redis = await startSharedSentinels({ groups: 2, replicas: 1, sentinels: 3 });
    kubeconfig = (await testCluster()).kubeconfigPath;
    namespace = await createNamespace(kubeconfig, 'shared');
    for (const g of redis.groups) {
      for (const n of g.nodes) await createPod(kubeconfig, namespace, { name: n.name, hostname: n.name, subdomain: HEADLESS, podIP: n.host, labels: { app: 'redis' } });
      const master = await redis.masterByMajority(g.masterSet);
      await createExternalNameService(kubeconfig, namespace, svcName(g.masterSet), dnsName(g.nodes.find((n) => n.host === master.host)!.name));
    }
    watch = await resumableWatch(kubeconfig, `/api/v1/namespaces/${namespace}/services`, {}, (type, obj, atMs) => {
      if (type === 'MODIFIED') writes.push({ name: obj.metadata?.name ?? '', externalName: obj.spec?.externalName, atMs });
    });
    process.env.SS_SHARED_TOKEN = 'shared-token-shared';
    process.env.SS_SHARED_PASSWORD = redis.password;
    const config = parseConfig({
      token: { env: 'SS_SHARED_TOKEN' },
      kubernetes: { kubeconfig, timeoutMs: 3_000 },
      logLevel: 'warn',
      masterSets: sets.map((name) => ({
        name,
        sentinels: redis.sentinels.map((s) => `${s.host}:${s.port}`),
        sentinelAuth: { password: { env: 'SS_SHARED_PASSWORD' } },
        redisAuth: { password: { env: 'SS_SHARED_PASSWORD' } },
        target: { namespace, name: svcName(name) },
      })),
    });
    service = await createService(config, { timer: false, events: true, logger: pino({ level: 'warn' }) });
    await service.app.ready();
  });
  afterAll(async () => {
    watch?.stop();
    await service?.close();
    await redis?.stop();
  });

  it('one subscriber connection per sentinel carries both master sets; one command connection per sentinel answers both', async () => {
    const outcomes = await service.reconciler.reconcileAll('manual');
    expect(outcomes.map((o) => o.result)).toEqual(['unchanged', 'unchanged']);
    for (const s of redis.sentinels) {
      const list = await clients(redis, s);
      expect(subscribers(list), `${s.name}: ${JSON.stringify(ours(list))}`).toHaveLength(1);
      expect(commanders(list), `${s.name}: ${JSON.stringify(ours(list))}`).toHaveLength(1);
    }
  });

  async function events(set: string, kind: string): Promise<number> {
    const m = await service.metrics.sentinelEvents.get();
    return m.values.filter((v) => v.labels.master_set === set && v.labels.kind === kind).reduce((n, v) => n + v.value, 0);
  }

  for (const [i, set] of sets.entries()) {
    it(`a failover of ${set} reaches ${set} only and moves its Service once; the other Service is not written`, async () => {
      const other = sets[1 - i]!;
      const group = redis.groups.find((g) => g.masterSet === set)!;
      const before = await redis.masterByMajority(set);
      const otherBefore = await events(other, 'switch-master');
      const since = nowMs();
      await redis.failover(set);
      const to = group.nodes.find((n) => n.host !== before.host)!;
      await expect.poll(() => writes.filter((w) => w.name === svcName(set) && w.atMs > since).map((w) => w.externalName), { timeout: 20_000, interval: 100 }).toEqual([dnsName(to.name)]);
      // Every sentinel publishes +switch-master; all three reach this master set through the one shared connection each.
      await expect.poll(() => events(set, 'switch-master'), { timeout: 10_000 }).toBeGreaterThanOrEqual(3);
      expect(await events(other, 'switch-master')).toBe(otherBefore);
      await redis.waitStable(30_000, [set]);
      expect(writes.filter((w) => w.name === svcName(other) && w.atMs > since)).toEqual([]);
      expect(writes.filter((w) => w.name === svcName(set) && w.atMs > since)).toHaveLength(1);
      const { stdout } = await kubectl(kubeconfig, ['get', 'service', svcName(set), '-n', namespace, '-o', 'jsonpath={.spec.externalName}']);
      expect(stdout).toBe(dnsName(to.name));
      // Still one subscriber per sentinel after the failover.
      for (const s of redis.sentinels) expect(subscribers(await clients(redis, s))).toHaveLength(1);
    });
  }

  it('master sets with other sentinel credentials get connections of their own; the same credentials share', async () => {
    // A second ACL user on every sentinel, as an operator may give each team its own.
    for (const s of redis.sentinels) await redis.sentinelCommand(s, ['ACL', 'SETUSER', 'team-b', 'on', '>team-b-pass', 'allcommands', 'allchannels']);
    const base = parseConfig({
      token: { env: 'X' },
      masterSets: sets.map((name, i) => ({
        name,
        sentinels: redis.sentinels.map((s) => `${s.host}:${s.port}`),
        sentinelAuth: i === 0 ? { password: { env: 'SS_SHARED_PASSWORD' } } : { username: 'team-b', password: { env: 'SS_TEAM_B' } },
        target: { namespace, name: svcName(name) },
      })),
    });
    process.env.SS_TEAM_B = 'team-b-pass';
    const connections = new Connections({ timeoutMs: 1_000 });
    const log = pino({ level: 'silent' });
    const subs = base.masterSets.map((set) => new SentinelEvents({ set, client: new SentinelClient(set, 1_000, connections), log, onEvent: () => undefined }));
    const [a, b] = base.masterSets.map((set) => new SentinelClient(set, 1_000, connections));
    try {
      await Promise.all(subs.map((s) => s.start()));
      const votes = [...(await a!.askSentinels()), ...(await b!.askSentinels())];
      expect(votes.every((v) => 'master' in v), JSON.stringify(votes)).toBe(true);
      expect(connections.counts).toEqual({ commands: 6, subscribers: 6 });
      for (const s of redis.sentinels) {
        const list = await clients(redis, s);
        // The service above (default user) plus these two identities.
        expect(subscribers(list).map((c) => c.user).sort(), s.name).toEqual(['default', 'default', 'team-b']);
        expect(commanders(list).map((c) => c.user).sort(), s.name).toEqual(['default', 'default', 'team-b']);
      }
      expect(subs.map((s) => s.subscribed.length)).toEqual([3, 3]);
      // A third client with set0's credentials joins set0's connections instead of opening more.
      const again = new SentinelClient(base.masterSets[0]!, 1_000, connections);
      await again.askSentinels();
      expect(connections.counts.commands).toBe(6);
    } finally {
      for (const s of subs) s.stop();
      connections.close();
    }
  });
});
