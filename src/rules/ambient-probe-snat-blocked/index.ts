// ambient-probe-snat-blocked: ingress-enforced ambient pods with no allow from 169.254.7.127 on their probe
// ports. For ambient pods istio-cni SNATs the kubelet's health probes to that link-local address (so
// ztunnel can tell them apart and let them through unauthenticated). Cilium then no longer sees them as
// coming from the local host (always allowed) but from `world`: unless the policy admits 169.254.7.127/32
// on each probe's port, the probes are dropped and the pods fail readiness and get restarted by their
// liveness probe. A pod without HTTP, TCP or gRPC probes has nothing to drop.
//
// The rule folder: index.ts (this file: metadata, scope, check), messages.ts (the words, per code),
// testdata/*.yaml (fixtures run by test/rules/fixtures.test.ts). docs/adding-a-rule.md explains the layout.

import type { Change } from '../../core/change.ts';
import type { Finding } from '../../core/finding.ts';
import type { ClusterState, Pod } from '../../core/objects.ts';
import type { Rule, RuleContext } from '../../core/rule.ts';
import { meshMode, ambientIngressClassKey, ingressEnforcementChanged, ingressShapeKey, probePortsBlocked, probeSourceFor, unknownProbesBlocked } from '../../policy/index.ts';
import { decidedByOf, isCiliumConfigChange, isPolicyChange, judgeByClass, touchedPods } from '../../impact/index.ts';
import { denyFixOf, victimParams, victimsOf } from '../render-helpers.ts';
import { messages } from './messages.ts';

const ID = 'ambient-probe-snat-blocked';

type PolicyKind = 'NetworkPolicy' | 'CiliumNetworkPolicy' | 'CiliumClusterwideNetworkPolicy';

/** What the request does that this rule judges: something that can change the ingress of ambient pods. */
type Subject =
  | { readonly by: 'policy'; readonly policyKind: PolicyKind; readonly policy: string; readonly deleted: boolean }
  | { readonly by: 'namespace'; readonly namespace: string }
  | { readonly by: 'cilium-config' };

/** Cheap, from the request alone. */
export function scope(change: Change): Subject | undefined {
  if (isPolicyChange(change)) {
    const policy = change.namespace ? `${change.namespace}/${change.name}` : change.name;
    return { by: 'policy', policyKind: change.kind as PolicyKind, policy, deleted: change.operation === 'DELETE' || !change.object };
  }
  if (change.kind === 'Namespace' && change.operation === 'UPDATE') return { by: 'namespace', namespace: change.name };
  if (isCiliumConfigChange(change)) return { by: 'cilium-config' };
  return undefined;
}

export function check(subject: Subject, change: Change, before: ClusterState, after: ClusterState): Finding[] {
  // Probes are ingress: a policy change that cannot affect ingress cannot drop them. A cilium-config
  // change of the policy mode (enable-policy: always, enable-non-default-deny-policies off) can put
  // every ambient pod into ingress default deny: touchedPods then returns every pod.
  const touched = touchedPods(change, before, after, { direction: 'ingress' });
  if (touched.pods.length === 0) return [];
  // Pods of one ingress shape (probes included) get one answer per state, within this evaluation.
  const byShape = new Map<string, readonly number[] | undefined>();
  const blocked = (state: ClusterState, pod: Pod): readonly number[] | undefined => {
    // Most pods are not ambient: answer those before computing the (policy-selecting) shape key.
    if (meshMode(state, pod) !== 'ambient') return undefined;
    const key = `${state === after ? 'a' : 'b'}\u0000${ingressShapeKey(state, pod)}`;
    if (byShape.has(key)) return byShape.get(key);
    // The synthetic pod of a policy that selects no pod yet has no known probes: judged for any port.
    const v = touched.synthetic ? unknownProbesBlocked(state, pod) : probePortsBlocked(state, pod);
    byShape.set(key, v);
    return v;
  };
  // A cilium-config change of `enable-policy` alone reports only losses (below), and only a pod whose
  // ingress enforcement it changes can lose a probe: every other pod keeps each ingress answer. Those
  // pods are known per state revision, not per request.
  const judgedPods = subject.by === 'cilium-config' ? (ingressEnforcementChanged(before, after, touched.pods) ?? touched.pods) : touched.pods;
  // A pod loses its probes when a probe port that got through before (or was not SNATed: not ambient
  // then) is dropped now, even if another one already was.
  const judged = judgeByClass<Pod, readonly number[]>(judgedPods, ambientIngressClassKey, (pod) => {
    const now = blocked(after, pod);
    if (now === undefined || now.length === 0) return { outcome: now === undefined ? 'skip' : 'ok' };
    const was = blocked(before, pod) ?? [];
    return { outcome: now.some((port) => !was.includes(port)) ? 'lost' : 'still', detail: now };
  });
  const { lost, stillMissing } = judged;
  // A cluster-wide config change repeats no pre-existing problem: only what it breaks is reported.
  const victims = lost.length > 0 || subject.by === 'cilium-config' ? lost : stillMissing;
  if (victims.length === 0) return [];
  const preexisting = lost.length === 0;
  // Port 0 stands for every port (probes not known): no port is named then.
  const ports = ((preexisting ? judged.stillClasses : judged.lostClasses)[0]?.detail ?? []).filter((port) => port !== 0).map(String);
  const p = { source: probeSourceFor(victims[0]!), ports, ...victimParams(victims), synthetic: touched.synthetic };
  const extras = { ...victimsOf(victims), preexisting };
  // A deny decides for some victims (an ingressDeny of world covers the probe source): name it, since an
  // allow from the probe source would change nothing for them.
  const classes = preexisting ? judged.stillClasses : judged.lostClasses;
  const decidedBy = touched.synthetic ? undefined : decidedByOf(victims, classes, ambientIngressClassKey, (pod) => probePortsBlocked(after, pod), after);
  const deny = denyFixOf(decidedBy);
  if (deny) {
    const change =
      subject.by === 'policy' ? `${subject.policyKind} ${subject.policy}` : subject.by === 'namespace' ? `Namespace ${subject.namespace}` : 'ConfigMap kube-system/cilium-config';
    const q = { ...p, ...deny, ...victimParams(decidedBy!.byDeny), change };
    return [messages.finding(preexisting ? 'still-denied-by-policy' : 'denied-by-policy', q, extras)];
  }
  switch (subject.by) {
    case 'policy': {
      const q = { ...p, policyKind: subject.policyKind, policy: subject.policy };
      if (subject.deleted) return [messages.finding('policy-deletion-blocks-probes', q, extras)];
      return [messages.finding(preexisting ? 'policy-keeps-blocking-probes' : 'policy-blocks-probes', q, extras)];
    }
    case 'namespace':
      return [messages.finding('namespace-relabel-blocks-probes', { ...p, namespace: subject.namespace }, extras)];
    case 'cilium-config':
      return [messages.finding('config-blocks-probes', p, extras)];
  }
}

export const rule: Rule = {
  id: ID,
  severity: 'B',
  summary: 'Ingress-enforced ambient pods with no allow from 169.254.7.127/32 on their probe ports: SNATed kubelet probes are dropped',
  docs: `docs/rules/${ID}.md`,
  triggers: [
    { kinds: ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy', 'NetworkPolicy'], operations: ['CREATE', 'UPDATE', 'DELETE'], when: 'with an ingress section: pods selected by the old and the new object; the synthetic pod built from the selector when none is live' },
    { kinds: ['Namespace'], operations: ['UPDATE'], when: 'labels changed (e.g. `istio.io/dataplane-mode=ambient` added): the namespace\'s pods' },
    { kinds: ['ConfigMap'], operations: ['CREATE', 'UPDATE'], when: 'only `kube-system/cilium-config` changing the policy mode (`enable-policy`, `enable-non-default-deny-policies`, `policy-cidr-match-mode`): every pod; only pods whose probes this change blocks are reported' },
  ],
  messages,
  evaluate: (change: Change, before: ClusterState, after: ClusterState, _ctx: RuleContext): Finding[] => {
    const subject = scope(change);
    return subject ? check(subject, change, before, after) : [];
  },
};
