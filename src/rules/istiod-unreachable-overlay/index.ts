// istiod-unreachable-overlay: Cilium in overlay (tunnel) routing, istiod on a pod IP, and a kube-apiserver
// that does not run on the cluster nodes (managed control planes). The apiserver then has no route into
// the VXLAN/Geneve overlay, so its calls to Istio's admission webhooks (sidecar injection, config
// validation) time out: pods in injected namespaces cannot be created. The Cilium docs require istiod to
// run with hostNetwork: true in that setup.
//
// The rule folder: index.ts (this file: metadata, scope, check), messages.ts (the words, per code),
// testdata/*.yaml (fixtures run by test/rules/fixtures.test.ts). docs/adding-a-rule.md explains the layout.

import type { Change } from '../../core/change.ts';
import type { Finding } from '../../core/finding.ts';
import type { ClusterState, MutatingWebhookConfiguration } from '../../core/objects.ts';
import type { Rule, RuleContext } from '../../core/rule.ts';
import { apiserverEndpoints, ciliumConfig, nodeIPs, callsIstiod, controlPlaneOutsideNodes, injectedNamespaces, istiodHostNetwork, istioWebhooks } from '../../policy/index.ts';
import { enablesInjection, isCiliumConfigChange as isCiliumConfig, isIstiodChange } from '../../impact/index.ts';
import { messages } from './messages.ts';

const ID = 'istiod-unreachable-overlay';

/** What the request does that this rule judges: it writes one of the inputs of the combination. */
type Subject =
  | { readonly by: 'cilium-config' }
  | { readonly by: 'istiod'; readonly istiod: string }
  | { readonly by: 'namespace'; readonly namespace: string }
  | { readonly by: 'webhook'; readonly webhook: string };

/** Cheap, from the request alone. */
export function scope(change: Change): Subject | undefined {
  if (isCiliumConfig(change) && change.operation !== 'DELETE') return { by: 'cilium-config' };
  if (isIstiodChange(change) && change.operation !== 'DELETE') return { by: 'istiod', istiod: `${change.namespace}/${change.name}` };
  if (enablesInjection(change)) return { by: 'namespace', namespace: change.name };
  if (change.kind === 'MutatingWebhookConfiguration' && change.operation !== 'DELETE' && callsIstiod(change.object as MutatingWebhookConfiguration | undefined)) {
    return { by: 'webhook', webhook: change.name };
  }
  return undefined;
}

interface Situation {
  readonly broken: boolean;
  readonly tunnel: boolean;
  readonly istiodOnPodNetwork: boolean;
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
  return { broken: tunnel && istiodOnPodNetwork && outside && inUse, tunnel, istiodOnPodNetwork, apiserverIps, webhooks, injected };
}

export function check(subject: Subject, before: ClusterState, after: ClusterState, ctx: RuleContext): Finding[] {
  const now = situation(after, ctx);
  if (!now.broken) return [];
  const then = situation(before, ctx);
  // A namespace that starts asking for injection starts sending its pod creations to the unreachable
  // webhook: new breakage for it even when other namespaces already suffer.
  const preexisting = then.broken && subject.by !== 'namespace';
  const p = {
    placement: ctx.settings.controlPlane === 'outside-nodes' ? ('configured' as const) : ('detected' as const),
    apiserverIps: now.apiserverIps,
    injected: now.injected,
    webhooks: now.webhooks,
  };
  switch (subject.by) {
    case 'cilium-config':
      return [messages.finding(then.tunnel ? 'config-keeps-tunnel' : 'config-switches-to-tunnel', p, { preexisting })];
    case 'istiod':
      return [messages.finding(then.istiodOnPodNetwork ? 'istiod-without-host-network' : 'istiod-loses-host-network', { ...p, istiod: subject.istiod }, { preexisting })];
    case 'namespace':
      return [messages.finding('namespace-enables-injection', { ...p, namespace: subject.namespace }, { preexisting })];
    case 'webhook':
      return [messages.finding('webhook-points-at-istiod', { ...p, webhook: subject.webhook }, { preexisting })];
  }
}

export const rule: Rule = {
  id: ID,
  severity: 'B',
  summary: 'Cilium overlay routing + istiod not hostNetwork + apiserver outside the nodes: Istio webhooks (injection) time out',
  docs: `docs/rules/${ID}.md`,
  triggers: [
    { kinds: ['ConfigMap'], operations: ['CREATE', 'UPDATE'], when: 'only `kube-system/cilium-config`; always examined (e.g. switching to tunnel routing)' },
    { kinds: ['Deployment'], operations: ['CREATE', 'UPDATE'], when: 'only istiod; e.g. losing `hostNetwork`' },
    { kinds: ['Namespace'], operations: ['CREATE', 'UPDATE'], when: 'only when the request enables injection for it' },
    { kinds: ['MutatingWebhookConfiguration'], operations: ['CREATE', 'UPDATE'], when: 'only when one of its webhooks points at istiod' },
  ],
  messages,
  evaluate: (change: Change, before: ClusterState, after: ClusterState, ctx: RuleContext): Finding[] => {
    const subject = scope(change);
    return subject ? check(subject, before, after, ctx) : [];
  },
};
