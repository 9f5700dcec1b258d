// dual-l7-authz: findings asserted as data (code, params, victims); the wording has one golden message per
// code in the fixtures, src/rules/dual-l7-authz/testdata/*.yaml.
import t from 'tap';
import { rule, scope } from '../../src/rules/dual-l7-authz/index.ts';
import { authzPolicy, baseCluster, cnp, ns, peerAuth, pod, HEALTHY_CILIUM_CONFIG } from '../fixtures/cluster.ts';
import { makeChange, runRule } from './rule-harness.ts';

const CODE = (kind: string): string => `dual-l7-authz/${kind}`;

const INJECTED = { 'istio-injection': 'enabled' };
const blue = [
  ns('blue', INJECTED),
  pod('blue', 'httpbin-1', { app: 'httpbin' }, { sidecar: true, ports: [{ containerPort: 80 }] }),
  pod('blue', 'netshoot-1', { app: 'netshoot' }, { sidecar: true }),
  peerAuth('blue', 'default', { mtls: { mode: 'DISABLE' } }),
];
const ciliumHttp = cnp('blue', 'httpbin-l7', {
  endpointSelector: { matchLabels: { app: 'httpbin' } },
  ingress: [{ toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{ method: 'GET', path: '/ip' }] } }] }],
});
const ciliumL4 = cnp('blue', 'httpbin-l7', {
  endpointSelector: { matchLabels: { app: 'httpbin' } },
  ingress: [{ toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }] }],
});
const istioHttp = authzPolicy('blue', 'httpbin-get', {
  selector: { matchLabels: { app: 'httpbin' } },
  rules: [{ to: [{ operation: { methods: ['GET'], paths: ['/ip'] } }] }],
});
const istioL4 = authzPolicy('blue', 'httpbin-get', {
  selector: { matchLabels: { app: 'httpbin' } },
  rules: [{ from: [{ source: { namespaces: ['red'] } }] }],
});

t.test('Cilium HTTP rules added where an Istio HTTP policy already applies', async (t) => {
  const { findings } = runRule(rule, baseCluster([...blue, istioHttp]), 'CREATE', ciliumHttp);
  t.equal(findings.length, 1);
  const f = findings[0]!;
  t.equal(f.rule, 'dual-l7-authz');
  t.notOk(f.preexisting);
  t.equal(f.code, CODE('cilium-rules-overlap'));
  t.same(f.params, {
    ciliumPolicy: 'CiliumNetworkPolicy blue/httpbin-l7',
    authorizationPolicy: 'blue/httpbin-get',
    attributes: ['to.operation.methods', 'to.operation.paths'],
    attributeCount: 2,
    pods: ['blue/httpbin-1'],
    podCount: 1,
    wouldSelect: false,
  });
  t.same(f.victims, ['blue/httpbin-1']);
  t.equal(rule.severity, 'R');
});

t.test('Istio HTTP policy added where Cilium HTTP rules already apply', async (t) => {
  const { findings } = runRule(rule, baseCluster([...blue, ciliumHttp]), 'CREATE', istioHttp);
  t.equal(findings.length, 1);
  t.equal(findings[0]!.code, CODE('authorization-policy-overlaps'));
  t.same(findings[0]!.victims, ['blue/httpbin-1']);
  const ns = authzPolicy('blue', 'ns-wide', { rules: [{ when: [{ key: 'request.headers[x-team]', values: ['a'] }] }] });
  t.equal(runRule(rule, baseCluster([...blue, ciliumHttp]), 'CREATE', ns).findings.length, 1, 'namespace-wide policy');
});

t.test('not caught: one side L4 only, other workload, pod not meshed', async (t) => {
  t.same(runRule(rule, baseCluster([...blue, istioL4]), 'CREATE', ciliumHttp).findings, [], 'Istio side is L4');
  t.same(runRule(rule, baseCluster([...blue, istioHttp], { ...HEALTHY_CILIUM_CONFIG, 'enable-l7-proxy': 'false' }), 'CREATE', ciliumHttp).findings, [], 'Cilium L7 proxy off');
  t.same(runRule(rule, baseCluster([...blue, istioHttp]), 'CREATE', ciliumL4).findings, [], 'Cilium side is L4');
  const other = authzPolicy('blue', 'netshoot', { selector: { matchLabels: { app: 'netshoot' } }, rules: [{ to: [{ operation: { paths: ['/'] } }] }] });
  t.same(runRule(rule, baseCluster([...blue, other]), 'CREATE', ciliumHttp).findings, [], 'different workload');
  const plain = [ns('blue'), pod('blue', 'httpbin-1', { app: 'httpbin' }), istioHttp];
  t.same(runRule(rule, baseCluster(plain), 'CREATE', ciliumHttp).findings, [], 'no Envoy enforces the Istio policy');
  const ambient = [ns('blue', { 'istio.io/dataplane-mode': 'ambient' }), pod('blue', 'httpbin-1', { app: 'httpbin' }), istioHttp];
  t.same(runRule(rule, baseCluster(ambient), 'CREATE', ciliumHttp).findings, [], 'ztunnel policy: ztunnel-l7-authz, not this rule');
});

t.test('ambient pod behind a waypoint with a targetRefs HTTP policy', async (t) => {
  const objs = [
    ns('shop', { 'istio.io/dataplane-mode': 'ambient', 'istio.io/use-waypoint': 'waypoint' }),
    { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'waypoint', namespace: 'shop' }, spec: { gatewayClassName: 'istio-waypoint' } },
    pod('shop', 'api-1', { app: 'api' }, { ports: [{ containerPort: 8080 }] }),
    authzPolicy('shop', 'wp-http', { targetRefs: [{ kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'waypoint' }], rules: [{ to: [{ operation: { methods: ['GET'] } }] }] }),
  ];
  const l7 = cnp('shop', 'api-l7', { endpointSelector: { matchLabels: { app: 'api' } }, ingress: [{ toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }], rules: { http: [{}] } }] }] });
  const { findings } = runRule(rule, baseCluster(objs as never), 'CREATE', l7);
  t.equal(findings.length, 1);
  t.same(findings[0]!.victims, ['shop/api-1']);
});

t.test('re-applying an unchanged pair is preexisting', async (t) => {
  const { findings } = runRule(rule, baseCluster([...blue, istioHttp, ciliumHttp]), 'UPDATE', ciliumHttp);
  t.equal(findings.length, 1);
  t.equal(findings[0]!.code, CODE('cilium-rules-kept'));
  t.equal(findings[0]!.preexisting, true);
  const ap = runRule(rule, baseCluster([...blue, istioHttp, ciliumHttp]), 'UPDATE', istioHttp).findings;
  t.same(ap.map((f) => [f.code, f.preexisting]), [[CODE('authorization-policy-kept'), true]]);
});

t.test('waypoint in another namespace (istio.io/use-waypoint-namespace) and the istio-waypoint GatewayClass', async (t) => {
  // A shared waypoint lets other namespaces attach through its HBONE listener (istioctl waypoint apply --enroll-namespace ... makes `from: All`).
  const gateway = (namespace: string, namespaces: Record<string, unknown> = { from: 'All' }) => ({
    apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'waypoint', namespace },
    spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE', allowedRoutes: { namespaces } }] },
  });
  const httpRules = [{ to: [{ operation: { methods: ['GET'] } }] }];
  const toGateway = (namespace: string, name: string) => authzPolicy(namespace, 'wp-http', { targetRefs: [{ kind: 'Gateway', group: 'gateway.networking.k8s.io', name }], rules: httpRules });
  const toClass = (namespace: string) => authzPolicy(namespace, 'all-waypoints', { targetRefs: [{ kind: 'GatewayClass', group: 'gateway.networking.k8s.io', name: 'istio-waypoint' }], rules: httpRules });
  const shop = [
    ns('shop', { 'istio.io/dataplane-mode': 'ambient', 'istio.io/use-waypoint': 'waypoint', 'istio.io/use-waypoint-namespace': 'mesh-infra' }),
    ns('mesh-infra', { 'istio.io/dataplane-mode': 'ambient' }),
    gateway('mesh-infra'),
    pod('shop', 'api-1', { app: 'api' }, { ports: [{ containerPort: 8080 }] }),
  ];
  const l7 = cnp('shop', 'api-l7', { endpointSelector: { matchLabels: { app: 'api' } }, ingress: [{ toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }], rules: { http: [{}] } }] }] });
  const cluster = (...extra: object[]) => baseCluster([...shop, ...extra] as never);

  let f = runRule(rule, cluster(toGateway('mesh-infra', 'waypoint')), 'CREATE', l7).findings;
  t.equal(f.length, 1, 'Cilium HTTP rules under a shared waypoint whose policy has HTTP attributes');
  t.same(f[0]?.victims, ['shop/api-1']);
  t.equal(f[0]?.params?.['authorizationPolicy'], 'mesh-infra/wp-http');

  f = runRule(rule, cluster(l7), 'CREATE', toGateway('mesh-infra', 'waypoint')).findings;
  t.same(f[0]?.victims, ['shop/api-1'], 'the policy attached to the shared waypoint reaches the pods of the namespaces using it');

  t.same(runRule(rule, cluster(toGateway('shop', 'waypoint')), 'CREATE', l7).findings, [], 'a targetRef does not cross namespaces: shop has no Gateway named waypoint');
  t.same(runRule(rule, cluster(l7), 'CREATE', toGateway('mesh-infra', 'other')).findings, [], 'another waypoint');
  const noGroup = authzPolicy('mesh-infra', 'wp-http', { targetRefs: [{ kind: 'Gateway', name: 'waypoint' }], rules: httpRules });
  t.same(runRule(rule, cluster(noGroup), 'CREATE', l7).findings, [], 'a targetRef without the Gateway API group is core to Istio: attaches to nothing');
  const classic = authzPolicy('mesh-infra', 'wp-http', { targetRefs: [{ kind: 'Gateway', group: 'networking.istio.io', name: 'waypoint' }], rules: httpRules });
  t.same(runRule(rule, cluster(classic), 'CREATE', l7).findings, [], 'an Istio Gateway of that name is not the waypoint');

  f = runRule(rule, cluster(toClass('istio-system')), 'CREATE', l7).findings;
  t.equal(f.length, 1, 'a root-namespace policy on the istio-waypoint GatewayClass applies at every waypoint');
  f = runRule(rule, cluster(l7), 'CREATE', toClass('istio-system')).findings;
  t.same(f[0]?.victims, ['shop/api-1']);
  t.same(runRule(rule, cluster(toClass('mesh-infra')), 'CREATE', l7).findings, [], 'GatewayClass attachment only from the root namespace');

  // Which namespaces may use the shared waypoint: its HBONE listener's allowedRoutes (default Same).
  const shopWith = (gw: object) => baseCluster([...shop.filter((o) => (o as { kind: string }).kind !== 'Gateway'), gw, toGateway('mesh-infra', 'waypoint')] as never);
  t.same(runRule(rule, shopWith(gateway('mesh-infra', { from: 'Same' })), 'CREATE', l7).findings, [], 'from: Same: shop gets no waypoint from mesh-infra');
  const bare = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'waypoint', namespace: 'mesh-infra' }, spec: { gatewayClassName: 'istio-waypoint' } };
  t.same(runRule(rule, shopWith(bare), 'CREATE', l7).findings, [], 'no HBONE listener: Same');
  t.equal(runRule(rule, shopWith(gateway('mesh-infra', { from: 'Selector', selector: { matchLabels: { 'kubernetes.io/metadata.name': 'shop' } } })), 'CREATE', l7).findings.length, 1, 'a Selector matching shop');
  t.same(runRule(rule, shopWith(gateway('mesh-infra', { from: 'Selector', selector: { matchLabels: { team: 'infra' } } })), 'CREATE', l7).findings, [], 'a Selector not matching shop');

  // Without a waypoint neither attachment applies.
  const noWaypoint = [ns('shop', { 'istio.io/dataplane-mode': 'ambient' }), pod('shop', 'api-1', { app: 'api' }, { ports: [{ containerPort: 8080 }] }), gateway('mesh-infra')];
  t.same(runRule(rule, baseCluster([...noWaypoint, toClass('istio-system')] as never), 'CREATE', l7).findings, [], 'no waypoint, GatewayClass policy');
});

t.test('scope: from the request alone', async (t) => {
  t.same(scope(makeChange('CREATE', ciliumHttp)), { by: 'cilium-policy' });
  t.same(scope(makeChange('UPDATE', istioHttp, istioL4)), { by: 'authorization-policy' });
  t.equal(scope(makeChange('DELETE', undefined, ciliumHttp)), undefined, 'deleting removes a layer');
  t.equal(scope(makeChange('DELETE', undefined, istioHttp)), undefined);
  t.equal(scope(makeChange('CREATE', ns('blue'))), undefined);
});
