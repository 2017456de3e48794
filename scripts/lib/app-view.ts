// The application's view of a failover, shared by `npm run bench:app` and the chaos checker:
// how a Sentinel-unaware writer (test/harness/app-client.ts) finds the master through a stable
// name, and how one window of its writes is judged against what the final master holds.
//
// Name resolution, two ways:
//   system    the writer asks the system resolver (getaddrinfo) for `<svc>.<ns>.svc.cluster.local`,
//             as a pod does: inside the sandbox's network namespace that is its CoreDNS, with the
//             Corefile's TTL and cache, and a ClusterIP is routed by kube-proxy.
//   emulated  on loopback (no cluster DNS, no kube-proxy: the API server refuses 127.x addresses
//             in EndpointSlices) the name is mapped to the node its object names at that moment,
//             read from an API watch: an ExternalName Service's externalName, or the Pods a selector
//             Service would select. That is an ideal DNS and data plane (no TTL, no cache, no
//             kube-proxy sync): every figure measured this way is a lower bound on a cluster's.
import type { RedisNode } from '../../test/harness/redis.ts';
import { type AppWriter, firstNewAck, judgeWrites, presentKeys, type WriteRecord } from '../../test/harness/app-client.ts';

export type Resolve = (host: string) => Promise<string>;

/** `<svc>.<ns>.svc.<domain>`: the stable name an app is configured with. */
export function stableName(service: string, namespace: string, clusterDomain = 'cluster.local'): string {
  return `${service}.${namespace}.svc.${clusterDomain}`;
}

/**
 * Emulated resolution of an ExternalName Service: its current externalName (a pod DNS name) ->
 * that node's address. Fails like an NXDOMAIN when the object names no node.
 */
export function externalNameResolver(o: {
  name: string;
  nodes: readonly RedisNode[];
  dnsName: (n: RedisNode) => string;
  current: () => string | undefined;
}): Resolve {
  return async (host) => {
    if (host !== o.name) throw new Error(`resolver for ${o.name} asked for ${host}`);
    const target = o.current();
    const node = o.nodes.find((n) => o.dnsName(n) === target);
    if (!node) throw new Error(`ENOTFOUND ${host} (the Service names ${target ?? 'nothing'})`);
    return node.host;
  };
}

/**
 * Emulated resolution of a selector ClusterIP Service: one of the Pods its selector matches right
 * now (kube-proxy picks one endpoint per new connection at random). No endpoint: the connect hangs
 * on a real cluster; here it fails after the writer's connect timeout would have.
 */
export function selectorResolver(o: {
  name: string;
  nodes: readonly RedisNode[];
  selected: () => string[];
  connectTimeoutMs: number;
}): Resolve {
  return async (host) => {
    if (host !== o.name) throw new Error(`resolver for ${o.name} asked for ${host}`);
    const names = o.selected();
    const nodes = o.nodes.filter((n) => names.includes(n.name));
    if (nodes.length === 0) {
      await new Promise((r) => setTimeout(r, o.connectTimeoutMs));
      throw new Error(`connect ETIMEDOUT ${host} (the Service selects no Pod)`);
    }
    return nodes[Math.floor(Math.random() * nodes.length)]!.host;
  };
}

export interface WindowVerdict {
  sent: number;
  acked: number;
  /** Acknowledged, absent from the final master (for a stale return: not counting the buffered ones). */
  lostAcked: number;
  /** Sent while the node was frozen, acknowledged the moment it resumed, lost (stale returns only). */
  lostAckedBuffered: number;
  /** From the first +switch-master to the first write acknowledged by the new master; undefined: none in the window. */
  firstNewAckMs?: number;
  errors: Record<string, number>;
}

/** The records sent in [fromMs, toMs). */
export function recordsIn(records: readonly WriteRecord[], fromMs: number, toMs: number): WriteRecord[] {
  return records.filter((r) => r.sentAt >= fromMs && r.sentAt < toMs);
}

/**
 * Judges the writes sent in [fromMs, toMs) against the final master. Call it once every write of
 * the window has an outcome (toMs at least the writer's command timeout in the past).
 */
export async function judgeWindow(o: {
  writer: AppWriter;
  fromMs: number;
  toMs: number;
  master: { host: string; port: number; password?: string };
  switchAtMs?: number;
  frozen?: { fromMs: number; toMs: number };
}): Promise<WindowVerdict> {
  const window = recordsIn(o.writer.records, o.fromMs, o.toMs);
  const present = await presentKeys(o.master, window.filter((r) => r.ackAt !== undefined).map((r) => r.key));
  const j = judgeWrites(window, present);
  const buffered = o.frozen
    ? window.filter((r) => r.ackAt !== undefined && !present.has(r.key) && r.sentAt >= o.frozen!.fromMs && r.sentAt < o.frozen!.toMs && r.ackAt >= o.frozen!.toMs).length
    : 0;
  const first = o.switchAtMs === undefined ? undefined : firstNewAck(window, o.switchAtMs, present);
  return {
    sent: j.sent,
    acked: j.acked,
    lostAcked: j.lostAcked - buffered,
    lostAckedBuffered: buffered,
    firstNewAckMs: first && o.switchAtMs !== undefined ? first.ackAt! - o.switchAtMs : undefined,
    errors: j.errors,
  };
}

/**
 * Waits until the writer has a write acknowledged by `master` after `switchAtMs` (polling the keys
 * acknowledged since then), or until deadlineMs. Resolves with that write, or undefined. A window
 * that is to show it must reach past its sentAt.
 */
export async function waitNewAck(o: {
  writer: AppWriter;
  switchAtMs: number;
  master: { host: string; port: number; password?: string };
  deadlineMs: number;
  everyMs?: number;
}): Promise<WriteRecord | undefined> {
  let checkedUpTo = 0;
  for (;;) {
    const records = o.writer.records;
    const fresh: WriteRecord[] = [];
    for (let i = records.length - 1; i >= 0 && records[i]!.sentAt >= o.switchAtMs - 5_000; i--) {
      const r = records[i]!;
      if (r.ackAt !== undefined && r.ackAt >= o.switchAtMs && r.seq >= checkedUpTo) fresh.push(r);
    }
    if (fresh.length) {
      const present = await presentKeys(o.master, fresh.map((r) => r.key)).catch(() => undefined);
      if (present) {
        const hit = firstNewAck(fresh, o.switchAtMs, present);
        if (hit) return hit;
        // Keys that were absent stay absent (the old master's acks): only newer ones need a look.
        checkedUpTo = Math.max(...fresh.map((r) => r.seq)) + 1;
      }
    }
    const now = performance.timeOrigin + performance.now();
    if (now >= o.deadlineMs) return undefined;
    await new Promise((r) => setTimeout(r, Math.min(o.everyMs ?? 250, o.deadlineMs - now)));
  }
}

/** Sums error counts. */
export function addErrors(into: Record<string, number>, more: Record<string, number>): Record<string, number> {
  for (const [k, v] of Object.entries(more)) into[k] = (into[k] ?? 0) + v;
  return into;
}
