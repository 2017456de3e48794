// The chaos run's independent checker. It trusts nothing sentinel-switch says: it watches the
// Service through its own API watch (admin kubeconfig, re-established whenever it breaks, e.g.
// while the API server is stopped) and samples the truth on its own Redis connections: every
// sentinel's `get-master-addr-by-name` + `SENTINEL MASTER` (config-epoch, flags), and `ROLE` of
// the node a strict majority of ALL sentinels names. Sampled every 100 ms, and at once on every
// Service write.
//
// Each Service write is judged (the rule, with its reasons: classifyWrite below):
//   ok      the written node is the verified master right after the write was observed;
//   raced   it is not, but it was the verified master until a failover that the checker first
//           saw less than raceGraceMs before the write (a failover between the writer's check
//           and its commit: no read-then-write can avoid that; the next hook repairs it);
//   wrong   anything else: a node that was never the master, one that had stopped being the
//           master more than raceGraceMs before, or a write that replaced the Service's target
//           with a node of an OLDER epoch than the one already written (a stale overwrite);
//   unjudged  no conclusive truth within 15 s of the write.
import { CoreV1Api, KubeConfig, Watch } from '@kubernetes/client-node';
import { Redis } from 'ioredis';
import type { RedisSandbox } from '../../test/harness/redis.ts';

const now = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface Sample {
  /** When the questions went out / when the last answer came back (epoch ms). */
  t0: number;
  t1: number;
  /** Per sentinel: the address it names, or why it did not answer. */
  votes: string[];
  /** The address a strict majority of all sentinels names. */
  majority?: string;
  /** Highest config-epoch among the sentinels of that majority. */
  epoch?: number;
  role?: string;
  /** Node name, when the majority's node answers ROLE master: the verified master. */
  master?: string;
  /** Every sentinel answered, all name the same master, all flag it plain 'master' (no failover under way). */
  settled: boolean;
  /** Each sentinel's flags for the master. */
  flags: string[];
}

export interface ServiceState {
  atMs: number;
  externalName?: string;
  resourceVersion: string;
  reason?: string;
  switchedAt?: number;
  /** Seen by a re-list after the watch broke, not as a watch event: atMs is late. */
  late: boolean;
}

export type Verdict = 'pending' | 'ok' | 'raced' | 'wrong' | 'unjudged';

export interface Write {
  n: number;
  /** When the watch event (or re-list) arrived. */
  observedMs: number;
  /** Best estimate of the commit: observedMs, or for a late one the writer's own last-switch-at. */
  commitMs: number;
  from?: string;
  to?: string;
  /** The Redis node `to` names (undefined: names none). */
  node?: string;
  reason?: string;
  late: boolean;
  verdict: Verdict;
  why?: string;
  /** The epoch in which the written node was the master (what the write "knew"). */
  epoch?: number;
  /** The checker's sample that judged it. */
  truth?: string;
}

export interface CheckerOptions {
  redis: RedisSandbox;
  /** Admin kubeconfig: the checker's own credentials, not the service's. */
  kubeconfig: string;
  namespace: string;
  service: string;
  /** The externalName that names each node. */
  dnsNames: Map<string, string>;
  /** A write of the previous master this soon after the failover counts as raced, not wrong. */
  raceGraceMs: number;
  sampleEveryMs?: number;
  /** Told about every write once judged, and about watch trouble. */
  say?: (line: string) => void;
}

export class Checker {
  readonly samples: Sample[] = [];
  readonly states: ServiceState[] = [];
  readonly writes: Write[] = [];
  /** Epoch -> the node verified as master in it, and when the checker first saw that. */
  readonly epochs = new Map<number, { node: string; firstSeen: number }>();
  /** Times the watch broke and was re-established (re-list + watch). */
  watchRestarts = 0;
  anomalies: string[] = [];
  apiUp = false;

  readonly #o: CheckerOptions;
  readonly #pool = new Map<string, Redis>();
  readonly #nodeByAddr: Map<string, string>;
  readonly #nodeByDns: Map<string, string>;
  readonly #kc = new KubeConfig();
  readonly #core: CoreV1Api;
  #stopped = false;
  #abort: AbortController | undefined;
  #loops: Promise<void>[] = [];
  #judging: Promise<void> = Promise.resolve();
  #serviceWaiters = new Set<() => void>();
  /** Epoch of the Service's current target as far as judged (for the stale-overwrite rule). */
  #serviceEpoch: number | undefined;
  #initialEpoch: number | undefined;

  constructor(o: CheckerOptions) {
    this.#o = o;
    this.#nodeByAddr = new Map(o.redis.nodes.map((n) => [`${n.host}:${n.port}`, n.name]));
    this.#nodeByDns = new Map([...o.dnsNames].map(([node, dns]) => [dns, node]));
    this.#kc.loadFromFile(o.kubeconfig);
    this.#core = this.#kc.makeApiClient(CoreV1Api);
  }

  async start(): Promise<void> {
    // The truth first, so that the first Service state can be given its epoch.
    for (let i = 0; i < 100; i++) {
      const s = await this.sample();
      if (s.master && s.settled) break;
      await sleep(100);
    }
    const first = this.samples.findLast((s) => s.master);
    if (!first) throw new Error(`chaos checker: no verified master at start: ${this.samples.at(-1)?.votes.join(', ')}`);
    this.#initialEpoch = first.epoch;
    this.#loops.push(this.#sampleLoop(), this.#watchLoop());
    for (let i = 0; i < 100 && !this.apiUp; i++) await sleep(50);
    if (!this.apiUp) throw new Error('chaos checker: could not read the Service');
    const svc = this.states.at(-1);
    if (svc && this.#nodeByDns.get(svc.externalName ?? '') === first.master) this.#serviceEpoch = first.epoch;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort?.abort();
    for (const w of this.#serviceWaiters) w();
    await Promise.allSettled(this.#loops);
    await this.#judging;
    for (const c of this.#pool.values()) c.disconnect();
    this.#pool.clear();
  }

  /** Waits until every write seen so far is judged. */
  settle(): Promise<void> {
    return this.#judging;
  }

  get initialEpoch(): number | undefined {
    return this.#initialEpoch;
  }

  /** Distinct config epochs verified after the first one: one per completed failover. */
  get failovers(): number {
    return [...this.epochs.keys()].filter((e) => this.#initialEpoch === undefined || e > this.#initialEpoch).length;
  }

  nodeOf(externalName: string | undefined): string | undefined {
    return externalName === undefined ? undefined : this.#nodeByDns.get(externalName);
  }

  // ---------------------------------------------------------------------------------- truth

  async sample(): Promise<Sample> {
    const { redis } = this.#o;
    const t0 = now();
    const answers = await Promise.all(
      redis.sentinels.map(async (s) => {
        try {
          const [addr, master] = await Promise.all([
            this.#ask(s.host, s.port, redis.sentinelPassword, ['SENTINEL', 'get-master-addr-by-name', redis.masterSet]),
            this.#ask(s.host, s.port, redis.sentinelPassword, ['SENTINEL', 'MASTER', redis.masterSet]),
          ]);
          if (!Array.isArray(addr) || addr.length !== 2) return { vote: `unexpected ${JSON.stringify(addr)}` };
          const m = pairs(master);
          return { vote: `${String(addr[0])}:${String(addr[1])}`, addr: `${String(addr[0])}:${String(addr[1])}`, epoch: Number(m['config-epoch']), flags: m.flags };
        } catch (err) {
          return { vote: `error: ${(err as Error).message}` };
        }
      }),
    );
    const counts = new Map<string, number>();
    for (const a of answers) if (a.addr) counts.set(a.addr, (counts.get(a.addr) ?? 0) + 1);
    let majority: string | undefined;
    for (const [addr, c] of counts) if (c > redis.sentinels.length / 2) majority = addr;
    const s: Sample = { t0, t1: t0, votes: answers.map((a) => a.vote), settled: false, flags: answers.map((a) => a.flags ?? '-') };
    if (majority) {
      s.majority = majority;
      s.epoch = Math.max(...answers.filter((a) => a.addr === majority).map((a) => a.epoch ?? -1));
      const node = this.#nodeByAddr.get(majority);
      const [host, port] = [majority.slice(0, majority.lastIndexOf(':')), Number(majority.slice(majority.lastIndexOf(':') + 1))];
      if (node) {
        try {
          const r = await this.#ask(host, port, redis.password, ['ROLE']);
          s.role = Array.isArray(r) ? String(r[0]) : `unexpected ${JSON.stringify(r)}`;
        } catch (err) {
          s.role = `error: ${(err as Error).message}`;
        }
        if (s.role === 'master') s.master = node;
      }
      s.settled = Boolean(s.master) && answers.every((a) => a.addr === majority && a.flags === 'master');
    }
    s.t1 = now();
    this.samples.push(s);
    if (s.master && s.epoch !== undefined) {
      const known = this.epochs.get(s.epoch);
      if (!known) this.epochs.set(s.epoch, { node: s.master, firstSeen: s.t1 });
      else if (known.node !== s.master) this.anomalies.push(`epoch ${s.epoch} verified with two masters: ${known.node} and ${s.master}`);
    }
    return s;
  }

  describe(s: Sample | undefined): string {
    if (!s) return '(no sample)';
    return s.master ? `${s.master} (epoch ${s.epoch})` : `unverified [${s.votes.join(', ')}${s.majority ? `; ROLE ${s.role}` : ''}]`;
  }

  /**
   * Asks the API server now, on a new request. A draining API server (SIGTERM) keeps existing
   * watches open while refusing everything else, and only exits once they end: so a failed probe
   * also drops our watch, which the watch loop re-establishes once the API answers again.
   */
  async probeApi(): Promise<boolean> {
    try {
      await withTimeout(this.#core.readNamespacedService({ namespace: this.#o.namespace, name: this.#o.service }), 1_000);
      return true;
    } catch {
      this.apiUp = false;
      this.#abort?.abort();
      return false;
    }
  }

  /** Polls until the system is healthy: every sentinel answers and agrees, no failover under way, ROLE master, API up. */
  async waitHealthy(timeoutMs: number): Promise<Sample | undefined> {
    const deadline = now() + timeoutMs;
    let last = '';
    while (now() < deadline && !this.#stopped) {
      const s = await this.sample();
      if (s.settled && this.apiUp && (await this.probeApi())) return s;
      if (process.env.CHAOS_DEBUG) {
        const why = `${this.describe(s)} settled=${s.settled} api=${this.apiUp} flags=${s.flags.join(',')}`;
        if (why !== last) console.error(`chaos checker: not healthy yet: ${why}`);
        last = why;
      }
      await sleep(50);
    }
    return undefined;
  }

  /** The node the truth named last (conclusively). */
  lastMaster(): Sample | undefined {
    return this.samples.findLast((s) => s.master);
  }

  async #sampleLoop(): Promise<void> {
    while (!this.#stopped) {
      await this.sample();
      await sleep(this.#o.sampleEveryMs ?? 100);
    }
  }

  async #ask(host: string, port: number, password: string | undefined, args: [string, ...string[]]): Promise<unknown> {
    const key = `${host}:${port}`;
    let c = this.#pool.get(key);
    if (!c || c.status === 'end' || c.status === 'close') {
      c?.disconnect();
      c = new Redis({
        host, port, password,
        lazyConnect: true,
        connectTimeout: 300,
        commandTimeout: 300,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
        enableReadyCheck: false,
        connectionName: 'chaos-checker',
      });
      c.on('error', () => undefined);
      this.#pool.set(key, c);
    }
    try {
      if (c.status === 'wait') await c.connect();
      return await c.call(...args);
    } catch (err) {
      // A timed-out connection (SIGSTOPped peer) is thrown away: its late replies must not pair with new questions.
      if (this.#pool.get(key) === c) this.#pool.delete(key);
      c.disconnect();
      throw err;
    }
  }

  // ------------------------------------------------------------------------------- Service

  /** The Service's current target, since when it has named it, and the state (write) that made it so. */
  serviceNow(): { externalName?: string; since: number; state?: ServiceState } {
    let i = this.states.length - 1;
    const cur = this.states[i];
    while (i > 0 && this.states[i - 1]!.externalName === cur?.externalName) i--;
    const state = this.states[i];
    return { externalName: cur?.externalName, since: state?.atMs ?? now(), state };
  }

  /** Resolves once the Service names `externalName` (with since: maybe in the past), or undefined at the deadline. */
  async waitServiceNames(externalName: string, deadlineMs: number): Promise<{ since: number; state?: ServiceState } | undefined> {
    for (;;) {
      const cur = this.serviceNow();
      if (cur.externalName === externalName) return { since: cur.since, state: cur.state };
      const left = deadlineMs - now();
      if (left <= 0 || this.#stopped) return undefined;
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(t);
          this.#serviceWaiters.delete(done);
          resolve();
        };
        const t = setTimeout(done, Math.min(left, 250));
        this.#serviceWaiters.add(done);
      });
    }
  }

  async #watchLoop(): Promise<void> {
    const { namespace, service } = this.#o;
    let first = true;
    while (!this.#stopped) {
      try {
        // (Re-)list first: a write made while the watch was down is seen here, late.
        const svc = await withTimeout(this.#core.readNamespacedService({ namespace, name: service }), 2_000);
        this.#onObject(svc, !first);
        if (!first) this.watchRestarts++;
        first = false;
        this.apiUp = true;
        await new Promise<void>((resolve) => {
          new Watch(this.#kc)
            .watch(
              `/api/v1/namespaces/${namespace}/services`,
              { fieldSelector: `metadata.name=${service}`, resourceVersion: svc.metadata?.resourceVersion, allowWatchBookmarks: true },
              (type, obj) => {
                if (type === 'ADDED' || type === 'MODIFIED') this.#onObject(obj, false);
                else if (type === 'DELETED') this.anomalies.push('the Service was deleted');
              },
              (err: unknown) => {
                if (process.env.CHAOS_DEBUG) console.error(`chaos checker: watch ended: ${(err as Error | null)?.message ?? 'closed'}`);
                resolve();
              },
            )
            .then((ac) => {
              this.#abort = ac;
              if (this.#stopped) ac.abort();
            }, () => resolve());
        });
      } catch (err) {
        if (process.env.CHAOS_DEBUG) console.error(`chaos checker: list failed: ${(err as Error).message}`);
      }
      if (this.#stopped) break;
      this.apiUp = false;
      await sleep(150);
    }
  }

  #onObject(obj: { spec?: { externalName?: string }; metadata?: { resourceVersion?: string; annotations?: Record<string, string> } }, late: boolean): void {
    const atMs = now();
    const rv = obj.metadata?.resourceVersion ?? '';
    const prev = this.states.at(-1);
    if (prev && prev.resourceVersion === rv) return;
    const ann = obj.metadata?.annotations ?? {};
    const switchedAt = ann['sentinel-switch.io/last-switch-at'] ? Date.parse(ann['sentinel-switch.io/last-switch-at']) : undefined;
    const state: ServiceState = { atMs, externalName: obj.spec?.externalName, resourceVersion: rv, reason: ann['sentinel-switch.io/last-switch-reason'], switchedAt, late };
    this.states.push(state);
    for (const w of this.#serviceWaiters) w();
    if (!prev || prev.externalName === state.externalName) return; // the first state, or not a switch
    const write: Write = {
      n: this.writes.length + 1,
      observedMs: atMs,
      commitMs: late && switchedAt !== undefined && switchedAt < atMs ? switchedAt : atMs,
      from: prev.externalName,
      to: state.externalName,
      node: this.nodeOf(state.externalName),
      reason: state.reason,
      late,
      verdict: 'pending',
    };
    this.writes.push(write);
    // The first look at the truth goes out now; the verdicts are given in write order.
    const firstLook = this.sample();
    this.#judging = this.#judging.then(() => this.#judge(write, firstLook)).catch((err: unknown) => {
      write.verdict = 'unjudged';
      write.why = `checker error: ${(err as Error).message}`;
    });
  }

  /** S = the first conclusive sample after the write (re-sampled every 50 ms, up to 15 s); then classifyWrite. */
  async #judge(w: Write, firstLook: Promise<Sample>): Promise<void> {
    let s = await firstLook;
    const deadline = now() + 15_000;
    while (!s.master && now() < deadline && !this.#stopped) {
      await sleep(50);
      s = await this.sample();
    }
    w.truth = this.describe(s);
    const say = this.#o.say ?? (() => undefined);
    if (!s.master || s.epoch === undefined) {
      w.verdict = 'unjudged';
      w.why = `no conclusive truth within 15 s: ${w.truth}`;
      say(`    ? write #${w.n} -> ${w.to}: unjudged (${w.why})`);
      return;
    }
    const v = classifyWrite({
      node: w.node,
      to: w.to,
      from: this.nodeOf(w.from) ?? w.from,
      commitMs: w.commitMs,
      truth: { master: s.master, epoch: s.epoch },
      epochs: this.epochs,
      serviceEpoch: this.#serviceEpoch,
      raceGraceMs: this.#o.raceGraceMs,
    });
    w.verdict = v.verdict;
    w.why = v.why;
    w.epoch = v.epoch;
    // What the Service's target now "knows" (a stale overwrite lowers it; the repair raises it again).
    this.#serviceEpoch = w.epoch;
    if (w.verdict !== 'ok') say(`    ${w.verdict === 'wrong' ? '!! WRONG' : '~ raced'} write #${w.n} ${this.nodeOf(w.from) ?? w.from} -> ${w.node ?? w.to} (reason ${w.reason}${w.late ? ', seen late' : ''}): ${w.why}`);
  }
}

export interface ClassifyInput {
  /** The Redis node the write names (undefined: none). */
  node?: string;
  to?: string;
  /** What the Service named before (for the message). */
  from?: string;
  commitMs: number;
  /** The first conclusive sample after the write was observed. */
  truth: { master: string; epoch: number };
  /** Every epoch the checker verified, with its master and when it was first seen. */
  epochs: ReadonlyMap<number, { node: string; firstSeen: number }>;
  /** The epoch the Service's previous target was judged to belong to. */
  serviceEpoch: number | undefined;
  raceGraceMs: number;
}

/**
 * The rule, pure. N = the written node, M/eM = the verified master and its epoch right after the
 * write, eN = the latest epoch (up to eM) in which N was the verified master.
 *   N == M                                                  ok
 *   N names no node, or N was never the verified master     wrong
 *   eN < the epoch of the Service's previous target         wrong: a stale overwrite (a newer verified
 *                                                           target replaced by an older one; a writer
 *                                                           that reads the Service BEFORE it checks the
 *                                                           truth, and patches with that resourceVersion,
 *                                                           can never do this, however slow it is)
 *   the failover that ended eN was first seen more than
 *   raceGraceMs before the write's commit                   wrong: N had long stopped being the master
 *   otherwise                                               raced: N was the master until a failover
 *                                                           that happened between the writer's check and
 *                                                           its commit; not a fault of the writer (no
 *                                                           read-then-write avoids it), repaired by the
 *                                                           hooks of that failover
 * raceGraceMs is the longest a correct writer may take from its check to its commit (here
 * 2 x kubernetes.timeoutMs: the pod lookup and the PATCH). "First seen" is the checker's first
 * conclusive sample of the new epoch: no earlier than the real flip, so the grace only widens.
 */
export function classifyWrite(i: ClassifyInput): { verdict: 'ok' | 'raced' | 'wrong'; why?: string; epoch?: number } {
  const m = `${i.truth.master} (epoch ${i.truth.epoch})`;
  if (!i.node) return { verdict: 'wrong', why: `${i.to} names no Redis node; the master is ${m}` };
  if (i.node === i.truth.master) return { verdict: 'ok', epoch: i.truth.epoch };
  const own = [...i.epochs].filter(([e, v]) => v.node === i.node && e <= i.truth.epoch).map(([e]) => e);
  if (own.length === 0) return { verdict: 'wrong', why: `${i.node} was never the verified master; the master is ${m}` };
  const eN = Math.max(...own);
  if (i.serviceEpoch !== undefined && eN < i.serviceEpoch) {
    return { verdict: 'wrong', epoch: eN, why: `stale overwrite: ${i.from} (epoch ${i.serviceEpoch}) replaced by ${i.node} (epoch ${eN}); the master is ${m}` };
  }
  const next = [...i.epochs].filter(([e]) => e > eN).sort((a, b) => a[0] - b[0])[0];
  const lag = next ? i.commitMs - next[1].firstSeen : 0;
  if (!next) return { verdict: 'wrong', epoch: eN, why: `${i.node} (epoch ${eN}) is not the master ${m}, and no later epoch was seen` };
  if (lag > i.raceGraceMs) {
    return { verdict: 'wrong', epoch: eN, why: `${i.node} stopped being the master ${Math.round(lag)} ms before the write (epoch ${next[0]}: ${next[1].node}; grace ${i.raceGraceMs} ms); the master is ${m}` };
  }
  return { verdict: 'raced', epoch: eN, why: `${i.node} was the master of epoch ${eN}; the failover to ${next[1].node} (epoch ${next[0]}) was first seen ${Math.round(lag)} ms before the write` };
}

function pairs(reply: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!Array.isArray(reply)) return out;
  for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1]);
  return out;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<never>((_, reject) => {
      t = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    }),
  ]);
}
