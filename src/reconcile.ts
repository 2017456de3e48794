// RunOnce for one master set: ask the sentinels, verify, decide, apply. The webhook, Sentinel's
// pub/sub, the manual trigger and the timer all call reconcile(masterSet, reason); runs of one master set never
// overlap (one running, at most one pending that every later caller shares), so the N hook calls
// and events of one failover end in one write. A verified master is then handed to the master
// set's Fencer, off the hot path.
import type { Logger } from 'pino';
import type { Config, MasterSetConfig } from './config.ts';
import { type Address, addressKey, confirms, type RoleReply, verify, type Vote } from './decide/index.ts';
import { Fencer } from './fence/index.ts';
import { annotations, type Kube, KubeError, serviceId } from './kube/index.ts';
import type { Metrics } from './metrics.ts';
import { type SentinelClient, splitHostPort } from './sentinel/index.ts';
import { type Desired, makeTarget, type Target, TargetError, type TargetState } from './target/index.ts';

export type Reason = 'hook' | 'event' | 'manual' | 'timer' | 'follow-up';

export interface Outcome {
  masterSet: string;
  reason: Reason;
  /** switched: the Service now names the new master; unchanged: it already did; unverified: no
   * majority or ROLE is not master (nothing written); failed: Kubernetes or config problem. */
  result: 'switched' | 'unchanged' | 'unverified' | 'failed';
  changed: boolean;
  /** Whether trying again soon may help (unverified, API unavailable); false when an operator must act. */
  retryable: boolean;
  service: string;
  master?: Address;
  target?: string;
  previousTarget?: string;
  why?: string;
  votes: { sentinel: string; master?: string; error?: string }[];
  role?: string;
  durationMs: number;
  /** Milliseconds from the start of the run at which each step ended (read, sentinels, role, target, patch). */
  timingsMs?: Record<string, number>;
}

export interface ReconcileOptions {
  /** The master a hook event claimed; only compared with the verified answer, never written. */
  claimed?: Address;
  /** When the triggering request arrived (performance.now()), for the hook-to-patch histogram. */
  receivedAt?: number;
}

interface Lane {
  running?: Promise<Outcome>;
  pending?: Promise<Outcome>;
  followUp?: NodeJS.Timeout;
  lastWarning?: string;
  /** The master a Sentinel event named last (and when): the next run prefetches its ROLE and target, and uses them only if the majority names it. */
  hint?: { master: Address; at: number };
}

/** A hint older than this is not prefetched. */
const HINT_MS = 5_000;

/** Runs of reconcileAll in flight at once (timer, manual trigger of every master set). */
const ALL_AT_ONCE = 16;

export class Reconciler {
  readonly #config: Config;
  readonly #sets: Map<string, MasterSetConfig>;
  readonly #sentinels: Map<string, SentinelClient>;
  readonly #kube: Kube;
  readonly #log: Logger;
  readonly #metrics: Metrics;
  readonly #lanes = new Map<string, Lane>();
  readonly #background = new Set<Promise<unknown>>();
  /** The target Service's uid, from the last read: Events need it to show on `kubectl describe`. */
  readonly #serviceUids = new Map<string, string | undefined>();
  readonly #fencers = new Map<string, Fencer>();
  readonly #targets = new Map<string, Target>();
  /** What a run saw beyond its Outcome, for the fence: every master named, the master recorded on the Service. */
  readonly #seen = new WeakMap<Outcome, { named: Address[]; previousMaster?: Address }>();
  /** Each master set's last failed or unverified run and when it ended, for `GET /v1/status`. */
  readonly #lastFailures = new Map<string, { at: Date; outcome: Outcome }>();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(deps: { config: Config; sentinels: Map<string, SentinelClient>; kube: Kube; log: Logger; metrics: Metrics }) {
    this.#config = deps.config;
    this.#sets = new Map(deps.config.masterSets.map((s) => [s.name, s]));
    this.#sentinels = deps.sentinels;
    this.#kube = deps.kube;
    this.#log = deps.log;
    this.#metrics = deps.metrics;
    for (const set of deps.config.masterSets) {
      this.#targets.set(set.name, makeTarget(set, deps.kube, deps.config));
      this.#fencers.set(
        set.name,
        new Fencer({
          set,
          client: deps.sentinels.get(set.name)!,
          log: deps.log,
          metrics: deps.metrics,
          event: (e) => this.#event(set, e),
          reconcile: () => {
            if (!this.#stopped) this.#track(this.reconcile(set.name, 'event'));
          },
        }),
      );
    }
  }

  /** The master set's Target (the Service, or whatever its kind writes). */
  target(masterSet: string): Target | undefined {
    return this.#targets.get(masterSet);
  }

  /** The master set's Fencer (the event subscription feeds it). */
  fencer(masterSet: string): Fencer | undefined {
    return this.#fencers.get(masterSet);
  }

  /** The master set's last failed or unverified run since start (kept after later successes: it is history). */
  lastFailure(masterSet: string): { at: Date; outcome: Outcome } | undefined {
    return this.#lastFailures.get(masterSet);
  }

  has(masterSet: string): boolean {
    return this.#sets.has(masterSet);
  }

  get masterSets(): string[] {
    return [...this.#sets.keys()];
  }

  reconcile(masterSet: string, reason: Reason, opts: ReconcileOptions = {}): Promise<Outcome> {
    if (!this.#sets.has(masterSet)) throw new Error(`unknown master set ${masterSet}`);
    const lane = this.#lanes.get(masterSet) ?? {};
    this.#lanes.set(masterSet, lane);
    // Only Sentinel's own pub/sub gives a hint, never a hook payload: a prefetch asks ROLE with
    // our credentials, and no HTTP caller may choose where they go.
    if (reason === 'event' && opts.claimed) lane.hint = { master: opts.claimed, at: performance.now() };
    const result = this.#submit(lane, masterSet, reason);
    void result.then((o) => this.#afterCaller(lane, o, opts), () => undefined);
    return result;
  }

  /**
   * Every master set, at most ALL_AT_ONCE runs at a time: a hundred master sets put at most 16
   * runs' API requests and questions in flight per timer tick, not a hundred. A run that an event
   * or a hook starts meanwhile is not held back by this: it has its own lane.
   */
  async reconcileAll(reason: Reason): Promise<Outcome[]> {
    const sets = this.masterSets;
    const out: Outcome[] = new Array(sets.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < sets.length; i = next++) out[i] = await this.reconcile(sets[i]!, reason);
    };
    await Promise.all(Array.from({ length: Math.min(ALL_AT_ONCE, sets.length) }, worker));
    return out;
  }

  /** Runs every master set now, then every reconcileIntervalSeconds with +-10% jitter so replicas spread out. */
  startTimer(): void {
    const tick = (): void => {
      if (this.#stopped) return;
      this.#track(this.reconcileAll('timer'));
      const base = this.#config.reconcileIntervalSeconds * 1000;
      this.#timer = setTimeout(tick, base * (0.9 + Math.random() * 0.2));
    };
    tick();
  }

  /** Stops the timer and follow-ups, then waits for runs and Event writes already under way. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    for (const lane of this.#lanes.values()) clearTimeout(lane.followUp);
    const inFlight = [...this.#lanes.values()].flatMap((l) => [l.running, l.pending]).filter(Boolean);
    await Promise.allSettled([...inFlight, ...this.#background]);
    await Promise.all([...this.#fencers.values()].map((f) => f.stop()));
  }

  #submit(lane: Lane, masterSet: string, reason: Reason): Promise<Outcome> {
    if (!lane.running && !lane.pending) {
      const run = this.#execute(masterSet, reason).finally(() => {
        if (lane.running === run) lane.running = undefined;
      });
      lane.running = run;
      return run;
    }
    if (!lane.pending) {
      // Everything that arrives while a run is under way shares ONE next run: it starts after
      // the current one and so sees whatever the current one wrote.
      const pending = (lane.running ?? Promise.resolve())
        .catch(() => undefined)
        .then(() => {
          lane.pending = undefined;
          const run = this.#execute(masterSet, reason).finally(() => {
            if (lane.running === run) lane.running = undefined;
          });
          lane.running = run;
          return run;
        });
      lane.pending = pending;
    }
    return lane.pending;
  }

  /** Per caller: metrics of the hook latency, and a follow-up look when an event was not (yet) confirmed. */
  #afterCaller(lane: Lane, o: Outcome, opts: ReconcileOptions): void {
    if (opts.receivedAt !== undefined && o.changed) {
      this.#metrics.hookToPatch.observe({ master_set: o.masterSet }, (performance.now() - opts.receivedAt) / 1000);
    }
    if (!opts.claimed) return;
    if (confirms(opts.claimed, o.master) || this.#stopped) return;
    this.#metrics.staleEvents.inc({ master_set: o.masterSet });
    // The leader's hook fires before the other sentinels learn the new epoch, so its event is
    // often ahead of the majority: look again shortly instead of waiting for the timer.
    if (!lane.followUp && this.#config.followUpMs > 0) {
      lane.followUp = setTimeout(() => {
        lane.followUp = undefined;
        this.#track(this.reconcile(o.masterSet, 'follow-up'));
      }, this.#config.followUpMs);
    }
  }

  async #execute(masterSet: string, reason: Reason): Promise<Outcome> {
    const set = this.#sets.get(masterSet)!;
    const started = performance.now();
    const log = this.#log.child({ masterSet, reason });
    let outcome: Outcome | undefined;
    for (let attempt = 1; !outcome; attempt++) {
      // A 409 means someone wrote between our read and our patch: decide again on fresh data.
      outcome = await this.#once(set, reason, attempt);
    }
    outcome.durationMs = Math.round((performance.now() - started) * 1000) / 1000;
    this.#record(set, outcome, log);
    const fencer = this.#fencers.get(masterSet);
    if (fencer?.enabled && outcome.master && !this.#stopped) {
      const seen = this.#seen.get(outcome);
      this.#track(
        fencer.afterVerified({
          master: outcome.master,
          named: seen?.named ?? [],
          serviceNamesMaster: outcome.result === 'switched' || outcome.result === 'unchanged',
          previousMaster: seen?.previousMaster,
        }),
      );
    }
    return outcome;
  }

  /** One read-ask-decide-apply pass; undefined when the patch met a 409 and another attempt may follow. */
  async #once(set: MasterSetConfig, reason: Reason, attempt: number): Promise<Outcome | undefined> {
    const mayRetry = attempt < 3;
    const target = this.#targets.get(set.name)!;
    const base = { masterSet: set.name, reason, service: serviceId(target.service), changed: false, durationMs: 0 };
    const client = this.#sentinels.get(set.name)!;
    const t0 = performance.now();
    const timingsMs: Record<string, number> = {};
    const lapInto = (into: Record<string, number>) => (name: string): void => void (into[name] = Math.round((performance.now() - t0) * 100) / 100);
    const lap = lapInto(timingsMs);
    // A run takes the hint of the event that started (or joined) it; a retry after a 409 goes without.
    const lane = this.#lanes.get(set.name);
    const hint = lane?.hint && t0 - lane.hint.at < HINT_MS ? lane.hint.master : undefined;
    if (lane) lane.hint = undefined;
    // The Service is read BEFORE the sentinels are asked, and its resourceVersion guards the
    // patch: any write after this read (another replica's) makes ours fail with 409, and any
    // write before it is older than the answer we are about to get. Reading in parallel with the
    // sentinels would let a newer write hide behind an older answer (found by the chaos run).
    let state: TargetState;
    try {
      // The first attempt may read the watch-fed cache; after a 409 only the API's answer counts.
      state = await target.read({ fresh: attempt > 1 });
    } catch (err) {
      if (!(err instanceof KubeError)) throw err;
      return { ...base, votes: [], result: 'failed', retryable: err.kind === 'unavailable', why: err.message, timingsMs };
    }
    lap('read');
    const asked = client.askSentinelsUntilDecided(set.quorum);
    // The master a Sentinel event named: its ROLE and its target value are asked in parallel
    // with the sentinels and used only if the majority names that same node. Only a node we
    // already hold a connection to: a prefetch never opens one to a new address.
    const prefetchLaps: Record<string, number> = {};
    const prefetch = hint && client.connected(hint) ? { master: hint, answers: this.#roleAndDesired(client, target, hint, lapInto(prefetchLaps)) } : undefined;
    const t = await asked.decided;
    lap('sentinels');
    // Every answer, also those that came after the decision: the record and the fence see them all.
    const withVotes = async (o: Omit<Outcome, 'votes'>): Promise<Outcome> => {
      const votes = await asked.all;
      if (o.master) {
        const recorded = state.exists ? state.annotations?.[annotations.master] : undefined;
        this.#seen.set(o as Outcome, {
          named: votes.flatMap((v) => ('master' in v ? [v.master] : [])),
          previousMaster: recorded && /:\d+$/.test(recorded) ? splitHostPort(recorded) : undefined,
        });
      }
      return Object.assign(o, { votes: votes.map(showVote) }) as Outcome;
    };
    if (!t.ok) return withVotes({ ...base, result: 'unverified', retryable: true, why: t.why, timingsMs });
    // ROLE and the name of the candidate are independent too; the name is only used if ROLE says master.
    const prefetched = prefetch && addressKey(prefetch.master) === addressKey(t.master);
    const [role, want] = await (prefetched ? prefetch.answers : this.#roleAndDesired(client, target, t.master, lap));
    if (prefetched) Object.assign(timingsMs, prefetchLaps);
    const verdict = verify(t, role);
    const seen = { ...base, role: 'error' in role ? `error: ${role.error}` : role.role, timingsMs };
    if (!verdict.ok) return withVotes({ ...seen, result: 'unverified', retryable: true, why: verdict.why });
    const master = verdict.master;
    try {
      if ('error' in want) throw want.error;
      if (state.exists) this.#serviceUids.set(set.name, state.uid);
      const plan = target.plan(state, want.desired);
      const value = want.desired.value;
      if (plan.action === 'refuse') return withVotes({ ...seen, master, result: 'failed', retryable: false, why: plan.why });
      if (plan.action === 'none') return withVotes({ ...seen, master, target: value, result: 'unchanged', retryable: false });
      await target.write(state, want.desired, plan, { reason, master: addressKey(master), at: new Date() });
      lap('patch');
      return withVotes({ ...seen, master, target: value, previousTarget: plan.previousTarget, changed: true, result: 'switched', retryable: false });
    } catch (err) {
      if (err instanceof KubeError) {
        if (err.kind === 'conflict' && mayRetry) return undefined;
        return withVotes({ ...seen, master, result: 'failed', retryable: err.kind === 'unavailable' || err.kind === 'conflict', why: err.message });
      }
      if (err instanceof TargetError) return withVotes({ ...seen, master, result: 'failed', retryable: false, why: err.message });
      throw err;
    }
  }

  /** ROLE of a candidate and what its target must hold, in parallel; neither rejects. */
  #roleAndDesired(client: SentinelClient, target: Target, node: Address, lap: (name: string) => void): Promise<[RoleReply, { desired: Desired } | { error: unknown }]> {
    return Promise.all([
      client.askRole(node).finally(() => lap('role')),
      target.desired(node).then(
        (desired) => ({ desired }),
        (error: unknown) => ({ error }),
      ).finally(() => lap('target')),
    ]);
  }

  #record(set: MasterSetConfig, o: Outcome, log: Logger): void {
    const labels = { master_set: set.name };
    this.#metrics.reconcileRuns.inc({ ...labels, reason: o.reason, result: o.result });
    this.#metrics.sentinelsAsked.set(labels, o.votes.length);
    const elected = o.master ? addressKey(o.master) : undefined;
    this.#metrics.sentinelVotes.set(labels, elected ? o.votes.filter((v) => v.master === elected).length : 0);
    if (o.votes.some((v) => v.master !== elected || v.error)) this.#metrics.sentinelDisagreements.inc(labels);

    const line = {
      result: o.result,
      changed: o.changed,
      from: o.previousTarget,
      to: o.target,
      master: elected,
      votes: o.votes,
      role: o.role,
      why: o.why,
      duration_ms: o.durationMs,
      timings_ms: o.timingsMs,
    };
    const lane = this.#lanes.get(set.name)!;
    if (o.result === 'switched') {
      this.#metrics.switches.inc(labels);
      this.#metrics.lastSwitch.set(labels, Date.now() / 1000);
      log.info(line, 'switched');
      lane.lastWarning = undefined;
      this.#event(set, {
        type: 'Normal',
        reason: 'MasterSwitched',
        message: `${o.reason}: ${o.previousTarget ?? '(none)'} -> ${o.target} (master ${elected}, ${o.votes.filter((v) => v.master === elected).length}/${o.votes.length} sentinels agree, ROLE master)`,
      });
    } else if (o.result === 'unchanged') {
      log[o.reason === 'timer' ? 'debug' : 'info'](line, 'unchanged');
      lane.lastWarning = undefined;
    } else {
      this.#lastFailures.set(set.name, { at: new Date(), outcome: o });
      log.warn(line, o.result);
      // A failure is told once on the Service, not on every timer tick while it lasts. An
      // unverified hook run is normal mid-failover, so only a failing timer run is reported.
      if (o.result === 'failed' || o.reason === 'timer') {
        const message = `${o.reason}: not switched: ${o.why}`;
        if (message !== lane.lastWarning) {
          lane.lastWarning = message;
          this.#event(set, { type: 'Warning', reason: o.result === 'failed' ? 'SwitchFailed' : 'MasterUnverified', message });
        }
      }
    }
  }

  /** Events are written after the answer, off the hot path; a failure to write one is only logged. */
  #event(set: MasterSetConfig, e: { type: 'Normal' | 'Warning'; reason: string; message: string }): void {
    const p = this.#kube
      .recordEvent(set.target, { ...e, uid: this.#serviceUids.get(set.name) })
      .catch((err: Error) => this.#log.warn({ masterSet: set.name, err: err.message }, 'could not record Event'));
    this.#track(p);
  }

  #track(p: Promise<unknown>): void {
    this.#background.add(p);
    void p.finally(() => this.#background.delete(p)).catch(() => undefined);
  }
}

function showVote(v: Vote): { sentinel: string; master?: string; error?: string } {
  return 'master' in v ? { sentinel: v.sentinel, master: addressKey(v.master) } : { sentinel: v.sentinel, error: v.error };
}
