// The Kubernetes kinds meshguard reads. One table drives the snapshot loader, the informers,
// `meshguard snapshot`, the RBAC in deploy/ and the overlay, so a kind is added in one place.

export interface ResourceKind {
  /** Key used everywhere in meshguard (the Kubernetes kind). */
  readonly kind: KindName;
  readonly group: string; // "" for the core group
  /** Preferred version to list/watch. */
  readonly version: string;
  readonly plural: string;
  readonly namespaced: boolean;
  /** A CustomResourceDefinition that may be missing from a cluster (then the kind is just empty). */
  readonly optional: boolean;
  /**
   * Only objects in these namespaces are kept (ConfigMaps: kube-system and the Istio root namespace).
   * `undefined` = all namespaces.
   */
  readonly namespaces?: readonly string[];
}

export const KIND_NAMES = [
  'Namespace',
  'Pod',
  'Node',
  'Service',
  'EndpointSlice',
  'ConfigMap',
  'Deployment',
  'ServiceAccount',
  'RoleBinding',
  'ClusterRoleBinding',
  'MutatingWebhookConfiguration',
  'ValidatingWebhookConfiguration',
  'NetworkPolicy',
  'CiliumNetworkPolicy',
  'CiliumClusterwideNetworkPolicy',
  'AuthorizationPolicy',
  'PeerAuthentication',
  'Gateway',
] as const;

export type KindName = (typeof KIND_NAMES)[number];

/** ConfigMaps are kept only from these namespaces, plus the Istio root namespace when it differs. */
export const CONFIGMAP_NAMESPACES = ['kube-system', 'istio-system'] as const;

export const KINDS: Readonly<Record<KindName, ResourceKind>> = {
  Namespace: { kind: 'Namespace', group: '', version: 'v1', plural: 'namespaces', namespaced: false, optional: false },
  Pod: { kind: 'Pod', group: '', version: 'v1', plural: 'pods', namespaced: true, optional: false },
  Node: { kind: 'Node', group: '', version: 'v1', plural: 'nodes', namespaced: false, optional: false },
  Service: { kind: 'Service', group: '', version: 'v1', plural: 'services', namespaced: true, optional: false },
  EndpointSlice: {
    kind: 'EndpointSlice', group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices', namespaced: true, optional: false,
  },
  ConfigMap: {
    kind: 'ConfigMap', group: '', version: 'v1', plural: 'configmaps', namespaced: true, optional: false,
    namespaces: CONFIGMAP_NAMESPACES,
  },
  Deployment: { kind: 'Deployment', group: 'apps', version: 'v1', plural: 'deployments', namespaced: true, optional: false },
  ServiceAccount: {
    kind: 'ServiceAccount', group: '', version: 'v1', plural: 'serviceaccounts', namespaced: true, optional: false,
  },
  RoleBinding: {
    kind: 'RoleBinding', group: 'rbac.authorization.k8s.io', version: 'v1', plural: 'rolebindings', namespaced: true,
    optional: false,
  },
  ClusterRoleBinding: {
    kind: 'ClusterRoleBinding', group: 'rbac.authorization.k8s.io', version: 'v1', plural: 'clusterrolebindings',
    namespaced: false, optional: false,
  },
  MutatingWebhookConfiguration: {
    kind: 'MutatingWebhookConfiguration', group: 'admissionregistration.k8s.io', version: 'v1',
    plural: 'mutatingwebhookconfigurations', namespaced: false, optional: false,
  },
  ValidatingWebhookConfiguration: {
    kind: 'ValidatingWebhookConfiguration', group: 'admissionregistration.k8s.io', version: 'v1',
    plural: 'validatingwebhookconfigurations', namespaced: false, optional: false,
  },
  NetworkPolicy: {
    kind: 'NetworkPolicy', group: 'networking.k8s.io', version: 'v1', plural: 'networkpolicies', namespaced: true,
    optional: false,
  },
  CiliumNetworkPolicy: {
    kind: 'CiliumNetworkPolicy', group: 'cilium.io', version: 'v2', plural: 'ciliumnetworkpolicies', namespaced: true,
    optional: true,
  },
  CiliumClusterwideNetworkPolicy: {
    kind: 'CiliumClusterwideNetworkPolicy', group: 'cilium.io', version: 'v2', plural: 'ciliumclusterwidenetworkpolicies',
    namespaced: false, optional: true,
  },
  AuthorizationPolicy: {
    kind: 'AuthorizationPolicy', group: 'security.istio.io', version: 'v1', plural: 'authorizationpolicies',
    namespaced: true, optional: true,
  },
  PeerAuthentication: {
    kind: 'PeerAuthentication', group: 'security.istio.io', version: 'v1', plural: 'peerauthentications',
    namespaced: true, optional: true,
  },
  // Only Kubernetes Gateway API Gateways: Istio waypoints are `gatewayClassName: istio-waypoint` Gateways.
  Gateway: {
    kind: 'Gateway', group: 'gateway.networking.k8s.io', version: 'v1', plural: 'gateways', namespaced: true,
    optional: true,
  },
};

/** The API group of an `apiVersion` string ("v1" -> "", "cilium.io/v2" -> "cilium.io"). */
function groupOf(apiVersion: string | undefined): string {
  if (!apiVersion) return '';
  const slash = apiVersion.indexOf('/');
  return slash < 0 ? '' : apiVersion.slice(0, slash);
}

/**
 * Which meshguard kind an object is, by group and kind (any version), or undefined when meshguard does
 * not read it (for example an Istio `networking.istio.io` Gateway, or a Secret).
 */
export function kindOf(obj: { apiVersion?: string; kind?: string } | undefined | null): KindName | undefined {
  if (!obj || typeof obj.kind !== 'string') return undefined;
  const k = (KINDS as Record<string, ResourceKind | undefined>)[obj.kind];
  if (!k) return undefined;
  return groupOf(obj.apiVersion) === k.group ? k.kind : undefined;
}

/** Same as kindOf, from an AdmissionReview `request.kind` ({group, version, kind}). */
export function kindOfGVK(gvk: { group?: string; kind?: string } | undefined): KindName | undefined {
  if (!gvk || typeof gvk.kind !== 'string') return undefined;
  const k = (KINDS as Record<string, ResourceKind | undefined>)[gvk.kind];
  if (!k) return undefined;
  return (gvk.group ?? '') === k.group ? k.kind : undefined;
}
