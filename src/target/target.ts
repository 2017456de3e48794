// What every kind of target implements (see index.ts for the seam and its factory).
import type { MasterSetConfig } from '../config.ts';
import type { Address, Plan } from '../decide/index.ts';
import type { ReadOptions, ServiceRef } from '../kube/index.ts';

/** What the target object says now, as far as a decision and the switch history need. */
export interface TargetState {
  exists: boolean;
  /** The Service's uid, for Events (`kubectl describe svc`). */
  uid?: string;
  /** The Service's annotations: the switch history (kube/index.ts `annotations`). */
  annotations?: Record<string, string>;
}

/** What the target must say for a master; `value` is how logs, Events and annotations show it. */
export interface Desired {
  value: string;
}

/** What a write records beside the new value (the Service's annotations, the Event). */
export interface SwitchRecord {
  reason: string;
  /** The verified master as host:port. */
  master: string;
  at: Date;
}

export interface Target<S extends TargetState = TargetState, D extends Desired = Desired> {
  readonly kind: MasterSetConfig['target']['kind'];
  /** The Service that users connect to and that carries the history. */
  readonly service: ServiceRef;
  /** Read BEFORE the sentinels are asked: its resourceVersion guards the write (reconcile.ts). */
  read(opts?: ReadOptions): Promise<S>;
  /** What the target must hold for this verified master; throws TargetError when nothing valid can be written. */
  desired(master: Address): Promise<D>;
  /** Pure: what the target names now, shown as `Desired.value` shows it; undefined when it names nothing. */
  current(state: S): string | undefined;
  /** Pure: what to do, given what is there and what must be. */
  plan(state: S, want: D): Plan;
  /** Writes `want`; a write after `state` was read by anyone else fails with a KubeError 'conflict'. */
  write(state: S, want: D, plan: Extract<Plan, { action: 'patch' }>, record: SwitchRecord): Promise<void>;
}

/** Nothing valid can be written for this master; the message says what the operator must change. */
export class TargetError extends Error {}
