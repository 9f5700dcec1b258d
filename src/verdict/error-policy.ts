// What meshguard answers when it cannot finish judging a request: a rule threw, or the evaluation
// budget ran out. The default follows the webhook entry that carried the request (deploy/base/
// webhook.yaml), so that a meshguard failure inside the process is answered the way a meshguard
// outage would be: policy objects fail closed in enforce mode (their entry is `Fail`), cluster
// plumbing (Namespaces, cilium-config, istiod) and audit mode fail open (their entries are `Ignore`).
// docs/adr/0004-error-policy.md records why.

import type { Config, OnError } from '../config/config.ts';
import type { KindName } from '../core/kinds.ts';

/** Kinds the `policies.meshguard.io` entry carries: `failurePolicy: Fail` in the enforce overlay. */
export const POLICY_KINDS: ReadonlySet<KindName> = new Set<KindName>([
  'CiliumNetworkPolicy',
  'CiliumClusterwideNetworkPolicy',
  'NetworkPolicy',
  'AuthorizationPolicy',
  'PeerAuthentication',
]);

/** The outcome of a request meshguard could not finish judging. */
export function errorOutcome(config: Pick<Config, 'mode' | 'evaluation'>, kind: KindName | undefined): OnError {
  if (config.evaluation.onError !== undefined) return config.evaluation.onError;
  if (config.mode === 'audit') return 'ignore';
  return kind !== undefined && POLICY_KINDS.has(kind) ? 'fail' : 'ignore';
}
