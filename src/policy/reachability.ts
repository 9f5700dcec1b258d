// STUB: to be implemented (see types.ts and index.ts for the contract).

import type { ClusterState, Pod } from '../state/types.ts';
import type { Protocol, Target, Reachability } from './types.ts';

export function evaluate(_state: ClusterState, _from: Pod, _to: Target, _port: number, _protocol: Protocol): Reachability {
  throw new Error('evaluate: not implemented yet');
}
