// JSON schema of the AdmissionReview (admission.k8s.io/v1) that kube-apiserver POSTs to /validate.
// Strict where meshguard depends on a field (uid, kind, operation, the objects' metadata), lenient
// elsewhere: the apiserver adds fields over releases (requestKind, options, ...) and those pass through.

import { Ajv, type ValidateFunction } from 'ajv';

import { OPERATIONS } from '../core/change.ts';

const stringMap = { type: 'object', additionalProperties: { type: 'string' } } as const;

/** An embedded object (request.object / oldObject): any JSON object whose metadata reads as ObjectMeta. */
const embeddedObject = {
  type: ['object', 'null'],
  properties: {
    apiVersion: { type: 'string' },
    kind: { type: 'string' },
    metadata: {
      type: 'object',
      properties: {
        name: { type: 'string' },
        generateName: { type: 'string' },
        namespace: { type: 'string' },
        uid: { type: 'string' },
        resourceVersion: { type: 'string' },
        labels: stringMap,
        annotations: stringMap,
        deletionTimestamp: { type: ['string', 'null'] },
      },
    },
  },
} as const;

const groupVersionKind = {
  type: 'object',
  required: ['kind'],
  properties: {
    group: { type: 'string' },
    version: { type: 'string' },
    kind: { type: 'string', minLength: 1 },
  },
} as const;

const groupVersionResource = {
  type: 'object',
  properties: {
    group: { type: 'string' },
    version: { type: 'string' },
    resource: { type: 'string' },
  },
} as const;

/** Which objects each operation must carry (CONNECT carries the connect options, if anything). */
const objectsByOperation = [
  {
    if: { properties: { operation: { const: 'CREATE' } } },
    then: { required: ['object'], properties: { object: { type: 'object' } } },
  },
  {
    if: { properties: { operation: { const: 'UPDATE' } } },
    then: { required: ['object', 'oldObject'], properties: { object: { type: 'object' }, oldObject: { type: 'object' } } },
  },
  {
    if: { properties: { operation: { const: 'DELETE' } } },
    then: { required: ['oldObject'], properties: { oldObject: { type: 'object' } } },
  },
] as const;

export const admissionReviewSchema = {
  $id: 'meshguard/AdmissionReview',
  type: 'object',
  required: ['apiVersion', 'kind', 'request'],
  properties: {
    apiVersion: { const: 'admission.k8s.io/v1' },
    kind: { const: 'AdmissionReview' },
    request: {
      type: 'object',
      required: ['uid', 'kind', 'operation'],
      properties: {
        uid: { type: 'string', minLength: 1, maxLength: 256 },
        kind: groupVersionKind,
        resource: groupVersionResource,
        subResource: { type: 'string' },
        requestKind: groupVersionKind,
        requestResource: groupVersionResource,
        requestSubResource: { type: 'string' },
        name: { type: 'string' },
        namespace: { type: 'string' },
        operation: { enum: [...OPERATIONS] },
        userInfo: {
          type: 'object',
          properties: {
            username: { type: 'string' },
            uid: { type: 'string' },
            groups: { type: ['array', 'null'], items: { type: 'string' } },
            extra: { type: ['object', 'null'] },
          },
        },
        object: embeddedObject,
        oldObject: embeddedObject,
        dryRun: { type: ['boolean', 'null'] },
        options: { type: ['object', 'null'] },
      },
      allOf: objectsByOperation,
    },
  },
} as const;

/** The parts of a validated AdmissionReview that meshguard reads. */
export interface AdmissionReviewRequest {
  readonly uid: string;
  readonly kind: { readonly group?: string; readonly version?: string; readonly kind: string };
  readonly resource?: { readonly group?: string; readonly version?: string; readonly resource?: string };
  readonly subResource?: string;
  readonly name?: string;
  readonly namespace?: string;
  readonly operation: (typeof OPERATIONS)[number];
  readonly userInfo?: { readonly username?: string; readonly uid?: string; readonly groups?: readonly string[] | null };
  readonly object?: Record<string, unknown> | null;
  readonly oldObject?: Record<string, unknown> | null;
  readonly dryRun?: boolean | null;
}
export interface AdmissionReview {
  readonly apiVersion: 'admission.k8s.io/v1';
  readonly kind: 'AdmissionReview';
  readonly request: AdmissionReviewRequest;
}

/**
 * The ajv instance for the webhook's route schemas. Unlike Fastify's default compiler it never coerces
 * types or removes properties: a uid sent as a number is an error, not silently a string.
 */
export function createAjv(): Ajv {
  return new Ajv({
    allErrors: false, coerceTypes: false, removeAdditional: false, useDefaults: false, strict: true, allowUnionTypes: true,
  });
}

let compiled: ValidateFunction | undefined;
/** A standalone validator (for callers outside Fastify, e.g. tests or tools reading saved reviews). */
export function validateAdmissionReview(value: unknown): value is AdmissionReview {
  compiled ??= createAjv().compile(admissionReviewSchema);
  return compiled(value) === true;
}
