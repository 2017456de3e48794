// Request bodies, validated with zod: strict objects, so a field we do not know is an error
// that names it instead of being silently ignored.
import { z } from 'zod';
import { issueLines } from '../config.ts';

const address = z.strictObject({
  host: z.string().min(1).max(253),
  port: z.number().int().min(1).max(65535),
});

/** What scripts/client-reconfig.sh sends: Sentinel's seven arguments, named. */
export const failoverEvent = z.strictObject({
  masterSet: z.string().min(1).max(128),
  role: z.enum(['leader', 'observer']),
  /** "start" in Sentinel's code, "failover" in older docs; accepted, never acted on. */
  state: z.enum(['start', 'failover']),
  from: address,
  to: address,
});
export type FailoverEvent = z.infer<typeof failoverEvent>;

/** GET /v1/status?masterSet=NAME: one master set, or all without it. */
export const statusQuery = z.strictObject({ masterSet: z.string().min(1).max(128).optional() });

export const reconcileRequest = z.strictObject({ masterSet: z.string().min(1).max(128).optional() });

/** "from.port: expected number, received string; (top level): unrecognized key 'x'" */
export function describeInvalid(error: z.ZodError): string {
  return issueLines(error, '(body)').join('; ');
}
