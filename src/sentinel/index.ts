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
  async sentinelAddresses(): Promise<{ sentinel: string; address?: Address; error?: string }[]> {
    const out: { sentinel: string; address?: Address; error?: string }[] = [];
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
          for (const a of addrs) out.push({ sentinel: addrs.length > 1 ? `${a.address}:${port} (${host})` : spec, address: { host: a.address, port } });
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
          const reply = await this.#command(t.address, this.#sentinelAuth, ['SENTINEL', 'get-master-addr-by-name', this.#set.name]);
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

  // For fencing (src/fence/) and the event subscription (src/sentinel/events.ts): the same
  // credentials, TLS and client name as the questions above.
  /** One command to a sentinel or a Redis node of this master set, on the pooled connection. */
  command(to: 'sentinel' | 'node', at: Address, args: [string, ...string[]]): Promise<unknown> {
    return this.#command(at, to === 'sentinel' ? this.#sentinelAuth : this.#redisAuth, args);
  }

  /** Options for a connection of one's own to a sentinel or a node (no timeouts, no retries: the caller sets them). */
  connectionOptions(to: 'sentinel' | 'node'): RedisOptions {
    const auth = to === 'sentinel' ? this.#sentinelAuth : this.#redisAuth;
    return { username: auth.username, password: auth.password, tls: this.#tls, connectionName: 'sentinel-switch', enableReadyCheck: false };
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const c of this.#pool.values()) c.disconnect();
    this.#pool.clear();
  }

  async #command(at: Address, auth: Auth, args: [string, ...string[]]): Promise<unknown> {
    if (this.#closed) throw new Error('client closed');
    const key = `${at.host}:${at.port}:${auth.username ?? ''}`;
    let conn = this.#pool.get(key);
    if (!conn || conn.status === 'end' || conn.status === 'close') {
      conn?.disconnect();
      conn = new Redis({
        host: at.host,
        port: at.port,
        username: auth.username,
        password: auth.password,
        tls: this.#tls,
        lazyConnect: true,
        connectTimeout: this.#timeoutMs,
        commandTimeout: this.#timeoutMs,
        maxRetriesPerRequest: 0,
        enableReadyCheck: false,
        // One attempt per question: retrying is the reconcile loop's job, not the socket's.
        retryStrategy: () => null,
        connectionName: 'sentinel-switch',
      });
      conn.on('error', () => {
        /* reported through the failing command */
      });
      this.#pool.set(key, conn);
    }
    try {
      if (conn.status === 'wait') await conn.connect();
      return await conn.call(...args);
    } catch (err) {
      this.#pool.delete(key);
      conn.disconnect();
      throw err;
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

function describeError(err: unknown, who: string): string {
  const e = err as NodeJS.ErrnoException;
  const msg = e?.message ?? String(err);
  if (/NOAUTH|WRONGPASS|invalid password|invalid username/i.test(msg)) return `${who} rejected our credentials (${msg}): check the auth password/username`;
  if (/NOPERM/i.test(msg)) return `${who}: ACL user lacks permission (${msg}): allow the command`;
  return `${who}: ${msg}`;
}
