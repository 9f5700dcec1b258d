// cilium-cni-exclusive: findings asserted as data (code, params, preexisting); one golden test per code
// for the wording. More cases as fixtures: src/rules/cilium-cni-exclusive/testdata/*.yaml.
import t from 'tap';
import { messages } from '../../src/rules/cilium-cni-exclusive/messages.ts';
import { rule, scope } from '../../src/rules/cilium-cni-exclusive/index.ts';
import { renderFinding } from '../../src/verdict/render.ts';
import { baseCluster, ciliumConfigMap, HEALTHY_CILIUM_CONFIG, ns, pod } from '../fixtures/cluster.ts';
import { makeChange, runRule } from './rule-harness.ts';

const { 'cni-exclusive': _drop, ...DEFAULT_EXCLUSIVE } = HEALTHY_CILIUM_CONFIG; // missing key = agent default (true)
const EXCLUSIVE = { ...HEALTHY_CILIUM_CONFIG, 'cni-exclusive': 'true' };
const cniNode = pod('istio-system', 'istio-cni-node-abcde', { 'k8s-app': 'istio-cni-node' }, { hostNetwork: true });
const ztunnel = pod('istio-system', 'ztunnel-xyz12', { app: 'ztunnel' });
const ambientDemo = ns('demo', { 'istio.io/dataplane-mode': 'ambient' });
const ALL_IN_USE = { cniAgent: true, ztunnel: true, ambientNamespaces: ['demo'] };

t.test('seed 001: turning cni-exclusive on while istio-cni runs is denied', async (t) => {
  const { findings } = runRule(rule, baseCluster([cniNode, ztunnel, ambientDemo]), 'UPDATE', ciliumConfigMap(EXCLUSIVE));
  t.same(findings, [{ rule: 'cilium-cni-exclusive', code: 'cilium-cni-exclusive/config-turns-on', params: ALL_IN_USE }]);
  // Dropping the key returns to the agent default (exclusive): same finding.
  const dflt = runRule(rule, baseCluster([cniNode]), 'UPDATE', ciliumConfigMap(DEFAULT_EXCLUSIVE)).findings;
  t.same(dflt.map((f) => [f.code, f.params]), [['cilium-cni-exclusive/config-turns-on', { cniAgent: true, ztunnel: false, ambientNamespaces: [] }]]);
});

t.test('the fix applied: cni-exclusive "false" is fine', async (t) => {
  t.same(runRule(rule, baseCluster([cniNode, ztunnel, ambientDemo]), 'UPDATE', ciliumConfigMap(HEALTHY_CILIUM_CONFIG)).findings, []);
});

t.test('no istio-cni in use (sidecars through istio-init only): exclusive is fine', async (t) => {
  const sidecarOnly = baseCluster([ns('red', { 'istio-injection': 'enabled' }), pod('red', 'web-1', { app: 'web' }, { sidecar: true })]);
  t.same(runRule(rule, sidecarOnly, 'UPDATE', ciliumConfigMap(EXCLUSIVE)).findings, []);
  // ... and a namespace enabling injection there is not about istio-cni either.
  t.same(runRule(rule, baseCluster([], EXCLUSIVE), 'CREATE', ns('blue', { 'istio-injection': 'enabled' })).findings, []);
});

t.test('the first ambient namespace on an exclusive Cilium is denied', async (t) => {
  const f = runRule(rule, baseCluster([ns('demo')], EXCLUSIVE), 'UPDATE', ambientDemo).findings;
  t.same(f, [
    {
      rule: 'cilium-cni-exclusive',
      code: 'cilium-cni-exclusive/namespace-joins-ambient',
      params: { cniAgent: false, ztunnel: false, ambientNamespaces: ['demo'], namespace: 'demo' },
    },
  ]);
});

t.test('pre-existing: more namespaces joining, or an unrelated config edit, only warn', async (t) => {
  const cluster = baseCluster([cniNode, ambientDemo], EXCLUSIVE);
  const amb = runRule(rule, cluster, 'CREATE', ns('shop', { 'istio.io/dataplane-mode': 'ambient' })).findings;
  t.same(amb.map((f) => [f.code, f.preexisting, f.params?.ambientNamespaces]), [['cilium-cni-exclusive/namespace-joins-ambient', true, ['demo', 'shop']]]);
  const inj = runRule(rule, cluster, 'CREATE', ns('red', { 'istio-injection': 'enabled' })).findings;
  t.same(inj.map((f) => [f.code, f.preexisting, f.params?.namespace]), [['cilium-cni-exclusive/namespace-enables-injection', true, 'red']]);
  const edit = runRule(rule, cluster, 'UPDATE', ciliumConfigMap({ ...EXCLUSIVE, debug: 'true' })).findings;
  t.same(edit.map((f) => [f.code, f.preexisting]), [['cilium-cni-exclusive/config-keeps-on', true]]);
});

t.test('unrelated namespaces, other ConfigMaps and kube-system labels are ignored', async (t) => {
  const cluster = baseCluster([cniNode], EXCLUSIVE);
  t.same(runRule(rule, cluster, 'CREATE', ns('green')).findings, []);
  t.same(runRule(rule, cluster, 'UPDATE', ns('kube-system', { 'istio.io/dataplane-mode': 'ambient' }), { oldObject: ns('kube-system') }).findings, []);
  const other = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'coredns', namespace: 'kube-system' }, data: {} };
  t.same(runRule(rule, cluster, 'UPDATE', other).findings, []);
});

t.test('no cilium-config in the state: not a Cilium cluster, nothing to say', async (t) => {
  const objs = baseCluster([cniNode]).filter((o) => !(o.kind === 'ConfigMap' && o.metadata.name === 'cilium-config'));
  t.same(runRule(rule, objs, 'UPDATE', ambientDemo, { oldObject: ns('demo') }).findings, []);
});

t.test('scope: from the request alone', async (t) => {
  t.same(scope(makeChange('UPDATE', ciliumConfigMap(EXCLUSIVE))), { by: 'cilium-config' });
  t.same(scope(makeChange('CREATE', ambientDemo)), { by: 'ambient-namespace', namespace: 'demo' });
  t.same(scope(makeChange('CREATE', ns('red', { 'istio-injection': 'enabled' }))), { by: 'injection-namespace', namespace: 'red' });
  // Already ambient before the request: nothing new is enrolled.
  t.equal(scope(makeChange('UPDATE', ambientDemo, ambientDemo)), undefined);
  t.equal(scope(makeChange('CREATE', ns('green'))), undefined);
});

// Golden wording, one per code: the text users read in kubectl, check and audit (unchanged by the move to codes).
t.test('wording', async (t) => {
  const text = (kind: Parameters<typeof messages.finding>[0], p: Parameters<typeof messages.finding>[1]) =>
    renderFinding(messages.finding(kind, p), rule.messages);
  const fix = 'set cni-exclusive: "false" in kube-system/cilium-config (Helm cni.exclusive=false) and restart the Cilium agents';
  const tail =
    ": Cilium removes other CNI configurations, so Istio's CNI plugin (in use: istio-cni-node pods, ztunnel pods, ambient namespaces a, b, c and 2 more) " +
    'is repeatedly deleted; istio-cni never gets ready and new pods miss mesh redirection';
  const usage = { cniAgent: true, ztunnel: true, ambientNamespaces: ['a', 'b', 'c', 'd', 'e'] };
  t.same(text('config-turns-on', usage), { message: `cilium-config turns cni-exclusive on${tail}`, fix });
  t.same(text('config-keeps-on', usage), { message: `cilium-config keeps cni-exclusive on${tail}`, fix });
  t.same(text('namespace-joins-ambient', { ...usage, namespace: 'demo' }), {
    message: `namespace demo joins ambient (needs istio-cni) while cni-exclusive is on${tail}`,
    fix,
  });
  t.same(text('namespace-enables-injection', { ...usage, namespace: 'red' }), {
    message: `namespace red enables injection (istio-cni mode) while cni-exclusive is on${tail}`,
    fix,
  });
  t.same(messages.codes.length, 4, 'one golden test per code');
});
