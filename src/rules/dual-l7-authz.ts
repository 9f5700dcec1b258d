// dual-l7-authz: the same workload gets HTTP authorization from two places, Cilium L7 rules
// (`toPorts[].rules.http` on ingress) and an Istio AuthorizationPolicy with HTTP attributes enforced by
// Envoy (the pod's sidecar, or the waypoint serving an ambient pod). Cilium and Istio both advise
// against it: two policy sets drift apart, a request must pass both, and denials come from either side.

import type { Change } from '../core/change.ts';
import { authzAttachment, httpAttributesOf, istioRootNamespace, podsBehindTargetedWaypoints, targetsWaypoint, waypointFor, type PolicyRef, formatPolicyRef, istioPolicyPods, l7ModelsSelecting, l7ProxyEnabled, meshMode, podIn, unionPods } from '../policy/index.ts';
import type { ClusterState, Labels, Pod, PolicyObject } from '../state/types.ts';
import type { Finding, Rule } from './types.ts';
import { changeRef, isCiliumPolicyChange, touchedPods } from '../impact/index.ts';
import { describeVictims, podRef, victimsOf } from './render-helpers.ts';

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

function touched(change: Change, before: ClusterState, after: ClusterState): { pods: readonly Pod[]; synthetic: boolean } | undefined {
  if (change.operation === 'DELETE') return undefined;
  if (isCiliumPolicyChange(change)) return touchedPods(change, before, after, { direction: 'l7' });
  if (change.kind === 'AuthorizationPolicy' && change.object) {
    const ap = change.object as PolicyObject;
    const hasTargets = authzAttachment(after, ap).targetRefs.length > 0;
    // Service targets select pods of the policy's namespace; waypoint targets reach every pod behind it.
    if (hasTargets) return { pods: unionPods(after.list('Pod', ap.metadata.namespace ?? ''), podsBehindTargetedWaypoints(after, ap)), synthetic: false };
    return {
      pods: unionPods(istioPolicyPods(before, change.oldObject as PolicyObject | undefined, true), istioPolicyPods(after, ap, true)),
      synthetic: false,
    };
  }
  return undefined;
}

function evaluateDual(change: Change, before: ClusterState, after: ClusterState): Finding[] {
  // Without the L7 proxy (or with policy off) Cilium's HTTP rules are not enforced: one L7 layer only.
  if (!l7ProxyEnabled(after)) return [];
  const t = touched(change, before, after);
  if (!t || t.pods.length === 0) return [];
  const a = hitsOf(after, t.pods);
  if (a.length === 0) return [];
  const old = new Set(hitsOf(before, t.pods).map((h) => podRef(h.pod)));
  const added = a.filter((h) => !old.has(podRef(h.pod)));
  const shown = added.length > 0 ? added : a;
  const first = shown[0]!;
  const victims = shown.map((h) => h.pod);
  const prefix = isCiliumPolicyChange(change) || change.kind === 'AuthorizationPolicy' ? '' : `${changeRef(change)}: `;
  const ap = `AuthorizationPolicy ${first.istio.metadata.namespace ?? ''}/${first.istio.metadata.name}`;
  const attrs = first.attributes.slice(0, 3).join(', ') + (first.attributes.length > 3 ? ', ...' : '');
  const who = t.synthetic ? ' (pods this policy would select)' : '';
  const message =
    `${prefix}${formatPolicyRef(first.cilium)} (Cilium HTTP rules) and ${ap} (${attrs}) both authorize HTTP for the same pods: ` +
    `split-brain L7 authorization, requests must pass both and denials come from either side${who}: ${describeVictims(victims)}`;
  const fix = `keep HTTP authorization in one place: drop rules.http from ${formatPolicyRef(first.cilium)} (keep its L4 part) or the HTTP attributes from ${ap}`;
  return [{ rule: ID, message, fix, ...victimsOf(victims), ...(added.length > 0 ? {} : { preexisting: true }) }];
}

export const rule: Rule = {
  id: ID,
  severity: 'R',
  summary: 'Cilium HTTP rules and an Istio AuthorizationPolicy with HTTP attributes on the same workload (split-brain L7 authorization)',
  docs: `docs/rules/${ID}.md`,
  triggers: [
    { kinds: ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy'], operations: ['CREATE', 'UPDATE'] },
    { kinds: ['AuthorizationPolicy'], operations: ['CREATE', 'UPDATE'] },
  ],
  evaluate(change, before, after) {
    try {
      return evaluateDual(change, before, after);
    } catch {
      return []; // odd input: no finding rather than a crash
    }
  },
};
