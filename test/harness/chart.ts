// Rendering the Helm chart (deploy/helm/sentinel-switch) with the real helm binary, and reading
// what it rendered: shared by test/chart.test.ts (the chart itself) and test/examples.test.ts
// (the Redis-side examples in deploy/examples, checked against what the chart renders).
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { parseConfig } from '../../src/config.ts';
import { kubectl, runK8sTool } from './k8s.ts';
import type { RunResult } from './k8s.ts';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const CHART = path.join(ROOT, 'deploy/helm/sentinel-switch');
export const EXAMPLES = path.join(ROOT, 'deploy/examples');
export const HOOK = path.join(ROOT, 'scripts/client-reconfig.sh');
/** The release name the examples are written for. */
export const RELEASE = 'sentinel-switch';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}
export interface Rule { apiGroups?: string[]; resources?: string[]; resourceNames?: string[]; verbs: string[] }
export type EnvVar = { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string }; fieldRef?: { fieldPath: string } } };
export type Mount = { name: string; mountPath: string; readOnly?: boolean };
export type Container = { name: string; command?: string[]; env?: EnvVar[]; ports?: { name: string; containerPort: number }[]; volumeMounts?: Mount[] };
export type Volume = { name: string; configMap?: { name: string; defaultMode?: number }; secret?: { secretName: string; defaultMode?: number; items?: { key: string; path: string }[] } };
export type PodSpec = { containers: Container[]; initContainers?: Container[]; volumes: Volume[]; securityContext?: { fsGroup?: number; runAsUser?: number }; [k: string]: unknown };

export interface RenderOptions { namespace?: string; values?: string[]; set?: string[]; release?: string; chart?: string }

/** helm with its own homes under `work` (no state outside the test's folder). */
export class Helm {
  readonly #work: string;

  constructor(work: string) {
    this.#work = work;
    for (const sub of ['cache', 'config', 'data']) mkdirSync(this.#home(sub), { recursive: true });
  }

  #home(sub: string): string {
    return path.join(this.#work, 'helm-home', sub);
  }

  /** Runs helm; stderr carries its notices. */
  run(args: string[], check = true): Promise<RunResult> {
    const env = { HELM_CACHE_HOME: this.#home('cache'), HELM_CONFIG_HOME: this.#home('config'), HELM_DATA_HOME: this.#home('data') };
    return runK8sTool('helm', args, { check, env, timeoutMs: 120_000 });
  }

  /** `helm template` of our chart (or options.chart), as objects. */
  async render(options: RenderOptions = {}): Promise<K8sObject[]> {
    const args = ['template', options.release ?? RELEASE, options.chart ?? CHART, '--namespace', options.namespace ?? 'redis'];
    for (const v of options.values ?? []) args.push('--values', v);
    for (const s of options.set ?? []) args.push('--set', s);
    return objects((await this.run(args)).stdout);
  }
}

/** Objects of a multi-document YAML text; YAML 1.1 (as kubectl reads it) for hand-written manifests, see readValues. */
export function objects(yamlText: string, version: '1.1' | '1.2' = '1.2'): K8sObject[] {
  return parseAllDocuments(yamlText, { version })
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null && typeof o === 'object');
}

export function find(objs: K8sObject[], kind: string, name?: string, namespace?: string): K8sObject {
  const hits = objs.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name) && (namespace === undefined || o.metadata.namespace === namespace));
  if (hits.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}${namespace ? ` in ${namespace}` : ''}, found ${hits.length}: ${objs.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`).join(', ')}`);
  return hits[0]!;
}

export const all = (objs: K8sObject[], kind: string): K8sObject[] => objs.filter((o) => o.kind === kind);

/** The service's config file as rendered, raw and parsed with src/config.ts (the service's own schema). */
export function renderedConfig(objs: K8sObject[]) {
  const cm = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name.endsWith('-config'));
  if (!cm) throw new Error('no config ConfigMap rendered');
  const text = (cm.data as Record<string, string>)['config.yaml']!;
  return { raw: parseYaml(text) as Record<string, unknown>, config: parseConfig(parseYaml(text), `${cm.metadata.name}/config.yaml`) };
}

/** The pod template's spec of a Deployment or StatefulSet. */
export function podSpec(workload: K8sObject): PodSpec {
  return (workload.spec as { template: { spec: PodSpec } }).template.spec;
}

export function mountOf(c: Container, volume: string): string {
  const m = c.volumeMounts?.find((v) => v.name === volume);
  if (!m) throw new Error(`container ${c.name} does not mount ${volume}`);
  return m.mountPath;
}

/**
 * YAML 1.1, as Helm and Kubernetes read it: `defaultMode: 0755` is octal there (493), while a
 * YAML 1.2 reader would take it for decimal 755, an invalid mode.
 */
export const readValues = <T>(file: string): T => parseYaml(readFileSync(file, 'utf8'), { version: '1.1' }) as T;

/** The names of the variables the hook reads, from the script itself. */
export function hookEnvNames(): Set<string> {
  return new Set(readFileSync(HOOK, 'utf8').match(/\bSENTINEL_SWITCH_[A-Z_]+\b/g) ?? []);
}

/** A `helm test` hook (templates/tests/): created by `helm test`, after the release is installed. */
export const isTestHook = (o: K8sObject): boolean => o.metadata.annotations?.['helm.sh/hook'] === 'test';

/**
 * The release as `helm install` then `helm test` would send it: the objects through a server-side
 * dry run, then, since admission of a test pod needs its ServiceAccount to exist (helm test runs
 * after the install created it), the ServiceAccount for real and the test hooks dry-run.
 */
export async function dryRunRelease(kubeconfig: string, objs: K8sObject[]): Promise<string> {
  const release = objs.filter((o) => !isTestHook(o));
  const out = await dryRunServer(kubeconfig, release);
  const accounts = release.filter((o) => o.kind === 'ServiceAccount');
  if (accounts.length) await kubectl(kubeconfig, ['apply', '-f', '-'], accounts.map((o) => JSON.stringify(o)).join('\n---\n'));
  const tests = objs.filter(isTestHook);
  return tests.length ? out + (await dryRunServer(kubeconfig, tests)) : out;
}

/** Every manifest through the real API server's validation and admission, without persisting. */
export async function dryRunServer(kubeconfig: string, objs: K8sObject[]): Promise<string> {
  const text = objs.map((o) => JSON.stringify(o)).join('\n---\n');
  const { stdout } = await kubectl(kubeconfig, ['apply', '--dry-run=server', '-f', '-'], text);
  return stdout;
}
