// deny-only-default-deny: a CNP/CCNP rule with only ingressDeny/egressDeny in a direction (no allow
// section there) still puts its endpoints into default deny in that direction, unless
// `enableDefaultDeny.<dir>: false` is set and honoured. Users write "deny port X" and get "deny
// everything" (cilium#14992).
//
// The rule folder: index.ts (this file: metadata, scope, check), messages.ts (the words, per code),
// testdata/*.yaml (fixtures run by test/rules/fixtures.test.ts). docs/adding-a-rule.md explains the layout.
// The semantics (which rules are deny-only, what enforces a pod's direction) are src/policy/deny-only.ts.

import type { Change } from '../../core/change.ts';
import type { Finding } from '../../core/finding.ts';
import type { ClusterState, Pod, PolicyObject } from '../../core/objects.ts';
import type { Rule, RuleContext } from '../../core/rule.ts';
import { changeRef } from '../../impact/index.ts';
import {
  denyOnlyDirections, denyOnlyEnforcement, formatPolicyRef, modelOfObject, podRef, podsSelectedBy, policySettings, subjectPods,
  type Direction, type PolicyModel,
} from '../../policy/index.ts';
import { victimsOf } from '../render-helpers.ts';
import { messages } from './messages.ts';

const ID = 'deny-only-default-deny';
const DIRECTIONS: readonly Direction[] = ['ingress', 'egress'];

/** What the request does that this rule judges: a Cilium policy written (and the object it replaces). */
type Subject = { readonly policy: PolicyObject; readonly old: PolicyObject | undefined; readonly ref: string };

/** Cheap, from the request alone. */
export function scope(change: Change): Subject | undefined {
  const policy = change.object as PolicyObject | undefined;
  if (!policy || (change.kind !== 'CiliumNetworkPolicy' && change.kind !== 'CiliumClusterwideNetworkPolicy')) return undefined;
  const old = change.operation === 'UPDATE' ? (change.oldObject as PolicyObject | undefined) : undefined;
  return { policy, old, ref: changeRef(change) };
}

export function check(subject: Subject, before: ClusterState, after: ClusterState): Finding[] {
  const settings = policySettings(after);
  // `always` enforces every endpoint anyway and `never` none: deny-only rules change nothing then.
  if (settings.enablePolicy !== 'default') return [];
  const obj = subject.policy;
  const dirs = denyOnlyDirections(obj);
  const nonDefaultDeny = settings.nonDefaultDenyPolicies;
  const findings: Finding[] = [];
  // An update that takes the last enforcing allow away from pods (removes the section, narrows the
  // selector, sets enableDefaultDeny false) leaves another policy's deny-only rule holding them in
  // default deny: as broken as creating that rule, though this object has no deny-only rule itself.
  for (const d of subject.old ? DIRECTIONS.filter((x) => !dirs.includes(x)) : []) {
    const f = leftToDenyOnly(subject, before, after, subject.old!, d, nonDefaultDeny);
    if (f) findings.push(f);
  }
  if (dirs.length === 0) return findings;
  const { pods, synthetic } = subjectPods(after, obj);
  for (const d of dirs) {
    const lost: Pod[] = [];
    const still: Pod[] = [];
    for (const pod of pods) {
      const now = denyOnlyEnforcement(after, pod, d);
      // Only when the direction is enforced solely by deny-only rules, one of them from this object.
      if (!now.allDenyOnly || !now.models.some((m) => modelOfObject(m, obj))) continue;
      const then = denyOnlyEnforcement(before, pod, d);
      if (then.allDenyOnly) still.push(pod);
      else lost.push(pod);
    }
    const victims = lost.length > 0 ? lost : still;
    if (victims.length === 0) continue;
    const params = { policy: subject.ref, direction: d, pods: victims.slice(0, 3).map(podRef), podCount: victims.length, nonDefaultDeny, synthetic };
    findings.push(
      lost.length > 0
        ? messages.finding('puts-pods-in-default-deny', params, victimsOf(victims))
        : messages.finding('already-default-deny', params, { ...victimsOf(victims), preexisting: true }),
    );
  }
  return findings;
}

/** Pods the old object selected that this update leaves enforced in direction `d` by deny-only rules alone. */
function leftToDenyOnly(subject: Subject, before: ClusterState, after: ClusterState, old: PolicyObject, d: Direction, nonDefaultDeny: boolean): Finding | undefined {
  const lost: Pod[] = [];
  const by = new Map<string, PolicyModel>();
  for (const pod of podsSelectedBy(before, old)) {
    const here = after.get('Pod', pod.metadata.namespace, pod.metadata.name);
    if (!here) continue;
    const now = denyOnlyEnforcement(after, here, d);
    if (!now.allDenyOnly || denyOnlyEnforcement(before, pod, d).allDenyOnly) continue;
    lost.push(here);
    for (const m of now.models) by.set(formatPolicyRef(m.ref), m);
  }
  if (lost.length === 0) return undefined;
  const denyRefs = [...by.keys()];
  return messages.finding(
    'update-leaves-deny-only',
    {
      policy: subject.ref, direction: d, pods: lost.slice(0, 3).map(podRef), podCount: lost.length, nonDefaultDeny,
      denyPolicies: denyRefs.slice(0, 2), denyPolicyCount: denyRefs.length,
    },
    victimsOf(lost),
  );
}

export const rule: Rule = {
  id: ID,
  severity: 'B',
  summary: 'A CNP/CCNP with only ingressDeny/egressDeny (no allow, default deny not disabled) drops all traffic in that direction',
  docs: `docs/rules/${ID}.md`,
  triggers: [
    {
      kinds: ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy'],
      operations: ['CREATE', 'UPDATE'],
      when: 'the pods the policy selects (a synthetic pod when none is live); on UPDATE also the pods the old object selected',
    },
  ],
  messages,
  evaluate: (change: Change, before: ClusterState, after: ClusterState, _ctx: RuleContext): Finding[] => {
    const subject = scope(change);
    return subject ? check(subject, before, after) : [];
  },
};
