// The words of dns-egress-missing's findings, one entry per code (`dns-egress-missing/<kind>`). Codes are
// a contract: never rename one; wording may change (test/rules/dns-egress-missing.test.ts keeps one golden
// test per code).

import { defineMessages } from '../../core/message.ts';
import { denyFixText, denyNames, dnsAllowText, namesAndMore, type DenyFix, type DnsAllow } from '../render-helpers.ts';

type Lost = DnsAllow & {
  /** The request's object, `Kind ns/name` (for a Namespace: `Namespace name`). */
  readonly object: string;
  /** The pods that lose DNS (the first three) and how many in all. */
  readonly pods: readonly string[];
  readonly podCount: number;
  /** No live pod is selected: the pods are the synthetic ones the policy would select. */
  readonly synthetic: boolean;
  /** The dialect of the suggested egress rule, and whether it needs rules.dns (the policy uses toFQDNs). */
  readonly dialect: 'NetworkPolicy' | 'CiliumNetworkPolicy';
  readonly withDnsRules: boolean;
};
/** A namespace: the relabelled one, or (deleting a policy) the namespace of the first pod that loses DNS. */
type InNamespace = Lost & { readonly namespace: string };
/**
 * A deny element decides (the pods' egressDeny, or the DNS servers' ingressDeny): `pods`/`podCount` are
 * the pods it decides for; `defaultPods`/`defaultPodCount` the other victims (default deny: an allow fixes theirs).
 */
type Denied = Lost &
  DenyFix & {
    /** What the request does, as a sentence's subject: `CiliumNetworkPolicy app/x`, `deleting ...`, `relabelling namespace x`, `this cilium-config change`. */
    readonly change: string;
  };

const dnsName = (p: Lost): string => `UDP ${p.dnsPort} to ${p.dnsNamespace}/kube-dns`;
const who = (p: Lost): string => `${p.podCount} pod${p.podCount === 1 ? '' : 's'}${p.synthetic ? ' (pods this policy would select)' : ''}`;
const pods = (p: Lost): string => namesAndMore(p.pods, p.podCount);
const allow = (p: Lost): string => dnsAllowText(p.dialect, p, p.withDnsRules);
const dnsTarget = (p: Lost) => ({ peer: `the DNS servers (${p.dnsNamespace} pods ${p.dnsLabels.join(', ')})`, port: `${p.dnsPort}/UDP` });
const deniedSummary = (p: Denied): string =>
  `${p.change} leaves ${who(p)} without DNS (${dnsName(p)}), and a deny decides, which no allow overrides: ${denyNames(p)}: ${pods(p)}` +
  (p.defaultPodCount > 0 ? `; ${p.defaultPodCount} more pod${p.defaultPodCount === 1 ? ' lacks' : 's lack'} an allow: ${namesAndMore(p.defaultPods, p.defaultPodCount)}` : '');
const deniedFix = (p: Denied): string => denyFixText(p, dnsTarget(p), `allow DNS for them: ${allow(p)}`);
const serverIngress = (p: Lost): string =>
  `ingress: [{fromEntities: [cluster], toPorts: [{ports: [{port: "${p.dnsPort}", protocol: UDP}, {port: "${p.dnsPort}", protocol: TCP}]}]}]`;

export const messages = defineMessages<{
  'policy-leaves-no-dns': Lost;
  'policy-allows-only-tcp': Lost;
  'delete-removes-allow': InNamespace;
  'config-leaves-no-dns': Lost;
  'namespace-relabel-leaves-no-dns': InNamespace;
  'config-servers-drop': Lost;
  'namespace-relabel-servers-drop': InNamespace;
  'servers-policy-blocks': Lost;
  'servers-policy-delete-blocks': Lost;
  'dns-namespace-relabel-blocks': InNamespace;
  'policy-keeps-no-dns': Lost;
  'denied-by-policy': Denied;
  'still-denied-by-policy': Denied;
}>('dns-egress-missing', {
  'policy-leaves-no-dns': {
    description: 'a policy written leaves pods egress-enforced without an allow to the DNS backends',
    summary: (p) => `${p.object} leaves ${who(p)} egress-enforced without DNS (${dnsName(p)}): ${pods(p)}`,
    fix: (p) => `add to ${p.object}: ${allow(p)}`,
    detail: 'self-contained',
  },
  'policy-allows-only-tcp': {
    description: 'a policy written allows DNS over TCP only (a NetworkPolicy port without protocol is TCP): lookups over UDP are dropped',
    summary: (p) =>
      `${p.object} leaves ${who(p)} egress-enforced without DNS (${dnsName(p)}) (only TCP ${p.dnsPort} is allowed; NetworkPolicy ports default to TCP, DNS needs protocol: UDP): ${pods(p)}`,
    fix: (p) => `add to ${p.object}: ${allow(p)}`,
    detail: 'self-contained',
  },
  'delete-removes-allow': {
    description: 'deleting a policy removes the DNS allow of pods that stay egress-enforced',
    summary: (p) => `deleting ${p.object} removes the DNS allow (${dnsName(p)}) of ${who(p)} that stay egress-enforced: ${pods(p)}`,
    fix: (p) => `before deleting, allow DNS for these pods in another policy of namespace ${p.namespace}: ${allow(p)}`,
    detail: 'self-contained',
  },
  'config-leaves-no-dns': {
    description: 'a cilium-config change (policy mode, default deny, CIDR match mode) leaves pods egress-enforced without DNS',
    summary: (p) => `this cilium-config change leaves ${who(p)} egress-enforced without DNS (${dnsName(p)}): ${pods(p)}`,
    fix: (p) => `allow DNS for these pods first (e.g. a CiliumClusterwideNetworkPolicy): ${allow(p)}`,
    detail: 'self-contained',
  },
  'namespace-relabel-leaves-no-dns': {
    description: "relabelling a Namespace puts its pods under an egress policy that does not allow DNS",
    summary: (p) => `relabelling namespace ${p.namespace} leaves ${who(p)} egress-enforced without DNS (${dnsName(p)}): ${pods(p)}`,
    fix: (p) => `allow DNS for these pods in namespace ${p.namespace}: ${allow(p)}`,
    detail: 'self-contained',
  },
  'config-servers-drop': {
    description: "a cilium-config change makes the kube-dns pods' ingress policy drop DNS from clients whose egress allows it",
    summary: (p) => `this cilium-config change makes the kube-dns pods' ingress policy drop DNS (${dnsName(p)}) from ${who(p)}; their egress still allows it: ${pods(p)}`,
    fix: (p) =>
      `first allow DNS ingress on the kube-dns pods from every client, e.g. ${serverIngress(p)}` +
      ` (with enable-non-default-deny-policies off, a policy with enableDefaultDeny.ingress: false that selects them puts them into ingress default deny)`,
    detail: 'self-contained',
  },
  'namespace-relabel-servers-drop': {
    description: "relabelling a client Namespace makes the kube-dns pods' ingress policy drop DNS from its pods",
    summary: (p) => `relabelling namespace ${p.namespace} makes the kube-dns pods' ingress policy drop DNS (${dnsName(p)}) from ${who(p)}; their egress still allows it: ${pods(p)}`,
    fix: (p) => `keep the labels of namespace ${p.namespace} that the kube-dns pods' ingress policy selects, or update its fromEndpoints/namespaceSelector peers`,
    detail: 'self-contained',
  },
  'servers-policy-blocks': {
    description: 'a policy on the kube-dns pods (their ingress) blocks DNS for clients whose egress allows it',
    summary: (p) => `${p.object} blocks DNS (${dnsName(p)}) for ${who(p)}: ${pods(p)}`,
    fix: (p) => `allow DNS ingress on the kube-dns pods from every client, e.g. ${serverIngress(p)}`,
    detail: 'self-contained',
  },
  'servers-policy-delete-blocks': {
    description: 'deleting a policy on the kube-dns pods (their ingress allow) blocks DNS for clients',
    summary: (p) => `deleting ${p.object} blocks DNS (${dnsName(p)}) for ${who(p)}: ${pods(p)}`,
    fix: (p) => `allow DNS ingress on the kube-dns pods from every client, e.g. ${serverIngress(p)}`,
    detail: 'self-contained',
  },
  'dns-namespace-relabel-blocks': {
    description: "relabelling the DNS servers' namespace makes client policies' namespaceSelector peers miss kube-dns",
    summary: (p) => `${p.object} blocks DNS (${dnsName(p)}) for ${who(p)}: ${pods(p)}`,
    fix: (p) => `keep the labels of namespace ${p.namespace} that client policies select, or update their namespaceSelector peers`,
    detail: 'self-contained',
  },
  'policy-keeps-no-dns': {
    description: 'pods selected by the policy already had no DNS egress before this request (preexisting)',
    summary: (p) => `${p.podCount} pod(s) selected by ${p.object} already have no DNS egress (${dnsName(p)}): ${pods(p)}`,
    fix: (p) => `add to ${p.object}: ${allow(p)}`,
    detail: 'self-contained',
  },
  'denied-by-policy': {
    description: "pods lose DNS and a deny decides (their egressDeny or the DNS servers' ingressDeny): the fix narrows the deny, since an allow never overrides it",
    summary: deniedSummary,
    fix: deniedFix,
    detail: 'self-contained',
  },
  'still-denied-by-policy': {
    description: 'pods selected by the policy already had no DNS before this request, and a deny decides (preexisting)',
    summary: deniedSummary,
    fix: deniedFix,
    detail: 'self-contained',
  },
});
