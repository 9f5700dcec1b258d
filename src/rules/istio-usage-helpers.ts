// Shared by the cluster-plumbing rules (istiod-unreachable-overlay, cilium-socketlb-hostns,
// cilium-cni-exclusive): is Istio installed, which of its parts are in use (injection webhooks, istio-cni,
// ambient), where istiod runs, and whether a request touches any of it. Cheap lookups only: Namespaces,
// webhook configurations, Deployments of the Istio namespaces and the pod-label index.

import type { Change } from '../core/change.ts';
import { canonicalIp, istioRootNamespace } from '../policy/index.ts';
import type { ClusterState, Deployment, KubeObject, Labels, MutatingWebhookConfiguration, Namespace, Pod } from '../state/types.ts';

/** Services Istio's injection webhooks call: istiod (istiod-<rev>) and the pre-1.5 injector. */
export function isIstioWebhookService(name: string | undefined): boolean {
  return !!name && (name === 'istiod' || name.startsWith('istiod-') || name === 'istio-sidecar-injector');
}

/** The webhook configuration calls istiod (any of its webhooks has an istiod clientConfig.service). */
export function callsIstiod(mwc: MutatingWebhookConfiguration | undefined): boolean {
  return !!mwc && (mwc.webhooks ?? []).some((w) => isIstioWebhookService(w?.clientConfig?.service?.name));
}

/** Istio's injection webhook configurations in the state. */
export function istioWebhooks(state: ClusterState): readonly MutatingWebhookConfiguration[] {
  return state.list('MutatingWebhookConfiguration').filter(callsIstiod);
}

/** The injector never touches these namespaces. */
const EXCLUDED = new Set(['kube-system', 'kube-public']);

/** The namespace asks for sidecar injection (`istio-injection=enabled`, or `istio.io/rev` without `istio-injection`). */
export function injectionEnabled(ns: KubeObject | undefined): boolean {
  if (!ns || EXCLUDED.has(ns.metadata.name)) return false;
  const l: Labels = ns.metadata.labels ?? {};
  const inj = l['istio-injection'];
  if (inj !== undefined) return inj === 'enabled';
  return l['istio.io/rev'] !== undefined;
}

/** The namespace is enrolled in ambient. */
export function ambientEnabled(ns: KubeObject | undefined): boolean {
  if (!ns || EXCLUDED.has(ns.metadata.name)) return false;
  return ns.metadata.labels?.['istio.io/dataplane-mode'] === 'ambient';
}

export function injectedNamespaces(state: ClusterState): readonly string[] {
  return state.list('Namespace').filter(injectionEnabled).map((n) => n.metadata.name);
}

export function ambientNamespaces(state: ClusterState): readonly string[] {
  return state.list('Namespace').filter(ambientEnabled).map((n) => n.metadata.name);
}

/** Namespaces istiod may live in: the mesh root namespace and istio-system. */
function istioNamespaces(state: ClusterState): string[] {
  let root = 'istio-system';
  try {
    root = istioRootNamespace(state);
  } catch {
    root = 'istio-system';
  }
  return root === 'istio-system' ? [root] : [root, 'istio-system'];
}

/** An istiod Deployment: named istiod / istiod-<rev>, or labelled app=istiod. */
export function isIstiodDeployment(d: KubeObject | undefined): d is Deployment {
  if (!d || d.kind !== 'Deployment') return false;
  const n = d.metadata.name;
  return n === 'istiod' || n.startsWith('istiod-') || d.metadata.labels?.['app'] === 'istiod';
}

export function istiodDeployments(state: ClusterState): readonly Deployment[] {
  const out: Deployment[] = [];
  for (const ns of istioNamespaces(state)) for (const d of state.list('Deployment', ns)) if (isIstiodDeployment(d)) out.push(d);
  return out;
}

/** Running istiod pods (app=istiod), from the label index. */
export function istiodPods(state: ClusterState): readonly Pod[] {
  return state.podsWithLabel(undefined, 'app', 'istiod');
}

/** Istio's control plane is installed (an istiod Deployment or istiod pods). */
export function istioPresent(state: ClusterState): boolean {
  return istiodDeployments(state).length > 0 || istiodPods(state).length > 0;
}

/** `'yes'` when every istiod runs in the host network, `'no'` when one does not, `'unknown'` without istiod. */
export function istiodHostNetwork(state: ClusterState): 'yes' | 'no' | 'unknown' {
  const deps = istiodDeployments(state);
  if (deps.length > 0) return deps.every((d) => d.spec?.template?.spec?.hostNetwork === true) ? 'yes' : 'no';
  const pods = istiodPods(state);
  if (pods.length > 0) return pods.every((p) => p.spec?.hostNetwork === true) ? 'yes' : 'no';
  return 'unknown';
}

/** istio-cni is in use: its node agent pods, ztunnel pods (ambient needs istio-cni) or ambient namespaces. */
export function istioCniUsage(state: ClusterState): { cniAgent: boolean; ztunnel: boolean; ambientNamespaces: readonly string[] } {
  return {
    cniAgent: state.podsWithLabel(undefined, 'k8s-app', 'istio-cni-node').length > 0,
    ztunnel: state.podsWithLabel(undefined, 'app', 'ztunnel').length > 0,
    ambientNamespaces: ambientNamespaces(state),
  };
}

export function istioCniInUse(state: ClusterState): boolean {
  const u = istioCniUsage(state);
  return u.cniAgent || u.ztunnel || u.ambientNamespaces.length > 0;
}

/**
 * Is the kube-apiserver outside the nodes (managed control planes: EKS, GKE, AKS)? `auto` compares the
 * default/kubernetes EndpointSlice addresses with the Nodes' addresses; unknown (no endpoints or no
 * nodes in the state) counts as "not outside", so no finding rests on a guess.
 */
export function controlPlaneOutsideNodes(
  setting: 'auto' | 'outside-nodes' | 'on-nodes' | undefined,
  apiserverIps: readonly string[],
  nodeIps: readonly string[],
): boolean {
  if (setting === 'outside-nodes') return true;
  if (setting === 'on-nodes') return false;
  if (apiserverIps.length === 0 || nodeIps.length === 0) return false;
  const nodes = new Set(nodeIps.map((ip) => canonicalIp(ip) ?? ip));
  return !apiserverIps.some((ip) => nodes.has(canonicalIp(ip) ?? ip));
}

// ---------- what a request touches ----------

export function isCiliumConfig(change: Change): boolean {
  return change.kind === 'ConfigMap' && change.namespace === 'kube-system' && change.name === 'cilium-config';
}

/** The request is about an istiod Deployment (old or new object). */
export function isIstiodChange(change: Change): boolean {
  return change.kind === 'Deployment' && (isIstiodDeployment(change.object) || isIstiodDeployment(change.oldObject));
}

/** The request creates/updates a Namespace so that it now asks for injection (it did not before). */
export function enablesInjection(change: Change): boolean {
  return change.kind === 'Namespace' && change.operation !== 'DELETE' && injectionEnabled(change.object) && !injectionEnabled(change.oldObject);
}

/** The request creates/updates a Namespace so that it is now enrolled in ambient (it was not before). */
export function enablesAmbient(change: Change): boolean {
  return change.kind === 'Namespace' && change.operation !== 'DELETE' && ambientEnabled(change.object) && !ambientEnabled(change.oldObject);
}

export function namespaceOf(change: Change): Namespace | undefined {
  return change.kind === 'Namespace' ? (change.object as Namespace | undefined) : undefined;
}

/** "a, b, c and 4 more" */
export function listNames(names: readonly string[], max = 3): string {
  const shown = names.slice(0, max);
  const rest = names.length - shown.length;
  return rest > 0 ? `${shown.join(', ')} and ${rest} more` : shown.join(', ');
}
