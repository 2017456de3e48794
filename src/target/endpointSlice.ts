// target.kind endpointSlice: a ClusterIP Service without selector, and ONE EndpointSlice we own
// (labels kubernetes.io/service-name, endpointslice.kubernetes.io/managed-by: sentinel-switch.io)
// that holds exactly the verified master's pod IP and port. kube-proxy routes the Service's
// cluster IP to it: the name applications resolve never changes, so no DNS TTL or cache is in
// the way of a switch. An address is written only once it is the IP of a live pod in
// podNamespace (a hostname is resolved first), never as Sentinel gave it.
//
// The switch history (annotations) lives on the EndpointSlice, written in the same patch as the
// endpoint and under the slice's resourceVersion: one failover is one write of one object. The
// Events go on the Service (reconcile.ts), so `kubectl describe svc` tells the story as for
// ExternalName.
import { lookup } from 'node:dns/promises';
import type { MasterSetConfig } from '../config.ts';
import { currentSliceValue, type EndpointSliceState, planEndpointSlice, type SelectorlessServiceState, servicePort, sliceContent, sliceValue } from '../decide/endpointSlice.ts';
import { type Address, classifyHost, type Plan } from '../decide/index.ts';
import { type Kube, type PodMatch, type ReadOptions, type ServiceRef, serviceId } from '../kube/index.ts';
import { withTimeout } from '../timeout.ts';
import { type Desired, type SwitchRecord, type Target, TargetError, type TargetState } from './target.ts';

type State = TargetState & { service: SelectorlessServiceState; slice: EndpointSliceState };
type SliceDesired = Desired & { ip: string; port: number; pod: PodMatch };

export class EndpointSliceTarget implements Target<State, SliceDesired> {
  readonly kind = 'endpointSlice' as const;
  readonly service: ServiceRef;
  readonly slice: ServiceRef;
  readonly #set: MasterSetConfig;
  readonly #kube: Kube;
  readonly #resolveTimeoutMs: number;

  constructor(set: MasterSetConfig, kube: Kube, resolveTimeoutMs: number) {
    this.#set = set;
    this.service = { namespace: set.target.namespace, name: set.target.name };
    this.slice = { namespace: set.target.namespace, name: set.target.endpointSliceName ?? set.target.name };
    this.#kube = kube;
    this.#resolveTimeoutMs = resolveTimeoutMs;
  }

  /** The Service (type, selector, port, uid for Events) and the slice, read together. */
  async read(opts?: ReadOptions): Promise<State> {
    const [service, slice] = await Promise.all([this.#kube.getService(this.service, opts), this.#kube.getEndpointSlice(this.slice, opts)]);
    return { exists: service.exists, uid: service.exists ? service.uid : undefined, annotations: slice.exists ? slice.annotations : undefined, service, slice };
  }

  /** The master's IP (a hostname resolved), once it is the IP of a live pod in podNamespace. */
  async desired(master: Address): Promise<SliceDesired> {
    const host = classifyHost(master.host);
    if (host.kind === 'invalid') throw new TargetError(`Sentinel majority named ${host.why}`);
    const ip = host.kind === 'ip' ? host.ip : await this.#resolve(host.name);
    const namespace = this.#set.podNamespace ?? this.service.namespace;
    const pod = await this.#kube.findPodByIp(namespace, ip);
    const named = host.kind === 'hostname' ? `${host.name} (${ip})` : ip;
    if (!pod?.live) {
      throw new TargetError(
        `Sentinel majority names ${named}, and no live pod in namespace ${namespace} has IP ${ip}${pod ? ` (pod ${pod.name} has it but has finished or is being deleted)` : ''}; an address is written to EndpointSlice ${serviceId(this.slice)} only when it is a pod's: set podNamespace to the Redis pods' namespace`,
      );
    }
    return { value: sliceValue({ ip, port: master.port }), ip, port: master.port, pod };
  }

  current(state: State): string | undefined {
    return currentSliceValue(state.slice);
  }

  plan(state: State, want: SliceDesired): Plan {
    return planEndpointSlice(state.service, state.slice, want, { service: serviceId(this.service), slice: serviceId(this.slice) });
  }

  async write(state: State, want: SliceDesired, plan: Extract<Plan, { action: 'patch' }>, record: SwitchRecord): Promise<void> {
    const port = servicePort(state.service, serviceId(this.service));
    if (typeof port === 'string') throw new TargetError(port); // plan() refused already; kept for the type
    await this.#kube.patchEndpointSlice(this.slice, {
      ...sliceContent(this.service.name, port, { ip: want.ip, port: want.port, pod: want.pod }),
      resourceVersion: plan.resourceVersion,
      previousTarget: plan.previousTarget,
      reason: record.reason,
      master: record.master,
      at: record.at,
    });
  }

  /** A hostname through the system resolver (the pod's own DNS); it must name exactly one address. */
  async #resolve(name: string): Promise<string> {
    let found: { address: string }[];
    try {
      found = await withTimeout(lookup(name, { all: true }), this.#resolveTimeoutMs, () => new Error(`no answer within ${this.#resolveTimeoutMs} ms`));
    } catch (err) {
      throw new TargetError(`Sentinel majority names ${name}, which does not resolve (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); nothing written`);
    }
    const addresses = [...new Set(found.map((a) => a.address))];
    if (addresses.length !== 1) {
      throw new TargetError(`Sentinel majority names ${name}, which resolves to ${addresses.length} addresses (${addresses.join(', ')}); the master's name must name one pod`);
    }
    return addresses[0]!;
  }
}
