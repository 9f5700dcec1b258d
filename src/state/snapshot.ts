// Cluster state from files: what `kubectl get -A -o yaml` or `meshguard snapshot` wrote.

import { CONFIGMAP_NAMESPACES, kindOf } from './kinds.ts';
import { MemoryState } from './store.ts';
import { transformObject } from './transform.ts';

export interface LoadOptions {
  /** Label for describe(). */
  readonly label?: string;
  /**
   * Keep ConfigMaps only from CONFIGMAP_NAMESPACES plus these namespaces (the Istio root namespace).
   * Undefined = keep ConfigMaps from every namespace.
   */
  readonly configMapNamespaces?: readonly string[];
}

/**
 * A MemoryState holding the slim copies of `objs`. Objects of kinds meshguard does not read, and objects
 * without a name, are ignored.
 */
export function stateFromObjects(objs: readonly unknown[], opts: LoadOptions = {}): MemoryState {
  const state = new MemoryState(opts.label ?? 'memory');
  const cmNamespaces = opts.configMapNamespaces
    ? new Set<string>([...CONFIGMAP_NAMESPACES, ...opts.configMapNamespaces])
    : undefined;
  for (const raw of objs) {
    const kind = kindOf(raw as { apiVersion?: string; kind?: string } | null);
    if (!kind) continue;
    const obj = transformObject(kind, raw);
    if (!obj.metadata.name) continue;
    if (kind === 'ConfigMap' && cmNamespaces && !cmNamespaces.has(obj.metadata.namespace ?? '')) continue;
    state.upsert(kind, obj);
  }
  return state;
}
