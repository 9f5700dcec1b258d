// The words of cilium-socketlb-hostns's findings, one entry per code (`cilium-socketlb-hostns/<kind>`).
// Codes are a contract: never rename one; wording may change (test/rules/cilium-socketlb-hostns.test.ts
// keeps one golden test per code).

import { defineMessages } from '../../core/message.ts';

type Situation = {
  /** What turns the socket LB on: kube-proxy replacement, or bpf-lb-sock on its own. */
  readonly source: 'kube-proxy-replacement' | 'bpf-lb-sock';
  /** The istiod Deployment (or pod) as `ns/name`; `istiod` when none is found by name. */
  readonly istiod: string;
};
type Istiod = Situation & { readonly deployment: string };
type InNamespace = Situation & { readonly namespace: string };

const effect = (p: Situation): string =>
  ` socket LB in pod namespaces (${p.source} without bpf-lb-sock-hostns-only: "true") while Istio runs ` +
  `(${p.istiod}): Service connections are load-balanced at connect() and bypass sidecar/ztunnel routing`;

const fix = (): string =>
  'set bpf-lb-sock-hostns-only: "true" in kube-system/cilium-config (Helm socketLB.hostNamespaceOnly=true) and restart the Cilium agents';

export const messages = defineMessages<{
  'config-turns-on': Situation;
  'config-keeps-on': Situation;
  'istiod-installed': Istiod;
  'namespace-joins-mesh': InNamespace;
}>('cilium-socketlb-hostns', {
  'config-turns-on': {
    description: 'a cilium-config write turns the socket LB on in pod namespaces while Istio runs (denied)',
    summary: (p) => `cilium-config turns on${effect(p)}`,
    fix,
    detail: 'self-contained',
  },
  'config-keeps-on': {
    description: 'a cilium-config write keeps an existing bypass (preexisting: a warning)',
    summary: (p) => `cilium-config keeps${effect(p)}`,
    fix,
    detail: 'self-contained',
  },
  'istiod-installed': {
    description: 'istiod is installed on a cluster whose socket LB runs in pod namespaces (denied)',
    summary: (p) => `istiod ${p.deployment} is installed with${effect(p)}`,
    fix,
    detail: 'self-contained',
  },
  'namespace-joins-mesh': {
    description: 'a Namespace enables injection or ambient on a cluster that already bypasses Istio (preexisting)',
    summary: (p) => `namespace ${p.namespace} joins the mesh with${effect(p)}`,
    fix,
    detail: 'self-contained',
  },
});
