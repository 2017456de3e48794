// The two peers `npm run bench` compares sentinel-switch with, set up next to a startStack()
// sandbox (shared by scripts/bench.ts and test/peers.test.ts):
//   seed-poll-5s      scripts/peers/seed-poll.sh: polls ONE sentinel every 5 s, patches the
//                     ExternalName Service `seed-master`.
//   bitnami-label-1s  scripts/peers/combined-hook.sh writes the hook's `to` address to a file per
//                     sentinel; scripts/peers/bitnami-label.sh (one loop per sentinel, as one
//                     sidecar per Redis pod) checks it every 1 s and relabels Pods isMaster=true/false.
// Plus ObjectWatch: API watches on the namespace's Services and Pods, each event timestamped on
// arrival in this process: the only clock the bench trusts for "the object shows the new master".
import { type ChildProcess, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdirSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { type Cluster, createExternalNameService, createServiceAccount, kubectl, serviceAccountKubeconfig } from '../../test/harness/k8s.ts';
import type { Stack } from '../../test/harness/stack.ts';
import { repoRoot } from '../../test/harness/switch.ts';
import { type ResumableWatch, resumableWatch } from '../../test/harness/watch.ts';

export const SEED_SERVICE = 'seed-master';
export const POD_SELECTOR = 'app=redis';
const now = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** What startStack needs so that Sentinel runs both hooks (ours and Bitnami's file write). */
export function peerHook(dir: string): { hookScript: string; hookEnv: Record<string, string>; bitnamiDir: string } {
  const bitnamiDir = join(dir, 'bitnami');
  mkdirSync(bitnamiDir, { recursive: true });
  return { hookScript: join(repoRoot, 'scripts/peers/combined-hook.sh'), hookEnv: { BITNAMI_MASTER_DIR: bitnamiDir }, bitnamiDir };
}

/** The RBAC each peer needs, shown by the bench (sentinel-switch: deploy/rbac.yaml). */
export const PEER_RBAC = {
  'seed-poll-5s': 'services get+patch, pods list (in reality also pods/exec create: it runs redis-cli through kubectl exec)',
  'bitnami-label-1s': 'pods list+patch, from EVERY Redis pod (kubectl in each pod)',
};

function rbacYaml(namespace: string): string {
  const role = (name: string, rules: { resources: string[]; verbs: string[] }[]) => [
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name, namespace }, rules: rules.map((r) => ({ apiGroups: [''], ...r })) },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name, namespace },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: [{ kind: 'ServiceAccount', name, namespace }],
    },
  ];
  const items = [
    ...role('seed-poll', [{ resources: ['services'], verbs: ['get', 'patch'] }, { resources: ['pods'], verbs: ['list'] }]),
    ...role('bitnami-label', [{ resources: ['pods'], verbs: ['get', 'list', 'patch'] }]),
  ];
  return JSON.stringify({ apiVersion: 'v1', kind: 'List', items });
}

export interface PeerProcess {
  name: string;
  logPath: string;
  pid(): number | undefined;
}

export interface Peers {
  processes: PeerProcess[];
  seedKubeconfig: string;
  bitnamiKubeconfig: string;
  /** SIGTERM each loop by PID, SIGKILL of its process group after a grace period. Idempotent. */
  stop(): Promise<void>;
}

export interface PeerOptions {
  stack: Stack;
  cluster: Cluster;
  dir: string;
  bitnamiDir: string;
  /** Seconds between seed-poll rounds (default 5, the original's). */
  seedIntervalS?: number;
  /** Seconds between Bitnami file checks (default 1, the chart's). */
  bitnamiIntervalS?: number;
  /** The loops exit once this PID is gone (default: this process). */
  ownerPid?: number;
  /** The loops exit after this long whatever happens (default 3600 s). */
  maxSeconds?: number;
}

/**
 * Creates the peers' objects (Service seed-master, isMaster labels on the Pods), their
 * ServiceAccounts with the RBAC they need, and starts the loops. Resolves once every loop runs.
 */
export async function startPeers(o: PeerOptions): Promise<Peers> {
  const { stack, cluster } = o;
  const admin = stack.adminKubeconfig;
  const ns = stack.namespace;
  mkdirSync(o.dir, { recursive: true });
  const master = await stack.redis.masterByMajority();
  await createExternalNameService(admin, ns, SEED_SERVICE, stack.dnsName(master));
  for (const node of stack.redis.nodes) {
    await kubectl(admin, ['label', 'pod', node.name, '-n', ns, `isMaster=${node.host === master.host}`, '--overwrite']);
  }
  await createServiceAccount(admin, ns, 'seed-poll');
  await createServiceAccount(admin, ns, 'bitnami-label');
  await kubectl(admin, ['apply', '-n', ns, '-f', '-'], rbacYaml(ns));
  const seedKubeconfig = await serviceAccountKubeconfig(cluster, ns, 'seed-poll');
  const bitnamiKubeconfig = await serviceAccountKubeconfig(cluster, ns, 'bitnami-label');

  const owner = String(o.ownerPid ?? process.pid);
  const maxSeconds = String(o.maxSeconds ?? 3600);
  const cacheDir = join(o.dir, 'kube-cache');
  const binDir = process.env.SENTINEL_SWITCH_K8S_BIN;
  const env = { ...process.env, PATH: `${binDir ? `${binDir}:` : ''}${process.env.PATH ?? '/usr/bin:/bin'}`, REDISCLI_AUTH: stack.redis.sentinelPassword ?? '' };
  if (!stack.redis.sentinelPassword) delete (env as Record<string, string | undefined>).REDISCLI_AUTH;

  const children: { name: string; child: ChildProcess; logPath: string }[] = [];
  const launch = (name: string, script: string, args: string[]): void => {
    const logPath = join(o.dir, `${name}.log`);
    const fd = openSync(logPath, 'a');
    try {
      // Own process group: the fallback SIGKILL takes the loop's sleep/kubectl children with it.
      const child = spawn('bash', [join(repoRoot, 'scripts/peers', script), ...args], { env, stdio: ['ignore', fd, fd], detached: true });
      child.on('error', () => { /* reported by the readiness wait */ });
      children.push({ name, child, logPath });
    } finally {
      closeSync(fd);
    }
  };
  const seedSentinel = stack.redis.sentinels[0]!;
  launch('seed-poll', 'seed-poll.sh', [
    '--sentinel', `${seedSentinel.host}:${seedSentinel.port}`, '--master-set', stack.redis.masterSet,
    '--namespace', ns, '--service', SEED_SERVICE, '--kubeconfig', seedKubeconfig,
    '--interval', String(o.seedIntervalS ?? 5), '--owner-pid', owner, '--max-seconds', maxSeconds, '--cache-dir', cacheDir,
  ]);
  for (const s of stack.redis.sentinels) {
    const folder = join(o.bitnamiDir, s.name);
    mkdirSync(folder, { recursive: true });
    launch(`bitnami-label-${s.name}`, 'bitnami-label.sh', [
      '--file', join(folder, 'master'), '--namespace', ns, '--kubeconfig', bitnamiKubeconfig, '--selector', POD_SELECTOR,
      '--interval', String(o.bitnamiIntervalS ?? 1), '--owner-pid', owner, '--max-seconds', maxSeconds, '--cache-dir', cacheDir,
      // Sidecars of different pods poll out of step, as they start at different times.
      '--phase-ms', String(randomInt(0, Math.round((o.bitnamiIntervalS ?? 1) * 1000))),
    ]);
  }

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= Promise.all(children.map(async ({ child }) => {
      if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      try { process.kill(child.pid, 'SIGTERM'); } catch { return; }
      // A kubectl call in flight (bounded by --request-timeout=5s) delays the trap.
      if (await Promise.race([exited.then(() => true), sleep(7_000).then(() => false)])) return;
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
      await Promise.race([exited, sleep(2_000)]);
    })).then(() => undefined);
    return stopping;
  };

  // Ready = each loop printed its start line (the Bitnami loops after their first pod list).
  const deadline = now() + 20_000;
  for (const c of children) {
    for (;;) {
      const text = safeRead(c.logPath);
      if (/ (polling|watching) /.test(text)) break;
      if (c.child.exitCode !== null || now() > deadline) {
        await stop();
        throw new Error(`peer ${c.name} did not start (exit ${c.child.exitCode}); log ${c.logPath}:\n${text}`);
      }
      await sleep(50);
    }
  }
  return {
    processes: children.map(({ name, child, logPath }) => ({ name, logPath, pid: () => (child.exitCode === null && child.signalCode === null ? child.pid : undefined) })),
    seedKubeconfig,
    bitnamiKubeconfig,
    stop,
  };
}

function safeRead(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

export interface ObjectEvent {
  /** Epoch ms (float) when the watch event arrived in this process. */
  atMs: number;
  kind: 'service' | 'pod';
  type: string;
  name: string;
  externalName?: string;
  isMaster?: string;
}

/**
 * Watches Services and Pods of one namespace; every event is kept with its arrival time. A watch
 * that ends is resumed from its last resourceVersion, so no event is lost; stop() ends both.
 */
export class ObjectWatch {
  readonly events: ObjectEvent[] = [];
  private readonly waiters = new Set<() => void>();
  private readonly handles: ResumableWatch[] = [];
  private stopped = false;

  static async start(kubeconfig: string, namespace: string): Promise<ObjectWatch> {
    const w = new ObjectWatch();
    for (const [kind, resource] of [['service', 'services'], ['pod', 'pods']] as const) {
      w.handles.push(
        await resumableWatch(kubeconfig, `/api/v1/namespaces/${namespace}/${resource}`, {}, (type, obj, atMs) => {
          w.events.push({
            atMs, kind, type, name: obj.metadata?.name ?? '',
            externalName: kind === 'service' ? obj.spec?.externalName : undefined,
            isMaster: kind === 'pod' ? obj.metadata?.labels?.isMaster : undefined,
          });
          for (const wake of w.waiters) wake();
        }),
      );
    }
    return w;
  }

  /** The latest event for an object (its current state as far as the watch knows). */
  latest(kind: 'service' | 'pod', name: string): ObjectEvent | undefined {
    for (let i = this.events.length - 1; i >= 0; i--) {
      const e = this.events[i]!;
      if (e.kind === kind && e.name === name) return e;
    }
    return undefined;
  }

  /**
   * The first event of object kind/name at or after sinceMs that satisfies `match` (an object
   * that already matched before sinceMs does not count: the mechanism must act), else undefined
   * after timeoutMs.
   */
  waitFor(kind: 'service' | 'pod', name: string, match: (e: ObjectEvent) => boolean, sinceMs: number, timeoutMs: number): Promise<ObjectEvent | undefined> {
    return new Promise((resolve) => {
      const find = (): ObjectEvent | undefined =>
        this.events.find((e) => e.atMs >= sinceMs && e.kind === kind && e.name === name && e.type !== 'DELETED' && match(e));
      const done = (e: ObjectEvent | undefined): void => {
        this.waiters.delete(wake);
        clearTimeout(timer);
        resolve(e);
      };
      const wake = (): void => {
        const hit = find();
        if (hit || this.stopped) done(hit);
      };
      const timer = setTimeout(() => done(undefined), timeoutMs);
      this.waiters.add(wake);
      wake();
    });
  }

  /** MODIFIED events in [fromMs, toMs) on the objects `select` picks. */
  writes(select: (e: ObjectEvent) => boolean, fromMs: number, toMs: number): number {
    return this.events.filter((e) => e.type === 'MODIFIED' && e.atMs >= fromMs && e.atMs < toMs && select(e)).length;
  }

  stop(): void {
    this.stopped = true;
    for (const h of this.handles) h.stop();
    for (const wake of this.waiters) wake();
  }
}

/**
 * The benchmarks' teardown, in dependency order: the peers' loops, the object watch, the stack
 * (sentinel-switch, Redis, Sentinel), the cluster, and etcd's preallocated WAL. A failing step is
 * told and the rest still run.
 */
export async function stopBenchSandbox(o: { peers?: Peers; watch?: ObjectWatch; stack?: Stack; cluster?: Cluster; dir: string; say: (s: string) => void }): Promise<void> {
  await o.peers?.stop().catch((e: unknown) => o.say(`  stopping the peers: ${String(e)}`));
  o.watch?.stop();
  await o.stack?.stop().catch((e: unknown) => o.say(`  stopping the stack: ${String(e)}`));
  await o.cluster?.stop().catch((e: unknown) => o.say(`  stopping the API server: ${String(e)}`));
  rmSync(join(o.dir, 'k8s', 'etcd-data'), { recursive: true, force: true });
}
