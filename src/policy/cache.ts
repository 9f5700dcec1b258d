// Derived data cached per ClusterState object and revision: a state with the same revision reads the
// same objects, so anything computed from it stays valid until the revision changes.

import type { ClusterState } from '../state/types.ts';

interface Entry {
  revision: number;
  readonly values: Map<string, unknown>;
}
const perState = new WeakMap<ClusterState, Entry>();

/** The value of `compute(state)` under `key`, computed once per state revision. */
export function perRevision<T>(state: ClusterState, key: string, compute: () => T): T {
  let e = perState.get(state);
  if (!e || e.revision !== state.revision) {
    e = { revision: state.revision, values: new Map() };
    perState.set(state, e);
  }
  if (e.values.has(key)) return e.values.get(key) as T;
  const v = compute();
  e.values.set(key, v);
  return v;
}
