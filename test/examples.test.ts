// The Redis-side examples beyond Bitnami's current images (deploy/examples): the bitnamilegacy
// image overlay, the redis-ha chart's values, and a plain Valkey/Redis StatefulSet, each checked
// against what our chart renders (names, Secret keys, Service and port, the config through
// src/config.ts) and what our hook reads.
// Third-party charts are not part of this repository, so for them the example values are checked
// as data (the charts themselves were rendered by hand: README "Works with"). The StatefulSet is
// ours: it goes through the real API server, and its config script runs for real, its output
// loaded by real redis-sentinel and redis-server (Debian's Redis stands in for Valkey).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLES, HOOK, Helm, dryRunServer, find, hookEnvNames, objects, podSpec, readValues, renderedConfig } from './harness/chart.ts';
import type { Container, K8sObject, Mount, PodSpec, Volume } from './harness/chart.ts';
import { createClusterIPService, createExternalNameService, createNamespace, kubectl, resolveName, testCluster, waitForName } from './harness/k8s.ts';
import { inSandboxNamespace } from './harness/netns.ts';
import { command, pairs } from './harness/redis.ts';

const BITNAMI = path.join(EXAMPLES, 'bitnami-redis-values.yaml');
const LEGACY = path.join(EXAMPLES, 'bitnami-redis-values-legacy-images.yaml');
const REDIS_HA = path.join(EXAMPLES, 'redis-ha-values.yaml');
const OURS_REDIS_HA = path.join(EXAMPLES, 'sentinel-switch-values-redis-ha.yaml');
const STATEFULSET = path.join(EXAMPLES, 'statefulset/valkey-sentinel.yaml');
const OURS_STATEFULSET = path.join(EXAMPLES, 'statefulset/sentinel-switch-values.yaml');
/** The namespace the examples are written for. */
const NS = 'redis';

let work: string;
let helm: Helm;
let admin: string;

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'sentinel-switch-examples-'));
  helm = new Helm(work);
  admin = (await testCluster()).kubeconfigPath;
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

// ------------------------------------------------------------------ the wiring every setup needs

/** What one Redis-side setup gives the sentinel container that runs our hook. */
interface Wiring {
  /** Pod volumes and the sentinel container's mounts. */
  volumes: Volume[];
  mounts: Mount[];
  /** The path in the `sentinel client-reconfig-script` line. */
  hookPath: string;
  /** The sentinel process's environment as the hook sees it (variables already expanded). */
  env: Record<string, string>;
  /** Pod-level fsGroup and the uid the sentinel runs as. */
  fsGroup: number | undefined;
  runAsUser: number | undefined;
}

/**
 * The checks every setup must pass against our chart's render: the hook path is our hook
 * ConfigMap's mount plus its key (0755), the token file our token Secret's (0440, readable
 * through the fsGroup only), only variables the hook reads, and the URL our webhook Service.
 */
function expectWiring(w: Wiring, objs: K8sObject[], namespace: string): void {
  const mountFor = (volume: Volume | undefined, what: string): Mount => {
    expect(volume, `no volume holds ${what}`).toBeDefined();
    const mount = w.mounts.find((m) => m.name === volume!.name);
    expect(mount, `the sentinel container does not mount volume ${volume!.name} (${what})`).toBeDefined();
    expect(mount!.readOnly, `${mount!.mountPath} must be read-only`).toBe(true);
    return mount!;
  };

  const hookCm = find(objs, 'ConfigMap', 'sentinel-switch-hook');
  const hookVolume = w.volumes.find((v) => v.configMap?.name === hookCm.metadata.name);
  const hookMount = mountFor(hookVolume, `ConfigMap ${hookCm.metadata.name}`);
  expect(hookVolume!.configMap!.defaultMode, 'Sentinel refuses a script that is not executable').toBe(0o755);
  const [key, ...more] = Object.keys(hookCm.data as object);
  expect(more).toEqual([]);
  expect(w.hookPath).toBe(path.posix.join(hookMount.mountPath, key!));

  const secret = find(objs, 'Secret', 'sentinel-switch-token');
  const [tokenKey] = Object.keys(secret.data as object);
  const tokenVolume = w.volumes.find((v) => v.secret?.secretName === secret.metadata.name);
  const tokenMount = mountFor(tokenVolume, `Secret ${secret.metadata.name}`);
  expect(tokenVolume!.secret!.defaultMode).toBe(0o440);
  expect(w.env.SENTINEL_SWITCH_TOKEN_FILE).toBe(path.posix.join(tokenMount.mountPath, tokenKey!));
  // 0440 is root:<fsGroup>: a non-root sentinel reads the token through that group only.
  expect(w.fsGroup, 'the pod needs an fsGroup to read the 0440 token').toBeGreaterThan(0);
  expect(w.runAsUser, 'the sentinel runs as a non-root uid').toBeGreaterThan(0);
  // The service reads the same Secret and key.
  expect(renderedConfig(objs).config.token.file).toBe(`/etc/sentinel-switch/token/${tokenKey}`);

  const read = hookEnvNames();
  for (const name of Object.keys(w.env).filter((n) => n.startsWith('SENTINEL_SWITCH_'))) expect(read, `the hook never reads ${name}`).toContain(name);
  // One run must end before Sentinel's 60 s script timeout: retry window + one attempt.
  expect(Number(w.env.SENTINEL_SWITCH_RETRY_SECONDS ?? 45) + Number(w.env.SENTINEL_SWITCH_ATTEMPT_TIMEOUT ?? 5)).toBeLessThan(60);

  const url = new URL(w.env.SENTINEL_SWITCH_URL!);
  const svc = find(objs, 'Service', 'sentinel-switch');
  expect(url.protocol).toBe('http:');
  expect(url.hostname).toBe(`${svc.metadata.name}.${namespace}.svc.cluster.local`);
  expect(Number(url.port)).toBe((svc.spec as { ports: { port: number }[] }).ports[0]!.port);
  expect(url.pathname).toBe('/');
  expect(hookCm.metadata.annotations?.['sentinel-switch.io/webhook-url']).toBe(url.origin);
}

/** The labels our NetworkPolicy admits to the webhook port. */
function admittedLabels(objs: K8sObject[]): Record<string, string> {
  const spec = find(objs, 'NetworkPolicy').spec as { ingress: { from: { podSelector: { matchLabels: Record<string, string> } }[] }[] };
  return spec.ingress[0]!.from[0]!.podSelector.matchLabels;
}

function ourPodLabels(objs: K8sObject[]): Record<string, string> {
  return (find(objs, 'Deployment').spec as { template: { metadata: { labels: Record<string, string> } } }).template.metadata.labels;
}

const selects = (selector: Record<string, string>, labels: Record<string, string>): boolean =>
  Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);

function redisPasswordRef(objs: K8sObject[]) {
  return podSpec(find(objs, 'Deployment')).containers[0]!.env?.find((e) => e.name === 'REDIS_PASSWORD')?.valueFrom?.secretKeyRef;
}

// ------------------------------------------------------------------ bitnami/redis on bitnamilegacy images

type Tree = { [key: string]: unknown };
const isTree = (v: unknown): v is Tree => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Helm's values merge: maps merge key by key, everything else is replaced. */
function merge(base: Tree, over: Tree): Tree {
  const out: Tree = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isTree(v) && isTree(out[k]) ? merge(out[k], v) : v;
  return out;
}

/** Every `<path>.image` map in a values tree, by path. */
function images(tree: Tree, prefix = ''): Record<string, Tree> {
  const out: Record<string, Tree> = {};
  for (const [k, v] of Object.entries(tree)) {
    if (!isTree(v)) continue;
    const at = prefix ? `${prefix}.${k}` : k;
    if (k === 'image') out[at] = v;
    else Object.assign(out, images(v, at));
  }
  return out;
}

/** The tree without `global` and the image maps (and the maps left empty without them). */
function withoutImages(tree: Tree): Tree {
  const out: Tree = {};
  for (const [k, v] of Object.entries(tree)) {
    if (k === 'image' || k === 'global') continue;
    const rest = isTree(v) ? withoutImages(v) : v;
    if (!isTree(rest) || Object.keys(rest).length > 0 || (isTree(v) && Object.keys(v).length === 0)) out[k] = rest;
  }
  return out;
}

describe('deploy/examples: bitnami/redis on bitnamilegacy images', () => {
  const base = readValues<Tree>(BITNAMI);
  const legacy = readValues<Tree>(LEGACY);

  it('moves every image the chart verifies to bitnamilegacy/, keeps registry and tags, and relaxes the image check', () => {
    expect(legacy.global).toEqual({ security: { allowInsecureImages: true } });
    // The images bitnami/redis 23.1.1 verifies (NOTES.txt, common.errors.insecureImages).
    const found = images(legacy);
    expect(Object.keys(found).sort()).toEqual(['image', 'kubectl.image', 'metrics.image', 'sentinel.image', 'sysctl.image', 'volumePermissions.image']);
    for (const [at, image] of Object.entries(found)) {
      expect(Object.keys(image), `${at}: only the repository changes (registry and tag stay the chart's)`).toEqual(['repository']);
      expect(image.repository, at).toMatch(/^bitnamilegacy\/[a-z][a-z-]*$/);
    }
    // The sentinel runs the hook: its image must be the sentinel build (bash, user 1001).
    expect(found['sentinel.image']!.repository).toBe('bitnamilegacy/redis-sentinel');
    expect(found.image!.repository).toBe('bitnamilegacy/redis');
  });

  it('leaves the sentinel wiring of bitnami-redis-values.yaml exactly as it is', () => {
    const merged = merge(base, legacy);
    expect(withoutImages(merged)).toEqual(withoutImages(base));
    expect(images(base)).toEqual({});
  });
});

// ------------------------------------------------------------------ redis-ha (DandyDeveloper/charts)

interface RedisHaValues {
  replicas: number;
  image: { tag: string };
  redis: { masterGroupName: string };
  auth: boolean;
  existingSecret: string;
  authKey: string;
  securityContext: { fsGroup: number };
  sentinel: {
    auth: boolean;
    announceHostnames: boolean;
    resolveHostnames: boolean;
    config: Record<string, string | number>;
    customCommand: string[];
    extraVolumeMounts: Mount[];
  };
  extraVolumes: Volume[];
  haproxy: { enabled: boolean };
  networkPolicy: { egressRules: { selectors: { podSelector?: { matchLabels: Record<string, string> }; namespaceSelector?: object }[]; ports: { port: number; protocol: string }[] }[] };
}

/** redis-ha's sentinel command `env NAME=VALUE... redis-sentinel` as the environment it sets. */
function commandEnv(cmd: string[]): Record<string, string> {
  expect(cmd[0]).toBe('env');
  expect(cmd.at(-1), "the chart's own command comes last").toBe('redis-sentinel');
  const assignments = cmd.slice(1, -1);
  for (const a of assignments) expect(a).toMatch(/^[A-Z_][A-Z0-9_]*=\S+$/);
  return Object.fromEntries(assignments.map((a) => [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]));
}

describe('deploy/examples: redis-ha wired to what the chart and the hook expect', () => {
  const ha = readValues<RedisHaValues>(REDIS_HA);
  const ours = () => helm.render({ namespace: NS, values: [OURS_REDIS_HA] });

  it('sentinels announce names, the image has bash (not the Alpine variant), HAProxy stays off', () => {
    expect(ha.sentinel.announceHostnames).toBe(true);
    expect(ha.sentinel.resolveHostnames).toBe(true);
    expect(ha.image.tag).not.toMatch(/alpine/i);
    expect(readFileSync(HOOK, 'utf8').split('\n')[0]).toBe('#!/usr/bin/env bash');
    expect(ha.haproxy.enabled).toBe(false);
  });

  it('hook line, mounts, token and environment of the sentinel container match our chart and hook', async () => {
    const objs = await ours();
    // redis-ha writes each sentinel.config key as `sentinel <key> <masterGroupName> <value>`.
    expect(ha.redis.masterGroupName).toBe(renderedConfig(objs).config.masterSets[0]!.name);
    expectWiring(
      {
        volumes: ha.extraVolumes,
        mounts: ha.sentinel.extraVolumeMounts,
        hookPath: String(ha.sentinel.config['client-reconfig-script']),
        env: commandEnv(ha.sentinel.customCommand),
        fsGroup: ha.securityContext.fsGroup,
        runAsUser: 1000, // redis-ha's containerSecurityContext.runAsUser (the example keeps it)
      },
      objs,
      NS,
    );
    expect(ha.extraVolumes).toHaveLength(2);
  });

  it('our master set asks each pod’s announce Service and reads the password from redis-ha’s Secret', async () => {
    const objs = await ours();
    const [set] = renderedConfig(objs).config.masterSets;
    expect(set!.sentinels).toEqual([...Array(ha.replicas).keys()].map((i) => `redis-ha-announce-${i}.${NS}.svc.cluster.local:26379`));
    // The first target is pod 0, which redis-ha's init script makes the first master.
    expect((find(objs, 'Service', 'redis-ha-master').spec as { externalName: string }).externalName).toBe(`redis-ha-announce-0.${NS}.svc.cluster.local`);
    expect(set!.target).toEqual({ kind: 'externalName', namespace: NS, name: 'redis-ha-master' });
    expect(ha.auth).toBe(true);
    expect(redisPasswordRef(objs)).toEqual({ name: ha.existingSecret, key: ha.authKey });
    expect(set!.redisAuth.password).toEqual({ env: 'REDIS_PASSWORD' });
    // redis-ha's sentinels take no password (sentinel.auth false): we send none.
    expect(ha.sentinel.auth).toBe(false);
    expect(set!.sentinelAuth).toEqual({});
  });

  it('NetworkPolicies: ours admits redis-ha’s pods; redis-ha’s egress reaches ours on the webhook port and keeps DNS', async () => {
    const objs = await ours();
    // redis-ha's pod labels are app=<chart name>, release=<release name>.
    expect(admittedLabels(objs)).toEqual({ app: 'redis-ha', release: 'redis-ha' });
    const port = podSpec(find(objs, 'Deployment')).containers[0]!.ports![0]!.containerPort;
    const rules = ha.networkPolicy.egressRules;
    const toUs = rules.find((r) => r.selectors.some((s) => s.podSelector && selects(s.podSelector.matchLabels, ourPodLabels(objs))));
    expect(toUs, 'no egress rule selects the sentinel-switch pods').toBeDefined();
    expect(toUs!.ports).toContainEqual({ port, protocol: 'TCP' });
    const dns = rules.flatMap((r) => r.ports).filter((p) => p.port === 53);
    expect(dns.map((p) => p.protocol).sort()).toEqual(['TCP', 'UDP']);
    // The rules as redis-ha puts them into its NetworkPolicy (to: selectors, ports) pass the API server.
    const ns = await createNamespace(admin, 'examples-redis-ha-np');
    const egress = rules.map((r) => ({ to: r.selectors, ports: r.ports }));
    await dryRunServer(admin, [{ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'redis-ha', namespace: ns }, spec: { podSelector: {}, policyTypes: ['Egress'], egress } }]);
  });

  it('what redis-ha announces (<svc>.<ns>.svc, no cluster domain) does not resolve as an ExternalName target; the full name does (real CoreDNS)', async () => {
    const cluster = await testCluster();
    expect(cluster.dataPlane, 'the test cluster has no data plane: run through scripts/dev.sh test').toBe(true);
    const ns = await createNamespace(admin, 'examples-announce');
    const ip = await createClusterIPService(admin, ns, 'redis-ha-announce-0', { app: 'redis-ha' });
    await waitForName(`redis-ha-announce-0.${ns}.svc.cluster.local`, [ip], 10_000);
    // Created first: once CoreDNS answers for `full` (its watch delivers in order), it knows `announced` too.
    await createExternalNameService(admin, ns, 'announced', `redis-ha-announce-0.${ns}.svc`);
    await createExternalNameService(admin, ns, 'full', `redis-ha-announce-0.${ns}.svc.cluster.local`);
    await waitForName(`full.${ns}.svc.cluster.local`, [ip], 10_000);
    expect(await resolveName(`announced.${ns}.svc.cluster.local`)).toEqual([]);
  });
});

// ------------------------------------------------------------------ a plain StatefulSet (ours)

const manifests = objects(readFileSync(STATEFULSET, 'utf8'), '1.1');
const statefulSet = find(manifests, 'StatefulSet');
const headless = find(manifests, 'Service');
const scripts = find(manifests, 'ConfigMap');
const pod: PodSpec = podSpec(statefulSet);
const container = (name: string): Container => {
  const c = [...(pod.initContainers ?? []), ...pod.containers].find((x) => x.name === name);
  if (!c) throw new Error(`valkey-sentinel.yaml: no container ${name}`);
  return c;
};
const valueOf = (c: Container, name: string): string | undefined => c.env?.find((e) => e.name === name)?.value;

/** A container's environment as the kubelet builds it: fieldRefs, Secret values and $(VAR) expansion. */
function containerEnv(c: Container, podName: string, namespace: string, password: string): Record<string, string> {
  const env: Record<string, string> = {};
  const fields: Record<string, string> = { 'metadata.name': podName, 'metadata.namespace': namespace };
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v: string) => env[v] ?? m);
    else if (e.valueFrom?.fieldRef) env[e.name] = fields[e.valueFrom.fieldRef.fieldPath]!;
    else if (e.valueFrom?.secretKeyRef) env[e.name] = password;
  }
  return env;
}

describe('deploy/examples/statefulset: Valkey/Redis + Sentinel StatefulSet wired to our chart and hook', () => {
  const ours = () => helm.render({ namespace: NS, values: [OURS_STATEFULSET] });

  it('hook line, mounts, token and environment of the sentinel container match our chart and hook', async () => {
    const objs = await ours();
    const sentinel = container('sentinel');
    expectWiring(
      {
        volumes: pod.volumes,
        mounts: sentinel.volumeMounts ?? [],
        // init.sh writes this path into the client-reconfig-script line.
        hookPath: valueOf(container('config'), 'SENTINEL_SWITCH_HOOK')!,
        env: containerEnv(sentinel, 'valkey-node-0', NS, 'x'),
        fsGroup: pod.securityContext?.fsGroup,
        runAsUser: pod.securityContext?.runAsUser,
      },
      objs,
      NS,
    );
    expect(renderedConfig(objs).config.masterSets[0]!.name).toBe(valueOf(container('config'), 'MASTER_SET'));
  });

  it('names: our chart derives the sentinels, the target and its first master from the manifests’ names', async () => {
    const objs = await ours();
    const [set] = renderedConfig(objs).config.masterSets;
    const spec = statefulSet.spec as { serviceName: string; replicas: number; selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> } } };
    expect(spec.serviceName).toBe(headless.metadata.name);
    const sentinelPort = (headless.spec as { ports: { name: string; port: number }[] }).ports.find((p) => p.name === 'sentinel')!.port;
    expect(set!.sentinels).toEqual([`${headless.metadata.name}.${NS}.svc.cluster.local:${sentinelPort}`]);
    expect((headless.spec as { clusterIP: string; publishNotReadyAddresses: boolean })).toMatchObject({ clusterIP: 'None', publishNotReadyAddresses: true });
    expect((find(objs, 'Service', 'valkey-master').spec as { externalName: string }).externalName).toBe(`${statefulSet.metadata.name}-0.${spec.serviceName}.${NS}.svc.cluster.local`);
    const config = container('config');
    expect(valueOf(config, 'HEADLESS')).toBe(spec.serviceName);
    expect(Number(valueOf(config, 'REPLICAS'))).toBe(spec.replicas);
    expect(Number(valueOf(config, 'QUORUM'))).toBe(Math.floor(spec.replicas / 2) + 1);
    expect(valueOf(config, 'CLUSTER_DOMAIN')).toBe(renderedConfig(objs).config.kubernetes.clusterDomain);
    // Both Services select the pods, and our NetworkPolicy admits them.
    const labels = spec.template.metadata.labels;
    expect(selects(spec.selector.matchLabels, labels)).toBe(true);
    expect(selects((headless.spec as { selector: Record<string, string> }).selector, labels)).toBe(true);
    expect(selects(admittedLabels(objs), labels)).toBe(true);
    expect(container('sentinel').ports).toEqual([{ name: 'sentinel', containerPort: sentinelPort }]);
  });

  it('one password for servers and sentinels, from the Secret our chart reads too', async () => {
    const objs = await ours();
    const refs = [container('config'), container('valkey'), container('sentinel')].map((c) => c.env?.find((e) => e.name === 'VALKEY_PASSWORD')?.valueFrom?.secretKeyRef);
    for (const ref of refs) expect(ref).toEqual(redisPasswordRef(objs));
    const [set] = renderedConfig(objs).config.masterSets;
    expect(set!.redisAuth.password).toEqual({ env: 'REDIS_PASSWORD' });
    expect(set!.sentinelAuth.password).toEqual({ env: 'REDIS_PASSWORD' });
  });

  it('server-side apply on the real API server keeps every field (modes, env, mounts)', async () => {
    const ns = await createNamespace(admin, 'examples-statefulset');
    const { stdout } = await kubectl(admin, ['apply', '--server-side', '--field-manager=examples-test', '-n', ns, '-f', '-'], readFileSync(STATEFULSET, 'utf8'));
    expect(stdout.trim().split('\n').sort()).toEqual(['configmap/valkey-scripts serverside-applied', 'service/valkey-headless serverside-applied', 'statefulset.apps/valkey-node serverside-applied']);
    const live = JSON.parse((await kubectl(admin, ['get', 'statefulset', 'valkey-node', '-n', ns, '-o', 'json'])).stdout) as K8sObject;
    const livePod = podSpec(live);
    const ourVolumes = (volumes: Volume[]) => volumes.filter((v) => v.name.startsWith('sentinel-switch-'));
    expect(ourVolumes(livePod.volumes)).toEqual(ourVolumes(pod.volumes));
    // (The API server adds defaults, e.g. fieldRef.apiVersion: every field we wrote is there.)
    const liveSentinel = livePod.containers.find((c) => c.name === 'sentinel')!;
    expect(liveSentinel.env).toMatchObject(container('sentinel').env!);
    expect(liveSentinel.volumeMounts).toMatchObject(container('sentinel').volumeMounts!);
    expect(livePod.securityContext).toMatchObject({ fsGroup: pod.securityContext!.fsGroup, runAsUser: pod.securityContext!.runAsUser });
  });

  describe('init.sh, run for real, builds configs that real redis-sentinel and redis-server accept', () => {
    const password = 'Examples-Test-Password.42';
    const namespace = 'valkey-example';
    const children: ChildProcess[] = [];
    let dir: string;
    let hook: string;

    beforeAll(() => {
      // init.sh asks its peers by DNS name: only inside the sandbox does that stay local.
      expect(inSandboxNamespace(), 'run through scripts/dev.sh test (init.sh resolves peer names)').toBe(true);
      dir = mkdtempSync(path.join(tmpdir(), 'sentinel-switch-init-'));
      // Sentinel loads only an existing, executable script: our hook, as the ConfigMap mounts it.
      hook = path.join(dir, 'hook', 'client-reconfig.sh');
      mkdirSync(path.dirname(hook));
      copyFileSync(HOOK, hook);
      chmodSync(hook, 0o755);
      writeFileSync(path.join(dir, 'init.sh'), (scripts.data as Record<string, string>)['init.sh']!);
    });

    afterAll(async () => {
      await Promise.all(children.map(stop));
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    /** Runs init.sh as the init container would, with the pod's data volume at dataDir. */
    function runInit(podName: string, dataDir: string): Promise<{ out: string; valkey: string; sentinel: string }> {
      const env = {
        PATH: process.env.PATH!,
        ...containerEnv(container('config'), podName, namespace, password),
        SENTINEL_SWITCH_HOOK: hook,
        DATA_DIR: dataDir,
      };
      return new Promise((resolve, reject) => {
        execFile('sh', [path.join(dir, 'init.sh')], { env, timeout: 60_000 }, (err, stdout, stderr) => {
          if (err) return reject(new Error(`init.sh for ${podName} failed: ${stderr || err.message}`));
          const read = (f: string) => readFileSync(path.join(dataDir, 'conf', f), 'utf8');
          resolve({ out: stdout, valkey: read('valkey.conf'), sentinel: read('sentinel.conf') });
        });
      });
    }

    const fqdn = (p: string) => `${p}.valkey-headless.${namespace}.svc.cluster.local`;
    const hookLine = () => `sentinel client-reconfig-script mymaster ${hook}`;

    it('pod 0 on the first start: master; pod 1: its replica; both sentinels monitor pod 0 by name and run the hook', async () => {
      for (const d of ['data-0', 'data-1']) mkdirSync(path.join(dir, d));
      const zero = await runInit('valkey-node-0', path.join(dir, 'data-0'));
      expect(zero.out).toContain(`${fqdn('valkey-node-0')} is the first master`);
      expect(zero.valkey).not.toMatch(/^replicaof/m);
      const one = await runInit('valkey-node-1', path.join(dir, 'data-1'));
      expect(one.valkey).toContain(`replicaof ${fqdn('valkey-node-0')} 6379\n`);
      expect(one.valkey).toContain(`replica-announce-ip ${fqdn('valkey-node-1')}\n`);
      for (const [p, conf] of [['valkey-node-0', zero.sentinel], ['valkey-node-1', one.sentinel]] as const) {
        const lines = conf.split('\n');
        expect(lines).toContain(`sentinel monitor mymaster ${fqdn('valkey-node-0')} 6379 2`);
        expect(lines).toContain(`sentinel announce-ip ${fqdn(p)}`);
        expect(lines).toContain('sentinel announce-hostnames yes');
        expect(lines).toContain('sentinel resolve-hostnames yes');
        expect(lines).toContain(hookLine());
      }
    });

    it('redis-sentinel loads pod 1’s sentinel.conf: monitors pod 0 by name, keeps the hook line when it rewrites the file', async () => {
      const data = path.join(dir, 'data-1');
      const port = await freePort();
      const sentinel = start('redis-sentinel', [path.join(data, 'conf', 'sentinel.conf'), '--port', String(port), '--bind', '127.0.0.1'], data);
      children.push(sentinel);
      await waitForPing(port, password, sentinel);
      const master = pairs(await command('127.0.0.1', port, password, ['SENTINEL', 'MASTER', 'mymaster']));
      expect(master).toMatchObject({ name: 'mymaster', ip: fqdn('valkey-node-0'), port: '6379', quorum: '2' });
      // Sentinel rewrote the file at start (it adds its id): the hook line is still there.
      const rewritten = readFileSync(path.join(data, 'conf', 'sentinel.conf'), 'utf8');
      expect(rewritten).toMatch(/^sentinel myid [0-9a-f]{40}$/m);
      expect(rewritten.split('\n')).toContain(hookLine());

      // A switch as Sentinel records it, here by hand: the rewritten file names another master,
      // and (REMOVE + MONITOR) no longer has the hook line, which the next start must restore.
      const moved = await freePort();
      await command('127.0.0.1', port, password, ['SENTINEL', 'REMOVE', 'mymaster']);
      await command('127.0.0.1', port, password, ['SENTINEL', 'MONITOR', 'mymaster', '127.0.0.1', moved, 2]);
      await stop(sentinel);
      const last = readFileSync(path.join(data, 'conf', 'sentinel.conf'), 'utf8');
      expect(last).toContain(`sentinel monitor mymaster 127.0.0.1 ${moved} 2`);
      expect(last).not.toContain('client-reconfig-script');

      // The pod restarts and no peer answers: the master this sentinel knew last, and the hook line again.
      const again = await runInit('valkey-node-1', data);
      expect(again.out).toContain(`127.0.0.1:${moved} was the master when this pod stopped`);
      expect(again.valkey).toContain(`replicaof 127.0.0.1 ${moved}\n`);
      expect(again.sentinel.split('\n')).toContain(`sentinel monitor mymaster 127.0.0.1 ${moved} 2`);
      expect(again.sentinel.split('\n')).toContain(hookLine());
    });

    it('redis-server loads pod 1’s valkey.conf: a replica of pod 0 by name, announcing its own name', async () => {
      const data = path.join(dir, 'data-server');
      mkdirSync(data);
      await runInit('valkey-node-1', data);
      const port = await freePort();
      const server = start('redis-server', [path.join(data, 'conf', 'valkey.conf'), '--port', String(port), '--bind', '127.0.0.1'], data);
      children.push(server);
      await waitForPing(port, password, server);
      const role = (await command('127.0.0.1', port, password, ['ROLE'])) as unknown[];
      expect(role.slice(0, 3)).toEqual(['slave', fqdn('valkey-node-0'), 6379]);
      expect(await command('127.0.0.1', port, password, ['CONFIG', 'GET', 'replica-announce-ip'])).toEqual(['replica-announce-ip', fqdn('valkey-node-1')]);
      await stop(server);
    });

    it('refuses a password it could not write into the configs safely', async () => {
      const env = { PATH: process.env.PATH!, ...containerEnv(container('config'), 'valkey-node-0', namespace, 'two words'), SENTINEL_SWITCH_HOOK: hook, DATA_DIR: path.join(dir, 'data-bad') };
      const err = await new Promise<Error & { code?: number; stderr?: string }>((resolve) =>
        execFile('sh', [path.join(dir, 'init.sh')], { env, timeout: 10_000 }, (e, _out, stderr) => resolve(Object.assign(e ?? new Error('exit 0'), { stderr }))),
      );
      expect(err.code).toBe(1);
      expect(err.stderr).toContain('the password may hold letters, digits and . _ ~ + / = - only');
    });
  });
});

// ------------------------------------------------------------------ processes

function start(binary: string, args: string[], cwd: string): ChildProcess {
  const child = spawn(binary, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  Object.defineProperty(child, 'log', { get: () => log });
  return child;
}

/** SIGTERM by PID, resolved once the process has exited (SIGKILL after 5 s). */
function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

async function waitForPing(port: number, password: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${child.spawnfile} exited ${child.exitCode}:\n${(child as unknown as { log: string }).log}`);
    try {
      if ((await command('127.0.0.1', port, password, ['PING'])) === 'PONG') return;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) throw new Error(`${child.spawnfile} on port ${port} did not answer PING in 10 s:\n${(child as unknown as { log: string }).log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}
