// Per-class reachability answers of the checks every rule asks of thousands of classes (can a pod reach
// DNS, the API server), kept per state revision, and taken from an admission overlay's base when the
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
// changed object's new models (ReachQuestion.derive, reachableFromBase), which need no overlay list
// either: a request that selects every pod no longer builds 9.5k lists here. Targets that are FQDNs (whose allow depends on
// the DNS proxy seeing the lookup, i.e. on the DNS servers' lists too) are not asked through here.
//
// The base is the long-lived state: its table is filled by the first request of a revision and read by
// every later one, for the base half of before/after comparisons as for the classes a change cannot alter.

import type { ClusterState, Pod } from '../core/objects.ts';
import { overlayDelta, type OverlayDelta } from '../state/overlay.ts';
import { changedSelecting, recordingDenials, type ChangedPolicy } from './reachability.ts';
import { keptPerRevision, perRevision } from './memo.ts';
import { policiesSelecting, policySettings } from './selection.ts';

/** A per-class check answered through memoReach. */
export interface ReachQuestion<V> {
  /** Names its table (fixed per question). */
  readonly name: string;
  /** Names the per-revision answer to "do the destinations keep their lists" (fixed per question). */
  readonly destsName: string;
  /** The pods whose ingress the check judges; undefined when they cannot be listed (no shortcut then). */
  readonly dests: (state: ClusterState) => readonly Pod[] | undefined;
  /** The class key of `pod` for this check; undefined for a pod that must be judged on its own. */
  readonly key: (state: ClusterState, pod: Pod) => string | undefined;
  readonly compute: (state: ClusterState, pod: Pod) => V;
  /**
   * The answer in an overlay `state` that changes the policy object `changed` over `base`, derived from
   * the base's decisions (reachableFromBase, with `key` to keep them by), or undefined where it cannot be.
   */
  readonly derive?: (state: ClusterState, base: ClusterState, changed: ChangedPolicy, pod: Pod, key: string) => V | undefined;
}

const POLICY_KINDS: ReadonlySet<string> = new Set(['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy', 'NetworkPolicy']);

/** The base of an overlay that changes one policy object and nothing else; undefined for any other state. */
export function policyOnlyBase(state: ClusterState): ClusterState | undefined {
  return policyOnlyDelta(state)?.base;
}

function policyOnlyDelta(state: ClusterState): OverlayDelta | undefined {
  const d = overlayDelta(state);
  return d !== undefined && POLICY_KINDS.has(d.kind) ? d : undefined;
}

/** Matches no policy: the changed object of an overlay that changes no policy. */
const NO_POLICY: ChangedPolicy = { kind: '', namespace: '', name: '' };

/**
 * The base and the changed policy of an overlay whose decisions reachableFromBase can derive: one that
 * changes a policy object, or cilium-config's `enable-policy` alone between `default` and `always` (every
 * list, identity and matching rule stays; only enforcement differs, which the derivation takes from the
 * overlay). Undefined for any other state.
 */
function derivableDelta(state: ClusterState): { readonly base: ClusterState; readonly changed: ChangedPolicy } | undefined {
  const d = overlayDelta(state);
  if (d === undefined) return undefined;
  if (POLICY_KINDS.has(d.kind)) return { base: d.base, changed: d };
  if (d.kind !== 'ConfigMap' || d.namespace !== 'kube-system' || d.name !== 'cilium-config') return undefined;
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
  return same ? { base: d.base, changed: NO_POLICY } : undefined;
}

/** Does `pod` have the same selecting-model list (the same array) in `state` as in `base`? */
export function keepsSelecting(state: ClusterState, base: ClusterState, pod: Pod): boolean {
  return policiesSelecting(state, pod) === policiesSelecting(base, pod);
}

/**
 * keepsSelecting for an overlay that changes the policy object `changed`, without working out the
 * overlay's list: it is the base's very array when neither the changed object's old models (in the
 * base's list) nor its new ones select the pod (policy/selection.ts selectingFromBase).
 */
function keepsList(state: ClusterState, base: ClusterState, changed: ChangedPolicy, pod: Pod): boolean {
  for (const m of policiesSelecting(base, pod)) if (m.ref.kind === changed.kind && m.ref.namespace === changed.namespace && m.ref.name === changed.name) return false;
  return changedSelecting(state, changed, pod).length === 0;
}

let computed = 0;
let derived = 0;

/** How many answers memoReach has computed so far (for tests that count the classes judged). */
export function reachComputations(): number {
  return computed;
}

/** How many answers memoReach has derived from a base's decisions so far (ReachQuestion.derive). */
export function reachDerivations(): number {
  return derived;
}

/** Answers kept per class and state revision (a cluster has ~10k classes; synthetic pods add a few). */
const TABLE_LIMIT = 50_000;
const newTable = (): Map<string, unknown> => new Map();

/** What memoReach reads of a state for every question and class, looked up once per state revision. */
interface ReachState {
  readonly delta: OverlayDelta | undefined;
  /** Per question name: its table (kept per revision), and whether its destinations keep their lists. */
  readonly tables: Map<string, Map<string, unknown>>;
  readonly destsKept: Map<string, boolean>;
  derivable?: { readonly base: ClusterState; readonly changed: ChangedPolicy } | null;
}

function reachState(state: ClusterState): ReachState {
  return perRevision(state, 'reachState', () => ({ delta: policyOnlyDelta(state), tables: new Map(), destsKept: new Map() }));
}

/** `q.compute(state, pod)`, from its base's answer when the overlay cannot change it, memoised per class. */
export function memoReach<V>(q: ReachQuestion<V>, state: ClusterState, pod: Pod): V {
  // Asked under recordDenials (which rule decided a loss: impact/decided-by.ts): a kept or derived answer
  // would decide nothing there, so the question is judged afresh and the answer is not kept.
  if (recordingDenials()) return q.compute(state, pod);
  const rs = reachState(state);
  const delta = rs.delta;
  if (delta !== undefined && keepsList(state, delta.base, delta, pod)) {
    let kept = rs.destsKept.get(q.destsName);
    if (kept === undefined) rs.destsKept.set(q.destsName, (kept = destsKept(q, state, delta)));
    if (kept) return memoReach(q, delta.base, pod);
  }
  const key = q.key(state, pod);
  if (key === undefined) {
    computed++;
    return q.compute(state, pod);
  }
  let table = rs.tables.get(q.name);
  if (table === undefined) rs.tables.set(q.name, (table = keptPerRevision(state, q.name, newTable)));
  if (table.has(key)) return table.get(key) as V;
  // A class the change does select: from the base's decisions and the changed object's new rules.
  let v: V | undefined;
  if (q.derive !== undefined) {
    if (rs.derivable === undefined) rs.derivable = derivableDelta(state) ?? null;
    if (rs.derivable !== null) v = q.derive(state, rs.derivable.base, rs.derivable.changed, pod, key);
  }
  if (v !== undefined) derived++;
  else {
    v = q.compute(state, pod);
    computed++;
  }
  if (table.size >= TABLE_LIMIT) table.clear();
  table.set(key, v);
  return v;
}

function destsKept<V>(q: ReachQuestion<V>, state: ClusterState, delta: OverlayDelta): boolean {
  const dests = q.dests(state);
  return dests !== undefined && dests.every((d) => keepsList(state, delta.base, delta, d));
}
