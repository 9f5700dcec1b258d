// An admission overlay's DNS and API server answers derived from the base's decisions without working
// out the overlay's selecting lists (src/policy/reachability.ts decideFromBase, enforcedFromBase,
// changedSelecting; src/policy/reach-memo.ts keepsList). These tests check every answer against a state
// built with the change, the base's answers memoised first, on the near misses of that derivation:
// policies of several specs selecting different classes, updates that move a policy off some classes and
// onto others, `enableDefaultDeny: false` (a policy that selects without enforcing) with
// enable-non-default-deny-policies on and off, deny-only policies, and the class whose only enforcing
// policy is the changed one.

import t from 'tap';
import type { Test } from 'tap';
import { dnsTarget, reachesDns, reachesDnsEgressOnly } from '../../src/policy/dns.ts';
import { apiserverReach } from '../../src/policy/apiserver.ts';
import { reachComputations, reachDerivations } from '../../src/policy/reach-memo.ts';
import { mutationOf } from '../../src/core/change.ts';
import { overlay } from '../../src/state/overlay.ts';
import { inRequestScope } from '../../src/state/request-scope.ts';
import type { ClusterState, Pod } from '../../src/core/objects.ts';
import { baseCluster, ccnp, cnp, HEALTHY_CILIUM_CONFIG, memoryState, netpol, ns, pod, withObject as applied } from '../fixtures/cluster.ts';
import { makeChange } from '../rules/rule-harness.ts';

type Obj = Parameters<typeof makeChange>[1] & object;

const dnsEgress = { toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s-app': 'kube-dns' } }], toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }] }] };

function objects(extra: Obj[], ndd: boolean): Obj[] {
  return baseCluster(
    [
      ns('a'), ns('b'),
      pod('a', 'web', { app: 'web' }), pod('a', 'db', { app: 'db' }), pod('a', 'job', { app: 'job' }),
      pod('b', 'api', { app: 'api' }), pod('b', 'ui', { app: 'ui' }),
      netpol('b', 'b-egress', { podSelector: { matchLabels: { app: 'api' } }, policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: {} }] }] }),
      ...extra,
    ],
    { ...HEALTHY_CILIUM_CONFIG, 'enable-non-default-deny-policies': ndd ? 'true' : 'false' },
  ) as Obj[];
}

const clients = (s: ClusterState): Pod[] => s.list('Pod').filter((p) => ['a', 'b'].includes(p.metadata.namespace ?? ''));

function agrees(t: Test, objs: Obj[], change: ReturnType<typeof makeChange>, next: Obj[]): void {
  const base = memoryState(objs);
  for (const p of base.list('Pod')) {
    reachesDns(base, p);
    reachesDnsEgressOnly(base, p, dnsTarget(base)!);
    apiserverReach(base, p);
  }
  const fresh = memoryState(next);
  inRequestScope(() => {
    const after = overlay(base, mutationOf(change));
    for (const p of clients(after)) {
      const ref = `${p.metadata.namespace}/${p.metadata.name}`;
      const q = fresh.get('Pod', p.metadata.namespace, p.metadata.name)!;
      t.equal(reachesDns(after, p), reachesDns(fresh, q), `${ref}: DNS`);
      t.equal(reachesDnsEgressOnly(after, p, dnsTarget(after)!), reachesDnsEgressOnly(fresh, q, dnsTarget(fresh)!), `${ref}: DNS egress`);
      t.same(apiserverReach(after, p), apiserverReach(fresh, q), `${ref}: API server`);
    }
  });
}

// Two specs: web may reach DNS, db the API server; both egress-enforced by it.
const twoSpecs = cnp('a', 'split', {});
(twoSpecs as { specs?: unknown }).specs = [
  { endpointSelector: { matchLabels: { app: 'web' } }, egress: [dnsEgress] },
  { endpointSelector: { matchLabels: { app: 'db' } }, egress: [{ toEntities: ['kube-apiserver'] }] },
];
delete (twoSpecs as { spec?: unknown }).spec;
const swapped = cnp('a', 'split', {});
(swapped as { specs?: unknown }).specs = [
  { endpointSelector: { matchLabels: { app: 'db' } }, egress: [dnsEgress] },
  { endpointSelector: { matchLabels: { app: 'job' } }, egress: [{ toEntities: ['kube-apiserver'] }] },
];
delete (swapped as { spec?: unknown }).spec;
// Selects every pod of a without putting egress into default deny (when the agent honours it).
const nonEnforcing = cnp('a', 'soft', { endpointSelector: {}, enableDefaultDeny: { egress: false }, egress: [{ toEntities: ['kube-apiserver'] }] });
const denyOnly = ccnp('deny-dns-ui', { endpointSelector: { matchLabels: { app: 'ui' } }, egressDeny: [dnsEgress] });
const allEgress = ccnp('all-egress', { endpointSelector: {}, egress: [{ toEntities: ['world'] }] });

for (const ndd of [true, false]) {
  t.test(`enable-non-default-deny-policies=${ndd}`, async (t) => {
    t.test('a policy of two specs: created, updated onto other classes, deleted', async (t) => {
      const objs = objects([], ndd);
      agrees(t, objs, makeChange('CREATE', twoSpecs), applied(objs, twoSpecs));
      const withIt = objects([twoSpecs], ndd);
      agrees(t, withIt, makeChange('UPDATE', swapped, twoSpecs), applied(withIt, swapped));
      agrees(t, withIt, makeChange('DELETE', undefined, twoSpecs), applied(withIt, twoSpecs, true));
    });
    t.test('a policy that selects without enforcing, beside one that enforces', async (t) => {
      const objs = objects([], ndd);
      agrees(t, objs, makeChange('CREATE', nonEnforcing), applied(objs, nonEnforcing));
      const withBoth = objects([nonEnforcing, twoSpecs], ndd);
      // The enforcing one goes: web and db fall back to the non-enforcing one (egress open again with it).
      agrees(t, withBoth, makeChange('DELETE', undefined, twoSpecs), applied(withBoth, twoSpecs, true));
      agrees(t, withBoth, makeChange('DELETE', undefined, nonEnforcing), applied(withBoth, nonEnforcing, true));
      const enforcing = cnp('a', 'soft', { endpointSelector: {}, egress: [{ toEntities: ['kube-apiserver'] }] });
      agrees(t, withBoth, makeChange('UPDATE', enforcing, nonEnforcing), applied(withBoth, enforcing));
    });
    t.test('deny-only policies and a policy enforcing every pod', async (t) => {
      const objs = objects([allEgress], ndd);
      agrees(t, objs, makeChange('CREATE', denyOnly), applied(objs, denyOnly));
      const withDeny = objects([allEgress, denyOnly], ndd);
      agrees(t, withDeny, makeChange('DELETE', undefined, denyOnly), applied(withDeny, denyOnly, true));
      // The only enforcing policy of most classes goes: their egress is open again.
      agrees(t, withDeny, makeChange('DELETE', undefined, allEgress), applied(withDeny, allEgress, true));
    });
  });
}

t.test('classes the change selects are derived, none computed in full; the others come from the base', async (t) => {
  const objs = objects([], true);
  const base = memoryState(objs);
  for (const p of clients(base)) reachesDns(base, p);
  inRequestScope(() => {
    const after = overlay(base, mutationOf(makeChange('CREATE', twoSpecs)));
    const [d0, c0] = [reachDerivations(), reachComputations()];
    for (const p of clients(after)) reachesDns(after, p);
    t.equal(reachDerivations() - d0, 2, 'web and db derived');
    t.equal(reachComputations() - c0, 0, 'nothing computed in full');
  });
});
