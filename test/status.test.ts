// `sentinel-switch status` and GET /v1/status against the real stack (3 sentinels, a master and
// two replicas, the real API server, the service as its own process): what the operator sees
// must be what Redis, Sentinel and the Service say, and the exit code must say whether to worry.
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Status } from '../src/status.ts';
import { kubectl, testCluster } from './harness/k8s.ts';
import { command } from './harness/redis.ts';
import { type Stack, startStack, TARGET } from './harness/stack.ts';
import { freePort, repoRoot } from './harness/switch.ts';

const sandbox = (name: string): string => mkdtempSync(join(repoRoot, '.sandbox', `${name}-`));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The CLI as a process, through the launcher the image runs (bin/sentinel-switch). */
function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(repoRoot, 'bin/sentinel-switch'), ...args], { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('sentinel-switch status', () => {
  let stack: Stack;
  let dir: string;
  let tokenFile: string;
  /** As in the pod: everything from the service's config (SENTINEL_SWITCH_CONFIG). */
  let inPod: Record<string, string>;
  const statusJson = async (extra: string[] = []): Promise<{ code: number; status: Status; stderr: string }> => {
    const r = await cli(['status', '--json', ...extra], inPod);
    expect(r.stderr).toBe('');
    return { code: r.code, status: JSON.parse(r.stdout) as Status, stderr: r.stderr };
  };

  beforeAll(async () => {
    dir = sandbox('status');
    // No timer run during the test: a Service changed by hand stays wrong until we reconcile.
    // Sentinel takes 5 s to call a killed master down: the status in between is asked well inside that.
    stack = await startStack({ dir, cluster: await testCluster(), config: { reconcileIntervalSeconds: 3600 }, redis: { downAfterMs: 5_000 } });
    tokenFile = join(dir, 'sentinel-switch.token');
    inPod = { SENTINEL_SWITCH_CONFIG: stack.service!.configPath };
  });
  afterAll(async () => stack?.stop());

  it('--json with the in-pod defaults: every sentinel, the master and its ROLE, every node with its offset, the target, no drift, exit 0', async () => {
    const master = await stack.redis.masterByMajority();
    const masterKey = `${master.host}:${master.port}`;
    const { code, status } = await statusJson();
    expect(code).toBe(0);
    expect(status.ok).toBe(true);
    expect(status.masterSets).toHaveLength(1);
    const m = status.masterSets[0]!;
    expect(m).toMatchObject({ masterSet: 'mymaster', ok: true, problems: [], majority: { ok: true, master: masterKey, agreeing: 3, total: 3, needed: 2 } });
    expect(m.sentinels.map((s) => s.sentinel).sort()).toEqual(stack.redis.sentinels.map((s) => `${s.announced}:${s.port}`).sort());
    expect(m.sentinels.every((s) => s.master === masterKey)).toBe(true);
    expect(m.master).toEqual({ address: masterKey, role: 'master', verified: true });
    // Every node of the sandbox, with the role and offset it reports itself.
    expect(m.nodes.map((n) => n.address).sort()).toEqual(stack.redis.nodes.map((n) => `${n.host}:${n.port}`).sort());
    for (const n of m.nodes) {
      const node = stack.redis.nodes.find((x) => `${x.host}:${x.port}` === n.address)!;
      const role = (await command(node.host, node.port, stack.redis.password, ['ROLE'])) as unknown[];
      expect(n.role).toBe(String(role[0]));
      expect(n.offset).toEqual(expect.any(Number));
      if (n.address === masterKey) expect(n.lagBytes).toBeUndefined();
      else expect(n).toMatchObject({ role: 'slave', replicaOf: masterKey, linkState: 'connected', lagBytes: expect.any(Number), sentinelFlags: 'slave' });
    }
    expect(m.target).toMatchObject({ kind: 'externalName', service: `${stack.namespace}/${TARGET}`, exists: true, current: stack.dnsName(master), desired: stack.dnsName(master) });
    expect(m.drift).toEqual({ state: 'none' });
    expect(m.fences).toEqual([]);
  });

  it('the table, with --url and --token-file: one line per sentinel, the master with ROLE, a row per node, the target, no drift', async () => {
    const master = await stack.redis.masterByMajority();
    const r = await cli(['status', '--url', stack.service!.url, '--token-file', tokenFile]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('master set mymaster: OK');
    expect(r.stdout).toMatch(/sentinels\s+3\/3 agree on /);
    for (const s of stack.redis.sentinels) expect(r.stdout).toMatch(new RegExp(`${s.announced}:${s.port}\\s+${master.host}:${master.port}`));
    expect(r.stdout).toMatch(new RegExp(`master\\s+${master.host}:${master.port}  ROLE master`));
    for (const n of stack.redis.nodes) expect(r.stdout).toMatch(new RegExp(`${n.host}:${n.port}\\s+(master|slave)\\s+\\d+`));
    expect(r.stdout).toContain(`names ${stack.dnsName(master)}`);
    expect(r.stdout).toMatch(/drift\s+none\n/);
    expect(r.stdout).toMatch(/all 1 master set\(s\) fine/);
  });

  it('a Service changed by hand to name a replica: drift is shown and exit is 1; after a reconcile it is gone, and the switch shows', async () => {
    const master = await stack.redis.masterByMajority();
    const replica = stack.redis.nodes.find((n) => n.host !== master.host)!;
    await kubectl(stack.adminKubeconfig, ['patch', 'service', TARGET, '-n', stack.namespace, '--type=merge', '-p', JSON.stringify({ spec: { externalName: stack.dnsName(replica) } })]);

    const { code, status } = await statusJson();
    expect(code).toBe(1);
    const m = status.masterSets[0]!;
    expect(m.ok).toBe(false);
    expect(m.drift.state).toBe('drift');
    expect(m.drift.why).toContain(stack.dnsName(replica));
    expect(m.drift.why).toContain(stack.dnsName(master));
    expect(m.target).toMatchObject({ current: stack.dnsName(replica), desired: stack.dnsName(master) });
    expect(m.problems).toHaveLength(1);
    const table = await cli(['status'], inPod);
    expect(table.code).toBe(1);
    expect(table.stdout).toContain('master set mymaster: DRIFT');
    expect(table.stdout).toMatch(/drift\s+DRIFT: /);
    expect(table.stdout).toContain('NOT FINE: mymaster');

    const res = await fetch(`${stack.service!.url}/v1/reconcile`, { method: 'POST', headers: { authorization: `Bearer ${stack.token}`, 'content-type': 'application/json' }, body: '{}' });
    expect(res.status).toBe(200);
    const after = await statusJson();
    expect(after.code).toBe(0);
    const a = after.status.masterSets[0]!;
    expect(a.drift).toEqual({ state: 'none' });
    expect(a.target.current).toBe(stack.dnsName(master));
    // The reconcile's write is the last switch: from the replica's name back to the master.
    expect(a.lastSwitch).toMatchObject({ reason: 'manual', from: stack.dnsName(replica), to: `${master.host}:${master.port}` });
    expect(Date.now() - Date.parse(a.lastSwitch!.at)).toBeLessThan(30_000);
  });

  it('after a failover: the new master, the old one as its replica, no drift, and the last switch names both', async () => {
    const before = await stack.redis.masterByMajority();
    await stack.redis.failover();
    await expect.poll(async () => (await stack.redis.masterByMajority()).host, { timeout: 20_000 }).not.toBe(before.host);
    const after = await stack.redis.masterByMajority();
    await stack.waitForTarget(stack.dnsName(after), 15_000);
    await stack.redis.waitStable(30_000);
    const afterKey = `${after.host}:${after.port}`;
    // Sentinel reconfigures the old master as a replica a moment after the switch.
    await expect.poll(async () => (await statusJson()).status.masterSets[0]!.nodes.find((n) => n.address === `${before.host}:${before.port}`)?.replicaOf, { timeout: 20_000 }).toBe(afterKey);
    const { code, status } = await statusJson();
    expect(code).toBe(0);
    const m = status.masterSets[0]!;
    expect(m.master).toEqual({ address: afterKey, role: 'master', verified: true });
    expect(m.drift).toEqual({ state: 'none' });
    expect(['hook', 'event']).toContain(m.lastSwitch?.reason);
    expect(m.lastSwitch).toMatchObject({ from: stack.dnsName(before), to: afterKey });
    const table = await cli(['status'], inPod);
    expect(table.stdout).toMatch(new RegExp(`last switch\\s+\\S+ (hook|event): from ${stack.dnsName(before).replace(/\./g, '\\.')} to master ${afterKey}`));
  });

  it('right after a SIGKILL of the master, before Sentinel fails over: exit 1, the master is not verified and the ROLE error is shown', async () => {
    const killed = await stack.redis.killMaster();
    try {
      const { code, status } = await statusJson();
      expect(code).toBe(1);
      const m = status.masterSets[0]!;
      expect(m.majority.master).toBe(`${killed.host}:${killed.port}`);
      expect(m.master).toMatchObject({ address: `${killed.host}:${killed.port}`, verified: false, role: expect.stringMatching(/^error: .*ECONNREFUSED/) });
      expect(m.nodes.find((n) => n.address === `${killed.host}:${killed.port}`)).toMatchObject({ role: 'error', error: expect.stringContaining('ECONNREFUSED') });
      expect(m.drift.state).toBe('unknown');
      const table = await cli(['status'], inPod);
      expect(table.stdout).toContain('master set mymaster: MASTER NOT VERIFIED');
    } finally {
      await expect.poll(async () => (await stack.redis.masterByMajority()).host, { timeout: 30_000 }).not.toBe(killed.host);
      await stack.redis.startNode(killed);
      await stack.redis.waitStable(30_000);
    }
    await expect.poll(async () => (await statusJson()).code, { timeout: 20_000 }).toBe(0);
  });

  it('no majority (two of three sentinels stopped): exit 1, each silent sentinel with its error, and the unverified reconcile as the last failure', async () => {
    const stopped = stack.redis.sentinels.slice(0, 2);
    for (const s of stopped) await stack.redis.stopSentinel(s);
    try {
      await fetch(`${stack.service!.url}/v1/reconcile`, { method: 'POST', headers: { authorization: `Bearer ${stack.token}`, 'content-type': 'application/json' }, body: '{}' });
      const { code, status } = await statusJson();
      expect(code).toBe(1);
      const m = status.masterSets[0]!;
      expect(m.majority).toMatchObject({ ok: false, agreeing: 1, total: 3, needed: 2 });
      expect(m.drift.state).toBe('unknown');
      for (const s of stopped) expect(m.sentinels.find((v) => v.sentinel === `${s.announced}:${s.port}`)?.error).toMatch(/ECONNREFUSED|connect/);
      expect(m.lastFailure).toMatchObject({ reason: 'manual', result: 'unverified', why: expect.stringContaining('no sentinel majority') });
      const table = await cli(['status'], inPod);
      expect(table.code).toBe(1);
      expect(table.stdout).toContain('master set mymaster: NO MAJORITY');
      expect(table.stdout).toMatch(/last failure\s+\S+ manual unverified: no sentinel majority/);
    } finally {
      for (const s of stopped) await stack.redis.startSentinel(s);
    }
    await expect.poll(async () => (await statusJson()).code, { timeout: 20_000 }).toBe(0);
  });

  it('a wrong token: exit 2 and "401: the token in FILE is not the service\'s"', async () => {
    const wrong = join(dir, 'wrong.token');
    writeFileSync(wrong, 'not-the-token\n');
    const r = await cli(['status', '--url', stack.service!.url, '--token-file', wrong]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`401: the token in ${wrong} is not the service's`);
  });

  it('nobody listening: exit 2 naming the URL and the cause; an unknown master set: exit 2 naming it', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const r = await cli(['status', '--url', url, '--token-file', tokenFile]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`cannot reach sentinel-switch at ${url}`);
    expect(r.stderr).toContain('ECONNREFUSED');
    const unknown = await cli(['status', '--master-set', 'othermaster'], inPod);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/404.*othermaster/);
  });

  it('GET /v1/status is behind the token like every /v1 route', async () => {
    expect((await fetch(`${stack.service!.url}/v1/status`)).status).toBe(401);
    const ok = await fetch(`${stack.service!.url}/v1/status?masterSet=mymaster`, { headers: { authorization: `Bearer ${stack.token}` } });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as Status).masterSets.map((m) => m.masterSet)).toEqual(['mymaster']);
    const bad = await fetch(`${stack.service!.url}/v1/status?color=red`, { headers: { authorization: `Bearer ${stack.token}` } });
    expect(bad.status).toBe(400);
  });
});

describe('sentinel-switch status, target.kind endpointSlice', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ dir: sandbox('status-slice'), cluster: await testCluster(), target: 'endpointSlice', config: { reconcileIntervalSeconds: 3600 } });
  });
  afterAll(async () => stack?.stop());

  it('the target is the Service and its EndpointSlice, naming the master pod ip:port; a slice changed by hand is drift until reconciled', async () => {
    const env = { SENTINEL_SWITCH_CONFIG: stack.service!.configPath };
    const master = await stack.redis.masterByMajority();
    const r = await cli(['status', '--json'], env);
    expect(r.code).toBe(0);
    const m = (JSON.parse(r.stdout) as Status).masterSets[0]!;
    expect(m.target).toEqual({
      kind: 'endpointSlice', service: `${stack.namespace}/${TARGET}`, endpointSlice: `${stack.namespace}/${TARGET}`, exists: true,
      current: `${master.host}:${master.port}`, desired: `${master.host}:${master.port}`,
    });
    expect(m.drift).toEqual({ state: 'none' });

    const replica = stack.redis.nodes.find((n) => n.host !== master.host)!;
    const patch = { endpoints: [{ addresses: [replica.host], conditions: { ready: true, serving: true, terminating: false } }] };
    await kubectl(stack.adminKubeconfig, ['patch', 'endpointslice', TARGET, '-n', stack.namespace, '--type=merge', '-p', JSON.stringify(patch)]);
    const drifted = await cli(['status'], env);
    expect(drifted.code).toBe(1);
    expect(drifted.stdout).toContain(`EndpointSlice ${stack.namespace}/${TARGET}`);
    expect(drifted.stdout).toContain(`names ${replica.host}:${master.port}`);
    expect(drifted.stdout).toMatch(/drift\s+DRIFT: /);

    await fetch(`${stack.service!.url}/v1/reconcile`, { method: 'POST', headers: { authorization: `Bearer ${stack.token}`, 'content-type': 'application/json' }, body: '{}' });
    const fixed = await cli(['status', '--json'], env);
    expect(fixed.code).toBe(0);
    expect((JSON.parse(fixed.stdout) as Status).masterSets[0]!.lastSwitch).toMatchObject({ reason: 'manual', from: `${replica.host}:${master.port}`, to: `${master.host}:${master.port}` });
  });
});
