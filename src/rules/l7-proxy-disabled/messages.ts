// The words of l7-proxy-disabled's findings, one entry per code (`l7-proxy-disabled/<kind>`). Codes are
// a contract: never rename one; wording may change (test/rules/l7-proxy-disabled.test.ts keeps one golden
// test per code).

import { defineMessages } from '../../core/message.ts';

type PolicyRejected = {
  /** The policy of the request, `CiliumNetworkPolicy ns/name`. */
  readonly policy: string;
  /** Its L7 protocols: http, kafka, dns, an l7proto name, or l7. */
  readonly protocols: readonly string[];
};
type ProxyTurnedOff = {
  /** The first three policies with L7 rules (`CiliumNetworkPolicy ns/name`). */
  readonly policies: readonly string[];
  /** How many policies have L7 rules in all. */
  readonly policyCount: number;
};

/** "a, b, c and 4 more" */
const shown = (p: ProxyTurnedOff): string =>
  p.policyCount > p.policies.length ? `${p.policies.join(', ')} and ${p.policyCount - p.policies.length} more` : p.policies.join(', ');

const rejected = (p: PolicyRejected): string =>
  `${p.policy} has L7 rules (${p.protocols.join(', ')}) but enable-l7-proxy is "false": the Cilium agent rejects the whole policy, none of its rules apply`;
const dropRules = (): string => 'remove the toPorts[].rules sections (keep L3/L4 only), or set enable-l7-proxy: "true" in kube-system/cilium-config';

export const messages = defineMessages<{
  'policy-rejected': PolicyRejected;
  'policy-still-rejected': PolicyRejected;
  'proxy-turned-off': ProxyTurnedOff;
}>('l7-proxy-disabled', {
  'policy-rejected': {
    description: 'a Cilium policy with L7 rules is created, or gains them, while enable-l7-proxy is "false"',
    summary: rejected,
    fix: dropRules,
    detail: 'list-victims',
  },
  'policy-still-rejected': {
    description: 'an update of a policy that already had L7 rules while the proxy was already off (preexisting)',
    summary: rejected,
    fix: dropRules,
    detail: 'list-victims',
  },
  'proxy-turned-off': {
    description: 'a cilium-config write turns enable-l7-proxy off while policies with L7 rules exist',
    summary: (p) =>
      `setting enable-l7-proxy to "false" makes the Cilium agent reject ${p.policyCount} polic${p.policyCount === 1 ? 'y' : 'ies'} with L7 rules: ${shown(p)}`,
    fix: (p) => `keep enable-l7-proxy: "true", or first remove the L7 rules (toPorts[].rules) from ${shown(p)}`,
    detail: 'list-victims',
  },
});
