// A cache of Kubernetes objects kept current by a watch: load (a GET of one named object, or a
// LIST), then watch from that resourceVersion (?watch=1, line-delimited JSON, bookmarks), resume
// after the server ends the watch (timeoutSeconds), start over from a fresh load after 410 Gone
// or an error (with backoff), and after a 403 keep trying slowly (RBAC may be fixed) while every
// read goes to the API directly.
//
// The cache is only ever an optimisation: `synced` is true only while a watch is open, so while
// the API is unreachable or the watch is refused, callers read the API as before. And what it
// serves may be milliseconds old (a watch lags): the writer's resourceVersion guard turns a stale
// read into a 409, and then the caller must read the API (reconcile.ts, attempt > 1).
import { ApiError, type KubeClient } from './client.ts';

export interface KubeObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; deletionTimestamp?: string };
}

export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR' | string;
  object?: unknown;
}

/** What an event means for the cache: a new resourceVersion to resume from, a relist (410 Gone), or a failure to reconnect after. */
export type EventEffect = { resourceVersion?: string; relist?: true; error?: string };

/** Pure: applies one watch event to the items (by metadata.name) and says how to go on. */
export function applyEvent<T>(items: Map<string, T>, event: WatchEvent, pick: (o: KubeObject) => T): EventEffect {
  const obj = (event.object ?? {}) as KubeObject & { code?: number; message?: string; reason?: string };
  const rv = obj.metadata?.resourceVersion || undefined;
  const name = obj.metadata?.name;
  switch (event.type) {
    case 'ADDED':
    case 'MODIFIED':
      if (!name) return { error: `a ${event.type} event without metadata.name` };
      items.set(name, pick(obj));
      return { resourceVersion: rv };
    case 'DELETED':
      if (name) items.delete(name);
      return { resourceVersion: rv };
    case 'BOOKMARK':
      return { resourceVersion: rv };
    case 'ERROR':
      // A Status: 410 Gone (resourceVersion too old, compacted) means start over from a list.
      if (obj.code === 410 || obj.reason === 'Expired' || obj.reason === 'Gone') return { relist: true };
      return { error: `watch ERROR ${obj.code ?? ''} ${obj.reason ?? ''}: ${obj.message ?? JSON.stringify(obj)}`.replace(/\s+/g, ' ') };
    default:
      return { error: `unknown watch event type ${JSON.stringify(event.type)}` };
  }
}

export type InformerState = 'loading' | 'watching' | 'retrying' | 'forbidden' | 'stopped';

export interface InformerOptions<T> {
  client: KubeClient;
  /** What it caches, for logs: `services ns/redis-master`, `pods in ns`. */
  what: string;
  /** The collection path the watch goes to, e.g. /api/v1/namespaces/ns/services. */
  path: string;
  /** e.g. metadata.name=redis-master: a watch of one named object (RBAC resourceNames allow it). */
  fieldSelector?: string;
  /** The current objects and the resourceVersion to watch from (undefined: the watch sends the state itself). */
  load(): Promise<{ objects: KubeObject[]; resourceVersion?: string }>;
  pick(o: KubeObject): T;
  /** Told each change of state with a sentence for the operator (logged by Kube). */
  onState?(state: InformerState, detail: string): void;
  /** Server-side watch timeout; default 240-360 s, spread so watches do not restart together. */
  timeoutSeconds?: number;
  /** Backoff after an error, doubling up to maxBackoffMs; after a 403, forbiddenRetryMs. */
  backoffMs?: number;
  maxBackoffMs?: number;
  forbiddenRetryMs?: number;
}

export class Informer<T> {
  readonly what: string;
  readonly #o: InformerOptions<T>;
  readonly #items = new Map<string, T>();
  #rv: string | undefined;
  #state: InformerState = 'loading';
  #detail = 'loading';
  #stream: { abort(): void } | undefined;
  #restart: 'resume' | 'relist' | undefined;
  /** A watch ERROR event other than 410: the stream is cut and the loop backs off, as after a network error. */
  #eventError: string | undefined;
  #sleep: { timer: NodeJS.Timeout; wake: () => void } | undefined;
  #held: WatchEvent[] | undefined;
  /** Settles with the first load: callers that found no cache wait for it instead of reading twice. */
  readonly firstLoad: Promise<void>;
  #loaded!: { resolve: () => void; reject: (e: unknown) => void };

  constructor(o: InformerOptions<T>) {
    this.#o = o;
    this.what = o.what;
    this.firstLoad = new Promise<void>((resolve, reject) => (this.#loaded = { resolve, reject }));
    this.firstLoad.catch(() => undefined);
    void this.#run();
  }

  /** A watch is open: reads may use the cache (which lags the API by however long events take to arrive). */
  get synced(): boolean {
    return this.#state === 'watching';
  }

  get state(): { state: InformerState; detail: string } {
    return { state: this.#state, detail: this.#detail };
  }

  /** The cached item; only meaningful when synced (or right after firstLoad, which is a fresh read). */
  get(name: string): T | undefined {
    return this.#items.get(name);
  }

  values(): IterableIterator<T> {
    return this.#items.values();
  }

  /**
   * An object we just read or wrote (a patch's answer): newer than the cache until the watch
   * delivers the same change. Taken only if its resourceVersion is not older than the cached
   * one's (etcd revisions are integers; anything else is taken as is).
   */
  offer(obj: KubeObject, rvOf: (t: T) => string | undefined): void {
    const name = obj.metadata?.name;
    if (!name) return;
    const have = this.#items.get(name);
    const a = have ? rvOf(have) : undefined;
    const b = obj.metadata?.resourceVersion;
    if (a && b && /^\d+$/.test(a) && /^\d+$/.test(b) && BigInt(b) < BigInt(a)) return;
    this.#items.set(name, this.#o.pick(obj));
  }

  /** Test seam: events are queued, not applied, while the cache stays in use: a watch that lags. */
  hold(): void {
    this.#held ??= [];
  }

  /** Applies what was held, in order. */
  release(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    for (const e of held) this.#onEvent(e);
  }

  stop(): void {
    this.#setState('stopped', 'stopped');
    this.#stream?.abort();
    if (this.#sleep) {
      clearTimeout(this.#sleep.timer);
      this.#sleep.wake();
    }
    this.#loaded.reject(new Error(`${this.what}: informer stopped`));
  }

  async #run(): Promise<void> {
    let needLoad = true;
    let backoff = this.#o.backoffMs ?? 250;
    while (!this.#stopped()) {
      try {
        if (needLoad) {
          const { objects, resourceVersion } = await this.#o.load();
          if (this.#stopped()) return;
          this.#items.clear();
          for (const obj of objects) if (obj.metadata?.name) this.#items.set(obj.metadata.name, this.#o.pick(obj));
          this.#rv = resourceVersion;
          needLoad = false;
          this.#loaded.resolve();
        }
        await this.#watchOnce();
        backoff = this.#o.backoffMs ?? 250;
        // A clean end (the server's timeoutSeconds, or our idle timer): resume from the last
        // resourceVersion; after a 410, load again.
        if (this.#restart === 'relist' || !this.#rv) needLoad = true;
        if (!this.#stopped()) this.#setState('loading', needLoad ? 'loading again' : 'resuming the watch');
      } catch (err) {
        if (this.#stopped()) return;
        this.#loaded.reject(err);
        needLoad = true;
        const forbidden = err instanceof ApiError && err.status === 403;
        const wait = forbidden ? (this.#o.forbiddenRetryMs ?? 60_000) : backoff;
        this.#setState(forbidden ? 'forbidden' : 'retrying', `${describe(err)}; reading the API directly, watching again in ${wait < 1000 ? `${wait} ms` : `${Math.round(wait / 1000)} s`}`);
        await this.#pause(wait);
        if (!forbidden) backoff = Math.min(backoff * 2, this.#o.maxBackoffMs ?? 30_000);
      }
    }
  }

  async #watchOnce(): Promise<void> {
    this.#restart = undefined;
    this.#eventError = undefined;
    const timeoutSeconds = this.#o.timeoutSeconds ?? 240 + Math.floor(Math.random() * 120);
    let idle: NodeJS.Timeout | undefined;
    const stream = await this.#o.client.stream(
      this.#o.path,
      { watch: 1, allowWatchBookmarks: true, resourceVersion: this.#rv, timeoutSeconds, fieldSelector: this.#o.fieldSelector },
      (line) => {
        idle?.refresh();
        this.#onEvent(line as WatchEvent);
      },
    );
    this.#stream = stream;
    try {
      await stream.opened;
      // Nothing at all (not even a bookmark) for longer than the server's own timeout: the
      // connection is dead without having said so; start again.
      idle = setTimeout(() => {
        this.#restart ??= 'resume';
        stream.abort();
      }, (timeoutSeconds + 30) * 1000);
      idle.unref();
      if (!this.#stopped()) this.#setState('watching', 'watching');
      await stream.done;
    } catch (err) {
      if (this.#eventError) throw new Error(this.#eventError);
      if (!this.#restart || this.#stopped()) throw err; // an abort we asked for is a clean end
    } finally {
      clearTimeout(idle);
      this.#stream = undefined;
    }
  }

  #onEvent(e: WatchEvent): void {
    if (this.#held) {
      this.#held.push(e);
      return;
    }
    const effect = applyEvent(this.#items, e, this.#o.pick);
    if (effect.resourceVersion) this.#rv = effect.resourceVersion;
    if (effect.error) {
      this.#eventError = effect.error;
      this.#stream?.abort();
    } else if (effect.relist) {
      this.#restart = 'relist';
      this.#stream?.abort();
    }
  }

  #stopped(): boolean {
    return this.#state === 'stopped';
  }

  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#sleep = undefined;
        resolve();
      }, ms);
      timer.unref();
      this.#sleep = { timer, wake: resolve };
    });
  }

  #setState(state: InformerState, detail: string): void {
    if (this.#stopped()) return;
    const changed = state !== this.#state; // told once per state, not per backoff step
    this.#state = state;
    this.#detail = detail;
    if (changed) this.#o.onState?.(state, detail);
  }
}

function describe(err: unknown): string {
  if (err instanceof ApiError) return `watch refused: ${err.message}`;
  const e = err as Error & { code?: string };
  return `watch failed: ${e.message}${e.code && !e.message.includes(e.code) ? ` (${e.code})` : ''}`;
}
