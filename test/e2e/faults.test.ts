// Faults the README promises to survive, end to end: a missed hook, the service down, the API
// server down during a failover, and a Role with one verb missing.
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { kubectl, testCluster } from '../harness/k8s.ts';
import { type Stack, type StackOptions, startStack } from '../harness/stack.ts';
import { freePort, repoRoot } from '../harness/switch.ts';

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.stop();
  stack = undefined;
});

async function start(name: string, opts: Partial<StackOptions> = {}): Promise<Stack> {
  stack = await startStack({ dir: mkdtempSync(join(repoRoot, '.sandbox', `${name}-`)), cluster: await testCluster(), ...opts });
  return stack;
}

async function failoverAndWaitForMajority(s: Stack): Promise<{ host: string; port: number }> {
  const before = await s.redis.masterByMajority();
  await s.redis.failover();
  await expect.poll(async () => (await s.redis.masterByMajority()).host, { timeout: 20_000 }).not.toBe(before.host);
  return s.redis.masterByMajority();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('nothing is lost when the hook is', () => {
  it('a hook that cannot reach the service: the Service is switched anyway (Sentinel pub/sub, else the timer)', async () => {
    const s = await start('e2e-timer', { hookEnv: { SENTINEL_SWITCH_URL: `http://127.0.0.1:${await freePort()}`, SENTINEL_SWITCH_RETRY_SECONDS: '1' }, config: { reconcileIntervalSeconds: 2 } });
    const master = await failoverAndWaitForMajority(s);
    await expect.poll(async () => (await s.readService()).externalName, { timeout: 10_000, interval: 250 }).toBe(s.dnsName(master));
    expect(['event', 'timer']).toContain((await s.readService()).annotations['sentinel-switch.io/last-switch-reason']);
  });

  it('the service down during the failover: it repairs the Service when it starts again', async () => {
    const s = await start('e2e-restart', { hookEnv: { SENTINEL_SWITCH_RETRY_SECONDS: '1' } });
    await s.service!.stop();
    const master = await failoverAndWaitForMajority(s);
    await sleep(2_500); // every hook has given up (exit 1)
    expect((await s.readService()).externalName).not.toBe(s.dnsName(master));
    await s.service!.restart();
    await expect.poll(async () => (await s.readService()).externalName, { timeout: 10_000, interval: 250 }).toBe(s.dnsName(master));
  });

  it('the API server down during the failover: the hook gets 503, retries, and the Service converges once the API is back', async () => {
    const cluster = await testCluster();
    const s = await start('e2e-apidown');
    await cluster.stopApiServer();
    let master: { host: string; port: number };
    try {
      master = await failoverAndWaitForMajority(s);
      await sleep(2_000); // hooks are being answered 503 and retry
    } finally {
      await cluster.startApiServer();
    }
    await expect.poll(async () => (await s.readService()).externalName, { timeout: 20_000, interval: 250 }).toBe(s.dnsName(master));
    const svc = await s.readService();
    // Delivered because of the failover's own triggers (a retried hook call, a pub/sub event, or
    // the follow-up run an unconfirmed one scheduled), not by the 30 s timer.
    expect(['hook', 'event', 'follow-up']).toContain(svc.annotations['sentinel-switch.io/last-switch-reason']);
    const retried = s.service!.logLines().filter((l) => l.result === 'failed' && String(l.why).includes('unreachable'));
    expect(retried.length).toBeGreaterThan(0);
  });
});

describe('RBAC: deploy/rbac.yaml is exactly enough', () => {
  it('with every verb of deploy/rbac.yaml the switch works (the other e2e tests run with it too)', async () => {
    const s = await start('e2e-rbac-ok', { config: { reconcileIntervalSeconds: 600 } });
    const master = await failoverAndWaitForMajority(s);
    await s.waitForTarget(s.dnsName(master), 15_000);
  });

  it.each([
    { resource: 'services', verb: 'patch', error: /RBAC: patch services .* forbidden.*grant verb "patch" on "services"/ },
    { resource: 'services', verb: 'get', error: /RBAC: get services .* forbidden.*grant verb "get" on "services"/ },
    { resource: 'pods', verb: 'list', error: /RBAC: list pods .* forbidden.*grant verb "list" on "pods"/ },
  ])('without $verb on $resource: a clear error naming the permission, and nothing written', async ({ resource, verb, error }) => {
    const s = await start(`e2e-rbac-${verb}-${resource}`, { withoutVerbs: [{ resource, verb }], config: { reconcileIntervalSeconds: 600 } });
    const before = (await s.readService()).resourceVersion;
    const master = await failoverAndWaitForMajority(s);
    const res = await fetch(`${s.service!.url}/v1/reconcile`, {
      method: 'POST',
      headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ masterSet: 'mymaster' }),
    });
    const body = (await res.json()) as { outcomes: { result: string; why: string }[] };
    expect(res.status).toBeGreaterThanOrEqual(500);
    expect(body.outcomes[0]!.result).toBe('failed');
    expect(body.outcomes[0]!.why).toMatch(error);
    const svc = await s.readService();
    expect(svc.resourceVersion).toBe(before);
    expect(svc.externalName).not.toBe(s.dnsName(master));
  });

  it('without create on events: the switch still happens, the missing Event is logged', async () => {
    const s = await start('e2e-rbac-events', { withoutVerbs: [{ resource: 'events', verb: 'create' }], config: { reconcileIntervalSeconds: 600 } });
    const master = await failoverAndWaitForMajority(s);
    await s.waitForTarget(s.dnsName(master), 15_000);
    await expect.poll(() => s.service!.logLines().filter((l) => l.msg === 'could not record Event' && String(l.err).includes('create events')).length, { timeout: 5_000 }).toBeGreaterThan(0);
  });
});

describe('the story on the Service and in /metrics', () => {
  it('a switch leaves an Event on the Service, counted in /metrics; a 401 is counted too', async () => {
    const s = await start('e2e-observe', { config: { reconcileIntervalSeconds: 600 } });
    const before = await s.redis.masterByMajority();
    const master = await failoverAndWaitForMajority(s);
    await s.waitForTarget(s.dnsName(master), 15_000);
    await expect
      .poll(async () => (await kubectl(s.adminKubeconfig, ['describe', 'service', 'redis-master', '-n', s.namespace])).stdout, { timeout: 10_000 })
      .toMatch(new RegExp(`Normal\\s+MasterSwitched\\s+.*(hook|event): ${s.dnsName(before).replaceAll('.', '\\.')} -> ${s.dnsName(master).replaceAll('.', '\\.')}`));

    await fetch(`${s.service!.url}/v1/reconcile`, { method: 'POST', headers: { authorization: 'Bearer nope' } });
    const metrics = await (await fetch(`${s.service!.url}/metrics`)).text();
    expect(metrics).toMatch(/^sentinel_switch_switches_total\{master_set="mymaster"\} 1$/m);
    expect(metrics).toMatch(/^sentinel_switch_hook_to_patch_seconds_count\{master_set="mymaster"\} [1-9]/m);
    // The hook and Sentinel's pub/sub race; whichever comes first makes the one switch.
    expect(metrics).toMatch(/^sentinel_switch_reconcile_runs_total\{master_set="mymaster",reason="(hook|event)",result="switched"\} 1$/m);
    expect(metrics).toMatch(/^sentinel_switch_unauthorized_requests_total\{route="\/v1\/reconcile"\} 1$/m);
    expect(metrics).toMatch(/^sentinel_switch_sentinel_agreeing\{master_set="mymaster"\} 3$/m);
    expect(metrics).toMatch(/^sentinel_switch_last_switch_timestamp_seconds\{master_set="mymaster"\} \d+/m);
  });

  it('a failure to switch leaves a Warning Event naming the cause', async () => {
    const s = await start('e2e-warn', { withoutVerbs: [{ resource: 'services', verb: 'patch' }], config: { reconcileIntervalSeconds: 600 } });
    await failoverAndWaitForMajority(s);
    await expect
      .poll(async () => (await kubectl(s.adminKubeconfig, ['get', 'events', '-n', s.namespace, '-o', 'json'])).stdout, { timeout: 15_000 })
      .toMatch(/"reason": "SwitchFailed"[\s\S]*|RBAC: patch services/);
    const events = JSON.parse((await kubectl(s.adminKubeconfig, ['get', 'events', '-n', s.namespace, '-o', 'json'])).stdout) as { items: { reason: string; message: string; type: string }[] };
    expect(events.items.find((e) => e.reason === 'SwitchFailed')).toMatchObject({ type: 'Warning', message: expect.stringMatching(/RBAC: patch services/) });
  });
});
