// Where fencing decisions are applied, on the Redis side: CLIENT PAUSE ... WRITE, CLIENT LIST +
// CLIENT KILL ID, REPLICAOF, CLIENT UNPAUSE. One Fencer per master set. Its work runs after the
// Service patch, one run at a time, and never delays a switch. Every pause carries its own
// timeout (fencing.pauseMs), so it ends even if sentinel-switch dies while holding it.
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { MasterSetConfig } from '../config.ts';
import {
  clientsToKill,
  type FenceRole,
  type FenceStep,
  type NodeView,
  parseClientList,
  parseFenceRole,
  type PauseReason,
  planFence,
  type UnpauseWhy,
} from '../decide/fence.ts';
import { type Address, addressKey } from '../decide/index.ts';
import type { Metrics } from '../metrics.ts';
import type { SentinelEvent } from '../sentinel/events.ts';
import { parseReplicas, type SentinelClient } from '../sentinel/index.ts';

export const FENCE_COMMANDS = '+client|pause +client|unpause +client|list +client|kill, and +replicaof for fencing.demote';

export interface FenceDeps {
  set: MasterSetConfig;
  client: SentinelClient;
  log: Logger;
  metrics: Metrics;
  /** An Event on the target Service. */
  event: (e: { type: 'Normal' | 'Warning'; reason: string; message: string }) => void;
  /** Asks for a (verified) reconcile of this master set. */
  reconcile: () => void;
}

/** What a reconcile verified, handed over after its outcome. */
export interface Verified {
  master: Address;
  /** Every master any sentinel named in that run. */
  named: Address[];
  /** The Service names the verified master now (switched or unchanged). */
  serviceNamesMaster: boolean;
  /** The master recorded on the Service before this run (annotation sentinel-switch.io/master). */
  previousMaster?: Address;
}

interface Pause {
  node: Address;
  reason: PauseReason;
  since: number;
  timer: NodeJS.Timeout;
}

const nowMs = (): number => performance.timeOrigin + performance.now();
/** Without a reason to ask sooner, the sentinels' replica lists are read again this often (new nodes). */
const DISCOVER_MS = 5 * 60_000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const round = (ms: number): number => Math.round(ms * 100) / 100;

export class Fencer {
  readonly #set: MasterSetConfig;
  readonly #client: SentinelClient;
  readonly #log: Logger;
  readonly #metrics: Metrics;
  readonly #event: FenceDeps['event'];
  readonly #reconcile: () => void;
  readonly #paused = new Map<string, Pause>();
  /** Nodes of this master set we know of; `suspect`: it was a master when last seen. */
  readonly #known = new Map<string, { node: Address; suspect: boolean }>();
  /**
   * A standing connection to each known node. When a stale master stops answering, a pause and a
   * ROLE are queued on it: the node executes them the moment it runs again, in the same pass as
   * the writes that waited in its socket buffers and before any write sent after its return.
   */
  readonly #links = new Map<string, Redis>();
  readonly #watching = new Set<string>();
  #master: Address | undefined;
  /** When the sentinels were last asked for this master set's replicas, and with which master. */
  #lastView: { master: string; at: number } | undefined;
  #chain: Promise<void> = Promise.resolve();
  #lastWarning: string | undefined;
  #stopped = false;

  constructor(deps: FenceDeps) {
    this.#set = deps.set;
    this.#client = deps.client;
    this.#log = deps.log.child({ masterSet: deps.set.name });
    this.#metrics = deps.metrics;
    this.#event = deps.event;
    this.#reconcile = deps.reconcile;
  }

  get enabled(): boolean {
    return this.#set.fencing.enabled;
  }

  /** Pauses we hold now (for tests and the log). */
  get paused(): { node: string; reason: PauseReason; sinceMs: number }[] {
    return [...this.#paused.values()].map((p) => ({ node: addressKey(p.node), reason: p.reason, sinceMs: p.since }));
  }

  /** Sentinel pub/sub: pause at +selected-slave, lift at an abort; the rest only teaches us nodes. */
  onEvent(e: SentinelEvent): void {
    if (!this.enabled || this.#stopped) return;
    if (e.kind === 'selected-slave') void this.#early(e.master, e.sentinel, e.replica);
    else if (e.kind === 'failover-abort') this.#abort(e.master, e.why, e.sentinel);
    else if (e.kind === 'switch-master') {
      this.#note(e.from, true);
      this.#note(e.to, false);
    }
  }

  /** After a reconcile verified a master: find stale masters among the known nodes and fence them. */
  afterVerified(v: Verified): Promise<void> {
    if (!this.enabled || this.#stopped) return Promise.resolve();
    if (this.#master && addressKey(this.#master) !== addressKey(v.master)) this.#note(this.#master, true);
    this.#master = v.master;
    if (v.previousMaster && addressKey(v.previousMaster) !== addressKey(v.master)) this.#note(v.previousMaster, true);
    this.#note(v.master, false);
    return this.#enqueue(() => this.#sweep(v));
  }

  /** Stops timers and watches; pauses in effect end by their own timeout. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const p of this.#paused.values()) clearTimeout(p.timer);
    await this.#chain.catch(() => undefined);
    for (const l of this.#links.values()) l.disconnect();
    this.#links.clear();
  }

  #note(node: Address, suspect: boolean): void {
    const key = addressKey(node);
    const k = this.#known.get(key);
    if (k) k.suspect = suspect;
    else this.#known.set(key, { node, suspect });
  }

  #enqueue(work: () => Promise<void>): Promise<void> {
    const run = this.#chain.then(work).catch((err: unknown) => this.#log.error({ err: (err as Error).message }, 'fence: unexpected error'));
    this.#chain = run;
    return run;
  }

  // --- early fence -----------------------------------------------------------------------------

  async #early(master: Address, sentinel: string, replica: Address): Promise<void> {
    if (!this.#set.fencing.early) return;
    const key = addressKey(master);
    // Only the master we last verified: an event is a trigger, and a node we never verified as
    // master is no business of the early fence (the fence on switch still covers it).
    if (!this.#master || addressKey(this.#master) !== key) {
      this.#log.warn({ node: key, sentinel, verified: this.#master && addressKey(this.#master) }, 'fence: +selected-slave names a master we have not verified; not pausing early');
      return;
    }
    if (this.#paused.has(key)) return;
    this.#note(replica, false);
    await this.#pause(master, 'early', { sentinel, selected: addressKey(replica) });
  }

  #abort(master: Address, why: string, sentinel: string): void {
    const p = this.#paused.get(addressKey(master));
    if (p?.reason !== 'early') return;
    this.#log.info({ node: addressKey(master), sentinel, abort: why }, 'fence: failover aborted');
    void this.#enqueue(() => this.#unpause(master, 'abort').then(() => undefined));
  }

  // --- fence on switch -------------------------------------------------------------------------

  async #sweep(v: Verified): Promise<void> {
    if (this.#stopped) return;
    const m = addressKey(v.master);
    const view = async (k: { node: Address; suspect: boolean }): Promise<NodeView> => ({
      node: k.node,
      role: await this.#role(k.node),
      paused: this.#paused.get(addressKey(k.node))?.reason,
      suspect: k.suspect,
    });
    const views: NodeView[] = await Promise.all([...this.#known.values()].filter((k) => addressKey(k.node) !== m).map(view));
    // Asked AFTER ROLE: if a node said master because a failover promoted it, the leader flagged
    // it `promoted` before it sent SLAVEOF NO ONE, so this answer shows it. Nodes only Sentinel
    // lists are learnt now and judged by the next run. `promoted` only spares a node that says
    // master or a suspect that does not answer, so when every other node answers as a replica
    // (a quiet timer run) the question waits until the master changed or DISCOVER_MS passed: a
    // hundred master sets do not ask every sentinel for their replicas every 30 s.
    const mayFence = views.some((w) => ('error' in w.role ? w.suspect : w.role.role === 'master'));
    const t = nowMs();
    const ask = mayFence || !this.#lastView || this.#lastView.master !== m || t - this.#lastView.at > DISCOVER_MS;
    const sentinelView = ask ? await this.#sentinelReplicas() : { replicas: [], promoted: [] };
    if (ask) this.#lastView = { master: m, at: t };
    for (const n of sentinelView.replicas) {
      if (this.#known.has(addressKey(n)) || addressKey(n) === m) continue;
      this.#note(n, false);
      // The next run asks it ROLE anyway; opening the connection now spares that to the ROLE
      // which verifies it as the new master if a failover comes first (a replica is whom
      // Sentinel promotes).
      this.#client.warmNode(n);
    }
    views.push({ node: v.master, role: { role: 'master' }, paused: this.#paused.get(m)?.reason, suspect: false });
    for (const view of views) {
      if ('error' in view.role) continue;
      this.#note(view.node, view.role.role === 'master');
      this.#ensureLink(view.node);
    }
    const plans = planFence({ master: v.master, named: v.named, promoted: sentinelView.promoted, serviceNamesMaster: v.serviceNamesMaster, demote: this.#set.fencing.demote, nodes: views });
    await Promise.all(plans.map(async (p) => {
      this.#log.debug({ node: addressKey(p.node), steps: p.steps.map((s) => s.step), why: p.why }, 'fence: plan');
      for (const step of p.steps) if (!(await this.#step(p.node, step, v.master))) break;
    }));
  }

  /** One step; false when the rest of the node's plan must not run. */
  async #step(node: Address, s: FenceStep, master: Address): Promise<boolean> {
    switch (s.step) {
      case 'pause':
        // A pause refused by ACL still lets kill and demote do their part.
        return (await this.#pause(node, 'switch', { master: addressKey(master) })) !== 'unreachable';
      case 'kill':
        return this.#kill(node);
      case 'demote':
        return this.#demote(node, s.to);
      case 'await-replica':
        return this.#awaitReplica(node, s.to);
      case 'unpause':
        return (await this.#unpause(node, s.why)) !== 'unreachable';
      case 'watch':
        this.#watch(node);
        return true;
    }
  }

  async #pause(node: Address, reason: PauseReason, extra: Record<string, unknown>): Promise<'ok' | 'refused' | 'unreachable'> {
    const ms = this.#set.fencing.pauseMs;
    const t0 = nowMs();
    try {
      await this.#client.command('node', node, ['CLIENT', 'PAUSE', String(ms), 'WRITE']);
    } catch (err) {
      return this.#failed('pause', node, err);
    }
    this.#paused_(node, reason, t0);
    this.#metrics.fences.inc({ master_set: this.#set.name, reason });
    this.#log.info({ node: addressKey(node), reason, pause_ms: ms, at: round(t0), took_ms: round(nowMs() - t0), ...extra }, 'fence: paused');
    this.#event({ type: 'Normal', reason: 'MasterFenced', message: `${reason}: paused writes on ${addressKey(node)} for at most ${ms} ms` });
    return 'ok';
  }

  /** Records a pause and when its own timeout ends it. */
  #paused_(node: Address, reason: PauseReason, since: number): void {
    const key = addressKey(node);
    clearTimeout(this.#paused.get(key)?.timer);
    const entry: Pause = {
      node,
      reason,
      since,
      timer: setTimeout(() => {
        if (this.#paused.get(key) !== entry) return;
        this.#paused.delete(key);
        this.#metrics.fenceUnpauses.inc({ master_set: this.#set.name, why: 'expired' });
        this.#log.warn({ node: key, reason, paused_ms: round(nowMs() - since) }, 'fence: pause expired before it was lifted');
      }, this.#set.fencing.pauseMs),
    };
    entry.timer.unref();
    this.#paused.set(key, entry);
  }

  async #unpause(node: Address, why: UnpauseWhy): Promise<'ok' | 'refused' | 'unreachable'> {
    const key = addressKey(node);
    const p = this.#paused.get(key);
    try {
      await this.#client.command('node', node, ['CLIENT', 'UNPAUSE']);
    } catch (err) {
      return this.#failed('unpause', node, err);
    }
    if (p) clearTimeout(p.timer);
    this.#paused.delete(key);
    const pausedMs = p ? round(nowMs() - p.since) : undefined;
    this.#metrics.fenceUnpauses.inc({ master_set: this.#set.name, why });
    this.#log.info({ node: key, why, paused_ms: pausedMs, at: round(nowMs()) }, 'fence: unpaused');
    this.#event({ type: 'Normal', reason: 'FenceLifted', message: `${why}: unpaused ${key}${pausedMs !== undefined ? ` after ${Math.round(pausedMs)} ms` : ''}` });
    return 'ok';
  }

  async #kill(node: Address): Promise<boolean> {
    const t0 = nowMs();
    let ids: string[];
    try {
      ids = clientsToKill(parseClientList(String(await this.#client.command('node', node, ['CLIENT', 'LIST']))));
      // One connection, so these go out as one pipeline.
      await Promise.all(ids.map((id) => this.#client.command('node', node, ['CLIENT', 'KILL', 'ID', id]).catch((err: Error) => {
        if (/NOPERM/i.test(err.message)) throw err; // a client that left meanwhile is fine
      })));
    } catch (err) {
      return this.#failed('kill', node, err) !== 'unreachable';
    }
    this.#metrics.fenceKills.inc({ master_set: this.#set.name }, ids.length);
    this.#log.info({ node: addressKey(node), killed: ids.length, at: round(nowMs()), took_ms: round(nowMs() - t0) }, 'fence: clients closed');
    this.#event({ type: 'Normal', reason: 'FenceClientsClosed', message: `closed ${ids.length} client connection(s) on stale master ${addressKey(node)}` });
    return true;
  }

  async #demote(node: Address, to: Address): Promise<boolean> {
    const t0 = nowMs();
    try {
      await this.#client.command('node', node, ['REPLICAOF', to.host, String(to.port)]);
    } catch (err) {
      this.#failed('demote', node, err);
      return false;
    }
    this.#note(node, false);
    this.#metrics.fenceDemotions.inc({ master_set: this.#set.name });
    this.#log.info({ node: addressKey(node), to: addressKey(to), at: round(nowMs()), took_ms: round(nowMs() - t0) }, 'fence: demoted');
    this.#event({ type: 'Normal', reason: 'FenceDemoted', message: `demoted stale master ${addressKey(node)} to a replica of ${addressKey(to)}` });
    return true;
  }

  /** ROLE until it says slave of `to` with the link up; a replica refuses writes, so past the bound it is unpaused anyway. */
  async #awaitReplica(node: Address, to: Address): Promise<boolean> {
    const deadline = nowMs() + Math.min(2_000, this.#set.fencing.pauseMs);
    let role: FenceRole = { error: 'not asked' };
    while (nowMs() < deadline) {
      role = await this.#role(node);
      if (!('error' in role) && role.role === 'slave' && addressKey(role.master) === addressKey(to) && role.linkUp) return true;
      await sleep(5);
    }
    const slave = !('error' in role) && role.role === 'slave';
    this.#log.warn({ node: addressKey(node), role }, slave ? 'fence: replica link not up yet; unpausing anyway' : 'fence: node is not a replica after REPLICAOF; its pause ends by its own timeout');
    return slave;
  }

  async #role(node: Address): Promise<FenceRole> {
    try {
      return parseFenceRole(await this.#client.command('node', node, ['ROLE']));
    } catch (err) {
      return { error: (err as Error).message };
    }
  }

  /**
   * What every sentinel lists as replicas (the former master among them after a failover), and
   * those a failover under way has chosen (`promoted`, only on its leader). A sentinel that does
   * not answer adds nothing; its failover, if any, cannot progress either.
   */
  async #sentinelReplicas(): Promise<{ replicas: Address[]; promoted: Address[] }> {
    const replicas: Address[] = [];
    const promoted: Address[] = [];
    await Promise.all(
      (await this.#client.sentinelAddresses()).map(async (s) => {
        if (!s.address) return;
        try {
          const reply = await this.#client.command('sentinel', s.address, ['SENTINEL', 'REPLICAS', this.#set.name], s.servername);
          for (const r of parseReplicas(reply) ?? []) {
            replicas.push(r.address);
            if (r.flags.split(',').includes('promoted')) promoted.push(r.address);
          }
        } catch {
          /* no answer, no knowledge */
        }
      }),
    );
    return { replicas, promoted };
  }

  // --- stale return ----------------------------------------------------------------------------

  #ensureLink(node: Address): Redis {
    const key = addressKey(node);
    let link = this.#links.get(key);
    if (link) return link;
    link = new Redis({
      ...this.#client.connectionOptions('node'),
      host: node.host,
      port: node.port,
      connectTimeout: 2_000,
      // No command timeout: what is queued here waits for the node, however long it is frozen.
      maxRetriesPerRequest: null,
      retryStrategy: (times) => Math.min(100 * times, 2_000),
    });
    link.on('error', () => {
      /* a link that drops reconnects by itself; the sweep asks ROLE on the pool */
    });
    this.#links.set(key, link);
    return link;
  }

  /** Queues pause + ROLE on the node's standing link; when it answers, a reconcile decides with fresh answers. */
  #watch(node: Address): void {
    const key = addressKey(node);
    if (this.#watching.has(key) || this.#stopped) return;
    this.#watching.add(key);
    const link = this.#ensureLink(node);
    const queuedAt = nowMs();
    const ms = this.#set.fencing.pauseMs;
    this.#log.info({ node: key }, 'fence: stale master does not answer; a pause is queued for its return');
    const pause = link.call('CLIENT', 'PAUSE', String(ms), 'WRITE');
    const role = link.call('ROLE');
    void Promise.allSettled([pause, role]).then(([p, r]) => {
      this.#watching.delete(key);
      if (this.#stopped) return;
      const at = nowMs();
      const answered = r.status === 'fulfilled' ? parseFenceRole(r.value) : { error: String((r.reason as Error)?.message) };
      if (p.status === 'fulfilled' && !('error' in answered) && answered.role !== 'master' && !this.#paused.has(key)) {
        // It came back as a replica (restarted, or demoted meanwhile): nothing to fence.
        void this.#enqueue(async () => {
          this.#paused_(node, 'return', at);
          await this.#unpause(node, 'replica');
        });
        return;
      }
      if (p.status === 'fulfilled' && this.#paused.has(key)) {
        this.#paused_(node, this.#paused.get(key)!.reason, at); // a pause we already hold, renewed
      } else if (p.status === 'fulfilled') {
        this.#paused_(node, 'return', at);
        this.#metrics.fences.inc({ master_set: this.#set.name, reason: 'return' });
        this.#log.info({ node: key, reason: 'return', pause_ms: ms, at: round(at), waited_ms: round(at - queuedAt), role: 'error' in answered ? answered.error : answered.role }, 'fence: paused');
        this.#event({ type: 'Normal', reason: 'MasterFenced', message: `return: paused writes on ${key} the moment it answered again (for at most ${ms} ms)` });
      } else {
        this.#failed('pause', node, p.reason);
      }
      // Kill and demote only on answers of now: a reconcile asks the majority and ROLE again.
      this.#reconcile();
    });
  }

  // --- errors ----------------------------------------------------------------------------------

  #failed(step: string, node: Address, err: unknown): 'refused' | 'unreachable' {
    const msg = (err as Error)?.message ?? String(err);
    const key = addressKey(node);
    if (/NOPERM/i.test(msg)) {
      const user = this.#set.redisAuth.username ?? 'default';
      const why = `fence ${step} on ${key} refused: the ACL user "${user}" lacks a command (${msg}); grant ${FENCE_COMMANDS}, or set fencing.enabled: false for master set ${this.#set.name}`;
      this.#metrics.fenceErrors.inc({ master_set: this.#set.name, step });
      this.#log.error({ node: key, step, err: msg }, why);
      if (why !== this.#lastWarning) {
        this.#lastWarning = why;
        this.#event({ type: 'Warning', reason: 'FenceFailed', message: why });
      }
      return 'refused';
    }
    // Unreachable: not fenced now (Sentinel demotes it when it can; a suspect is watched).
    this.#log.warn({ node: key, step, err: msg }, 'fence: node unreachable; not fenced now');
    return 'unreachable';
  }
}
