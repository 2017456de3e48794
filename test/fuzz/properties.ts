// The hostile-input properties, shared by test/fuzz.test.ts (a few hundred cases) and
// scripts/fuzz.ts (`npm run fuzz -- --runs 10000`). Each HTTP property runs against ONE real
// sentinel-switch process of a startStack() sandbox, over real sockets, and checks per case:
//   - the answer is the documented one (401 / 404 / 413 / 415 / 400 naming the field / 200), and
//     never a 5xx;
//   - the process is alive and /healthz answers 200;
//   - the Service was not written (no MODIFIED event on the API watch since the fuzz began).
// finalChecks() adds: /readyz 200, no error-level log line, still no write after the follow-up
// window. The configuration properties are pure (parseConfig, loadConfigFile, readSecret).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { stringify as toYaml } from 'yaml';
import { ConfigError, loadConfigFile, parseConfig, readSecret } from '../../src/config.ts';
import type { Stack } from '../harness/stack.ts';
import {
  address,
  applyConfigMutation,
  applyMutation,
  authCase,
  configMutation,
  contentTypeCase,
  damagedJson,
  eventMutation,
  type FailoverEvent,
  hostileHost,
  jsonish,
  validConfig,
  validEvent,
  yamlishText,
} from './arbitraries.ts';
import { HttpClient, type HttpRequest, type HttpResponse } from './http.ts';
import { type Address, hasPoisonKeys, judgeFailoverBody, judgeReconcileBody, sameAddress } from './oracle.ts';

// ------------------------------------------------------------------------------- bookkeeping

/** Counts per property and per status code ("closed", "timeout" when there was no answer). */
export class FuzzStats {
  readonly cases = new Map<string, number>();
  readonly statuses = new Map<string, Map<string, number>>();
  /** Reconcile runs the 200-event burst caused, per burst. */
  readonly burstRuns: number[] = [];

  case(property: string): void {
    this.cases.set(property, (this.cases.get(property) ?? 0) + 1);
  }

  status(property: string, status: HttpResponse['status'] | string): void {
    const m = this.statuses.get(property) ?? new Map<string, number>();
    this.statuses.set(property, m);
    m.set(String(status), (m.get(String(status)) ?? 0) + 1);
  }

  totals(): { cases: number; requests: number; byStatus: Record<string, number> } {
    const byStatus: Record<string, number> = {};
    let requests = 0;
    for (const m of this.statuses.values()) {
      for (const [s, n] of m) {
        byStatus[s] = (byStatus[s] ?? 0) + n;
        requests += n;
      }
    }
    const cases = [...this.cases.values()].reduce((a, b) => a + b, 0);
    return { cases, requests, byStatus: Object.fromEntries(Object.entries(byStatus).sort()) };
  }

  /** One line per property: "bodies  300 cases  400:290 404:2 200:8". */
  table(): string[] {
    const names = [...new Set([...this.cases.keys(), ...this.statuses.keys()])];
    const width = Math.max(...names.map((n) => n.length), 8);
    return names.map((n) => {
      const s = [...(this.statuses.get(n) ?? new Map<string, number>())].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}:${v}`).join(' ');
      return `${n.padEnd(width)}  ${String(this.cases.get(n) ?? 0).padStart(6)} cases  ${s}`;
    });
  }
}

export interface HttpFuzzOptions {
  stack: Stack;
  numRuns: number;
  seed?: number;
  stats: FuzzStats;
}

interface Ctx {
  stack: Stack;
  client: HttpClient;
  url: string;
  port: number;
  token: string;
  masterSet: string;
  master: Address;
  expectedTarget: string;
  bodyLimit: number;
  /** MODIFIED watch events before the fuzz began. */
  baselineWrites: number;
  /** Log lines of the service before the fuzz began. */
  baselineLogLines: number;
}

const contexts = new WeakMap<Stack, Promise<Ctx>>();

function context(stack: Stack): Promise<Ctx> {
  let c = contexts.get(stack);
  if (!c) {
    c = (async () => {
      const service = stack.service;
      if (!service) throw new Error('the stack has no sentinel-switch running');
      const master = await stack.redis.masterByMajority();
      const set = stack.switchConfig.masterSets[0] as { name: string };
      return {
        stack,
        client: new HttpClient(service.port),
        url: service.url,
        port: service.port,
        token: stack.token,
        masterSet: set.name,
        master,
        expectedTarget: stack.dnsName(master),
        bodyLimit: stack.switchConfig.bodyLimitBytes ?? 4096,
        baselineWrites: writes(stack),
        baselineLogLines: service.logLines().length,
      };
    })();
    contexts.set(stack, c);
  }
  return c;
}

/** Stops the keep-alive client of a stack's fuzz context. */
export async function closeFuzzContext(stack: Stack): Promise<void> {
  const c = contexts.get(stack);
  contexts.delete(stack);
  if (c) (await c).client.close();
}

const writes = (stack: Stack): number => stack.serviceChanges.filter((c) => c.type === 'MODIFIED').length;

/** One request with its oracle. `check` returns what is wrong with the answer, or undefined. */
interface Case {
  property: string;
  what: string;
  req: HttpRequest;
  check: (res: HttpResponse) => string | undefined;
}

const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v), 'utf8');
/** The text the service decodes: a lone surrogate goes out as U+FFFD. */
const asSent = (text: string): string => Buffer.from(text, 'utf8').toString('utf8');
const show = (s: string, max = 300): string => (s.length > max ? `${s.slice(0, max)}... (${s.length} chars)` : s);

function describe(c: Case, res?: HttpResponse): string {
  const headers = c.req.headers.map(([k, v]) => `${k}: ${JSON.stringify(show(v, 120))}`).join(', ');
  const framing = typeof c.req.framing === 'object' ? JSON.stringify(c.req.framing) : (c.req.framing ?? 'length');
  const lines = [
    `case [${c.property}] ${c.what}`,
    `  request: ${c.req.method ?? 'POST'} ${JSON.stringify(c.req.target)} (${framing}) {${headers}}${c.req.rawHeaderBytes ? ` raw ${JSON.stringify(c.req.rawHeaderBytes.toString('latin1').slice(0, 120))}` : ''}`,
    `  body (${c.req.body?.length ?? 0} bytes): ${JSON.stringify(show(c.req.body?.toString('utf8') ?? ''))}`,
  ];
  if (res) lines.push(`  answer: ${res.status} via ${res.transport}${res.error ? ` (${res.error})` : ''}: ${show(res.body)}`);
  return lines.join('\n');
}

const message = (res: HttpResponse): string => {
  const j = res.json as { message?: unknown } | undefined;
  return typeof j?.message === 'string' ? j.message : '';
};

function expectStatus(res: HttpResponse, allowed: (number | string)[]): string | undefined {
  return allowed.includes(res.status) ? undefined : `expected ${allowed.join(' or ')}, got ${res.status}`;
}

/** The checks of a 200 answer to a well-formed event: the truth, nothing written. */
function checkEventAnswer(ctx: Ctx, to: Address, res: HttpResponse): string | undefined {
  const bad = expectStatus(res, [200]);
  if (bad) return `${bad}${res.status === 503 ? ` (why: ${(res.json as { why?: string } | undefined)?.why})` : ''}`;
  const o = res.json as { result?: string; changed?: boolean; eventConfirmed?: boolean; target?: string } | undefined;
  if (!o) return 'a 200 without a JSON body';
  if (o.changed !== false || o.result !== 'unchanged') return `expected result unchanged/changed false, got ${o.result}/${o.changed}`;
  if (o.target !== ctx.expectedTarget) return `expected target ${ctx.expectedTarget}, got ${o.target}`;
  const confirmed = sameAddress(to, ctx.master);
  if (o.eventConfirmed !== confirmed) return `expected eventConfirmed ${confirmed} for to=${JSON.stringify(to)} (master ${ctx.master.host}:${ctx.master.port}), got ${o.eventConfirmed}`;
  return undefined;
}

/**
 * The oracle of an authorized JSON POST to /v1/failover whose body fits the limit: parse as the
 * hardened parser does, then the README's contract.
 */
/** The body as the service's JSON parser sees it (a BOM is skipped), or undefined when it must be a 400. */
function parsedBody(text: string): { body: unknown } | undefined {
  const stripped = text.replace(/^\ufeff/, '');
  if (stripped.length === 0) return undefined;
  try {
    const body: unknown = JSON.parse(stripped);
    return hasPoisonKeys(body) ? undefined : { body };
  } catch {
    return undefined;
  }
}

function judgeFailoverText(ctx: Ctx, text: string, res: HttpResponse): string | undefined {
  const parsed = parsedBody(text);
  if (!parsed) return expectStatus(res, [400]);
  const { body } = parsed;
  const verdict = judgeFailoverBody(body);
  if (!verdict.ok) {
    const bad = expectStatus(res, [400]);
    if (bad) return bad;
    const missing = verdict.names.filter((n) => !message(res).includes(n));
    return missing.length ? `the 400 does not name ${missing.map((m) => JSON.stringify(m)).join(', ')}: ${JSON.stringify(message(res))}` : undefined;
  }
  if (verdict.masterSet !== ctx.masterSet) {
    return expectStatus(res, [404]) ?? (message(res).includes(verdict.masterSet!) ? undefined : `the 404 does not name the master set: ${JSON.stringify(message(res))}`);
  }
  return checkEventAnswer(ctx, (body as FailoverEvent).to, res);
}

function judgeReconcileText(ctx: Ctx, text: string | undefined, res: HttpResponse): string | undefined {
  let body: unknown;
  if (text !== undefined) {
    const parsed = parsedBody(text);
    if (!parsed) return expectStatus(res, [400]);
    body = parsed.body;
  }
  const verdict = judgeReconcileBody(body);
  if (!verdict.ok) {
    const bad = expectStatus(res, [400]);
    if (bad) return bad;
    const missing = verdict.names.filter((n) => !message(res).includes(n));
    return missing.length ? `the 400 does not name ${missing.join(', ')}: ${JSON.stringify(message(res))}` : undefined;
  }
  if (verdict.masterSet !== undefined && verdict.masterSet !== ctx.masterSet) {
    return expectStatus(res, [404]) ?? (message(res).includes(verdict.masterSet) ? undefined : `the 404 does not name the master set`);
  }
  const bad = expectStatus(res, [200]);
  if (bad) return bad;
  const outcomes = (res.json as { outcomes?: { result?: string; changed?: boolean; target?: string }[] } | undefined)?.outcomes;
  if (!outcomes?.length || outcomes.some((o) => o.result !== 'unchanged' || o.changed !== false || o.target !== ctx.expectedTarget)) {
    return `expected every outcome unchanged at ${ctx.expectedTarget}`;
  }
  return undefined;
}

function authHeaders(ctx: Ctx): [string, string][] {
  return [
    ['Authorization', `Bearer ${ctx.token}`],
    ['Content-Type', 'application/json'],
  ];
}

// ------------------------------------------------------------------------------- case generators

type CaseArb = (ctx: Ctx) => fc.Arbitrary<Case>;

/** Random JSON values and damaged JSON text, authorized, to /v1/failover. */
const bodiesCase: CaseArb = (ctx) => {
  const base = JSON.stringify({ masterSet: ctx.masterSet, role: 'leader', state: 'start', from: { host: 'a', port: 1 }, to: ctx.master });
  return fc.oneof(fc.tuple(jsonish(), fc.boolean()).map(([v, pretty]) => (pretty ? JSON.stringify(v, null, 2) : JSON.stringify(v))), damagedJson(base)).map(
    (text): Case => ({
      property: 'bodies',
      what: 'random or damaged JSON',
      req: { target: '/v1/failover', headers: authHeaders(ctx), body: Buffer.from(text, 'utf8') },
      check: (res) => judgeFailoverText(ctx, asSent(text), res),
    }),
  );
};

/** A valid event with one field removed, retyped or an extra key: 400 naming it (or 200 if still valid). */
const mutationsCase: CaseArb = (ctx) =>
  fc.tuple(validEvent(ctx.masterSet, fc.oneof(fc.domain(), fc.ipV4())), eventMutation()).map(([event, m]): Case => {
    const text = JSON.stringify(applyMutation(event, m));
    return {
      property: 'mutations',
      what: `event with ${m.op} at ${[...m.path, ...(m.op === 'add' ? [m.key] : [])].join('.') || '(top)'}`,
      req: { target: '/v1/failover', headers: authHeaders(ctx), body: Buffer.from(text, 'utf8') },
      check: (res) => judgeFailoverText(ctx, text, res),
    };
  });

/**
 * Bodies around and far over bodyLimitBytes, framed honestly (Content-Length or chunked) or with a
 * Content-Length that lies: a valid event padded with whitespace stays valid, so <= limit is 200
 * and > limit is 413.
 */
const sizesCase: CaseArb = (ctx) => {
  const limit = ctx.bodyLimit;
  const size = fc.oneof(
    fc.integer({ min: limit - 32, max: limit + 32 }),
    fc.integer({ min: 300, max: limit }),
    fc.integer({ min: limit + 1, max: limit * 4 }),
    fc.constantFrom(limit, limit + 1, 64 * 1024, 1024 * 1024),
  );
  const honest = fc.tuple(validEvent(ctx.masterSet), size, fc.constantFrom('length' as const, 'chunked' as const), fc.constantFrom(' ', '\n', '\t')).map(
    ([event, n, framing, pad]): Case => {
      const core = JSON.stringify(event);
      const text = core + pad.repeat(Math.max(0, n - Buffer.byteLength(core)));
      const bytes = Buffer.from(text, 'utf8');
      return {
        property: 'sizes',
        what: `${bytes.length}-byte body, ${framing}, limit ${limit}`,
        req: { target: '/v1/failover', headers: authHeaders(ctx), body: bytes, framing },
        check: (res) => (bytes.length > limit ? expectStatus(res, [413]) : checkEventAnswer(ctx, event.to, res)),
      };
    },
  );
  // A declared length over the limit is refused before a byte of body is read.
  const declaredTooBig = fc.tuple(validEvent(ctx.masterSet), fc.oneof(fc.integer({ min: limit + 1, max: 1 << 30 }), fc.constant(limit + 1))).map(
    ([event, declared]): Case => ({
      property: 'sizes',
      what: `Content-Length ${declared} over a small body`,
      req: { target: '/v1/failover', headers: authHeaders(ctx), body: json(event), framing: { contentLength: String(declared), halfClose: true } },
      check: (res) => expectStatus(res, [413]),
    }),
  );
  // Declares less than is sent: the first Content-Length bytes are the body, the rest is junk.
  const declaredShort = fc.tuple(validEvent(ctx.masterSet), fc.nat()).map(([event, k]): Case => {
    const bytes = json(event);
    const declared = k % bytes.length;
    const text = bytes.subarray(0, declared).toString('utf8');
    return {
      property: 'sizes',
      what: `Content-Length ${declared} of a ${bytes.length}-byte body`,
      req: { target: '/v1/failover', headers: authHeaders(ctx), body: bytes, framing: { contentLength: String(declared) } },
      check: (res) => (declared === 0 ? expectStatus(res, [400]) : judgeFailoverText(ctx, text, res)),
    };
  });
  // Declares more than is sent, then half-closes: a 400, or a close without an answer.
  const declaredLong = fc.tuple(validEvent(ctx.masterSet), fc.integer({ min: 1, max: 200 })).map(([event, extra]): Case => {
    const bytes = json(event);
    const declared = Math.min(limit, bytes.length + extra);
    return {
      property: 'sizes',
      what: `Content-Length ${declared}, ${bytes.length} bytes sent, then FIN`,
      req: { target: '/v1/failover', headers: authHeaders(ctx), body: bytes, framing: { contentLength: String(declared), halfClose: true }, timeoutMs: 5_000 },
      check: (res) => expectStatus(res, [400, 'closed']),
    };
  });
  // Framing the HTTP parser must refuse.
  const badFraming = fc
    .constantFrom('-1', '1.5', 'abc', '99999999999999999999999', '0x10', ' ', '1, 2', '+5', '18446744073709551616')
    .chain((cl) =>
      validEvent(ctx.masterSet).map(
        (event): Case => ({
          property: 'sizes',
          what: `Content-Length ${JSON.stringify(cl)}`,
          req: { target: '/v1/failover', headers: authHeaders(ctx), body: json(event), framing: { contentLength: cl }, timeoutMs: 5_000 },
          check: (res) => expectStatus(res, [400]),
        }),
      ),
    );
  const clAndTe = validEvent(ctx.masterSet).map(
    (event): Case => ({
      property: 'sizes',
      what: 'Content-Length and Transfer-Encoding together (request smuggling)',
      req: { target: '/v1/failover', headers: [...authHeaders(ctx), ['Content-Length', '5']], body: json(event), framing: 'chunked' },
      check: (res) => expectStatus(res, [400]),
    }),
  );
  return fc.oneof({ weight: 5, arbitrary: honest }, declaredTooBig, declaredShort, declaredLong, badFraming, clAndTe);
};

/** Content types: only JSON is read; everything else is 415. */
const contentTypesCase: CaseArb = (ctx) =>
  fc.tuple(contentTypeCase(), validEvent(ctx.masterSet)).map(([ct, event]): Case => {
    const headers: [string, string][] = [['Authorization', `Bearer ${ctx.token}`]];
    if (ct.value !== undefined) headers.push(['Content-Type', ct.value]);
    return {
      property: 'content-types',
      what: `Content-Type ${ct.value === undefined ? '(none)' : JSON.stringify(ct.value)}`,
      req: { target: '/v1/failover', headers, body: json(event) },
      check: (res) => (ct.json ? checkEventAnswer(ctx, event.to, res) : expectStatus(res, [415])),
    };
  });

/**
 * Authorization edge cases. Without the exact token nothing else matters: the body, its type and
 * its size are never looked at (401 before 413 or 415).
 */
const authCase_: CaseArb = (ctx) =>
  fc
    .tuple(authCase(ctx.token), validEvent(ctx.masterSet), fc.constantFrom('/v1/failover', '/v1/reconcile'), fc.constantFrom('ok', 'text', 'huge'))
    .map(([a, event, target, bodyKind]): Case => {
      const headers: [string, string][] = [];
      if (a.value !== undefined) headers.push(['Authorization', a.value]);
      headers.push(['Content-Type', bodyKind === 'text' ? 'text/plain' : 'application/json']);
      const body = target === '/v1/reconcile' ? json({}) : json(event);
      const req: HttpRequest = { target, headers, body, rawHeaderBytes: a.raw ? Buffer.from(a.raw, 'latin1') : undefined };
      if (bodyKind === 'huge') req.framing = { contentLength: String(ctx.bodyLimit * 10), halfClose: true };
      return {
        property: 'auth',
        what: `${a.label}, ${bodyKind} body to ${target}`,
        req,
        check: (res) => {
          if (a.expect === 'reject') return expectStatus(res, [401]);
          if (a.expect === 'malformed') return expectStatus(res, [400, 431]);
          if (bodyKind === 'text') return expectStatus(res, [415]);
          if (bodyKind === 'huge') return expectStatus(res, [413]);
          return target === '/v1/reconcile' ? judgeReconcileText(ctx, '{}', res) : checkEventAnswer(ctx, event.to, res);
        },
      };
    });

/**
 * Spellings of the request-target and methods. Fastify routes an absolute-form target
 * ("POST http://x/v1/failover") and a percent-encoded path ("/%761/failover") to the /v1 handlers:
 * they must need the token like "/v1/failover" does.
 */
const SAME_ROUTE = ['/v1/failover', 'http://h/v1/failover', 'HTTP://H:80/v1/failover', 'https://evil.example/v1/failover', '/%761/failover', '/v%31/failover', '/%76%31/%66%61ilover', '/v1/%66ailover', '/v1/failover?x=1', '/v1/failover?', '/v1/failover?a=%00'];
const OTHER_ROUTE = ['//v1/failover', '/v1//failover', '/V1/failover', '/v1/Failover', '/v1/failover/', '/./v1/failover', '/v1/./failover', '/v1/../v1/failover', '/v1%2ffailover', '/v1/failover%00', '/v1/failover;x', '/v1/failover%20', '/v1/', '/v1', '/v2/failover', '/v1/failover/x', '/v1/reconcile/..'];
const targetsCase: CaseArb = (ctx) =>
  fc
    .tuple(
      fc.oneof(fc.constantFrom(...SAME_ROUTE).map((t) => ({ t, same: true })), fc.constantFrom(...OTHER_ROUTE).map((t) => ({ t, same: false }))),
      fc.constantFrom('POST', 'POST', 'POST', 'GET', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'),
      fc.constantFrom('none', 'wrong', 'right'),
      validEvent(ctx.masterSet),
    )
    .map(([{ t, same }, method, auth, event]): Case => {
      const headers: [string, string][] = [['Content-Type', 'application/json']];
      if (auth === 'right') headers.push(['Authorization', `Bearer ${ctx.token}`]);
      if (auth === 'wrong') headers.push(['Authorization', `Bearer ${ctx.token.slice(1)}x`]);
      return {
        property: 'targets',
        what: `${method} ${t} with ${auth} token`,
        req: { method, target: t, headers, body: json(event), timeoutMs: 5_000 },
        check: (res) => {
          if (auth !== 'right') {
            // Never reaches a handler: 401 (a /v1 route, or a /v1/... path), or not a route at all.
            const bad = expectStatus(res, [401, 404]);
            if (bad) return bad;
            if (same && method === 'POST' && res.status !== 401) return `a /v1 route answered ${res.status} without the token`;
            if (res.status === 404 && !/not found/i.test(message(res))) return `a 404 that is not "route not found": ${res.body}`;
            return undefined;
          }
          if (same && method === 'POST') return checkEventAnswer(ctx, event.to, res);
          return expectStatus(res, [404]);
        },
      };
    });

/** Well-formed events whose from/to name any host at all: only a trigger, 200, the truth, no write. */
const hostnamesCase: CaseArb = (ctx) => {
  const masterLike = fc.constantFrom(
    { ...ctx.master },
    { host: `${ctx.master.host}.`, port: ctx.master.port },
    { host: ctx.master.host, port: ctx.master.port === 65535 ? 1 : ctx.master.port + 1 },
    { host: ctx.expectedTarget, port: ctx.master.port },
    { host: ctx.expectedTarget.toUpperCase(), port: ctx.master.port },
  );
  const to = fc.oneof({ weight: 4, arbitrary: address(hostileHost()) }, { weight: 1, arbitrary: masterLike });
  return fc
    .tuple(validEvent(ctx.masterSet), address(hostileHost()), to, fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom('', 'a'.repeat(254)) }))
    .map(([event, from, toAddr, broken]): Case => {
      const e = { ...event, from, to: toAddr };
      if (broken !== undefined) e.to = { ...toAddr, host: broken };
      const text = JSON.stringify(e);
      return {
        property: 'hostnames',
        what: `from ${JSON.stringify(e.from.host)} to ${JSON.stringify(e.to.host)}:${e.to.port}`,
        req: { target: '/v1/failover', headers: authHeaders(ctx), body: Buffer.from(text, 'utf8') },
        check: (res) => judgeFailoverText(ctx, text, res),
      };
    });
};

/** Master sets that are not configured (404 naming them) or not names at all (400). */
const masterSetsCase: CaseArb = (ctx) =>
  fc
    .tuple(
      fc.oneof(
        fc.string({ unit: 'grapheme', minLength: 1, maxLength: 128 }),
        fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }),
        fc.constantFrom(
          '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'prototype', ctx.masterSet.toUpperCase(), `${ctx.masterSet} `, ` ${ctx.masterSet}`,
          `${ctx.masterSet}\u0000`, `${ctx.masterSet}.`, `${ctx.masterSet}/`, `../${ctx.masterSet}`, '*', '%', '$where', 'x'.repeat(128), 'x'.repeat(129), '',
        ),
      ),
      validEvent(ctx.masterSet),
      fc.boolean(),
    )
    .filter(([name]) => name !== ctx.masterSet)
    .map(([name, event, viaReconcile]): Case => {
      const text = viaReconcile ? JSON.stringify({ masterSet: name }) : JSON.stringify({ ...event, masterSet: name });
      return {
        property: 'master-sets',
        what: `masterSet ${JSON.stringify(show(name, 60))} via ${viaReconcile ? '/v1/reconcile' : '/v1/failover'}`,
        req: { target: viaReconcile ? '/v1/reconcile' : '/v1/failover', headers: authHeaders(ctx), body: Buffer.from(text, 'utf8') },
        check: (res) => (viaReconcile ? judgeReconcileText(ctx, text, res) : judgeFailoverText(ctx, text, res)),
      };
    });

/** /v1/reconcile with random bodies, and with none. */
const reconcileCase: CaseArb = (ctx) =>
  fc
    .oneof(
      fc.constant(undefined),
      fc.constantFrom('{}', 'null', `{"masterSet":"${ctx.masterSet}"}`, '[]', '""', '{"masterSet":null}', '{"masterSet":""}', '{"masterSets":[]}'),
      fc.tuple(jsonish(), fc.boolean()).map(([v, pretty]) => JSON.stringify(v, null, pretty ? 1 : 0)),
      damagedJson(`{"masterSet":"${ctx.masterSet}"}`),
    )
    .map((text): Case => {
      const req: HttpRequest = text === undefined
        ? { target: '/v1/reconcile', headers: [['Authorization', `Bearer ${ctx.token}`]], framing: 'none' }
        : { target: '/v1/reconcile', headers: authHeaders(ctx), body: Buffer.from(text, 'utf8') };
      return {
        property: 'reconcile',
        what: text === undefined ? 'no body at all' : 'random body',
        req,
        check: (res) => judgeReconcileText(ctx, text === undefined ? undefined : asSent(text), res),
      };
    });

/** Weights: how the runs of a fuzz session are shared out. */
export const HTTP_PROPERTIES: { name: string; weight: number; cases: CaseArb }[] = [
  { name: 'bodies', weight: 4, cases: bodiesCase },
  { name: 'mutations', weight: 3, cases: mutationsCase },
  { name: 'sizes', weight: 2, cases: sizesCase },
  { name: 'content-types', weight: 2, cases: contentTypesCase },
  { name: 'auth', weight: 3, cases: authCase_ },
  { name: 'targets', weight: 2, cases: targetsCase },
  { name: 'hostnames', weight: 2, cases: hostnamesCase },
  { name: 'master-sets', weight: 1, cases: masterSetsCase },
  { name: 'reconcile', weight: 1, cases: reconcileCase },
];

// ------------------------------------------------------------------------------- runners

async function invariants(ctx: Ctx): Promise<string[]> {
  const problems: string[] = [];
  if (ctx.stack.service?.pid() === undefined) problems.push('sentinel-switch is no longer running');
  else {
    const h = await ctx.client.send({ method: 'GET', target: '/healthz', headers: [], timeoutMs: 5_000 });
    if (h.status !== 200) problems.push(`/healthz answered ${h.status}`);
  }
  const w = writes(ctx.stack) - ctx.baselineWrites;
  if (w !== 0) problems.push(`the Service was written ${w} time(s) during the fuzz`);
  return problems;
}

async function runCase(ctx: Ctx, stats: FuzzStats, c: Case): Promise<void> {
  const res = await ctx.client.send(c.req);
  stats.status(c.property, res.status);
  const problems: string[] = [];
  if (typeof res.status === 'number' && res.status >= 500) problems.push(`a ${res.status} for an input`);
  const wrong = c.check(res);
  if (wrong) problems.push(wrong);
  problems.push(...(await invariants(ctx)));
  if (problems.length) throw new Error(`${problems.join('; ')}\n${describe(c, res)}`);
}

function assertOptions<T>(numRuns: number, seed: number | undefined): fc.Parameters<T> {
  return seed === undefined ? { numRuns } : { numRuns, seed };
}

/** One HTTP property, numRuns cases, each checked with its oracle and the invariants. */
export async function fuzzHttpProperty(name: string, opts: HttpFuzzOptions): Promise<void> {
  const p = HTTP_PROPERTIES.find((x) => x.name === name);
  if (!p) throw new Error(`no HTTP property ${name}`);
  if (opts.numRuns <= 0) return;
  const ctx = await context(opts.stack);
  await fc.assert(
    fc.asyncProperty(p.cases(ctx), async (c) => {
      opts.stats.case(c.property);
      await runCase(ctx, opts.stats, c);
    }),
    assertOptions(opts.numRuns, opts.seed),
  );
}

/** numRuns bursts of 5..40 concurrent cases drawn from every property, each with its own oracle. */
export async function fuzzMixedBursts(opts: HttpFuzzOptions): Promise<void> {
  if (opts.numRuns <= 0) return;
  const ctx = await context(opts.stack);
  const any = fc.oneof(...HTTP_PROPERTIES.map((p) => ({ weight: p.weight, arbitrary: p.cases(ctx) })));
  const burstClient = new HttpClient(ctx.port, { maxSockets: 64 });
  try {
    await fc.assert(
      fc.asyncProperty(fc.array(any, { minLength: 5, maxLength: 40 }), async (cases) => {
        opts.stats.case('mixed-bursts');
        const answers = await Promise.all(cases.map((c) => burstClient.send(c.req)));
        const problems: string[] = [];
        answers.forEach((res, i) => {
          const c = cases[i]!;
          opts.stats.status('mixed-bursts', res.status);
          const wrong = typeof res.status === 'number' && res.status >= 500 ? `a ${res.status} for an input` : c.check(res);
          if (wrong) problems.push(`${wrong}\n${describe(c, res)}`);
        });
        problems.push(...(await invariants(ctx)));
        if (problems.length) throw new Error(`burst of ${cases.length}: ${problems.join('\n')}`);
      }),
      assertOptions(opts.numRuns, opts.seed),
    );
  } finally {
    burstClient.close();
  }
}

/** Sum of sentinel_switch_reconcile_runs_total for a master set and reason. */
export async function reconcileRuns(client: HttpClient, masterSet: string, reason?: string): Promise<number> {
  const res = await client.send({ method: 'GET', target: '/metrics', headers: [] });
  let sum = 0;
  for (const line of res.body.split('\n')) {
    if (!line.startsWith('sentinel_switch_reconcile_runs_total{')) continue;
    if (!line.includes(`master_set="${masterSet}"`)) continue;
    if (reason && !line.includes(`reason="${reason}"`)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/**
 * `times` bursts of `concurrency` identical, valid events naming the true master, sent at once
 * over already-open connections: every one is 200 and confirmed, nothing is written, and they
 * share a handful of reconcile runs (one running, one pending) instead of running 200.
 */
export async function fuzzIdenticalBurst(opts: { stack: Stack; stats: FuzzStats; times: number; concurrency?: number; maxRuns?: number }): Promise<void> {
  const ctx = await context(opts.stack);
  const n = opts.concurrency ?? 200;
  const maxRuns = opts.maxRuns ?? 20;
  const client = new HttpClient(ctx.port, { maxSockets: n });
  try {
    for (let round = 0; round < opts.times; round++) {
      opts.stats.case('identical-burst');
      // Open n connections first, so the n events arrive together rather than behind n handshakes.
      await Promise.all(Array.from({ length: n }, () => client.send({ method: 'GET', target: '/healthz', headers: [] })));
      const before = await reconcileRuns(ctx.client, ctx.masterSet, 'hook');
      const event = { masterSet: ctx.masterSet, role: 'observer', state: 'start', from: { host: '10.0.0.1', port: 6379 }, to: ctx.master };
      const answers = await Promise.all(Array.from({ length: n }, () => client.send({ target: '/v1/failover', headers: authHeaders(ctx), body: json(event) })));
      const after = await reconcileRuns(ctx.client, ctx.masterSet, 'hook');
      const problems: string[] = [];
      const byStatus = new Map<string, number>();
      for (const res of answers) {
        opts.stats.status('identical-burst', res.status);
        byStatus.set(String(res.status), (byStatus.get(String(res.status)) ?? 0) + 1);
        const wrong = checkEventAnswer(ctx, ctx.master, res);
        if (wrong && problems.length < 5) problems.push(wrong);
      }
      const runs = after - before;
      opts.stats.burstRuns.push(runs);
      if (runs > maxRuns) problems.push(`${n} concurrent identical events caused ${runs} reconcile runs (at most ${maxRuns} expected)`);
      problems.push(...(await invariants(ctx)));
      if (problems.length) throw new Error(`identical burst ${round + 1}: statuses ${JSON.stringify(Object.fromEntries(byStatus))}; ${problems.join('; ')}`);
    }
  } finally {
    client.close();
  }
}

/**
 * After the fuzz: past the follow-up window (unconfirmed events schedule one more run), still no
 * write, /readyz and /healthz 200, the process alive, and not one error-level log line.
 */
export async function finalChecks(stack: Stack, opts: { followUpWaitMs?: number } = {}): Promise<{ writes: number; errorLogLines: number }> {
  const ctx = await context(stack);
  await new Promise((r) => setTimeout(r, opts.followUpWaitMs ?? 1_500));
  const problems = await invariants(ctx);
  const ready = await ctx.client.send({ method: 'GET', target: '/readyz', headers: [] });
  if (ready.status !== 200) problems.push(`/readyz answered ${ready.status}: ${ready.body}`);
  const errors = stack.service!.logLines().slice(ctx.baselineLogLines).filter((l) => typeof l.level === 'number' && l.level >= 50);
  if (errors.length) problems.push(`${errors.length} error-level log line(s), first: ${JSON.stringify(errors[0]).slice(0, 500)}`);
  if (problems.length) throw new Error(`after the fuzz: ${problems.join('; ')}`);
  return { writes: writes(stack) - ctx.baselineWrites, errorLogLines: errors.length };
}

/**
 * Shares numRuns out over the HTTP properties by weight, exactly (each gets at least one), with
 * one burst of 5..40 concurrent cases per 200 runs counted among them.
 */
export function shareRuns(numRuns: number): Map<string, number> {
  const out = new Map<string, number>();
  const bursts = Math.max(1, Math.round(numRuns / 200));
  const rest = Math.max(HTTP_PROPERTIES.length, numRuns - bursts);
  const weights = HTTP_PROPERTIES.reduce((a, p) => a + p.weight, 0);
  for (const p of HTTP_PROPERTIES) out.set(p.name, Math.max(1, Math.floor((rest * p.weight) / weights)));
  const given = [...out.values()].reduce((a, b) => a + b, 0);
  out.set(HTTP_PROPERTIES[0]!.name, out.get(HTTP_PROPERTIES[0]!.name)! + Math.max(0, rest - given));
  out.set('mixed-bursts', bursts);
  return out;
}

// ------------------------------------------------------------------------------- configuration

export interface ConfigFuzzOptions {
  numRuns: number;
  seed?: number;
  stats: FuzzStats;
  /** Where loadConfigFile's files go (inside the repo's .sandbox). */
  dir: string;
}

/** The issue lines of a ConfigError: "  path: message" -> path ("" for the top level). */
function issuePaths(msg: string): string[] {
  return msg
    .split('\n')
    .slice(1)
    .filter((l) => /^ {2}\S/.test(l))
    .map((l) => l.slice(2, l.indexOf(': ') < 0 ? undefined : l.indexOf(': ')))
    .map((p) => (p === '(top level)' ? '' : p));
}

const related = (a: string, b: string): boolean => a === '' || b === '' || a === b || a.startsWith(`${b}.`) || b.startsWith(`${a}.`);

/** parseConfig(x) returns a Config or throws a ConfigError whose lines each name a field path. */
function expectConfigOutcome(run: () => unknown, where: string): { ok: true } | { ok: false; error: ConfigError } {
  try {
    run();
    return { ok: true };
  } catch (err) {
    if (!(err instanceof ConfigError)) {
      throw new Error(`${where}: threw ${(err as Error)?.constructor?.name ?? typeof err} instead of ConfigError: ${(err as Error)?.stack ?? String(err)}`);
    }
    return { ok: false, error: err };
  }
}

/** Random values of every kind given to parseConfig. */
export async function fuzzConfigObjects(opts: ConfigFuzzOptions): Promise<void> {
  fc.assert(
    fc.property(fc.oneof(
      fc.anything({ maxDepth: 3, withNullPrototype: true, withMap: true, withSet: true, withBigInt: true, withDate: true, withTypedArray: true, withSparseArray: true, withObjectString: true }),
      jsonish(),
      fc.tuple(validConfig(), jsonish()).map(([c, sets]) => ({ ...c, masterSets: sets })),
    ), (raw) => {
      opts.stats.case('config-objects');
      const r = expectConfigOutcome(() => parseConfig(raw, 'fuzz.yaml'), 'parseConfig');
      opts.stats.status('config-objects', r.ok ? 'parsed' : 'ConfigError');
      if (!r.ok) {
        const paths = issuePaths(r.error.message);
        if (!r.error.message.startsWith('invalid configuration in fuzz.yaml:') || paths.length === 0) throw new Error(`a ConfigError without field paths: ${r.error.message}`);
      }
    }),
    assertOptions(opts.numRuns, opts.seed),
  );
}

/** Configurations the README calls valid parse; one change to one field is refused naming that field. */
export async function fuzzConfigMutations(opts: ConfigFuzzOptions): Promise<void> {
  fc.assert(
    fc.property(validConfig(), configMutation(), (valid, m) => {
      opts.stats.case('config-mutations');
      const base = expectConfigOutcome(() => parseConfig(valid, 'valid.yaml'), 'parseConfig(valid)');
      if (!base.ok) throw new Error(`a configuration the README calls valid was refused: ${base.error.message}\n${JSON.stringify(valid)}`);
      const { config, path } = applyConfigMutation(valid, m);
      const r = expectConfigOutcome(() => parseConfig(config, 'fuzz.yaml'), 'parseConfig');
      opts.stats.status('config-mutations', r.ok ? 'parsed' : 'ConfigError');
      if (r.ok) return;
      const mutated = path.join('.');
      const paths = issuePaths(r.error.message);
      if (paths.length === 0) throw new Error(`a ConfigError without field paths: ${r.error.message}`);
      const unrelated = paths.filter((p) => !related(p, mutated));
      if (unrelated.length) throw new Error(`${m.op} at ${mutated || '(top level)'} reported unrelated field(s) ${unrelated.join(', ')}:\n${r.error.message}`);
      if (m.op === 'add' && !r.error.message.includes(m.key)) throw new Error(`the unknown key ${JSON.stringify(m.key)} is not named:\n${r.error.message}`);
    }),
    assertOptions(opts.numRuns, opts.seed),
  );
}

/** Runs fn with the YAML parser's warnings (unresolved tags...) kept off stderr: thousands of them are noise here. */
function withoutYamlWarnings<T>(fn: () => T): T {
  const original = process.emitWarning;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const text = warning instanceof Error ? `${warning.name} ${warning.message}` : String(warning);
    if (/YAML|Keys with collection values|tag/i.test(text)) return;
    (original as (...a: unknown[]) => void).call(process, warning, ...rest);
  }) as typeof process.emitWarning;
  try {
    return fn();
  } finally {
    process.emitWarning = original;
  }
}

/** Files: random text, and valid or mutated configurations written as YAML or JSON. */
export async function fuzzConfigFiles(opts: ConfigFuzzOptions): Promise<void> {
  mkdirSync(opts.dir, { recursive: true });
  const file = join(opts.dir, 'fuzz-config.yaml');
  const text = fc.oneof(
    yamlishText(),
    fc.tuple(validConfig(), configMutation(), fc.boolean(), fc.boolean()).map(([c, m, mutate, asJson]) => {
      const cfg = mutate ? applyConfigMutation(c, m).config : c;
      return asJson ? (JSON.stringify(cfg) ?? '') : toYaml(cfg ?? null);
    }),
  );
  fc.assert(
    fc.property(text, (t) => {
      opts.stats.case('config-files');
      writeFileSync(file, t);
      const r = withoutYamlWarnings(() => expectConfigOutcome(() => loadConfigFile(file), 'loadConfigFile'));
      opts.stats.status('config-files', r.ok ? 'parsed' : /is not valid YAML/.test(r.error.message) ? 'ConfigError(syntax)' : 'ConfigError(field)');
      if (!r.ok && !/is not valid YAML/.test(r.error.message) && issuePaths(r.error.message).length === 0) {
        throw new Error(`a ConfigError for a readable document names no field: ${r.error.message}`);
      }
    }),
    assertOptions(opts.numRuns, opts.seed),
  );
}

/**
 * Token files as operators write them (`echo`, `kubectl create secret --from-file`, an editor on
 * Windows): one trailing newline is not part of the token; the hook sends it without.
 */
export async function fuzzTokenFiles(opts: ConfigFuzzOptions): Promise<void> {
  mkdirSync(opts.dir, { recursive: true });
  const file = join(opts.dir, 'fuzz-token');
  fc.assert(
    fc.property(fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 80 }).filter((t) => !/[\r\n]$/.test(t)), fc.constantFrom('', '\n', '\r\n'), (token, ending) => {
      opts.stats.case('token-files');
      writeFileSync(file, token + ending);
      const got = readSecret({ file }, 'token');
      opts.stats.status('token-files', 'read');
      if (got !== token) throw new Error(`token file ${JSON.stringify(token + ending)} read as ${JSON.stringify(got)}`);
    }),
    assertOptions(opts.numRuns, opts.seed),
  );
}
