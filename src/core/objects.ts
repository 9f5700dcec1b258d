// Object shapes meshguard keeps in its state, and the read-only ClusterState interface.
//
// Objects keep the Kubernetes field names (so a manifest, an AdmissionReview object and a cached object
// read the same way), but only the fields some rule or semantic reads: `src/state/transform.ts` strips
// everything else on arrival. Policy kinds (CNP, CCNP, NetworkPolicy, AuthorizationPolicy, PeerAuthentication)
// keep their whole `spec`, because the policy engine interprets it.

import type { KindName } from './kinds.ts';

export type Labels = Readonly<Record<string, string>>;

export interface ObjectMeta {
  readonly name: string;
  readonly namespace?: string;
  readonly uid?: string;
  readonly labels?: Labels;
  /** Only annotations meshguard reads (meshguard.io/*, sidecar.istio.io/*, ambient.istio.io/*, istio.io/*). */
  readonly annotations?: Labels;
  readonly deletionTimestamp?: string;
  /** Kept for PeerAuthentication only: Istio settles two policies at one level by the older one. */
  readonly creationTimestamp?: string;
}

export interface KubeObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: ObjectMeta;
}

export interface ContainerPort {
  readonly name?: string;
  readonly containerPort: number;
  readonly protocol?: string; // default TCP
}
/** Where a probe connects: a port number, or the name of a port of its container. */
export interface ProbeTarget {
  readonly port: number | string;
  /** Set when the probe goes to another host than the pod (kept only by unslimmed objects). */
  readonly host?: string;
}
/**
 * A container probe as far as the network sees it: the handler that connects, with its port (exec
 * probes send no traffic and are not kept). The field names are Kubernetes' own.
 */
export interface Probe {
  readonly httpGet?: ProbeTarget;
  readonly tcpSocket?: ProbeTarget;
  readonly grpc?: ProbeTarget;
}
export interface Container {
  readonly name: string;
  /** Kept only for the Cilium agent and istiod (their tags give the versions: src/policy/versions.ts). */
  readonly image?: string;
  readonly ports?: readonly ContainerPort[];
  /** The kubelet's network probes (only the handler and its port are kept). */
  readonly livenessProbe?: Probe;
  readonly readinessProbe?: Probe;
  readonly startupProbe?: Probe;
}

export interface Pod extends KubeObject {
  readonly spec: {
    readonly serviceAccountName?: string;
    readonly hostNetwork?: boolean;
    readonly nodeName?: string;
    readonly containers: readonly Container[];
    readonly initContainers?: readonly Container[];
  };
  readonly status?: {
    readonly phase?: string;
    readonly podIP?: string;
    readonly podIPs?: readonly { readonly ip: string }[];
    readonly hostIP?: string;
  };
}

export interface Namespace extends KubeObject {}

export interface NodeAddress {
  readonly type: string;
  readonly address: string;
}
export interface Node extends KubeObject {
  readonly spec?: { readonly podCIDR?: string; readonly podCIDRs?: readonly string[] };
  readonly status?: { readonly addresses?: readonly NodeAddress[] };
}

export interface ServicePort {
  readonly name?: string;
  readonly port: number;
  readonly targetPort?: number | string;
  readonly protocol?: string;
}
export interface Service extends KubeObject {
  readonly spec: {
    readonly selector?: Labels;
    readonly ports?: readonly ServicePort[];
    readonly clusterIP?: string;
    readonly clusterIPs?: readonly string[];
    readonly type?: string;
  };
}

export interface EndpointSlice extends KubeObject {
  readonly addressType?: string;
  readonly endpoints?: readonly {
    readonly addresses: readonly string[];
  }[];
  readonly ports?: readonly { readonly name?: string; readonly port?: number; readonly protocol?: string }[];
}

export interface ConfigMap extends KubeObject {
  /** Only for cilium-config, istio mesh config and CoreDNS: other ConfigMaps keep no data. */
  readonly data?: Readonly<Record<string, string>>;
}

export interface Deployment extends KubeObject {
  readonly spec: {
    readonly replicas?: number;
    readonly selector?: LabelSelector;
    readonly template: {
      readonly metadata?: { readonly labels?: Labels; readonly annotations?: Labels };
      readonly spec: Pod['spec'];
    };
  };
}

export interface ServiceAccount extends KubeObject {}

export interface Subject {
  readonly kind: string; // ServiceAccount | User | Group
  readonly name: string;
  readonly namespace?: string;
}
export interface RoleBinding extends KubeObject {
  readonly roleRef?: { readonly kind: string; readonly name: string };
  readonly subjects?: readonly Subject[];
}

export interface WebhookClientConfig {
  readonly url?: string;
  readonly service?: { readonly name: string; readonly namespace: string; readonly port?: number; readonly path?: string };
}
/** One webhook of a Mutating- or ValidatingWebhookConfiguration, as slimmed. */
export interface Webhook {
  readonly name: string;
  readonly clientConfig: WebhookClientConfig;
  readonly failurePolicy?: string;
  readonly namespaceSelector?: LabelSelector;
  readonly objectSelector?: LabelSelector;
}
export interface MutatingWebhookConfiguration extends KubeObject {
  readonly webhooks?: readonly Webhook[];
}
/** Same slim shape as the mutating kind: what the webhook-reachability rule reads (backend, failurePolicy). */
export interface ValidatingWebhookConfiguration extends KubeObject {
  readonly webhooks?: readonly Webhook[];
}

export interface LabelSelectorRequirement {
  readonly key: string;
  readonly operator: string; // In | NotIn | Exists | DoesNotExist
  readonly values?: readonly string[];
}
export interface LabelSelector {
  readonly matchLabels?: Labels;
  readonly matchExpressions?: readonly LabelSelectorRequirement[];
}

/** A policy object: the spec is kept whole and interpreted by src/policy. */
export interface PolicyObject extends KubeObject {
  readonly spec?: Readonly<Record<string, unknown>>;
  /** CiliumNetworkPolicy / CCNP may carry a list of rules instead of (or besides) `spec`. */
  readonly specs?: readonly Readonly<Record<string, unknown>>[];
}

export interface GatewayListener {
  readonly name?: string;
  readonly port?: number;
  readonly protocol?: string;
  /** Which namespaces may attach (for a waypoint: use it); Gateway API's default is Same. */
  readonly allowedRoutes?: { readonly namespaces?: { readonly from?: string; readonly selector?: LabelSelector } };
}

export interface Gateway extends KubeObject {
  readonly spec?: {
    readonly gatewayClassName?: string;
    readonly listeners?: readonly GatewayListener[];
  };
}

/** Typed view of each kind. */
export interface KindObjects {
  Namespace: Namespace;
  Pod: Pod;
  Node: Node;
  Service: Service;
  EndpointSlice: EndpointSlice;
  ConfigMap: ConfigMap;
  Deployment: Deployment;
  ServiceAccount: ServiceAccount;
  RoleBinding: RoleBinding;
  ClusterRoleBinding: RoleBinding;
  MutatingWebhookConfiguration: MutatingWebhookConfiguration;
  ValidatingWebhookConfiguration: ValidatingWebhookConfiguration;
  NetworkPolicy: PolicyObject;
  CiliumNetworkPolicy: PolicyObject;
  CiliumClusterwideNetworkPolicy: PolicyObject;
  AuthorizationPolicy: PolicyObject;
  PeerAuthentication: PolicyObject;
  Gateway: Gateway;
}

/**
 * A read-only view of the cluster. Implementations: snapshot (files), live (informers), overlay
 * (another state plus one admitted Change). All returned arrays and objects are shared and must not be
 * mutated. Every method is O(result) or better: no method scans the whole cluster unless asked for
 * every object of a kind.
 */
export interface ClusterState {
  /** Every object of a kind; with `namespace`, only those in that namespace (ignored for cluster-scoped kinds). */
  list<K extends KindName>(kind: K, namespace?: string): readonly KindObjects[K][];
  /** One object, or undefined. `namespace` is ignored for cluster-scoped kinds. */
  get<K extends KindName>(kind: K, namespace: string | undefined, name: string): KindObjects[K] | undefined;
  /** Namespaces that hold at least one object of this kind (for namespaced kinds). */
  namespacesWith(kind: KindName): readonly string[];
  /**
   * Pods carrying label `key=value`, in one namespace or (namespace undefined) all namespaces, from an
   * index: use it to narrow a selector's candidates before matching the whole selector.
   */
  podsWithLabel(namespace: string | undefined, key: string, value: string): readonly Pod[];
  /**
   * An object that stays the same while no object of `kind` changes, in any namespace, and is replaced
   * when one does: a cache key for data derived from a whole kind that does not build the kind's list
   * (a whole-cluster Pod list is 50k entries, rebuilt after every pod event otherwise).
   */
  contentToken(kind: KindName): object;
  /**
   * A number that changes whenever the content changes; two reads with the same revision see the same
   * objects. Lets pure code cache derived data per state.
   */
  readonly revision: number;
  /** Short description for logs: "snapshot(3 files)", "live", "overlay(live + put CiliumNetworkPolicy blue/l7)". */
  describe(): string;
}

/**
 * Where the state comes from, with its lifecycle. The server uses `synced()` for readiness and `stats()`
 * for metrics; rules only ever see `state`.
 */
export interface StateSource {
  readonly state: ClusterState;
  /** Load files / start informers. Resolves when the first sync is done (or rejects on a fatal error). */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** True once every kind has been listed (and stays true while the watches are healthy). */
  synced(): boolean;
  stats(): StateStats;
}
export interface StateStats {
  readonly objects: Readonly<Partial<Record<KindName, number>>>;
  /** Seconds since the last watch event or relist of any kind; undefined for a snapshot. */
  readonly secondsSinceLastEvent?: number;
  /** Per kind: seconds since its last watch event, reconnect or relist (live only); the oldest is the one to watch. */
  readonly secondsSinceLastEventByKind?: Readonly<Partial<Record<KindName, number>>>;
  /**
   * Watch events applied since start, per kind (live only): `changed` moved the state to a new revision,
   * `unchanged` changed nothing meshguard keeps (a pod's readiness, an object's resourceVersion).
   */
  readonly watchEvents?: Readonly<Partial<Record<KindName, { readonly changed: number; readonly unchanged: number }>>>;
  /** Optional kinds whose CRD is not installed (live only): they are empty. */
  readonly missingKinds?: readonly KindName[];
  readonly synced: boolean;
}
