// The pure heart of sentinel-switch: from what the sentinels and the node said, and what the
// Service says now, decide what (if anything) to write. No I/O here; every branch is unit-tested.
import { isIP } from 'node:net';

export interface Address {
  host: string;
  port: number;
}

/** One sentinel's answer to SENTINEL get-master-addr-by-name. */
export type Vote = { sentinel: string; master: Address } | { sentinel: string; error: string };

/** The candidate's answer to ROLE. */
export type RoleReply =
  | { role: 'master' }
  | { role: 'slave'; master: Address }
  | { role: 'sentinel' }
  | { error: string };

export const addressKey = (a: Address): string => `${normalizeHost(a.host)}:${a.port}`;
const normalizeHost = (h: string): string => h.toLowerCase().replace(/\.$/, '');

export type Tally =
  | { ok: true; master: Address; agreeing: number; total: number; needed: number }
  | { ok: false; why: string; total: number; needed: number; best?: { master: Address; agreeing: number } };

/**
 * A master is agreed when at least `quorum` sentinels name the same address; the default is a
 * strict majority of all sentinels asked, counting those that did not answer, so a partitioned
 * minority can never move the Service.
 */
export function tally(votes: Vote[], quorum?: number): Tally {
  const total = votes.length;
  const needed = Math.max(quorum ?? Math.floor(total / 2) + 1, Math.floor(total / 2) + 1);
  const counts = new Map<string, { master: Address; agreeing: number }>();
  for (const v of votes) {
    if (!('master' in v)) continue;
    const key = addressKey(v.master);
    const entry = counts.get(key) ?? { master: { host: normalizeHost(v.master.host), port: v.master.port }, agreeing: 0 };
    entry.agreeing++;
    counts.set(key, entry);
  }
  const ranked = [...counts.values()].sort((a, b) => b.agreeing - a.agreeing);
  const best = ranked[0];
  if (best && best.agreeing >= needed) return { ok: true, master: best.master, agreeing: best.agreeing, total, needed };
  const failed = votes.filter((v) => 'error' in v).length;
  const why = best
    ? `no sentinel majority: best candidate ${addressKey(best.master)} has ${best.agreeing}/${total} votes, ${needed} needed` +
      (failed ? ` (${failed} sentinel(s) did not answer)` : '')
    : `no sentinel majority: none of ${total} sentinel(s) named a master`;
  return best ? { ok: false, why, total, needed, best } : { ok: false, why, total, needed };
}

/**
 * The tally of the answers so far, when no answer still to come can change it: a candidate has
 * the votes needed out of ALL `total` sentinels asked (those yet to answer count as not
 * agreeing). `needed` is more than half of `total`, so no other candidate can reach it too, and
 * the full tally names the same master. Otherwise undefined: wait for the rest.
 */
export function decisive(answered: Vote[], total: number, quorum?: number): Extract<Tally, { ok: true }> | undefined {
  const pending = Array.from({ length: Math.max(0, total - answered.length) }, (_, i): Vote => ({ sentinel: `(pending ${i + 1})`, error: 'no answer yet' }));
  const t = tally([...answered, ...pending], quorum);
  return t.ok ? t : undefined;
}

export type Verdict = { ok: true; master: Address } | { ok: false; why: string };

/** The node the majority names must itself say it is a master: a stale majority cannot move us. */
export function verify(t: Tally, role: RoleReply | undefined): Verdict {
  if (!t.ok) return { ok: false, why: t.why };
  const at = addressKey(t.master);
  if (!role) return { ok: false, why: `ROLE of ${at} not asked` };
  if ('error' in role) return { ok: false, why: `ROLE of ${at} failed: ${role.error}` };
  if (role.role !== 'master') return { ok: false, why: `${at} reports ROLE ${role.role}, not master` };
  return { ok: true, master: t.master };
}

/** What the master's host means for the Service: a DNS name is used as is; an IP must be mapped to a pod's name. */
export type HostKind = { kind: 'hostname'; name: string } | { kind: 'ip'; ip: string } | { kind: 'invalid'; why: string };

const dns1123Subdomain = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function classifyHost(host: string): HostKind {
  if (isIP(host)) return { kind: 'ip', ip: host };
  const name = normalizeHost(host);
  if (!dns1123Subdomain.test(name) || name.split('.').some((l) => l.length > 63)) {
    return { kind: 'invalid', why: `"${host}" is neither an IP nor a valid DNS-1123 name` };
  }
  return { kind: 'hostname', name };
}

/**
 * A name that ends in `.svc` (redis-ha announces `<svc>.<ns>.svc`) completed with the cluster
 * domain. A pod's resolver finds such a name through its search path, but an ExternalName is a
 * CNAME that CoreDNS resolves as an absolute name, so the short form never resolves there.
 */
export function qualifyServiceName(name: string, clusterDomain: string): string {
  return /\.svc$/.test(name) ? `${name}.${normalizeHost(clusterDomain)}` : name;
}

/** The DNS name of a pod that has spec.hostname and spec.subdomain (every StatefulSet pod). */
export function podDnsName(pod: { hostname?: string; subdomain?: string; namespace: string }, clusterDomain: string): string | undefined {
  if (!pod.hostname || !pod.subdomain) return undefined;
  return `${pod.hostname}.${pod.subdomain}.${pod.namespace}.svc.${clusterDomain}`;
}

/** What the Service looks like now, as far as the decision needs. */
export type ServiceState =
  | { exists: false }
  | { exists: true; type: string; externalName?: string; resourceVersion: string };

export type Plan =
  | { action: 'none'; target: string }
  | { action: 'patch'; target: string; previousTarget: string | undefined; resourceVersion: string }
  | { action: 'refuse'; why: string };

export function planService(current: ServiceState, target: string, service: string): Plan {
  if (!current.exists) {
    return { action: 'refuse', why: `Service ${service} does not exist: create it as type ExternalName (the Helm chart does, with targetService.create: true)` };
  }
  if (current.type !== 'ExternalName') {
    return { action: 'refuse', why: `Service ${service} is of type ${current.type}; sentinel-switch only manages type ExternalName` };
  }
  const now = current.externalName ? normalizeHost(current.externalName) : undefined;
  if (now === target) return { action: 'none', target };
  return { action: 'patch', target, previousTarget: current.externalName, resourceVersion: current.resourceVersion };
}

/** Whether a hook event named the master that was verified; an event is only ever a trigger. */
export function confirms(claimed: Address, verified: Address | undefined): boolean {
  return verified !== undefined && addressKey(claimed) === addressKey(verified);
}
