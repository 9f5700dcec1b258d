// The words of ambient-probe-snat-blocked's findings, one entry per code (`ambient-probe-snat-blocked/<kind>`).
// Codes are a contract: never rename one; wording may change (test/rules/ambient-probe-snat-blocked.test.ts
// keeps one golden test per code).

import { defineMessages } from '../../core/message.ts';
import { denyFixText, denyNames, namesAndMore, type DenyFix } from '../render-helpers.ts';

// self-contained: the summary names the first three victims and counts the rest (as it did before codes).
type Blocked = {
  /** The SNAT source of the victims' probes: 169.254.7.127, or the IPv6 one for single-stack IPv6 pods. */
  readonly source: string;
  /** The probe ports (as decimal strings: params carry lists of strings) on which it is dropped, for the first victims (HTTP, TCP and gRPC probes; named ports resolved); empty when the probes are not known (the synthetic pod of a policy that selects no pod yet). */
  readonly ports: readonly string[];
  /** The first victims (`ns/pod`, at most three) and how many there are. */
  readonly pods: readonly string[];
  readonly podCount: number;
  /** The victims are the synthetic pod of a policy that selects no pod yet. */
  readonly synthetic: boolean;
};
type ByPolicy = Blocked & {
  /** The request's policy: its kind, and `ns/name` (`name` for a clusterwide one). */
  readonly policyKind: 'NetworkPolicy' | 'CiliumNetworkPolicy' | 'CiliumClusterwideNetworkPolicy';
  readonly policy: string;
};
type InNamespace = Blocked & { readonly namespace: string };

/**
 * A deny element decides (the pods' ingressDeny covers the probe source, e.g. `fromEntities: [world]`):
 * `pods`/`podCount` are the pods it decides for; `defaultPods`/`defaultPodCount` the other victims.
 */
type Denied = Blocked &
  DenyFix & {
    /** The request's object, `Kind ns/name` (`Namespace x`, `ConfigMap kube-system/cilium-config`). */
    readonly change: string;
  };

const deniedSummary = (p: Denied): string => {
  const n = p.podCount;
  const ports = p.ports.length === 0 ? 'any port' : `probe port${p.ports.length === 1 ? '' : 's'} ${p.ports.join(', ')}`;
  return (
    `${p.change}: ${n} ambient pod${n === 1 ? ' drops' : 's drop'} the kubelet probes SNATed by istio-cni (from ${p.source} on ${ports}), and a deny decides, which no allow overrides: ` +
    `${denyNames(p)}; probes fail, pods restart: ${namesAndMore(p.pods, p.podCount)}` +
    (p.defaultPodCount > 0 ? `; ${p.defaultPodCount} more pod${p.defaultPodCount === 1 ? ' lacks' : 's lack'} an allow: ${namesAndMore(p.defaultPods, p.defaultPodCount)}` : '')
  );
};
const deniedFix = (p: Denied): string =>
  denyFixText(
    p,
    { peer: `the probe source ${p.source}`, addresses: [p.source], port: p.ports.length > 0 ? p.ports.map((x) => `${x}/TCP`).join(', ') : 'the probe ports' },
    allowSomewhere(p),
  );

const cidrOf = (source: string): string => `${source}/${source.includes(':') ? 128 : 32}`;

function effect(p: Blocked): string {
  const n = p.podCount;
  const who = `${n} ambient pod${n === 1 ? '' : 's'}${p.synthetic ? ' (pods this policy would select)' : ''}`;
  const ports = p.ports.length === 0 ? 'any port' : `probe port${p.ports.length === 1 ? '' : 's'} ${p.ports.join(', ')}`;
  return `${who} ingress-enforced with no allow from ${p.source} on ${ports} (kubelet probes SNATed by istio-cni): probes fail, pods restart: ${namesAndMore(p.pods, p.podCount)}`;
}

/** The allow rule in the dialect of the request's policy. */
function addTo(p: ByPolicy): string {
  const cidr = cidrOf(p.source);
  return p.policyKind === 'NetworkPolicy'
    ? `add to ${p.policyKind} ${p.policy}: ingress: [{from: [{ipBlock: {cidr: ${cidr}}}]}]`
    : `add to ${p.policyKind} ${p.policy}: ingress: [{fromCIDR: ["${cidr}"]}]`;
}

/** No policy of the request to add to (a deletion, a relabel, a config change). */
function allowSomewhere(p: Blocked): string {
  const cidr = cidrOf(p.source);
  return `allow ingress from ${cidr} to these pods (e.g. an ingress rule fromCIDR: ["${cidr}"])`;
}

export const messages = defineMessages<{
  'policy-blocks-probes': ByPolicy;
  'policy-keeps-blocking-probes': ByPolicy;
  'policy-deletion-blocks-probes': ByPolicy;
  'namespace-relabel-blocks-probes': InNamespace;
  'config-blocks-probes': Blocked;
  'denied-by-policy': Denied;
  'still-denied-by-policy': Denied;
}>('ambient-probe-snat-blocked', {
  'policy-blocks-probes': {
    description: "a policy written (created or updated) puts ambient pods into ingress enforcement without an allow from the probes' SNAT source (denied)",
    summary: (p) => `${p.policyKind} ${p.policy}: ${effect(p)}`,
    fix: addTo,
    detail: 'self-contained',
  },
  'policy-keeps-blocking-probes': {
    description: 'a policy write leaves ambient pods whose probes were already dropped as they were (preexisting: a warning)',
    summary: (p) => `${p.policyKind} ${p.policy}: ${effect(p)}`,
    fix: addTo,
    detail: 'self-contained',
  },
  'policy-deletion-blocks-probes': {
    description: 'deleting a policy (say the one allowing the probe source) drops the probes of ambient pods; preexisting when they were already dropped',
    summary: (p) => `${p.policyKind} ${p.policy}: ${effect(p)}`,
    fix: allowSomewhere,
    detail: 'self-contained',
  },
  'namespace-relabel-blocks-probes': {
    description: 'a Namespace relabel (joining ambient, or coming under a policy) drops its ambient pods\' probes; preexisting when they were already dropped',
    summary: (p) => `Namespace ${p.namespace}: ${effect(p)}`,
    fix: allowSomewhere,
    detail: 'self-contained',
  },
  'config-blocks-probes': {
    description: 'a cilium-config policy-mode change (enable-policy: always, ...) puts ambient pods into ingress default deny without the probe allow (denied)',
    summary: (p) => `ConfigMap kube-system/cilium-config: ${effect(p)}`,
    fix: allowSomewhere,
    detail: 'self-contained',
  },
  'denied-by-policy': {
    description: 'ambient pods lose their probes and an ingressDeny decides (e.g. fromEntities world, which covers the SNAT source): the fix narrows the deny, since an allow never overrides it (denied)',
    summary: deniedSummary,
    fix: deniedFix,
    detail: 'self-contained',
  },
  'still-denied-by-policy': {
    description: 'as denied-by-policy, but the probes were already dropped before the request (preexisting: a warning)',
    summary: deniedSummary,
    fix: deniedFix,
    detail: 'self-contained',
  },
});
