// Small rules that exercise the plumbing (config, verdict, CLI) independently of the real catalogue.
// Each reacts to labels on the object under review, or to the state, so tests can steer them.

import { subjectOf } from '../../src/core/change.ts';
import { defineMessages } from '../../src/core/message.ts';
import type { Rule } from '../../src/core/rule.ts';

/** A message table whose one kind, `text`, says what its params say (for rules made up in tests). */
export function textMessages(rule: string) {
  return defineMessages<{ text: { text: string; fix?: string } }>(rule, {
    text: { description: 'whatever the test says', summary: (p) => p.text, fix: (p) => p.fix ?? '', detail: 'list-victims' },
  });
}

const orphanMessages = textMessages('fake-orphan-policy');
const labelMessages = textMessages('fake-label');

/** Denies a CiliumNetworkPolicy whose namespace does not exist in the state after the change. */
export const orphanPolicy: Rule = {
  id: 'fake-orphan-policy',
  severity: 'B',
  summary: 'a policy in a namespace that does not exist',
  docs: 'docs/rules/fake-orphan-policy.md',
  triggers: [{ kinds: ['CiliumNetworkPolicy'], operations: ['CREATE', 'UPDATE'] }],
  messages: orphanMessages,
  evaluate(change, _before, after) {
    if (after.get('Namespace', undefined, change.namespace)) return [];
    return [
      orphanMessages.finding(
        'text',
        { text: `namespace ${change.namespace} does not exist`, fix: `create namespace ${change.namespace} first` },
        { victims: [`${change.namespace}/${change.name}`], victimCount: 3 },
      ),
    ];
  },
};

/**
 * Reports the label `fake/finding` of the object under review (for DELETE, of the old object) as a
 * finding; `fake/preexisting: "true"` marks it pre-existing.
 */
export const labelRule: Rule = {
  id: 'fake-label',
  severity: 'I',
  summary: 'reports the fake/finding label',
  docs: 'docs/rules/fake-label.md',
  triggers: [{ kinds: ['CiliumNetworkPolicy', 'Namespace'], operations: ['CREATE', 'UPDATE', 'DELETE'] }],
  messages: labelMessages,
  evaluate(change) {
    const labels = subjectOf(change)?.metadata.labels ?? {};
    const msg = labels['fake/finding'];
    if (!msg) return [];
    // Claims another rule's id: the verdict layer must file it under the rule that produced it.
    return [{ ...labelMessages.finding('text', { text: msg }, { preexisting: labels['fake/preexisting'] === 'true' }), rule: 'some-other-id' }];
  },
};

/** Throws when the object carries `fake/throw`. */
export const throwingRule: Rule = {
  id: 'fake-throws',
  severity: 'R',
  summary: 'a rule with a bug',
  docs: 'docs/rules/fake-throws.md',
  triggers: [{ kinds: ['CiliumNetworkPolicy'], operations: ['CREATE'] }],
  evaluate(change) {
    if (subjectOf(change)?.metadata.labels?.['fake/throw']) throw new Error('boom\nsecond line');
    return [];
  },
};

export const FAKE_RULES: readonly Rule[] = [labelRule, orphanPolicy, throwingRule];
