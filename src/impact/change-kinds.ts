// What kind of change a request is: predicates over an admission Change (and its old/new objects) that
// the rules and touchedPods dispatch on.

import type { Change } from '../core/change.ts';
import { changedLabelKeys, isIstiodDeployment, namespaceAmbientEnabled, namespaceInjectionEnabled, namespaceLabelReadByL7 } from '../policy/index.ts';
import type { ClusterState, Namespace, PolicyObject } from '../core/objects.ts';

export const POLICY_KINDS = ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy', 'NetworkPolicy'] as const;

export function isPolicyChange(change: Change): boolean {
  return change.kind !== undefined && (POLICY_KINDS as readonly string[]).includes(change.kind);
}

export function isCiliumConfigChange(change: Change): boolean {
  return change.kind === 'ConfigMap' && change.namespace === 'kube-system' && change.name === 'cilium-config';
}
export function isCiliumPolicyChange(change: Change): boolean {
  return change.kind === 'CiliumNetworkPolicy' || change.kind === 'CiliumClusterwideNetworkPolicy';
}

export function labelsChanged(change: Change): boolean {
  const a = change.oldObject?.metadata.labels ?? {};
  const b = change.object?.metadata.labels ?? {};
  const ka = Object.keys(a);
  return ka.length !== Object.keys(b).length || ka.some((k) => a[k] !== b[k]);
}

/**
 * Can this Namespace relabel change any L7 conflict of its pods (as destinations or clients)? Conflicts
 * depend on mesh membership and on the selectors of Cilium policies with L7 rules only (see
 * namespaceLabelReadByL7); a relabel outside those leaves them as they were.
 */
export function relabelReachesL7(change: Change, state: ClusterState): boolean {
  return changedLabelKeys(change.oldObject?.metadata.labels, change.object?.metadata.labels).some((k) => namespaceLabelReadByL7(state, k));
}
/** The request is about an istiod Deployment (old or new object). */
export function isIstiodChange(change: Change): boolean {
  return change.kind === 'Deployment' && (isIstiodDeployment(change.object) || isIstiodDeployment(change.oldObject));
}

/** The request creates/updates a Namespace so that it now asks for injection (it did not before). */
export function enablesInjection(change: Change): boolean {
  return change.kind === 'Namespace' && change.operation !== 'DELETE' && namespaceInjectionEnabled(change.object) && !namespaceInjectionEnabled(change.oldObject);
}

/** The request creates/updates a Namespace so that it is now enrolled in ambient (it was not before). */
export function enablesAmbient(change: Change): boolean {
  return change.kind === 'Namespace' && change.operation !== 'DELETE' && namespaceAmbientEnabled(change.object) && !namespaceAmbientEnabled(change.oldObject);
}

export function namespaceOf(change: Change): Namespace | undefined {
  return change.kind === 'Namespace' ? (change.object as Namespace | undefined) : undefined;
}
/** "CiliumNetworkPolicy ns/name" of the request's object. */
export function changeRef(change: Change): string {
  return `${change.gvk.kind} ${change.namespace ? change.namespace + '/' : ''}${change.name}`;
}

/**
 * What a request does to the ingress of pods it may select, for rules that guard one set of pods'
 * ingress (istiod, webhook backends): a policy written (the object), a policy deleted, a Namespace
 * relabelled, or cilium-config written. Undefined for anything else. From the request alone.
 */
export type IngressSubject =
  | { readonly by: 'policy'; readonly object: PolicyObject }
  | { readonly by: 'delete' }
  | { readonly by: 'namespace'; readonly namespace: string }
  | { readonly by: 'cilium-config' };

export function ingressSubject(change: Change): IngressSubject | undefined {
  if (isPolicyChange(change)) {
    if (change.operation === 'DELETE') return { by: 'delete' };
    return change.object ? { by: 'policy', object: change.object as PolicyObject } : undefined;
  }
  if (change.kind === 'Namespace' && change.operation === 'UPDATE') return { by: 'namespace', namespace: change.name };
  if (isCiliumConfigChange(change) && change.operation !== 'DELETE') return { by: 'cilium-config' };
  return undefined;
}
