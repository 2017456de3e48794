// vitest globalSetup: one real Kubernetes cluster per test run, shared by all test files
// (they run one at a time; each works in namespaces of its own, see createNamespace). Inside the
// sandbox's network namespace (npm test enters it) with its data plane: controller-manager,
// kube-proxy and CoreDNS (Corefile kubeadm; a test that switches it switches it back).
//
//   default                              start one in .sandbox/k8s-test-<pid> and stop it at the end;
//                                        its logs stay for a post-mortem until the next run sweeps them
//   SENTINEL_SWITCH_TEST_K8S_DIR=DIR     use the cluster in DIR, starting it if needed, and leave it
//                                        running (a fast edit-test loop: `scripts/k8s.sh down --dir DIR`)
//   SENTINEL_SWITCH_TEST_K8S=off         no cluster (for runs that only touch Redis)
//
// Tests get it with testCluster() from test/harness/k8s.ts.
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { connectCluster, isClusterRunning, startCluster, TEST_KUBECONFIG_ENV } from './k8s.ts';
import type { Cluster } from './k8s.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SANDBOX = path.join(ROOT, '.sandbox');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

// Folders of earlier runs: finished ones (kept for their logs) and ones that died before their
// teardown, whose watchdog has normally stopped the daemons already; `down` is idempotent and only
// signals pids that still run that folder's daemons.
async function sweepStaleRuns(): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(SANDBOX);
  } catch {
    return;
  }
  for (const entry of entries) {
    const pid = Number(/^k8s-test-(\d+)$/.exec(entry)?.[1]);
    if (!pid || pid === process.pid || alive(pid)) continue;
    const dir = path.join(SANDBOX, entry);
    try {
      await connectCluster(dir).then((c) => c.stop());
    } catch {
      // never became ready: nothing to stop, or `up` already cleaned up after itself
    }
    await rm(dir, { recursive: true, force: true });
  }
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  if (process.env.SENTINEL_SWITCH_TEST_K8S === 'off') return undefined;

  let cluster: Cluster;
  let owned = false;
  const shared = process.env.SENTINEL_SWITCH_TEST_K8S_DIR;
  if (shared) {
    const dir = path.resolve(ROOT, shared);
    cluster = (await isClusterRunning(dir)) ? await connectCluster(dir) : await startCluster({ dir });
  } else {
    await sweepStaleRuns();
    // The watchdog (ownerPid) stops the cluster even if this process is killed before teardown.
    cluster = await startCluster({ dir: path.join(SANDBOX, `k8s-test-${process.pid}`), ownerPid: process.pid });
    owned = true;
  }

  project.provide('sentinelSwitchK8sDir', cluster.dir);
  project.provide('sentinelSwitchKubeconfig', cluster.kubeconfigPath);
  // For test processes forked from here and for anything the tests spawn (the demo, the service).
  process.env[TEST_KUBECONFIG_ENV] = cluster.kubeconfigPath;

  return async () => {
    if (!owned) return;
    await cluster.stop();
    // etcd preallocates its WAL (64 MB); the logs and certificates are small.
    await rm(path.join(cluster.dir, 'etcd-data'), { recursive: true, force: true });
  };
}
