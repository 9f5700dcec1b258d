// JSON Schema of the meshguard config file (docs/configuration.md). Every object is closed
// (additionalProperties: false) so a misspelt key is an error, not a silently ignored setting.

import { MAX_DOCS_BASE_URL_CHARS } from './docs-links.ts';

export const ACTIONS = ['deny', 'warn', 'audit', 'off'] as const;
export const MODES = ['enforce', 'audit'] as const;
export const CONTROL_PLANE = ['auto', 'outside-nodes', 'on-nodes'] as const;
export const ON_ERROR = ['fail', 'ignore'] as const;

// Kubernetes names: a DNS label for namespaces.
const namespaceName = { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 63 } as const;

const labelSelector = {
  type: 'object',
  additionalProperties: false,
  properties: {
    matchLabels: { type: 'object', additionalProperties: { type: 'string' } },
    matchExpressions: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['key', 'operator'],
        properties: {
          key: { type: 'string', minLength: 1 },
          operator: { enum: ['In', 'NotIn', 'Exists', 'DoesNotExist'] },
          values: { type: 'array', items: { type: 'string' } },
        },
      },
    },
  },
} as const;

// An https URL without query or fragment: rule pages are linked as <baseUrl>/<rule id>.md.
const docsBaseUrl = { type: 'string', pattern: '^https://[^/?#\\s]+(/[^?#\\s]*)?$', maxLength: MAX_DOCS_BASE_URL_CHARS } as const;

export const configSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    mode: { enum: MODES },
    // Rule ids are checked against the registry after the schema (for a better message than an enum).
    rules: { type: 'object', additionalProperties: { enum: ACTIONS } },
    evaluation: {
      type: 'object',
      additionalProperties: false,
      properties: {
        // How long one review may run (src/core/budget.ts); bounds from MIN_BUDGET_MS / MAX_BUDGET_MS.
        budgetMs: { type: 'integer', minimum: 10, maximum: 25000 },
        // What a rule error or an exhausted budget answers; unset = what the webhook entry does.
        onError: { enum: ON_ERROR },
      },
    },
    docs: {
      type: 'object',
      additionalProperties: false,
      properties: { baseUrl: docsBaseUrl },
    },
    exemptions: {
      type: 'object',
      additionalProperties: false,
      properties: {
        namespaces: { type: 'array', items: namespaceName, uniqueItems: true },
      },
    },
    settings: {
      type: 'object',
      additionalProperties: false,
      properties: {
        apiserverClients: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['selector'],
            properties: { namespace: namespaceName, selector: labelSelector },
          },
        },
        defaultApiserverClients: { type: 'boolean' },
        controlPlane: { enum: CONTROL_PLANE },
      },
    },
  },
} as const;
