// A real Kubernetes cluster for the tests, the demo and the benchmarks: a thin TypeScript
// layer over scripts/k8s.sh (which owns the processes, ports and certificates) and kubectl.
// Inside the sandbox's network namespace (scripts/lib/netns.sh, SENTINEL_SWITCH_NETNS=1) the
// cluster has a data plane: kube-controller-manager (EndpointSlices), kube-proxy (ClusterIPs in
// 198.19.0.0/24) and CoreDNS on 198.18.0.53, the nameserver of the namespace's resolv.conf, so
// any process resolves `<svc>.<ns>.svc.cluster.local` with the system resolver.
// Plain Node can import this file too (type stripping): nothing here needs vitest except
// testCluster(), which loads it lazily.
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_IP } from './netns.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SCRIPT = path.join(ROOT, 'scripts/k8s.sh');

export interface Cluster {
  /** Absolute directory with the cluster's state, logs, pid files and kubeconfig. */
  dir: string;
  /** Admin kubeconfig (client certificate in group system:masters). */
  kubeconfigPath: string;
  /** https://127.0.0.1:PORT; the port stays the same across stopApiServer/startApiServer. */
  server: string;
  /** PEM of the CA that signed the serving certificate. */
  caPath: string;
  /** Stops etcd and the API server (state and logs stay in dir). */
  stop(): Promise<void>;
  /** Makes the API unavailable, e.g. during a failover; etcd keeps the data. */
  stopApiServer(): Promise<void>;
  /** Starts the API server again with the same args and port; resolves once /readyz is ok. */
  startApiServer(): Promise<void>;
  /** kube-controller-manager, kube-proxy and CoreDNS run (only inside the sandbox namespace). */
  dataPlane: boolean;
  /** The Corefile CoreDNS runs with now (undefined without a data plane). */
  corefile(): Promise<Corefile | undefined>;
  /**
   * Restarts CoreDNS with another Corefile; resolves once it answers again (its cache starts
   * empty). Throws without a data plane.
   */
  setCorefile(name: Corefile): Promise<void>;
}

/**
 * CoreDNS setups of real clusters (scripts/k8s.sh): `kubeadm` (v1.35: ttl 30, cache 30 with
 * cluster.local excluded from the cache, the default), `plugin-default` (the kubernetes plugin's
 * ttl 5, cache 30), `kubeadm-legacy` (ttl 30, cache 30).
 */
export type Corefile = 'kubeadm' | 'plugin-default' | 'kubeadm-legacy';
export const COREFILES: readonly Corefile[] = ['kubeadm', 'plugin-default', 'kubeadm-legacy'];

/** The Node object pods are "scheduled" on (scripts/k8s.sh creates it with the data plane). */
export const NODE_NAME = 'node-1';

export interface StartOptions {
  /** Default: .sandbox/k8s in the repo, like `scripts/k8s.sh up`. */
  dir?: string;
  /** Stop the cluster automatically once this process exits (a crashed test run leaks nothing). */
  ownerPid?: number;
  /** Inside the sandbox namespace: the Corefile CoreDNS starts with (default kubeadm). */
  corefile?: Corefile;
  /** Inside the sandbox namespace: no data plane (e.g. a second cluster in the same namespace). */
  dataPlane?: false;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface KubectlOptions {
  /** Throw when kubectl exits non-zero (default true). */
  check?: boolean;
  /** Kill kubectl after this long (default 30 s), so a hung request fails the test instead. */
  timeoutMs?: number;
}

function runScript(command: string, dir: string, extra: string[] = []): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile('bash', [SCRIPT, command, '--dir', dir, ...extra], { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`scripts/k8s.sh ${command} --dir ${dir} failed:\n${stderr || err.message}`));
      } else {
        resolve({ stdout, stderr, code: 0 });
      }
    });
  });
}

/**
 * Starts etcd + kube-apiserver in options.dir (or returns the one already running there) and
 * resolves once /readyz is ok. The daemons outlive this process unless ownerPid is given.
 */
export async function startCluster(options: StartOptions = {}): Promise<Cluster> {
  const dir = path.resolve(options.dir ?? path.join(ROOT, '.sandbox', 'k8s'));
  const extra = options.ownerPid === undefined ? [] : ['--owner', String(options.ownerPid)];
  if (options.corefile) extra.push('--corefile', options.corefile);
  if (options.dataPlane === false) extra.push('--no-data-plane');
  await runScript('up', dir, extra);
  return connectCluster(dir);
}

/** True if the cluster in dir is up and its API server answers /readyz. */
export async function isClusterRunning(dir: string): Promise<boolean> {
  try {
    await runScript('status', path.resolve(dir));
    return true;
  } catch {
    return false;
  }
}

/** A Cluster for one that `scripts/k8s.sh up` (or startCluster) already started in dir. */
export async function connectCluster(dir: string): Promise<Cluster> {
  const abs = path.resolve(dir);
  let env: string;
  try {
    env = await readFile(path.join(abs, 'cluster.env'), 'utf8');
  } catch {
    throw new Error(`no cluster in ${abs}: start one with startCluster() or scripts/k8s.sh up --dir ${abs}`);
  }
  const server = /^SERVER=(.+)$/m.exec(env)?.[1];
  if (!server) throw new Error(`${abs}/cluster.env has no SERVER: the cluster never became ready`);
  const dataPlane = /^DATA_PLANE=1$/m.test(env);
  return {
    dataPlane,
    corefile: async () => {
      const now = await readFile(path.join(abs, 'cluster.env'), 'utf8');
      return (/^COREFILE=(.+)$/m.exec(now)?.[1] as Corefile | undefined) ?? undefined;
    },
    setCorefile: async (name: Corefile) => {
      if (!dataPlane) throw new Error(`the cluster in ${abs} has no data plane (CoreDNS): start it inside the sandbox namespace (scripts/dev.sh)`);
      await runScript('dns', abs, ['--corefile', name]);
    },
    dir: abs,
    kubeconfigPath: path.join(abs, 'kubeconfig'),
    server,
    caPath: path.join(abs, 'pki', 'ca.crt'),
    stop: async () => void (await runScript('down', abs)),
    stopApiServer: async () => void (await runScript('stop-apiserver', abs)),
    startApiServer: async () => void (await runScript('start-apiserver', abs)),
  };
}

const binaryPaths = new Map<string, Promise<string>>();

/**
 * The pinned build of a Kubernetes tool (kubectl, helm, ...). scripts/dev.sh exports the
 * binaries' folder; anything else (an editor's vitest, a bare node) asks env.sh, the one place
 * that knows where the pinned build lives.
 */
function k8sBinary(name: string): Promise<string> {
  let found = binaryPaths.get(name);
  if (!found) {
    found = new Promise((resolve, reject) => {
      const known = process.env.SENTINEL_SWITCH_K8S_BIN;
      if (known) return resolve(path.join(known, name));
      execFile('bash', ['-c', 'source scripts/lib/env.sh && printf %s "$SENTINEL_SWITCH_K8S_BIN"'], { cwd: ROOT }, (err, stdout) =>
        err ? reject(err) : resolve(path.join(stdout, name)),
      );
    });
    binaryPaths.set(name, found);
  }
  return found;
}

export interface ToolOptions extends KubectlOptions {
  stdin?: string;
  /** Extra environment on top of this process's. */
  env?: Record<string, string>;
}

/** Runs a pinned Kubernetes tool; throws with its stderr on failure unless options.check is false. */
export async function runK8sTool(name: string, args: string[], options: ToolOptions = {}): Promise<RunResult> {
  const bin = await k8sBinary(name);
  const { check = true, timeoutMs = 30_000 } = options;
  const result = await new Promise<RunResult>((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'], env: options.env ? { ...process.env, ...options.env } : process.env });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString() + (timedOut ? `\n${name} killed after ${timeoutMs} ms` : '');
      resolve({ stdout: Buffer.concat(out).toString(), stderr, code: code ?? 1 });
    });
    child.stdin.on('error', () => {}); // the tool may exit before reading stdin; its exit code tells
    child.stdin.end(options.stdin ?? '');
  });
  if (check && result.code !== 0) {
    throw new Error(`${name} ${args.join(' ')} failed (exit ${result.code}):\n${result.stderr.trim()}`);
  }
  return result;
}

/** Runs kubectl against kubeconfig; throws with its stderr on failure unless options.check is false. */
export function kubectl(kubeconfig: string, args: string[], stdin?: string, options: KubectlOptions = {}): Promise<RunResult> {
  return runK8sTool('kubectl', ['--kubeconfig', kubeconfig, ...args], { ...options, stdin });
}

/** kubectl with a JSON object on stdin (`create -f -`, `apply -f -`...). */
export function kubectlJson(kubeconfig: string, args: string[], object: unknown, options?: KubectlOptions): Promise<RunResult> {
  return kubectl(kubeconfig, [...args, '-f', '-'], JSON.stringify(object), options);
}

function uniqueName(prefix: string): string {
  const base = prefix.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 50) || 'test';
  return `${base}-${randomBytes(4).toString('hex')}`;
}

/**
 * Creates a namespace with a unique name and returns it, with its `default` ServiceAccount,
 * without which the ServiceAccount admission plugin rejects every pod: controller-manager's
 * ServiceAccount controller creates it where a data plane runs, elsewhere this does (whichever
 * comes first: the result is the same). Namespaces are never deleted.
 */
export async function createNamespace(kubeconfig: string, prefix: string): Promise<string> {
  const name = uniqueName(prefix);
  await kubectl(kubeconfig, ['create', 'namespace', name]);
  const sa = await kubectl(kubeconfig, ['create', 'serviceaccount', 'default', '-n', name], undefined, { check: false });
  if (sa.code !== 0 && !/AlreadyExists|already exists/.test(sa.stderr)) {
    throw new Error(`kubectl create serviceaccount default -n ${name} failed (exit ${sa.code}):\n${sa.stderr.trim()}`);
  }
  return name;
}

export async function createServiceAccount(kubeconfig: string, namespace: string, name: string): Promise<void> {
  await kubectl(kubeconfig, ['create', 'serviceaccount', name, '-n', namespace]);
}

export interface TokenOptions {
  /** Token lifetime; the TokenRequest API refuses less than 600 (default 3600). */
  expirationSeconds?: number;
}

/**
 * Mints a token for an existing ServiceAccount with the TokenRequest API (`kubectl create token`)
 * and writes a kubeconfig that uses it, pinned to the cluster's CA. Returns the kubeconfig's path.
 */
export async function serviceAccountKubeconfig(
  cluster: Cluster,
  namespace: string,
  serviceAccount: string,
  options: TokenOptions = {},
): Promise<string> {
  const seconds = options.expirationSeconds ?? 3600;
  const { stdout } = await kubectl(cluster.kubeconfigPath, [
    'create', 'token', serviceAccount, '-n', namespace, `--duration=${seconds}s`,
  ]);
  const token = stdout.trim();
  const ca = (await readFile(cluster.caPath)).toString('base64');
  const user = `system:serviceaccount:${namespace}:${serviceAccount}`;
  // JSON is valid YAML, and kubectl and @kubernetes/client-node both read it.
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'sentinel-switch', cluster: { server: cluster.server, 'certificate-authority-data': ca } }],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: user, context: { cluster: 'sentinel-switch', user, namespace } }],
    'current-context': user,
  };
  const folder = path.join(cluster.dir, 'sa-kubeconfigs');
  await mkdir(folder, { recursive: true, mode: 0o700 });
  const file = path.join(folder, `${namespace}.${serviceAccount}.${randomBytes(3).toString('hex')}.yaml`);
  await writeFile(file, JSON.stringify(config, null, 2), { mode: 0o600 });
  return file;
}

export interface PodSpec {
  name: string;
  /** spec.hostname and spec.subdomain, as a StatefulSet would set them. */
  hostname?: string;
  subdomain?: string;
  podIP: string;
  labels?: Record<string, string>;
}

/**
 * Creates a Pod API object on node-1 and makes it Ready through the status subresource, as a
 * kubelet would: phase Running, status.podIP/podIPs, conditions Ready and ContainersReady. No
 * kubelet runs it (the process at podIP is the harness's): the object is there to be found (e.g.
 * --field-selector status.podIP=...) and, where a data plane runs, to be put into EndpointSlices
 * by the Services that select it, hence into CoreDNS and kube-proxy.
 */
export async function createPod(kubeconfig: string, namespace: string, pod: PodSpec): Promise<void> {
  await kubectlJson(kubeconfig, ['create', '-n', namespace], {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: pod.name, labels: pod.labels ?? {} },
    spec: {
      ...(pod.hostname ? { hostname: pod.hostname } : {}),
      ...(pod.subdomain ? { subdomain: pod.subdomain } : {}),
      nodeName: NODE_NAME,
      automountServiceAccountToken: false,
      containers: [{ name: 'redis', image: 'redis:8', ports: [{ containerPort: 6379, name: 'redis' }] }],
    },
  });
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const condition = (type: string) => ({ type, status: 'True', lastProbeTime: null, lastTransitionTime: now });
  const status = {
    status: {
      phase: 'Running',
      hostIP: NODE_IP,
      hostIPs: [{ ip: NODE_IP }],
      podIP: pod.podIP,
      podIPs: [{ ip: pod.podIP }],
      startTime: now,
      conditions: ['PodScheduled', 'Initialized', 'ContainersReady', 'Ready'].map(condition),
    },
  };
  await kubectl(kubeconfig, [
    'patch', 'pod', pod.name, '-n', namespace, '--subresource=status', '--type=merge', '-p', JSON.stringify(status),
  ]);
}

/** Sets (or, with null, removes) labels of a pod, as Bitnami's label loop does with isMaster. */
export async function labelPod(kubeconfig: string, namespace: string, pod: string, labels: Record<string, string | null>): Promise<void> {
  const args = Object.entries(labels).map(([k, v]) => (v === null ? `${k}-` : `${k}=${v}`));
  await kubectl(kubeconfig, ['label', 'pod', pod, '-n', namespace, '--overwrite', ...args]);
}

export interface ServicePort {
  name: string;
  port: number;
  /** Default: port. */
  targetPort?: number;
}

/**
 * Creates a headless Service (clusterIP None) with a selector: the EndpointSlice controller lists
 * the selected pods with their hostnames, so CoreDNS answers `<hostname>.<name>.<ns>.svc.cluster.local`
 * for each pod whose spec.subdomain is `name` (a StatefulSet's governing Service). As Bitnami's
 * `-headless` Service, it publishes pods that are not Ready too.
 */
export async function createHeadlessService(
  kubeconfig: string,
  namespace: string,
  name: string,
  selector: Record<string, string>,
  ports: ServicePort[] = [{ name: 'redis', port: 6379 }],
): Promise<void> {
  await kubectlJson(kubeconfig, ['create', '-n', namespace], {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name },
    spec: { clusterIP: 'None', publishNotReadyAddresses: true, selector, ports: ports.map(servicePort) },
  });
}

/**
 * Creates a selector Service of type ClusterIP (kube-proxy routes its 198.19.0.x address to the
 * Ready pods it selects, like Bitnami's `redis-master` Service with `isMaster: "true"`) and
 * returns its cluster IP.
 */
export async function createClusterIPService(
  kubeconfig: string,
  namespace: string,
  name: string,
  selector: Record<string, string>,
  ports: ServicePort[] = [{ name: 'redis', port: 6379 }],
): Promise<string> {
  const { stdout } = await kubectlJson(kubeconfig, ['create', '-n', namespace, '-o', 'jsonpath={.spec.clusterIP}'], {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name },
    spec: { type: 'ClusterIP', selector, ports: ports.map(servicePort) },
  });
  return stdout.trim();
}

/**
 * Creates a Service WITHOUT selector, type ClusterIP (or headless, clusterIP None), as the chart
 * does for target.kind endpointSlice: nothing fills its endpoints but the EndpointSlice that
 * createEndpointSlice makes and sentinel-switch patches. Returns its cluster IP ('None' headless).
 */
export async function createSelectorlessService(
  kubeconfig: string,
  namespace: string,
  name: string,
  ports: ServicePort[] = [{ name: 'tcp-redis', port: 6379 }],
  options: { headless?: boolean } = {},
): Promise<string> {
  const { stdout } = await kubectlJson(kubeconfig, ['create', '-n', namespace, '-o', 'jsonpath={.spec.clusterIP}'], {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name },
    spec: { type: 'ClusterIP', ...(options.headless ? { clusterIP: 'None' } : {}), ports: ports.map(servicePort) },
  });
  return stdout.trim();
}

/**
 * Creates the EndpointSlice a selector-less Service's traffic goes to (labels
 * kubernetes.io/service-name and managed-by sentinel-switch.io), holding `addresses` as ready
 * endpoints on one port named like the Service's.
 */
export async function createEndpointSlice(
  kubeconfig: string,
  namespace: string,
  o: { name: string; service: string; port: ServicePort; addresses: string[] },
): Promise<void> {
  await kubectlJson(kubeconfig, ['create', '-n', namespace], {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: o.name, labels: { 'kubernetes.io/service-name': o.service, 'endpointslice.kubernetes.io/managed-by': 'sentinel-switch.io' } },
    addressType: 'IPv4',
    endpoints: o.addresses.map((ip) => ({ addresses: [ip], conditions: { ready: true, serving: true, terminating: false } })),
    ports: [{ name: o.port.name, port: o.port.targetPort ?? o.port.port, protocol: 'TCP' }],
  });
}

function servicePort(p: ServicePort) {
  return { name: p.name, port: p.port, targetPort: p.targetPort ?? p.port, protocol: 'TCP' };
}

/**
 * The IPv4 addresses the system resolver gives for name, as any process inside the sandbox
 * namespace sees them (getaddrinfo: /etc/hosts, then the namespace's CoreDNS); [] when the name
 * does not resolve.
 */
export async function resolveName(name: string): Promise<string[]> {
  try {
    return (await lookup(name, { all: true, family: 4 })).map((a) => a.address);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTFOUND' || code === 'ENODATA' || code === 'EAI_AGAIN') return [];
    throw err;
  }
}

/**
 * Polls resolveName until it gives exactly `expected` (in any order; an empty list waits for the
 * name to disappear), or throws after timeoutMs with what it resolved last.
 */
export async function waitForName(name: string, expected: string[], timeoutMs: number): Promise<void> {
  const want = [...expected].sort().join(',');
  const deadline = Date.now() + timeoutMs;
  let got = '';
  for (;;) {
    got = (await resolveName(name)).sort().join(',');
    if (got === want) return;
    if (Date.now() > deadline) {
      throw new Error(`${name} resolved to [${got}], not [${want}], for ${timeoutMs} ms (system resolver; CoreDNS log in the cluster dir)`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Creates a selector-less Service of type ExternalName (no cluster IP, no endpoints). */
export async function createExternalNameService(
  kubeconfig: string,
  namespace: string,
  name: string,
  externalName: string,
): Promise<void> {
  await kubectlJson(kubeconfig, ['create', '-n', namespace], {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name },
    spec: { type: 'ExternalName', externalName },
  });
}

// ------------------------------------------------------------------ the cluster of a test run

/** Keys that test/harness/global-setup.ts provides to the test files. */
declare module 'vitest' {
  export interface ProvidedContext {
    sentinelSwitchK8sDir: string;
    sentinelSwitchKubeconfig: string;
  }
}

/** Set by global-setup for every test process; points at DIR/kubeconfig. */
export const TEST_KUBECONFIG_ENV = 'SENTINEL_SWITCH_TEST_KUBECONFIG';

let testClusterPromise: Promise<Cluster> | undefined;

/** The cluster test/harness/global-setup.ts started (or reused) for this test run. */
export function testCluster(): Promise<Cluster> {
  testClusterPromise ??= (async () => {
    let dir: string | undefined;
    if (process.env.VITEST) {
      const { inject } = await import('vitest');
      dir = inject('sentinelSwitchK8sDir') || undefined;
    }
    const kubeconfig = process.env[TEST_KUBECONFIG_ENV];
    dir ??= kubeconfig ? path.dirname(kubeconfig) : undefined;
    if (!dir) {
      throw new Error(
        `no test cluster: run the tests through vitest with test/harness/global-setup.ts, or set ${TEST_KUBECONFIG_ENV}` +
          ' (SENTINEL_SWITCH_TEST_K8S=off disables the cluster)',
      );
    }
    return connectCluster(dir);
  })();
  return testClusterPromise;
}
