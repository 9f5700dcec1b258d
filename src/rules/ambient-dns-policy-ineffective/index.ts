// ambient-dns-policy-ineffective: Cilium DNS restrictions (rules.dns with specific names, or toFQDNs) on
// ambient pods whose DNS is captured by ztunnel (the default since Istio 1.25). ztunnel answers lookups
// for mesh Services and ServiceEntries itself, so Cilium's DNS proxy never sees them, and older ztunnel
// forwarded the rest from its own pod rather than from the workload's: the restriction does not apply as
// written, and toFQDNs may not learn the addresses. Silently ineffective, so a warning.
//
// The rule folder: index.ts (this file: metadata, scope, check), messages.ts (the words, per code),
// testdata/*.yaml (fixtures run by test/rules/fixtures.test.ts). docs/adding-a-rule.md explains the layout.

import type { Change } from '../../core/change.ts';
import type { Finding } from '../../core/finding.ts';
import type { ClusterState, Pod, PolicyObject } from '../../core/objects.ts';
import type { Rule, RuleContext } from '../../core/rule.ts';
import { ambientIngressClassKey, dnsRestrictions, policiesSelecting, policyModel, ztunnelCapturesDns } from '../../policy/index.ts';
import { changeRef, compareLoss, enablesAmbient, touchedPods } from '../../impact/index.ts';
import { victimParams, victimsOf } from '../render-helpers.ts';
import { messages } from './messages.ts';

const ID = 'ambient-dns-policy-ineffective';

/** What the request does that this rule judges. */
type Subject =
  /** A Cilium policy written with DNS restrictions of its own (other policy writes would only repeat them). */
  | { readonly by: 'policy'; readonly policy: string; readonly restrictions: readonly string[] }
  /** A Namespace enrolled in ambient: its pods' DNS becomes captured. */
  | { readonly by: 'namespace'; readonly namespace: string };

/** Cheap, from the request alone. */
export function scope(change: Change): Subject | undefined {
  const isCilium = change.kind === 'CiliumNetworkPolicy' || change.kind === 'CiliumClusterwideNetworkPolicy';
  if (isCilium && change.object && change.operation !== 'DELETE') {
    const restrictions = dnsRestrictions(policyModel(change.object as PolicyObject));
    return restrictions.length > 0 ? { by: 'policy', policy: changeRef(change), restrictions } : undefined;
  }
  if (enablesAmbient(change)) return { by: 'namespace', namespace: change.name };
  return undefined;
}

export function check(subject: Subject, change: Change, before: ClusterState, after: ClusterState): Finding[] {
  const touched = touchedPods(change, before, after);
  if (touched.pods.length === 0) return [];
  const found = new Set<string>(subject.by === 'policy' ? subject.restrictions : []);
  // ok = the pod's DNS policy applies as written (no restriction, or ztunnel does not capture its DNS).
  const ok = (state: ClusterState, pod: Pod): boolean | undefined => {
    if (!ztunnelCapturesDns(state, pod)) return undefined;
    const r = dnsRestrictions(policiesSelecting(state, pod));
    if (state === after) for (const x of r) found.add(x);
    return r.length === 0;
  };
  // The verdict reads the pod's data plane (containers, sidecar and ambient annotations) besides its
  // identity: replicas with equal labels can differ there (mid-migration, per-pod opt-outs).
  const { lost, stillMissing } = compareLoss(touched.pods, before, after, ok, ambientIngressClassKey);
  const victims = lost.length > 0 ? lost : stillMissing;
  if (victims.length === 0) return [];
  const preexisting = lost.length === 0;
  const p = { restrictions: [...found].slice(0, 2), restrictionCount: found.size, ...victimParams(victims), synthetic: touched.synthetic };
  const extras = { ...victimsOf(victims), preexisting };
  if (subject.by === 'namespace') return [messages.finding('namespace-joins-ambient', { ...p, namespace: subject.namespace }, extras)];
  return [messages.finding(preexisting ? 'policy-keeps-restricting' : 'policy-restricts', { ...p, policy: subject.policy }, extras)];
}

export const rule: Rule = {
  id: ID,
  severity: 'I',
  summary: 'Cilium DNS restrictions (rules.dns names, toFQDNs) on ambient pods whose DNS ztunnel proxies do not apply as written',
  docs: `docs/rules/${ID}.md`,
  triggers: [
    { kinds: ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy'], operations: ['CREATE', 'UPDATE'], when: 'the new object restricts DNS (rules.dns names or toFQDNs); pods it selects, or its synthetic pod' },
    { kinds: ['Namespace'], operations: ['UPDATE'], when: "labels changed so that the namespace's pods become ambient" },
  ],
  messages,
  evaluate: (change: Change, before: ClusterState, after: ClusterState, _ctx: RuleContext): Finding[] => {
    const subject = scope(change);
    return subject ? check(subject, change, before, after) : [];
  },
};
