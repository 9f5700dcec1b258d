// Cluster state from a live apiserver: one client-node informer (ListWatch) per kind (per namespace for
// ConfigMaps), feeding a MemoryState.
//
// Objects are slimmed by transformObject on arrival, before the informer caches them: the list function
// transforms each page, and the Watch below transforms each event, so neither the informer's own cache
// nor ours ever holds a full object (memory stays small in large clusters, secrets never linger).
//
// The JS informers are known to stop silently (kubernetes-client/javascript #364, #596, #958), and a
// ListWatch stops for good on any error other than a timeout or 410. So every stream records when it
// last showed a sign of life (a list, a watch event or bookmark, a successful watch connection); an
// 'error' restarts it after a backoff, and a watchdog relists any stream that has been silent for longer
// than `watchdogSeconds`. A restart always relists into a fresh informer, so the cache is rebuilt from
// the apiserver rather than trusted.

import { createRequire } from 'node:module';
import type { KubeConfig, KubernetesListObject, KubernetesObject, ListWatch, Watch } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { InputError } from '../errors.ts';
import { CONFIGMAP_NAMESPACES, KIND_NAMES, KINDS, type KindName } from './kinds.ts';
import { istioNamespaces } from './snapshot.ts';
import { MemoryState } from './store.ts';
import { transformObject } from './transform.ts';
import type { KubeObject, StateSource, StateStats } from './types.ts';

// The Kubernetes client takes ~0.4 s to import: it is loaded on first use, so `serve --state` and the
// other file-based commands, which import this module through the CLI, never pay for it.
type K8s = typeof import('@kubernetes/client-node');
let k8sModule: K8s | undefined;
function k8s(): K8s {
  return (k8sModule ??= createRequire(import.meta.url)('@kubernetes/client-node') as K8s);
}

/** A non-2xx answer from the apiserver. */
export class ApiStatusError extends Error {
  readonly statusCode: number;
  constructor(statusCode: number, message: string) {
    super(message);
    this.name = 'ApiStatusError';
    this.statusCode = statusCode;
  }
}

function statusCodeOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { statusCode?: unknown; code?: unknown };
  if (typeof e.statusCode === 'number') return e.statusCode;
  if (typeof e.code === 'number') return e.code;
  return undefined;
}

function errText(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    const c = cause instanceof Error ? `: ${cause.message}` : '';
    return `${err.message}${c}`.slice(0, 300);
  }
  return String(err).slice(0, 300);
}

/** Load a kubeconfig (the default chain when no path: $KUBECONFIG, ~/.kube/config, in-cluster). */
export function loadKubeConfig(kubeconfigPath?: string): KubeConfig {
  const kc = new (k8s().KubeConfig)();
  try {
    if (kubeconfigPath) kc.loadFromFile(kubeconfigPath);
    else kc.loadFromDefault();
  } catch (e) {
    throw new InputError(`cannot load kubeconfig: ${errText(e)}`, kubeconfigPath ? { file: kubeconfigPath } : undefined);
  }
  if (!kc.getCurrentCluster()) {
    throw new InputError('kubeconfig has no current cluster', kubeconfigPath ? { file: kubeconfigPath } : undefined);
  }
  return kc;
}

/** The collection path of a kind, cluster-wide or in one namespace. */
export function collectionPath(kind: KindName, namespace?: string): string {
  const k = KINDS[kind];
  const prefix = k.group ? `/apis/${k.group}/${k.version}` : `/api/${k.version}`;
  const ns = k.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  return `${prefix}${ns}/${k.plural}`;
}

let httpLibrary: InstanceType<K8s['IsomorphicFetchHttpLibrary']> | undefined;
const PAGE_SIZE = 500;
const LIST_TIMEOUT_MS = 60_000;

/**
 * List a kind (paginated), transforming each page as it arrives so full objects never pile up.
 * Throws ApiStatusError on a non-2xx answer (404 = the kind is not served: CRD not installed).
 */
export async function listKind(
  kc: KubeConfig,
  kind: KindName,
  namespace?: string,
  onPage?: () => void,
): Promise<{ items: KubeObject[]; resourceVersion: string }> {
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new Error('kubeconfig has no current cluster');
  const path = collectionPath(kind, namespace);
  let items: KubeObject[] = [];
  let cont: string | undefined;
  let resourceVersion = '';
  let restarts = 0;
  for (;;) {
    const url = new URL(server.replace(/\/+$/, '') + path);
    url.searchParams.set('limit', String(PAGE_SIZE));
    if (cont) url.searchParams.set('continue', cont);
    const { RequestContext, HttpMethod, IsomorphicFetchHttpLibrary } = k8s();
    const http = (httpLibrary ??= new IsomorphicFetchHttpLibrary());
    const ctx = new RequestContext(url.toString(), HttpMethod.GET);
    ctx.setHeaderParam('Accept', 'application/json');
    await kc.applySecurityAuthentication(ctx);
    ctx.setSignal(AbortSignal.timeout(LIST_TIMEOUT_MS));
    const resp = await http.send(ctx).toPromise();
    const text = await resp.body.text();
    if (resp.httpStatusCode === 410 && cont && restarts < 3) {
      // The continue token expired (compaction during a long paginated list): start over.
      restarts++;
      items = [];
      cont = undefined;
      continue;
    }
    if (resp.httpStatusCode < 200 || resp.httpStatusCode > 299) {
      let message = `HTTP ${resp.httpStatusCode}`;
      try {
        const st = JSON.parse(text) as { message?: unknown };
        if (typeof st.message === 'string') message += `: ${st.message}`;
      } catch {
        // not a Status body
      }
      throw new ApiStatusError(resp.httpStatusCode, message.slice(0, 300));
    }
    const body = JSON.parse(text) as { items?: unknown; metadata?: { resourceVersion?: unknown; continue?: unknown } };
    for (const raw of Array.isArray(body.items) ? body.items : []) {
      const obj = transformObject(kind, raw);
      if (obj.metadata.name) items.push(obj);
    }
    onPage?.();
    const rv = body.metadata?.resourceVersion;
    if (typeof rv === 'string') resourceVersion = rv;
    const next = body.metadata?.continue;
    cont = typeof next === 'string' && next !== '' ? next : undefined;
    if (!cont) return { items, resourceVersion };
  }
}

interface WatchHooks {
  transform(obj: unknown): KubeObject;
  alive(): void;
  /** False once the informer was replaced or stopped. */
  current(): boolean;
}

/**
 * client-node's Watch, with events transformed before the informer sees them, liveness recorded, and
 * bookmarks requested. It also never throws (a throw from watch() inside the informer's done handler
 * would be an unhandled rejection): failures go to `done` like any other.
 */
function newSlimWatch(kc: KubeConfig, hooks: WatchHooks): Watch {
  SlimWatch ??= slimWatchClass(k8s().Watch);
  return new SlimWatch(kc, hooks);
}
let SlimWatch: ReturnType<typeof slimWatchClass> | undefined;
const slimWatchClass = (Base: K8s['Watch']) => class SlimWatch extends Base {
  readonly #hooks: WatchHooks;
  constructor(kc: KubeConfig, hooks: WatchHooks) {
    super(kc);
    this.#hooks = hooks;
  }

  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: any, watchObj?: any) => void,
    done: (err: any) => void,
  ): Promise<AbortController> {
    // A ListWatch stopped while its list was in flight still opens a watch afterwards: refuse it, or the
    // replaced informer would hold a connection forever.
    if (!this.#hooks.current()) return new AbortController();
    let failed = false;
    try {
      const ctrl = await super.watch(
        path,
        { ...queryParams, allowWatchBookmarks: true },
        (phase, obj, raw) => {
          if (!this.#hooks.current()) return;
          this.#hooks.alive();
          const slim = phase === 'ADDED' || phase === 'MODIFIED' || phase === 'DELETED' ? this.#hooks.transform(obj) : obj;
          callback(phase, slim, raw);
        },
        (err) => {
          if (err) failed = true;
          done(err);
        },
      );
      if (!failed) this.#hooks.alive(); // connected (HTTP 200)
      return ctrl;
    } catch (err) {
      done(err);
      return new AbortController();
    }
  }
};

type StreamStatus = 'pending' | 'synced' | 'absent' | 'failing';

/** One informer: a kind, cluster-wide or in one namespace (ConfigMaps). */
interface Stream {
  readonly kind: KindName;
  readonly namespace?: string;
  status: StreamStatus;
  /** Listed at least once (or found absent): counts for the first sync. */
  listedOnce: boolean;
  lastAlive: number;
  informer?: ListWatch<KubernetesObject>;
  /** Incremented per informer, so late callbacks from a replaced informer are ignored. */
  generation: number;
  backoffMs: number;
  restartTimer?: NodeJS.Timeout;
}

export interface LiveSourceOptions {
  readonly kubeconfigPath?: string;
  readonly logger: Logger;
  /** Relist a stream silent for longer than this; also the period of the watchdog (default 60). */
  readonly watchdogSeconds?: number;
  /** The Istio root namespace, when not istio-system: its ConfigMaps are watched too. */
  readonly istioRootNamespace?: string;
  /** Reject start() if the first sync is not done after this long (default: wait, retrying). */
  readonly startTimeoutSeconds?: number;
  /** Use this KubeConfig instead of loading one (tests). */
  readonly kubeConfig?: KubeConfig;
}

const MAX_BACKOFF_MS = 30_000;

function newStream(kind: KindName, namespace?: string): Stream {
  return {
    kind,
    ...(namespace !== undefined ? { namespace } : {}),
    status: 'pending',
    listedOnce: false,
    lastAlive: Date.now(),
    generation: 0,
    backoffMs: 0,
  };
}

/** A StateSource over informers on a live cluster. */
export class LiveSource implements StateSource {
  readonly state = new MemoryState('live');
  readonly #opts: LiveSourceOptions;
  readonly #log: Logger;
  readonly #watchdogMs: number;
  readonly #streams: Stream[] = [];
  #kc?: KubeConfig;
  #watchdog?: NodeJS.Timeout;
  #stopped = false;
  #started = false;
  #onSynced?: () => void;

  constructor(opts: LiveSourceOptions) {
    this.#opts = opts;
    this.#log = opts.logger;
    this.#watchdogMs = Math.max(1, opts.watchdogSeconds ?? 60) * 1000;
  }

  /** Starts every informer; resolves once each kind has listed once (missing CRDs count as listed). */
  async start(): Promise<void> {
    if (this.#started) throw new Error('LiveSource already started');
    this.#started = true;
    this.#kc = this.#opts.kubeConfig ?? loadKubeConfig(this.#opts.kubeconfigPath);
    const cmNamespaces = new Set<string>(CONFIGMAP_NAMESPACES);
    if (this.#opts.istioRootNamespace) cmNamespaces.add(this.#opts.istioRootNamespace);
    for (const kind of KIND_NAMES) {
      const namespaces = kind === 'ConfigMap' ? [...cmNamespaces] : [undefined];
      for (const namespace of namespaces) this.#streams.push(newStream(kind, namespace));
    }
    const synced = new Promise<void>((resolve) => {
      this.#onSynced = resolve;
    });
    for (const s of this.#streams) this.#restart(s);
    this.#watchdog = setInterval(() => this.#tick(), this.#watchdogMs);
    this.#watchdog.unref();

    const timeoutS = this.#opts.startTimeoutSeconds;
    if (timeoutS === undefined) {
      await synced;
    } else {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const waiting = this.#streams.filter((s) => !s.listedOnce).map((s) => this.#name(s));
          reject(new Error(`cluster state not synced after ${timeoutS}s (waiting for: ${waiting.join(', ')})`));
        }, timeoutS * 1000);
      });
      try {
        await Promise.race([synced, timeout]);
      } finally {
        clearTimeout(timer);
      }
    }
    if (this.#stopped) throw new Error('LiveSource stopped before the first sync');
    this.state.setLabel('live');
    this.#log.info({ objects: this.stats().objects, missingKinds: this.stats().missingKinds }, 'cluster state synced');
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#watchdog) clearInterval(this.#watchdog);
    const stops: Promise<void>[] = [];
    for (const s of this.#streams) {
      if (s.restartTimer) clearTimeout(s.restartTimer);
      s.generation++;
      if (s.informer) stops.push(s.informer.stop().catch(() => undefined));
      s.informer = undefined;
    }
    await Promise.all(stops);
    this.#onSynced?.(); // a start() still waiting ends (and rejects, as stopped)
  }

  synced(): boolean {
    if (this.#stopped || this.#streams.length === 0) return false;
    return this.#streams.every((s) => s.listedOnce && s.status !== 'failing');
  }

  stats(): StateStats {
    const objects: Partial<Record<KindName, number>> = {};
    for (const kind of KIND_NAMES) objects[kind] = this.state.count(kind);
    const now = Date.now();
    const byKind: Partial<Record<KindName, number>> = {};
    let newest: number | undefined;
    for (const s of this.#streams) {
      const age = Math.max(0, (now - s.lastAlive) / 1000);
      byKind[s.kind] = Math.max(byKind[s.kind] ?? 0, age);
      newest = newest === undefined ? age : Math.min(newest, age);
    }
    const missing = [...new Set(this.#streams.filter((s) => s.status === 'absent').map((s) => s.kind))];
    return {
      objects,
      ...(newest !== undefined ? { secondsSinceLastEvent: newest } : {}),
      secondsSinceLastEventByKind: byKind,
      missingKinds: missing,
      synced: this.synced(),
    };
  }

  #name(s: Stream): string {
    return s.namespace !== undefined ? `${s.kind}(${s.namespace})` : s.kind;
  }

  /** Replace the stream's informer by a fresh one, which lists and then watches. */
  #restart(s: Stream): void {
    if (this.#stopped) return;
    if (s.restartTimer) {
      clearTimeout(s.restartTimer);
      delete s.restartTimer;
    }
    const old = s.informer;
    if (old) void old.stop().catch(() => undefined);
    const gen = ++s.generation;
    s.lastAlive = Date.now(); // the new informer gets a full watchdog period to list
    const kc = this.#kc!;
    const kind = s.kind;
    const live = () => gen === s.generation && !this.#stopped;

    const listFn = async () => {
      let result;
      try {
        // Each page counts as activity, so the watchdog does not cut a long paginated list short.
        result = await listKind(kc, kind, s.namespace, () => {
          if (live()) s.lastAlive = Date.now();
        });
      } catch (err) {
        if (live()) this.#listFailed(s, err);
        throw err;
      }
      if (live()) this.#listed(s, result.items);
      // The informer only reads items[].metadata (name, namespace, resourceVersion), which slim objects keep.
      const list = { metadata: { resourceVersion: result.resourceVersion }, items: result.items };
      return list as unknown as KubernetesListObject<KubernetesObject>;
    };
    const watch = newSlimWatch(kc, {
      transform: (obj) => transformObject(kind, obj),
      alive: () => {
        if (live()) s.lastAlive = Date.now();
      },
      current: live,
    });
    const informer: ListWatch<KubernetesObject> = new (k8s().ListWatch)<KubernetesObject>(collectionPath(kind, s.namespace), watch, listFn, false);
    const put = (o: KubernetesObject) => {
      const obj = o as unknown as KubeObject;
      if (!live() || !obj.metadata.name) return;
      const ns = obj.metadata.namespace;
      // After a list the state already holds this very object (the list put it there).
      if (this.state.get(kind, ns, obj.metadata.name) !== obj) this.state.upsert(kind, obj);
    };
    informer.on('add', put);
    informer.on('update', put);
    informer.on('delete', (o: KubernetesObject) => {
      const obj = o as unknown as KubeObject;
      if (!live()) return;
      const cur = this.state.get(kind, obj.metadata.namespace, obj.metadata.name);
      if (cur) this.state.remove(kind, obj.metadata.namespace, obj.metadata.name);
    });
    informer.on('error', (err?: unknown) => {
      if (live()) this.#informerError(s, err);
    });
    s.informer = informer;
    informer.start().catch((err: unknown) => {
      if (live()) this.#informerError(s, err);
    });
  }

  #listed(s: Stream, items: KubeObject[]): void {
    if (s.namespace !== undefined) this.state.replaceNamespace(s.kind, s.namespace, items);
    else this.state.replaceAll(s.kind, items);
    const was = s.status;
    s.status = 'synced';
    s.lastAlive = Date.now();
    s.backoffMs = 0;
    if (was === 'absent') this.#log.info({ kind: s.kind }, 'kind is now served (CRD installed): watching it');
    if (was === 'failing') this.#log.info({ kind: this.#name(s) }, 'list recovered');
    this.#markListed(s);
    if (s.kind === 'Deployment' || s.kind === 'ConfigMap') this.#followIstioNamespaces();
  }

  /**
   * Watch ConfigMaps also where istiod runs and in the mesh config's rootNamespace (as loadSnapshot
   * keeps them), once the Deployments and mesh ConfigMaps tell where that is.
   */
  #followIstioNamespaces(): void {
    if (this.#stopped) return;
    const have = new Set(this.#streams.filter((x) => x.kind === 'ConfigMap').map((x) => x.namespace));
    const seen = istioNamespaces([...this.state.list('Deployment'), ...this.state.list('ConfigMap')]);
    for (const ns of seen) {
      if (have.has(ns)) continue;
      have.add(ns);
      this.#log.info({ namespace: ns }, 'Istio control plane namespace found: watching its ConfigMaps too');
      const stream = newStream('ConfigMap', ns);
      this.#streams.push(stream);
      this.#restart(stream);
    }
  }

  #listFailed(s: Stream, err: unknown): void {
    const code = statusCodeOf(err);
    if (code === 404 && KINDS[s.kind].optional) {
      if (s.status !== 'absent') {
        this.#log.info(
          { kind: s.kind, group: KINDS[s.kind].group, version: KINDS[s.kind].version },
          'kind not served (CRD not installed): treating it as empty, re-checking every watchdog tick',
        );
      }
      if (s.namespace !== undefined) this.state.replaceNamespace(s.kind, s.namespace, []);
      else if (this.state.count(s.kind) > 0) this.state.replaceAll(s.kind, []);
      s.status = 'absent';
      s.lastAlive = Date.now();
      this.#markListed(s);
      return;
    }
    s.status = 'failing';
    this.#log.warn({ kind: this.#name(s), statusCode: code, err: errText(err) }, 'list failed; retrying');
  }

  #informerError(s: Stream, err: unknown): void {
    // An absent kind is re-checked by the watchdog, not by backoff.
    if (s.status === 'absent') return;
    if (s.restartTimer) return;
    s.backoffMs = s.backoffMs > 0 ? Math.min(s.backoffMs * 2, MAX_BACKOFF_MS) : 1000;
    const delay = Math.round(s.backoffMs * (0.8 + Math.random() * 0.4));
    if (s.status !== 'failing') {
      this.#log.warn({ kind: this.#name(s), statusCode: statusCodeOf(err), err: errText(err), retryMs: delay }, 'watch failed; relisting after backoff');
    }
    s.restartTimer = setTimeout(() => {
      delete s.restartTimer;
      this.#restart(s);
    }, delay);
    s.restartTimer.unref();
  }

  #markListed(s: Stream): void {
    s.listedOnce = true;
    if (this.#onSynced && this.#streams.every((x) => x.listedOnce)) {
      const done = this.#onSynced;
      this.#onSynced = undefined;
      done();
    }
  }

  #tick(): void {
    if (this.#stopped) return;
    this.#followIstioNamespaces(); // istiod may have been installed or moved since the last list
    const now = Date.now();
    for (const s of this.#streams) {
      if (s.restartTimer) continue; // a restart is already scheduled
      if (s.status === 'absent') {
        this.#restart(s); // is the CRD installed now?
        continue;
      }
      const silentMs = now - s.lastAlive;
      if (silentMs > this.#watchdogMs) {
        this.#log.warn({ kind: this.#name(s), silentSeconds: Math.round(silentMs / 1000) }, 'watch silent too long; relisting');
        this.#restart(s);
      }
    }
  }
}
