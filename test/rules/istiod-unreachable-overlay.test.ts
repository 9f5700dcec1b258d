// istiod-unreachable-overlay: findings asserted as data (code, params, preexisting); one golden test per
// code for the wording. More cases as fixtures: src/rules/istiod-unreachable-overlay/testdata/*.yaml.
import t from 'tap';
import { messages } from '../../src/rules/istiod-unreachable-overlay/messages.ts';
import { rule, scope } from '../../src/rules/istiod-unreachable-overlay/index.ts';
import { renderFinding } from '../../src/verdict/render.ts';
import { baseCluster, ciliumConfigMap, HEALTHY_CILIUM_CONFIG, ns } from '../fixtures/cluster.ts';
import { makeChange, runRule } from './rule-harness.ts';

const CODE = (kind: string) => `istiod-unreachable-overlay/${kind}`;

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
  t.same(findings, [{
    rule: 'istiod-unreachable-overlay',
    code: CODE('config-switches-to-tunnel'),
    params: { placement: 'detected', apiserverIps: ['172.16.40.7', '172.16.41.9'], injected: ['red'], webhooks: ['istio-sidecar-injector'] },
  }]);
});

t.test('the kube-apiserver on the nodes can reach the overlay: not reported', async (t) => {
  // baseCluster's apiserver endpoint is node-a's InternalIP.
  const onNodes = baseCluster([injectorWebhook(), red] as never[]);
  t.same(runRule(rule, onNodes, 'UPDATE', ciliumConfigMap(TUNNEL)).findings, []);
  // ... unless the config says otherwise, and the other way round.
  const configured = runRule(rule, onNodes, 'UPDATE', ciliumConfigMap(TUNNEL), { settings: { controlPlane: 'outside-nodes' } }).findings;
  t.same(configured.map((f) => [f.code, f.params?.placement]), [[CODE('config-switches-to-tunnel'), 'configured']]);
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
  t.same(lose.map((f) => [f.code, f.params?.istiod, f.preexisting]), [[CODE('istiod-loses-host-network'), 'istio-system/istiod', undefined]]);
  t.same(runRule(rule, cluster, 'UPDATE', istiod(true, 'pilot:1.29')).findings, []);
});

t.test('an istiod image bump on an already broken cluster is only a warning', async (t) => {
  const f = runRule(rule, eks([istiod(false)], TUNNEL), 'UPDATE', istiod(false, 'pilot:1.29')).findings;
  t.same(f.map((x) => [x.code, x.params?.istiod, x.preexisting]), [[CODE('istiod-without-host-network'), 'istio-system/istiod', true]]);
});

t.test('a namespace enabling injection under overlay routing is denied', async (t) => {
  const cluster = baseCluster([managedApiserver, injectorWebhook()] as never[], TUNNEL);
  const f = runRule(rule, cluster, 'CREATE', ns('blue', { 'istio-injection': 'enabled' })).findings;
  t.same(f.map((x) => [x.code, x.params?.namespace, x.preexisting]), [[CODE('namespace-enables-injection'), 'blue', undefined]]);
  // istio.io/rev also asks for injection.
  const rev = runRule(rule, cluster, 'UPDATE', ns('blue', { 'istio.io/rev': 'stable' }), { oldObject: ns('blue') }).findings;
  t.same(rev.map((x) => [x.code, x.params?.namespace]), [[CODE('namespace-enables-injection'), 'blue']]);
  // Even when other namespaces already suffer, this namespace's pods newly break.
  const suffering = runRule(rule, eks([], TUNNEL), 'CREATE', ns('blue', { 'istio-injection': 'enabled' })).findings;
  t.same(suffering.map((x) => [x.code, x.preexisting]), [[CODE('namespace-enables-injection'), undefined]]);
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
  t.same(f, [{
    rule: 'istiod-unreachable-overlay',
    code: CODE('webhook-points-at-istiod'),
    params: { placement: 'detected', apiserverIps: ['172.16.40.7', '172.16.41.9'], injected: [], webhooks: ['istio-sidecar-injector'], webhook: 'istio-sidecar-injector' },
  }]);
  const rotated = runRule(rule, eks([], TUNNEL), 'UPDATE', injectorWebhook('istio-sidecar-injector', 'b')).findings;
  t.same(rotated.map((x) => [x.code, x.preexisting]), [[CODE('webhook-points-at-istiod'), true]]);
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
  t.same(runRule(rule, eks(), 'UPDATE', ciliumConfigMap({ ...noMode, tunnel: 'geneve' })).findings.map((f) => f.code), [CODE('config-switches-to-tunnel')]);
  t.same(runRule(rule, eks(), 'UPDATE', ciliumConfigMap({ ...noMode, tunnel: 'disabled' })).findings, []);
});

t.test('Cilium chained behind the cloud CNI (aws-cni, azure) routes pods natively whatever routing-mode says', async (t) => {
  t.same(runRule(rule, eks(), 'UPDATE', ciliumConfigMap({ ...TUNNEL, 'cni-chaining-mode': 'aws-cni' })).findings, []);
  t.same(runRule(rule, eks(), 'UPDATE', ciliumConfigMap({ ...TUNNEL, 'cni-chaining-mode': 'azure' })).findings, []);
  // Other chaining modes (portmap) do not change the routing.
  t.same(runRule(rule, eks(), 'UPDATE', ciliumConfigMap({ ...TUNNEL, 'cni-chaining-mode': 'portmap' })).findings.map((f) => f.code), [CODE('config-switches-to-tunnel')]);
});

t.test('a cilium-config edit on a cluster already in overlay routing keeps the problem: only a warning', async (t) => {
  const f = runRule(rule, eks([], TUNNEL), 'UPDATE', ciliumConfigMap({ ...TUNNEL, debug: 'true' })).findings;
  t.same(f.map((x) => [x.code, x.preexisting]), [[CODE('config-keeps-tunnel'), true]]);
});

t.test('scope: from the request alone', async (t) => {
  t.same(scope(makeChange('UPDATE', ciliumConfigMap(TUNNEL))), { by: 'cilium-config' });
  t.same(scope(makeChange('UPDATE', istiod(false))), { by: 'istiod', istiod: 'istio-system/istiod' });
  t.same(scope(makeChange('CREATE', ns('blue', { 'istio-injection': 'enabled' }))), { by: 'namespace', namespace: 'blue' });
  t.same(scope(makeChange('CREATE', injectorWebhook())), { by: 'webhook', webhook: 'istio-sidecar-injector' });
  t.equal(scope(makeChange('DELETE', undefined, ciliumConfigMap(TUNNEL))), undefined, 'a deletion turns nothing on');
  t.equal(scope(makeChange('CREATE', ns('green'))), undefined);
});

// Golden wording, one per code: the text users read in kubectl, check and audit (unchanged by the move to codes).
t.test('wording', async (t) => {
  const fix =
    'run istiod with hostNetwork: true (istiod Deployment spec.template.spec.hostNetwork, dnsPolicy: ClusterFirstWithHostNet), or use native routing (routing-mode: native) in kube-system/cilium-config';
  const say = (f: ReturnType<typeof messages.finding>) => renderFinding(f, rule.messages);
  const p = { placement: 'detected', apiserverIps: ['172.16.40.7', '172.16.41.9', '172.16.42.3'], injected: ['red', 'blue', 'a', 'b'], webhooks: ['istio-sidecar-injector'] } as const;
  const mid = ': Cilium overlay routing + istiod on a pod IP + the kube-apiserver (172.16.40.7, 172.16.41.9 and 1 more) is not on a Node IP: the apiserver cannot reach istiod, ';
  const injection = 'sidecar injection (namespaces red, blue, a and 1 more) will time out';
  t.same(say(messages.finding('config-switches-to-tunnel', p)), { message: `cilium-config switches to tunnel routing${mid}${injection}`, fix });
  t.same(say(messages.finding('config-keeps-tunnel', { ...p, placement: 'configured' })), {
    message: `cilium-config keeps tunnel routing: Cilium overlay routing + istiod on a pod IP + the control plane is configured as outside the nodes: the apiserver cannot reach istiod, ${injection}`,
    fix,
  });
  t.same(say(messages.finding('istiod-loses-host-network', { ...p, istiod: 'istio-system/istiod' })), { message: `istiod istio-system/istiod loses hostNetwork${mid}${injection}`, fix });
  t.same(say(messages.finding('istiod-without-host-network', { ...p, istiod: 'istio-system/istiod' })), { message: `istiod istio-system/istiod runs without hostNetwork${mid}${injection}`, fix });
  t.same(say(messages.finding('namespace-enables-injection', { ...p, namespace: 'green' })), { message: `namespace green enables injection${mid}sidecar injection for namespace green will time out`, fix });
  t.same(say(messages.finding('webhook-points-at-istiod', { ...p, injected: [], webhooks: ['x', 'y', 'z'], webhook: 'x' })), {
    message: `webhook x points at istiod${mid}Istio webhooks (x, y and 1 more) will time out`,
    fix,
  });
  t.same(messages.codes.length, 6, 'one golden test per code');
});
