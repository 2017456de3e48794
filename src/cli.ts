// The `sentinel-switch` command for people and for `helm test` (bin/sentinel-switch loads this
// file; the service itself is src/server.ts).
//
//   sentinel-switch status [--url URL] [--token-file FILE] [--json] [--master-set NAME] [--config FILE]
//   sentinel-switch check  [--url URL] [--token-file FILE] [--config FILE] [--port PORT]
//
// Without --url and --token-file both come from the service's config (SENTINEL_SWITCH_CONFIG,
// as src/server.ts reads it): the listen port on loopback and the token file, so
// `kubectl exec deploy/sentinel-switch -- sentinel-switch status` needs no argument.
// Exit codes: status 0 all fine, 1 a master set has drift, no majority or another problem,
// 2 the service could not be asked; check 0 passed, 1 a check failed, 2 bad usage or config.
import { parseArgs } from 'node:util';
import { CannotAsk, configFrom, endpointFrom, getJson } from './api-client.ts';
import { runCheck } from './check.ts';
import { ConfigError } from './config.ts';
import type { MasterSetStatus, Status } from './status.ts';

const USAGE = `usage:
  sentinel-switch status [--url URL] [--token-file FILE] [--json] [--master-set NAME] [--config FILE]
  sentinel-switch check  [--url URL] [--token-file FILE] [--config FILE] [--port PORT]
Defaults come from the config (--config or SENTINEL_SWITCH_CONFIG): the listen port on 127.0.0.1
and the token file.`;

// ------------------------------------------------------------------ the table

/** The status for people: one block per master set, every fact on its own line. */
export function formatStatus(s: Status): string {
  const out: string[] = [];
  for (const m of s.masterSets) out.push(...formatMasterSet(m), '');
  out.push(s.ok ? `all ${s.masterSets.length} master set(s) fine (${s.at})` : `NOT FINE: ${s.masterSets.filter((m) => !m.ok).map((m) => m.masterSet).join(', ')} (${s.at})`);
  return out.join('\n');
}

function formatMasterSet(m: MasterSetStatus): string[] {
  const verdict = m.ok ? 'OK' : m.drift.state === 'drift' ? 'DRIFT' : !m.majority.ok ? 'NO MAJORITY' : m.master && !m.master.verified ? 'MASTER NOT VERIFIED' : 'PROBLEM';
  const lines = [`master set ${m.masterSet}: ${verdict}`];
  const maj = m.majority;
  lines.push(`  sentinels     ${maj.ok ? `${maj.agreeing}/${maj.total} agree on ${maj.master}` : 'no majority'}, ${maj.needed} needed`);
  lines.push(...table(['    SENTINEL', 'ANSWER'], m.sentinels.map((v) => [`    ${v.sentinel}`, v.master ?? `error: ${v.error}`])));
  lines.push(`  master        ${m.master ? `${m.master.address}  ROLE ${m.master.role}${m.master.verified ? '' : '  (not verified)'}` : '(none elected)'}`);
  lines.push('  nodes');
  lines.push(
    ...table(
      ['    NODE', 'ROLE', 'OFFSET', 'LAG', 'REPLICA OF', 'LINK', 'SENTINEL FLAGS'],
      m.nodes.map((n) => [
        `    ${n.address}`,
        n.role,
        n.offset === undefined ? '-' : String(n.offset),
        n.lagBytes === undefined ? '-' : String(n.lagBytes),
        n.replicaOf ?? '-',
        n.linkState ?? '-',
        n.sentinelFlags ?? '-',
      ]),
    ),
  );
  for (const n of m.nodes) if (n.error) lines.push(`    ${n.address}: ${n.error}`);
  const t = m.target;
  lines.push(`  target        ${t.kind} Service ${t.service}${t.endpointSlice ? `, EndpointSlice ${t.endpointSlice}` : ''}`);
  lines.push(`                names ${t.error && t.exists === undefined ? `? (${t.error})` : t.exists === false ? '(does not exist)' : (t.current ?? '(nothing)')}`);
  if (t.desired !== undefined) lines.push(`                needs ${t.desired}`);
  else if (t.error && t.exists !== undefined) lines.push(`                needs ? (${t.error})`);
  lines.push(`  drift         ${m.drift.state === 'none' ? 'none' : `${m.drift.state.toUpperCase()}: ${m.drift.why}`}`);
  lines.push(`  fences        ${m.fences.length ? m.fences.map((f) => `${f.node} paused (${f.reason}) since ${f.since}`).join('; ') : 'none'}`);
  const sw = m.lastSwitch;
  lines.push(`  last switch   ${sw ? `${sw.at} ${sw.reason ?? '?'}: from ${sw.from ?? '(none)'} to master ${sw.to ?? '?'}` : '(none recorded)'}`);
  const f = m.lastFailure;
  lines.push(`  last failure  ${f ? `${f.at} ${f.reason} ${f.result}: ${f.why ?? ''}` : '(none since start)'}`);
  for (const p of m.problems) lines.push(`  PROBLEM       ${p}`);
  return lines;
}

function table(head: string[], rows: string[][]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(head), ...rows.map(line)];
}

// ------------------------------------------------------------------ main

async function status(values: { url?: string; 'token-file'?: string; json?: boolean; 'master-set'?: string; config?: string }): Promise<number> {
  const cfg = values.url && values['token-file'] ? undefined : configFrom(values.config);
  const ep = endpointFrom({ url: values.url, tokenFile: values['token-file'] }, cfg);
  const query = values['master-set'] ? `?masterSet=${encodeURIComponent(values['master-set'])}` : '';
  const s = await getJson<Status>(ep, `/v1/status${query}`);
  process.stdout.write(values.json ? `${JSON.stringify(s, null, 2)}\n` : `${formatStatus(s)}\n`);
  return s.ok ? 0 : 1;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      options: {
        url: { type: 'string' },
        'token-file': { type: 'string' },
        config: { type: 'string', short: 'c' },
        json: { type: 'boolean' },
        'master-set': { type: 'string' },
        port: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    });
  } catch (err) {
    process.stderr.write(`sentinel-switch: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const { values } = parsed;
  if (values.help || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  try {
    if (command === 'status') return await status(values);
    if (command === 'check') {
      const port = values.port === undefined ? undefined : Number(values.port);
      if (port !== undefined && !(Number.isInteger(port) && port >= 1 && port <= 65535)) throw new CannotAsk(`--port ${values.port} is not a port (1-65535)`);
      const cfg = configFrom(values.config);
      if (!cfg) throw new CannotAsk('check needs the service config (the Redis credentials and target Services): pass --config FILE or set SENTINEL_SWITCH_CONFIG');
      const ep = endpointFrom({ url: values.url, tokenFile: values['token-file'] }, cfg);
      return await runCheck(cfg.config, ep, { port, out: (l) => process.stdout.write(`${l}\n`) });
    }
  } catch (err) {
    if (err instanceof CannotAsk || err instanceof ConfigError) {
      process.stderr.write(`sentinel-switch ${command}: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  process.stderr.write(`sentinel-switch: unknown command ${command ?? '(none)'}\n${USAGE}\n`);
  return 2;
}

// Run when started as a program (bin/sentinel-switch imports this module, node src/cli.ts runs it).
process.exitCode = await main(process.argv.slice(2));
