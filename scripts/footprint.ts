// npm run bench:footprint [-- --window-seconds 60] [-- --starts 3] [-- --variants src,dist] [-- --no-build] [-- --json]
// What one sentinel-switch costs, measured on a local sandbox with 3 master sets (3 Redis
// sandboxes, each 1 master + 1 replica + 3 sentinels; 3 ExternalName Services in one namespace of
// a real kube-apiserver; the shipped RBAC, its resourceNames listing the 3 Services) and the
// default reconcile interval (30 s):
//   - start to ready: process spawn -> first /readyz 200 (also spawn -> first /healthz 200),
//     polled every 5 ms on fresh connections; --starts runs, median reported;
//   - idle CPU: utime+stime from /proc/<pid>/stat over --window-seconds (after a 5 s settle),
//     divided by CLK_TCK, in mCPU; nothing is sent to the process during the window;
//   - RSS: VmRSS from /proc/<pid>/status at the end of the window, and the peak VmHWM.
// Two variants: `node src/server.ts` (type stripping, what the tests run) and `node dist/server.js`
// (`npm run build` output, what the image runs; built first unless --no-build). Targets are
// printed next to the figures; nothing fails on them. With --json the LAST line is
// {"startToReadyMs","idleMilliCpu","rssMiB",...} of the dist variant (src if dist is not measured).
// Linux only (/proc). Stops everything it started, by PID, also on SIGINT/SIGTERM.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { parseAllDocuments, stringify } from 'yaml';
import { type Cluster, createExternalNameService, createNamespace, createPod, kubectl, serviceAccountKubeconfig, startCluster } from '../test/harness/k8s.ts';
import { type RedisSandbox, startRedisSandbox } from '../test/harness/redis.ts';
import { freePort, repoRoot } from '../test/harness/switch.ts';
import { stopOnSignals } from './lib/signals.ts';

const TARGETS = { startToReadyMs: 500, idleMilliCpu: 2, rssMiB: 80 };
const MASTER_SETS = 3;
const HEADLESS = 'redis-headless';
const SETTLE_MS = 5_000;

const argv = process.argv.slice(2);
const { values } = parseArgs({
  // `dev.sh run scripts/footprint.ts -- --json` passes the "--" on; `npm run bench:footprint -- --json` does not.
  args: argv[0] === '--' ? argv.slice(1) : argv,
  options: {
    'window-seconds': { type: 'string', default: '60' },
    starts: { type: 'string', default: '3' },
    variants: { type: 'string', default: 'src,dist' },
    'no-build': { type: 'boolean', default: false },
    // Extra environment of the measured process, e.g. --env NODE_OPTIONS=--max-semi-space-size=1 (repeatable).
    env: { type: 'string', multiple: true, default: [] },
    json: { type: 'boolean', default: false },
  },
});
const windowSeconds = Number(values['window-seconds']);
if (!Number.isFinite(windowSeconds) || windowSeconds < 5 || windowSeconds > 3_600) throw new Error('--window-seconds must be 5..3600');
const starts = Number(values.starts);
if (!Number.isInteger(starts) || starts < 1 || starts > 20) throw new Error('--starts must be 1..20');
const variants = values.variants.split(',').map((v) => v.trim());
const extraEnv = Object.fromEntries(
  values.env.map((kv) => {
    const i = kv.indexOf('=');
    if (i < 1) throw new Error(`--env ${kv}: expected NAME=VALUE`);
    return [kv.slice(0, i), kv.slice(i + 1)];
  }),
);
if (!variants.length || variants.some((v) => v !== 'src' && v !== 'dist')) throw new Error('--variants is a list of src and dist');
if (!existsSync('/proc/self/stat')) throw new Error('footprint needs Linux /proc');

const say = (s: string): void => void process.stdout.write(`${s}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const dir = join(repoRoot, '.sandbox', `footprint-${process.pid}`);
mkdirSync(dir, { recursive: true });
const clkTck = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());
if (!Number.isInteger(clkTck) || clkTck <= 0) throw new Error('getconf CLK_TCK gave no number');

// ------------------------------------------------------------------------------- cleanup

let cluster: Cluster | undefined;
const sandboxes: RedisSandbox[] = [];
let child: ChildProcess | undefined;
let stopping: Promise<void> | undefined;
const stopAll = (): Promise<void> =>
  (stopping ??= (async () => {
    await stopChild();
    await Promise.allSettled(sandboxes.map((s) => s.stop()));
    await cluster?.stop().catch((e: unknown) => say(`stopping the cluster: ${String(e)}`));
    rmSync(join(dir, 'k8s', 'etcd-data'), { recursive: true, force: true });
  })());
stopOnSignals(stopAll);

/** SIGTERM to the service we spawned (by PID), SIGKILL after 10 s. */
async function stopChild(): Promise<void> {
  const c = child;
  child = undefined;
  if (!c || c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise<void>((r) => c.once('exit', () => r()));
  c.kill('SIGTERM');
  const timer = setTimeout(() => c.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

// ------------------------------------------------------------------------------- measuring

/** GET on a fresh connection; the status, or 0 when nothing answered within timeoutMs. */
function probe(port: number, path: string, timeoutMs = 250): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after "(comm)": state is field 3, utime 14, stime 15 (1-based over the whole line).
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

function memoryKiB(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kib('VmRSS'), hwm: kib('VmHWM') };
}

/** Resident memory by kind of mapping: the node binary's pages, malloc's brk heap, other anonymous memory (V8's heap, thread arenas), shared libraries. */
function residentBreakdownMiB(pid: number): Record<string, number> {
  const out: Record<string, number> = { nodeBinary: 0, mallocHeap: 0, anonymous: 0, libraries: 0 };
  let kind = 'anonymous';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const m = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m) {
      const name = m[1] ?? '';
      kind = name.endsWith('/node') ? 'nodeBinary' : name === '[heap]' ? 'mallocHeap' : name === '' || name.startsWith('[') ? 'anonymous' : 'libraries';
    } else if (line.startsWith('Rss:')) out[kind]! += Number(line.split(/\s+/)[1]) / 1024;
  }
  for (const k of Object.keys(out)) out[k] = Math.round(out[k]! * 10) / 10;
  return out;
}

interface StartResult {
  pid: number;
  toHealthyMs: number;
  toReadyMs: number;
}

/** Spawns the service and polls /healthz and /readyz until both have answered 200 (30 s bound). */
async function startService(variant: string, configPath: string, port: number, env: Record<string, string>, logPath: string): Promise<StartResult> {
  const entry = variant === 'src' ? 'src/server.ts' : 'dist/server.js';
  const log = openSync(logPath, 'a');
  const t0 = performance.now();
  const c = spawn(process.execPath, [join(repoRoot, entry), '--config', configPath], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env, ...extraEnv },
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  child = c;
  let toHealthyMs: number | undefined;
  let toReadyMs: number | undefined;
  const deadline = t0 + 30_000;
  while (toReadyMs === undefined || toHealthyMs === undefined) {
    if (c.exitCode !== null || c.signalCode !== null) throw new Error(`${entry} exited (${c.exitCode ?? c.signalCode}) at start; see ${logPath}`);
    if (performance.now() > deadline) throw new Error(`${entry} was not ready within 30 s; see ${logPath}`);
    const [h, r] = await Promise.all([toHealthyMs === undefined ? probe(port, '/healthz') : 200, toReadyMs === undefined ? probe(port, '/readyz') : 200]);
    const now = performance.now() - t0;
    if (h === 200 && toHealthyMs === undefined) toHealthyMs = now;
    if (r === 200 && toReadyMs === undefined) toReadyMs = now;
    if (toReadyMs === undefined) await sleep(5);
  }
  return { pid: c.pid!, toHealthyMs, toReadyMs };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const r1 = (x: number): number => Math.round(x * 10) / 10;

interface VariantResult {
  variant: string;
  command: string;
  startToReadyMs: number;
  startToHealthyMs: number;
  startsToReadyMs: number[];
  startsToHealthyMs: number[];
  idleMilliCpu: number;
  cpuTicks: number;
  rssMiB: number;
  peakRssMiB: number;
  residentMiB: Record<string, number>;
  timerRunsInWindow: number;
  windowSeconds: number;
}

async function timerRuns(port: number): Promise<number> {
  return new Promise((resolve) => {
    http
      .get({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => {
          let n = 0;
          for (const l of body.split('\n')) if (l.startsWith('sentinel_switch_reconcile_runs_total{') && l.includes('reason="timer"')) n += Number(l.slice(l.lastIndexOf(' ') + 1));
          resolve(n);
        });
      })
      .on('error', () => resolve(NaN));
  });
}

async function measure(variant: string, configPath: string, port: number, env: Record<string, string>): Promise<VariantResult> {
  const command = variant === 'src' ? 'node src/server.ts' : 'node dist/server.js';
  const logPath = join(dir, `sentinel-switch-${variant}.log`);
  const results: StartResult[] = [];
  for (let i = 1; i <= starts; i++) {
    const r = await startService(variant, configPath, port, env, logPath);
    results.push(r);
    say(`  ${command}: start ${i}/${starts}: /healthz 200 after ${r1(r.toHealthyMs)} ms, /readyz 200 after ${r1(r.toReadyMs)} ms (pid ${r.pid})`);
    if (i < starts) await stopChild();
  }
  const pid = results.at(-1)!.pid;
  await sleep(SETTLE_MS);
  const runsBefore = await timerRuns(port);
  await sleep(500); // the scrape's own work is over before the window opens
  const t1 = performance.now();
  const c1 = cpuTicks(pid);
  await sleep(windowSeconds * 1000);
  const c2 = cpuTicks(pid);
  const t2 = performance.now();
  const mem = memoryKiB(pid);
  const resident = residentBreakdownMiB(pid);
  const runsAfter = await timerRuns(port);
  await stopChild();
  const seconds = (t2 - t1) / 1000;
  return {
    variant,
    command,
    startToReadyMs: r1(median(results.map((r) => r.toReadyMs))),
    startToHealthyMs: r1(median(results.map((r) => r.toHealthyMs))),
    startsToReadyMs: results.map((r) => r1(r.toReadyMs)),
    startsToHealthyMs: results.map((r) => r1(r.toHealthyMs)),
    idleMilliCpu: Math.round(((c2 - c1) / clkTck / seconds) * 1000 * 100) / 100,
    cpuTicks: c2 - c1,
    rssMiB: r1(mem.rss / 1024),
    peakRssMiB: r1(mem.hwm / 1024),
    residentMiB: resident,
    timerRunsInWindow: runsAfter - runsBefore,
    windowSeconds: Math.round(seconds * 10) / 10,
  };
}

// ------------------------------------------------------------------------------- the sandbox

/** deploy/rbac.yaml for one namespace whose Role names our Services (as its comment says to). */
function rbacFor(namespace: string, services: string[]): string {
  type Doc = { kind?: string; rules?: { resources?: string[]; resourceNames?: string[] }[]; subjects?: { namespace?: string }[] };
  const docs = parseAllDocuments(readFileSync(join(repoRoot, 'deploy/rbac.yaml'), 'utf8')).map((d) => d.toJS() as Doc);
  for (const doc of docs) {
    for (const subject of doc?.subjects ?? []) subject.namespace = namespace;
    for (const rule of doc?.rules ?? []) if (rule.resourceNames) rule.resourceNames = services;
  }
  return docs.map((d) => stringify(d)).join('---\n');
}

const out: VariantResult[] = [];
let failed: string | undefined;
try {
  say(`sentinel-switch footprint: ${MASTER_SETS} master sets, reconcile every 30 s (default), idle window ${windowSeconds} s, ${starts} start(s) per variant, variants ${variants.join(', ')}`);
  say(`  sandbox ${dir}; CLK_TCK ${clkTck}`);
  if (variants.includes('dist') && !values['no-build']) {
    const t = performance.now();
    await promisify(execFile)(process.execPath, [join(repoRoot, 'scripts/build.ts')], { cwd: repoRoot });
    say(`  built dist/server.js (scripts/build.ts: tsc types, esbuild bundle, as npm run build) in ${Math.round(performance.now() - t)} ms`);
  }
  if (variants.includes('dist') && !existsSync(join(repoRoot, 'dist/server.js'))) throw new Error('dist/server.js is missing: run npm run build or drop --no-build');

  const [c, ...boxes] = await Promise.all([
    startCluster({ dir: join(dir, 'k8s'), ownerPid: process.pid }),
    ...Array.from({ length: MASTER_SETS }, (_, i) => startRedisSandbox({ dir: join(dir, `redis-${i}`), masterSet: `set${i}`, replicas: 1, sentinels: 3 })),
  ]);
  cluster = c as Cluster;
  sandboxes.push(...(boxes as RedisSandbox[]));
  const admin = cluster.kubeconfigPath;
  const namespace = await createNamespace(admin, 'footprint');
  const services = sandboxes.map((_, i) => `redis-master-${i}`);
  for (const [i, box] of sandboxes.entries()) {
    for (const node of box.nodes) {
      await createPod(admin, namespace, { name: `s${i}-${node.name}`, hostname: `s${i}-${node.name}`, subdomain: HEADLESS, podIP: node.host, labels: { app: 'redis' } });
    }
    const master = await box.masterByMajority();
    const node = box.nodes.find((n) => n.host === master.host)!;
    await createExternalNameService(admin, namespace, services[i]!, `s${i}-${node.name}.${HEADLESS}.${namespace}.svc.cluster.local`);
  }
  await kubectl(admin, ['apply', '-n', namespace, '-f', '-'], rbacFor(namespace, services));
  const kubeconfig = await serviceAccountKubeconfig(cluster, namespace, 'sentinel-switch');

  const port = await freePort();
  const tokenPath = join(dir, 'token');
  writeFileSync(tokenPath, `${randomBytes(24).toString('hex')}\n`, { mode: 0o600 });
  const env: Record<string, string> = {};
  const config = {
    listen: { host: '127.0.0.1', port },
    token: { file: tokenPath },
    kubernetes: { kubeconfig, clusterDomain: 'cluster.local' },
    masterSets: sandboxes.map((box, i) => {
      env[`REDIS_PASSWORD_${i}`] = box.password;
      return {
        name: box.masterSet,
        sentinels: box.sentinels.map((s) => `${s.host}:${s.port}`),
        redisAuth: { password: { env: `REDIS_PASSWORD_${i}` } },
        target: { namespace, name: services[i] },
      };
    }),
  };
  const configPath = join(dir, 'sentinel-switch.yaml');
  writeFileSync(configPath, stringify(config));
  say(`  ${MASTER_SETS} Redis sandboxes (1 master + 1 replica + 3 sentinels each), Services ${namespace}/{${services.join(',')}}, config ${configPath}`);

  for (const variant of variants) {
    say(`\n${variant === 'src' ? 'node src/server.ts (type stripping; the harness)' : 'node dist/server.js (compiled; the image)'}:`);
    const r = await measure(variant, configPath, port, env);
    out.push(r);
    say(`  idle over ${r.windowSeconds} s: ${r.cpuTicks} ticks -> ${r.idleMilliCpu} mCPU; ${r.timerRunsInWindow} timer reconcile runs in the window`);
    say(`  resident at the end (MiB): ${Object.entries(r.residentMiB).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  }
} catch (err) {
  failed = (err as Error).stack ?? String(err);
  say(`footprint: FAILED: ${failed}`);
} finally {
  await stopAll();
}

if (out.length) {
  const mark = (v: number, target: number): string => (v <= target ? 'ok' : 'OVER');
  say('\nfigure                         target      ' + out.map((r) => r.command.padEnd(22)).join(''));
  const row = (name: string, target: string, cells: string[]): void => say(`${name.padEnd(31)}${target.padEnd(12)}${cells.map((c) => c.padEnd(22)).join('')}`);
  row('start to ready (/readyz 200)', `<= ${TARGETS.startToReadyMs} ms`, out.map((r) => `${r.startToReadyMs} ms ${mark(r.startToReadyMs, TARGETS.startToReadyMs)}`));
  row('start to healthy (/healthz)', '', out.map((r) => `${r.startToHealthyMs} ms`));
  row(`idle CPU (${windowSeconds} s window)`, `<= ${TARGETS.idleMilliCpu} mCPU`, out.map((r) => `${r.idleMilliCpu} mCPU ${mark(r.idleMilliCpu, TARGETS.idleMilliCpu)}`));
  row('RSS at end of window', `<= ${TARGETS.rssMiB} MiB`, out.map((r) => `${r.rssMiB} MiB ${mark(r.rssMiB, TARGETS.rssMiB)}`));
  row('peak RSS (VmHWM)', '', out.map((r) => `${r.peakRssMiB} MiB`));
  say(`(start figures: median of ${starts}; each: ${out.map((r) => `${r.variant} ${r.startsToReadyMs.join('/')} ms`).join(', ')})`);
}
if (values.json) {
  const main = out.find((r) => r.variant === 'dist') ?? out[0];
  say(
    JSON.stringify(
      main
        ? {
            startToReadyMs: main.startToReadyMs,
            idleMilliCpu: main.idleMilliCpu,
            rssMiB: main.rssMiB,
            startToHealthyMs: main.startToHealthyMs,
            peakRssMiB: main.peakRssMiB,
            variant: main.variant,
            windowSeconds,
            masterSets: MASTER_SETS,
            targets: TARGETS,
            variants: Object.fromEntries(out.map((r) => [r.variant, r])),
          }
        : { error: failed ?? 'nothing measured' },
    ),
  );
}
process.exit(failed ? 1 : 0);
