// The application's view: a Sentinel-unaware client that knows only a stable name, like the apps
// our users run. It writes unique keys at a fixed rate and records every write (acknowledged or
// not), so a benchmark or test can count acknowledged writes that a failover lost and tell when
// the first write landed on the new master.
//
// It resolves the name itself before every connect (by default through the system resolver, as a
// pod does, so /etc/resolv.conf and every DNS cache on the way count) and connects to the address
// it got, one connection at a time, as a plain client library does: dial and handshake (AUTH,
// PING) bounded by the connect timeout, each write by the command timeout.
//   mode 'reconnect': any error (READONLY, a timeout, a closed connection) drops the connection and
//                     reconnects after a short backoff (go-redis, redis-rb, ioredis with
//                     reconnectOnError);
//   mode 'sticky':    only a closed connection reconnects; READONLY is just a failed write
//                     (Jedis, plain redis-py, node-redis).
import { lookup } from 'node:dns/promises';
import { Redis } from 'ioredis';

export type ClientMode = 'reconnect' | 'sticky';

export interface AppWriterOptions {
  /** The stable name (or an address). */
  host: string;
  port: number;
  password?: string;
  /** Writes per second (default 100). */
  rate?: number;
  mode?: ClientMode;
  /** Keys are `<keyPrefix>:<seq>`; unique per writer. */
  keyPrefix: string;
  /** Name -> address before each connect. Default: the system resolver (getaddrinfo). */
  resolve?: (host: string) => Promise<string>;
  /** Per write; a write blocked longer fails (default 2000, a common client default). */
  commandTimeoutMs?: number;
  /** Default 1000: a Service without endpoints makes connects hang, not fail. */
  connectTimeoutMs?: number;
  /** Wait before a reconnect (default 20 ms). */
  backoffMs?: number;
}

export interface WriteRecord {
  seq: number;
  key: string;
  /** Epoch milliseconds (float), the clock of SwitchWatcher events. */
  sentAt: number;
  ackAt?: number;
  error?: string;
  /** The address the connection that carried it was opened to. */
  addr?: string;
}

export interface AppWriter {
  readonly records: readonly WriteRecord[];
  /** Connections opened so far (the first included). */
  readonly connects: number;
  /** Stops writing, waits for writes in flight (bounded by the command timeout), closes. */
  stop(): Promise<void>;
}

const nowMs = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** getaddrinfo, as a pod resolves: /etc/hosts, then the cluster DNS of /etc/resolv.conf. */
export const systemResolve = async (host: string): Promise<string> => (await lookup(host)).address;

export function startAppWriter(o: AppWriterOptions): AppWriter {
  const rate = o.rate ?? 100;
  const mode = o.mode ?? 'reconnect';
  const resolve = o.resolve ?? systemResolve;
  const commandTimeoutMs = o.commandTimeoutMs ?? 2_000;
  const records: WriteRecord[] = [];
  const inFlight = new Set<Promise<void>>();
  let conn: { redis: Redis; addr: string } | undefined;
  let connecting: Promise<void> | undefined;
  let connects = 0;
  let stopped = false;

  const connectTimeoutMs = o.connectTimeoutMs ?? 1_000;
  const backoffMs = o.backoffMs ?? 20;
  const reconnectSoon = (): void => {
    if (!stopped) connecting ??= sleep(backoffMs).then(connect).finally(() => (connecting = undefined));
  };
  /**
   * Gives the connection up at once (as a client library closes a socket it no longer trusts) and
   * reconnects, re-resolving the name. ioredis' own disconnect() only half-closes: towards a frozen
   * node the socket lingers for its disconnect timeout, and writes must not go to it meanwhile.
   */
  const lose = (c: { redis: Redis }): void => {
    if (conn !== c) return;
    conn = undefined;
    c.redis.disconnect();
    reconnectSoon();
  };

  const connect = async (): Promise<void> => {
    while (!stopped && !conn) {
      let redis: Redis | undefined;
      try {
        const addr = await resolve(o.host);
        redis = new Redis({
          host: addr,
          port: o.port,
          password: o.password,
          lazyConnect: true,
          connectTimeout: connectTimeoutMs,
          commandTimeout: commandTimeoutMs,
          maxRetriesPerRequest: 0,
          enableOfflineQueue: false,
          enableReadyCheck: false,
          disableClientInfo: true,
          retryStrategy: () => null, // reconnecting (and re-resolving) is ours, as in a plain client
        });
        redis.on('error', () => undefined); // each write records its own error
        // Dial + handshake (AUTH, then PING) within the connect timeout, as a client's dial does: a
        // frozen node accepts the TCP connection (the kernel does) but never answers.
        const r = redis;
        await withTimeout((async () => {
          await r.connect();
          await r.ping();
        })(), connectTimeoutMs);
        if (stopped) {
          redis.disconnect(); // stop() came while this connect was under way
          return;
        }
        const c = { redis, addr };
        redis.once('close', () => lose(c));
        conn = c;
        connects++;
      } catch {
        redis?.disconnect();
        await sleep(backoffMs);
      }
    }
  };

  const write = (seq: number): void => {
    const rec: WriteRecord = { seq, key: `${o.keyPrefix}:${seq}`, sentAt: nowMs() };
    records.push(rec);
    const c = conn;
    if (!c) {
      rec.error = 'no connection';
      connecting ??= connect().finally(() => (connecting = undefined));
      return;
    }
    rec.addr = c.addr;
    const p = c.redis.set(rec.key, String(seq)).then(
      () => void (rec.ackAt = nowMs()),
      (err: Error) => {
        rec.error = err.message;
        // A closed connection reconnects through its 'close' handler, in either mode.
        if (mode === 'reconnect') lose(c);
      },
    );
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  };

  // A fixed schedule (not "every N ms after the last one"), so a slow moment does not lower the rate.
  const startedAt = nowMs();
  let seq = 0;
  let timer: NodeJS.Timeout | undefined;
  const tick = (): void => {
    if (stopped) return;
    const due = Math.floor(((nowMs() - startedAt) * rate) / 1000);
    while (seq < due) write(seq++);
    timer = setTimeout(tick, Math.max(1, startedAt + ((seq + 1) * 1000) / rate - nowMs()));
  };
  connecting = connect().finally(() => (connecting = undefined));
  void connecting.then(tick);

  return {
    records,
    get connects() {
      return connects;
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await Promise.allSettled([...inFlight]);
      conn?.redis.disconnect();
      conn = undefined;
    },
  };
}

/** The keys of `keys` that exist on the node (MGET in batches): what survived the failover. */
export async function presentKeys(node: { host: string; port: number; password?: string }, keys: string[]): Promise<Set<string>> {
  const redis = new Redis({ host: node.host, port: node.port, password: node.password, lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    const present = new Set<string>();
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      const values = await redis.mget(...batch);
      values.forEach((v, j) => v !== null && present.add(batch[j]!));
    }
    return present;
  } finally {
    redis.disconnect();
  }
}

export interface WriteReport {
  sent: number;
  acked: number;
  /** Acknowledged, yet absent from the final master. */
  lostAcked: number;
  /** Errors by kind (first word(s) of the message): READONLY, no connection, Command timed out, ... */
  errors: Record<string, number>;
}

/** Counts of one window of writes against what the final master holds. */
export function judgeWrites(records: readonly WriteRecord[], present: Set<string>): WriteReport {
  const errors: Record<string, number> = {};
  let acked = 0;
  let lostAcked = 0;
  for (const r of records) {
    if (r.ackAt !== undefined) {
      acked++;
      if (!present.has(r.key)) lostAcked++;
    } else if (r.error) {
      const kind = errorKind(r.error);
      errors[kind] = (errors[kind] ?? 0) + 1;
    }
  }
  return { sent: records.length, acked, lostAcked, errors };
}

/**
 * The first write acknowledged at or after `t` whose key the final master holds. Once the new
 * master is promoted it no longer replicates from the old one, so a write acknowledged after the
 * switch and present at the end was acknowledged by the new master.
 */
export function firstNewAck(records: readonly WriteRecord[], t: number, present: Set<string>): WriteRecord | undefined {
  let best: WriteRecord | undefined;
  for (const r of records) {
    if (r.ackAt === undefined || r.ackAt < t || !present.has(r.key)) continue;
    if (!best || r.ackAt < best.ackAt!) best = r;
  }
  return best;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<never>((_, reject) => { t = setTimeout(() => reject(new Error(`connect timed out after ${ms} ms`)), ms); }),
  ]);
}

function errorKind(message: string): string {
  if (message === 'no connection') return message;
  if (message.startsWith('READONLY')) return 'READONLY';
  if (message.startsWith('NOREPLICAS')) return 'NOREPLICAS';
  if (/timed? ?out/i.test(message)) return 'timeout';
  if (/ECONNREFUSED/.test(message)) return 'refused';
  if (/closed|ECONNRESET|EPIPE|isn't writeable/i.test(message)) return 'connection closed';
  return message.split(/[\s:]/)[0] || message;
}
