// Cluster state from a live apiserver: one list-then-watch per kind (per namespace for ConfigMaps),
// feeding a MemoryState. The apiserver client is our own (kube-api.ts; ADR 0003): a list (the first one
// from the apiserver's watch cache, resourceVersion=0: ADR 0009; relists paginated, of the latest
// version), then a watch from the list's resourceVersion that is resumed from the last event or bookmark
// when the apiserver ends it, and relisted when the apiserver says that resourceVersion is gone (410).
//
// Objects are slimmed by transformObject as they arrive, page by page and event by event, so the state
// never holds a full object (memory stays small in large clusters, secrets never linger).
//
// A stream records when it last showed a sign of life (a list page, a watch event or bookmark, a watch
// connection accepted); a failure relists it after a backoff, and a watchdog relists any stream that has
// been silent for longer than `watchdogSeconds` (a watch can die without a word behind some proxies).
// A relist always replaces the kind's objects, so the cache is rebuilt from the apiserver, not trusted.

import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import { InputError } from '../core/errors.ts';
import { REAL_TIMERS, type Timer, type Timers } from '../core/timers.ts';
import { loadKubeApi, readBody, type KubeApi } from './kube-api.ts';
import { isProtobuf, PodListDecoder, PROTOBUF_MEDIA_TYPE, ProtobufError, protobufStatusMessage } from './pod-proto.ts';
import { CONFIGMAP_NAMESPACES, KIND_NAMES, KINDS, type KindName } from '../core/kinds.ts';
import { istioNamespaces } from './snapshot.ts';
import { MemoryState } from './store.ts';
import { transformObject } from './transform.ts';
import type { KubeObject, StateSource, StateStats } from '../core/objects.ts';

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

/**
 * The apiserver of a kubeconfig (the kubectl chain when no path: $KUBECONFIG, ~/.kube/config, in-cluster),
 * in `context` when given, else the current context.
 */
export function loadKubeConfig(kubeconfigPath?: string, context?: string): KubeApi {
  try {
    return loadKubeApi(kubeconfigPath, context !== undefined ? { context } : {});
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(`cannot load kubeconfig: ${errText(e)}`, kubeconfigPath ? { file: kubeconfigPath } : undefined);
  }
}

/** The collection path of a kind, cluster-wide or in one namespace. */
export function collectionPath(kind: KindName, namespace?: string): string {
  const k = KINDS[kind];
  const prefix = k.group ? `/apis/${k.group}/${k.version}` : `/api/${k.version}`;
  const ns = k.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  return `${prefix}${ns}/${k.plural}`;
}

const PAGE_SIZE = 500;
/**
 * A stream's first list of more objects than this goes into the state this many at a time, with the
 * event loop handed back in between: putting 50k pods into the store at once held it for 0.2-0.5 s
 * before the first readiness (issue 21). Later relists of that many are built aside in the same chunks
 * and swapped in whole (#relistAside), as requests are judged against the kind by then.
 */
export const FIRST_FILL_CHUNK = 2_000;
const LIST_TIMEOUT_MS = 60_000;

/** The message of a Status body, for errors. */
function statusMessage(code: number, text: string): string {
  let message = `HTTP ${code}`;
  try {
    const st = JSON.parse(text) as { message?: unknown };
    if (typeof st.message === 'string') message += `: ${st.message}`;
  } catch {
    // not a Status body
  }
  return message.slice(0, 300);
}

/** How listKind asks for a kind's pages. */
export interface ListOptions {
  /**
   * 'protobuf' (the default for Pods, the only kind with a protobuf decoder here: pod-proto.ts) asks
   * for the apiserver's protobuf encoding and takes JSON if that is what comes; 'json' asks for JSON.
   */
  readonly encoding?: 'json' | 'protobuf';
  /**
   * Called when a protobuf page could not be decoded; the list then starts over as JSON (and the
   * caller should ask for JSON from then on). Without it the fallback is silent.
   */
  readonly onProtobufFailed?: (err: ProtobufError) => void;
  /**
   * Ask for `resourceVersion=0` (any version): the apiserver answers from its watch cache, in one
   * piece (the cache ignores `limit`), rather than reading etcd page by page. Its objects are as
   * recent as that apiserver's cache, which the watch from the list's resourceVersion then brings up
   * to date. For a stream's first list (ADR 0009); relists read the latest version. Not for a Pod
   * list in JSON: it would come whole as one string (past V8's longest in a big cluster); the other
   * kinds are far smaller (at 50k pods the biggest, 5.7k ServiceAccounts, is a few MB).
   */
  readonly fromCache?: boolean;
  /** The timers of the page timeout (LIST_TIMEOUT_MS without a byte); tests pass a fake clock. */
  readonly timers?: Timers;
}

/** The Accept header of a protobuf list: JSON is taken too (a server or proxy that has no protobuf). */
const ACCEPT_PROTOBUF = `${PROTOBUF_MEDIA_TYPE}, application/json`;

interface Page {
  /** The continue token it was asked with. */
  readonly cont: string | undefined;
  readonly res: IncomingMessage;
  /** Aborts the page's request (its body too), and clears its timer. */
  readonly abort: AbortController;
  readonly timer: Timer;
}

/** Reads a whole response body as bytes. */
async function readBytes(res: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Hands the event loop back (between slices of a big page's objects). */
const yieldLoop = (): Promise<void> => new Promise<void>((r) => setImmediate(r));

/**
 * List a kind (paginated), transforming each page as it arrives so full objects never pile up.
 * Throws ApiStatusError on a non-2xx answer (404 = the kind is not served: CRD not installed).
 *
 * The next page is asked for as soon as this one's continue token is read, before this one's objects
 * are transformed: the apiserver encodes a page while meshguard slims the previous one (two pages in
 * flight at most), instead of each waiting for the other (100 pages for 50k pods, issue 21).
 *
 * Pods are asked for in protobuf (opts.encoding; ADR 0008): the apiserver encodes them several times
 * faster than JSON. A protobuf page is read into the JSON shape of the fields transformObject keeps
 * (pod-proto.ts), as its bytes arrive (a page from the watch cache holds every pod: 128 MB at 50k
 * pods, never held whole), so the slim pods are the same either way; a page that fails to decode
 * restarts the list as JSON. A JSON page's objects are slimmed PAGE_SIZE at a time, the event loop
 * handed back in between. A page times out when no byte of it came for LIST_TIMEOUT_MS.
 */
export async function listKind(
  api: KubeApi,
  kind: KindName,
  namespace?: string,
  /** Called as objects are listed (after each page, and as a streamed page arrives) with the number so far. */
  onPage?: (listed: number) => void,
  signal?: AbortSignal,
  opts: ListOptions = {},
): Promise<{ items: KubeObject[]; resourceVersion: string }> {
  const path = collectionPath(kind, namespace);
  let protobuf = kind === 'Pod' && opts.encoding !== 'json';
  const timers = opts.timers ?? REAL_TIMERS;
  const fetchPage = (cont: string | undefined): Promise<Page> => {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (cont) query.set('continue', cont);
    // Not a JSON Pod list: from the cache it would come whole, past V8's longest string in a big cluster.
    else if (opts.fromCache && (kind !== 'Pod' || protobuf)) query.set('resourceVersion', '0');
    const abort = new AbortController();
    const timer = timers.setTimeout(() => abort.abort(new Error(`list of ${kind}: nothing received for ${LIST_TIMEOUT_MS / 1000} s`)), LIST_TIMEOUT_MS);
    timer.unref();
    const page = api
      .get(`${path}?${query.toString()}`, { signal: signal ? AbortSignal.any([signal, abort.signal]) : abort.signal, ...(protobuf ? { accept: ACCEPT_PROTOBUF } : {}) })
      .then((res): Page => ({ cont, res, abort, timer }));
    page.catch(() => timers.clearTimeout(timer));
    // A page asked for ahead is awaited on the next turn of the loop below, or never if this one
    // fails: its failure must not be an unhandled rejection.
    page.catch(() => undefined);
    return page;
  };
  /** Drops a page asked for ahead that will not be read. */
  const drop = (p: Promise<Page> | undefined): void => {
    void p?.then((x) => {
      timers.clearTimeout(x.timer);
      x.abort.abort();
    }, () => undefined);
  };
  let items: KubeObject[] = [];
  let resourceVersion = '';
  let restarts = 0;
  let pending: Promise<Page> | undefined = fetchPage(undefined);
  const add = (raw: unknown): void => {
    const obj = transformObject(kind, raw);
    if (obj.metadata.name) items.push(obj);
  };
  try {
    for (;;) {
      const { cont: asked, res, abort, timer } = await pending!;
      pending = undefined;
      try {
        const code = res.statusCode ?? 0;
        const protobufBody = isProtobuf(res.headers['content-type']);
        if (code === 410 && asked && restarts < 3) {
          // The continue token expired (compaction during a long paginated list): start over.
          res.resume();
          restarts++;
          items = [];
          pending = fetchPage(undefined);
          continue;
        }
        if (code < 200 || code > 299) {
          if (!protobufBody) throw new ApiStatusError(code, statusMessage(code, await readBody(res)));
          const message = protobufStatusMessage(await readBytes(res));
          throw new ApiStatusError(code, `HTTP ${code}${message !== undefined ? `: ${message}` : ''}`.slice(0, 300));
        }
        let rv: unknown;
        let next: unknown;
        if (protobufBody) {
          const decoder = new PodListDecoder();
          try {
            if (kind !== 'Pod') throw new ProtobufError(`the apiserver answered a list of ${kind} in protobuf, which meshguard reads only for Pods`);
            for await (const chunk of res) {
              timer.refresh();
              for (const raw of decoder.push(chunk as Buffer)) add(raw);
              // The next page as soon as this one's continue token is read (the list metadata comes first).
              if (pending === undefined && decoder.meta.continue) pending = fetchPage(decoder.meta.continue);
              onPage?.(items.length);
            }
            const meta = decoder.finish();
            rv = meta.resourceVersion;
            next = meta.continue;
          } catch (e) {
            // Asked for JSON already (a server that sends protobuf anyway): a list failure like any other.
            if (!(e instanceof ProtobufError) || !protobuf) throw e;
            // Start over as JSON: the pages listed so far came from this decoder too.
            opts.onProtobufFailed?.(e);
            abort.abort();
            drop(pending);
            protobuf = false;
            items = [];
            pending = fetchPage(undefined);
            continue;
          }
        } else {
          // Read with the timeout refreshed by each chunk, as a protobuf body (a whole kind from the cache).
          res.setEncoding('utf8');
          let text = '';
          for await (const chunk of res) {
            timer.refresh();
            text += chunk as string;
          }
          const body = JSON.parse(text) as { items?: unknown; metadata?: { resourceVersion?: unknown; continue?: unknown } };
          const raws: readonly unknown[] = Array.isArray(body.items) ? body.items : [];
          rv = body.metadata?.resourceVersion;
          next = body.metadata?.continue;
          const c = typeof next === 'string' && next !== '' ? next : undefined;
          if (c) pending = fetchPage(c);
          for (let i = 0; i < raws.length; i++) {
            // A page from the watch cache holds every object of the kind: slimmed a page's worth at a time.
            if (i > 0 && i % PAGE_SIZE === 0) {
              await yieldLoop();
              signal?.throwIfAborted();
            }
            add(raws[i]);
          }
        }
        const cont = typeof next === 'string' && next !== '' ? next : undefined;
        if (cont && pending === undefined) pending = fetchPage(cont);
        onPage?.(items.length);
        if (typeof rv === 'string') resourceVersion = rv;
        if (!cont) return { items, resourceVersion };
      } finally {
        timers.clearTimeout(timer);
      }
    }
  } finally {
    drop(pending);
  }
}

/** #event's answer when the apiserver says the watch's resourceVersion is too old (410 Gone). */
const GONE = Symbol('gone');

/** Silent idle periods in a row (30 s each by default: 10 minutes) after which a stream relists. */
const QUIET_RELIST_REOPENS = 20;

/** A watch the apiserver ends this soon without sending anything is resumed only after this long. */
const MIN_WATCH_MS = 1000;

type StreamStatus = 'pending' | 'synced' | 'absent' | 'failing';

/** One list-then-watch: a kind, cluster-wide or in one namespace (ConfigMaps). */
interface Stream {
  readonly kind: KindName;
  readonly namespace?: string;
  status: StreamStatus;
  /** Listed at least once (or found absent): counts for the first sync. */
  listedOnce: boolean;
  lastAlive: number;
  /** Cancels the current list or watch. */
  abort?: AbortController;
  /** Incremented per relist, so late callbacks from a replaced list or watch are ignored. */
  generation: number;
  backoffMs: number;
  restartTimer?: Timer;
  /** The connected watch, if any: its liveness is then the idle timer's business, not the watchdog's. */
  openWatch?: IncomingMessage;
  /** Watches reopened in a row because nothing came (no event, no bookmark). */
  quietReopens: number;
}

export interface LiveSourceOptions {
  readonly kubeconfigPath?: string;
  /** The kubeconfig context to use instead of current-context. */
  readonly context?: string;
  readonly logger: Logger;
  /** Relist a stream silent for longer than this; also the period of the watchdog (default 60). */
  readonly watchdogSeconds?: number;
  /** The Istio root namespace, when not istio-system: its ConfigMaps are watched too. */
  readonly istioRootNamespace?: string;
  /** Reject start() if the first sync is not done after this long (default: wait, retrying). */
  readonly startTimeoutSeconds?: number;
  /** Use this apiserver instead of loading a kubeconfig (tests). */
  readonly api?: KubeApi;
  /** The clock and timers (default: Date.now and the global timers; tests pass fake ones). */
  readonly timers?: Timers;
  /**
   * How Pods are listed: 'protobuf' (the default; JSON after a page fails to decode) or 'json' from the
   * start (serve: MESHGUARD_POD_LIST_ENCODING=json; ADR 0008).
   */
  readonly podListEncoding?: 'json' | 'protobuf';
}

const MAX_BACKOFF_MS = 30_000;

function newStream(now: number, kind: KindName, namespace?: string): Stream {
  return {
    kind,
    ...(namespace !== undefined ? { namespace } : {}),
    status: 'pending',
    listedOnce: false,
    lastAlive: now,
    generation: 0,
    backoffMs: 0,
    quietReopens: 0,
  };
}

/** A StateSource over list-then-watch streams on a live cluster. */
export class LiveSource implements StateSource {
  readonly state = new MemoryState('live');
  readonly #opts: LiveSourceOptions;
  readonly #log: Logger;
  readonly #timers: Timers;
  readonly #watchdogMs: number;
  /** A watch silent this long is opened again (half the watchdog period, at most 30 s). */
  readonly #watchIdleMs: number;
  readonly #streams: Stream[] = [];
  /** Watch events applied, per kind: whether each moved the state to a new revision (see stats()). */
  readonly #events: Partial<Record<KindName, { changed: number; unchanged: number }>> = {};
  #api?: KubeApi;
  /** Pods are listed in protobuf until a page fails to decode (logged once); JSON from then on. */
  #podProtobuf: boolean;
  #watchdog?: Timer;
  #stopped = false;
  #started = false;
  /** When start() was called (the first sync's timeline, at debug level). */
  #startedAt = 0;
  #onSynced?: () => void;

  constructor(opts: LiveSourceOptions) {
    this.#opts = opts;
    this.#log = opts.logger;
    this.#timers = opts.timers ?? REAL_TIMERS;
    this.#watchdogMs = Math.max(1, opts.watchdogSeconds ?? 60) * 1000;
    this.#watchIdleMs = Math.min(30_000, this.#watchdogMs / 2);
    this.#podProtobuf = opts.podListEncoding !== 'json';
  }

  /** Starts every stream; resolves once each kind has listed once (missing CRDs count as listed). */
  async start(): Promise<void> {
    if (this.#started) throw new Error('LiveSource already started');
    this.#started = true;
    this.#startedAt = this.#timers.now();
    this.#api = this.#opts.api ?? loadKubeConfig(this.#opts.kubeconfigPath, this.#opts.context);
    const cmNamespaces = new Set<string>(CONFIGMAP_NAMESPACES);
    if (this.#opts.istioRootNamespace) cmNamespaces.add(this.#opts.istioRootNamespace);
    for (const kind of KIND_NAMES) {
      const namespaces = kind === 'ConfigMap' ? [...cmNamespaces] : [undefined];
      for (const namespace of namespaces) this.#streams.push(newStream(this.#timers.now(), kind, namespace));
    }
    const synced = new Promise<void>((resolve) => {
      this.#onSynced = resolve;
    });
    for (const s of this.#streams) this.#restart(s);
    this.#watchdog = this.#timers.setInterval(() => this.#tick(), this.#watchdogMs);
    this.#watchdog.unref();

    const timeoutS = this.#opts.startTimeoutSeconds;
    if (timeoutS === undefined) {
      await synced;
    } else {
      let timer: Timer | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = this.#timers.setTimeout(() => {
          const waiting = this.#streams.filter((s) => !s.listedOnce).map((s) => this.#name(s));
          reject(new Error(`cluster state not synced after ${timeoutS}s (waiting for: ${waiting.join(', ')})`));
        }, timeoutS * 1000);
      });
      try {
        await Promise.race([synced, timeout]);
      } finally {
        if (timer) this.#timers.clearTimeout(timer);
      }
    }
    if (this.#stopped) throw new Error('LiveSource stopped before the first sync');
    this.state.setLabel('live');
    this.#log.info({ objects: this.stats().objects, missingKinds: this.stats().missingKinds }, 'cluster state synced');
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#watchdog) this.#timers.clearInterval(this.#watchdog);
    for (const s of this.#streams) {
      if (s.restartTimer) this.#timers.clearTimeout(s.restartTimer);
      s.generation++;
      s.abort?.abort();
      delete s.abort;
    }
    if (!this.#opts.api) this.#api?.close();
    this.#onSynced?.(); // a start() still waiting ends (and rejects, as stopped)
  }

  synced(): boolean {
    if (this.#stopped || this.#streams.length === 0) return false;
    return this.#streams.every((s) => s.listedOnce && s.status !== 'failing');
  }

  stats(): StateStats {
    const objects: Partial<Record<KindName, number>> = {};
    for (const kind of KIND_NAMES) objects[kind] = this.state.count(kind);
    const now = this.#timers.now();
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
      watchEvents: structuredClone(this.#events),
      missingKinds: missing,
      synced: this.synced(),
    };
  }

  #countEvent(kind: KindName, changed: boolean): void {
    let c = this.#events[kind];
    if (c === undefined) this.#events[kind] = c = { changed: 0, unchanged: 0 };
    if (changed) c.changed++;
    else c.unchanged++;
  }

  #name(s: Stream): string {
    return s.namespace !== undefined ? `${s.kind}(${s.namespace})` : s.kind;
  }

  /** Relist the stream (dropping its current list or watch), then watch from the list's resourceVersion. */
  #restart(s: Stream): void {
    if (this.#stopped) return;
    if (s.restartTimer) {
      this.#timers.clearTimeout(s.restartTimer);
      delete s.restartTimer;
    }
    s.abort?.abort();
    const abort = new AbortController();
    s.abort = abort;
    delete s.openWatch;
    s.quietReopens = 0;
    const gen = ++s.generation;
    s.lastAlive = this.#timers.now(); // the new list gets a full watchdog period
    void this.#listThenWatch(s, gen, abort.signal);
  }

  async #listThenWatch(s: Stream, gen: number, signal: AbortSignal): Promise<void> {
    const live = () => gen === s.generation && !this.#stopped;
    let result;
    try {
      // Each page counts as activity, so the watchdog does not cut a long paginated list short.
      result = await listKind(this.#api!, s.kind, s.namespace, () => {
        if (live()) s.lastAlive = this.#timers.now();
      }, signal, {
        encoding: this.#podProtobuf ? 'protobuf' : 'json',
        // The first list from the apiserver's watch cache (ADR 0009): ready sooner, and the watch from
        // its resourceVersion brings the state up to date. Relists read the latest version, as before.
        fromCache: !s.listedOnce,
        timers: this.#timers,
        onProtobufFailed: (err) => {
          if (!this.#podProtobuf) return;
          this.#podProtobuf = false;
          this.#log.warn({ kind: this.#name(s), err: errText(err) }, 'a protobuf page of the list could not be read; listing as JSON from now on');
        },
      });
    } catch (err) {
      if (live()) {
        this.#listFailed(s, err);
        this.#streamError(s, err);
      }
      return;
    }
    if (!live()) return;
    const chunked = s.namespace === undefined && result.items.length > FIRST_FILL_CHUNK;
    if (chunked && !s.listedOnce && !(await this.#fillInChunks(s, result.items, live))) return;
    if (chunked && s.listedOnce && !(await this.#relistAside(s, result.items, live))) return;
    this.#listed(s, result.items, chunked);
    this.#watch(s, gen, signal, result.resourceVersion, true);
  }

  /**
   * Puts a first list into the state FIRST_FILL_CHUNK objects per turn of the event loop (before the
   * source is synced, so no request is judged on the part-filled kind: readiness is 503 until then).
   * False when the stream was restarted or stopped meanwhile: its next list replaces the kind.
   */
  async #fillInChunks(s: Stream, items: readonly KubeObject[], live: () => boolean): Promise<boolean> {
    this.state.replaceAll(s.kind, items.slice(0, FIRST_FILL_CHUNK));
    for (let i = FIRST_FILL_CHUNK; i < items.length; i += FIRST_FILL_CHUNK) {
      await new Promise<void>((r) => setImmediate(r));
      if (!live()) return false;
      for (let j = i; j < Math.min(items.length, i + FIRST_FILL_CHUNK); j++) this.state.upsert(s.kind, items[j]!);
    }
    return true;
  }

  /**
   * A relist after the first one (a 410, a failed watch, the watchdog): requests are judged against the
   * kind meanwhile, so the new list is built aside, FIRST_FILL_CHUNK objects per turn of the event loop,
   * and swapped in at once when complete. Until then the old objects are served (the old watch is
   * already ended, so they do not move); a review sees the old kind or the new one, never a mix.
   * False when the stream was restarted or stopped meanwhile: the aside copy is dropped.
   */
  async #relistAside(s: Stream, items: readonly KubeObject[], live: () => boolean): Promise<boolean> {
    const aside = new MemoryState('relist');
    for (let i = 0; i < items.length; i += FIRST_FILL_CHUNK) {
      if (i > 0) {
        await new Promise<void>((r) => setImmediate(r));
        if (!live()) return false;
      }
      for (let j = i; j < Math.min(items.length, i + FIRST_FILL_CHUNK); j++) aside.upsert(s.kind, items[j]!);
    }
    this.state.adoptKind(s.kind, aside);
    return true;
  }

  /**
   * Watch from `resourceVersion`. Events change the state as they come; when the apiserver ends the watch
   * (its timeoutSeconds) it is resumed from the last resourceVersion seen, and when that is too old
   * (410 Gone, as an HTTP status or an ERROR event) the stream relists.
   */
  #watch(s: Stream, gen: number, signal: AbortSignal, resourceVersion: string, afterList = false): void {
    const live = () => gen === s.generation && !this.#stopped;
    // Spread the apiserver's ends of the watches over 5-10 minutes, as client-go does.
    const timeoutSeconds = 300 + Math.floor(Math.random() * 300);
    const query = new URLSearchParams({
      watch: 'true', allowWatchBookmarks: 'true', resourceVersion, timeoutSeconds: String(timeoutSeconds),
    });
    const opened = this.#timers.now();
    let rv = resourceVersion;
    let events = 0;
    const fail = (err: unknown): void => {
      if (live()) this.#streamError(s, err);
    };
    const relist = (): void => {
      if (!live()) return;
      // Expired straight after a list, before any event: relisting at once could only spin. Back off.
      if (afterList && events === 0) {
        this.#streamError(s, new ApiStatusError(410, 'watch expired right after its list'));
        return;
      }
      this.#log.info({ kind: this.#name(s) }, 'watch resourceVersion expired; relisting');
      this.#restart(s);
    };
    this.#api!.get(`${collectionPath(s.kind, s.namespace)}?${query.toString()}`, { signal }).then((res: IncomingMessage) => {
      if (!live()) {
        res.destroy();
        return;
      }
      const code = res.statusCode ?? 0;
      if (code === 410) {
        res.resume();
        relist();
        return;
      }
      if (code !== 200) {
        readBody(res).then((text) => fail(new ApiStatusError(code, statusMessage(code, text))), fail);
        return;
      }
      s.lastAlive = this.#timers.now(); // connected
      s.openWatch = res;
      res.setEncoding('utf8');
      let pending = '';
      let done = false;
      // A quiet watch gets nothing from kube-apiserver until its timeout: measured on v1.34.4, no
      // bookmark reached a watch of a kind nobody wrote within 150 s, even while other kinds were
      // written every 5 s. A connection that died without a FIN looks the same. So a watch silent for
      // the idle period is opened again from the same resourceVersion (the new watch replays what the
      // old one missed), and a stream whose watches stay silent for QUIET_RELIST_REOPENS periods in a
      // row relists once, at info level, to confirm its contents (a proxy that accepts watches but
      // passes nothing on would otherwise go unnoticed).
      const idle = this.#timers.setTimeout(() => {
        if (done || !live()) return;
        done = true;
        res.destroy();
        s.backoffMs = 0; // it stayed connected a whole idle period
        if (++s.quietReopens >= QUIET_RELIST_REOPENS) {
          this.#log.info({ kind: this.#name(s), quietSeconds: Math.round((s.quietReopens * this.#watchIdleMs) / 1000) }, 'no watch event for a while; relisting to confirm');
          this.#restart(s);
          return;
        }
        this.#watch(s, gen, signal, rv);
      }, this.#watchIdleMs);
      idle.unref();
      res.on('close', () => {
        this.#timers.clearTimeout(idle);
        if (s.openWatch === res) delete s.openWatch;
      });
      res.on('data', (chunk: string) => {
        if (done || !live()) return;
        idle.refresh();
        pending += chunk;
        let start = 0;
        for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n', start)) {
          const line = pending.slice(start, nl);
          start = nl + 1;
          if (line.trim() === '') continue;
          const r = this.#event(s, line);
          if (typeof r === 'string') {
            if (r !== '') rv = r;
            events++;
            // A working watch: the next failure starts the backoff from its shortest step again.
            s.backoffMs = 0;
            s.quietReopens = 0;
            continue;
          }
          done = true;
          res.destroy();
          if (r === GONE) relist();
          else fail(r);
          return;
        }
        pending = pending.slice(start);
      });
      res.on('end', () => {
        if (done || !live()) return;
        done = true;
        // The apiserver's timeout: resume where it stopped. A watch ended at once with nothing in it (an
        // apiserver shutting down) is resumed after a pause, so that it cannot spin.
        if (events === 0 && this.#timers.now() - opened < MIN_WATCH_MS) {
          this.#timers.setTimeout(() => {
            if (live()) this.#watch(s, gen, signal, rv);
          }, MIN_WATCH_MS).unref();
        } else {
          this.#watch(s, gen, signal, rv);
        }
      });
      res.on('error', (err) => {
        if (done) return;
        done = true;
        fail(err);
      });
    }, fail);
  }

  /**
   * Apply one watch event. Returns the resourceVersion it carries, GONE when the apiserver says the
   * watch's resourceVersion is too old, or an Error.
   */
  #event(s: Stream, line: string): string | typeof GONE | Error {
    let ev: { type?: unknown; object?: unknown };
    try {
      ev = JSON.parse(line) as typeof ev;
    } catch {
      return new Error(`watch sent a line that is not JSON (${line.length} bytes)`);
    }
    const raw = (ev.object ?? {}) as { metadata?: { resourceVersion?: unknown }; code?: unknown; message?: unknown };
    const rv = typeof raw.metadata?.resourceVersion === 'string' ? raw.metadata.resourceVersion : undefined;
    s.lastAlive = this.#timers.now();
    switch (ev.type) {
      case 'ADDED':
      case 'MODIFIED': {
        const obj = transformObject(s.kind, raw);
        const revision = this.state.revision;
        if (obj.metadata.name && (s.namespace === undefined || obj.metadata.namespace === s.namespace)) this.state.upsert(s.kind, obj);
        this.#countEvent(s.kind, this.state.revision !== revision);
        break;
      }
      case 'DELETED': {
        const obj = transformObject(s.kind, raw);
        const revision = this.state.revision;
        if (obj.metadata.name) this.state.remove(s.kind, obj.metadata.namespace, obj.metadata.name);
        this.#countEvent(s.kind, this.state.revision !== revision);
        break;
      }
      case 'BOOKMARK':
        break;
      case 'ERROR': {
        const code = typeof raw.code === 'number' ? raw.code : 0;
        if (code === 410) return GONE;
        return new ApiStatusError(code, `watch error: ${typeof raw.message === 'string' ? raw.message : 'no message'}`.slice(0, 300));
      }
      default:
        return new Error(`watch sent an event of unknown type ${JSON.stringify(ev.type)}`.slice(0, 300));
    }
    return rv ?? '';
  }

  /** A stream's list arrived (`filled`: its objects are in the state already, see #fillInChunks and #relistAside). */
  #listed(s: Stream, items: KubeObject[], filled = false): void {
    if (!filled) {
      if (s.namespace !== undefined) this.state.replaceNamespace(s.kind, s.namespace, items);
      else this.state.replaceAll(s.kind, items);
    }
    const was = s.status;
    // The first sync's timeline (which list ends when): at debug level, one line per stream.
    if (!s.listedOnce) this.#log.debug({ kind: this.#name(s), objects: items.length, sinceStartMs: this.#timers.now() - this.#startedAt }, 'kind listed');
    s.status = 'synced';
    s.lastAlive = this.#timers.now();
    // The backoff is not reset here but once the watch delivers: a watch refused after every good list
    // (RBAC without watch, 429s) must not relist every second.
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
      const stream = newStream(this.#timers.now(), 'ConfigMap', ns);
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
      s.lastAlive = this.#timers.now();
      this.#markListed(s);
      return;
    }
    s.status = 'failing';
    this.#log.warn({ kind: this.#name(s), statusCode: code, err: errText(err) }, 'list failed; retrying');
  }

  #streamError(s: Stream, err: unknown): void {
    // An absent kind is re-checked by the watchdog, not by backoff.
    if (s.status === 'absent') return;
    if (s.restartTimer) return;
    s.backoffMs = s.backoffMs > 0 ? Math.min(s.backoffMs * 2, MAX_BACKOFF_MS) : 1000;
    const delay = Math.round(s.backoffMs * (0.8 + Math.random() * 0.4));
    if (s.status !== 'failing') {
      this.#log.warn({ kind: this.#name(s), statusCode: statusCodeOf(err), err: errText(err), retryMs: delay }, 'watch failed; relisting after backoff');
    }
    s.restartTimer = this.#timers.setTimeout(() => {
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
    const now = this.#timers.now();
    for (const s of this.#streams) {
      if (s.restartTimer) continue; // a restart is already scheduled
      if (s.openWatch) continue; // an open watch is watched by its idle timer
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
