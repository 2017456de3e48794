// target.kind endpointSlice end to end, inside the sandbox namespace: real Sentinel, the real hook,
// sentinel-switch with the ServiceAccount token of deploy/rbac.yaml writing ONE EndpointSlice of
// a selector-less ClusterIP Service, and an application reaching the master through that cluster
// IP as kube-proxy (iptables) routes it.
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { waitNewAck } from '../../scripts/lib/app-view.ts';
import { type AppWriter, startAppWriter } from '../harness/app-client.ts';
import { createNamespace, createPod, kubectl, resolveName, testCluster } from '../harness/k8s.ts';
import { type Stack, type StackOptions, startStack, TARGET } from '../harness/stack.ts';
import { repoRoot } from '../harness/switch.ts';

const sandbox = (name: string): string => mkdtempSync(join(repoRoot, '.sandbox', `${name}-`));
const nowMs = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Writes of the EndpointSlice after `since` (each MODIFIED watch event is one write). */
const sliceWritesSince = (s: Stack, since: number): number => s.sliceChanges.filter((c) => c.type === 'MODIFIED' && c.atMs > since).length;
const serviceWritesSince = (s: Stack, since: number): number => s.serviceChanges.filter((c) => c.type === 'MODIFIED' && c.atMs > since).length;

async function post(s: Stack, path: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${s.service!.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${s.token}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

async function failoverAndWaitForMajority(s: Stack): Promise<{ host: string; port: number }> {
  const before = await s.redis.masterByMajority();
  await s.redis.failover();
  await expect.poll(async () => (await s.redis.masterByMajority()).host, { timeout: 20_000 }).not.toBe(before.host);
  return s.redis.masterByMajority();
}

describe('target.kind endpointSlice: the slice follows the verified master, once per failover', () => {
  let stack: Stack;
  let app: AppWriter | undefined;
  beforeAll(async () => {
    stack = await startStack({ dir: sandbox('e2e-endpointslice'), cluster: await testCluster(), target: 'endpointSlice' });
  });
  afterAll(async () => {
    await app?.stop();
    await stack?.stop();
  });

  it('starts holding the master, the start-up reconcile writes nothing, and the Service name resolves to its cluster IP', async () => {
    const master = await stack.redis.masterByMajority();
    const slice = await stack.readEndpointSlice();
    expect(slice.addresses).toEqual([master.host]);
    expect(slice.port).toBe(master.port);
    await sleep(500);
    expect(sliceWritesSince(stack, 0)).toBe(0);
    expect(stack.clusterIP).toMatch(/^198\.19\.0\.\d+$/);
    await expect.poll(() => resolveName(stack.stableName), { timeout: 10_000 }).toEqual([stack.clusterIP]);
  });

  it('SENTINEL FAILOVER: exactly one write of the slice, to the new master pod IP; the Service itself is not written; the app reaches the new master through the cluster IP', async () => {
    const before = await stack.redis.masterByMajority();
    // An application that knows only the Service name: kube-proxy (iptables) routes each new
    // connection to the slice's endpoint.
    app = startAppWriter({ host: stack.stableName, port: before.port, password: stack.redis.password, rate: 50, keyPrefix: `app:es:${process.pid}` });
    await expect.poll(() => app!.records.some((r) => r.ackAt !== undefined), { timeout: 15_000 }).toBe(true);
    const since = nowMs();
    const after = await failoverAndWaitForMajority(stack);
    const moved = await stack.waitForSlice(after.host, 15_000);
    await sleep(1_500); // past every hook call and the follow-up runs
    expect(sliceWritesSince(stack, since)).toBe(1);
    expect(serviceWritesSince(stack, since)).toBe(0);
    const slice = await stack.readEndpointSlice();
    expect(slice.addresses).toEqual([after.host]);
    expect(slice.labels).toMatchObject({ 'kubernetes.io/service-name': TARGET, 'endpointslice.kubernetes.io/managed-by': 'sentinel-switch.io' });
    // The history is on the slice, written in that same one patch.
    expect(slice.annotations['sentinel-switch.io/previous-target']).toBe(`${before.host}:${before.port}`);
    expect(slice.annotations['sentinel-switch.io/master']).toBe(`${after.host}:${after.port}`);
    expect(['hook', 'event']).toContain(slice.annotations['sentinel-switch.io/last-switch-reason']);
    // Counted from the slice's write, after the promotion: counted from `since`, a write the old
    // master acknowledged before the promotion is on the new master too (replicated) and would pass.
    const hit = await waitNewAck({ writer: app, switchAtMs: moved.atMs, master: { ...after, password: stack.redis.password }, deadlineMs: nowMs() + 20_000 });
    expect(hit, 'a write acknowledged by the new master, through the cluster IP').toBeDefined();
    expect(hit!.addr).toBe(stack.clusterIP);
    // The story is on the Service, as for ExternalName.
    await expect
      .poll(async () => (await kubectl(stack.adminKubeconfig, ['describe', 'service', TARGET, '-n', stack.namespace])).stdout, { timeout: 10_000 })
      .toMatch(new RegExp(`Normal\\s+MasterSwitched\\s+.*(hook|event): ${before.host.replaceAll('.', '\\.')}:${before.port} -> ${after.host.replaceAll('.', '\\.')}:${after.port}`));
    await app.stop();
    app = undefined;
    await stack.redis.waitStable(30_000);
  });

  it('SIGKILL of the master: the slice follows the promoted replica, in one write', async () => {
    const since = nowMs();
    const killed = await stack.redis.killMaster();
    await expect.poll(async () => (await stack.redis.masterByMajority()).host, { timeout: 30_000 }).not.toBe(killed.host);
    const after = await stack.redis.masterByMajority();
    await stack.waitForSlice(after.host, 20_000);
    await sleep(500);
    expect(sliceWritesSince(stack, since)).toBe(1);
    await stack.redis.startNode(killed);
    await stack.redis.waitStable(30_000);
  });

  it('a forged hook event naming a replica changes nothing and is answered with the truth', async () => {
    const master = await stack.redis.masterByMajority();
    const replica = stack.redis.nodes.find((n) => n.host !== master.host)!;
    const since = nowMs();
    const res = await post(stack, '/v1/failover', { masterSet: 'mymaster', role: 'leader', state: 'start', from: master, to: { host: replica.host, port: replica.port } });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ result: 'unchanged', changed: false, eventConfirmed: false, target: `${master.host}:${master.port}` });
    await sleep(1_500); // past the follow-up run
    expect(sliceWritesSince(stack, since)).toBe(0);
    expect((await stack.readEndpointSlice()).addresses).toEqual([master.host]);
  });

  it('an address no live pod has is never written: the reason names the namespace, the finished pod and the fix', async () => {
    // The pods are looked up in another namespace, where only a FINISHED pod has the master's IP.
    const admin = stack.adminKubeconfig;
    const master = await stack.redis.masterByMajority();
    const other = await createNamespace(admin, 'es-nopods');
    await createPod(admin, other, { name: 'old-redis', podIP: master.host });
    await kubectl(admin, ['patch', 'pod', 'old-redis', '-n', other, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { phase: 'Succeeded' } })]);
    await kubectl(admin, ['create', 'role', 'pods-list', '--verb=list', '--resource=pods', '-n', other]);
    await kubectl(admin, ['create', 'rolebinding', 'pods-list', '--role=pods-list', `--serviceaccount=${stack.namespace}:sentinel-switch`, '-n', other]);
    const before = (await stack.readEndpointSlice()).resourceVersion;
    const p = await stack.startService('sentinel-switch-wrong-ns', {
      masterSets: [{ ...(stack.switchConfig.masterSets[0] as Record<string, unknown>), podNamespace: other }],
      reconcileIntervalSeconds: 600,
    });
    try {
      const res = await fetch(`${p.url}/v1/reconcile`, { method: 'POST', headers: { authorization: `Bearer ${stack.token}`, 'content-type': 'application/json' }, body: '{}' });
      const body = (await res.json()) as { outcomes: { result: string; why: string }[] };
      expect(body.outcomes[0]).toMatchObject({ result: 'failed' });
      expect(body.outcomes[0]!.why).toMatch(new RegExp(`no live pod in namespace ${other} has IP ${master.host.replaceAll('.', '\\.')} \\(pod old-redis has it but has finished or is being deleted\\).*set podNamespace`));
      expect((await stack.readEndpointSlice()).resourceVersion).toBe(before);
    } finally {
      await p.stop();
    }
  });
});

describe('target.kind endpointSlice: RBAC on the named slice only', () => {
  let s: Stack | undefined;
  afterEach(async () => {
    await s?.stop();
    s = undefined;
  });
  const start = async (name: string, opts: Partial<StackOptions>) =>
    (s = await startStack({ dir: sandbox(name), cluster: await testCluster(), target: 'endpointSlice', config: { reconcileIntervalSeconds: 600 }, ...opts }));

  it('needs no patch on services: without it the failover still moves the slice', async () => {
    const st = await start('e2e-es-rbac-nopatch', { withoutVerbs: [{ resource: 'services', verb: 'patch' }] });
    const master = await failoverAndWaitForMajority(st);
    await st.waitForSlice(master.host, 15_000);
  });

  it.each([
    { resource: 'endpointslices', verb: 'patch', error: /RBAC: patch endpointslices .*\/redis-master is forbidden.*grant verb "patch" on "endpointslices" in apiGroup "discovery.k8s.io"/ },
    { resource: 'endpointslices', verb: 'get', error: /RBAC: get endpointslices .*\/redis-master is forbidden.*grant verb "get" on "endpointslices" in apiGroup "discovery.k8s.io"/ },
    { resource: 'pods', verb: 'list', error: /RBAC: list pods .* forbidden.*grant verb "list" on "pods"/ },
  ])('without $verb on $resource: a clear error naming the permission, and nothing written', async ({ resource, verb, error }) => {
    const st = await start(`e2e-es-rbac-${verb}-${resource}`, { withoutVerbs: [{ resource, verb }] });
    const before = (await st.readEndpointSlice()).resourceVersion;
    const master = await failoverAndWaitForMajority(st);
    const res = await post(st, '/v1/reconcile', { masterSet: 'mymaster' });
    const body = res.json as { outcomes: { result: string; why: string }[] };
    expect(res.status).toBeGreaterThanOrEqual(500);
    expect(body.outcomes[0]!.result).toBe('failed');
    expect(body.outcomes[0]!.why).toMatch(error);
    const slice = await st.readEndpointSlice();
    expect(slice.resourceVersion).toBe(before);
    expect(slice.addresses).not.toEqual([master.host]);
  });
});

describe('target.kind endpointSlice with Sentinel announcing hostnames', () => {
  let s: Stack | undefined;
  afterAll(async () => s?.stop());

  it('the name is resolved, checked against the live pods, and its IP written', async () => {
    s = await startStack({ dir: sandbox('e2e-es-hostname'), cluster: await testCluster(), target: 'endpointSlice', redis: { announce: 'hostname' } });
    const since = nowMs();
    const after = await failoverAndWaitForMajority(s);
    const node = s.redis.nodes.find((n) => n.announced === after.host)!;
    expect(after.host).not.toBe(node.host); // a name, not the IP
    await s.waitForSlice(node.host, 15_000);
    await sleep(1_500);
    expect(sliceWritesSince(s, since)).toBe(1);
    expect((await s.readEndpointSlice()).annotations['sentinel-switch.io/master']).toBe(`${after.host}:${after.port}`);
  });
});
