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
import type { Status } from './status.ts';
import { formatStatus } from './status-table.ts';

const USAGE = `usage:
  sentinel-switch status [--url URL] [--token-file FILE] [--json] [--master-set NAME] [--config FILE]
  sentinel-switch check  [--url URL] [--token-file FILE] [--config FILE] [--port PORT]
Defaults come from the config (--config or SENTINEL_SWITCH_CONFIG): the listen port on 127.0.0.1
and the token file.`;

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
