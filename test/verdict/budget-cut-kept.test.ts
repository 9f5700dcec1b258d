// A review cut by its budget keeps the long-lived state's per-revision tables (keptPerRevision: the
// selecting lists per identity among them) for the next review, which compares policy models by
// identity. The request's own objects are marked ephemeral, so models built from them die with the
// request; an UPDATE or DELETE whose old object is the state's own stored object (the warm-up's
// requests, the audit's, `meshguard check` of an existing object) must not make that object's models
// ephemeral, or the kept lists hold models the next review no longer knows: a deleted policy still
// selects its pods. Each decision after a cut is compared with a fresh state's.

import t from 'tap';
import { defaultConfig } from '../../src/config/config.ts';
import type { ClusterState } from '../../src/core/objects.ts';
import { allRules } from '../../src/rules/registry.ts';
import { createDecide } from '../../src/verdict/decide.ts';
import { baseCluster, ccnp, memoryState, ns, pod, type Obj } from '../fixtures/cluster.ts';
import { makeChange } from '../rules/rule-harness.ts';

function objects(): Obj[] {
  return baseCluster([
    ns('a', { 'istio.io/dataplane-mode': 'ambient' }),
    pod('a', 'api-1', { app: 'api', team: 'y' }, { ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] }),
    pod('a', 'web-1', { app: 'web' }, { ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] }),
    // Admits every endpoint on 8080, not on 15008: ambient HBONE to api-1 is cut while it exists.
    ccnp('p13', {
      endpointSelector: { matchLabels: { team: 'y' } },
      ingress: [{ fromEndpoints: [{}], toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }] }] }],
    }),
  ]);
}

const rules = allRules();
const config = defaultConfig(rules);
const deleteP13 = (s: ClusterState) => makeChange('DELETE', undefined, { stored: s.get('CiliumClusterwideNetworkPolicy', undefined, 'p13')! });
const codes = (d: { findings: readonly { code: string; victims?: readonly string[] }[] }) => d.findings.map((f) => `${f.code} ${(f.victims ?? []).join(',')}`);

t.test('a DELETE of a stored policy after the same review was cut by its budget: answered as on a fresh state', async (t) => {
  const fresh = memoryState(objects());
  const want = codes(createDecide(rules, config)(deleteP13(fresh), fresh));
  t.comment(JSON.stringify(want));
  let cuts = 0;
  for (let budget = 1; budget <= 60; budget++) {
    const live = memoryState(objects());
    let ticks = 0;
    // The budget runs out after `budget` checks (a clock that moves one per read).
    const cut = createDecide(rules, { ...config, evaluation: { ...config.evaluation, budgetMs: budget } }, { budget: { clock: { now: () => ticks++ }, stride: 1 } });
    if (cut(deleteP13(live), live).incomplete?.reason === 'budget') cuts++;
    t.same(codes(createDecide(rules, config)(deleteP13(live), live)), want, `after a cut at ${budget} checks`);
  }
  t.ok(cuts >= 3, `${cuts} reviews cut`);
});
