// cilium-cni-exclusive: with cni-exclusive on (the agent's default), Cilium keeps /etc/cni/net.d to itself
// and removes or renames every other CNI configuration it finds. Istio's CNI plugin (istio-cni, required
// by ambient and used by sidecars when the CNI mode is installed) chains itself into that configuration:
// the two keep undoing each other's work, istio-cni never becomes ready, and pods start without Istio's
// traffic redirection (or not at all).

import type { Change } from '../core/change.ts';
import { ciliumConfig } from '../policy/index.ts';
import type { ClusterState } from '../state/types.ts';
import { enablesAmbient, enablesInjection, isCiliumConfig, istioCniUsage, listNames } from './istio-usage-helpers.ts';
import type { Finding, Rule, RuleContext } from './types.ts';

const ID = 'cilium-cni-exclusive';

function usageText(state: ClusterState): string | undefined {
  const u = istioCniUsage(state);
  const parts: string[] = [];
  if (u.cniAgent) parts.push('istio-cni-node pods');
  if (u.ztunnel) parts.push('ztunnel pods');
  if (u.ambientNamespaces.length > 0) parts.push(`ambient namespaces ${listNames(u.ambientNamespaces)}`);
  return parts.length > 0 ? parts.join(', ') : undefined;
}

function bad(state: ClusterState): boolean {
  const cfg = ciliumConfig(state);
  return cfg.present && cfg.cniExclusive && usageText(state) !== undefined;
}

function evaluateCniExclusive(change: Change, before: ClusterState, after: ClusterState, _ctx: RuleContext): Finding[] {
  let cause: string;
  if (isCiliumConfig(change) && change.operation !== 'DELETE') {
    cause = bad(before) ? 'cilium-config keeps cni-exclusive on' : 'cilium-config turns cni-exclusive on';
  } else if (enablesAmbient(change)) {
    cause = `namespace ${change.name} joins ambient (needs istio-cni) while cni-exclusive is on`;
  } else if (enablesInjection(change)) {
    // Injection only depends on istio-cni when its node agent is installed; then the conflict preexists.
    if (!istioCniUsage(after).cniAgent) return [];
    cause = `namespace ${change.name} enables injection (istio-cni mode) while cni-exclusive is on`;
  } else {
    return [];
  }
  if (!bad(after)) return [];
  const preexisting = bad(before);
  const message =
    `${cause}: Cilium removes other CNI configurations, so Istio's CNI plugin (in use: ${usageText(after)}) ` +
    'is repeatedly deleted; istio-cni never gets ready and new pods miss mesh redirection';
  const fix = 'set cni-exclusive: "false" in kube-system/cilium-config (Helm cni.exclusive=false) and restart the Cilium agents';
  return [{ rule: ID, message, fix, ...(preexisting ? { preexisting: true } : {}) }];
}

export const rule: Rule = {
  id: ID,
  severity: 'B',
  summary: 'cni-exclusive not "false" while istio-cni / ambient is in use: Cilium deletes Istio\'s CNI configuration',
  docs: `docs/rules/${ID}.md`,
  triggers: [
    { kinds: ['ConfigMap'], operations: ['CREATE', 'UPDATE'] },
    { kinds: ['Namespace'], operations: ['CREATE', 'UPDATE'] },
  ],
  evaluate: evaluateCniExclusive,
};
