// Runs sentinel-switch as its own process (node src/server.ts), as Kubernetes would: the tests,
// the demo, the benchmarks and the chaos run kill it, restart it and run several replicas.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import type { Config } from '../../src/config.ts';

export const repoRoot = resolve(import.meta.dirname, '../..');

export interface SwitchProcess {
  url: string;
  port: number;
  configPath: string;
  logPath: string;
  pid(): number | undefined;
  /** Lines of the JSON log so far, parsed. */
  logLines(): Record<string, unknown>[];
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Starts it again with the same config and port. */
  restart(): Promise<void>;
}

/** A port nobody listens on right now (the kernel picks it). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const srv = createServer();
  srv.listen(0, host);
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  srv.close();
  await once(srv, 'close');
  return port;
}

export type SwitchConfigInput = Omit<Partial<Config>, 'masterSets' | 'token'> & { masterSets: unknown[]; token?: Config['token'] };

/**
 * Writes the config (YAML, as an operator would) and starts the service; resolves once /healthz answers.
 * The token file gets a trailing newline on purpose: that is how `kubectl create secret --from-file` leaves it.
 */
export async function startSwitch(opts: { dir: string; name?: string; token: string; config: SwitchConfigInput; port?: number; env?: Record<string, string> }): Promise<SwitchProcess> {
  const name = opts.name ?? 'sentinel-switch';
  mkdirSync(opts.dir, { recursive: true });
  const port = opts.port ?? (await freePort());
  const tokenPath = join(opts.dir, `${name}.token`);
  writeFileSync(tokenPath, `${opts.token}\n`, { mode: 0o600 });
  const configPath = join(opts.dir, `${name}.yaml`);
  writeFileSync(configPath, stringify({ listen: { host: '127.0.0.1', port }, token: { file: tokenPath }, ...opts.config }));
  const logPath = join(opts.dir, `${name}.log`);
  const lines: Record<string, unknown>[] = [];
  let child: ChildProcess | undefined;

  const start = async (): Promise<void> => {
    const log = createWriteStream(logPath, { flags: 'a' });
    child = spawn(process.execPath, [join(repoRoot, 'src/server.ts'), '--config', configPath], {
      cwd: repoRoot,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      log.write(d);
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          lines.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          /* not JSON: kept in the log file */
        }
      }
    });
    child.stderr!.on('data', (d: Buffer) => log.write(d));
    child.once('exit', () => log.end());
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`sentinel-switch exited with ${child.exitCode} at start; see ${logPath}`);
      try {
        const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(500) });
        if (res.ok) return;
      } catch {
        /* not listening yet */
      }
      if (Date.now() > deadline) throw new Error(`sentinel-switch did not answer /healthz within 15 s; see ${logPath}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };

  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return c?.exitCode ?? null;
    const exited = once(c, 'exit');
    c.kill(signal);
    const timer = setTimeout(() => c.kill('SIGKILL'), 10_000);
    const [code] = (await exited) as [number | null];
    clearTimeout(timer);
    return code;
  };

  await start();
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    configPath,
    logPath,
    pid: () => (child && child.exitCode === null && child.signalCode === null ? child.pid : undefined),
    logLines: () => lines,
    stop,
    restart: start,
  };
}
