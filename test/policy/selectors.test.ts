import t from 'tap';
import fc from 'fast-check';
import { endpointLabels, matchesSelector, normalizeKey, reservedLabels, indexablePair, identityLabelKept } from '../../src/policy/selectors.ts';
import type { LabelSelector } from '../../src/core/objects.ts';
import { baseCluster, findPod, memoryState, ns, pod } from '../fixtures/cluster.ts';

t.test('endpointLabels adds namespace, service account, cluster and namespace labels', async (t) => {
  const s = memoryState(baseCluster([ns('shop', { team: 'blue' }), pod('shop', 'web', { app: 'web' }, { sa: 'web-sa' })]));
  const l = endpointLabels(s, findPod(s, 'shop/web'));
  t.equal(l.app, 'web');
  t.equal(l['io.kubernetes.pod.namespace'], 'shop');
  t.equal(l['io.cilium.k8s.policy.serviceaccount'], 'web-sa');
  t.equal(l['io.cilium.k8s.namespace.labels.team'], 'blue');
  t.equal(l['io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name'], 'shop');
  t.equal(l['io.cilium.k8s.policy.cluster'], 'default');
  // cache follows a Namespace relabel
  s.upsert('Namespace', ns('shop', { team: 'red' }) as never);
  t.equal(endpointLabels(s, findPod(s, 'shop/web'))['io.cilium.k8s.namespace.labels.team'], 'red');
});

t.test('endpointLabels: default service account and missing Namespace object', async (t) => {
  const s = memoryState([pod('ghost', 'p', {}, {})]);
  const l = endpointLabels(s, findPod(s, 'ghost/p'));
  t.equal(l['io.cilium.k8s.policy.serviceaccount'], 'default');
  t.equal(l['io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name'], 'ghost');
});

t.test('matchesSelector: matchLabels, expressions, prefixes, reserved', async (t) => {
  const labels = { app: 'web', tier: 'fe', 'io.kubernetes.pod.namespace': 'shop' };
  t.ok(matchesSelector({}, labels), '{} selects all');
  t.notOk(matchesSelector(undefined, labels), 'undefined selects none');
  t.ok(matchesSelector({ matchLabels: { app: 'web' } }, labels));
  t.ok(matchesSelector({ matchLabels: { 'k8s:app': 'web', 'any:tier': 'fe' } }, labels));
  t.ok(matchesSelector({ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'shop' } }, labels));
  t.notOk(matchesSelector({ matchLabels: { app: 'db' } }, labels));
  t.notOk(matchesSelector({ matchLabels: { 'reserved:host': '' } }, labels), 'reserved key never matches a pod');
  t.ok(matchesSelector({ matchLabels: { 'reserved:host': '' } }, reservedLabels('host')));
  t.notOk(matchesSelector({ matchLabels: { app: 'web' } }, reservedLabels('host')));
  t.ok(matchesSelector({ matchExpressions: [{ key: 'app', operator: 'In', values: ['db', 'web'] }] }, labels));
  t.notOk(matchesSelector({ matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['web'] }] }, labels));
  t.ok(matchesSelector({ matchExpressions: [{ key: 'missing', operator: 'NotIn', values: ['x'] }] }, labels), 'NotIn: missing key matches');
  t.ok(matchesSelector({ matchExpressions: [{ key: 'k8s:tier', operator: 'Exists' }] }, labels));
  t.ok(matchesSelector({ matchExpressions: [{ key: 'x', operator: 'DoesNotExist' }] }, labels));
  t.notOk(matchesSelector({ matchExpressions: [{ key: 'app', operator: 'Bogus' }] }, labels), 'unknown operator selects nothing');
  t.notOk(matchesSelector({ matchLabels: { app: 'web' }, matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] }, labels), 'AND');
});

t.test('normalizeKey and indexablePair', async (t) => {
  t.equal(normalizeKey('k8s:app'), 'app');
  t.equal(normalizeKey('any:app'), 'app');
  t.equal(normalizeKey('reserved:host'), 'reserved:host');
  t.equal(normalizeKey('app'), 'app');
  t.same(indexablePair({ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'x', 'k8s:app': 'a' } }), { key: 'app', value: 'a' });
  t.equal(indexablePair({ matchExpressions: [{ key: 'a', operator: 'Exists' }] }), undefined);
  t.same(indexablePair({ matchExpressions: [{ key: 'a', operator: 'In', values: ['v'] }] }), { key: 'a', value: 'v' });
});

// ---------- properties ----------

const key = fc.constantFrom('app', 'tier', 'env', 'team', 'zone');
const value = fc.constantFrom('a', 'b', 'c', '');
const labelsArb = fc.dictionary(key, value, { maxKeys: 5 });
const reqArb = fc.record({
  key,
  operator: fc.constantFrom('In', 'NotIn', 'Exists', 'DoesNotExist'),
  values: fc.array(value, { maxLength: 3 }),
});
const selArb: fc.Arbitrary<LabelSelector> = fc.record(
  { matchLabels: fc.dictionary(key, value, { maxKeys: 3 }), matchExpressions: fc.array(reqArb, { maxLength: 3 }) },
  { requiredKeys: [] },
);

/** Independent reference: a selector is the conjunction of its requirements. */
function reference(sel: LabelSelector, labels: Record<string, string>): boolean {
  const reqs = [
    ...Object.entries(sel.matchLabels ?? {}).map(([k, v]) => ({ key: k, operator: 'In', values: [v] })),
    ...(sel.matchExpressions ?? []),
  ];
  return reqs.every((r) => {
    const v = labels[r.key];
    if (r.operator === 'Exists') return v !== undefined;
    if (r.operator === 'DoesNotExist') return v === undefined;
    if (r.operator === 'In') return v !== undefined && (r.values ?? []).includes(v);
    return v === undefined || !(r.values ?? []).includes(v);
  });
}

t.test('property: matchesSelector agrees with the requirement-conjunction reference', async (t) => {
  fc.assert(fc.property(selArb, labelsArb, (sel, labels) => matchesSelector(sel, labels) === reference(sel, labels)), { numRuns: 2000 });
  t.pass();
});

t.test('property: source prefixes k8s:/any: do not change the result; reserved: never matches pod labels', async (t) => {
  fc.assert(
    fc.property(selArb, labelsArb, fc.constantFrom('k8s:', 'any:'), (sel, labels, prefix) => {
      const prefixed: LabelSelector = {
        matchLabels: Object.fromEntries(Object.entries(sel.matchLabels ?? {}).map(([k, v]) => [prefix + k, v])),
        matchExpressions: (sel.matchExpressions ?? []).map((r) => ({ ...r, key: prefix + r.key })),
      };
      return matchesSelector(prefixed, labels) === matchesSelector(sel, labels);
    }),
    { numRuns: 1000 },
  );
  fc.assert(
    fc.property(labelsArb, key, (labels, k) => !matchesSelector({ matchLabels: { ['reserved:' + k]: labels[k] ?? '' } }, labels)),
  );
  t.pass();
});

t.test('property: adding labels never un-matches a selector without negative requirements', async (t) => {
  const positive = selArb.map((s) => ({ ...s, matchExpressions: (s.matchExpressions ?? []).filter((r) => r.operator === 'In' || r.operator === 'Exists') }));
  fc.assert(
    fc.property(positive, labelsArb, labelsArb, (sel, a, extra) => {
      if (!matchesSelector(sel, a)) return true;
      return matchesSelector(sel, { ...extra, ...a });
    }),
  );
  t.pass();
});

t.test("identityLabelKept: the agent's default identity-label filter", async (t) => {
  // pkg/labelsfilter defaultLabelPrefixCfg: a label is dropped when an ignore prefix matches it and no
  // include prefix matches a longer part of it.
  for (const [key, kept] of [
    ['app', true],
    ['k8s-app', true],
    ['app.kubernetes.io/name', true],
    ['io.kubernetes.pod.namespace', true],
    ['io.cilium.k8s.policy.serviceaccount', true],
    ['io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name', true],
    ['io.cilium.k8s.namespace.labels.team', true],
    ['io.cilium.k8s.namespace.labels.beta.kubernetes.io/arch', false],
    ['pod-template-hash', false],
    ['controller-revision-hash', false],
    ['statefulset.kubernetes.io/pod-name', false],
    ['kubernetes.io/role', false],
    ['node.beta.kubernetes.io/instance-type', false],
    ['topology.kubernetes.io/zone', false],
    ['io.kubernetes.container.name', false],
    ['annotation.foo', false],
  ] as const) {
    t.equal(identityLabelKept(key), kept, key);
  }
});
