// The watch-fed caches of src/kube (informer.ts) against the real API server, with the RBAC we
// ship (deploy/rbac.yaml, a ServiceAccount token): the named Service is watched although its
// Role lists it by resourceNames; a pod created after the cache started is found (a miss lists);
// a finished pod's IP is never taken as live; a stale cache meets the resourceVersion guard (409)
// and the decision is made again on what the API says, with exactly one write; and without the
// watch verb everything still works, from direct reads, and the log says what to grant.
// Real counterparts: kube-apiserver + etcd, redis-server + redis-sentinel (test/harness).
import { mkdtempSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createService, type Service } from '../src/app.ts';
import { parseConfig } from '../src/config.ts';
import { Kube } from '../src/kube/index.ts';
import { createPod, kubectl, testCluster } from './harness/k8s.ts';
import { type Stack, startStack, TARGET } from './harness/stack.ts';
import { repoRoot } from './harness/switch.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** sentinel-switch in this process, with a Kube we can look into, on the stack's ServiceAccount. */
async function inProcess(stack: Stack): Promise<{ service: Service; kube: Kube; logs: Record<string, unknown>[] }> {
  process.env.SS_CACHE_TOKEN = 'cache-test-token';
  process.env.REDIS_PASSWORD = stack.redis.password;
  process.env.SENTINEL_PASSWORD = stack.redis.sentinelPassword ?? '';
  const config = parseConfig({ ...stack.switchConfig, token: { env: 'SS_CACHE_TOKEN' } });
  const logs: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void logs.push(JSON.parse(s) as Record<string, unknown>) });
  const kube = Kube.fromConfig(config.kubernetes, { log });
  const service = await createService(config, { timer: false, events: false, kube, logger: log, defaultMetrics: false });
  return { service, kube, logs };
}

async function patchExternalName(stack: Stack, name: string): Promise<void> {
  await kubectl(stack.adminKubeconfig, ['patch', 'service', TARGET, '-n', stack.namespace, '--type=merge', '-p', JSON.stringify({ spec: { externalName: name } })]);
}

describe('watch-fed caches with the shipped RBAC (real API server, real Sentinels)', () => {
  let stack: Stack;
  let running: { service: Service; kube: Kube; logs: Record<string, unknown>[] } | undefined;
  const ref = () => ({ namespace: stack.namespace, name: TARGET });

  beforeAll(async () => {
    stack = await startStack({ dir: mkdtempSync(path.join(repoRoot, '.sandbox', 'cache-')), cluster: await testCluster(), startService: false });
  }, 120_000);
  afterEach(async () => {
    await running?.service.close();
    running = undefined;
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('the Service named in resourceNames is watched (fieldSelector metadata.name) and reads come from the cache', async () => {
    running = await inProcess(stack);
    const { kube } = running;
    const first = await kube.getService(ref());
    expect(first).toMatchObject({ exists: true, type: 'ExternalName' });
    await expect.poll(() => kube.cache('services', `${stack.namespace}/${TARGET}`)?.synced, { timeout: 10_000 }).toBe(true);
    const gets = kube.requests.GET ?? 0;
    await patchExternalName(stack, 'moved-by-someone.example.invalid');
    await expect.poll(async () => ((await kube.getService(ref())) as { externalName?: string }).externalName, { timeout: 10_000 }).toBe('moved-by-someone.example.invalid');
    expect(kube.requests.GET ?? 0, 'no GET: the change came through the watch').toBe(gets);
    expect(kube.caches()).toEqual([expect.objectContaining({ what: `services ${stack.namespace}/${TARGET}`, state: 'watching' })]);
    // fresh: the API, not the cache
    await kube.getService(ref(), { fresh: true });
    expect(kube.requests.GET).toBe(gets + 1);
    // and a reconcile puts the master back, from the cache, in one write
    const o = await running.service.reconciler.reconcile(stack.redis.masterSet, 'manual');
    expect(o).toMatchObject({ result: 'switched', previousTarget: 'moved-by-someone.example.invalid' });
  });

  it('a pod created after the cache started is found (the miss lists); a finished pod is not live', async () => {
    running = await inProcess(stack);
    const { kube } = running;
    const node = stack.redis.nodes[0]!;
    expect(await kube.findPodByIp(stack.namespace, node.host)).toMatchObject({ name: node.name, live: true });
    const pods = () => kube.cache('pods', stack.namespace);
    await expect.poll(() => pods()?.synced, { timeout: 10_000 }).toBe(true);
    const gets = kube.requests.GET ?? 0;
    expect(await kube.findPodByIp(stack.namespace, node.host)).toMatchObject({ name: node.name, live: true });
    expect(kube.requests.GET ?? 0, 'a cached live pod: no request').toBe(gets);

    // The watch lags (events held): a new pod is not in the cache yet, and is found by a LIST.
    pods()!.hold();
    const ip = `127.251.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
    await createPod(stack.adminKubeconfig, stack.namespace, { name: 'late-pod', hostname: 'late-pod', subdomain: 'redis-headless', podIP: ip });
    expect(await kube.findPodByIp(stack.namespace, ip)).toMatchObject({ name: 'late-pod', live: true, hostname: 'late-pod' });
    expect(kube.requests.GET, 'the miss was a LIST').toBe(gets + 1);
    pods()!.release();
    expect(await kube.findPodByIp(stack.namespace, ip)).toMatchObject({ name: 'late-pod', live: true });
    expect(kube.requests.GET, 'released: from the cache').toBe(gets + 1);

    // Finished: the cache has no live pod with the IP any more, so the answer is the API's (not live).
    await kubectl(stack.adminKubeconfig, ['patch', 'pod', 'late-pod', '-n', stack.namespace, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { phase: 'Succeeded' } })]);
    await expect.poll(async () => (await kube.findPodByIp(stack.namespace, ip))?.live, { timeout: 10_000 }).toBe(false);
    await kubectl(stack.adminKubeconfig, ['delete', 'pod', 'late-pod', '-n', stack.namespace, '--wait=false']);
  });

  it('a stale cache: the patch meets 409, the decision is made again on the API\'s answer, one write', async () => {
    running = await inProcess(stack);
    const { kube, service } = running;
    const set = stack.redis.masterSet;
    const id = `${stack.namespace}/${TARGET}`;
    const master = stack.dnsName(await stack.redis.masterByMajority());
    expect((await service.reconciler.reconcile(set, 'manual')).result).toMatch(/unchanged|switched/);
    await expect.poll(() => kube.cache('services', id)?.synced, { timeout: 10_000 }).toBe(true);

    // 1. The cache says "elsewhere", then lags while another writer moves the Service to a third name.
    await patchExternalName(stack, 'elsewhere.example.invalid');
    await expect.poll(async () => ((await kube.getService(ref())) as { externalName?: string }).externalName, { timeout: 10_000 }).toBe('elsewhere.example.invalid');
    kube.cache('services', id)!.hold();
    await patchExternalName(stack, 'third-writer.example.invalid');
    const since = performance.timeOrigin + performance.now();
    const patches = kube.requests.PATCH ?? 0;
    const o = await service.reconciler.reconcile(set, 'manual');
    // Decided again on the API's answer: the previous target is the third writer's, not the cache's.
    expect(o).toMatchObject({ result: 'switched', target: master, previousTarget: 'third-writer.example.invalid' });
    expect(kube.requests.PATCH, 'one refused patch (409), one write').toBe(patches + 2);
    await sleep(500);
    expect(stack.serviceChanges.filter((c) => c.type === 'MODIFIED' && c.atMs > since && c.annotations['sentinel-switch.io/last-switch-reason'] === 'manual' && c.externalName === master)).toHaveLength(1);
    kube.cache('services', id)!.release();

    // 2. Another replica already wrote the master while our cache lagged: 409, then nothing to do.
    await patchExternalName(stack, 'elsewhere.example.invalid');
    await expect.poll(async () => ((await kube.getService(ref())) as { externalName?: string }).externalName, { timeout: 10_000 }).toBe('elsewhere.example.invalid');
    kube.cache('services', id)!.hold();
    await patchExternalName(stack, master);
    const since2 = performance.timeOrigin + performance.now();
    const patches2 = kube.requests.PATCH ?? 0;
    const o2 = await service.reconciler.reconcile(set, 'manual');
    expect(o2).toMatchObject({ result: 'unchanged', target: master });
    expect(kube.requests.PATCH, 'only the refused patch').toBe(patches2 + 1);
    await sleep(500);
    expect(stack.serviceChanges.filter((c) => c.type === 'MODIFIED' && c.atMs > since2)).toHaveLength(0);
    kube.cache('services', id)!.release();
  });
});

describe('without the watch verb (RBAC of an older release)', () => {
  let stack: Stack;
  let running: { service: Service; kube: Kube; logs: Record<string, unknown>[] } | undefined;

  beforeAll(async () => {
    stack = await startStack({
      dir: mkdtempSync(path.join(repoRoot, '.sandbox', 'cache-nowatch-')),
      cluster: await testCluster(),
      startService: false,
      withoutVerbs: [{ resource: 'services', verb: 'watch' }, { resource: 'pods', verb: 'watch' }, { resource: 'endpointslices', verb: 'watch' }],
    });
  }, 120_000);
  afterAll(async () => {
    await running?.service.close();
    await stack?.stop();
  });

  it('falls back to direct reads, says what to grant, and still switches on a failover', async () => {
    running = await inProcess(stack);
    const { kube, service, logs } = running;
    const set = stack.redis.masterSet;
    expect((await service.reconciler.reconcile(set, 'manual')).result).toBe('unchanged');
    // The Service's cache and the pods' (Sentinel announces IPs here): both refused, both read directly.
    await expect.poll(() => kube.caches().map((c) => c.state), { timeout: 10_000 }).toEqual(['forbidden', 'forbidden']);
    const warning = logs.find((l) => String(l.msg).startsWith('RBAC: watch services'));
    expect(warning?.msg).toMatch(new RegExp(`is forbidden; every reconcile reads the API directly .*grant verb "watch" on "services" in namespace ${stack.namespace}`));
    const gets = kube.requests.GET ?? 0;
    expect((await service.reconciler.reconcile(set, 'manual')).result).toBe('unchanged');
    expect(kube.requests.GET, 'a direct read').toBeGreaterThan(gets);

    const before = await stack.redis.masterByMajority();
    await stack.redis.failover();
    await expect.poll(async () => (await stack.redis.masterByMajority()).host, { timeout: 20_000 }).not.toBe(before.host);
    const after = await stack.redis.masterByMajority();
    await expect
      .poll(async () => (await service.reconciler.reconcile(set, 'manual')).target, { timeout: 20_000, interval: 300 })
      .toBe(stack.dnsName(after));
    expect((await stack.readService()).externalName).toBe(stack.dnsName(after));
  });
});
