// STUB: to be implemented (see types.ts and index.ts for the contract).

import type { ClusterState, Labels, LabelSelector, Pod } from '../state/types.ts';

/** Labels Cilium matches on for a pod: pod labels + io.kubernetes.pod.namespace + SA + namespace labels. */
export function endpointLabels(_state: ClusterState, _pod: Pod): Labels {
  throw new Error('endpointLabels: not implemented yet');
}

/** Kubernetes label selector semantics (matchLabels AND matchExpressions), with Cilium source prefixes stripped. */
export function matchesSelector(_selector: LabelSelector | undefined, _labels: Labels): boolean {
  throw new Error('matchesSelector: not implemented yet');
}
