// An API watch that keeps going: client-node's Watch ends after 30 s without data and on any
// API server restart; the harness needs one that resumes from the last resourceVersion, so a
// quiet gap between failovers or a stopped API server costs no event.
import { KubeConfig, Watch } from '@kubernetes/client-node';

export interface WatchedObject {
  metadata?: { name?: string; resourceVersion?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: { externalName?: string };
}

/** Epoch milliseconds with sub-ms resolution, comparable across the harness. */
export const nowMs = (): number => performance.timeOrigin + performance.now();

export interface ResumableWatch {
  stop(): void;
}

export async function resumableWatch(
  kubeconfig: string,
  path: string,
  query: Record<string, string>,
  onEvent: (type: string, obj: WatchedObject, atMs: number) => void,
): Promise<ResumableWatch> {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  let lastRv: string | undefined;
  let stopped = false;
  let controller: AbortController | undefined;
  let retry: NodeJS.Timeout | undefined;

  const start = async (): Promise<void> => {
    const w = new Watch(kc);
    // A private field (30 s by default); resumed anyway if it ends.
    (w as unknown as { requestTimeoutMs: number }).requestTimeoutMs = 60 * 60_000;
    controller = await w.watch(
      path,
      { ...query, allowWatchBookmarks: true, ...(lastRv ? { resourceVersion: lastRv } : {}) },
      (type: string, obj: WatchedObject) => {
        const atMs = nowMs();
        if (obj?.metadata?.resourceVersion) lastRv = obj.metadata.resourceVersion;
        if (type === 'BOOKMARK') return;
        if (type === 'ERROR') {
          lastRv = undefined; // e.g. 410 Gone: start over from a fresh list
          return;
        }
        onEvent(type, obj, atMs);
      },
      (err: unknown) => restart(err),
    );
  };
  const restart = (err: unknown): void => {
    if (stopped) return;
    // At once after a normal end, a little later after an error (API server down).
    retry = setTimeout(() => void start().catch(restart), err ? 200 : 0);
  };
  await start();
  return {
    stop() {
      stopped = true;
      clearTimeout(retry);
      controller?.abort();
    },
  };
}
