// Whom to fence, decided without I/O. Input: the master a Sentinel majority names and ROLE
// confirmed, what each other known node answered to ROLE, and which nodes we hold paused.
// A node that says ROLE master while the verified master is another one is stale: it is paused
// (if it is not already), its clients are closed once the Service names the verified master,
// it is demoted to a replica of that master, and unpaused once it says so. The verified master
// itself is never fenced: if we hold it paused, the only step is to unpause it. Nor is a node
// that any sentinel still names or flags `promoted`: mid-failover the promoted replica says ROLE
// master while the majority still names the old master (until Sentinel sees the promotion), and
// fencing it would undo Sentinel's failover.
import { type Address, addressKey } from './index.ts';

/** ROLE as fencing needs it: a replica's master and whether its link to that master is up. */
export type FenceRole =
  | { role: 'master' }
  | { role: 'slave'; master: Address; linkUp: boolean }
  | { role: 'sentinel' }
  | { error: string };

export interface NodeView {
  node: Address;
  role: FenceRole;
  /** Why we hold a pause on it (ours, not yet lifted or expired); undefined when we do not. */
  paused?: PauseReason;
  /** It was a master when last seen (the previous master, one we paused): worth watching for its return when unreachable. */
  suspect: boolean;
}

export type FenceStep =
  | { step: 'pause' }
  /** Close its normal and pub/sub clients (not replicas, not Sentinel's, not ours). */
  | { step: 'kill' }
  | { step: 'demote'; to: Address }
  /** Ask ROLE until it says slave of `to` with the link up (bounded). */
  | { step: 'await-replica'; to: Address }
  | { step: 'unpause'; why: UnpauseWhy }
  /** Unreachable now: queue a pause + ROLE on a standing connection, applied the moment it answers again. */
  | { step: 'watch' };

export type UnpauseWhy = 'demoted' | 'replica' | 'majority' | 'abort';
/** early: at +selected-slave; switch: a stale master after a verified switch; return: a stale master answering again. */
export type PauseReason = 'early' | 'switch' | 'return';

export interface FencePlan {
  node: Address;
  steps: FenceStep[];
  why: string;
}

export function planFence(input: {
  /** The master a Sentinel majority names and that answered ROLE master. */
  master: Address;
  /** Every master any sentinel named in the same run (the majority's and any other). */
  named: Address[];
  /** Replicas a sentinel flags `promoted` (chosen by a failover under way), asked after ROLE. */
  promoted?: Address[];
  serviceNamesMaster: boolean;
  demote: boolean;
  nodes: NodeView[];
}): FencePlan[] {
  const m = addressKey(input.master);
  const named = new Set([...input.named, ...(input.promoted ?? [])].map(addressKey));
  const plans: FencePlan[] = [];
  const seen = new Set<string>();
  for (const v of input.nodes) {
    const key = addressKey(v.node);
    if (seen.has(key)) continue;
    seen.add(key);
    if (key === m) {
      // A pause taken at +selected-slave is held while the majority still names the node: the
      // failover is under way (the majority moves at its end). Abort, demotion or its bound end it.
      if (v.paused && v.paused !== 'early') plans.push({ node: v.node, steps: [{ step: 'unpause', why: 'majority' }], why: `the Sentinel majority names ${key} the master` });
      continue;
    }
    const r = v.role;
    if (named.has(key) && !('error' in r) && r.role === 'master') continue; // a failover under way: wait until no sentinel names it
    if ('error' in r) {
      if (v.suspect && !named.has(key)) plans.push({ node: v.node, steps: [{ step: 'watch' }], why: `${key} does not answer (${r.error}); fenced the moment it answers again` });
      continue;
    }
    if (r.role === 'master') {
      const steps: FenceStep[] = [];
      if (!v.paused) steps.push({ step: 'pause' });
      // Closing its clients before the Service names the verified master would only send them
      // back to this node; demoting it still turns their writes into errors instead of losses.
      if (input.serviceNamesMaster) steps.push({ step: 'kill' });
      if (input.demote) steps.push({ step: 'demote', to: input.master }, { step: 'await-replica', to: input.master }, { step: 'unpause', why: 'demoted' });
      plans.push({ node: v.node, steps, why: `${key} reports ROLE master while the Sentinel majority names ${m}` });
      continue;
    }
    // A replica (or anything not a master) holds no acknowledged write to lose: never keep it paused.
    if (v.paused) plans.push({ node: v.node, steps: [{ step: 'unpause', why: 'replica' }], why: `${key} reports ROLE ${r.role}` });
  }
  return plans;
}

/** ROLE's reply, for fencing: ["master", ...] | ["slave", host, port, state, offset] | ["sentinel", ...]. */
export function parseFenceRole(reply: unknown): FenceRole {
  if (!Array.isArray(reply)) return { error: `unexpected ROLE reply ${JSON.stringify(reply)}` };
  const role = String(reply[0]);
  if (role === 'master') return { role: 'master' };
  if (role === 'sentinel') return { role: 'sentinel' };
  if (role === 'slave') return { role: 'slave', master: { host: String(reply[1]), port: Number(reply[2]) }, linkUp: reply[3] === 'connected' };
  return { error: `unknown role ${role}` };
}

export interface ClientInfo {
  id: string;
  name: string;
  flags: string;
}

/** CLIENT LIST's text, one `k=v k=v ...` line per client. */
export function parseClientList(text: string): ClientInfo[] {
  const out: ClientInfo[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const f: Record<string, string> = {};
    for (const kv of line.trim().split(' ')) {
      const i = kv.indexOf('=');
      if (i > 0) f[kv.slice(0, i)] = kv.slice(i + 1);
    }
    if (f.id) out.push({ id: f.id, name: f.name ?? '', flags: f.flags ?? '' });
  }
  return out;
}

/** Sentinel names its links `sentinel-<first 8 hex of its run id>-cmd` / `-pubsub`. */
const SENTINEL_LINK = /^sentinel-[0-9a-f]{8}-(cmd|pubsub)$/;
export const OUR_CLIENT_NAME = 'sentinel-switch';

/**
 * The clients to close on a stale master: applications (normal and pub/sub). Spared: its
 * replicas (S) and its own master link (M), Sentinel's links (Sentinel needs them to demote it),
 * and ours (any sentinel-switch replica's: the fence is still talking on them).
 */
export function clientsToKill(clients: ClientInfo[]): string[] {
  return clients
    .filter((c) => !/[SM]/.test(c.flags) && !SENTINEL_LINK.test(c.name) && c.name !== OUR_CLIENT_NAME)
    .map((c) => c.id);
}
