// Process entry point: load the config (exit 2 with the field to fix if it is wrong), serve,
// and on SIGTERM stop accepting, finish in-flight work, exit 0.
import { parseArgs } from 'node:util';
import { createLogger, createService } from './app.ts';
import { ConfigError, loadConfigFile } from './config.ts';

const { values } = parseArgs({ options: { config: { type: 'string', short: 'c' } }, strict: true });
const configPath = values.config ?? process.env.SENTINEL_SWITCH_CONFIG;
if (!configPath) {
  process.stderr.write('sentinel-switch: no configuration: pass --config FILE or set SENTINEL_SWITCH_CONFIG\n');
  process.exit(2);
}

let service: Awaited<ReturnType<typeof createService>>;
try {
  const config = loadConfigFile(configPath);
  service = await createService(config, { logger: createLogger(config) });
  await service.app.listen({ host: config.listen.host, port: config.listen.port });
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`sentinel-switch: ${err.message}\n`);
    process.exit(2);
  }
  throw err;
}

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    service.app.log.info({ signal }, 'shutting down: finishing in-flight work');
    service.close().then(
      () => process.exit(0),
      (err: unknown) => {
        service.app.log.error({ err }, 'error during shutdown');
        process.exit(1);
      },
    );
  });
}
