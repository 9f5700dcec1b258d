// The words of fqdn-without-dns-proxy's findings, one entry per code (`fqdn-without-dns-proxy/<kind>`).
// Codes are a contract: never rename one; wording may change (test/rules/fqdn-without-dns-proxy.test.ts
// keeps one golden test per code).

import { defineMessages } from '../../core/message.ts';
import { dnsAllowText, namesAndMore, type DnsAllow } from '../render-helpers.ts';

type Broken = DnsAllow & {
  /** The policy of the request, `Kind ns/name`. */
  readonly policy: string;
  /** The FQDN selectors that never match (the first three) and how many in all. */
  readonly names: readonly string[];
  readonly nameCount: number;
  /** The pods whose FQDN traffic is dropped (the first three) and how many in all. */
  readonly pods: readonly string[];
  readonly podCount: number;
  /** No live pod is selected: the pods are the synthetic ones the policy would select. */
  readonly synthetic: boolean;
};
/** A pre-existing problem: the fix names the policy, or, when the request deletes it, a remaining one. */
type Still = Broken & { readonly deleted: boolean };

const who = (p: Broken): string => `${p.podCount} pod${p.podCount === 1 ? '' : 's'}${p.synthetic ? ' (pods this policy would select)' : ''}`;
const names = (p: Broken): string => namesAndMore(p.names, p.nameCount);
const noProxyWhy = (p: Broken): string =>
  `their DNS egress (UDP ${p.dnsPort} to ${p.dnsNamespace}/kube-dns) has no rules.dns, so the DNS proxy never sees the lookups`;
const uncoveredWhy = 'their rules.dns patterns do not cover these names, so the DNS proxy never learns their IPs';
const say = (prefix: string, p: Broken, why: string, suffix = ''): string =>
  `${prefix}toFQDNs ${names(p)} never match for ${who(p)}: ${why} and the traffic is dropped${suffix}: ${namesAndMore(p.pods, p.podCount)}`;
const proxyFix = (where: string, p: Broken): string => `in ${where}, allow DNS through the proxy: ${dnsAllowText('CiliumNetworkPolicy', p, true)}`;
const widenFix = (where: string, p: Broken): string => `in ${where}, widen rules.dns on the DNS egress to cover ${names(p)} (e.g. matchPattern: "*")`;
const REMAINING = 'a remaining egress policy of these pods';
const ALREADY = ' (already the case before this request)';
const stillWhere = (p: Still): string => (p.deleted ? REMAINING : p.policy);

export const messages = defineMessages<{
  'no-dns-proxy': Broken;
  'names-not-covered': Broken;
  'delete-leaves-no-dns-proxy': Broken;
  'delete-leaves-names-uncovered': Broken;
  'still-no-dns-proxy': Still;
  'still-names-uncovered': Still;
}>('fqdn-without-dns-proxy', {
  'no-dns-proxy': {
    description: 'a policy written leaves toFQDNs on pods whose DNS egress has no rules.dns (the names never resolve to allowed IPs)',
    summary: (p) => say(`${p.policy}: `, p, noProxyWhy(p)),
    fix: (p) => proxyFix(p.policy, p),
    detail: 'self-contained',
  },
  'names-not-covered': {
    description: "a policy written leaves toFQDNs names that the pods' rules.dns patterns do not cover",
    summary: (p) => say(`${p.policy}: `, p, uncoveredWhy),
    fix: (p) => widenFix(p.policy, p),
    detail: 'self-contained',
  },
  'delete-leaves-no-dns-proxy': {
    description: 'deleting a policy (the one that carried rules.dns) leaves toFQDNs on pods whose DNS egress has no rules.dns',
    summary: (p) => say(`deleting ${p.policy}: `, p, noProxyWhy(p)),
    fix: (p) => proxyFix(REMAINING, p),
    detail: 'self-contained',
  },
  'delete-leaves-names-uncovered': {
    description: 'deleting a policy leaves toFQDNs names that the remaining rules.dns patterns do not cover',
    summary: (p) => say(`deleting ${p.policy}: `, p, uncoveredWhy),
    fix: (p) => widenFix(REMAINING, p),
    detail: 'self-contained',
  },
  'still-no-dns-proxy': {
    description: 'toFQDNs already never matched for lack of rules.dns before this request (preexisting)',
    summary: (p) => say('', p, noProxyWhy(p), ALREADY),
    fix: (p) => proxyFix(stillWhere(p), p),
    detail: 'self-contained',
  },
  'still-names-uncovered': {
    description: 'toFQDNs names were already not covered by rules.dns before this request (preexisting)',
    summary: (p) => say('', p, uncoveredWhy, ALREADY),
    fix: (p) => widenFix(stillWhere(p), p),
    detail: 'self-contained',
  },
});
