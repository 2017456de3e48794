// The HTTP client of the fuzzer. Two transports, because the interesting requests are the ones a
// well-behaved client refuses to send:
// - node:http with a keep-alive agent for everything node:http can express (most cases: few
//   sockets, no TIME_WAIT pile-up over 10 000 cases);
// - a raw TCP socket for the rest: lying or malformed Content-Length, chunked bodies, bare LF,
//   control characters in headers, obs-fold, absolute-form targets, half-closed bodies.
// Both return the first final (non-1xx) response, or why there was none. Every wait is bounded.
import http from 'node:http';
import net from 'node:net';

export interface HttpRequest {
  method?: string;
  /** The request-target exactly as sent: "/v1/failover", "http://x/v1/failover", "/%761/reconcile"... */
  target: string;
  headers: [string, string][];
  body?: Buffer;
  /**
   * length (default): Content-Length = body size. chunked: Transfer-Encoding: chunked. none: neither
   * header. Or a Content-Length value to declare whatever the body is, optionally followed by a
   * half-close (FIN) so the server sees the body end early.
   */
  framing?: 'length' | 'chunked' | 'none' | { contentLength: string; halfClose?: boolean };
  /** Extra raw header lines (already terminated by the caller, e.g. "Authorization: Bearer x\n\r\n"). */
  rawHeaderBytes?: Buffer;
  timeoutMs?: number;
}

export interface HttpResponse {
  /** A status code, or what happened instead of a response. */
  status: number | 'closed' | 'timeout' | 'error';
  headers: Record<string, string>;
  body: string;
  /** The body parsed as JSON, when it is JSON. */
  json?: unknown;
  transport: 'http' | 'raw';
  error?: string;
}

// What node:http lets through (lib/_http_common.js); anything else needs the raw socket.
const tokenRx = /^[\^_`a-zA-Z\-0-9!#$%&'*+.|~]+$/;
const headerValueRx = /^[\t\x20-\x7e\x80-\xff]*$/;
const targetRx = /^[\x21-\x7e]+$/;

export class HttpClient {
  readonly port: number;
  readonly #agent: http.Agent;

  constructor(port: number, opts: { maxSockets?: number } = {}) {
    this.port = port;
    this.#agent = new http.Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? 8, keepAliveMsecs: 1_000 });
  }

  close(): void {
    this.#agent.destroy();
  }

  /** Whether node:http can send this request as is. */
  static fitsNodeHttp(r: HttpRequest): boolean {
    if (r.rawHeaderBytes || (r.framing !== undefined && r.framing !== 'length')) return false;
    if (!targetRx.test(r.target) || !r.target.startsWith('/')) return false;
    const names = new Set<string>();
    for (const [k, v] of r.headers) {
      const lower = k.toLowerCase();
      if (!tokenRx.test(k) || !headerValueRx.test(v) || names.has(lower)) return false;
      if (lower === 'content-length' || lower === 'transfer-encoding' || lower === 'host' || lower === 'connection') return false;
      names.add(lower);
    }
    return true;
  }

  async send(r: HttpRequest): Promise<HttpResponse> {
    if (!HttpClient.fitsNodeHttp(r)) return this.#viaSocket(r);
    const res = await this.#viaNodeHttp(r, this.#agent);
    // A kept-alive socket the server closed while this request was on its way (its previous
    // answer ended that connection): the request never reached the service. node:http does not
    // retry; a client would, on a fresh connection (node's docs: req.reusedSocket). A 'closed' on
    // a fresh connection is reported as such.
    if (res.status === 'closed' && res.reusedSocket) return this.#viaNodeHttp(r, false);
    return res;
  }

  #viaNodeHttp(r: HttpRequest, agent: http.Agent | false): Promise<HttpResponse & { reusedSocket?: boolean }> {
    const body = r.body ?? Buffer.alloc(0);
    const headers: Record<string, string | number> = {};
    for (const [k, v] of r.headers) headers[k] = v;
    headers['content-length'] = body.length;
    const timeoutMs = r.timeoutMs ?? 15_000;
    return new Promise((resolve) => {
      let done = false;
      const finish = (res: HttpResponse & { reusedSocket?: boolean }): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(res);
      };
      const req = http.request({ host: '127.0.0.1', port: this.port, method: r.method ?? 'POST', path: r.target, headers, agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const flat: Record<string, string> = {};
          for (const [k, v] of Object.entries(res.headers)) flat[k] = Array.isArray(v) ? v.join(', ') : String(v);
          // After a framing or header error (400, 413, 431) the server closes the connection
          // without saying so: do not hand that socket to the next request.
          if (res.statusCode === 400 || res.statusCode === 413 || res.statusCode === 431) res.socket?.destroy();
          finish({ status: res.statusCode ?? 0, headers: flat, body: text, json: tryJson(text), transport: 'http' });
        });
        res.on('error', (e) => finish({ status: 'error', headers: {}, body: '', transport: 'http', error: e.message }));
      });
      const timer = setTimeout(() => {
        req.destroy();
        finish({ status: 'timeout', headers: {}, body: '', transport: 'http', error: `no response within ${timeoutMs} ms` });
      }, timeoutMs);
      req.on('error', (e: NodeJS.ErrnoException) => {
        // The server may answer (413, 431) and close before it has read all we send.
        finish({ status: e.code === 'ECONNRESET' || e.code === 'EPIPE' ? 'closed' : 'error', headers: {}, body: '', transport: 'http', error: `${e.code ?? ''} ${e.message}`, reusedSocket: req.reusedSocket });
      });
      req.end(body);
    });
  }

  #viaSocket(r: HttpRequest): Promise<HttpResponse> {
    const body = r.body ?? Buffer.alloc(0);
    const framing = r.framing ?? 'length';
    const lines: string[] = [`${r.method ?? 'POST'} ${r.target} HTTP/1.1`, `Host: 127.0.0.1:${this.port}`, 'Connection: close'];
    for (const [k, v] of r.headers) lines.push(`${k}: ${v}`);
    let payload = body;
    if (framing === 'length') lines.push(`Content-Length: ${body.length}`);
    else if (framing === 'chunked') {
      lines.push('Transfer-Encoding: chunked');
      payload = chunked(body);
    } else if (framing !== 'none') lines.push(`Content-Length: ${framing.contentLength}`);
    const head = Buffer.from(lines.join('\r\n') + '\r\n', 'latin1');
    const bytes = Buffer.concat([head, r.rawHeaderBytes ?? Buffer.alloc(0), Buffer.from('\r\n'), payload]);
    const halfClose = typeof framing === 'object' && framing.halfClose === true;
    return rawExchange(this.port, bytes, { halfClose, timeoutMs: r.timeoutMs ?? 8_000 });
  }
}

/** Writes bytes on a fresh connection and reads until the server closes it (or timeoutMs). */
export function rawExchange(port: number, bytes: Buffer, opts: { halfClose?: boolean; timeoutMs?: number } = {}): Promise<HttpResponse> {
  const timeoutMs = opts.timeoutMs ?? 8_000;
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (how: 'closed' | 'timeout' | 'error', error?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(parseRaw(Buffer.concat(chunks), how, error));
    };
    const timer = setTimeout(() => finish('timeout', `connection still open after ${timeoutMs} ms`), timeoutMs);
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      // Done as soon as one complete final response is in: no need to wait for the close.
      if (completeResponse(Buffer.concat(chunks))) finish('closed');
    });
    socket.on('end', () => finish('closed'));
    socket.on('close', () => finish('closed'));
    // A reset after the server answered (413 while we were still writing) is not a failure.
    socket.on('error', (e: NodeJS.ErrnoException) => finish(chunks.length ? 'closed' : 'error', `${e.code ?? ''} ${e.message}`));
    socket.write(bytes, () => {
      if (opts.halfClose) socket.end();
    });
  });
}

function chunked(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  // Odd chunk sizes on purpose: the parser must reassemble them.
  for (let i = 0; i < body.length; ) {
    const n = Math.min(body.length - i, 1 + ((i * 7919) % 1021));
    parts.push(Buffer.from(`${n.toString(16)}\r\n`), body.subarray(i, i + n), Buffer.from('\r\n'));
    i += n;
  }
  parts.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(parts);
}

interface Parsed {
  status: number;
  headers: Record<string, string>;
  bodyStart: number;
  /** Body length when known from Content-Length; -1 for chunked or until close. */
  length: number;
  chunked: boolean;
}

/** The first final response's head in buf (1xx responses skipped), if complete. */
function parseHead(buf: Buffer): Parsed | undefined {
  let at = 0;
  for (let guard = 0; guard < 10; guard++) {
    const end = buf.indexOf('\r\n\r\n', at);
    if (end < 0) return undefined;
    const lines = buf.subarray(at, end).toString('latin1').split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1]);
    if (!status) return undefined;
    if (status >= 100 && status < 200) {
      at = end + 4;
      continue;
    }
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    const isChunked = /chunked/i.test(headers['transfer-encoding'] ?? '');
    const length = isChunked ? -1 : headers['content-length'] !== undefined ? Number(headers['content-length']) : -1;
    return { status, headers, bodyStart: end + 4, length, chunked: isChunked };
  }
  return undefined;
}

function completeResponse(buf: Buffer): boolean {
  const head = parseHead(buf);
  if (!head) return false;
  if (head.length >= 0) return buf.length - head.bodyStart >= head.length;
  if (head.chunked) return buf.subarray(head.bodyStart).includes('0\r\n\r\n');
  return false;
}

function parseRaw(buf: Buffer, how: 'closed' | 'timeout' | 'error', error?: string): HttpResponse {
  const head = parseHead(buf);
  if (!head) return { status: how, headers: {}, body: buf.toString('latin1').slice(0, 200), transport: 'raw', error };
  let bodyBuf = buf.subarray(head.bodyStart);
  if (head.length >= 0) bodyBuf = bodyBuf.subarray(0, head.length);
  else if (head.chunked) bodyBuf = dechunk(bodyBuf);
  const body = bodyBuf.toString('utf8');
  return { status: head.status, headers: head.headers, body, json: tryJson(body), transport: 'raw' };
}

function dechunk(buf: Buffer): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  for (let guard = 0; guard < 10_000 && at < buf.length; guard++) {
    const eol = buf.indexOf('\r\n', at);
    if (eol < 0) break;
    const n = parseInt(buf.subarray(at, eol).toString('latin1'), 16);
    if (!Number.isFinite(n) || n <= 0) break;
    out.push(buf.subarray(eol + 2, eol + 2 + n));
    at = eol + 2 + n + 2;
  }
  return Buffer.concat(out);
}

function tryJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
