// apiserver-egress-missing: a request leaves pods that use the kube-apiserver egress-enforced with no
// allow to it. Controllers, operators and mesh control planes then fail every watch and list.

import type { Change } from '../core/change.ts';
import type { ClusterState, PolicyObject } from '../state/types.ts';
import type { Finding, Rule, RuleContext } from './types.ts';
import { apiserverClassKey, apiserverReach, apiserverTarget, apiserverTargets, filterPods, usesApiserver } from '../policy/index.ts';
import { changeRef, compareReach, isCiliumConfigChange, isPolicyChange, touchedPods } from '../impact/index.ts';
import { describeVictims, victimsOf, apiserverAllowRule } from './render-helpers.ts';

const ID = 'apiserver-egress-missing';

function evaluateApiserver(change: Change, before: ClusterState, after: ClusterState, ctx: RuleContext): Finding[] {
  const touched = touchedPods(change, before, after, { direction: 'egress' });
  if (touched.pods.length === 0) return [];
  const clients = filterPods(touched.pods, (p) => usesApiserver(before, p, ctx.settings));
  if (clients.length === 0) return [];
  // Judged per endpoint: a pod that reached two of three API servers and now reaches one loses access.
  const targets = apiserverTargets(after);
  const { lost, stillMissing, lostTargets } = compareReach(clients, before, after, targets, apiserverReach, apiserverClassKey(after));
  const t = apiserverTarget(after);
  const where = `TCP ${t.port} to ${t.ips.length > 0 ? t.ips.join(', ') : 'the kube-apiserver'}`;
  // When some endpoints stay reachable, say which ones this request cuts off.
  const partial = t.ips.length > 1 && lostTargets.length > 0 && lostTargets.length < t.ips.length;
  const lostWhere = partial ? `TCP ${t.port} to ${lostTargets.join(', ')}, ${lostTargets.length} of the ${t.ips.length} API server endpoints` : where;
  const policyObj = isPolicyChange(change) ? (change.object as PolicyObject | undefined) : undefined;
  const fixKind = change.kind === 'NetworkPolicy' ? 'NetworkPolicy' : 'CiliumNetworkPolicy';
  const rule = apiserverAllowRule(fixKind, after);

  if (lost.length > 0) {
    const who = `${lost.length} pod${lost.length === 1 ? '' : 's'} using the API server`;
    let message: string;
    let fix: string;
    if (policyObj) {
      message = `${changeRef(change)} leaves ${who} egress-enforced without access to it (${lostWhere}): ${describeVictims(lost)}`;
      fix = `add to ${changeRef(change)}: ${rule}`;
    } else if (change.operation === 'DELETE' && isPolicyChange(change)) {
      message = `deleting ${changeRef(change)} removes the API server allow (${lostWhere}) of ${who} that stay egress-enforced: ${describeVictims(lost)}`;
      fix = `before deleting, allow the API server for these pods in another policy: ${rule}`;
    } else if (isCiliumConfigChange(change)) {
      message = `this cilium-config change leaves ${who} without access to it (${lostWhere}): ${describeVictims(lost)}`;
      fix = `allow the API server for these pods first: ${rule}`;
    } else {
      message = `relabelling namespace ${change.name} leaves ${who} egress-enforced without access to it (${lostWhere}): ${describeVictims(lost)}`;
      fix = `allow the API server for these pods in namespace ${change.name}: ${rule}`;
    }
    return [{ rule: ID, message, fix, ...victimsOf(lost) }];
  }
  if (policyObj && stillMissing.length > 0) {
    return [
      {
        rule: ID,
        message: `${stillMissing.length} pod(s) using the API server and selected by ${changeRef(change)} already cannot reach it (${where}): ${describeVictims(stillMissing)}`,
        fix: `add to ${changeRef(change)}: ${rule}`,
        ...victimsOf(stillMissing),
        preexisting: true,
      },
    ];
  }
  return [];
}

export const rule: Rule = {
  id: ID,
  severity: 'B',
  summary: 'A change leaves pods that use the API server (RBAC subjects, configured clients) egress-enforced with no allow to it',
  docs: 'docs/rules/apiserver-egress-missing.md',
  triggers: [
    { kinds: ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy', 'NetworkPolicy'], operations: ['CREATE', 'UPDATE', 'DELETE'] },
    { kinds: ['Namespace'], operations: ['UPDATE'] },
    { kinds: ['ConfigMap'], operations: ['CREATE', 'UPDATE'] },
  ],
  evaluate: evaluateApiserver,
};
