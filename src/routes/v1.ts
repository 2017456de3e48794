// The webhook and the manual trigger. Thin on purpose: authenticate, validate, call reconcile,
// map the outcome to a status code the hook script understands (2xx done, 5xx retry, 4xx give up).
import type { FastifyInstance, FastifyReply } from 'fastify';
import { confirms } from '../decide/index.ts';
import type { Outcome, Reconciler } from '../reconcile.ts';
import { describeInvalid, failoverEvent, reconcileRequest } from './schemas.ts';

export function statusOf(o: Outcome): number {
  if (o.result === 'switched' || o.result === 'unchanged') return 200;
  return o.retryable ? 503 : 500;
}

export async function v1Routes(app: FastifyInstance, opts: { reconciler: Reconciler }): Promise<void> {
  const { reconciler } = opts;

  app.post('/v1/failover', async (req, reply) => {
    const receivedAt = performance.now();
    const parsed = failoverEvent.safeParse(req.body);
    if (!parsed.success) return badRequest(reply, describeInvalid(parsed.error));
    const event = parsed.data;
    if (!reconciler.has(event.masterSet)) return unknownMasterSet(reply, event.masterSet);
    req.log.info({ masterSet: event.masterSet, role: event.role, from: event.from, to: event.to }, 'hook event');
    const outcome = await reconciler.reconcile(event.masterSet, 'hook', { claimed: event.to, receivedAt });
    return reply.code(statusOf(outcome)).send({ ...outcome, eventConfirmed: confirms(event.to, outcome.master) });
  });

  app.post('/v1/reconcile', async (req, reply) => {
    const parsed = reconcileRequest.safeParse(req.body ?? {});
    if (!parsed.success) return badRequest(reply, describeInvalid(parsed.error));
    const { masterSet } = parsed.data;
    if (masterSet !== undefined && !reconciler.has(masterSet)) return unknownMasterSet(reply, masterSet);
    const outcomes = masterSet ? [await reconciler.reconcile(masterSet, 'manual')] : await reconciler.reconcileAll('manual');
    return reply.code(Math.max(...outcomes.map(statusOf))).send({ outcomes });
  });
}

function badRequest(reply: FastifyReply, message: string) {
  return reply.code(400).send({ error: 'Bad Request', message });
}

function unknownMasterSet(reply: FastifyReply, masterSet: string) {
  return reply.code(404).send({ error: 'Not Found', message: `unknown master set "${masterSet.slice(0, 128)}": add it to masterSets in the sentinel-switch config` });
}
