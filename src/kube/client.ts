// The request path to the Kubernetes API: client-node's KubeConfig for what it does well (kubeconfig
// files, in-cluster config, every auth kind incl. exec plugins and token files that rotate, CA and
// client certificates, proxies), and node:https for the requests themselves. The generated
// CoreV1Api/DiscoveryV1Api pulled ~70 MiB of models, serializers, undici and proxy agents into
// memory for six calls; this file is what those calls need (docs/benchmarks.md, footprint).
//
// Auth is applied per request (applyToHTTPSOptions), so a rotated ServiceAccount token or a
// refreshed exec credential is picked up; the connection is one keep-alive Agent per set of TLS
// material (CA, client certificate, server name), so a request reuses an open TLS connection.
import http from 'node:http';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

/** The API server answered with an HTTP error; `body` is its Status object when it sent one. */
export class ApiError extends Error {
  readonly status: number;
  readonly body: unknown;
  constructor(status: number, body: unknown) {
    super(`HTTP ${status}${statusMessage(body) ? `: ${statusMessage(body)}` : ''}`);
    this.status = status;
    this.body = body;
  }
}

/** A request on a kept-alive connection that the server had closed: sent again once. */
class Reused extends Error {}

/** No answer within the request timeout (the request was aborted). */
export class TimeoutError extends Error {}

export interface RequestOptions {
  body?: unknown;
  /** Default application/json; a patch says which kind (application/merge-patch+json). */
  contentType?: string;
  query?: Record<string, string | number | boolean | undefined>;
}

/** One open watch: lines arrive through onLine; `done` settles when the stream ends or fails. */
export interface Stream {
  /** Resolves once the API server accepted the watch (HTTP 200); rejects with ApiError otherwise. */
  opened: Promise<void>;
  /** Settles when the stream ends: resolves on a clean end, rejects on an error. */
  done: Promise<void>;
  abort(): void;
}

type TlsKey = { ca?: unknown; cert?: unknown; key?: unknown; pfx?: unknown; passphrase?: unknown; rejectUnauthorized?: unknown; servername?: unknown };

export class KubeClient {
  readonly #kc: KubeConfig;
  readonly #timeoutMs: number;
  #agent: { key: TlsKey; agent: http.Agent; watch: http.Agent } | undefined;
  /** Requests sent, by method (GET, PATCH, POST; WATCH for streams): what the bench and tests count. */
  readonly sent: Record<string, number> = {};

  constructor(kc: KubeConfig, timeoutMs: number) {
    this.#kc = kc;
    this.#timeoutMs = timeoutMs;
  }

  /** The request as parsed JSON; ApiError for an HTTP error, TimeoutError, or the network's error (ECONNREFUSED, a certificate error, ENOTFOUND). */
  async request<T = unknown>(method: string, path: string, o: RequestOptions = {}): Promise<T> {
    try {
      return await this.#once<T>(method, path, o);
    } catch (err) {
      // A kept-alive connection the server closed while it was idle fails at once; sending again
      // on a new one is what node's documentation advises (req.reusedSocket). A repeated patch is
      // harmless: it carries the resourceVersion it was decided on.
      if (!(err instanceof Reused)) throw err;
      return this.#once<T>(method, path, o);
    }
  }

  async #once<T>(method: string, path: string, o: RequestOptions): Promise<T> {
    const { req, timer } = await this.#start(method, path, o, this.#timeoutMs);
    return new Promise<T>((resolve, reject) => {
      req.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(req.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE') ? new Reused(err.message) : err);
      });
      req.once('response', (res) => {
        readBody(res).then(
          (body) => {
            clearTimeout(timer);
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) resolve(body as T);
            else reject(new ApiError(status, body));
          },
          (err: unknown) => {
            clearTimeout(timer);
            reject(err);
          },
        );
      });
      req.end(o.body === undefined ? undefined : JSON.stringify(o.body));
    });
  }

  /**
   * A watch (or any line-delimited JSON stream): each line parsed and handed to onLine. No overall
   * timeout (the caller passes timeoutSeconds to the server and keeps its own idle timer); the
   * socket does not keep the process alive.
   */
  async stream(path: string, query: RequestOptions['query'], onLine: (obj: unknown) => void): Promise<Stream> {
    const { req, timer } = await this.#start('GET', path, { query }, this.#timeoutMs, 'WATCH');
    let opened!: { resolve: () => void; reject: (e: unknown) => void };
    const openedP = new Promise<void>((resolve, reject) => (opened = { resolve, reject }));
    let done!: { resolve: () => void; reject: (e: unknown) => void };
    const doneP = new Promise<void>((resolve, reject) => (done = { resolve, reject }));
    openedP.catch(() => undefined);
    doneP.catch(() => undefined);
    const fail = (err: unknown): void => {
      clearTimeout(timer);
      opened.reject(err);
      done.reject(err);
    };
    req.once('socket', (s) => s.unref());
    req.once('error', fail);
    req.once('response', (res) => {
      clearTimeout(timer); // the timeout covers the answer's head; the stream itself may be quiet for minutes
      const status = res.statusCode ?? 0;
      if (status !== 200) {
        readBody(res).then((body) => fail(new ApiError(status, body)), fail);
        return;
      }
      opened.resolve();
      let rest = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        rest += chunk;
        let nl: number;
        while ((nl = rest.indexOf('\n')) >= 0) {
          const line = rest.slice(0, nl).trim();
          rest = rest.slice(nl + 1);
          if (!line) continue;
          let obj: unknown;
          try {
            obj = JSON.parse(line);
          } catch (err) {
            req.destroy(new Error(`watch ${path}: a line is not JSON (${(err as Error).message})`));
            return;
          }
          onLine(obj);
        }
      });
      let ended = false;
      res.once('end', () => {
        ended = true;
        done.resolve();
      });
      res.once('error', fail);
      res.once('close', () => {
        if (!ended) fail(new Error(`watch ${path}: the stream was cut off`));
      });
    });
    req.end();
    return { opened: openedP, done: doneP, abort: () => req.destroy() };
  }

  /** Closes idle connections (open watches are aborted by their owners). */
  close(): void {
    this.#agent?.agent.destroy();
    this.#agent?.watch.destroy();
    this.#agent = undefined;
  }

  async #start(method: string, path: string, o: RequestOptions, timeoutMs: number, count = method) {
    const opts: https.RequestOptions = {};
    // Auth and TLS from the kubeconfig, every time: a token file or exec plugin may have a new token.
    await this.#kc.applyToHTTPSOptions(opts);
    const cluster = this.#kc.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster');
    const server = new URL(cluster.server);
    const secure = server.protocol === 'https:';
    // A proxy (cluster.proxyUrl) is the library's business: its agent then. Otherwise ours, kept alive.
    const agent = cluster.proxyUrl ? (opts.agent as http.Agent) : this.#agentFor(opts, secure, count === 'WATCH');
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(o.query ?? {})) if (v !== undefined) query.set(k, String(v));
    const qs = query.size ? `?${query}` : '';
    const headers: Record<string, string> = { ...((opts.headers ?? {}) as Record<string, string>), accept: 'application/json' };
    if (o.body !== undefined) headers['content-type'] = o.contentType ?? 'application/json';
    this.sent[count] = (this.sent[count] ?? 0) + 1;
    const req = (secure ? https : http).request({
      protocol: server.protocol,
      hostname: server.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: server.port || (secure ? 443 : 80),
      path: `${server.pathname.replace(/\/$/, '')}${path}${qs}`,
      method,
      headers,
      agent,
      auth: opts.auth,
    });
    const timer = setTimeout(() => req.destroy(new TimeoutError(`Kubernetes API did not answer within ${timeoutMs} ms`)), timeoutMs);
    return { req, timer };
  }

  /**
   * One keep-alive Agent for requests, rebuilt only if the TLS material changes (a rotated client
   * certificate), and one without keep-alive for watches: a watch holds its connection for minutes
   * and its socket is unref'd, so it must never go back to the pool of ordinary requests.
   */
  #agentFor(opts: https.RequestOptions, secure: boolean, watch: boolean): http.Agent {
    const key: TlsKey = { ca: opts.ca, cert: opts.cert, key: opts.key, pfx: opts.pfx, passphrase: opts.passphrase, rejectUnauthorized: opts.rejectUnauthorized, servername: opts.servername };
    if (!this.#agent || !sameTls(this.#agent.key, key)) {
      this.#agent?.agent.destroy();
      const tls = key as https.AgentOptions;
      const make = (keepAlive: boolean): http.Agent => {
        const base = { keepAlive, keepAliveMsecs: 30_000, maxFreeSockets: 4 };
        return secure ? new https.Agent({ ...base, ...tls }) : new http.Agent(base);
      };
      this.#agent = { key, agent: make(true), watch: make(false) };
    }
    return watch ? this.#agent.watch : this.#agent.agent;
  }
}

/** A whole answer: parsed JSON, the text itself when it is not JSON (a proxy's HTML page, say: kept for the error message), undefined when empty. */
function readBody(res: http.IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.once('error', reject);
    res.once('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        resolve(text ? JSON.parse(text) : undefined);
      } catch {
        resolve(text);
      }
    });
  });
}

function sameTls(a: TlsKey, b: TlsKey): boolean {
  return (Object.keys(b) as (keyof TlsKey)[]).every((k) => {
    const x = a[k];
    const y = b[k];
    if (Buffer.isBuffer(x) && Buffer.isBuffer(y)) return x.equals(y);
    return x === y;
  });
}

/** The `message` of a Kubernetes Status body (or the body itself when it is text). */
export function statusMessage(body: unknown): string | undefined {
  if (typeof body === 'string') return body.trim() ? body.trim().slice(0, 500) : undefined;
  if (body && typeof body === 'object' && 'message' in body) return String((body as { message: unknown }).message);
  return undefined;
}
