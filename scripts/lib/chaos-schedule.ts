// The chaos schedule: a seeded PRNG and the list of faults it draws. Pure (no I/O), so the same
// seed always gives the same faults with the same parameters, whatever the machine's timing does.

/** mulberry32: a tiny 32-bit PRNG, plenty for picking faults (not for anything secret). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const FAULT_KINDS = ['failover', 'kill-master', 'pause-master', 'sentinel-down', 'switch-killed', 'api-down'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** How a fault makes the master move (when it does more than that). */
export type Trigger = 'failover' | 'kill-master';

export interface Fault {
  /** 1-based position in the schedule. */
  n: number;
  kind: FaultKind;
  /**
   * Start 2 extra sentinel-switch replicas (1 s reconcile interval, no hook calls) for this fault.
   * The second reaches the API server through a proxy that delays its requests by slowApiMs (a
   * congested node): its checks and writes straddle the failover, where stale writes hide.
   */
  replicas: boolean;
  slowApiMs?: number;
  /** Pause before the fault, after the previous one is fully over. */
  gapMs: number;
  /** sentinel-down, switch-killed: what moves the master meanwhile. */
  trigger?: Trigger;
  /** pause-master: minimum SIGSTOP time (it also lasts until the majority names another master). */
  pauseMs?: number;
  /** kill-master, sentinel-down, api-down: how long after the majority moved the process comes back. */
  backAfterMs?: number;
  /** sentinel-down: which sentinel (index). */
  sentinel?: number;
  /**
   * switch-killed: SIGKILL killDelayMs after the anchor, then down for downMs. Anchor 'trigger':
   * after the failover command / master kill, before any hook call (the hooks find it dead and
   * retry); 'first-hook': after the first hook call reached it (mid-way through the calls).
   */
  killAnchor?: 'trigger' | 'first-hook';
  killDelayMs?: number;
  downMs?: number;
}

export interface ScheduleOptions {
  /** Kinds to draw from (default: all). */
  kinds?: readonly FaultKind[];
  /** Probability that a fault runs with 2 extra replicas (default 0.35; the first round has at least one). */
  replicasProbability?: number;
}

/**
 * `count` faults. The first round is a seeded permutation of the allowed kinds (each once, so a
 * short run still covers them), later ones are drawn at random. Every parameter comes from the PRNG.
 */
export function makeSchedule(seed: number, count: number, opts: ScheduleOptions = {}): Fault[] {
  const kinds = [...(opts.kinds ?? FAULT_KINDS)];
  if (kinds.length === 0) throw new Error('no fault kinds to draw from');
  for (const k of kinds) if (!FAULT_KINDS.includes(k)) throw new Error(`unknown fault kind ${k} (known: ${FAULT_KINDS.join(', ')})`);
  const rnd = mulberry32(seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const firstRound = [...kinds];
  for (let i = firstRound.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [firstRound[i], firstRound[j]] = [firstRound[j]!, firstRound[i]!];
  }
  const p = opts.replicasProbability ?? 0.35;
  // One fault of the first round certainly races replicas (if there are 2+ faults).
  const forcedReplicas = count >= 2 && p > 0 ? int(0, Math.min(count, firstRound.length) - 1) : -1;
  const faults: Fault[] = [];
  for (let i = 0; i < count; i++) {
    const kind = i < firstRound.length ? firstRound[i]! : weighted(kinds, rnd);
    const f: Fault = { n: i + 1, kind, replicas: i === forcedReplicas || rnd() < p, gapMs: int(300, 1500) };
    if (f.replicas) f.slowApiMs = int(200, 700);
    switch (kind) {
      case 'failover':
        break;
      case 'kill-master':
        f.backAfterMs = int(300, 3000);
        break;
      case 'pause-master':
        // down-after-milliseconds is 1000: the failover completes ~2.3 s into the pause.
        f.pauseMs = int(3000, 4500);
        break;
      case 'sentinel-down':
        f.sentinel = int(0, 2);
        f.trigger = pick(['failover', 'kill-master'] as const);
        f.backAfterMs = int(300, 3000);
        break;
      case 'switch-killed':
        f.trigger = pick(['failover', 'kill-master'] as const);
        f.killAnchor = rnd() < 0.5 ? 'trigger' : 'first-hook';
        // Before the first hook: a manual failover switches 0.5-1.2 s after the command, a killed
        // master ~2.3 s after the kill. After it: the observers' calls follow within ~30 ms, and
        // the switch ~15 ms after the first of them.
        f.killDelayMs = f.killAnchor === 'first-hook' ? int(0, 20) : f.trigger === 'failover' ? int(50, 450) : int(300, 2000);
        f.downMs = int(1000, 4000);
        break;
      case 'api-down':
        f.backAfterMs = int(500, 3000);
        break;
    }
    faults.push(f);
  }
  return faults;
}

/** After the first round: api-down (~20 s each: kube-apiserver drains its watches) half as often. */
function weighted(kinds: FaultKind[], rnd: () => number): FaultKind {
  const w = (k: FaultKind): number => (k === 'api-down' ? 1 : 2);
  let x = rnd() * kinds.reduce((n, k) => n + w(k), 0);
  for (const k of kinds) {
    x -= w(k);
    if (x < 0) return k;
  }
  return kinds.at(-1)!;
}

/** One line naming the fault and its drawn parameters. */
export function describeFault(f: Fault): string {
  const parts: string[] = [f.kind];
  if (f.kind === 'pause-master') parts.push(`SIGSTOP >= ${f.pauseMs} ms`);
  if (f.kind === 'kill-master') parts.push(`back ${f.backAfterMs} ms after the switch`);
  if (f.kind === 'sentinel-down') parts.push(`sentinel-${f.sentinel} SIGKILL, ${f.trigger}, back ${f.backAfterMs} ms after the switch`);
  if (f.kind === 'switch-killed') parts.push(`${f.trigger}, SIGKILL ${f.killDelayMs} ms after ${f.killAnchor === 'trigger' ? 'it (before the hooks)' : 'the first hook call'}, down ${f.downMs} ms`);
  if (f.kind === 'api-down') parts.push(`failover, API back ${f.backAfterMs} ms after the switch`);
  if (f.replicas) parts.push(`+2 replicas (one with +${f.slowApiMs} ms to the API)`);
  return parts.join(', ');
}
