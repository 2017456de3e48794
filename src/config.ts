// The one configuration schema. Everything an operator can set is here, with its default;
// secrets are read from files (or named environment variables), never written inline.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

/** A secret comes from a file (Kubernetes Secret volume) or an environment variable. */
const secretRef = z
  .strictObject({
    file: z.string().min(1).optional(),
    env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name').optional(),
  })
  .refine((s) => Boolean(s.file) !== Boolean(s.env), { message: 'set exactly one of "file" or "env"' });
export type SecretRef = z.infer<typeof secretRef>;

const redisAuth = z.strictObject({
  /** ACL user; omit for the default user (requirepass). */
  username: z.string().min(1).optional(),
  password: secretRef.optional(),
});

const tls = z.strictObject({
  enabled: z.boolean().default(false),
  caFile: z.string().optional(),
  certFile: z.string().optional(),
  keyFile: z.string().optional(),
  /** Only for test setups: skips certificate verification. */
  insecureSkipVerify: z.boolean().default(false),
});

const hostPort = z
  .string()
  .regex(/^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/, 'must be host:port')
  .refine((s) => {
    const port = Number(s.slice(s.lastIndexOf(':') + 1));
    return port >= 1 && port <= 65535;
  }, 'port must be 1-65535');

/**
 * Fencing of a demoted or returning master (see README "Fencing"). On by default: without it a
 * planned failover loses ~11 s of acknowledged writes to clients that stay on the old master.
 */
const fencing = z.strictObject({
  enabled: z.boolean().default(true),
  /** Pause the master's writes at Sentinel's first `+selected-slave`, before the promotion. */
  early: z.boolean().default(true),
  /** Demote a stale master ourselves (REPLICAOF the verified master) instead of waiting ~10 s for Sentinel. */
  demote: z.boolean().default(true),
  /**
   * Upper bound of every pause (CLIENT PAUSE's own timeout, so it holds even if sentinel-switch
   * dies). Measured here: +selected-slave to the majority's switch ~1.1 s, to the leader's
   * +switch-master ~2.2 s; a fenced planned failover keeps the old master paused ~1.2 s. The
   * bound leaves a slow failover room and still ends well before Sentinel would demote the old
   * master itself (~10 s after the switch) if sentinel-switch died holding the pause.
   */
  pauseMs: z.number().int().min(100).max(60_000).default(5_000),
});
export type FencingConfig = z.infer<typeof fencing>;
export const FENCING_DEFAULTS: FencingConfig = { enabled: true, early: true, demote: true, pauseMs: 5_000 };


const dns1123Label = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const dns1123Subdomain = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

const masterSet = z.strictObject({
  /** The Sentinel master name, e.g. "mymaster" (Bitnami's default). */
  name: z.string().min(1).max(128).regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, ".", "_" and "-" only'),
  /** Sentinels as host:port. A DNS name that resolves to several addresses counts as several sentinels. */
  sentinels: z.array(hostPort).min(1),
  /** Agreeing sentinels needed; default: a strict majority of the sentinels found. */
  quorum: z.number().int().min(1).optional(),
  sentinelAuth: redisAuth.default({}),
  redisAuth: redisAuth.default({}),
  tls: tls.default({ enabled: false, insecureSkipVerify: false }),
  /** The Service that must name the master (src/target/ has one file per kind). */
  target: z
    .strictObject({
      /**
       * externalName: an ExternalName Service whose externalName is the master's DNS name.
       * endpointSlice: a selector-less ClusterIP Service and one EndpointSlice we own that holds
       * exactly the master pod's IP and port (no DNS change at a switch).
       */
      kind: z.enum(['externalName', 'endpointSlice']).default('externalName'),
      namespace: z.string().regex(dns1123Label, 'must be a DNS-1123 label'),
      name: z.string().regex(dns1123Label, 'must be a DNS-1123 label'),
      /** kind endpointSlice: the EndpointSlice to write (it must exist); default: the Service's name. */
      endpointSliceName: z.string().regex(dns1123Subdomain, 'must be a DNS-1123 subdomain').optional(),
    })
    .refine((t) => t.endpointSliceName === undefined || t.kind === 'endpointSlice', {
      message: 'endpointSliceName is only used with kind: endpointSlice',
      path: ['endpointSliceName'],
    }),
  /** Where to look up pods by IP when Sentinel announces IPs; default: the target's namespace. */
  podNamespace: z.string().regex(dns1123Label).optional(),
  clusterDomain: z.string().optional(),
  fencing: fencing.default(FENCING_DEFAULTS),
});
export type MasterSetConfig = z.infer<typeof masterSet>;

export const configSchema = z.strictObject({
  listen: z
    .strictObject({ host: z.string().default('0.0.0.0'), port: z.number().int().min(1).max(65535).default(8080) })
    .default({ host: '0.0.0.0', port: 8080 }),
  /** Bearer token for the webhook and the manual trigger. */
  token: secretRef,
  reconcileIntervalSeconds: z.number().min(1).max(86_400).default(30),
  /** Per-request timeout when asking a sentinel or a Redis node. */
  redisTimeoutMs: z.number().int().min(10).max(30_000).default(500),
  /** After an event that the majority does not (yet) confirm, look again this much later. */
  followUpMs: z.number().int().min(0).max(60_000).default(1_000),
  bodyLimitBytes: z.number().int().min(256).max(1_048_576).default(4_096),
  kubernetes: z
    .strictObject({
      /** Path to a kubeconfig for local runs; default: the in-cluster ServiceAccount. */
      kubeconfig: z.string().optional(),
      clusterDomain: z.string().default('cluster.local'),
      timeoutMs: z.number().int().min(100).max(60_000).default(5_000),
    })
    .default({ clusterDomain: 'cluster.local', timeoutMs: 5_000 }),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
  masterSets: z
    .array(masterSet)
    .min(1)
    .refine((sets) => new Set(sets.map((s) => s.name)).size === sets.length, 'master set names must be unique'),
});
export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {}

/** Turns zod issues into lines an operator can act on: the field path and what it must be. */
export function describeIssues(error: z.ZodError, source: string): string {
  return `invalid configuration in ${source}:\n${issueLines(error, '(top level)').map((l) => `  ${l}`).join('\n')}`;
}

/** "field.path: what it must be", one per issue; `top` names an issue of the whole document. */
export function issueLines(error: z.ZodError, top: string): string[] {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : top}: ${i.message}`);
}

export function parseConfig(raw: unknown, source = 'config'): Config {
  const result = configSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(describeIssues(result.error, source));
  return result.data;
}

/** Reads YAML or JSON (JSON is YAML) from a file. */
export function loadConfigFile(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}; set --config or SENTINEL_SWITCH_CONFIG`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid YAML/JSON: ${(err as Error).message}`);
  }
  return parseConfig(raw, path);
}

/**
 * Resolves a secret. A file's trailing newline (kubectl create secret --from-file, echo > file)
 * is not part of the secret.
 */
export function readSecret(ref: SecretRef, what: string, env: NodeJS.ProcessEnv = process.env): string {
  let value: string | undefined;
  if (ref.file) {
    try {
      value = readFileSync(ref.file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new ConfigError(`cannot read ${what} from file ${ref.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  } else if (ref.env) {
    value = env[ref.env];
    if (value === undefined) throw new ConfigError(`${what}: environment variable ${ref.env} is not set`);
  }
  if (!value) throw new ConfigError(`${what} is empty (${ref.file ? `file ${ref.file}` : `env ${ref.env}`})`);
  return value;
}
