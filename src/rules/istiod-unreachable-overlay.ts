// istiod-unreachable-overlay: Cilium in overlay (tunnel) routing, istiod on a pod IP, and a kube-apiserver
// that does not run on the cluster nodes (managed control planes). The apiserver then has no route into
// the VXLAN/Geneve overlay, so its calls to Istio's admission webhooks (sidecar injection, config
// validation) time out: pods in injected namespaces cannot be created. The Cilium docs require istiod to
// run with hostNetwork: true in that setup.

import type { Change } from '../core/change.ts';
import { apiserverEndpoints, ciliumConfig, nodeIPs, callsIstiod, controlPlaneOutsideNodes, injectedNamespaces, istiodHostNetwork, istioWebhooks } from '../policy/index.ts';
import type { ClusterState, MutatingWebhookConfiguration } from '../state/types.ts';
import type { Finding, Rule, RuleContext } from './types.ts';
import { enablesInjection, isCiliumConfigChange as isCiliumConfig, isIstiodChange } from '../impact/index.ts';
import { listNames } from './render-helpers.ts';

const ID = 'istiod-unreachable-overlay';

interface Situation {
  readonly broken: boolean;
  readonly tunnel: boolean;
  readonly istiodOnPodNetwork: boolean;
  readonly outside: boolean;
  readonly apiserverIps: readonly string[];
  readonly webhooks: readonly string[];
  readonly injected: readonly string[];
}

function situation(state: ClusterState, ctx: RuleContext): Situation {
  const cfg = ciliumConfig(state);
  // Chained behind the cloud's own CNI (EKS aws-cni, AKS azure), pods get VPC-routable addresses whatever
  // routing-mode says: the apiserver reaches them without the overlay.
  const chaining = (cfg.data['cni-chaining-mode'] ?? '').trim().toLowerCase();
  const tunnel = cfg.present && cfg.routingMode === 'tunnel' && chaining !== 'aws-cni' && chaining !== 'azure';
  const istiodOnPodNetwork = istiodHostNetwork(state) === 'no';
  const apiserverIps = apiserverEndpoints(state).ips;
  const outside = controlPlaneOutsideNodes(ctx.settings.controlPlane, apiserverIps, nodeIPs(state));
  const webhooks = istioWebhooks(state).map((w) => w.metadata.name);
  const injected = injectedNamespaces(state);
  const inUse = webhooks.length > 0 || injected.length > 0;
  return { broken: tunnel && istiodOnPodNetwork && outside && inUse, tunnel, istiodOnPodNetwork, outside, apiserverIps, webhooks, injected };
}

/** Whether this request is about one of the inputs, and what it changes, for the message. */
function relevance(change: Change): string | undefined {
  if (isCiliumConfig(change) && change.operation !== 'DELETE') return 'cilium-config';
  if (isIstiodChange(change) && change.operation !== 'DELETE') return 'istiod';
  if (enablesInjection(change)) return 'namespace';
  if (change.kind === 'MutatingWebhookConfiguration' && change.operation !== 'DELETE' && callsIstiod(change.object as MutatingWebhookConfiguration | undefined)) {
    return 'webhook';
  }
  return undefined;
}

function evaluateOverlay(change: Change, before: ClusterState, after: ClusterState, ctx: RuleContext): Finding[] {
  const what = relevance(change);
  if (!what) return [];
  const now = situation(after, ctx);
  if (!now.broken) return [];
  const then = situation(before, ctx);
  // A namespace that starts asking for injection starts sending its pod creations to the unreachable
  // webhook: new breakage for it even when other namespaces already suffer.
  const isNew = !then.broken || what === 'namespace';
  const where = ctx.settings.controlPlane === 'outside-nodes'
    ? 'the control plane is configured as outside the nodes'
    : `the kube-apiserver (${listNames(now.apiserverIps, 2)}) is not on a Node IP`;
  const uses = what === 'namespace'
    ? `sidecar injection for namespace ${change.name}`
    : now.injected.length > 0
      ? `sidecar injection (namespaces ${listNames(now.injected)})`
      : `Istio webhooks (${listNames(now.webhooks, 2)})`;
  const cause: Record<string, string> = {
    'cilium-config': then.tunnel ? 'cilium-config keeps tunnel routing' : 'cilium-config switches to tunnel routing',
    istiod: then.istiodOnPodNetwork
      ? `istiod ${change.namespace}/${change.name} runs without hostNetwork`
      : `istiod ${change.namespace}/${change.name} loses hostNetwork`,
    namespace: `namespace ${change.name} enables injection`,
    webhook: `webhook ${change.name} points at istiod`,
  };
  const message = `${cause[what]}: Cilium overlay routing + istiod on a pod IP + ${where}: the apiserver cannot reach istiod, ${uses} will time out`;
  const fix =
    'run istiod with hostNetwork: true (istiod Deployment spec.template.spec.hostNetwork, dnsPolicy: ClusterFirstWithHostNet), or use native routing (routing-mode: native) in kube-system/cilium-config';
  return [{ rule: ID, message, fix, ...(isNew ? {} : { preexisting: true }) }];
}

export const rule: Rule = {
  id: ID,
  severity: 'B',
  summary: 'Cilium overlay routing + istiod not hostNetwork + apiserver outside the nodes: Istio webhooks (injection) time out',
  docs: `docs/rules/${ID}.md`,
  triggers: [
    { kinds: ['ConfigMap'], operations: ['CREATE', 'UPDATE'] },
    { kinds: ['Deployment'], operations: ['CREATE', 'UPDATE'] },
    { kinds: ['Namespace'], operations: ['CREATE', 'UPDATE'] },
    { kinds: ['MutatingWebhookConfiguration'], operations: ['CREATE', 'UPDATE'] },
  ],
  evaluate: evaluateOverlay,
};
