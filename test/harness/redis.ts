// A real Redis + Sentinel deployment, for the tests, `npm run demo`, `bench` and `chaos`:
// 1 master + N replicas (redis-server) and M sentinels (redis-sentinel), all started from this
// process, all stopped by PID.
//
// Why it looks like Kubernetes rather than like a typical local setup:
// - Every process gets its OWN IP and all Redis nodes share ONE port, as pods behind
//   `redis-master:6379` do. An address therefore names a node by its IP alone, and the service
//   under test cannot get away with "same host, different port" shortcuts. Inside the sandbox's
//   network namespace (scripts/lib/netns.sh) the IPs are pod-like 198.18.X.Y (one /24 per
//   sandbox, X in 1..254: 198.18.0.x belongs to the cluster's API server and DNS), which the API
//   server accepts in EndpointSlices; elsewhere 127.X.Y.Z on loopback.
// - With `announce: 'hostname'` (Bitnami's default) every process announces its pod's DNS name
//   instead (resolve-hostnames + announce-hostnames), which the cluster's DNS must resolve before
//   anything starts: see `beforeStart`.
// - Replicas announce their own IP and bind their outgoing connections to it, and a sentinel
//   connects from its first bind address, so what Sentinel reports (INFO, hello messages, hook
//   arguments) is each process's own IP, never 127.0.0.1.
// - Auth is on (requirepass/masterauth, `sentinel auth-pass`), as in the Bitnami chart.
//
// Every wait is bounded; failures name the process and quote the tail of its log.
// Environment knobs: SENTINEL_SWITCH_KEEP_SANDBOX=1 keeps the temp dir (configs, logs) after
// stop(); SENTINEL_SWITCH_SANDBOX_DEBUG=1 prints why waitStable is still waiting.
// Cleanup: stop() ends everything by PID; if the Node process exits without it, an 'exit'
// handler SIGKILLs the children. A Node process killed by a signal cannot do that: entry points
// (demo, chaos) should turn SIGINT/SIGTERM into stop().
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { inSandboxNamespace } from './netns.ts';

export interface Address { host: string; port: number; }

export interface RedisNode {
  /** 'redis-node-0' ... (the Bitnami StatefulSet's pod names). */
  name: string;
  /** Its own IP: the only thing that tells the nodes apart (they share one port). */
  host: string;
  port: number;
  /** What Sentinel calls it: its IP, or its pod's DNS name with `announce: 'hostname'`. */
  announced: string;
  /** stdout+stderr of the process (Redis logs there): assert on it, quote it in errors. */
  logFile: string;
  /** The running process's PID (also while SIGSTOPped); undefined once it has exited. */
  pid(): number | undefined;
}

export interface SentinelNode {
  name: string; // 'sentinel-0' ...
  host: string;
  port: number;
  /** Its IP, or its pod's DNS name with `announce: 'hostname'`. */
  announced: string;
  /** The sentinel log: +switch-master, -script-error, +convert-to-slave ... */
  logFile: string;
  pid(): number | undefined;
}

export type Role = 'master' | 'slave' | 'down';
export type Signal = 'SIGSTOP' | 'SIGCONT' | 'SIGKILL' | 'SIGTERM';

export interface SwitchEvent {
  /** Epoch milliseconds (float) when this process received the message. */
  atMs: number;
  /** Name of the sentinel that published it. */
  sentinel: string;
  masterSet: string;
  from: Address;
  to: Address;
}

export interface SwitchWatcher {
  /** Every event received so far, in arrival order. */
  readonly events: readonly SwitchEvent[];
  /** Resolves once the subscription is active on every running sentinel. */
  ready(): Promise<void>;
  /** The next event not yet returned by waitForNext (queue semantics; earlier ones included). */
  waitForNext(timeoutMs: number): Promise<SwitchEvent>;
  close(): Promise<void>;
}

export interface RedisSandbox {
  dir: string;
  masterSet: string;
  password: string;
  /** requirepass of the sentinels, when `sentinelAuth` was asked for. */
  sentinelPassword: string | undefined;
  nodes: RedisNode[];
  sentinels: SentinelNode[];
  /**
   * Asks every sentinel `get-master-addr-by-name`; the answer of a strict majority of ALL
   * sentinels, else throws. Sentinel's words: an IP, or a pod DNS name with announce 'hostname'.
   */
  masterByMajority(): Promise<Address>;
  roleOf(node: RedisNode): Promise<Role>;
  /** `SENTINEL FAILOVER <masterSet>` on the first sentinel that answers. Resolves when it is accepted, not done. */
  failover(): Promise<void>;
  /** SIGKILL of the node the sentinel majority calls master; resolves once it has exited. */
  killMaster(): Promise<RedisNode>;
  /** SIGSTOP/SIGCONT pause/resume; SIGTERM/SIGKILL resolve once the process has exited. Default SIGTERM. */
  stopNode(node: RedisNode, signal?: Signal): Promise<void>;
  /**
   * Restarts a stopped node. By default it asks the sentinel majority for the master and starts
   * as its replica (or as the master, if that is this node), as the Bitnami start script does.
   * `{ asConfigured: true }` starts it from its config file alone, as Redis left it: a killed
   * master comes back as a master with an empty dataset until Sentinel converts it (~10 s).
   */
  startNode(node: RedisNode, opts?: { asConfigured?: boolean }): Promise<void>;
  stopSentinel(sentinel: SentinelNode, signal?: Signal): Promise<void>;
  /** Restarts with its (Sentinel-rewritten) config, so it keeps its view of the epoch and peers. */
  startSentinel(sentinel: SentinelNode): Promise<void>;
  watchSwitches(): SwitchWatcher;
  /**
   * Every running sentinel agrees on the master and sees it as a healthy master with all the other
   * sentinels and every running replica; the master reports ROLE master; every running replica
   * reports a connected link to it. SIGSTOPped processes are left out.
   * Note: after a manual failover this takes ~9 s after the switch (~11 s after the command):
   * the time Sentinel needs to convert the old master into a replica (see the facts doc).
   */
  waitStable(timeoutMs: number): Promise<void>;
  /**
   * Stops every process it started (SIGTERM, then SIGKILL after 5 s), by PID, and what those
   * started (a sentinel's running hook scripts), as a stopping container would. Idempotent.
   */
  stop(): Promise<void>;
}

export interface SandboxOptions {
  /** Where configs, data and logs go. Default: a fresh temp dir, removed by stop() (unless keepDir). */
  dir?: string;
  keepDir?: boolean;
  masterSet?: string;
  replicas?: number;
  sentinels?: number;
  quorum?: number;
  downAfterMs?: number;
  failoverTimeoutMs?: number;
  password?: string;
  /** Also set requirepass on the sentinels (the Bitnami chart's default auth.sentinel=true). */
  sentinelAuth?: boolean;
  /**
   * `sentinel client-reconfig-script <masterSet> <script>`; `env` becomes the sentinel PROCESS
   * environment (plus a PATH unless given), which the script inherits, as on a sentinel container.
   */
  hook?: { script: string; env: Record<string, string> };
  /**
   * What Sentinel hands out (and passes to the hook): 'ip' (default), or 'hostname' as in the
   * Bitnami chart: `sentinel resolve-hostnames yes`, `sentinel announce-hostnames yes`, every
   * sentinel `announce-ip`s and every replica `replica-announce-ip`s its pod's DNS name
   * (`dnsName`), and the sentinels monitor the master by name. Needs the cluster's DNS, i.e. the
   * sandbox namespace, and `dnsName` + `beforeStart` to make the names resolve.
   */
  announce?: 'ip' | 'hostname';
  /** The pod DNS name of a process ('redis-node-0', 'sentinel-1'...), for announce 'hostname'. */
  dnsName?: (name: string) => string;
  /**
   * Called once the addresses are chosen, before any process starts: the place to create the
   * pods (and, with announce 'hostname', to wait until their names resolve).
   */
  beforeStart?: (plan: SandboxPlan) => Promise<void>;
  /** Bound for the initial startup until stable. Default 30 s. */
  startTimeoutMs?: number;
}

/** The processes a sandbox is about to start, with their addresses. */
export interface SandboxPlan {
  nodes: { name: string; host: string; port: number; announced: string }[];
  sentinels: { name: string; host: string; port: number; announced: string }[];
}

const DEFAULT_PATH = '/usr/local/bin:/usr/bin:/bin';
const COMMAND_TIMEOUT_MS = 1_000;
const TERM_GRACE_MS = 5_000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const nowMs = () => performance.timeOrigin + performance.now();

// ------------------------------------------------------------------------------------------------
// Processes
// ------------------------------------------------------------------------------------------------

/** Every child still alive, so that a crashing test run does not leave Redis behind. */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;
export function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers must be synchronous: SIGKILL is the only thing that fits (and it also ends
  // SIGSTOPped processes).
  process.on('exit', () => {
    for (const child of live) {
      try { if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL'); } catch { /* already gone */ }
    }
  });
}

export function findBinary(name: string): string {
  for (const dir of (process.env.PATH ?? DEFAULT_PATH).split(':')) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch { /* next */ }
  }
  throw new Error(`redis sandbox: '${name}' not found on PATH (run scripts/setup.sh: it installs redis-server and redis-sentinel)`);
}

export function tail(file: string, lines = 25): string {
  try {
    const text = fs.readFileSync(file, 'utf8').trimEnd().split('\n');
    return text.slice(-lines).map((l) => `    | ${l}`).join('\n');
  } catch {
    return '    | (no log)';
  }
}

interface ProcInfo { pid: number; ppid: number; pgid: number; startTime: string; }

/** Linux /proc/<pid>/stat of every process (the children files are not always available). */
function processTable(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // "pid (comm) state ppid pgrp session tty tpgid flags ... starttime(22)"; comm may hold spaces.
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.push({ pid: Number(entry), ppid: Number(f[1]), pgid: Number(f[2]), startTime: f[19] ?? '' });
    } catch { /* exited while listing */ }
  }
  return out;
}

function descendantsOf(pid: number): ProcInfo[] {
  const table = processTable();
  const found: ProcInfo[] = [];
  const queue = [pid];
  while (queue.length) {
    const parent = queue.shift()!;
    for (const p of table) {
      if (p.ppid === parent) { found.push(p); queue.push(p.pid); }
    }
  }
  return found;
}

/** SIGKILL of processes from an earlier snapshot, each only if it is still the same process. */
function killAll(procs: ProcInfo[]): void {
  if (!procs.length) return;
  const now = new Map(processTable().map((p) => [p.pid, p]));
  for (const p of procs) {
    if (now.get(p.pid)?.startTime !== p.startTime) continue; // gone, or the PID was reused
    try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
    // `timeout` (used by our hook) leads its own process group: take the whole group.
    if (p.pgid === p.pid) {
      try { process.kill(-p.pid, 'SIGKILL'); } catch { /* gone */ }
    }
  }
}

/** One redis-server or redis-sentinel process: start, stop, pause, and its last exit. */
export class Proc {
  child: ChildProcess | undefined;
  paused = false;
  lastExit: string | undefined;
  private exited: Promise<void> = Promise.resolve();

  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly announced: string;
  readonly binary: string;
  readonly confFile: string;
  readonly logFile: string;
  readonly env: Record<string, string>;
  /** requirepass of this process (undefined for a sentinel without auth). */
  readonly password: string | undefined;

  constructor(o: {
    name: string; host: string; port: number; announced: string; binary: string; confFile: string; logFile: string;
    env: Record<string, string>; password: string | undefined;
  }) {
    this.name = o.name;
    this.host = o.host;
    this.port = o.port;
    this.announced = o.announced;
    this.binary = o.binary;
    this.confFile = o.confFile;
    this.logFile = o.logFile;
    this.env = o.env;
    this.password = o.password;
  }

  pid(): number | undefined {
    return this.child?.pid;
  }

  start(extraArgs: string[] = []): void {
    if (this.child) throw new Error(`${this.name} is already running (pid ${this.child.pid})`);
    // Append, with a marker: one log per process across restarts reads like a pod's log.
    fs.appendFileSync(this.logFile, `=== harness: starting ${this.name} ${extraArgs.join(' ')} at ${new Date().toISOString()}\n`);
    const fd = fs.openSync(this.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(this.binary, [this.confFile, ...extraArgs], {
        cwd: path.dirname(this.confFile),
        env: this.env,
        stdio: ['ignore', fd, fd],
      });
    } finally {
      fs.closeSync(fd);
    }
    this.child = child;
    this.paused = false;
    this.lastExit = undefined;
    live.add(child);
    this.exited = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        live.delete(child);
        if (this.child === child) this.child = undefined;
        this.lastExit = signal ? `killed by ${signal}` : `exited with code ${code}`;
        resolve();
      });
      // spawn errors (ENOENT...) come as 'error' and may come without 'exit'.
      child.once('error', (err) => {
        live.delete(child);
        if (this.child === child) this.child = undefined;
        this.lastExit = `failed to start: ${err.message}`;
        resolve();
      });
    });
  }

  signal(sig: Signal): void {
    const pid = this.child?.pid;
    if (pid === undefined) throw new Error(`${this.name} is not running (${this.lastExit ?? 'never started'})`);
    process.kill(pid, sig);
    if (sig === 'SIGSTOP') this.paused = true;
    if (sig === 'SIGCONT') this.paused = false;
  }

  /** SIGTERM (or SIGKILL) and wait for the exit; escalates to SIGKILL after a grace period. */
  async stop(sig: 'SIGTERM' | 'SIGKILL' = 'SIGTERM', graceMs = TERM_GRACE_MS): Promise<void> {
    const child = this.child;
    if (!child || child.pid === undefined) return;
    const exited = this.exited;
    // What the process started (a sentinel's running hook scripts, a Redis fork): when a
    // container stops, they die with it. Left alive here, a hook would keep POSTing to a port a
    // later test may be listening on.
    const offspring = descendantsOf(child.pid);
    try {
      process.kill(child.pid, sig);
      // A stopped process only acts on SIGTERM once resumed.
      if (this.paused && sig === 'SIGTERM') process.kill(child.pid, 'SIGCONT');
    } catch { /* exited meanwhile */ }
    try {
      if (await Promise.race([exited.then(() => true), sleep(graceMs).then(() => false)])) return;
      try { process.kill(child.pid, 'SIGKILL'); } catch { /* exited meanwhile */ }
      if (await Promise.race([exited.then(() => true), sleep(graceMs).then(() => false)])) return;
      throw new Error(`${this.name} (pid ${child.pid}) did not exit after SIGKILL\n${tail(this.logFile)}`);
    } finally {
      killAll(offspring);
    }
  }

  describe(): string {
    const state = this.child ? `pid ${this.child.pid}${this.paused ? ', SIGSTOPped' : ''}` : (this.lastExit ?? 'not running');
    return `${this.name} ${this.host}:${this.port} (${state}), log ${this.logFile}:\n${tail(this.logFile)}`;
  }
}

// ------------------------------------------------------------------------------------------------
// Redis connections: short-lived, short timeouts, never retried by ioredis itself
// ------------------------------------------------------------------------------------------------

function client(host: string, port: number, password: string | undefined): Redis {
  const c = new Redis({
    host, port, password,
    lazyConnect: true,
    connectTimeout: COMMAND_TIMEOUT_MS,
    commandTimeout: COMMAND_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null, // no reconnect loop: the caller decides what to retry
    enableReadyCheck: false,
    enableOfflineQueue: true,
  });
  c.on('error', () => { /* surfaced through the command's rejection */ });
  return c;
}

/** Runs one command on a fresh connection, closed afterwards whatever happens. */
export async function command(host: string, port: number, password: string | undefined, args: [string, ...(string | number)[]]): Promise<unknown> {
  const c = client(host, port, password);
  try {
    await c.connect();
    return await c.call(...args);
  } finally {
    c.disconnect();
  }
}

/** ['k1','v1','k2','v2'] -> { k1: 'v1', k2: 'v2' } (the shape of SENTINEL MASTER/REPLICAS). */
export function pairs(reply: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!Array.isArray(reply)) return out;
  for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1]);
  return out;
}

// ------------------------------------------------------------------------------------------------
// Addresses
// ------------------------------------------------------------------------------------------------

export async function canBind(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/**
 * A random /24 block and two ports below the ephemeral range, free on every IP of the block we
 * use. Inside the sandbox namespace 198.18.X.0/24 with X in 1..254 (198.18.0.x is the cluster's:
 * API server side, CoreDNS); elsewhere 127.X.Y.0/24 (X >= 1, so never 127.0.0.x or Debian's
 * 127.0.1.1).
 */
async function pickAddresses(nodeCount: number, sentinelCount: number): Promise<{ nodeIps: string[]; sentinelIps: string[]; redisPort: number; sentinelPort: number }> {
  const netns = inSandboxNamespace();
  for (let tries = 0; tries < 50; tries++) {
    const block = netns ? `198.18.${randomInt(1, 255)}` : `127.${randomInt(1, 255)}.${randomInt(0, 255)}`;
    const nodeIps = Array.from({ length: nodeCount }, (_, i) => `${block}.${i + 1}`);
    const sentinelIps = Array.from({ length: sentinelCount }, (_, i) => `${block}.${i + 11}`);
    const redisPort = randomInt(10_000, 30_000);
    const sentinelPort = redisPort + 1;
    const checks = await Promise.all([
      ...nodeIps.map((ip) => canBind(ip, redisPort)),
      ...sentinelIps.map((ip) => canBind(ip, sentinelPort)),
    ]);
    if (checks.every(Boolean)) return { nodeIps, sentinelIps, redisPort, sentinelPort };
  }
  throw new Error(netns
    ? 'redis sandbox: found no free 198.18.X.0/24 block and port in 50 tries (is 198.18.0.0/16 local on lo? SENTINEL_SWITCH_NETNS=1 is set, but scripts/lib/netns.sh sets up the namespace)'
    : 'redis sandbox: found no free loopback block and port in 50 tries');
}

// ------------------------------------------------------------------------------------------------
// Configs
// ------------------------------------------------------------------------------------------------

function redisConf(ip: string, announced: string, port: number, dir: string, password: string, replicaOf: string | undefined): string {
  return [
    // Redis's CONFIG REWRITE (sent by Sentinel at each failover) keeps this line current.
    ...(replicaOf ? [`replicaof ${replicaOf}`] : []),
    `bind ${ip}`,
    `port ${port}`,
    'protected-mode no',
    'daemonize no',
    'logfile ""', // stdout, which the harness sends to the node's log file (config errors included)
    `dir ${dir}`,
    // No persistence: a restarted node resyncs from the master, like a pod with an emptyDir.
    'save ""',
    'appendonly no',
    `requirepass ${password}`,
    `masterauth ${password}`,
    // The replica's own IP (or pod DNS name) in the master's INFO, hence in Sentinel; not the
    // address its connection happens to come from.
    `replica-announce-ip ${announced}`,
    `bind-source-addr ${ip}`,
    // Full syncs start at once instead of waiting 5 s for more replicas to join.
    'repl-diskless-sync yes',
    'repl-diskless-sync-delay 0',
    // A master waits up to this long on SIGTERM for lagging replicas (7.0 default 10 s).
    'shutdown-timeout 1',
    '',
  ].join('\n');
}

function sentinelConf(o: {
  ip: string; announced: string; hostnames: boolean; port: number; dir: string; masterSet: string; masterHost: string; redisPort: number;
  quorum: number; downAfterMs: number; failoverTimeoutMs: number; password: string;
  sentinelPassword: string | undefined; hookScript: string | undefined;
}): string {
  return [
    `bind ${o.ip}`,
    `port ${o.port}`,
    'protected-mode no',
    'daemonize no',
    'logfile ""',
    `dir ${o.dir}`,
    ...(o.sentinelPassword ? [`requirepass ${o.sentinelPassword}`] : []),
    // Its own IP as the source of its connections too (pods do not share 127.0.0.1): what the
    // Redis nodes show in CLIENT LIST, and what hello messages would carry without announce-ip.
    `bind-source-addr ${o.ip}`,
    `sentinel announce-ip ${o.announced}`,
    // Bitnami's default is yes/yes: names in hello messages, replies and hook arguments.
    `sentinel resolve-hostnames ${o.hostnames ? 'yes' : 'no'}`,
    `sentinel announce-hostnames ${o.hostnames ? 'yes' : 'no'}`,
    `sentinel monitor ${o.masterSet} ${o.masterHost} ${o.redisPort} ${o.quorum}`,
    `sentinel auth-pass ${o.masterSet} ${o.password}`,
    `sentinel down-after-milliseconds ${o.masterSet} ${o.downAfterMs}`,
    `sentinel failover-timeout ${o.masterSet} ${o.failoverTimeoutMs}`,
    `sentinel parallel-syncs ${o.masterSet} 1`,
    ...(o.hookScript ? [`sentinel client-reconfig-script ${o.masterSet} ${o.hookScript}`] : []),
    '',
  ].join('\n');
}

// ------------------------------------------------------------------------------------------------
// The sandbox
// ------------------------------------------------------------------------------------------------

export async function startRedisSandbox(opts: SandboxOptions = {}): Promise<RedisSandbox> {
  const startedAt = nowMs();
  const masterSet = opts.masterSet ?? 'mymaster';
  const replicaCount = opts.replicas ?? 2;
  const sentinelCount = opts.sentinels ?? 3;
  const quorum = opts.quorum ?? 2;
  const downAfterMs = opts.downAfterMs ?? 1_000;
  const failoverTimeoutMs = opts.failoverTimeoutMs ?? 5_000;
  const password = opts.password ?? randomBytes(12).toString('hex');
  const sentinelPassword = opts.sentinelAuth ? password : undefined;
  const startTimeoutMs = opts.startTimeoutMs ?? 30_000;
  const announce = opts.announce ?? 'ip';
  if (announce !== 'ip' && announce !== 'hostname') throw new Error(`redis sandbox: announce '${String(opts.announce)}' is not supported`);
  if (announce === 'hostname' && !opts.dnsName) throw new Error("redis sandbox: announce 'hostname' needs dnsName (and the cluster's DNS to resolve it)");
  if (replicaCount < 0 || replicaCount > 8) throw new Error('redis sandbox: replicas must be 0..8');
  if (sentinelCount < 1 || sentinelCount > 9) throw new Error('redis sandbox: sentinels must be 1..9');
  if (!/^[A-Za-z0-9._-]+$/.test(masterSet)) throw new Error(`redis sandbox: masterSet '${masterSet}' must be [A-Za-z0-9._-]+`);
  if (!/^[A-Za-z0-9._-]+$/.test(password)) throw new Error('redis sandbox: password must be [A-Za-z0-9._-]+ (it goes into config files)');

  const redisServer = findBinary('redis-server');
  const redisSentinel = findBinary('redis-sentinel');
  let hookScript: string | undefined;
  if (opts.hook) {
    hookScript = path.resolve(opts.hook.script);
    // Sentinel refuses to start when the script is missing or not executable.
    const st = fs.statSync(hookScript, { throwIfNoEntry: false });
    if (!st?.isFile()) throw new Error(`redis sandbox: hook script ${hookScript} does not exist`);
    if ((st.mode & 0o111) === 0) fs.chmodSync(hookScript, st.mode | 0o755);
    if (/\s/.test(hookScript)) throw new Error(`redis sandbox: hook script path ${hookScript} must not contain whitespace (sentinel.conf)`);
  }

  const ownDir = opts.dir === undefined;
  const dir = opts.dir ? path.resolve(opts.dir) : await fsp.mkdtemp(path.join(os.tmpdir(), 'sentinel-switch-redis-'));
  await fsp.mkdir(dir, { recursive: true });
  installExitHook();

  const { nodeIps, sentinelIps, redisPort, sentinelPort } = await pickAddresses(replicaCount + 1, sentinelCount)
    .catch(async (err: unknown) => {
      if (ownDir) await fsp.rm(dir, { recursive: true, force: true });
      throw err;
    });

  const announcedAs = (name: string, ip: string) => (announce === 'hostname' ? opts.dnsName!(name) : ip);
  const firstMaster = announcedAs('redis-node-0', nodeIps[0]!);
  const nodeProcs = nodeIps.map((ip, i) => {
    const name = `redis-node-${i}`;
    const nodeDir = path.join(dir, name);
    fs.mkdirSync(nodeDir, { recursive: true });
    const conf = path.join(nodeDir, 'redis.conf');
    const announced = announcedAs(name, ip);
    // Node 0 is the first master; the others start as its replicas (by name, as in Bitnami, when
    // names are announced).
    fs.writeFileSync(conf, redisConf(ip, announced, redisPort, nodeDir, password, i === 0 ? undefined : `${firstMaster} ${redisPort}`));
    return new Proc({
      name, host: ip, port: redisPort, announced, binary: redisServer, confFile: conf,
      logFile: path.join(dir, `${name}.log`), env: { PATH: DEFAULT_PATH }, password,
    });
  });
  const sentinelEnv: Record<string, string> = { PATH: DEFAULT_PATH, ...(opts.hook?.env ?? {}) };
  const sentinelProcs = sentinelIps.map((ip, i) => {
    const name = `sentinel-${i}`;
    const sDir = path.join(dir, name);
    fs.mkdirSync(sDir, { recursive: true });
    // Sentinel rewrites this file with what it learns (epoch, peers, replicas): it must be writable.
    const conf = path.join(sDir, 'sentinel.conf');
    const announced = announcedAs(name, ip);
    fs.writeFileSync(conf, sentinelConf({
      ip, announced, hostnames: announce === 'hostname', port: sentinelPort, dir: sDir, masterSet, masterHost: firstMaster,
      redisPort, quorum, downAfterMs, failoverTimeoutMs, password, sentinelPassword, hookScript,
    }));
    return new Proc({
      name, host: ip, port: sentinelPort, announced, binary: redisSentinel, confFile: conf,
      logFile: path.join(dir, `${name}.log`), env: sentinelEnv, password: sentinelPassword,
    });
  });
  const allProcs = [...nodeProcs, ...sentinelProcs];

  const toNode = (p: Proc): RedisNode => ({ name: p.name, host: p.host, port: p.port, announced: p.announced, logFile: p.logFile, pid: () => p.pid() });
  const nodes = nodeProcs.map(toNode);
  const sentinels: SentinelNode[] = sentinelProcs.map(toNode);
  const procOf = (n: RedisNode | SentinelNode): Proc => {
    const p = allProcs.find((q) => q.name === n.name && q.host === n.host);
    if (!p) throw new Error(`redis sandbox: ${n.name} is not part of this sandbox`);
    return p;
  };
  const running = (procs: Proc[]) => procs.filter((p) => p.child && !p.paused);

  /** PING until it answers; fails early (with the log) if the process exits. */
  async function waitAnswering(p: Proc, timeoutMs: number): Promise<void> {
    const deadline = nowMs() + timeoutMs;
    let lastError = '';
    while (nowMs() < deadline) {
      if (!p.child) throw new Error(`redis sandbox: ${p.name} ${p.lastExit ?? 'is not running'}\n${p.describe()}`);
      try {
        if ((await command(p.host, p.port, p.password, ['PING'])) === 'PONG') return;
      } catch (err) {
        lastError = (err as Error).message;
      }
      await sleep(50);
    }
    throw new Error(`redis sandbox: ${p.name} did not answer PING within ${timeoutMs} ms (${lastError})\n${p.describe()}`);
  }

  async function masterFromSentinel(p: Proc): Promise<Address | undefined> {
    const reply = await command(p.host, p.port, p.password, ['SENTINEL', 'get-master-addr-by-name', masterSet]);
    if (!Array.isArray(reply) || reply.length !== 2) return undefined;
    return { host: String(reply[0]), port: Number(reply[1]) };
  }

  async function masterByMajority(): Promise<Address> {
    const answers = await Promise.all(sentinelProcs.map(async (p) => {
      // A stopped or SIGSTOPped sentinel has no vote; asking would only cost a timeout.
      if (!p.child || p.paused) return p.child ? 'paused' : 'not running';
      try {
        const a = await masterFromSentinel(p);
        return a ? `${a.host}:${a.port}` : 'unknown';
      } catch (err) {
        return `error (${(err as Error).message})`;
      }
    }));
    const votes = new Map<string, number>();
    for (const a of answers) votes.set(a, (votes.get(a) ?? 0) + 1);
    for (const [addr, n] of votes) {
      if (n > sentinelProcs.length / 2 && /^[A-Za-z0-9.-]+:\d+$/.test(addr)) {
        const i = addr.lastIndexOf(':');
        return { host: addr.slice(0, i), port: Number(addr.slice(i + 1)) };
      }
    }
    throw new Error(`redis sandbox: no sentinel majority on the master of ${masterSet}: ${sentinelProcs.map((p, i) => `${p.name}=${answers[i]}`).join(', ')}`);
  }

  async function role(p: Proc): Promise<unknown[] | undefined> {
    if (!p.child || p.paused) return undefined;
    try {
      const r = await command(p.host, p.port, p.password, ['ROLE']);
      return Array.isArray(r) ? r : undefined;
    } catch {
      return undefined;
    }
  }

  async function roleOf(node: RedisNode): Promise<Role> {
    const r = await role(procOf(node));
    return r?.[0] === 'master' ? 'master' : r?.[0] === 'slave' ? 'slave' : 'down';
  }

  /** undefined when stable, else what is still missing (for the timeout message). */
  async function unstableBecause(): Promise<string | undefined> {
    const liveSentinels = running(sentinelProcs);
    if (liveSentinels.length === 0) return 'no sentinel is running';
    const views = await Promise.all(liveSentinels.map(async (p) => {
      try {
        const master = pairs(await command(p.host, p.port, p.password, ['SENTINEL', 'MASTER', masterSet]));
        const replicas = await command(p.host, p.port, p.password, ['SENTINEL', 'REPLICAS', masterSet]);
        return { p, master, replicas: Array.isArray(replicas) ? replicas.map(pairs) : [] };
      } catch (err) {
        return { p, error: (err as Error).message };
      }
    }));
    let agreed: string | undefined;
    for (const v of views) {
      if ('error' in v) return `${v.p.name} does not answer: ${v.error}`;
      const addr = `${v.master.ip}:${v.master.port}`;
      agreed ??= addr;
      if (addr !== agreed) return `sentinels disagree on the master: ${views.map((w) => `${w.p.name}=${'master' in w ? `${w.master?.ip}:${w.master?.port}` : '?'}`).join(', ')}`;
      // 'master' alone: no s_down/o_down/failover_in_progress/promoted flags left over.
      if (v.master.flags !== 'master') return `${v.p.name} flags the master ${addr} as '${v.master.flags}'`;
      const others = Number(v.master['num-other-sentinels']);
      if (others !== sentinelProcs.length - 1) return `${v.p.name} knows ${others} other sentinels, not ${sentinelProcs.length - 1}`;
    }
    const masterProc = nodeProcs.find((p) => `${p.announced}:${p.port}` === agreed);
    if (!masterProc) return `the sentinels' master ${agreed} is not a node of this sandbox`;
    const masterRole = await role(masterProc);
    if (masterRole?.[0] !== 'master') return `${masterProc.name} (${agreed}) reports ROLE ${String(masterRole?.[0] ?? 'down')}`;
    for (const p of running(nodeProcs)) {
      if (p === masterProc) continue;
      const r = await role(p);
      if (r?.[0] !== 'slave' || `${String(r[1])}:${String(r[2])}` !== agreed || r[3] !== 'connected') {
        return `${p.name} reports ROLE ${r ? JSON.stringify(r.slice(0, 4)) : 'down'}, not a replica connected to ${agreed}`;
      }
      for (const v of views) {
        if (!('replicas' in v) || !v.replicas) continue;
        const seen = v.replicas.find((rep) => rep.ip === p.announced && Number(rep.port) === p.port);
        if (!seen) return `${v.p.name} does not know replica ${p.name} yet`;
        // Only the flags: Sentinel's copy of master-link-status comes from INFO, refreshed every
        // 10 s, and lags the node's own ROLE (checked above) by that much for nothing.
        if (seen.flags !== 'slave') return `${v.p.name} flags replica ${p.name} as '${seen.flags}'`;
      }
    }
    return undefined;
  }

  async function waitReplicasAttached(timeoutMs: number): Promise<void> {
    const deadline = nowMs() + timeoutMs;
    let why = '';
    while (nowMs() < deadline) {
      const roles = await Promise.all(nodeProcs.map((p) => role(p)));
      const attached = Array.isArray(roles[0]?.[2]) ? (roles[0][2] as unknown[]).length : 0;
      const connected = roles.slice(1).filter((r) => r?.[0] === 'slave' && r[3] === 'connected').length;
      if (attached === replicaCount && connected === replicaCount) return;
      why = `${nodeProcs[0]!.name} lists ${attached} replicas, ${connected} of ${replicaCount} report a connected link`;
      await sleep(50);
    }
    throw new Error(`redis sandbox: replication not up after ${timeoutMs} ms: ${why}\n${nodeProcs.map((p) => p.describe()).join('\n')}`);
  }

  async function waitStable(timeoutMs: number): Promise<void> {
    const deadline = nowMs() + timeoutMs;
    let why: string | undefined = 'not checked yet';
    while (nowMs() < deadline) {
      const before: string | undefined = why;
      why = await unstableBecause();
      if (process.env.SENTINEL_SWITCH_SANDBOX_DEBUG && why !== before) console.error(`redis sandbox: ${new Date().toISOString()} waitStable: ${why ?? 'stable'}`);
      if (why === undefined) return;
      for (const p of allProcs) {
        if (!p.child && p.lastExit && !stopped.has(p)) throw new Error(`redis sandbox: ${p.name} died: ${p.lastExit}\n${p.describe()}`);
      }
      await sleep(100);
    }
    throw new Error(`redis sandbox: not stable after ${timeoutMs} ms: ${why}\n${allProcs.map((p) => p.describe()).join('\n')}`);
  }

  // Processes the caller stopped on purpose (a crash of any other one fails waitStable at once).
  const stopped = new Set<Proc>();
  const watchers = new Set<SwitchWatcherImpl>();
  const watchersReady = () => Promise.all([...watchers].map((w) => w.ready()));

  async function failover(): Promise<void> {
    await watchersReady();
    const errors: string[] = [];
    for (const p of running(sentinelProcs)) {
      try {
        const r = await command(p.host, p.port, p.password, ['SENTINEL', 'FAILOVER', masterSet]);
        if (r === 'OK') return;
        errors.push(`${p.name}: ${String(r)}`);
      } catch (err) {
        // -INPROG / -NOGOODSLAVE are answers, not connection trouble: report them as they are.
        const msg = (err as Error).message;
        if (/INPROG|NOGOODSLAVE/.test(msg)) throw new Error(`redis sandbox: SENTINEL FAILOVER ${masterSet} on ${p.name}: ${msg}`);
        errors.push(`${p.name}: ${msg}`);
      }
    }
    throw new Error(`redis sandbox: no sentinel accepted SENTINEL FAILOVER ${masterSet}: ${errors.join('; ') || 'none running'}`);
  }

  async function stopProc(p: Proc, signal: Signal = 'SIGTERM'): Promise<void> {
    if (signal === 'SIGSTOP' || signal === 'SIGCONT') {
      if (signal === 'SIGSTOP') await watchersReady();
      p.signal(signal);
      return;
    }
    if (!p.child) throw new Error(`redis sandbox: ${p.name} is not running (${p.lastExit ?? 'never started'})`);
    await watchersReady();
    stopped.add(p);
    await p.stop(signal);
  }

  async function startNode(node: RedisNode, o: { asConfigured?: boolean } = {}): Promise<void> {
    const p = procOf(node);
    const args: string[] = [];
    if (!o.asConfigured) {
      // The Bitnami start script asks Sentinel who the master is: a replica of it, or the master
      // itself when that is this node (or when no majority answers, as on a first start).
      const master = await masterByMajority().catch(() => undefined);
      if (master && master.host !== p.announced) args.push('--replicaof', master.host, String(master.port));
      else args.push('--replicaof', 'no', 'one');
    }
    stopped.delete(p);
    p.start(args);
    await waitAnswering(p, 10_000);
  }

  async function startSentinel(s: SentinelNode): Promise<void> {
    const p = procOf(s);
    stopped.delete(p);
    p.start();
    await waitAnswering(p, 10_000);
  }

  function watchSwitches(): SwitchWatcher {
    const w = new SwitchWatcherImpl(sentinelProcs, masterSet, () => watchers.delete(w));
    watchers.add(w);
    return w;
  }

  let stopping: Promise<void> | undefined;
  function stop(): Promise<void> {
    stopping ??= (async () => {
      await Promise.all([...watchers].map((w) => w.close()));
      // Sentinels first, so they do not fail over while the nodes go down.
      const results = await Promise.allSettled(sentinelProcs.map((p) => p.stop('SIGTERM')));
      results.push(...await Promise.allSettled(nodeProcs.map((p) => p.stop('SIGTERM'))));
      if (ownDir && !opts.keepDir && !process.env.SENTINEL_SWITCH_KEEP_SANDBOX) {
        await fsp.rm(dir, { recursive: true, force: true });
      }
      const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed.length) throw new Error(failed.map((f) => String(f.reason)).join('\n'));
    })();
    return stopping;
  }

  const sandbox: RedisSandbox = {
    dir, masterSet, password, sentinelPassword, nodes, sentinels,
    masterByMajority, roleOf, failover, waitStable, watchSwitches, stop,
    killMaster: async () => {
      const master = await masterByMajority();
      const node = nodes.find((n) => n.announced === master.host && n.port === master.port);
      if (!node) throw new Error(`redis sandbox: the majority's master ${master.host}:${master.port} is not a node of this sandbox`);
      await stopProc(procOf(node), 'SIGKILL');
      return node;
    },
    stopNode: (n, signal) => stopProc(procOf(n), signal),
    startNode,
    stopSentinel: (s, signal) => stopProc(procOf(s), signal),
    startSentinel,
  };

  try {
    if (opts.beforeStart) {
      const plan = (procs: Proc[]) => procs.map((p) => ({ name: p.name, host: p.host, port: p.port, announced: p.announced }));
      await opts.beforeStart({ nodes: plan(nodeProcs), sentinels: plan(sentinelProcs) });
    }
    nodeProcs.forEach((p) => p.start());
    await Promise.all(nodeProcs.map((p) => waitAnswering(p, 10_000)));
    // Sentinels learn the replicas from the master's INFO: once when they connect, then every
    // 10 s. Starting them only when every replica is attached saves that 10 s at random.
    await waitReplicasAttached(10_000);
    sentinelProcs.forEach((p) => p.start());
    await Promise.all(sentinelProcs.map((p) => waitAnswering(p, 10_000)));
    await waitStable(Math.max(1_000, startTimeoutMs - (nowMs() - startedAt)));
  } catch (err) {
    await stop().catch(() => { /* the original error matters more */ });
    throw err;
  }
  return sandbox;
}

/** Subscribes to +switch-master on every sentinel; survives sentinel restarts (ioredis resubscribes). */
class SwitchWatcherImpl implements SwitchWatcher {
  readonly events: SwitchEvent[] = [];
  private cursor = 0;
  private waiters: Array<() => void> = [];
  private readonly subs: Redis[];
  private readonly subscribed: Promise<void>;
  private closed = false;
  private readonly onClose: () => void;

  constructor(sentinels: Proc[], masterSet: string, onClose: () => void) {
    this.onClose = onClose;
    this.subs = sentinels.map((p) => {
      const sub = new Redis({
        host: p.host, port: p.port, password: p.password,
        connectTimeout: COMMAND_TIMEOUT_MS,
        // Unlike one-shot commands, a watcher must outlive a sentinel restart.
        retryStrategy: () => 200,
        maxRetriesPerRequest: null,
        enableReadyCheck: false,
      });
      sub.on('error', () => { /* reconnects by itself */ });
      sub.on('message', (_channel: string, message: string) => {
        const atMs = nowMs();
        const [name, fromHost, fromPort, toHost, toPort] = message.split(' ');
        if (name !== masterSet) return;
        this.events.push({
          atMs, sentinel: p.name, masterSet: name,
          from: { host: fromHost ?? '', port: Number(fromPort) },
          to: { host: toHost ?? '', port: Number(toPort) },
        });
        for (const wake of this.waiters.splice(0)) wake();
      });
      return sub;
    });
    // Only sentinels running now can confirm; a stopped one subscribes when it comes back.
    const live = sentinels.map((p, i) => ({ p, sub: this.subs[i]! })).filter(({ p }) => p.child && !p.paused);
    this.subscribed = Promise.all(live.map(({ p, sub }) =>
      withTimeout(sub.subscribe('+switch-master'), 5_000, `subscribing to +switch-master on ${p.name}`))).then(() => undefined);
    this.subscribed.catch(() => { /* reported by ready() */ });
  }

  ready(): Promise<void> {
    return this.subscribed;
  }

  async waitForNext(timeoutMs: number): Promise<SwitchEvent> {
    const deadline = nowMs() + timeoutMs;
    for (;;) {
      const next = this.events[this.cursor];
      if (next) {
        this.cursor++;
        return next;
      }
      if (this.closed) throw new Error('switch watcher is closed');
      const left = deadline - nowMs();
      if (left <= 0) {
        throw new Error(`no +switch-master within ${timeoutMs} ms (seen so far: ${this.events.map((e) => `${e.sentinel} ${e.from.host}->${e.to.host}`).join(', ') || 'none'})`);
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const sub of this.subs) sub.disconnect();
    for (const wake of this.waiters.splice(0)) wake();
    this.onClose();
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<never>((_, reject) => { t = setTimeout(() => reject(new Error(`redis sandbox: timed out ${what} after ${ms} ms`)), ms); }),
  ]);
}
