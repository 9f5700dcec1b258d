// agent-rejected-policy: CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy content that Cilium's agent
// refuses (the whole object is then not applied: the pods it selects follow the other policies only) or
// that never reaches it (a selector key the CRD schema does not have, e.g. `toPorts` indented under a
// `toEndpoints` item, cilium/cilium#44396: the API server drops it and the rule means something else).
// The semantics live in src/policy/sanitize.ts (ciliumRejection, the one rejection path the policy model
// uses too, and ignoredSelectorFields); this folder only decides what to report. Severity B for both
// kinds of finding: docs/rules/agent-rejected-policy.md says why.
//
// The rule folder: index.ts (metadata, scope, check), messages.ts (the words, per code), testdata/*.yaml
// (fixtures run by test/rules/fixtures.test.ts). docs/adding-a-rule.md explains the layout.

import type { Change } from '../../core/change.ts';
import type { Finding } from '../../core/finding.ts';
import type { ClusterState, PolicyObject } from '../../core/objects.ts';
import type { Rule, RuleContext } from '../../core/rule.ts';
import { changeRef } from '../../impact/index.ts';
import { ciliumRejection, ignoredSelectorFields } from '../../policy/index.ts';
import { messages } from './messages.ts';

const ID = 'agent-rejected-policy';

type Subject = { readonly policy: PolicyObject; readonly old: PolicyObject | undefined; readonly ref: string };

/** Cheap, from the request alone: a Cilium policy written (a DELETE leaves nothing to refuse). */
export function scope(change: Change): Subject | undefined {
  if (change.kind !== 'CiliumNetworkPolicy' && change.kind !== 'CiliumClusterwideNetworkPolicy') return undefined;
  const policy = change.object as PolicyObject | undefined;
  if (!policy) return undefined;
  const old = change.operation === 'UPDATE' ? (change.oldObject as PolicyObject | undefined) : undefined;
  return { policy, old, ref: changeRef(change) };
}

/** Judged on the object alone: the agent's verdict does not depend on the cluster. */
export function check(subject: Subject): Finding[] {
  const reason = ciliumRejection(subject.policy);
  if (reason !== undefined) {
    // Refused before this request too: the request does not make it worse.
    const preexisting = subject.old !== undefined && ciliumRejection(subject.old) !== undefined;
    return [messages.finding(preexisting ? 'policy-still-rejected' : 'policy-rejected', { policy: subject.ref, reason }, { preexisting })];
  }
  const ignored = ignoredSelectorFields(subject.policy);
  if (ignored.length === 0) return [];
  const before = new Set(subject.old ? ignoredSelectorFields(subject.old).map((i) => `${i.at}\n${i.fields.join(',')}`) : []);
  return ignored.map((i) => {
    const preexisting = before.has(`${i.at}\n${i.fields.join(',')}`);
    return messages.finding(
      preexisting ? 'selector-field-still-ignored' : 'selector-field-ignored',
      { policy: subject.ref, at: i.at, element: i.element, fields: i.fields },
      { preexisting },
    );
  });
}

export const rule: Rule = {
  id: ID,
  severity: 'B',
  summary: 'Cilium policy content the agent refuses (the whole policy is dropped) or never sees (a stray selector key)',
  docs: `docs/rules/${ID}.md`,
  triggers: [
    {
      kinds: ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy'],
      operations: ['CREATE', 'UPDATE'],
      when: 'every write; judged on the object alone (an UPDATE that keeps an old problem is preexisting)',
    },
  ],
  messages,
  evaluate: (change: Change, _before: ClusterState, _after: ClusterState, _ctx: RuleContext): Finding[] => {
    const subject = scope(change);
    return subject ? check(subject) : [];
  },
};
