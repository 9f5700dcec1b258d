// The words of ambient-dns-policy-ineffective's findings, one entry per code
// (`ambient-dns-policy-ineffective/<kind>`). Codes are a contract: never rename one; wording may change
// (test/rules/ambient-dns-policy-ineffective.test.ts keeps one golden test per code).

import { defineMessages } from '../../core/message.ts';
import { namesAndMore } from '../render-helpers.ts';

// self-contained: the summary names the first three victims and counts the rest (as it did before codes).
type Restricted = {
  /** The first DNS restrictions found ("rules.dns api.github.com", "toFQDNs *.example.com"), at most two. */
  readonly restrictions: readonly string[];
  /** How many distinct restrictions there are. */
  readonly restrictionCount: number;
  /** The first victims (`ns/pod`, at most three) and how many there are. */
  readonly pods: readonly string[];
  readonly podCount: number;
  /** The victims are the synthetic pod of a policy that selects no pod yet. */
  readonly synthetic: boolean;
};
type ByPolicy = Restricted & {
  /** The request's policy, `Kind ns/name`. */
  readonly policy: string;
};
type InNamespace = Restricted & { readonly namespace: string };

function effect(p: Restricted): string {
  const n = p.podCount;
  const who = `${n} ambient pod${n === 1 ? '' : 's'}${p.synthetic ? ' (pods this policy would select)' : ''}`;
  return (
    `DNS restrictions (${namesAndMore(p.restrictions, p.restrictionCount)}) on ${who} whose DNS ztunnel captures: ` +
    `lookups ztunnel answers never reach Cilium's DNS proxy, so they do not apply as written: ${namesAndMore(p.pods, p.podCount)}`
  );
}

const fix = (): string =>
  'restrict DNS where it is resolved (ztunnel, or Istio ServiceEntry/egress policy), or opt the pods out of ambient DNS capture with the annotation ambient.istio.io/dns-capture: "false"';

export const messages = defineMessages<{
  'policy-restricts': ByPolicy;
  'policy-keeps-restricting': ByPolicy;
  'namespace-joins-ambient': InNamespace;
}>('ambient-dns-policy-ineffective', {
  'policy-restricts': {
    description: 'a Cilium policy puts DNS restrictions (rules.dns names, toFQDNs) on ambient pods whose DNS ztunnel captures',
    summary: (p) => `${p.policy}: ${effect(p)}`,
    fix,
    detail: 'self-contained',
  },
  'policy-keeps-restricting': {
    description: 'a Cilium policy write keeps DNS restrictions that already did not apply as written (preexisting)',
    summary: (p) => `${p.policy}: ${effect(p)}`,
    fix,
    detail: 'self-contained',
  },
  'namespace-joins-ambient': {
    description: 'a Namespace joins ambient under Cilium DNS restrictions, so ztunnel starts capturing its pods\' DNS (preexisting when it already did)',
    summary: (p) => `Namespace ${p.namespace}: ${effect(p)}`,
    fix,
    detail: 'self-contained',
  },
});
