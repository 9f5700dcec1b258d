// dual-l7-authz: the same workload gets HTTP authorization from two places, Cilium L7 rules
// (`toPorts[].rules.http` on ingress) and an Istio AuthorizationPolicy with HTTP attributes enforced by
// Envoy (the pod's sidecar, or the waypoint serving an ambient pod). Cilium and Istio both advise
// against it: two policy sets drift apart, a request must pass both, and denials come from either side.

//
// The rule folder: index.ts (this file: metadata, scope, check), messages.ts (the words, per code),
// testdata/*.yaml (fixtures run by test/rules/fixtures.test.ts). docs/adding-a-rule.md explains the layout.

import type { Change } from '../../core/change.ts';
import type { Finding } from '../../core/finding.ts';
import type { ClusterState, Labels, Pod, PolicyObject } from '../../core/objects.ts';
import type { Rule, RuleContext } from '../../core/rule.ts';
import { authzAttachment, httpAttributesOf, istioRootNamespace, podsBehindTargetedWaypoints, targetsWaypoint, waypointFor, type PolicyRef, formatPolicyRef, istioPolicyPods, l7ModelsSelecting, l7ProxyEnabled, meshMode, podIn, podRef, unionPods } from '../../policy/index.ts';
import { isCiliumPolicyChange, touchedPods } from '../../impact/index.ts';
import { victimParams, victimsOf } from '../render-helpers.ts';
import { messages } from './messages.ts';

const ID = 'dual-l7-authz';

interface Hit {
  readonly pod: Pod;
  readonly cilium: PolicyRef;
  readonly istio: PolicyObject;
  readonly attributes: readonly string[];
}

/** Cilium policies with HTTP rules on the pod's ingress. */
function ciliumHttpPolicies(state: ClusterState, pod: Pod): PolicyRef[] {
  const out: PolicyRef[] = [];
  for (const m of l7ModelsSelecting(state, pod)) {
    const http = m.elements.some((e) => e.direction === 'ingress' && !e.deny && e.ports.some((s) => (s.rules?.http?.length ?? 0) > 0));
    if (http) out.push(m.ref);
  }
  return out;
}

function labelsMatch(ml: unknown, labels: Labels | undefined): boolean {
  if (typeof ml !== 'object' || ml === null) return false;
  return Object.entries(ml as Record<string, unknown>).every(([k, v]) => labels?.[k] === String(v));
}

function isHttpDecision(ap: PolicyObject): boolean {
  const a = ap.spec?.['action'];
  return a === undefined || a === 'ALLOW' || a === 'DENY' || a === 'CUSTOM';
}

/** Does Envoy enforce this AuthorizationPolicy for the pod (its sidecar, or the waypoint serving it)? */
function envoyEnforces(state: ClusterState, ap: PolicyObject, pod: Pod, mode: string): boolean {
  const att = authzAttachment(state, ap);
  if (att.targetRefs.length === 0) return mode === 'sidecar' && att.pods.some((p) => podRef(p) === podRef(pod));
  if (mode !== 'ambient') return false;
  const wp = waypointFor(state, pod);
  if (!wp) return false;
  // The waypoint itself (wherever it lives: istio.io/use-waypoint-namespace), or every waypoint.
  if (targetsWaypoint(state, ap, wp)) return true;
  const apNs = ap.metadata.namespace ?? '';
  for (const ref of att.targetRefs) {
    const name = ref['name'];
    if (ref['kind'] === 'Service' && typeof name === 'string' && (pod.metadata.namespace ?? '') === apNs) {
      const svc = state.get('Service', apNs, name);
      if (svc?.spec.selector && Object.keys(svc.spec.selector).length > 0 && labelsMatch(svc.spec.selector, pod.metadata.labels)) return true;
    }
  }
  return false;
}

/** Istio policies with HTTP attributes that Envoy enforces for the pod. */
function istioHttpPolicies(state: ClusterState, pod: Pod): PolicyObject[] {
  const mode = meshMode(state, pod);
  if (mode === 'none') return [];
  const ns = pod.metadata.namespace ?? '';
  const root = istioRootNamespace(state);
  const namespaces = new Set([ns, root]);
  // A waypoint in another namespace carries the policies attached to it there.
  if (mode === 'ambient') namespaces.add(waypointFor(state, pod)?.metadata.namespace ?? ns);
  const candidates = [...namespaces].flatMap((n) => state.list('AuthorizationPolicy', n));
  return candidates.filter((ap) => isHttpDecision(ap) && httpAttributesOf(ap).length > 0 && envoyEnforces(state, ap, pod, mode));
}

function hitFor(state: ClusterState, pod: Pod): Hit | undefined {
  const cilium = ciliumHttpPolicies(state, pod);
  if (cilium.length === 0) return undefined;
  const istio = istioHttpPolicies(state, pod);
  if (istio.length === 0) return undefined;
  return { pod, cilium: cilium[0]!, istio: istio[0]!, attributes: httpAttributesOf(istio[0]!) };
}

function hitsOf(state: ClusterState, pods: readonly Pod[]): Hit[] {
  const out: Hit[] = [];
  for (const p of pods) {
    const here = podIn(state, p);
    const h = here && hitFor(state, here);
    if (h) out.push(h);
  }
  return out;
}

/** What the request does that this rule judges; undefined: nothing to judge. */
type Subject = { readonly by: 'cilium-policy' } | { readonly by: 'authorization-policy' };

/** Cheap, from the request alone: a Cilium policy or an AuthorizationPolicy written (a DELETE only removes a layer). */
export function scope(change: Change): Subject | undefined {
  if (change.operation === 'DELETE') return undefined;
  if (isCiliumPolicyChange(change)) return { by: 'cilium-policy' };
  if (change.kind === 'AuthorizationPolicy' && change.object) return { by: 'authorization-policy' };
  return undefined;
}

function touched(subject: Subject, change: Change, before: ClusterState, after: ClusterState): { pods: readonly Pod[]; synthetic: boolean } {
  if (subject.by === 'cilium-policy') return touchedPods(change, before, after, { direction: 'l7' });
  const ap = change.object as PolicyObject;
  const hasTargets = authzAttachment(after, ap).targetRefs.length > 0;
  // Service targets select pods of the policy's namespace; waypoint targets reach every pod behind it.
  if (hasTargets) return { pods: unionPods(after.list('Pod', ap.metadata.namespace ?? ''), podsBehindTargetedWaypoints(after, ap)), synthetic: false };
  return {
    pods: unionPods(istioPolicyPods(before, change.oldObject as PolicyObject | undefined, true), istioPolicyPods(after, ap, true)),
    synthetic: false,
  };
}

export function check(subject: Subject, change: Change, before: ClusterState, after: ClusterState): Finding[] {
  // Without the L7 proxy (or with policy off) Cilium's HTTP rules are not enforced: one L7 layer only.
  if (!l7ProxyEnabled(after)) return [];
  const t = touched(subject, change, before, after);
  if (t.pods.length === 0) return [];
  const a = hitsOf(after, t.pods);
  if (a.length === 0) return [];
  const old = new Set(hitsOf(before, t.pods).map((h) => podRef(h.pod)));
  const added = a.filter((h) => !old.has(podRef(h.pod)));
  const preexisting = added.length === 0;
  const shown = preexisting ? a : added;
  const first = shown[0]!;
  const victims = shown.map((h) => h.pod);
  const overlap = {
    ciliumPolicy: formatPolicyRef(first.cilium),
    authorizationPolicy: `${first.istio.metadata.namespace ?? ''}/${first.istio.metadata.name}`,
    attributes: first.attributes.slice(0, 3),
    attributeCount: first.attributes.length,
    ...victimParams(victims),
  };
  const extras = { ...victimsOf(victims), preexisting };
  if (subject.by === 'cilium-policy') {
    return [messages.finding(preexisting ? 'cilium-rules-kept' : 'cilium-rules-overlap', { ...overlap, wouldSelect: t.synthetic }, extras)];
  }
  return [messages.finding(preexisting ? 'authorization-policy-kept' : 'authorization-policy-overlaps', overlap, extras)];
}

export const rule: Rule = {
  id: ID,
  severity: 'R',
  summary: 'Cilium HTTP rules and an Istio AuthorizationPolicy with HTTP attributes on the same workload (split-brain L7 authorization)',
  docs: `docs/rules/${ID}.md`,
  triggers: [
    { kinds: ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy'], operations: ['CREATE', 'UPDATE'], when: 'adds Cilium HTTP rules to a workload Istio already authorizes at L7' },
    { kinds: ['AuthorizationPolicy'], operations: ['CREATE', 'UPDATE'], when: 'adds Istio HTTP rules to a workload Cilium already authorizes at L7; a waypoint policy is checked for every pod behind the waypoint, in any namespace' },
  ],
  messages,
  evaluate: (change: Change, before: ClusterState, after: ClusterState, _ctx: RuleContext): Finding[] => {
    const subject = scope(change);
    return subject ? check(subject, change, before, after) : [];
  },
};
