// The sandbox's own network namespace and its Kubernetes data plane (scripts/lib/netns.sh,
// scripts/k8s.sh): no route out, pod-like addresses, CoreDNS answering pod names and
// ExternalName Services from the API, and kube-proxy routing a ClusterIP to the Ready pod its
// selector picks, as on a cluster. Everything here is real: kube-controller-manager writes the
// EndpointSlices, kube-proxy the iptables rules, CoreDNS the answers.
import { Resolver } from 'node:dns/promises';
import { readFileSync, statSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Cluster,
  createClusterIPService,
  createExternalNameService,
  createHeadlessService,
  createNamespace,
  createPod,
  kubectl,
  labelPod,
  resolveName,
  testCluster,
  waitForName,
} from './harness/k8s.ts';
import { DNS_IP } from './harness/netns.ts';
import { type RedisNode, type RedisSandbox, startRedisSandbox } from './harness/redis.ts';

/** Local IPv4 addresses of a network namespace, from the /proc/<pid>/net/fib_trie of a process in it. */
function localAddresses(pid: number | 'self'): string[] {
  const trie = readFileSync(`/proc/${pid}/net/fib_trie`, 'utf8').split('\n');
  const out = new Set<string>();
  for (let i = 1; i < trie.length; i++) {
    if (/\/32 host LOCAL/.test(trie[i]!)) out.add(/([\d.]+)\s*$/.exec(trie[i - 1]!)?.[1] ?? '');
  }
  return [...out];
}

/** Destination/mask of every IPv4 route of the namespace (main table), from /proc/self/net/route. */
function routes(): { dest: string; mask: string; iface: string }[] {
  const hex = (h: string) => [0, 1, 2, 3].map((i) => parseInt(h.slice(6 - 2 * i, 8 - 2 * i), 16)).join('.');
  return readFileSync('/proc/self/net/route', 'utf8').trim().split('\n').slice(1).map((l) => {
    const f = l.trim().split(/\s+/);
    return { iface: f[0]!, dest: hex(f[1]!), mask: hex(f[7]!) };
  });
}

/** The node a new connection to host:port lands on: Redis's own `bind` address names it. */
async function nodeBehind(host: string, port: number, password: string): Promise<string> {
  const c = new Redis({ host, port, password, lazyConnect: true, connectTimeout: 1_000, commandTimeout: 1_000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  c.on('error', () => {});
  try {
    await c.connect();
    expect(await c.ping()).toBe('PONG');
    const bind = (await c.config('GET', 'bind')) as string[];
    return bind[1] ?? '';
  } finally {
    c.disconnect();
  }
}

describe('the sandbox namespace', () => {
  it('has only lo, no default route, and its test addresses exist nowhere else', async () => {
    expect(process.env.SENTINEL_SWITCH_NETNS, 'run the tests through scripts/dev.sh (npm test), which enters the namespace').toBe('1');
    const rs = routes();
    expect(rs.filter((r) => r.dest === '0.0.0.0' && r.mask === '0.0.0.0')).toEqual([]);
    expect(new Set(rs.map((r) => r.iface))).toEqual(new Set(['lo']));
    expect(readFileSync('/proc/self/net/dev', 'utf8').trim().split('\n').slice(2).map((l) => l.trim().split(':')[0])).toEqual(['lo']);
    // The process that started the sandbox runs in the host's namespace (scripts/lib/netns.sh
    // names it): a different namespace, none of whose local addresses is in 198.18.0.0/15.
    const host = Number(process.env.SENTINEL_SWITCH_HOST_NETNS_PID);
    expect(host, 'SENTINEL_SWITCH_HOST_NETNS_PID (set by scripts/lib/netns.sh)').toBeGreaterThan(0);
    expect(statSync(`/proc/${host}/ns/net`).ino).not.toBe(statSync('/proc/self/ns/net').ino);
    const hostAddrs = localAddresses(host);
    expect(hostAddrs).toContain('127.0.0.1');
    expect(hostAddrs.filter((a) => /^198\.(18|19)\./.test(a))).toEqual([]);
    expect(localAddresses('self')).toEqual(expect.arrayContaining(['198.18.0.1', '198.18.0.53']));
    const sb = await startRedisSandbox({ replicas: 0, sentinels: 1 });
    try {
      expect(sb.nodes[0]!.host).toMatch(/^198\.18\.([1-9]\d?|1\d\d|2[0-4]\d|25[0-4])\.\d+$/);
      expect(localAddresses(host)).not.toContain(sb.nodes[0]!.host);
    } finally {
      await sb.stop();
    }
  });

  it('resolves names through the namespace resolv.conf: the cluster DNS, nothing outside', async () => {
    expect(readFileSync('/etc/resolv.conf', 'utf8')).toMatch(/^nameserver 198\.18\.0\.53$/m);
    expect(await resolveName('kubernetes.default.svc.cluster.local')).toEqual(['198.19.0.1']);
    // No forward plugin and no route out: an outside name does not resolve.
    expect(await resolveName('example.com')).toEqual([]);
  });
});

describe('the data plane: EndpointSlices, CoreDNS and kube-proxy on real Redis pods', () => {
  let cluster: Cluster;
  let admin: string;
  let ns: string;
  let sb: RedisSandbox;
  const fqdn = (n: RedisNode) => `${n.name}.redis-headless.${ns}.svc.cluster.local`;

  beforeAll(async () => {
    cluster = await testCluster();
    expect(cluster.dataPlane, 'the test cluster has no data plane: run through scripts/dev.sh (npm test)').toBe(true);
    admin = cluster.kubeconfigPath;
    ns = await createNamespace(admin, 'dataplane');
    sb = await startRedisSandbox({
      replicas: 1,
      sentinels: 1,
      beforeStart: async (plan) => {
        await createHeadlessService(admin, ns, 'redis-headless', { app: 'redis' }, [{ name: 'redis', port: plan.nodes[0]!.port }]);
        for (const n of plan.nodes) {
          await createPod(admin, ns, { name: n.name, hostname: n.name, subdomain: 'redis-headless', podIP: n.host, labels: { app: 'redis' } });
        }
      },
    });
  });
  afterAll(async () => sb?.stop());

  it('the EndpointSlice controller lists the Ready pods with their hostnames', async () => {
    await expect.poll(async () => {
      const { stdout } = await kubectl(admin, ['get', 'endpointslices', '-n', ns, '-l', 'kubernetes.io/service-name=redis-headless', '-o', 'json']);
      const slices = JSON.parse(stdout) as { items: { endpoints?: { addresses: string[]; hostname?: string; conditions?: { ready?: boolean }; nodeName?: string }[] }[] };
      return slices.items.flatMap((s) => s.endpoints ?? []).map((e) => `${e.hostname}=${e.addresses.join(',')} ready=${e.conditions?.ready} ${e.nodeName}`).sort();
    }, { timeout: 15_000 }).toEqual(sb.nodes.map((n) => `${n.name}=${n.host} ready=true node-1`).sort());
  });

  it('CoreDNS resolves each pod name, the headless Service, and an ExternalName Service naming a pod', async () => {
    for (const n of sb.nodes) await waitForName(fqdn(n), [n.host], 15_000);
    await waitForName(`redis-headless.${ns}.svc.cluster.local`, sb.nodes.map((n) => n.host), 15_000);
    const target = sb.nodes[1]!;
    await createExternalNameService(admin, ns, 'redis-master', fqdn(target));
    await waitForName(`redis-master.${ns}.svc.cluster.local`, [target.host], 15_000);
    // A client that knows only the stable name lands on that node.
    expect(await nodeBehind(`redis-master.${ns}.svc.cluster.local`, target.port, sb.password)).toBe(target.host);
  });

  it('kube-proxy routes a selector ClusterIP to the labelled pod; new connections follow the label', async () => {
    const [a, b] = [sb.nodes[0]!, sb.nodes[1]!];
    await labelPod(admin, ns, a.name, { isMaster: 'true' });
    await labelPod(admin, ns, b.name, { isMaster: 'false' });
    const ip = await createClusterIPService(admin, ns, 'redis-label', { app: 'redis', isMaster: 'true' }, [{ name: 'redis', port: 6379, targetPort: a.port }]);
    expect(ip).toMatch(/^198\.19\.0\.\d+$/);
    await waitForName(`redis-label.${ns}.svc.cluster.local`, [ip], 15_000);
    await expect.poll(() => nodeBehind(ip, 6379, sb.password).catch((e: Error) => e.message), { timeout: 20_000, interval: 100 }).toBe(a.host);
    // ROLE through the Service: the node it reaches is the one the label names.
    expect(await sb.roleOf(a)).toBe('master');
    const kept = new Redis({ host: ip, port: 6379, password: sb.password, maxRetriesPerRequest: 0, retryStrategy: () => null });
    kept.on('error', () => {});
    try {
      expect(((await kept.config('GET', 'bind')) as string[])[1]).toBe(a.host);
      await labelPod(admin, ns, a.name, { isMaster: 'false' });
      await labelPod(admin, ns, b.name, { isMaster: 'true' });
      await expect.poll(() => nodeBehind(ip, 6379, sb.password).catch((e: Error) => e.message), { timeout: 20_000, interval: 100 }).toBe(b.host);
      // An established connection stays where it was: kube-proxy does not cut TCP flows.
      expect(((await kept.config('GET', 'bind')) as string[])[1]).toBe(a.host);
    } finally {
      kept.disconnect();
    }
  });
});

describe('Corefiles: what a client gets from CoreDNS under each setup', () => {
  let cluster: Cluster;
  let admin: string;
  let ns: string;
  // Straight to CoreDNS, to see the TTL (the system resolver hides it).
  const dns = new Resolver({ timeout: 1_000, tries: 2 });
  dns.setServers([DNS_IP]);
  const answer = async (name: string) => (await dns.resolve4(name, { ttl: true })).map((a) => `${a.address} ttl ${a.ttl}`);

  beforeAll(async () => {
    cluster = await testCluster();
    admin = cluster.kubeconfigPath;
    ns = await createNamespace(admin, 'corefile');
    // Two pod names to point an ExternalName Service at (198.19.128.0/17: addresses no process
    // uses, only DNS answers name them).
    await createHeadlessService(admin, ns, 'redis-headless', { app: 'corefile' });
    await createPod(admin, ns, { name: 'a', hostname: 'a', subdomain: 'redis-headless', podIP: '198.19.200.1', labels: { app: 'corefile' } });
    await createPod(admin, ns, { name: 'b', hostname: 'b', subdomain: 'redis-headless', podIP: '198.19.200.2', labels: { app: 'corefile' } });
    await waitForName(`a.redis-headless.${ns}.svc.cluster.local`, ['198.19.200.1'], 15_000);
    await waitForName(`b.redis-headless.${ns}.svc.cluster.local`, ['198.19.200.2'], 15_000);
  });
  // Back to the default for the files that follow (one cluster per test run).
  afterAll(async () => cluster?.setCorefile('kubeadm'));

  /** Points `name` at pod a, resolves it (which fills any cache), then at pod b. */
  async function moveTarget(name: string): Promise<void> {
    await createExternalNameService(admin, ns, name, `a.redis-headless.${ns}.svc.cluster.local`);
    await waitForName(`${name}.${ns}.svc.cluster.local`, ['198.19.200.1'], 15_000);
    await answer(`${name}.${ns}.svc.cluster.local`);
    await kubectl(admin, ['patch', 'service', name, '-n', ns, '--type=merge', '-p', JSON.stringify({ spec: { externalName: `b.redis-headless.${ns}.svc.cluster.local` } })]);
  }

  it('kubeadm (the default): TTL 30, but cluster.local is not cached, so a new target is served at once', async () => {
    await cluster.setCorefile('kubeadm');
    expect(await cluster.corefile()).toBe('kubeadm');
    await moveTarget('fresh');
    await waitForName(`fresh.${ns}.svc.cluster.local`, ['198.19.200.2'], 5_000);
    expect(await answer(`fresh.${ns}.svc.cluster.local`)).toEqual(['198.19.200.2 ttl 30']);
  });

  it('plugin-default: TTL 5', async () => {
    await cluster.setCorefile('plugin-default');
    expect(await cluster.corefile()).toBe('plugin-default');
    expect(await answer(`a.redis-headless.${ns}.svc.cluster.local`)).toEqual([expect.stringMatching(/^198\.19\.200\.1 ttl [0-5]$/)]);
  });

  it('kubeadm-legacy: TTL 30 and cached: the old target is served after the Service moved', async () => {
    await cluster.setCorefile('kubeadm-legacy');
    await moveTarget('stale');
    await new Promise((r) => setTimeout(r, 1_000)); // CoreDNS's watch has long seen the PATCH
    expect(await resolveName(`stale.${ns}.svc.cluster.local`)).toEqual(['198.19.200.1']);
    expect(await answer(`stale.${ns}.svc.cluster.local`)).toEqual([expect.stringMatching(/^198\.19\.200\.1 ttl (2\d|30)$/)]);
  });
});
