// Which pods a policy selects, which policies select a pod, and whether a direction is enforced.
//
// Lookups are indexed: a pod's candidate policies are the CNPs and NetworkPolicies of its own namespace
// plus the CCNPs; a policy's candidate pods come from the pod-label index (first matchLabels pair) in its
// namespace. Results are cached per state revision.

import type { ClusterState, Labels, LabelSelector, Pod, PolicyObject } from '../core/objects.ts';
import type { CiliumConfig, Direction, Enforcement, PolicyModel, PolicyRef } from './types.ts';
import { keptAcrossPodEvents, perRevision, perRevisionFor } from './memo.ts';
import { ciliumConfig } from './cilium-config.ts';
import { atLeast, clusterVersions } from './versions.ts';
import { policyModel } from './model.ts';
import {
  endpointLabels,
  indexablePair,
  matchesSelector,
  NAMESPACE_LABEL,
  NAMESPACE_LABELS_PREFIX,
  normalizeKey,
  IDENTITY_CACHE_LIMIT,
} from './selectors.ts';
import { podIdentityKey } from './identity.ts';
import { classifiedPods, podClassesIn, podsOfClasses, podsOfSegments, type PodClass } from './classes.ts';
import { isEphemeral, markEphemeral, ScopedWeakMap } from '../state/request-scope.ts';
import { overlayDelta } from '../state/overlay.ts';
import { denyRulesByList, derivedSelecting, modelSets, enforcementKeys, ccnpModelCache, nsModelCache, scopedSubjects, selectingByIdentity, selectingLists, namespaceKeysByModels, enforcementCache, selectedBySelector, classesSelectedByNamespace, subjectKeys } from './memo.ts';

/** The settings of cilium-config the engine needs, with Cilium's defaults when unknown. */
export interface PolicySettings {
  readonly enablePolicy: 'default' | 'always' | 'never';
  /** `enable-non-default-deny-policies`: whether `enableDefaultDeny: false` is honoured. */
  readonly nonDefaultDenyPolicies: boolean;
  /** `policy-cidr-match-mode` includes `nodes` (Cilium >= 1.15): CIDR peers also select node IPs. */
  readonly cidrMatchesNodes: boolean;
  /** Port ranges (`endPort`) are enforced (Cilium >= 1.16); older agents match `port` alone. */
  readonly endPortSupported: boolean;
  /**
   * `policy-default-local-cluster` (default true from Cilium 1.19, false before): endpoint selectors of
   * peers get a match on the local cluster name, so they select pods only, never a reserved identity.
   */
  readonly peersLocalCluster: boolean;
  /** `enable-ipv4` / `enable-ipv6` (agent defaults true / false): which world label an address gets. */
  readonly ipv4: boolean;
  readonly ipv6: boolean;
}

/** A boolean cilium-config value, or the default when unset or not a boolean. */
function flag(v: string | undefined, dflt: boolean): boolean {
  const x = v?.trim().toLowerCase();
  return x === 'true' ? true : x === 'false' ? false : dflt;
}

/** Policy settings from cilium-config (defaults if the ConfigMap, or the parser, is not available). */
export function policySettings(state: ClusterState): PolicySettings {
  return perRevision(state, 'policySettings', () => {
    let cfg: CiliumConfig | undefined;
    try {
      cfg = ciliumConfig(state);
    } catch {
      cfg = undefined; // parser not available: fall back to the agent defaults below
    }
    const raw = cfg?.data ?? state.get('ConfigMap', 'kube-system', 'cilium-config')?.data ?? {};
    const mode = (cfg?.enablePolicy ?? raw['enable-policy'] ?? 'default').toLowerCase();
    const ndd = cfg ? cfg.nonDefaultDenyPolicies : (raw['enable-non-default-deny-policies'] ?? 'true').toLowerCase() !== 'false';
    // Version gates (docs/semantics.md, Versions); an unknown version gets the newest behaviour.
    const cilium = clusterVersions(state).cilium;
    return {
      enablePolicy: mode === 'always' || mode === 'never' ? mode : 'default',
      // enableDefaultDeny exists from Cilium 1.16 on: before, the apiserver prunes the unknown field and
      // every rule with a section enforces, as with enable-non-default-deny-policies=false.
      nonDefaultDenyPolicies: ndd && atLeast(cilium, 1, 16),
      cidrMatchesNodes: atLeast(cilium, 1, 15) && (raw['policy-cidr-match-mode'] ?? '').split(/[\s,]+/).includes('nodes'),
      endPortSupported: atLeast(cilium, 1, 16),
      peersLocalCluster: flag(raw['policy-default-local-cluster'], atLeast(cilium, 1, 19)),
      ipv4: flag(raw['enable-ipv4'], true),
      ipv6: flag(raw['enable-ipv6'], false),
    };
  });
}

/**
 * Whether Cilium manages this pod as an endpoint (and so applies endpoint policy to it): host-network
 * pods share the node's identity and are only subject to host policies; finished pods have no endpoint.
 */
export function isCiliumEndpoint(pod: Pod): boolean {
  if (pod.spec.hostNetwork) return false;
  const phase = pod.status?.phase;
  return phase !== 'Succeeded' && phase !== 'Failed';
}

// Model lists are cached by the identity of the policy list arrays they come from: a state keeps those
// arrays identical until a policy in that bucket changes, and an overlay passes untouched buckets through,
// so an admission request that changes one namespace re-derives only that namespace.

// Stores return a fresh [] for an empty bucket: use one shared key for "empty" so the caches still hit.
const EMPTY: readonly PolicyObject[] = Object.freeze([]);
function listKey(list: readonly PolicyObject[]): readonly PolicyObject[] {
  return list.length === 0 ? EMPTY : list;
}

function clusterwideModels(state: ClusterState): readonly PolicyModel[] {
  const list = listKey(state.list('CiliumClusterwideNetworkPolicy'));
  let m = ccnpModelCache.get(list);
  if (!m) ccnpModelCache.set(list, (m = list.flatMap((o) => policyModel(o))));
  return m;
}

/**
 * Could a deny element decide any flow in this state? False when no CiliumNetworkPolicy or
 * CiliumClusterwideNetworkPolicy has a deny element (NetworkPolicy has none): every denial is then
 * default deny, and asking again which rule decided (impact/decided-by.ts) can be skipped. Kept per
 * policy list array (pod events keep it); an admission overlay's from its base's and the changed
 * policy's own models.
 */
export function hasDenyRules(state: ClusterState): boolean {
  const d = overlayDelta(state);
  if (d === undefined) return listHasDeny(state.list('CiliumClusterwideNetworkPolicy')) || listHasDeny(state.list('CiliumNetworkPolicy'));
  return perRevision(state, 'hasDenyRules', () => {
    if (hasDenyRules(d.base)) return true;
    if (d.kind !== 'CiliumNetworkPolicy' && d.kind !== 'CiliumClusterwideNetworkPolicy') return false;
    const obj = state.get(d.kind, d.kind === 'CiliumNetworkPolicy' ? d.namespace : undefined, d.name);
    return obj !== undefined && modelsHaveDeny(policyModel(obj as PolicyObject));
  });
}

/** Per list array (see denyRulesByList): a pod event does not make the next request scan every policy again. */
function listHasDeny(list: readonly PolicyObject[]): boolean {
  if (list.length === 0) return false;
  let v = denyRulesByList.get(list);
  if (v === undefined) {
    v = list.some((o) => modelsHaveDeny(policyModel(o)));
    denyRulesByList.set(list, v);
  }
  return v;
}

function modelsHaveDeny(models: readonly PolicyModel[]): boolean {
  for (const m of models) for (const el of m.elements) if (el.deny) return true;
  return false;
}

/** Every policy model in scope for pods of a namespace: its CNPs and NetworkPolicies, plus all CCNPs. */
function modelsForNamespace(state: ClusterState, namespace: string): readonly PolicyModel[] {
  const cnps = listKey(state.list('CiliumNetworkPolicy', namespace));
  const nps = listKey(state.list('NetworkPolicy', namespace));
  const ccnps = clusterwideModels(state);
  let byNp = nsModelCache.get(cnps);
  if (!byNp) nsModelCache.set(cnps, (byNp = new ScopedWeakMap()));
  let byCcnp = byNp.get(nps);
  if (!byCcnp) byNp.set(nps, (byCcnp = new ScopedWeakMap()));
  let out = byCcnp.get(ccnps);
  if (!out) {
    const models: PolicyModel[] = [];
    for (const o of cnps) models.push(...policyModel(o));
    for (const o of nps) models.push(...policyModel(o));
    models.push(...ccnps);
    // A list built from this request's overlay is the request's own (see request-scope.ts).
    if (isEphemeral(cnps) || isEphemeral(nps) || isEphemeral(ccnps)) markEphemeral(models);
    byCcnp.set(ccnps, (out = models));
  }
  return out;
}

/**
 * The matchLabels key the agent overwrites with the policy namespace: CNP `k8s:io.kubernetes.pod.namespace`
 * (ParseToCiliumRule: EndpointSelector.AddMatch(podPrefixLbl, namespace)); NetworkPolicy
 * `io.kubernetes.pod.namespace` (parsePodSelector sets that key in MatchLabels before the `k8s:` prefix
 * is added).
 */
function overriddenNamespaceKey(model: PolicyModel): string {
  return model.ref.kind === 'NetworkPolicy' ? NAMESPACE_LABEL : 'k8s:' + NAMESPACE_LABEL;
}

/**
 * The subject selector as the agent applies it to pods of the policy namespace: only the matchLabels
 * entry the agent overwrites with the policy namespace is dropped (the caller checks the namespace).
 * Every other namespace constraint is kept and ANDed with it: `io.kubernetes.pod.namespace` without
 * prefix (an `any:` key for a CNP), matchExpressions (`NotIn`, `In` with other namespaces), so a CNP in
 * x whose endpointSelector says `io.kubernetes.pod.namespace: y` selects no pod.
 */
function effectiveSubject(model: PolicyModel): LabelSelector {
  if (model.ref.kind === 'CiliumClusterwideNetworkPolicy') return model.subjectSelector;
  let s = scopedSubjects.get(model);
  if (!s) {
    const sel = model.subjectSelector;
    const dropped = overriddenNamespaceKey(model);
    const matchLabels = Object.fromEntries(Object.entries(sel.matchLabels ?? {}).filter(([k]) => k !== dropped));
    s = { matchLabels, matchExpressions: [...(sel.matchExpressions ?? [])] };
    scopedSubjects.set(model, s);
  }
  return s;
}

/** Does this model's subject selector select this pod (namespace scoping included)? */
export function modelSelects(state: ClusterState, model: PolicyModel, pod: Pod): boolean {
  if (model.selectsNodes || !isCiliumEndpoint(pod)) return false;
  if (model.ref.kind !== 'CiliumClusterwideNetworkPolicy' && model.ref.namespace !== (pod.metadata.namespace ?? '')) return false;
  return matchesSelector(effectiveSubject(model), endpointLabels(state, pod));
}

// Cilium evaluates policy per identity (the endpoint label set), not per pod: replicas share the answer.
// Keyed by the namespace's model list, then by the values of the Namespace labels those models' subject
// selectors read (a Namespace update that changes other labels reuses the answers), then by the pod's
// identity key. The model list stays the same array across requests that do not change the namespace's
// policies; an admission overlay's own list is a new array, so its answers are dropped with it.
const NAME_LABEL = 'kubernetes.io/metadata.name';

/** The Namespace label keys (without the Cilium prefix) that some subject selector of `models` reads. */
function namespaceKeysRead(models: readonly PolicyModel[]): readonly string[] {
  let keys = namespaceKeysByModels.get(models);
  if (!keys) {
    const out = new Set<string>();
    const add = (raw: string): void => {
      const k = normalizeKey(raw);
      if (k.startsWith(NAMESPACE_LABELS_PREFIX)) out.add(k.slice(NAMESPACE_LABELS_PREFIX.length));
    };
    for (const m of models) {
      if (m.selectsNodes) continue;
      const sel = effectiveSubject(m);
      for (const k of Object.keys(sel.matchLabels ?? {})) add(k);
      for (const r of sel.matchExpressions ?? []) add(r.key);
    }
    keys = [...out].sort();
    namespaceKeysByModels.set(models, keys);
  }
  return keys;
}

/** The namespace and the values (or absence) of the Namespace labels `keys`, as endpointLabels sees them. */
function namespaceDigest(namespace: string, labels: Labels | undefined, keys: readonly string[]): string {
  let d = namespace;
  for (const k of keys) {
    const v = labels !== undefined && Object.hasOwn(labels, k) ? labels[k] : k === NAME_LABEL ? namespace : undefined;
    d += v === undefined ? '\u0000\u0002' : '\u0000\u0001' + v;
  }
  return d;
}

/** The policy models (from every CNP/CCNP/NetworkPolicy in the state) that select this pod. Indexed, not a scan. */
export function policiesSelecting(state: ClusterState, pod: Pod): readonly PolicyModel[] {
  if (!isCiliumEndpoint(pod)) return NO_MODELS;
  // Within one state revision the answer depends on the pod's identity alone (its namespace's labels and
  // models are fixed): one table lookup per call. Rules ask it several times per class and per request
  // (both directions, enforcement, every check); the long-lived state keeps its table across requests,
  // and across pod and EndpointSlice events (no answer reads another pod or a slice).
  const table = selectingTable(state);
  const id = podIdentityKey(pod);
  let hit = table.get(id);
  if (hit === undefined) {
    selectingMisses++;
    hit = selectingUncached(state, pod);
    if (table.size >= SELECTING_TABLE_LIMIT) table.clear(); // synthetic pods of many requests: stay bounded
    table.set(id, hit);
  }
  return hit;
}

/** policiesSelecting for many pods of one state: its table looked up once. */
export function selectingLookup(state: ClusterState): (pod: Pod) => readonly PolicyModel[] {
  const table = selectingTable(state);
  return (pod) => {
    if (!isCiliumEndpoint(pod)) return NO_MODELS;
    const hit = table.get(podIdentityKey(pod));
    return hit !== undefined ? hit : policiesSelecting(state, pod);
  };
}
const NO_MODELS: readonly PolicyModel[] = Object.freeze([]);
const NO_READS: readonly object[] = Object.freeze([]);
let selectingMisses = 0;

/** How many identities policiesSelecting has not found in its state's table so far (for tests). */
export function selectingTableMisses(): number {
  return selectingMisses;
}
const noReads = (): readonly object[] => NO_READS;
function selectingTable(state: ClusterState): Map<string, readonly PolicyModel[]> {
  return keptAcrossPodEvents(state, 'policiesSelectingById', noReads, newSelectingTable);
}
const newSelectingTable = (): Map<string, readonly PolicyModel[]> => new Map();
/** Identities kept per state revision (a 50k-pod cluster has ~10k; 4 x IDENTITY_CACHE_LIMIT). */
const SELECTING_TABLE_LIMIT = 40_000;

function selectingUncached(state: ClusterState, pod: Pod): readonly PolicyModel[] {
  const derived = selectingFromBase(state, pod);
  if (derived !== undefined) return derived;
  const namespace = pod.metadata.namespace ?? '';
  const models = modelsForNamespace(state, namespace);
  const keys = namespaceKeysRead(models);
  const digest = keys.length === 0 ? namespace : namespaceDigest(namespace, state.get('Namespace', undefined, namespace)?.metadata.labels, keys);
  let byNs = selectingByIdentity.get(models);
  if (!byNs) selectingByIdentity.set(models, (byNs = new Map()));
  let byId = byNs.get(digest);
  if (!byId) {
    if (byNs.size >= IDENTITY_CACHE_LIMIT) byNs.clear();
    byNs.set(digest, (byId = new Map()));
  }
  const id = podIdentityKey(pod);
  let result = byId.get(id);
  if (!result) {
    result = sharedSelectingList(state, models, pod);
    if (byId.size >= IDENTITY_CACHE_LIMIT) byId.clear(); // pods churn: bound the identities kept
    byId.set(id, result);
  }
  return result;
}

/**
 * The models of `models` that select `pod`, as one array per distinct answer of the list (by which of its
 * models select): identities with the same answer share it, so the caches keyed by a selecting list
 * (enforcement, shape keys, the overlay's derived lists) hold one entry per answer, not per identity
 * (issue 21, the heap at 50k pods: 9.5k arrays become 4.8k). Never modified (readonly to every caller:
 * one that pushed to it would change every identity's answer); not frozen, as the overlay's lists are not
 * either: loops over the two kinds of array stay monomorphic (frozen, the relabel request took ~10 ms more).
 */
function sharedSelectingList(state: ClusterState, models: readonly PolicyModel[], pod: Pod): readonly PolicyModel[] {
  let which = '';
  let picked: PolicyModel[] | undefined;
  for (let i = 0; i < models.length; i++) {
    const m = models[i]!;
    if (!modelSelects(state, m, pod)) continue;
    which += `${i},`;
    (picked ??= []).push(m);
  }
  if (picked === undefined) return NO_MODELS;
  let lists = selectingLists.get(models);
  if (lists === undefined) selectingLists.set(models, (lists = new Map()));
  let hit = lists.get(which);
  if (hit === undefined) {
    if (lists.size >= IDENTITY_CACHE_LIMIT) lists.clear();
    // slice(): an array of its own length (one built by push keeps spare capacity).
    hit = picked.slice();
    if (isEphemeral(models)) markEphemeral(hit);
    lists.set(which, hit);
  }
  return hit;
}

/**
 * policiesSelecting of an admission overlay, derived from its base's answer (kept per base revision, so
 * across requests) when the pod's Namespace object is the same in both: a model of both states selects
 * the pod in one iff in the other (same model object, same endpoint labels), so only the models the
 * overlay adds are tested. The answer keeps the order of the overlay's model list, as a filter of it
 * would. Undefined when `state` is not an overlay or the pod's Namespace is the changed object.
 */
function selectingFromBase(state: ClusterState, pod: Pod): readonly PolicyModel[] | undefined {
  const delta = overlayDelta(state);
  if (delta === undefined) return undefined;
  const namespace = pod.metadata.namespace ?? '';
  if (delta.kind === 'Namespace' && delta.name === namespace) return undefined;
  const base = delta.base;
  const was = policiesSelecting(base, pod);
  // The two model lists of the namespace, once per namespace and overlay revision (not once per class).
  const lists = perRevision(state, 'selectingFromBaseLists', newListsTable);
  let pair = lists.get(namespace);
  if (pair === undefined) {
    const after = modelsForNamespace(state, namespace);
    const before = modelsForNamespace(base, namespace);
    lists.set(namespace, (pair = after === before ? SAME_LISTS : listPair(before, after, delta)));
  }
  if (pair === SAME_LISTS) return was;
  const { after, inBefore } = pair;
  let mask = '';
  let out: PolicyModel[];
  if (pair.appended && !was.some((m) => pair.removed.has(m))) {
    // The usual request: models added after every kept one (a CREATE, or the last policy's update) and
    // none of this pod's removed: the base's answer plus the added models that select the pod.
    out = [];
    for (const m of pair.added) {
      const keep = modelSelects(state, m, pod);
      mask += keep ? '1' : '0';
      if (keep) out.push(m);
    }
    if (out.length === 0) return was;
    out = [...was, ...out];
  } else {
    let same = true;
    let i = 0;
    out = [];
    for (const m of after) {
      let keep: boolean;
      if (inBefore.has(m)) keep = was.includes(m);
      else {
        keep = modelSelects(state, m, pod);
        mask += keep ? '1' : '0';
      }
      if (keep) {
        if (same && was[i] !== m) same = false;
        out.push(m);
        i++;
      }
    }
    if (same && i === was.length) return was;
  }
  // One array per distinct answer (per base answer and which added models select the pod): the caches
  // keyed by a selecting list (enforcement, shape keys) then hit across classes.
  let byWas = derivedSelecting.get(after);
  if (!byWas) derivedSelecting.set(after, (byWas = new Map()));
  let byMask = byWas.get(was);
  if (!byMask) byWas.set(was, (byMask = new Map()));
  const hit = byMask.get(mask);
  if (hit !== undefined) return hit;
  if (isEphemeral(after)) markEphemeral(out);
  byMask.set(mask, out);
  return out;
}

interface ListPair {
  readonly after: readonly PolicyModel[];
  readonly inBefore: ReadonlySet<PolicyModel>;
  /** Models of the base's list that the overlay's lacks. */
  readonly removed: ReadonlySet<PolicyModel>;
  /** Models of the overlay's list that the base's lacks, in order. */
  readonly added: readonly PolicyModel[];
  /** Every added model comes after every model the two lists share. */
  readonly appended: boolean;
}
const NO_MODEL_SET: ReadonlySet<PolicyModel> = new Set();
const SAME_LISTS: ListPair = Object.freeze({ after: [], inBefore: new Set<PolicyModel>(), removed: new Set<PolicyModel>(), added: [], appended: true });

function listPair(before: readonly PolicyModel[], after: readonly PolicyModel[], changed: { readonly kind: string; readonly namespace: string; readonly name: string }): ListPair {
  const inBefore = modelSetOf(before);
  // The usual case, without building sets: the lists are equal but for the changed object's models
  // (every other object is the same, so are its models), which sit together (one object's models).
  const isChanged = (m: PolicyModel): boolean => m.ref.kind === changed.kind && m.ref.namespace === changed.namespace && m.ref.name === changed.name;
  let i = 0;
  let j = 0;
  let sameRest = true;
  while (sameRest) {
    while (i < before.length && isChanged(before[i]!)) i++;
    while (j < after.length && isChanged(after[j]!)) j++;
    if (i === before.length || j === after.length) {
      sameRest = i === before.length && j === after.length;
      break;
    }
    if (before[i] !== after[j]) sameRest = false;
    i++;
    j++;
  }
  if (sameRest) {
    const added = after.filter(isChanged);
    const first = after.findIndex(isChanged);
    const removed = before.filter(isChanged);
    return { after, inBefore, removed: removed.length === 0 ? NO_MODEL_SET : new Set(removed), added, appended: first < 0 || first === after.length - added.length };
  }
  const inAfter = new Set(after);
  const added: PolicyModel[] = [];
  let appended = true;
  for (const m of after) {
    if (!inBefore.has(m)) added.push(m);
    else if (added.length > 0) appended = false; // a shared model after an added one
  }
  return { after, inBefore, removed: new Set(before.filter((m) => !inAfter.has(m))), added, appended };
}
const newListsTable = (): Map<string, ListPair> => new Map();

/** The models of a list as a set (per list array). */
function modelSetOf(models: readonly PolicyModel[]): ReadonlySet<PolicyModel> {
  let set = modelSets.get(models);
  if (!set) modelSets.set(models, (set = new Set(models)));
  return set;
}

function uniqueRefs(models: readonly PolicyModel[]): PolicyRef[] {
  const out: PolicyRef[] = [];
  for (const m of models) {
    if (!out.some((r) => r.kind === m.ref.kind && r.namespace === m.ref.namespace && r.name === m.ref.name)) out.push(m.ref);
  }
  return out;
}

// Per selecting-model list (shared by an identity's pods) and settings: pods of one identity share it.

/** Whether policy enforces (default deny) a direction for a pod, and which policies cause it. */
export function enforcement(state: ClusterState, pod: Pod, direction: Direction): Enforcement {
  const settings = policySettings(state);
  if (settings.enablePolicy === 'never' || !isCiliumEndpoint(pod)) return { enforced: false, by: [] };
  return enforcementOfModels(policiesSelecting(state, pod), direction, settings);
}

/** enforcement() of a Cilium endpoint whose selecting models the caller already has (policiesSelecting). */
export function enforcementOfModels(models: readonly PolicyModel[], direction: Direction, settings: PolicySettings): Enforcement {
  if (settings.enablePolicy === 'never') return { enforced: false, by: [] };
  let byKey = enforcementCache.get(models);
  if (!byKey) enforcementCache.set(models, (byKey = new Map()));
  const key = enforcementKey(settings, direction);
  let out = byKey.get(key);
  if (!out) byKey.set(key, (out = computeEnforcement(models, direction, settings)));
  return out;
}

/** The enforcement cache's key for a direction under some settings: one string per settings object (hashed once). */
function enforcementKey(settings: PolicySettings, direction: Direction): string {
  let keys = enforcementKeys.get(settings);
  if (!keys) {
    const tail = `|${settings.enablePolicy}|${settings.nonDefaultDenyPolicies}`;
    enforcementKeys.set(settings, (keys = { ingress: 'ingress' + tail, egress: 'egress' + tail }));
  }
  return keys[direction];
}

function computeEnforcement(models: readonly PolicyModel[], direction: Direction, settings: PolicySettings): Enforcement {
  const enforcing = models.filter((m) => (settings.nonDefaultDenyPolicies ? m.enforces[direction] : m.hasSection[direction]));
  if (settings.enablePolicy === 'always') return { enforced: true, by: uniqueRefs(enforcing) };
  return { enforced: enforcing.length > 0, by: uniqueRefs(enforcing) };
}

/** Pods a policy object selects (any of its specs). */
export function podsSelectedBy(state: ClusterState, policy: PolicyObject): readonly Pod[] {
  return perRevisionFor(state, 'podsSelectedBy', policy, () => {
    const models = policyModel(policy).filter((m) => !m.selectsNodes);
    if (models.length === 0) return [];
    // Which pods the subject selectors pick depends only on the pods, the Namespaces (their labels) and
    // the selectors: an update that keeps a policy's selector (the common case), or any request's own
    // copy of a stored selector, reuses the answer across revisions that did not change pods or Namespaces.
    const key = JSON.stringify(models.map((m) => (m.ref.kind === 'CiliumClusterwideNetworkPolicy' ? ['', m.subjectSelector] : [m.ref.namespace, m.subjectSelector])));
    const podToken = state.contentToken('Pod');
    const nsToken = state.contentToken('Namespace');
    let byNs = selectedBySelector.get(podToken);
    if (!byNs) selectedBySelector.set(podToken, (byNs = new ScopedWeakMap()));
    let answers = byNs.get(nsToken);
    if (!answers) byNs.set(nsToken, (answers = { pods: 0, bySelector: new Map() }));
    const hit = answers.bySelector.get(key);
    if (hit) return hit;
    const pods = selectPods(state, models);
    // Bounded by the pods held, not the entries: a cluster-wide selector's answer is the whole cluster.
    if (answers.pods + pods.length > SELECTED_PODS_LIMIT) {
      answers.bySelector.clear();
      answers.pods = 0;
    }
    answers.bySelector.set(key, pods);
    answers.pods += pods.length;
    return pods;
  });
}

/**
 * The pods some model selects. A selector whose label-index candidates are few tests those pods; any
 * other is asked once per pod class (policy/classes.ts) of its namespace, or of the cluster, and the
 * answer is registered with the classes it took, so that the impact layer judges it per class too.
 */
function selectPods(state: ClusterState, models: readonly PolicyModel[]): readonly Pod[] {
  const byPod = new Set<Pod>();
  // The non-empty per-namespace answers, in order: when one model is asked per class, the answer is
  // their concatenation, registered as such (policy/classes.ts segmentsOf) so that filters and judging
  // passes over it are kept per namespace too. Only when several models are asked per class, or some
  // by pod, are their classes put in a set (every class of a cluster-wide `{}`: 9.5k adds at 50k pods,
  // 1-3 ms of CPU after each pod event, for the common answer of one model that does not need them).
  const segments: (readonly PodClass[])[] = [];
  let classModels = 0;
  // Whether every namespace's every class is selected by a cluster-wide model (`{}`, say): the answer is
  // then every pod of the state, classifiedPods' own array (and what is kept per it downstream).
  let everyPod = true;
  for (const m of models) {
    const ns = m.ref.kind === 'CiliumClusterwideNetworkPolicy' ? pinnedNamespace(m.subjectSelector) : m.ref.namespace;
    const pair = indexablePair(m.subjectSelector);
    const few = pair ? state.podsWithLabel(ns, pair.key, pair.value) : undefined;
    if (few !== undefined && few.length <= FEW_CANDIDATES) {
      for (const p of few) if (modelSelects(state, m, p)) byPod.add(p);
      continue;
    }
    classModels++;
    if (ns !== undefined) everyPod = false;
    for (const n of ns !== undefined ? [ns] : state.namespacesWith('Pod')) {
      const part = classesSelectedIn(state, m, n);
      if (part !== podClassesIn(state, n)) everyPod = false;
      if (part.length > 0) segments.push(part);
    }
  }
  if (byPod.size === 0 && classModels === 1) return everyPod ? classifiedPods(state) : podsOfSegments(segments);
  // The classes of every model asked per class, each once, in the order first seen.
  const byClass = new Set<PodClass>();
  for (const part of segments) for (const c of part) byClass.add(c);
  if (byPod.size === 0) return podsOfClasses([...byClass]);
  for (const c of byClass) for (const p of c.pods) byPod.add(p);
  return [...byPod];
}
/**
 * The classes of one namespace `model` selects, memoised per namespace (policy/memo.ts
 * classesSelectedByNamespace): after a pod event a cluster-wide selection asks the changed namespace again and
 * finds every other namespace's answer kept (at 50k pods, re-asking the three cluster-wide policies of
 * the benchmark cluster over every class took 13-17 ms of CPU after each pod event, issue 21). Kept by
 * what modelSelects reads of the model (subjectKey), not by the model object: a request's own policy
 * (a new object per request) finds the answers of an earlier request with the same subject selector,
 * and the same array, so what is kept per namespace answer downstream is found too.
 */
export function classesSelectedIn(state: ClusterState, model: PolicyModel, namespace: string): readonly PodClass[] {
  const classes = podClassesIn(state, namespace);
  if (classes.length === 0) return classes;
  // A model that selects nodes, or a namespaced policy's of another namespace, selects no pod here
  // (modelSelects): what is left to ask of a class is its effective subject selector alone.
  if (model.selectsNodes || (model.ref.kind !== 'CiliumClusterwideNetworkPolicy' && model.ref.namespace !== namespace)) return NO_CLASS_SELECTED;
  return classesSelectedBy(state, classes, namespace, effectiveSubject(model), subjectKey(model));
}

/**
 * The classes of `classes` (podClassesIn of `namespace`) that the effective subject selector `subject`
 * (whose text is `key`: subjectKey) selects, as modelSelects answers for a model that may select pods
 * of `namespace`: Cilium endpoints whose endpoint labels match.
 */
function classesSelectedBy(state: ClusterState, classes: readonly PodClass[], namespace: string, subject: LabelSelector, key: string): readonly PodClass[] {
  // The grouping of an admission overlay's own Pod list lives only for the request (request-scope.ts).
  if (isEphemeral(state.list('Pod', namespace))) markEphemeral(classes);
  let byNs = classesSelectedByNamespace.get(classes);
  if (!byNs) classesSelectedByNamespace.set(classes, (byNs = new ScopedWeakMap()));
  const nsObj = state.get('Namespace', undefined, namespace) ?? NO_NAMESPACE_OBJECT;
  let bySubject = byNs.get(nsObj);
  if (!bySubject) byNs.set(nsObj, (bySubject = new Map()));
  let out = bySubject.get(key);
  if (!out) {
    subjectSelections += classes.length;
    out = classes.filter((c) => isCiliumEndpoint(c.pods[0]!) && matchesSelector(subject, endpointLabels(state, c.pods[0]!)));
    if (out.length === classes.length) out = classes; // every class: the namespace's own array, and what is kept per it
    if (bySubject.size >= SUBJECTS_PER_NAMESPACE) bySubject.clear();
    bySubject.set(key, out);
  }
  return out;
}
let subjectSelections = 0;

/**
 * Fills classesSelectedIn's answers for the classes of `namespace`, for the subject selectors of the
 * state's policies in scope there that selectPods asks class by class (not those whose label-index
 * candidates are few). For serve's warm-up, a namespace per step: the answers are a table of the
 * state's selections, and a request's own policy with the same effective subject selector (a CCNP `{}`
 * and the namespaces' CNP `{}`, say) finds them.
 */
export function warmClassSelections(state: ClusterState, namespace: string): void {
  const classes = podClassesIn(state, namespace);
  if (classes.length === 0) return;
  // The empty selector (every Cilium endpoint of the namespace): a default-deny policy's, namespaced or
  // cluster-wide, asked of every namespace by the first CCNP `{}` whether or not a policy of the state has it.
  classesSelectedBy(state, classes, namespace, EVERY_ENDPOINT, subjectKeyOf(EVERY_ENDPOINT));
  for (const m of modelsForNamespace(state, namespace)) {
    if (m.selectsNodes) continue;
    const ns = m.ref.kind === 'CiliumClusterwideNetworkPolicy' ? pinnedNamespace(m.subjectSelector) : m.ref.namespace;
    if (ns !== undefined && ns !== namespace) continue;
    const pair = indexablePair(m.subjectSelector);
    const few = pair ? state.podsWithLabel(ns, pair.key, pair.value) : undefined;
    if (few !== undefined && few.length <= FEW_CANDIDATES) continue;
    classesSelectedIn(state, m, namespace);
  }
}

/** How many classes classesSelectedIn has asked a subject selector about (for tests that count per-class work). */
export function classSelections(): number {
  return subjectSelections;
}

/** classesSelectedIn's answers kept per namespace class array and Namespace object (a bound: selectors of requests pile up). */
const SUBJECTS_PER_NAMESPACE = 512;

/**
 * What modelSelects reads of a model for the pods of a namespace it may select (classesSelectedIn
 * answers the others itself), as text: its effective subject selector (effectiveSubject: the subject
 * selector less the key the agent overwrites with a namespaced policy's namespace). Neither the kind
 * nor the namespace: a CCNP's `{}` and each namespace's CNP `{}` select the same classes of that
 * namespace (every Cilium endpoint), and share the answer (the first cluster-wide `{}` request after
 * start-up finds every namespace's answer asked by the warm-up: 15 ms of CPU at 50k pods, issue 21).
 */
function subjectKey(model: PolicyModel): string {
  let k = subjectKeys.get(model);
  if (k === undefined) {
    k = subjectKeyOf(effectiveSubject(model));
    subjectKeys.set(model, k);
  }
  return k;
}
/** An effective subject selector as subjectKey's text. */
function subjectKeyOf(sel: LabelSelector): string {
  return JSON.stringify([sel.matchLabels ?? {}, sel.matchExpressions ?? []]);
}
/** The empty subject selector: every Cilium endpoint. */
const EVERY_ENDPOINT: LabelSelector = Object.freeze({});
/** classesSelectedIn's answer for a model that selects no pod of the namespace. */
const NO_CLASS_SELECTED: readonly PodClass[] = Object.freeze([]);
/** The key for a namespace without a Namespace object. */
const NO_NAMESPACE_OBJECT = {};

/** Up to this many label-index candidates, a selector is tested pod by pod (cheaper than its classes). */
const FEW_CANDIDATES = 64;

/** The namespace a CCNP subject selector is pinned to by the namespace label, if any. */
function pinnedNamespace(selector: LabelSelector): string | undefined {
  return Object.entries(selector.matchLabels ?? {}).find(([k]) => normalizeKey(k) === NAMESPACE_LABEL)?.[1];
}

// Per Pod content token, per Namespace content token (see ClusterState.contentToken): the pods each
// subject-selector set picks.
const SELECTED_PODS_LIMIT = 200_000;

/** A pod that does not exist, built so that a subject selector selects it. */
function syntheticPod(state: ClusterState, model: PolicyModel): Pod | undefined {
  const labels: Record<string, string> = {};
  let namespace = model.ref.kind === 'CiliumClusterwideNetworkPolicy' ? 'default' : model.ref.namespace;
  const put = (rawKey: string, value: string): void => {
    const key = normalizeKey(rawKey);
    if (key === NAMESPACE_LABEL) {
      // A namespaced policy only ever selects pods of its own namespace (see effectiveSubject).
      if (model.ref.kind === 'CiliumClusterwideNetworkPolicy') namespace = value;
    } else if (!key.includes(':') && !key.startsWith(NAMESPACE_LABELS_PREFIX) && !key.startsWith('io.cilium.k8s.policy.')) labels[key] = value;
  };
  for (const [k, v] of Object.entries(model.subjectSelector.matchLabels ?? {})) put(k, v);
  for (const r of model.subjectSelector.matchExpressions ?? []) {
    if (r.operator === 'In' && r.values?.[0] !== undefined) put(r.key, r.values[0]);
    else if (r.operator === 'Exists') put(r.key, labels[normalizeKey(r.key)] ?? 'synthetic');
  }
  const pod: Pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `(any pod selected by ${model.ref.name})`, namespace, labels: labels as Labels },
    spec: { containers: [] },
  };
  return modelSelects(state, model, pod) ? pod : undefined;
}

/**
 * The pods a policy is about: the live selected pods, or, if none, one synthetic pod built from the
 * subject selector's matchLabels in the policy namespace (so new namespaces are protected too).
 */
export function subjectPods(state: ClusterState, policy: PolicyObject): { pods: readonly Pod[]; synthetic: boolean } {
  // Cached so the synthetic pod is the same object within a revision (downstream caches key on it).
  return perRevisionFor(state, 'subjectPods', policy, () => computeSubjectPods(state, policy));
}

function computeSubjectPods(state: ClusterState, policy: PolicyObject): { pods: readonly Pod[]; synthetic: boolean } {
  const live = podsSelectedBy(state, policy);
  if (live.length > 0) return { pods: live, synthetic: false };
  const pods: Pod[] = [];
  for (const m of policyModel(policy)) {
    if (m.selectsNodes) continue;
    const p = syntheticPod(state, m);
    if (p) pods.push(p);
  }
  return { pods, synthetic: true };
}
