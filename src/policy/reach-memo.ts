// Per-class reachability answers of the checks every rule asks of thousands of classes (can a pod reach
// DNS, the API server), kept per state content, and taken from an admission overlay's base when the
// overlay cannot have changed them (issue 21: judge only what a change alters).
//
// Why an overlay's answer can be its base's: a reachability decision between a source pod and a target
// reads (policy/reachability.ts) the policy settings, the selecting-model lists of the source (egress)
// and of the destination pod (ingress), the identities of both ends (pod labels, Namespace labels, node
// and API server addresses) and, for peers, Services, EndpointSlices and pods by address. An overlay that
// changes one policy object (CNP, CCNP, NetworkPolicy) changes none of those but the selecting-model
// lists, and only for the pods its old or new object selects. So when the source and every destination
// pod of a check keep the very same list (policiesSelecting returns the base's array then, see
// selectingFromBase), the check's answer is the base's. That is told without working out the overlay's
// list (keepsList): a class keeps its list when neither the changed object's old models nor its new ones
// select it. A class the change does select has its answer derived from the base's decisions and the
// changed object's new models (ReachQuestion.deriver, fromBasePass), which need no overlay list
// either: a request that selects every pod no longer builds 9.5k lists here. Targets that are FQDNs (whose allow depends on
// the DNS proxy seeing the lookup, i.e. on the DNS servers' lists too) are not asked through here.
//
// The base is the long-lived state: its table is filled by the first request of a revision and read by
// every later one, for the base half of before/after comparisons as for the classes a change cannot alter.
// A pod event moves the revision but keeps the table (memo.ts keptAcrossPodEvents): an answer reads of
// the pod set only its own class (the table's key) and the objects the question's `reads` returns (the
// destinations and what they come from, the EndpointSlices read by name), which must be the same.

import type { ClusterState, Pod } from '../core/objects.ts';
import { overlayDelta, type OverlayDelta } from '../state/overlay.ts';
import { BASE_FACTS_ONLY, changedSelectingLookup, recordDenials, recordingDenials, replayDenials, type ChangedPolicy } from './reachability.ts';
import type { Denial } from './types.ts';
import { podRef } from './identity.ts';
import { keptAcrossPodEvents, perRevision } from './memo.ts';
import { policySettings, selectingLookup, type PolicySettings } from './selection.ts';

/** A per-class check answered through memoReach. */
export interface ReachQuestion<V> {
  /** Names its table (fixed per question). */
  readonly name: string;
  /** Names the per-revision answer to "do the destinations keep their lists" (fixed per question). */
  readonly destsName: string;
  /** The pods whose ingress the check judges; undefined when they cannot be listed (no shortcut then). */
  readonly dests: (state: ClusterState) => readonly Pod[] | undefined;
  /**
   * The pod and EndpointSlice objects the answers read other than the class judged (the destinations,
   * what they are derived from, the EndpointSlices read by name): the table is kept across pod events
   * while these stay the same objects (memo.ts keptAcrossPodEvents).
   */
  readonly reads: (state: ClusterState) => readonly object[];
  readonly compute: (state: ClusterState, pod: Pod) => V;
  /**
   * The class key of pods of `state` for this check (undefined for a pod that must be judged on its own),
   * with what it reads of the state looked up once.
   */
  readonly keyer: (state: ClusterState) => (pod: Pod) => string | undefined;
  /**
   * The answer in an overlay `state` that changes the policy object `changed` over `base`, derived from
   * the base's decisions (fromBasePass, kept by the class key), for many pods of the
   * overlay: what it reads of the states looked up once; undefined (for a pod, or for the whole overlay)
   * where it cannot be derived.
   */
  readonly deriver?: (state: ClusterState, base: ClusterState, changed: ChangedPolicy) => ((pod: Pod, key: string) => V | undefined) | undefined;
}

const POLICY_KINDS: ReadonlySet<string> = new Set(['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy', 'NetworkPolicy']);

function policyOnlyDelta(state: ClusterState): OverlayDelta | undefined {
  const d = overlayDelta(state);
  return d !== undefined && POLICY_KINDS.has(d.kind) ? d : undefined;
}

/** Matches no policy: the changed object of an overlay that changes no policy. */
const NO_POLICY: ChangedPolicy = { kind: '', namespace: '', name: '' };

/**
 * The base and the changed policy of an overlay whose decisions fromBasePass can derive: one that
 * changes a policy object, or cilium-config's `enable-policy` alone between `default` and `always` (every
 * list, identity and matching rule stays; only enforcement differs, which the derivation takes from the
 * overlay). Undefined for any other state.
 */
function derivableDelta(state: ClusterState): { readonly base: ClusterState; readonly changed: ChangedPolicy } | undefined {
  const d = overlayDelta(state);
  if (d === undefined) return undefined;
  if (POLICY_KINDS.has(d.kind)) return { base: d.base, changed: d };
  const e = enablePolicyOnly(state);
  return e !== undefined ? { base: e.base, changed: NO_POLICY } : undefined;
}

/**
 * The base and both sides' settings of an overlay that changes kube-system/cilium-config and nothing the
 * policy engine reads but `enable-policy`, with neither side `never` (every selecting list, identity and
 * matching rule stays; only enforcement differs); undefined for any other state.
 */
export function enablePolicyOnly(state: ClusterState): { readonly base: ClusterState; readonly before: PolicySettings; readonly after: PolicySettings } | undefined {
  const d = overlayDelta(state);
  if (d === undefined || d.kind !== 'ConfigMap' || d.namespace !== 'kube-system' || d.name !== 'cilium-config') return undefined;
  const a = policySettings(d.base);
  const b = policySettings(state);
  const same =
    a.nonDefaultDenyPolicies === b.nonDefaultDenyPolicies &&
    a.cidrMatchesNodes === b.cidrMatchesNodes &&
    a.endPortSupported === b.endPortSupported &&
    a.peersLocalCluster === b.peersLocalCluster &&
    a.ipv4 === b.ipv4 &&
    a.ipv6 === b.ipv6 &&
    a.enablePolicy !== 'never' &&
    b.enablePolicy !== 'never';
  return same ? { base: d.base, before: a, after: b } : undefined;
}

/**
 * Does `pod` keep its selecting-model list (the very array: policiesSelecting) in an overlay that
 * changes the policy object `changed`, told without working out the overlay's list: it is the base's
 * very array when neither the changed object's old models (in the
 * base's list) nor its new ones select the pod (policy/selection.ts selectingFromBase). For many pods of
 * one overlay: the lists are looked up once.
 */
function keepsListTest(state: ClusterState, base: ClusterState, changed: ChangedPolicy): (pod: Pod) => boolean {
  const baseSelecting = selectingLookup(base);
  const changedSel = changedSelectingLookup(state, changed);
  return (pod) => {
    for (const m of baseSelecting(pod)) if (m.ref.kind === changed.kind && m.ref.namespace === changed.namespace && m.ref.name === changed.name) return false;
    return changedSel(pod).length === 0;
  };
}

let computed = 0;
let derived = 0;

/** How many answers memoReach has computed so far (for tests that count the classes judged). */
export function reachComputations(): number {
  return computed;
}

/** How many answers memoReach has derived from a base's decisions so far (ReachQuestion.deriver). */
export function reachDerivations(): number {
  return derived;
}

/**
 * Answers kept per class, across the revisions that change pods and EndpointSlices q.reads() does not
 * return (a cluster has ~10k classes; synthetic pods and classes that come and go add some).
 */
const TABLE_LIMIT = 50_000;
const newTable = (): Map<string, unknown> => new Map();

/** memoReach(q, state, pod) for pods of one state: an asker, kept per question and state revision. */
export type ReachAsker<V> = ((pod: Pod) => V) & {
  /**
   * The answer when it is kept in a table (computed and kept now if it was not; under recordDenials, the
   * table of answers with their denials), undefined when it would not be kept (a pod judged on its own):
   * what a rule's prepare asks, which is worth asking only for answers its check will find.
   */
  readonly ifKept: (pod: Pod) => V | undefined;
};

/** `q.compute(state, pod)`, from its base's answer when the overlay cannot change it, memoised per class. */
export function memoReach<V>(q: ReachQuestion<V>, state: ClusterState, pod: Pod): V {
  return reachAsker(q, state)(pod);
}

/**
 * memoReach(q, state, ·): what it reads of the state for every class (the overlay's delta, the lists
 * kept test, the class key's per-state data, the table, the derivation's plan) looked up once per state
 * revision instead of once per class. A pass over classes takes it once and calls it per class.
 */
export function reachAsker<V>(q: ReachQuestion<V>, state: ClusterState): ReachAsker<V> {
  return perRevision(state, askerName(q), () => newAsker(q, state));
}

const askerNames = new WeakMap<object, string>();
function askerName(q: ReachQuestion<unknown>): string {
  let n = askerNames.get(q);
  if (n === undefined) askerNames.set(q, (n = `reachAsker:${q.name}`));
  return n;
}

function newAsker<V>(q: ReachQuestion<V>, state: ClusterState): ReachAsker<V> {
  const delta = policyOnlyDelta(state);
  const keeps = delta === undefined ? undefined : keepsListTest(state, delta.base, delta);
  const keyOf = q.keyer(state);
  let destsAreKept: boolean | undefined;
  let baseAsk: ReachAsker<V> | undefined;
  let table: Map<string, unknown> | undefined;
  // null: nothing to derive from (not a derivable overlay, or the question has no derivation).
  let derive: ((pod: Pod, key: string) => V | undefined) | null | undefined;
  const deriverOf = (): ((pod: Pod, key: string) => V | undefined) | null => {
    const d = derivableDelta(state);
    if (d === undefined) return null;
    return q.deriver?.(state, d.base, d.changed) ?? null;
  };
  // Under recordDenials: the answer and the denials its decision recorded, per class (see below).
  let decidedTable: Map<string, { readonly v: V; readonly denials: readonly Denial[]; readonly asked: string; readonly named: boolean }> | undefined;
  const ask = (pod: Pod, onlyKept: boolean): V | undefined => {
    // Asked under recordDenials (which rule decided a loss: impact/decided-by.ts): a kept or derived answer
    // would decide nothing there, so the question is judged afresh, and kept with the denials it recorded
    // per class of this state revision (a rule's prepare asks the lost classes' before its wording does).
    if (recordingDenials()) {
      const key = keyOf(pod);
      if (key === undefined) return onlyKept ? undefined : q.compute(state, pod);
      const hit = decidedTable?.get(key);
      if (hit !== undefined) {
        replayDenials(hit.named ? asFor(hit.denials, hit.asked, podRef(pod)) : hit.denials);
        return hit.v;
      }
      const r = recordDenials(() => q.compute(state, pod));
      replayDenials(r.denials);
      computed++;
      decidedTable ??= new Map();
      if (decidedTable.size >= TABLE_LIMIT) decidedTable.clear();
      const asked = podRef(pod);
      decidedTable.set(key, { v: r.result, denials: r.denials, asked, named: r.denials.some((d) => d.subject === asked) });
      return r.result;
    }
    const key = keyOf(pod);
    // A class answered in this state already (a rule's prepare asked every class before its check does):
    // its answer, without the kept-list test. A class the change leaves alone never enters the table.
    if (table !== undefined && key !== undefined) {
      const hit = table.get(key);
      if (hit !== undefined || table.has(key)) return hit as V;
    }
    if (keeps !== undefined && keeps(pod)) {
      if (destsAreKept === undefined) destsAreKept = destsKept(q, state, keeps);
      if (destsAreKept) {
        baseAsk ??= reachAsker(q, delta!.base);
        return onlyKept ? baseAsk.ifKept(pod) : baseAsk(pod);
      }
    }
    if (key === undefined) {
      if (onlyKept) return undefined;
      computed++;
      return q.compute(state, pod);
    }
    if (table === undefined) {
      table = keptAcrossPodEvents(state, q.name, () => q.reads(state), newTable);
      const hit = table.get(key);
      if (hit !== undefined || table.has(key)) return hit as V;
    }
    // A class the change does select: from the base's decisions and the changed object's new rules.
    let v: V | undefined;
    if (derive === undefined) derive = deriverOf();
    if (derive !== null) v = derive(pod, key);
    if (v !== undefined) derived++;
    else {
      v = q.compute(state, pod);
      computed++;
    }
    if (table.size >= TABLE_LIMIT) table.clear();
    table.set(key, v);
    return v;
  };
  return Object.assign((pod: Pod): V => ask(pod, false) as V, { ifKept: (pod: Pod) => ask(pod, true) });
}

/**
 * Denials kept for a class, as they read for another pod of it (`pod`, a `ns/name`): a decision made at
 * the pod first asked (`asked`: the source of an egress decision) names `pod` instead.
 */
function asFor(denials: readonly Denial[], asked: string, pod: string): readonly Denial[] {
  return asked === pod ? denials : denials.map((d) => (d.subject === asked ? { ...d, subject: pod } : d));
}

function destsKept<V>(q: ReachQuestion<V>, state: ClusterState, keeps: (pod: Pod) => boolean): boolean {
  const dests = q.dests(state);
  return dests !== undefined && dests.every(keeps);
}

/**
 * Fills what the requests read of the long-lived `state` for `q` and a pod's class, for many pods of
 * `state`: its answer (the table the "before" half of every comparison reads) and, when `q` has a
 * derivation, the base's decision facts an overlay's derivation reads for that class (fromBasePass
 * BASE_FACTS_ONLY: no overlay is built). Serve's warm-up calls it a class per step (issue 21: the first
 * cluster-wide request after start-up judged every class from cold tables). Both tables are kept across
 * pod events and by a budget cut (memo.ts keptAcrossPodEvents).
 */
export function baseTablesFiller<V>(q: ReachQuestion<V>, state: ClusterState): (pod: Pod) => void {
  const ask = reachAsker(q, state);
  const keyOf = q.keyer(state);
  let fill: ((pod: Pod, key: string) => V | undefined) | null | undefined;
  return (pod) => {
    ask(pod);
    const key = keyOf(pod);
    if (key === undefined) return;
    if (fill === undefined) fill = q.deriver?.(state, state, BASE_FACTS_ONLY) ?? null;
    fill?.(pod, key);
  };
}
