// The status table (src/status-table.ts) is pure: a status in, lines out. The real stack's
// tables are in test/status.test.ts; here the states that are hard to catch live: a fence in
// force, an EndpointSlice target that cannot be read, a node that does not answer.
import { describe, expect, it } from 'vitest';
import type { MasterSetStatus, Status } from '../../src/status.ts';
import { formatStatus } from '../../src/status-table.ts';

const base: MasterSetStatus = {
  masterSet: 'cache',
  ok: true,
  problems: [],
  sentinels: [
    { sentinel: '127.0.0.21:26379', master: '127.0.0.12:6379' },
    { sentinel: '127.0.0.22:26379', master: '127.0.0.12:6379' },
    { sentinel: '127.0.0.23:26379', error: 'sentinel 127.0.0.23:26379: connect ECONNREFUSED 127.0.0.23:26379' },
  ],
  majority: { ok: true, master: '127.0.0.12:6379', agreeing: 2, total: 3, needed: 2 },
  master: { address: '127.0.0.12:6379', role: 'master', verified: true },
  nodes: [
    { address: '127.0.0.12:6379', role: 'master', offset: 5000 },
    { address: '127.0.0.11:6379', role: 'slave', offset: 4990, lagBytes: 10, replicaOf: '127.0.0.12:6379', linkState: 'connected', sentinelFlags: 'slave' },
    { address: '127.0.0.13:6379', role: 'error', error: 'node 127.0.0.13:6379: connect ECONNREFUSED 127.0.0.13:6379', sentinelFlags: 's_down,slave,disconnected' },
  ],
  target: { kind: 'endpointSlice', service: 'redis/cache-master', endpointSlice: 'redis/cache-master', exists: true, current: '127.0.0.12:6379', desired: '127.0.0.12:6379' },
  drift: { state: 'none' },
  fences: [{ node: '127.0.0.11:6379', reason: 'early', since: '2026-12-02T16:00:00.000Z' }],
  lastSwitch: { at: '2026-12-02T15:59:59.000Z', reason: 'hook', from: '127.0.0.11:6379', to: '127.0.0.12:6379' },
  lastFailure: { at: '2026-12-02T15:59:58.000Z', reason: 'hook', result: 'unverified', why: 'no sentinel majority: best candidate 127.0.0.12:6379 has 1/3 votes, 2 needed' },
  durationMs: 4.2,
};
const status = (...sets: MasterSetStatus[]): Status => ({ at: '2026-12-02T16:00:01.000Z', ok: sets.every((s) => s.ok), masterSets: sets });

describe('the status table', () => {
  it('shows every answer, node, the EndpointSlice, the fences, the last switch and the last failure', () => {
    const out = formatStatus(status(base));
    expect(out).toContain('master set cache: OK');
    expect(out).toContain('  sentinels     2/3 agree on 127.0.0.12:6379, 2 needed');
    expect(out).toMatch(/127\.0\.0\.23:26379\s+error: sentinel 127\.0\.0\.23:26379: connect ECONNREFUSED/);
    expect(out).toMatch(/127\.0\.0\.11:6379\s+slave\s+4990\s+10\s+127\.0\.0\.12:6379\s+connected\s+slave\n/);
    expect(out).toMatch(/127\.0\.0\.13:6379\s+error\s+-\s+-\s+-\s+-\s+s_down,slave,disconnected\n/);
    expect(out).toContain('    127.0.0.13:6379: node 127.0.0.13:6379: connect ECONNREFUSED');
    expect(out).toContain('  target        endpointSlice Service redis/cache-master, EndpointSlice redis/cache-master');
    expect(out).toContain('  fences        127.0.0.11:6379 paused (early) since 2026-12-02T16:00:00.000Z');
    expect(out).toContain('  last switch   2026-12-02T15:59:59.000Z hook: from 127.0.0.11:6379 to master 127.0.0.12:6379');
    expect(out).toContain('  last failure  2026-12-02T15:59:58.000Z hook unverified: no sentinel majority');
    expect(out.trimEnd().split('\n').at(-1)).toBe('all 1 master set(s) fine (2026-12-02T16:00:01.000Z)');
    // Columns line up: every node row starts its ROLE where the header does.
    const lines = out.split('\n');
    const header = lines.find((l) => l.includes('NODE'))!;
    for (const l of lines.filter((x) => /^ {4}127\.0\.0\.1\d:6379 /.test(x))) expect(l.slice(header.indexOf('ROLE')).split(' ')[0]).toMatch(/^(master|slave|error)$/);
  });

  it('names the verdict of a master set that is not fine, and the target that cannot be read', () => {
    const unread: MasterSetStatus = {
      ...base,
      masterSet: 'sessions',
      ok: false,
      problems: ['RBAC: get services redis/sessions-master is forbidden (...)'],
      target: { kind: 'externalName', service: 'redis/sessions-master', error: 'RBAC: get services redis/sessions-master is forbidden (...)' },
      drift: { state: 'unknown', why: 'target not readable: RBAC: get services redis/sessions-master is forbidden (...)' },
      fences: [],
      lastSwitch: undefined,
      lastFailure: undefined,
    };
    const drifted: MasterSetStatus = { ...base, masterSet: 'drifted', ok: false, drift: { state: 'drift', why: 'x names a, the verified master needs b' }, problems: ['x names a, the verified master needs b'] };
    const noMajority: MasterSetStatus = { ...base, masterSet: 'split', ok: false, majority: { ok: false, agreeing: 1, total: 3, needed: 2, why: 'no sentinel majority' }, master: undefined, problems: ['no sentinel majority'] };
    const unverified: MasterSetStatus = { ...base, masterSet: 'dead', ok: false, master: { address: '127.0.0.12:6379', role: 'error: connect ECONNREFUSED', verified: false }, problems: ['ROLE of 127.0.0.12:6379 failed'] };
    const out = formatStatus(status(unread, drifted, noMajority, unverified));
    expect(out).toContain('master set sessions: PROBLEM');
    expect(out).toContain('                names ? (RBAC: get services redis/sessions-master is forbidden (...))');
    expect(out).toContain('  drift         UNKNOWN: target not readable');
    expect(out).toContain('  PROBLEM       RBAC: get services');
    expect(out).toContain('  last switch   (none recorded)');
    expect(out).toContain('  last failure  (none since start)');
    expect(out).toContain('master set drifted: DRIFT');
    expect(out).toContain('  drift         DRIFT: x names a, the verified master needs b');
    expect(out).toContain('master set split: NO MAJORITY');
    expect(out).toContain('  sentinels     no majority, 2 needed');
    expect(out).toContain('  master        (none elected)');
    expect(out).toContain('master set dead: MASTER NOT VERIFIED');
    expect(out).toContain('ROLE error: connect ECONNREFUSED  (not verified)');
    expect(out.trimEnd().split('\n').at(-1)).toBe('NOT FINE: sessions, drifted, split, dead (2026-12-02T16:00:01.000Z)');
  });
});
