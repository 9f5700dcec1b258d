// dns-egress-missing: a request leaves pods egress-enforced with no allow to the cluster DNS backends.
// Pods that resolve names through kube-dns then fail every lookup (timeouts, "could not resolve host").
//
// The rule folder: index.ts (this file: metadata, scope, check), messages.ts (the words, per code),
// testdata/*.yaml (fixtures run by test/rules/fixtures.test.ts). docs/adding-a-rule.md explains the layout.

import { rethrowIfBudget } from '../../core/budget.ts';
import type { Change } from '../../core/change.ts';
import type { Finding } from '../../core/finding.ts';
import type { ClusterState, Pod, PolicyObject } from '../../core/objects.ts';
import type { Rule, RuleContext } from '../../core/rule.ts';
import { askPerClass, changeRef, changesDnsServerSide, compareLoss, isCiliumConfigChange, isPolicyChange, touchedPods } from '../../impact/index.ts';
import { classifiedPods, dnsClassKey, dnsTarget, hasDenyRules, podRef, policyUsesFqdn, reachesDns, reachesDnsAsker, reachesDnsEgressOnlyAsker, reachesDnsOverTcp, recordDenials, withoutDnsBackends } from '../../policy/index.ts';
import { denyFixOf, dnsAllowOf, victimsOf } from '../render-helpers.ts';
import { messages } from './messages.ts';

const ID = 'dns-egress-missing';

/** What the request does that this rule judges. */
type Subject =
  | { readonly by: 'policy'; readonly policy: PolicyObject }
  | { readonly by: 'policy-delete' }
  | { readonly by: 'cilium-config' }
  | { readonly by: 'namespace'; readonly namespace: string };

/** Cheap, from the request alone: which kind of request it is (the pods it touches are the check's). */
export function scope(change: Change): Subject | undefined {
  if (isPolicyChange(change)) {
    const policy = change.object as PolicyObject | undefined;
    return policy ? { by: 'policy', policy } : { by: 'policy-delete' };
  }
  if (isCiliumConfigChange(change)) return { by: 'cilium-config' };
  if (change.kind === 'Namespace') return { by: 'namespace', namespace: change.name };
  return undefined;
}

/** What check judges: the DNS Service, whether the request changes the servers' side, and the clients. */
function judged(change: Change, before: ClusterState, after: ClusterState) {
  const target = dnsTarget(after);
  if (!target) return undefined; // no kube-dns Service known: nothing to judge against
  const serverSide = changesDnsServerSide(change, before, after, target.namespace);
  // Server-side changes concern every client: a rare request, and pods are judged once per class.
  const touched = serverSide ? { pods: classifiedPods(after), synthetic: false } : touchedPods(change, before, after, { direction: 'egress' });
  if (touched.pods.length === 0) return undefined;
  // The DNS servers themselves resolve upstream, not through kube-dns.
  return { target, serverSide, touched, pods: withoutDnsBackends(after, touched.pods) };
}

/**
 * The rule's prepare (core/rule.ts): what check's comparison asks of each class (after, then before when
 * DNS is not reached after), and the wording's questions of the lost classes (which rule decided, when
 * the state has deny rules; whether their egress still allows DNS, until one does not), in check's order;
 * only answers that are kept (`ifKept`), which check then finds.
 */
export function* prepare(change: Change, before: ClusterState, after: ClusterState): Generator<void, void, void> {
  const subject = scope(change);
  if (subject === undefined) return;
  const j = judged(change, before, after);
  if (j === undefined) return;
  // Which rule decided is asked of the still-missing classes too where check words them (a policy's own).
  const stillWorded = subject.by === 'policy' && !j.serverSide;
  let egressAllows = true;
  const asker = () => {
    const askAfter = reachesDnsAsker(after);
    const askBefore = reachesDnsAsker(before);
    const egressOnly = reachesDnsEgressOnlyAsker(after);
    // The wording's question of a lost class when a deny may decide it (impact/decided-by.ts).
    const denies = hasDenyRules(after);
    return (p: Pod): void => {
      if (askAfter.ifKept(p) !== false) return;
      if (askBefore.ifKept(p) === false) {
        if (denies && stillWorded) recordDenials(() => askAfter(p));
        return;
      }
      if (denies) recordDenials(() => askAfter(p));
      if (!egressAllows) return;
      try {
        if (egressOnly.ifKept(p) === false) egressAllows = false;
      } catch (e) {
        rethrowIfBudget(e);
        egressAllows = false; // as check: no claim on odd input
      }
    };
  };
  yield* askPerClass(j.pods, dnsClassKey(after), asker, [before, after]);
}

export function check(subject: Subject, change: Change, before: ClusterState, after: ClusterState): Finding[] {
  const j = judged(change, before, after);
  if (j === undefined) return [];
  const { target, serverSide, touched, pods } = j;
  // Every class is asked in both states: each state's lookups once (reachesDnsAsker), not once per class.
  const askAfter = reachesDnsAsker(after);
  const askBefore = reachesDnsAsker(before);
  const ok = (s: ClusterState, p: Pod): boolean | undefined => (s === after ? askAfter(p) : s === before ? askBefore(p) : reachesDns(s, p, 'UDP'));
  // Whether every lost class's egress still allows DNS (then the servers' ingress drops it: the wording),
  // asked of each lost class as the comparison finds it rather than in a second pass over the lost pods.
  const egressOnly = reachesDnsEgressOnlyAsker(after);
  let egressAllows = true;
  // The lost class that stands for the loss (the namespace the fix names, whether TCP is kept: both the
  // same for every pod of a class): the first by namespace, then class key. Not the first class met,
  // whose order follows the state's lists (a live state's follows its events); picked as the comparison
  // finds each lost class, while its pod is at hand (reading 9.5k classes' pods again costs 3-10 ms).
  const classKey = dnsClassKey(after);
  let standIn: Pod | undefined;
  let standInKey = '';
  const onLost = (p: Pod): void => {
    const ns = p.metadata.namespace ?? '';
    const was = standIn === undefined ? undefined : (standIn.metadata.namespace ?? '');
    if (was === undefined || ns < was || ns === was) {
      const k = classKey(p);
      if (was === undefined || ns < was || k < standInKey) {
        standIn = p;
        standInKey = k;
      }
    }
    if (!egressAllows) return;
    try {
      egressAllows = egressOnly(p);
    } catch (e) {
      rethrowIfBudget(e);
      egressAllows = false; // no claim on odd input
    }
  };
  const loss = compareLoss(pods, before, after, ok, classKey, { onLost });
  const { lost, stillMissing } = loss;
  const policy = subject.by === 'policy' ? subject.policy : undefined;
  const base = {
    ...dnsAllowOf(target),
    object: changeRef(change),
    synthetic: touched.synthetic,
    dialect: change.kind === 'NetworkPolicy' ? ('NetworkPolicy' as const) : ('CiliumNetworkPolicy' as const),
    withDnsRules: policyUsesFqdn(policy),
  };

  // The request's object as a sentence's subject: what a deny finding says does it.
  const change_ =
    subject.by === 'policy' ? base.object : subject.by === 'policy-delete' ? `deleting ${base.object}` : subject.by === 'cilium-config' ? 'this cilium-config change' : `relabelling namespace ${subject.namespace}`;

  if (lost.length > 0) {
    // A deny decides for some lost pods (theirs or the DNS servers' ingressDeny): no allow fixes them.
    const deny = denyFixOf(loss.decidedBy);
    if (deny) {
      const byDeny = loss.decidedBy!.byDeny;
      return [messages.finding('denied-by-policy', { ...base, ...deny, change: change_, pods: byDeny.slice(0, 3).map(podRef), podCount: byDeny.length }, victimsOf(lost))];
    }
    const first = standIn ?? lost[0]!;
    const params = { ...base, pods: lost.slice(0, 3).map(podRef), podCount: lost.length };
    // Every kind of a loss takes these params; the namespace kinds one more (the cast joins the two shapes).
    const found = (kind: Parameters<typeof messages.finding>[0], namespace?: string): Finding[] => [
      messages.finding(kind as 'delete-removes-allow', { ...params, ...(namespace !== undefined ? { namespace } : {}) } as typeof params & { namespace: string }, victimsOf(lost)),
    ];
    const tcpOnly = reachesDnsOverTcp(after, first);
    // The clients' egress still allows DNS: the servers' ingress drops it (their policy, the policy mode,
    // or the labels of the namespace the servers' peer selectors match).
    // Said only when it holds for every lost class: otherwise the egress fix is the one some pods need.
    const serversDrop = !tcpOnly && egressAllows;
    if (serversDrop && !serverSide && (subject.by === 'cilium-config' || subject.by === 'namespace')) {
      return subject.by === 'cilium-config' ? found('config-servers-drop') : found('namespace-relabel-servers-drop', subject.namespace);
    }
    if (serverSide && serversDrop) {
      // The clients' egress still allows DNS: the servers' ingress (or their namespace's labels) is the cause.
      if (subject.by === 'namespace') return found('dns-namespace-relabel-blocks', subject.namespace);
      return found(change.operation === 'DELETE' ? 'servers-policy-delete-blocks' : 'servers-policy-blocks');
    }
    switch (subject.by) {
      case 'policy':
        return found(tcpOnly ? 'policy-allows-only-tcp' : 'policy-leaves-no-dns');
      case 'policy-delete':
        return found('delete-removes-allow', first.metadata.namespace ?? '');
      case 'cilium-config':
        return found('config-leaves-no-dns');
      case 'namespace':
        return found('namespace-relabel-leaves-no-dns', subject.namespace);
    }
  }

  // Already broken before this request, which does not make it worse: say so, never deny. (Not for
  // server-side changes: their pods are every client, not pods this policy selects.)
  if (policy && !serverSide && stillMissing.length > 0) {
    const deny = denyFixOf(loss.stillDecidedBy);
    if (deny) {
      const byDeny = loss.stillDecidedBy!.byDeny;
      const params = { ...base, ...deny, change: change_, pods: byDeny.slice(0, 3).map(podRef), podCount: byDeny.length };
      return [messages.finding('still-denied-by-policy', params, { ...victimsOf(stillMissing), preexisting: true })];
    }
    const params = { ...base, pods: stillMissing.slice(0, 3).map(podRef), podCount: stillMissing.length };
    return [messages.finding('policy-keeps-no-dns', params, { ...victimsOf(stillMissing), preexisting: true })];
  }
  return [];
}

export const rule: Rule = {
  id: ID,
  severity: 'B',
  summary: 'A change leaves pods egress-enforced with no allow to the cluster DNS backends (kube-dns, UDP 53)',
  docs: `docs/rules/${ID}.md`,
  triggers: [
    {
      kinds: ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy', 'NetworkPolicy'],
      operations: ['CREATE', 'UPDATE', 'DELETE'],
      when:
        'a policy with an egress section: the pods selected by the old and the new object (a synthetic pod when none is live); ' +
        'a policy with an ingress section selecting the kube-dns pods: every pod (the DNS servers\' ingress concerns all clients)',
    },
    {
      kinds: ['Namespace'],
      operations: ['UPDATE'],
      when: "labels changed: the namespace's pods; every pod when it is the DNS namespace (kube-system), whose labels client `namespaceSelector` peers match",
    },
    {
      kinds: ['ConfigMap'],
      operations: ['CREATE', 'UPDATE'],
      when: 'only `kube-system/cilium-config` when `enable-policy`, `enable-non-default-deny-policies` or `policy-cidr-match-mode` change: every pod',
    },
  ],
  messages,
  evaluate: (change: Change, before: ClusterState, after: ClusterState, _ctx: RuleContext): Finding[] => {
    const subject = scope(change);
    return subject ? check(subject, change, before, after) : [];
  },
  prepare,
};

