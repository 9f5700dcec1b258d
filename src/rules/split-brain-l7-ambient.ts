// split-brain-l7-ambient: Cilium L7 rules (http, kafka, l7) on pods enrolled in Istio ambient. ztunnel
// redirects the pod's traffic inside its network namespace and carries it as HBONE (mTLS on TCP 15008),
// so Cilium's L7 proxy never sees the plaintext stream on the rule's port: connections time out.

import type { Change } from '../core/change.ts';
import type { ClusterState, Pod } from '../state/types.ts';
import type { Finding, Rule } from './types.ts';
import { conflictKey, coveredPorts, formatPolicyRef, l7ModelsSelecting, l7ProxyEnabled, l7Uses, meshMode, podIn, victimPods, type Conflict } from '../policy/index.ts';
import { changeRef, diffKeyed as diffConflicts, isCiliumPolicyChange, labelsChanged, relabelReachesL7, touchedPods } from '../impact/index.ts';
import { describeVictims, victimsOf, l7Kind, portLabel } from './render-helpers.ts';

const ID = 'split-brain-l7-ambient';
const REDIRECTION = 'ambient.istio.io/redirection';

function ambientConflicts(state: ClusterState, pod: Pod): Conflict[] {
  if (meshMode(state, pod) !== 'ambient') return [];
  const out: Conflict[] = [];
  for (const m of l7ModelsSelecting(state, pod)) {
    for (const use of l7Uses(m)) {
      for (const port of coveredPorts(pod, use.section)) {
        out.push({
          key: conflictKey(use.direction, pod, undefined, port),
          victim: pod,
          policy: m.ref,
          direction: use.direction,
          port,
          l7: l7Kind(use.section.rules),
          detail: '',
        });
      }
    }
  }
  return out;
}

function conflictsOf(state: ClusterState, pods: readonly Pod[]): Conflict[] {
  const out: Conflict[] = [];
  for (const p of pods) {
    const here = podIn(state, p);
    if (here) out.push(...ambientConflicts(state, here));
  }
  return out;
}

/** Pods whose ambient enrolment or L7 policy this request may change. */
function touched(change: Change, before: ClusterState, after: ClusterState): { pods: readonly Pod[]; synthetic: boolean } | undefined {
  if (isCiliumPolicyChange(change)) {
    return change.operation === 'DELETE' ? undefined : touchedPods(change, before, after, { direction: 'l7' });
  }
  if (change.kind === 'Namespace' && change.operation === 'UPDATE' && relabelReachesL7(change, before)) {
    return { pods: [...after.list('Pod', change.name)], synthetic: false };
  }
  if (change.kind === 'Pod' && change.operation === 'UPDATE' && change.object) {
    const a = change.object.metadata;
    const b = change.oldObject?.metadata;
    const moved = labelsChanged(change) || a.annotations?.[REDIRECTION] !== b?.annotations?.[REDIRECTION];
    const pod = after.get('Pod', change.namespace, change.name);
    return moved && pod ? { pods: [pod], synthetic: false } : undefined;
  }
  return undefined;
}

function evaluateAmbient(change: Change, before: ClusterState, after: ClusterState): Finding[] {
  if (!l7ProxyEnabled(after)) return [];
  const t = touched(change, before, after);
  if (!t || t.pods.length === 0) return [];
  const { added, kept } = diffConflicts(conflictsOf(before, t.pods), conflictsOf(after, t.pods));
  const shown = added.length > 0 ? added : kept;
  if (shown.length === 0) return [];
  const first = shown[0]!;
  const victims = victimPods(shown);
  const policies = [...new Set(shown.map((c) => formatPolicyRef(c.policy)))];
  const policyText = policies.length > 2 ? `${policies.slice(0, 2).join(', ')} and ${policies.length - 2} more` : policies.join(', ');
  const prefix = isCiliumPolicyChange(change) ? '' : `${changeRef(change)}: `;
  const who = isCiliumPolicyChange(change) && t.synthetic ? ' (pods this policy would select)' : '';
  const message =
    `${prefix}Cilium ${first.l7} rules of ${policyText} (${first.direction} ${portLabel(first.port)}) select pods enrolled in Istio ambient; ` +
    `ztunnel tunnels their traffic (HBONE) past Cilium's L7 proxy and connections time out${who}: ${describeVictims(victims)}`;
  const ns = first.victim.metadata.namespace ?? '';
  const fix =
    `take the pods out of ambient: remove label istio.io/dataplane-mode from namespace ${ns} (or label the pods istio.io/dataplane-mode: none / ` +
    `annotate them ambient.istio.io/redirection: disabled), or replace the Cilium L7 rules with an AuthorizationPolicy on a waypoint`;
  return [{ rule: ID, message, fix, ...victimsOf(victims), ...(added.length > 0 ? {} : { preexisting: true }) }];
}

export const rule: Rule = {
  id: ID,
  severity: 'B',
  summary: 'Cilium L7 rules select pods enrolled in Istio ambient: ztunnel tunnels past the L7 proxy, connections time out',
  docs: `docs/rules/${ID}.md`,
  triggers: [
    { kinds: ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy'], operations: ['CREATE', 'UPDATE'] },
    { kinds: ['Namespace'], operations: ['UPDATE'] },
    { kinds: ['Pod'], operations: ['UPDATE'] },
  ],
  evaluate(change, before, after) {
    try {
      return evaluateAmbient(change, before, after);
    } catch {
      return []; // odd input: no finding rather than a crash
    }
  },
};
