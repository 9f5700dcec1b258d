// Pod classes (issue 21): pods that are interchangeable for every policy question, grouped once per pod
// list, so that selection, before/after judging and victim counting cost per class, not per pod.
//
// Two pods share a class when they have the same namespace, service account, labels (less the labels
// that only name one rollout or one pod: LABELS_PER_POD, all dropped from identities by Cilium's default
// label filter), annotations, containers (names, images, ports), host network, phase and address
// family, and, for host-network pods, the same node. What differs within a class is what names a pod
// (name, uid, owner, IP) and, for pod-network pods, its node: checks that read the node (node-level DNS
// or API server targets) say so (ClassKeyFn.nodeToken) and are judged per class and node.
//
// The grouping of a namespace is memoised by the state's pod list array of that namespace, which a
// store keeps until a pod of that namespace changes (and an admission overlay passes through when it
// changes no pod): a pod event regroups one namespace, not the cluster. Arrays of pods built from
// classes are registered with their classes (groupsOf), so that the impact layer's judging, filters
// and unions can work per class on them; any other array is judged pod by pod, as before.

import type { ClusterState, Pod } from '../core/objects.ts';
import { internKey } from '../state/intern.ts';
import { isEphemeral, markEphemeral } from '../state/request-scope.ts';
import { ipFamily } from './cidr.ts';
import { classParts, classPlans, classSegments, filterTokens, groupedArrays, keptClassFilters, namespaceClasses, nodeTokenSplits, perContentOf, podKeys, type KeptClassFilter } from './memo.ts';

/** One class: its key and its pods (the first one stands for all). */
export interface PodClass {
  readonly key: string;
  readonly pods: readonly Pod[];
}

/**
 * Labels that name one rollout or one pod, left out of a pod's class: Cilium's default identity-label
 * filter drops each of them (see identityLabelKept), so no Cilium or NetworkPolicy selector matches on
 * them; selecting one rollout's pods by them in an Istio policy or a client selector is not supported.
 */
export const LABELS_PER_POD: readonly string[] = [
  'pod-template-hash',
  'pod-template-generation',
  'controller-revision-hash',
  'controller-uid',
  'statefulset.kubernetes.io/pod-name',
  'apps.kubernetes.io/pod-index',
  'batch.kubernetes.io/controller-uid',
  'batch.kubernetes.io/job-completion-index',
];
const PER_POD = new Set(LABELS_PER_POD);

/** The class key of a pod (interned: pods of one class share the string). Computed once per pod object. */
export function podClassId(pod: Pod): string {
  const r = podKeys(pod);
  let key = r.classId;
  if (key === undefined) {
    const m = pod.metadata;
    const s = pod.spec;
    const status = pod.status;
    // Label maps, annotation maps and container lists are shared by replicas (the transform interns
    // them): each one's text is built once (partText), so a pod costs a few lookups and one string.
    const ips = [status?.podIP, ...(status?.podIPs ?? []).map((x) => x.ip)].map((ip) => (ip ? ipFamily(ip) : '')).join(',');
    key = internKey(
      [
        m.namespace ?? '',
        s.serviceAccountName || 'default',
        s.hostNetwork === true ? `h:${s.nodeName ?? ''}` : 'p',
        status?.phase ?? '',
        ips,
        partText(m.labels, labelsText),
        partText(m.annotations, mapText),
        partText(s.containers, JSON.stringify),
        partText(s.initContainers, JSON.stringify),
      ].join('\u0000'),
    );
    r.classId = key;
  }
  return key;
}

function partText<T extends object>(part: T | undefined, text: (part: T) => string): string {
  if (part === undefined) return '';
  let t = classParts.get(part);
  if (t === undefined) classParts.set(part, (t = text(part)));
  return t;
}
/** Pod labels less LABELS_PER_POD, sorted, as text. */
function labelsText(labels: Readonly<Record<string, string>>): string {
  return JSON.stringify(
    Object.keys(labels)
      .filter((k) => !PER_POD.has(k))
      .sort()
      .map((k) => [k, labels[k]]),
  );
}
function mapText(map: Readonly<Record<string, string>>): string {
  return JSON.stringify(
    Object.keys(map)
      .sort()
      .map((k) => [k, map[k]]),
  );
}

/** Groups pods by class, in the order of each class's first pod. */
function group(pods: readonly Pod[]): readonly PodClass[] {
  const byKey = new Map<string, Pod[]>();
  for (const p of pods) {
    const k = podClassId(p);
    const g = byKey.get(k);
    if (g) g.push(p);
    else byKey.set(k, [p]);
  }
  const out: PodClass[] = [];
  // slice(): a class's pods in an array of their own length (grown by push, an array of 2-16 pods keeps
  // room for 17-40: 10k classes at 50k pods, issue 21's heap).
  for (const [key, members] of byKey) out.push({ key, pods: members.length > 1 ? members.slice() : members });
  return out;
}

/** The classes of the pods of one namespace, or of every namespace (memoised, see above). */
export function podClassesIn(state: ClusterState, namespace?: string): readonly PodClass[] {
  if (namespace !== undefined) {
    const list = state.list('Pod', namespace);
    if (list.length === 0) return NO_CLASSES;
    let c = namespaceClasses.get(list);
    if (!c) namespaceClasses.set(list, (c = group(list)));
    return c;
  }
  return perContentOf(state, 'podClassesAll', ['Pod'], () => {
    const segments: (readonly PodClass[])[] = [];
    for (const ns of state.namespacesWith('Pod')) {
      const part = podClassesIn(state, ns);
      if (part.length > 0) segments.push(part);
    }
    return joinSegments(segments);
  });
}

/**
 * The per-namespace class arrays `groups` is the concatenation of (each one namespace's, none empty, in
 * order), when it was built so (podClassesIn of every namespace, filterPodsKept), else undefined.
 */
export function segmentsOf(groups: readonly PodClass[]): readonly (readonly PodClass[])[] | undefined {
  return classSegments.get(groups) as readonly (readonly PodClass[])[] | undefined;
}

/** The pods of `segments` (per-namespace class arrays, in order) as one array registered with their classes and segments. */
export function podsOfSegments(segments: readonly (readonly PodClass[])[]): readonly Pod[] {
  return podsOfClasses(joinSegments(segments));
}

/** The classes of `segments` (per-namespace class arrays, in order) as one array, registered with them. */
function joinSegments(segments: readonly (readonly PodClass[])[]): readonly PodClass[] {
  let n = 0;
  for (const seg of segments) n += seg.length;
  const flat: PodClass[] = new Array(n);
  let i = 0;
  for (const seg of segments) for (const c of seg) flat[i++] = c;
  classSegments.set(flat, segments);
  return flat;
}
const NO_CLASSES: readonly PodClass[] = Object.freeze([]);

/** The pods of `classes` as one array, registered with them (see groupsOf). */
export function podsOfClasses(classes: readonly PodClass[]): readonly Pod[] {
  if (classes.length === 1) {
    const only = classes[0]!.pods;
    if (!groupedArrays.has(only)) groupedArrays.set(only, classes);
    return only;
  }
  // Sized up front: an array of every pod (50k) grown push by push is copied over and over.
  let n = 0;
  for (const c of classes) n += c.pods.length;
  const pods: Pod[] = new Array(n);
  let i = 0;
  for (const c of classes) for (const p of c.pods) pods[i++] = p;
  groupedArrays.set(pods, classes);
  return pods;
}

/** Every pod of the state (of one namespace) as an array registered with its classes. */
export function classifiedPods(state: ClusterState, namespace?: string): readonly Pod[] {
  if (namespace !== undefined) return podsOfClasses(podClassesIn(state, namespace));
  return perContentOf(state, 'classifiedPodsAll', ['Pod'], () => podsOfClasses(podClassesIn(state)));
}

/** Registers `pods` as made of `classes` (each pod of `pods` in exactly one of them). */
export function withClasses<T extends readonly Pod[]>(pods: T, classes: readonly PodClass[]): T {
  groupedArrays.set(pods, classes);
  return pods;
}

/** The classes an array of pods was built from (podsOfClasses, filterPods...), or undefined. */
export function groupsOf<T>(items: readonly T[]): readonly PodClass[] | undefined {
  return groupedArrays.get(items as readonly object[]);
}

/**
 * A class-key function of the impact layer's judging (compareLoss, compareReach, judgeByClass). One that
 * reads a pod's node (for pod-network pods) sets `nodeToken`: pods of one class with the same token get
 * the same key, so a class is judged once per token rather than once per pod.
 */
export type ClassKeyFn = ((pod: Pod) => string) & { readonly nodeToken?: (pod: Pod) => string };

/**
 * The pods of class `c` split by `nodeToken` (in the order of each token's first pod), or undefined when
 * every pod has the same token (usually: say, none runs on an API server node). Kept per class and token
 * function: a class key function kept across requests (apiserverClassKey) splits each class once.
 */
export function splitByNodeToken(c: PodClass, nodeToken: (pod: Pod) => string): readonly (readonly Pod[])[] | undefined {
  const pods = c.pods;
  if (pods.length === 1) return undefined;
  const hit = nodeTokenSplits.get(c);
  if (hit !== undefined && hit.token === nodeToken) return (hit.split ?? undefined) as readonly (readonly Pod[])[] | undefined;
  const first = nodeToken(pods[0]!);
  let i = 1;
  while (i < pods.length && nodeToken(pods[i]!) === first) i++;
  let split: Pod[][] | null = null;
  if (i < pods.length) {
    const byToken = new Map<string, Pod[]>();
    for (const p of pods) {
      const t = nodeToken(p);
      const g = byToken.get(t);
      if (g) g.push(p);
      else byToken.set(t, [p]);
    }
    split = [...byToken.values()];
  }
  nodeTokenSplits.set(c, { token: nodeToken, split });
  return split ?? undefined;
}

/**
 * `key`, but undefined for a pod of the class of one of `pods` (a question's destinations, which such a
 * pod may be: judged on its own). A class key starts with the namespace, so only pods of the
 * destinations' namespaces have their class looked up.
 */
export function outsideClassesOf(pods: readonly Pod[], key: (pod: Pod) => string): (pod: Pod) => string | undefined {
  const classes = new Set(pods.map(podClassId));
  const namespaces = new Set(pods.map((p) => p.metadata.namespace ?? ''));
  return (pod) => (namespaces.has(pod.metadata.namespace ?? '') && classes.has(podClassId(pod)) ? undefined : key(pod));
}

/**
 * A judging pass's plan over classes `groups` for the class key `classKey`: the units judged (a class, or
 * its pods with one node token: splitByNodeToken), each unit's key as an index into `keys` (distinct, in
 * the order of their first unit). Kept per classes array and key function (a key function must answer
 * the same for a pod object every time: the class keys are computed once per pod and kept): a pass over
 * a kept array (every pod of a state, its DNS clients) computes no key.
 */
export interface ClassPlan {
  readonly units: readonly (readonly Pod[])[];
  readonly keyIndex: readonly number[];
  readonly keys: readonly string[];
}

export function classPlan(groups: readonly PodClass[], classKey: ClassKeyFn): ClassPlan {
  let byFn = classPlans.get(groups);
  if (byFn === undefined) classPlans.set(groups, (byFn = new Map()));
  let plan = byFn.get(classKey) as ClassPlan | undefined;
  if (plan === undefined) {
    // A concatenation of per-namespace class arrays: each one's plan is kept per its array and key
    // function (it reads the array's classes and the key function's answer for their pods, fixed per pod
    // object; no other pod), so a pod event, which replaces one namespace's array, leaves the others'
    // plans, and the whole plan is assembled from them without computing a key.
    const segments = segmentsOf(groups);
    plan =
      segments === undefined || segments.length === 0
        ? computeClassPlan(groups, classKey)
        : segments.length === 1
          ? classPlan(segments[0]!, classKey)
          : joinPlans(segments.map((seg) => classPlan(seg, classKey)));
    if (byFn.size >= 8) byFn.clear(); // a key function made per request would otherwise pile up
    byFn.set(classKey, plan);
  }
  return plan;
}

let plannedClasses = 0;

/** How many classes classPlan has computed a key for (for tests that count per-class work). */
export function classPlanComputations(): number {
  return plannedClasses;
}

function computeClassPlan(groups: readonly PodClass[], classKey: ClassKeyFn): ClassPlan {
  plannedClasses += groups.length;
  const nodeToken = classKey.nodeToken;
  const units: (readonly Pod[])[] = [];
  const keyIndex: number[] = [];
  const keys: string[] = [];
  const index = new Map<string, number>();
  const add = (members: readonly Pod[]): void => {
    const key = classKey(members[0]!);
    let k = index.get(key);
    if (k === undefined) {
      k = keys.length;
      keys.push(key);
      index.set(key, k);
    }
    units.push(members);
    keyIndex.push(k);
  };
  for (const c of groups) {
    // Usually every pod of the class has the same token (say, none runs on an API server node).
    const split = nodeToken === undefined ? undefined : splitByNodeToken(c, nodeToken);
    if (split === undefined) add(c.pods);
    else for (const members of split) add(members);
  }
  return { units, keyIndex, keys };
}

/**
 * The plan of a concatenation of class arrays from the plans of its parts: the same units in the same
 * order, each distinct key once (in the order of its first unit), as computeClassPlan over the whole.
 */
function joinPlans(parts: readonly ClassPlan[]): ClassPlan {
  let n = 0;
  for (const part of parts) n += part.units.length;
  const units: (readonly Pod[])[] = new Array(n);
  const keyIndex: number[] = new Array(n);
  const keys: string[] = [];
  const index = new Map<string, number>();
  let u = 0;
  for (const part of parts) {
    const remap = new Array<number>(part.keys.length);
    for (let k = 0; k < part.keys.length; k++) {
      const key = part.keys[k]!;
      let i = index.get(key);
      if (i === undefined) {
        i = keys.length;
        keys.push(key);
        index.set(key, i);
      }
      remap[k] = i;
    }
    for (let j = 0; j < part.units.length; j++, u++) {
      units[u] = part.units[j]!;
      keyIndex[u] = remap[part.keyIndex[j]!]!;
    }
  }
  return { units, keyIndex, keys };
}

/** Marks a class-key function as reading the node through `nodeToken`. */
export function readsNode(fn: (pod: Pod) => string, nodeToken: (pod: Pod) => string): ClassKeyFn {
  return Object.assign(fn, { nodeToken });
}

/**
 * The pods of `pods` whose class `keep` accepts, asked once per class when `pods` is registered with
 * its classes (the answer must then depend only on what a class shares), else once per pod.
 */
export function filterPods(pods: readonly Pod[], keep: (pod: Pod) => boolean): readonly Pod[] {
  const groups = groupsOf(pods);
  if (!groups) return pods.filter(keep);
  const kept = groups.filter((c) => keep(c.pods[0]!));
  return kept.length === groups.length ? pods : podsOfClasses(kept);
}

let keptFilterJudged = 0;

/** How many classes filterPodsKept has asked its predicate about (for tests that count per-class work). */
export function keptFilterJudgements(): number {
  return keptFilterJudged;
}

/**
 * An object standing for (`of`, `key`): the same object for the same pair (kept while `of` lives), for
 * filterPodsKept's token when a filter reads an object (a content token, an index) and some settings.
 */
export function filterToken(of: object, key: string): object {
  let m = filterTokens.get(of);
  if (m === undefined) filterTokens.set(of, (m = new Map()));
  let t = m.get(key);
  if (t === undefined) {
    if (m.size >= 16) m.clear(); // settings made per request would otherwise pile up
    m.set(key, (t = {}));
    if (isEphemeral(of)) markEphemeral(t); // a request's own (an overlay's token): what is kept per it goes with the request
  }
  return t;
}

/**
 * filterPods(pods, keep), kept per namespace: when `pods` is a concatenation of per-namespace class arrays
 * (every pod of a state: classifiedPods, or a filterPodsKept answer over it), each namespace's kept
 * classes are kept per its class array under `token`, and the answer is assembled from them. After a
 * pod event only the changed namespace's classes are asked about (the others' arrays are the same).
 * `token` must stand for everything `keep` reads besides the class it is asked about (a new token when
 * any of that changes), and `keep` must answer the same for every pod of a class. Same answer as
 * filterPods: the same pods in the same order (`pods` itself when every class is kept).
 */
export function filterPodsKept(pods: readonly Pod[], token: object, keep: (pod: Pod) => boolean): readonly Pod[] {
  let kept = keptClassFilters.get(token);
  if (kept === undefined) keptClassFilters.set(token, (kept = { bySegment: new WeakMap(), byPods: new WeakMap() }));
  const groups = groupsOf(pods);
  const hit = kept.byPods.get(pods);
  // (Used only while still registered with its classes: a request's own array's registration goes with it.)
  if (hit !== undefined && (hit === pods || groups === undefined || groupsOf(hit) !== undefined)) return hit as readonly Pod[];
  const segments = groups === undefined ? undefined : segmentsOf(groups);
  if (segments === undefined) {
    const whole = filterPods(pods, keep);
    kept.byPods.set(pods, whole);
    return whole;
  }
  const parts: (readonly PodClass[])[] = [];
  let same = true;
  for (const seg of segments) {
    const part = keptSegmentPart(kept, seg, keep);
    if (part !== seg) same = false;
    if (part.length > 0) parts.push(part);
  }
  const out = same ? pods : podsOfSegments(parts);
  kept.byPods.set(pods, out);
  return out;
}

/** The classes of one namespace's class array `seg` that `keep` accepts, kept in `kept` (`seg` itself when every one is). */
function keptSegmentPart(kept: KeptClassFilter, seg: readonly PodClass[], keep: (pod: Pod) => boolean): readonly PodClass[] {
  let part = kept.bySegment.get(seg) as readonly PodClass[] | undefined;
  if (part === undefined) {
    keptFilterJudged += seg.length;
    part = seg.filter((c) => keep(c.pods[0]!));
    if (part.length === seg.length) part = seg;
    kept.bySegment.set(seg, part);
  }
  return part;
}

/**
 * Fills filterPodsKept's answer for one namespace's class array `seg` (podClassesIn) under `token`, as a
 * later filterPodsKept over any concatenation holding `seg` would (for warm-ups: a namespace per step).
 * Returns that namespace part: the kept classes array (`seg` itself when every class is kept).
 */
export function fillSegmentKept(seg: readonly PodClass[], token: object, keep: (pod: Pod) => boolean): readonly PodClass[] {
  if (seg.length === 0) return seg;
  let kept = keptClassFilters.get(token);
  if (kept === undefined) keptClassFilters.set(token, (kept = { bySegment: new WeakMap(), byPods: new WeakMap() }));
  return keptSegmentPart(kept, seg, keep);
}

/**
 * The union of two pod arrays (each pod once, by namespace/name): per class when both are registered
 * with classes of one grouping, else per pod.
 */
export function unionClassified(a: readonly Pod[], b: readonly Pod[], ref: (pod: Pod) => string): readonly Pod[] {
  if (a.length === 0) return b;
  if (b.length === 0 || a === b) return a;
  const ga = groupsOf(a);
  const gb = groupsOf(b);
  if (ga && gb) {
    const seen = new Set<PodClass>(ga);
    const extra = gb.filter((c) => !seen.has(c));
    return extra.length === 0 ? a : podsOfClasses([...ga, ...extra]);
  }
  const byKey = new Map<string, Pod>();
  for (const p of a) byKey.set(ref(p), p);
  for (const p of b) byKey.set(ref(p), p);
  return [...byKey.values()];
}
