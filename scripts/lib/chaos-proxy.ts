// A TCP proxy on loopback that delays what the client sends (requests reach the server late;
// answers come back at once): a sentinel-switch replica with a slow path to the API server.
// TLS passes through untouched (the API server's certificate names 127.0.0.1, whatever the port).
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';

export interface DelayProxy {
  port: number;
  /** Client-to-server delay for data sent from now on. */
  setDelay(ms: number): void;
  close(): Promise<void>;
}

export async function startDelayProxy(target: { host: string; port: number }, delayMs: number): Promise<DelayProxy> {
  let delay = delayMs;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    sockets.add(client).add(upstream);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    // Same delay for every chunk of one connection, so timers keep their order.
    const d = delay;
    client.on('data', (chunk) => void setTimeout(() => upstream.writable && upstream.write(chunk), d));
    client.on('end', () => void setTimeout(() => upstream.end(), d));
    upstream.on('data', (chunk) => client.writable && client.write(chunk));
    upstream.on('end', () => client.end());
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', () => setTimeout(drop, d + 50));
    upstream.on('close', drop);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    setDelay: (ms) => void (delay = ms),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Where a kubeconfig (JSON, as the harness writes them) points: the API server's host and port. */
export function apiServerOf(kubeconfig: string): { host: string; port: number } {
  const kc = JSON.parse(readFileSync(kubeconfig, 'utf8')) as { clusters: { cluster: { server: string } }[] };
  const url = new URL(kc.clusters[0]!.cluster.server);
  return { host: url.hostname, port: Number(url.port || 443) };
}

/** Writes a copy of a kubeconfig (JSON) whose API server is reached through 127.0.0.1:proxyPort. */
export function writeProxiedKubeconfig(kubeconfig: string, proxyPort: number, out: string): string {
  const kc = JSON.parse(readFileSync(kubeconfig, 'utf8')) as { clusters: { cluster: { server: string } }[] };
  for (const c of kc.clusters) c.cluster.server = `https://127.0.0.1:${proxyPort}`;
  writeFileSync(out, JSON.stringify(kc, null, 2), { mode: 0o600 });
  return out;
}
