// Probes and metrics. /readyz is "can this instance do its job now": the Kubernetes API answers
// with our credentials, every master set has a reachable Sentinel majority, and the master it
// elects accepts our Redis credentials (ROLE). The answer is
// cached briefly so a burst of probes does not become a burst of questions to Redis and the API.
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config.ts';
import { tally } from '../decide/index.ts';
import { type KubeError, serviceId } from '../kube/index.ts';
import type { Metrics } from '../metrics.ts';
import type { Reconciler } from '../reconcile.ts';
import type { SentinelClient } from '../sentinel/index.ts';

interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

export async function healthRoutes(
  app: FastifyInstance,
  opts: { config: Config; reconciler: Reconciler; sentinels: Map<string, SentinelClient>; metrics: Metrics; cacheMs?: number },
): Promise<void> {
  const cacheMs = opts.cacheMs ?? 1_000;
  let cached: { at: number; checks: Promise<Check[]> } | undefined;

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_req, reply) => {
    if (!cached || performance.now() - cached.at > cacheMs) cached = { at: performance.now(), checks: readiness(opts) };
    const checks = await cached.checks;
    const ready = checks.every((c) => c.ok);
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks });
  });

  app.get('/metrics', async (_req, reply) => {
    return reply.type(opts.metrics.registry.contentType).send(await opts.metrics.registry.metrics());
  });
}

async function readiness(opts: { config: Config; reconciler: Reconciler; sentinels: Map<string, SentinelClient> }): Promise<Check[]> {
  const checks: Check[] = [{ name: 'config', ok: true, detail: `${opts.config.masterSets.length} master set(s) loaded` }];
  const perSet = opts.config.masterSets.map(async (set): Promise<Check[]> => {
    const target = opts.reconciler.target(set.name)!;
    const service = serviceId(target.service);
    const kubeCheck = target.read({ fresh: true }).then(
      (s) => ({ name: `kubernetes:${service}`, ok: true, detail: s.exists ? 'API answers; Service found' : 'API answers; Service not found yet' }),
      (e: KubeError) => ({ name: `kubernetes:${service}`, ok: false, detail: e.message }),
    );
    const client = opts.sentinels.get(set.name)!;
    const votes = await client.askSentinels();
    const answering = votes.filter((v) => 'master' in v).length;
    const t = tally(votes, set.quorum);
    const failed = votes.filter((v) => 'error' in v).map((v) => ('error' in v ? v.error : ''));
    const sentinelCheck: Check = {
      name: `sentinels:${set.name}`,
      ok: answering >= t.needed,
      detail: `${answering}/${votes.length} sentinels answer, ${t.needed} needed` + (failed.length ? `; ${failed.join('; ')}` : ''),
    };
    // The elected master must be verifiable with redisAuth/TLS, or no switch can ever happen.
    const checks = [sentinelCheck];
    if (t.ok) checks.push({ name: `redis:${set.name}`, ...(await client.checkAccess(t.master)) });
    return [...checks, await kubeCheck];
  });
  for (const c of await Promise.all(perSet)) checks.push(...c);
  return checks;
}
