// STUB: to be implemented (see types.ts and index.ts for the contract).

import type { ClusterState } from '../state/types.ts';
import type { DnsBackends } from './types.ts';

export function dnsBackends(_state: ClusterState): DnsBackends {
  throw new Error('dnsBackends: not implemented yet');
}

/** kube-apiserver endpoints from the default/kubernetes EndpointSlice. */
export function apiserverEndpoints(_state: ClusterState): { ips: readonly string[]; ports: readonly number[] } {
  throw new Error('apiserverEndpoints: not implemented yet');
}

/** InternalIP (and ExternalIP) addresses of all Nodes. */
export function nodeIPs(_state: ClusterState): readonly string[] {
  throw new Error('nodeIPs: not implemented yet');
}
