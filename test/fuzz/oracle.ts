// What the README promises for a request body, written independently of src/routes/schemas.ts
// (the fuzzer must not grade the service with the service's own schema):
//   POST /v1/failover  {"masterSet","role":"leader"|"observer","state":"start"|"failover",
//                       "from":{"host","port"},"to":{"host","port"}}, nothing else
//   POST /v1/reconcile {} or {"masterSet"}; no body at all counts as {}
// An unknown or malformed field is 400 naming it; a well-formed body naming an unknown master set
// is 404 naming it.

export interface Address {
  host: string;
  port: number;
}

export type BodyVerdict =
  /** Well-formed. */
  | { ok: true; masterSet: string | undefined }
  /** 400; `names` are what the message must mention (a field path, or an unknown key). */
  | { ok: false; names: string[] };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isString = (v: unknown, min: number, max: number): boolean => typeof v === 'string' && v.length >= min && v.length <= max;
const isPort = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535;

function checkKeys(obj: Record<string, unknown>, allowed: string[], required: string[], at: string, names: string[]): void {
  for (const k of Object.keys(obj)) if (!allowed.includes(k)) names.push(k);
  for (const k of required) if (!(k in obj) || obj[k] === undefined) names.push(at ? `${at}.${k}` : k);
}

function checkAddress(v: unknown, at: string, names: string[]): void {
  if (!isObject(v)) {
    names.push(at);
    return;
  }
  checkKeys(v, ['host', 'port'], ['host', 'port'], at, names);
  if ('host' in v && !isString(v.host, 1, 253)) names.push(`${at}.host`);
  if ('port' in v && !isPort(v.port)) names.push(`${at}.port`);
}

export function judgeFailoverBody(body: unknown): BodyVerdict {
  if (!isObject(body)) return { ok: false, names: ['(body)'] };
  const names: string[] = [];
  checkKeys(body, ['masterSet', 'role', 'state', 'from', 'to'], ['masterSet', 'role', 'state', 'from', 'to'], '', names);
  if ('masterSet' in body && !isString(body.masterSet, 1, 128)) names.push('masterSet');
  if ('role' in body && body.role !== 'leader' && body.role !== 'observer') names.push('role');
  if ('state' in body && body.state !== 'start' && body.state !== 'failover') names.push('state');
  if ('from' in body) checkAddress(body.from, 'from', names);
  if ('to' in body) checkAddress(body.to, 'to', names);
  return names.length ? { ok: false, names: [...new Set(names)] } : { ok: true, masterSet: body.masterSet as string };
}

export function judgeReconcileBody(body: unknown): BodyVerdict {
  if (body === undefined || body === null) return { ok: true, masterSet: undefined };
  if (!isObject(body)) return { ok: false, names: ['(body)'] };
  const names: string[] = [];
  checkKeys(body, ['masterSet'], [], '', names);
  if ('masterSet' in body && body.masterSet !== undefined && !isString(body.masterSet, 1, 128)) names.push('masterSet');
  return names.length ? { ok: false, names } : { ok: true, masterSet: body.masterSet as string | undefined };
}

/**
 * Keys a hardened JSON parser refuses outright (prototype poisoning): Fastify answers 400 before
 * the schema is asked, so the message cannot name the field.
 */
export function hasPoisonKeys(v: unknown): boolean {
  if (Array.isArray(v)) return v.some(hasPoisonKeys);
  if (!isObject(v)) return false;
  for (const k of Object.keys(v)) {
    if (k === '__proto__') return true;
    if (k === 'constructor' && isObject(v[k]) && Object.hasOwn(v[k] as object, 'prototype')) return true;
    if (hasPoisonKeys(v[k])) return true;
  }
  return false;
}

/** The README's host comparison: case-insensitive, a trailing dot ignored. */
export function sameAddress(a: Address, b: Address): boolean {
  const norm = (h: string): string => h.toLowerCase().replace(/\.$/, '');
  return norm(a.host) === norm(b.host) && a.port === b.port;
}
