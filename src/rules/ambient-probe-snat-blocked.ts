// ambient-probe-snat-blocked: ingress-enforced ambient pods with no allow from 169.254.7.127. For ambient
// pods istio-cni SNATs the kubelet's health probes to that link-local address (so ztunnel can tell them
// apart and let them through unauthenticated). Cilium then no longer sees them as coming from the local
// host (always allowed) but from `world`: unless the policy admits 169.254.7.127/32, the probes are
// dropped and the pods fail readiness and get restarted by their liveness probe.

import type { Change } from '../core/change.ts';
import { meshMode, ambientIngressClassKey, ingressShapeKey, PROBE_SNAT_IPV4, PROBE_SNAT_IPV6, probeSourceFor, probesAdmitted } from '../policy/index.ts';
import type { ClusterState, Pod } from '../state/types.ts';
import type { Finding, Rule, RuleContext } from './types.ts';
import { changeRef, compareLoss, isCiliumConfigChange, isPolicyChange, touchedPods } from '../impact/index.ts';
import { describeVictims, victimsOf } from './render-helpers.ts';

const ID = 'ambient-probe-snat-blocked';

function fixFor(change: Change, v6: boolean): string {
  const cidr = v6 ? `${PROBE_SNAT_IPV6}/128` : `${PROBE_SNAT_IPV4}/32`;
  if (change.kind === 'NetworkPolicy' && change.object) {
    return `add to ${changeRef(change)}: ingress: [{from: [{ipBlock: {cidr: ${cidr}}}]}]`;
  }
  if ((change.kind === 'CiliumNetworkPolicy' || change.kind === 'CiliumClusterwideNetworkPolicy') && change.object) {
    return `add to ${changeRef(change)}: ingress: [{fromCIDR: ["${cidr}"]}]`;
  }
  return `allow ingress from ${cidr} to these pods (e.g. an ingress rule fromCIDR: ["${cidr}"])`;
}

function evaluateProbes(change: Change, before: ClusterState, after: ClusterState, _ctx: RuleContext): Finding[] {
  // Probes are ingress: a policy change that cannot affect ingress cannot drop them. A cilium-config
  // change of the policy mode (enable-policy: always, enable-non-default-deny-policies off) can put
  // every ambient pod into ingress default deny: touchedPods then returns every pod.
  const touched = touchedPods(change, before, after, { direction: 'ingress' });
  if (touched.pods.length === 0) return [];
  const memo = new Map<string, boolean | undefined>();
  const check = (state: ClusterState, pod: Pod): boolean | undefined => {
    // Most pods are not ambient: answer those before computing the (policy-selecting) shape key.
    if (meshMode(state, pod) !== 'ambient') return undefined;
    const key = `${state === after ? 'a' : 'b'}\u0000${ingressShapeKey(state, pod)}`;
    if (memo.has(key)) return memo.get(key);
    const v = probesAdmitted(state, pod);
    memo.set(key, v);
    return v;
  };
  const { lost, stillMissing } = compareLoss(touched.pods, before, after, check, ambientIngressClassKey);
  // A cluster-wide config change repeats no pre-existing problem: only what it breaks is reported.
  const victims = lost.length > 0 || isCiliumConfigChange(change) ? lost : stillMissing;
  if (victims.length === 0) return [];
  const v6 = probeSourceFor(victims[0]!) === PROBE_SNAT_IPV6;
  const src = v6 ? PROBE_SNAT_IPV6 : PROBE_SNAT_IPV4;
  const n = victims.length;
  const who = `${n} ambient pod${n === 1 ? '' : 's'}${touched.synthetic ? ' (pods this policy would select)' : ''}`;
  const subject = isPolicyChange(change) || change.kind === 'Namespace' || isCiliumConfigChange(change) ? `${changeRef(change)}: ` : '';
  return [
    {
      rule: ID,
      message: `${subject}${who} ingress-enforced with no allow from ${src} (kubelet probes SNATed by istio-cni): probes fail, pods restart: ${describeVictims(victims)}`,
      fix: fixFor(change, v6),
      ...victimsOf(victims),
      ...(lost.length > 0 ? {} : { preexisting: true }),
    },
  ];
}

export const rule: Rule = {
  id: ID,
  severity: 'B',
  summary: 'Ingress-enforced ambient pods with no allow from 169.254.7.127/32: SNATed kubelet probes are dropped',
  docs: `docs/rules/${ID}.md`,
  triggers: [
    { kinds: ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy', 'NetworkPolicy'], operations: ['CREATE', 'UPDATE', 'DELETE'] },
    { kinds: ['Namespace'], operations: ['UPDATE'] },
    { kinds: ['ConfigMap'], operations: ['CREATE', 'UPDATE'] },
  ],
  evaluate: evaluateProbes,
};
