// The seam between a decision and the object that carries it. A Target reads what the object
// says now, works out what it must say for a verified master, and writes it under the
// resourceVersion it read. reconcile.ts knows only this interface (target.ts); each kind of
// target is a file of its own (externalName.ts, endpointSlice.ts), chosen once per master set here.
import type { Config, MasterSetConfig } from '../config.ts';
import type { Kube } from '../kube/index.ts';
import { EndpointSliceTarget } from './endpointSlice.ts';
import { ExternalNameTarget } from './externalName.ts';
import type { Target } from './target.ts';

export { type Desired, type SwitchRecord, type Target, TargetError, type TargetState } from './target.ts';

export function makeTarget(set: MasterSetConfig, kube: Kube, config: Config): Target {
  switch (set.target.kind) {
    case 'externalName':
      return new ExternalNameTarget(set, kube, config.kubernetes.clusterDomain);
    case 'endpointSlice':
      return new EndpointSliceTarget(set, kube, config.kubernetes.timeoutMs);
  }
}
