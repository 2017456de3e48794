// Many master sets on ONE set of sentinels, as platform teams run them: N Redis groups (each one
// master + R replicas, every process on its own IP and all on one port, like pods), and M
// redis-sentinel processes that monitor all N groups. For the connection-sharing test and
// `npm run bench:scale`. Like redis.ts: real processes, started here, stopped here by PID
// (SIGTERM, then SIGKILL), every wait bounded, failures quote the process's log.
// Inside the sandbox namespace the addresses are 198.18.X.Y (X random in 1..254, one /24 for the
// sentinels and as many as needed for the nodes); elsewhere 127.X.Y.Z on loopback.
import { randomBytes, randomInt } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { inSandboxNamespace } from './netns.ts';
import { canBind, findBinary, installExitHook, pairs, Proc } from './redis.ts';

export interface Address { host: string; port: number; }

export interface GroupNode {
  /** `g<k>-redis-node-<i>`: unique across groups (a pod name). */
  name: string;
  host: string;
  port: number;
  logFile: string;
  pid(): number | undefined;
}

export interface Group {
  /** The master set name Sentinel knows it by: `set<k>` (or `prefix<k>`). */
  masterSet: string;
  nodes: GroupNode[];
}

export interface SharedSentinel {
  name: string;
  host: string;
  port: number;
  logFile: string;
  pid(): number | undefined;
}

export interface SharedSentinels {
  dir: string;
  /** requirepass of every Redis node (all groups) and of every sentinel. */
  password: string;
  groups: Group[];
  sentinels: SharedSentinel[];
  /** The master a strict majority of the sentinels names for this master set, or throws. */
  masterByMajority(masterSet: string): Promise<Address>;
  /** `SENTINEL FAILOVER <masterSet>` on the first sentinel that accepts it. */
  failover(masterSet: string): Promise<void>;
  /** A command on the harness's own connection to a sentinel (CLIENT LIST, ACL SETUSER ...). */
  sentinelCommand(sentinel: SharedSentinel, args: [string, ...string[]]): Promise<unknown>;
  /** Every sentinel agrees on every master set's master, flags it plain `master`, knows the others and every replica. */
  waitStable(timeoutMs: number, only?: string[]): Promise<void>;
  /** PIDs of every process started (for footprint figures). */
  pids(): number[];
  stop(): Promise<void>;
}

export interface SharedSentinelsOptions {
  dir?: string;
  groups: number;
  replicas?: number;
  sentinels?: number;
  /** Master set names are `${prefix}${k}` (default 'set'). */
  prefix?: string;
  downAfterMs?: number;
  failoverTimeoutMs?: number;
  /** redis-server `hz` (default 10, Redis's own); a large sandbox idles cheaper with 1. */
  hz?: number;
  startTimeoutMs?: number;
}

const DEFAULT_PATH = '/usr/local/bin:/usr/bin:/bin';
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const nowMs = () => performance.timeOrigin + performance.now();

const PER_BLOCK = 250;

/** One block for the sentinels, ceil(nodes / 250) for the nodes, one port each; free on every IP used. */
async function pickAddresses(nodeCount: number, sentinelCount: number): Promise<{ nodeIps: string[]; sentinelIps: string[]; redisPort: number; sentinelPort: number }> {
  const netns = inSandboxNamespace();
  const blocksNeeded = 1 + Math.ceil(nodeCount / PER_BLOCK);
  for (let tries = 0; tries < 50; tries++) {
    const blocks = new Set<string>();
    while (blocks.size < blocksNeeded) blocks.add(netns ? `198.18.${randomInt(1, 255)}` : `127.${randomInt(1, 255)}.${randomInt(0, 255)}`);
    const [sBlock, ...nBlocks] = [...blocks];
    const sentinelIps = Array.from({ length: sentinelCount }, (_, i) => `${sBlock}.${i + 1}`);
    const nodeIps = Array.from({ length: nodeCount }, (_, i) => `${nBlocks[Math.floor(i / PER_BLOCK)]}.${(i % PER_BLOCK) + 1}`);
    const redisPort = randomInt(10_000, 30_000);
    const sentinelPort = redisPort + 1;
    // The first and last address of each kind: a taken block shows there (checking 200 is slow).
    const probes = [nodeIps[0]!, nodeIps.at(-1)!].map((ip) => canBind(ip, redisPort)).concat(sentinelIps.map((ip) => canBind(ip, sentinelPort)));
    if ((await Promise.all(probes)).every(Boolean)) return { nodeIps, sentinelIps, redisPort, sentinelPort };
  }
  throw new Error('shared sentinels: found no free address blocks and port in 50 tries');
}

function conn(host: string, port: number, password: string): Redis {
  const c = new Redis({ host, port, password, lazyConnect: true, connectTimeout: 2_000, commandTimeout: 5_000, maxRetriesPerRequest: 0, retryStrategy: () => null, enableReadyCheck: false });
  c.on('error', () => { /* surfaced through the command */ });
  return c;
}

export async function startSharedSentinels(opts: SharedSentinelsOptions): Promise<SharedSentinels> {
  const startedAt = nowMs();
  const groupCount = opts.groups;
  const replicas = opts.replicas ?? 1;
  const sentinelCount = opts.sentinels ?? 3;
  const prefix = opts.prefix ?? 'set';
  const downAfterMs = opts.downAfterMs ?? 1_000;
  const failoverTimeoutMs = opts.failoverTimeoutMs ?? 5_000;
  const hz = opts.hz ?? 10;
  const startTimeoutMs = opts.startTimeoutMs ?? 120_000;
  if (!Number.isInteger(groupCount) || groupCount < 1 || groupCount > 500) throw new Error('shared sentinels: groups must be 1..500');
  if (replicas < 0 || replicas > 4) throw new Error('shared sentinels: replicas must be 0..4');
  if (sentinelCount < 1 || sentinelCount > 9) throw new Error('shared sentinels: sentinels must be 1..9');
  const password = randomBytes(12).toString('hex');
  const redisServer = findBinary('redis-server');
  const redisSentinel = findBinary('redis-sentinel');
  const ownDir = opts.dir === undefined;
  const dir = opts.dir ? path.resolve(opts.dir) : await fsp.mkdtemp(path.join(os.tmpdir(), 'sentinel-switch-shared-'));
  await fsp.mkdir(dir, { recursive: true });
  installExitHook();

  const perGroup = 1 + replicas;
  const { nodeIps, sentinelIps, redisPort, sentinelPort } = await pickAddresses(groupCount * perGroup, sentinelCount);
  const groupProcs: { masterSet: string; procs: Proc[] }[] = [];
  for (let k = 0; k < groupCount; k++) {
    const masterSet = `${prefix}${k}`;
    const procs: Proc[] = [];
    for (let i = 0; i < perGroup; i++) {
      const ip = nodeIps[k * perGroup + i]!;
      const name = `g${k}-redis-node-${i}`;
      const nodeDir = path.join(dir, name);
      fs.mkdirSync(nodeDir, { recursive: true });
      const conf = path.join(nodeDir, 'redis.conf');
      fs.writeFileSync(conf, [
        ...(i > 0 ? [`replicaof ${nodeIps[k * perGroup]} ${redisPort}`] : []),
        `bind ${ip}`, `port ${redisPort}`, 'protected-mode no', 'daemonize no', 'logfile ""', `dir ${nodeDir}`,
        'save ""', 'appendonly no', `requirepass ${password}`, `masterauth ${password}`,
        `replica-announce-ip ${ip}`, `bind-source-addr ${ip}`, 'repl-diskless-sync yes', 'repl-diskless-sync-delay 0',
        'shutdown-timeout 1', `hz ${hz}`, '',
      ].join('\n'));
      procs.push(new Proc({ name, host: ip, port: redisPort, announced: ip, binary: redisServer, confFile: conf, logFile: path.join(dir, `${name}.log`), env: { PATH: DEFAULT_PATH }, password }));
    }
    groupProcs.push({ masterSet, procs });
  }
  const sentinelProcs = sentinelIps.map((ip, i) => {
    const name = `sentinel-${i}`;
    const sDir = path.join(dir, name);
    fs.mkdirSync(sDir, { recursive: true });
    const conf = path.join(sDir, 'sentinel.conf');
    const lines = [
      `bind ${ip}`, `port ${sentinelPort}`, 'protected-mode no', 'daemonize no', 'logfile ""', `dir ${sDir}`,
      `requirepass ${password}`, `bind-source-addr ${ip}`, `sentinel announce-ip ${ip}`,
    ];
    for (const g of groupProcs) {
      lines.push(
        `sentinel monitor ${g.masterSet} ${g.procs[0]!.host} ${redisPort} ${Math.floor(sentinelCount / 2) + 1}`,
        `sentinel auth-pass ${g.masterSet} ${password}`,
        `sentinel down-after-milliseconds ${g.masterSet} ${downAfterMs}`,
        `sentinel failover-timeout ${g.masterSet} ${failoverTimeoutMs}`,
        `sentinel parallel-syncs ${g.masterSet} 1`,
      );
    }
    fs.writeFileSync(conf, `${lines.join('\n')}\n`);
    return new Proc({ name, host: ip, port: sentinelPort, announced: ip, binary: redisSentinel, confFile: conf, logFile: path.join(dir, `${name}.log`), env: { PATH: DEFAULT_PATH }, password });
  });
  const nodeProcs = groupProcs.flatMap((g) => g.procs);
  const all = [...nodeProcs, ...sentinelProcs];
  const conns = new Map<Proc, Redis>();
  const connOf = (p: Proc): Redis => {
    let c = conns.get(p);
    if (!c || c.status === 'end' || c.status === 'close') {
      c = conn(p.host, p.port, password);
      conns.set(p, c);
    }
    return c;
  };
  const call = async (p: Proc, args: [string, ...string[]]): Promise<unknown> => {
    const c = connOf(p);
    if (c.status === 'wait') await c.connect();
    return c.call(...args);
  };

  async function waitAnswering(procs: Proc[], timeoutMs: number): Promise<void> {
    const deadline = nowMs() + timeoutMs;
    await Promise.all(procs.map(async (p) => {
      let last = '';
      while (nowMs() < deadline) {
        if (!p.child) throw new Error(`shared sentinels: ${p.name} ${p.lastExit ?? 'is not running'}\n${p.describe()}`);
        try {
          if ((await call(p, ['PING'])) === 'PONG') return;
        } catch (err) {
          last = (err as Error).message;
        }
        await sleep(50);
      }
      throw new Error(`shared sentinels: ${p.name} did not answer PING within ${timeoutMs} ms (${last})\n${p.describe()}`);
    }));
  }

  async function waitReplicas(timeoutMs: number): Promise<void> {
    const deadline = nowMs() + timeoutMs;
    let why = '';
    while (nowMs() < deadline) {
      const roles = await Promise.all(nodeProcs.map((p) => call(p, ['ROLE']).catch(() => undefined) as Promise<unknown[] | undefined>));
      const waiting = nodeProcs.filter((p, i) => groupProcs.some((g) => g.procs.indexOf(p) > 0) && !(roles[i]?.[0] === 'slave' && roles[i]?.[3] === 'connected'));
      if (waiting.length === 0) return;
      why = `${waiting.length} replica(s) not connected yet, e.g. ${waiting[0]!.name}`;
      await sleep(100);
    }
    throw new Error(`shared sentinels: replication not up after ${timeoutMs} ms: ${why}`);
  }

  async function unstableBecause(only?: string[]): Promise<string | undefined> {
    const sets = only ? groupProcs.filter((g) => only.includes(g.masterSet)) : groupProcs;
    for (const s of sentinelProcs) {
      if (!s.child) return `${s.name} is not running`;
      const masters = await call(s, ['SENTINEL', 'MASTERS']).catch((err: Error) => err);
      if (masters instanceof Error) return `${s.name} does not answer: ${masters.message}`;
      const byName = new Map((masters as unknown[]).map((m) => pairs(m)).map((m) => [m.name, m]));
      for (const g of sets) {
        const m = byName.get(g.masterSet);
        if (!m) return `${s.name} does not monitor ${g.masterSet}`;
        if (m.flags !== 'master') return `${s.name} flags ${g.masterSet}'s master as '${m.flags}'`;
        if (Number(m['num-other-sentinels']) !== sentinelCount - 1) return `${s.name} knows ${m['num-other-sentinels']} other sentinels of ${g.masterSet}, not ${sentinelCount - 1}`;
        if (Number(m['num-slaves']) < replicas) return `${s.name} knows ${m['num-slaves']} replicas of ${g.masterSet}, not ${replicas}`;
      }
    }
    for (const g of sets) {
      const a = await masterByMajority(g.masterSet).catch((err: Error) => err);
      if (a instanceof Error) return a.message;
      const master = g.procs.find((p) => p.host === a.host);
      if (!master) return `${g.masterSet}: the majority's master ${a.host} is not a node of the group`;
      const role = (await call(master, ['ROLE']).catch(() => undefined)) as unknown[] | undefined;
      if (role?.[0] !== 'master') return `${master.name} (${g.masterSet}'s master by majority) reports ROLE ${String(role?.[0] ?? 'down')}`;
      for (const p of g.procs) {
        if (p === master) continue;
        const r = (await call(p, ['ROLE']).catch(() => undefined)) as unknown[] | undefined;
        if (r?.[0] !== 'slave' || r[1] !== master.host || r[3] !== 'connected') return `${p.name} is not a connected replica of ${master.name}`;
      }
      if (only) {
        for (const s of sentinelProcs) {
          const reps = ((await call(s, ['SENTINEL', 'REPLICAS', g.masterSet])) as unknown[]).map(pairs);
          for (const p of g.procs) if (p !== master && reps.find((r) => r.ip === p.host)?.flags !== 'slave') return `${s.name} does not see ${p.name} as a plain replica of ${g.masterSet} yet`;
        }
      }
    }
    return undefined;
  }

  async function masterByMajority(masterSet: string): Promise<Address> {
    const answers = await Promise.all(sentinelProcs.map(async (s) => {
      try {
        const r = await call(s, ['SENTINEL', 'get-master-addr-by-name', masterSet]);
        return Array.isArray(r) ? `${String(r[0])}:${String(r[1])}` : 'unknown';
      } catch (err) {
        return `error (${(err as Error).message})`;
      }
    }));
    const votes = new Map<string, number>();
    for (const a of answers) votes.set(a, (votes.get(a) ?? 0) + 1);
    for (const [a, n] of votes) {
      if (n > sentinelProcs.length / 2 && /^[\d.]+:\d+$/.test(a)) return { host: a.slice(0, a.lastIndexOf(':')), port: Number(a.slice(a.lastIndexOf(':') + 1)) };
    }
    throw new Error(`shared sentinels: no majority on the master of ${masterSet}: ${answers.join(', ')}`);
  }

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      for (const c of conns.values()) c.disconnect();
      conns.clear();
      const results = await Promise.allSettled(sentinelProcs.map((p) => p.stop()));
      results.push(...(await Promise.allSettled(nodeProcs.map((p) => p.stop()))));
      if (ownDir && !process.env.SENTINEL_SWITCH_KEEP_SANDBOX) await fsp.rm(dir, { recursive: true, force: true });
      const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed.length) throw new Error(failed.map((f) => String(f.reason)).join('\n'));
    })());

  const node = (p: Proc): GroupNode => ({ name: p.name, host: p.host, port: p.port, logFile: p.logFile, pid: () => p.child?.pid });
  const out: SharedSentinels = {
    dir,
    password,
    groups: groupProcs.map((g) => ({ masterSet: g.masterSet, nodes: g.procs.map(node) })),
    sentinels: sentinelProcs.map(node),
    masterByMajority,
    async failover(masterSet) {
      const errors: string[] = [];
      for (const s of sentinelProcs) {
        try {
          if ((await call(s, ['SENTINEL', 'FAILOVER', masterSet])) === 'OK') return;
        } catch (err) {
          errors.push(`${s.name}: ${(err as Error).message}`);
        }
      }
      throw new Error(`shared sentinels: no sentinel accepted SENTINEL FAILOVER ${masterSet}: ${errors.join('; ')}`);
    },
    sentinelCommand: (s, args) => call(sentinelProcs.find((p) => p.name === s.name)!, args),
    async waitStable(timeoutMs, only) {
      const deadline = nowMs() + timeoutMs;
      let why: string | undefined = 'not checked';
      while (nowMs() < deadline) {
        why = await unstableBecause(only);
        if (why === undefined) return;
        for (const p of all) if (!p.child) throw new Error(`shared sentinels: ${p.name} died: ${p.lastExit}\n${p.describe()}`);
        await sleep(200);
      }
      throw new Error(`shared sentinels: not stable after ${timeoutMs} ms: ${why}`);
    },
    pids: () => all.flatMap((p) => (p.child?.pid ? [p.child.pid] : [])),
    stop,
  };
  try {
    nodeProcs.forEach((p) => p.start());
    await waitAnswering(nodeProcs, 20_000);
    await waitReplicas(20_000);
    // Redis connections of the harness to the nodes are not needed past this point.
    for (const p of nodeProcs) {
      conns.get(p)?.disconnect();
      conns.delete(p);
    }
    sentinelProcs.forEach((p) => p.start());
    await waitAnswering(sentinelProcs, 20_000);
    await out.waitStable(Math.max(5_000, startTimeoutMs - (nowMs() - startedAt)));
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
  return out;
}
