// A Change is one admission request reduced to what rules need. There is one way to build one,
// buildChange(): the webhook builds it from an AdmissionReview (src/admission/review.ts), `meshguard
// check` from a manifest and the state (src/cli/check.ts), the audit from a stored object
// (src/verdict/audit.ts) and the rule tests from fixtures. The objects it carries are slim (the state
// transform's output); core does not know the transform, so the caller passes it in (src/state/slim.ts).

import { KINDS, kindOfGVK, type KindName } from './kinds.ts';
import type { KubeObject, ObjectMeta } from './objects.ts';

export type Operation = 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';
export const OPERATIONS: readonly Operation[] = ['CREATE', 'UPDATE', 'DELETE', 'CONNECT'];

export interface UserInfo {
  readonly username?: string;
  readonly uid?: string;
  readonly groups?: readonly string[];
}

export interface GroupVersionKind {
  readonly group: string;
  readonly version: string;
  readonly kind: string;
}

export interface Change {
  /** request.uid (webhook) or a generated id (check). */
  readonly uid: string;
  readonly operation: Operation;
  /** The kind as sent ({group, version, kind}). */
  readonly gvk: GroupVersionKind;
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

/** {group, version, kind} of an apiVersion ("networking.k8s.io/v1", "v1") and a kind. */
export function gvkOf(apiVersion: string, kind: string): GroupVersionKind {
  const slash = apiVersion.indexOf('/');
  return slash < 0 ? { group: '', version: apiVersion, kind } : { group: apiVersion.slice(0, slash), version: apiVersion.slice(slash + 1), kind };
}

// ---------------------------------------------------------------------------------------------------
// The one builder

export type RawObject = Record<string, unknown>;

/**
 * How a sent object becomes a slim one: the state transform for kinds meshguard models, identity,
 * labels and the annotations meshguard reads for the others (`kind` undefined). src/state/slim.ts.
 */
export type Slim = (kind: KindName | undefined, raw: RawObject) => KubeObject;

/** An object as a state holds it (already slim): the builder takes it as it is, same identity. */
export interface StoredObject {
  readonly stored: KubeObject;
}

/** An object of a request: as sent (JSON, slimmed by the builder), or as stored in a state. */
export type ObjectInput = { readonly sent: unknown } | StoredObject;

export interface ChangeRequest {
  readonly uid: string;
  readonly operation: Operation;
  readonly gvk: GroupVersionKind;
  /**
   * request.namespace: the Change's namespace, and the one a sent object of a namespaced kind gets when
   * it has none (a create's body may omit it). Default: the object's own.
   */
  readonly namespace?: string;
  /** request.name: the Change's name, and the name of a sent object without one (generateName). Default: the object's own. */
  readonly name?: string;
  /** The object after the request. Ignored on DELETE (the apiserver sends none). */
  readonly object?: ObjectInput;
  /** The object before the request. Ignored on CREATE and CONNECT. */
  readonly oldObject?: ObjectInput;
  readonly dryRun?: boolean;
  readonly userInfo?: UserInfo;
}

/** A JSON object (not null, not an array): the one test every reader of untyped input uses. */
export const isRawObject = (v: unknown): v is RawObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The Change for one request. Sent objects go through `slim` (CONNECT options as a kind meshguard does
 * not model: no rule reads more than their identity), get their TypeMeta from `gvk` when they lack it
 * and the request's namespace and name when they lack those; stored objects are kept as they are. A sent
 * object that is not a JSON object is dropped.
 */
export function buildChange(req: ChangeRequest, slim?: Slim): Change {
  const { operation, gvk } = req;
  const kind = kindOfGVK(gvk);
  const object = operation === 'DELETE' ? undefined : objectOf(req.object, operation === 'CONNECT' ? undefined : kind, req, slim);
  const oldObject = operation === 'CREATE' || operation === 'CONNECT' ? undefined : objectOf(req.oldObject, kind, req, slim);
  const subject = object ?? oldObject;
  return {
    uid: req.uid,
    operation,
    gvk: { group: gvk.group, version: gvk.version, kind: gvk.kind },
    kind,
    namespace: req.namespace ?? subject?.metadata.namespace ?? '',
    name: req.name || subject?.metadata.name || '',
    ...(object ? { object } : {}),
    ...(oldObject ? { oldObject } : {}),
    dryRun: req.dryRun === true,
    userInfo: req.userInfo ?? {},
  };
}

function objectOf(input: ObjectInput | undefined, kind: KindName | undefined, req: ChangeRequest, slim: Slim | undefined): KubeObject | undefined {
  if (!input) return undefined;
  if ('stored' in input) return input.stored;
  const raw = input.sent;
  if (!isRawObject(raw)) return undefined;
  if (!slim) throw new Error('buildChange: a sent object needs a slim function');
  // The apiserver always sends TypeMeta, but fill it from the request's kind so the transform sees a whole object.
  const typed: RawObject = {
    ...raw,
    apiVersion: typeof raw.apiVersion === 'string' ? raw.apiVersion : apiVersionOf(req.gvk),
    kind: typeof raw.kind === 'string' ? raw.kind : req.gvk.kind,
  };
  return withIdentity(slim(kind, typed), kind, req);
}

function apiVersionOf(gvk: GroupVersionKind): string {
  return gvk.group ? `${gvk.group}/${gvk.version}` : gvk.version;
}

/**
 * A create may omit metadata.namespace (kubectl fills it from the URL, not the body) and the name of a
 * generateName object only appears in request.name: take both from the request when the object lacks them.
 */
function withIdentity(obj: KubeObject, kind: KindName | undefined, req: ChangeRequest): KubeObject {
  const namespaced = kind ? KINDS[kind].namespaced : req.namespace !== undefined && req.namespace !== '';
  const needNs = namespaced && !obj.metadata.namespace && !!req.namespace;
  const needName = !obj.metadata.name && !!req.name;
  if (!needNs && !needName) return obj;
  const metadata: ObjectMeta = {
    ...obj.metadata,
    ...(needName ? { name: req.name! } : {}),
    ...(needNs ? { namespace: req.namespace! } : {}),
  };
  return { ...obj, metadata } as KubeObject;
}

// ---------------------------------------------------------------------------------------------------
// What a change does to the state

/** One object put into, or deleted from, a state: what the overlay (src/state/overlay.ts) applies. */
export type Mutation =
  | { readonly kind: KindName; readonly namespace: string; readonly name: string; readonly object: KubeObject }
  | { readonly kind: KindName; readonly namespace: string; readonly name: string; readonly delete: true };

/**
 * What admitting `change` would do to the state: CREATE/UPDATE put `change.object`, DELETE removes the
 * object. Undefined (nothing changes) for CONNECT, kinds meshguard does not model and a CREATE/UPDATE
 * without an object. The request's namespace/name are authoritative (a manifest may omit its
 * namespace); the object's own are the fallback.
 */
export function mutationOf(change: Change): Mutation | undefined {
  const kind = change.kind;
  if (!kind || !(kind in KINDS)) return undefined;
  const namespaced = KINDS[kind].namespaced;
  const subject = subjectOf(change);
  const namespace = namespaced ? change.namespace || subject?.metadata.namespace || '' : '';
  const name = change.name || subject?.metadata.name || '';
  switch (change.operation) {
    case 'CREATE':
    case 'UPDATE':
      return change.object ? { kind, namespace, name, object: change.object } : undefined;
    case 'DELETE':
      return { kind, namespace, name, delete: true };
    default:
      return undefined;
  }
}
