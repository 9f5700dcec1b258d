// A Namespace update that changes only labels nothing reads is answered without running the rules;
// one that changes a label some selector or mesh setting reads is evaluated in full.

import t from 'tap';

import { defaultConfig, type Config } from '../../src/config/config.ts';
import { changedLabelKeys, namespaceLabelMatters, namespaceLabelReadByL7, namespaceLabelReadByPeers, namespaceLabelReadFor } from '../../src/policy/namespace-labels.ts';
import { touchedPods } from '../../src/impact/index.ts';
import { allRules } from '../../src/rules/registry.ts';
import type { Rule } from '../../src/core/rule.ts';
import { mutationOf } from '../../src/core/change.ts';
import { overlay } from '../../src/state/overlay.ts';
import { loadSnapshot } from '../../src/state/snapshot.ts';
import type { ClusterState, Namespace } from '../../src/core/objects.ts';
import { createDecide } from '../../src/verdict/decide.ts';
import { baseCluster, ccnp, cnp, memoryState, netpol, ns, pod } from '../fixtures/cluster.ts';
import { makeChange } from '../rules/rule-harness.ts';

const EXAMPLES = new URL('../../examples/cluster', import.meta.url).pathname;

function spyRule(): { rule: Rule; calls: () => number } {
  let n = 0;
  return {
    rule: {
      id: 'fake-namespace-spy',
      severity: 'B',
      summary: 'counts calls',
      docs: 'docs/rules/fake-namespace-spy.md',
      triggers: [{ kinds: ['Namespace'], operations: ['UPDATE'] }],
      evaluate() {
        n++;
        return [];
      },
    },
    calls: () => n,
  };
}

const webhook = {
  apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', metadata: { name: 'injector' },
  webhooks: [{ name: 'sidecar.example.io', clientConfig: { service: { name: 'injector', namespace: 'tools' } }, namespaceSelector: { matchExpressions: [{ key: 'inject-me', operator: 'Exists' }] } }],
};
const state = memoryState(baseCluster([
  ns('team-a', { team: 'a' }),
  ccnp('by-team', { endpointSelector: { matchLabels: { 'io.cilium.k8s.namespace.labels.team': 'a' } }, egress: [{ toEntities: ['world'] }] }),
  cnp('team-a', 'from-owner', { endpointSelector: {}, ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.cilium.k8s.namespace.labels.owner': 'x' } }] }] }),
  netpol('team-a', 'from-prod', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { env: 'prod' } } }] }] }),
  webhook,
]));

function update(labels: Record<string, string>, annotations?: Record<string, string>) {
  const old = ns('team-a', { team: 'a' });
  const updated = ns('team-a', { team: 'a', ...labels });
  if (annotations) (updated.metadata as Record<string, unknown>)['annotations'] = annotations;
  return makeChange('UPDATE', updated, old);
}

function config(rules: readonly Rule[], over: Partial<Config['settings']> = {}): Config {
  const c = defaultConfig(rules);
  return { ...c, settings: { ...c.settings, ...over } };
}

t.test('labels no selector reads: the rules do not run and the request is allowed', async (t) => {
  for (const [what, change] of [
    ['a new unrelated label', update({ 'cost-center': 'cc-1' })],
    ['an annotation only', update({}, { note: 'hello' })],
  ] as const) {
    const spy = spyRule();
    const d = createDecide([spy.rule], config([spy.rule]))(change, state);
    t.equal(spy.calls(), 0, `${what}: no rule ran`);
    t.equal(d.allowed, true);
    t.match(d.exemptReason, /no changed Namespace label is read/);
  }
});

t.test('labels something reads: the rules run', async (t) => {
  const cases: [string, Record<string, string>][] = [
    ['CCNP subject selector on a namespace label', { team: 'b' }],
    ['CNP peer with a source-prefixed namespace label', { owner: 'x' }],
    ['NetworkPolicy namespaceSelector', { env: 'prod' }],
    ['webhook namespaceSelector', { 'inject-me': 'yes' }],
    ['Istio dataplane mode', { 'istio.io/dataplane-mode': 'ambient' }],
    ['an Istio label meshguard does not know', { 'istio.io/some-future-label': 'x' }],
  ];
  for (const [what, labels] of cases) {
    const spy = spyRule();
    createDecide([spy.rule], config([spy.rule]))(update(labels), state);
    t.equal(spy.calls(), 1, what);
  }
  // A label removed counts as changed too.
  const spy = spyRule();
  createDecide([spy.rule], config([spy.rule]))(makeChange('UPDATE', ns('team-a'), ns('team-a', { team: 'a' })), state);
  t.equal(spy.calls(), 1, 'removing a read label');
});

t.test('selectors from the config count (apiserverClients)', async (t) => {
  const spy = spyRule();
  const withClient = config([spy.rule], { apiserverClients: [{ selector: { matchLabels: { 'io.cilium.k8s.namespace.labels.tier': 'ops' } } }] });
  createDecide([spy.rule], config([spy.rule]))(update({ tier: 'ops' }), state);
  t.equal(spy.calls(), 0, 'not read without the client selector');
  createDecide([spy.rule], withClient)(update({ tier: 'ops' }), state);
  t.equal(spy.calls(), 1, 'read through the client selector');
});

t.test('a namespace move that breaks DNS is still caught', async (t) => {
  const s = memoryState(baseCluster([
    ns('shop'),
    pod('shop', 'web-1', { app: 'web' }),
    ccnp('payments-egress', { endpointSelector: { matchLabels: { 'io.cilium.k8s.namespace.labels.team': 'payments' } }, egress: [{ toEndpoints: [{ matchLabels: { app: 'db' } }] }] }),
  ]));
  const decide = createDecide(allRules(), defaultConfig(allRules()));
  const moved = decide(makeChange('UPDATE', ns('shop', { team: 'payments' }), ns('shop')), s);
  t.equal(moved.allowed, false);
  t.ok(moved.findings.some((f) => f.rule === 'dns-egress-missing' && f.action === 'deny'));
  const unrelated = decide(makeChange('UPDATE', ns('shop', { owner: 'payments' }), ns('shop')), s);
  t.equal(unrelated.allowed, true);
  t.same(unrelated.findings, []);
});

// The shortcut's premise, checked against the real rules: where a label is unread, evaluating every
// rule anyway finds nothing new for any namespace of the example cluster.
t.test('every rule agrees that an unread label changes nothing (example cluster)', async (t) => {
  const s: ClusterState = loadSnapshot([EXAMPLES]);
  const rules = allRules().filter((r) => r.triggers.some((tr) => tr.kinds.includes('Namespace')));
  t.ok(rules.length >= 10);
  let checked = 0;
  for (const n of s.list('Namespace') as readonly Namespace[]) {
    const old = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: n.metadata.name, labels: { ...(n.metadata.labels ?? {}) } } };
    const updated = { ...old, metadata: { ...old.metadata, labels: { ...old.metadata.labels, 'example.com/owner': 'someone' } } };
    t.notOk(namespaceLabelMatters(s, 'example.com/owner'), 'the label is unread');
    const change = makeChange('UPDATE', updated, old);
    const after = overlay(s, mutationOf(change));
    for (const rule of rules) {
      const fresh = rule.evaluate(change, s, after, { settings: defaultConfig(allRules()).settings }).filter((f) => !f.preexisting);
      t.same(fresh, [], `${rule.id} on ${n.metadata.name}`);
      checked++;
    }
  }
  t.ok(checked > 50);
});

t.test('changedLabelKeys', async (t) => {
  t.same(changedLabelKeys({ a: '1', b: '2', c: '3' }, { a: '1', b: '9', d: '4' }).sort(), ['b', 'c', 'd']);
  t.same(changedLabelKeys(undefined, undefined), []);
  t.same(changedLabelKeys({ a: '1' }, undefined), ['a']);
});

t.test('namespaceLabelReadByPeers: keys in peer sections only, not subject selectors', async (t) => {
  t.notOk(namespaceLabelReadByPeers(state, 'team'), 'team is read by a CCNP subject selector only');
  t.ok(namespaceLabelReadByPeers(state, 'owner'), 'a CNP fromEndpoints peer (source-prefixed key)');
  t.ok(namespaceLabelReadByPeers(state, 'env'), 'a NetworkPolicy namespaceSelector');
  t.notOk(namespaceLabelReadByPeers(state, 'inject-me'), 'webhook selectors decide injection, not peers');
  t.notOk(namespaceLabelReadByPeers(state, 'cost-center'));
});

t.test('namespaceLabelReadFor: per direction, a key counts when a policy acting on it or any peer reads it', async (t) => {
  t.ok(namespaceLabelReadFor(state, 'team', 'egress'), 'the CCNP with egress rules selects by team');
  t.notOk(namespaceLabelReadFor(state, 'team', 'ingress'), 'no ingress policy and no peer reads team');
  for (const d of ['ingress', 'egress'] as const) {
    t.ok(namespaceLabelReadFor(state, 'owner', d), `${d}: a CNP peer reads owner (the pods' peers may stop admitting them)`);
    t.ok(namespaceLabelReadFor(state, 'env', d), `${d}: a NetworkPolicy namespaceSelector`);
    t.ok(namespaceLabelReadFor(state, 'inject-me', d), `${d}: injection changes mesh membership`);
    t.ok(namespaceLabelReadFor(state, 'istio.io/dataplane-mode', d), `${d}: mesh label`);
    t.notOk(namespaceLabelReadFor(state, 'cost-center', d), `${d}: unread`);
  }
  // enableDefaultDeny alone does not act on a direction: the agent applies it per rule element
  // (RulesToPolicyEntries), so an ingress-only CCNP never enforces egress; `egress: [{}]` does.
  const edd = memoryState(baseCluster([
    ccnp('edd', { endpointSelector: { matchLabels: { 'io.cilium.k8s.namespace.labels.zone': 'z' } }, ingress: [{ fromEntities: ['cluster'] }], enableDefaultDeny: { egress: true } }),
    ccnp('braces', { endpointSelector: { matchLabels: { 'io.cilium.k8s.namespace.labels.region': 'r' } }, ingress: [{ fromEntities: ['cluster'] }], egress: [{}] }),
    ccnp('ingress-only', { endpointSelector: { matchLabels: { 'io.cilium.k8s.namespace.labels.tier': 'x' } }, ingress: [{ fromEntities: ['cluster'] }] }),
  ]));
  t.notOk(namespaceLabelReadFor(edd, 'zone', 'egress'), 'enableDefaultDeny.egress without an egress element');
  t.ok(namespaceLabelReadFor(edd, 'region', 'egress'), 'egress: [{}] enforces egress');
  t.ok(namespaceLabelReadFor(edd, 'zone', 'ingress'), 'and its ingress rules');
  t.notOk(namespaceLabelReadFor(edd, 'tier', 'egress'), 'an ingress-only policy does not act on egress');
  t.ok(namespaceLabelReadFor(edd, 'tier', 'ingress'));
});

t.test('namespaceLabelReadByL7: only Cilium policies with L7 rules, injection and mesh keys', async (t) => {
  const l7 = memoryState(baseCluster([
    ns('team-a', { team: 'a' }),
    ccnp('l4-by-team', { endpointSelector: { matchLabels: { 'io.cilium.k8s.namespace.labels.team': 'a' } }, ingress: [{ toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }] }] }),
    cnp('team-a', 'l7-from-owner', {
      endpointSelector: {},
      ingress: [{ fromEndpoints: [{ matchLabels: { 'io.cilium.k8s.namespace.labels.owner': 'x' } }], toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{ method: 'GET' }] } }] }],
    }),
    webhook,
  ]));
  t.notOk(namespaceLabelReadByL7(l7, 'team'), 'read by an L4 policy only');
  t.ok(namespaceLabelReadByL7(l7, 'owner'), 'read by the peer of an L7 rule');
  t.ok(namespaceLabelReadByL7(l7, 'inject-me'), 'injection');
  t.ok(namespaceLabelReadByL7(l7, 'istio-injection'), 'mesh label');
  t.notOk(namespaceLabelReadByL7(l7, 'cost-center'));
});

t.test('touchedPods: a relabel only ingress policies read touches no pods for egress rules', async (t) => {
  const s = memoryState(baseCluster([
    ns('shop', { env: 'prod' }),
    pod('shop', 'web-1', { app: 'web' }),
    ccnp('prod-scrape', { endpointSelector: { matchLabels: { 'io.cilium.k8s.namespace.labels.env': 'prod' } }, ingress: [{ fromEntities: ['cluster'] }] }),
  ]));
  const change = makeChange('UPDATE', ns('shop', { env: 'dev' }), ns('shop', { env: 'prod' }));
  const after = overlay(s, mutationOf(change));
  t.same(touchedPods(change, s, after, { direction: 'egress' }).pods, [], 'egress: nothing can change');
  t.same(touchedPods(change, s, after, { direction: 'ingress' }).pods.map((p) => p.metadata.name), ['web-1'], 'ingress: the pods');
  t.same(touchedPods(change, s, after).pods.map((p) => p.metadata.name), ['web-1'], 'no direction: the pods');
});

t.test('a relabel that makes CoreDNS stop admitting the namespace is still caught', async (t) => {
  // The relabelled key is read only by CoreDNS's ingress policy (a peer): the pods' egress is unchanged,
  // yet their DNS is gone.
  const s = memoryState(baseCluster([
    ns('shop', { env: 'prod' }),
    pod('shop', 'web-1', { app: 'web' }),
    cnp('shop', 'egress', { endpointSelector: {}, egress: [{ toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s-app': 'kube-dns' } }], toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }] }] }] }),
    cnp('kube-system', 'coredns-ingress', {
      endpointSelector: { matchLabels: { 'k8s-app': 'kube-dns' } },
      ingress: [{ fromEndpoints: [{ matchLabels: { 'io.cilium.k8s.namespace.labels.env': 'prod' } }], toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }] }] }],
    }),
  ]));
  const decide = createDecide(allRules(), defaultConfig(allRules()));
  const d = decide(makeChange('UPDATE', ns('shop', { env: 'dev' }), ns('shop', { env: 'prod' })), s);
  t.ok(d.findings.some((f) => f.rule === 'dns-egress-missing' && f.action === 'deny' && f.victims?.includes('shop/web-1')), 'DNS loss found');
});
