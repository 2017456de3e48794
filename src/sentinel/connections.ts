// The connections to sentinels and Redis nodes, shared by every master set that reaches the same
// address as the same client: one command connection per (address, credentials, TLS identity)
// and one subscriber connection per (sentinel address, credentials, TLS identity). With 100
// master sets on 3 sentinels that is 3 + 3 connections to the sentinels, not 300 + 300. A
// connection is authenticated once, as one user, so master sets with other credentials or
// another TLS identity get their own. A subscriber's messages go to the master set they name
// (each master set then parses them itself, so a message never reaches another set).
import { createHash } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import type { ConnectionOptions } from 'node:tls';
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { type Address, addressKey } from '../decide/index.ts';
import { withTimeout } from '../timeout.ts';
import { CHANNELS, masterSetsNamed, PATTERNS } from './events.ts';

/** Who a connection authenticates as: user, password, TLS client identity and trust. */
export interface Identity {
  /** Tells identities apart without holding the secret in a map key: user, a digest of the password, a digest of the TLS material. */
  readonly key: string;
  readonly username?: string;
  readonly password?: string;
  readonly tls?: ConnectionOptions;
}

const digest = (...parts: (string | Buffer | undefined)[]): string => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p === undefined ? '\0-' : Buffer.concat([Buffer.from(`\0${Buffer.byteLength(p)}:`), Buffer.from(p)]));
  return h.digest('base64url').slice(0, 22);
};

const material = (v: ConnectionOptions['ca']): string | Buffer | undefined =>
  v === undefined ? undefined : Buffer.isBuffer(v) || typeof v === 'string' ? v : JSON.stringify(v);

export function identity(auth: { username?: string; password?: string }, tls?: ConnectionOptions): Identity {
  const tlsKey = tls ? `tls:${digest(material(tls.ca), material(tls.cert), material(tls.key as ConnectionOptions['ca']), String(tls.rejectUnauthorized !== false))}` : 'plain';
  return {
    key: `${auth.username ?? ''}|${auth.password === undefined ? '-' : digest(auth.password)}|${tlsKey}`,
    username: auth.username,
    password: auth.password,
    tls,
  };
}

/** The identity for one server name: with TLS the name is checked against the certificate, so it is part of the identity; without, it changes nothing. */
export function withServername(id: Identity, servername: string | undefined): Identity {
  if (!id.tls || !servername) return id;
  return { ...id, key: `${id.key}|sni:${servername}`, tls: { ...id.tls, servername } };
}

/** One master set's share of a subscriber connection. */
export interface Subscription {
  /** Resolves once SUBSCRIBE and PSUBSCRIBE answered (or failed once; the connection keeps trying). */
  readonly ready: Promise<void>;
  /** The ioredis status of the shared connection ('ready' while subscribed). */
  status(): string;
  /** This master set stops listening; the connection closes with its last listener. */
  release(): void;
}

export interface SubscribeOptions {
  /** Bound of the connect. */
  timeoutMs: number;
  /** Reconnect backoff: 100 ms doubling, at most this. */
  maxBackoffMs: number;
  /** How the sentinel is named in log lines. */
  sentinel: string;
}

type Listener = (channel: string, message: string) => void;

interface Shared {
  redis: Redis;
  ready: Promise<void>;
  /** By master set name: a message only reaches the listeners of the master set it names. */
  listeners: Map<string, Set<Listener>>;
}

interface Pooled {
  conn: Redis;
  /** The last connection-level error ('error' event): the cause a generic "Connection is closed." hides. */
  lastError?: Error;
  /** We closed it (an error, or close()): not to be reopened. */
  discarded?: boolean;
  /** When this connection (or the one it replaced) was last reopened after the server closed it. */
  reopenedAt?: number;
}

/** A connection the server closed is reopened at most this often (a server that keeps closing us waits for the next question). */
const REOPEN_EVERY_MS = 1_000;

/** A DNS answer younger than this is used as is. */
const DNS_FRESH_MS = 1_000;
/** An older one, up to this age, is used at once while a fresh lookup runs for the next question. */
const DNS_STALE_MS = 30_000;

export class Connections {
  readonly #timeoutMs: number;
  readonly #log: Logger | undefined;
  readonly #pool = new Map<string, Pooled>();
  readonly #dns = new Map<string, { at: number; addresses?: string[]; pending?: Promise<string[]> }>();
  readonly #subscribers = new Map<string, Shared>();
  #closed = false;

  constructor(opts: { timeoutMs: number; log?: Logger }) {
    this.#timeoutMs = opts.timeoutMs;
    this.#log = opts.log;
  }

  /**
   * Every address of a sentinel's DNS name. One lookup at a time per name for all master sets;
   * an answer under 1 s old is reused, one under 30 s old is used at once while a fresh lookup
   * runs in the background (so a reconcile on the hot path does not wait for DNS). The set of
   * sentinels asked can thus lag DNS by one question: the majority is still counted over every
   * address asked.
   */
  async resolve(host: string): Promise<string[]> {
    const now = performance.now();
    const e = this.#dns.get(host);
    const refresh = (): Promise<string[]> => {
      const entry = this.#dns.get(host) ?? { at: 0 };
      entry.pending ??= withTimeout(lookup(host, { all: true }), this.#timeoutMs, () => new Error(`DNS lookup of ${host} timed out after ${this.#timeoutMs} ms`))
        .then((addrs) => {
          const addresses = addrs.map((a) => a.address);
          this.#dns.set(host, { at: performance.now(), addresses });
          return addresses;
        })
        .finally(() => {
          const now = this.#dns.get(host);
          if (now) now.pending = undefined;
        });
      this.#dns.set(host, entry);
      return entry.pending;
    };
    if (e?.addresses && now - e.at < DNS_FRESH_MS) return e.addresses;
    if (e?.addresses && now - e.at < DNS_STALE_MS) {
      refresh().catch(() => undefined);
      return e.addresses;
    }
    return refresh();
  }

  /** Open connections now, for tests and the scale benchmark. */
  get counts(): { commands: number; subscribers: number } {
    return { commands: this.#pool.size, subscribers: this.#subscribers.size };
  }

  /**
   * One command on the shared connection to `at` as `id`: opened on first use (one attempt, no
   * retries: retrying is the reconcile loop's job), kept while it works, thrown away after a
   * connection-level failure so that the next question opens a fresh one.
   */
  async command(at: Address, id: Identity, args: [string, ...string[]]): Promise<unknown> {
    if (this.#closed) throw new Error('client closed');
    const key = `${addressKey(at)}|${id.key}`;
    let entry = this.#pool.get(key);
    if (!entry || isGone(entry)) {
      if (entry) discard(entry);
      entry = this.#open(at, id);
      this.#pool.set(key, entry);
    }
    try {
      if (entry.conn.status === 'wait') await entry.conn.connect();
      return await entry.conn.call(...args);
    } catch (err) {
      // A server's answer (NOPERM, "no such master") leaves the connection as good as it was;
      // anything else (timeout, reset, failed AUTH) ends it for everyone sharing it.
      if (!isReplyError(err) || isCredentialsError(err)) {
        if (this.#pool.get(key) === entry) this.#pool.delete(key);
        discard(entry);
      }
      throw entry.lastError && isGenericClose(err) ? entry.lastError : err;
    }
  }

  /** Whether a connection to `at` as `id` is open (or opening) now. */
  isOpen(at: Address, id: Identity): boolean {
    const p = this.#pool.get(`${addressKey(at)}|${id.key}`);
    return p !== undefined && !isGone(p) && p.conn.status !== 'wait';
  }

  /**
   * Opens the connection to `at` now if there is none (no command sent), so that the first
   * question on the hot path does not pay connect + AUTH. Failures are left for that question to
   * report.
   */
  warm(at: Address, id: Identity): void {
    if (this.#closed) return;
    const key = `${addressKey(at)}|${id.key}`;
    const p = this.#pool.get(key);
    if (p && !isGone(p)) return;
    if (p) discard(p);
    this.#connectNow(key, this.#open(at, id));
  }

  #connectNow(key: string, entry: Pooled): void {
    this.#pool.set(key, entry);
    entry.conn.connect().catch(() => {
      if (this.#pool.get(key) === entry) this.#pool.delete(key);
      discard(entry);
    });
  }

  /** Joins (or opens) the subscriber connection to the sentinel at `at` for `masterSet`'s events. */
  subscribe(at: Address, id: Identity, masterSet: string, listener: Listener, opts: SubscribeOptions): Subscription {
    const key = `${addressKey(at)}|${id.key}`;
    let shared = this.#subscribers.get(key);
    if (!shared || this.#closed) {
      shared = this.#openSubscriber(at, id, opts);
      if (!this.#closed) this.#subscribers.set(key, shared);
    }
    const s = shared;
    let set = s.listeners.get(masterSet);
    if (!set) s.listeners.set(masterSet, (set = new Set()));
    set.add(listener);
    let released = false;
    return {
      ready: s.ready,
      status: () => s.redis.status,
      release: () => {
        if (released) return;
        released = true;
        const mine = s.listeners.get(masterSet);
        mine?.delete(listener);
        if (mine?.size === 0) s.listeners.delete(masterSet);
        if (s.listeners.size === 0) {
          s.redis.disconnect();
          if (this.#subscribers.get(key) === s) this.#subscribers.delete(key);
        }
      },
    };
  }

  close(): void {
    this.#closed = true;
    for (const p of this.#pool.values()) discard(p);
    this.#pool.clear();
    for (const s of this.#subscribers.values()) s.redis.disconnect();
    this.#subscribers.clear();
  }

  #open(at: Address, id: Identity, reopenedAt?: number): Pooled {
    const conn = new Redis({
      ...redisOptions(id),
      host: at.host,
      port: at.port,
      lazyConnect: true,
      connectTimeout: this.#timeoutMs,
      commandTimeout: this.#timeoutMs,
      maxRetriesPerRequest: 0,
      // One attempt per question: retrying is the reconcile loop's job, not the socket's.
      retryStrategy: () => null,
    });
    const entry: Pooled = { conn, reopenedAt };
    // The cause of a failed connection setup (WRONGPASS from AUTH, a TLS certificate error,
    // ECONNREFUSED) arrives only as an 'error' event; the command itself then rejects with
    // ioredis' generic "Connection is closed.". Keep the last one to report it instead.
    conn.on('error', (err: Error) => (entry.lastError = err));
    // A working connection the server closed is opened again at once. Sentinel closes every
    // normal client of the replica it promotes (CLIENT KILL TYPE normal with SLAVEOF NO ONE), ~1 s
    // before its +switch-master: without this, the ROLE that verifies the new master would
    // pay connect + AUTH on the hot path.
    let wasReady = false;
    conn.once('ready', () => (wasReady = true));
    conn.once('end', () => {
      const key = `${addressKey(at)}|${id.key}`;
      const t = performance.now();
      if (!wasReady || entry.discarded || this.#closed || this.#pool.get(key) !== entry) return;
      if (entry.reopenedAt !== undefined && t - entry.reopenedAt < REOPEN_EVERY_MS) return void this.#pool.delete(key);
      this.#connectNow(key, this.#open(at, id, t));
    });
    return entry;
  }

  #openSubscriber(at: Address, id: Identity, opts: SubscribeOptions): Shared {
    const r = new Redis({
      ...redisOptions(id),
      host: at.host,
      port: at.port,
      connectTimeout: opts.timeoutMs,
      maxRetriesPerRequest: null,
      retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times - 1, 10), opts.maxBackoffMs),
    });
    const listeners = new Map<string, Set<Listener>>();
    const sets = (): { masterSets: number; first: string | undefined } => ({ masterSets: listeners.size, first: listeners.keys().next().value });
    let lastError: string | undefined;
    r.on('error', (err: Error) => {
      if (err.message === lastError) return;
      lastError = err.message;
      this.#log?.warn({ sentinel: opts.sentinel, ...sets(), err: err.message }, 'sentinel event subscription lost; reconnecting');
    });
    r.on('ready', () => {
      if (lastError) this.#log?.info({ sentinel: opts.sentinel, ...sets() }, 'sentinel event subscription back');
      lastError = undefined;
    });
    const deliver = (channel: string, message: string): void => {
      for (const name of masterSetsNamed(channel, message)) {
        const ls = listeners.get(name);
        if (ls) for (const l of ls) l(channel, message);
      }
    };
    r.on('message', (channel: string, message: string) => deliver(channel, message));
    r.on('pmessage', (_pattern: string, channel: string, message: string) => deliver(channel, message));
    // ioredis subscribes again by itself after every reconnect.
    const ready = Promise.all([r.subscribe(...CHANNELS), r.psubscribe(...PATTERNS)]).then(
      () => undefined,
      (err: Error) => void this.#log?.warn({ sentinel: opts.sentinel, ...sets(), err: err.message }, 'could not subscribe to sentinel events yet; retrying'),
    );
    return { redis: r, ready, listeners };
  }
}

/** Options for a connection as `id` (no timeouts, no retries: the caller sets them). */
export function redisOptions(id: Identity): RedisOptions {
  // A node given by hostname gets it as its server name from tls.connect itself.
  // No CLIENT SETINFO (and no read of ioredis' package.json) on every connect: two round trips
  // less before the first question. The name stays: the fence spares connections called so.
  return { username: id.username, password: id.password, tls: id.tls, connectionName: 'sentinel-switch', enableReadyCheck: false, disableClientInfo: true };
}

/** The connection ended (by the server, or after a failure): the next question opens another. */
function isGone(p: Pooled): boolean {
  return p.conn.status === 'end' || p.conn.status === 'close';
}

/** We close it ourselves; its 'end' must not reopen it. */
function discard(p: Pooled): void {
  p.discarded = true;
  p.conn.disconnect();
}

/** ioredis' own rejection when the connection went away: it says nothing about why. */
function isGenericClose(err: unknown): boolean {
  return /^Connection is closed\.?$/.test((err as Error)?.message ?? '');
}

function isReplyError(err: unknown): boolean {
  return (err as Error)?.name === 'ReplyError';
}

/** The server refused our credentials (AUTH, or a command before it). */
export function isCredentialsError(err: unknown): boolean {
  return /NOAUTH|WRONGPASS|invalid password|invalid username/i.test((err as Error)?.message ?? String(err));
}
