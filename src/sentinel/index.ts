// Where the truth comes from: every configured sentinel is asked in parallel, and the node the
// majority names is asked ROLE. Connections are kept open (a question costs ~0.03 ms inside one)
// and thrown away on any error, so a restarted sentinel is simply reconnected next time.
import { lookup } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { Redis, type RedisOptions } from 'ioredis';
import { type MasterSetConfig, readSecret } from '../config.ts';
import type { Address, RoleReply, Vote } from '../decide/index.ts';
import { withTimeout } from '../timeout.ts';

export interface SentinelTarget {
  sentinel: string;
  address?: Address;
  /** The configured DNS name the address came from: the TLS server name. */
  servername?: string;
  error?: string;
}

interface Auth {
  username?: string;
  password?: string;
}

export class SentinelClient {
  readonly #set: MasterSetConfig;
  readonly #timeoutMs: number;
  readonly #sentinelAuth: Auth;
  readonly #redisAuth: Auth;
  readonly #tls: ConnectionOptions | undefined;
  readonly #pool = new Map<string, Redis>();
  #closed = false;

  constructor(set: MasterSetConfig, timeoutMs: number) {
    this.#set = set;
    this.#timeoutMs = timeoutMs;
    this.#sentinelAuth = resolveAuth(set.sentinelAuth, `masterSets[${set.name}].sentinelAuth.password`);
    this.#redisAuth = resolveAuth(set.redisAuth, `masterSets[${set.name}].redisAuth.password`);
    this.#tls = set.tls.enabled
      ? {
          ca: set.tls.caFile ? readFileSync(set.tls.caFile) : undefined,
          cert: set.tls.certFile ? readFileSync(set.tls.certFile) : undefined,
          key: set.tls.keyFile ? readFileSync(set.tls.keyFile) : undefined,
          rejectUnauthorized: !set.tls.insecureSkipVerify,
        }
      : undefined;
  }

  /** The sentinels to ask now: each configured host:port, a DNS name expanded to all its addresses. */
  async sentinelAddresses(): Promise<SentinelTarget[]> {
    const out: SentinelTarget[] = [];
    await Promise.all(
      this.#set.sentinels.map(async (spec) => {
        const { host, port } = splitHostPort(spec);
        if (isIP(host)) {
          out.push({ sentinel: spec, address: { host, port } });
          return;
        }
        try {
          const addrs = await withTimeout(lookup(host, { all: true }), this.#timeoutMs, () => new Error(`DNS lookup of ${host} timed out after ${this.#timeoutMs} ms`));
          if (addrs.length === 0) out.push({ sentinel: spec, error: `DNS name ${host} has no addresses` });
          // Connected by IP, but the TLS server name (and the name the certificate is checked
          // against) stays the configured one: certificates name the Service, not pod IPs.
          for (const a of addrs) out.push({ sentinel: addrs.length > 1 ? `${a.address}:${port} (${host})` : spec, address: { host: a.address, port }, servername: host });
        } catch (err) {
          out.push({ sentinel: spec, error: `cannot resolve sentinel ${host}: ${(err as Error).message}` });
        }
      }),
    );
    return out;
  }

  /** Asks every sentinel, in parallel, which address is the master of this master set. */
  async askSentinels(): Promise<Vote[]> {
    const targets = await this.sentinelAddresses();
    return Promise.all(
      targets.map(async (t): Promise<Vote> => {
        if (!t.address) return { sentinel: t.sentinel, error: t.error ?? 'no address' };
        try {
          const reply = await this.#command(t.address, this.#sentinelAuth, ['SENTINEL', 'get-master-addr-by-name', this.#set.name], t.servername);
          if (reply === null) return { sentinel: t.sentinel, error: `sentinel does not monitor master set ${this.#set.name}` };
          if (!Array.isArray(reply) || reply.length !== 2) return { sentinel: t.sentinel, error: `unexpected reply ${JSON.stringify(reply)}` };
          const port = Number(reply[1]);
          if (!Number.isInteger(port)) return { sentinel: t.sentinel, error: `unexpected port ${String(reply[1])}` };
          return { sentinel: t.sentinel, master: { host: String(reply[0]), port } };
        } catch (err) {
          return { sentinel: t.sentinel, error: describeError(err, `sentinel ${t.sentinel}`) };
        }
      }),
    );
  }

  /** Asks the node itself; only a node that says "master" may be written. */
  async askRole(node: Address): Promise<RoleReply> {
    try {
      const reply = await this.#command(node, this.#redisAuth, ['ROLE']);
      if (!Array.isArray(reply)) return { error: `unexpected ROLE reply ${JSON.stringify(reply)}` };
      const role = String(reply[0]);
      if (role === 'master') return { role: 'master' };
      if (role === 'slave') return { role: 'slave', master: { host: String(reply[1]), port: Number(reply[2]) } };
      if (role === 'sentinel') return { role: 'sentinel' };
      return { error: `unknown role ${role}` };
    } catch (err) {
      return { error: describeError(err, `node ${node.host}:${node.port}`) };
    }
  }

  /**
   * Readiness: can we verify this node at all? ROLE must not fail for a reason that retrying
   * cannot fix (credentials, ACL, TLS certificate). A refused or silent node passes: that is a
   * failover in progress, which Sentinel handles and reconcile follows.
   */
  async checkAccess(node: Address): Promise<{ ok: boolean; detail: string }> {
    try {
      const reply = await this.#command(node, this.#redisAuth, ['ROLE']);
      return { ok: true, detail: `ROLE of ${node.host}:${node.port} answers ${Array.isArray(reply) ? String(reply[0]) : JSON.stringify(reply)}` };
    } catch (err) {
      const who = `node ${node.host}:${node.port}`;
      return { ok: errorKind(err) === 'transient', detail: describeError(err, who) };
    }
  }

  // For fencing (src/fence/) and the event subscription (src/sentinel/events.ts): the same
  // credentials, TLS and client name as the questions above.
  /** One command to a sentinel or a Redis node of this master set, on the pooled connection. */
  command(to: 'sentinel' | 'node', at: Address, args: [string, ...string[]], servername?: string): Promise<unknown> {
    return this.#command(at, to === 'sentinel' ? this.#sentinelAuth : this.#redisAuth, args, servername);
  }

  /** Options for a connection of one's own to a sentinel or a node (no timeouts, no retries: the caller sets them). */
  connectionOptions(to: 'sentinel' | 'node', servername?: string): RedisOptions {
    const auth = to === 'sentinel' ? this.#sentinelAuth : this.#redisAuth;
    const tls = this.#tls && servername ? { ...this.#tls, servername } : this.#tls;
    return { username: auth.username, password: auth.password, tls, connectionName: 'sentinel-switch', enableReadyCheck: false };
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const c of this.#pool.values()) c.disconnect();
    this.#pool.clear();
  }

  async #command(at: Address, auth: Auth, args: [string, ...string[]], servername?: string): Promise<unknown> {
    if (this.#closed) throw new Error('client closed');
    const key = `${at.host}:${at.port}:${auth.username ?? ''}:${servername ?? ''}`;
    let conn = this.#pool.get(key);
    if (!conn || conn.status === 'end' || conn.status === 'close') {
      conn?.disconnect();
      conn = new Redis({
        host: at.host,
        port: at.port,
        username: auth.username,
        password: auth.password,
        // A node given by hostname gets it as its server name from tls.connect itself.
        tls: this.connectionOptions('sentinel', servername).tls,
        lazyConnect: true,
        connectTimeout: this.#timeoutMs,
        commandTimeout: this.#timeoutMs,
        maxRetriesPerRequest: 0,
        enableReadyCheck: false,
        // One attempt per question: retrying is the reconcile loop's job, not the socket's.
        retryStrategy: () => null,
        connectionName: 'sentinel-switch',
      });
      // The cause of a failed connection setup (WRONGPASS from AUTH, a TLS certificate error,
      // ECONNREFUSED) arrives only as an 'error' event; the command itself then rejects with
      // ioredis' generic "Connection is closed.". Keep the last one to report it instead.
      const c = conn;
      c.on('error', (err: Error) => lastError.set(c, err));
      this.#pool.set(key, conn);
    }
    try {
      if (conn.status === 'wait') await conn.connect();
      return await conn.call(...args);
    } catch (err) {
      this.#pool.delete(key);
      conn.disconnect();
      const cause = lastError.get(conn);
      throw cause && isGenericClose(err) ? cause : err;
    }
  }
}

function resolveAuth(auth: MasterSetConfig['redisAuth'], what: string): Auth {
  return { username: auth.username, password: auth.password ? readSecret(auth.password, what) : undefined };
}

export function splitHostPort(spec: string): Address {
  const i = spec.lastIndexOf(':');
  const host = spec.slice(0, i).replace(/^\[|\]$/g, '');
  return { host, port: Number(spec.slice(i + 1)) };
}

const lastError = new WeakMap<Redis, Error>();

/** ioredis' own rejection when the connection went away: it says nothing about why. */
function isGenericClose(err: unknown): boolean {
  return /^Connection is closed\.?$/.test((err as Error)?.message ?? '');
}

type ErrorKind = 'credentials' | 'permission' | 'tls' | 'transient';

function errorKind(err: unknown): ErrorKind {
  const e = err as NodeJS.ErrnoException;
  const msg = e?.message ?? String(err);
  if (/NOAUTH|WRONGPASS|invalid password|invalid username/i.test(msg)) return 'credentials';
  if (/NOPERM/i.test(msg)) return 'permission';
  if (/^(ERR_TLS_|ERR_SSL_|CERT_|DEPTH_ZERO_|SELF_SIGNED_|UNABLE_TO_(GET|VERIFY)_|ERR_OSSL)/.test(String(e?.code ?? '')) || /certificate|altnames|SSL routines|wrong version number/i.test(msg)) return 'tls';
  return 'transient';
}

/** An error worded for the operator: bad credentials, a missing ACL permission and TLS failures say what to fix. */
export function describeError(err: unknown, who: string): string {
  const e = err as NodeJS.ErrnoException;
  const msg = e?.message ?? String(err);
  switch (errorKind(err)) {
    case 'credentials':
      return `${who} rejected our credentials (${msg}): check the auth password/username`;
    case 'permission':
      return `${who}: ACL user lacks permission (${msg}): allow the command`;
    case 'tls':
      return `${who}: TLS failed (${msg}${e?.code && !msg.includes(e.code) ? `, ${e.code}` : ''}): the certificate must be signed by tls.caFile and name the host connected to (its DNS name, or an IP SAN when Sentinel announces IPs)`;
    default:
      return `${who}: ${msg}`;
  }
}
