// The words of webhook-ingress-apiserver-entity's findings, one entry per code
// (`webhook-ingress-apiserver-entity/<kind>`). Codes are a contract: never rename one; wording may change
// (the fixtures in testdata/ keep one golden message per code).

import { defineMessages } from '../../core/message.ts';
import { denyFixText, denyNames, namesAndMore, type DenyFix } from '../render-helpers.ts';

type Cut = {
  /** `Kind ns/name` of the request's object. */
  readonly request: string;
  /** `configuration/webhook` of the webhooks whose backends lose the API server (first few). */
  readonly webhooks: readonly string[];
  readonly webhookCount: number;
  /** Some of them have failurePolicy Fail (writes refused) rather than Ignore (silently unchecked). */
  readonly failClosed: boolean;
  /** The backend ports the API server can no longer open, as `port/TCP`. */
  readonly ports: readonly string[];
  /** The API server sources cut off: endpoint IPs, or `kube-apiserver` (the entity) when they are unknown. */
  readonly sources: readonly string[];
  /** How Cilium sees the API server there: `kube-apiserver+remote-node` on node addresses, ... */
  readonly identity: string;
  /** The policies that put the backends into ingress default deny (or deny the call). */
  readonly deciding: readonly string[];
  /** The allow rule to add, one line of flow YAML in the dialect of the request's kind. */
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
 * A deny element decides for some backends (an ingressDeny covering the API server's identity, e.g.
 * fromEntities remote-node or a CIDR over its address): the fix narrows it. `allow` is then the allow for
 * the other backends only ('' when a deny decides them all); `defaultPods` names them.
 */
type Denied = Cut &
  DenyFix & {
    /** What the request does: `CiliumNetworkPolicy ns/x`, `deleting ...`, `relabelling namespace y`, `this cilium-config change`. */
    readonly change: string;
    /** The backend ports a deny decides, as `port/TCP`. */
    readonly deniedPorts: readonly string[];
  };

const deniedSummary = (p: Denied): string =>
  `${p.change} cuts admission webhook traffic, and a deny decides, which no allow overrides: ${denyNames(p)}: ${effect(p)}` +
  (p.defaultPodCount > 0 ? `; ${p.defaultPodCount} more backend${p.defaultPodCount === 1 ? ' lacks' : 's lack'} an allow: ${namesAndMore(p.defaultPods, p.defaultPodCount)}` : '');
const deniedFix = (p: Denied): string =>
  denyFixText(
    p,
    { peer: `the kube-apiserver (${p.identity})`, addresses: p.sources.filter((s) => s !== 'kube-apiserver'), port: p.deniedPorts.join(', '), victim: 'backend' },
    p.allow ? `allow the kube-apiserver into them: ${p.allow}` : undefined,
  );

const list = (names: readonly string[], total: number): string =>
  names.join(', ') + (total > names.length ? ` and ${total - names.length} more` : '');

const effect = (p: Cut, can = 'can no longer'): string =>
  `the kube-apiserver (${p.identity}: ${p.sources.join(', ')}) ${can} call webhook ${list(p.webhooks, p.webhookCount)} on ${p.ports.join(', ')}` +
  (p.failClosed ? ': with failurePolicy Fail every write the webhook matches is refused' : ': with failurePolicy Ignore the writes it matches go through unchecked');

const decidedBy = (p: Cut): string => (p.deciding.length > 0 ? ` (default deny from ${p.deciding.join(', ')})` : '');

export const messages = defineMessages<{
  'blocks-webhook': Cut;
  'cluster-default-deny': ClusterWide;
  'change-blocks-webhook': ByChange;
  'already-blocked': Cut;
  'denied-by-policy': Denied;
  'still-denied-by-policy': Denied;
}>('webhook-ingress-apiserver-entity', {
  'blocks-webhook': {
    description: 'a policy puts admission webhook backends into ingress default deny without allowing the kube-apiserver on the webhook port (denied)',
    summary: (p) => `${p.request} cuts admission webhook traffic${decidedBy(p)}: ${effect(p)}`,
    fix: (p) => `add to ${p.request}: ${p.allow}`,
    detail: 'list-victims',
  },
  'cluster-default-deny': {
    description:
      'a CiliumClusterwideNetworkPolicy with `endpointSelector: {}` and an ingress section puts every pod, webhook backends included, into ingress default deny (denied)',
    summary: (p) =>
      `${p.request} selects every pod (endpointSelector: {}) and its ingress section puts them all into ingress default deny: ${effect(p)}`,
    fix: (p) =>
      p.fixHonoured
        ? `add enableDefaultDeny: {ingress: false} to the spec of ${p.request} (its allows then add to the pods' policy without default-denying everything else)`
        : `enableDefaultDeny is not honoured here (Cilium ${p.cilium}: needs 1.16+ with enable-non-default-deny-policies on): narrow the endpointSelector of ${p.request} to the pods it is meant for, or add: ${p.allow}`,
    detail: 'list-victims',
  },
  'change-blocks-webhook': {
    description: 'deleting a policy, relabelling a namespace or a cilium-config change leaves webhook backends without an allow from the kube-apiserver (denied)',
    summary: (p) => `${p.change} cuts admission webhook traffic${decidedBy(p)}: ${effect(p)}`,
    fix: (p) => `first allow the kube-apiserver into the webhook backends in a policy that selects them: ${p.allow}`,
    detail: 'list-victims',
  },
  'already-blocked': {
    description: 'a policy that selects webhook backends the kube-apiserver already could not reach, and does not make it worse (preexisting: a warning)',
    summary: (p) => `${p.request} selects webhook backends the kube-apiserver already cannot reach${decidedBy(p)}: ${effect(p, 'cannot')}`,
    fix: (p) => `add to ${p.request}: ${p.allow}`,
    detail: 'list-victims',
  },
  'denied-by-policy': {
    description: "an ingressDeny on webhook backends covers the kube-apiserver's identity (remote-node, host, world, a CIDR over its address): the fix narrows the deny, since an allow never overrides it (denied)",
    summary: deniedSummary,
    fix: deniedFix,
    detail: 'list-victims',
  },
  'still-denied-by-policy': {
    description: 'as denied-by-policy, but the kube-apiserver was already shut out before the request, which does not make it worse (preexisting: a warning)',
    summary: deniedSummary,
    fix: deniedFix,
    detail: 'list-victims',
  },
});
