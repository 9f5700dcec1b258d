// The words of mesh-control-plane-blocked's findings, one entry per code (`mesh-control-plane-blocked/<kind>`).
// Codes are a contract: never rename one; wording may change (the fixtures in testdata/ keep one golden
// message per code).

import { defineMessages } from '../../core/message.ts';
import { denyFixText, denyNames, namesAndMore, type DenyFix } from '../render-helpers.ts';

type Cut = {
  /** `Kind ns/name` of the request's object. */
  readonly request: string;
  /** The first istiod pod that loses traffic, `ns/name`. */
  readonly istiod: string;
  /** What is cut, one entry per client kind and port: `sidecar:15012`, `ztunnel:15012`, `gateway:15012`, `kube-apiserver:15017`. */
  readonly cut: readonly string[];
  /** The first client pods that lose xDS (`ns/name`), `kube-apiserver` when the webhook port is cut. */
  readonly clients: readonly string[];
  readonly clientCount: number;
  /** The policies that put istiod into ingress default deny (or deny the traffic). */
  readonly deciding: readonly string[];
  /** The allow rule(s) to add, one line of flow YAML in the dialect of the request's kind. */
  readonly allow: string;
};
type ByChange = Cut & {
  /** What the request does: `deleting CiliumNetworkPolicy ns/x`, `relabelling namespace y`, `this cilium-config change`. */
  readonly change: string;
};
type ClusterWide = Cut & {
  /** Whether `enableDefaultDeny: {ingress: false}` is honoured (Cilium 1.16+, enable-non-default-deny-policies on). */
  readonly fixHonoured: boolean;
  /** The Cilium version found in the state ("unknown" when none). */
  readonly cilium: string;
};

/**
 * A deny element decides some cut flows (an ingressDeny on istiod's pods): the fix narrows it. `allow` is
 * then the allow for the other cut flows only ('' when a deny decides them all); `defaultPods` names
 * their clients.
 */
type Denied = Cut &
  DenyFix & {
    /** What the request does: `CiliumNetworkPolicy ns/x`, `deleting ...`, `relabelling namespace y`, `this cilium-config change`. */
    readonly change: string;
    /** The flows a deny decides, as in `cut`. */
    readonly deniedCut: readonly string[];
    /** The API server addresses, when a deny decides its webhook calls (for a CIDR deny's except). */
    readonly apiserverAddresses: readonly string[];
  };

const PEER: Record<string, string> = { sidecar: 'the sidecars', ztunnel: 'ztunnel', gateway: 'the gateways/waypoints', 'kube-apiserver': 'the kube-apiserver' };
const deniedSummary = (p: Denied): string =>
  `${p.change} cuts Istio's control plane, and a deny decides, which no allow overrides: ${denyNames(p)}: ${effect(p)}` +
  (p.defaultPodCount > 0 ? `; ${p.defaultPodCount} more client${p.defaultPodCount === 1 ? ' lacks' : 's lack'} an allow: ${namesAndMore(p.defaultPods, p.defaultPodCount)}` : '');
const deniedFix = (p: Denied): string => {
  const kinds = [...new Set(p.deniedCut.map((c) => c.slice(0, c.lastIndexOf(':'))))];
  const ports = [...new Set(p.deniedCut.map((c) => `${c.slice(c.lastIndexOf(':') + 1)}/TCP`))];
  const peer = `${kinds.map((k) => PEER[k] ?? k).join(', ')} (istiod's clients)`;
  return denyFixText(p, { peer, addresses: p.apiserverAddresses, port: ports.join(', '), victim: 'client' }, p.allow ? `allow them into istiod: ${p.allow}` : undefined);
};

const WHAT: Record<string, string> = {
  sidecar: 'xDS from sidecars',
  ztunnel: 'xDS from ztunnel',
  gateway: 'xDS from gateways/waypoints',
  'kube-apiserver': 'the injection/validation webhook from the kube-apiserver',
};

const describeCut = (p: Cut): string =>
  p.cut
    .map((c) => {
      const i = c.lastIndexOf(':');
      return `${WHAT[c.slice(0, i)] ?? c.slice(0, i)} on ${c.slice(i + 1)}/TCP`;
    })
    .join(', ');

const clients = (p: Cut): string => p.clients.join(', ') + (p.clientCount > p.clients.length ? ` and ${p.clientCount - p.clients.length} more` : '');

const effect = (p: Cut, loses = 'loses'): string =>
  `istiod ${p.istiod} ${loses} ${describeCut(p)} (${clients(p)}): proxies keep stale config and new pods get no certificates or injection`;

const decidedBy = (p: Cut): string => (p.deciding.length > 0 ? ` (default deny from ${p.deciding.join(', ')})` : '');

export const messages = defineMessages<{
  'blocks-istiod': Cut;
  'cluster-default-deny': ClusterWide;
  'change-blocks-istiod': ByChange;
  'already-blocked': Cut;
  'denied-by-policy': Denied;
  'still-denied-by-policy': Denied;
}>('mesh-control-plane-blocked', {
  'blocks-istiod': {
    description: "a policy on istiod's pods cuts xDS (15012) from sidecars, ztunnel or gateways, or the webhook port (15017) from the kube-apiserver (denied)",
    summary: (p) => `${p.request} cuts Istio's control plane${decidedBy(p)}: ${effect(p)}`,
    fix: (p) => `add to ${p.request}: ${p.allow}`,
    detail: 'self-contained',
  },
  'cluster-default-deny': {
    description:
      'a CiliumClusterwideNetworkPolicy with `endpointSelector: {}` and an ingress section puts every pod, istiod included, into ingress default deny (denied)',
    summary: (p) => `${p.request} selects every pod (endpointSelector: {}) and its ingress section puts them all into ingress default deny: ${effect(p)}`,
    fix: (p) =>
      p.fixHonoured
        ? `add enableDefaultDeny: {ingress: false} to the spec of ${p.request} (its allows then add to the pods' policy without default-denying everything else)`
        : `enableDefaultDeny is not honoured here (Cilium ${p.cilium}: needs 1.16+ with enable-non-default-deny-policies on): narrow the endpointSelector of ${p.request} to the pods it is meant for, or add: ${p.allow}`,
    detail: 'self-contained',
  },
  'change-blocks-istiod': {
    description: "deleting a policy, relabelling a namespace or a cilium-config change leaves istiod's xDS or webhook port without an allow (denied)",
    summary: (p) => `${p.change} cuts Istio's control plane${decidedBy(p)}: ${effect(p)}`,
    fix: (p) => `first allow this traffic into istiod in a policy that selects it: ${p.allow}`,
    detail: 'self-contained',
  },
  'already-blocked': {
    description: 'a policy that selects istiod whose xDS or webhook traffic was already cut, and does not make it worse (preexisting: a warning)',
    summary: (p) => `${p.request} selects istiod whose control-plane traffic is already cut${decidedBy(p)}: ${effect(p, 'lacks')}`,
    fix: (p) => `add to ${p.request}: ${p.allow}`,
    detail: 'self-contained',
  },
  'denied-by-policy': {
    description: "an ingressDeny on istiod's pods decides the cut xDS or webhook traffic: the fix narrows the deny, since an allow never overrides it (denied)",
    summary: deniedSummary,
    fix: deniedFix,
    detail: 'self-contained',
  },
  'still-denied-by-policy': {
    description: 'as denied-by-policy, but the traffic was already cut before the request, which does not make it worse (preexisting: a warning)',
    summary: deniedSummary,
    fix: deniedFix,
    detail: 'self-contained',
  },
});
