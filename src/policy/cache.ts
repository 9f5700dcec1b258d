// Derived data cached per ClusterState object and revision: a state with the same revision reads the
// same objects, so anything computed from it stays valid until the revision changes.

import type { KindName } from '../state/kinds.ts';
import type { ClusterState } from '../state/types.ts';
import { ScopedWeakMap } from '../state/request-scope.ts';

interface Entry {
  readonly revision: number;
  readonly values: Map<string, unknown>;
  readonly perObject: Map<string, ScopedWeakMap<object, unknown>>;
}
const perState = new ScopedWeakMap<ClusterState, Entry>();

function entry(state: ClusterState): Entry {
  let e = perState.get(state);
  if (!e || e.revision !== state.revision) {
    e = { revision: state.revision, values: new Map(), perObject: new Map() };
    perState.set(state, e);
  }
  return e;
}

/** The value of `compute()` under `key`, computed once per state revision. */
export function perRevision<T>(state: ClusterState, key: string, compute: () => T): T {
  const e = entry(state);
  if (e.values.has(key)) return e.values.get(key) as T;
  const v = compute();
  e.values.set(key, v);
  return v;
}

/** Like perRevision, keyed by an object too (a pod, a policy). */
export function perRevisionFor<T>(state: ClusterState, key: string, obj: object, compute: () => T): T {
  const e = entry(state);
  let m = e.perObject.get(key);
  if (!m) e.perObject.set(key, (m = new ScopedWeakMap()));
  if (m.has(obj)) return m.get(obj) as T;
  const v = compute();
  m.set(obj, v);
  return v;
}

/**
 * The value of `compute()` under `key`, computed once per content of `kinds`: for derived data that
 * reads only those kinds (`compute` must read no other), so that events on other kinds (pods, most of
 * a live cluster's) keep it where perRevision would drop it. Keyed by the kinds' content tokens, which
 * an admission overlay replaces for the kind it changes.
 */
export function perContentOf<T>(state: ClusterState, key: string, kinds: readonly KindName[], compute: () => T): T {
  let m = byContent.get(key);
  if (!m) byContent.set(key, (m = new ScopedWeakMap()));
  for (let i = 0; i < kinds.length - 1; i++) {
    const token = state.contentToken(kinds[i]!);
    let next = m.get(token) as ScopedWeakMap<object, unknown> | undefined;
    if (!next) m.set(token, (next = new ScopedWeakMap()));
    m = next;
  }
  const last = state.contentToken(kinds[kinds.length - 1]!);
  if (m.has(last)) return m.get(last) as T;
  const v = compute();
  m.set(last, v);
  return v;
}
const byContent = new Map<string, ScopedWeakMap<object, unknown>>();
