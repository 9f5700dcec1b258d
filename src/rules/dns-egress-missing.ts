// dns-egress-missing: a request leaves pods egress-enforced with no allow to the cluster DNS backends.
// Pods that resolve names through kube-dns then fail every lookup (timeouts, "could not resolve host").

import type { Change } from '../core/change.ts';
import { classifiedPods, dnsBackends, modelSelects, policyModel, reachable, dnsClassKey, dnsTarget, reachesDns, withoutDnsBackends } from '../policy/index.ts';
import type { ClusterState, Pod, PolicyObject } from '../state/types.ts';
import type { Finding, Rule, RuleContext } from './types.ts';
import { changeRef, compareLoss, everyClass, isCiliumConfigChange, isPolicyChange, touchedPods, labelsChanged } from '../impact/index.ts';
import { describeVictims, victimsOf, dnsAllowRule } from './render-helpers.ts';

const ID = 'dns-egress-missing';

function usesFqdn(obj: PolicyObject | undefined): boolean {
  if (!obj) return false;
  try {
    return policyModel(obj).some((m) => m.fqdnDependent);
  } catch {
    return false;
  }
}

/**
 * Does the request change the DNS servers' side: the ingress policy of the kube-dns backends, or the
 * labels of their namespace (which namespaceSelector peers of every client policy match)? Then every
 * client may lose DNS, not only the pods the request selects.
 */
function changesDnsServerSide(change: Change, before: ClusterState, after: ClusterState, dnsNamespace: string): boolean {
  if (isPolicyChange(change)) {
    const check = (obj: PolicyObject | undefined, state: ClusterState): boolean => {
      if (!obj) return false;
      const backends = dnsBackends(state).pods;
      // An ingress section, or enableDefaultDeny.ingress alone, can shut the backends off.
      return policyModel(obj).some((m) => (m.hasSection.ingress || m.enforces.ingress) && backends.some((b) => modelSelects(state, m, b)));
    };
    return check(change.oldObject as PolicyObject | undefined, before) || check(change.object as PolicyObject | undefined, after);
  }
  return (
    change.kind === 'Namespace' &&
    change.operation === 'UPDATE' &&
    change.name === dnsNamespace &&
    labelsChanged(change)
  );
}

function evaluateDns(change: Change, before: ClusterState, after: ClusterState, _ctx: RuleContext): Finding[] {
  const target = dnsTarget(after);
  if (!target) return []; // no kube-dns Service known: nothing to judge against
  const serverSide = changesDnsServerSide(change, before, after, target.namespace);
  // Server-side changes concern every client: a rare request, and pods are judged once per class.
  const touched = serverSide ? { pods: classifiedPods(after), synthetic: false } : touchedPods(change, before, after, { direction: 'egress' });
  if (touched.pods.length === 0) return [];
  // The DNS servers themselves resolve upstream, not through kube-dns.
  const pods = withoutDnsBackends(after, touched.pods);
  const { lost, stillMissing } = compareLoss(pods, before, after, (s, p) => reachesDns(s, p, 'UDP'), dnsClassKey(after));
  const dnsName = `UDP ${target.port} to ${target.namespace}/kube-dns`;
  const policyObj = isPolicyChange(change) ? (change.object as PolicyObject | undefined) : undefined;
  const fixKind = change.kind === 'NetworkPolicy' ? 'NetworkPolicy' : 'CiliumNetworkPolicy';
  const rule = dnsAllowRule(fixKind, target, usesFqdn(policyObj));

  if (lost.length > 0) {
    const first = lost[0]!;
    let tcpOnly = false;
    try {
      tcpOnly = reachesDns(after, first, 'TCP') === true;
    } catch {
      tcpOnly = false;
    }
    const hint = tcpOnly ? ` (only TCP ${target.port} is allowed; NetworkPolicy ports default to TCP, DNS needs protocol: UDP)` : '';
    const who = `${lost.length} pod${lost.length === 1 ? '' : 's'}${touched.synthetic ? ' (pods this policy would select)' : ''}`;
    let message: string;
    let fix: string;
    // The clients' egress still allows DNS: the servers' ingress drops it (their policy, the policy mode,
    // or the labels of the namespace the servers' peer selectors match).
    // Said only when it holds for every lost class: otherwise the egress fix is the one some pods need.
    const serversDrop = !tcpOnly && everyClass(lost, dnsClassKey(after), (p) => reachesDnsEgressOnly(after, p, target));
    if (serversDrop && !serverSide && (isCiliumConfigChange(change) || change.kind === 'Namespace')) {
      const cause = isCiliumConfigChange(change) ? 'this cilium-config change' : `relabelling namespace ${change.name}`;
      message = `${cause} makes the kube-dns pods' ingress policy drop DNS (${dnsName}) from ${who}; their egress still allows it: ${describeVictims(lost)}`;
      fix = isCiliumConfigChange(change)
        ? `first allow DNS ingress on the kube-dns pods from every client, e.g. ingress: [{fromEntities: [cluster], toPorts: [{ports: [{port: "${target.port}", protocol: UDP}, {port: "${target.port}", protocol: TCP}]}]}]` +
          ` (with enable-non-default-deny-policies off, a policy with enableDefaultDeny.ingress: false that selects them puts them into ingress default deny)`
        : `keep the labels of namespace ${change.name} that the kube-dns pods' ingress policy selects, or update its fromEndpoints/namespaceSelector peers`;
    } else if (serverSide && serversDrop) {
      // The clients' egress still allows DNS: the servers' ingress (or their namespace's labels) is the cause.
      message = `${change.operation === 'DELETE' ? 'deleting ' : ''}${changeRef(change)} blocks DNS (${dnsName}) for ${who}: ${describeVictims(lost)}`;
      fix =
        change.kind === 'Namespace'
          ? `keep the labels of namespace ${change.name} that client policies select, or update their namespaceSelector peers`
          : `allow DNS ingress on the kube-dns pods from every client, e.g. ingress: [{fromEntities: [cluster], toPorts: [{ports: [{port: "${target.port}", protocol: UDP}, {port: "${target.port}", protocol: TCP}]}]}]`;
    } else if (policyObj) {
      message = `${changeRef(change)} leaves ${who} egress-enforced without DNS (${dnsName})${hint}: ${describeVictims(lost)}`;
      fix = `add to ${changeRef(change)}: ${rule}`;
    } else if (change.operation === 'DELETE' && isPolicyChange(change)) {
      message = `deleting ${changeRef(change)} removes the DNS allow (${dnsName}) of ${who} that stay egress-enforced: ${describeVictims(lost)}`;
      fix = `before deleting, allow DNS for these pods in another policy of namespace ${first.metadata.namespace ?? ''}: ${rule}`;
    } else if (isCiliumConfigChange(change)) {
      message = `this cilium-config change leaves ${who} egress-enforced without DNS (${dnsName}): ${describeVictims(lost)}`;
      fix = `allow DNS for these pods first (e.g. a CiliumClusterwideNetworkPolicy): ${rule}`;
    } else {
      message = `relabelling namespace ${change.name} leaves ${who} egress-enforced without DNS (${dnsName}): ${describeVictims(lost)}`;
      fix = `allow DNS for these pods in namespace ${change.name}: ${rule}`;
    }
    return [{ rule: ID, message, fix, ...victimsOf(lost) }];
  }

  // Already broken before this request, which does not make it worse: say so, never deny. (Not for
  // server-side changes: their pods are every client, not pods this policy selects.)
  if (policyObj && !serverSide && stillMissing.length > 0) {
    return [
      {
        rule: ID,
        message: `${stillMissing.length} pod(s) selected by ${changeRef(change)} already have no DNS egress (${dnsName}): ${describeVictims(stillMissing)}`,
        fix: `add to ${changeRef(change)}: ${rule}`,
        ...victimsOf(stillMissing),
        preexisting: true,
      },
    ];
  }
  return [];
}

/** Is the pod's egress toward a DNS backend allowed (ignoring the backend's ingress)? */
function reachesDnsEgressOnly(state: ClusterState, pod: Pod, target: { readonly pods: readonly Pod[]; readonly port: number }): boolean {
  return target.pods.some((d) => reachable(state, pod, { type: 'pod', pod: d }, target.port, 'UDP', 'egress'));
}

export const rule: Rule = {
  id: ID,
  severity: 'B',
  summary: 'A change leaves pods egress-enforced with no allow to the cluster DNS backends (kube-dns, UDP 53)',
  docs: 'docs/rules/dns-egress-missing.md',
  triggers: [
    { kinds: ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy', 'NetworkPolicy'], operations: ['CREATE', 'UPDATE', 'DELETE'] },
    { kinds: ['Namespace'], operations: ['UPDATE'] },
    { kinds: ['ConfigMap'], operations: ['CREATE', 'UPDATE'] },
  ],
  evaluate: evaluateDns,
};
