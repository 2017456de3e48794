// The Redis + Sentinel sandbox (test/harness/redis.ts) that the other tests, the demo, the bench
// and the chaos runs stand on. Besides checking the harness, these tests re-measure the Sentinel
// facts the design rests on (docs: sentinel-facts.md): the switch timings and the hook running
// once on EVERY sentinel.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisSandbox, type RedisSandbox, type SwitchEvent } from './harness/redis.ts';

const nowMs = () => performance.timeOrigin + performance.now();

/** PIDs of every process of the sandbox, to prove stop() leaves none behind. */
function pidsOf(sb: RedisSandbox): number[] {
  return [...sb.nodes, ...sb.sentinels].map((p) => p.pid()).filter((p): p is number => p !== undefined);
}
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('a sandbox of 1 master, 2 replicas and 3 sentinels', () => {
  let sb: RedisSandbox;
  let startMs = 0;

  beforeAll(async () => {
    const t0 = nowMs();
    sb = await startRedisSandbox();
    startMs = nowMs() - t0;
    console.info(`[measure] sandbox start to stable: ${startMs.toFixed(0)} ms`);
  });

  afterAll(async () => {
    await sb?.stop();
  });

  it('gives every node its own IP and one shared port, like pods behind one Service port', () => {
    const hosts = [...sb.nodes, ...sb.sentinels].map((n) => n.host);
    expect(new Set(hosts).size).toBe(6);
    for (const h of hosts) {
      // Inside the sandbox namespace a pod-like 198.18.X.Y (never 198.18.0.x, the cluster's);
      // elsewhere loopback, never 127.0.0.x.
      if (process.env.SENTINEL_SWITCH_NETNS === '1') expect(h).toMatch(/^198\.18\.([1-9]\d?|1\d\d|2[0-4]\d|25[0-4])\.\d+$/);
      else expect(h).toMatch(/^127\.([1-9]\d?|1\d\d|2[0-4]\d|25[0-4])\.\d+\.\d+$/);
    }
    expect(new Set(sb.nodes.map((n) => n.port)).size).toBe(1);
    expect(new Set(sb.sentinels.map((s) => s.port)).size).toBe(1);
    expect(sb.nodes.map((n) => n.name)).toEqual(['redis-node-0', 'redis-node-1', 'redis-node-2']);
  });

  it('starts with node 0 as the master by majority and the others as replicas', async () => {
    const n0 = sb.nodes[0]!;
    expect(await sb.masterByMajority()).toEqual({ host: n0.host, port: n0.port });
    expect(await Promise.all(sb.nodes.map((n) => sb.roleOf(n)))).toEqual(['master', 'slave', 'slave']);
  });

  it('failover(): +switch-master on all 3 sentinels, and the majority moves to the new master', async () => {
    const before = await sb.masterByMajority();
    const watcher = sb.watchSwitches();
    try {
      await watcher.ready();
      const t0 = nowMs();
      await sb.failover();
      const events: SwitchEvent[] = [];
      for (let i = 0; i < 3; i++) events.push(await watcher.waitForNext(15_000));
      console.info(`[measure] SENTINEL FAILOVER to +switch-master: first ${(events[0]!.atMs - t0).toFixed(0)} ms, `
        + `last ${(events[2]!.atMs - t0).toFixed(0)} ms`);
      expect(new Set(events.map((e) => e.sentinel))).toEqual(new Set(sb.sentinels.map((s) => s.name)));
      for (const e of events) {
        expect(e.masterSet).toBe('mymaster');
        expect(e.from).toEqual(before);
        expect(e.to).toEqual(events[0]!.to);
      }
      expect(events[0]!.to).not.toEqual(before);
      expect(await sb.masterByMajority()).toEqual(events[0]!.to);
      const promoted = sb.nodes.find((n) => n.host === events[0]!.to.host)!;
      expect(await sb.roleOf(promoted)).toBe('master');
    } finally {
      await watcher.close();
    }
    // The old master stays a master until Sentinel converts it (~10 s): see the facts doc.
    const t1 = nowMs();
    await sb.waitStable(30_000);
    console.info(`[measure] after the failover, stable again in ${(nowMs() - t1).toFixed(0)} ms`);
  });

  it('killMaster(): a switch within a few seconds; the restarted node rejoins as a replica', async () => {
    const watcher = sb.watchSwitches();
    try {
      await watcher.ready();
      const t0 = nowMs();
      const killed = await sb.killMaster();
      expect(killed.pid()).toBeUndefined();
      const first = await watcher.waitForNext(15_000);
      console.info(`[measure] SIGKILL of the master to first +switch-master: ${(first.atMs - t0).toFixed(0)} ms`);
      expect(first.atMs - t0).toBeLessThan(10_000); // down-after 1 s + election + promotion: ~2.3 s measured
      expect(first.from).toEqual({ host: killed.host, port: killed.port });
      expect(await sb.roleOf(killed)).toBe('down');

      await sb.waitStable(30_000); // stable without the dead node
      await sb.startNode(killed);
      expect(killed.pid()).toBeTypeOf('number');
      await sb.waitStable(30_000);
      expect(await sb.roleOf(killed)).toBe('slave');
      const master = await sb.masterByMajority();
      expect(master).not.toEqual({ host: killed.host, port: killed.port });
      // Usually first.to. But on a loaded machine an observer can flag the freshly promoted
      // master down within down-after (1 s) and count the other sentinels' stale "master down"
      // replies from the first failover as a quorum: a SECOND failover follows ~1-2 s later
      // (seen in ~3 of 20 runs here). The service must expect that; this test only records it.
      const switches = watcher.events.filter((e) => e.sentinel === first.sentinel);
      if (master.host !== first.to.host) {
        console.info(`[measure] a second failover followed: ${switches.map((e) => `${e.from.host}->${e.to.host}`).join(', ')}`);
      }
      expect(switches.at(-1)!.to).toEqual(master);
    } finally {
      await watcher.close();
    }
  });

  it('pauses and restarts processes: a SIGSTOPped replica, a stopped sentinel', async () => {
    const master = await sb.masterByMajority();
    const replica = sb.nodes.find((n) => n.host !== master.host)!;
    await sb.stopNode(replica, 'SIGSTOP');
    expect(replica.pid()).toBeTypeOf('number');
    expect(await sb.roleOf(replica)).toBe('down');
    await sb.waitStable(10_000); // a paused node is left out
    await sb.stopNode(replica, 'SIGCONT');
    expect(await sb.roleOf(replica)).toBe('slave');

    const s0 = sb.sentinels[0]!;
    await sb.stopSentinel(s0);
    expect(s0.pid()).toBeUndefined();
    expect(await sb.masterByMajority()).toEqual(master); // 2 of 3 still answer
    await sb.startSentinel(s0);
    await sb.waitStable(20_000);
    expect(await sb.masterByMajority()).toEqual(master);
  });

  it('stop() ends every process it started, by PID', async () => {
    const pids = pidsOf(sb);
    expect(pids).toHaveLength(6);
    await sb.stop();
    expect(pids.filter(alive)).toEqual([]);
    expect([...sb.nodes, ...sb.sentinels].map((p) => p.pid())).toEqual(Array(6).fill(undefined));
  });
});

describe('client-reconfig-script, as Sentinel really runs it', () => {
  let sb: RedisSandbox | undefined;
  let work: string;

  beforeAll(() => {
    work = mkdtempSync(path.join(tmpdir(), 'sentinel-switch-hookfacts-'));
  });
  afterAll(async () => {
    await sb?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('runs on EVERY sentinel: 1 leader + 2 observers, same addresses, within a short spread', async () => {
    // The script writes where the sentinel's environment says: proves the script inherits it.
    const out = path.join(work, 'calls.txt');
    const script = path.join(work, 'record.sh');
    writeFileSync(script, '#!/bin/sh\necho "$(date +%s.%N) $HOOK_TAG $*" >> "$HOOK_OUT"\n');
    sb = await startRedisSandbox({ hook: { script, env: { HOOK_OUT: out, HOOK_TAG: 'from-env' } } });
    const before = await sb.masterByMajority();

    const watcher = sb.watchSwitches();
    await watcher.ready();
    const t0 = nowMs();
    await sb.failover();
    const sw = await watcher.waitForNext(15_000);
    await watcher.close();

    // Wait (bounded) for the 3 calls; the observers run it when they learn the new epoch.
    const deadline = nowMs() + 10_000;
    let lines: string[] = [];
    while (nowMs() < deadline) {
      lines = existsSync(out) ? readFileSync(out, 'utf8').trim().split('\n') : [];
      if (lines.length >= 3) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    // A 4th call would be a retry or a double run: give it a moment to show up.
    await new Promise((r) => setTimeout(r, 500));
    lines = readFileSync(out, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(3);

    const calls = lines.map((l) => {
      const [ts, tag, ...args] = l.split(' ');
      return { atMs: Number(ts) * 1000, tag, args };
    });
    for (const c of calls) {
      expect(c.tag).toBe('from-env');
      // <master-name> <role> <state> <from-ip> <from-port> <to-ip> <to-port>
      expect(c.args).toEqual(['mymaster', c.args[1], 'start', before.host, String(before.port), sw.to.host, String(sw.to.port)]);
    }
    expect(calls.map((c) => c.args[1]).sort()).toEqual(['leader', 'observer', 'observer']);
    const times = calls.map((c) => c.atMs);
    const spread = Math.max(...times) - Math.min(...times);
    console.info(`[measure] hook calls ${times.map((t) => (t - t0).toFixed(0)).join(', ')} ms after SENTINEL FAILOVER; `
      + `spread ${spread.toFixed(0)} ms; first +switch-master at ${(sw.atMs - t0).toFixed(0)} ms`);
    expect(spread).toBeLessThan(5_000); // ~70 ms measured; the bound only catches "not at failover time"
    // Exit 0 everywhere: no -script-error in any sentinel log.
    for (const s of sb.sentinels) expect(readFileSync(s.logFile, 'utf8')).not.toContain('-script-error');
  });
});
