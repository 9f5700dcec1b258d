// apiserver-egress-missing: a request leaves pods that use the kube-apiserver egress-enforced with no
// allow to it. Controllers, operators and mesh control planes then fail every watch and list.
//
// The rule folder: index.ts (this file: metadata, scope, check), messages.ts (the words, per code),
// testdata/*.yaml (fixtures run by test/rules/fixtures.test.ts). docs/adding-a-rule.md explains the layout.

import type { Change } from '../../core/change.ts';
import type { Finding } from '../../core/finding.ts';
import type { ClusterState, Pod } from '../../core/objects.ts';
import type { Rule, RuleContext } from '../../core/rule.ts';
import { askPerClass, changeRef, compareReach, isCiliumConfigChange, isPolicyChange, touchedPods } from '../../impact/index.ts';
import { apiserverClassKey, apiserverClients, apiserverReach, apiserverReachAsker, apiserverTarget, apiserverTargets, hasDenyRules, podRef, recordDenials } from '../../policy/index.ts';
import { apiserverAllowOf, denyFixOf, victimsOf } from '../render-helpers.ts';
import { messages } from './messages.ts';

const ID = 'apiserver-egress-missing';

/** What the request does that this rule judges. */
type Subject =
  | { readonly by: 'policy'; readonly object: string; readonly dialect: string }
  | { readonly by: 'policy-delete'; readonly object: string; readonly dialect: string }
  | { readonly by: 'cilium-config' }
  | { readonly by: 'namespace'; readonly namespace: string };

/** Cheap, from the request alone: which kind of request it is (the pods it touches are the check's). */
export function scope(change: Change): Subject | undefined {
  const dialect = change.kind === 'NetworkPolicy' ? 'NetworkPolicy' : 'CiliumNetworkPolicy';
  if (isPolicyChange(change)) {
    return change.object ? { by: 'policy', object: changeRef(change), dialect } : { by: 'policy-delete', object: changeRef(change), dialect };
  }
  if (isCiliumConfigChange(change)) return { by: 'cilium-config' };
  if (change.kind === 'Namespace') return { by: 'namespace', namespace: change.name };
  return undefined;
}

/** The pods check judges: those the request touches (egress) that use the API server. */
function clientsOf(change: Change, before: ClusterState, after: ClusterState, ctx: RuleContext): readonly Pod[] {
  const touched = touchedPods(change, before, after, { direction: 'egress' });
  return touched.pods.length === 0 ? touched.pods : apiserverClients(before, touched.pods, ctx.settings);
}

/**
 * The rule's prepare (core/rule.ts): what check's comparison asks of each class, the endpoints reached
 * after and, when some are not, before, and for a lost class which rule decided (when the state has deny
 * rules); only answers that are kept (`ifKept`), which check then finds.
 */
export function* prepare(change: Change, before: ClusterState, after: ClusterState, ctx: RuleContext): Generator<void, void, void> {
  const subject = scope(change);
  if (subject === undefined) return;
  // Which rule decided is asked of the still-missing classes too where check words them (a policy's own).
  const stillWorded = subject.by === 'policy';
  const clients = clientsOf(change, before, after, ctx);
  if (clients.length === 0) return;
  const asker = () => {
    const targets = apiserverTargets(after);
    const askAfter = apiserverReachAsker(after);
    const askBefore = apiserverReachAsker(before);
    // The wording's question of a lost class when a deny may decide it (impact/decided-by.ts).
    const denies = hasDenyRules(after);
    return (p: Pod): void => {
      const now = askAfter.ifKept(p);
      if (now === undefined || !targets.some((t) => !now.includes(t))) return;
      const was = askBefore.ifKept(p);
      if (denies && was !== undefined && (now.length < was.length || stillWorded)) recordDenials(() => askAfter(p));
    };
  };
  yield* askPerClass(clients, apiserverClassKey(after), asker, [before, after]);
}

export function check(subject: Subject, change: Change, before: ClusterState, after: ClusterState, ctx: RuleContext): Finding[] {
  const clients = clientsOf(change, before, after, ctx);
  if (clients.length === 0) return [];
  // Judged per endpoint: a pod that reached two of three API servers and now reaches one loses access.
  const targets = apiserverTargets(after);
  // Every class is asked in both states: each state's lookups once (apiserverReachAsker), not once per class.
  const askAfter = apiserverReachAsker(after);
  const askBefore = apiserverReachAsker(before);
  const reach = (s: ClusterState, p: Pod): readonly string[] => (s === after ? askAfter(p) : s === before ? askBefore(p) : apiserverReach(s, p));
  const loss = compareReach(clients, before, after, targets, reach, apiserverClassKey(after));
  const { lost, stillMissing, lostTargets } = loss;
  const t = apiserverTarget(after);
  const allow = apiserverAllowOf('dialect' in subject ? subject.dialect : 'CiliumNetworkPolicy', after);
  const object = 'object' in subject ? subject.object : subject.by === 'namespace' ? subject.namespace : '';

  if (lost.length > 0) {
    // When some endpoints stay reachable, say which ones this request cuts off.
    const partial = t.ips.length > 1 && lostTargets.length > 0 && lostTargets.length < t.ips.length;
    const params = {
      ...allow,
      object,
      podCount: lost.length,
      pods: lost.slice(0, 3).map(podRef),
      endpoints: partial ? lostTargets : t.ips,
      ...(partial ? { endpointTotal: t.ips.length } : {}),
    };
    // A deny decides for some of them: name it and how to narrow it (no allow overrides it).
    const deny = denyFixOf(loss.decidedBy);
    if (deny) {
      const byDeny = loss.decidedBy!.byDeny;
      return [messages.finding('denied-by-policy', { ...params, ...deny, change: changeWords(subject, object), podCount: byDeny.length, pods: byDeny.slice(0, 3).map(podRef) }, victimsOf(lost))];
    }
    const kind =
      subject.by === 'policy' ? 'policy-cuts-access'
      : subject.by === 'policy-delete' ? 'delete-removes-allow'
      : subject.by === 'cilium-config' ? 'config-cuts-access'
      : 'namespace-relabel-cuts-access';
    return [messages.finding(kind, params, victimsOf(lost))];
  }
  if (subject.by === 'policy' && stillMissing.length > 0) {
    const params = { ...allow, object, podCount: stillMissing.length, pods: stillMissing.slice(0, 3).map(podRef), endpoints: t.ips };
    const deny = denyFixOf(loss.stillDecidedBy);
    if (deny) {
      const byDeny = loss.stillDecidedBy!.byDeny;
      const denied = { ...params, ...deny, change: object, podCount: byDeny.length, pods: byDeny.slice(0, 3).map(podRef) };
      return [messages.finding('still-denied-by-policy', denied, { ...victimsOf(stillMissing), preexisting: true })];
    }
    return [messages.finding('policy-keeps-missing', params, { ...victimsOf(stillMissing), preexisting: true })];
  }
  return [];
}

/** The request as a sentence's subject, for the deny findings. */
function changeWords(subject: Subject, object: string): string {
  switch (subject.by) {
    case 'policy':
      return object;
    case 'policy-delete':
      return `deleting ${object}`;
    case 'cilium-config':
      return 'this cilium-config change';
    case 'namespace':
      return `relabelling namespace ${subject.namespace}`;
  }
}

export const rule: Rule = {
  id: ID,
  severity: 'B',
  summary: 'A change leaves pods that use the API server (RBAC subjects, configured clients) egress-enforced with no allow to it',
  docs: `docs/rules/${ID}.md`,
  triggers: [
    {
      kinds: ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy', 'NetworkPolicy'],
      operations: ['CREATE', 'UPDATE', 'DELETE'],
      when: 'a policy with an egress section: the pods selected by the old and the new object (a synthetic pod if none) that use the API server',
    },
    { kinds: ['Namespace'], operations: ['UPDATE'], when: 'labels changed: the namespace\'s pods that use the API server' },
    {
      kinds: ['ConfigMap'],
      operations: ['CREATE', 'UPDATE'],
      when: 'only `kube-system/cilium-config`, policy mode or CIDR match mode changed: every pod that uses the API server',
    },
  ],
  messages,
  evaluate: (change: Change, before: ClusterState, after: ClusterState, ctx: RuleContext): Finding[] => {
    const subject = scope(change);
    return subject ? check(subject, change, before, after, ctx) : [];
  },
  prepare,
};
