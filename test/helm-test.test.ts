// `helm test`: the chart's test pod (templates/tests/check.yaml) renders, passes the real API
// server's validation and admission, and the command it runs passes against a correct sandbox
// and fails, naming what is wrong, against broken ones (wrong token, a Service naming a replica
// or a name that does not exist).
//
// No kubelet runs here, so the pod itself never starts. What it would run is run instead, as a
// process: its command (the launcher bin/sentinel-switch, which the image has at
// /usr/local/bin), its env with secretKeyRef read from the Secret in the API server, and its
// volumes written from the ConfigMap and Secret in the API server, as a kubelet would mount
// them, under a scratch directory (paths in the env and the mounted files moved along). The
// webhook URL it is given is the chart's in-cluster one: the rendered webhook Service, applied
// for real, routes through kube-proxy to the service process (an EndpointSlice with the node's
// address stands in for the Deployment's pods), and CoreDNS resolves its name and the stable name.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { dryRunRelease, find, Helm, type K8sObject, podSpec } from './harness/chart.ts';
import { createEndpointSlice, kubectl, kubectlJson, testCluster, waitForName } from './harness/k8s.ts';
import { NODE_IP } from './harness/netns.ts';
import { type Stack, startStack, TARGET } from './harness/stack.ts';
import { freePort, repoRoot, type SwitchProcess, startSwitch } from './harness/switch.ts';

const sandbox = (name: string): string => mkdtempSync(join(repoRoot, '.sandbox', `${name}-`));
const LAUNCHER_IN_IMAGE = '/usr/local/bin/sentinel-switch';

type EnvVar = { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } };
type TestContainer = { name: string; command?: string[]; args?: string[]; env?: EnvVar[]; volumeMounts?: { name: string; mountPath: string }[]; securityContext?: unknown };
type TestVolume = { name: string; configMap?: { name: string }; secret?: { secretName: string; items?: { key: string; path: string }[] } };
type TestPodSpec = { containers: TestContainer[]; volumes: TestVolume[]; securityContext?: unknown; restartPolicy?: string; automountServiceAccountToken?: boolean };

describe('helm test: the chart test pod and the check it runs', () => {
  let stack: Stack;
  let service: SwitchProcess;
  let dir: string;
  let helm: Helm;
  let admin: string;
  let ns: string;
  let valuesFile: string;
  let objs: K8sObject[];

  /** The chart rendered for this sandbox (Redis side = the stack), with extra --set. */
  const render = (set: string[] = []) => helm.render({ namespace: ns, values: [valuesFile], set });

  /** Runs what the rendered pod runs, as a process: command, env and mounted files as a kubelet would give them. */
  async function runPod(pod: K8sObject): Promise<{ code: number; stdout: string; stderr: string; root: string }> {
    const spec = pod.spec as TestPodSpec;
    const c = spec.containers[0]!;
    const root = mkdtempSync(join(dir, 'pod-'));
    const moved: [string, string][] = (c.volumeMounts ?? []).map((m) => [m.mountPath, join(root, m.mountPath)]);
    const relocate = (s: string): string => moved.reduce((acc, [from, to]) => acc.split(`${from}/`).join(`${to}/`), s);
    const getJson = async (kind: string, name: string) => JSON.parse((await kubectl(admin, ['get', kind, name, '-n', ns, '-o', 'json'])).stdout) as { data?: Record<string, string> };
    for (const m of c.volumeMounts ?? []) {
      const v = spec.volumes.find((x) => x.name === m.name)!;
      const files: Record<string, string> = {};
      if (v.configMap) Object.assign(files, (await getJson('configmap', v.configMap.name)).data);
      if (v.secret) {
        const data = (await getJson('secret', v.secret.secretName)).data ?? {};
        const items = v.secret.items ?? Object.keys(data).map((key) => ({ key, path: key }));
        for (const i of items) files[i.path] = Buffer.from(data[i.key]!, 'base64').toString();
      }
      for (const [path, content] of Object.entries(files)) {
        const file = join(root, m.mountPath, path);
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(file, relocate(content));
      }
    }
    const env: Record<string, string> = { PATH: process.env.PATH ?? '' };
    for (const e of c.env ?? []) {
      if (e.value !== undefined) env[e.name] = relocate(e.value);
      else if (e.valueFrom?.secretKeyRef) {
        const ref = e.valueFrom.secretKeyRef;
        env[e.name] = Buffer.from((await getJson('secret', ref.name)).data![ref.key]!, 'base64').toString();
      }
    }
    const argv = [...(c.command ?? []), ...(c.args ?? [])];
    expect(argv[0]).toBe(LAUNCHER_IN_IMAGE);
    return new Promise((resolve) => {
      execFile(process.execPath, [join(repoRoot, 'bin/sentinel-switch'), ...argv.slice(1)], { env, timeout: 60_000 }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
        resolve({ code, stdout, stderr, root });
      });
    });
  }

  const setExternalName = (name: string) =>
    kubectl(admin, ['patch', 'service', TARGET, '-n', ns, '--type=merge', '-p', JSON.stringify({ spec: { externalName: name } })]);

  beforeAll(async () => {
    dir = sandbox('helm-test');
    const cluster = await testCluster();
    admin = cluster.kubeconfigPath;
    helm = new Helm(dir);
    // The service runs as its own process, listening where kube-proxy can send the webhook
    // Service's traffic; no timer run fixes a Service changed by hand during the test.
    stack = await startStack({ dir, cluster, startService: false });
    ns = stack.namespace;
    const port = await freePort();
    service = await startSwitch({
      dir,
      token: stack.token,
      port,
      config: { ...stack.switchConfig, reconcileIntervalSeconds: 3600, listen: { host: '0.0.0.0', port } },
      env: { REDIS_PASSWORD: stack.redis.password, SENTINEL_PASSWORD: stack.redis.sentinelPassword ?? '' },
    });
    // What the operator has: Redis' password Secret (Bitnami's "redis") and the token Secret.
    const secret = (name: string, data: Record<string, string>) =>
      kubectlJson(admin, ['create', '-n', ns], { apiVersion: 'v1', kind: 'Secret', metadata: { name }, stringData: data });
    await secret('redis', { 'redis-password': stack.redis.password });
    await secret('switch-token', { token: stack.token });
    await secret('other-token', { token: 'a-token-of-another-install' });
    valuesFile = join(dir, 'values.yaml');
    writeFileSync(
      valuesFile,
      stringify({
        auth: { existingSecret: 'switch-token' },
        redis: { auth: { enabled: true, sentinel: Boolean(stack.redis.sentinelPassword), existingSecret: 'redis' } },
        ipMapping: true, // the sandbox's sentinels announce IPs
        targetService: { create: false }, // the stack made it
        masterSets: [{ name: stack.redis.masterSet, sentinels: (stack.switchConfig.masterSets[0] as { sentinels: string[] }).sentinels, target: { name: TARGET, namespace: ns } }],
      }),
    );
    objs = await render();
    // The webhook Service as the chart renders it, for real; its endpoint is the service process.
    await kubectl(admin, ['apply', '-f', '-'], JSON.stringify(find(objs, 'Service', 'sentinel-switch')));
    await kubectl(admin, ['apply', '-f', '-'], JSON.stringify(find(objs, 'ConfigMap', 'sentinel-switch-config')));
    await createEndpointSlice(admin, ns, { name: 'sentinel-switch-process', service: 'sentinel-switch', port: { name: 'http', port }, addresses: [NODE_IP] });
    const clusterIP = (await kubectl(admin, ['get', 'service', 'sentinel-switch', '-n', ns, '-o', 'jsonpath={.spec.clusterIP}'])).stdout.trim();
    await waitForName(`sentinel-switch.${ns}.svc.cluster.local`, [clusterIP], 30_000);
  });
  afterAll(async () => {
    await service?.stop();
    await stack?.stop();
  });

  it('renders a test hook pod with the Deployment\'s env, mounts, volumes and security context, and the API server admits it (dry-run=server)', async () => {
    const pod = find(objs, 'Pod');
    expect(pod.metadata.annotations?.['helm.sh/hook']).toBe('test');
    const spec = pod.spec as TestPodSpec;
    const deployment = podSpec(find(objs, 'Deployment')) as unknown as TestPodSpec;
    const [check, svc] = [spec.containers[0]!, deployment.containers[0]!];
    expect(check.command).toEqual([LAUNCHER_IN_IMAGE, 'check', '--url', `http://sentinel-switch.${ns}.svc.cluster.local:8080`]);
    expect(check.env).toEqual(svc.env);
    expect(check.volumeMounts).toEqual(svc.volumeMounts);
    expect(spec.volumes).toEqual(deployment.volumes);
    expect(check.securityContext).toEqual(svc.securityContext);
    expect(check.securityContext).toMatchObject({ readOnlyRootFilesystem: true, runAsNonRoot: true, allowPrivilegeEscalation: false });
    expect(spec.securityContext).toEqual(deployment.securityContext);
    expect(spec).toMatchObject({ restartPolicy: 'Never', automountServiceAccountToken: false });
    // No selector of the release takes the test pod for one of its pods; the NetworkPolicy admits it.
    const labels = pod.metadata.labels!;
    const selects = (sel: Record<string, string> | undefined) => sel !== undefined && Object.entries(sel).every(([k, v]) => labels[k] === v);
    expect(selects((find(objs, 'Service', 'sentinel-switch').spec as { selector: Record<string, string> }).selector)).toBe(false);
    expect(selects((find(objs, 'Deployment').spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels)).toBe(false);
    expect(selects((find(objs, 'PodDisruptionBudget').spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels)).toBe(false);
    const policy = find(objs, 'NetworkPolicy').spec as { podSelector: { matchLabels: Record<string, string> }; ingress: { from: { podSelector?: { matchLabels: Record<string, string> } }[] }[] };
    expect(selects(policy.podSelector.matchLabels)).toBe(false);
    expect(policy.ingress[0]!.from.some((f) => selects(f.podSelector?.matchLabels))).toBe(true);
    // The whole release, the test pod with it, through validation and admission.
    const out = await dryRunRelease(admin, objs);
    expect(out).toContain('pod/sentinel-switch-check created (server dry run)');
    // With Redis TLS on, the pod mounts the certificates as the Deployment does.
    const tls = await render(['redis.tls.enabled=true', 'redis.tls.existingSecret=redis-crt']);
    expect((find(tls, 'Pod').spec as TestPodSpec).volumes).toEqual((podSpec(find(tls, 'Deployment')) as unknown as TestPodSpec).volumes);
    expect((find(tls, 'Pod').spec as TestPodSpec).volumes.map((v) => v.name)).toContain('redis-tls');
    // And it can be switched off.
    expect((await render(['helmTest.enabled=false'])).some((o) => o.kind === 'Pod')).toBe(false);
  });

  it('a correct install: the check passes (readyz, the token, the stable name reaches ROLE master), exit 0', async () => {
    const master = await stack.redis.masterByMajority();
    const r = await runPod(find(objs, 'Pod'));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`PASS  webhook http://sentinel-switch.${ns}.svc.cluster.local:8080/readyz: ready`);
    expect(r.stdout).toContain('PASS  authenticated request');
    expect(r.stdout).toContain(`PASS  master set mymaster: ${TARGET}.${ns}.svc.cluster.local:${master.port} (${master.host}) answers ROLE master`);
    expect(r.stdout).toContain('all checks passed');
    expect(r.stdout).not.toContain('FAIL');
  });

  it('a token that is not the service\'s: exit 1, "401: the token in FILE is not the service\'s"', async () => {
    const r = await runPod(find(await render(['auth.existingSecret=other-token']), 'Pod'));
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`FAIL  authenticated request: 401: the token in ${join(r.root, '/etc/sentinel-switch/token/token')} is not the service's`);
    // The rest is still checked: the stable name needs no token.
    expect(r.stdout).toContain('PASS  master set mymaster: ');
    expect(r.stdout).toContain('1 check(s) failed');
  });

  it('the Service names a replica: exit 1, naming the node, its role and the Service', async () => {
    const master = await stack.redis.masterByMajority();
    const replica = stack.redis.nodes.find((n) => n.host !== master.host)!;
    await setExternalName(stack.dnsName(replica));
    try {
      await waitForName(stack.stableName, [replica.host], 15_000);
      const r = await runPod(find(objs, 'Pod'));
      expect(r.code).toBe(1);
      expect(r.stdout).toContain(`FAIL  master set mymaster: ${stack.stableName}:${master.port} (${replica.host}) answers ROLE slave (replica of ${master.host}:${master.port}), not master: Service ${ns}/${TARGET} points at a node that is not the master`);
      expect(r.stdout).toContain(`the Service names ${stack.dnsName(replica)}`);
    } finally {
      await setExternalName(stack.dnsName(master));
    }
  });

  it('the Service names a name that does not exist: exit 1, "does not resolve"', async () => {
    const master = await stack.redis.masterByMajority();
    const nowhere = `nowhere.${ns}.svc.cluster.local`;
    await setExternalName(nowhere);
    try {
      await waitForName(stack.stableName, [], 15_000);
      const r = await runPod(find(objs, 'Pod'));
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(new RegExp(`FAIL  master set mymaster: the stable name ${stack.stableName.replace(/\./g, '\\.')} does not resolve \\((ENOTFOUND|ENODATA)\\); the Service names ${nowhere.replace(/\./g, '\\.')}`));
    } finally {
      await setExternalName(stack.dnsName(master));
      await waitForName(stack.stableName, [master.host], 15_000);
    }
  });

  it('the webhook has no endpoint: exit 1 at the first check, naming the URL', async () => {
    await kubectl(admin, ['delete', 'endpointslice', 'sentinel-switch-process', '-n', ns]);
    const r = await runPod(find(objs, 'Pod'));
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`FAIL  webhook http://sentinel-switch.${ns}.svc.cluster.local:8080/readyz: cannot reach it`);
    expect(readFileSync(service.logPath, 'utf8')).not.toContain(stack.token);
  });
});
