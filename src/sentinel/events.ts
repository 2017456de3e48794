// Sentinel's pub/sub, as triggers: a master set listens on every sentinel address it has (a DNS
// name expanded to all its addresses, as for the questions), through the subscriber connection
// it shares with the other master sets on that sentinel (connections.ts), kept up with a bounded
// backoff; the messages it gets are parsed into typed events of that master set only. An event
// is never the truth: `+switch-master` only starts the same verified reconcile as the hook, and
// the early fence it drives is bounded and reversible.
import type { Logger } from 'pino';
import type { MasterSetConfig } from '../config.ts';
import { type Address, addressKey } from '../decide/index.ts';
import type { Subscription } from './connections.ts';
import type { SentinelClient } from './index.ts';

export type SentinelEvent =
  /** The leader chose the replica to promote; `master` is the master being failed over. */
  | { kind: 'selected-slave'; sentinel: string; masterSet: string; replica: Address; master: Address }
  | { kind: 'switch-master'; sentinel: string; masterSet: string; from: Address; to: Address }
  /** `-failover-abort-<why>`: the failover of `master` ended without a promotion. */
  | { kind: 'failover-abort'; sentinel: string; masterSet: string; why: string; master: Address }
  | { kind: 'failover-end'; sentinel: string; masterSet: string; master: Address }
  /** `+sdown` / `-sdown` of a node (master or replica) of the master set; sentinels' own are left out. */
  | { kind: 'sdown' | 'sdown-cleared'; sentinel: string; masterSet: string; node: Address; nodeType: 'master' | 'slave' };

export const CHANNELS = ['+selected-slave', '+switch-master', '+failover-end', '+sdown', '-sdown'];
export const PATTERNS = ['-failover-abort-*'];

/**
 * The master set names a message may belong to (where parseSentinelEvent looks for it), so a
 * shared subscription hands it only to those master sets; each still parses and checks it.
 */
export function masterSetsNamed(channel: string, message: string): string[] {
  const f = message.trim().split(/\s+/);
  if (channel === '+switch-master') return f[0] ? [f[0]] : [];
  if (f[0] === 'master') return f[1] ? [f[1]] : [];
  return f[5] ? [f[5]] : [];
}

/**
 * `<type> <name> <ip> <port> [@ <master-name> <master-ip> <master-port>]` (Sentinel's "%@"),
 * or for +switch-master `<master-name> <old-ip> <old-port> <new-ip> <new-port>`. Anything else,
 * or another master set, is undefined.
 */
export function parseSentinelEvent(channel: string, message: string, sentinel: string, masterSet: string): SentinelEvent | undefined {
  const f = message.trim().split(/\s+/);
  const addr = (host: string | undefined, port: string | undefined): Address | undefined => {
    const p = Number(port);
    return host && Number.isInteger(p) && p > 0 && p < 65536 ? { host, port: p } : undefined;
  };
  if (channel === '+switch-master') {
    const from = addr(f[1], f[2]);
    const to = addr(f[3], f[4]);
    if (f.length !== 5 || f[0] !== masterSet || !from || !to) return undefined;
    return { kind: 'switch-master', sentinel, masterSet, from, to };
  }
  const type = f[0];
  const at = addr(f[2], f[3]);
  if (!at || (type !== 'master' && type !== 'slave' && type !== 'sentinel')) return undefined;
  // The master an instance event belongs to: itself for a master, after the "@" otherwise.
  let setName: string | undefined;
  let master: Address | undefined;
  if (type === 'master') {
    if (f.length !== 4) return undefined;
    setName = f[1];
    master = at;
  } else {
    if (f.length !== 8 || f[4] !== '@') return undefined;
    setName = f[5];
    master = addr(f[6], f[7]);
  }
  if (setName !== masterSet || !master) return undefined;
  if (channel === '+selected-slave') return type === 'slave' ? { kind: 'selected-slave', sentinel, masterSet, replica: at, master } : undefined;
  if (channel === '+failover-end') return type === 'master' ? { kind: 'failover-end', sentinel, masterSet, master } : undefined;
  if (channel.startsWith('-failover-abort-')) {
    return type === 'master' ? { kind: 'failover-abort', sentinel, masterSet, why: channel.slice('-failover-abort-'.length), master } : undefined;
  }
  if (channel === '+sdown' || channel === '-sdown') {
    if (type === 'sentinel') return undefined;
    return { kind: channel === '+sdown' ? 'sdown' : 'sdown-cleared', sentinel, masterSet, node: at, nodeType: type };
  }
  return undefined;
}

export interface EventSubscriptionOptions {
  /** How often the sentinels' DNS names are resolved again (new or gone addresses). */
  refreshMs?: number;
  /** Reconnect backoff: 100 ms doubling, at most this (default 2000). */
  maxBackoffMs?: number;
  /** Bound of the connect and the SUBSCRIBE (default 2000). */
  timeoutMs?: number;
}

/** Subscriptions to every sentinel of one master set. */
export class SentinelEvents {
  readonly #set: MasterSetConfig;
  readonly #client: SentinelClient;
  readonly #log: Logger;
  readonly #onEvent: (e: SentinelEvent) => void;
  readonly #opts: Required<EventSubscriptionOptions>;
  readonly #subs = new Map<string, Subscription>();
  #refresh: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(deps: { set: MasterSetConfig; client: SentinelClient; log: Logger; onEvent: (e: SentinelEvent) => void; options?: EventSubscriptionOptions }) {
    this.#set = deps.set;
    this.#client = deps.client;
    this.#log = deps.log.child({ masterSet: deps.set.name });
    this.#onEvent = deps.onEvent;
    this.#opts = { refreshMs: 30_000, maxBackoffMs: 2_000, timeoutMs: 2_000, ...deps.options };
  }

  /** Subscribes to every sentinel found now; resolves when each has subscribed or failed once (it keeps retrying). */
  async start(): Promise<void> {
    await this.#sync();
    const tick = (): void => {
      if (this.#stopped) return;
      void this.#sync().finally(() => {
        if (!this.#stopped) this.#refresh = setTimeout(tick, this.#opts.refreshMs);
      });
    };
    this.#refresh = setTimeout(tick, this.#opts.refreshMs);
  }

  /** Sentinel addresses subscribed to now. */
  get subscribed(): string[] {
    return [...this.#subs.entries()].filter(([, s]) => s.status() === 'ready').map(([k]) => k);
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#refresh);
    for (const s of this.#subs.values()) s.release();
    this.#subs.clear();
  }

  async #sync(): Promise<void> {
    const found = await this.#client.sentinelAddresses();
    const want = new Map<string, { sentinel: string; address: Address; servername?: string }>();
    for (const f of found) {
      if (f.address) want.set(addressKey(f.address), { sentinel: f.sentinel, address: f.address, servername: f.servername });
      else this.#log.warn({ sentinel: f.sentinel, err: f.error }, 'cannot subscribe to sentinel events');
    }
    // A lookup that failed entirely keeps what we have rather than dropping every subscription.
    if (want.size === 0) return;
    for (const [key, s] of this.#subs) {
      if (!want.has(key)) {
        s.release();
        this.#subs.delete(key);
      }
    }
    const started: Promise<void>[] = [];
    for (const [key, w] of want) if (!this.#subs.has(key) && !this.#stopped) started.push(this.#subscribe(key, w.sentinel, w.address, w.servername));
    // A sentinel that is down now must not hold the start back: its subscription keeps trying.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(started), new Promise((r) => (timer = setTimeout(r, this.#opts.timeoutMs)))]);
    clearTimeout(timer);
  }

  #subscribe(key: string, sentinel: string, at: Address, servername?: string): Promise<void> {
    const name = this.#set.name;
    const sub = this.#client.connections.subscribe(
      at,
      this.#client.sentinelIdentity(servername),
      name,
      (channel, message) => {
        const e = parseSentinelEvent(channel, message, sentinel, name);
        if (e) this.#onEvent(e);
      },
      { timeoutMs: this.#opts.timeoutMs, maxBackoffMs: this.#opts.maxBackoffMs, sentinel },
    );
    this.#subs.set(key, sub);
    return sub.ready;
  }
}
