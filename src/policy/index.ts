// Public API of the policy semantics engine: pure functions over a ClusterState; derived data is cached
// per state / per policy object. Rules and `meshguard trace` import only from here.

export type * from './types.ts';
export * from './selectors.ts';
export * from './identity.ts';
export * from './model.ts';
export * from './selection.ts';
export * from './reachability.ts';
export * from './cluster.ts';
export * from './cidr.ts';
export * from './cilium-config.ts';
export * from './istio.ts';
export * from './namespace-labels.ts';
export * from './versions.ts';
export { perContentOf } from './memo.ts';
export { normalizeDnsName, MAX_DNS_TEXT } from './dns-pattern.ts';
export * from './dns.ts';
export * from './apiserver.ts';
export * from './istio-usage.ts';
export * from './mesh-peers.ts';
export * from './mesh-memo.ts';
export * from './mesh-path.ts';
export * from './l7.ts';
export * from './fqdn.ts';
export * from './deny-only.ts';
export * from './ambient-dns.ts';
export * from './probes.ts';
export * from './control-plane.ts';
export * from './classes.ts';
export * from './mesh-classes.ts';
export * from './sanitize.ts';
