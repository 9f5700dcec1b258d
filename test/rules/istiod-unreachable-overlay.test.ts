import t from 'tap';
import { rule } from '../../src/rules/istiod-unreachable-overlay.ts';
import { baseCluster, ciliumConfigMap, HEALTHY_CILIUM_CONFIG, ns } from '../fixtures/cluster.ts';
import { runRule } from './rule-harness.ts';

const TUNNEL = { ...HEALTHY_CILIUM_CONFIG, 'routing-mode': 'tunnel', 'tunnel-protocol': 'vxlan' };
// A managed control plane (EKS-like): the kubernetes EndpointSlice lists an address no Node has.
const managedApiserver = {
  apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
  metadata: { name: 'kubernetes', namespace: 'default', labels: { 'kubernetes.io/service-name': 'kubernetes' } },
  addressType: 'IPv4', endpoints: [{ addresses: ['172.16.40.7'] }, { addresses: ['172.16.41.9'] }], ports: [{ name: 'https', port: 443, protocol: 'TCP' }],
};
const injectorWebhook = (name = 'istio-sidecar-injector', caBundle = 'a') => ({
  apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration',
  metadata: { name, annotations: { 'meshguard.io/test-ca': caBundle } },
  webhooks: [{
    name: 'namespace.sidecar-injector.istio.io',
    clientConfig: { service: { name: 'istiod', namespace: 'istio-system', port: 443, path: '/inject' } },
    namespaceSelector: { matchLabels: { 'istio-injection': 'enabled' } },
  }],
});
const istiod = (hostNetwork: boolean, image = 'pilot:1.28') => ({
  apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'istiod', namespace: 'istio-system', labels: { app: 'istiod', image } },
  spec: {
    selector: { matchLabels: { app: 'istiod' } },
    template: { metadata: { labels: { app: 'istiod' } }, spec: { serviceAccountName: 'istiod', hostNetwork, containers: [{ name: 'discovery' }] } },
  },
});
const red = ns('red', { 'istio-injection': 'enabled' });

// An EKS-like cluster in native routing (healthy) with injection in use.
const eks = (extra: Record<string, unknown>[] = [], cilium = HEALTHY_CILIUM_CONFIG) =>
  baseCluster([managedApiserver, injectorWebhook(), red, ...extra] as never[], cilium);

t.test('cilium-config switching to tunnel routing on a managed control plane is denied', async (t) => {
  const { findings } = runRule(rule, eks(), 'UPDATE', ciliumConfigMap(TUNNEL));
  t.equal(findings.length, 1);
  const f = findings[0]!;
  t.equal(f.rule, 'istiod-unreachable-overlay');
  t.notOk(f.preexisting);
  t.match(f.message, /cilium-config switches to tunnel routing/);
  t.match(f.message, /kube-apiserver \(172\.16\.40\.7, 172\.16\.41\.9\) is not on a Node IP/);
  t.match(f.message, /sidecar injection \(namespaces red\) will time out/);
  t.match(f.fix, /hostNetwork: true/);
});

t.test('the kube-apiserver on the nodes can reach the overlay: not reported', async (t) => {
  // baseCluster's apiserver endpoint is node-a's InternalIP.
  const onNodes = baseCluster([injectorWebhook(), red] as never[]);
  t.same(runRule(rule, onNodes, 'UPDATE', ciliumConfigMap(TUNNEL)).findings, []);
  // ... unless the config says otherwise, and the other way round.
  t.equal(runRule(rule, onNodes, 'UPDATE', ciliumConfigMap(TUNNEL), { settings: { controlPlane: 'outside-nodes' } }).findings.length, 1);
  t.same(runRule(rule, eks(), 'UPDATE', ciliumConfigMap(TUNNEL), { settings: { controlPlane: 'on-nodes' } }).findings, []);
});

t.test('unknown apiserver endpoints are not guessed to be outside', async (t) => {
  const objs = baseCluster([injectorWebhook(), red] as never[]).filter((o) => o.kind !== 'EndpointSlice');
  t.same(runRule(rule, objs, 'UPDATE', ciliumConfigMap(TUNNEL)).findings, []);
});

t.test('native routing, or istiod in the host network, is fine', async (t) => {
  t.same(runRule(rule, eks(), 'UPDATE', ciliumConfigMap({ ...TUNNEL, 'routing-mode': 'native' })).findings, []);
  t.same(runRule(rule, eks([istiod(true)]), 'UPDATE', ciliumConfigMap(TUNNEL)).findings, []);
});

t.test('istiod losing hostNetwork under overlay routing is denied; keeping it is fine', async (t) => {
  const cluster = eks([istiod(true)], TUNNEL);
  const lose = runRule(rule, cluster, 'UPDATE', istiod(false)).findings;
  t.equal(lose.length, 1);
  t.notOk(lose[0]!.preexisting);
  t.match(lose[0]!.message, /istiod istio-system\/istiod loses hostNetwork/);
  t.same(runRule(rule, cluster, 'UPDATE', istiod(true, 'pilot:1.29')).findings, []);
});

t.test('an istiod image bump on an already broken cluster is only a warning', async (t) => {
  const f = runRule(rule, eks([istiod(false)], TUNNEL), 'UPDATE', istiod(false, 'pilot:1.29')).findings;
  t.equal(f.length, 1);
  t.equal(f[0]!.preexisting, true);
});

t.test('a namespace enabling injection under overlay routing is denied', async (t) => {
  const cluster = baseCluster([managedApiserver, injectorWebhook()] as never[], TUNNEL);
  const f = runRule(rule, cluster, 'CREATE', ns('blue', { 'istio-injection': 'enabled' })).findings;
  t.equal(f.length, 1);
  t.notOk(f[0]!.preexisting);
  t.match(f[0]!.message, /namespace blue enables injection/);
  t.match(f[0]!.message, /sidecar injection for namespace blue will time out/);
  // istio.io/rev also asks for injection.
  t.equal(runRule(rule, cluster, 'UPDATE', ns('blue', { 'istio.io/rev': 'stable' }), { oldObject: ns('blue') }).findings.length, 1);
  // Even when other namespaces already suffer, this namespace's pods newly break.
  t.equal(runRule(rule, eks([], TUNNEL), 'CREATE', ns('blue', { 'istio-injection': 'enabled' })).findings.length, 1);
});

t.test('namespace changes that do not enable injection are not reported', async (t) => {
  const cluster = eks([], TUNNEL);
  t.same(runRule(rule, cluster, 'UPDATE', ns('red', { 'istio-injection': 'enabled', team: 'x' })).findings, []);
  t.same(runRule(rule, cluster, 'CREATE', ns('green')).findings, []);
  t.same(runRule(rule, cluster, 'CREATE', ns('off', { 'istio-injection': 'disabled', 'istio.io/rev': 'x' })).findings, []);
});

t.test('an injection webhook pointing at istiod is denied on a fresh overlay cluster; its CA rotation warns', async (t) => {
  const fresh = baseCluster([managedApiserver] as never[], TUNNEL);
  const f = runRule(rule, fresh, 'CREATE', injectorWebhook()).findings;
  t.equal(f.length, 1);
  t.notOk(f[0]!.preexisting);
  t.match(f[0]!.message, /webhook istio-sidecar-injector points at istiod/);
  t.match(f[0]!.message, /Istio webhooks \(istio-sidecar-injector\)/);
  const rotated = runRule(rule, eks([], TUNNEL), 'UPDATE', injectorWebhook('istio-sidecar-injector', 'b')).findings;
  t.equal(rotated.length, 1);
  t.equal(rotated[0]!.preexisting, true);
});

t.test('webhooks of other services and unrelated objects are ignored', async (t) => {
  const other = { ...injectorWebhook('cert-manager-webhook'), webhooks: [{ name: 'x', clientConfig: { service: { name: 'cert-manager', namespace: 'cert-manager' } } }] };
  t.same(runRule(rule, baseCluster([managedApiserver] as never[], TUNNEL), 'CREATE', other).findings, []);
  const someCm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'coredns', namespace: 'kube-system' }, data: {} };
  t.same(runRule(rule, eks([], TUNNEL), 'UPDATE', someCm).findings, []);
});

t.test('no Istio in use: overlay routing on a managed control plane is fine', async (t) => {
  const plain = baseCluster([managedApiserver] as never[]);
  t.same(runRule(rule, plain, 'UPDATE', ciliumConfigMap(TUNNEL)).findings, []);
});

t.test('the deprecated tunnel key and a missing routing mode mean overlay', async (t) => {
  const { 'routing-mode': _drop, ...noMode } = HEALTHY_CILIUM_CONFIG;
  t.equal(runRule(rule, eks(), 'UPDATE', ciliumConfigMap({ ...noMode, tunnel: 'geneve' })).findings.length, 1);
  t.same(runRule(rule, eks(), 'UPDATE', ciliumConfigMap({ ...noMode, tunnel: 'disabled' })).findings, []);
});

t.test('Cilium chained behind the cloud CNI (aws-cni, azure) routes pods natively whatever routing-mode says', async (t) => {
  t.same(runRule(rule, eks(), 'UPDATE', ciliumConfigMap({ ...TUNNEL, 'cni-chaining-mode': 'aws-cni' })).findings, []);
  t.same(runRule(rule, eks(), 'UPDATE', ciliumConfigMap({ ...TUNNEL, 'cni-chaining-mode': 'azure' })).findings, []);
  // Other chaining modes (portmap) do not change the routing.
  t.equal(runRule(rule, eks(), 'UPDATE', ciliumConfigMap({ ...TUNNEL, 'cni-chaining-mode': 'portmap' })).findings.length, 1);
});
