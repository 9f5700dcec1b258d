// Types of the policy semantics engine's public API (see index.ts).

import type { ClusterState, Gateway, Labels, LabelSelector, Pod, PolicyObject } from '../core/objects.ts';

export type Direction = 'ingress' | 'egress';
export type Protocol = 'TCP' | 'UDP' | 'SCTP';

export type PolicyKind = 'CiliumNetworkPolicy' | 'CiliumClusterwideNetworkPolicy' | 'NetworkPolicy';
export interface PolicyRef {
  readonly kind: PolicyKind;
  readonly namespace: string; // "" for CCNP
  readonly name: string;
}

// ---------- the normalized policy model ----------

export interface PortRule {
  /** Number, a named port (resolved on the destination pod), or 0 = all ports. */
  readonly port: number | string;
  readonly endPort?: number;
  /** ANY = every protocol. NetworkPolicy defaults to TCP; Cilium defaults to ANY. */
  readonly protocol: Protocol | 'ANY';
}

export interface L7Rules {
  readonly http?: readonly Readonly<Record<string, unknown>>[];
  readonly kafka?: readonly Readonly<Record<string, unknown>>[];
  readonly dns?: readonly { readonly matchName?: string; readonly matchPattern?: string }[];
  readonly l7proto?: string;
  readonly l7?: readonly Readonly<Record<string, unknown>>[];
}

export interface PortSection {
  /** Empty = all ports. */
  readonly ports: readonly PortRule[];
  readonly rules?: L7Rules;
  readonly serverNames?: readonly string[];
}

export type Peer =
  /** Pods (and, in Cilium, reserved identities via `reserved:` keys) matching a selector. */
  | {
      readonly type: 'endpoints';
      readonly selector: LabelSelector;
      /** Namespace constraint applied by defaulting (CNP / NetworkPolicy podSelector alone); undefined = any. */
      readonly namespace?: string;
      /** NetworkPolicy namespaceSelector (ANDed with `selector` on the pod). */
      readonly namespaceSelector?: LabelSelector;
    }
  | { readonly type: 'entities'; readonly entities: readonly string[] }
  | { readonly type: 'cidr'; readonly cidr: string; readonly except: readonly string[] }
  | { readonly type: 'fqdn'; readonly matchName?: string; readonly matchPattern?: string }
  | { readonly type: 'services'; readonly services: readonly Readonly<Record<string, unknown>>[] };

export interface RuleElement {
  readonly direction: Direction;
  readonly deny: boolean;
  /**
   * Empty = any peer (`{}`, `toPorts` alone, NetworkPolicy empty `to`/`from`). An empty peer list
   * (`toEndpoints: []`) selects nothing and produces no RuleElement (the section still enforces).
   */
  readonly peers: readonly Peer[];
  /** Empty = all ports. */
  readonly ports: readonly PortSection[];
  /**
   * Cilium rules: the element's position (0-based) in its section as written (`egressDeny[1]`), so a
   * message can name the element that decided. Unset for NetworkPolicy elements.
   */
  readonly index?: number;
}

export interface PolicyModel {
  readonly ref: PolicyRef;
  /** Index within `specs:` (0 for `spec`). */
  readonly specIndex: number;
  /** The subject selector as written (CNP endpointSelector, NetworkPolicy podSelector). */
  readonly subjectSelector: LabelSelector;
  /** CCNP `nodeSelector` policies select nodes, not pods. */
  readonly selectsNodes: boolean;
  /**
   * Whether this rule, by itself, puts the direction into default deny for its subjects (honouring
   * `enableDefaultDeny`; see `hasSection` for agents where that field is not honoured).
   */
  readonly enforces: Readonly<Record<Direction, boolean>>;
  /** Non-empty allow or deny section in the direction (NetworkPolicy: policyTypes), ignoring enableDefaultDeny. */
  readonly hasSection: Readonly<Record<Direction, boolean>>;
  readonly elements: readonly RuleElement[];
  /** Any L7 section (http, kafka, dns, l7) in any element. */
  readonly hasL7: boolean;
  /** Any toFQDNs peer. */
  readonly fqdnDependent: boolean;
}


// ---------- endpoints and selection ----------


export interface Enforcement {
  readonly enforced: boolean;
  /** The policies that put the direction into default deny. */
  readonly by: readonly PolicyRef[];
}

// ---------- reachability ----------

export type Target =
  | { readonly type: 'pod'; readonly pod: Pod }
  | { readonly type: 'ip'; readonly ip: string }
  | { readonly type: 'entity'; readonly entity: string }
  | { readonly type: 'fqdn'; readonly name: string };

export interface Allowing {
  readonly policy: PolicyRef;
  readonly element: RuleElement;
  /** The port section that matched (carries the L7 rules), if the element has ports. */
  readonly portSection?: PortSection;
}

export interface DirectionVerdict {
  /** Does policy apply in this direction at all (egress of `from`, ingress of `to` when it is a pod). */
  readonly enforced: boolean;
  readonly verdict: 'allowed' | 'denied';
  /** Policies that decided: the denying ones if denied by a deny rule, else the allowing ones. */
  readonly decidingPolicies: readonly PolicyRef[];
  /** Every allow element that matched (for L7 inspection: which rules.dns / rules.http apply). */
  readonly allowing: readonly Allowing[];
  /** One line: why. */
  readonly reason: string;
  /** When denied: which rule decided, a deny element or default deny (see DecidedBy). */
  readonly decidedBy?: DecidedBy;
}

/**
 * What of a deny element selected the peer of a flow: an entity it lists, a CIDR (with its except
 * holes), an endpoint selector (as written), a toServices/toFQDNs peer, or `any` (the element has no
 * peer field: `toPorts` alone denies every peer on those ports).
 */
export type DenyPeer =
  | { readonly type: 'entity'; readonly entity: string }
  | { readonly type: 'cidr'; readonly cidr: string; readonly except: readonly string[] }
  | { readonly type: 'endpoints'; readonly selector: LabelSelector }
  | { readonly type: 'services' }
  | { readonly type: 'any' };

/** A deny element that matched a flow: where it is written and what of it matched. */
export interface DenyMatch {
  readonly policy: PolicyRef;
  /** Index within `specs:` (0 for `spec`). */
  readonly specIndex: number;
  readonly section: 'ingressDeny' | 'egressDeny';
  /** The element's position in its section, 0-based (`egressDeny[index]`). */
  readonly index: number;
  /** The element's peers that selected the flow's peer (`[{type: 'any'}]` when it has no peer field). */
  readonly peers: readonly DenyPeer[];
  /** The element's port rules that matched, as written (`53/UDP`, `1-1024/TCP`); empty: it has no toPorts (every port). */
  readonly ports: readonly string[];
}

/**
 * Which rule decided a denied direction. `default-deny`: no allow matched and `enforcedBy` put the
 * direction into default deny (an allow fixes it). `deny`: deny elements matched (in Cilium a deny wins
 * over every allow, whatever the order: no allow fixes it); every matching deny element is listed.
 */
export type DecidedBy =
  | { readonly by: 'default-deny'; readonly enforcedBy: readonly PolicyRef[] }
  | { readonly by: 'deny'; readonly denies: readonly DenyMatch[] };

/** One denied direction seen while recordDenials ran: where it was decided and by which rule. */
export interface Denial {
  readonly direction: Direction;
  /** The pod whose policy decided (`ns/name`): the source on egress, the destination on ingress. */
  readonly subject: string;
  /** The peer as Cilium's policy saw it (`pod kube-system/coredns-1`, `world 10.0.0.1`, ...). */
  readonly peer: string;
  readonly port: number;
  readonly protocol: Protocol;
  readonly decidedBy: DecidedBy;
}

export interface Reachability {
  readonly allowed: boolean;
  readonly egress: DirectionVerdict;
  readonly ingress: DirectionVerdict;
}


// ---------- cluster facts ----------

export interface CiliumConfig {
  /** kube-system/cilium-config exists. */
  readonly present: boolean;
  readonly enablePolicy: 'default' | 'always' | 'never';
  readonly routingMode: 'tunnel' | 'native';
  readonly kubeProxyReplacement: boolean;
  /** Socket-level LB active (kube-proxy replacement or bpf-lb-sock). */
  readonly socketLB: boolean;
  readonly socketLBHostnsOnly: boolean;
  readonly cniExclusive: boolean;
  readonly l7Proxy: boolean;
  readonly nonDefaultDenyPolicies: boolean;
  /** The raw data map (strings), for rules that need one more key. */
  readonly data: Readonly<Record<string, string>>;
}

export interface DnsBackends {
  /** Pods behind the kube-dns Service (kube-system/kube-dns, else a Service labelled k8s-app=kube-dns). */
  readonly pods: readonly Pod[];
  /** Backend (target) ports, e.g. [{port: 53, protocol: 'UDP'}, {port: 53, protocol: 'TCP'}]. */
  readonly ports: readonly { readonly port: number; readonly protocol: Protocol }[];
  readonly serviceIPs: readonly string[];
}


// ---------- Istio ----------

export type MeshMode = 'sidecar' | 'ambient' | 'none';

export type MtlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE';
export interface EffectiveMtls {
  readonly mode: MtlsMode;
  /** The PeerAuthentication that decided, or undefined for the mesh default (PERMISSIVE). */
  readonly source?: { readonly namespace: string; readonly name: string; readonly level: 'root' | 'namespace' | 'workload' | 'port' };
}

export interface AuthzAttachment {
  /** ztunnel: L4-only enforcement in ambient; waypoint: targetRefs to a waypoint/Service; sidecar: Envoy sidecar. */
  readonly enforcer: 'ztunnel' | 'waypoint' | 'sidecar' | 'mixed' | 'none';
  readonly scope: 'workload' | 'namespace' | 'root';
  /** Pods the policy applies to directly (selector / namespace-wide / root), without targetRefs. */
  readonly pods: readonly Pod[];
  readonly targetRefs: readonly Readonly<Record<string, unknown>>[];
}
