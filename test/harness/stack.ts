// The whole sandbox of one scenario: real Redis + 3 Sentinels running our hook, a namespace in
// the real API server with the ExternalName Service, Ready Pod objects for the Redis nodes and
// the headless Service selecting them (so the IP -> pod DNS name mapping is exercised and,
// inside the sandbox namespace, CoreDNS resolves the pods' names), the shipped RBAC
// (deploy/rbac.yaml) with a minted ServiceAccount token, and sentinel-switch as its own process
// using only that token. With `redis: { announce: 'hostname' }` Sentinel works with those names.
// Used by the end-to-end tests, `npm run demo`, `npm run bench` and `npm run chaos`.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import {
  type Cluster, createEndpointSlice, createExternalNameService, createHeadlessService, createNamespace, createPod, createSelectorlessService, kubectl, serviceAccountKubeconfig, waitForName,
} from './k8s.ts';
import { type RedisNode, type RedisSandbox, startRedisSandbox } from './redis.ts';
import { externalNameResolver } from '../../scripts/lib/app-view.ts';
import { systemResolve } from './app-client.ts';
import { inSandboxNamespace } from './netns.ts';
import { resumableWatch } from './watch.ts';
import { repoRoot, type SwitchConfigInput, type SwitchProcess, startSwitch } from './switch.ts';

export const HEADLESS = 'redis-headless';
export const TARGET = 'redis-master';

export interface StackOptions {
  dir: string;
  cluster: Cluster;
  /** Start sentinel-switch (default true). */
  startService?: boolean;
  /** The hook script Sentinel runs; default scripts/client-reconfig.sh. */
  hookScript?: string;
  /** Environment of the hook, on top of URL and token. */
  hookEnv?: Record<string, string>;
  /** Overrides of the sentinel-switch config. */
  config?: Partial<SwitchConfigInput>;
  /** Verbs removed from deploy/rbac.yaml before it is applied (the RBAC test). */
  withoutVerbs?: { resource: string; verb: string }[];
  /**
   * Redis sandbox options. announce 'hostname' (Bitnami's default) needs the cluster's data
   * plane (the sandbox namespace): the pods and the headless Service are created, and their names
   * resolve, before Redis and Sentinel start.
   */
  redis?: { downAfterMs?: number; failoverTimeoutMs?: number; announce?: 'ip' | 'hostname' };
  /**
   * target.kind of sentinel-switch (default externalName). endpointSlice: the target is a
   * selector-less ClusterIP Service plus the EndpointSlice of the same name, holding the master's
   * IP (needs the data plane: the API server refuses loopback addresses in a slice).
   */
  target?: 'externalName' | 'endpointSlice';
  /** target endpointSlice: the Service is headless (clusterIP: None, the chart's target.headless). */
  headless?: boolean;
}

/** One change of the target EndpointSlice (target.kind endpointSlice), from an API watch. */
export interface SliceChange {
  atMs: number;
  type: string;
  /** Each endpoint's first address, in order. */
  addresses: string[];
  ready: (boolean | undefined)[];
  port?: number;
  resourceVersion?: string;
  annotations: Record<string, string>;
}

export interface ServiceChange {
  atMs: number;
  type: string;
  externalName?: string;
  resourceVersion?: string;
  annotations: Record<string, string>;
}

export interface Stack {
  namespace: string;
  token: string;
  adminKubeconfig: string;
  /** The ServiceAccount kubeconfig sentinel-switch runs with. */
  switchKubeconfig: string;
  redis: RedisSandbox;
  service?: SwitchProcess;
  /** The DNS name the Service must name for a node. */
  dnsName(node: RedisNode | { host: string }): string;
  /** The stable name applications use: the target Service's DNS name. */
  stableName: string;
  /**
   * The stable name -> an address, for startAppWriter's `resolve`: the system resolver (CoreDNS)
   * inside the sandbox's namespace; on loopback, the node the Service names now (API watch).
   */
  resolve(host: string): Promise<string>;
  /** The config sentinel-switch runs with (also for starting more replicas). */
  switchConfig: SwitchConfigInput;
  /** Starts a(nother) sentinel-switch process; `configOverrides` go on top of switchConfig for this one only. */
  startService(name?: string, configOverrides?: Partial<SwitchConfigInput>): Promise<SwitchProcess>;
  readService(): Promise<{ externalName?: string; resourceVersion: string; annotations: Record<string, string> }>;
  /** Every change of the Service seen through an API watch, timestamped on arrival. */
  serviceChanges: ServiceChange[];
  /** Resolves once the Service names `externalName` (from the watch), or rejects after timeoutMs. */
  waitForTarget(externalName: string, timeoutMs: number): Promise<ServiceChange>;
  /** target endpointSlice: every change of the EndpointSlice, from an API watch ([] otherwise). */
  sliceChanges: SliceChange[];
  /** target endpointSlice: resolves once the slice holds exactly `ip` (from the watch), or rejects. */
  waitForSlice(ip: string, timeoutMs: number): Promise<SliceChange>;
  /** target endpointSlice: the slice as the API server has it now. */
  readEndpointSlice(): Promise<{ addresses: string[]; port?: number; resourceVersion: string; labels: Record<string, string>; annotations: Record<string, string> }>;
  /** target endpointSlice: the Service's cluster IP (kube-proxy routes it to the slice); 'None' when headless. */
  clusterIP?: string;
  stop(): Promise<void>;
}

export async function startStack(opts: StackOptions): Promise<Stack> {
  mkdirSync(opts.dir, { recursive: true });
  const admin = opts.cluster.kubeconfigPath;
  const namespace = await createNamespace(admin, 'ss');
  const token = randomBytes(24).toString('hex');
  const clusterDomain = 'cluster.local';
  const switchPort = await (await import('./switch.ts')).freePort();
  const url = `http://127.0.0.1:${switchPort}`;

  const announce = opts.redis?.announce ?? 'ip';
  const kind = opts.target ?? 'externalName';
  if (kind === 'endpointSlice' && !opts.cluster.dataPlane) {
    throw new Error("stack: target 'endpointSlice' needs the cluster's data plane (the API server refuses loopback addresses in an EndpointSlice): run inside the sandbox namespace (scripts/dev.sh test|run)");
  }
  if (opts.headless && kind !== 'endpointSlice') throw new Error("stack: headless is only for target 'endpointSlice'");
  if (announce === 'hostname' && !opts.cluster.dataPlane) {
    throw new Error("stack: redis.announce 'hostname' needs the cluster's DNS: run inside the sandbox namespace (scripts/dev.sh test|run)");
  }
  const podDnsName = (name: string) => `${name}.${HEADLESS}.${namespace}.svc.${clusterDomain}`;
  const redis = await startRedisSandbox({
    dir: join(opts.dir, 'redis'),
    hook: {
      script: opts.hookScript ?? join(repoRoot, 'scripts/client-reconfig.sh'),
      env: { SENTINEL_SWITCH_URL: url, SENTINEL_SWITCH_TOKEN: token, SENTINEL_SWITCH_RETRY_SECONDS: '20', ...opts.hookEnv },
    },
    ...opts.redis,
    dnsName: podDnsName,
    // The Redis nodes as the API server knows them, before they start (a StatefulSet's pods exist
    // before their containers do): Ready pods with their IPs and the headless Service that
    // gives them names. Announcing names, the sentinels are pods of that Service too, and nothing
    // starts before every name resolves.
    beforeStart: async (plan) => {
      await createHeadlessService(admin, namespace, HEADLESS, { app: 'redis' }, [{ name: 'redis', port: plan.nodes[0]!.port }]);
      const pods = announce === 'hostname' ? [...plan.nodes, ...plan.sentinels] : plan.nodes;
      for (const p of pods) {
        await createPod(admin, namespace, { name: p.name, hostname: p.name, subdomain: HEADLESS, podIP: p.host, labels: { app: 'redis' } });
      }
      if (announce === 'hostname') await Promise.all(pods.map((p) => waitForName(p.announced, [p.host], 30_000)));
    },
  });
  const nodeOf = (n: { host: string }): RedisNode => {
    const node = redis.nodes.find((x) => x.host === n.host || x.announced === n.host);
    if (!node) throw new Error(`no Redis node at ${n.host}`);
    return node;
  };
  const dnsName = (n: { host: string }): string => podDnsName(nodeOf(n).name);
  let clusterIP: string | undefined;
  if (kind === 'endpointSlice') {
    // As the chart creates them: the Service's port name is the slice's port name.
    const port = { name: 'tcp-redis', port: redis.nodes[0]!.port };
    clusterIP = await createSelectorlessService(admin, namespace, TARGET, [port], { headless: opts.headless === true });
    await createEndpointSlice(admin, namespace, { name: TARGET, service: TARGET, port, addresses: [nodeOf(await redis.masterByMajority()).host] });
  } else {
    await createExternalNameService(admin, namespace, TARGET, dnsName(await redis.masterByMajority()));
  }

  // The RBAC we ship, exactly: sentinel-switch runs with a token of that ServiceAccount only.
  const rbac = prepareRbac(readFileSync(join(repoRoot, 'deploy/rbac.yaml'), 'utf8'), namespace, opts.withoutVerbs ?? []);
  await kubectl(admin, ['apply', '-n', namespace, '-f', '-'], rbac);
  const switchKubeconfig = await serviceAccountKubeconfig(opts.cluster, namespace, 'sentinel-switch');

  const switchConfig: SwitchConfigInput = {
    reconcileIntervalSeconds: 30,
    logLevel: 'debug',
    kubernetes: { kubeconfig: switchKubeconfig, clusterDomain, timeoutMs: 3_000 },
    masterSets: [
      {
        name: redis.masterSet,
        // What Sentinel itself announces: IPs, or the sentinels' pod DNS names.
        sentinels: redis.sentinels.map((s) => `${s.announced}:${s.port}`),
        sentinelAuth: redis.sentinelPassword ? { password: { env: 'SENTINEL_PASSWORD' } } : {},
        redisAuth: { password: { env: 'REDIS_PASSWORD' } },
        target: { ...(kind === 'endpointSlice' ? { kind } : {}), namespace, name: TARGET },
      },
    ],
    ...opts.config,
  };

  const changes: ServiceChange[] = [];
  const waiters = new Set<() => void>();
  const watch = await resumableWatch(admin, `/api/v1/namespaces/${namespace}/services`, { fieldSelector: `metadata.name=${TARGET}` }, (type, obj, atMs) => {
    changes.push({ atMs, type, externalName: obj.spec?.externalName, resourceVersion: obj.metadata?.resourceVersion, annotations: obj.metadata?.annotations ?? {} });
    for (const w of waiters) w();
  });

  const slices: SliceChange[] = [];
  const sliceWatch = kind === 'endpointSlice'
    ? await resumableWatch(admin, `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`, { fieldSelector: `metadata.name=${TARGET}` }, (type, obj, atMs) => {
        const o = obj as typeof obj & { endpoints?: { addresses: string[]; conditions?: { ready?: boolean } }[]; ports?: { port?: number }[] };
        slices.push({
          atMs, type, addresses: (o.endpoints ?? []).map((e) => e.addresses[0]!), ready: (o.endpoints ?? []).map((e) => e.conditions?.ready),
          port: o.ports?.[0]?.port, resourceVersion: o.metadata?.resourceVersion, annotations: o.metadata?.annotations ?? {},
        });
        for (const w of waiters) w();
      })
    : undefined;

  const stableName = `${TARGET}.${namespace}.svc.${clusterDomain}`;
  // Inside the sandbox's namespace the name goes through CoreDNS like a pod's; on loopback it is
  // emulated from the Service's externalName (the API watch above).
  const resolve = inSandboxNamespace()
    ? systemResolve
    : externalNameResolver({ name: stableName, nodes: redis.nodes, dnsName, current: () => [...changes].reverse().find((c) => c.type !== 'DELETED')?.externalName });

  const processes: SwitchProcess[] = [];
  const stack: Stack = {
    namespace,
    token,
    adminKubeconfig: admin,
    switchKubeconfig,
    redis,
    dnsName,
    stableName,
    resolve,
    switchConfig,
    serviceChanges: changes,
    sliceChanges: slices,
    clusterIP,
    async startService(name = 'sentinel-switch', configOverrides) {
      const config = configOverrides ? { ...switchConfig, ...configOverrides } : switchConfig;
      const p = await startSwitch({ dir: opts.dir, name, token, port: processes.length === 0 ? switchPort : undefined, config, env: { REDIS_PASSWORD: redis.password, SENTINEL_PASSWORD: redis.sentinelPassword ?? '' } });
      processes.push(p);
      return p;
    },
    async readService() {
      const { stdout } = await kubectl(admin, ['get', 'service', TARGET, '-n', namespace, '-o', 'json']);
      const svc = JSON.parse(stdout) as { spec: { externalName?: string }; metadata: { resourceVersion: string; annotations?: Record<string, string> } };
      return { externalName: svc.spec.externalName, resourceVersion: svc.metadata.resourceVersion, annotations: svc.metadata.annotations ?? {} };
    },
    waitForTarget(externalName, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const hit = [...changes].reverse().find((c) => c.type !== 'DELETED');
          if (hit?.externalName === externalName) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(hit);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`Service ${namespace}/${TARGET} did not name ${externalName} within ${timeoutMs} ms (last: ${changes.at(-1)?.externalName})`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    waitForSlice(ip, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const hit = [...slices].reverse().find((c) => c.type !== 'DELETED');
          if (hit && hit.addresses.length === 1 && hit.addresses[0] === ip) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(hit);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`EndpointSlice ${namespace}/${TARGET} did not hold exactly ${ip} within ${timeoutMs} ms (last: [${slices.at(-1)?.addresses.join(', ') ?? ''}])`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async readEndpointSlice() {
      const { stdout } = await kubectl(admin, ['get', 'endpointslice', TARGET, '-n', namespace, '-o', 'json']);
      const es = JSON.parse(stdout) as { endpoints?: { addresses: string[] }[]; ports?: { port?: number }[]; metadata: { resourceVersion: string; labels?: Record<string, string>; annotations?: Record<string, string> } };
      return { addresses: (es.endpoints ?? []).flatMap((e) => e.addresses), port: es.ports?.[0]?.port, resourceVersion: es.metadata.resourceVersion, labels: es.metadata.labels ?? {}, annotations: es.metadata.annotations ?? {} };
    },
    async stop() {
      watch.stop();
      sliceWatch?.stop();
      await Promise.allSettled(processes.map((p) => p.stop()));
      await redis.stop();
    },
  };
  if (opts.startService !== false) stack.service = await stack.startService();
  return stack;
}

/**
 * deploy/rbac.yaml made ready for one namespace: the RoleBinding's subject gets the namespace
 * (RBAC requires it for a ServiceAccount), and each verb in `cuts` is removed from the Role (a
 * rule left with no verb goes), for the test that proves every verb is needed.
 */
function prepareRbac(text: string, namespace: string, cuts: { resource: string; verb: string }[]): string {
  type Doc = { kind?: string; rules?: { resources?: string[]; verbs: string[] }[]; subjects?: { namespace?: string }[] };
  const docs = parseAllDocuments(text).map((d) => d.toJS() as Doc);
  for (const doc of docs) for (const subject of doc?.subjects ?? []) subject.namespace = namespace;
  for (const cut of cuts) {
    const role = docs.find((d) => d?.kind === 'Role');
    const rule = role?.rules?.find((r) => r.resources?.includes(cut.resource) && r.verbs.includes(cut.verb));
    if (!role?.rules || !rule) throw new Error(`deploy/rbac.yaml grants no ${cut.verb} on ${cut.resource} to remove`);
    rule.verbs = rule.verbs.filter((v) => v !== cut.verb);
    role.rules = role.rules.filter((r) => r.verbs.length > 0);
  }
  return docs.map((d) => stringify(d)).join('---\n');
}
