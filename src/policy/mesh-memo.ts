// Shortcuts of the mesh rules (mesh-control-plane-blocked, hbone-15008-blocked, ambient-probe-snat-blocked)
// for answers that provably do not depend on the class asked about (issue 21: judge only what a change
// alters). Two of them:
//
// - ingressEnforcementChanged: for an overlay that changes cilium-config's `enable-policy` alone (between
//   `default` and `always`), the pods whose ingress enforcement differs from the base's. Every other
//   input of an ingress decision is the same in both states (selecting lists, identities, matching rules;
//   enforcement is the only thing `enable-policy` decides outside `never`), so a pod whose enforcement is
//   the same gets the same ingress answers before and after: it cannot lose anything. Kept per base
//   revision (the long-lived state), so a steady stream of such requests does no per-class work.
// - podIngressWorks: a client class's ingress answer at a pod, taken from podSourceIngress (reachability.ts:
//   the answer for every pod source, decided once per state revision, pod, port and protocol where no
//   ingress element on the port can tell pod sources apart) instead of judged once per client class.
// - For a Namespace relabel (hbone-15008-blocked's scan of the ambient pods elsewhere that a relabelled
//   pod may reach): the ambient pods elsewhere, from the long-lived state's list (their mesh mode reads
//   their own Namespace, not the changed one), and ingressMayAdmitTcp once per selecting list rather
//   than once per destination class.

import type { ClusterState, Pod } from '../core/objects.ts';
import { overlayDelta } from '../state/overlay.ts';
import { classifiedPods, classPlan, fillSegmentKept, filterPods, filterPodsKept, filterToken, podClassesIn } from './classes.ts';
import { ambientIngressClassKey } from './identity.ts';
import { meshMode } from './istio.ts';
import { modelNumber, perRevision, stableContentToken } from './memo.ts';
import type { PolicyModel } from './types.ts';
import { enablePolicyOnly as enablePolicyOnlyOf } from './reach-memo.ts';
import { ingressMayAdmitTcpByModels, ingressMayAdmitTcpFrom, plainPodSource, reachable } from './reachability.ts';
import { enforcementOfModels, isCiliumEndpoint, policiesSelecting, policySettings, type PolicySettings } from './selection.ts';

/**
 * The settings of `after` and `before` when `after` is an overlay over `before` that changes
 * kube-system/cilium-config and nothing the policy engine reads but `enable-policy` (neither side
 * `never`); undefined otherwise.
 */
function enablePolicyOnly(before: ClusterState, after: ClusterState): { readonly a: PolicySettings; readonly b: PolicySettings } | undefined {
  const e = enablePolicyOnlyOf(after);
  return e !== undefined && e.base === before ? { a: e.before, b: e.after } : undefined;
}

let enforcementScans = 0;

/** How many times ingressEnforcementChanged has judged a pods array class by class (for tests). */
export function enforcementChangeScans(): number {
  return enforcementScans;
}

/**
 * The pods of `pods` (per class when `pods` is registered with its classes) whose ingress enforcement
 * in `after` differs from `before`'s, when `after` is an overlay over `before` that changes cilium-config's
 * `enable-policy` alone (see enablePolicyOnly); undefined for any other pair of states, where the caller
 * must judge every pod. The other pods keep every ingress answer: their selecting lists, their peers'
 * identities and the matching rules are the same in both states, and so is their enforcement.
 */
export function ingressEnforcementChanged(before: ClusterState, after: ClusterState, pods: readonly Pod[]): readonly Pod[] | undefined {
  const s = enablePolicyOnly(before, after);
  if (s === undefined) return undefined;
  if (s.a.enablePolicy === s.b.enablePolicy) return NO_PODS;
  return enforcementSwitchedPods(before, s.a.enablePolicy === 'default' ? s.a : s.b, pods);
}

/**
 * The pods of `pods` whose ingress enforcement differs between `enable-policy` `default` and `always`
 * in `before` (its selecting lists), every other setting as in `dflt` (the `default` side): under
 * `always` every Cilium endpoint is enforced, so those are the Cilium endpoints that `default` leaves
 * unenforced, whichever way the request switches (one table for both directions).
 *
 * Kept across pod events, per namespace (filterPodsKept): a class's answer reads the class (whether it
 * is a Cilium endpoint, its identity and Namespace for the selecting list), the policy models and
 * Namespaces of `before` and `dflt`'s nonDefaultDenyPolicies, and no other pod or EndpointSlice
 * (policiesSelecting reads none: its own table is kept across pod events for that reason). So the token
 * is `before`'s stableContentToken (every kind but Pod and EndpointSlice, cilium-config included) with
 * that setting, and a pod event elsewhere keeps a namespace's answer (its class array is the same);
 * later requests of the same revision scan nothing (the assembled answer is kept per pods array).
 * Serve's warm-up fills it a namespace per step (warmEnforcementSwitch): the first cilium-config
 * request after start-up judged every class here (31 ms of CPU at 50k pods, issue 21).
 */
function enforcementSwitchedPods(before: ClusterState, dflt: PolicySettings, pods: readonly Pod[]): readonly Pod[] {
  let judged = false;
  const out = filterPodsKept(pods, switchToken(before, dflt), (p) => {
    judged = true;
    return unenforcedEndpoint(before, dflt, p);
  });
  if (judged) enforcementScans++;
  return out;
}

/** enforcementSwitchedPods' filter token: `before`'s stable content and the setting the answer reads. */
function switchToken(before: ClusterState, dflt: PolicySettings): object {
  return filterToken(stableContentToken(before), `ingressEnforcementSwitched|${dflt.nonDefaultDenyPolicies}`);
}

/** A Cilium endpoint whose ingress `dflt` (enable-policy `default`) does not enforce: `always` would. */
function unenforcedEndpoint(before: ClusterState, dflt: PolicySettings, p: Pod): boolean {
  // The selecting lists are the base's (a cilium-config change changes none): read from its long-lived table.
  return isCiliumEndpoint(p) && !enforcementOfModels(policiesSelecting(before, p), 'ingress', dflt).enforced;
}

/**
 * Fills ingressEnforcementChanged's table of `state` for the namespace `namespace`, for a request that
 * switches `enable-policy` between `default` and `always` (from the state's own value, if not `never`).
 * For serve's warm-up, a namespace per step.
 */
export function warmEnforcementSwitch(state: ClusterState, namespace: string): void {
  const settings = policySettings(state);
  if (settings.enablePolicy === 'never') return;
  const dflt: PolicySettings = settings.enablePolicy === 'default' ? settings : { ...settings, enablePolicy: 'default' };
  fillSegmentKept(podClassesIn(state, namespace), switchToken(state, dflt), (p) => unenforcedEndpoint(state, dflt, p));
}
const NO_PODS: readonly Pod[] = Object.freeze([]);

let perSource = 0;

/** How many times podIngressWorks asked reachable() about one source (for tests that count per-class work). */
export function podIngressJudgements(): number {
  return perSource;
}

/**
 * reachable(state, from, dest, TCP port, 'ingress'), taken from `any` (podSourceIngress(state, dest, port,
 * 'TCP'), asked once by the caller) where it answers for `from`.
 */
export function podIngressWorks(state: ClusterState, from: Pod, dest: Pod, port: number, any: boolean | undefined): boolean {
  if (any !== undefined && plainPodSource(from, dest)) return any;
  perSource++;
  return reachable(state, from, { type: 'pod', pod: dest }, port, 'TCP', 'ingress');
}

// ---------- a Namespace relabel: the ambient pods elsewhere ----------

/**
 * The ambient pods of `state`, registered with their classes: judged once per class, kept per namespace
 * across pod events (filterPodsKept). A pod's mesh mode reads the pod (its labels, annotations,
 * containers and host network, all part of its class) and its own Namespace object, no other pod: the
 * token is the state's stableContentToken (Namespaces among its kinds), and a pod event elsewhere keeps
 * each namespace's answer.
 */
export function ambientPods(state: ClusterState): readonly Pod[] {
  return perRevision(state, 'ambientPods', () => filterPodsKept(classifiedPods(state), ambientToken(state), (d) => meshMode(state, d) === 'ambient'));
}
function ambientToken(state: ClusterState): object {
  return filterToken(stableContentToken(state), 'ambientPods');
}

/**
 * Fills ambientPods' part for the namespace `namespace` of `state` and the judging plan over it for
 * ambientIngressClassKey (hbone-15008-blocked judges the ambient pods elsewhere by it on a Namespace
 * relabel: the first relabel after start-up planned every namespace's classes). For serve's warm-up, a
 * namespace per step.
 */
export function warmAmbientPlan(state: ClusterState, namespace: string): void {
  const part = fillSegmentKept(podClassesIn(state, namespace), ambientToken(state), (d) => meshMode(state, d) === 'ambient');
  if (part.length > 0) classPlan(part, ambientIngressClassKey);
}

/** Is `after` an overlay over `before` that changes the Namespace `namespace` and nothing else? */
function relabelOf(before: ClusterState, after: ClusterState, namespace: string): boolean {
  const d = overlayDelta(after);
  return d !== undefined && d.base === before && d.kind === 'Namespace' && d.name === namespace;
}

/**
 * The ambient pods of `after` outside `namespace` (registered with their classes, in classifiedPods'
 * order), for `after` = `before` with the Namespace `namespace` relabelled: a pod's mesh mode reads its
 * own Namespace and itself only, so those of the other namespaces are `before`'s, kept per revision (and
 * relabelled namespace) there. Any other pair of states is judged here and now.
 */
export function ambientPodsElsewhere(before: ClusterState, after: ClusterState, namespace: string): readonly Pod[] {
  if (!relabelOf(before, after, namespace)) return filterPods(classifiedPods(after), (d) => d.metadata.namespace !== namespace && meshMode(after, d) === 'ambient');
  // Per namespace part too: the answer for a class reads only its namespace.
  return perRevision(before, `ambientPodsElsewhere:${namespace}`, () => filterPodsKept(ambientPods(before), filterToken(OUTSIDE, namespace), (d) => d.metadata.namespace !== namespace));
}
/** filterToken's object for ambientPodsElsewhere's filter (per namespace left out). */
const OUTSIDE = {};

let admitChecks = 0;

/** How many times a mayAdmitTcpByList predicate asked ingressMayAdmitTcp (for tests that count per-class work). */
export function mayAdmitTcpChecks(): number {
  return admitChecks;
}

/**
 * ingressMayAdmitTcp(after, sources, d) as a predicate over destinations `d` outside the relabelled
 * `namespace` (`after` = `before` with that Namespace relabelled), asked once per selecting list: for
 * pod-network sources the answer reads only the destination's selecting models and their enforcement
 * (the sources' identities are the same for every destination), and a destination outside the changed
 * namespace keeps its models (subject selectors read a pod's own Namespace): its list in `before` (kept
 * there), by content, keys the answer. Host-network sources (allow-localhost reads the destination's node), another
 * pair of states, or a destination in `namespace` are asked one by one. Whether an allow element admits a
 * source is kept across destinations (reachability.ts ingressMayAdmitTcpByModels): lists share models.
 */
export function mayAdmitTcpByList(before: ClusterState, after: ClusterState, namespace: string, sources: readonly Pod[]): (dest: Pod) => boolean {
  const ask = ingressMayAdmitTcpFrom(after, sources);
  const one = (d: Pod): boolean => {
    admitChecks++;
    return ask(d);
  };
  if (!relabelOf(before, after, namespace) || sources.some((s) => s.spec.hostNetwork === true)) return one;
  // Keyed by the list's content (its model objects in order: lists of equal content are often distinct
  // arrays, one per identity), through a hash of the models' numbers; the lists of one hash compared
  // model by model. Nothing built per list but its entry (a relabel asks of thousands of lists).
  const byHash = new Map<number, ListAnswer>();
  // The answer for a list, asked by the list itself: `before`'s is `after`'s in content.
  const byModels = ingressMayAdmitTcpByModels(after, sources);
  return (d) => {
    if (d.metadata.namespace === namespace || !isCiliumEndpoint(d)) return one(d);
    const models = policiesSelecting(before, d);
    const h = listHash(models);
    const head = byHash.get(h);
    for (let e = head; e !== undefined; e = e.next) if (sameModels(e.models, models)) return e.v;
    admitChecks++;
    const v = byModels(models);
    byHash.set(h, { models, v, next: head });
    return v;
  };
}
/** mayAdmitTcpByList's answer for a list, chained with the other lists of its hash. */
interface ListAnswer {
  readonly models: readonly PolicyModel[];
  readonly v: boolean;
  readonly next: ListAnswer | undefined;
}

/** A 53-bit hash of a list's model numbers (two 32-bit mixes), in order. */
function listHash(models: readonly PolicyModel[]): number {
  let a = models.length | 0;
  let b = 0x2545f491;
  for (const m of models) {
    const n = modelNumber(m);
    a = Math.imul(a ^ n, 0x85ebca6b);
    a ^= a >>> 13;
    b = Math.imul(b + n, 0xc2b2ae35);
    b ^= b >>> 16;
  }
  return (a >>> 0) * 0x200000 + (b >>> 11);
}

function sameModels(x: readonly PolicyModel[], y: readonly PolicyModel[]): boolean {
  if (x === y) return true;
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}
