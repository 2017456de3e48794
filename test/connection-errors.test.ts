// What an operator reads when a connection cannot be set up: the cause (WRONGPASS, a TLS
// certificate error, ECONNREFUSED), never ioredis' generic "Connection is closed."; /readyz
// fails when no master can ever be verified (wrong redisAuth) and says why the API is
// unreachable. And TLS to sentinels given by DNS name: the certificate names that name, not an IP.
// Everything real: redis-server and redis-sentinel with ACL users and TLS (certificates made
// with openssl here), the test run's kube-apiserver, a port nobody listens on.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { lookup } from 'node:dns/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createService } from '../src/app.ts';
import { parseConfig } from '../src/config.ts';
import { Kube, KubeConfig } from '../src/kube/index.ts';
import { SentinelClient } from '../src/sentinel/index.ts';
import { createNamespace, testCluster } from './harness/k8s.ts';
import { type RedisSandbox, startRedisSandbox } from './harness/redis.ts';
import { freePort } from './harness/switch.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One redis-server / redis-sentinel of this file, stopped by PID. */
class Server {
  readonly child: ChildProcess;
  readonly log: string;
  constructor(binary: string, conf: string, log: string) {
    this.log = log;
    const fd = openSync(log, 'a');
    this.child = spawn(binary, [conf], { stdio: ['ignore', fd, fd], cwd: path.dirname(conf) });
    closeSync(fd);
  }
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = once(this.child, 'exit');
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(t);
  }
}

/** Resolves once `check` passes (bounded), quoting the server log otherwise. */
async function until(what: string, check: () => Promise<boolean>, log: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await sleep(50);
  }
  throw new Error(`${what} not ready within ${ms} ms:\n${readFileSync(log, 'utf8').split('\n').slice(-15).join('\n')}`);
}

const set = (over: Record<string, unknown>) =>
  parseConfig({ token: { env: 'X' }, masterSets: [{ name: 'mymaster', sentinels: ['127.0.0.1:1'], target: { namespace: 'n', name: 's' }, ...over }] }).masterSets[0]!;

describe('connection-setup errors name their cause (real Redis, ACL users, a refused port)', () => {
  let redis: RedisSandbox;
  let master: { host: string; port: number };
  const clients: SentinelClient[] = [];
  const client = (over: Record<string, unknown>) => {
    const c = new SentinelClient(set(over), 1_000);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    redis = await startRedisSandbox({ sentinelAuth: true, sentinels: 3, replicas: 1 });
    master = await redis.masterByMajority();
    // An ACL user as operators create one for sentinel-switch: ROLE only.
    const admin = new Redis({ host: master.host, port: master.port, password: redis.password, lazyConnect: true });
    await admin.connect();
    await admin.call('ACL', 'SETUSER', 'switch', 'on', '>switch-pass', '+role');
    admin.disconnect();
  });
  afterAll(async () => {
    for (const c of clients) await c.close();
    await redis?.stop();
  });

  const sentinels = () => redis.sentinels.map((s) => `${s.host}:${s.port}`);

  it('a wrong redisAuth password: ROLE fails with WRONGPASS and the credential hint', async () => {
    process.env.SS_TEST_WRONG = 'not-the-password';
    const r = await client({ sentinels: sentinels(), redisAuth: { password: { env: 'SS_TEST_WRONG' } } }).askRole(master);
    expect('error' in r && r.error).toMatch(/WRONGPASS/);
    expect('error' in r && r.error).toContain('rejected our credentials');
    expect('error' in r && r.error).toContain('check the auth password/username');
    expect('error' in r && r.error).not.toContain('Connection is closed');
  });

  it('a wrong ACL user: WRONGPASS with the hint; the right ACL user answers ROLE', async () => {
    process.env.SS_TEST_ACL = 'switch-pass';
    const wrong = await client({ redisAuth: { username: 'nobody', password: { env: 'SS_TEST_ACL' } } }).askRole(master);
    expect('error' in wrong && wrong.error).toMatch(/WRONGPASS.*check the auth password\/username/);
    const right = await client({ redisAuth: { username: 'switch', password: { env: 'SS_TEST_ACL' } } }).askRole(master);
    expect(right).toEqual({ role: 'master' });
  });

  it('a wrong sentinelAuth: each sentinel says WRONGPASS, not "Connection is closed."', async () => {
    process.env.SS_TEST_WRONG = 'not-the-password';
    const votes = await client({ sentinels: sentinels(), sentinelAuth: { password: { env: 'SS_TEST_WRONG' } } }).askSentinels();
    expect(votes).toHaveLength(3);
    for (const v of votes) expect('error' in v && v.error).toMatch(/rejected our credentials \(WRONGPASS/);
  });

  it('a refused port: the error says ECONNREFUSED and where', async () => {
    const port = await freePort();
    const votes = await client({ sentinels: [`127.0.0.1:${port}`] }).askSentinels();
    expect(votes).toEqual([{ sentinel: `127.0.0.1:${port}`, error: expect.stringMatching(new RegExp(`ECONNREFUSED 127\\.0\\.0\\.1:${port}`)) }]);
  });

  describe('/readyz', () => {
    let kubeconfig: string;
    let namespace: string;
    beforeAll(async () => {
      const cluster = await testCluster();
      kubeconfig = cluster.kubeconfigPath;
      namespace = await createNamespace(kubeconfig, 'errors');
    });

    async function readyz(over: Record<string, unknown>, kube?: Kube) {
      process.env.SS_TEST_TOKEN = 'token-token';
      process.env.SS_TEST_SENTINEL = redis.sentinelPassword!;
      const config = parseConfig({
        token: { env: 'SS_TEST_TOKEN' },
        kubernetes: { kubeconfig, timeoutMs: 3_000 },
        masterSets: [{ name: redis.masterSet, sentinels: sentinels(), sentinelAuth: { password: { env: 'SS_TEST_SENTINEL' } }, target: { namespace, name: 'redis-master' }, ...over }],
      });
      const service = await createService(config, { timer: false, kube });
      try {
        const res = await service.app.inject({ method: 'GET', url: '/readyz' });
        return { status: res.statusCode, body: res.json() as { checks: { name: string; ok: boolean; detail: string }[] } };
      } finally {
        await service.close();
      }
    }

    it('is 200 with the right redisAuth (the ROLE check passes)', async () => {
      process.env.SS_TEST_RIGHT = redis.password;
      const r = await readyz({ redisAuth: { password: { env: 'SS_TEST_RIGHT' } } });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      expect(r.body.checks.find((c) => c.name === `redis:${redis.masterSet}`)).toMatchObject({ ok: true });
    });

    it('is 503 with a wrong redisAuth although every sentinel answers, naming WRONGPASS', async () => {
      process.env.SS_TEST_WRONG = 'not-the-password';
      const r = await readyz({ redisAuth: { password: { env: 'SS_TEST_WRONG' } } });
      expect(r.status, JSON.stringify(r.body)).toBe(503);
      expect(r.body.checks.find((c) => c.name === `sentinels:${redis.masterSet}`)).toMatchObject({ ok: true });
      const check = r.body.checks.find((c) => c.name === `redis:${redis.masterSet}`);
      expect(check).toMatchObject({ ok: false, detail: expect.stringMatching(/WRONGPASS.*check the auth password\/username/) });
    });

    it('an unreachable API server: the kubernetes check says ECONNREFUSED and where', async () => {
      const port = await freePort();
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: 'c', server: `https://127.0.0.1:${port}`, skipTLSVerify: true }],
        users: [{ name: 'u', token: 'x' }],
        contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
        currentContext: 'x',
      });
      process.env.SS_TEST_RIGHT = redis.password;
      const r = await readyz({ redisAuth: { password: { env: 'SS_TEST_RIGHT' } } }, new Kube(kc, 3_000));
      expect(r.status).toBe(503);
      const check = r.body.checks.find((c) => c.name.startsWith('kubernetes:'));
      expect(check?.detail).toMatch(new RegExp(`Kubernetes API unreachable for get services .*: connect ECONNREFUSED 127\\.0\\.0\\.1:${port}`));
    });
  });
});

describe('TLS: sentinels given by DNS name, certificates for names and for IPs (real TLS)', () => {
  let dir: string;
  const servers: Server[] = [];
  const clients: SentinelClient[] = [];
  let masterIp: string;
  let masterPort: number;
  let plainMasterPort: number;
  let goodSentinel: number;
  let badSentinel: number;
  const openssl = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });

  /** A key and a certificate signed by the test CA, with exactly these subjectAltNames. */
  function cert(name: string, san: string): { cert: string; key: string } {
    openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
    writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=${san}\n`);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-out', `${name}.crt`, '-extfile', `${name}.ext`]);
    return { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
  }

  function tlsLines(c: { cert: string; key: string }): string {
    return [`tls-cert-file ${c.cert}`, `tls-key-file ${c.key}`, `tls-ca-cert-file ${path.join(dir, 'ca.crt')}`, 'tls-auth-clients no'].join('\n');
  }

  async function startServer(name: string, binary: string, conf: string, ping: { host: string; port: number; servername?: string }): Promise<void> {
    const file = path.join(dir, `${name}.conf`);
    writeFileSync(file, conf);
    const s = new Server(binary, file, path.join(dir, `${name}.log`));
    servers.push(s);
    await until(name, async () => {
      const c = new Redis({ host: ping.host, port: ping.port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, tls: { ca: readFileSync(path.join(dir, 'ca.crt')), rejectUnauthorized: false } });
      c.on('error', () => {});
      try {
        await c.connect();
        return (await c.ping()) === 'PONG';
      } finally {
        c.disconnect();
      }
    }, s.log);
  }

  const tlsSet = (sentinels: string[]) => set({ sentinels, tls: { enabled: true, caFile: path.join(dir, 'ca.crt') } });
  const client = (sentinels: string[]) => {
    const c = new SentinelClient(tlsSet(sentinels), 1_000);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'sentinel-switch-tls-'));
    openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=sentinel-switch test CA']);
    const block = `127.${100 + Math.floor(Math.random() * 100)}.${Math.floor(Math.random() * 250)}`;
    masterIp = `${block}.1`;
    // What `localhost` resolves to here (/etc/hosts): the sentinel listens on exactly those.
    const localhost = (await lookup('localhost', { all: true })).map((a) => a.address);
    expect(localhost.length).toBeGreaterThan(0);
    for (const a of localhost) expect(a === '::1' || a.startsWith('127.'), `localhost resolves to ${a}, not loopback`).toBe(true);
    [masterPort, plainMasterPort, goodSentinel, badSentinel] = [await freePort(), await freePort(), await freePort(), await freePort()];

    // The master: certificate with an IP SAN, as Sentinel announces it by IP.
    const ipCert = cert('master-ip', `IP:${masterIp}`);
    await startServer('master', 'redis-server', `bind ${masterIp}\nport 0\ntls-port ${masterPort}\n${tlsLines(ipCert)}\nsave ""\nappendonly no\n`, { host: masterIp, port: masterPort });
    // A node whose certificate names only a DNS name: reached by IP, it must fail verification.
    const dnsOnly = cert('node-dns', 'DNS:redis-node-0.redis-headless.redis.svc.cluster.local');
    await startServer('node-dns', 'redis-server', `bind ${masterIp}\nport 0\ntls-port ${plainMasterPort}\n${tlsLines(dnsOnly)}\nsave ""\nappendonly no\n`, { host: masterIp, port: plainMasterPort });

    const sentinelConf = (port: number, c: { cert: string; key: string }) =>
      [`bind ${localhost.join(' ')}`, 'port 0', `tls-port ${port}`, tlsLines(c), 'tls-replication yes', `sentinel monitor mymaster ${masterIp} ${masterPort} 1`, 'sentinel down-after-milliseconds mymaster 5000', ''].join('\n');
    // A sentinel with a certificate for its DNS name (what cert-manager or Bitnami generate).
    await startServer('sentinel-good', 'redis-sentinel', sentinelConf(goodSentinel, cert('sentinel-localhost', 'DNS:localhost')), { host: '127.0.0.1', port: goodSentinel });
    // And one whose certificate is for another name.
    await startServer('sentinel-bad', 'redis-sentinel', sentinelConf(badSentinel, cert('sentinel-other', 'DNS:other-name.invalid')), { host: '127.0.0.1', port: badSentinel });
  });

  afterAll(async () => {
    for (const c of clients) await c.close();
    for (const s of servers) await s.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a sentinel given as localhost:PORT with a certificate for "localhost" answers over TLS', async () => {
    const votes = await client([`localhost:${goodSentinel}`]).askSentinels();
    expect(votes.length).toBeGreaterThan(0);
    for (const v of votes) expect(v, JSON.stringify(v)).toMatchObject({ master: { host: masterIp, port: masterPort } });
  });

  it('ROLE over TLS of a node announced by IP works with an IP SAN', async () => {
    expect(await client([`localhost:${goodSentinel}`]).askRole({ host: masterIp, port: masterPort })).toEqual({ role: 'master' });
  });

  it('a certificate for another name: the error is the TLS cause, naming the mismatch', async () => {
    const votes = await client([`localhost:${badSentinel}`]).askSentinels();
    expect(votes.length).toBeGreaterThan(0);
    for (const v of votes) {
      expect('error' in v && v.error, JSON.stringify(v)).toMatch(/TLS failed \(.*(altnames|localhost).*\): the certificate must be signed by tls\.caFile/);
      expect('error' in v && v.error).not.toContain('Connection is closed');
    }
  });

  it('a node reached by IP whose certificate has only a DNS name: the TLS error says so', async () => {
    const r = await client([`localhost:${goodSentinel}`]).askRole({ host: masterIp, port: plainMasterPort });
    expect('error' in r && r.error, JSON.stringify(r)).toMatch(new RegExp(`TLS failed \\(.*IP: ${masterIp.replace(/\./g, '\\.')} is not in the cert's list`));
  });

  it('TLS to a plaintext port or a wrong CA is a TLS error too, never "Connection is closed."', async () => {
    // The sentinel's certificate checked against a CA that did not sign it.
    writeFileSync(path.join(dir, 'other-ca.crt'), readFileSync(path.join(dir, 'master-ip.crt')));
    const c = new SentinelClient(set({ sentinels: [`localhost:${goodSentinel}`], tls: { enabled: true, caFile: path.join(dir, 'other-ca.crt') } }), 1_000);
    clients.push(c);
    const votes = await c.askSentinels();
    for (const v of votes) expect('error' in v && v.error, JSON.stringify(v)).toMatch(/TLS failed \((unable to verify|self.signed|unable to get)/i);
  });
});
