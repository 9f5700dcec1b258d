// cilium-socketlb-hostns: Cilium's socket-level load balancer (on with kube-proxy replacement, or
// bpf-lb-sock) also runs inside pod network namespaces unless bpf-lb-sock-hostns-only is "true". It then
// rewrites a pod's connect() to a Service VIP into a backend pod IP before Istio's redirection sees the
// connection, so the sidecar / ztunnel no longer knows which Service was meant: Istio routing, policy and
// telemetry for Services are bypassed. The Cilium Istio guide requires bpf-lb-sock-hostns-only: "true".
//
// The rule folder: index.ts (this file: metadata, scope, check), messages.ts (the words, per code),
// testdata/*.yaml (fixtures run by test/rules/fixtures.test.ts). docs/adding-a-rule.md explains the layout.

import type { Change } from '../../core/change.ts';
import { ciliumConfig, isIstiodDeployment, istiodDeployments, istiodPods, istioPresent } from '../../policy/index.ts';
import type { ClusterState } from '../../core/objects.ts';
import { enablesAmbient, enablesInjection, isCiliumConfigChange as isCiliumConfig } from '../../impact/index.ts';
import type { Finding } from '../../core/finding.ts';
import type { Rule, RuleContext } from '../../core/rule.ts';
import { messages } from './messages.ts';

const ID = 'cilium-socketlb-hostns';

/** What the request does that this rule judges. */
type Subject =
  | { readonly by: 'cilium-config' }
  | { readonly by: 'istiod'; readonly deployment: string }
  | { readonly by: 'namespace'; readonly namespace: string };

/** Cheap, from the request alone: a cilium-config write, a new istiod Deployment, a Namespace joining the mesh. */
export function scope(change: Change): Subject | undefined {
  if (isCiliumConfig(change) && change.operation !== 'DELETE') return { by: 'cilium-config' };
  if (change.kind === 'Deployment' && change.operation === 'CREATE' && isIstiodDeployment(change.object)) {
    return { by: 'istiod', deployment: `${change.namespace}/${change.name}` };
  }
  if (enablesInjection(change) || enablesAmbient(change)) return { by: 'namespace', namespace: change.name };
  return undefined;
}

/** Socket LB runs in pod namespaces while Istio runs. */
function bypassed(state: ClusterState): boolean {
  const cfg = ciliumConfig(state);
  return cfg.present && cfg.socketLB && !cfg.socketLBHostnsOnly && istioPresent(state);
}

function istiodName(state: ClusterState): string {
  const d = istiodDeployments(state)[0] ?? istiodPods(state)[0];
  return d ? `${d.metadata.namespace ?? ''}/${d.metadata.name}` : 'istiod';
}

export function check(subject: Subject, before: ClusterState, after: ClusterState): Finding[] {
  if (!bypassed(after)) return [];
  const situation = {
    source: ciliumConfig(after).kubeProxyReplacement ? ('kube-proxy-replacement' as const) : ('bpf-lb-sock' as const),
    istiod: istiodName(after),
  };
  switch (subject.by) {
    case 'cilium-config': {
      const preexisting = bypassed(before);
      return [messages.finding(preexisting ? 'config-keeps-on' : 'config-turns-on', situation, { preexisting })];
    }
    case 'istiod':
      return [messages.finding('istiod-installed', { ...situation, deployment: subject.deployment }, { preexisting: bypassed(before) })];
    case 'namespace':
      // The request changes neither Cilium nor Istio: the cluster-wide problem only gains a namespace.
      return [messages.finding('namespace-joins-mesh', { ...situation, namespace: subject.namespace }, { preexisting: true })];
  }
}

export const rule: Rule = {
  id: ID,
  severity: 'B',
  summary: 'Socket LB active in pod namespaces (no bpf-lb-sock-hostns-only: "true") while Istio runs: Service traffic bypasses Istio',
  docs: `docs/rules/${ID}.md`,
  triggers: [
    { kinds: ['ConfigMap'], operations: ['CREATE', 'UPDATE'], when: 'only `kube-system/cilium-config`; always examined' },
    { kinds: ['Deployment'], operations: ['CREATE'], when: 'only istiod: Istio installed onto the cluster' },
    { kinds: ['Namespace'], operations: ['CREATE', 'UPDATE'], when: 'only when the request enables injection or ambient for it (`preexisting`)' },
  ],
  messages,
  evaluate: (change: Change, before: ClusterState, after: ClusterState, _ctx: RuleContext): Finding[] => {
    const subject = scope(change);
    return subject ? check(subject, before, after) : [];
  },
};
