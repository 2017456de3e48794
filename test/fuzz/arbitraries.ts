// fast-check arbitraries shared by test/fuzz.test.ts and scripts/fuzz.ts: hostile request bodies,
// headers, content types and configurations. Pure: nothing here talks to the service.
import fc from 'fast-check';
import type { Address } from './oracle.ts';

// ------------------------------------------------------------------------------- events

export interface FailoverEvent {
  masterSet: string;
  role: 'leader' | 'observer';
  state: 'start' | 'failover';
  from: Address;
  to: Address;
}

export const port = (): fc.Arbitrary<number> => fc.oneof(fc.integer({ min: 1, max: 65535 }), fc.constantFrom(1, 6379, 26379, 65535));

/** Hosts a sentinel could never have announced, and some it could: the event is only a trigger. */
export const hostileHost = (): fc.Arbitrary<string> =>
  fc.oneof(
    fc.domain(),
    fc.ipV4(),
    fc.ipV6(),
    fc.string({ unit: 'binary', minLength: 1, maxLength: 80 }),
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }),
    fc.constantFrom(
      ' ', '\t', '\u0000', '\n', '..', '.', '-a', 'a-', 'a..b', 'a_b', 'a/b', 'a b', 'a:b', '[::1]', '::ffff:127.0.0.1', '0', '0x7f000001',
      '127.1', 'localhost', 'LOCALHOST.', 'redis-node-0.redis-headless', '*.example.com', 'xn--nxasmq6b', 'exa\u00e9mple.com', '%00',
      '${jndi:ldap://x}', '"; rm -rf /', '\u202e', 'a'.repeat(63) + '.b', 'a'.repeat(64), 'a'.repeat(253),
    ),
  );

export const address = (host: fc.Arbitrary<string> = fc.domain()): fc.Arbitrary<Address> => fc.record({ host, port: port() });

export const validEvent = (masterSet: string, host: fc.Arbitrary<string> = fc.domain()): fc.Arbitrary<FailoverEvent> =>
  fc.record({
    masterSet: fc.constant(masterSet),
    role: fc.constantFrom('leader' as const, 'observer' as const),
    state: fc.constantFrom('start' as const, 'failover' as const),
    from: address(host),
    to: address(host),
  });

/** Any JSON value, biased towards objects that look like an event. */
export const jsonish = (): fc.Arbitrary<unknown> =>
  fc.oneof(
    { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
    {
      weight: 3,
      arbitrary: fc.dictionary(
        fc.oneof(fc.constantFrom('masterSet', 'role', 'state', 'from', 'to', 'host', 'port', '__proto__', 'constructor', 'prototype', 'toString'), fc.string({ maxLength: 12 })),
        fc.jsonValue({ maxDepth: 2 }),
        { maxKeys: 7 },
      ),
    },
    { weight: 1, arbitrary: fc.constantFrom(null, true, false, 0, -0, 1e308, -1, '', 'mymaster', [], {}, [{}], { masterSet: null }) },
  );

export type Mutation =
  | { op: 'delete'; path: string[] }
  | { op: 'set'; path: string[]; value: unknown }
  | { op: 'add'; path: string[]; key: string; value: unknown };

const eventPaths: string[][] = [['masterSet'], ['role'], ['state'], ['from'], ['to'], ['from', 'host'], ['from', 'port'], ['to', 'host'], ['to', 'port']];

/** Values of the wrong type or out of range for every field of an event (and some right ones). */
const fieldValue = (): fc.Arbitrary<unknown> =>
  fc.oneof(
    fc.jsonValue({ maxDepth: 2 }),
    fc.constantFrom(
      null, '', ' ', 0, -1, 65536, 70000, 1.5, 6379.0000001, 1e21, -0, '6379', 'leader', 'LEADER', 'Leader', 'observer', 'failover',
      'start', 'stop', true, [], {}, ['leader'], { host: 'a', port: 1 }, 'a'.repeat(129), 'a'.repeat(254), Number.MAX_SAFE_INTEGER + 2,
    ),
  );

/** One change to a valid event: a field removed, replaced or an extra key added (top level or nested). */
export const eventMutation = (): fc.Arbitrary<Mutation> =>
  fc.oneof(
    fc.record({ op: fc.constant('delete' as const), path: fc.constantFrom(...eventPaths) }),
    fc.record({ op: fc.constant('set' as const), path: fc.constantFrom(...eventPaths), value: fieldValue() }),
    fc.record({
      op: fc.constant('add' as const),
      path: fc.constantFrom<string[]>([], ['from'], ['to']),
      key: fc.oneof(fc.string({ minLength: 1, maxLength: 20 }), fc.constantFrom('masterset', 'Role', 'extra', 'host ', 'port2', 'sentinel', 'token', 'from.host', '', ' ')),
      value: fc.jsonValue({ maxDepth: 1 }),
    }),
  );

/** A deep copy of obj with the mutation applied (a JSON round trip: only JSON values here). */
export function applyMutation(obj: unknown, m: Mutation): unknown {
  const copy = JSON.parse(JSON.stringify(obj)) as Record<string, unknown>;
  const parentPath = m.op === 'add' ? m.path : m.path.slice(0, -1);
  let parent: unknown = copy;
  for (const k of parentPath) parent = (parent as Record<string, unknown>)[k];
  if (typeof parent !== 'object' || parent === null) return copy;
  const p = parent as Record<string, unknown>;
  if (m.op === 'delete') delete p[m.path.at(-1)!];
  else if (m.op === 'set') p[m.path.at(-1)!] = m.value;
  // defineProperty: an own key even for "__proto__", as JSON.parse would make it.
  else if (!Object.hasOwn(p, m.key)) Object.defineProperty(p, m.key, { value: m.value, enumerable: true, writable: true, configurable: true });
  return copy;
}

/** Valid JSON text damaged: cut short, a byte flipped, a character inserted or removed. */
export const damagedJson = (base: string): fc.Arbitrary<string> =>
  fc.oneof(
    fc.nat({ max: base.length }).map((n) => base.slice(0, n)),
    fc.tuple(fc.nat({ max: Math.max(0, base.length - 1) }), fc.constantFrom('{', '}', '"', ',', ':', '\\', '\u0000', 'x', '[', ' ', '\u00ff', '\ud800')).map(
      ([i, c]) => base.slice(0, i) + c + base.slice(i),
    ),
    fc.nat({ max: Math.max(0, base.length - 1) }).map((i) => base.slice(0, i) + base.slice(i + 1)),
    fc.constantFrom(
      '', ' ', '{', '}', '{}}', '[', '{"masterSet":}', "{'masterSet':'mymaster'}", '{"masterSet":"mymaster",}', 'NaN', 'Infinity', 'undefined',
      '{"a":1e99999}', '{"port":0x1}', '/*c*/{}', '{}// x', '\u00ef\u00bb\u00bf{}', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{}}}',
      '{"\\u005f_proto__":{}}', '[' .repeat(500) + ']'.repeat(500), '{"a":' .repeat(300) + '1' + '}'.repeat(300), '"' + 'x'.repeat(100) + '"',
    ),
  );

// ------------------------------------------------------------------------------- headers

/** Authorization header values, each with whether the service must accept it (token is the real one). */
export interface AuthCase {
  label: string;
  /** undefined: no Authorization header at all. */
  value?: string;
  /** Sent as raw bytes after the other headers (for values node:http refuses: LF, CR, NUL, obs-fold). */
  raw?: string;
  /** 'accept': 2xx path; 'reject': 401; 'malformed': the HTTP parser refuses the request (400) or it is 401. */
  expect: 'accept' | 'reject' | 'malformed';
}

/** Characters a header field value may hold (RFC 9110 5.5); anything else (CR, LF, NUL, other controls) the HTTP parser refuses. */
const fieldChars = (s: string): boolean => /^[\t\x20-\x7e\x80-\xff]*$/.test(s);

const ows = fc.array(fc.constantFrom(' ', '\t'), { minLength: 1, maxLength: 3 }).map((a) => a.join(''));

export const authCase = (token: string): fc.Arbitrary<AuthCase> =>
  fc.oneof(
    fc.constant<AuthCase>({ label: 'none', expect: 'reject' }),
    fc.constant<AuthCase>({ label: 'exact', value: `Bearer ${token}`, expect: 'accept' }),
    fc.constantFrom<AuthCase>(
      { label: 'empty header', value: '', expect: 'reject' },
      { label: 'empty bearer', value: 'Bearer ', expect: 'reject' },
      { label: 'scheme only', value: 'Bearer', expect: 'reject' },
      { label: 'token only', value: token, expect: 'reject' },
      { label: 'lowercase scheme (case-insensitive, RFC 9110)', value: `bearer ${token}`, expect: 'accept' },
      { label: 'uppercase scheme (case-insensitive, RFC 9110)', value: `BEARER ${token}`, expect: 'accept' },
      { label: 'two spaces', value: `Bearer  ${token}`, expect: 'reject' },
      { label: 'tab separator', value: `Bearer\t${token}`, expect: 'reject' },
      { label: 'space inside token', value: `Bearer ${token.slice(0, 5)} ${token.slice(5)}`, expect: 'reject' },
      { label: 'tab inside token', value: `Bearer ${token.slice(0, 5)}\t${token.slice(5)}`, expect: 'reject' },
      { label: 'basic', value: `Basic ${Buffer.from(`sentinel:${token}`).toString('base64')}`, expect: 'reject' },
      { label: 'basic token', value: `Basic ${token}`, expect: 'reject' },
      { label: 'token scheme', value: `Token ${token}`, expect: 'reject' },
      { label: 'twice', value: `Bearer ${token}, Bearer ${token}`, expect: 'reject' },
      { label: 'quoted', value: `Bearer "${token}"`, expect: 'reject' },
      { label: 'latin1 suffix', value: `Bearer ${token}\u00e9`, expect: 'reject' },
      { label: 'prefix', value: `Bearer ${token.slice(0, -1)}`, expect: 'reject' },
      { label: 'upper token', value: `Bearer ${token.toUpperCase()}`, expect: token === token.toUpperCase() ? 'accept' : 'reject' },
      // A bare LF / CR / NUL inside the value: the HTTP parser refuses the request.
      { label: 'token + LF', raw: `Authorization: Bearer ${token}\n\r\n`, expect: 'malformed' },
      { label: 'token + CR', raw: `Authorization: Bearer ${token}\r\r\n`, expect: 'malformed' },
      { label: 'token + NUL', raw: `Authorization: Bearer ${token}\u0000\r\n`, expect: 'malformed' },
      { label: 'obs-fold', raw: `Authorization: Bearer\r\n ${token}\r\n`, expect: 'malformed' },
      { label: 'LF in token', raw: `Authorization: Bearer ${token.slice(0, 5)}\n${token.slice(5)}\r\n`, expect: 'malformed' },
    ),
    // Optional whitespace around a field value is not part of it (RFC 9110 5.5): accepted.
    fc.tuple(fc.option(ows, { nil: '' }), ows).map(([lead, trail]): AuthCase => ({ label: 'surrounding OWS', value: `${lead}Bearer ${token}${trail}`, expect: 'accept' })),
    fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 60 }).map((s): AuthCase => ({ label: 'random token', value: `Bearer ${s}`, expect: fieldChars(s) ? (s.replace(/^[ \t]+|[ \t]+$/g, '') === token ? 'accept' : 'reject') : 'malformed' })),
    fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 10 }).filter((s) => s.trim() !== '').map((s): AuthCase => ({ label: 'token + junk', value: `Bearer ${token}${s}`, expect: fieldChars(s) ? 'reject' : 'malformed' })),
    fc.tuple(fc.nat({ max: token.length - 1 }), fc.constantFrom('0', 'a', 'z', 'Z', ' ', '-')).map(([i, c]): AuthCase => {
      const t = token.slice(0, i) + c + token.slice(i + 1);
      return { label: 'one char off', value: `Bearer ${t}`, expect: t === token ? 'accept' : 'reject' };
    }),
    fc.integer({ min: 1_000, max: 15_000 }).map((n): AuthCase => ({ label: 'long token', value: `Bearer ${'t'.repeat(n)}`, expect: 'reject' })),
    fc.integer({ min: 17_000, max: 40_000 }).map((n): AuthCase => ({ label: 'huge token', value: `Bearer ${'t'.repeat(n)}`, expect: 'malformed' })),
  );

/** Content types: JSON ones (accepted) and everything else (415). */
export interface ContentTypeCase {
  /** undefined: no Content-Type header. */
  value?: string;
  json: boolean;
}

const mediaParam = fc.tuple(fc.constantFrom('charset', 'Charset', 'boundary', 'q', 'x-y'), fc.constantFrom('utf-8', 'UTF-8', 'latin1', '"utf-8"', 'abc')).map(([k, v]) => `; ${k}=${v}`);

export const contentTypeCase = (): fc.Arbitrary<ContentTypeCase> =>
  fc.oneof(
    fc
      .tuple(fc.constantFrom('application/json', 'Application/JSON', 'APPLICATION/JSON'), fc.array(mediaParam, { maxLength: 2 }))
      .map(([t, ps]): ContentTypeCase => ({ value: t + ps.join(''), json: true })),
    fc.constantFrom<ContentTypeCase>(
      { value: undefined, json: false },
      { value: '', json: false },
      { value: 'text/plain', json: false },
      { value: 'text/plain; charset=utf-8', json: false },
      { value: 'text/json', json: false },
      { value: 'text/html', json: false },
      { value: 'application/x-www-form-urlencoded', json: false },
      { value: 'multipart/form-data; boundary=x', json: false },
      { value: 'application/xml', json: false },
      { value: 'application/octet-stream', json: false },
      { value: 'application/jsonx', json: false },
      { value: 'application/json-patch+json', json: false },
      { value: 'application/vnd.api+json', json: false },
      { value: 'application/json garbage', json: false },
      { value: 'application', json: false },
      { value: '/json', json: false },
      { value: '*/*', json: false },
      { value: ';', json: false },
      { value: 'json', json: false },
    ),
    fc
      .string({ unit: 'binary-ascii', maxLength: 40 })
      .filter((s) => !/^\s*application\/json\s*(;|$)/i.test(s) && /^[\t\x20-\x7e]*$/.test(s))
      .map((s): ContentTypeCase => ({ value: s, json: false })),
  );

// ------------------------------------------------------------------------------- configuration

const dnsLabel = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?$/);
const secretRef = fc.oneof(
  fc.record({ file: fc.constantFrom('/var/run/secrets/sentinel-switch/token', 'token', '/x') }),
  fc.record({ env: fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,15}$/) }),
);
const hostPort = fc.tuple(fc.oneof(fc.domain(), fc.ipV4()), fc.integer({ min: 1, max: 65535 })).map(([h, p]) => `${h}:${p}`);

const masterSetConfig = fc.record(
  {
    name: fc.stringMatching(/^[A-Za-z0-9._-]{1,20}$/),
    sentinels: fc.array(hostPort, { minLength: 1, maxLength: 4 }),
    quorum: fc.integer({ min: 1, max: 5 }),
    sentinelAuth: fc.record({ username: fc.string({ minLength: 1, maxLength: 8 }), password: secretRef }, { requiredKeys: [] }),
    redisAuth: fc.record({ username: fc.string({ minLength: 1, maxLength: 8 }), password: secretRef }, { requiredKeys: [] }),
    tls: fc.record({ enabled: fc.boolean(), caFile: fc.string(), certFile: fc.string(), keyFile: fc.string(), insecureSkipVerify: fc.boolean() }, { requiredKeys: [] }),
    target: fc.record({ namespace: dnsLabel, name: dnsLabel }),
    podNamespace: dnsLabel,
    clusterDomain: fc.constantFrom('cluster.local', 'example.org'),
  },
  { requiredKeys: ['name', 'sentinels', 'target'] },
);

/** A configuration the README says is valid. */
export const validConfig = (): fc.Arbitrary<Record<string, unknown>> =>
  fc.record(
    {
      listen: fc.record({ host: fc.constantFrom('0.0.0.0', '127.0.0.1', '::'), port: fc.integer({ min: 1, max: 65535 }) }, { requiredKeys: [] }),
      token: secretRef,
      reconcileIntervalSeconds: fc.oneof(fc.integer({ min: 1, max: 86_400 }), fc.double({ min: 1, max: 86_400, noNaN: true })),
      redisTimeoutMs: fc.integer({ min: 10, max: 30_000 }),
      followUpMs: fc.integer({ min: 0, max: 60_000 }),
      bodyLimitBytes: fc.integer({ min: 256, max: 1_048_576 }),
      logLevel: fc.constantFrom('fatal', 'error', 'warn', 'info', 'debug', 'trace'),
      kubernetes: fc.record({ kubeconfig: fc.constantFrom('~/.kube/config', '/k'), clusterDomain: fc.constant('cluster.local'), timeoutMs: fc.integer({ min: 100, max: 60_000 }) }, { requiredKeys: [] }),
      masterSets: fc.uniqueArray(masterSetConfig, { minLength: 1, maxLength: 3, selector: (s) => s.name }),
    },
    { requiredKeys: ['token', 'masterSets'] },
  );

/** Every path to a value inside a JSON-like tree ([] is the root). */
export function pathsOf(v: unknown, at: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = [at];
  if (Array.isArray(v)) v.forEach((x, i) => out.push(...pathsOf(x, [...at, i])));
  else if (typeof v === 'object' && v !== null) for (const [k, x] of Object.entries(v)) out.push(...pathsOf(x, [...at, k]));
  return out;
}

export type ConfigMutation =
  | { op: 'delete'; index: number }
  | { op: 'set'; index: number; value: unknown }
  | { op: 'add'; index: number; key: string; value: unknown };

export const configMutation = (): fc.Arbitrary<ConfigMutation> =>
  fc.oneof(
    fc.record({ op: fc.constant('delete' as const), index: fc.nat() }),
    fc.record({
      op: fc.constant('set' as const),
      index: fc.nat(),
      value: fc.oneof(
        fc.jsonValue({ maxDepth: 2 }),
        fc.constantFrom(null, '', 0, -1, 1.5, 1e9, 'x', true, [], {}, { file: 'a', env: 'B' }, { env: '1bad' }, '0.0.0.0:99999', 'no-port', 'UPPER'),
      ),
    }),
    fc.record({ op: fc.constant('add' as const), index: fc.nat(), key: fc.string({ minLength: 1, maxLength: 12 }), value: fc.jsonValue({ maxDepth: 1 }) }),
  );

/** Applies a config mutation; returns the mutated copy and the path it touched. */
export function applyConfigMutation(config: unknown, m: ConfigMutation): { config: unknown; path: (string | number)[] } {
  const copy = JSON.parse(JSON.stringify(config)) as unknown;
  const paths = pathsOf(copy);
  let path = paths[m.index % paths.length]!;
  if (m.op === 'add') {
    // Only into objects: find the nearest object at or above the chosen path.
    const obj = (p: (string | number)[]): unknown => p.reduce<unknown>((o, k) => (o as Record<string | number, unknown>)[k], copy);
    while (path.length && (typeof obj(path) !== 'object' || obj(path) === null || Array.isArray(obj(path)))) path = path.slice(0, -1);
    const target = obj(path) as Record<string, unknown>;
    if (Object.hasOwn(target, m.key)) return { config: copy, path: [...path, m.key] };
    Object.defineProperty(target, m.key, { value: m.value, enumerable: true, writable: true, configurable: true });
    return { config: copy, path: [...path, m.key] };
  }
  if (path.length === 0) return { config: m.op === 'set' ? m.value : undefined, path };
  const parent = path.slice(0, -1).reduce<unknown>((o, k) => (o as Record<string | number, unknown>)[k], copy) as Record<string | number, unknown>;
  const key = path.at(-1)!;
  if (m.op === 'delete') {
    if (Array.isArray(parent)) parent.splice(key as number, 1);
    else delete parent[key];
  } else parent[key] = m.value;
  return { config: copy, path };
}

/** Text that may or may not be YAML: random characters, YAML-looking fragments, and pathological documents. */
export const yamlishText = (): fc.Arbitrary<string> =>
  fc.oneof(
    fc.string({ unit: 'binary', maxLength: 200 }),
    fc.array(
      fc.constantFrom('token:', ' {env: X}', 'masterSets:', '  - name: m', '    sentinels: [a:1]', '- ', ': ', '? ', '&a ', '*a', '!!str ', '!!binary ', '|', '>', '---', '...', '%YAML 1.2', '\t', '#', '"', "'", '{', '}', '[', ']', ',', 'null', '~', '0x1F', '.inf', '\n', '  '),
      { maxLength: 40 },
    ).map((parts) => parts.join('')),
    fc.constantFrom(
      'a: &a [*a]\n',
      'x: &x {y: *x}\ntoken: *x\n',
      // Alias expansion ("billion laughs"): the parser must refuse, not exhaust memory.
      'a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n',
      'token: {env: A}\ntoken: {env: B}\nmasterSets: []\n',
      '[' .repeat(2_000) + ']'.repeat(2_000),
      '- '.repeat(1_000) + 'x',
      '? [a, b]\n: c\n',
      '__proto__: {token: {env: X}}\nmasterSets: [{name: m, sentinels: ["a:1"], target: {namespace: a, name: b}}]\n',
      'token: !!binary aGVsbG8=\n',
      'token: !custom {env: X}\n',
      '\ufefftoken: {env: X}\n',
      'masterSets:\n\t- name: x\n',
      '{"token": {"env": "X"}, "masterSets": [}',
      '',
      '# only a comment\n',
      '---\ntoken: {env: A}\n---\ntoken: {env: B}\n',
    ),
  );
