// The words of agent-rejected-policy's findings, one entry per code (`agent-rejected-policy/<kind>`).
// Codes are a contract: never rename one; wording may change (one golden `message` per code in testdata).

import { defineMessages } from '../../core/message.ts';

type Rejected = {
  /** The policy of the request, `CiliumNetworkPolicy ns/name`. */
  readonly policy: string;
  /** Why the agent refuses it, with the place when known (`spec.egress[0].toPorts[0]: ...`). */
  readonly reason: string;
};
type Ignored = {
  /** The policy of the request. */
  readonly policy: string;
  /** The selector holding the stray keys, e.g. `spec.egress[0].toEndpoints[0]`. */
  readonly at: string;
  /** The rule element (or rule) the keys probably belong to, e.g. `spec.egress[0]`. */
  readonly element: string;
  /** The stray keys. */
  readonly fields: readonly string[];
};

const rejected = (p: Rejected): string =>
  `the Cilium agent refuses ${p.policy} (${p.reason}): none of its rules apply, the pods it selects follow the other policies only`;
const fixRejected = (): string =>
  'correct the part named in the message (docs/rules/agent-rejected-policy.md shows each case); the policy status condition Valid shows the agent\'s own error';

const ignored = (p: Ignored): string =>
  `${p.policy}: ${p.at} has ${p.fields.join(', ')}, which a label selector does not have: the API server drops ${p.fields.length === 1 ? 'it' : 'them'} (or refuses the object under strict field validation) and the rule applies without ${p.fields.length === 1 ? 'it' : 'them'}`;
const fixIgnored = (p: Ignored): string =>
  `move ${p.fields.join(', ')} out of ${p.at} into ${p.element} (one indentation level up, beside the selector list)`;

export const messages = defineMessages<{
  'policy-rejected': Rejected;
  'policy-still-rejected': Rejected;
  'selector-field-ignored': Ignored;
  'selector-field-still-ignored': Ignored;
}>('agent-rejected-policy', {
  'policy-rejected': {
    description: 'a Cilium policy is created, or changed, so that the agent refuses the whole object',
    summary: rejected,
    fix: fixRejected,
    detail: 'self-contained',
  },
  'policy-still-rejected': {
    description: 'an update of a policy the agent already refused before the request (preexisting)',
    summary: rejected,
    fix: fixRejected,
    detail: 'self-contained',
  },
  'selector-field-ignored': {
    description: 'a selector of the policy carries a key other than matchLabels/matchExpressions (e.g. toPorts indented under toEndpoints), new in this request',
    summary: ignored,
    fix: fixIgnored,
    detail: 'self-contained',
  },
  'selector-field-still-ignored': {
    description: 'the same stray selector key was already there before the update (preexisting)',
    summary: ignored,
    fix: fixIgnored,
    detail: 'self-contained',
  },
});
