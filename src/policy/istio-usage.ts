// Is Istio installed, which of its parts are in use (injection webhooks, istio-cni, ambient), and where
// istiod runs. Cheap lookups only: Namespaces, webhook configurations, Deployments of the Istio
// namespaces and the pod-label index.

import type { ClusterState, Deployment, KubeObject, MutatingWebhookConfiguration, Pod } from '../core/objects.ts';
import { istioRootNamespace, namespaceAmbientEnabled, namespaceInjectionEnabled } from './istio.ts';

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

export function injectedNamespaces(state: ClusterState): readonly string[] {
  return state.list('Namespace').filter(namespaceInjectionEnabled).map((n) => n.metadata.name);
}

export function ambientNamespaces(state: ClusterState): readonly string[] {
  return state.list('Namespace').filter(namespaceAmbientEnabled).map((n) => n.metadata.name);
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
