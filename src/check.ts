// `sentinel-switch check`, what the chart's `helm test` pod runs: is the installed wiring right,
// seen from inside the cluster? In order: the webhook answers /readyz (with the token), an
// authenticated request succeeds, and for every master set the stable name (the target
// Service's DNS name, what applications connect to) resolves and reaches a node that answers
// ROLE master with the configured Redis credentials. Each failure says what is wrong and where
// to look; any failure is exit 1.
import { lookup } from 'node:dns/promises';
import { CannotAsk, type Endpoint, getJson } from './api-client.ts';
import type { Config, MasterSetConfig } from './config.ts';
import { withCauses } from './errors.ts';
import { addressKey, tally } from './decide/index.ts';
import { describeError, SentinelClient, splitHostPort } from './sentinel/index.ts';
import type { Status } from './status.ts';
import { withTimeout } from './timeout.ts';

interface Readiness {
  status: string;
  checks: { name: string; ok: boolean; detail: string }[];
}

export async function runCheck(config: Config, ep: Endpoint, opts: { port?: number; out: (line: string) => void }): Promise<number> {
  let failed = 0;
  const pass = (what: string): void => opts.out(`PASS  ${what}`);
  const fail = (what: string): void => {
    failed++;
    opts.out(`FAIL  ${what}`);
  };

  // 1. /readyz, with the token as the hook would send it.
  try {
    const res = await fetch(`${ep.url}/readyz`, { headers: { authorization: `Bearer ${ep.token}` }, signal: AbortSignal.timeout(15_000) });
    const body = (await res.json().catch(() => undefined)) as Readiness | undefined;
    if (res.status === 200) pass(`webhook ${ep.url}/readyz: ready`);
    else {
      const bad = body?.checks?.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`) ?? [];
      fail(`webhook ${ep.url}/readyz answers ${res.status} (not ready)${bad.length ? `: ${bad.join('; ')}` : ''}`);
    }
  } catch (err) {
    fail(`webhook ${ep.url}/readyz: cannot reach it: ${withCauses(err)} (is the sentinel-switch Service there, and does its NetworkPolicy admit this pod?)`);
    return 1; // nothing else can be asked
  }

  // 2. An authenticated request: the status, which also names each master set's master.
  let status: Status | undefined;
  try {
    status = await getJson<Status>(ep, '/v1/status');
    pass(`authenticated request: GET /v1/status answers 200 with the token from ${ep.tokenSource}`);
  } catch (err) {
    if (!(err instanceof CannotAsk)) throw err;
    fail(`authenticated request: ${err.message}`);
  }

  // 3. Per master set: the stable name resolves and reaches the master.
  for (const set of config.masterSets) {
    const domain = set.clusterDomain ?? config.kubernetes.clusterDomain;
    const name = `${set.target.name}.${set.target.namespace}.svc.${domain.replace(/\.$/, '')}`;
    const seen = status?.masterSets.find((m) => m.masterSet === set.name);
    let client: SentinelClient;
    try {
      client = new SentinelClient(set, config.redisTimeoutMs);
    } catch (err) {
      fail(`master set ${set.name}: ${(err as Error).message}`); // a credential that cannot be read
      continue;
    }
    try {
      // The master's port, from the sentinels as this pod reaches them (the status may be unavailable).
      const t = tally(await client.askSentinels(), set.quorum);
      const elected = t.ok ? addressKey(t.master) : seen?.majority.master;
      const port = opts.port ?? (t.ok ? t.master.port : elected ? splitHostPort(elected).port : undefined);
      const where = `; the Service names ${seen ? (seen.target.current ?? '(nothing)') : '(unknown: no status)'}, the Sentinel majority's master is ${elected ?? '(none)'}`;
      if (port === undefined) {
        fail(`master set ${set.name}: no port to try the stable name ${name} on (${t.ok ? '' : t.why}); pass --port`);
        continue;
      }
      await stableName(set, name, port, client, where, pass, fail);
    } finally {
      await client.close();
    }
  }

  opts.out(failed ? `${failed} check(s) failed` : 'all checks passed');
  return failed ? 1 : 0;
}

/** The stable name resolves and answers ROLE master on the master's port, with the config's credentials. */
async function stableName(set: MasterSetConfig, name: string, port: number, client: SentinelClient, where: string, pass: (w: string) => void, fail: (w: string) => void): Promise<void> {
  let addresses: string[];
  try {
    const found = await withTimeout(lookup(name, { all: true }), 5_000, () => new Error('no answer within 5000 ms'));
    addresses = [...new Set(found.map((a) => a.address))];
  } catch (err) {
    fail(`master set ${set.name}: the stable name ${name} does not resolve (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})${where}`);
    return;
  }
  try {
    const reply = await client.command('node', { host: name, port }, ['ROLE']);
    const role = Array.isArray(reply) ? String(reply[0]) : JSON.stringify(reply);
    const at = `${name}:${port} (${addresses.join(', ')})`;
    if (role === 'master') pass(`master set ${set.name}: ${at} answers ROLE master`);
    else {
      const of = Array.isArray(reply) && role === 'slave' ? ` (replica of ${String(reply[1])}:${String(reply[2])})` : '';
      fail(`master set ${set.name}: ${at} answers ROLE ${role}${of}, not master: Service ${set.target.namespace}/${set.target.name} points at a node that is not the master${where}`);
    }
  } catch (err) {
    fail(`master set ${set.name}: ${describeError(err, `the stable name ${name}:${port} (${addresses.join(', ')})`)}${where}`);
  }
}
