// Every (kind, operation) a rule triggers on must reach meshguard through the shipped webhook
// configuration, except the kinds deliberately not intercepted (listed with the reason). Adding a
// trigger without registering it (or dropping a webhook rule) fails here, not in a customer's cluster.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { parse } from 'yaml';

import { allRules } from '../../src/rules/registry.ts';
import { KINDS, type KindName } from '../../src/core/kinds.ts';

interface WebhookRule { apiGroups: string[]; resources: string[]; operations: string[] }
interface Webhook { name: string; failurePolicy: string; rules: WebhookRule[]; matchConditions?: { expression: string }[] }

const config = parse(readFileSync(new URL('../../deploy/base/webhook.yaml', import.meta.url), 'utf8')) as { webhooks: Webhook[] };

/** Triggers that only `meshguard check` sees, and why the webhook does not intercept them. */
const NOT_INTERCEPTED: Partial<Record<KindName, string>> = {
  Pod: 'every pod write would pass through meshguard; pod relabels are judged by check only',
  MutatingWebhookConfiguration: 'the apiserver never sends webhook configurations to admission webhooks',
};

function intercepted(kind: KindName, op: string): Webhook | undefined {
  const k = KINDS[kind];
  return config.webhooks.find((w) =>
    w.rules.some((r) => r.apiGroups.includes(k.group) && r.resources.includes(k.plural) && (r.operations.includes(op) || r.operations.includes('*'))),
  );
}

t.test('every rule trigger is intercepted by the shipped webhook configuration', async (t) => {
  for (const rule of allRules()) {
    for (const trigger of rule.triggers) {
      for (const kind of trigger.kinds) {
        if (NOT_INTERCEPTED[kind]) continue;
        for (const op of trigger.operations) {
          t.ok(intercepted(kind, op), `${rule.id}: ${op} ${kind} reaches meshguard`);
        }
      }
    }
  }
});

t.test('cluster plumbing entries never fail closed; policy kinds are judged on DELETE too', async (t) => {
  for (const kind of ['Namespace', 'ConfigMap', 'Deployment'] as const) {
    const w = intercepted(kind, 'UPDATE');
    t.equal(w?.failurePolicy, 'Ignore', `${kind}: a meshguard outage never blocks its repair`);
  }
  t.ok(intercepted('ConfigMap', 'UPDATE')?.matchConditions?.some((c) => c.expression.includes("'cilium-config'")), 'only cilium-config');
  t.ok(intercepted('Deployment', 'UPDATE')?.matchConditions?.some((c) => c.expression.includes("'istiod'")), 'only istiod');
  for (const kind of ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy', 'NetworkPolicy', 'PeerAuthentication'] as const) {
    t.ok(intercepted(kind, 'DELETE'), `${kind} DELETE`);
  }
});
