// GET /v1/status: the operator's view of every master set (src/status.ts gathers it). Thin:
// validate the query, collect, answer. 200 whatever the state of Redis: the body says what is
// wrong (`ok`, each master set's `problems`); the CLI turns it into an exit code.
import type { FastifyInstance } from 'fastify';
import { collectStatus, type StatusDeps } from '../status.ts';
import { describeInvalid, statusQuery } from './schemas.ts';

export async function statusRoutes(app: FastifyInstance, opts: StatusDeps): Promise<void> {
  app.get('/v1/status', async (req, reply) => {
    const parsed = statusQuery.safeParse(req.query ?? {});
    if (!parsed.success) return reply.code(400).send({ error: 'Bad Request', message: describeInvalid(parsed.error) });
    const { masterSet } = parsed.data;
    if (masterSet !== undefined && !opts.reconciler.has(masterSet)) {
      return reply.code(404).send({ error: 'Not Found', message: `unknown master set "${masterSet.slice(0, 128)}": add it to masterSets in the sentinel-switch config` });
    }
    return reply.send(await collectStatus(opts, masterSet));
  });
}
