// The config loader: a bad config must name the field and the fix.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfigFile, parseConfig, readSecret } from '../../src/config.ts';

const minimal = {
  token: { env: 'SS_TOKEN' },
  masterSets: [{ name: 'mymaster', sentinels: ['redis-headless.redis.svc.cluster.local:26379'], target: { namespace: 'redis', name: 'redis-master' } }],
};

describe('config', () => {
  it('fills sane defaults', () => {
    const c = parseConfig(minimal);
    expect(c.reconcileIntervalSeconds).toBe(30);
    expect(c.listen).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(c.kubernetes.clusterDomain).toBe('cluster.local');
    expect(c.masterSets[0]!.tls.enabled).toBe(false);
  });
  it('names the field that is wrong', () => {
    const bad = { ...minimal, masterSets: [{ ...minimal.masterSets[0], sentinels: ['no-port'] }] };
    expect(() => parseConfig(bad, 'x.yaml')).toThrow(/x\.yaml:\n {2}masterSets\.0\.sentinels\.0: must be host:port/);
  });
  it('refuses sentinel ports 0 and > 65535, naming the field; accepts 1 and 65535', () => {
    const withSentinels = (sentinels: string[]) => ({ ...minimal, masterSets: [{ ...minimal.masterSets[0], sentinels }] });
    for (const spec of ['redis-headless:0', 'redis-headless:65536', '[::1]:99999', 'redis:00000']) {
      expect(() => parseConfig(withSentinels(['ok:26379', spec]), 'x.yaml'), spec).toThrow(/x\.yaml:\n {2}masterSets\.0\.sentinels\.1: port must be 1-65535/);
    }
    expect(parseConfig(withSentinels(['a:1', 'b:65535', '[::1]:26379'])).masterSets[0]!.sentinels).toEqual(['a:1', 'b:65535', '[::1]:26379']);
  });
  it('rejects unknown fields instead of ignoring a typo', () => {
    expect(() => parseConfig({ ...minimal, reconcileIntervalSecond: 5 })).toThrow(/unrecognized key.*reconcileIntervalSecond/i);
  });
  it('rejects duplicate master sets', () => {
    expect(() => parseConfig({ ...minimal, masterSets: [minimal.masterSets[0], minimal.masterSets[0]] })).toThrow(/unique/);
  });
  it('a secret needs exactly one source', () => {
    expect(() => parseConfig({ ...minimal, token: { env: 'A', file: '/x' } })).toThrow(/token: set exactly one/);
  });
  it('reads YAML files and reports unreadable ones with the path', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ss-config-'));
    const file = join(dir, 'c.yaml');
    writeFileSync(file, 'token: {env: SS_TOKEN}\nmasterSets:\n  - name: mymaster\n    sentinels: ["127.0.0.1:26379"]\n    target: {namespace: redis, name: redis-master}\n');
    expect(loadConfigFile(file).masterSets[0]!.name).toBe('mymaster');
    expect(() => loadConfigFile(join(dir, 'missing.yaml'))).toThrow(ConfigError);
    writeFileSync(file, 'masterSets: [');
    expect(() => loadConfigFile(file)).toThrow(/not valid YAML/);
  });
  it('secrets: a file\'s trailing newline is not part of the secret; empty is an error', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ss-secret-'));
    writeFileSync(join(dir, 't'), 's3cret\n');
    expect(readSecret({ file: join(dir, 't') }, 'token')).toBe('s3cret');
    writeFileSync(join(dir, 'e'), '\n');
    expect(() => readSecret({ file: join(dir, 'e') }, 'token')).toThrow(/token is empty/);
    expect(() => readSecret({ env: 'NOPE_NOT_SET' }, 'token', {})).toThrow(/NOPE_NOT_SET is not set/);
    expect(() => readSecret({ file: join(dir, 'missing') }, 'token')).toThrow(/ENOENT/);
  });
});
