// STUB: to be implemented (see types.ts and index.ts for the contract).

import type { ClusterState, Gateway, Pod, PolicyObject } from '../state/types.ts';
import type { MeshMode, EffectiveMtls, AuthzAttachment } from './types.ts';

export function meshMode(_state: ClusterState, _pod: Pod): MeshMode {
  throw new Error('meshMode: not implemented yet');
}

/** Root namespace from the mesh config (istio ConfigMap `mesh` key, rootNamespace), default istio-system. */
export function istioRootNamespace(_state: ClusterState): string {
  throw new Error('istioRootNamespace: not implemented yet');
}

export function effectiveMtls(_state: ClusterState, _pod: Pod, _port?: number): EffectiveMtls {
  throw new Error('effectiveMtls: not implemented yet');
}

export function authzAttachment(_state: ClusterState, _authorizationPolicy: PolicyObject): AuthzAttachment {
  throw new Error('authzAttachment: not implemented yet');
}

/** HTTP-only attributes an AuthorizationPolicy uses (e.g. ["to.operation.paths", "when request.headers"]). */
export function httpAttributesOf(_authorizationPolicy: PolicyObject): readonly string[] {
  throw new Error('httpAttributesOf: not implemented yet');
}

/** The waypoint Gateway serving a pod (pod label, else namespace label istio.io/use-waypoint), if any. */
export function waypointFor(_state: ClusterState, _pod: Pod): Gateway | undefined {
  throw new Error('waypointFor: not implemented yet');
}
