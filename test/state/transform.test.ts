import t from 'tap';
import fc from 'fast-check';
import { KIND_NAMES } from '../../src/core/kinds.ts';
import { keepAnnotation, transformObject, transformRequestObject } from '../../src/state/transform.ts';
import { stateFromObjects } from '../../src/state/snapshot.ts';
import { sameJson } from '../../src/state/store.ts';
import type { ConfigMap, Deployment, EndpointSlice, MutatingWebhookConfiguration, Pod, PolicyObject, Service } from '../../src/core/objects.ts';

const fullPod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    name: 'web-1', namespace: 'shop', uid: 'u1', resourceVersion: '42', generateName: 'web-',
    labels: { app: 'web', tier: 1 },
    annotations: {
      'kubectl.kubernetes.io/last-applied-configuration': '{"secret":"x"}',
      'kubectl.kubernetes.io/default-container': 'app',
      'sidecar.istio.io/status': '{"containers":["istio-proxy"]}',
      'ambient.istio.io/redirection': 'enabled',
      'istio.io/rev': 'default',
      'meshguard.io/skip': 'dns-egress-missing',
      'security.istio.io/tlsMode': 'istio',
      'prometheus.io/scrape': 'true',
    },
    managedFields: [{ manager: 'kubectl' }],
    ownerReferences: [{ kind: 'ReplicaSet', name: 'web-abc' }],
    deletionTimestamp: new Date('2026-01-02T03:04:05Z'),
  },
  spec: {
    serviceAccountName: 'web', hostNetwork: false, nodeName: 'n1',
    containers: [
      { name: 'app', image: 'x', env: [{ name: 'PASSWORD', value: 'hunter2' }], ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP', hostPort: 1 }] },
      { name: 'istio-proxy', ports: [{ containerPort: '15090' }, { containerPort: 'bad' }] },
    ],
    initContainers: [{ name: 'istio-init', command: ['x'] }],
    volumes: [{ name: 'v', secret: { secretName: 's' } }],
  },
  status: { phase: 'Running', podIP: '10.0.0.1', podIPs: [{ ip: '10.0.0.1' }, { ip: 'fd00::1' }], hostIP: '192.168.0.1', conditions: [] },
};

t.test('pod keeps exactly the fields rules read', async (t) => {
  const p = transformObject('Pod', fullPod) as Pod;
  t.same(p, {
    apiVersion: 'v1', kind: 'Pod',
    metadata: {
      // uid and resourceVersion are dropped: no rule reads them (the informers resume from the raw
      // event's resourceVersion), and the state keeps its object when a watch event changes neither.
      name: 'web-1', namespace: 'shop',
      labels: { app: 'web', tier: '1' },
      annotations: {
        'sidecar.istio.io/status': '{"containers":["istio-proxy"]}',
        'ambient.istio.io/redirection': 'enabled',
        'istio.io/rev': 'default',
        'meshguard.io/skip': 'dns-egress-missing',
      },
      deletionTimestamp: '2026-01-02T03:04:05.000Z',
    },
    spec: {
      serviceAccountName: 'web', hostNetwork: false, nodeName: 'n1',
      containers: [
        { name: 'app', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] },
        { name: 'istio-proxy', ports: [{ containerPort: 15090 }] },
      ],
      initContainers: [{ name: 'istio-init' }],
    },
    status: { phase: 'Running', podIP: '10.0.0.1', podIPs: [{ ip: '10.0.0.1' }, { ip: 'fd00::1' }], hostIP: '192.168.0.1' },
  });
  t.notMatch(JSON.stringify(p), /hunter2|last-applied|managedFields|secret/);
});

t.test('annotation filter by domain', async (t) => {
  t.ok(keepAnnotation('istio.io/dataplane-mode'));
  t.ok(keepAnnotation('meshguard.io/skip-reason'));
  t.notOk(keepAnnotation('kubectl.kubernetes.io/default-container'));
  t.notOk(keepAnnotation('security.istio.io/tlsMode'));
  t.notOk(keepAnnotation('istio.io'));
  t.notOk(keepAnnotation('notistio.io/x'));
});

t.test('configmap data only for cilium, istio mesh config, coredns', async (t) => {
  const cm = (name: string) =>
    transformObject('ConfigMap', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'kube-system' }, data: { k: 'v', n: 3 } }) as ConfigMap;
  t.same(cm('cilium-config').data, { k: 'v', n: '3' });
  t.same(cm('istio').data, { k: 'v', n: '3' });
  t.same(cm('istio-1-22').data, { k: 'v', n: '3' });
  t.same(cm('coredns').data, { k: 'v', n: '3' });
  t.equal(cm('istio-sidecar-injector').data, undefined);
  t.equal(cm('istio-ca-root-cert').data, undefined);
  t.equal(cm('app-settings').data, undefined);
  t.equal(cm('kube-root-ca.crt').data, undefined);
});

t.test('policy kinds keep the whole spec and specs, deep-copied', async (t) => {
  const spec = { endpointSelector: {}, egress: [{ toPorts: [{ ports: [{ port: '53', protocol: 'UDP' }], rules: { dns: [{ matchPattern: '*' }] } }] }] };
  const raw = { apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: 'p', namespace: 'a' }, spec, specs: [spec, 'junk'], status: { x: 1 } };
  const p = transformObject('CiliumNetworkPolicy', raw) as PolicyObject;
  t.same(p.spec, spec);
  t.not(p.spec, spec);
  t.same(p.specs, [spec]);
  t.notOk('status' in p);
});

t.test('deployment, service, webhook, endpointslice, node, binding, gateway', async (t) => {
  const d = transformObject('Deployment', {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'istiod', namespace: 'istio-system' },
    spec: {
      replicas: 2, strategy: {}, selector: { matchLabels: { app: 'istiod' } },
      template: {
        metadata: { labels: { app: 'istiod' }, annotations: { 'sidecar.istio.io/inject': 'false', 'other/x': 'y' } },
        spec: { hostNetwork: true, containers: [{ name: 'discovery', ports: [{ containerPort: 15012 }] }] },
      },
    },
  }) as Deployment;
  t.same(d.spec, {
    replicas: 2, selector: { matchLabels: { app: 'istiod' } },
    template: {
      metadata: { labels: { app: 'istiod' }, annotations: { 'sidecar.istio.io/inject': 'false' } },
      spec: { hostNetwork: true, containers: [{ name: 'discovery', ports: [{ containerPort: 15012 }] }] },
    },
  });

  const s = transformObject('Service', {
    apiVersion: 'v1', kind: 'Service', metadata: { name: 'kube-dns', namespace: 'kube-system' },
    spec: { selector: { 'k8s-app': 'kube-dns' }, ports: [{ name: 'dns', port: 53, targetPort: 'dns', protocol: 'UDP' }, { port: 9153, targetPort: '9153' }], clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10'], type: 'ClusterIP', sessionAffinity: 'None' },
  }) as Service;
  t.same(s.spec, { selector: { 'k8s-app': 'kube-dns' }, ports: [{ name: 'dns', port: 53, targetPort: 'dns', protocol: 'UDP' }, { port: 9153, targetPort: 9153 }], clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10'], type: 'ClusterIP' });

  const m = transformObject('MutatingWebhookConfiguration', {
    apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', metadata: { name: 'istio-sidecar-injector' },
    webhooks: [{ name: 'inject.istio.io', clientConfig: { caBundle: 'LS0tLS1CRUdJTi', service: { name: 'istiod', namespace: 'istio-system', port: 443, path: '/inject' } }, failurePolicy: 'Fail', namespaceSelector: { matchExpressions: [{ key: 'istio-injection', operator: 'In', values: ['enabled'] }] }, objectSelector: {}, rules: [{}], sideEffects: 'None' }],
  }) as MutatingWebhookConfiguration;
  t.same(m.webhooks, [{ name: 'inject.istio.io', clientConfig: { service: { name: 'istiod', namespace: 'istio-system', port: 443, path: '/inject' } }, failurePolicy: 'Fail', namespaceSelector: { matchExpressions: [{ key: 'istio-injection', operator: 'In', values: ['enabled'] }] }, objectSelector: {} }]);
  t.notMatch(JSON.stringify(m), /caBundle|LS0t/);

  // A ValidatingWebhookConfiguration keeps the same slim shape: the backend (service or url) and failurePolicy.
  const v = transformObject('ValidatingWebhookConfiguration', {
    apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingWebhookConfiguration', metadata: { name: 'meshguard' },
    webhooks: [
      { name: 'policies.meshguard.io', clientConfig: { caBundle: 'LS0tLS1CRUdJTi', service: { name: 'meshguard', namespace: 'meshguard', port: 443, path: '/validate' } }, failurePolicy: 'Fail', rules: [{}], sideEffects: 'None', admissionReviewVersions: ['v1'] },
      { name: 'outside.example.com', clientConfig: { url: 'https://hooks.example.com/validate' }, failurePolicy: 'Ignore' },
    ],
  }) as MutatingWebhookConfiguration;
  t.same(v.webhooks, [
    { name: 'policies.meshguard.io', clientConfig: { service: { name: 'meshguard', namespace: 'meshguard', port: 443, path: '/validate' } }, failurePolicy: 'Fail' },
    { name: 'outside.example.com', clientConfig: { url: 'https://hooks.example.com/validate' }, failurePolicy: 'Ignore' },
  ]);
  t.notMatch(JSON.stringify(v), /caBundle|LS0t|sideEffects|admissionReviewVersions/);

  const e = transformObject('EndpointSlice', {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'kubernetes', namespace: 'default' }, addressType: 'IPv4',
    endpoints: [{ addresses: ['172.18.0.2'], conditions: { ready: true, serving: true }, targetRef: { kind: 'Pod', name: 'p', namespace: 'default', uid: 'x' }, nodeName: 'n' }],
    ports: [{ name: 'https', port: 6443, protocol: 'TCP', appProtocol: 'x' }],
  });
  t.match(e, { addressType: 'IPv4', ports: [{ name: 'https', port: 6443, protocol: 'TCP' }] });
  // Addresses only: readiness and targetRef are read by no rule, and a readiness flip is no new state.
  t.same((e as EndpointSlice).endpoints, [{ addresses: ['172.18.0.2'] }]);
  t.notMatch(JSON.stringify(e), /appProtocol|serving|nodeName/);

  const n = transformObject('Node', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1', namespace: 'ignored' }, spec: { podCIDR: '10.0.0.0/24', podCIDRs: ['10.0.0.0/24'], taints: [] }, status: { addresses: [{ type: 'InternalIP', address: '192.168.0.1' }], capacity: {} } });
  t.same(n, { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' }, spec: { podCIDR: '10.0.0.0/24', podCIDRs: ['10.0.0.0/24'] }, status: { addresses: [{ type: 'InternalIP', address: '192.168.0.1' }] } });

  const rb = transformObject('ClusterRoleBinding', { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'b' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'admin' }, subjects: [{ kind: 'ServiceAccount', name: 'sa', namespace: 'x' }, { kind: 'User' }] });
  t.same(rb, { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'b' }, roleRef: { kind: 'ClusterRole', name: 'admin' }, subjects: [{ kind: 'ServiceAccount', name: 'sa', namespace: 'x' }] });

  const g = transformObject('Gateway', { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'waypoint', namespace: 'a', labels: { 'istio.io/waypoint-for': 'service' } }, spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE', allowedRoutes: {} }] } });
  t.same(g, { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'waypoint', namespace: 'a', labels: { 'istio.io/waypoint-for': 'service' } }, spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] } });
  // Which namespaces may use a waypoint: allowedRoutes.namespaces is kept (from and selector only).
  const shared = transformObject('Gateway', { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'waypoint', namespace: 'a' }, spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE', allowedRoutes: { kinds: [{ kind: 'HTTPRoute' }], namespaces: { from: 'Selector', selector: { matchLabels: { team: 'x' } } } } }] } });
  t.same((shared as { spec?: unknown }).spec, { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE', allowedRoutes: { namespaces: { from: 'Selector', selector: { matchLabels: { team: 'x' } } } } }] });

  const sa = transformObject('ServiceAccount', { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'x', namespace: 'y' }, secrets: [{ name: 'tok' }] });
  t.same(sa, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'x', namespace: 'y' } });
});

t.test('never throws on odd input, always a minimal valid object', async (t) => {
  const odd: unknown[] = [
    null, undefined, 5, 'x', [], {}, { metadata: null }, { metadata: { name: 7, labels: 'x', annotations: [1] } },
    { spec: { containers: 'no', initContainers: [null, 1, { ports: 'x' }] }, status: 'x' },
    { spec: { ports: [{ port: -1.5 }, null], selector: [] } },
    new Proxy({}, { get() { throw new Error('boom'); }, ownKeys() { throw new Error('boom'); } }),
  ];
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  odd.push({ apiVersion: 'cilium.io/v2', metadata: { name: 'c' }, spec: cyclic });
  for (const kind of KIND_NAMES) {
    for (const raw of odd) {
      const o = transformObject(kind, raw);
      t.equal(o.kind, kind);
      t.type(o.metadata.name, 'string');
      t.type(o.apiVersion, 'string');
      JSON.stringify(o); // serialisable: no cycles left
      if (kind === 'Pod') t.ok(Array.isArray((o as Pod).spec.containers));
    }
  }
  fc.assert(
    fc.property(fc.constantFrom(...KIND_NAMES), fc.anything({ withDate: true, withMap: true, withNullPrototype: true }), (kind, raw) => {
      const o = transformObject(kind, { metadata: raw, spec: raw, status: raw, data: raw, webhooks: raw, endpoints: raw });
      return o.kind === kind && typeof o.metadata.name === 'string' && JSON.stringify(o).length > 0;
    }),
    { numRuns: 500 },
  );
});

t.test('stateFromObjects loads known kinds and ignores the rest', async (t) => {
  const s = stateFromObjects([
    fullPod,
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: 'shop' }, data: { p: 'x' } },
    { apiVersion: 'networking.istio.io/v1', kind: 'Gateway', metadata: { name: 'g', namespace: 'shop' } },
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } },
    { apiVersion: 'v1', kind: 'Pod', metadata: {} },
    null,
    'junk',
  ]);
  t.equal(s.list('Pod').length, 1);
  t.equal(s.podsWithLabel('shop', 'app', 'web').length, 1);
  t.equal(s.list('Gateway').length, 0);
  t.ok(s.get('Namespace', undefined, 'shop'));
});

t.test('request objects reuse the shared values of the state but add none', async (t) => {
  const podWith = (name: string, labels: Record<string, string>) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'ns', labels }, spec: { containers: [] } });
  const stateA = transformObject('Pod', podWith('a', { app: 'shared-app-label' })) as Pod;
  const request = transformRequestObject('Pod', podWith('r', { app: 'shared-app-label' })) as Pod;
  t.equal(request.metadata.labels, stateA.metadata.labels, 'a label map the state has is shared');
  const requestOnly = transformRequestObject('Pod', podWith('r2', { team: 'only-in-a-request-7f3a' })) as Pod;
  const stateB = transformObject('Pod', podWith('b', { team: 'only-in-a-request-7f3a' })) as Pod;
  t.not(stateB.metadata.labels, requestOnly.metadata.labels, 'a request did not insert its label map');
  t.same(stateB.metadata.labels, requestOnly.metadata.labels);
  const stateC = transformObject('Pod', podWith('c', { team: 'only-in-a-request-7f3a' })) as Pod;
  t.equal(stateC.metadata.labels, stateB.metadata.labels, 'state objects share again after a request transform');
});

t.test('a "__proto__" key stays data: it neither sets the copy\'s prototype nor hides from comparison', async (t) => {
  const raw = (action: string) => JSON.parse(`{"apiVersion":"security.istio.io/v1","kind":"AuthorizationPolicy","metadata":{"name":"p","namespace":"ns"},"spec":{"__proto__":{"action":"${action}"}},"data":{"__proto__":"x"}}`) as Record<string, unknown>;
  const deny = transformObject('AuthorizationPolicy', raw('DENY')) as PolicyObject;
  const spec = deny.spec as Record<string, unknown>;
  t.equal(Object.getPrototypeOf(spec), Object.prototype);
  t.equal(spec['action'], undefined, 'nothing is read through a prototype');
  t.same(Object.keys(spec), ['__proto__']);
  t.notOk(sameJson(deny, transformObject('AuthorizationPolicy', raw('ALLOW'))), 'an update of it is a change');
  const cm = transformObject('ConfigMap', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'istio', namespace: 'istio-system' }, data: JSON.parse('{"__proto__":"x","mesh":"m"}') }) as ConfigMap;
  t.same(Object.keys(cm.data ?? {}).sort(), ['__proto__', 'mesh']);
});
