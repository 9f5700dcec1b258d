import t from 'tap';
import { rule } from '../../src/rules/cilium-socketlb-hostns.ts';
import { baseCluster, ciliumConfigMap, HEALTHY_CILIUM_CONFIG, ns } from '../fixtures/cluster.ts';
import { runRule } from './rule-harness.ts';

const { 'bpf-lb-sock-hostns-only': _hostnsOnly, ...WITHOUT_HOSTNS_ONLY } = HEALTHY_CILIUM_CONFIG;
// baseCluster has istiod (Deployment + pod) and a healthy cilium-config (KPR + hostns-only).
const withoutIstio = (cilium: Record<string, string> = HEALTHY_CILIUM_CONFIG) =>
  baseCluster([], cilium).filter((o) => !(o.metadata.namespace === 'istio-system' && (o.kind === 'Deployment' || o.kind === 'Pod')));
const istiod = {
  apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'istiod', namespace: 'istio-system', labels: { app: 'istiod' } },
  spec: { selector: { matchLabels: { app: 'istiod' } }, template: { metadata: { labels: { app: 'istiod' } }, spec: { containers: [{ name: 'discovery' }] } } },
};

t.test('seed 001: dropping bpf-lb-sock-hostns-only under kube-proxy replacement while Istio runs is denied', async (t) => {
  const { findings } = runRule(rule, baseCluster(), 'UPDATE', ciliumConfigMap(WITHOUT_HOSTNS_ONLY));
  t.equal(findings.length, 1);
  const f = findings[0]!;
  t.equal(f.rule, 'cilium-socketlb-hostns');
  t.notOk(f.preexisting);
  t.match(f.message, /cilium-config turns on socket LB in pod namespaces \(kube-proxy-replacement without bpf-lb-sock-hostns-only: "true"\)/);
  t.match(f.message, /istio-system\/istiod/);
  t.match(f.fix, /bpf-lb-sock-hostns-only: "true"/);
  // An explicit "false" is the same.
  t.equal(runRule(rule, baseCluster(), 'UPDATE', ciliumConfigMap({ ...HEALTHY_CILIUM_CONFIG, 'bpf-lb-sock-hostns-only': 'false' })).findings.length, 1);
});

t.test('the fix applied: hostns-only "true" is fine', async (t) => {
  t.same(runRule(rule, baseCluster(), 'UPDATE', ciliumConfigMap(HEALTHY_CILIUM_CONFIG)).findings, []);
});

t.test('bpf-lb-sock without kube-proxy replacement also counts; no socket LB at all is fine', async (t) => {
  const sock = { ...WITHOUT_HOSTNS_ONLY, 'kube-proxy-replacement': 'false', 'bpf-lb-sock': 'true' };
  const f = runRule(rule, baseCluster(), 'UPDATE', ciliumConfigMap(sock)).findings;
  t.equal(f.length, 1);
  t.match(f[0]!.message, /\(bpf-lb-sock without/);
  const noSock = { ...WITHOUT_HOSTNS_ONLY, 'kube-proxy-replacement': 'false', 'bpf-lb-sock': 'false' };
  t.same(runRule(rule, baseCluster(), 'UPDATE', ciliumConfigMap(noSock)).findings, []);
});

t.test('no Istio in the cluster: socket LB everywhere is fine', async (t) => {
  t.same(runRule(rule, withoutIstio(), 'UPDATE', ciliumConfigMap(WITHOUT_HOSTNS_ONLY)).findings, []);
});

t.test('installing istiod on a cluster with pod-namespace socket LB is denied', async (t) => {
  const f = runRule(rule, withoutIstio(WITHOUT_HOSTNS_ONLY), 'CREATE', istiod).findings;
  t.equal(f.length, 1);
  t.notOk(f[0]!.preexisting);
  t.match(f[0]!.message, /^istiod istio-system\/istiod is installed with socket LB/);
  t.same(runRule(rule, withoutIstio(), 'CREATE', istiod).findings, []);
  // Other Deployments are not Istio.
  const other = { ...istiod, metadata: { name: 'web', namespace: 'shop', labels: { app: 'web' } } };
  t.same(runRule(rule, withoutIstio(WITHOUT_HOSTNS_ONLY), 'CREATE', other).findings, []);
});

t.test('pre-existing: an unrelated cilium-config edit, or a namespace joining the mesh, only warns', async (t) => {
  const cluster = baseCluster([], WITHOUT_HOSTNS_ONLY);
  const edit = runRule(rule, cluster, 'UPDATE', ciliumConfigMap({ ...WITHOUT_HOSTNS_ONLY, debug: 'true' })).findings;
  t.equal(edit.length, 1);
  t.equal(edit[0]!.preexisting, true);
  t.match(edit[0]!.message, /^cilium-config keeps socket LB/);
  const joins = runRule(rule, cluster, 'CREATE', ns('red', { 'istio-injection': 'enabled' })).findings;
  t.equal(joins.length, 1);
  t.equal(joins[0]!.preexisting, true);
  t.equal(runRule(rule, cluster, 'UPDATE', ns('demo', { 'istio.io/dataplane-mode': 'ambient' }), { oldObject: ns('demo') }).findings.length, 1);
  // A namespace that does not join the mesh is not reported.
  t.same(runRule(rule, cluster, 'CREATE', ns('green')).findings, []);
});

t.test('other ConfigMaps are ignored; odd values fall back to the agent defaults', async (t) => {
  const other = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'istio', namespace: 'istio-system' }, data: {} };
  t.same(runRule(rule, baseCluster([], WITHOUT_HOSTNS_ONLY), 'UPDATE', other).findings, []);
  // A value the agent cannot parse leaves the default (off): reported.
  t.equal(runRule(rule, baseCluster(), 'UPDATE', ciliumConfigMap({ ...HEALTHY_CILIUM_CONFIG, 'bpf-lb-sock-hostns-only': 'yes please' })).findings.length, 1);
});
