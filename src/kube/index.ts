// Where decisions are applied: the target Service (ExternalName) or EndpointSlice, the pod lookup for IP-announcing
// Sentinels, and Events that tell the story on `kubectl describe svc`. Every Kubernetes error is
// turned into a sentence naming the object and, for 403, the missing RBAC verb.
//
// Requests go through client.ts (client-node's KubeConfig for config and auth, node:https with one
// keep-alive Agent for the calls). Reads are served from watch-fed caches (informer.ts) while a
// watch is open: the target Service and EndpointSlice by name, the pods of podNamespace by IP.
// `fresh: true` always reads the API (the retry after a 409, /readyz); a pod-by-IP cache miss
// always lists (a new pod may not have reached the cache yet).
import { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import type { Config } from '../config.ts';
import type { EndpointSliceState, ServicePortState, sliceContent } from '../decide/endpointSlice.ts';
import { withCauses } from '../errors.ts';
import { ApiError, KubeClient, statusMessage, TimeoutError } from './client.ts';
import { Informer, type InformerState, type KubeObject } from './informer.ts';

export { KubeConfig };

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

export type SliceRead = EndpointSliceState & { annotations?: Record<string, string> };

export interface ReadOptions {
  /** Read the API, not the cache (the retry after a 409 decides on this). */
  fresh?: boolean;
}

/** Where watch state changes are told (pino's Logger fits). */
export interface KubeLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface KubeOptions {
  log?: KubeLog;
  /** Default true: keep watch-fed caches of the objects read. false: every read goes to the API (as before). */
  watch?: boolean;
}

type PodEntry = PodMatch & { ip?: string };

// The JSON we read (only the fields used).
interface Meta {
  name?: string;
  namespace?: string;
  resourceVersion?: string;
  uid?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  deletionTimestamp?: string;
}
interface ServiceJson {
  metadata?: Meta;
  spec?: { type?: string; externalName?: string; clusterIP?: string; selector?: Record<string, string>; ports?: { name?: string; port: number; protocol?: string }[] };
}
interface SliceJson {
  metadata?: Meta;
  addressType?: string;
  endpoints?: { addresses: string[]; conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean } }[];
  ports?: { name?: string; port?: number; protocol?: string }[];
}
interface PodJson {
  metadata?: Meta;
  spec?: { hostname?: string; subdomain?: string };
  status?: { phase?: string; podIP?: string };
}

const enc = encodeURIComponent;
const servicesPath = (ns: string): string => `/api/v1/namespaces/${enc(ns)}/services`;
const slicesPath = (ns: string): string => `/apis/discovery.k8s.io/v1/namespaces/${enc(ns)}/endpointslices`;
const podsPath = (ns: string): string => `/api/v1/namespaces/${enc(ns)}/pods`;
const MERGE_PATCH = 'application/merge-patch+json';

export class Kube {
  readonly #client: KubeClient;
  readonly #watch: boolean;
  readonly identity: string;
  log: KubeLog | undefined;
  readonly #services = new Map<string, Informer<ServiceRead & { exists: true }>>();
  readonly #slices = new Map<string, Informer<SliceRead & { exists: true }>>();
  readonly #pods = new Map<string, Informer<PodEntry>>();

  constructor(kc: KubeConfig, timeoutMs: number, opts: KubeOptions = {}) {
    this.#client = new KubeClient(kc, timeoutMs);
    this.#watch = opts.watch ?? true;
    this.log = opts.log;
    this.identity = kc.getCurrentUser()?.name ?? 'sentinel-switch';
  }

  static fromConfig(cfg: Config['kubernetes'], opts: KubeOptions = {}): Kube {
    const kc = new KubeConfig();
    if (cfg.kubeconfig) kc.loadFromFile(cfg.kubeconfig);
    else kc.loadFromCluster();
    return new Kube(kc, cfg.timeoutMs, opts);
  }

  /** Requests sent so far, by method (WATCH for watch streams): for the bench and the tests. */
  get requests(): Readonly<Record<string, number>> {
    return this.#client.sent;
  }

  /** The caches and the state of their watches (`watching` means reads are served from them). */
  caches(): { what: string; state: InformerState; detail: string }[] {
    return [...this.#services.values(), ...this.#slices.values(), ...this.#pods.values()].map((i) => ({ what: i.what, ...i.state }));
  }

  /** Test seam: the cache of this Service/EndpointSlice/pod namespace (to hold its events: a lagging watch). */
  cache(kind: 'services' | 'endpointslices' | 'pods', key: string): { hold(): void; release(): void; synced: boolean } | undefined {
    return (kind === 'services' ? this.#services : kind === 'endpointslices' ? this.#slices : this.#pods).get(key);
  }

  /** Stops the watches and closes idle connections; a later read starts them again. */
  close(): void {
    for (const m of [this.#services, this.#slices, this.#pods]) {
      for (const i of m.values()) i.stop();
      m.clear();
    }
    this.#client.close();
  }

  /** The Service as both target kinds need it (type, externalName, selector, ports) plus its history and uid. */
  async getService(ref: ServiceRef, o: ReadOptions = {}): Promise<ServiceRead> {
    const what = { verb: 'get', resource: 'services', ref };
    return this.#readNamed(this.#services, ref, o, what, `${servicesPath(ref.namespace)}/${enc(ref.name)}`, servicesPath(ref.namespace), serviceRead);
  }

  /**
   * Points the Service at `target`. The resourceVersion read before the decision goes into the
   * patch, so the API server refuses it (409) if anyone wrote in between: a racing replica can
   * never overwrite a newer target with an older one.
   */
  async patchService(ref: ServiceRef, p: { target: string; resourceVersion: string; previousTarget?: string; reason: string; master: string; at: Date }): Promise<void> {
    const body = {
      metadata: {
        resourceVersion: p.resourceVersion,
        annotations: historyAnnotations(p),
      },
      spec: { externalName: p.target },
    };
    await this.#mergePatch(this.#services, { verb: 'patch', resource: 'services', ref }, `${servicesPath(ref.namespace)}/${enc(ref.name)}`, body);
  }

  /** The EndpointSlice we own (discovery.k8s.io/v1), with its switch-history annotations. */
  async getEndpointSlice(ref: ServiceRef, o: ReadOptions = {}): Promise<SliceRead> {
    const what = { verb: 'get', resource: 'endpointslices', ref, apiGroup: 'discovery.k8s.io' };
    return this.#readNamed(this.#slices, ref, o, what, `${slicesPath(ref.namespace)}/${enc(ref.name)}`, slicesPath(ref.namespace), sliceRead);
  }

  /**
   * Replaces the slice's endpoints and ports (a merge patch replaces lists whole) and records the
   * switch in its annotations, in one write guarded by the resourceVersion read before the
   * decision (409 if anyone wrote in between), as patchService does for an ExternalName.
   */
  async patchEndpointSlice(
    ref: ServiceRef,
    p: ReturnType<typeof sliceContent> & { resourceVersion: string; previousTarget?: string; reason: string; master: string; at: Date },
  ): Promise<void> {
    const body = {
      metadata: {
        resourceVersion: p.resourceVersion,
        labels: p.labels,
        annotations: historyAnnotations(p),
      },
      endpoints: p.endpoints,
      ports: p.ports,
    };
    await this.#mergePatch(this.#slices, { verb: 'patch', resource: 'endpointslices', ref, apiGroup: 'discovery.k8s.io' }, `${slicesPath(ref.namespace)}/${enc(ref.name)}`, body);
  }

  /**
   * The pod that has this IP; used when Sentinel announces IPs, which CoreDNS cannot serve as
   * ExternalName, and for every endpointSlice address. A live pod with this IP in the cache
   * answers at once; anything else (no such pod cached, only a finished one, no watch) is a LIST,
   * as a pod that has just started may not be in the cache yet.
   */
  async findPodByIp(namespace: string, ip: string): Promise<PodMatch | undefined> {
    const cache = this.#podCache(namespace);
    if (cache?.synced) {
      for (const p of cache.values()) if (p.ip === ip && p.live) return withoutIp(p);
    }
    const list = await this.#call({ verb: 'list', resource: 'pods', ref: { namespace, name: `(status.podIP=${ip})` } }, () =>
      this.#client.request<{ items?: PodJson[] }>('GET', podsPath(namespace), { query: { fieldSelector: `status.podIP=${ip}` } }),
    );
    // A finished pod can keep its old IP in status; only a live one counts.
    const pods = (list.items ?? []).map((p) => podEntry(p, namespace));
    const pod = pods.find((p) => p.live) ?? pods[0];
    return pod && withoutIp(pod);
  }

  /** A core/v1 Event on the Service, so `kubectl describe svc` shows each switch and each failure. */
  async recordEvent(ref: ServiceRef, e: { type: 'Normal' | 'Warning'; reason: string; message: string; uid?: string }): Promise<void> {
    const now = new Date().toISOString();
    const body = {
      apiVersion: 'v1',
      kind: 'Event',
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
    };
    await this.#call({ verb: 'create', resource: 'events', ref }, () => this.#client.request('POST', `/api/v1/namespaces/${enc(ref.namespace)}/events`, { body }));
  }

  /**
   * One named object: from the cache while its watch is open (unless `fresh`), else from the API.
   * The first read starts the cache, whose first load is this read.
   */
  async #readNamed<T extends { exists: true; resourceVersion: string }>(
    caches: Map<string, Informer<T>>,
    ref: ServiceRef,
    o: ReadOptions,
    what: Op,
    path: string,
    collection: string,
    pick: (x: never) => T,
  ): Promise<T | { exists: false }> {
    const id = serviceId(ref);
    const get = async (): Promise<KubeObject | undefined> => {
      try {
        return await this.#client.request<KubeObject>('GET', path);
      } catch (err) {
        const e = this.#explain(err, what);
        if (e.kind === 'not-found') return undefined;
        throw e;
      }
    };
    let cache = caches.get(id);
    if (!cache && this.#watch) {
      const c = new Informer<T>({
        client: this.#client,
        what: `${what.resource} ${id}`,
        path: collection,
        fieldSelector: `metadata.name=${ref.name}`,
        // The object itself (verb get, which we have), and its resourceVersion to watch from;
        // if it does not exist yet, the watch (no resourceVersion) sends it once it does.
        load: async () => {
          const obj = await get();
          return { objects: obj ? [obj] : [], resourceVersion: obj?.metadata?.resourceVersion };
        },
        pick: pick as (x: KubeObject) => T,
        onState: (state, detail) => this.#onState(`${what.resource} ${id}`, { ...what, verb: 'watch' }, state, detail),
      });
      caches.set(id, c);
      try {
        await c.firstLoad;
        return c.get(ref.name) ?? { exists: false };
      } catch (err) {
        throw this.#explain(err, what);
      }
    }
    if (cache?.synced && !o.fresh) {
      const hit = cache.get(ref.name);
      if (hit) return hit;
    }
    const obj = await get();
    if (!obj) return { exists: false };
    cache?.offer(obj, (t) => t.resourceVersion);
    return (pick as (x: KubeObject) => T)(obj);
  }

  /** A merge patch of one named object; its answer goes into the object's cache (newer than the watch until the watch catches up). */
  async #mergePatch<T extends { resourceVersion: string }>(caches: Map<string, Informer<T>>, op: Op, path: string, body: unknown): Promise<void> {
    const obj = await this.#call(op, () => this.#client.request<KubeObject>('PATCH', path, { body, contentType: MERGE_PATCH, query: { fieldManager: 'sentinel-switch' } }));
    caches.get(serviceId(op.ref))?.offer(obj, (t) => t.resourceVersion);
  }

  #podCache(namespace: string): Informer<PodEntry> | undefined {
    if (!this.#watch) return undefined;
    let cache = this.#pods.get(namespace);
    if (!cache) {
      const what: Op = { verb: 'list', resource: 'pods', ref: { namespace, name: '(all)' } };
      cache = new Informer<PodEntry>({
        client: this.#client,
        what: `pods in ${namespace}`,
        path: podsPath(namespace),
        load: async () => {
          const list = await this.#client.request<{ items?: KubeObject[]; metadata?: { resourceVersion?: string } }>('GET', podsPath(namespace));
          return { objects: list.items ?? [], resourceVersion: list.metadata?.resourceVersion };
        },
        pick: (p) => podEntry(p as PodJson, namespace),
        onState: (state, detail) => this.#onState(`pods in ${namespace}`, { ...what, verb: 'watch' }, state, detail),
      });
      this.#pods.set(namespace, cache);
    }
    return cache;
  }

  #onState(what: string, op: Op, state: InformerState, detail: string): void {
    if (state === 'watching') this.log?.info({ cache: what }, `watching ${what}: reads are served from the cache`);
    else if (state === 'forbidden') {
      const group = op.apiGroup ? ` in apiGroup "${op.apiGroup}"` : '';
      this.log?.warn({ cache: what, detail }, `RBAC: watch ${what} is forbidden; every reconcile reads the API directly (as without a cache): grant verb "watch" on "${op.resource}"${group} in namespace ${op.ref.namespace} to sentinel-switch's Role`);
    } else if (state === 'retrying') this.log?.warn({ cache: what, detail }, `watch of ${what} interrupted; reading the API directly until it is back`);
  }

  async #call<T>(op: Op, f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (err) {
      throw this.#explain(err, op);
    }
  }

  #explain(err: unknown, op: Op): KubeError {
    if (err instanceof KubeError) return err;
    const { verb, resource, ref } = op;
    const what = `${resource} ${serviceId(ref)}`;
    const group = op.apiGroup ? ` in apiGroup "${op.apiGroup}"` : '';
    if (err instanceof TimeoutError) return new KubeError('unavailable', err.message);
    if (err instanceof ApiError) {
      const detail = statusMessage(err.body) ?? err.message;
      switch (err.status) {
        case 403:
          return new KubeError('forbidden', `RBAC: ${verb} ${what} is forbidden (${detail}); grant verb "${verb}" on "${resource}"${group} in namespace ${ref.namespace} to sentinel-switch's Role`, 403);
        case 404:
          return new KubeError('not-found', `${what} not found`, 404);
        case 409:
          return new KubeError('conflict', `${what} changed while we decided (resourceVersion conflict); will decide again`, 409);
        case 422:
        case 400:
          return new KubeError('invalid', `API server rejected ${verb} ${what}: ${detail}`, err.status);
        case 401:
          return new KubeError('forbidden', `API server rejected our credentials for ${verb} ${what} (401): check the ServiceAccount token or kubeconfig`, 401);
        default:
          return new KubeError('unavailable', `API server answered ${err.status} to ${verb} ${what}: ${detail}`, err.status);
      }
    }
    return new KubeError('unavailable', `Kubernetes API unreachable for ${verb} ${what}: ${withCauses(err)}`);
  }
}

interface Op {
  verb: string;
  resource: string;
  ref: ServiceRef;
  apiGroup?: string;
}

function serviceRead(svc: ServiceJson): ServiceRead & { exists: true } {
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
}

function sliceRead(slice: SliceJson): SliceRead & { exists: true; resourceVersion: string } {
  return {
    exists: true,
    resourceVersion: slice.metadata?.resourceVersion ?? '',
    addressType: slice.addressType,
    labels: slice.metadata?.labels ?? {},
    endpoints: (slice.endpoints ?? []).map((e) => ({ addresses: e.addresses, ready: e.conditions?.ready, serving: e.conditions?.serving, terminating: e.conditions?.terminating })),
    ports: (slice.ports ?? []).map((p) => ({ name: p.name, port: p.port, protocol: p.protocol })),
    annotations: slice.metadata?.annotations,
  } as SliceRead & { exists: true; resourceVersion: string };
}

function podEntry(p: PodJson, namespace: string): PodEntry {
  return {
    name: p.metadata?.name ?? '',
    hostname: p.spec?.hostname,
    subdomain: p.spec?.subdomain,
    namespace,
    live: !['Succeeded', 'Failed'].includes(p.status?.phase ?? '') && !p.metadata?.deletionTimestamp,
    ip: p.status?.podIP,
  };
}

function withoutIp(p: PodEntry): PodMatch {
  const { ip: _ip, ...match } = p;
  return match;
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

