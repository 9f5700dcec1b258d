// The words of cilium-cni-exclusive's findings, one entry per code (`cilium-cni-exclusive/<kind>`).
// Codes are a contract: never rename one; wording may change (test/rules/cilium-cni-exclusive.test.ts
// keeps one golden test per code).

import { defineMessages } from '../../core/message.ts';
import { listNames } from '../render-helpers.ts';

/** What uses Istio's CNI plugin in the state after the request. */
type Usage = {
  /** istio-cni node agent pods run. */
  readonly cniAgent: boolean;
  /** ztunnel pods run. */
  readonly ztunnel: boolean;
  /** Namespaces enrolled in ambient, sorted. */
  readonly ambientNamespaces: readonly string[];
};
type InNamespace = Usage & { readonly namespace: string };

function usageText(u: Usage): string {
  const parts: string[] = [];
  if (u.cniAgent) parts.push('istio-cni-node pods');
  if (u.ztunnel) parts.push('ztunnel pods');
  if (u.ambientNamespaces.length > 0) parts.push(`ambient namespaces ${listNames(u.ambientNamespaces)}`);
  return parts.join(', ');
}

const effect = (u: Usage): string =>
  `: Cilium removes other CNI configurations, so Istio's CNI plugin (in use: ${usageText(u)}) ` +
  'is repeatedly deleted; istio-cni never gets ready and new pods miss mesh redirection';

const fix = (): string => 'set cni-exclusive: "false" in kube-system/cilium-config (Helm cni.exclusive=false) and restart the Cilium agents';

export const messages = defineMessages<{
  'config-turns-on': Usage;
  'config-keeps-on': Usage;
  'namespace-joins-ambient': InNamespace;
  'namespace-enables-injection': InNamespace;
}>('cilium-cni-exclusive', {
  'config-turns-on': {
    description: 'a cilium-config write makes Cilium exclusive while istio-cni is in use (denied)',
    summary: (p) => `cilium-config turns cni-exclusive on${effect(p)}`,
    fix,
    detail: 'self-contained',
  },
  'config-keeps-on': {
    description: 'a cilium-config write keeps an existing conflict (preexisting: a warning)',
    summary: (p) => `cilium-config keeps cni-exclusive on${effect(p)}`,
    fix,
    detail: 'self-contained',
  },
  'namespace-joins-ambient': {
    description: 'a Namespace joins ambient (which needs istio-cni) on an exclusive Cilium; preexisting when istio-cni was already in use',
    summary: (p) => `namespace ${p.namespace} joins ambient (needs istio-cni) while cni-exclusive is on${effect(p)}`,
    fix,
    detail: 'self-contained',
  },
  'namespace-enables-injection': {
    description: 'a Namespace asks for injection while the istio-cni agent runs on an exclusive Cilium (preexisting)',
    summary: (p) => `namespace ${p.namespace} enables injection (istio-cni mode) while cni-exclusive is on${effect(p)}`,
    fix,
    detail: 'self-contained',
  },
});
