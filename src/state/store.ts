// An in-memory, indexed ClusterState that can be mutated: the backing store of the snapshot loader
// and of the live informers. Objects are bucketed by kind and namespace, pods are indexed by label,
// and list() results are cached until the bucket changes, so reads on the admission path are O(result).

import { Interner } from './intern.ts';
import { ScopedWeakMap } from './request-scope.ts';
import { KINDS, KIND_NAMES, type KindName } from '../core/kinds.ts';
import type { ClusterState, KindObjects, KubeObject, Pod } from '../core/objects.ts';

const CLUSTER = ''; // bucket key for cluster-scoped kinds

interface Bucket {
  readonly byName: Map<string, KubeObject>;
  cached?: readonly KubeObject[];
}

/**
 * The pods of one namespace carrying one label: most such groups are small (one workload's replicas),
 * so they are exact-length arrays; a Set per group would cost ~1 KB for a few dozen pods. Big groups
 * become a Set so removals stay O(1); insertion order is kept either way. An array a reader has been
 * given (podsWithLabel; a reader may hold it, or key a memo by it) is replaced rather than changed; one
 * no reader has seen since it was made is changed in place when a pod object replaces another
 * (MemoryState.#handedOut).
 */
type PodGroup = readonly Pod[] | Set<Pod>;
const SET_FROM = 64;
const ARRAY_BELOW = 32;

// The index keys ("key\u0000value") of a label map, computed once per map: replicas share their label
// map (see transform.ts), so a big snapshot builds each key once instead of once per pod.
const NO_KEYS: readonly string[] = [];
// Held on the label map itself (ScopedWeakMap's onKey: no ephemeron per label map for V8's major
// collections, issue 21); kept when a budget cut forgets the memos (a pure function of the map).
const labelKeyCache = new ScopedWeakMap<object, readonly string[]>({ keepOnForget: true, onKey: true, unscoped: true });
const labelKeyStrings = new Interner<string>(1 << 15);
function labelKeys(p: Pod): readonly string[] {
  const labels = p.metadata.labels;
  if (!labels) return NO_KEYS;
  let keys = labelKeyCache.get(labels);
  if (!keys) {
    keys = Object.entries(labels).map(([k, v]) => {
      // One string per label pair, whichever label maps hold it.
      const key = k + '\u0000' + v;
      const hit = labelKeyStrings.get(key);
      if (hit !== undefined) return hit;
      labelKeyStrings.set(key, key);
      return key;
    });
    labelKeyCache.set(labels, keys);
  }
  return keys;
}

/**
 * Deep equality of two transformed objects (plain JSON: the transform's output). Shared values (interned
 * label maps and container lists) are the same object, which ends the comparison early. Key order is
 * not compared (a reordered update keeps the stored object), and only plain objects, arrays and JSON
 * scalars are told apart: Dates, Maps or prototypes are not what the transform makes.
 */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameJson(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  const keys = Object.keys(ra);
  if (keys.length !== Object.keys(rb).length) return false;
  for (const k of keys) if (!Object.hasOwn(rb, k) || !sameJson(ra[k], rb[k])) return false;
  return true;
}

export class MemoryState implements ClusterState {
  #revision = 0;
  #label: string;
  readonly #kinds = new Map<KindName, Map<string, Bucket>>();
  readonly #allCache = new Map<KindName, readonly KubeObject[]>();
  readonly #nsCache = new Map<KindName, readonly string[]>();
  /** contentToken() per kind; dropped when the kind changes, so the next call makes a new one. */
  readonly #tokens = new Map<KindName, object>();
  /** "key\u0000value" -> namespace -> pods */
  #podLabels = new Map<string, Map<string, PodGroup>>();
  /**
   * The group arrays of #podLabels that podsWithLabel has returned: a reader may hold them, or key a
   * memo by them, so they are copied before a change. Any other group array has never left the store,
   * and a pod event replacing a pod object changes it in place: the copies were the largest single
   * site of what a pod event left for the old generation (about 1.5 KB per event at 50k pods, issue 21).
   * An array leaves this set when it stops being a group (copied, emptied, or its index replaced), so
   * the set holds at most one entry per group.
   */
  #handedOut = new Set<readonly Pod[]>();
  #groupCopies = 0;
  #groupsChangedInPlace = 0;

  constructor(label = 'memory') {
    this.#label = label;
    for (const k of KIND_NAMES) this.#kinds.set(k, new Map());
  }

  get revision(): number {
    return this.#revision;
  }

  describe(): string {
    return this.#label;
  }

  /** Change what describe() says (a source learns how many files it read only after creating its state). */
  setLabel(label: string): void {
    this.#label = label;
  }

  list<K extends KindName>(kind: K, namespace?: string): readonly KindObjects[K][] {
    const buckets = this.#kinds.get(kind)!;
    if (namespace !== undefined && KINDS[kind].namespaced) {
      const b = buckets.get(namespace);
      if (!b) return [];
      b.cached ??= [...b.byName.values()];
      return b.cached as readonly KindObjects[K][];
    }
    let all = this.#allCache.get(kind);
    if (!all) {
      const out: KubeObject[] = [];
      for (const b of buckets.values()) for (const o of b.byName.values()) out.push(o);
      all = out;
      this.#allCache.set(kind, all);
    }
    return all as readonly KindObjects[K][];
  }

  contentToken(kind: KindName): object {
    let t = this.#tokens.get(kind);
    if (!t) this.#tokens.set(kind, (t = {}));
    return t;
  }

  get<K extends KindName>(kind: K, namespace: string | undefined, name: string): KindObjects[K] | undefined {
    const ns = KINDS[kind].namespaced ? (namespace ?? '') : CLUSTER;
    return this.#kinds.get(kind)!.get(ns)?.byName.get(name) as KindObjects[K] | undefined;
  }

  namespacesWith(kind: KindName): readonly string[] {
    let c = this.#nsCache.get(kind);
    if (!c) {
      c = KINDS[kind].namespaced
        ? [...this.#kinds.get(kind)!.entries()].filter(([, b]) => b.byName.size > 0).map(([ns]) => ns)
        : [];
      this.#nsCache.set(kind, c);
    }
    return c;
  }

  podsWithLabel(namespace: string | undefined, key: string, value: string): readonly Pod[] {
    const byNs = this.#podLabels.get(key + '\u0000' + value);
    if (!byNs) return [];
    if (namespace !== undefined) {
      const g = byNs.get(namespace);
      if (!g) return [];
      if (!Array.isArray(g)) return [...g];
      this.#handedOut.add(g);
      return g;
    }
    const out: Pod[] = [];
    for (const g of byNs.values()) for (const p of g) out.push(p);
    return out;
  }

  /**
   * The label index's bookkeeping, for tests and benchmarks: how many group arrays pod replacements
   * copied because a reader had been given them, how many they changed in place, and how many group
   * arrays readers hold now (#handedOut).
   */
  labelIndexStats(): { copiedForReaders: number; changedInPlace: number; handedOut: number } {
    return { copiedForReaders: this.#groupCopies, changedInPlace: this.#groupsChangedInPlace, handedOut: this.#handedOut.size };
  }

  /** Number of objects of a kind. */
  count(kind: KindName): number {
    let n = 0;
    for (const b of this.#kinds.get(kind)!.values()) n += b.byName.size;
    return n;
  }

  /**
   * Insert or replace an object (by namespace/name). Returns the object it replaced. An object equal to
   * the stored one (the transform dropped all that changed: most watch events on pods are readiness and
   * condition updates) leaves the state as it is: the stored object stays, and the revision does not
   * move, so the caches keyed by revision or by object (verdicts, selections) stay valid.
   */
  upsert(kind: KindName, obj: KubeObject): KubeObject | undefined {
    const ns = KINDS[kind].namespaced ? (obj.metadata.namespace ?? '') : CLUSTER;
    const buckets = this.#kinds.get(kind)!;
    let b = buckets.get(ns);
    if (!b) {
      b = { byName: new Map() };
      buckets.set(ns, b);
      this.#nsCache.delete(kind);
    }
    const old = b.byName.get(obj.metadata.name);
    if (old !== undefined && sameJson(old, obj)) return old;
    if (kind === 'Pod') {
      if (old) this.#reindexPod(old as Pod, obj as Pod);
      else this.#indexPod(obj as Pod);
    }
    b.byName.set(obj.metadata.name, obj);
    this.#touch(kind, b);
    return old;
  }

  /** Remove an object; returns it if it was there. */
  remove(kind: KindName, namespace: string | undefined, name: string): KubeObject | undefined {
    const ns = KINDS[kind].namespaced ? (namespace ?? '') : CLUSTER;
    const buckets = this.#kinds.get(kind)!;
    const b = buckets.get(ns);
    const old = b?.byName.get(name);
    if (!b || !old) return undefined;
    b.byName.delete(name);
    if (kind === 'Pod') this.#unindexPod(old as Pod);
    if (b.byName.size === 0) {
      buckets.delete(ns);
      this.#nsCache.delete(kind);
    }
    this.#touch(kind, b);
    return old;
  }

  /** Replace every object of a kind (a relist). */
  replaceAll(kind: KindName, objs: readonly KubeObject[]): void {
    if (kind === 'Pod') {
      this.#podLabels.clear();
      this.#handedOut.clear();
    }
    this.#kinds.set(kind, new Map());
    this.#allCache.delete(kind);
    this.#nsCache.delete(kind);
    this.#tokens.delete(kind);
    for (const o of objs) this.upsert(kind, o);
    this.#revision++;
  }

  /**
   * Take over every object and index of `other`, which must not be used afterwards: a state loaded aside
   * (a snapshot) swapped in at once, without indexing it a second time.
   */
  adopt(other: MemoryState): void {
    for (const k of KIND_NAMES) this.#kinds.set(k, other.#kinds.get(k)!);
    this.#podLabels = other.#podLabels;
    this.#handedOut = other.#handedOut;
    this.#allCache.clear();
    this.#nsCache.clear();
    this.#tokens.clear();
    this.#revision = Math.max(this.#revision, other.#revision) + 1;
  }

  /**
   * Take over one kind's objects (and, for Pods, the label index) from `other`, which must hold nothing
   * else that is used afterwards: a relist built aside, swapped in at once, so that a review judges the
   * old objects or the new ones, never a mix (state/live.ts). One step whatever the kind's size.
   */
  adoptKind(kind: KindName, other: MemoryState): void {
    this.#kinds.set(kind, other.#kinds.get(kind)!);
    other.#kinds.set(kind, new Map());
    if (kind === 'Pod') {
      this.#podLabels = other.#podLabels;
      this.#handedOut = other.#handedOut;
      other.#podLabels = new Map();
      other.#handedOut = new Set();
    }
    this.#allCache.delete(kind);
    this.#nsCache.delete(kind);
    this.#tokens.delete(kind);
    this.#revision++;
  }

  /** Replace every object of a kind in one namespace (the relist of a watch scoped to that namespace). */
  replaceNamespace(kind: KindName, namespace: string, objs: readonly KubeObject[]): void {
    for (const o of [...this.list(kind, namespace)]) this.remove(kind, namespace, o.metadata.name);
    for (const o of objs) this.upsert(kind, o);
  }

  #touch(kind: KindName, b: Bucket): void {
    delete b.cached;
    this.#allCache.delete(kind);
    this.#tokens.delete(kind);
    this.#revision++;
  }

  #indexPod(p: Pod): void {
    const ns = p.metadata.namespace ?? '';
    for (const key of labelKeys(p)) this.#addToGroup(key, ns, p);
  }

  #unindexPod(p: Pod): void {
    const ns = p.metadata.namespace ?? '';
    for (const key of labelKeys(p)) this.#removeFromGroup(key, ns, p);
  }

  /**
   * A pod replaced by a new object of the same name (so of the same namespace). Under each label both
   * carry, the new object takes the old one's place in the group (#replaceInGroup: in place, or in one
   * copy), instead of a filtered copy and then a longer one (most pod events change no label, or one;
   * issue 21's churn); the labels only one of them carries are removed or added as before.
   */
  #reindexPod(old: Pod, p: Pod): void {
    const ns = p.metadata.namespace ?? '';
    const newKeys = labelKeys(p);
    const oldKeys = labelKeys(old);
    // Equal label maps are one shared map (transform.ts), whose keys are one cached array.
    const onlyOld = oldKeys === newKeys ? undefined : new Set(oldKeys);
    for (const key of newKeys) {
      if (onlyOld === undefined || onlyOld.delete(key)) this.#replaceInGroup(key, ns, old, p);
      else this.#addToGroup(key, ns, p);
    }
    if (onlyOld) for (const key of onlyOld) this.#removeFromGroup(key, ns, old);
  }

  #addToGroup(key: string, ns: string, p: Pod): void {
    let byNs = this.#podLabels.get(key);
    if (!byNs) this.#podLabels.set(key, (byNs = new Map()));
    const g = byNs.get(ns);
    if (!g) byNs.set(ns, [p]);
    else if (!Array.isArray(g)) (g as Set<Pod>).add(p);
    else {
      this.#handedOut.delete(g);
      if (g.length + 1 >= SET_FROM) byNs.set(ns, new Set([...g, p]));
      else byNs.set(ns, g.concat([p])); // concat allocates the exact length
    }
  }

  #removeFromGroup(key: string, ns: string, p: Pod): void {
    const byNs = this.#podLabels.get(key);
    const g = byNs?.get(ns);
    if (!g) return;
    let left: number;
    if (Array.isArray(g)) {
      this.#handedOut.delete(g);
      const rest = g.filter((x) => x !== p).slice(); // slice: exact length
      left = rest.length;
      byNs!.set(ns, rest);
    } else {
      const set = g as Set<Pod>;
      set.delete(p);
      left = set.size;
      if (left < ARRAY_BELOW) byNs!.set(ns, [...set].slice());
    }
    if (left === 0) byNs!.delete(ns);
    if (byNs!.size === 0) this.#podLabels.delete(key);
  }

  /**
   * `old` replaced by `p` in one group: in place when no reader has been given the array (#handedOut),
   * else in a copy that takes its place; a Set is changed.
   */
  #replaceInGroup(key: string, ns: string, old: Pod, p: Pod): void {
    const byNs = this.#podLabels.get(key);
    const g = byNs?.get(ns);
    const i = g !== undefined && Array.isArray(g) ? g.indexOf(old) : -1;
    if (i >= 0) {
      if (this.#handedOut.delete(g as readonly Pod[])) {
        const copy = (g as readonly Pod[]).slice();
        copy[i] = p;
        this.#groupCopies++;
        byNs!.set(ns, copy);
      } else {
        (g as Pod[])[i] = p;
        this.#groupsChangedInPlace++;
      }
    } else if (g !== undefined && !Array.isArray(g) && (g as Set<Pod>).delete(old)) (g as Set<Pod>).add(p);
    else this.#addToGroup(key, ns, p); // not indexed under it (cannot happen: the old object carried the label)
  }
}
