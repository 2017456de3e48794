// Where decisions are applied: the target Service (ExternalName) or EndpointSlice, the pod lookup for IP-announcing
// Sentinels, and Events that tell the story on `kubectl describe svc`. Every Kubernetes error is
// turned into a sentence naming the object and, for 403, the missing RBAC verb.
import { ApiException, CoreV1Api, DiscoveryV1Api, KubeConfig, PatchStrategy, setHeaderOptions, type V1EndpointSlice, type V1Service } from '@kubernetes/client-node';
import type { Config } from '../config.ts';
import type { EndpointSliceState, ServicePortState, sliceContent } from '../decide/endpointSlice.ts';
import { withTimeout } from '../timeout.ts';

export const ANNOTATION_PREFIX = 'sentinel-switch.io/';
export const annotations = {
  switchedAt: `${ANNOTATION_PREFIX}last-switch-at`,
  previousTarget: `${ANNOTATION_PREFIX}previous-target`,
  reason: `${ANNOTATION_PREFIX}last-switch-reason`,
  master: `${ANNOTATION_PREFIX}master`,
} as const;

export interface ServiceRef {
  namespace: string;
  name: string;
}
export const serviceId = (s: ServiceRef): string => `${s.namespace}/${s.name}`;

/**
 * client-node 2.0 builds a new undici Agent for every request, so every call paid a TCP + TLS
 * handshake (measured: 100 GETs left 100 connections behind). One Agent per KubeConfig keeps a
 * connection open across calls. The token is still read per request (it is a header, not part
 * of the connection), so a rotated ServiceAccount token keeps working.
 */
export class PooledKubeConfig extends KubeConfig {
  #dispatcher: unknown;
  constructor() {
    super();
    const self = this as unknown as { createDispatcher: (...args: unknown[]) => unknown };
    const create = self.createDispatcher.bind(this);
    self.createDispatcher = (...args: unknown[]) => (this.#dispatcher ??= create(...args));
  }
}

/** An API failure, classified so that reconcile can say "retry later" (unavailable) or "operator must act". */
export class KubeError extends Error {
  readonly kind: 'forbidden' | 'conflict' | 'not-found' | 'invalid' | 'unavailable';
  readonly status: number | undefined;
  constructor(kind: KubeError['kind'], message: string, status?: number) {
    super(message);
    this.kind = kind;
    this.status = status;
  }
}

export interface PodMatch {
  name: string;
  hostname?: string;
  subdomain?: string;
  namespace: string;
  /** Not finished (Succeeded/Failed) and not being deleted. */
  live: boolean;
}

/** What getService returns: assignable to the ExternalName and the endpointSlice decisions' Service state. */
export type ServiceRead =
  | { exists: false }
  | {
      exists: true;
      type: string;
      externalName?: string;
      clusterIP?: string;
      selector?: Record<string, string>;
      ports: ServicePortState[];
      resourceVersion: string;
      uid?: string;
      annotations?: Record<string, string>;
    };

export class Kube {
  readonly #api: CoreV1Api;
  readonly #discovery: DiscoveryV1Api;
  readonly #timeoutMs: number;
  readonly identity: string;

  constructor(kc: KubeConfig, timeoutMs: number) {
    this.#api = kc.makeApiClient(CoreV1Api);
    this.#discovery = kc.makeApiClient(DiscoveryV1Api);
    this.#timeoutMs = timeoutMs;
    this.identity = kc.getCurrentUser()?.name ?? 'sentinel-switch';
  }

  static fromConfig(cfg: Config['kubernetes']): Kube {
    const kc = new PooledKubeConfig();
    if (cfg.kubeconfig) kc.loadFromFile(cfg.kubeconfig);
    else kc.loadFromCluster();
    return new Kube(kc, cfg.timeoutMs);
  }

  /** The Service as both target kinds need it (type, externalName, selector, ports) plus its history and uid. */
  async getService(ref: ServiceRef): Promise<ServiceRead> {
    try {
      const svc = await this.#call(this.#api.readNamespacedService({ namespace: ref.namespace, name: ref.name }));
      return {
        exists: true,
        type: svc.spec?.type ?? 'ClusterIP',
        externalName: svc.spec?.externalName,
        clusterIP: svc.spec?.clusterIP,
        selector: svc.spec?.selector,
        ports: (svc.spec?.ports ?? []).map((p) => ({ name: p.name, port: p.port, protocol: p.protocol })),
        resourceVersion: svc.metadata?.resourceVersion ?? '',
        uid: svc.metadata?.uid,
        annotations: svc.metadata?.annotations,
      };
    } catch (err) {
      const e = this.#explain(err, 'get', 'services', ref);
      if (e.kind === 'not-found') return { exists: false };
      throw e;
    }
  }

  /**
   * Points the Service at `target`. The resourceVersion read before the decision goes into the
   * patch, so the API server refuses it (409) if anyone wrote in between: a racing replica can
   * never overwrite a newer target with an older one.
   */
  async patchService(ref: ServiceRef, p: { target: string; resourceVersion: string; previousTarget?: string; reason: string; master: string; at: Date }): Promise<V1Service> {
    const body = {
      metadata: {
        resourceVersion: p.resourceVersion,
        annotations: historyAnnotations(p),
      },
      spec: { externalName: p.target },
    };
    try {
      return await this.#call(
        this.#api.patchNamespacedService({ namespace: ref.namespace, name: ref.name, body, fieldManager: 'sentinel-switch' }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)),
      );
    } catch (err) {
      throw this.#explain(err, 'patch', 'services', ref);
    }
  }

  /** The EndpointSlice we own (discovery.k8s.io/v1), with its switch-history annotations. */
  async getEndpointSlice(ref: ServiceRef): Promise<EndpointSliceState & { annotations?: Record<string, string> }> {
    try {
      const slice = await this.#call(this.#discovery.readNamespacedEndpointSlice({ namespace: ref.namespace, name: ref.name }));
      return {
        exists: true,
        resourceVersion: slice.metadata?.resourceVersion ?? '',
        addressType: slice.addressType,
        labels: slice.metadata?.labels ?? {},
        endpoints: (slice.endpoints ?? []).map((e) => ({ addresses: e.addresses, ready: e.conditions?.ready, serving: e.conditions?.serving, terminating: e.conditions?.terminating })),
        ports: (slice.ports ?? []).map((p) => ({ name: p.name, port: p.port, protocol: p.protocol })),
        annotations: slice.metadata?.annotations,
      };
    } catch (err) {
      const e = this.#explain(err, 'get', 'endpointslices', ref, 'discovery.k8s.io');
      if (e.kind === 'not-found') return { exists: false };
      throw e;
    }
  }

  /**
   * Replaces the slice's endpoints and ports (a merge patch replaces lists whole) and records the
   * switch in its annotations, in one write guarded by the resourceVersion read before the
   * decision (409 if anyone wrote in between), as patchService does for an ExternalName.
   */
  async patchEndpointSlice(
    ref: ServiceRef,
    p: ReturnType<typeof sliceContent> & { resourceVersion: string; previousTarget?: string; reason: string; master: string; at: Date },
  ): Promise<V1EndpointSlice> {
    const body = {
      metadata: {
        resourceVersion: p.resourceVersion,
        labels: p.labels,
        annotations: historyAnnotations(p),
      },
      endpoints: p.endpoints,
      ports: p.ports,
    };
    try {
      return await this.#call(
        this.#discovery.patchNamespacedEndpointSlice({ namespace: ref.namespace, name: ref.name, body, fieldManager: 'sentinel-switch' }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)),
      );
    } catch (err) {
      throw this.#explain(err, 'patch', 'endpointslices', ref, 'discovery.k8s.io');
    }
  }

  /** The pod that has this IP; used when Sentinel announces IPs, which CoreDNS cannot serve as ExternalName. */
  async findPodByIp(namespace: string, ip: string): Promise<PodMatch | undefined> {
    try {
      const list = await this.#call(this.#api.listNamespacedPod({ namespace, fieldSelector: `status.podIP=${ip}` }));
      // A finished pod can keep its old IP in status; only a live one counts.
      const live = list.items.filter((p) => !['Succeeded', 'Failed'].includes(p.status?.phase ?? '') && !p.metadata?.deletionTimestamp);
      const pod = live[0] ?? list.items[0];
      if (!pod) return undefined;
      return { name: pod.metadata?.name ?? '', hostname: pod.spec?.hostname, subdomain: pod.spec?.subdomain, namespace, live: live.length > 0 };
    } catch (err) {
      throw this.#explain(err, 'list', 'pods', { namespace, name: `(status.podIP=${ip})` });
    }
  }

  /** A core/v1 Event on the Service, so `kubectl describe svc` shows each switch and each failure. */
  async recordEvent(ref: ServiceRef, e: { type: 'Normal' | 'Warning'; reason: string; message: string; uid?: string }): Promise<void> {
    const now = new Date();
    try {
      await this.#call(
        this.#api.createNamespacedEvent({
          namespace: ref.namespace,
          body: {
            metadata: { generateName: `${ref.name}.`, namespace: ref.namespace },
            involvedObject: { apiVersion: 'v1', kind: 'Service', name: ref.name, namespace: ref.namespace, uid: e.uid },
            type: e.type,
            reason: e.reason,
            message: e.message.slice(0, 1024),
            source: { component: 'sentinel-switch' },
            reportingComponent: 'sentinel-switch',
            reportingInstance: process.env.HOSTNAME ?? 'sentinel-switch',
            firstTimestamp: now,
            lastTimestamp: now,
            count: 1,
          },
        }),
      );
    } catch (err) {
      throw this.#explain(err, 'create', 'events', { namespace: ref.namespace, name: ref.name });
    }
  }

  #call<T>(p: Promise<T>): Promise<T> {
    return withTimeout(p, this.#timeoutMs, () => new KubeError('unavailable', `Kubernetes API did not answer within ${this.#timeoutMs} ms`));
  }

  #explain(err: unknown, verb: string, resource: string, ref: ServiceRef, apiGroup = ''): KubeError {
    if (err instanceof KubeError) return err;
    const what = `${resource} ${serviceId(ref)}`;
    const group = apiGroup ? ` in apiGroup "${apiGroup}"` : '';
    if (err instanceof ApiException) {
      const detail = apiMessage(err.body) ?? err.message;
      switch (err.code) {
        case 403:
          return new KubeError('forbidden', `RBAC: ${verb} ${what} is forbidden (${detail}); grant verb "${verb}" on "${resource}"${group} in namespace ${ref.namespace} to sentinel-switch's Role`, 403);
        case 404:
          return new KubeError('not-found', `${what} not found`, 404);
        case 409:
          return new KubeError('conflict', `${what} changed while we decided (resourceVersion conflict); will decide again`, 409);
        case 422:
        case 400:
          return new KubeError('invalid', `API server rejected ${verb} ${what}: ${detail}`, err.code);
        case 401:
          return new KubeError('forbidden', `API server rejected our credentials for ${verb} ${what} (401): check the ServiceAccount token or kubeconfig`, 401);
        default:
          return new KubeError('unavailable', `API server answered ${err.code} to ${verb} ${what}: ${detail}`, err.code);
      }
    }
    return new KubeError('unavailable', `Kubernetes API unreachable for ${verb} ${what}: ${withCauses(err)}`);
  }
}

/** The switch history a write records on the object it changes (the Service, or the EndpointSlice). */
function historyAnnotations(p: { previousTarget?: string; reason: string; master: string; at: Date }): Record<string, string> {
  return {
    [annotations.switchedAt]: p.at.toISOString(),
    [annotations.previousTarget]: p.previousTarget ?? '',
    [annotations.reason]: p.reason,
    [annotations.master]: p.master,
  };
}

/**
 * "fetch failed" plus what undici keeps in `cause` (connect ECONNREFUSED ..., a certificate
 * error, getaddrinfo ENOTFOUND ...); an AggregateError (several addresses tried) lists each.
 */
export function withCauses(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e && depth < 5; depth++) {
    const x = e as Error & { code?: string; errors?: unknown[] };
    const own = x.message || (Array.isArray(x.errors) ? x.errors.map((i) => (i as Error)?.message ?? String(i)).join(', ') : '') || x.code || String(e);
    const text = x.code && !own.includes(x.code) ? `${own} (${x.code})` : own;
    if (!parts.includes(text)) parts.push(text);
    e = x.cause;
  }
  return parts.join(': ') || String(err);
}

function apiMessage(body: unknown): string | undefined {
  if (typeof body === 'string') {
    try {
      return (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      return body;
    }
  }
  if (body && typeof body === 'object' && 'message' in body) return String((body as { message: unknown }).message);
  return undefined;
}
