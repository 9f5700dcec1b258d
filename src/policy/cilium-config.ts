// STUB: to be implemented (see types.ts and index.ts for the contract).

import type { ClusterState } from '../state/types.ts';
import type { CiliumConfig } from './types.ts';

export function ciliumConfig(_state: ClusterState): CiliumConfig {
  throw new Error('ciliumConfig: not implemented yet');
}
