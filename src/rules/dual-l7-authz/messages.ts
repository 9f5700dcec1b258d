// The words of dual-l7-authz's findings, one entry per code (`dual-l7-authz/<kind>`). Codes are a
// contract: never rename one; wording may change (the fixtures keep one golden message per code).

import { defineMessages } from '../../core/message.ts';
import { namesAndMore } from '../render-helpers.ts';

/** Cilium HTTP rules and an Istio HTTP policy on the same pods. */
type Overlap = {
  /** The Cilium policy with HTTP rules, as `Kind namespace/name` (`CiliumClusterwideNetworkPolicy name`). */
  readonly ciliumPolicy: string;
  /** The AuthorizationPolicy Envoy enforces there, `namespace/name`. */
  readonly authorizationPolicy: string;
  /** Its first HTTP attributes (at most three) and how many it uses. */
  readonly attributes: readonly string[];
  readonly attributeCount: number;
  /** The first victims, `namespace/pod` (at most three), and how many there are. */
  readonly pods: readonly string[];
  readonly podCount: number;
};
/** A Cilium policy request; `wouldSelect`: no pod runs yet, the victims are the pods it would select. */
type ByCilium = Overlap & { readonly wouldSelect: boolean };

function text(p: Overlap, who: string): string {
  const attrs = p.attributes.join(', ') + (p.attributeCount > p.attributes.length ? ', ...' : '');
  return (
    `${p.ciliumPolicy} (Cilium HTTP rules) and AuthorizationPolicy ${p.authorizationPolicy} (${attrs}) both authorize HTTP for the same pods: ` +
    `split-brain L7 authorization, requests must pass both and denials come from either side${who}: ${namesAndMore(p.pods, p.podCount)}`
  );
}
const byCilium = (p: ByCilium): string => text(p, p.wouldSelect ? ' (pods this policy would select)' : '');
const byIstio = (p: Overlap): string => text(p, '');

const fix = (p: Overlap): string =>
  `keep HTTP authorization in one place: drop rules.http from ${p.ciliumPolicy} (keep its L4 part) or the HTTP attributes from AuthorizationPolicy ${p.authorizationPolicy}`;

export const messages = defineMessages<{
  'cilium-rules-overlap': ByCilium;
  'cilium-rules-kept': ByCilium;
  'authorization-policy-overlaps': Overlap;
  'authorization-policy-kept': Overlap;
}>('dual-l7-authz', {
  'cilium-rules-overlap': {
    description: 'a Cilium policy write adds HTTP rules on pods whose Envoy (sidecar or waypoint) enforces an AuthorizationPolicy with HTTP attributes',
    summary: byCilium,
    fix,
    detail: 'self-contained',
  },
  'cilium-rules-kept': {
    description: 'a Cilium policy write keeps HTTP rules that already overlapped an Istio HTTP policy (preexisting)',
    summary: byCilium,
    fix,
    detail: 'self-contained',
  },
  'authorization-policy-overlaps': {
    description: 'an AuthorizationPolicy write adds HTTP attributes enforced by Envoy on pods that Cilium HTTP rules already select',
    summary: byIstio,
    fix,
    detail: 'self-contained',
  },
  'authorization-policy-kept': {
    description: 'an AuthorizationPolicy write keeps HTTP attributes that already overlapped Cilium HTTP rules (preexisting)',
    summary: byIstio,
    fix,
    detail: 'self-contained',
  },
});
