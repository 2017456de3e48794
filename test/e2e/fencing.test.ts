// The fencing promises, end to end: real Redis and Sentinel, the real service as its own process
// (subscribed to Sentinel's pub/sub), the real API server, and an application that knows only the
// stable name and records every write. Figures are printed (never asserted as timings):
//   FENCE_ROUNDS=N   planned failovers in the first test (default 2)
//   FENCE_STALE_ROUNDS=N  stale-master returns in the second test (default 1)
//   FENCE_MIN_REPLICAS=S  the stale returns run with min-replicas-to-write 1, min-replicas-max-lag S
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type AppWriter, firstNewAck, judgeWrites, presentKeys, startAppWriter, type WriteRecord } from '../harness/app-client.ts';
import { kubectl, testCluster } from '../harness/k8s.ts';
import type { RedisNode } from '../harness/redis.ts';
import { type Stack, type StackOptions, startStack } from '../harness/stack.ts';
import { repoRoot } from '../harness/switch.ts';

const nowMs = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const sandbox = (name: string): string => mkdtempSync(join(repoRoot, '.sandbox', `${name}-`));
const ROUNDS = Number(process.env.FENCE_ROUNDS ?? 2);
const STALE_ROUNDS = Number(process.env.FENCE_STALE_ROUNDS ?? 1);

async function nodeCall(stack: Stack, node: { host: string; port: number }, args: [string, ...string[]]): Promise<unknown> {
  const r = new Redis({ host: node.host, port: node.port, password: stack.redis.password, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return await r.call(...args);
  } finally {
    r.disconnect();
  }
}

/** Calls of our fence commands a node received since the last CONFIG RESETSTAT. */
async function fenceCalls(stack: Stack, node: RedisNode): Promise<Record<string, number>> {
  const info = String(await nodeCall(stack, node, ['INFO', 'commandstats']));
  const out: Record<string, number> = {};
  for (const cmd of ['client|pause', 'client|unpause', 'replicaof']) out[cmd] = Number(new RegExp(`^cmdstat_${cmd.replace('|', '\\|')}:calls=(\\d+)`, 'm').exec(info)?.[1] ?? 0);
  return out;
}

const nodeAt = (stack: Stack, a: { host: string }): RedisNode => stack.redis.nodes.find((n) => n.host === a.host)!;
const logs = (stack: Stack, msg: string, since = 0): Record<string, unknown>[] =>
  stack.service!.logLines().filter((l) => l.msg === msg && Number(l.time) >= since);

function writer(stack: Stack, name: string, mode: 'reconnect' | 'sticky' = 'reconnect'): AppWriter {
  return startAppWriter({ host: stack.stableName, port: stack.redis.nodes[0]!.port, password: stack.redis.password, keyPrefix: `${name}-${Date.now()}`, resolve: stack.resolve, rate: 100, mode });
}

async function judge(stack: Stack, records: readonly WriteRecord[]) {
  const master = await stack.redis.masterByMajority();
  return { master, present: await presentKeys({ ...master, password: stack.redis.password }, records.map((r) => r.key)) };
}

/** A planned failover under load, until the Service names the new master and Sentinel is stable again. */
async function plannedFailover(stack: Stack): Promise<{ from: RedisNode; to: RedisNode; switchAt: number; startedAt: number }> {
  const from = nodeAt(stack, await stack.redis.masterByMajority());
  const watcher = stack.redis.watchSwitches();
  await watcher.ready();
  const startedAt = nowMs();
  await stack.redis.failover();
  const first = await watcher.waitForNext(20_000);
  await watcher.close();
  const to = nodeAt(stack, first.to);
  await stack.waitForTarget(stack.dnsName(to), 15_000);
  await stack.redis.waitStable(30_000);
  return { from, to, switchAt: first.atMs, startedAt };
}

describe('fencing: no acknowledged write is lost to a demoted or returning master', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ dir: sandbox('e2e-fence'), cluster: await testCluster() });
  });
  afterAll(async () => stack?.stop());

  it(`planned failovers under 100 writes/s through the stable name lose 0 acknowledged writes; no fence reaches the new master; no second failover follows`, async () => {
    const w = writer(stack, 'planned');
    await sleep(1_000);
    const rounds: { from: RedisNode; to: RedisNode; switchAt: number; startedAt: number; endedAt: number }[] = [];
    const switchWatch = stack.redis.watchSwitches();
    await switchWatch.ready();
    for (let i = 0; i < ROUNDS; i++) {
      await Promise.all(stack.redis.nodes.map((n) => nodeCall(stack, n, ['CONFIG', 'RESETSTAT'])));
      const r = await plannedFailover(stack);
      await sleep(1_000);
      rounds.push({ ...r, endedAt: nowMs() });
      // The majority's master received no fence command; the old one was paused and demoted by us.
      expect(await fenceCalls(stack, r.to)).toEqual({ 'client|pause': 0, 'client|unpause': 0, replicaof: 0 });
      expect((await fenceCalls(stack, r.from))['client|pause']).toBeGreaterThan(0);
    }
    await w.stop();
    // No spurious second failover: each planned failover is one +switch-master per sentinel, and
    // no more came while we waited for stability after it.
    await sleep(3_000);
    expect(switchWatch.events.length).toBe(ROUNDS * stack.redis.sentinels.length);
    await switchWatch.close();

    const { present } = await judge(stack, w.records);
    const total = judgeWrites(w.records, present);
    for (const [i, r] of rounds.entries()) {
      const window = w.records.filter((x) => x.sentAt >= r.startedAt && x.sentAt < r.endedAt);
      const first = firstNewAck(w.records, r.switchAt, present);
      const fenceLines = stack.service!.logLines().filter((l) => String(l.msg).startsWith('fence: ') && Number(l.time) >= r.startedAt - 5 && Number(l.time) < r.endedAt);
      const paused = fenceLines.find((l) => l.msg === 'fence: paused');
      const unpaused = fenceLines.find((l) => l.msg === 'fence: unpaused');
      console.log(
        `[fencing] planned failover ${i + 1}: ${JSON.stringify(judgeWrites(window, present))}; first ack by the new master ${first ? Math.round(first.ackAt! - r.switchAt) : 'none'} ms after +switch-master; ` +
          `old master paused ${paused?.reason} for ${unpaused?.paused_ms} ms (lifted: ${unpaused?.why})`,
      );
      // Every fence line names the old master, never the node the majority names.
      expect(fenceLines.filter((l) => l.node === `${r.to.host}:${r.to.port}`)).toEqual([]);
      expect(paused).toMatchObject({ reason: 'early', node: `${r.from.host}:${r.from.port}` });
      expect(unpaused).toMatchObject({ why: 'demoted' });
    }
    console.log(`[fencing] ${ROUNDS} planned failovers with fencing: ${JSON.stringify(total)}`);
    expect(total.acked).toBeGreaterThan(0);
    expect(total.lostAcked).toBe(0);
    // One Service write per failover, as without the subscription.
    const writes = stack.serviceChanges.filter((c) => c.type === 'MODIFIED' && c.atMs >= rounds[0]!.startedAt).length;
    expect(writes).toBe(ROUNDS);
    const reasons = stack.serviceChanges.filter((c) => c.type === 'MODIFIED').map((c) => c.annotations['sentinel-switch.io/last-switch-reason']);
    console.log(`[fencing] switch reasons: ${reasons.join(', ')}`);
  });

  it('a stale master that returns (SIGSTOP, failover, SIGCONT) is fenced before it acknowledges any write sent after its return', async () => {
    const lag = process.env.FENCE_MIN_REPLICAS;
    const setMinReplicas = (n: string) => Promise.all(stack.redis.nodes.map((x) => nodeCall(stack, x, ['CONFIG', 'SET', 'min-replicas-to-write', n, 'min-replicas-max-lag', lag ?? '10'])));
    if (lag) await setMinReplicas('1');
    try {
      for (let round = 1; round <= STALE_ROUNDS; round++) await staleReturn(round);
    } finally {
      if (lag) await setMinReplicas('0');
    }
  });

  async function staleReturn(round: number): Promise<void> {
    const stale = nodeAt(stack, await stack.redis.masterByMajority());
    // A client that keeps its connection through errors (Jedis, redis-py): it stays on the old master.
    const w = writer(stack, 'stale', 'sticky');
    await sleep(1_000);
    await stack.redis.stopNode(stale, 'SIGSTOP');
    let resumedAt = 0;
    try {
      await expect.poll(async () => (await stack.redis.masterByMajority()).host, { timeout: 20_000 }).not.toBe(stale.host);
      const master = await stack.redis.masterByMajority();
      await stack.waitForTarget(stack.dnsName(master), 15_000);
      // The sweep after the switch finds the old master unreachable and queues its fence.
      await expect.poll(() => logs(stack, 'fence: stale master does not answer; a pause is queued for its return').filter((l) => l.node === `${stale.host}:${stale.port}`).length, { timeout: 10_000 }).toBeGreaterThan(0);
      await sleep(1_000);
    } finally {
      resumedAt = nowMs();
      await stack.redis.stopNode(stale, 'SIGCONT');
    }
    await expect.poll(() => logs(stack, 'fence: demoted').filter((l) => l.node === `${stale.host}:${stale.port}` && Number(l.at) > resumedAt).length, { timeout: 10_000 }).toBe(1);
    await sleep(1_500);
    await w.stop();
    const { present } = await judge(stack, w.records);
    const after = judgeWrites(w.records.filter((r) => r.sentAt > resumedAt), present);
    const buffered = judgeWrites(w.records.filter((r) => r.sentAt <= resumedAt && r.ackAt !== undefined && r.ackAt > resumedAt), present);
    const fence = logs(stack, 'fence: paused').find((l) => l.reason === 'return' && l.node === `${stale.host}:${stale.port}` && Number(l.at) > resumedAt);
    console.log(`[fencing] stale return ${round}${process.env.FENCE_MIN_REPLICAS ? ` (min-replicas-to-write 1, max-lag ${process.env.FENCE_MIN_REPLICAS})` : ''}: sent after its return ${JSON.stringify(after)}; lostAckedBuffered (sent while it was frozen, acknowledged at its return) ${buffered.lostAcked}; return-to-fence ${fence ? (Number(fence.at) - resumedAt).toFixed(1) : 'none'} ms`);
    expect(fence).toBeDefined();
    expect(after.acked).toBeGreaterThan(0);
    expect(after.lostAcked).toBe(0);
    await stack.redis.waitStable(30_000);
  }

  it('the event subscription survives a sentinel restart: its +switch-master arrives again', async () => {
    const s = stack.redis.sentinels[1]!;
    await stack.redis.stopSentinel(s);
    await sleep(500);
    await stack.redis.startSentinel(s);
    await stack.redis.waitStable(30_000);
    await sleep(2_500); // past the subscription's longest backoff (2 s)
    const since = nowMs();
    await plannedFailover(stack);
    const from = logs(stack, 'sentinel event', since).map((l) => l.event as { kind: string; sentinel: string });
    expect(from.filter((e) => e.kind === 'switch-master').map((e) => e.sentinel)).toContain(`${s.host}:${s.port}`);
  });

  // The control: the same failover and writer without fencing must lose writes, or the 0 above
  // would prove nothing about fencing.
  it('without fencing, the same planned failover loses acknowledged writes (the control)', async () => {
    await stack.service!.stop();
    const set = stack.switchConfig.masterSets[0] as Record<string, unknown>;
    const svc = await stack.startService('no-fencing', { masterSets: [{ ...set, fencing: { enabled: false } }] });
    try {
      const w = writer(stack, 'nofence');
      await sleep(1_000);
      const r = await plannedFailover(stack);
      await sleep(1_000);
      await w.stop();
      const { present } = await judge(stack, w.records);
      const first = firstNewAck(w.records, r.switchAt, present);
      const v = judgeWrites(w.records, present);
      console.log(`[fencing] planned failover WITHOUT fencing: ${JSON.stringify(v)}; first ack by the new master ${first ? Math.round(first.ackAt! - r.switchAt) : 'none'} ms after +switch-master`);
      expect(v.lostAcked).toBeGreaterThan(0);
    } finally {
      await svc.stop();
    }
  });
});

describe('fencing is bounded, reversible and never blocks the switch', () => {
  let stack: Stack | undefined;
  afterEach(async () => {
    await stack?.stop();
    stack = undefined;
  });
  async function start(name: string, opts: Partial<StackOptions> & { fencing?: Record<string, unknown> } = {}): Promise<Stack> {
    const s = await startStack({ dir: sandbox(name), cluster: await testCluster(), startService: false, ...opts });
    stack = s;
    const set = s.switchConfig.masterSets[0] as Record<string, unknown>;
    if (opts.fencing) set.fencing = opts.fencing;
    s.service = await s.startService();
    // The start-up reconcile has verified the master: the early fence knows it.
    await expect.poll(() => s.service!.logLines().filter((l) => l.result === 'unchanged').length, { timeout: 10_000 }).toBeGreaterThan(0);
    return s;
  }

  it('an aborted failover lifts the pause; the next attempt is fenced again and loses nothing', async () => {
    // down-after 5 s: the 3 s pause of an aborted attempt must not make the sentinels flag the master down.
    const s = await start('e2e-fence-abort', { redis: { failoverTimeoutMs: 3_000, downAfterMs: 5_000 } });
    const master = nodeAt(s, await s.redis.masterByMajority());
    const replicas = s.redis.nodes.filter((n) => n !== master);
    // The replicas refuse Sentinel's SLAVEOF NO ONE: the promotion never happens.
    for (const r of replicas) await nodeCall(s, r, ['ACL', 'SETUSER', 'default', '-slaveof', '-replicaof']);
    const w = writer(s, 'abort');
    await sleep(1_000);
    const t0 = nowMs();
    await s.redis.failover();
    await expect.poll(() => logs(s, 'fence: unpaused', t0).filter((l) => l.why === 'abort').length, { timeout: 20_000 }).toBe(1);
    expect(logs(s, 'fence: paused', t0)).toEqual([expect.objectContaining({ reason: 'early', node: `${master.host}:${master.port}` })]);
    const liftedAt = nowMs();
    await sleep(1_500);
    // Writes are acknowledged by the same master again, and the Service never moved.
    expect(w.records.filter((r) => r.sentAt > liftedAt && r.ackAt !== undefined).length).toBeGreaterThan(50);
    expect((await s.readService()).externalName).toBe(s.dnsName(master));

    for (const r of replicas) await nodeCall(s, r, ['ACL', 'SETUSER', 'default', '+slaveof', '+replicaof']);
    await s.redis.waitStable(30_000);
    const t1 = nowMs();
    await s.redis.failover();
    await expect.poll(async () => (await s.redis.masterByMajority()).host, { timeout: 20_000 }).not.toBe(master.host);
    await s.waitForTarget(s.dnsName(await s.redis.masterByMajority()), 15_000);
    await expect.poll(() => logs(s, 'fence: unpaused', t1).filter((l) => l.why === 'demoted').length, { timeout: 10_000 }).toBe(1);
    expect(logs(s, 'fence: paused', t1)).toEqual([expect.objectContaining({ reason: 'early', node: `${master.host}:${master.port}` })]);
    await sleep(1_000);
    await w.stop();
    const { present } = await judge(s, w.records);
    const report = judgeWrites(w.records, present);
    console.log(`[fencing] aborted attempt + fenced retry: ${JSON.stringify(report)}`);
    expect(report.lostAcked).toBe(0);
  });

  it('sentinel-switch SIGKILLed while it holds a pause: the pause ends by its own bound', async () => {
    const pauseMs = 2_000;
    const s = await start('e2e-fence-kill', { fencing: { pauseMs } });
    const master = nodeAt(s, await s.redis.masterByMajority());
    const t0 = nowMs();
    await s.redis.failover();
    await expect.poll(() => logs(s, 'fence: paused', t0).length, { timeout: 10_000, interval: 5 }).toBe(1);
    await s.service!.stop('SIGKILL');
    const pausedAt = Number(logs(s, 'fence: paused', t0)[0]!.at);
    // A write sent to the old master now waits for the pause, and is answered once it ends.
    const r = new Redis({ host: master.host, port: master.port, password: s.redis.password, commandTimeout: pauseMs + 10_000, maxRetriesPerRequest: 0, retryStrategy: () => null });
    r.on('error', () => undefined);
    try {
      const reply = await r.set('after-kill', '1').then((x) => String(x), (e: Error) => e.message);
      const answeredAfterMs = nowMs() - pausedAt;
      console.log(`[fencing] sentinel-switch killed holding a ${pauseMs} ms pause: a write to the old master was answered (${reply.slice(0, 40)}) ${Math.round(answeredAfterMs)} ms after the pause began`);
      expect(reply).toMatch(/^OK$|^READONLY/);
      // The bound with a wide margin for a loaded machine: never anything like Sentinel's own ~10 s demotion.
      expect(answeredAfterMs).toBeLessThan(pauseMs + 3_000);
    } finally {
      r.disconnect();
    }
  });

  it('NOPERM: an ACL user without the fence commands gets a clear error naming them, and the switch still happens', async () => {
    const s0 = await startStack({ dir: sandbox('e2e-fence-noperm'), cluster: await testCluster(), startService: false });
    stack = s0;
    for (const n of s0.redis.nodes) await nodeCall(s0, n, ['ACL', 'SETUSER', 'switch', 'on', `>${s0.redis.password}`, '~*', '&*', '+@all', '-client|pause', '-replicaof']);
    const set = s0.switchConfig.masterSets[0] as Record<string, unknown>;
    set.redisAuth = { username: 'switch', password: { env: 'REDIS_PASSWORD' } };
    s0.service = await s0.startService();
    await expect.poll(() => s0.service!.logLines().filter((l) => l.result === 'unchanged').length, { timeout: 10_000 }).toBeGreaterThan(0);
    const before = await s0.redis.masterByMajority();
    const t0 = nowMs();
    await s0.redis.failover();
    await expect.poll(async () => (await s0.redis.masterByMajority()).host, { timeout: 20_000 }).not.toBe(before.host);
    await s0.waitForTarget(s0.dnsName(await s0.redis.masterByMajority()), 15_000);
    await expect.poll(() => s0.service!.logLines().filter((l) => Number(l.time) >= t0 && l.level === 50 && /NOPERM/.test(String(l.err))).length, { timeout: 10_000 }).toBeGreaterThan(0);
    const line = s0.service!.logLines().find((l) => Number(l.time) >= t0 && l.level === 50 && /NOPERM/.test(String(l.err)))!;
    expect(String(line.msg)).toMatch(/ACL user "switch" lacks a command .*\+client\|pause \+client\|unpause \+client\|list \+client\|kill, and \+replicaof/);
    expect(String(line.msg)).toMatch(/fencing\.enabled: false/);
    await expect
      .poll(async () => (await kubectl(s0.adminKubeconfig, ['get', 'events', '-n', s0.namespace, '-o', 'json'])).stdout, { timeout: 10_000 })
      .toMatch(/"reason": "FenceFailed"/);
    const metrics = await (await fetch(`${s0.service!.url}/metrics`)).text();
    expect(metrics).toMatch(/^sentinel_switch_fence_errors_total\{master_set="mymaster",step="pause"\} [1-9]/m);
  });
});
