// Endpoint labels and label-selector matching the way Cilium evaluates them.
//
// Cilium matches selectors against an endpoint's identity labels, not just the pod labels: it adds the
// namespace, the service account, the cluster name and every label of the pod's Namespace (prefixed).
// Selector keys may carry a label source ("k8s:app", "any:app", "reserved:host"). Reserved identities
// (host, world, ...) are represented here by labels whose key keeps the "reserved:" prefix, so that a
// pod never matches a `reserved:` key and a reserved identity never matches a plain pod-label key.

import type { ClusterState, Labels, LabelSelector, LabelSelectorRequirement, Pod } from '../core/objects.ts';
import { checkBudget } from '../core/budget.ts';
import { identityLabelKeys, labelCache, pairCache } from './memo.ts';
import { podIdentityKey } from './identity.ts';

export const NAMESPACE_LABEL = 'io.kubernetes.pod.namespace';
export const SERVICE_ACCOUNT_LABEL = 'io.cilium.k8s.policy.serviceaccount';
export const CLUSTER_LABEL = 'io.cilium.k8s.policy.cluster';
export const NAMESPACE_LABELS_PREFIX = 'io.cilium.k8s.namespace.labels.';
/** Cilium's default cluster name (cluster-name in cilium-config); pods carry it as a label. */
export const DEFAULT_CLUSTER_NAME = 'default';

/** Label sources that select pod (Kubernetes) labels. `reserved` is kept; other sources never match pods. */
const POD_SOURCES = new Set(['k8s', 'any', 'unspec', 'container']);

/**
 * A selector key without its Cilium source prefix. "k8s:app" -> "app", "any:app" -> "app";
 * "reserved:host" stays "reserved:host" (only reserved identities carry such keys).
 */
export function normalizeKey(key: string): string {
  const colon = key.indexOf(':');
  if (colon < 0) return key;
  const source = key.slice(0, colon);
  return POD_SOURCES.has(source) ? key.slice(colon + 1) : key;
}

// By Namespace object, then pod: the pod object is immutable in the state; its Namespace may change
// independently, so labels are only reused under the same Namespace object. A request's overlay with a
// changed Namespace gets its own map, dropped with it, instead of rewriting every pod's entry.
// Replicas share one label set: keyed by the pod's identity (namespace, service account, labels).
const NO_NAMESPACE = {};
/** Entries an identity-keyed cache holds before it starts over (far above any namespace's identities). */
export const IDENTITY_CACHE_LIMIT = 10_000;


/**
 * The agent's default identity-label filter (pkg/labelsfilter, defaultLabelPrefixCfg): labels it drops
 * from a pod's identity, so that no selector can match them. Each entry matches at the start of the
 * key; a label is dropped when an ignore entry matches it and no include entry matches a longer part
 * of it (filterLabels). With the default configuration every other label is kept.
 */
const LABEL_FILTER: readonly { readonly re: RegExp; readonly ignore: boolean }[] = [
  { re: /^io\.kubernetes\.pod\.namespace/, ignore: false },
  { re: /^io\.cilium\.k8s\.namespace\.labels/, ignore: false },
  { re: /^app\.kubernetes\.io/, ignore: false },
  { re: /^io\.cilium\.k8s\.policy\.cluster/, ignore: false },
  { re: /^io\.cilium\.k8s\.policy\.serviceaccount/, ignore: false },
  { re: /^io\.kubernetes/, ignore: true },
  { re: /^kubernetes\.io/, ignore: true },
  { re: /^statefulset\.kubernetes\.io\/pod-name/, ignore: true },
  { re: /^apps\.kubernetes\.io\/pod-index/, ignore: true },
  { re: /^batch\.kubernetes\.io\/job-completion-index/, ignore: true },
  { re: /^batch\.kubernetes\.io\/controller-uid/, ignore: true },
  { re: /^.*beta\.kubernetes\.io/, ignore: true },
  { re: /^k8s\.io/, ignore: true },
  { re: /^pod-template-generation/, ignore: true },
  { re: /^pod-template-hash/, ignore: true },
  { re: /^controller-revision-hash/, ignore: true },
  { re: /^controller-uid/, ignore: true },
  { re: /^annotation.*/, ignore: true },
  { re: /^etcd_node/, ignore: true },
  { re: /^topology\.kubernetes\.io/, ignore: true },
];

/** Does the agent keep this (k8s-source) label in a pod's identity? */
export function identityLabelKept(key: string): boolean {
  // Asked for every label of every identity: a few hundred distinct keys in a cluster.
  let kept = identityLabelKeys.get(key);
  if (kept === undefined) {
    if (identityLabelKeys.size >= 10_000) identityLabelKeys.clear();
    identityLabelKeys.set(key, (kept = labelKeptUncached(key)));
  }
  return kept;
}

function labelKeptUncached(key: string): boolean {
  let included = 0;
  let ignored = 0;
  for (const { re, ignore } of LABEL_FILTER) {
    const m = re.exec(key);
    if (!m) continue;
    const len = m[0].length;
    if (ignore) {
      if (ignored === 0 || len < ignored) ignored = len;
    } else if (len > included) {
      included = len;
    }
  }
  return ignored === 0 || included > ignored;
}

/**
 * Labels Cilium matches on for a pod: pod labels + io.kubernetes.pod.namespace + SA + namespace labels,
 * less those the default identity-label filter drops (pod-template-hash, statefulset pod names, ...).
 */
export function endpointLabels(state: ClusterState, pod: Pod): Labels {
  const namespace = pod.metadata.namespace ?? '';
  const nsObj = state.get('Namespace', undefined, namespace);
  let byId = labelCache.get(nsObj ?? NO_NAMESPACE);
  if (!byId) labelCache.set(nsObj ?? NO_NAMESPACE, (byId = new Map()));
  const id = podIdentityKey(pod);
  const hit = byId.get(id);
  if (hit) return hit;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(nsObj?.metadata.labels ?? {})) if (identityLabelKept(NAMESPACE_LABELS_PREFIX + k)) out[NAMESPACE_LABELS_PREFIX + k] = v;
  // Cilium always derives the namespace-name label even when the Namespace object lacks it.
  out[NAMESPACE_LABELS_PREFIX + 'kubernetes.io/metadata.name'] ??= namespace;
  // Pod labels under Cilium's own prefix (io.cilium.k8s) are removed before the derived ones are set
  // (SanitizePodLabels), so a pod cannot claim another namespace or service account.
  for (const [k, v] of Object.entries(pod.metadata.labels ?? {})) if (!k.startsWith('io.cilium.k8s') && identityLabelKept(k)) out[k] = v;
  out[NAMESPACE_LABEL] = namespace;
  out[SERVICE_ACCOUNT_LABEL] = pod.spec.serviceAccountName || 'default';
  out[CLUSTER_LABEL] ??= DEFAULT_CLUSTER_NAME;
  const labels = Object.freeze(out);
  // Pods come and go (each rollout brings a new pod-template-hash): bound what one Namespace keeps.
  if (byId.size >= IDENTITY_CACHE_LIMIT) byId.clear();
  byId.set(id, labels);
  return labels;
}

/** The labels of a reserved identity (`reserved:host`, `reserved:world`, ...). */
export function reservedLabels(...entities: readonly string[]): Labels {
  const out: Record<string, string> = {};
  for (const e of entities) out['reserved:' + e] = '';
  return Object.freeze(out);
}

function requirementMatches(req: LabelSelectorRequirement, labels: Labels): boolean {
  const key = normalizeKey(req.key);
  const has = Object.hasOwn(labels, key);
  const values = req.values ?? [];
  switch (req.operator) {
    case 'In':
      return has && values.includes(labels[key]!);
    case 'NotIn':
      // Kubernetes semantics: a missing key satisfies NotIn.
      return !has || !values.includes(labels[key]!);
    case 'Exists':
      return has;
    case 'DoesNotExist':
      return !has;
    default:
      // Unknown operator: the apiserver/agent rejects such a selector; select nothing (fail closed for
      // allows, and a deny with a bad selector is rejected by the agent anyway).
      return false;
  }
}

// Selectors come from cached policy models and are matched against thousands of pods per request:
// normalize their matchLabels once ([key, value, key, value, ...]) instead of on every match.
function matchPairs(matchLabels: Readonly<Record<string, unknown>>): readonly string[] {
  let pairs = pairCache.get(matchLabels);
  if (!pairs) {
    const out: string[] = [];
    for (const [k, v] of Object.entries(matchLabels)) out.push(normalizeKey(k), String(v ?? ''));
    pairs = out;
    // Selectors belong to state objects and their models, which are never modified once built.
    pairCache.set(matchLabels, pairs);
  }
  return pairs;
}

/**
 * Kubernetes label selector semantics (matchLabels AND matchExpressions), with Cilium source prefixes
 * stripped. `undefined` selects nothing; `{}` selects everything.
 */
export function matchesSelector(selector: LabelSelector | undefined, labels: Labels): boolean {
  checkBudget();
  if (!selector) return false;
  if (selector.matchLabels) {
    const pairs = matchPairs(selector.matchLabels);
    for (let i = 0; i < pairs.length; i += 2) {
      const key = pairs[i]!;
      if (!Object.hasOwn(labels, key) || labels[key] !== pairs[i + 1]) return false;
    }
  }
  if (selector.matchExpressions) {
    for (const req of selector.matchExpressions) if (!requirementMatches(req, labels)) return false;
  }
  return true;
}

/** Whether a selector constrains a (normalized) key in matchLabels or matchExpressions. */
export function selectorMentions(selector: LabelSelector | undefined, key: string): boolean {
  if (!selector) return false;
  for (const k of Object.keys(selector.matchLabels ?? {})) if (normalizeKey(k) === key) return true;
  for (const r of selector.matchExpressions ?? []) if (normalizeKey(r.key) === key) return true;
  return false;
}

/** Whether a selector uses any `reserved:` key (it then targets reserved identities, not pods). */
export function selectorIsReserved(selector: LabelSelector | undefined): boolean {
  if (!selector) return false;
  for (const k of Object.keys(selector.matchLabels ?? {})) if (normalizeKey(k).startsWith('reserved:')) return true;
  for (const r of selector.matchExpressions ?? []) if (normalizeKey(r.key).startsWith('reserved:')) return true;
  return false;
}

/** Is this selector `{}` (no matchLabels, no matchExpressions)? */
export function isEmptySelector(selector: LabelSelector | undefined): boolean {
  return (
    !!selector &&
    Object.keys(selector.matchLabels ?? {}).length === 0 &&
    (selector.matchExpressions ?? []).length === 0
  );
}

/** Labels Cilium derives (namespace, SA, cluster, namespace labels): not in the pod-label index. */
function isDerivedKey(key: string): boolean {
  return key === NAMESPACE_LABEL || key === SERVICE_ACCOUNT_LABEL || key === CLUSTER_LABEL || key.startsWith(NAMESPACE_LABELS_PREFIX);
}

/**
 * One (normalized key, value) pair every matching object must carry, to narrow candidates with
 * state.podsWithLabel; undefined when the selector has no such pair (only expressions / empty).
 */
export function indexablePair(selector: LabelSelector | undefined): { key: string; value: string } | undefined {
  if (!selector) return undefined;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) {
    const key = normalizeKey(k);
    if (key.includes(':') || isDerivedKey(key)) continue;
    return { key, value: String(v ?? '') };
  }
  for (const r of selector.matchExpressions ?? []) {
    if (r.operator === 'In' && r.values?.length === 1) {
      const key = normalizeKey(r.key);
      if (!key.includes(':') && !isDerivedKey(key)) return { key, value: r.values[0]! };
    }
  }
  return undefined;
}
