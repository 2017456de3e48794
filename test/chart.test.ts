// The Helm chart (deploy/helm/sentinel-switch), deploy/rbac.yaml and the Bitnami wiring in
// deploy/examples, checked against the things they must agree with: the config schema
// (src/config.ts), the hook (scripts/client-reconfig.sh), each other, and a real API server
// (server-side dry runs, a real install/upgrade, RBAC answers from the authorizer).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, lstatSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { createNamespace, kubectl, testCluster } from './harness/k8s.ts';
import type { Cluster, RunResult } from './harness/k8s.ts';
import {
  CHART, EXAMPLES, HOOK, RELEASE, ROOT, Helm, all, dryRunRelease, dryRunServer, find, hookEnvNames, mountOf, objects, podSpec, readValues, renderedConfig,
} from './harness/chart.ts';
import type { Container, K8sObject, RenderOptions, Rule, Volume } from './harness/chart.ts';

const ALL_VALUES = path.join(ROOT, 'test/fixtures/chart-values-all.yaml');
const SERVICEMONITOR_CRD = path.join(ROOT, 'test/fixtures/servicemonitor-crd.yaml');

// ------------------------------------------------------------------ helpers

let work: string;
let helmTool: Helm;
const helm = (args: string[], check = true): Promise<RunResult> => helmTool.run(args, check);
const render = (options: RenderOptions = {}): Promise<K8sObject[]> => helmTool.render(options);

/** Rules in a canonical form: sorted lists, rules sorted, so equal grants compare equal. */
function canonicalRules(rules: Rule[]): Rule[] {
  return rules
    .map((r) => ({
      apiGroups: [...(r.apiGroups ?? [])].sort(),
      resources: [...(r.resources ?? [])].sort(),
      ...(r.resourceNames ? { resourceNames: [...r.resourceNames].sort() } : {}),
      verbs: [...r.verbs].sort(),
    }))
    .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
}

// ------------------------------------------------------------------ setup

let cluster: Cluster;
let admin: string;

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'sentinel-switch-chart-'));
  helmTool = new Helm(work);
  cluster = await testCluster();
  admin = cluster.kubeconfigPath;
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

// ------------------------------------------------------------------ tests

describe('helm lint', () => {
  it('passes --strict with the default values', async () => {
    const { stdout, code } = await helm(['lint', '--strict', CHART], false);
    expect(code, stdout).toBe(0);
    expect(stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
    expect(stdout).not.toMatch(/\[(WARNING|ERROR)\]/);
  });

  it('passes --strict with every option on', async () => {
    const { stdout, code } = await helm(['lint', '--strict', CHART, '--values', ALL_VALUES, '--set', 'redis.namespace=elsewhere'], false);
    expect(code, stdout).toBe(0);
    expect(stdout).not.toMatch(/\[(WARNING|ERROR)\]/);
  });
});

describe('rendered manifests on a real API server', () => {
  it('default values: every object passes server-side validation and admission', async () => {
    const ns = await createNamespace(admin, 'chart-default');
    const objs = await render({ namespace: ns });
    expect(objs.map((o) => o.kind).sort()).toEqual(
      ['ConfigMap', 'ConfigMap', 'Deployment', 'NetworkPolicy', 'Pod', 'PodDisruptionBudget', 'Role', 'RoleBinding', 'Secret', 'Service', 'Service', 'ServiceAccount'].sort(),
    );
    expect(objs.every((o) => o.metadata.namespace === ns)).toBe(true);
    const out = await dryRunRelease(admin, objs);
    expect(out.trim().split('\n')).toHaveLength(objs.length);
    expect(out).toContain('pod/sentinel-switch-check created (server dry run)');
  });

  it('every option on, Redis in another namespace: passes too (ServiceMonitor under a minimal CRD)', async () => {
    await kubectl(admin, ['apply', '-f', SERVICEMONITOR_CRD]);
    await kubectl(admin, ['wait', '--for=condition=Established', '--timeout=30s', 'crd/servicemonitors.monitoring.coreos.com']);
    const ns = await createNamespace(admin, 'chart-all');
    const redisNs = await createNamespace(admin, 'chart-all-redis');
    const podNs = await createNamespace(admin, 'chart-all-pods');
    const objs = await render({ namespace: ns, values: [ALL_VALUES, allOverride(redisNs, podNs)] });
    const kinds = new Set(objs.map((o) => o.kind));
    for (const k of ['ServiceMonitor', 'NetworkPolicy', 'PodDisruptionBudget', 'Role', 'RoleBinding', 'Secret', 'ServiceAccount']) expect(kinds).toContain(k);
    // The token Secret exists where each side mounts it, with one value.
    const secrets = all(objs, 'Secret');
    expect(secrets.map((s) => s.metadata.namespace).sort()).toEqual([ns, redisNs].sort());
    expect(new Set(secrets.map((s) => JSON.stringify(s.data))).size).toBe(1);
    // The hook ConfigMap and the target Services are on the Redis side.
    expect(find(objs, 'ConfigMap', 'sentinel-switch-hook').metadata.namespace).toBe(redisNs);
    const targets = all(objs, 'Service').filter((s) => (s.spec as { type: string }).type === 'ExternalName');
    expect(targets.map((t) => `${t.metadata.namespace}/${t.metadata.name}`).sort()).toEqual([`${redisNs}/cache-redis-master`, `${redisNs}/sessions-master`]);
    expect(find(objs, 'NetworkPolicy').spec).toMatchObject({
      ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': redisNs } } }, { podSelector: { matchLabels: { 'app.kubernetes.io/component': 'helm-test' } } }, {}] }],
    });
    await dryRunRelease(admin, objs);
  });
});

/** A values file that puts the all-options render into namespaces that exist in the test cluster. */
function allOverride(redisNs: string, podNs: string): string {
  const values = parseYaml(readFileSync(ALL_VALUES, 'utf8')) as { masterSets: Record<string, unknown>[] };
  const masterSets = values.masterSets.map((s) => (s.podNamespace ? { ...s, podNamespace: podNs } : s));
  const file = path.join(work, `all-override-${redisNs}.yaml`);
  writeFileSync(file, JSON.stringify({ redis: { namespace: redisNs }, masterSets }));
  return file;
}

describe('the rendered config', () => {
  it('default values: parses with src/config.ts and names the Bitnami objects', async () => {
    const objs = await render({ namespace: 'redis' });
    const { config } = renderedConfig(objs);
    expect(config.masterSets).toHaveLength(1);
    const set = config.masterSets[0]!;
    expect(set.name).toBe('mymaster');
    expect(set.sentinels).toEqual(['redis-headless.redis.svc.cluster.local:26379']);
    expect(set.target).toEqual({ kind: 'externalName', namespace: 'redis', name: 'redis-master' });
    expect(set.sentinelAuth.password).toEqual({ env: 'REDIS_PASSWORD' });
    expect(set.redisAuth.password).toEqual({ env: 'REDIS_PASSWORD' });
    expect(set.podNamespace).toBeUndefined();

    // Everything the config refers to is provided by the Deployment.
    const spec = podSpec(find(objs, 'Deployment'));
    const container = spec.containers[0]!;
    const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e]));
    expect(env.REDIS_PASSWORD?.valueFrom?.secretKeyRef).toEqual({ name: 'redis', key: 'redis-password' });
    expect(env.SENTINEL_SWITCH_CONFIG?.value).toBe(`${mountOf(container, 'config')}/config.yaml`);
    expect(config.token.file).toBe(`${mountOf(container, 'token')}/token`);
    expect(spec.volumes.find((v) => v.name === 'token')?.secret).toMatchObject({ secretName: 'sentinel-switch-token', items: [{ key: 'token', path: 'token' }] });
    expect(spec.volumes.find((v) => v.name === 'config')?.configMap?.name).toBe('sentinel-switch-config');
    expect(container.ports).toEqual([{ name: 'http', containerPort: config.listen.port, protocol: 'TCP' }]);
    const webhook = find(objs, 'Service', 'sentinel-switch');
    expect(webhook.spec).toMatchObject({ type: 'ClusterIP', ports: [{ name: 'http', port: 8080, targetPort: 'http' }] });
  });

  it('every option on: parses, and every value reaches the config', async () => {
    const objs = await render({ namespace: 'ops', values: [ALL_VALUES], set: ['redis.namespace=data'] });
    const { config } = renderedConfig(objs);
    expect(config.listen).toEqual({ host: '::', port: 9090 });
    expect(config).toMatchObject({ reconcileIntervalSeconds: 15, redisTimeoutMs: 750, followUpMs: 2000, bodyLimitBytes: 8192, logLevel: 'debug' });
    expect(config.kubernetes).toMatchObject({ clusterDomain: 'cluster.example', timeoutMs: 7000 });
    expect(config.token).toEqual({ file: '/etc/sentinel-switch/token/bearer' });
    const [cache, sessions] = config.masterSets;
    expect(cache).toMatchObject({ name: 'mymaster', sentinels: ['cache-redis-headless.data.svc.cluster.example:26380'], target: { namespace: 'data', name: 'cache-redis-master' } });
    expect(cache!.redisAuth).toEqual({ username: 'sentinel-switch', password: { env: 'REDIS_PASSWORD' } });
    expect(cache!.tls).toEqual({ enabled: true, caFile: '/etc/sentinel-switch/redis-tls/ca.pem', certFile: '/etc/sentinel-switch/redis-tls/client.pem', keyFile: '/etc/sentinel-switch/redis-tls/client-key.pem', insecureSkipVerify: false });
    expect(sessions).toMatchObject({ name: 'sessions', quorum: 2, podNamespace: 'sessions-pods', target: { namespace: 'data', name: 'sessions-master' } });
    expect(sessions!.fencing).toEqual({ enabled: true, early: false, demote: true, pauseMs: 4000 });
    expect(cache!.fencing).toEqual({ enabled: true, early: true, demote: true, pauseMs: 5000 });
    expect(sessions!.sentinels).toHaveLength(3);
    const container = podSpec(find(objs, 'Deployment')).containers[0]!;
    expect(container.env?.find((e) => e.name === 'REDIS_PASSWORD')?.valueFrom?.secretKeyRef).toEqual({ name: 'cache-credentials', key: 'password' });
    expect(mountOf(container, 'redis-tls')).toBe('/etc/sentinel-switch/redis-tls');
  });

  it('without Redis auth there is no password anywhere', async () => {
    const objs = await render({ set: ['redis.auth.enabled=false'] });
    const { config } = renderedConfig(objs);
    expect(config.masterSets[0]!.redisAuth).toEqual({});
    expect(config.masterSets[0]!.sentinelAuth).toEqual({});
    expect(podSpec(find(objs, 'Deployment')).containers[0]!.env?.map((e) => e.name)).toEqual(['SENTINEL_SWITCH_CONFIG']);
  });

  it('refuses two master sets on one target Service', async () => {
    const file = path.join(work, 'dup-target.yaml');
    writeFileSync(file, JSON.stringify({ masterSets: [{ name: 'a' }, { name: 'b' }] }));
    const { code, stderr } = await helm(['template', RELEASE, CHART, '--values', file], false);
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/redis-master is used by two master sets/);
  });
});

/** Values with master set mymaster on target.kind endpointSlice (and `target` fields on top). */
function endpointSliceValues(target: Record<string, unknown> = {}): string {
  const file = path.join(work, `endpointslice-${Object.values(target).join('-') || 'default'}.yaml`);
  writeFileSync(file, JSON.stringify({ masterSets: [{ name: 'mymaster', target: { kind: 'endpointSlice', ...target } }] }));
  return file;
}

describe('target.kind endpointSlice in the chart', () => {
  it('helm lint --strict is clean', async () => {
    const { stdout, code } = await helm(['lint', '--strict', CHART, '--values', endpointSliceValues()], false);
    expect(code, stdout).toBe(0);
    expect(stdout).not.toMatch(/\[(WARNING|ERROR)\]/);
  });

  it('renders a selector-less ClusterIP Service and an empty EndpointSlice of ours, port names matching; the config says the kind', async () => {
    const objs = await render({ values: [endpointSliceValues()] });
    const svc = find(objs, 'Service', 'redis-master');
    const spec = svc.spec as { type: string; selector?: unknown; clusterIP?: string; ports: { name: string; port: number }[] };
    expect(spec.type).toBe('ClusterIP');
    expect(spec.selector).toBeUndefined();
    expect(spec.clusterIP).toBeUndefined();
    const slice = find(objs, 'EndpointSlice', 'redis-master');
    expect(slice.apiVersion).toBe('discovery.k8s.io/v1');
    expect(slice.metadata.labels).toMatchObject({ 'kubernetes.io/service-name': 'redis-master', 'endpointslice.kubernetes.io/managed-by': 'sentinel-switch.io' });
    expect(slice).toMatchObject({ addressType: 'IPv4', endpoints: [], ports: [{ name: spec.ports[0]!.name, port: 6379, protocol: 'TCP' }] });
    expect(spec.ports).toHaveLength(1);
    expect(renderedConfig(objs).config.masterSets[0]!.target).toEqual({ kind: 'endpointSlice', namespace: 'redis', name: 'redis-master' });

    const named = await render({ values: [endpointSliceValues({ endpointSliceName: 'redis-master-1', headless: true })] });
    expect(find(named, 'EndpointSlice', 'redis-master-1').metadata.labels?.['kubernetes.io/service-name']).toBe('redis-master');
    expect((find(named, 'Service', 'redis-master').spec as { clusterIP?: string }).clusterIP).toBe('None');
    expect(renderedConfig(named).config.masterSets[0]!.target).toEqual({ kind: 'endpointSlice', namespace: 'redis', name: 'redis-master', endpointSliceName: 'redis-master-1' });
    expect((find(named, 'Role').rules as Rule[]).find((r) => r.resources?.includes('endpointslices'))?.resourceNames).toEqual(['redis-master-1']);
  });

  it('refuses an unknown kind, and endpointSlice fields on an externalName target, naming the field', async () => {
    const bad = path.join(work, 'bad-kind.yaml');
    writeFileSync(bad, JSON.stringify({ masterSets: [{ name: 'mymaster', target: { kind: 'endpoints' } }] }));
    const kind = await helm(['template', RELEASE, CHART, '--values', bad], false);
    expect(kind.code).not.toBe(0);
    expect(kind.stderr).toMatch(/masterSets\[0\]\.target\.kind must be externalName or endpointSlice, not "endpoints"/);
    writeFileSync(bad, JSON.stringify({ masterSets: [{ name: 'mymaster', target: { endpointSliceName: 'x' } }] }));
    const field = await helm(['template', RELEASE, CHART, '--values', bad], false);
    expect(field.stderr).toMatch(/masterSets\[0\]\.target: endpointSliceName and headless are only used with kind: endpointSlice/);
  });

  it('server-side applies on a real API server, and the slice takes the write sentinel-switch makes', async () => {
    const ns = await createNamespace(admin, 'chart-es-ssa');
    const objs = await render({ namespace: ns, values: [endpointSliceValues()] });
    const text = objs.map((o) => JSON.stringify(o)).join('\n---\n');
    const { stdout } = await kubectl(admin, ['apply', '--server-side', '--field-manager=helm-test', '-f', '-'], text);
    expect(stdout.trim().split('\n')).toHaveLength(objs.length);
    expect(stdout).toMatch(/endpointslice\.discovery\.k8s\.io\/redis-master serverside-applied/);
    // What sentinel-switch does at a switch (kube/index.ts patchEndpointSlice): a merge patch.
    const ip = '198.18.200.11';
    await kubectl(admin, ['patch', 'endpointslice', 'redis-master', '-n', ns, '--type=merge', '-p', JSON.stringify({ endpoints: [{ addresses: [ip], conditions: { ready: true } }], ports: [{ name: 'tcp-redis', port: 6379, protocol: 'TCP' }] })]);
    const got = (await kubectl(admin, ['get', 'endpointslice', 'redis-master', '-n', ns, '-o', 'jsonpath={.endpoints[0].addresses[0]}'])).stdout;
    expect(got).toBe(ip);
  });

  it('installed for real: an upgrade keeps the live endpoints, and the authorizer allows get/patch on the named slice only', async () => {
    const ns = await createNamespace(admin, 'chart-es-upgrade');
    const values = endpointSliceValues();
    await helm(['install', RELEASE, CHART, '--namespace', ns, '--kubeconfig', admin, '--values', values]);
    const ip = '198.18.200.12';
    await kubectl(admin, ['patch', 'endpointslice', 'redis-master', '-n', ns, '--type=merge', '-p', JSON.stringify({ endpoints: [{ addresses: [ip], conditions: { ready: true, serving: true, terminating: false } }], ports: [{ name: 'tcp-redis', port: 6380, protocol: 'TCP' }] })]);
    await helm(['upgrade', RELEASE, CHART, '--namespace', ns, '--kubeconfig', admin, '--values', values, '--set', 'config.logLevel=debug']);
    const get = async (jsonpath: string) => (await kubectl(admin, ['get', 'endpointslice', 'redis-master', '-n', ns, '-o', `jsonpath=${jsonpath}`])).stdout;
    expect(await get('{.endpoints[0].addresses[0]} {.ports[0].port}')).toBe(`${ip} 6380`);
    const as = `system:serviceaccount:${ns}:sentinel-switch`;
    const can = async (...args: string[]): Promise<string> =>
      (await kubectl(admin, ['auth', 'can-i', '--as', as, '-n', ns, ...args], undefined, { check: false })).stdout.trim();
    expect(await can('get', 'endpointslices.discovery.k8s.io/redis-master')).toBe('yes');
    expect(await can('patch', 'endpointslices.discovery.k8s.io/redis-master')).toBe('yes');
    expect(await can('get', 'services/redis-master')).toBe('yes');
    expect(await can('list', 'pods')).toBe('yes');
    expect(await can('patch', 'services/redis-master')).toBe('no');
    expect(await can('create', 'endpointslices.discovery.k8s.io')).toBe('no');
    expect(await can('list', 'endpointslices.discovery.k8s.io')).toBe('no');
    expect(await can('delete', 'endpointslices.discovery.k8s.io/redis-master')).toBe('no');
    expect(await can('patch', 'endpointslices.discovery.k8s.io/other')).toBe('no');
    await helm(['uninstall', RELEASE, '--namespace', ns, '--kubeconfig', admin]);
  });
});

describe('RBAC: least privilege, the same as deploy/rbac.yaml', () => {
  const rbacFile = objects(readFileSync(path.join(ROOT, 'deploy/rbac.yaml'), 'utf8'));
  const fileRole = find(rbacFile, 'Role');
  const fileRules = fileRole.rules as Rule[];

  it('deploy/rbac.yaml is namespace-free and grants exactly services get/patch/watch by name, endpointslices get/patch/watch by name, pods list/watch, events create', () => {
    expect(rbacFile.map((o) => o.kind).sort()).toEqual(['Role', 'RoleBinding', 'ServiceAccount']);
    expect(rbacFile.every((o) => o.metadata.namespace === undefined)).toBe(true);
    expect(canonicalRules(fileRules)).toEqual(
      canonicalRules([
        { apiGroups: [''], resources: ['services'], resourceNames: ['redis-master'], verbs: ['get', 'patch', 'watch'] },
        { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], resourceNames: ['redis-master'], verbs: ['get', 'patch', 'watch'] },
        { apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch'] },
        { apiGroups: [''], resources: ['events'], verbs: ['create'] },
      ]),
    );
  });

  const withoutSlices = (rules: Rule[]): Rule[] => rules.filter((r) => !r.resources?.includes('endpointslices'));
  it('with ipMapping the chart grants what deploy/rbac.yaml grants for externalName (no endpointslices); without it, the same minus pods list/watch', async () => {
    const withIps = await render({ set: ['ipMapping=true'] });
    expect(canonicalRules(find(withIps, 'Role').rules as Rule[])).toEqual(canonicalRules(withoutSlices(fileRules)));
    const hostnames = await render();
    expect(canonicalRules(find(hostnames, 'Role').rules as Rule[])).toEqual(canonicalRules(withoutSlices(fileRules).filter((r) => !r.resources?.includes('pods'))));
  });

  it('target.kind endpointSlice: what deploy/rbac.yaml grants minus patch on services, with or without ipMapping', async () => {
    const expected = canonicalRules(fileRules.map((r) => (r.resources?.includes('services') ? { ...r, verbs: ['get', 'watch'] } : r)));
    for (const ipMapping of ['false', 'true']) {
      const objs = await render({ values: [endpointSliceValues()], set: [`ipMapping=${ipMapping}`] });
      expect(canonicalRules(find(objs, 'Role').rules as Rule[])).toEqual(expected);
    }
  });

  it('no wildcard, no pods/exec, no secrets, nothing cluster-scoped, in any value set', async () => {
    const sets = [
      await render(),
      await render({ set: ['ipMapping=true'] }),
      await render({ namespace: 'ops', values: [ALL_VALUES], set: ['redis.namespace=data'] }),
      await render({ values: [endpointSliceValues({ endpointSliceName: 'redis-master-slice' })] }),
    ];
    for (const objs of sets) {
      expect(objs.filter((o) => o.kind.startsWith('Cluster'))).toEqual([]);
      for (const role of all(objs, 'Role')) {
        for (const rule of role.rules as Rule[]) {
          // The core group, and discovery.k8s.io for the endpointSlice target's named slices only.
          expect(rule.apiGroups).toEqual(rule.resources?.includes('endpointslices') ? ['discovery.k8s.io'] : ['']);
          if (rule.resources!.includes('endpointslices')) expect(rule.resourceNames?.length).toBeGreaterThan(0);
          for (const field of [rule.apiGroups, rule.resources, rule.verbs, rule.resourceNames ?? []]) expect(field).not.toContain('*');
          expect(rule.resources).not.toContain('pods/exec');
          expect(rule.resources).not.toContain('secrets');
          expect(['services', 'pods', 'events', 'endpointslices']).toEqual(expect.arrayContaining(rule.resources!));
          if (rule.resources!.includes('services')) expect(rule.resourceNames?.length).toBeGreaterThan(0);
        }
      }
      for (const binding of all(objs, 'RoleBinding')) {
        expect(binding.roleRef).toMatchObject({ kind: 'Role' });
        const role = find(objs, 'Role', (binding.roleRef as { name: string }).name, binding.metadata.namespace);
        expect(role).toBeDefined();
        const sa = find(objs, 'ServiceAccount');
        expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: sa.metadata.namespace }]);
      }
    }
  });

  it('every option on: one Role per namespace, each with only what happens there', async () => {
    const objs = await render({ namespace: 'ops', values: [ALL_VALUES], set: ['redis.namespace=data'] });
    const roles = Object.fromEntries(all(objs, 'Role').map((r) => [r.metadata.namespace, canonicalRules(r.rules as Rule[])]));
    expect(Object.keys(roles).sort()).toEqual(['data', 'sessions-pods']);
    expect(roles.data).toEqual(
      canonicalRules([
        { apiGroups: [''], resources: ['services'], resourceNames: ['cache-redis-master', 'sessions-master'], verbs: ['get', 'patch', 'watch'] },
        { apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch'] },
        { apiGroups: [''], resources: ['events'], verbs: ['create'] },
      ]),
    );
    expect(roles['sessions-pods']).toEqual(canonicalRules([{ apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch'] }]));
  });

  it('installed for real, the authorizer allows exactly the grants and nothing next to them', async () => {
    const ns = await createNamespace(admin, 'chart-rbac');
    await helm(['install', RELEASE, CHART, '--namespace', ns, '--kubeconfig', admin, '--set', 'ipMapping=false']);
    const as = `system:serviceaccount:${ns}:sentinel-switch`;
    const can = async (...args: string[]): Promise<string> =>
      (await kubectl(admin, ['auth', 'can-i', '--as', as, '-n', ns, ...args], undefined, { check: false })).stdout.trim();
    expect(await can('get', 'services/redis-master')).toBe('yes');
    expect(await can('patch', 'services/redis-master')).toBe('yes');
    expect(await can('watch', 'services/redis-master')).toBe('yes');
    expect(await can('create', 'events')).toBe('yes');
    expect(await can('patch', 'services/redis')).toBe('no');
    expect(await can('get', 'services/sentinel-switch')).toBe('no');
    expect(await can('delete', 'services/redis-master')).toBe('no');
    expect(await can('update', 'services/redis-master')).toBe('no');
    expect(await can('list', 'services')).toBe('no');
    expect(await can('watch', 'services')).toBe('no');
    expect(await can('list', 'pods')).toBe('no');
    expect(await can('create', 'pods', '--subresource=exec')).toBe('no');
    expect(await can('get', 'secrets')).toBe('no');
    expect(await can('get', 'services/redis-master', '-n', 'default')).toBe('no');
    await helm(['upgrade', RELEASE, CHART, '--namespace', ns, '--kubeconfig', admin, '--set', 'ipMapping=true']);
    expect(await can('list', 'pods')).toBe('yes');
    expect(await can('watch', 'pods')).toBe('yes');
    expect(await can('get', 'pods')).toBe('no');
    await helm(['uninstall', RELEASE, '--namespace', ns, '--kubeconfig', admin]);
  });
});

describe('install and upgrade keep what the cluster owns', () => {
  it('an upgrade keeps the live externalName (sentinel-switch wrote it) and the generated token', async () => {
    const ns = await createNamespace(admin, 'chart-upgrade');
    const get = async (args: string[]) => (await kubectl(admin, ['get', '-n', ns, ...args])).stdout;
    await helm(['install', RELEASE, CHART, '--namespace', ns, '--kubeconfig', admin]);
    expect(await get(['service', 'redis-master', '-o', 'jsonpath={.spec.type} {.spec.externalName}'])).toBe(`ExternalName redis-node-0.redis-headless.${ns}.svc.cluster.local`);
    const token = await get(['secret', 'sentinel-switch-token', '-o', 'jsonpath={.data.token}']);
    expect(Buffer.from(token, 'base64').toString()).toMatch(/^[A-Za-z0-9]{48}$/);

    // What sentinel-switch does at a switch: a merge patch of spec.externalName.
    const promoted = `redis-node-2.redis-headless.${ns}.svc.cluster.local`;
    await kubectl(admin, ['patch', 'service', 'redis-master', '-n', ns, '--type=merge', '-p', JSON.stringify({ spec: { externalName: promoted } })]);
    await helm(['upgrade', RELEASE, CHART, '--namespace', ns, '--kubeconfig', admin, '--set', 'config.logLevel=debug']);
    expect(await get(['service', 'redis-master', '-o', 'jsonpath={.spec.externalName}'])).toBe(promoted);
    expect(await get(['secret', 'sentinel-switch-token', '-o', 'jsonpath={.data.token}'])).toBe(token);
    await helm(['uninstall', RELEASE, '--namespace', ns, '--kubeconfig', admin]);
  });

  it('auth.existingSecret: no Secret rendered, the Deployment mounts the named one', async () => {
    const objs = await render({ set: ['auth.existingSecret=my-token', 'auth.existingSecretKey=value'] });
    expect(all(objs, 'Secret')).toEqual([]);
    const spec = podSpec(find(objs, 'Deployment'));
    expect(spec.volumes.find((v) => v.name === 'token')?.secret).toMatchObject({ secretName: 'my-token', items: [{ key: 'value', path: 'value' }] });
    expect(renderedConfig(objs).config.token).toEqual({ file: '/etc/sentinel-switch/token/value' });
  });

  it('targetService.create=false renders no ExternalName Service, hook.enabled=false no hook', async () => {
    const objs = await render({ set: ['targetService.create=false', 'hook.enabled=false'] });
    expect(all(objs, 'Service').map((s) => s.metadata.name)).toEqual(['sentinel-switch']);
    expect(objs.find((o) => o.metadata.name === 'sentinel-switch-hook')).toBeUndefined();
  });
});

describe('pod hardening', () => {
  it('non-root, read-only root, no capabilities, RuntimeDefault seccomp, probes on /healthz and /readyz, spread over nodes', async () => {
    const objs = await render();
    const deploy = find(objs, 'Deployment');
    expect((deploy.spec as { replicas: number }).replicas).toBe(2);
    const spec = podSpec(deploy);
    expect(spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10001, seccompProfile: { type: 'RuntimeDefault' } });
    expect(spec.automountServiceAccountToken).toBe(true);
    const c = spec.containers[0] as Container & Record<string, unknown>;
    expect(c.securityContext).toMatchObject({ runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    expect(c.livenessProbe).toMatchObject({ httpGet: { path: '/healthz', port: 'http' } });
    expect(c.readinessProbe).toMatchObject({ httpGet: { path: '/readyz', port: 'http' } });
    expect((c.resources as { requests: unknown }).requests).toBeDefined();
    const selector = (deploy.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels;
    expect(spec.topologySpreadConstraints).toContainEqual(expect.objectContaining({ topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: selector } }));
    expect(find(objs, 'PodDisruptionBudget').spec).toEqual({ minAvailable: 1, selector: { matchLabels: selector } });
    expect(find(objs, 'ServiceAccount').automountServiceAccountToken).toBe(false);
    // A single replica gets no PDB: minAvailable 1 would block every node drain.
    expect(all(await render({ set: ['replicaCount=1'] }), 'PodDisruptionBudget')).toEqual([]);
  });

  it('NetworkPolicy lets in only the bitnami/redis pods of the release and its helm test pod, on the webhook port', async () => {
    const np = find(await render(), 'NetworkPolicy');
    expect(np.spec).toEqual({
      podSelector: { matchLabels: { 'app.kubernetes.io/name': 'sentinel-switch', 'app.kubernetes.io/instance': RELEASE } },
      policyTypes: ['Ingress'],
      ingress: [{
        ports: [{ port: 'http', protocol: 'TCP' }],
        from: [
          { podSelector: { matchLabels: { 'app.kubernetes.io/name': 'redis', 'app.kubernetes.io/instance': 'redis' } } },
          { podSelector: { matchLabels: { 'app.kubernetes.io/instance': RELEASE, 'app.kubernetes.io/component': 'helm-test' } } },
        ],
      }],
    });
  });

  it('the ServiceMonitor scrapes /metrics of the webhook Service only', async () => {
    const objs = await render({ set: ['metrics.serviceMonitor.enabled=true'] });
    const sm = find(objs, 'ServiceMonitor');
    const selector = (sm.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels;
    const matching = all(objs, 'Service').filter((s) => Object.entries(selector).every(([k, v]) => s.metadata.labels?.[k] === v));
    expect(matching.map((s) => s.metadata.name)).toEqual(['sentinel-switch']);
    expect((sm.spec as { endpoints: unknown[] }).endpoints).toEqual([expect.objectContaining({ port: 'http', path: '/metrics' })]);
  });
});

describe('the hook ConfigMap', () => {
  it('files/client-reconfig.sh is a regular file (not a link), byte-identical to scripts/client-reconfig.sh and executable', () => {
    const copy = path.join(CHART, 'files/client-reconfig.sh');
    const st = lstatSync(copy);
    expect(st.isSymbolicLink(), 'a link: Helm warns about it and some tools refuse it').toBe(false);
    expect(st.isFile()).toBe(true);
    expect(readFileSync(copy).equals(readFileSync(HOOK)), 'the copy differs from scripts/client-reconfig.sh: cp scripts/client-reconfig.sh deploy/helm/sentinel-switch/files/').toBe(true);
    expect(st.mode & 0o111).not.toBe(0);
  });

  it('helm lint and template read it without a warning about links', async () => {
    const lint = await helm(['lint', CHART], false);
    expect(`${lint.stdout}${lint.stderr}`).not.toMatch(/symlink|symbolic link/i);
    const tpl = await helm(['template', RELEASE, CHART, '--namespace', 'redis', '--show-only', 'templates/hook-configmap.yaml']);
    expect(tpl.stderr).not.toMatch(/symlink|symbolic link/i);
  });

  it('carries scripts/client-reconfig.sh byte for byte', async () => {
    const cm = find(await render(), 'ConfigMap', 'sentinel-switch-hook');
    expect(Buffer.from((cm.data as Record<string, string>)['client-reconfig.sh']!, 'utf8').equals(readFileSync(HOOK))).toBe(true);
  });

  it('a packaged chart carries the script itself, not the link', async () => {
    const out = path.join(work, 'package');
    await helm(['package', CHART, '--destination', out]);
    const objs = await render({ chart: path.join(out, 'sentinel-switch-0.1.0.tgz') });
    const cm = find(objs, 'ConfigMap', 'sentinel-switch-hook');
    expect((cm.data as Record<string, string>)['client-reconfig.sh']).toBe(readFileSync(HOOK, 'utf8'));
  });
});

// ------------------------------------------------------------------ Bitnami wiring

interface BitnamiValues {
  architecture: string;
  useHostnames?: boolean;
  replica?: { podSecurityContext?: { fsGroup?: number } };
  networkPolicy?: { extraEgress?: { ports: { port: number; protocol: string }[]; to: { podSelector: { matchLabels: Record<string, string> } }[] }[] };
  sentinel: {
    enabled: boolean;
    masterSet: string;
    masterService?: { enabled: boolean };
    service?: { createMaster?: boolean };
    configuration: string;
    extraVolumes: Volume[];
    extraVolumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
    extraEnvVars: { name: string; value: string }[];
  };
}

/** Renders `tpl (toYaml list) .` like Bitnami's common.tplvalues.render does for extraEnvVars. */
async function bitnamiTpl(values: string, namespace: string): Promise<{ name: string; value: string }[]> {
  const chart = path.join(work, 'tpl-chart');
  mkdirSync(path.join(chart, 'templates'), { recursive: true });
  writeFileSync(path.join(chart, 'Chart.yaml'), 'apiVersion: v2\nname: tpl\nversion: 0.0.1\n');
  writeFileSync(path.join(chart, 'values.yaml'), 'clusterDomain: cluster.local\n');
  writeFileSync(path.join(chart, 'templates/env.yaml'), 'env:\n{{ tpl (toYaml .Values.sentinel.extraEnvVars) . | indent 2 }}\n');
  const { stdout } = await helm(['template', 'redis', chart, '--namespace', namespace, '--values', values]);
  return (objects(stdout)[0] as unknown as { env: { name: string; value: string }[] }).env;
}

/** Renders one value of the Bitnami values through `tpl`, as the chart does for sentinel.configuration. */
async function bitnamiTplValue(values: string, expr: string, set: string[] = []): Promise<string> {
  const chart = path.join(work, 'tpl-value-chart');
  mkdirSync(path.join(chart, 'templates'), { recursive: true });
  writeFileSync(path.join(chart, 'Chart.yaml'), 'apiVersion: v2\nname: tplvalue\nversion: 0.0.1\n');
  writeFileSync(path.join(chart, 'values.yaml'), 'clusterDomain: cluster.local\n');
  writeFileSync(path.join(chart, 'templates/value.yaml'), `value: {{ tpl (${expr}) . | toJson }}\n`);
  const args = ['template', 'redis', chart, '--namespace', 'redis', '--values', values];
  for (const x of set) args.push('--set', x);
  return (objects((await helm(args)).stdout)[0] as unknown as { value: string }).value;
}

describe('deploy/examples: bitnami/redis wired to what the chart and the hook expect', () => {
  const bitnami = readValues<BitnamiValues>(path.join(EXAMPLES, 'bitnami-redis-values.yaml'));
  const ours = [path.join(EXAMPLES, 'sentinel-switch-values.yaml')];
  const s = bitnami.sentinel;

  it('enables Sentinel with hostnames and leaves both of Bitnami’s own master Services off (masterService, service.createMaster)', () => {
    expect(bitnami.architecture).toBe('replication');
    expect(s.enabled).toBe(true);
    expect(bitnami.useHostnames).toBe(true);
    expect(s.masterService?.enabled).toBe(false);
    // The older switch creates the same <fullname>-master Service and its own script line.
    expect(s.service?.createMaster).toBe(false);
  });

  it('sentinel.configuration names no master set itself: rendered by tpl it follows sentinel.masterSet', async () => {
    // A literal name that differs from sentinel.masterSet makes every sentinel exit.
    expect(s.configuration).not.toContain(s.masterSet);
    const file = path.join(EXAMPLES, 'bitnami-redis-values.yaml');
    for (const [set, expected] of [[[], s.masterSet], [['sentinel.masterSet=cache'], 'cache']] as const) {
      const rendered = await bitnamiTplValue(file, '.Values.sentinel.configuration', [...set]);
      expect(rendered.trim()).toBe(`sentinel client-reconfig-script ${expected} /opt/sentinel-switch/hook/client-reconfig.sh`);
    }
  });

  it('the client-reconfig-script line names our master set and the mounted hook', async () => {
    const configuration = await bitnamiTplValue(path.join(EXAMPLES, 'bitnami-redis-values.yaml'), '.Values.sentinel.configuration');
    const lines = configuration.split('\n').filter((l) => /\bclient-reconfig-script\b/.test(l));
    expect(lines).toHaveLength(1);
    const [, keyword, masterSet, scriptPath] = /^\s*sentinel\s+(client-reconfig-script)\s+(\S+)\s+(\S+)\s*$/.exec(lines[0]!) ?? [];
    expect(keyword).toBe('client-reconfig-script');
    expect(masterSet).toBe(s.masterSet);

    for (const values of [[], ours]) {
      const objs = await render({ values });
      // Same master set name as the chart's (default) masterSets[0].
      expect(renderedConfig(objs).config.masterSets[0]!.name).toBe(masterSet);
      // The script path is <mountPath of the volume that holds our hook ConfigMap>/<its key>.
      const hookCm = find(objs, 'ConfigMap', 'sentinel-switch-hook');
      const volume = s.extraVolumes.find((v) => v.configMap?.name === hookCm.metadata.name);
      expect(volume, `no sentinel.extraVolumes entry mounts ConfigMap ${hookCm.metadata.name}`).toBeDefined();
      expect(volume!.configMap!.defaultMode).toBe(0o755);
      const mount = s.extraVolumeMounts.find((m) => m.name === volume!.name);
      expect(mount).toBeDefined();
      const key = path.posix.basename(scriptPath!);
      expect(Object.keys(hookCm.data as object)).toEqual([key]);
      expect(path.posix.join(mount!.mountPath, key)).toBe(scriptPath);
    }
  });

  it('only sets variables the hook reads, and the ones it needs', () => {
    const read = hookEnvNames();
    expect(read).toContain('SENTINEL_SWITCH_URL');
    const names = s.extraEnvVars.map((e) => e.name);
    for (const n of names.filter((n) => n.startsWith('SENTINEL_SWITCH_'))) expect(read, `the hook never reads ${n}`).toContain(n);
    expect(names).toContain('SENTINEL_SWITCH_URL');
    expect(names.includes('SENTINEL_SWITCH_TOKEN_FILE') || names.includes('SENTINEL_SWITCH_TOKEN')).toBe(true);
    // One run must end before Sentinel's 60 s script timeout: retry window + one attempt.
    const env = Object.fromEntries(s.extraEnvVars.map((e) => [e.name, e.value]));
    expect(Number(env.SENTINEL_SWITCH_RETRY_SECONDS ?? 45) + Number(env.SENTINEL_SWITCH_ATTEMPT_TIMEOUT ?? 5)).toBeLessThan(60);
  });

  it('the token file is the chart’s token Secret, mounted where SENTINEL_SWITCH_TOKEN_FILE points', async () => {
    const objs = await render({ values: ours });
    const secret = find(objs, 'Secret');
    const tokenKey = Object.keys(secret.data as object)[0]!;
    const volume = s.extraVolumes.find((v) => v.secret?.secretName === secret.metadata.name);
    expect(volume, `no sentinel.extraVolumes entry mounts Secret ${secret.metadata.name}`).toBeDefined();
    expect(volume!.secret!.defaultMode).toBe(0o440);
    const mount = s.extraVolumeMounts.find((m) => m.name === volume!.name)!;
    const file = s.extraEnvVars.find((e) => e.name === 'SENTINEL_SWITCH_TOKEN_FILE')?.value;
    expect(file).toBe(path.posix.join(mount.mountPath, tokenKey));
    // The service reads the very same Secret and key.
    expect(renderedConfig(objs).config.token.file).toBe(`/etc/sentinel-switch/token/${tokenKey}`);
    expect(podSpec(find(objs, 'Deployment')).volumes.find((v) => v.name === 'token')?.secret?.secretName).toBe(secret.metadata.name);
    // Mounts on the Redis side are read-only, and nothing else is added to the Redis pods.
    expect(s.extraVolumeMounts.every((m) => m.readOnly === true)).toBe(true);
    expect(s.extraVolumes).toHaveLength(2);
  });

  it('the token (0440) is readable by the sentinel user through the pod’s fsGroup, set in the example', () => {
    const tokenVolume = s.extraVolumes.find((v) => v.secret?.secretName === 'sentinel-switch-token')!;
    expect(tokenVolume.secret!.defaultMode! & 0o040, 'group-readable').toBe(0o040);
    expect(tokenVolume.secret!.defaultMode! & 0o004, 'not world-readable').toBe(0);
    expect(bitnami.replica?.podSecurityContext?.fsGroup).toBe(1001);
  });

  it('hardened Bitnami NetworkPolicy: the egress rule reaches our pods on the webhook port, and our pods can carry redis-client: "true"', async () => {
    const objs = await render({ values: ours });
    const deploy = find(objs, 'Deployment');
    const podLabels = (deploy.spec as { template: { metadata: { labels: Record<string, string> } } }).template.metadata.labels;
    const svc = find(objs, 'Service', 'sentinel-switch');
    const egress = bitnami.networkPolicy?.extraEgress ?? [];
    const rule = egress.find((r) => r.to.some((t) => Object.entries(t.podSelector.matchLabels).every(([k, v]) => podLabels[k] === v)));
    expect(rule, 'no networkPolicy.extraEgress rule selects the sentinel-switch pods').toBeDefined();
    const containerPort = podSpec(deploy).containers[0]!.ports![0]!.containerPort;
    expect(rule!.ports).toContainEqual({ port: containerPort, protocol: 'TCP' });
    expect((svc.spec as { ports: { port: number }[] }).ports[0]!.port).toBe(containerPort);
    // allowExternal=false: Redis admits only clients with this label; the example turns it on.
    expect(podLabels['redis-client']).toBe('true');
    const defaults = find(await render(), 'Deployment');
    expect((defaults.spec as { template: { metadata: { labels: Record<string, string> } } }).template.metadata.labels['redis-client']).toBeUndefined();
    // The label is not part of the selector (an upgrade that turns it on must not be refused).
    expect((deploy.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels['redis-client']).toBeUndefined();
    // The rule, as a NetworkPolicy egress, passes the real API server's validation.
    const ns = await createNamespace(admin, 'chart-egress');
    await dryRunServer(admin, [{ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'redis', namespace: ns }, spec: { podSelector: {}, policyTypes: ['Egress'], egress } }]);
  });

  it('SENTINEL_SWITCH_URL, rendered by Bitnami’s tpl, is our webhook Service and port', async () => {
    for (const namespace of ['redis', 'cache-team']) {
      const env = await bitnamiTpl(path.join(EXAMPLES, 'bitnami-redis-values.yaml'), namespace);
      const url = new URL(env.find((e) => e.name === 'SENTINEL_SWITCH_URL')!.value);
      const objs = await render({ namespace, values: ours });
      const svc = find(objs, 'Service', url.hostname.split('.')[0]);
      expect(svc.metadata.namespace).toBe(namespace);
      expect(url.protocol).toBe('http:');
      expect(url.hostname).toBe(`${svc.metadata.name}.${namespace}.svc.cluster.local`);
      expect(Number(url.port)).toBe((svc.spec as { ports: { port: number }[] }).ports[0]!.port);
      expect(url.pathname).toBe('/');
      // The chart publishes the same URL for anyone wiring Redis by hand.
      expect(find(objs, 'ConfigMap', 'sentinel-switch-hook').metadata.annotations?.['sentinel-switch.io/webhook-url']).toBe(url.origin);
      // And the NetworkPolicy lets this release's Redis pods in.
      expect(JSON.stringify(find(objs, 'NetworkPolicy').spec)).toContain('"app.kubernetes.io/instance":"redis"');
    }
  });

  it('useHostnames: false pairs with ipMapping: true, which adds pods list/watch and nothing else', async () => {
    const ips = readValues<{ useHostnames: boolean }>(path.join(EXAMPLES, 'bitnami-redis-values-ips.yaml'));
    expect(ips.useHostnames).toBe(false);
    const oursIps = readValues<{ ipMapping: boolean }>(path.join(EXAMPLES, 'sentinel-switch-values-ips.yaml'));
    expect(oursIps.ipMapping).toBe(true);
    const base = canonicalRules(find(await render({ values: ours }), 'Role').rules as Rule[]);
    const withIps = canonicalRules(find(await render({ values: [...ours, path.join(EXAMPLES, 'sentinel-switch-values-ips.yaml')] }), 'Role').rules as Rule[]);
    expect(withIps).toEqual(canonicalRules([...base, { apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch'] }]));
  });

  it('helmfile: installs our chart first, from the local path, with the example values (both modes)', async () => {
    const source = readFileSync(path.join(EXAMPLES, 'helmfile.yaml.gotmpl'), 'utf8');
    expect(source).not.toMatch(/https?:\/\//);
    for (const useHostnames of ['true', 'false']) {
      // The IP-mode render also pins a chart version, which replaces the floor.
      const pin = useHostnames === 'false' ? '23.1.1' : undefined;
      const env: Record<string, string> = { BITNAMI_CHART_REPO: 'charts.invalid/bitnami', REDIS_USE_HOSTNAMES: useHostnames, ...(pin ? { BITNAMI_REDIS_CHART_VERSION: pin } : {}) };
      // Helmfile's env/requiredEnv are not in Helm; the rest of the template is plain Go template + Sprig.
      const asHelm = source
        .replace(/requiredEnv "([A-Z_]+)"/g, (_, n: string) => `(required "${n}" (index .Values.env "${n}"))`)
        .replace(/(?<![.\w])env "([A-Z_]+)"/g, (_, n: string) => `(default "" (index .Values.env "${n}"))`);
      const chart = path.join(work, `helmfile-chart-${useHostnames}`);
      mkdirSync(path.join(chart, 'templates'), { recursive: true });
      writeFileSync(path.join(chart, 'Chart.yaml'), 'apiVersion: v2\nname: helmfile\nversion: 0.0.1\n');
      writeFileSync(path.join(chart, 'templates/helmfile.yaml'), asHelm);
      const valuesFile = path.join(chart, 'env.yaml');
      writeFileSync(valuesFile, JSON.stringify({ env }));
      const doc = objects((await helm(['template', 'x', chart, '--values', valuesFile])).stdout)[0] as unknown as {
        repositories: { name: string; url: string }[];
        releases: { name: string; namespace: string; chart: string; needs?: string[]; values: string[]; wait?: boolean }[];
      };
      expect(doc.repositories).toEqual([{ name: 'bitnami', url: 'charts.invalid/bitnami', oci: false }]);
      const [first, redis] = doc.releases;
      expect(first).toMatchObject({ name: RELEASE, namespace: 'redis', wait: false });
      expect(realpathSync(path.resolve(EXAMPLES, first!.chart))).toBe(realpathSync(CHART));
      expect(redis).toMatchObject({ name: 'redis', namespace: 'redis', chart: 'bitnami/redis', needs: [`redis/${RELEASE}`] });
      // The oldest bitnami/redis that works: useHostnames from 17.7.0 (sentinel.conf rebuilt at start since 15.0.4).
      expect((redis as { version?: string }).version).toBe(pin ?? '>=17.7.0');
      const ipsMode = useHostnames === 'false';
      expect(first!.values).toEqual(['sentinel-switch-values.yaml', ...(ipsMode ? ['sentinel-switch-values-ips.yaml'] : [])]);
      expect(redis!.values).toEqual(['bitnami-redis-values.yaml', ...(ipsMode ? ['bitnami-redis-values-ips.yaml'] : [])]);
      for (const f of [...first!.values, ...redis!.values]) expect(existsSync(path.join(EXAMPLES, f)), f).toBe(true);
    }
  });
});

describe('no registry hosts in the deploy files', () => {
  it('image names carry no registry host; chart repositories come from the environment', () => {
    const examples = readdirSync(EXAMPLES, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.relative(ROOT, path.join(e.parentPath, e.name)));
    expect(examples.length).toBeGreaterThan(5);
    const files = ['Dockerfile', 'deploy/helm/sentinel-switch/values.yaml', ...examples, 'test/fixtures/chart-values-all.yaml'];
    for (const f of files) {
      const text = readFileSync(path.join(ROOT, f), 'utf8');
      expect(text, f).not.toMatch(/docker\.io|ghcr\.io|quay\.io|gcr\.io|registry-1\.|registry\.k8s\.io|charts\.bitnami\.com|public\.ecr\.aws/);
    }
    const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    for (const [, image] of dockerfile.matchAll(/^ARG NODE_IMAGE=(\S+)/gm)) expect(image!.split('/')[0]).not.toContain('.');
  });
});

describe('README troubleshooting quotes what the real programs do', () => {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const troubleshooting = readme.slice(readme.indexOf('### Troubleshooting'));

  it('a non-executable hook: the line real redis-sentinel prints is the one the README quotes', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ss-noexec-'));
    try {
      writeFileSync(path.join(dir, 'client-reconfig.sh'), readFileSync(HOOK), { mode: 0o644 });
      writeFileSync(path.join(dir, 'sentinel.conf'), `port 0\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 6379 1\nsentinel client-reconfig-script mymaster ${dir}/client-reconfig.sh\n`);
      let out = '';
      try {
        out = execFileSync('redis-sentinel', [path.join(dir, 'sentinel.conf')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
      } catch (e) {
        const err = e as { stdout?: string; stderr?: string };
        out = `${err.stdout ?? ''}${err.stderr ?? ''}`;
      }
      const line = out.split('\n').find((l) => /reconfiguration script/i.test(l));
      expect(line, out).toBeDefined();
      expect(troubleshooting).toContain(line!.trim());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names FailedMount for a missing hook ConfigMap, the uninstall order, the NetworkPolicy switches and the fsGroup', () => {
    expect(troubleshooting).toContain('FailedMount');
    expect(troubleshooting).toMatch(/[Uu]ninstall/);
    expect(troubleshooting).toContain('allowExternalEgress');
    expect(troubleshooting).toContain('redis-client');
    expect(troubleshooting).toContain("set the pod's fsGroup");
    // The old, wrong claim: a missing ConfigMap does not get as far as starting Sentinel.
    expect(troubleshooting).not.toContain("Can't execute");
  });
});
