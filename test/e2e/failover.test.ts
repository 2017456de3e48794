// The README's promises, end to end: real Sentinel runs the real hook against the real service,
// which writes to the real API server with the ServiceAccount token of deploy/rbac.yaml.
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testCluster } from '../harness/k8s.ts';
import { type Stack, startStack } from '../harness/stack.ts';
import { repoRoot } from '../harness/switch.ts';

const run = promisify(execFile);
const sandbox = (name: string): string => mkdtempSync(join(repoRoot, '.sandbox', `${name}-`));

async function post(stack: Stack, path: string, body: unknown, token = stack.token): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${stack.service!.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/** Writes of the Service after `since` (each MODIFIED watch event is one write). */
const writesSince = (stack: Stack, since: number): number => stack.serviceChanges.filter((c) => c.type === 'MODIFIED' && c.atMs > since).length;

describe('failover moves the Service, once, only to the verified master', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ dir: sandbox('e2e-failover'), cluster: await testCluster() });
  });
  afterAll(async () => stack?.stop());

  it('starts pointing at the master, and the start-up reconcile writes nothing', async () => {
    const master = await stack.redis.masterByMajority();
    expect((await stack.readService()).externalName).toBe(stack.dnsName(master));
    expect(writesSince(stack, 0)).toBe(0);
  });

  it('SENTINEL FAILOVER: the hook on all 3 sentinels ends in exactly one write naming the new master pod', async () => {
    const before = await stack.redis.masterByMajority();
    const since = performance.timeOrigin + performance.now();
    await stack.redis.failover();
    await expect.poll(async () => (await stack.redis.masterByMajority()).host, { timeout: 20_000 }).not.toBe(before.host);
    const after = await stack.redis.masterByMajority();
    // Sentinel announces IPs here: the written name is the pod's DNS name, never the IP.
    await stack.waitForTarget(stack.dnsName(after), 15_000);
    // Every sentinel's hook call has arrived before we count.
    await expect.poll(() => hookEvents(stack, since).length, { timeout: 15_000 }).toBe(3);
    await new Promise((r) => setTimeout(r, 500));
    expect(writesSince(stack, since)).toBe(1);
    const svc = await stack.readService();
    expect(svc.externalName).not.toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect(svc.annotations['sentinel-switch.io/previous-target']).toBe(stack.dnsName(before));
    expect(svc.annotations['sentinel-switch.io/master']).toBe(`${after.host}:${after.port}`);
    expect(hookEvents(stack, since).map((e) => e.role).sort()).toEqual(['leader', 'observer', 'observer']);
    // The next test kills the master: it must not land while Sentinel's leader is still
    // reconfiguring replicas (a SIGKILL then can leave one sentinel on the old epoch for 30 s+,
    // seen here twice since fencing ends the old master's part of a failover in milliseconds).
    await stack.redis.waitStable(30_000);
  });

  it('SIGKILL of the master: the Service follows the promoted replica', async () => {
    const since = performance.timeOrigin + performance.now();
    const killed = await stack.redis.killMaster();
    await expect.poll(async () => (await stack.redis.masterByMajority()).host, { timeout: 30_000 }).not.toBe(killed.host);
    const after = await stack.redis.masterByMajority();
    await stack.waitForTarget(stack.dnsName(after), 20_000);
    await new Promise((r) => setTimeout(r, 500));
    expect(writesSince(stack, since)).toBe(1);
    await stack.redis.startNode(killed);
    await stack.redis.waitStable(30_000);
  });

  it('a forged event with a valid token, pointing at a replica, writes nothing and is answered with the truth', async () => {
    const master = await stack.redis.masterByMajority();
    const replica = stack.redis.nodes.find((n) => n.host !== master.host)!;
    const since = performance.timeOrigin + performance.now();
    const res = await post(stack, '/v1/failover', { masterSet: 'mymaster', role: 'leader', state: 'start', from: master, to: { host: replica.host, port: replica.port } });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ result: 'unchanged', changed: false, eventConfirmed: false, target: stack.dnsName(master) });
    const foreign = await post(stack, '/v1/failover', { masterSet: 'mymaster', role: 'leader', state: 'start', from: master, to: { host: 'evil.example.com', port: 6379 } });
    expect(foreign.json).toMatchObject({ changed: false, eventConfirmed: false });
    await new Promise((r) => setTimeout(r, 1_500)); // past the follow-up run
    expect(writesSince(stack, since)).toBe(0);
    expect((await stack.readService()).externalName).toBe(stack.dnsName(master));
  });

  it('a wrong token is 401, and the hook exits 2 at once (Sentinel will not retry it)', async () => {
    const res = await post(stack, '/v1/failover', { masterSet: 'mymaster', role: 'leader', state: 'start', from: { host: '10.0.0.1', port: 6379 }, to: { host: '10.0.0.2', port: 6379 } }, 'wrong');
    expect(res.status).toBe(401);
    const hook = await run('bash', [join(repoRoot, 'scripts/client-reconfig.sh'), 'mymaster', 'leader', 'start', '10.0.0.1', '6379', '10.0.0.2', '6379'], {
      env: { PATH: '/usr/bin:/bin', SENTINEL_SWITCH_URL: stack.service!.url, SENTINEL_SWITCH_TOKEN: 'wrong' },
    }).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => e,
    );
    expect(hook.code).toBe(2);
    expect(hook.stderr).toMatch(/401/);
  });

  it('an unknown master set is 404, naming it', async () => {
    const res = await post(stack, '/v1/failover', { masterSet: 'othermaster', role: 'leader', state: 'start', from: { host: 'a', port: 1 }, to: { host: 'b', port: 2 } });
    expect(res.status).toBe(404);
    expect(res.json.message).toMatch(/othermaster/);
  });

  it('the manual trigger reconciles and reports the verified master', async () => {
    const master = await stack.redis.masterByMajority();
    const res = await post(stack, '/v1/reconcile', {});
    expect(res.status).toBe(200);
    expect(res.json.outcomes).toEqual([expect.objectContaining({ masterSet: 'mymaster', reason: 'manual', result: 'unchanged', target: stack.dnsName(master) })]);
  });

  it('/readyz is ready and says why; /healthz is ok', async () => {
    const ready = await fetch(`${stack.service!.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(((await ready.json()) as { checks: { name: string; ok: boolean }[] }).checks.map((c) => c.name)).toEqual(['config', 'sentinels:mymaster', 'redis:mymaster', `kubernetes:${stack.namespace}/redis-master`]);
    expect((await fetch(`${stack.service!.url}/healthz`)).status).toBe(200);
  });

  it('SIGTERM: the request in flight is answered, then the process exits 0', async () => {
    const inFlight = post(stack, '/v1/reconcile', {});
    await new Promise((r) => setTimeout(r, 5)); // the request has arrived
    const exited = stack.service!.stop('SIGTERM');
    expect((await inFlight).status).toBe(200);
    expect(await exited).toBe(0);
  });
});

/** The hook events the service logged after `since`. */
function hookEvents(stack: Stack, since: number): { role: string }[] {
  return stack.service!.logLines().filter((l) => l.msg === 'hook event' && (l.time as number) > since) as unknown as { role: string }[];
}
