// cilium-socketlb-hostns: Cilium's socket-level load balancer (on with kube-proxy replacement, or
// bpf-lb-sock) also runs inside pod network namespaces unless bpf-lb-sock-hostns-only is "true". It then
// rewrites a pod's connect() to a Service VIP into a backend pod IP before Istio's redirection sees the
// connection, so the sidecar / ztunnel no longer knows which Service was meant: Istio routing, policy and
// telemetry for Services are bypassed. The Cilium Istio guide requires bpf-lb-sock-hostns-only: "true".

import type { Change } from '../core/change.ts';
import { ciliumConfig } from '../policy/index.ts';
import type { ClusterState } from '../state/types.ts';
import {
  enablesAmbient,
  enablesInjection,
  isCiliumConfig,
  isIstiodDeployment,
  istiodDeployments,
  istiodPods,
  istioPresent,
} from './istio-usage-helpers.ts';
import type { Finding, Rule, RuleContext } from './types.ts';

const ID = 'cilium-socketlb-hostns';

function bad(state: ClusterState): boolean {
  const cfg = ciliumConfig(state);
  return cfg.present && cfg.socketLB && !cfg.socketLBHostnsOnly && istioPresent(state);
}

function socketLbSource(state: ClusterState): string {
  const cfg = ciliumConfig(state);
  return cfg.kubeProxyReplacement ? 'kube-proxy-replacement' : 'bpf-lb-sock';
}

function istiodName(state: ClusterState): string {
  const d = istiodDeployments(state)[0] ?? istiodPods(state)[0];
  return d ? `${d.metadata.namespace ?? ''}/${d.metadata.name}` : 'istiod';
}

function evaluateSocketLb(change: Change, before: ClusterState, after: ClusterState, _ctx: RuleContext): Finding[] {
  let cause: string;
  let preexisting: boolean;
  if (isCiliumConfig(change) && change.operation !== 'DELETE') {
    if (!bad(after)) return [];
    preexisting = bad(before);
    cause = preexisting ? 'cilium-config keeps' : 'cilium-config turns on';
  } else if (change.kind === 'Deployment' && change.operation === 'CREATE' && isIstiodDeployment(change.object)) {
    if (!bad(after)) return [];
    preexisting = bad(before);
    cause = `istiod ${change.namespace}/${change.name} is installed with`;
  } else if (enablesInjection(change) || enablesAmbient(change)) {
    // The request changes neither Cilium nor Istio: the cluster-wide problem only gains a namespace.
    if (!bad(after)) return [];
    preexisting = true;
    cause = `namespace ${change.name} joins the mesh with`;
  } else {
    return [];
  }
  const message =
    `${cause} socket LB in pod namespaces (${socketLbSource(after)} without bpf-lb-sock-hostns-only: "true") while Istio runs ` +
    `(${istiodName(after)}): Service connections are load-balanced at connect() and bypass sidecar/ztunnel routing`;
  const fix = 'set bpf-lb-sock-hostns-only: "true" in kube-system/cilium-config (Helm socketLB.hostNamespaceOnly=true) and restart the Cilium agents';
  return [{ rule: ID, message, fix, ...(preexisting ? { preexisting: true } : {}) }];
}

export const rule: Rule = {
  id: ID,
  severity: 'B',
  summary: 'Socket LB active in pod namespaces (no bpf-lb-sock-hostns-only: "true") while Istio runs: Service traffic bypasses Istio',
  docs: `docs/rules/${ID}.md`,
  triggers: [
    { kinds: ['ConfigMap'], operations: ['CREATE', 'UPDATE'] },
    { kinds: ['Deployment'], operations: ['CREATE'] },
    { kinds: ['Namespace'], operations: ['CREATE', 'UPDATE'] },
  ],
  evaluate: evaluateSocketLb,
};
