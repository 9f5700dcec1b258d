// An in-memory KubeApi for the report writer and the lease: objects by path, resourceVersions that
// move on every write (a PUT with a stale one is a 409, as the API server answers), server-side
// apply as create-or-replace, list with a label selector `key=value`, and a switch for a missing API.

import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';

import type { KubeApi, KubeResponse } from '../../src/state/kube-api.ts';

type Obj = { metadata: { name: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string> } } & Record<string, unknown>;

/**
 * Whether the object at `objectPath` is listed by `collection`: directly below it, or, for a
 * cluster-wide list of a namespaced resource, below any namespace of the same group and plural.
 */
function inCollection(objectPath: string, collection: string): boolean {
  if (objectPath.startsWith(`${collection}/`) && !objectPath.slice(collection.length + 1).includes('/')) return true;
  if (collection.includes('/namespaces/')) return false;
  const plural = collection.slice(collection.lastIndexOf('/') + 1);
  const prefix = collection.slice(0, collection.lastIndexOf('/'));
  const m = /^\/namespaces\/[^/]+\/([^/]+)\/[^/]+$/.exec(objectPath.slice(prefix.length));
  return objectPath.startsWith(`${prefix}/namespaces/`) && m?.[1] === plural;
}

export class FakeKube implements KubeApi {
  readonly server = 'https://fake';
  readonly source = 'fake';
  readonly objects = new Map<string, Obj>();
  readonly calls: string[] = [];
  /** Path prefixes answered 404 (an API that is not installed). */
  readonly missing = new Set<string>();
  #rv = 1;

  #respond(status: number, body: unknown): IncomingMessage {
    const r = Readable.from([JSON.stringify(body)]) as unknown as IncomingMessage;
    (r as { statusCode: number }).statusCode = status;
    return r;
  }

  #isMissing(path: string): boolean {
    return [...this.missing].some((p) => path.startsWith(p));
  }

  async get(pathAndQuery: string): Promise<IncomingMessage> {
    this.calls.push(`GET ${pathAndQuery}`);
    const [path, query] = pathAndQuery.split('?') as [string, string | undefined];
    if (this.#isMissing(path)) return this.#respond(404, { kind: 'Status', code: 404 });
    const hit = this.objects.get(path);
    if (hit) return this.#respond(200, hit);
    // A list: every object below the path (cluster-wide lists match every namespace).
    const selector = new URLSearchParams(query ?? '').get('labelSelector');
    const [k, v] = selector ? selector.split('=') : [];
    const items = [...this.objects.entries()].filter(([p]) => inCollection(p, path)).map(([, o]) => o).filter((o) => !k || o.metadata.labels?.[k] === v);
    if (items.length === 0 && !this.#knownCollection(path)) return this.#respond(404, { kind: 'Status', code: 404 });
    return this.#respond(200, { items });
  }

  #knownCollection(path: string): boolean {
    return /\/(reports|clusterreports|leases)$/.test(path);
  }

  async send(method: 'POST' | 'PUT' | 'PATCH' | 'DELETE', pathAndQuery: string, body?: unknown): Promise<KubeResponse> {
    this.calls.push(`${method} ${pathAndQuery}`);
    const path = pathAndQuery.split('?')[0]!;
    if (this.#isMissing(path)) return { status: 404, body: '{}' };
    const obj = body as Obj | undefined;
    switch (method) {
      case 'POST': {
        const at = `${path}/${obj!.metadata.name}`;
        if (this.objects.has(at)) return { status: 409, body: 'AlreadyExists' };
        this.objects.set(at, { ...obj!, metadata: { ...obj!.metadata, resourceVersion: String(++this.#rv) } });
        return { status: 201, body: '{}' };
      }
      case 'PUT': {
        const cur = this.objects.get(path);
        if (!cur) return { status: 404, body: 'NotFound' };
        if (obj!.metadata.resourceVersion !== cur.metadata.resourceVersion) return { status: 409, body: 'Conflict' };
        this.objects.set(path, { ...obj!, metadata: { ...obj!.metadata, resourceVersion: String(++this.#rv) } });
        return { status: 200, body: '{}' };
      }
      case 'PATCH': {
        const existed = this.objects.has(path);
        this.objects.set(path, { ...obj!, metadata: { ...obj!.metadata, resourceVersion: String(++this.#rv) } });
        return { status: existed ? 200 : 201, body: '{}' };
      }
      case 'DELETE':
        return this.objects.delete(path) ? { status: 200, body: '{}' } : { status: 404, body: 'NotFound' };
    }
  }

  close(): void {}
}
