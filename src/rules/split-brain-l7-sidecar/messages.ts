// The words of split-brain-l7-sidecar's findings, one entry per code (`split-brain-l7-sidecar/<kind>`).
// Codes are a contract: never rename one; wording may change (the fixtures keep one golden message per code).
// Kinds: what the request is (a Cilium policy, a PeerAuthentication, a Namespace relabel), which side
// of the connection Cilium parses (ingress of sidecar pods, egress of sidecar clients toward them), and
// whether the conflict was there before (`-kept`, preexisting).

import { defineMessages } from '../../core/message.ts';
import { namesAndMore } from '../render-helpers.ts';

/** Cilium L7 rules on traffic Istio encrypts. */
type Conflict = {
  /** What the first rule parses: HTTP, Kafka or the l7proto name. */
  readonly l7: string;
  /** The first Cilium policies (at most two, `Kind namespace/name`) and how many there are. */
  readonly policies: readonly string[];
  readonly policyCount: number;
  /** The port of the first conflict; absent: all ports. */
  readonly port?: number;
  /** The effective mTLS mode there (STRICT, PERMISSIVE, UNSET) and the PeerAuthentication that decided it (absent: the mesh default). */
  readonly mtls: string;
  readonly mtlsSource?: string;
  readonly mtlsLevel?: string;
  /** The first victims, `namespace/pod` (at most three), and how many there are. */
  readonly pods: readonly string[];
  readonly podCount: number;
};
/** Ingress of sidecar pods: the fix is a PeerAuthentication in `podNamespace`, for pods labelled `app` when they are. */
type Ingress = Conflict & { readonly podNamespace: string; readonly app?: string };
/** Egress of sidecar clients toward `destination` (`namespace/pod`), a sidecar pod that accepts mTLS. */
type Egress = Conflict & { readonly destination: string };

type PolicyIngress = Ingress & { readonly wouldSelect: boolean };
type PolicyEgress = Egress & { readonly wouldSelect: boolean };
type PeerAuthIngress = Ingress & { readonly peerAuthentication: string };
type PeerAuthEgress = Egress & { readonly peerAuthentication: string };
type NamespaceIngress = Ingress & { readonly namespace: string };
type NamespaceEgress = Egress & { readonly namespace: string };

const portLabel = (port: number | undefined): string => (port === undefined ? 'all ports' : `port ${port}`);
const mtlsText = (p: Conflict): string =>
  p.mtlsSource === undefined ? `mTLS ${p.mtls} (mesh default)` : `mTLS ${p.mtls} (PeerAuthentication ${p.mtlsSource}, ${p.mtlsLevel ?? ''} level)`;

function text(p: Conflict, where: string, who: string): string {
  return (
    `Cilium ${p.l7} rules of ${namesAndMore(p.policies, p.policyCount)} inspect ${where}; Cilium's proxy cannot parse Istio mTLS, ` +
    `requests get HTTP 503${who}: ${namesAndMore(p.pods, p.podCount)}`
  );
}
const ingressWhere = (p: Ingress): string => `ingress ${portLabel(p.port)} of sidecar pods with Istio ${mtlsText(p)}`;
const egressWhere = (p: Egress): string => `egress toward ${portLabel(p.port)} of ${p.destination} with ${mtlsText(p)}`;
const WOULD = ' (pods this policy would select)';

const policyIngress = (p: PolicyIngress): string => text(p, ingressWhere(p), p.wouldSelect ? WOULD : '');
const policyEgress = (p: PolicyEgress): string => text(p, egressWhere(p), p.wouldSelect ? WOULD : '');
const peerAuthIngress = (p: PeerAuthIngress): string => `PeerAuthentication ${p.peerAuthentication}: ${text(p, ingressWhere(p), '')}`;
const peerAuthEgress = (p: PeerAuthEgress): string => `PeerAuthentication ${p.peerAuthentication}: ${text(p, egressWhere(p), '')}`;
const namespaceIngress = (p: NamespaceIngress): string => `Namespace ${p.namespace}: ${text(p, ingressWhere(p), '')}`;
const namespaceEgress = (p: NamespaceEgress): string => `Namespace ${p.namespace}: ${text(p, egressWhere(p), '')}`;

function ingressFix(p: Ingress): string {
  const selector = p.app !== undefined ? `selector: {matchLabels: {app: ${p.app}}}, ` : '';
  const portFix = p.port !== undefined && p.app !== undefined ? `portLevelMtls: {"${p.port}": {mode: DISABLE}}` : 'mtls: {mode: DISABLE}';
  return `disable Istio mTLS where Cilium parses L7: PeerAuthentication in ${p.podNamespace} {${selector}${portFix}}, or move the L7 rules to an Istio AuthorizationPolicy`;
}
const egressFix = (): string =>
  'disable Istio mTLS on the destination port (PeerAuthentication mtls.mode: DISABLE), or move the L7 rules to an Istio AuthorizationPolicy';

const KEPT = ' (preexisting: the request leaves it as it was)';

export const messages = defineMessages<{
  'policy-ingress-mtls': PolicyIngress;
  'policy-ingress-mtls-kept': PolicyIngress;
  'policy-egress-mtls': PolicyEgress;
  'policy-egress-mtls-kept': PolicyEgress;
  'peer-authentication-ingress-mtls': PeerAuthIngress;
  'peer-authentication-ingress-mtls-kept': PeerAuthIngress;
  'peer-authentication-egress-mtls': PeerAuthEgress;
  'peer-authentication-egress-mtls-kept': PeerAuthEgress;
  'namespace-ingress-mtls': NamespaceIngress;
  'namespace-ingress-mtls-kept': NamespaceIngress;
  'namespace-egress-mtls': NamespaceEgress;
  'namespace-egress-mtls-kept': NamespaceEgress;
}>('split-brain-l7-sidecar', {
  'policy-ingress-mtls': {
    description: 'a Cilium policy write puts L7 ingress rules on sidecar pods that accept Istio mTLS from mesh clients',
    summary: policyIngress,
    fix: ingressFix,
    detail: 'self-contained',
  },
  'policy-ingress-mtls-kept': {
    description: `a Cilium policy write keeps L7 ingress rules on sidecar pods that accept mTLS${KEPT}`,
    summary: policyIngress,
    fix: ingressFix,
    detail: 'self-contained',
  },
  'policy-egress-mtls': {
    description: 'a Cilium policy write puts L7 egress rules on sidecar clients toward sidecar pods that accept mTLS',
    summary: policyEgress,
    fix: egressFix,
    detail: 'self-contained',
  },
  'policy-egress-mtls-kept': {
    description: `a Cilium policy write keeps L7 egress rules of sidecar clients toward mTLS pods${KEPT}`,
    summary: policyEgress,
    fix: egressFix,
    detail: 'self-contained',
  },
  'peer-authentication-ingress-mtls': {
    description: 'a PeerAuthentication write or delete turns mTLS on (not DISABLE) where Cilium L7 ingress rules parse sidecar traffic',
    summary: peerAuthIngress,
    fix: ingressFix,
    detail: 'self-contained',
  },
  'peer-authentication-ingress-mtls-kept': {
    description: `a PeerAuthentication write leaves mTLS on where Cilium L7 ingress rules parse sidecar traffic${KEPT}`,
    summary: peerAuthIngress,
    fix: ingressFix,
    detail: 'self-contained',
  },
  'peer-authentication-egress-mtls': {
    description: 'a PeerAuthentication write or delete turns mTLS on for destinations of Cilium L7 egress rules of sidecar clients',
    summary: peerAuthEgress,
    fix: egressFix,
    detail: 'self-contained',
  },
  'peer-authentication-egress-mtls-kept': {
    description: `a PeerAuthentication write leaves mTLS on for destinations of Cilium L7 egress rules${KEPT}`,
    summary: peerAuthEgress,
    fix: egressFix,
    detail: 'self-contained',
  },
  'namespace-ingress-mtls': {
    description: 'a Namespace relabel (injection) brings sidecars, or mesh clients, under Cilium L7 ingress rules',
    summary: namespaceIngress,
    fix: ingressFix,
    detail: 'self-contained',
  },
  'namespace-ingress-mtls-kept': {
    description: `a Namespace relabel of pods already under Cilium L7 ingress rules with mTLS${KEPT}`,
    summary: namespaceIngress,
    fix: ingressFix,
    detail: 'self-contained',
  },
  'namespace-egress-mtls': {
    description: 'a Namespace relabel (injection) makes its pods sidecar clients, or destinations, of Cilium L7 egress rules over mTLS',
    summary: namespaceEgress,
    fix: egressFix,
    detail: 'self-contained',
  },
  'namespace-egress-mtls-kept': {
    description: `a Namespace relabel of pods already in a Cilium L7 egress conflict with mTLS${KEPT}`,
    summary: namespaceEgress,
    fix: egressFix,
    detail: 'self-contained',
  },
});
