// The cluster as it would be after one mutation (an admitted request's object put or deleted): a thin
// view over another state.
// Nothing is copied: every read that does not touch the changed (kind, namespace) goes straight to the
// base, and the few derived lists that do are computed on first use and cached. If the base changes
// meanwhile (a live cache receiving events), the caches are dropped and the overlay takes a new revision.

import type { Mutation } from '../core/change.ts';
import { KINDS, type KindName } from '../core/kinds.ts';
import type { ClusterState, KindObjects, KubeObject, Pod } from '../core/objects.ts';
import { markEphemeral } from './request-scope.ts';

// Overlay revisions count down from -1 so they never collide with a MemoryState's (which count up from
// 0), nor with each other.
let nextRevision = -1;

const ALL = '\u0000all';

class OverlayState implements ClusterState {
  #revision: number;
  /** The base revision the caches were computed from. */
  #baseRevision: number;
  readonly #base: ClusterState;
  readonly #kind: KindName;
  /** Bucket of the changed object: its namespace, or "" for cluster-scoped kinds. */
  readonly #ns: string;
  readonly #name: string;
  /** The object after the change; undefined for a DELETE. */
  readonly #obj: KubeObject | undefined;
  readonly #what: string;
  readonly #lists = new Map<string, readonly KubeObject[]>();
  #namespaces?: readonly string[];
  #token?: object;
  /** The base's content token of the changed kind when #token was made. */
  #tokenOf?: object;

  constructor(base: ClusterState, kind: KindName, ns: string, name: string, obj: KubeObject | undefined, what: string) {
    this.#base = base;
    this.#kind = kind;
    this.#ns = ns;
    this.#name = name;
    this.#obj = obj;
    this.#what = what;
    this.#revision = nextRevision--;
    this.#baseRevision = base.revision;
  }

  /** What this overlay changes over which base (see overlayDelta). */
  get delta(): OverlayDelta {
    return { base: this.#base, kind: this.#kind, namespace: this.#ns, name: this.#name };
  }

  get revision(): number {
    this.#fresh();
    return this.#revision;
  }

  /** Drop the caches if the base changed since they were computed. */
  #fresh(): void {
    const r = this.#base.revision;
    if (r === this.#baseRevision) return;
    this.#baseRevision = r;
    this.#revision = nextRevision--;
    this.#lists.clear();
    this.#namespaces = undefined;
  }

  contentToken(kind: KindName): object {
    if (kind !== this.#kind) return this.#base.contentToken(kind);
    this.#fresh();
    // The changed kind's content is the base's plus this change: the same while the base's is the same.
    // So a base event of another kind (a pod's, most of a live cluster's) keeps the token, and what is
    // kept per it (memo.ts keptAcrossPodEvents: a sliced review's prepared answers) stays.
    const of = this.#base.contentToken(kind);
    if (!this.#token || this.#tokenOf !== of) {
      this.#token = {};
      this.#tokenOf = of;
      markEphemeral(this.#token); // this request's own: caches keyed by it are dropped with the request
    }
    return this.#token;
  }

  describe(): string {
    return `overlay(${this.#base.describe()} + ${this.#what})`;
  }

  #isTarget(o: KubeObject): boolean {
    return o.metadata.name === this.#name && (!KINDS[this.#kind].namespaced || (o.metadata.namespace ?? '') === this.#ns);
  }

  get<K extends KindName>(kind: K, namespace: string | undefined, name: string): KindObjects[K] | undefined {
    if (kind === this.#kind && name === this.#name && (!KINDS[kind].namespaced || (namespace ?? '') === this.#ns)) {
      return this.#obj as KindObjects[K] | undefined;
    }
    return this.#base.get(kind, namespace, name);
  }

  list<K extends KindName>(kind: K, namespace?: string): readonly KindObjects[K][] {
    if (kind !== this.#kind) return this.#base.list(kind, namespace);
    const scoped = namespace !== undefined && KINDS[kind].namespaced;
    if (scoped && namespace !== this.#ns) return this.#base.list(kind, namespace);
    this.#fresh();
    const key = scoped ? namespace : ALL;
    let out = this.#lists.get(key);
    if (!out) {
      const base = this.#base.list(kind, scoped ? namespace : undefined);
      out = this.#patch(base);
      // A DELETE of an object the base does not have leaves its list as it is: that list is the base's
      // own, and caches keyed by it must keep their entries beyond this request.
      if (out !== base) markEphemeral(out);
      this.#lists.set(key, out);
    }
    return out as readonly KindObjects[K][];
  }

  /** `objs` with the changed object replaced, removed or appended. */
  #patch(objs: readonly KubeObject[]): readonly KubeObject[] {
    const i = objs.findIndex((o) => this.#isTarget(o));
    if (i < 0) return this.#obj ? [...objs, this.#obj] : objs;
    const out = objs.slice();
    if (this.#obj) out[i] = this.#obj;
    else out.splice(i, 1);
    return out;
  }

  namespacesWith(kind: KindName): readonly string[] {
    if (kind !== this.#kind || !KINDS[kind].namespaced) return this.#base.namespacesWith(kind);
    this.#fresh();
    if (!this.#namespaces) {
      const base = this.#base.namespacesWith(kind);
      const has = base.includes(this.#ns);
      if (this.#obj) this.#namespaces = has ? base : [...base, this.#ns];
      else if (has && this.list(kind, this.#ns).length === 0) this.#namespaces = base.filter((n) => n !== this.#ns);
      else this.#namespaces = base;
      if (this.#namespaces !== base) markEphemeral(this.#namespaces);
    }
    return this.#namespaces;
  }

  podsWithLabel(namespace: string | undefined, key: string, value: string): readonly Pod[] {
    const base = this.#base.podsWithLabel(namespace, key, value);
    if (this.#kind !== 'Pod' || (namespace !== undefined && namespace !== this.#ns)) return base;
    const out = base.filter((p) => !this.#isTarget(p));
    const p = this.#obj as Pod | undefined;
    if (p && p.metadata.labels?.[key] === value) out.push(p);
    markEphemeral(out);
    return out;
  }
}

/** An overlay's base state and the one object (kind, namespace or "" when cluster-scoped, name) it changes. */
export interface OverlayDelta {
  readonly base: ClusterState;
  readonly kind: KindName;
  readonly namespace: string;
  readonly name: string;
}

/**
 * The base and the changed object of a state made by overlay(), undefined for any other state: derived
 * data of an overlay that the changed object cannot alter may be taken from its base, whose memos are
 * long-lived (an admission request's overlay differs from the live state by that one object).
 */
export function overlayDelta(state: ClusterState): OverlayDelta | undefined {
  return state instanceof OverlayState ? state.delta : undefined;
}

/**
 * Whether `obj` is the object `state` holds under kind/namespace/name, or one of the states it overlays
 * does (an audit judges a stored object's creation on an overlay that deletes it).
 */
function heldBy(state: ClusterState, kind: KindName, namespace: string | undefined, name: string, obj: object): boolean {
  for (let s: ClusterState | undefined = state; s !== undefined; s = overlayDelta(s)?.base) {
    if (s.get(kind, namespace, name) === obj) return true;
  }
  return false;
}

/**
 * The state as it would be after `mutation`: a put replaces the object of the same kind/namespace/name
 * (or adds it), a delete removes it. No mutation (a request that changes nothing meshguard models, see
 * mutationOf in src/core/change.ts) leaves the state as it is: the base itself is returned.
 */
export function overlay(base: ClusterState, mutation: Mutation | undefined): ClusterState {
  if (!mutation || !(mutation.kind in KINDS)) return base;
  const { kind } = mutation;
  const namespaced = KINDS[kind].namespaced;
  const ns = namespaced ? mutation.namespace : '';
  const name = mutation.name;
  const ref = `${kind} ${namespaced ? `${ns}/` : ''}${name}`;
  if ('delete' in mutation) return ephemeral(new OverlayState(base, kind, ns, name, undefined, `delete ${ref}`));
  let obj = mutation.object;
  // Keep the object consistent with the key it is stored under, so list(kind, ns) and get() agree.
  if (obj.metadata.name !== name || (namespaced && (obj.metadata.namespace ?? '') !== ns)) {
    obj = { ...obj, metadata: { ...obj.metadata, name, ...(namespaced ? { namespace: ns } : {}) } };
  }
  // The request's own object lives only for the request; an object the base itself holds (the warm-up's,
  // the audit's and `check`'s requests pass stored objects) does not: marked, its models would be kept
  // for this request only while the base's long-lived tables hold them, and a later request, comparing
  // models by identity, would take them for another policy's (decide's storedIn, for the same reason).
  if (!heldBy(base, kind, namespaced ? ns : undefined, name, obj)) markEphemeral(obj);
  return ephemeral(new OverlayState(base, kind, ns, name, obj, `put ${ref}`));
}

function ephemeral(state: OverlayState): OverlayState {
  markEphemeral(state);
  return state;
}
