// The words of ztunnel-l7-authz's findings, one entry per code (`ztunnel-l7-authz/<kind>`). Codes are a
// contract: never rename one; wording may change (the fixtures keep one golden message per code).

import { defineMessages } from '../../core/message.ts';
import { namesAndMore } from '../render-helpers.ts';

/** An AuthorizationPolicy with HTTP attributes that ztunnel enforces on ambient pods. */
type Enforced = {
  /** The policy, `namespace/name`. */
  readonly policy: string;
  /** Its first HTTP attributes (at most three, e.g. `to.operation.paths`) and how many it uses. */
  readonly attributes: readonly string[];
  readonly attributeCount: number;
  /** The first victims, `namespace/pod` (at most three), and how many there are. */
  readonly pods: readonly string[];
  readonly podCount: number;
  /** The namespace of the first victim (the fix labels it with a waypoint). */
  readonly podNamespace: string;
};
/** An AuthorizationPolicy request; `wouldSelect`: no pod runs yet, the victim is the pod its selector describes. */
type ByPolicy = Enforced & { readonly wouldSelect: boolean };
/** A Namespace relabel. */
type ByNamespace = Enforced & { readonly namespace: string };

const ALLOW = 'ztunnel (L4 only) can never match those rules, so the traffic they allow is denied';
const DENY = 'ztunnel (L4 only) enforces the DENY on its L4 part alone and denies more than intended';

function text(p: Enforced, action: 'ALLOW' | 'DENY', effect: string, who: string): string {
  const attrs = p.attributes.join(', ') + (p.attributeCount > p.attributes.length ? ', ...' : '');
  return `AuthorizationPolicy ${p.policy} (${action}) uses HTTP attributes (${attrs}) on ambient pods without a waypoint; ${effect}${who}: ${namesAndMore(p.pods, p.podCount)}`;
}
const who = (p: ByPolicy): string => (p.wouldSelect ? ' (pods this policy would select)' : '');
const allowByPolicy = (p: ByPolicy): string => text(p, 'ALLOW', ALLOW, who(p));
const denyByPolicy = (p: ByPolicy): string => text(p, 'DENY', DENY, who(p));
const allowByNamespace = (p: ByNamespace): string => `Namespace ${p.namespace}: ${text(p, 'ALLOW', ALLOW, '')}`;
const denyByNamespace = (p: ByNamespace): string => `Namespace ${p.namespace}: ${text(p, 'DENY', DENY, '')}`;

const fix = (p: Enforced): string =>
  `bind the policy to a waypoint (deploy one, label namespace ${p.podNamespace} istio.io/use-waypoint=<name>, ` +
  `and replace selector with targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: <name>}]), or remove the HTTP attributes`;

export const messages = defineMessages<{
  'allow-never-matches': ByPolicy;
  'allow-kept': ByPolicy;
  'deny-broadened': ByPolicy;
  'deny-kept': ByPolicy;
  'namespace-allow-never-matches': ByNamespace;
  'namespace-allow-kept': ByNamespace;
  'namespace-deny-broadened': ByNamespace;
  'namespace-deny-kept': ByNamespace;
}>('ztunnel-l7-authz', {
  'allow-never-matches': {
    description: 'an ALLOW AuthorizationPolicy write puts HTTP attributes where ztunnel enforces it (ambient pods, no waypoint): its rules never match',
    summary: allowByPolicy,
    fix,
    detail: 'self-contained',
  },
  'allow-kept': {
    description: 'an ALLOW AuthorizationPolicy write keeps HTTP attributes ztunnel already could not match (preexisting)',
    summary: allowByPolicy,
    fix,
    detail: 'self-contained',
  },
  'deny-broadened': {
    description: 'a DENY AuthorizationPolicy write puts HTTP attributes where ztunnel enforces it: it denies on its L4 part alone',
    summary: denyByPolicy,
    fix,
    detail: 'self-contained',
  },
  'deny-kept': {
    description: 'a DENY AuthorizationPolicy write keeps HTTP attributes ztunnel already enforced on L4 alone (preexisting)',
    summary: denyByPolicy,
    fix,
    detail: 'self-contained',
  },
  'namespace-allow-never-matches': {
    description: 'a Namespace relabel (joining ambient) puts its pods under an ALLOW policy with HTTP attributes that ztunnel enforces',
    summary: allowByNamespace,
    fix,
    detail: 'self-contained',
  },
  'namespace-allow-kept': {
    description: 'a Namespace relabel of ambient pods already under an ALLOW policy with HTTP attributes (preexisting)',
    summary: allowByNamespace,
    fix,
    detail: 'self-contained',
  },
  'namespace-deny-broadened': {
    description: 'a Namespace relabel (joining ambient) puts its pods under a DENY policy with HTTP attributes that ztunnel enforces on L4',
    summary: denyByNamespace,
    fix,
    detail: 'self-contained',
  },
  'namespace-deny-kept': {
    description: 'a Namespace relabel of ambient pods already under a DENY policy with HTTP attributes (preexisting)',
    summary: denyByNamespace,
    fix,
    detail: 'self-contained',
  },
});
