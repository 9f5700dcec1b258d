// The words of deny-only-default-deny's findings, one entry per code (`deny-only-default-deny/<kind>`).
// Codes are a contract: never rename one; wording may change (test/rules/deny-only-default-deny.test.ts
// keeps one golden test per code).

import { defineMessages } from '../../core/message.ts';
import { namesAndMore } from '../render-helpers.ts';

type Base = {
  /** The policy of the request, `Kind ns/name`. */
  readonly policy: string;
  readonly direction: 'ingress' | 'egress';
  /** The pods held in default deny (the first three) and how many in all. */
  readonly pods: readonly string[];
  readonly podCount: number;
  /** Whether the agent honours enableDefaultDeny (enable-non-default-deny-policies): which fix works. */
  readonly nonDefaultDeny: boolean;
};
type DenyOnly = Base & {
  /** No live pod is selected: the pods are the synthetic ones the policy would select. */
  readonly synthetic: boolean;
};
type LeftToDenyOnly = Base & {
  /** The deny-only policies that keep the pods in default deny (the first two) and how many in all. */
  readonly denyPolicies: readonly string[];
  readonly denyPolicyCount: number;
};

const who = (p: DenyOnly): string => `${p.podCount} pod${p.podCount === 1 ? '' : 's'}${p.synthetic ? ' (pods this policy would select)' : ''}`;
const pods = (p: Base): string => namesAndMore(p.pods, p.podCount);
const denyOnlyFix = (p: DenyOnly): string =>
  p.nonDefaultDeny
    ? `add enableDefaultDeny: {${p.direction}: false} to the rule of ${p.policy} (Cilium >= 1.16) so only the ${p.direction}Deny entries drop traffic, or add the ${p.direction} allows these pods need`
    : `enable-non-default-deny-policies is off, so enableDefaultDeny is ignored: add the ${p.direction} allows these pods need (e.g. ${p.direction}: [{${p.direction === 'egress' ? 'toEntities' : 'fromEntities'}: [all]}])`;

export const messages = defineMessages<{
  'puts-pods-in-default-deny': DenyOnly;
  'already-default-deny': DenyOnly;
  'update-leaves-deny-only': LeftToDenyOnly;
}>('deny-only-default-deny', {
  'puts-pods-in-default-deny': {
    description: 'a policy with only ingressDeny/egressDeny in a direction puts pods into default deny there (everything not allowed elsewhere is dropped)',
    summary: (p) =>
      `${p.policy} has only ${p.direction}Deny and puts ${who(p)} into ${p.direction} default deny: all ${p.direction} traffic no other policy allows is dropped, not just the denied traffic: ${pods(p)}`,
    fix: denyOnlyFix,
    detail: 'self-contained',
  },
  'already-default-deny': {
    description: 'the pods the deny-only policy selects were already in default deny from deny-only rules (preexisting)',
    summary: (p) => `${who(p)} selected by ${p.policy} are already in ${p.direction} default deny from deny-only rules: ${pods(p)}`,
    fix: denyOnlyFix,
    detail: 'self-contained',
  },
  'update-leaves-deny-only': {
    description: "an update takes the last enforcing allow away from pods that another policy's deny-only rule keeps in default deny",
    summary: (p) => {
      const shown = namesAndMore(p.denyPolicies, p.denyPolicyCount);
      return (
        `${p.policy} no longer enforces ${p.direction} for ${p.podCount} pod${p.podCount === 1 ? '' : 's'}, which stay in ${p.direction} default deny through deny-only rules (${shown}): ` +
        `all ${p.direction} traffic no other policy allows is dropped, not just the denied traffic: ${pods(p)}`
      );
    },
    fix: (p) => {
      const shown = namesAndMore(p.denyPolicies, p.denyPolicyCount);
      return p.nonDefaultDeny
        ? `keep a ${p.direction} allow for these pods in ${p.policy}, or add enableDefaultDeny: {${p.direction}: false} to ${shown} (Cilium >= 1.16) so only its ${p.direction}Deny entries drop traffic`
        : `keep a ${p.direction} allow for these pods in ${p.policy} (enable-non-default-deny-policies is off, so enableDefaultDeny on ${shown} is ignored)`;
    },
    detail: 'self-contained',
  },
});
