// The Sentinel hook (scripts/client-reconfig.sh) is run here exactly as a sentinel would run it:
// a fresh process with an empty environment except for what we pass, and a PATH that holds ONLY
// the commands the script is allowed to use. Its counterpart is a real node http(s) server that
// records every request, so the assertions are on the bytes that reach the wire.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startRedisSandbox, type RedisSandbox } from './harness/redis.ts';

const SCRIPT = path.resolve(import.meta.dirname, '../scripts/client-reconfig.sh');
const PREFIX = 'sentinel-switch hook:';
const TOKEN = 's3cret-Token_0123456789';

// The script's whole dependency list (the Bitnami sentinel image has these, and no curl/wget).
const ALLOWED_COMMANDS = ['bash', 'timeout', 'sleep', 'openssl'];

let work: string;
let bin: string;
let tls: { key: string; cert: string; ca: string; otherCa: string };

beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'sentinel-switch-hook-'));
  bin = path.join(work, 'bin');
  mkdirSync(bin);
  for (const cmd of ALLOWED_COMMANDS) {
    const real = execFileSync('/bin/sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim();
    symlinkSync(real, path.join(bin, cmd));
  }
  // A self-signed certificate for 127.0.0.1, and an unrelated one to prove verification bites.
  const mk = (name: string, san: string) => {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
      '-subj', `/CN=${name}`, '-addext', `subjectAltName=${san}`,
      '-keyout', path.join(work, `${name}.key`), '-out', path.join(work, `${name}.pem`),
    ], { stdio: 'ignore' });
  };
  mk('server', 'IP:127.0.0.1');
  mk('other', 'DNS:other.invalid');
  tls = {
    key: path.join(work, 'server.key'),
    cert: path.join(work, 'server.pem'),
    ca: path.join(work, 'server.pem'),
    otherCa: path.join(work, 'other.pem'),
  };
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

interface Recorded { method: string; url: string; headers: http.IncomingHttpHeaders; body: string; }
type Reply = { status: number; body?: unknown } | 'hang' | 'garbage';
interface TestServer { url: string; requests: Recorded[]; close(): Promise<void>; }

const servers: TestServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** Serves the replies in order (the last one repeats) and records every request. */
async function startServer(replies: Reply[], opts: { tls?: boolean } = {}): Promise<TestServer> {
  const requests: Recorded[] = [];
  const handler: http.RequestListener = (req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => { body += c; });
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      const reply = replies[Math.min(requests.length - 1, replies.length - 1)]!;
      if (reply === 'hang') return; // never answer: the hook's attempt timeout must fire
      if (reply === 'garbage') { req.socket.end('SSH-2.0-not-http\r\n'); return; }
      res.writeHead(reply.status, { 'content-type': 'application/json' });
      res.end(reply.body === undefined ? '' : JSON.stringify(reply.body));
    });
  };
  const server = opts.tls
    ? https.createServer({ key: readFileSync(tls.key), cert: readFileSync(tls.cert) }, handler)
    : http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const s: TestServer = {
    url: `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
  servers.push(s);
  return s;
}

/** A loopback port nobody listens on (bound, then released). */
async function refusedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

interface RunResult { code: number | null; stderr: string; stdout: string; ms: number; }
const ARGS = ['mymaster', 'leader', 'start', '10.0.0.1', '6379', '10.0.0.2', '6380'];

/** `env -i PATH=<only the allowed commands> bash client-reconfig.sh ARGS`, like Sentinel's execve. */
function runHook(env: Record<string, string>, args: string[] = ARGS): Promise<RunResult> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(path.join(bin, 'bash'), [SCRIPT, ...args], {
      env: { PATH: bin, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: performance.now() - t0 }));
  });
}

function expectWellFormedStderr(r: RunResult, masterSet = 'mymaster'): void {
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  expect(lines.length).toBeGreaterThan(0);
  for (const line of lines) {
    expect(line.startsWith(`${PREFIX} masterSet=${masterSet}:`), line).toBe(true);
    expect(line).not.toContain(TOKEN);
  }
  expect(r.stdout).toBe('');
}

const EXPECTED_BODY =
  '{"masterSet":"mymaster","role":"leader","state":"start","from":{"host":"10.0.0.1","port":6379},"to":{"host":"10.0.0.2","port":6380}}';

describe('the hook delivers the failover event', () => {
  it('POSTs the exact JSON body with the bearer token from a file (trailing newline stripped)', async () => {
    const srv = await startServer([{ status: 200, body: { ok: true } }]);
    const tokenFile = path.join(work, 'token');
    writeFileSync(tokenFile, `${TOKEN}\n`);
    const r = await runHook({ SENTINEL_SWITCH_URL: srv.url, SENTINEL_SWITCH_TOKEN_FILE: tokenFile });
    expect(r.code, r.stderr).toBe(0);
    expect(srv.requests).toHaveLength(1);
    const req = srv.requests[0]!;
    expect(req.method).toBe('POST');
    expect(req.url).toBe('/v1/failover');
    expect(req.body).toBe(EXPECTED_BODY);
    expect(req.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.headers['content-length']).toBe(String(Buffer.byteLength(EXPECTED_BODY)));
    expect(req.headers.connection).toBe('close');
    expectWellFormedStderr(r);
  });

  it('reads the token from SENTINEL_SWITCH_TOKEN and honours a path prefix in the URL', async () => {
    const srv = await startServer([{ status: 204 }]);
    const r = await runHook({ SENTINEL_SWITCH_URL: `${srv.url}/switch/`, SENTINEL_SWITCH_TOKEN: TOKEN });
    expect(r.code, r.stderr).toBe(0);
    expect(srv.requests.map((q) => q.url)).toEqual(['/switch/v1/failover']);
    expect(srv.requests[0]!.headers.authorization).toBe(`Bearer ${TOKEN}`);
  });

  it('JSON-escapes a master name with quotes and backslashes, and passes host names through', async () => {
    const srv = await startServer([{ status: 200 }]);
    const name = 'my"odd\\set';
    const host = 'redis-node-1.redis-headless.default.svc.cluster.local';
    const r = await runHook(
      { SENTINEL_SWITCH_URL: srv.url, SENTINEL_SWITCH_TOKEN: TOKEN },
      [name, 'observer', 'failover', '10.0.0.1', '6379', host, '6379'],
    );
    expect(r.code, r.stderr).toBe(0);
    const body = srv.requests[0]!.body;
    expect(JSON.parse(body)).toEqual({
      masterSet: name, role: 'observer', state: 'failover',
      from: { host: '10.0.0.1', port: 6379 }, to: { host, port: 6379 },
    });
    expect(srv.requests[0]!.headers['content-length']).toBe(String(Buffer.byteLength(body)));
  });

  it('retries a 503, then exits 0 on the 200', async () => {
    const srv = await startServer([{ status: 503, body: { error: 'Service Unavailable' } }, { status: 200 }]);
    const r = await runHook({ SENTINEL_SWITCH_URL: srv.url, SENTINEL_SWITCH_TOKEN: TOKEN });
    expect(r.code, r.stderr).toBe(0);
    expect(srv.requests).toHaveLength(2);
    expect(srv.requests[1]!.body).toBe(EXPECTED_BODY);
    expect(r.stderr).toContain('503');
    expectWellFormedStderr(r);
  });

  it('retries a 429 and a non-HTTP answer like any transient failure', async () => {
    const srv = await startServer([{ status: 429 }, 'garbage', { status: 200 }]);
    const r = await runHook({ SENTINEL_SWITCH_URL: srv.url, SENTINEL_SWITCH_TOKEN: TOKEN });
    expect(r.code, r.stderr).toBe(0);
    expect(srv.requests).toHaveLength(3);
    expect(r.stderr).toContain('not an HTTP response');
  });
});

describe('the hook gives up with the exit code Sentinel expects', () => {
  it('401: exit 2 at once, stderr names the status and the server message, never the token', async () => {
    const srv = await startServer([{ status: 401, body: { statusCode: 401, error: 'Unauthorized', message: 'bad token' } }]);
    const r = await runHook({ SENTINEL_SWITCH_URL: srv.url, SENTINEL_SWITCH_TOKEN: TOKEN });
    expect(r.code).toBe(2);
    expect(srv.requests).toHaveLength(1);
    expect(r.stderr).toContain('HTTP 401');
    expect(r.stderr).toContain('bad token');
    expect(r.ms).toBeLessThan(2_000);
    expectWellFormedStderr(r);
  });

  it('404 (wrong URL prefix): exit 2 at once', async () => {
    const srv = await startServer([{ status: 404, body: { message: 'Route POST:/v1/failover not found' } }]);
    const r = await runHook({ SENTINEL_SWITCH_URL: srv.url, SENTINEL_SWITCH_TOKEN: TOKEN });
    expect(r.code).toBe(2);
    expect(srv.requests).toHaveLength(1);
    expect(r.stderr).toContain('HTTP 404');
    expect(r.stderr).toContain('not found');
  });

  it('connection refused for the whole retry window: exit 1 after about SENTINEL_SWITCH_RETRY_SECONDS', async () => {
    const port = await refusedPort();
    const r = await runHook({
      SENTINEL_SWITCH_URL: `http://127.0.0.1:${port}`, SENTINEL_SWITCH_TOKEN: TOKEN, SENTINEL_SWITCH_RETRY_SECONDS: '2',
    });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain('Connection refused');
    expect(r.stderr).toContain('giving up');
    // Attempts at ~0, 0.2, 0.7, 1.7, 2.0 s: several retries, and it stops at the window.
    expect(r.stderr.match(/attempt \d+ for/g)?.length).toBeGreaterThanOrEqual(3);
    expect(r.ms).toBeGreaterThanOrEqual(1_900);
    expect(r.ms).toBeLessThan(4_000);
    expectWellFormedStderr(r);
  });

  it('a server that never answers: each attempt times out, then exit 1', async () => {
    const srv = await startServer(['hang']);
    const r = await runHook({
      SENTINEL_SWITCH_URL: srv.url, SENTINEL_SWITCH_TOKEN: TOKEN,
      SENTINEL_SWITCH_ATTEMPT_TIMEOUT: '0.5', SENTINEL_SWITCH_RETRY_SECONDS: '1.5',
    });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain('no answer within 0.500 s');
    expect(srv.requests.length).toBeGreaterThanOrEqual(2);
    // Window + one attempt at most.
    expect(r.ms).toBeLessThan(1_500 + 500 + 1_000);
  });

  it.each([
    ['too few arguments', ARGS.slice(0, 5)],
    ['a port that is not a number', ['mymaster', 'leader', 'start', '10.0.0.1', '63x9', '10.0.0.2', '6379']],
    ['a port out of range', ['mymaster', 'leader', 'start', '10.0.0.1', '6379', '10.0.0.2', '70000']],
    ['a host with JSON in it', ['mymaster', 'leader', 'start', '10.0.0.1", "x": "', '6379', '10.0.0.2', '6379']],
    ['a host with a space', ['mymaster', 'leader', 'start', '10.0.0.1', '6379', 'a b', '6379']],
    ['a master name with a control character', ['my\tmaster', 'leader', 'start', '10.0.0.1', '6379', '10.0.0.2', '6379']],
    ['an odd role', ['mymaster', 'Leader!', 'start', '10.0.0.1', '6379', '10.0.0.2', '6379']],
  ])('bad arguments (%s): exit 2, nothing sent', async (_name, args) => {
    const srv = await startServer([{ status: 200 }]);
    const r = await runHook({ SENTINEL_SWITCH_URL: srv.url, SENTINEL_SWITCH_TOKEN: TOKEN }, args);
    expect(r.code).toBe(2);
    expect(srv.requests).toHaveLength(0);
    expect(r.stderr.startsWith(PREFIX)).toBe(true);
  });

  it('missing URL or token, or a malformed URL: exit 2 with a clear line', async () => {
    const noUrl = await runHook({ SENTINEL_SWITCH_TOKEN: TOKEN });
    expect(noUrl.code).toBe(2);
    expect(noUrl.stderr).toContain('SENTINEL_SWITCH_URL is not set');
    expectWellFormedStderr(noUrl);

    const noToken = await runHook({ SENTINEL_SWITCH_URL: 'http://127.0.0.1:1' });
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toContain('no token');

    const missingFile = await runHook({
      SENTINEL_SWITCH_URL: 'http://127.0.0.1:1', SENTINEL_SWITCH_TOKEN_FILE: path.join(work, 'nope'),
    });
    expect(missingFile.code).toBe(2);
    expect(missingFile.stderr).toContain('SENTINEL_SWITCH_TOKEN_FILE');

    const badUrl = await runHook({ SENTINEL_SWITCH_URL: 'ftp://127.0.0.1/x', SENTINEL_SWITCH_TOKEN: TOKEN });
    expect(badUrl.code).toBe(2);
    expect(badUrl.stderr).toContain('is not http(s)://host[:port][/prefix]');
  });
});

describe('the token file and the pod\'s fsGroup', () => {
  // A Secret volume file is 0440 root:<fsGroup>. The hook runs as the sentinel user (here uid
  // 10001, as the user a pod would run it as): it reads the token only through that group.
  function runAs(uid: number, gid: number, tokenFile: string): Promise<{ code: number | null; stderr: string }> {
    return new Promise((resolve, reject) => {
      // System PATH only: this user cannot enter root's private folders.
      const child = spawn('bash', [SCRIPT, ...ARGS], {
        uid, gid,
        env: { PATH: '/usr/local/bin:/usr/bin:/bin', SENTINEL_SWITCH_URL: 'http://127.0.0.1:1', SENTINEL_SWITCH_TOKEN_FILE: tokenFile, SENTINEL_SWITCH_RETRY_SECONDS: '0' },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stderr }));
    });
  }

  it('without the group the hook says "not readable by uid N: set the pod\'s fsGroup" (exit 2); with it, it reads the token', async () => {
    if (process.getuid?.() !== 0) throw new Error('this test switches to uid 10001 and needs root, as CI runs');
    const dir = mkdtempSync(path.join(tmpdir(), 'ss-hook-fsgroup-'));
    chmodSync(dir, 0o755);
    const file = path.join(dir, 'token');
    writeFileSync(file, `${TOKEN}\n`);
    chmodSync(file, 0o440);
    try {
      chownSync(file, 0, 0); // no fsGroup: root's group
      const denied = await runAs(10001, 10001, file);
      expect(denied.code).toBe(2);
      expect(denied.stderr).toContain(`SENTINEL_SWITCH_TOKEN_FILE '${file}' is not readable by uid 10001: set the pod's fsGroup`);
      chownSync(file, 0, 10001); // the fsGroup the kubelet applies
      const allowed = await runAs(10001, 10001, file);
      expect(allowed.stderr).not.toContain('not readable');
      expect(allowed.stderr).toContain('connect to 127.0.0.1:1 failed'); // got past the token: delivery fails, retried by Sentinel
      expect(allowed.code).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the hook needs nothing the sentinel image lacks', () => {
  it('runs with a PATH holding only bash, timeout, sleep and openssl: no curl, no wget', async () => {
    const probe = spawnSync(path.join(bin, 'bash'), ['-c', 'command -v curl || command -v wget || command -v cat'], {
      env: { PATH: bin },
    });
    expect(probe.status).not.toBe(0);
    // Every test in this file runs the script with that PATH; one more delivery for the record.
    const srv = await startServer([{ status: 200 }]);
    const r = await runHook({ SENTINEL_SWITCH_URL: srv.url, SENTINEL_SWITCH_TOKEN: TOKEN });
    expect(r.code, r.stderr).toBe(0);
  });

  it('https through openssl s_client, verified against SENTINEL_SWITCH_CA_FILE', async () => {
    const srv = await startServer([{ status: 200 }], { tls: true });
    const ok = await runHook({
      SENTINEL_SWITCH_URL: `${srv.url}/p`, SENTINEL_SWITCH_TOKEN: TOKEN, SENTINEL_SWITCH_CA_FILE: tls.ca,
    });
    expect(ok.code, ok.stderr).toBe(0);
    expect(srv.requests).toHaveLength(1);
    expect(srv.requests[0]!.url).toBe('/p/v1/failover');
    expect(srv.requests[0]!.body).toBe(EXPECTED_BODY);
    expect(srv.requests[0]!.headers.authorization).toBe(`Bearer ${TOKEN}`);

    // A certificate the configured CA does not vouch for is permanent (exit 2), and the token
    // never leaves the machine: the handshake fails before the request is written.
    const wrongCa = await runHook({
      SENTINEL_SWITCH_URL: srv.url, SENTINEL_SWITCH_TOKEN: TOKEN, SENTINEL_SWITCH_CA_FILE: tls.otherCa,
    });
    expect(wrongCa.code).toBe(2);
    expect(wrongCa.stderr).toContain('verify error');
    expect(srv.requests).toHaveLength(1);
    expectWellFormedStderr(wrongCa);
  });
});

describe('the hook under a real Sentinel', () => {
  let sb: RedisSandbox | undefined;
  afterAll(async () => {
    await sb?.stop();
  });

  it('every sentinel execs it with the restricted PATH; exit 0 is done, exit 2 is a -script-error never retried', async () => {
    // First delivery accepted, the next ones refused: one sentinel sees 200, two see 401.
    const srv = await startServer([{ status: 200 }, { status: 401, body: { error: 'Unauthorized', message: 'bad token' } }]);
    const tokenFile = path.join(work, 'sentinel-token');
    writeFileSync(tokenFile, `${TOKEN}\n`);
    sb = await startRedisSandbox({
      sentinelAuth: true, // as the Bitnami chart's default auth.sentinel
      hook: {
        script: SCRIPT,
        env: { PATH: bin, SENTINEL_SWITCH_URL: srv.url, SENTINEL_SWITCH_TOKEN_FILE: tokenFile, SENTINEL_SWITCH_RETRY_SECONDS: '5' },
      },
    });
    const before = await sb.masterByMajority();
    await sb.failover();

    const until = async (what: string, ok: () => boolean, ms: number) => {
      const deadline = Date.now() + ms;
      while (!ok()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await until('3 hook deliveries', () => srv.requests.length >= 3, 15_000);
    const scriptErrors = () => sb!.sentinels.filter((s) => /-script-error \S+client-reconfig\.sh 0 2/.test(readFileSync(s.logFile, 'utf8')));
    await until('2 -script-error lines', () => scriptErrors().length === 2, 5_000);
    // Exit 2 is final: no sentinel runs the hook again (a retry would come after 30 s; a quick
    // second run here would mean the hook exited 1 instead).
    await new Promise((r) => setTimeout(r, 1_000));
    expect(srv.requests).toHaveLength(3);

    const bodies = srv.requests.map((q) => JSON.parse(q.body) as { role: string; state: string; from: unknown; to: { host: string } });
    expect(bodies.map((b) => b.role).sort()).toEqual(['leader', 'observer', 'observer']);
    const after = await sb.masterByMajority();
    for (const b of bodies) {
      expect(b.state).toBe('start');
      expect(b.from).toEqual(before);
      expect(b.to).toEqual(after);
    }
    for (const q of srv.requests) expect(q.headers.authorization).toBe(`Bearer ${TOKEN}`);
  });
});
