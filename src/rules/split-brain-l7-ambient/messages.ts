// The words of split-brain-l7-ambient's findings, one entry per code (`split-brain-l7-ambient/<kind>`).
// Codes are a contract: never rename one; wording may change (the fixtures keep one golden message per code).

import { defineMessages } from '../../core/message.ts';
import { namesAndMore } from '../render-helpers.ts';

/** Cilium L7 rules on pods enrolled in ambient. */
type Conflict = {
  /** What the first rule parses: HTTP, Kafka or the l7proto name. */
  readonly l7: string;
  /** The first Cilium policies (at most two, `Kind namespace/name`) and how many there are. */
  readonly policies: readonly string[];
  readonly policyCount: number;
  readonly direction: 'ingress' | 'egress';
  /** The port of the first conflict; absent: all ports. */
  readonly port?: number;
  /** The first victims, `namespace/pod` (at most three), and how many there are. */
  readonly pods: readonly string[];
  readonly podCount: number;
  /** The namespace of the first victim (the fix takes it out of ambient). */
  readonly podNamespace: string;
};
/** A Cilium policy request; `wouldSelect`: no pod runs yet, the victims are the pods it would select. */
type ByPolicy = Conflict & { readonly wouldSelect: boolean };
type ByNamespace = Conflict & { readonly namespace: string };
/** A Pod relabel or re-annotation; `pod` is `namespace/name`. */
type ByPod = Conflict & { readonly pod: string };

function text(p: Conflict, who: string): string {
  return (
    `Cilium ${p.l7} rules of ${namesAndMore(p.policies, p.policyCount)} (${p.direction} ${p.port === undefined ? 'all ports' : `port ${p.port}`}) select pods enrolled in Istio ambient; ` +
    `ztunnel tunnels their traffic (HBONE) past Cilium's L7 proxy and connections time out${who}: ${namesAndMore(p.pods, p.podCount)}`
  );
}
const byPolicy = (p: ByPolicy): string => text(p, p.wouldSelect ? ' (pods this policy would select)' : '');
const byNamespace = (p: ByNamespace): string => `Namespace ${p.namespace}: ${text(p, '')}`;
const byPod = (p: ByPod): string => `Pod ${p.pod}: ${text(p, '')}`;

const fix = (p: Conflict): string =>
  `take the pods out of ambient: remove label istio.io/dataplane-mode from namespace ${p.podNamespace} (or label the pods istio.io/dataplane-mode: none / ` +
  `annotate them ambient.istio.io/redirection: disabled), or replace the Cilium L7 rules with an AuthorizationPolicy on a waypoint`;

export const messages = defineMessages<{
  'policy-selects-ambient': ByPolicy;
  'policy-keeps-ambient': ByPolicy;
  'namespace-joins-ambient': ByNamespace;
  'namespace-keeps-ambient': ByNamespace;
  'pod-joins-ambient': ByPod;
  'pod-keeps-ambient': ByPod;
}>('split-brain-l7-ambient', {
  'policy-selects-ambient': {
    description: 'a Cilium policy write puts L7 rules on pods enrolled in ambient (or on the pods it would select there)',
    summary: byPolicy,
    fix,
    detail: 'self-contained',
  },
  'policy-keeps-ambient': {
    description: 'a Cilium policy write keeps L7 rules that already selected ambient pods (preexisting)',
    summary: byPolicy,
    fix,
    detail: 'self-contained',
  },
  'namespace-joins-ambient': {
    description: 'a Namespace relabel enrols pods in ambient under existing Cilium L7 rules',
    summary: byNamespace,
    fix,
    detail: 'self-contained',
  },
  'namespace-keeps-ambient': {
    description: 'a Namespace relabel of ambient pods already under Cilium L7 rules (preexisting)',
    summary: byNamespace,
    fix,
    detail: 'self-contained',
  },
  'pod-joins-ambient': {
    description: 'a Pod relabel or redirection annotation enrols it in ambient (or under L7 rules) while Cilium L7 rules select it',
    summary: byPod,
    fix,
    detail: 'self-contained',
  },
  'pod-keeps-ambient': {
    description: 'a Pod relabel of an ambient pod already under Cilium L7 rules (preexisting)',
    summary: byPod,
    fix,
    detail: 'self-contained',
  },
});
