// STUB: to be implemented (see types.ts and index.ts for the contract).

import type { ClusterState, Pod, PolicyObject } from '../state/types.ts';
import type { Direction, PolicyModel, Enforcement } from './types.ts';

/** Pods a policy object selects (any of its specs). */
export function podsSelectedBy(_state: ClusterState, _policy: PolicyObject): readonly Pod[] {
  throw new Error('podsSelectedBy: not implemented yet');
}

/**
 * The pods a policy is about: the live selected pods, or, if none, one synthetic pod built from the
 * subject selector's matchLabels in the policy namespace (so new namespaces are protected too).
 */
export function subjectPods(_state: ClusterState, _policy: PolicyObject): { pods: readonly Pod[]; synthetic: boolean } {
  throw new Error('subjectPods: not implemented yet');
}

/** The policy models (from every CNP/CCNP/NetworkPolicy in the state) that select this pod. Indexed, not a scan. */
export function policiesSelecting(_state: ClusterState, _pod: Pod): readonly PolicyModel[] {
  throw new Error('policiesSelecting: not implemented yet');
}

export function enforcement(_state: ClusterState, _pod: Pod, _direction: Direction): Enforcement {
  throw new Error('enforcement: not implemented yet');
}
