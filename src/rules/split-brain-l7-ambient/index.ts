// split-brain-l7-ambient: Cilium L7 rules (http, kafka, l7) on pods enrolled in Istio ambient. ztunnel
// redirects the pod's traffic inside its network namespace and carries it as HBONE (mTLS on TCP 15008),
// so Cilium's L7 proxy never sees the plaintext stream on the rule's port: connections time out.

//
// The rule folder: index.ts (this file: metadata, scope, check), messages.ts (the words, per code),
// testdata/*.yaml (fixtures run by test/rules/fixtures.test.ts). docs/adding-a-rule.md explains the layout.

import type { Change } from '../../core/change.ts';
import type { Finding } from '../../core/finding.ts';
import type { ClusterState, Pod } from '../../core/objects.ts';
import type { Rule, RuleContext } from '../../core/rule.ts';
import { conflictKey, coveredPorts, formatPolicyRef, l7ModelsSelecting, l7ProxyEnabled, l7Uses, meshMode, podIn, victimPods, type Conflict } from '../../policy/index.ts';
import { diffKeyed as diffConflicts, isCiliumPolicyChange, labelsChanged, namespaceUnits, perUnitInOrder, relabelReachesL7, touchedPods } from '../../impact/index.ts';
import { victimParams, victimsOf, l7Kind } from '../render-helpers.ts';
import { messages } from './messages.ts';

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

/**
 * The conflicts of `pods` in `state`, in pod order. With `units` (pods that share a class: the same mesh
 * mode, L7 policies and container ports), asked once per unit unless its first pod has a conflict.
 */
function conflictsOf(state: ClusterState, pods: readonly Pod[], units?: readonly (readonly Pod[])[]): Conflict[] {
  return perUnitInOrder(pods, units, (p) => {
    const here = podIn(state, p);
    return here ? ambientConflicts(state, here) : NONE;
  });
}
const NONE: readonly Conflict[] = [];

/** What the request does that this rule judges; undefined: nothing to judge. */
type Subject =
  | { readonly by: 'cilium-policy' }
  | { readonly by: 'namespace'; readonly namespace: string }
  | { readonly by: 'pod'; readonly namespace: string; readonly name: string };

/** Cheap, from the request alone: a Cilium policy written, a Namespace relabelled, a Pod relabelled or re-annotated. */
export function scope(change: Change): Subject | undefined {
  if (isCiliumPolicyChange(change)) return change.operation === 'DELETE' ? undefined : { by: 'cilium-policy' };
  if (change.kind === 'Namespace' && change.operation === 'UPDATE') return { by: 'namespace', namespace: change.name };
  if (change.kind === 'Pod' && change.operation === 'UPDATE' && change.object) {
    const a = change.object.metadata;
    const b = change.oldObject?.metadata;
    const moved = labelsChanged(change) || a.annotations?.[REDIRECTION] !== b?.annotations?.[REDIRECTION];
    return moved ? { by: 'pod', namespace: change.namespace ?? '', name: change.name } : undefined;
  }
  return undefined;
}

/**
 * Pods whose ambient enrolment or L7 policy this request may change. For a relabel, `units`: its pods by
 * class (what ambientConflicts reads of a pod, its mesh mode, its Cilium policies and its container
 * ports, is the same for every pod of a class), when `before` has the same pods as `after`.
 */
function touched(subject: Subject, change: Change, before: ClusterState, after: ClusterState): { pods: readonly Pod[]; synthetic: boolean; units?: readonly (readonly Pod[])[] } {
  switch (subject.by) {
    case 'cilium-policy':
      return touchedPods(change, before, after, { direction: 'l7' });
    case 'namespace':
      // A relabel no L7 rule reads (and that changes no mesh enrolment) cannot change a conflict.
      if (!relabelReachesL7(change, before)) return { pods: [], synthetic: false };
      return { pods: after.list('Pod', subject.namespace), synthetic: false, ...namespaceUnits(before, after, subject.namespace) };
    case 'pod': {
      const pod = after.get('Pod', subject.namespace, subject.name);
      return { pods: pod ? [pod] : [], synthetic: false };
    }
  }
}

export function check(subject: Subject, change: Change, before: ClusterState, after: ClusterState): Finding[] {
  if (!l7ProxyEnabled(after)) return [];
  const t = touched(subject, change, before, after);
  if (t.pods.length === 0) return [];
  const { added, kept } = diffConflicts(conflictsOf(before, t.pods, t.units), conflictsOf(after, t.pods, t.units));
  const preexisting = added.length === 0;
  const shown = preexisting ? kept : added;
  if (shown.length === 0) return [];
  const first = shown[0]!;
  const victims = victimPods(shown);
  const policies = [...new Set(shown.map((c) => formatPolicyRef(c.policy)))];
  const conflict = {
    l7: first.l7,
    policies: policies.slice(0, 2),
    policyCount: policies.length,
    direction: first.direction,
    ...(first.port === undefined ? {} : { port: first.port }),
    ...victimParams(victims),
    podNamespace: first.victim.metadata.namespace ?? '',
  };
  const extras = { ...victimsOf(victims), preexisting };
  switch (subject.by) {
    case 'cilium-policy':
      return [messages.finding(preexisting ? 'policy-keeps-ambient' : 'policy-selects-ambient', { ...conflict, wouldSelect: t.synthetic }, extras)];
    case 'namespace':
      return [messages.finding(preexisting ? 'namespace-keeps-ambient' : 'namespace-joins-ambient', { ...conflict, namespace: subject.namespace }, extras)];
    case 'pod':
      return [messages.finding(preexisting ? 'pod-keeps-ambient' : 'pod-joins-ambient', { ...conflict, pod: `${subject.namespace}/${subject.name}` }, extras)];
  }
}

export const rule: Rule = {
  id: ID,
  severity: 'B',
  summary: 'Cilium L7 rules select pods enrolled in Istio ambient: ztunnel tunnels past the L7 proxy, connections time out',
  docs: `docs/rules/${ID}.md`,
  triggers: [
    { kinds: ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy'], operations: ['CREATE', 'UPDATE'], when: 'adds L7 rules on ambient pods' },
    { kinds: ['Namespace'], operations: ['UPDATE'], when: 'label `istio.io/dataplane-mode=ambient` set under existing L7 rules (a new Namespace has no pods yet); a relabel no L7 rule reads is skipped' },
    { kinds: ['Pod'], operations: ['UPDATE'], when: 'pod label / redirection annotation enrolling the pod (`meshguard check` only: the webhook does not intercept pods, whose writes are too frequent to route through it)' },
  ],
  messages,
  evaluate: (change: Change, before: ClusterState, after: ClusterState, _ctx: RuleContext): Finding[] => {
    const subject = scope(change);
    return subject ? check(subject, change, before, after) : [];
  },
};
