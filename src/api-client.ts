// How the CLI (src/cli.ts, src/check.ts) finds and asks a running sentinel-switch: the URL and
// token from flags or from the service's own config, and one authenticated GET whose every
// failure is a sentence naming what to fix.
import { readFileSync } from 'node:fs';
import { type Config, loadConfigFile, readSecret } from './config.ts';
import { withCauses } from './errors.ts';

/** A failure to ask at all: exit 2 with a message naming what to fix. */
export class CannotAsk extends Error {}

export interface Endpoint {
  url: string;
  token: string;
  /** Where the token came from, for the 401 message. */
  tokenSource: string;
}

/** The service's config, when one is named (flag or environment); undefined when none is. */
export function configFrom(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): { path: string; config: Config } | undefined {
  const path = flag ?? env.SENTINEL_SWITCH_CONFIG;
  if (!path) return undefined;
  return { path, config: loadConfigFile(path) };
}

/** URL and token: the flags, else the config's listen port on loopback and its token. */
export function endpointFrom(opts: { url?: string; tokenFile?: string }, cfg: { path: string; config: Config } | undefined): Endpoint {
  let url = opts.url;
  if (!url) {
    if (!cfg) throw new CannotAsk('no --url and no config to take the listen port from: pass --url URL, --config FILE or set SENTINEL_SWITCH_CONFIG');
    url = `http://${loopbackFor(cfg.config.listen.host)}:${cfg.config.listen.port}`;
  }
  url = url.replace(/\/+$/, '');
  if (!/^https?:\/\/[^/\s]+$/.test(url)) throw new CannotAsk(`--url ${url} is not http(s)://host[:port]`);
  if (opts.tokenFile) {
    let token: string;
    try {
      token = readFileSync(opts.tokenFile, 'utf8').trim();
    } catch (err) {
      throw new CannotAsk(`cannot read the token file ${opts.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (!token) throw new CannotAsk(`the token file ${opts.tokenFile} is empty`);
    return checked({ url, token, tokenSource: opts.tokenFile });
  }
  if (!cfg) throw new CannotAsk('no --token-file and no config to take the token from: pass --token-file FILE, --config FILE or set SENTINEL_SWITCH_CONFIG');
  const ref = cfg.config.token;
  return checked({ url, token: readSecret(ref, 'token').trim(), tokenSource: ref.file ?? `environment variable ${ref.env}` });
}

/** The service accepts only such tokens; anything else would not even make a valid header (and must never be echoed). */
function checked(ep: Endpoint): Endpoint {
  if (!/^[\x21-\x7e]+$/.test(ep.token)) throw new CannotAsk(`the token in ${ep.tokenSource} is not printable ASCII without spaces, so it is not the service's`);
  return ep;
}

/** The service listens on `host`; ask it on the loopback address that reaches it. */
function loopbackFor(host: string): string {
  if (host === '0.0.0.0' || host === '' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

/** One authenticated GET; CannotAsk for every answer that is not 200 JSON, worded for the operator. */
export async function getJson<T>(ep: Endpoint, path: string, timeoutMs = 15_000): Promise<T> {
  let res: Response;
  try {
    res = await fetch(`${ep.url}${path}`, { headers: { authorization: `Bearer ${ep.token}` }, signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    throw new CannotAsk(`cannot reach sentinel-switch at ${ep.url}: ${withCauses(err)}`);
  }
  if (res.status === 401) throw new CannotAsk(`401: the token in ${ep.tokenSource} is not the service's (${ep.url})`);
  const text = await res.text();
  if (res.status !== 200) throw new CannotAsk(`${ep.url}${path} answered ${res.status}: ${text.slice(0, 500)}`);
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new CannotAsk(`${ep.url}${path} answered 200 with something that is not JSON: ${text.slice(0, 200)}`);
  }
}
