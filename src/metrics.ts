// Prometheus metrics, one registry per app so tests can build several apps in one process.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createMetrics(opts: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (opts.defaultMetrics !== false) collectDefaultMetrics({
      register: registry,
      prefix: 'sentinel_switch_',
      // The 10 ms default event-loop sampling alone costs ~2.5 mCPU on an otherwise idle service.
      eventLoopMonitoringPrecision: 100,
    });
  const registers = [registry];
  return {
    registry,
    switches: new Counter({
      name: 'sentinel_switch_switches_total',
      help: 'Writes that pointed the target Service at a new verified master.',
      labelNames: ['master_set'],
      registers,
    }),
    reconcileRuns: new Counter({
      name: 'sentinel_switch_reconcile_runs_total',
      help: 'Reconcile runs by what triggered them (hook, event, manual, timer, follow-up) and how they ended (switched, unchanged, unverified, failed).',
      labelNames: ['master_set', 'reason', 'result'],
      registers,
    }),
    hookToPatch: new Histogram({
      name: 'sentinel_switch_hook_to_patch_seconds',
      help: 'From a hook request or a Sentinel +switch-master event arriving to the Service patch being acknowledged by the API server.',
      labelNames: ['master_set'],
      buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    sentinelVotes: new Gauge({
      name: 'sentinel_switch_sentinel_agreeing',
      help: 'Sentinels that named the elected master in the last reconcile run.',
      labelNames: ['master_set'],
      registers,
    }),
    sentinelsAsked: new Gauge({
      name: 'sentinel_switch_sentinels_asked',
      help: 'Sentinels asked in the last reconcile run.',
      labelNames: ['master_set'],
      registers,
    }),
    sentinelDisagreements: new Counter({
      name: 'sentinel_switch_sentinel_disagreements_total',
      help: 'Reconcile runs in which at least one sentinel named another master or did not answer.',
      labelNames: ['master_set'],
      registers,
    }),
    staleEvents: new Counter({
      name: 'sentinel_switch_stale_events_total',
      help: 'Hook events whose "to" address the Sentinel majority and ROLE did not confirm (nothing was written for them).',
      labelNames: ['master_set'],
      registers,
    }),
    unauthorized: new Counter({
      name: 'sentinel_switch_unauthorized_requests_total',
      help: 'Requests refused for a missing or wrong bearer token.',
      labelNames: ['route'],
      registers,
    }),
    fences: new Counter({
      name: 'sentinel_switch_fences_total',
      help: 'Pauses of a master that must not acknowledge writes: early (at +selected-slave), switch (a stale master after a verified switch), return (a stale master answering again).',
      labelNames: ['master_set', 'reason'],
      registers,
    }),
    fenceKills: new Counter({
      name: 'sentinel_switch_fence_client_kills_total',
      help: 'Client connections closed on stale masters, so the applications reconnect through the stable name.',
      labelNames: ['master_set'],
      registers,
    }),
    fenceDemotions: new Counter({
      name: 'sentinel_switch_fence_demotions_total',
      help: 'Stale masters demoted by sentinel-switch (REPLICAOF the verified master).',
      labelNames: ['master_set'],
      registers,
    }),
    fenceUnpauses: new Counter({
      name: 'sentinel_switch_fence_unpauses_total',
      help: 'Pauses lifted, by why: demoted, replica, majority (the majority names it again), abort (failover aborted), expired (its own timeout).',
      labelNames: ['master_set', 'why'],
      registers,
    }),
    fenceErrors: new Counter({
      name: 'sentinel_switch_fence_errors_total',
      help: 'Fence steps that failed (NOPERM: the ACL user lacks a command; unreachable nodes are not counted, they are watched).',
      labelNames: ['master_set', 'step'],
      registers,
    }),
    sentinelEvents: new Counter({
      name: 'sentinel_switch_sentinel_events_total',
      help: 'Pub/sub events received from the sentinels, by kind.',
      labelNames: ['master_set', 'kind'],
      registers,
    }),
    lastSwitch: new Gauge({
      name: 'sentinel_switch_last_switch_timestamp_seconds',
      help: 'Unix time of the last switch made by this instance.',
      labelNames: ['master_set'],
      registers,
    }),
  };
}
export type Metrics = ReturnType<typeof createMetrics>;
