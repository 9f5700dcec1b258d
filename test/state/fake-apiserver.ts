// A tiny in-process stand-in for kube-apiserver list/watch (loopback HTTP), enough to exercise the
// informer plumbing of LiveSource: paginated lists, watches replaying from a resourceVersion, 404 for
// kinds that are not served, and knobs to break things (failing lists, dropped or hanging watches).
// The clients it hands out (api()) also count what the client side saw, so a test can wait for a step
// to be over instead of for some time.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { loadKubeApi, type KubeApi } from '../../src/state/kube-api.ts';

const PROTOBUF = 'application/vnd.kubernetes.protobuf';

/** Counts per collection path (the request's path, e.g. /api/v1/pods). */
export class Counts {
  readonly #n = new Map<string, number>();
  add(path: string): void {
    this.#n.set(path, (this.#n.get(path) ?? 0) + 1);
  }
  /** For one path, or summed over all. */
  of(path?: string): number {
    if (path !== undefined) return this.#n.get(path) ?? 0;
    let sum = 0;
    for (const n of this.#n.values()) sum += n;
    return sum;
  }
}

/** What the clients from api() did and saw, counted as it happens on the client side. */
export interface ClientView {
  /** List requests made (every page), counted when the client makes them. */
  readonly lists: Counts;
  /** Watch requests made, counted when the client makes them. */
  readonly watches: Counts;
  /** Watch requests answered (the response headers reached the client). */
  readonly answered: Counts;
  /** Watch responses closed on the client side (ended, cut or destroyed), after its own handlers ran. */
  readonly closed: Counts;
}

type Obj = { apiVersion?: string; kind?: string; metadata: { name: string; namespace?: string; resourceVersion?: string; [key: string]: unknown } } & Record<string, unknown>;

interface Event {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  collections: string[];
  object: Obj;
}

export class FakeApiserver {
  #server: Server;
  #rv = 100;
  /** collection path (cluster-wide) -> key -> object */
  readonly #store = new Map<string, Map<string, Obj>>();
  readonly #served = new Set<string>();
  readonly #events: Event[] = [];
  readonly #watchers = new Set<{ paths: string[]; res: ServerResponse; hang: boolean }>();
  /** Requests seen, for assertions ("GET /api/v1/pods?limit=500"). */
  readonly requests: string[] = [];
  /** The Accept header of each request in `requests` (same index). */
  readonly accepts: string[] = [];
  /**
   * Answers list pages in protobuf (the body this returns, Content-Type application/vnd.kubernetes.protobuf)
   * when the request accepts it, or always with `protobufAlways`; undefined from it answers JSON.
   */
  protobufPage?: (items: readonly Obj[], meta: { resourceVersion: string; continue?: string }, path: string) => Buffer | undefined;
  protobufAlways = false;
  /** Collections whose lists answer this status in protobuf (a Status body) when protobuf is accepted. */
  readonly protobufStatus = new Map<string, { code: number; body: Buffer }>();
  /** Collections whose lists answer 500 while set. */
  readonly failLists = new Set<string>();
  /** Collections whose new watches are accepted but never send anything. */
  readonly hangWatches = new Set<string>();
  /** Collections whose new watches never get an answer at all (not even headers). */
  readonly stallWatches = new Set<string>();
  /** Collections whose watches are refused with 403 (RBAC granting list but not watch). */
  readonly forbidWatches = new Set<string>();
  /** Collections whose watches are answered 410 Gone as an HTTP status (resourceVersion too old). */
  readonly goneWatches = new Set<string>();
  /** Collections whose watches are answered 200 and ended at once, with nothing in them. */
  readonly emptyWatches = new Set<string>();
  /** Collections whose lists are held (not answered) until releaseLists(). */
  readonly holdLists = new Set<string>();
  readonly #held: { path: string; answer: () => void }[] = [];
  readonly client: ClientView = { lists: new Counts(), watches: new Counts(), answered: new Counts(), closed: new Counts() };
  pageSize = 2;
  /**
   * A list with resourceVersion=0 and no continue token is answered whole, `limit` ignored, as
   * kube-apiserver's watch cache answers it (off: every list is paged, as from etcd).
   */
  cacheAnswersWhole = false;
  url = '';

  constructor() {
    this.#server = createServer((req, res) => this.#handle(req, res));
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const w of this.#watchers) w.res.destroy();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  /** A kubeconfig for this server (YAML), with the given bearer token. */
  kubeconfigYaml(token = 'secret-token'): string {
    return [
      'apiVersion: v1', 'kind: Config', 'current-context: fake',
      'clusters:', '- name: fake', '  cluster:', `    server: ${this.url}`,
      'users:', '- name: admin', '  user:', `    token: ${token}`,
      'contexts:', '- name: fake', '  context:', '    cluster: fake', '    user: admin', '',
    ].join('\n');
  }

  /**
   * The server as meshguard's client sees it, loaded from a kubeconfig file like a user's. Its requests
   * and what it receives are counted in `client`.
   */
  api(token = 'secret-token'): KubeApi {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fake-apiserver-'));
    let api: KubeApi;
    try {
      const file = path.join(dir, 'kubeconfig');
      writeFileSync(file, this.kubeconfigYaml(token));
      api = loadKubeApi(file);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const client = this.client;
    return {
      server: api.server,
      source: api.source,
      close: () => api.close(),
      send: (method, pathAndQuery, body, contentType) => api.send(method, pathAndQuery, body, contentType),
      get(pathAndQuery, opts) {
        const url = new URL(pathAndQuery, 'http://x');
        const watch = url.searchParams.get('watch') === 'true';
        (watch ? client.watches : client.lists).add(url.pathname);
        const answer = api.get(pathAndQuery, opts);
        if (watch) {
          // Counted as the headers arrive (just before the caller's own handler runs, in the same turn)
          // and when the response closes: 'close' comes after 'end' or 'error', where the caller acts.
          answer.then(
            (res) => {
              client.answered.add(url.pathname);
              res.once('close', () => client.closed.add(url.pathname));
            },
            () => undefined,
          );
        }
        return answer;
      },
    };
  }

  /** Serve a collection (like installing a CRD). `path` is the cluster-wide collection path. */
  serve(path: string): void {
    this.#served.add(path);
    if (!this.#store.has(path)) this.#store.set(path, new Map());
  }
  unserve(path: string): void {
    this.#served.delete(path);
  }

  put(path: string, obj: Obj): void {
    const m = this.#store.get(path)!;
    const key = `${obj.metadata.namespace ?? ''}/${obj.metadata.name}`;
    const type = m.has(key) ? 'MODIFIED' : 'ADDED';
    const stored = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.#rv) } };
    m.set(key, stored);
    this.#emit({ rv: this.#rv, type, collections: this.#pathsFor(path, stored), object: stored });
  }

  delete(path: string, namespace: string | undefined, name: string): void {
    const m = this.#store.get(path)!;
    const key = `${namespace ?? ''}/${name}`;
    const old = m.get(key);
    if (!old) return;
    m.delete(key);
    const gone = { ...old, metadata: { ...old.metadata, resourceVersion: String(++this.#rv) } };
    this.#emit({ rv: this.#rv, type: 'DELETED', collections: this.#pathsFor(path, gone), object: gone });
  }

  /** Change an object without telling any watcher (a lost event, as a silently dead watch would). */
  putSilently(path: string, obj: Obj): void {
    const key = `${obj.metadata.namespace ?? ''}/${obj.metadata.name}`;
    this.#store.get(path)!.set(key, { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.#rv) } });
  }

  /** Cut every open watch connection (as an apiserver restart does), or those of one collection. */
  dropWatches(path?: string): void {
    for (const w of this.#watchersOf(path)) {
      w.res.destroy();
      this.#watchers.delete(w);
    }
  }

  /**
   * End every open watch cleanly, as the apiserver does when a watch's timeoutSeconds is up, or those of
   * one collection.
   */
  endWatches(path?: string): void {
    for (const w of this.#watchersOf(path)) {
      w.res.end();
      this.#watchers.delete(w);
    }
  }

  /** Lists held by holdLists, not answered yet. */
  heldLists(path?: string): number {
    return this.#held.filter((h) => path === undefined || h.path === path).length;
  }

  /** Answers the held lists, in the order they came (a client that gave up on one no longer reads it). */
  releaseLists(): void {
    for (const h of this.#held.splice(0)) h.answer();
  }

  #watchersOf(path: string | undefined): { paths: string[]; res: ServerResponse; hang: boolean }[] {
    return [...this.#watchers].filter((w) => path === undefined || w.paths.includes(path));
  }

  /** Tell every open watch that its resourceVersion is too old (an ERROR event, 410 Gone), then end it. */
  expireWatches(): void {
    for (const w of this.#watchers) {
      w.res.end(JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'too old resource version', reason: 'Expired', code: 410 } }) + '\n');
    }
    this.#watchers.clear();
  }

  /**
   * Send every open watch of `path` a BOOKMARK at the current resourceVersion (and record it, so a
   * later resume from it replays only what came after).
   */
  bookmark(path: string): string {
    const rv = String(++this.#rv);
    for (const w of this.#watchers) {
      if (!w.hang && w.paths.includes(path)) {
        w.res.write(JSON.stringify({ type: 'BOOKMARK', object: { kind: 'Pod', apiVersion: 'v1', metadata: { resourceVersion: rv } } }) + '\n');
      }
    }
    return rv;
  }

  openWatches(path?: string): number {
    let n = 0;
    for (const w of this.#watchers) if (!path || w.paths.includes(path)) n++;
    return n;
  }

  /** The cluster-wide path plus the namespaced path an object is visible under. */
  #pathsFor(path: string, obj: Obj): string[] {
    const ns = obj.metadata.namespace;
    if (!ns) return [path];
    const i = path.lastIndexOf('/');
    return [path, `${path.slice(0, i)}/namespaces/${ns}${path.slice(i)}`];
  }

  #emit(e: Event): void {
    this.#events.push(e);
    for (const w of this.#watchers) {
      if (!w.hang && e.collections.some((c) => w.paths.includes(c))) {
        w.res.write(JSON.stringify({ type: e.type, object: e.object }) + '\n');
      }
    }
  }

  /** Map a request path to its cluster-wide collection and optional namespace. */
  #resolve(path: string): { base: string; namespace?: string } | undefined {
    const m = /^(\/apis?\/(?:[^/]+\/)?[^/]+)\/namespaces\/([^/]+)\/([^/]+)$/.exec(path);
    if (m && m[3] !== undefined && m[2] !== undefined && m[1] !== undefined) {
      const base = `${m[1]}/${m[3]}`;
      if (this.#served.has(base)) return { base, namespace: decodeURIComponent(m[2]) };
    }
    if (this.#served.has(path)) return { base: path };
    return undefined;
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    this.requests.push(`${req.method} ${url.pathname}${url.search}`);
    this.accepts.push(req.headers.accept ?? '');
    if (req.headers.authorization !== 'Bearer secret-token') return this.#status(res, 401, 'Unauthorized');
    const target = this.#resolve(url.pathname);
    if (!target) return this.#status(res, 404, 'the server could not find the requested resource');
    const items = [...this.#store.get(target.base)!.values()].filter(
      (o) => target.namespace === undefined || o.metadata.namespace === target.namespace,
    );
    if (url.searchParams.get('watch') === 'true') {
      if (this.forbidWatches.has(target.base)) return this.#status(res, 403, 'watch is forbidden');
      if (this.goneWatches.has(target.base)) return this.#status(res, 410, 'too old resource version');
      if (this.emptyWatches.has(target.base)) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end();
        return;
      }
      if (this.stallWatches.has(target.base)) {
        const w = { paths: [url.pathname], res, hang: true };
        this.#watchers.add(w);
        res.on('close', () => this.#watchers.delete(w));
        return;
      }
      const from = Number(url.searchParams.get('resourceVersion') ?? '0');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
      const w = { paths: [url.pathname], res, hang: this.hangWatches.has(target.base) };
      this.#watchers.add(w);
      res.on('close', () => this.#watchers.delete(w));
      if (!w.hang) {
        for (const e of this.#events) {
          if (e.rv > from && e.collections.includes(url.pathname)) res.write(JSON.stringify({ type: e.type, object: e.object }) + '\n');
        }
      }
      return;
    }
    if (this.failLists.has(target.base)) return this.#status(res, 500, 'etcd is sad');
    const protoStatus = this.protobufStatus.get(target.base);
    if (protoStatus && (req.headers.accept ?? '').includes(PROTOBUF)) {
      res.writeHead(protoStatus.code, { 'content-type': PROTOBUF });
      res.end(protoStatus.body);
      return;
    }
    if (this.holdLists.has(target.base)) {
      this.#held.push({ path: target.base, answer: () => !res.destroyed && this.#list(url, items, res, req.headers.accept ?? '') });
      return;
    }
    this.#list(url, items, res, req.headers.accept ?? '');
  }

  #list(url: URL, items: Obj[], res: ServerResponse, accept: string): void {
    const start = Number(url.searchParams.get('continue') ?? '0');
    const limit = Number(url.searchParams.get('limit') ?? '0') || items.length;
    const whole = this.cacheAnswersWhole && start === 0 && url.searchParams.get('resourceVersion') === '0';
    const size = whole ? items.length : Math.min(limit, this.pageSize);
    const page = items.slice(start, start + size).map((o) => {
      const { apiVersion: _a, kind: _k, ...rest } = o; // list items carry no apiVersion/kind
      return rest;
    });
    const next = start + size < items.length ? String(start + size) : undefined;
    if (this.protobufPage && (this.protobufAlways || accept.includes(PROTOBUF))) {
      const body = this.protobufPage(page as Obj[], { resourceVersion: String(this.#rv), ...(next ? { continue: next } : {}) }, url.pathname);
      if (body !== undefined) {
        res.writeHead(200, { 'content-type': PROTOBUF });
        res.end(body);
        return;
      }
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'List', apiVersion: 'v1', metadata: { resourceVersion: String(this.#rv), ...(next ? { continue: next } : {}) }, items: page }));
  }

  #status(res: ServerResponse, code: number, message: string): void {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message, code }));
  }
}
