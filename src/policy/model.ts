// STUB: to be implemented (see types.ts and index.ts for the contract).

import type { PolicyObject } from '../state/types.ts';
import type { PolicyModel } from './types.ts';

/** The policy model of a CNP / CCNP / NetworkPolicy object (one entry per `spec`/`specs[]` rule). Cached. */
export function policyModel(_obj: PolicyObject): readonly PolicyModel[] {
  throw new Error('policyModel: not implemented yet');
}
