// The service as a Fastify app: auth, then the probes and the v1 routes. Everything that talks
// to Redis or Kubernetes lives behind the Reconciler; routes only validate and map outcomes.
import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import { pino, type Logger } from 'pino';
import { type Config, ConfigError, readSecret } from './config.ts';
import { Kube } from './kube/index.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { Reconciler } from './reconcile.ts';
import { healthRoutes } from './routes/health.ts';
import { statusRoutes } from './routes/status.ts';
import { v1Routes } from './routes/v1.ts';
import { type SentinelEvent, SentinelEvents } from './sentinel/events.ts';
import { Connections } from './sentinel/connections.ts';
import { SentinelClient } from './sentinel/index.ts';

export interface Service {
  app: FastifyInstance;
  reconciler: Reconciler;
  metrics: Metrics;
  /** Stops accepting requests, lets in-flight work finish, closes connections. */
  close(): Promise<void>;
}

export interface ServiceOptions {
  logger?: Logger;
  kube?: Kube;
  /** Default true; tests that drive reconcile themselves turn the timer off. */
  timer?: boolean;
  /** Subscribe to Sentinel's pub/sub (default true, with the timer). */
  events?: boolean;
  defaultMetrics?: boolean;
}

export function createLogger(config: Pick<Config, 'logLevel'>): Logger {
  return pino({
    level: config.logLevel,
    base: { service: 'sentinel-switch' },
    // Belt and braces: nothing we log carries a secret, and these paths never will either.
    redact: ['req.headers.authorization', 'password', '*.password', 'token'],
  });
}

export async function createService(config: Config, opts: ServiceOptions = {}): Promise<Service> {
  const log = opts.logger ?? createLogger(config);
  // The hook strips trailing whitespace from its token file and HTTP drops it from header
  // values, so the service must too, or a stray blank line would turn every hook call into 401.
  const token = readSecret(config.token, 'token').trim();
  if (!/^[\x21-\x7e]+$/.test(token)) {
    throw new ConfigError('token must be printable ASCII without spaces (it travels in an Authorization header)');
  }
  const kube = opts.kube ?? Kube.fromConfig(config.kubernetes);
  kube.log ??= log;
  // One command and one subscriber connection per sentinel (and node) for all master sets that
  // connect as the same client: 100 master sets on 3 sentinels hold 3 + 3 sentinel connections.
  const connections = new Connections({ timeoutMs: config.redisTimeoutMs, log });
  const sentinels = new Map(config.masterSets.map((s) => [s.name, new SentinelClient(s, config.redisTimeoutMs, connections)]));
  const metrics = createMetrics({ defaultMetrics: opts.defaultMetrics });
  const reconciler = new Reconciler({ config, sentinels, kube, log, metrics });

  const app: FastifyInstance = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    // One line per decision is logged by reconcile; a line per probe request would drown it.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.bodyLimitBytes,
    // A client that announces a body and never sends it must not hold a socket forever.
    requestTimeout: 10_000,
    return503OnClosing: true,
  });
  app.removeContentTypeParser('text/plain'); // bodies are JSON only: anything else is 415, as documented
  const expected = digest(token);
  app.addHook('onRequest', async (req, reply) => {
    if (!(req.routeOptions.url ?? req.url).startsWith('/v1/')) return; // the route, not the raw target: `POST http://x/v1/...` and `/%761/...` route to /v1 too
    const header = req.headers.authorization ?? '';
    // The scheme is case-insensitive (RFC 9110 section 11.1).
    const presented = /^bearer /i.test(header) ? header.slice(7) : '';
    // Comparing fixed-size digests keeps the comparison constant-time whatever the lengths.
    if (!presented || !timingSafeEqual(digest(presented), expected)) {
      metrics.unauthorized.inc({ route: req.routeOptions.url ?? 'unknown' });
      req.log.warn({ route: req.routeOptions.url, ip: req.ip }, 'unauthorized request');
      return reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'Unauthorized', message: 'missing or wrong bearer token' });
    }
  });
  // On close, Fastify reaps the connections that are idle at that moment; one whose request is
  // still in flight would stay open for the keep-alive timeout and hold the exit back. Answers
  // sent while closing therefore end their connection.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', async (_req, reply, payload) => {
    if (closing) reply.header('connection', 'close');
    return payload;
  });
  await app.register(healthRoutes, { config, reconciler, sentinels, metrics });
  await app.register(v1Routes, { reconciler });
  await app.register(statusRoutes, { config, reconciler, sentinels });
  if (opts.timer !== false) app.addHook('onReady', async () => reconciler.startTimer());
  // Sentinel's pub/sub: +switch-master runs the same verified reconcile as the hook (both share
  // the master set's single-flight lane); the fence events go to the master set's Fencer.
  const subscriptions = config.masterSets.map(
    (set) =>
      new SentinelEvents({
        set,
        client: sentinels.get(set.name)!,
        log,
        onEvent: (e) => onSentinelEvent(e),
      }),
  );
  const onSentinelEvent = (e: SentinelEvent): void => {
    metrics.sentinelEvents.inc({ master_set: e.masterSet, kind: e.kind });
    log.debug({ masterSet: e.masterSet, event: e }, 'sentinel event');
    reconciler.fencer(e.masterSet)?.onEvent(e);
    const again = (): void => void reconciler.reconcile(e.masterSet, 'event', e.kind === 'switch-master' ? { claimed: e.to, receivedAt: performance.now() } : {}).catch(() => undefined);
    // A node answering again may be a stale master; an abort may leave the old master in place.
    if (e.kind === 'switch-master' || e.kind === 'failover-abort' || e.kind === 'sdown-cleared') again();
  };
  if (opts.events ?? opts.timer !== false) app.addHook('onReady', async () => void (await Promise.all(subscriptions.map((s) => s.start()))));

  return {
    app,
    reconciler,
    metrics,
    async close() {
      await app.close();
      for (const s of subscriptions) s.stop();
      await reconciler.stop();
      kube.close();
      await Promise.all([...sentinels.values()].map((c) => c.close()));
      connections.close();
    },
  };
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}
