import t from 'tap';
import { rule } from '../../src/rules/cilium-cni-exclusive.ts';
import { baseCluster, ciliumConfigMap, HEALTHY_CILIUM_CONFIG, ns, pod } from '../fixtures/cluster.ts';
import { runRule } from './rule-harness.ts';

const { 'cni-exclusive': _drop, ...DEFAULT_EXCLUSIVE } = HEALTHY_CILIUM_CONFIG; // missing key = agent default (true)
const EXCLUSIVE = { ...HEALTHY_CILIUM_CONFIG, 'cni-exclusive': 'true' };
const cniNode = pod('istio-system', 'istio-cni-node-abcde', { 'k8s-app': 'istio-cni-node' }, { hostNetwork: true });
const ztunnel = pod('istio-system', 'ztunnel-xyz12', { app: 'ztunnel' });
const ambientDemo = ns('demo', { 'istio.io/dataplane-mode': 'ambient' });

t.test('seed 001: turning cni-exclusive on while istio-cni runs is denied', async (t) => {
  const { findings } = runRule(rule, baseCluster([cniNode, ztunnel, ambientDemo]), 'UPDATE', ciliumConfigMap(EXCLUSIVE));
  t.equal(findings.length, 1);
  const f = findings[0]!;
  t.equal(f.rule, 'cilium-cni-exclusive');
  t.notOk(f.preexisting);
  t.match(f.message, /cilium-config turns cni-exclusive on/);
  t.match(f.message, /istio-cni-node pods, ztunnel pods, ambient namespaces demo/);
  t.match(f.fix, /cni-exclusive: "false"/);
  // Dropping the key returns to the agent default (exclusive): same finding.
  t.equal(runRule(rule, baseCluster([cniNode]), 'UPDATE', ciliumConfigMap(DEFAULT_EXCLUSIVE)).findings.length, 1);
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
  t.equal(f.length, 1);
  t.notOk(f[0]!.preexisting);
  t.match(f[0]!.message, /^namespace demo joins ambient \(needs istio-cni\) while cni-exclusive is on/);
});

t.test('pre-existing: more namespaces joining, or an unrelated config edit, only warn', async (t) => {
  const cluster = baseCluster([cniNode, ambientDemo], EXCLUSIVE);
  const amb = runRule(rule, cluster, 'CREATE', ns('shop', { 'istio.io/dataplane-mode': 'ambient' })).findings;
  t.equal(amb.length, 1);
  t.equal(amb[0]!.preexisting, true);
  const inj = runRule(rule, cluster, 'CREATE', ns('red', { 'istio-injection': 'enabled' })).findings;
  t.equal(inj.length, 1);
  t.equal(inj[0]!.preexisting, true);
  const edit = runRule(rule, cluster, 'UPDATE', ciliumConfigMap({ ...EXCLUSIVE, debug: 'true' })).findings;
  t.equal(edit.length, 1);
  t.equal(edit[0]!.preexisting, true);
  t.match(edit[0]!.message, /keeps cni-exclusive on/);
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
