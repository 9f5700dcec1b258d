// The words of apiserver-egress-missing's findings, one entry per code (`apiserver-egress-missing/<kind>`).
// Codes are a contract: never rename one; wording may change (test/rules/apiserver-egress-missing.test.ts
// keeps one golden test per code).

import { defineMessages } from '../../core/message.ts';
import { apiserverAllowText, denyFixText, denyNames, namesAndMore, type ApiserverAllow, type DenyFix } from '../render-helpers.ts';

type Cut = ApiserverAllow & {
  /** The request's object, `Kind ns/name` (a relabelled namespace: its name). */
  readonly object: string;
  /** How many pods that use the API server lose it (or already miss it), and the first three of them. */
  readonly podCount: number;
  readonly pods: readonly string[];
  /** The endpoints named in the message: those cut off, or every one (empty: the kube-apiserver, endpoints unknown). */
  readonly endpoints: readonly string[];
  /** Set when only some endpoints are cut off: how many there are in all. */
  readonly endpointTotal?: number;
};

/**
 * A deny element decides (the pods' egressDeny): `pods`/`podCount` are the pods it decides for;
 * `defaultPods`/`defaultPodCount` the other victims (default deny: an allow fixes theirs).
 */
type Denied = Cut &
  DenyFix & {
    /** What the request does, as a sentence's subject (`CiliumNetworkPolicy ops/x`, `deleting ...`, `relabelling namespace x`). */
    readonly change: string;
  };

const denied = (p: Denied): string =>
  `${p.change} leaves ${who(p)} without access to it (${where(p)}), and a deny decides, which no allow overrides: ${denyNames(p)}: ${pods(p)}` +
  (p.defaultPodCount > 0 ? `; ${p.defaultPodCount} more pod${p.defaultPodCount === 1 ? ' lacks' : 's lack'} an allow: ${namesAndMore(p.defaultPods, p.defaultPodCount)}` : '');
const deniedFix = (p: Denied): string =>
  denyFixText(p, { peer: `the API server (${p.endpoints.length > 0 ? p.endpoints.join(', ') : 'kube-apiserver'})`, addresses: p.endpoints, port: `${p.port}/TCP` }, `allow the API server for them: ${apiserverAllowText(p)}`);

const where = (p: Cut): string =>
  `TCP ${p.port} to ${p.endpoints.length > 0 ? p.endpoints.join(', ') : 'the kube-apiserver'}` +
  (p.endpointTotal !== undefined ? `, ${p.endpoints.length} of the ${p.endpointTotal} API server endpoints` : '');
const who = (p: Cut): string => `${p.podCount} pod${p.podCount === 1 ? '' : 's'} using the API server`;
const pods = (p: Cut): string => namesAndMore(p.pods, p.podCount);

export const messages = defineMessages<{
  'policy-cuts-access': Cut;
  'delete-removes-allow': Cut;
  'config-cuts-access': Cut;
  'namespace-relabel-cuts-access': Cut;
  'policy-keeps-missing': Cut;
  'denied-by-policy': Denied;
  'still-denied-by-policy': Denied;
}>('apiserver-egress-missing', {
  'policy-cuts-access': {
    description: 'a policy written leaves pods that use the API server egress-enforced without access to it (or to some of its endpoints)',
    summary: (p) => `${p.object} leaves ${who(p)} egress-enforced without access to it (${where(p)}): ${pods(p)}`,
    fix: (p) => `add to ${p.object}: ${apiserverAllowText(p)}`,
    detail: 'self-contained',
  },
  'delete-removes-allow': {
    description: 'deleting a policy removes the API server allow of pods that stay egress-enforced',
    summary: (p) => `deleting ${p.object} removes the API server allow (${where(p)}) of ${who(p)} that stay egress-enforced: ${pods(p)}`,
    fix: (p) => `before deleting, allow the API server for these pods in another policy: ${apiserverAllowText(p)}`,
    detail: 'self-contained',
  },
  'config-cuts-access': {
    description: 'a cilium-config change (policy mode, CIDR match mode) leaves pods that use the API server without access to it',
    summary: (p) => `this cilium-config change leaves ${who(p)} without access to it (${where(p)}): ${pods(p)}`,
    fix: (p) => `allow the API server for these pods first: ${apiserverAllowText(p)}`,
    detail: 'self-contained',
  },
  'namespace-relabel-cuts-access': {
    description: 'relabelling a Namespace puts pods that use the API server under egress enforcement without access to it',
    summary: (p) => `relabelling namespace ${p.object} leaves ${who(p)} egress-enforced without access to it (${where(p)}): ${pods(p)}`,
    fix: (p) => `allow the API server for these pods in namespace ${p.object}: ${apiserverAllowText(p)}`,
    detail: 'self-contained',
  },
  'policy-keeps-missing': {
    description: 'pods that use the API server and are selected by the policy already could not reach it (preexisting)',
    summary: (p) => `${p.podCount} pod(s) using the API server and selected by ${p.object} already cannot reach it (${where(p)}): ${pods(p)}`,
    fix: (p) => `add to ${p.object}: ${apiserverAllowText(p)}`,
    detail: 'self-contained',
  },
  'denied-by-policy': {
    description: 'pods that use the API server lose it and a deny decides (an egressDeny covering its entity or address): the fix narrows the deny, since an allow never overrides it',
    summary: denied,
    fix: deniedFix,
    detail: 'self-contained',
  },
  'still-denied-by-policy': {
    description: 'pods selected by the policy already could not reach the API server, and a deny decides (preexisting)',
    summary: denied,
    fix: deniedFix,
    detail: 'self-contained',
  },
});
