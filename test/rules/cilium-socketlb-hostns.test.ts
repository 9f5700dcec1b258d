// cilium-socketlb-hostns: findings asserted as data (code, params, preexisting); one golden test per code
// for the wording. More cases as fixtures: src/rules/cilium-socketlb-hostns/testdata/*.yaml.
import t from 'tap';
import { messages } from '../../src/rules/cilium-socketlb-hostns/messages.ts';
import { rule, scope } from '../../src/rules/cilium-socketlb-hostns/index.ts';
import { renderFinding } from '../../src/verdict/render.ts';
import { baseCluster, ciliumConfigMap, HEALTHY_CILIUM_CONFIG, ns } from '../fixtures/cluster.ts';
import { makeChange, runRule } from './rule-harness.ts';

const { 'bpf-lb-sock-hostns-only': _hostnsOnly, ...WITHOUT_HOSTNS_ONLY } = HEALTHY_CILIUM_CONFIG;
// baseCluster has istiod (Deployment + pod) and a healthy cilium-config (KPR + hostns-only).
const withoutIstio = (cilium: Record<string, string> = HEALTHY_CILIUM_CONFIG) =>
  baseCluster([], cilium).filter((o) => !(o.metadata.namespace === 'istio-system' && (o.kind === 'Deployment' || o.kind === 'Pod')));
const istiod = {
  apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'istiod', namespace: 'istio-system', labels: { app: 'istiod' } },
  spec: { selector: { matchLabels: { app: 'istiod' } }, template: { metadata: { labels: { app: 'istiod' } }, spec: { containers: [{ name: 'discovery' }] } } },
};
const KPR = { source: 'kube-proxy-replacement', istiod: 'istio-system/istiod' };

t.test('seed 001: dropping bpf-lb-sock-hostns-only under kube-proxy replacement while Istio runs is denied', async (t) => {
  const { findings } = runRule(rule, baseCluster(), 'UPDATE', ciliumConfigMap(WITHOUT_HOSTNS_ONLY));
  t.same(findings, [{ rule: 'cilium-socketlb-hostns', code: 'cilium-socketlb-hostns/config-turns-on', params: KPR }]);
  // An explicit "false" is the same.
  const explicit = runRule(rule, baseCluster(), 'UPDATE', ciliumConfigMap({ ...HEALTHY_CILIUM_CONFIG, 'bpf-lb-sock-hostns-only': 'false' })).findings;
  t.same(explicit.map((f) => f.code), ['cilium-socketlb-hostns/config-turns-on']);
});

t.test('the fix applied: hostns-only "true" is fine', async (t) => {
  t.same(runRule(rule, baseCluster(), 'UPDATE', ciliumConfigMap(HEALTHY_CILIUM_CONFIG)).findings, []);
});

t.test('bpf-lb-sock without kube-proxy replacement also counts; no socket LB at all is fine', async (t) => {
  const sock = { ...WITHOUT_HOSTNS_ONLY, 'kube-proxy-replacement': 'false', 'bpf-lb-sock': 'true' };
  const f = runRule(rule, baseCluster(), 'UPDATE', ciliumConfigMap(sock)).findings;
  t.same(f.map((x) => [x.code, x.params?.source]), [['cilium-socketlb-hostns/config-turns-on', 'bpf-lb-sock']]);
  const noSock = { ...WITHOUT_HOSTNS_ONLY, 'kube-proxy-replacement': 'false', 'bpf-lb-sock': 'false' };
  t.same(runRule(rule, baseCluster(), 'UPDATE', ciliumConfigMap(noSock)).findings, []);
});

t.test('no Istio in the cluster: socket LB everywhere is fine', async (t) => {
  t.same(runRule(rule, withoutIstio(), 'UPDATE', ciliumConfigMap(WITHOUT_HOSTNS_ONLY)).findings, []);
});

t.test('installing istiod on a cluster with pod-namespace socket LB is denied', async (t) => {
  const f = runRule(rule, withoutIstio(WITHOUT_HOSTNS_ONLY), 'CREATE', istiod).findings;
  t.same(f, [{ rule: 'cilium-socketlb-hostns', code: 'cilium-socketlb-hostns/istiod-installed', params: { ...KPR, deployment: 'istio-system/istiod' } }]);
  t.same(runRule(rule, withoutIstio(), 'CREATE', istiod).findings, []);
  // Other Deployments are not Istio.
  const other = { ...istiod, metadata: { name: 'web', namespace: 'shop', labels: { app: 'web' } } };
  t.same(runRule(rule, withoutIstio(WITHOUT_HOSTNS_ONLY), 'CREATE', other).findings, []);
});

t.test('pre-existing: an unrelated cilium-config edit, or a namespace joining the mesh, only warns', async (t) => {
  const cluster = baseCluster([], WITHOUT_HOSTNS_ONLY);
  const edit = runRule(rule, cluster, 'UPDATE', ciliumConfigMap({ ...WITHOUT_HOSTNS_ONLY, debug: 'true' })).findings;
  t.same(edit.map((f) => [f.code, f.preexisting]), [['cilium-socketlb-hostns/config-keeps-on', true]]);
  const joins = runRule(rule, cluster, 'CREATE', ns('red', { 'istio-injection': 'enabled' })).findings;
  t.same(joins, [{ rule: 'cilium-socketlb-hostns', code: 'cilium-socketlb-hostns/namespace-joins-mesh', params: { ...KPR, namespace: 'red' }, preexisting: true }]);
  const ambient = runRule(rule, cluster, 'UPDATE', ns('demo', { 'istio.io/dataplane-mode': 'ambient' }), { oldObject: ns('demo') }).findings;
  t.same(ambient.map((f) => [f.code, f.params?.namespace, f.preexisting]), [['cilium-socketlb-hostns/namespace-joins-mesh', 'demo', true]]);
  // A namespace that does not join the mesh is not reported.
  t.same(runRule(rule, cluster, 'CREATE', ns('green')).findings, []);
});

t.test('other ConfigMaps are ignored; odd values fall back to the agent defaults', async (t) => {
  const other = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'istio', namespace: 'istio-system' }, data: {} };
  t.same(runRule(rule, baseCluster([], WITHOUT_HOSTNS_ONLY), 'UPDATE', other).findings, []);
  // A value the agent cannot parse leaves the default (off): reported.
  const odd = runRule(rule, baseCluster(), 'UPDATE', ciliumConfigMap({ ...HEALTHY_CILIUM_CONFIG, 'bpf-lb-sock-hostns-only': 'yes please' })).findings;
  t.same(odd.map((f) => f.code), ['cilium-socketlb-hostns/config-turns-on']);
});

t.test('scope: from the request alone', async (t) => {
  t.same(scope(makeChange('UPDATE', ciliumConfigMap(WITHOUT_HOSTNS_ONLY))), { by: 'cilium-config' });
  t.same(scope(makeChange('CREATE', istiod)), { by: 'istiod', deployment: 'istio-system/istiod' });
  t.same(scope(makeChange('CREATE', ns('red', { 'istio-injection': 'enabled' }))), { by: 'namespace', namespace: 'red' });
  t.equal(scope(makeChange('UPDATE', istiod, istiod)), undefined, 'only a new istiod');
  t.equal(scope(makeChange('CREATE', ns('green'))), undefined);
});

// Golden wording, one per code: the text users read in kubectl, check and audit (unchanged by the move to codes).
t.test('wording', async (t) => {
  const fix = 'set bpf-lb-sock-hostns-only: "true" in kube-system/cilium-config (Helm socketLB.hostNamespaceOnly=true) and restart the Cilium agents';
  const tail =
    ' socket LB in pod namespaces (kube-proxy-replacement without bpf-lb-sock-hostns-only: "true") while Istio runs ' +
    '(istio-system/istiod): Service connections are load-balanced at connect() and bypass sidecar/ztunnel routing';
  const say = (f: ReturnType<typeof messages.finding>) => renderFinding(f, rule.messages);
  const p = { source: 'kube-proxy-replacement', istiod: 'istio-system/istiod' } as const;
  t.same(say(messages.finding('config-turns-on', p)), { message: `cilium-config turns on${tail}`, fix });
  t.same(say(messages.finding('config-keeps-on', p)), { message: `cilium-config keeps${tail}`, fix });
  t.same(say(messages.finding('istiod-installed', { ...p, deployment: 'istio-system/istiod' })), { message: `istiod istio-system/istiod is installed with${tail}`, fix });
  t.same(say(messages.finding('namespace-joins-mesh', { ...p, namespace: 'red' })), { message: `namespace red joins the mesh with${tail}`, fix });
  t.same(messages.codes.length, 4, 'one golden test per code');
});
