// The operator's view (GET /v1/status, `sentinel-switch status`): per master set, what every
// sentinel answers, the master they elect and what it says of itself, every node Sentinel knows
// with its replication offset, what the target names now, whether that differs from what the
// verified master needs (drift), the fences held, the last switch and the last failure. Read
// only: it asks the same questions reconcile asks and writes nothing. All master sets are asked
// in parallel, and within one the questions of a step go out together.
import type { Config, MasterSetConfig } from './config.ts';
import { type Address, addressKey, type RoleReply, tally, verify, type Vote } from './decide/index.ts';
import { annotations, KubeError, serviceId } from './kube/index.ts';
import type { Reconciler } from './reconcile.ts';
import { describeError, parseReplicas, parseRole, type SentinelClient } from './sentinel/index.ts';
import type { TargetState } from './target/index.ts';

export interface SentinelAnswer {
  sentinel: string;
  /** The master it names, host:port. */
  master?: string;
  error?: string;
}

export interface NodeStatus {
  address: string;
  /** What the node answers to ROLE ('error' when it could not be asked). */
  role: 'master' | 'slave' | 'sentinel' | 'error';
  error?: string;
  /** Its replication offset: a master's master_repl_offset, a replica's processed offset. */
  offset?: number;
  /** A replica: bytes behind the elected master's offset (same round of questions). */
  lagBytes?: number;
  /** A replica: the master it replicates from, host:port, and its link state (ROLE's 4th field). */
  replicaOf?: string;
  linkState?: string;
  /** Sentinel's flags for the node (SENTINEL REPLICAS), e.g. "slave" or "s_down,slave,disconnected". */
  sentinelFlags?: string;
}

export interface MasterSetStatus {
  masterSet: string;
  /** Majority, ROLE master, no drift and the target readable. */
  ok: boolean;
  /** One sentence per thing that is not fine, naming what to look at. */
  problems: string[];
  sentinels: SentinelAnswer[];
  majority: { ok: boolean; master?: string; agreeing: number; total: number; needed: number; why?: string };
  /** The elected master and its own answer to ROLE; verified: the majority and ROLE agree. */
  master?: { address: string; role: string; verified: boolean };
  nodes: NodeStatus[];
  target: {
    kind: MasterSetConfig['target']['kind'];
    service: string;
    /** kind endpointSlice: the EndpointSlice written. */
    endpointSlice?: string;
    exists?: boolean;
    /** What it names now: an ExternalName's externalName, an EndpointSlice's ip:port. */
    current?: string;
    /** What it must name for the verified master. */
    desired?: string;
    error?: string;
  };
  /** 'drift': the target differs from what the verified master needs; 'unknown': no verified master, or the target cannot be read or carry it. */
  drift: { state: 'none' | 'drift' | 'unknown'; why?: string };
  fences: { node: string; reason: string; since: string }[];
  /** From the switch history the target carries (annotations): from is the value before, to the master verified then. */
  lastSwitch?: { at: string; from?: string; to?: string; reason?: string };
  /** This instance's last failed or unverified run since it started. */
  lastFailure?: { at: string; reason: string; result: string; why?: string };
  durationMs: number;
}

export interface Status {
  at: string;
  ok: boolean;
  masterSets: MasterSetStatus[];
}

export interface StatusDeps {
  config: Config;
  reconciler: Reconciler;
  sentinels: Map<string, SentinelClient>;
}

export async function collectStatus(deps: StatusDeps, only?: string): Promise<Status> {
  const sets = deps.config.masterSets.filter((s) => only === undefined || s.name === only);
  const masterSets = await Promise.all(sets.map((s) => masterSetStatus(deps, s)));
  return { at: new Date().toISOString(), ok: masterSets.every((m) => m.ok), masterSets };
}

async function masterSetStatus(deps: StatusDeps, set: MasterSetConfig): Promise<MasterSetStatus> {
  const started = performance.now();
  const client = deps.sentinels.get(set.name)!;
  const target = deps.reconciler.target(set.name)!;
  const problems: string[] = [];

  // Step 1: the target, every sentinel's answer, and the sentinels' addresses (for REPLICAS).
  const [read, { votes, addresses }] = await Promise.all([
    target.read().then(
      (state) => ({ state }),
      (err: unknown) => ({ error: err instanceof KubeError ? err.message : String(err) }),
    ),
    client.sentinelAddresses().then(async (addresses) => ({ addresses, votes: await client.askSentinels(addresses) })),
  ]);
  const sentinels = votes.map(showVote);
  const t = tally(votes, set.quorum);
  const majority = t.ok
    ? { ok: true, master: addressKey(t.master), agreeing: t.agreeing, total: t.total, needed: t.needed }
    : { ok: false, master: t.best ? addressKey(t.best.master) : undefined, agreeing: t.best?.agreeing ?? 0, total: t.total, needed: t.needed, why: t.why };
  if (!t.ok) problems.push(t.why);

  // Step 2: the elected master's ROLE, the replicas one answering sentinel knows, and what the
  // target must name for that master.
  const elected = t.ok ? t.master : undefined;
  const asked = addresses.find((a) => a.address && votes.some((v) => v.sentinel === a.sentinel && 'master' in v && (!elected || addressKey(v.master) === addressKey(elected))));
  const [masterRole, replicas, want] = await Promise.all([
    elected ? askRole(client, elected) : undefined,
    asked?.address ? askReplicas(client, asked.address, set.name, asked.servername) : Promise.resolve({ replicas: [] as Replica[] }),
    elected ? target.desired(elected).then((d) => ({ desired: d }), (err: unknown) => ({ error: (err as Error).message })) : undefined,
  ]);
  if ('error' in replicas) problems.push(`SENTINEL REPLICAS ${set.name} on ${asked?.sentinel}: ${replicas.error}`);

  let master: MasterSetStatus['master'];
  let verified = false;
  if (elected && masterRole) {
    const v = verify(t, masterRole.reply);
    verified = v.ok;
    master = { address: addressKey(elected), role: 'error' in masterRole.reply ? `error: ${masterRole.reply.error}` : masterRole.reply.role, verified };
    if (!v.ok) problems.push(v.why);
  }

  // Step 3: ROLE of every other node Sentinel knows, for its role and offset.
  const known = new Map<string, Address>();
  // Without a majority, the best candidate is listed too, with what it says of itself.
  const candidate = elected ?? (t.ok ? undefined : t.best?.master);
  if (candidate) known.set(addressKey(candidate), candidate);
  const flags = new Map<string, string>();
  for (const r of 'replicas' in replicas ? replicas.replicas : []) {
    const key = addressKey(r.address);
    if (!known.has(key)) known.set(key, r.address);
    flags.set(key, r.flags);
  }
  const others = [...known.entries()].filter(([key]) => !elected || key !== addressKey(elected));
  const otherRoles = await Promise.all(others.map(([, a]) => askRole(client, a)));
  const roles = new Map<string, RoleAnswer>(others.map(([key], i) => [key, otherRoles[i]!]));
  if (elected && masterRole) roles.set(addressKey(elected), masterRole);
  const masterOffset = elected ? roles.get(addressKey(elected))?.offset : undefined;
  const nodes: NodeStatus[] = [...known.keys()].map((key) => nodeStatus(key, roles.get(key)!, flags.get(key), masterOffset));

  // The target: what it names, what it must name, and whether the plan would write (drift).
  const targetView: MasterSetStatus['target'] = { kind: target.kind, service: serviceId(target.service) };
  if (set.target.kind === 'endpointSlice') targetView.endpointSlice = serviceId({ namespace: set.target.namespace, name: set.target.endpointSliceName ?? set.target.name });
  let drift: MasterSetStatus['drift'];
  if ('error' in read) {
    targetView.error = read.error;
    problems.push(read.error);
    drift = { state: 'unknown', why: `target not readable: ${read.error}` };
  } else {
    targetView.exists = read.state.exists;
    targetView.current = target.current(read.state);
    if (want && 'desired' in want) targetView.desired = want.desired.value;
    if (want && 'error' in want) targetView.error = want.error;
    drift = driftOf(read.state, target, want, verified);
    if (drift.state === 'drift' || (drift.state === 'unknown' && verified)) problems.push(drift.why!);
  }

  const fences = (deps.reconciler.fencer(set.name)?.paused ?? []).map((p) => ({ node: p.node, reason: p.reason, since: new Date(p.sinceMs).toISOString() }));
  const history = 'state' in read ? read.state.annotations : undefined;
  const lastSwitch = history?.[annotations.switchedAt]
    ? { at: history[annotations.switchedAt]!, from: history[annotations.previousTarget] || undefined, to: history[annotations.master] || undefined, reason: history[annotations.reason] || undefined }
    : undefined;
  const failure = deps.reconciler.lastFailure(set.name);
  const lastFailure = failure ? { at: failure.at.toISOString(), reason: failure.outcome.reason, result: failure.outcome.result, why: failure.outcome.why } : undefined;

  return {
    masterSet: set.name,
    ok: problems.length === 0,
    problems,
    sentinels,
    majority,
    master,
    nodes,
    target: targetView,
    drift,
    fences,
    lastSwitch,
    lastFailure,
    durationMs: Math.round((performance.now() - started) * 100) / 100,
  };
}

/** Drift is what reconcile would write now: its own desired() and plan(), without the write. */
function driftOf(
  state: TargetState,
  target: NonNullable<ReturnType<Reconciler['target']>>,
  want: { desired: Awaited<ReturnType<typeof target.desired>> } | { error: string } | undefined,
  verified: boolean,
): MasterSetStatus['drift'] {
  if (!verified || !want) return { state: 'unknown', why: 'no verified master to compare the target with' };
  if ('error' in want) return { state: 'unknown', why: `the verified master cannot be written: ${want.error}` };
  const plan = target.plan(state, want.desired);
  if (plan.action === 'none') return { state: 'none' };
  if (plan.action === 'refuse') return { state: 'unknown', why: plan.why };
  return { state: 'drift', why: `${serviceId(target.service)} names ${target.current(state) ?? '(nothing)'}, the verified master needs ${want.desired.value}` };
}

type RoleAnswer = { reply: RoleReply; offset?: number; replicaOf?: string; linkState?: string };

/** ROLE, with what the operator's view shows beside the role: the offset and, for a replica, its master and link state. */
async function askRole(client: SentinelClient, node: Address): Promise<RoleAnswer> {
  let raw: unknown;
  try {
    raw = await client.command('node', node, ['ROLE']);
  } catch (err) {
    return { reply: { error: describeError(err, `node ${addressKey(node)}`) } };
  }
  const r = parseRole(raw);
  return 'master' in r.reply ? { ...r, replicaOf: addressKey(r.reply.master) } : r;
}

function nodeStatus(address: string, r: RoleAnswer, flags: string | undefined, masterOffset: number | undefined): NodeStatus {
  const n: NodeStatus = { address, role: 'error' in r.reply ? 'error' : r.reply.role };
  if ('error' in r.reply) n.error = r.reply.error;
  // A replica reports -1 until its first sync with the master completes: no offset yet.
  if (r.offset !== undefined && Number.isFinite(r.offset) && r.offset >= 0) n.offset = r.offset;
  if (n.role === 'slave' && n.offset !== undefined && masterOffset !== undefined) n.lagBytes = Math.max(0, masterOffset - n.offset);
  if (r.replicaOf) n.replicaOf = r.replicaOf;
  if (r.linkState) n.linkState = r.linkState;
  if (flags) n.sentinelFlags = flags;
  return n;
}

interface Replica {
  address: Address;
  flags: string;
}

async function askReplicas(client: SentinelClient, sentinel: Address, masterSet: string, servername?: string): Promise<{ replicas: Replica[] } | { error: string }> {
  try {
    const reply = await client.command('sentinel', sentinel, ['SENTINEL', 'REPLICAS', masterSet], servername);
    const replicas = parseReplicas(reply);
    if (!replicas) return { error: `unexpected reply ${JSON.stringify(reply)}` };
    return { replicas };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

function showVote(v: Vote): SentinelAnswer {
  return 'master' in v ? { sentinel: v.sentinel, master: addressKey(v.master) } : { sentinel: v.sentinel, error: v.error };
}
