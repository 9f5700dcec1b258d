// A Change is one admission request reduced to what rules need. The webhook builds it from an
// AdmissionReview; `meshguard check` builds it from a manifest and the state.

import type { KindName } from '../state/kinds.ts';
import type { KubeObject } from '../state/types.ts';

export type Operation = 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';
export const OPERATIONS: readonly Operation[] = ['CREATE', 'UPDATE', 'DELETE', 'CONNECT'];

export interface UserInfo {
  readonly username?: string;
  readonly uid?: string;
  readonly groups?: readonly string[];
}

export interface Change {
  /** request.uid (webhook) or a generated id (check). */
  readonly uid: string;
  readonly operation: Operation;
  /** The kind as sent ({group, version, kind}). */
  readonly gvk: { readonly group: string; readonly version: string; readonly kind: string };
  /** The meshguard kind, or undefined when meshguard does not model this kind (rules then see no state change). */
  readonly kind: KindName | undefined;
  /** "" for cluster-scoped objects. */
  readonly namespace: string;
  readonly name: string;
  /** The object after the request (absent on DELETE), already passed through the state transform. */
  readonly object?: KubeObject;
  /** The object before the request (UPDATE, DELETE), transformed. */
  readonly oldObject?: KubeObject;
  readonly dryRun: boolean;
  readonly userInfo: UserInfo;
}

/** The object a change is about: the new one, or the old one for DELETE. */
export function subjectOf(change: Change): KubeObject | undefined {
  return change.object ?? change.oldObject;
}
