// The words of istiod-unreachable-overlay's findings, one entry per code (`istiod-unreachable-overlay/<kind>`).
// Codes are a contract: never rename one; wording may change (test/rules/istiod-unreachable-overlay.test.ts
// keeps one golden test per code).

import { defineMessages } from '../../core/message.ts';
import { listNames } from '../render-helpers.ts';

/** The broken combination in the state after the request. */
type Situation = {
  /** How the control plane is known to be outside the nodes: the config file says so, or its endpoints are no Node IP. */
  readonly placement: 'configured' | 'detected';
  /** The default/kubernetes endpoint addresses. */
  readonly apiserverIps: readonly string[];
  /** Namespaces that ask for sidecar injection. */
  readonly injected: readonly string[];
  /** MutatingWebhookConfigurations that call istiod. */
  readonly webhooks: readonly string[];
};
type Istiod = Situation & { readonly istiod: string };
type InNamespace = Situation & { readonly namespace: string };
type Webhook = Situation & { readonly webhook: string };

function where(p: Situation): string {
  return p.placement === 'configured'
    ? 'the control plane is configured as outside the nodes'
    : `the kube-apiserver (${listNames(p.apiserverIps, 2)}) is not on a Node IP`;
}

function uses(p: Situation): string {
  return p.injected.length > 0 ? `sidecar injection (namespaces ${listNames(p.injected)})` : `Istio webhooks (${listNames(p.webhooks, 2)})`;
}

const effect = (p: Situation, what: string): string =>
  `: Cilium overlay routing + istiod on a pod IP + ${where(p)}: the apiserver cannot reach istiod, ${what} will time out`;

const fix = (): string =>
  'run istiod with hostNetwork: true (istiod Deployment spec.template.spec.hostNetwork, dnsPolicy: ClusterFirstWithHostNet), or use native routing (routing-mode: native) in kube-system/cilium-config';

export const messages = defineMessages<{
  'config-switches-to-tunnel': Situation;
  'config-keeps-tunnel': Situation;
  'istiod-loses-host-network': Istiod;
  'istiod-without-host-network': Istiod;
  'namespace-enables-injection': InNamespace;
  'webhook-points-at-istiod': Webhook;
}>('istiod-unreachable-overlay', {
  'config-switches-to-tunnel': {
    description: 'a cilium-config write turns on overlay routing while istiod runs on a pod IP and the apiserver is outside the nodes (denied)',
    summary: (p) => `cilium-config switches to tunnel routing${effect(p, uses(p))}`,
    fix,
    detail: 'self-contained',
  },
  'config-keeps-tunnel': {
    description: 'a cilium-config write keeps overlay routing on a cluster already in that state (preexisting: a warning)',
    summary: (p) => `cilium-config keeps tunnel routing${effect(p, uses(p))}`,
    fix,
    detail: 'self-contained',
  },
  'istiod-loses-host-network': {
    description: 'an istiod Deployment write takes istiod off the host network under overlay routing (denied)',
    summary: (p) => `istiod ${p.istiod} loses hostNetwork${effect(p, uses(p))}`,
    fix,
    detail: 'self-contained',
  },
  'istiod-without-host-network': {
    description: 'an istiod Deployment write keeps istiod off the host network (preexisting unless the rest of the combination is new)',
    summary: (p) => `istiod ${p.istiod} runs without hostNetwork${effect(p, uses(p))}`,
    fix,
    detail: 'self-contained',
  },
  'namespace-enables-injection': {
    description: 'a Namespace starts asking for sidecar injection, whose webhook the apiserver cannot reach (denied: its pods newly break)',
    summary: (p) => `namespace ${p.namespace} enables injection${effect(p, `sidecar injection for namespace ${p.namespace}`)}`,
    fix,
    detail: 'self-contained',
  },
  'webhook-points-at-istiod': {
    description: 'a MutatingWebhookConfiguration write points a webhook at the unreachable istiod (preexisting when it already did)',
    summary: (p) => `webhook ${p.webhook} points at istiod${effect(p, uses(p))}`,
    fix,
    detail: 'self-contained',
  },
});
