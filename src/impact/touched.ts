// Which pods a change touches, before and after, per direction (ingress/egress) or for L7: one answer
// per (change, before, after, direction), shared by every rule that asks it of one request.

import type { Change } from '../core/change.ts';
import {
  l7Uses,
  changedLabelKeys,
  classifiedPods,
  unionClassified,
  namespaceLabelReadByL7,
  namespaceLabelReadFor,
  podRef,
  podsSelectedBy,
  policyModel,
  policySettings,
  subjectPods,
  type Direction,
} from '../policy/index.ts';
import { touchedByChange } from '../policy/memo.ts';
import type { ClusterState, Pod, PolicyObject } from '../core/objects.ts';
import { isCiliumConfigChange, isPolicyChange } from './change-kinds.ts';

/** The pods a request can change policy for, and whether they are synthetic (no live pod selected). */
export interface TouchedPods {
  readonly pods: readonly Pod[];
  readonly synthetic: boolean;
}

/** What a rule judges: one direction of Cilium/NetworkPolicy enforcement, or the L7 sections of Cilium policies. */
export type Aspect = Direction | 'l7';

const NONE: TouchedPods = { pods: [], synthetic: false };
const NO_PODS: readonly Pod[] = [];

/**
 * Does a policy object have proxied L7 rules (HTTP, Kafka, l7proto), in any direction? What the L7
 * rules judge; DNS rules (toFQDNs' companions, very common) go to the DNS proxy and are not theirs.
 */
function hasL7Section(obj: PolicyObject | undefined): boolean {
  return obj !== undefined && policyModel(obj).some((m) => l7Uses(m).length > 0);
}

/**
 * Can the policy object change anything in this direction for the pods it selects? Only through a
 * section of that direction (allow or deny rules) or through `enableDefaultDeny` turning that
 * direction's default deny on by itself (`enableDefaultDeny: {egress: true}` with ingress rules only
 * still puts the pods into egress default deny).
 */
export function affectsDirection(obj: PolicyObject | undefined, direction: Direction): boolean {
  return obj !== undefined && policyModel(obj).some((m) => m.hasSection[direction] || m.enforces[direction]);
}

/**
 * Pods whose policy this request may change:
 * - a policy object: the pods the old object selects (before) and the new one selects (after); when
 *   neither selects a live pod, the synthetic pods of the new object (new namespaces are protected too);
 *   with a direction, nothing when neither object can affect that direction (see affectsDirection);
 * - a Namespace whose labels change: its pods (namespace labels feed CCNP/NetworkPolicy selectors); with
 *   a direction (or 'l7'), only when a changed key is read by selectors that matter for it;
 * - cilium-config when the policy mode changes: every pod (rare, and the change is cluster-wide).
 * Without `direction`, every aspect counts. Odd input touches nothing (no finding rather than a crash).
 */
export function touchedPods(change: Change, before: ClusterState, after: ClusterState, opts: { direction?: Aspect } = {}): TouchedPods {
  let hit = touchedByChange.get(change);
  // By revision too: a sliced review (verdict/decide.ts) asks again after a watch event moved its state.
  const beforeRevision = before.revision;
  const afterRevision = after.revision;
  if (!hit || hit.before !== before || hit.after !== after || hit.beforeRevision !== beforeRevision || hit.afterRevision !== afterRevision) {
    touchedByChange.set(change, (hit = { before, after, beforeRevision, afterRevision, answers: new Map() }));
  }
  const slot = opts.direction ?? 'all';
  let answer = hit.answers.get(slot) as TouchedPods | undefined;
  if (answer === undefined) hit.answers.set(slot, (answer = computeTouchedPods(change, before, after, opts.direction)));
  return answer;
}

function computeTouchedPods(change: Change, before: ClusterState, after: ClusterState, d: Aspect | undefined): TouchedPods {
  try {
    if (isPolicyChange(change)) {
      if (d !== undefined && d !== 'l7' && !affectsDirection(change.oldObject as PolicyObject | undefined, d) && !affectsDirection(change.object as PolicyObject | undefined, d)) {
        return NONE;
      }
      // L7 conflicts come from the L7 sections of Cilium policies and from mesh membership: a policy
      // change with no L7 section on either side changes none (as relabelReachesL7 for Namespaces).
      if (d === 'l7' && !hasL7Section(change.oldObject as PolicyObject | undefined) && !hasL7Section(change.object as PolicyObject | undefined)) return NONE;
      // Per class when both selections are (policy/classes.ts): the same classes before and after.
      const was = change.oldObject ? podsSelectedBy(before, change.oldObject as PolicyObject) : NO_PODS;
      const now = change.object ? podsSelectedBy(after, change.object as PolicyObject) : NO_PODS;
      const pods = unionClassified(was, now, podRef);
      if (pods.length > 0) return { pods, synthetic: false };
      if (change.object) {
        const s = subjectPods(after, change.object as PolicyObject);
        return { pods: s.pods, synthetic: s.synthetic };
      }
      return NONE;
    }
    if (change.kind === 'Namespace' && change.operation === 'UPDATE') {
      const keys = changedLabelKeys(change.oldObject?.metadata.labels, change.object?.metadata.labels);
      if (keys.length === 0) return NONE;
      // A relabel that only changes which ingress policies select the pods (say) leaves their egress as it was.
      if (d === 'l7' && !keys.some((k) => namespaceLabelReadByL7(before, k))) return NONE;
      if (d !== undefined && d !== 'l7' && !keys.some((k) => namespaceLabelReadFor(before, k, d))) return NONE;
      return { pods: classifiedPods(after, change.name), synthetic: false };
    }
    if (isCiliumConfigChange(change)) {
      const a = policySettings(before);
      const b = policySettings(after);
      const same =
        a.enablePolicy === b.enablePolicy &&
        a.nonDefaultDenyPolicies === b.nonDefaultDenyPolicies &&
        a.cidrMatchesNodes === b.cidrMatchesNodes;
      return same ? NONE : { pods: classifiedPods(after), synthetic: false };
    }
  } catch {
    return NONE;
  }
  return NONE;
}
