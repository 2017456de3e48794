// Where the truth comes from: every configured sentinel is asked in parallel, and the node the
// majority names is asked ROLE. Connections are kept open (a question costs ~0.03 ms inside one),
// shared with every master set that connects as the same client (connections.ts), and thrown
// away on a connection-level error, so a restarted sentinel is simply reconnected next time.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import type { RedisOptions } from 'ioredis';
import { type MasterSetConfig, readSecret } from '../config.ts';
import { type Address, decisive, type RoleReply, type Tally, tally, type Vote } from '../decide/index.ts';
import { Connections, type Identity, identity, isCredentialsError, redisOptions, withServername } from './connections.ts';

export interface SentinelTarget {
  sentinel: string;
  address?: Address;
  /** The configured DNS name the address came from: the TLS server name. */
  servername?: string;
  error?: string;
}

export class SentinelClient {
  readonly #set: MasterSetConfig;
  readonly #sentinelId: Identity;
  readonly #redisId: Identity;
  readonly #connections: Connections;
  /** A client made without shared connections owns (and closes) its own. */
  readonly #ownsConnections: boolean;
  #closed = false;

  /**
   * `connections`: shared with the other master sets (app.ts); each set's own credentials and TLS
   * identity decide which connections it may share.
   */
  constructor(set: MasterSetConfig, timeoutMs: number, connections?: Connections) {
    this.#set = set;
    const tls: ConnectionOptions | undefined = set.tls.enabled
      ? {
          ca: set.tls.caFile ? readFileSync(set.tls.caFile) : undefined,
          cert: set.tls.certFile ? readFileSync(set.tls.certFile) : undefined,
          key: set.tls.keyFile ? readFileSync(set.tls.keyFile) : undefined,
          rejectUnauthorized: !set.tls.insecureSkipVerify,
        }
      : undefined;
    this.#sentinelId = identity(resolveAuth(set.sentinelAuth, `masterSets[${set.name}].sentinelAuth.password`), tls);
    this.#redisId = identity(resolveAuth(set.redisAuth, `masterSets[${set.name}].redisAuth.password`), tls);
    this.#ownsConnections = !connections;
    this.#connections = connections ?? new Connections({ timeoutMs });
  }

  /** The master set's name. */
  get masterSet(): string {
    return this.#set.name;
  }

  /** The connections this client uses (shared across master sets when the app made them). */
  get connections(): Connections {
    return this.#connections;
  }

  /** Who we are to a sentinel (`servername`: the configured DNS name, for TLS). */
  sentinelIdentity(servername?: string): Identity {
    return withServername(this.#sentinelId, servername);
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
          const addrs = await this.#connections.resolve(host);
          if (addrs.length === 0) out.push({ sentinel: spec, error: `DNS name ${host} has no addresses` });
          // Connected by IP, but the TLS server name (and the name the certificate is checked
          // against) stays the configured one: certificates name the Service, not pod IPs.
          for (const a of addrs) out.push({ sentinel: addrs.length > 1 ? `${a}:${port} (${host})` : spec, address: { host: a, port }, servername: host });
        } catch (err) {
          out.push({ sentinel: spec, error: `cannot resolve sentinel ${host}: ${(err as Error).message}` });
        }
      }),
    );
    return out;
  }

  /** Asks every sentinel (`targets`: those sentinelAddresses() found, if the caller has them), in parallel, which address is the master of this master set. */
  async askSentinels(targets?: SentinelTarget[]): Promise<Vote[]> {
    return Promise.all(this.#askEach(targets ?? (await this.sentinelAddresses())));
  }

  /**
   * The same questions; `decided` resolves with the tally as soon as the answers so far decide
   * it (a candidate has the votes needed out of every sentinel asked: no later answer can change
   * that), or with the tally of all answers. `all` resolves with every answer, for the record and
   * the fence. A sentinel busy writing its config at +switch-master then no longer holds back a
   * switch the other two already decided.
   */
  askSentinelsUntilDecided(quorum?: number): { decided: Promise<Tally>; all: Promise<Vote[]> } {
    const each = this.sentinelAddresses().then((targets) => this.#askEach(targets));
    const all = each.then((ps) => Promise.all(ps));
    const decided = each.then(
      (ps) =>
        new Promise<Tally>((resolve) => {
          const answered: Vote[] = [];
          for (const p of ps) {
            void p.then((v) => {
              answered.push(v);
              const early = decisive(answered, ps.length, quorum);
              if (early || answered.length === ps.length) resolve(early ?? tally(answered, quorum));
            });
          }
          if (ps.length === 0) resolve(tally([], quorum));
        }),
    );
    return { decided, all };
  }

  #askEach(targets: SentinelTarget[]): Promise<Vote>[] {
    return targets.map(async (t): Promise<Vote> => {
      if (!t.address) return { sentinel: t.sentinel, error: t.error ?? 'no address' };
      try {
        const reply = await this.command('sentinel', t.address, ['SENTINEL', 'get-master-addr-by-name', this.#set.name], t.servername);
        if (reply === null) return { sentinel: t.sentinel, error: `sentinel does not monitor master set ${this.#set.name}` };
        if (!Array.isArray(reply) || reply.length !== 2) return { sentinel: t.sentinel, error: `unexpected reply ${JSON.stringify(reply)}` };
        const port = Number(reply[1]);
        if (!Number.isInteger(port)) return { sentinel: t.sentinel, error: `unexpected port ${String(reply[1])}` };
        return { sentinel: t.sentinel, master: { host: String(reply[0]), port } };
      } catch (err) {
        return { sentinel: t.sentinel, error: describeError(err, `sentinel ${t.sentinel}`) };
      }
    });
  }

  /** Asks the node itself; only a node that says "master" may be written. */
  async askRole(node: Address): Promise<RoleReply> {
    try {
      return parseRole(await this.command('node', node, ['ROLE'])).reply;
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
      const reply = await this.command('node', node, ['ROLE']);
      return { ok: true, detail: `ROLE of ${node.host}:${node.port} answers ${Array.isArray(reply) ? String(reply[0]) : JSON.stringify(reply)}` };
    } catch (err) {
      const who = `node ${node.host}:${node.port}`;
      return { ok: errorKind(err) === 'transient', detail: describeError(err, who) };
    }
  }

  // For fencing (src/fence/) and the event subscription (src/sentinel/events.ts): the same
  // credentials, TLS and client name as the questions above.
  /** One command to a sentinel or a Redis node of this master set, on the shared connection. */
  command(to: 'sentinel' | 'node', at: Address, args: [string, ...string[]], servername?: string): Promise<unknown> {
    if (this.#closed) return Promise.reject(new Error('client closed'));
    return this.#connections.command(at, withServername(to === 'sentinel' ? this.#sentinelId : this.#redisId, servername), args);
  }

  /** Whether a connection to this node is open now: an address we have already talked to, with these credentials. */
  connected(node: Address): boolean {
    return !this.#closed && this.#connections.isOpen(node, this.#redisId);
  }

  /** Opens the connection to a node now (if none is open), so that asking it ROLE later costs one round trip. */
  warmNode(node: Address): void {
    if (!this.#closed) this.#connections.warm(node, this.#redisId);
  }

  /** Options for a connection of one's own to a sentinel or a node (no timeouts, no retries: the caller sets them). */
  connectionOptions(to: 'sentinel' | 'node', servername?: string): RedisOptions {
    return redisOptions(withServername(to === 'sentinel' ? this.#sentinelId : this.#redisId, servername));
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#ownsConnections) this.#connections.close();
  }
}

function resolveAuth(auth: MasterSetConfig['redisAuth'], what: string): { username?: string; password?: string } {
  return { username: auth.username, password: auth.password ? readSecret(auth.password, what) : undefined };
}

/** ROLE's reply: what a decision needs (`reply`), and beside it the replication offset (a master's, or what a replica has processed) and a replica's link state, for the operator's view. */
export function parseRole(raw: unknown): { reply: RoleReply; offset?: number; linkState?: string } {
  if (!Array.isArray(raw)) return { reply: { error: `unexpected ROLE reply ${JSON.stringify(raw)}` } };
  const role = String(raw[0]);
  if (role === 'master') return { reply: { role: 'master' }, offset: Number(raw[1]) };
  if (role === 'slave') return { reply: { role: 'slave', master: { host: String(raw[1]), port: Number(raw[2]) } }, offset: Number(raw[4]), linkState: String(raw[3]) };
  if (role === 'sentinel') return { reply: { role: 'sentinel' } };
  return { reply: { error: `unknown role ${role}` } };
}

/** A sentinel's answer to `SENTINEL REPLICAS <name>`: each replica's address and Sentinel's flags for it ("slave", "s_down,slave,disconnected", "promoted", ...); entries without an ip and a port are left out. undefined: not a list. */
export function parseReplicas(reply: unknown): { address: Address; flags: string }[] | undefined {
  if (!Array.isArray(reply)) return undefined;
  const replicas: { address: Address; flags: string }[] = [];
  for (const entry of reply) {
    if (!Array.isArray(entry)) continue;
    const f: Record<string, string> = {};
    for (let i = 0; i + 1 < entry.length; i += 2) f[String(entry[i])] = String(entry[i + 1]);
    const port = Number(f.port);
    if (!f.ip || !Number.isInteger(port)) continue;
    replicas.push({ address: { host: f.ip, port }, flags: f.flags ?? '' });
  }
  return replicas;
}

export function splitHostPort(spec: string): Address {
  const i = spec.lastIndexOf(':');
  const host = spec.slice(0, i).replace(/^\[|\]$/g, '');
  return { host, port: Number(spec.slice(i + 1)) };
}

type ErrorKind = 'credentials' | 'permission' | 'tls' | 'transient';

function errorKind(err: unknown): ErrorKind {
  const e = err as NodeJS.ErrnoException;
  const msg = e?.message ?? String(err);
  if (isCredentialsError(err)) return 'credentials';
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
