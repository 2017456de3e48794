// target.kind externalName (the default): an ExternalName Service whose spec.externalName is the
// master's DNS name. An IP from Sentinel is mapped to its pod's stable DNS name (CoreDNS answers
// nothing for an IP in externalName), never written as is.
import type { MasterSetConfig } from '../config.ts';
import { type Address, classifyHost, planService, type Plan, podDnsName, qualifyServiceName, type ServiceState } from '../decide/index.ts';
import type { Kube, ReadOptions, ServiceRef } from '../kube/index.ts';
import { type Desired, type SwitchRecord, type Target, TargetError, type TargetState } from './target.ts';

type State = TargetState & ServiceState;

export class ExternalNameTarget implements Target<State> {
  readonly kind = 'externalName' as const;
  readonly service: ServiceRef;
  readonly #set: MasterSetConfig;
  readonly #kube: Kube;
  readonly #clusterDomain: string;

  constructor(set: MasterSetConfig, kube: Kube, clusterDomain: string) {
    this.#set = set;
    this.service = set.target;
    this.#kube = kube;
    this.#clusterDomain = set.clusterDomain ?? clusterDomain;
  }

  read(opts?: ReadOptions): Promise<State> {
    return this.#kube.getService(this.service, opts);
  }

  /** A DNS name as is (a `.svc` name completed with the cluster domain); an IP through its pod's DNS name, never the IP itself. */
  async desired(master: Address): Promise<Desired> {
    const host = classifyHost(master.host);
    if (host.kind === 'hostname') return { value: qualifyServiceName(host.name, this.#clusterDomain) };
    if (host.kind === 'invalid') throw new TargetError(`Sentinel majority named ${host.why}`);
    const namespace = this.#set.podNamespace ?? this.service.namespace;
    const pod = await this.#kube.findPodByIp(namespace, host.ip);
    if (!pod) {
      throw new TargetError(
        `Sentinel announces IP ${host.ip} and no pod in namespace ${namespace} has it; an IP is never written to externalName (CoreDNS answers nothing for it): set podNamespace, or make Sentinel announce hostnames (Bitnami: useHostnames: true)`,
      );
    }
    const name = podDnsName(pod, this.#clusterDomain);
    if (!name) throw new TargetError(`pod ${namespace}/${pod.name} has IP ${host.ip} but no spec.hostname/spec.subdomain, so it has no DNS name; run Redis as a StatefulSet with a headless Service`);
    return { value: name };
  }

  current(state: State): string | undefined {
    return state.exists ? state.externalName : undefined;
  }

  plan(state: State, want: Desired): Plan {
    return planService(state, want.value, `${this.service.namespace}/${this.service.name}`);
  }

  async write(_state: State, want: Desired, plan: Extract<Plan, { action: 'patch' }>, record: SwitchRecord): Promise<void> {
    await this.#kube.patchService(this.service, {
      target: want.value,
      resourceVersion: plan.resourceVersion,
      previousTarget: plan.previousTarget,
      reason: record.reason,
      master: record.master,
      at: record.at,
    });
  }
}
