// Every memo of the policy layer, in one place (issue 20): what each one keys on and why its answer
// stays valid. Rules keep no caches; they call policy/impact functions that use these.
//
// The object-keyed ones are ScopedWeakMaps (see src/state/request-scope.ts): entries for per-request
// objects die with the request, and forgetCachedResults() (re-exported here; src/verdict/decide.ts calls
// it when a decision's budget runs out part way) empties all of them at once by bumping a generation
// counter. The text memos at the end hold parses of strings (addresses, CIDRs, DNS patterns): an answer
// there is complete or absent, never half-built, so they are kept, bounded by size.
// Pods, policy objects, Namespace objects and kind lists of a state are never modified (an update
// replaces the object or the list), which is what makes object-keyed memos safe.

import { KIND_NAMES, type KindName } from '../core/kinds.ts';
import type { ClusterState, KubeObject, LabelSelector, Labels, Node, Pod, PolicyObject, Service } from '../core/objects.ts';
import { overlayDelta } from '../state/overlay.ts';
import { forgetCachedResults, ScopedWeakMap } from '../state/request-scope.ts';
import type { Addr, ParsedIp } from './cidr.ts';
import type { CompiledPattern } from './dns-pattern.ts';
import type { Enforcement, PolicyModel } from './types.ts';

export { forgetCachedResults };

/** A named memo: what it is for (for readers, and the registry test that keeps names unique). */
export interface MemoInfo {
  readonly name: string;
  readonly purpose: string;
}

const registry: MemoInfo[] = [];

/** The memos declared in this module, by name and purpose. */
export function memos(): readonly MemoInfo[] {
  return registry;
}

/** A memo of a pure function of a string (parsing): kept across states, bounded (its user clears it past a size). */
function textMemo<V>(name: string, purpose: string): Map<string, V> {
  registry.push({ name, purpose });
  return new Map<string, V>();
}

// The memos below are declared once, at module level: their stable entries are held on their keys
// (ScopedWeakMap's onKey: no ephemeron per entry for V8's major collections to finish in their pause).
function memo<K extends object, V>(name: string, purpose: string): ScopedWeakMap<K, V> {
  registry.push({ name, purpose });
  return new ScopedWeakMap<K, V>({ onKey: true });
}

/**
 * A memo that forgetCachedResults() keeps (see ScopedWeakMap's keepOnForget): its entries are stored
 * only once computed whole, from memos kept too or by content. Per-request (ephemeral) keys still go
 * with their request.
 */
function keptMemo<K extends object, V>(name: string, purpose: string): ScopedWeakMap<K, V> {
  registry.push({ name, purpose });
  return new ScopedWeakMap<K, V>({ keepOnForget: true, onKey: true });
}

// ---------- per state revision / per content token (generic) ----------

interface Entry {
  readonly revision: number;
  readonly values: Map<string, unknown>;
  readonly perObject: Map<string, ScopedWeakMap<object, unknown>>;
}
const perState = memo<ClusterState, Entry>('perState', 'perRevision/perRevisionFor: derived data per ClusterState object, dropped when its revision changes');

function entry(state: ClusterState): Entry {
  let e = perState.get(state);
  if (!e || e.revision !== state.revision) {
    e = { revision: state.revision, values: new Map(), perObject: new Map() };
    perState.set(state, e);
  }
  return e;
}

const keptPerState = keptMemo<ClusterState, Entry>(
  'keptPerState',
  'keptPerRevision: per-class answers of a long-lived state (selecting lists, reachability, decision facts) that a budget cut keeps',
);

/**
 * Like perRevision, for values forgetCachedResults() may keep: `compute` must return a table whose
 * entries are each stored only once computed whole, from data that is kept too (policy models) or
 * compared by content. A review cut by its budget then leaves the long-lived state's answers to the
 * next review instead of making it recompute every class (and run out in turn).
 */
export function keptPerRevision<T>(state: ClusterState, key: string, compute: () => T): T {
  let e = keptPerState.get(state);
  if (!e || e.revision !== state.revision) {
    e = { revision: state.revision, values: new Map(), perObject: new Map() };
    keptPerState.set(state, e);
  }
  if (e.values.has(key)) return e.values.get(key) as T;
  const v = compute();
  e.values.set(key, v);
  return v;
}

// ---------- kept across pod events (issue 21: the first request after a pod event) ----------
//
// In a live cluster pods come and go all the time, and so do the EndpointSlices that follow them; every
// such event moves the state's revision, and a table kept per revision (keptPerRevision) is then built
// again for every class by the next request: 2-4x a warm request's cost at 50k pods. Most per-class
// answers do not read the pod set at all. A pod class's answer reads the class's own content (its key
// says what the class shares), the other kinds' objects, and a few pods and EndpointSlices by name: the
// question's destinations (DNS backends, API server endpoint pods) and the EndpointSlices the policy
// engine reads (the `default` namespace's, for the API server, and those of Services without a
// selector, for toServices peers). keptAcrossPodEvents keys a table by the content of every other kind
// (one token: stableContentToken) and checks that those few objects are the very same ones; a pod
// event elsewhere then keeps the table, and a class it adds is judged on its own when first asked.

/** The kinds a live cluster changes most: not in stableContentToken, read by name through a fingerprint. */
export const CHURN_KINDS: readonly KindName[] = ['Pod', 'EndpointSlice'];
const STABLE_KINDS: readonly KindName[] = KIND_NAMES.filter((k) => !CHURN_KINDS.includes(k));

/** stableContentToken's chain of tokens, one level per stable kind (kept by forgetCachedResults: each level is whole). */
const stableTokens = keptMemo<object, unknown>('stableTokens', 'one object per content of every kind but Pod and EndpointSlice (stableContentToken), a map level per kind');

/**
 * One object per content of every kind but CHURN_KINDS: the same object for two states (or revisions)
 * whose other kinds hold the same content (by their content tokens), a new one when any of them changes.
 */
export function stableContentToken(state: ClusterState): object {
  return perRevision(state, 'stableContentToken', () => {
    let m = stableTokens;
    for (let i = 0; i < STABLE_KINDS.length - 1; i++) {
      const token = state.contentToken(STABLE_KINDS[i]!);
      let next = m.get(token) as ScopedWeakMap<object, unknown> | undefined;
      if (next === undefined) m.set(token, (next = new ScopedWeakMap({ keepOnForget: true })));
      m = next;
    }
    const last = state.contentToken(STABLE_KINDS[STABLE_KINDS.length - 1]!);
    let t = m.get(last) as object | undefined;
    if (t === undefined) m.set(last, (t = {}));
    return t;
  });
}

interface CarriedTable {
  readonly reads: readonly object[];
  readonly value: unknown;
}
const carried = keptMemo<object, Map<string, CarriedTable>>(
  'carried',
  'keptAcrossPodEvents: tables per stable content token, per name, with the pod and EndpointSlice objects they read',
);

const sameObjects = (a: readonly object[], b: readonly object[]): boolean => {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
};

/**
 * Like keptPerRevision, but the table is kept across revisions that change only Pods and EndpointSlices,
 * as long as `reads()` (the pod and EndpointSlice objects the table's answers read by name, in a fixed
 * order) returns the very same objects. `compute` must return a table each of whose answers reads no
 * other pod or EndpointSlice than those and the class (or identity) it is keyed by; the same rules as
 * keptPerRevision's apply to its entries. An overlay of a churn kind (a request that changes a pod or
 * an EndpointSlice) gets a table of its own revision.
 */
export function keptAcrossPodEvents<T>(state: ClusterState, key: string, reads: () => readonly object[], compute: () => T): T {
  return keptPerRevision(state, key, () => {
    const d = overlayDelta(state);
    if (d !== undefined && CHURN_KINDS.includes(d.kind)) return compute();
    const token = stableContentToken(state);
    let tables = carried.get(token);
    if (tables === undefined) carried.set(token, (tables = new Map()));
    const r = reads();
    const hit = tables.get(key);
    if (hit !== undefined && sameObjects(hit.reads, r)) return hit.value as T;
    const value = compute();
    tables.set(key, { reads: r, value });
    return value;
  });
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
  if (!m) byContent.set(key, (m = new ScopedWeakMap(KEPT)));
  for (let i = 0; i < kinds.length - 1; i++) {
    const token = state.contentToken(kinds[i]!);
    let next = m.get(token) as ScopedWeakMap<object, unknown> | undefined;
    if (!next) m.set(token, (next = new ScopedWeakMap(KEPT)));
    m = next;
  }
  const last = state.contentToken(kinds[kinds.length - 1]!);
  if (m.has(last)) return m.get(last) as T;
  const v = compute();
  m.set(last, v);
  return v;
}
/**
 * perContentOf: one chain of maps per key (keys are fixed strings in the code, so this stays small).
 * Kept by forgetCachedResults: a value is stored once computed whole, and it reads only the content of
 * its kinds. Dropped, a budget cut (serve's warm-up cuts its cluster-wide decisions) made the next
 * request build new ones (every pod's classified array, the API server class key, the RBAC index), and
 * so miss every table kept per them (the class plans, the kept filters): issue 21, the first sends.
 */
const byContent = new Map<string, ScopedWeakMap<object, unknown>>();
const KEPT = { keepOnForget: true } as const;

// ---------- identity and class keys (policy/identity.ts, policy/selectors.ts) ----------
// Kept by forgetCachedResults (keptMemo): each is a pure function of an object that is never modified,
// stored whole. Dropped with the other memos, a review cut by its budget (the warm-up's cluster-wide
// ones are) made the next cluster-wide request build 50k pods' keys and 9.5k identities' labels again:
// 440 ms of CPU for the first CCNP `{}` after serve's warm-up at 50k pods (issue 21).

/**
 * The string keys kept per pod object (identity.ts, classes.ts), one record per pod. A WeakMap per key
 * held a 2 MB table each at 50k pods (an ephemeron table of 2^17 entries), six of them 12 MB; one record
 * per pod (8 fields, 88 bytes) holds the same (issue 21, the heap at 50k pods), kept on the pod object
 * (podKeys). Each field is set once computed whole, and a pod object is never modified, so the record
 * lives as long as the pod and forgetCachedResults() keeps it.
 */
export interface PodKeys {
  /** podRef: "namespace/name" (pod sets are keyed by it many times per request). */
  ref: string | undefined;
  /** podIdentityKey: Cilium's identity (namespace, service account, labels) as one string. */
  identity: string | undefined;
  /** podClassKey(pod, its own node). */
  classOwnNode: string | undefined;
  /** podClassKey(pod, '') (node not read by the check). */
  classNoNode: string | undefined;
  /** podClassKey(pod, '*') (not an API server node). */
  classAnyNode: string | undefined;
  /** ambientIngressClassKey. */
  ambient: string | undefined;
  /** The pod's own part of ingressShapeKey (mesh labels, annotations, ports, address family). */
  shape: string | undefined;
  /** podClassId: what makes pods interchangeable for every policy question, as one interned string. */
  classId: string | undefined;
}
const podKeyRecords = keptMemo<Pod, PodKeys>('podKeys', 'the string keys of a pod object (ref, identity, class keys, shape, class id), one record per pod');

/**
 * Where a pod's record is held: on the pod object itself, under a symbol no other code reads (not
 * enumerable: spreads, JSON and comparisons do not see it). A WeakMap entry per pod is an ephemeron, which
 * V8's major collections mark in their final pause: at 50k pods this table was the largest of them
 * (issue 21). A pod object that cannot take a property (frozen) keeps its record in the memo instead.
 */
const POD_KEYS = Symbol('meshguard.podKeys');
type KeyHolder = { [POD_KEYS]?: PodKeys };

/** The record of `pod`'s kept keys, created empty on first use. */
export function podKeys(pod: Pod): PodKeys {
  let r = (pod as KeyHolder)[POD_KEYS];
  if (r !== undefined) return r;
  r = podKeyRecords.get(pod);
  if (r === undefined) {
    // Every field from the start: one object shape for every record (fields held in the object itself).
    r = { ref: undefined, identity: undefined, classOwnNode: undefined, classNoNode: undefined, classAnyNode: undefined, ambient: undefined, shape: undefined, classId: undefined };
    if (Object.isExtensible(pod)) Object.defineProperty(pod, POD_KEYS, { value: r });
    else podKeyRecords.set(pod, r);
  }
  return r;
}

/** `pod`'s record if any key of it was computed (tests count what was asked). */
export function knownPodKeys(pod: Pod): Readonly<PodKeys> | undefined {
  return (pod as KeyHolder)[POD_KEYS] ?? podKeyRecords.get(pod);
}
const modelNumbers = pureMemo<PolicyModel, number>('modelNumbers', 'a number per policy model object, to key selecting lists by content without building text (mesh-memo.ts mayAdmitTcpByList)');
let nextModelNumber = 1;
/** A number of its own for a policy model object (the same while the object lives). */
export function modelNumber(m: PolicyModel): number {
  let n = modelNumbers.get(m);
  if (n === undefined) modelNumbers.set(m, (n = nextModelNumber++));
  return n;
}
export const rulesKeys = memo<readonly PolicyModel[], string>('rulesKeys', 'the selecting-model part of ingressShapeKey, per selecting-model list (shared by an identity)');
export const podIdentities = memo<Pod, { readonly namespace: object | undefined; readonly identity: unknown }>(
  'podIdentities',
  "a pod's policy identity (reachability.ts Identity) per pod object, valid while its Namespace object is the one it was built with",
);

// ---------- pod classes (policy/classes.ts) ----------

/**
 * A memo of a pure function of one object that is stored only once computed whole (never half-built):
 * forgetCachedResults() keeps it. Grouping 50k pods into classes costs ~0.1-1 s; were it dropped with the
 * other memos when a busy machine runs a review out of budget, every later review would pay it again and
 * run out too. Entries on their keys, as memo()'s, and no per-request map: an array a request builds (a
 * cluster-wide concatenation) may be kept past it by another memo, and its entry with it.
 */
function pureMemo<K extends object, V>(name: string, purpose: string): ScopedWeakMap<K, V> {
  registry.push({ name, purpose });
  return new ScopedWeakMap<K, V>({ keepOnForget: true, onKey: true, unscoped: true });
}

export const classParts = pureMemo<object, string>('classParts', 'the text of a label map, annotation map or container list in podClassId, per shared object (replicas share them)');
export const namespaceClasses = pureMemo<readonly Pod[], readonly PodClassLike[]>('namespaceClasses', "a namespace's pods grouped by class, per Pod list array of the namespace (a pod event regroups its namespace only)");
export const groupedArrays = keptMemo<readonly object[], readonly PodClassLike[]>(
  'groupedArrays',
  'the classes a pod array was built from (podsOfClasses), so the impact layer can judge it per class (a fact about an array never modified, registered whole: kept, as the arrays kept per content are)',
);

// ---------- whole-cluster class arrays kept per namespace (issue 21: after a pod event) ----------
//
// A pod event replaces one namespace's Pod list array, and so that namespace's class array
// (namespaceClasses); every other namespace keeps its arrays. A whole-cluster class array is built as
// the concatenation of the per-namespace ones (classSegments remembers which), and a filter or plan over
// it is kept per namespace part: after a pod event only the changed namespace is asked again, and the
// cluster's answer is assembled from the parts (no per-class question asked).

export const classSegments = keptMemo<readonly object[], readonly (readonly PodClassLike[])[]>(
  'classSegments',
  'the per-namespace class arrays (in order, none empty, each of one namespace) a class array is the concatenation of',
);
/** One filter's kept answers: per namespace class array, the classes kept; per pod array, the assembled answer. */
export interface KeptClassFilter {
  readonly bySegment: WeakMap<readonly object[], readonly PodClassLike[]>;
  readonly byPods: WeakMap<readonly object[], readonly object[]>;
}
export const keptClassFilters = keptMemo<object, KeptClassFilter>(
  'keptClassFilters',
  'filterPodsKept: per filter token (an object standing for everything the filter reads besides the class), the classes each namespace class array keeps, and the assembled pod arrays',
);
export const filterTokens = keptMemo<object, Map<string, object>>(
  'filterTokens',
  'filter tokens per object they read (a stable content token, an RBAC index...) and per text key (settings), so that equal inputs give the same token',
);
/** The xDS clients of one namespace's Pod list array and their classes (policy/control-plane.ts). */
export interface NamespaceXdsClients {
  readonly clients: readonly { readonly kind: string; readonly pod: Pod }[];
  readonly classOf: readonly number[];
  readonly classes: readonly { readonly kind: string; readonly pod: Pod }[];
}
export const xdsClientsByList = keptMemo<readonly Pod[], NamespaceXdsClients>(
  'xdsClientsByList',
  "the xDS clients of one namespace and their classes (kind and podClassKey without a node), per the namespace's Pod list array",
);
export const withoutBackendsBySegment = keptMemo<readonly object[], { readonly backends: string; readonly classes: readonly PodClassLike[] }>(
  'withoutBackendsBySegment',
  "withoutDnsBackends per namespace class array holding a backend's class, with the backends it left out by reference",
);

/** policy/classes.ts's PodClass, declared here so that this module imports nothing from its users. */
export interface PodClassLike {
  readonly key: string;
  readonly pods: readonly Pod[];
}

// ---------- selectors and models ----------

export const labelCache = keptMemo<object, Map<string, Labels>>('labelCache', 'endpoint labels (identity labels with namespace labels) per Namespace object, per pod identity');
export const pairCache = memo<object, readonly string[]>('pairCache', 'normalized matchLabels pairs per selector matchLabels object (selectors come from cached models)');
export const policyModels = keptMemo<PolicyObject, readonly PolicyModel[]>('policyModels', 'policyModel() per policy object (kept by forgetCachedResults: a pure function of an immutable object, stored whole; kept tables compare its models by identity)');
export const denyRulesByList = memo<readonly PolicyObject[], boolean>('denyRulesByList', 'hasDenyRules: does some policy of a CNP/CCNP list array have a deny element (a store keeps the array until that kind changes, so pod events keep it)');
export const ccnpModelCache = memo<readonly PolicyObject[], readonly PolicyModel[]>('ccnpModelCache', 'models of every CCNP, per CCNP list array');
export const nsModelCache = memo<readonly PolicyObject[], ScopedWeakMap<readonly PolicyObject[], ScopedWeakMap<readonly PolicyModel[], readonly PolicyModel[]>>>(
  'nsModelCache',
  "models in scope for a namespace, per (CNP list, NetworkPolicy list, CCNP models) arrays",
);
export const scopedSubjects = memo<PolicyModel, LabelSelector>('scopedSubjects', "a model's subject selector with the namespace key the agent overwrites, per model");
export const selectingByIdentity = memo<readonly PolicyModel[], Map<string, Map<string, readonly PolicyModel[]>>>(
  'selectingByIdentity',
  "policiesSelecting per namespace model list, per values of the Namespace labels its selectors read, per pod identity",
);
export const selectingLists = memo<readonly PolicyModel[], Map<string, readonly PolicyModel[]>>(
  'selectingLists',
  'one selecting list per distinct answer (which models select), per namespace model list: identities with the same answer share the array',
);
export const namespaceKeysByModels = memo<readonly PolicyModel[], readonly string[]>('namespaceKeysByModels', 'Namespace label keys the subject selectors of a model list read');
export const enforcementCache = memo<readonly PolicyModel[], Map<string, Enforcement>>('enforcementCache', 'enforcement per selecting-model list, per direction and settings');
export const modelSets = memo<readonly PolicyModel[], ReadonlySet<PolicyModel>>('modelSets', 'the models of a model list as a set, per list array');
export const derivedSelecting = memo<readonly PolicyModel[], Map<readonly PolicyModel[], Map<string, readonly PolicyModel[]>>>(
  'derivedSelecting',
  "an overlay's policiesSelecting derived from its base's, per overlay model list, per base answer, per which added models select the pod (one array per distinct answer)",
);
export const enforcementKeys = pureMemo<object, { readonly ingress: string; readonly egress: string }>(
  'enforcementKeys',
  "enforcementCache's key per direction, per PolicySettings object (built and hashed once, not per call)",
);
export const selectedBySelector = memo<object, ScopedWeakMap<object, { pods: number; bySelector: Map<string, readonly Pod[]> }>>(
  'selectedBySelector',
  'podsSelectedBy per Pod content token, per Namespace content token, per subject-selector set',
);

/**
 * The classes of one namespace a model's subject selector selects: per class-list array of the
 * namespace (policy/classes.ts podClassesIn, replaced only when a pod of that namespace changes), per
 * Namespace object (replaced by a relabel), per what the model's selection reads (its kind, namespace
 * and subject selector as text: a request's own policy finds an earlier request's answer). A pod event
 * makes a cluster-wide selection ask its own namespace again, not every class of the cluster (issue 21, churn).
 */
export const classesSelectedByNamespace = memo<readonly PodClassLike[], ScopedWeakMap<object, Map<string, readonly PodClassLike[]>>>(
  'classesSelectedByNamespace',
  "the classes of one namespace a model's subject selector selects, per class-list array of the namespace, per Namespace object, per subject key (kind, namespace, selector)",
);
export const subjectKeys = memo<PolicyModel, string>('subjectKeys', "a model's subject key (its effective subject selector as text: classesSelectedIn), per model");

// ---------- cluster, namespaces ----------

export const slicesReadByList = memo<readonly object[], { readonly services: readonly object[]; readonly read: readonly object[] }>(
  'slicesReadByList',
  "the EndpointSlices of one namespace the policy engine reads by name (endpointSlicesRead), per the namespace's EndpointSlice list array, checked against its Service list array",
);
export const nodeAddressCache = memo<readonly Node[], ReadonlyMap<string, string>>('nodeAddressCache', 'node name by address, per Node list array');
export const keysByList = memo<readonly KubeObject[], ReadonlySet<string>>('keysByList', 'Namespace label keys any selector of a policy list reads, per list array');
export const peerKeysByList = memo<readonly KubeObject[], ReadonlySet<string>>('peerKeysByList', 'Namespace label keys peer selectors of a policy list read, per list array');
/** Namespace label keys read by Cilium policies passing a filter: one memo per filter function (module-level functions). */
export const keysByFilter = new Map<(m: PolicyModel) => boolean, ScopedWeakMap<readonly KubeObject[], ReadonlySet<string>>>();
registry.push({ name: 'keysByFilter', purpose: 'Namespace label keys read by Cilium policies passing a filter, per filter, per list array' });
export const namespaceLabelCache = memo<object, Labels>('namespaceLabelCache', 'identity-filtered labels of a Namespace object');
export const firstMatchCache = memo<readonly object[], Map<string, string | null>>('firstMatchCache', 'first (meshed first) Namespace a selector matches, per Namespace list array, per selector text');
/** Whether a Namespace object matches a selector, per selector text (bounded by SELECTOR_CACHE_LIMIT at its user). */
export const nsMatchCache = new Map<string, ScopedWeakMap<object, boolean>>();
registry.push({ name: 'nsMatchCache', purpose: 'whether a Namespace object matches a selector, per selector text' });

// ---------- addresses ----------

export const ipIndexByList = memo<readonly Pod[], Map<string, Pod>>('ipIndexByList', 'IP -> pod, per namespace Pod list array');
export const podIpAnswers = memo<object, Map<string, Pod | null>>('podIpAnswers', 'the pod owning an IP, per Pod content token');
export const vipAnswers = memo<object, Map<string, Service | null>>('vipAnswers', 'the Service owning a ClusterIP, per Service content token');
export const vipIndexByList = memo<readonly Service[], Map<string, Service>>('vipIndexByList', 'ClusterIP -> Service, per namespace Service list array');
export const apiserverTargetCache = memo<object, ScopedWeakMap<object, { svc: unknown; target: unknown }>>(
  'apiserverTargetCache',
  'apiserverTarget per default-namespace EndpointSlice list, per node address map (checked against the kubernetes Service)',
);

// ---------- L7 ----------

export const l7EgressByObj = memo<object, readonly PolicyModel[]>('l7EgressByObj', 'stream-L7 egress models of a Cilium policy object');
export const l7EgressByList = memo<readonly object[], readonly { obj: object; models: readonly PolicyModel[] }[]>('l7EgressByList', 'Cilium policies with stream-L7 egress, per policy list array');
export const l7IngressByObj = memo<object, readonly PolicyModel[]>('l7IngressByObj', 'stream-L7 ingress models of a Cilium policy object');
export const l7IngressByList = memo<readonly object[], readonly { obj: object; models: readonly PolicyModel[] }[]>('l7IngressByList', 'Cilium policies with stream-L7 ingress, per policy list array');

// ---------- impact ----------

/** What touchedPods keeps per change: the states it was asked about and one answer per direction. */
export interface TouchedMemo {
  readonly before: ClusterState;
  readonly after: ClusterState;
  /** Their revisions: a live state may take watch events between two rules of a sliced review. */
  readonly beforeRevision: number;
  readonly afterRevision: number;
  readonly answers: Map<string, unknown>;
}
export const fqdnPeerLists = pureMemo<readonly PolicyModel[], boolean>('fqdnPeerLists', 'does some element of a model array have an FQDN peer (fromBasePass keeps egress verdicts per model array only without one)');
export const classPlans = pureMemo<readonly object[], Map<object, unknown>>('classPlans', 'a judging pass\'s plan (units, their class keys) per classes array and class-key function (classPlan)');
export const withoutBackendsByPods = pureMemo<readonly object[], { readonly backends: string; readonly pods: readonly object[] }>(
  'withoutBackendsByPods',
  'withoutDnsBackends per pod array (a classified array is kept until a pod changes), with the backends it left out by reference',
);
export const apiserverClientTokens = keptMemo<object, WeakMap<object, object>>(
  'apiserverClientTokens',
  "apiserverClients' filter token per RBAC index, per configured clients array",
);
export const nodeTokenSplits = memo<object, { readonly token: object; readonly split: readonly (readonly object[])[] | null }>(
  'nodeTokenSplits',
  "a pod class's pods split by a class key's node token (null: one token for every pod), per class and token function",
);
export const touchedByChange = memo<object, TouchedMemo>('touchedByChange', 'impact/touchedPods per change object, per (before, after) and direction: several rules ask it of one request');

// ---------- parsing (pure functions of a string; bounded by their users) ----------

export const ipCache = textMemo<ParsedIp>('ipCache', 'canonical text and family of an IP address string (cleared past 100,000)');
export const addrCache = textMemo<Addr | null>('addrCache', 'parsed address of an IP string (cleared past 4,096)');
export const cidrCache = textMemo<[Addr, number] | null>('cidrCache', 'parsed prefix of a CIDR string (cleared past 10,000)');
export const identityLabelKeys = textMemo<boolean>('identityLabelKeys', "identityLabelKept per label key: the agent's default label filter (a dozen regular expressions) once per key (cleared past 10,000)");
export const directionFactsByContent = textMemo<{ readonly denyBy: readonly object[]; readonly allowBy: readonly object[] }>(
  'directionFactsByContent',
  "an overlay pass's base decision facts (policy refs with a matching deny, with a matching allow), one frozen object per content (cleared past 50,000)",
);
export const compiledDnsPatterns = textMemo<CompiledPattern | null>('compiledDnsPatterns', 'compiled matchPattern/matchName text (cleared at MAX_COMPILED)');
