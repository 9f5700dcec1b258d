import t from 'tap';
import {
  authzAttachment,
  effectiveMtls,
  httpAttributesOf,
  istioRootNamespace,
  meshMode,
  waypointFor,
} from '../../src/policy/istio.ts';
import { stateFromObjects } from '../../src/state/snapshot.ts';
import type { PolicyObject } from '../../src/core/objects.ts';
import { authzPolicy, baseCluster, findPod, memoryState, ns, peerAuth, pod } from '../fixtures/cluster.ts';

type Obj = import('../fixtures/cluster.ts').Obj;
const mode = (m: string) => ({ mtls: { mode: m } });
const meshCm = (mesh: string, name = 'istio'): Obj =>
  ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'istio-system' }, data: { mesh } }) as Obj;

t.test('meshMode: sidecar', async (t) => {
  const s = memoryState(baseCluster([
    ns('inj', { 'istio-injection': 'enabled' }),
    ns('off', { 'istio-injection': 'disabled' }),
    ns('rev', { 'istio.io/rev': 'canary' }),
    ns('plain'),
    pod('plain', 'live', {}, { sidecar: true }),
    pod('inj', 'new', { app: 'a' }),
    pod('inj', 'optout', { 'sidecar.istio.io/inject': 'false' }),
    pod('off', 'asks', { 'sidecar.istio.io/inject': 'true' }),
    pod('rev', 'new', {}),
    pod('rev', 'optout', { 'sidecar.istio.io/inject': 'false' }),
    pod('plain', 'asks', { 'sidecar.istio.io/inject': 'true' }),
    pod('plain', 'podrev', { 'istio.io/rev': 'canary' }),
    pod('plain', 'nothing', {}),
    pod('inj', 'hostnet', {}, { hostNetwork: true }),
    pod('inj', 'ann-optout', {}, { annotations: { 'sidecar.istio.io/inject': 'false' } }),
  ]));
  const m = (ref: string) => meshMode(s, findPod(s, ref));
  t.equal(m('plain/live'), 'sidecar', 'istio-proxy container / status annotation');
  t.equal(m('inj/new'), 'sidecar', 'namespace istio-injection=enabled');
  t.equal(m('inj/optout'), 'none', 'pod label inject=false opts out of an enabled namespace');
  t.equal(m('off/asks'), 'none', 'istio-injection=disabled wins over the pod label');
  t.equal(m('rev/new'), 'sidecar', 'namespace istio.io/rev');
  t.equal(m('rev/optout'), 'none');
  t.equal(m('plain/asks'), 'sidecar', 'pod label inject=true in an unlabelled namespace');
  t.equal(m('plain/podrev'), 'sidecar', 'pod label istio.io/rev');
  t.equal(m('plain/nothing'), 'none');
  t.equal(m('inj/hostnet'), 'none', 'host-network pods are never injected');
  t.equal(m('inj/ann-optout'), 'none', 'deprecated inject annotation still opts out');
  // mesh proxies: ztunnel and gateways run istio-proxy as their only container
  const proxy = (namespace: string, name: string, labels: Record<string, string>, annotations: Record<string, string> = {}) => ({
    apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace, labels, annotations },
    spec: { containers: [{ name: 'istio-proxy' }] }, status: { phase: 'Running' },
  }) as Obj;
  const s3 = memoryState(baseCluster([
    ns('inj', { 'istio-injection': 'enabled' }), ns('amb', { 'istio.io/dataplane-mode': 'ambient' }),
    proxy('istio-system', 'ztunnel-1', { app: 'ztunnel', 'sidecar.istio.io/inject': 'false' }),
    proxy('inj', 'gw-1', { 'gateway.networking.k8s.io/gateway-name': 'gw' }, { 'sidecar.istio.io/status': '{}' }),
    proxy('amb', 'waypoint-1', { 'gateway.istio.io/managed': 'istio.io-mesh-controller' }),
  ]));
  for (const ref of ['istio-system/ztunnel-1', 'inj/gw-1', 'amb/waypoint-1']) t.equal(meshMode(s3, findPod(s3, ref)), 'none', `${ref} is a mesh proxy`);
  // istio-injection wins over istio.io/rev
  const s2 = memoryState(baseCluster([ns('both', { 'istio-injection': 'disabled', 'istio.io/rev': 'canary' }), pod('both', 'p', {})]));
  t.equal(meshMode(s2, findPod(s2, 'both/p')), 'none');
});

t.test('meshMode: ambient', async (t) => {
  const s = memoryState(baseCluster([
    ns('amb', { 'istio.io/dataplane-mode': 'ambient' }),
    ns('both', { 'istio.io/dataplane-mode': 'ambient', 'istio-injection': 'enabled' }),
    ns('plain'),
    pod('amb', 'a', {}),
    pod('amb', 'none', { 'istio.io/dataplane-mode': 'none' }),
    pod('amb', 'redir-off', {}, { annotations: { 'ambient.istio.io/redirection': 'disabled' } }),
    pod('amb', 'with-sidecar', {}, { sidecar: true }),
    pod('amb', 'inject', { 'sidecar.istio.io/inject': 'true' }),
    pod('both', 'b', {}),
    pod('plain', 'pod-amb', { 'istio.io/dataplane-mode': 'ambient' }),
    pod('plain', 'p', {}),
    pod('kube-system', 'ks', { 'istio.io/dataplane-mode': 'ambient' }),
  ]));
  const m = (ref: string) => meshMode(s, findPod(s, ref));
  t.equal(m('amb/a'), 'ambient', 'namespace label');
  t.equal(m('amb/none'), 'none', 'pod value none opts out');
  t.equal(m('amb/redir-off'), 'none', 'redirection disabled annotation opts out');
  t.equal(m('amb/with-sidecar'), 'sidecar', 'a sidecar takes precedence over ambient');
  t.equal(m('amb/inject'), 'sidecar', 'injection requested takes precedence over ambient');
  t.equal(m('both/b'), 'sidecar', 'injection-enabled namespace also labelled ambient: sidecar');
  t.equal(m('plain/pod-amb'), 'ambient', 'pod label alone enrols');
  t.equal(m('plain/p'), 'none');
  t.equal(m('kube-system/ks'), 'none', 'kube-system is excluded from the mesh');
});

t.test('istioRootNamespace: mesh config, default, broken YAML', async (t) => {
  t.equal(istioRootNamespace(memoryState(baseCluster())), 'istio-system');
  t.equal(istioRootNamespace(memoryState(baseCluster([meshCm('rootNamespace: mesh-root\ntrustDomain: cluster.local\n')]))), 'mesh-root');
  t.equal(istioRootNamespace(memoryState(baseCluster([meshCm('trustDomain: cluster.local\n')]))), 'istio-system');
  t.equal(istioRootNamespace(memoryState(baseCluster([meshCm(': : [\n')]))), 'istio-system');
  t.equal(istioRootNamespace(memoryState(baseCluster([meshCm('rootNamespace: rev-root\n', 'istio-canary')]))), 'rev-root', 'revisioned mesh config');
});

function mtlsState(extra: Obj[]) {
  return memoryState(baseCluster([ns('blue', { 'istio-injection': 'enabled' }), pod('blue', 'httpbin', { app: 'httpbin' }, { sidecar: true }), pod('blue', 'other', { app: 'other' }, { sidecar: true }), ...extra]));
}

t.test('effectiveMtls: precedence root < namespace < workload < port', async (t) => {
  const none = mtlsState([]);
  t.same(effectiveMtls(none, findPod(none, 'blue/httpbin')), { mode: 'PERMISSIVE' }, 'mesh default');

  const root = mtlsState([peerAuth('istio-system', 'default', mode('STRICT'))]);
  t.same(effectiveMtls(root, findPod(root, 'blue/httpbin')), { mode: 'STRICT', source: { namespace: 'istio-system', name: 'default', level: 'root' } });

  const nsLevel = mtlsState([peerAuth('istio-system', 'default', mode('STRICT')), peerAuth('blue', 'ns', mode('DISABLE'))]);
  t.same(effectiveMtls(nsLevel, findPod(nsLevel, 'blue/httpbin')), { mode: 'DISABLE', source: { namespace: 'blue', name: 'ns', level: 'namespace' } });

  const wl = mtlsState([
    peerAuth('blue', 'ns', mode('DISABLE')),
    peerAuth('blue', 'httpbin-strict', { selector: { matchLabels: { app: 'httpbin' } }, ...mode('STRICT') }),
  ]);
  t.equal(effectiveMtls(wl, findPod(wl, 'blue/httpbin')).mode, 'STRICT', 'workload STRICT overrides namespace DISABLE');
  t.equal(effectiveMtls(wl, findPod(wl, 'blue/httpbin')).source?.level, 'workload');
  t.equal(effectiveMtls(wl, findPod(wl, 'blue/other')).mode, 'DISABLE', 'selector does not match the other pod');

  const port = mtlsState([
    peerAuth('blue', 'ns', mode('STRICT')),
    peerAuth('blue', 'httpbin', { selector: { matchLabels: { app: 'httpbin' } }, mtls: { mode: 'STRICT' }, portLevelMtls: { '8080': { mode: 'DISABLE' }, '9000': { mode: 'UNSET' } } }),
  ]);
  const hb = findPod(port, 'blue/httpbin');
  t.same(effectiveMtls(port, hb, 8080), { mode: 'DISABLE', source: { namespace: 'blue', name: 'httpbin', level: 'port' } });
  t.equal(effectiveMtls(port, hb, 9000).mode, 'STRICT', 'port UNSET inherits the workload mode');
  t.equal(effectiveMtls(port, hb, 80).mode, 'STRICT', 'other ports: workload mode');
  t.equal(effectiveMtls(port, hb).mode, 'STRICT', 'no port given: workload mode');
});

t.test('effectiveMtls: UNSET and missing mtls inherit', async (t) => {
  const s = mtlsState([
    peerAuth('istio-system', 'default', mode('STRICT')),
    peerAuth('blue', 'ns', mode('UNSET')),
    peerAuth('blue', 'wl', { selector: { matchLabels: { app: 'httpbin' } } }),
  ]);
  t.same(effectiveMtls(s, findPod(s, 'blue/httpbin')), { mode: 'STRICT', source: { namespace: 'istio-system', name: 'default', level: 'root' } });
  const s2 = mtlsState([
    peerAuth('blue', 'ns', mode('DISABLE')),
    peerAuth('blue', 'wl', { selector: { matchLabels: { app: 'httpbin' } }, portLevelMtls: { '80': { mode: 'STRICT' } } }),
  ]);
  const p = findPod(s2, 'blue/httpbin');
  t.equal(effectiveMtls(s2, p).mode, 'DISABLE', 'workload without mtls inherits namespace');
  t.equal(effectiveMtls(s2, p, 80).mode, 'STRICT', 'port-level still applies');
});

t.test('effectiveMtls: root-namespace selector policies, custom root, conflicts', async (t) => {
  const s = mtlsState([peerAuth('istio-system', 'sel', { selector: { matchLabels: { app: 'httpbin' } }, ...mode('DISABLE') })]);
  t.equal(effectiveMtls(s, findPod(s, 'blue/httpbin')).mode, 'PERMISSIVE', 'root-namespace selector policy does not reach other namespaces');

  const custom = mtlsState([meshCm('rootNamespace: mesh-root\n'), peerAuth('mesh-root', 'default', mode('STRICT')), peerAuth('istio-system', 'default', mode('DISABLE'))]);
  t.equal(effectiveMtls(custom, findPod(custom, 'blue/httpbin')).mode, 'STRICT', 'root namespace from the mesh config');

  const old = { ...peerAuth('blue', 'zz-old', mode('DISABLE')) };
  (old.metadata as Record<string, unknown>).creationTimestamp = '2024-01-01T00:00:00Z';
  const young = { ...peerAuth('blue', 'aa-young', mode('STRICT')) };
  (young.metadata as Record<string, unknown>).creationTimestamp = '2025-01-01T00:00:00Z';
  const c = mtlsState([old, young]);
  t.equal(effectiveMtls(c, findPod(c, 'blue/httpbin')).mode, 'DISABLE', 'oldest wins at the same level');
  // The same through the slim transform the informers and snapshots use: the timestamp must survive it.
  const slim = stateFromObjects(baseCluster([ns('blue', { 'istio-injection': 'enabled' }), pod('blue', 'httpbin', { app: 'httpbin' }, { sidecar: true }), old, young]));
  t.equal(effectiveMtls(slim, slim.list('Pod', 'blue')[0]!).mode, 'DISABLE', 'oldest wins after the transform too');
  const byName = mtlsState([peerAuth('blue', 'b', mode('STRICT')), peerAuth('blue', 'a', mode('DISABLE'))]);
  t.equal(effectiveMtls(byName, findPod(byName, 'blue/httpbin')).source?.name, 'a', 'no timestamps: name order');

  const emptySel = mtlsState([peerAuth('blue', 'e', { selector: { matchLabels: {} }, ...mode('DISABLE') })]);
  t.equal(effectiveMtls(emptySel, findPod(emptySel, 'blue/other')).source?.level, 'namespace', 'empty matchLabels = namespace-wide');
});

t.test('authzAttachment', async (t) => {
  const ap = (namespace: string, name: string, spec: Record<string, unknown>) => authzPolicy(namespace, name, spec) as unknown as PolicyObject;
  const s = memoryState(baseCluster([
    ns('amb', { 'istio.io/dataplane-mode': 'ambient' }),
    ns('side', { 'istio-injection': 'enabled' }),
    pod('amb', 'web', { app: 'web' }),
    pod('amb', 'db', { app: 'db' }),
    pod('side', 'web', { app: 'web' }, { sidecar: true }),
  ]));
  const wl = authzAttachment(s, ap('amb', 'p', { selector: { matchLabels: { app: 'web' } } }));
  t.equal(wl.enforcer, 'ztunnel');
  t.equal(wl.scope, 'workload');
  t.same(wl.pods.map((p) => p.metadata.name), ['web']);

  const nsWide = authzAttachment(s, ap('amb', 'p', {}));
  t.equal(nsWide.scope, 'namespace');
  t.equal(nsWide.pods.length, 2);
  t.equal(nsWide.enforcer, 'ztunnel');

  t.equal(authzAttachment(s, ap('side', 'p', {})).enforcer, 'sidecar');

  const rootSel = authzAttachment(s, ap('istio-system', 'p', { selector: { matchLabels: { app: 'web' } } }));
  t.equal(rootSel.enforcer, 'mixed', 'root-namespace selector applies in every namespace');
  t.equal(rootSel.pods.length, 2);
  const rootAll = authzAttachment(s, ap('istio-system', 'p', {}));
  t.equal(rootAll.scope, 'root');
  t.ok(rootAll.pods.length >= 3);

  const wp = authzAttachment(s, ap('amb', 'p', { targetRefs: [{ kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'waypoint' }] }));
  t.equal(wp.enforcer, 'waypoint');
  t.same(wp.pods, []);
  t.equal(wp.targetRefs.length, 1);
  t.equal(authzAttachment(s, ap('amb', 'p', { targetRef: { kind: 'Service', name: 'web' } })).enforcer, 'waypoint', 'singular targetRef');

  const none = authzAttachment(s, ap('amb', 'p', { selector: { matchLabels: { app: 'nothing' } } }));
  t.equal(none.enforcer, 'none');
});

t.test('httpAttributesOf', async (t) => {
  const ap = (spec: Record<string, unknown>) => authzPolicy('ns', 'p', spec) as unknown as PolicyObject;
  t.same(httpAttributesOf(ap({ rules: [{ from: [{ source: { principals: ['cluster.local/ns/a/sa/b'], namespaces: ['a'], ipBlocks: ['10.0.0.0/8'] } }], to: [{ operation: { ports: ['8080'] } }], when: [{ key: 'source.ip', values: ['1.2.3.4'] }, { key: 'destination.port', values: ['80'] }] }] })), [], 'L4 only');
  t.same(httpAttributesOf(ap({ rules: [{ to: [{ operation: { paths: ['/ip'], methods: ['GET'] } }] }] })), ['to.operation.methods', 'to.operation.paths']);
  t.same(
    httpAttributesOf(ap({ rules: [
      { from: [{ source: { requestPrincipals: ['*'] } }], to: [{ operation: { notHosts: ['x'], ports: ['80'] } }] },
      { when: [{ key: 'request.headers[x-user]', values: ['a'] }, { key: 'request.auth.claims[iss]', values: ['b'] }, { key: 'request.headers[y]', values: ['c'] }] },
      { to: [{ operation: { paths: ['/a'] } }] },
      { to: [{ operation: { paths: ['/b'] } }] },
    ] })),
    ['from.source.requestPrincipals', 'to.operation.notHosts', 'when request.headers', 'when request.auth.claims', 'to.operation.paths'],
  );
  t.same(httpAttributesOf(ap({ rules: [{ to: [{ operation: { paths: [] } }] }] })), [], 'empty list is not used');
  t.same(httpAttributesOf(ap({})), [], 'no rules');
  t.same(httpAttributesOf(ap({ rules: 'garbage' })), [], 'odd input');
});

t.test('waypointFor', async (t) => {
  const gw = (namespace: string, name: string, cls = 'istio-waypoint', from?: string): Obj =>
    ({
      apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name, namespace },
      spec: { gatewayClassName: cls, ...(from ? { listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE', allowedRoutes: { namespaces: { from } } }] } : {}) },
    }) as Obj;
  const s = memoryState(baseCluster([
    ns('amb', { 'istio.io/dataplane-mode': 'ambient', 'istio.io/use-waypoint': 'ns-wp' }),
    ns('shared'),
    ns('plain'),
    gw('amb', 'ns-wp'),
    gw('amb', 'pod-wp'),
    gw('shared', 'central', 'istio-waypoint', 'All'),
    gw('shared', 'private', 'istio-waypoint', 'Same'),
    gw('plain', 'ingress', 'istio'),
    pod('amb', 'a', {}),
    pod('amb', 'b', { 'istio.io/use-waypoint': 'pod-wp' }),
    pod('amb', 'c', { 'istio.io/use-waypoint': 'central', 'istio.io/use-waypoint-namespace': 'shared' }),
    pod('amb', 'd', { 'istio.io/use-waypoint': 'none' }),
    pod('amb', 'h', { 'istio.io/use-waypoint': 'private', 'istio.io/use-waypoint-namespace': 'shared' }),
    pod('plain', 'e', {}),
    pod('plain', 'f', { 'istio.io/use-waypoint': 'ingress' }),
    pod('plain', 'g', { 'istio.io/use-waypoint': 'missing' }),
  ]));
  const w = (ref: string) => waypointFor(s, findPod(s, ref))?.metadata.name;
  t.equal(w('amb/a'), 'ns-wp', 'namespace label');
  t.equal(w('amb/b'), 'pod-wp', 'pod label wins');
  t.equal(w('amb/c'), 'central', 'use-waypoint-namespace, the waypoint admits every namespace');
  t.equal(w('amb/h'), undefined, 'a waypoint of another namespace that admits only its own (allowedRoutes from: Same)');
  t.equal(w('amb/d'), undefined, 'none opts out');
  t.equal(w('plain/e'), undefined);
  t.equal(w('plain/f'), undefined, 'not an istio-waypoint Gateway');
  t.equal(w('plain/g'), undefined, 'missing Gateway');
});
