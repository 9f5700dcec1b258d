// The words of pa-disable-ignored-ambient's findings, one entry per code (`pa-disable-ignored-ambient/<kind>`).
// Codes are a contract: never rename one; wording may change (the fixtures keep one golden message per code).

import { defineMessages } from '../../core/message.ts';
import { namesAndMore } from '../render-helpers.ts';

/** Where DISABLE decides the mode of ambient pods, and which pods. */
type Disabled = {
  /** The PeerAuthentication whose DISABLE decides the mode, `namespace/name`. */
  readonly source: string;
  /** The port of a portLevelMtls DISABLE; absent: the whole pod. */
  readonly port?: number;
  /** The first victims, `namespace/pod` (at most three), and how many there are. */
  readonly pods: readonly string[];
  readonly podCount: number;
  /** The namespace of the first victim (the fix relabels it). */
  readonly podNamespace: string;
};
/** A PeerAuthentication request; `wouldSelect`: no pod runs yet, the victims are the pods its selector describes. */
type ByPolicy = Disabled & { readonly wouldSelect: boolean };
/** A Namespace relabel. */
type ByNamespace = Disabled & { readonly namespace: string };

const text = (p: Disabled, who: string): string =>
  `PeerAuthentication ${p.source} sets mTLS DISABLE${p.port === undefined ? '' : ` on port ${p.port}`} for pods enrolled in Istio ambient; ` +
  `ztunnel ignores DISABLE (HBONE is always mTLS) and the inherited mode applies${who}: ${namesAndMore(p.pods, p.podCount)}`;
const byPolicy = (p: ByPolicy): string => text(p, p.wouldSelect ? ' (pods this policy would select)' : '');
const byNamespace = (p: ByNamespace): string => `Namespace ${p.namespace}: ${text(p, '')}`;

const fix = (p: Disabled): string =>
  `if these pods must take plaintext, take them out of ambient (kubectl label namespace ${p.podNamespace} istio.io/dataplane-mode- , ` +
  `or label the pods istio.io/dataplane-mode: none); otherwise delete the DISABLE or use PERMISSIVE`;

export const messages = defineMessages<{
  'policy-disables': ByPolicy;
  'policy-keeps-disable': ByPolicy;
  'namespace-enrols-disabled': ByNamespace;
  'namespace-keeps-disabled': ByNamespace;
}>('pa-disable-ignored-ambient', {
  'policy-disables': {
    description: 'a PeerAuthentication write makes DISABLE decide the mTLS mode of ambient pods (or of the pods its selector would select)',
    summary: byPolicy,
    fix,
    detail: 'self-contained',
  },
  'policy-keeps-disable': {
    description: 'a PeerAuthentication write keeps a DISABLE that already decided the mode of ambient pods (preexisting)',
    summary: byPolicy,
    fix,
    detail: 'self-contained',
  },
  'namespace-enrols-disabled': {
    description: 'a Namespace relabel enrols pods in ambient (or out of an override) where a DISABLE decides their mTLS mode',
    summary: byNamespace,
    fix,
    detail: 'self-contained',
  },
  'namespace-keeps-disabled': {
    description: 'a Namespace relabel of ambient pods on which a DISABLE was already ignored (preexisting)',
    summary: byNamespace,
    fix,
    detail: 'self-contained',
  },
});
