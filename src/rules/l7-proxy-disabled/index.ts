// l7-proxy-disabled: with `enable-l7-proxy: "false"` the Cilium agent refuses any rule carrying L7
// rules ("L7 policy is not supported since L7 proxy is not enabled"), so the whole policy is not
// applied: neither its L7 filtering nor its L3/L4 allows and default deny. kubectl apply succeeds; only
// the agent logs and the policy status say so.
//
// The rule folder: index.ts (this file: metadata, scope, check), messages.ts (the words, per code),
// testdata/*.yaml (fixtures run by test/rules/fixtures.test.ts). docs/adding-a-rule.md explains the layout.

import type { Change } from '../../core/change.ts';
import type { Finding } from '../../core/finding.ts';
import type { ClusterState, Pod, PolicyObject } from '../../core/objects.ts';
import type { Rule, RuleContext } from '../../core/rule.ts';
import { changeRef, isCiliumConfigChange } from '../../impact/index.ts';
import { ciliumConfig, CILIUM_POLICY_KINDS, formatPolicyRef, l7Protocols, podRef, podsSelectedBy, policyModel } from '../../policy/index.ts';
import { victimsOf } from '../render-helpers.ts';
import { messages } from './messages.ts';

const ID = 'l7-proxy-disabled';

/** What the request does that this rule judges. */
type Subject =
  | { readonly by: 'policy'; readonly policy: PolicyObject; readonly old: PolicyObject | undefined; readonly update: boolean; readonly ref: string }
  | { readonly by: 'cilium-config' };

/** Cheap, from the request alone: a Cilium policy written, or a cilium-config write. */
export function scope(change: Change): Subject | undefined {
  if (change.kind === 'CiliumNetworkPolicy' || change.kind === 'CiliumClusterwideNetworkPolicy') {
    const policy = change.object as PolicyObject | undefined;
    if (!policy) return undefined; // a DELETE: nothing left to reject
    return { by: 'policy', policy, old: change.oldObject as PolicyObject | undefined, update: change.operation === 'UPDATE', ref: changeRef(change) };
  }
  if (isCiliumConfigChange(change) && change.operation !== 'DELETE') return { by: 'cilium-config' };
  return undefined;
}

const proxyOn = (state: ClusterState): boolean => ciliumConfig(state).l7Proxy;

export function check(subject: Subject, before: ClusterState, after: ClusterState): Finding[] {
  return subject.by === 'policy' ? forPolicy(subject, before, after) : forConfig(before, after);
}

function forPolicy(subject: Extract<Subject, { by: 'policy' }>, before: ClusterState, after: ClusterState): Finding[] {
  const protocols = l7Protocols(subject.policy);
  if (protocols.length === 0 || proxyOn(after)) return [];
  // Already rejected before this request (same L7 use, proxy already off): a reminder, not news.
  const preexisting = subject.update && l7Protocols(subject.old).length > 0 && !proxyOn(before);
  const pods = podsSelectedBy(after, subject.policy);
  return [
    messages.finding(preexisting ? 'policy-still-rejected' : 'policy-rejected', { policy: subject.ref, protocols }, {
      preexisting,
      ...(pods.length > 0 ? victimsOf(pods) : {}),
    }),
  ];
}

function forConfig(before: ClusterState, after: ClusterState): Finding[] {
  if (!proxyOn(before) || proxyOn(after)) return [];
  // A rare, cluster-wide request: listing every Cilium policy is acceptable here.
  const names: string[] = [];
  const pods = new Map<string, Pod>();
  for (const kind of CILIUM_POLICY_KINDS) {
    for (const obj of after.list(kind)) {
      if (l7Protocols(obj).length === 0) continue;
      const m = policyModel(obj)[0];
      names.push(m ? formatPolicyRef(m.ref) : obj.metadata.name);
      for (const p of podsSelectedBy(after, obj)) pods.set(podRef(p), p);
    }
  }
  if (names.length === 0) return [];
  return [
    messages.finding('proxy-turned-off', { policies: names.slice(0, 3), policyCount: names.length }, pods.size > 0 ? victimsOf([...pods.values()]) : {}),
  ];
}

export const rule: Rule = {
  id: ID,
  severity: 'I',
  summary: 'L7 rules (http, kafka, dns) while enable-l7-proxy is "false": the agent rejects the whole policy',
  docs: `docs/rules/${ID}.md`,
  triggers: [
    { kinds: ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy'], operations: ['CREATE', 'UPDATE'], when: 'only a policy with L7 rules' },
    { kinds: ['ConfigMap'], operations: ['CREATE', 'UPDATE'], when: 'only `kube-system/cilium-config` turning `enable-l7-proxy` from true to false' },
  ],
  messages,
  evaluate: (change: Change, before: ClusterState, after: ClusterState, _ctx: RuleContext): Finding[] => {
    const subject = scope(change);
    return subject ? check(subject, before, after) : [];
  },
};
