// Pure parts of connection sharing: which identities may share a connection, and which master
// sets a shared subscription hands a message to. No I/O.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { identity, withServername } from '../../src/sentinel/connections.ts';
import { CHANNELS, masterSetsNamed, parseSentinelEvent } from '../../src/sentinel/events.ts';

describe('identity: master sets share a connection only as the same client', () => {
  it('the same user, password and TLS material share; any difference does not', () => {
    const tls = { ca: Buffer.from('CA'), rejectUnauthorized: true };
    const base = identity({ password: 'p' }, tls);
    expect(identity({ password: 'p' }, { ca: Buffer.from('CA'), rejectUnauthorized: true }).key).toBe(base.key);
    for (const other of [
      identity({ password: 'q' }, tls),
      identity({ username: 'u', password: 'p' }, tls),
      identity({}, tls),
      identity({ password: 'p' }),
      identity({ password: 'p' }, { ca: Buffer.from('other CA'), rejectUnauthorized: true }),
      identity({ password: 'p' }, { ca: Buffer.from('CA'), rejectUnauthorized: false }),
      identity({ password: 'p' }, { ...tls, cert: Buffer.from('client cert') }),
    ]) expect(other.key).not.toBe(base.key);
  });
  it('the key never holds the password itself', () => {
    expect(identity({ username: 'u', password: 'hunter2-secret' }).key).not.toContain('hunter2');
  });
  it('a TLS server name is part of the identity; without TLS it changes nothing', () => {
    const plain = identity({ password: 'p' });
    expect(withServername(plain, 'sentinel.example')).toBe(plain);
    const tls = identity({ password: 'p' }, { rejectUnauthorized: true });
    const a = withServername(tls, 'a.example');
    expect(a.key).not.toBe(tls.key);
    expect(a.key).not.toBe(withServername(tls, 'b.example').key);
    expect(a.tls?.servername).toBe('a.example');
  });
});

describe('masterSetsNamed: a shared subscription hands every event to the master set it belongs to', () => {
  it('each payload form names its master set', () => {
    expect(masterSetsNamed('+switch-master', 'set7 198.18.0.1 6379 198.18.0.2 6379')).toEqual(['set7']);
    expect(masterSetsNamed('+sdown', 'master set7 198.18.0.1 6379')).toEqual(['set7']);
    expect(masterSetsNamed('+selected-slave', 'slave 198.18.0.2:6379 198.18.0.2 6379 @ set7 198.18.0.1 6379')).toEqual(['set7']);
    expect(masterSetsNamed('+sdown', '')).toEqual([]);
  });
  const word = fc.stringMatching(/^[A-Za-z0-9._:@-]{1,12}$/);
  const name = fc.constantFrom('set1', 'other', 'master', '@');
  const ip = fc.constantFrom('198.18.0.1', '198.18.0.2', 'x');
  const port = fc.constantFrom('6379', '0', 'p');
  // Sentinel's payload shapes with arbitrary parts, and arbitrary words.
  const message = fc.oneof(
    fc.tuple(name, ip, port, ip, port).map((f) => f.join(' ')),
    fc.tuple(fc.constantFrom('master', 'slave', 'sentinel'), name, ip, port).map((f) => f.join(' ')),
    fc.tuple(fc.constantFrom('master', 'slave', 'sentinel'), word, ip, port, fc.constantFrom('@', 'x'), name, ip, port).map((f) => f.join(' ')),
    fc.array(fc.oneof(word, name, ip, port), { maxLength: 9 }).map((w) => w.join(' ')),
  );
  it('whenever parseSentinelEvent accepts a message for a master set, that set is among the names (property)', () => {
    fc.assert(
      fc.property(fc.constantFrom(...CHANNELS, '-failover-abort-not-elected'), message, fc.constantFrom('set1', 'other'), (channel, msg, masterSet) => {
        if (parseSentinelEvent(channel, msg, 's', masterSet)) expect(masterSetsNamed(channel, msg)).toContain(masterSet);
      }),
      { numRuns: 5_000 },
    );
  });
});
