// The test cluster itself: a real kube-apiserver that enforces RBAC, mints ServiceAccount tokens,
// stores Pods with an IP and ExternalName Services, and can be taken away and brought back.
import { randomInt } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  createExternalNameService,
  createNamespace,
  createPod,
  createServiceAccount,
  kubectl,
  serviceAccountKubeconfig,
  testCluster,
} from './harness/k8s.ts';
import type { Cluster } from './harness/k8s.ts';

let cluster: Cluster;
let admin: string;

beforeAll(async () => {
  cluster = await testCluster();
  admin = cluster.kubeconfigPath;
});

async function readyz(kubeconfig: string) {
  return kubectl(kubeconfig, ['get', '--raw', '/readyz', '--request-timeout=3s'], undefined, { check: false });
}

describe('test cluster', () => {
  it('answers /readyz on loopback', async () => {
    expect(cluster.server).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const { stdout, code } = await readyz(admin);
    expect(code).toBe(0);
    expect(stdout.trim()).toBe('ok');
  });

  it('creates namespaces with unique names', async () => {
    const a = await createNamespace(admin, 'cluster-test');
    const b = await createNamespace(admin, 'cluster-test');
    expect(a).not.toBe(b);
    const { stdout } = await kubectl(admin, ['get', 'namespace', a, '-o', 'jsonpath={.status.phase}']);
    expect(stdout).toBe('Active');
  });

  it('finds a pod by status.podIP with a field selector', async () => {
    const ns = await createNamespace(admin, 'pods');
    // Unique per run: a shared cluster (SENTINEL_SWITCH_TEST_K8S_DIR) keeps pods of earlier runs.
    // 198.19.128.0/17: in the test range, but no Redis sandbox (198.18.X.Y) or ClusterIP (198.19.0.x) uses it.
    const ip = `198.19.${randomInt(128, 255)}.${randomInt(1, 255)}`;
    await createPod(admin, ns, { name: 'redis-1', hostname: 'redis-1', subdomain: 'redis', podIP: ip });
    await createPod(admin, ns, { name: 'redis-2', hostname: 'redis-2', subdomain: 'redis', podIP: '198.19.255.254' });

    const { stdout } = await kubectl(admin, ['get', 'pods', '-A', '--field-selector', `status.podIP=${ip}`, '-o', 'json']);
    const items = (JSON.parse(stdout) as { items: { metadata: { name: string; namespace: string }; spec: { hostname?: string; subdomain?: string }; status: { podIP?: string; podIPs?: { ip: string }[] } }[] }).items;
    expect(items.map((p) => `${p.metadata.namespace}/${p.metadata.name}`)).toEqual([`${ns}/redis-1`]);
    expect(items[0]?.spec).toMatchObject({ hostname: 'redis-1', subdomain: 'redis' });
    expect(items[0]?.status.podIPs).toEqual([{ ip }]);
  });

  it('stores an ExternalName Service', async () => {
    const ns = await createNamespace(admin, 'svc');
    await createExternalNameService(admin, ns, 'redis-master', `redis-1.redis.${ns}.svc.cluster.local`);
    const { stdout } = await kubectl(admin, ['get', 'service', 'redis-master', '-n', ns, '-o', 'json']);
    const svc = JSON.parse(stdout) as { spec: { type: string; externalName: string; clusterIP?: string } };
    expect(svc.spec.type).toBe('ExternalName');
    expect(svc.spec.externalName).toBe(`redis-1.redis.${ns}.svc.cluster.local`);
    expect(svc.spec.clusterIP).toBeUndefined();
  });

  it('enforces RBAC: a ServiceAccount token without bindings authenticates but is Forbidden', async () => {
    const ns = await createNamespace(admin, 'rbac');
    await createServiceAccount(admin, ns, 'nobody');
    const kubeconfig = await serviceAccountKubeconfig(cluster, ns, 'nobody', { expirationSeconds: 600 });

    // Authenticated as the ServiceAccount (a bad token would be Unauthorized, not Forbidden)...
    const whoami = await kubectl(kubeconfig, ['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}']);
    expect(whoami.stdout).toBe(`system:serviceaccount:${ns}:nobody`);

    // ...and allowed nothing.
    const denied = await kubectl(kubeconfig, ['get', 'services', '-n', ns], undefined, { check: false });
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toContain('Forbidden');
    expect(denied.stderr).toContain(`system:serviceaccount:${ns}:nobody`);
  });

  it('stops and restarts the API server on the same address, keeping its data', async () => {
    const ns = await createNamespace(admin, 'restart');
    await cluster.stopApiServer();
    try {
      const down = await readyz(admin);
      expect(down.code).not.toBe(0);
      expect(down.stderr).toMatch(/refused|connect/i);
    } finally {
      // Whatever happened above, the next tests need an API server.
      await cluster.startApiServer();
    }
    const up = await readyz(admin);
    expect(up.code).toBe(0);
    expect(up.stdout.trim()).toBe('ok');
    await kubectl(admin, ['get', 'namespace', ns]);
  });
});
