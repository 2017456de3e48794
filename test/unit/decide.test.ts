// Pure decision logic: no I/O, every branch of "what may be written".
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { classifyHost, confirms, decisive, planService, podDnsName, qualifyServiceName, tally, verify, type Vote } from '../../src/decide/index.ts';

const a = { host: 'redis-node-0.redis-headless.ns.svc.cluster.local', port: 6379 };
const b = { host: 'redis-node-1.redis-headless.ns.svc.cluster.local', port: 6379 };
const vote = (sentinel: string, master: { host: string; port: number }): Vote => ({ sentinel, master });
const fail = (sentinel: string): Vote => ({ sentinel, error: 'connection refused' });

describe('tally: a strict majority of the sentinels asked must name the same address', () => {
  it('3 of 3 agree', () => {
    const t = tally([vote('s1', a), vote('s2', a), vote('s3', a)]);
    expect(t).toMatchObject({ ok: true, master: a, agreeing: 3, needed: 2 });
  });
  it('2 of 3 agree while the third still names the old master (mid-failover)', () => {
    expect(tally([vote('s1', b), vote('s2', b), vote('s3', a)])).toMatchObject({ ok: true, master: b, agreeing: 2 });
  });
  it('the leader alone is not enough: 1 new vs 2 old elects the old master', () => {
    expect(tally([vote('s1', b), vote('s2', a), vote('s3', a)])).toMatchObject({ ok: true, master: a });
  });
  it('silent sentinels count against the majority: 1 answer of 3 is no majority', () => {
    const t = tally([vote('s1', b), fail('s2'), fail('s3')]);
    expect(t.ok).toBe(false);
    if (!t.ok) expect(t.why).toMatch(/1\/3 votes, 2 needed \(2 sentinel\(s\) did not answer\)/);
  });
  it('a split of 2 vs 2 among 4 sentinels is no majority', () => {
    expect(tally([vote('s1', a), vote('s2', a), vote('s3', b), vote('s4', b)]).ok).toBe(false);
  });
  it('host names compare case-insensitively and without the trailing dot', () => {
    const t = tally([vote('s1', { ...a, host: a.host.toUpperCase() }), vote('s2', { ...a, host: `${a.host}.` }), vote('s3', b)]);
    expect(t).toMatchObject({ ok: true, agreeing: 2 });
  });
  it('a configured quorum can demand more than a majority, never less', () => {
    expect(tally([vote('s1', a), vote('s2', a), vote('s3', b)], 3).ok).toBe(false);
    expect(tally([vote('s1', a), vote('s2', b), vote('s3', b)], 1)).toMatchObject({ ok: true, master: b });
  });
  it('no sentinel at all is no majority', () => {
    expect(tally([]).ok).toBe(false);
  });
});

describe('verify: the elected node must itself answer ROLE master', () => {
  const elected = tally([vote('s1', a), vote('s2', a), vote('s3', a)]);
  it('master', () => expect(verify(elected, { role: 'master' })).toEqual({ ok: true, master: a }));
  it('a replica is refused', () => {
    expect(verify(elected, { role: 'slave', master: b })).toMatchObject({ ok: false, why: expect.stringMatching(/ROLE slave, not master/) });
  });
  it('an unreachable node is refused', () => {
    expect(verify(elected, { error: 'ECONNREFUSED' })).toMatchObject({ ok: false, why: expect.stringMatching(/ROLE .* failed: ECONNREFUSED/) });
  });
  it('no majority is refused before ROLE matters', () => {
    expect(verify(tally([fail('s1'), fail('s2'), vote('s3', a)]), { role: 'master' }).ok).toBe(false);
  });
});

describe('classifyHost: what may become an externalName', () => {
  it('a DNS name is used as is, lower-cased, without the trailing dot', () => {
    expect(classifyHost('Redis-Node-0.redis-headless.ns.svc.cluster.local.')).toEqual({ kind: 'hostname', name: 'redis-node-0.redis-headless.ns.svc.cluster.local' });
  });
  it('IPv4 and IPv6 literals must be mapped to a pod', () => {
    expect(classifyHost('10.1.2.3')).toEqual({ kind: 'ip', ip: '10.1.2.3' });
    expect(classifyHost('fd00::1')).toEqual({ kind: 'ip', ip: 'fd00::1' });
  });
  it.each(['evil host', 'a_b.example', '-a.example', 'a..b', 'x'.repeat(64) + '.a', `${'a.'.repeat(127)}ab`, ''])('refuses %j', (h) => {
    expect(classifyHost(h).kind).toBe('invalid');
  });
});

describe('podDnsName', () => {
  it('StatefulSet pod', () => {
    expect(podDnsName({ hostname: 'redis-node-1', subdomain: 'redis-headless', namespace: 'db' }, 'cluster.local')).toBe('redis-node-1.redis-headless.db.svc.cluster.local');
  });
  it('a pod without subdomain has no DNS name', () => {
    expect(podDnsName({ hostname: 'x', namespace: 'db' }, 'cluster.local')).toBeUndefined();
  });
});

describe('planService: read first, write only when different', () => {
  const svc = 'ns/redis-master';
  const current = { exists: true as const, type: 'ExternalName', externalName: a.host, resourceVersion: '42' };
  it('same target: no write', () => expect(planService(current, a.host, svc)).toEqual({ action: 'none', target: a.host }));
  it('same target up to case and trailing dot: no write', () => {
    expect(planService({ ...current, externalName: `${a.host.toUpperCase()}.` }, a.host, svc).action).toBe('none');
  });
  it('different target: patch guarded by the resourceVersion that was read', () => {
    expect(planService(current, b.host, svc)).toEqual({ action: 'patch', target: b.host, previousTarget: a.host, resourceVersion: '42' });
  });
  it('a missing Service is not created behind the operator\'s back', () => {
    expect(planService({ exists: false }, b.host, svc)).toMatchObject({ action: 'refuse', why: expect.stringMatching(/ns\/redis-master does not exist/) });
  });
  it('a Service of another type is never converted', () => {
    expect(planService({ ...current, type: 'ClusterIP' }, b.host, svc)).toMatchObject({ action: 'refuse', why: expect.stringMatching(/type ClusterIP/) });
  });
});

describe('confirms: an event is a trigger, compared with the verified master', () => {
  it('same address', () => expect(confirms({ ...a, host: a.host.toUpperCase() }, a)).toBe(true));
  it('other address or nothing verified', () => {
    expect(confirms(b, a)).toBe(false);
    expect(confirms(b, undefined)).toBe(false);
  });
});

describe('qualifyServiceName: an ExternalName needs the absolute name', () => {
  it('completes <svc>.<ns>.svc (redis-ha announces it) with the cluster domain', () =>
    expect(qualifyServiceName('redis-ha-announce-0.redis.svc', 'cluster.local')).toBe('redis-ha-announce-0.redis.svc.cluster.local'));
  it('a trailing dot on the domain is dropped', () => expect(qualifyServiceName('a.b.svc', 'example.org.')).toBe('a.b.svc.example.org'));
  it('leaves full names and other names as they are', () => {
    expect(qualifyServiceName('redis-node-0.redis-headless.redis.svc.cluster.local', 'cluster.local')).toBe('redis-node-0.redis-headless.redis.svc.cluster.local');
    expect(qualifyServiceName('redis.example.com', 'cluster.local')).toBe('redis.example.com');
  });
});

describe('decisive: a tally decided before every sentinel answered is the tally of all answers', () => {
  const A = { host: '198.18.0.1', port: 6379 };
  const B = { host: '198.18.0.2', port: 6379 };
  it('2 of 3 agreeing decide; 1 of 3, or 2 of 5, do not', () => {
    const v = (master: typeof A): Vote => ({ sentinel: 's', master });
    expect(decisive([v(A), v(A)], 3)).toMatchObject({ ok: true, master: A, agreeing: 2, total: 3, needed: 2 });
    expect(decisive([v(A)], 3)).toBeUndefined();
    expect(decisive([v(A), v(A)], 5)).toBeUndefined();
    expect(decisive([v(A), v(B), v(A)], 3)).toMatchObject({ master: A });
    // A configured quorum above the majority is waited for.
    expect(decisive([v(A), v(A)], 3, 3)).toBeUndefined();
  });
  it('whatever the answers still to come, the full tally names the same master (property)', () => {
    const vote = fc.oneof(
      fc.constantFrom(A, B).map((master): Vote => ({ sentinel: 's', master })),
      fc.constant<Vote>({ sentinel: 's', error: 'timeout' }),
    );
    fc.assert(
      fc.property(fc.array(vote, { minLength: 1, maxLength: 7 }), fc.nat(), fc.option(fc.integer({ min: 1, max: 7 }), { nil: undefined }), (votes, cut, quorum) => {
        const answered = votes.slice(0, cut % (votes.length + 1));
        const early = decisive(answered, votes.length, quorum);
        if (early) expect(tally(votes, quorum)).toMatchObject({ ok: true, master: early.master });
      }),
      { numRuns: 5_000 },
    );
  });
});
