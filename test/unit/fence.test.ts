// Pure fencing logic: whom to pause, kill, demote or unpause, and how Sentinel's events and
// Redis' CLIENT LIST are read. No I/O.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config.ts';
import { clientsToKill, type FenceRole, type NodeView, parseClientList, parseFenceRole, planFence } from '../../src/decide/fence.ts';
import { addressKey } from '../../src/decide/index.ts';
import { parseSentinelEvent } from '../../src/sentinel/events.ts';

const M = { host: '198.18.0.2', port: 6379 };
const P = { host: '198.18.0.1', port: 6379 };
const R = { host: '198.18.0.3', port: 6379 };
const view = (node: typeof M, role: FenceRole, o: Partial<NodeView> = {}): NodeView => ({ node, role, suspect: false, ...o });
const plan = (nodes: NodeView[], o: { named?: (typeof M)[]; serviceNamesMaster?: boolean; demote?: boolean } = {}) =>
  planFence({ master: M, named: o.named ?? [M], serviceNamesMaster: o.serviceNamesMaster ?? true, demote: o.demote ?? true, nodes });
const steps = (p: ReturnType<typeof plan>, node = P) => p.find((x) => addressKey(x.node) === addressKey(node))?.steps.map((s) => (s.step === 'unpause' ? `unpause:${s.why}` : s.step));

describe('planFence: a stale master is paused, emptied, demoted and unpaused; the verified master never', () => {
  it('a stale master not yet paused: pause, kill, demote, wait for the replica link, unpause', () => {
    expect(steps(plan([view(P, { role: 'master' })]))).toEqual(['pause', 'kill', 'demote', 'await-replica', 'unpause:demoted']);
  });
  it('already paused at +selected-slave: no second pause', () => {
    expect(steps(plan([view(P, { role: 'master' }, { paused: 'early' })]))).toEqual(['kill', 'demote', 'await-replica', 'unpause:demoted']);
  });
  it('the Service does not name the verified master yet: its clients are kept (they would come back to it), it is still demoted', () => {
    expect(steps(plan([view(P, { role: 'master' })], { serviceNamesMaster: false }))).toEqual(['pause', 'demote', 'await-replica', 'unpause:demoted']);
  });
  it('demote off: pause and kill only; the pause ends by its bound and Sentinel demotes', () => {
    expect(steps(plan([view(P, { role: 'master' })], { demote: false }))).toEqual(['pause', 'kill']);
  });
  it('mid-failover the promoted replica says master while the majority still names the old one: it is not touched', () => {
    // The majority (verified) is still P; the leader alone names M, which already reports ROLE master.
    const p = planFence({ master: P, named: [P, M], serviceNamesMaster: true, demote: true, nodes: [view(M, { role: 'master' }), view(P, { role: 'master' }, { paused: 'early' })] });
    expect(p).toEqual([]);
  });
  it('a replica a sentinel flags promoted (SLAVEOF NO ONE sent, the majority not moved yet) is never fenced, though it says master', () => {
    expect(planFence({ master: P, named: [P, P, P], promoted: [M], serviceNamesMaster: true, demote: true, nodes: [view(M, { role: 'master' }, { suspect: true })] })).toEqual([]);
  });
  it('a stale master still named by a lagging sentinel waits for the next run', () => {
    expect(plan([view(P, { role: 'master' }, { paused: 'early' })], { named: [M, M, P] })).toEqual([]);
  });
  it('the verified master held paused by a switch or return pause is unpaused at once; an early pause is held (the failover is under way)', () => {
    expect(steps(plan([view(M, { role: 'master' }, { paused: 'switch' })]), M)).toEqual(['unpause:majority']);
    expect(steps(plan([view(M, { role: 'master' }, { paused: 'return' })]), M)).toEqual(['unpause:majority']);
    expect(plan([view(M, { role: 'master' }, { paused: 'early' })])).toEqual([]);
  });
  it('a paused node that reports slave is unpaused; an unpaused replica is left alone', () => {
    expect(steps(plan([view(P, { role: 'slave', master: M, linkUp: true }, { paused: 'early' })]))).toEqual(['unpause:replica']);
    expect(plan([view(R, { role: 'slave', master: M, linkUp: true })])).toEqual([]);
  });
  it('an unreachable node is not fenced; if it was a master it is watched for its return', () => {
    expect(plan([view(P, { error: 'timeout' })])).toEqual([]);
    expect(steps(plan([view(P, { error: 'timeout' }, { suspect: true })]))).toEqual(['watch']);
    expect(plan([view(P, { error: 'timeout' }, { suspect: true })], { named: [M, P] })).toEqual([]);
  });
  it('property: no step but unpause is ever planned for the verified master, nor any for a node a sentinel names while it says master', () => {
    const addr = fc.constantFrom(M, P, R);
    const role: fc.Arbitrary<FenceRole> = fc.oneof(
      fc.constant({ role: 'master' as const }),
      addr.map((m) => ({ role: 'slave' as const, master: m, linkUp: true })),
      fc.constant({ error: 'timeout' }),
    );
    const nodeView = fc.record({ node: addr, role, paused: fc.constantFrom(undefined, 'early', 'switch', 'return' as const), suspect: fc.boolean() });
    fc.assert(
      fc.property(fc.array(nodeView, { maxLength: 6 }), fc.array(addr, { maxLength: 4 }), fc.boolean(), fc.boolean(), (nodes, named, svc, demote) => {
        const plans = planFence({ master: M, named: [M, ...named], promoted: named.slice(0, 1), serviceNamesMaster: svc, demote, nodes });
        for (const p of plans) {
          if (addressKey(p.node) === addressKey(M)) expect(p.steps.every((s) => s.step === 'unpause')).toBe(true);
          const v = nodes.find((n) => addressKey(n.node) === addressKey(p.node))!;
          if (named.some((n) => addressKey(n) === addressKey(p.node))) expect(p.steps.every((s) => s.step === 'unpause')).toBe(true);
          if (p.steps.some((s) => s.step === 'kill')) expect(svc).toBe(true);
          if (p.steps.some((s) => s.step === 'pause' || s.step === 'kill' || s.step === 'demote')) expect(v.role).toEqual({ role: 'master' });
        }
      }),
    );
  });
});

describe('reading Redis', () => {
  it('ROLE of a replica says whether its link is up', () => {
    expect(parseFenceRole(['slave', '198.18.0.2', 6379, 'connected', 100])).toEqual({ role: 'slave', master: M, linkUp: true });
    expect(parseFenceRole(['slave', '198.18.0.2', 6379, 'connecting', -1])).toMatchObject({ linkUp: false });
    expect(parseFenceRole(['master', 0, []])).toEqual({ role: 'master' });
    expect(parseFenceRole('OK')).toHaveProperty('error');
  });
  it('CLIENT LIST: applications are closed; replicas, the master link, Sentinel and sentinel-switch are spared', () => {
    const list = [
      'id=3 addr=198.18.0.11:40000 laddr=198.18.0.1:6379 fd=8 name=sentinel-1a2b3c4d-cmd age=9 idle=0 flags=N db=0 cmd=ping',
      'id=4 addr=198.18.0.11:40001 laddr=198.18.0.1:6379 fd=9 name=sentinel-1a2b3c4d-pubsub age=9 idle=0 flags=P db=0 cmd=subscribe',
      'id=5 addr=198.18.0.3:40002 laddr=198.18.0.1:6379 fd=10 name= age=9 idle=0 flags=S db=0 cmd=replconf',
      'id=6 addr=198.18.0.50:40003 laddr=198.18.0.1:6379 fd=11 name= age=9 idle=0 flags=N db=0 cmd=set',
      'id=7 addr=198.18.0.51:40004 laddr=198.18.0.1:6379 fd=12 name=app age=9 idle=0 flags=P db=0 cmd=subscribe',
      'id=8 addr=198.18.0.60:40005 laddr=198.18.0.1:6379 fd=13 name=sentinel-switch age=9 idle=0 flags=N db=0 cmd=client|list',
      'id=9 addr=198.18.0.52:40006 laddr=198.18.0.1:6379 fd=14 name=sentinel-impostor age=9 idle=0 flags=b db=0 cmd=blpop',
      '',
    ].join('\n');
    expect(clientsToKill(parseClientList(list))).toEqual(['6', '7', '9']);
  });
});

describe('parseSentinelEvent: Sentinel payloads, only of the configured master set', () => {
  it('+selected-slave names the replica and the master being failed over', () => {
    expect(parseSentinelEvent('+selected-slave', 'slave 198.18.0.2:6379 198.18.0.2 6379 @ mymaster 198.18.0.1 6379', 's1', 'mymaster')).toEqual({
      kind: 'selected-slave', sentinel: 's1', masterSet: 'mymaster', replica: M, master: P,
    });
  });
  it('+switch-master', () => {
    expect(parseSentinelEvent('+switch-master', 'mymaster 198.18.0.1 6379 198.18.0.2 6379', 's1', 'mymaster')).toEqual({ kind: 'switch-master', sentinel: 's1', masterSet: 'mymaster', from: P, to: M });
  });
  it('-failover-abort-* names why', () => {
    expect(parseSentinelEvent('-failover-abort-slave-timeout', 'master mymaster 198.18.0.1 6379', 's1', 'mymaster')).toMatchObject({ kind: 'failover-abort', why: 'slave-timeout', master: P });
  });
  it('-sdown / +sdown of a master or replica; a sentinel is left out', () => {
    expect(parseSentinelEvent('-sdown', 'master mymaster 198.18.0.1 6379', 's1', 'mymaster')).toMatchObject({ kind: 'sdown-cleared', node: P, nodeType: 'master' });
    expect(parseSentinelEvent('+sdown', 'slave 198.18.0.1:6379 198.18.0.1 6379 @ mymaster 198.18.0.2 6379', 's1', 'mymaster')).toMatchObject({ kind: 'sdown', node: P, nodeType: 'slave' });
    expect(parseSentinelEvent('+sdown', 'sentinel 198.18.0.12:26379 198.18.0.12 26379 @ mymaster 198.18.0.2 6379', 's1', 'mymaster')).toBeUndefined();
  });
  it('another master set, or a malformed payload, is nothing', () => {
    expect(parseSentinelEvent('+switch-master', 'other 198.18.0.1 6379 198.18.0.2 6379', 's1', 'mymaster')).toBeUndefined();
    expect(parseSentinelEvent('+selected-slave', 'slave 198.18.0.2:6379 198.18.0.2 6379 @ other 198.18.0.1 6379', 's1', 'mymaster')).toBeUndefined();
    expect(parseSentinelEvent('+switch-master', 'mymaster 198.18.0.1 notaport 198.18.0.2 6379', 's1', 'mymaster')).toBeUndefined();
    expect(parseSentinelEvent('+failover-end', 'garbage', 's1', 'mymaster')).toBeUndefined();
    expect(parseSentinelEvent('+selected-slave', 'master mymaster 198.18.0.1 6379', 's1', 'mymaster')).toBeUndefined();
  });
});

describe('config: fencing is on by default, per master set', () => {
  const base = { token: { env: 'T' }, masterSets: [{ name: 'mymaster', sentinels: ['s:26379'], target: { namespace: 'ns', name: 'svc' } }] };
  it('defaults', () => {
    expect(parseConfig(base).masterSets[0]!.fencing).toEqual({ enabled: true, early: true, demote: true, pauseMs: 5000 });
  });
  it('off with one field; an unknown field or a pause under 100 ms is an error naming it', () => {
    const off = parseConfig({ ...base, masterSets: [{ ...base.masterSets[0], fencing: { enabled: false } }] });
    expect(off.masterSets[0]!.fencing).toEqual({ enabled: false, early: true, demote: true, pauseMs: 5000 });
    expect(() => parseConfig({ ...base, masterSets: [{ ...base.masterSets[0], fencing: { pause: 1 } }] })).toThrow(/masterSets\.0\.fencing/);
    expect(() => parseConfig({ ...base, masterSets: [{ ...base.masterSets[0], fencing: { pauseMs: 5 } }] })).toThrow(/masterSets\.0\.fencing\.pauseMs/);
  });
});
