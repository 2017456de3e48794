// Errors worded for the operator, shared by the service and the `sentinel-switch` command.

/**
 * The network error and what it keeps in `cause` (connect ECONNREFUSED ..., a certificate error,
 * getaddrinfo ENOTFOUND ...); an AggregateError (several addresses tried) lists each.
 */
export function withCauses(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e && depth < 5; depth++) {
    const x = e as Error & { code?: string; errors?: unknown[] };
    const own = x.message || (Array.isArray(x.errors) ? x.errors.map((i) => (i as Error)?.message ?? String(i)).join(', ') : '') || x.code || String(e);
    const text = x.code && !own.includes(x.code) ? `${own} (${x.code})` : own;
    if (!parts.includes(text)) parts.push(text);
    e = x.cause;
  }
  return parts.join(': ') || String(err);
}
