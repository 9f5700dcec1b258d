// fqdn-without-dns-proxy: toFQDNs selects IPs learned by Cilium's DNS proxy, and the proxy only sees
// lookups that an egress allow toward the DNS server redirects to it with `rules.dns`. Without such a
// rule (or with patterns that do not cover the names) the FQDN's IP set stays empty and the traffic
// the policy meant to allow is dropped.
//
// The rule folder: index.ts (this file: metadata, scope, check), messages.ts (the words, per code),
// testdata/*.yaml (fixtures run by test/rules/fixtures.test.ts). docs/adding-a-rule.md explains the layout.
// The semantics (which toFQDNs apply, whether rules.dns covers them) are src/policy/fqdn.ts.

import type { Change } from '../../core/change.ts';
import type { Finding } from '../../core/finding.ts';
import type { ClusterState, Pod } from '../../core/objects.ts';
import type { Rule, RuleContext } from '../../core/rule.ts';
import { changeRef, judgeByClass, touchedPods } from '../../impact/index.ts';
import { dnsClassKey, dnsTarget, fqdnNewlyBroken, fqdnProblem, hasFqdnRules, podRef, withoutDnsBackends, type FqdnProblem } from '../../policy/index.ts';
import { dnsAllowOf, victimsOf } from '../render-helpers.ts';
import { messages } from './messages.ts';

const ID = 'fqdn-without-dns-proxy';

/** What the request does that this rule judges: a Cilium policy written or deleted. */
type Subject = { readonly policy: string; readonly deleted: boolean };

/** Cheap, from the request alone. */
export function scope(change: Change): Subject | undefined {
  if (change.kind !== 'CiliumNetworkPolicy' && change.kind !== 'CiliumClusterwideNetworkPolicy') return undefined;
  return { policy: changeRef(change), deleted: change.operation === 'DELETE' };
}

export function check(subject: Subject, change: Change, before: ClusterState, after: ClusterState): Finding[] {
  const touched = touchedPods(change, before, after, { direction: 'egress' });
  if (touched.pods.length === 0) return [];
  // No toFQDNs anywhere after the change: no pod has an FQDN problem (every class would be skipped).
  if (!hasFqdnRules(after)) return [];
  // Pods of one class (same identity) get the same answer: judge each class once.
  const judged = judgeByClass<Pod, FqdnProblem>(withoutDnsBackends(after, touched.pods), dnsClassKey(after), (pod) => {
    const now = fqdnProblem(after, pod);
    // No DNS at all is dns-egress-missing's finding; one denial per cause.
    if (!now || now.kind === 'no-dns') return { outcome: 'skip' };
    return { outcome: fqdnNewlyBroken(now, fqdnProblem(before, pod)) ? 'lost' : 'still', detail: now };
  });
  const isLost = judged.lost.length > 0;
  const pods = isLost ? judged.lost : judged.stillMissing;
  if (pods.length === 0) return [];
  const group = (isLost ? judged.lostClasses : judged.stillClasses).map((c) => ({ pod: c.first, problem: c.detail! }));
  const names = [...new Set(group.flatMap((x) => x.problem.names))];
  const noProxy = group.some((x) => x.problem.kind === 'no-proxy');
  const params = {
    ...dnsAllowOf(dnsTarget(after)),
    policy: subject.policy,
    names: names.slice(0, 3),
    nameCount: names.length,
    pods: pods.slice(0, 3).map(podRef),
    podCount: pods.length,
    synthetic: touched.synthetic,
  };
  if (!isLost) {
    return [messages.finding(noProxy ? 'still-no-dns-proxy' : 'still-names-uncovered', { ...params, deleted: subject.deleted }, { ...victimsOf(pods), preexisting: true })];
  }
  const kind = subject.deleted
    ? noProxy ? 'delete-leaves-no-dns-proxy' : 'delete-leaves-names-uncovered'
    : noProxy ? 'no-dns-proxy' : 'names-not-covered';
  return [messages.finding(kind, params, victimsOf(pods))];
}

export const rule: Rule = {
  id: ID,
  severity: 'B',
  summary: 'toFQDNs on endpoints whose DNS egress has no rules.dns (the DNS proxy never sees the lookups, the FQDN traffic is dropped)',
  docs: `docs/rules/${ID}.md`,
  triggers: [
    {
      kinds: ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy'],
      operations: ['CREATE', 'UPDATE'],
      when: 'the pods selected by the old and the new object (a synthetic pod when none is live)',
    },
    {
      kinds: ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy'],
      operations: ['DELETE'],
      when: 'the pods the deleted policy selected (e.g. the policy that carried the `rules.dns`)',
    },
  ],
  messages,
  evaluate: (change: Change, before: ClusterState, after: ClusterState, _ctx: RuleContext): Finding[] => {
    const subject = scope(change);
    return subject ? check(subject, change, before, after) : [];
  },
};
