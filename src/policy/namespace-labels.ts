// Which Namespace label keys can change a verdict. A Namespace's labels reach policy only through label
// selectors that read them by key (Cilium selectors on io.cilium.k8s.namespace.labels.<key>,
// NetworkPolicy and webhook namespaceSelectors) and through the Istio and Cilium settings read from
// namespace labels (istio-injection, istio.io/*, ...). A label that none of these names cannot change
// which pods a policy selects, which peers it admits, or a pod's mesh mode, so a Namespace update that
// changes only such labels cannot change any verdict.

import type { ClusterState, KubeObject, LabelSelector } from '../core/objects.ts';
import { ScopedWeakMap } from '../state/request-scope.ts';
import { NAMESPACE_LABELS_PREFIX, normalizeKey } from './selectors.ts';
import { policyModel } from './model.ts';
import type { Direction, PolicyModel } from './types.ts';
import { keysByList, peerKeysByList, keysByFilter } from './memo.ts';

/** Keys named by every label selector inside a Cilium policy spec that read Namespace labels. */
function ciliumKeys(node: unknown, out: Set<string>): void {
  if (Array.isArray(node)) {
    for (const n of node) ciliumKeys(n, out);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const rec = node as Record<string, unknown>;
  const add = (raw: unknown): void => {
    if (typeof raw !== 'string') return;
    const k = normalizeKey(raw);
    if (k.startsWith(NAMESPACE_LABELS_PREFIX)) out.add(k.slice(NAMESPACE_LABELS_PREFIX.length));
  };
  const ml = rec['matchLabels'];
  if (ml !== null && typeof ml === 'object' && !Array.isArray(ml)) for (const k of Object.keys(ml)) add(k);
  const me = rec['matchExpressions'];
  if (Array.isArray(me)) for (const e of me) add((e as { key?: unknown } | null)?.key);
  for (const v of Object.values(rec)) if (v !== null && typeof v === 'object') ciliumKeys(v, out);
}

/** Keys of every `namespaceSelector` found inside an object (NetworkPolicy peers, webhooks). */
function namespaceSelectorKeys(node: unknown, out: Set<string>, inSelector = false): void {
  if (Array.isArray(node)) {
    for (const n of node) namespaceSelectorKeys(n, out, inSelector);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const rec = node as Record<string, unknown>;
  if (inSelector) selectorKeys(rec as LabelSelector, out);
  for (const [k, v] of Object.entries(rec)) {
    if (v !== null && typeof v === 'object') namespaceSelectorKeys(v, out, k === 'namespaceSelector');
  }
}

function selectorKeys(sel: LabelSelector | undefined, out: Set<string>): void {
  if (!sel) return;
  for (const k of Object.keys(sel.matchLabels ?? {})) out.add(k);
  for (const e of sel.matchExpressions ?? []) if (typeof e?.key === 'string') out.add(e.key);
}

// Per list array: a state keeps a kind's list the same array until an object of that kind changes,
// and an admission overlay passes untouched kinds through, so this is computed once per policy change.

function keysOf(
  list: readonly KubeObject[],
  collect: (o: KubeObject, out: Set<string>) => void,
  cache: ScopedWeakMap<readonly KubeObject[], ReadonlySet<string>> = keysByList,
): ReadonlySet<string> {
  let keys = cache.get(list);
  if (!keys) {
    const out = new Set<string>();
    for (const o of list) collect(o, out);
    cache.set(list, (keys = out));
  }
  return keys;
}

/**
 * Keys of the namespaceSelectors of a kind's objects: NetworkPolicy peers, or sidecar injectors
 * (MutatingWebhookConfiguration), whose selectors decide mesh membership.
 */
function selectorsOf(state: ClusterState, kind: 'NetworkPolicy' | 'MutatingWebhookConfiguration'): ReadonlySet<string> {
  return keysOf(state.list(kind), (o, out) => namespaceSelectorKeys(o, out));
}

/** Keys Istio and Cilium read from Namespace labels themselves, and the name label: always relevant. */
function meshOrIdentityKey(key: string): boolean {
  return /istio|cilium/i.test(key) || key === 'kubernetes.io/metadata.name';
}

/**
 * Could a change of the Namespace label `key` change a verdict in this state? `extraSelectors` are
 * further pod selectors that may read Namespace labels through the Cilium prefix (meshguard's config).
 */
export function namespaceLabelMatters(state: ClusterState, key: string, extraSelectors: readonly LabelSelector[] = []): boolean {
  // Istio and Cilium read their own Namespace labels (injection, revision, dataplane mode, waypoints,
  // discovery selectors): any key of theirs counts, known or not. The name label identifies the namespace.
  if (meshOrIdentityKey(key)) return true;
  const cilium = (o: KubeObject, out: Set<string>): void => {
    const p = o as { spec?: unknown; specs?: unknown };
    ciliumKeys([p.spec, p.specs], out);
  };
  if (keysOf(state.list('CiliumNetworkPolicy'), cilium).has(key)) return true;
  if (keysOf(state.list('CiliumClusterwideNetworkPolicy'), cilium).has(key)) return true;
  if (selectorsOf(state, 'NetworkPolicy').has(key)) return true;
  if (selectorsOf(state, 'MutatingWebhookConfiguration').has(key)) return true;
  const extra = new Set<string>();
  for (const s of extraSelectors) ciliumKeys(s, extra);
  return extra.has(key);
}

const PEER_SECTIONS = ['ingress', 'ingressDeny', 'egress', 'egressDeny'] as const;

/**
 * Could a change of the Namespace label `key` change which *peers* some policy admits or denies
 * (rather than which pods a policy applies to)? Cilium rule sections naming namespace-label keys, and
 * NetworkPolicy namespaceSelectors (they only occur in peers).
 */
export function namespaceLabelReadByPeers(state: ClusterState, key: string): boolean {
  const ciliumPeers = (o: KubeObject, out: Set<string>): void => {
    const p = o as { spec?: Record<string, unknown>; specs?: Record<string, unknown>[] };
    for (const rule of [p.spec, ...(Array.isArray(p.specs) ? p.specs : [])]) {
      if (rule === null || typeof rule !== 'object') continue;
      for (const section of PEER_SECTIONS) ciliumKeys(rule[section], out);
    }
  };
  return (
    keysOf(state.list('CiliumNetworkPolicy'), ciliumPeers, peerKeysByList).has(key) ||
    keysOf(state.list('CiliumClusterwideNetworkPolicy'), ciliumPeers, peerKeysByList).has(key) ||
    // NetworkPolicy namespaceSelectors only occur in peers: the same keys as for namespaceLabelMatters.
    selectorsOf(state, 'NetworkPolicy').has(key)
  );
}

// Per filter (module-level functions below), per list array: namespace-label keys read anywhere in the
// Cilium policies that have a model passing the filter.

function ciliumKeysWhere(state: ClusterState, filter: (m: PolicyModel) => boolean): (key: string) => boolean {
  let cache = keysByFilter.get(filter);
  if (!cache) keysByFilter.set(filter, (cache = new ScopedWeakMap()));
  const collect = (o: KubeObject, out: Set<string>): void => {
    let models: readonly PolicyModel[];
    try {
      models = policyModel(o as Parameters<typeof policyModel>[0]);
    } catch {
      models = [];
    }
    // A policy the model cannot read is counted: it may be anything.
    if (models.length > 0 && !models.some(filter)) return;
    const p = o as { spec?: unknown; specs?: unknown };
    ciliumKeys([p.spec, p.specs], out);
  };
  const cnp = keysOf(state.list('CiliumNetworkPolicy'), collect, cache);
  const ccnp = keysOf(state.list('CiliumClusterwideNetworkPolicy'), collect, cache);
  return (key) => cnp.has(key) || ccnp.has(key);
}

const actsOn: Record<Direction, (m: PolicyModel) => boolean> = {
  ingress: (m) => m.hasSection.ingress || m.enforces.ingress,
  egress: (m) => m.hasSection.egress || m.enforces.egress,
};
const hasL7 = (m: PolicyModel): boolean => m.hasL7;

/**
 * Could a change of the Namespace label `key` change the `direction` traffic of that namespace's pods?
 * It can when a Cilium policy acting on that direction (rules or default deny of it) reads the key in
 * any selector, so that it starts or stops selecting the pods; when any policy's peer section reads it,
 * so that the pods' peers start or stop admitting them (traffic the other way round is theirs too);
 * when a sidecar injector's namespaceSelector reads it (mesh membership); and for mesh and name keys.
 * A Namespace relabel outside all of these leaves the pods' `direction` verdicts as they were.
 */
export function namespaceLabelReadFor(state: ClusterState, key: string, direction: Direction): boolean {
  if (meshOrIdentityKey(key)) return true;
  if (ciliumKeysWhere(state, actsOn[direction])(key)) return true;
  if (namespaceLabelReadByPeers(state, key)) return true;
  return selectorsOf(state, 'MutatingWebhookConfiguration').has(key);
}

/**
 * Could a change of the Namespace label `key` change which Cilium L7 rules apply to that namespace's
 * pods, or which peers those rules admit? Only a Cilium policy with L7 rules reading the key (in its
 * subject or in a peer), a sidecar injector's namespaceSelector, or a mesh or name key.
 */
export function namespaceLabelReadByL7(state: ClusterState, key: string): boolean {
  if (meshOrIdentityKey(key)) return true;
  if (ciliumKeysWhere(state, hasL7)(key)) return true;
  return selectorsOf(state, 'MutatingWebhookConfiguration').has(key);
}

/** Label keys added, removed or given another value between two label maps. */
export function changedLabelKeys(before: Readonly<Record<string, string>> | undefined, after: Readonly<Record<string, string>> | undefined): string[] {
  const a = before ?? {};
  const b = after ?? {};
  const out: string[] = [];
  for (const k of Object.keys(a)) if (!Object.hasOwn(b, k) || a[k] !== b[k]) out.push(k);
  for (const k of Object.keys(b)) if (!Object.hasOwn(a, k)) out.push(k);
  return out;
}
