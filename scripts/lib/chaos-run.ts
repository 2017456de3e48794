// Runs a chaos schedule on a started stack: injects each fault, restores what it broke, measures
// convergence with the independent checker, and restores a stable sandbox before the next one.
// Used by scripts/chaos.ts (its own cluster, every fault kind) and test/chaos.test.ts (short).
import { type AppWriter, type ClientMode, startAppWriter } from '../../test/harness/app-client.ts';
import type { Cluster } from '../../test/harness/k8s.ts';
import { inSandboxNamespace } from '../../test/harness/netns.ts';
import type { RedisNode } from '../../test/harness/redis.ts';
import { type Stack, TARGET } from '../../test/harness/stack.ts';
import type { SwitchConfigInput, SwitchProcess } from '../../test/harness/switch.ts';
import { addErrors, externalNameResolver, judgeWindow, stableName, type WindowVerdict } from './app-view.ts';
import { Checker, type Write } from './chaos-checker.ts';
import { apiServerOf, type DelayProxy, startDelayProxy, writeProxiedKubeconfig } from './chaos-proxy.ts';
import { describeFault, type Fault, type Trigger } from './chaos-schedule.ts';
import { percentile } from './stats.ts';

const now = (): number => performance.timeOrigin + performance.now();
const APP_COMMAND_TIMEOUT_MS = 2_000;
const APP_WINDOW_LAG_MS = APP_COMMAND_TIMEOUT_MS + 500;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface ChaosOptions {
  stack: Stack;
  /** Needed for api-down faults only. */
  cluster?: Cluster;
  schedule: Fault[];
  /** The primary's reconcileIntervalSeconds (the convergence bound is 1.1 x this + slackMs). */
  reconcileIntervalSeconds: number;
  /** reconcileIntervalSeconds of the extra replicas (default 1: they race the hook and each other). */
  replicaIntervalSeconds?: number;
  slackMs?: number;
  /** No fault starts after this (epoch ms) minus reserveMs. */
  deadlineMs?: number;
  reserveMs?: number;
  say?: (line: string) => void;
  /** Set when the run must stop (signal, watchdog): the current fault is cut short, nothing new starts. */
  aborted?: () => boolean;
  /**
   * The application's view: a Sentinel-unaware writer (test/harness/app-client.ts) on the stable
   * name of the Service, judged per fault (lostAcked). Default on, 100 writes/s, mode reconnect;
   * the name resolves through the system resolver with `dns: 'system'` (the default inside the
   * sandbox's network namespace: its CoreDNS), else to the node the Service names at that moment
   * (loopback, emulated).
   */
  app?: { enabled?: boolean; rate?: number; mode?: ClientMode; dns?: 'system' | 'emulated' };
}

export type Delivery = 'hook' | 'timer' | 'already' | 'none';

export interface FaultResult {
  fault: Fault;
  atMs: number;
  /** converged: healthy again and the Service named the master within the bound. */
  outcome: 'converged' | 'late' | 'not-converged' | 'not-healthy' | 'error';
  from?: string;
  to?: string;
  epochBefore?: number;
  epochAfter?: number;
  /** From the fault's start. */
  restoredAfterMs?: number;
  healthyAfterMs?: number;
  /** From healthy again to the Service naming the true master (0 if it already did). */
  convergeMs?: number;
  /** From the checker's first sight of the new epoch to the Service naming its master. */
  switchToServiceMs?: number;
  /** Which mechanism made the Service right: the write's last-switch-reason (hook/follow-up = hook). */
  delivery: Delivery;
  writes: Write[];
  /** The app writer's writes of this fault's window, judged against the master once stable again. */
  app?: WindowVerdict;
  note?: string;
  error?: string;
}

export interface ChaosReport {
  results: FaultResult[];
  faults: number;
  failovers: number;
  converged: number;
  /** Faults after which the system became healthy again: each of these must converge. */
  shouldConverge: number;
  writes: number;
  wrongWrites: number;
  racedWrites: number;
  unjudgedWrites: number;
  watchRestarts: number;
  /** App writes acknowledged and then absent from the final master (buffered ones apart), in all and per fault kind. */
  lostAcked: number;
  lostAckedBuffered: number;
  lostAckedByKind: Record<string, number>;
  appWrites: { sent: number; acked: number; errors: Record<string, number> };
  anomalies: string[];
  convergeMs: Stats & { hook: Stats; timer: Stats };
  switchToServiceMs: Stats;
}

interface Stats {
  n: number;
  p50: number | null;
  p99: number | null;
}

export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  const { stack } = o;
  const redis = stack.redis;
  const say = o.say ?? (() => undefined);
  const aborted = o.aborted ?? (() => false);
  const slackMs = o.slackMs ?? 2_000;
  const boundMs = o.reconcileIntervalSeconds * 1_100 + slackMs;
  const timeoutMs = Number((stack.switchConfig.kubernetes as { timeoutMs?: number } | undefined)?.timeoutMs ?? 5_000);
  const dnsNames = new Map(redis.nodes.map((n) => [n.name, stack.dnsName(n)]));
  const checker = new Checker({
    redis,
    kubeconfig: stack.adminKubeconfig,
    namespace: stack.namespace,
    service: TARGET,
    dnsNames,
    // A correct writer may take up to list-pods + PATCH (each bounded by kubernetes.timeoutMs)
    // between its check and its commit.
    raceGraceMs: 2 * timeoutMs,
    say,
  });
  await checker.start();
  const appOpts = o.app ?? {};
  let app: AppWriter | undefined;
  if (appOpts.enabled !== false) {
    const name = stableName(TARGET, stack.namespace);
    app = startAppWriter({
      host: name,
      port: redis.nodes[0]!.port,
      password: redis.password,
      rate: appOpts.rate ?? 100,
      mode: appOpts.mode ?? 'reconnect',
      keyPrefix: `chaos-app:${process.pid}:${Date.now()}`,
      commandTimeoutMs: APP_COMMAND_TIMEOUT_MS,
      resolve: (appOpts.dns ?? (inSandboxNamespace() ? 'system' : 'emulated')) === 'system' ? undefined : externalNameResolver({
        name, nodes: redis.nodes, dnsName: (n) => dnsNames.get(n.name)!, current: () => checker.serviceNow().externalName,
      }),
    });
  }
  let windowStart = now() - APP_WINDOW_LAG_MS;
  const t0run = now();
  const clock = (at = now()): string => `${((at - t0run) / 1000).toFixed(1).padStart(6)}s`;
  const results: FaultResult[] = [];

  // What is broken right now, so that any failure can put it back.
  const paused = new Set<RedisNode>();
  let apiDown = false;
  let replicas: SwitchProcess[] = [];
  let proxy: DelayProxy | undefined;
  const restoreAll = async (): Promise<void> => {
    for (const n of paused) await redis.stopNode(n, 'SIGCONT').catch(() => undefined);
    paused.clear();
    if (apiDown && o.cluster) {
      // (stop-apiserver may still be under way; start-apiserver takes the cluster dir's lock after it.)
      await o.cluster.startApiServer();
      apiDown = false;
    }
    for (const s of redis.sentinels) if (s.pid() === undefined) await redis.startSentinel(s);
    for (const n of redis.nodes) if (n.pid() === undefined) await redis.startNode(n);
    if (stack.service && stack.service.pid() === undefined) await stack.service.restart();
  };
  const stopReplicas = async (): Promise<void> => {
    await Promise.allSettled(replicas.map((r) => r.stop('SIGTERM')));
    replicas = [];
  };

  try {
    say(`${clock()} checker: truth ${checker.describe(checker.lastMaster())}, Service ${checker.nodeOf(checker.serviceNow().externalName)}; convergence bound ${boundMs} ms (1.1 x ${o.reconcileIntervalSeconds} s + ${slackMs} ms), race grace ${2 * timeoutMs} ms`);
    for (const fault of o.schedule) {
      if (aborted()) break;
      if (o.deadlineMs !== undefined && now() > o.deadlineMs - (o.reserveMs ?? 60_000)) {
        say(`${clock()} time budget reached: ${results.length} of ${o.schedule.length} faults run`);
        break;
      }
      if (fault.kind === 'api-down' && !o.cluster) throw new Error('api-down needs the cluster');
      await sleep(fault.gapMs);
      const writesBefore = checker.writes.length;
      const before = checker.lastMaster();
      const r: FaultResult = { fault, atMs: now(), outcome: 'error', delivery: 'none', writes: [], from: before?.master, epochBefore: before?.epoch };
      let frozen: { fromMs: number; toMs: number } | undefined;
      results.push(r);
      try {
        if (fault.replicas) {
          proxy ??= await startDelayProxy(apiServerOf(stack.switchKubeconfig), 0);
          proxy.setDelay(fault.slowApiMs ?? 0);
          const slowKubeconfig = writeProxiedKubeconfig(stack.switchKubeconfig, proxy.port, `${stack.switchKubeconfig}.chaos-slow.json`);
          const common = { reconcileIntervalSeconds: o.replicaIntervalSeconds ?? 1, logLevel: 'info' as const };
          replicas = await Promise.all([
            stack.startService(`replica-${fault.n}a`, common),
            stack.startService(`replica-${fault.n}b-slow`, { ...common, kubernetes: { ...(stack.switchConfig.kubernetes as object), kubeconfig: slowKubeconfig } as SwitchConfigInput['kubernetes'] }),
          ]);
        }
        const tFault = now();
        r.atMs = tFault;
        r.note = await inject(fault, { stack, cluster: o.cluster, paused, setApiDown: (v) => (apiDown = v), probeApi: () => checker.probeApi(), aborted, frozen: (f) => (frozen = f) });
        r.restoredAfterMs = now() - tFault;
        const healthy = await checker.waitHealthy(45_000);
        if (!healthy?.master) {
          r.outcome = 'not-healthy';
          r.error = `not healthy 45 s after the restore: ${checker.describe(checker.samples.at(-1))}, API ${checker.apiUp ? 'up' : 'down'}`;
        } else {
          r.healthyAfterMs = healthy.t0 - tFault;
          r.to = healthy.master;
          r.epochAfter = healthy.epoch;
          const want = dnsNames.get(healthy.master)!;
          let named = await checker.waitServiceNames(want, healthy.t0 + boundMs);
          r.outcome = named ? 'converged' : 'late';
          // Keep looking a while, to tell late from never.
          named ??= await checker.waitServiceNames(want, now() + 30_000);
          if (!named) r.outcome = 'not-converged';
          // And it stays right (a late stale write from a slow replica would undo it).
          await sleep(1_000);
          const end = checker.lastMaster();
          if (named && end?.master && checker.serviceNow().externalName !== dnsNames.get(end.master)) {
            r.outcome = 'not-converged';
            r.error = `the Service moved away after converging: it names ${checker.nodeOf(checker.serviceNow().externalName)}, the master is ${checker.describe(end)}`;
          }
          if (named) {
            r.convergeMs = Math.max(0, named.since - healthy.t0);
            const epochSeen = healthy.epoch === undefined ? undefined : checker.epochs.get(healthy.epoch)?.firstSeen;
            if (healthy.epoch !== r.epochBefore && epochSeen !== undefined) r.switchToServiceMs = named.since - epochSeen;
            const made = named.state;
            r.delivery = made && made.atMs >= tFault && checker.states.indexOf(made) > 0
              ? (made.reason === 'hook' || made.reason === 'event' || made.reason === 'follow-up' ? 'hook' : 'timer')
              : 'already';
          }
        }
      } catch (err) {
        r.outcome = 'error';
        r.error = (err as Error).message.split('\n')[0];
      }
      try {
        await stopReplicas();
        await restoreAll();
        await checker.settle();
        r.writes = checker.writes.slice(writesBefore);
        await redis.waitStable(60_000);
        if (app) {
          // The window closes no earlier than the moment the old master was demoted (stable), and
          // far enough in the past that every write in it has its outcome.
          const stableAt = now();
          const final = await redis.masterByMajority();
          await sleep(Math.max(0, stableAt + APP_WINDOW_LAG_MS - now()));
          const windowEnd = now() - APP_WINDOW_LAG_MS;
          r.app = await judgeWindow({ writer: app, fromMs: windowStart, toMs: windowEnd, master: { ...final, password: redis.password }, frozen });
          windowStart = windowEnd;
        }
        say(line(clock(r.atMs), r));
        if (r.error) say(`    ${r.error}`);
      } catch (err) {
        say(`${clock()} could not restore a stable sandbox after fault #${fault.n}: ${(err as Error).message.split('\n')[0]}; stopping`);
        break;
      }
    }
  } finally {
    await app?.stop();
    await stopReplicas();
    await proxy?.close();
    await restoreAll().catch(() => undefined);
    await checker.settle();
    await checker.stop();
  }

  const writes = checker.writes;
  const conv = results.filter((r) => r.convergeMs !== undefined && r.outcome === 'converged');
  const stats = (xs: number[]): Stats => ({ n: xs.length, p50: round(percentile(xs, 50)), p99: round(percentile(xs, 99)) });
  return {
    results,
    faults: results.length,
    failovers: checker.failovers,
    converged: results.filter((r) => r.outcome === 'converged').length,
    shouldConverge: results.filter((r) => r.outcome !== 'not-healthy' && r.outcome !== 'error').length,
    writes: writes.length,
    wrongWrites: writes.filter((w) => w.verdict === 'wrong').length,
    racedWrites: writes.filter((w) => w.verdict === 'raced').length,
    unjudgedWrites: writes.filter((w) => w.verdict === 'unjudged' || w.verdict === 'pending').length,
    watchRestarts: checker.watchRestarts,
    lostAcked: results.reduce((n, r) => n + (r.app?.lostAcked ?? 0), 0),
    lostAckedBuffered: results.reduce((n, r) => n + (r.app?.lostAckedBuffered ?? 0), 0),
    lostAckedByKind: results.reduce<Record<string, number>>((m, r) => {
      if (r.app) m[r.fault.kind] = (m[r.fault.kind] ?? 0) + r.app.lostAcked;
      return m;
    }, {}),
    appWrites: results.reduce((a, r) => {
      if (r.app) {
        a.sent += r.app.sent;
        a.acked += r.app.acked;
        addErrors(a.errors, r.app.errors);
      }
      return a;
    }, { sent: 0, acked: 0, errors: {} as Record<string, number> }),
    anomalies: checker.anomalies,
    convergeMs: {
      ...stats(conv.map((r) => r.convergeMs!)),
      hook: stats(conv.filter((r) => r.delivery === 'hook').map((r) => r.convergeMs!)),
      timer: stats(conv.filter((r) => r.delivery === 'timer').map((r) => r.convergeMs!)),
    },
    switchToServiceMs: stats(results.flatMap((r) => (r.switchToServiceMs === undefined ? [] : [r.switchToServiceMs]))),
  };
}

interface InjectContext {
  stack: Stack;
  cluster?: Cluster;
  paused: Set<RedisNode>;
  setApiDown: (down: boolean) => void;
  /** Whether the API server answers a new request now. */
  probeApi: () => Promise<boolean>;
  aborted: () => boolean;
  /** pause-master: when the master was frozen and resumed (for the app's buffered writes). */
  frozen: (f: { fromMs: number; toMs: number }) => void;
}

/** Injects one fault and puts back what it broke; resolves with a note on what happened. */
async function inject(f: Fault, c: InjectContext): Promise<string> {
  const { stack } = c;
  const redis = stack.redis;
  const before = await redis.masterByMajority();
  const masterNode = redis.nodes.find((n) => n.host === before.host)!;
  const notes: string[] = [];
  const trigger = async (t: Trigger): Promise<RedisNode | undefined> => {
    if (t === 'failover') {
      await redis.failover();
      return undefined;
    }
    return redis.killMaster();
  };
  /** Until the majority names another node; false after timeoutMs. */
  const moved = async (timeoutMs: number): Promise<boolean> => {
    const deadline = now() + timeoutMs;
    while (now() < deadline && !c.aborted()) {
      const m = await redis.masterByMajority().catch(() => undefined);
      if (m && m.host !== before.host) return true;
      await sleep(50);
    }
    notes.push('the master did not move');
    return false;
  };

  switch (f.kind) {
    case 'failover':
      await redis.failover();
      await moved(20_000);
      break;
    case 'kill-master': {
      const killed = await redis.killMaster();
      await moved(20_000);
      await sleep(f.backAfterMs!);
      await redis.startNode(killed);
      break;
    }
    case 'pause-master': {
      const t = now();
      await redis.stopNode(masterNode, 'SIGSTOP');
      c.paused.add(masterNode);
      await moved(15_000);
      await sleep(Math.max(0, f.pauseMs! - (now() - t)));
      await redis.stopNode(masterNode, 'SIGCONT');
      c.paused.delete(masterNode);
      c.frozen({ fromMs: t, toMs: now() });
      notes.push(`paused ${Math.round(now() - t)} ms`);
      break;
    }
    case 'sentinel-down': {
      const s = redis.sentinels[f.sentinel!]!;
      await redis.stopSentinel(s, 'SIGKILL');
      const killed = await trigger(f.trigger!);
      await moved(20_000);
      await sleep(f.backAfterMs!);
      await redis.startSentinel(s);
      if (killed) await redis.startNode(killed);
      break;
    }
    case 'switch-killed': {
      // Mid-failover: before the hook calls (they find it dead and retry), or right after the
      // first one reached it (the leader's, which the majority does not confirm yet).
      const service = stack.service!;
      const seen = service.logLines().length;
      const tTrigger = now();
      const killed = await trigger(f.trigger!);
      let anchor = tTrigger;
      if (f.killAnchor === 'first-hook') {
        const deadline = now() + 20_000;
        let hookAt: number | undefined;
        while (hookAt === undefined && now() < deadline && !c.aborted()) {
          if (service.logLines().slice(seen).some((l) => l.msg === 'hook event')) hookAt = now();
          else await sleep(1);
        }
        if (hookAt === undefined) notes.push('no hook call seen');
        anchor = hookAt ?? now();
      }
      await sleep(Math.max(0, f.killDelayMs! - (now() - anchor)));
      const hooksBefore = service.logLines().slice(seen).filter((l) => l.msg === 'hook event').length;
      const switchedBefore = service.logLines().slice(seen).some((l) => l.result === 'switched');
      await service.stop('SIGKILL');
      notes.push(`SIGKILL ${Math.round(now() - anchor)} ms after ${f.killAnchor === 'trigger' ? 'the trigger' : 'the first hook call'}, ${hooksBefore} hook call(s) received${switchedBefore ? ', already switched' : ''}`);
      await sleep(f.downMs!);
      await service.restart();
      await moved(20_000);
      if (killed) await redis.startNode(killed);
      break;
    }
    case 'api-down': {
      // kube-apiserver stops answering at once on SIGTERM but can take ~15 s to exit: the
      // failover goes ahead as soon as the API is gone, not when the process is.
      const cluster = c.cluster!;
      c.setApiDown(true);
      const t = now();
      const stopped = cluster.stopApiServer();
      stopped.catch(() => undefined);
      while ((await c.probeApi()) && now() - t < 20_000) await sleep(50);
      await redis.failover();
      await moved(20_000);
      await sleep(f.backAfterMs!);
      await stopped;
      await cluster.startApiServer();
      c.setApiDown(false);
      notes.push(`API down ${Math.round(now() - t)} ms`);
      break;
    }
  }
  return notes.join('; ');
}

function line(clock: string, r: FaultResult): string {
  const f = r.fault;
  const move = r.from === r.to ? `${r.from} stays (epoch ${r.epochAfter})` : `${r.from ?? '?'} -> ${r.to ?? '?'} (epoch ${r.epochBefore} -> ${r.epochAfter})`;
  const counts = (['ok', 'raced', 'wrong', 'unjudged'] as const).map((v) => [v, r.writes.filter((w) => w.verdict === v).length] as const).filter(([, n]) => n > 0);
  const writes = `writes ${r.writes.length}${counts.length ? ` (${counts.map(([v, n]) => `${n} ${v}`).join(', ')})` : ''}`;
  const app = r.app ? `; app: ${r.app.acked}/${r.app.sent} acked, lost acked ${r.app.lostAcked}${r.app.lostAckedBuffered ? ` (+${r.app.lostAckedBuffered} buffered)` : ''}` : '';
  const conv = r.convergeMs === undefined
    ? r.outcome
    : `${r.outcome} ${Math.round(r.convergeMs)} ms after healthy (${r.delivery}${r.switchToServiceMs !== undefined ? `, ${Math.round(r.switchToServiceMs)} ms after the new epoch` : ''})`;
  const healthy = r.healthyAfterMs === undefined ? '' : `, healthy +${(r.healthyAfterMs / 1000).toFixed(1)}s`;
  return `${clock} #${f.n} ${describeFault(f)}${r.note ? ` [${r.note}]` : ''}: ${move}${healthy}; ${conv}; ${writes}${app}`;
}

function round(x: number | undefined): number | null {
  return x === undefined ? null : Math.round(x);
}
