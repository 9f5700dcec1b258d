// Pods listed in protobuf against a real kube-apiserver (ADR 0008): varied pods are created, then
// listed as JSON and as protobuf, and the slim pods must be deep-equal, in the same order. Over 500
// pods, so the protobuf list follows its continue token across pages. Then the same pods from the watch
// cache (resourceVersion=0), one body read as it streams.

import t from 'tap';
import type { IncomingMessage } from 'node:http';
import { loadKubeApi, type KubeApi } from '../../src/state/kube-api.ts';
import { listKind } from '../../src/state/live.ts';
import type { Pod } from '../../src/core/objects.ts';
import { apiFromKubeconfig, loadCluster } from '../../bench/live.ts';
import { startControlPlane } from './harness.ts';

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } } & Record<string, unknown>;

const ns = (name: string): Obj => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
const podOf = (namespace: string, name: string, rest: { metadata?: Record<string, unknown>; spec?: Record<string, unknown>; status?: Record<string, unknown> }): Obj => ({
  apiVersion: 'v1', kind: 'Pod',
  metadata: { name, namespace, ...rest.metadata },
  spec: { containers: [{ name: 'app', image: 'registry.example/app:1' }], ...rest.spec },
  ...(rest.status ? { status: rest.status } : {}),
});

const VARIED: Obj[] = [
  ns('proto'),
  podOf('proto', 'full', {
    metadata: {
      labels: { app: 'web', 'example.com/odd-key_1.x': 'a.b-c_d', '123': 'numeric-key', empty: '' },
      annotations: {
        'sidecar.istio.io/inject': 'true', 'istio.io/rev': 'canary', 'meshguard.io/note': 'ünïcödé "quoted" \\ back\nnew line\ttab 😀',
        'ambient.istio.io/redirection': 'enabled', 'example.com/dropped': 'not kept', 'kubectl.kubernetes.io/last-applied-configuration': '{"big":"blob"}',
      },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d9f', uid: '5f1c6a0e-0000-4000-8000-000000000001', controller: true }],
    },
    spec: {
      serviceAccountName: 'web',
      nodeName: 'node-1',
      initContainers: [{ name: 'init', image: 'busybox', ports: [{ containerPort: 15001 }] }],
      containers: [
        {
          name: 'app', image: 'registry.example/app:1',
          ports: [{ name: 'http', containerPort: 8080 }, { name: 'dns', containerPort: 53, protocol: 'UDP' }, { containerPort: 9000, protocol: 'SCTP' }],
          livenessProbe: { httpGet: { path: '/healthz', port: 'http' } },
          readinessProbe: { tcpSocket: { port: 8080 } },
          startupProbe: { grpc: { port: 9090 } },
        },
        {
          name: 'sidecar', image: 'registry.example/proxy:1',
          livenessProbe: { exec: { command: ['true'] } },
          readinessProbe: { httpGet: { port: 15021, host: '10.9.9.9' } },
          startupProbe: { tcpSocket: { port: 'admin' } },
          ports: [{ name: 'admin', containerPort: 15000 }],
        },
      ],
    },
    status: { phase: 'Running', hostIP: '192.168.0.3', podIP: '10.1.0.5', podIPs: [{ ip: '10.1.0.5' }, { ip: 'fd00:10:1::5' }] },
  }),
  podOf('proto', 'v6-only', { status: { phase: 'Running', podIP: 'fd00:10:1::6', podIPs: [{ ip: 'fd00:10:1::6' }] } }),
  podOf('proto', 'host-net', {
    metadata: { labels: { 'k8s-app': 'node-agent' } },
    spec: { hostNetwork: true, containers: [{ name: 'agent', image: 'agent:1', ports: [{ containerPort: 9876, hostPort: 9876 }] }] },
    status: { phase: 'Running', hostIP: '192.168.0.4', podIP: '192.168.0.4', podIPs: [{ ip: '192.168.0.4' }] },
  }),
  // The Cilium agent: its images are kept.
  podOf('proto', 'cilium-abcde', { metadata: { labels: { 'k8s-app': 'cilium' } }, spec: { containers: [{ name: 'cilium-agent', image: 'quay.io/cilium/cilium:v1.16.3' }] } }),
  // Nothing but what a pod must have; no status written (the apiserver sets phase Pending).
  podOf('proto', 'bare', {}),
  // Pending, no IPs.
  podOf('proto', 'pending', { metadata: { labels: { app: 'web' } }, status: { phase: 'Pending' } }),
  // Held by a finalizer, then deleted below: it carries a deletionTimestamp.
  podOf('proto', 'held', { metadata: { finalizers: ['example.com/hold'], labels: { app: 'web' } } }),
];

/** Enough small pods that the list takes two pages of 500 in either encoding. */
const BULK: Obj[] = [ns('bulk'), ...Array.from({ length: 520 }, (_, i) => podOf('bulk', `p-${i}`, {
  metadata: { labels: { app: `app-${i % 7}`, 'pod-template-hash': `h${i % 13}` } },
  spec: { containers: [{ name: 'app', image: 'app:1', ports: [{ name: 'http', containerPort: 8000 + (i % 3) }] }] },
  status: { phase: 'Running', podIP: `10.2.${i >> 8}.${i & 255}`, podIPs: [{ ip: `10.2.${i >> 8}.${i & 255}` }] },
}))];

/** The API, with the Content-Type of every answer recorded. */
function recording(api: KubeApi, types: string[]): KubeApi {
  return {
    ...api,
    close: () => api.close(),
    send: (...a) => api.send(...a),
    get: async (p, o) => {
      const res: IncomingMessage = await api.get(p, o);
      types.push(String(res.headers['content-type']));
      return res;
    },
  };
}

t.test('Pods listed as protobuf from a real apiserver are the pods listed as JSON', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.stop());
  const loader = apiFromKubeconfig(cp.kubeconfigPath);
  t.teardown(() => loader.close());
  await loadCluster(loader, [...VARIED, ...BULK]);
  const del = await cp.kubectl(['delete', 'pod', '-n', 'proto', 'held', '--wait=false']);
  t.equal(del.code, 0, del.stderr);

  const api = loadKubeApi(cp.kubeconfigPath);
  t.teardown(() => api.close());
  const jsonTypes: string[] = [];
  const protoTypes: string[] = [];
  const json = await listKind(recording(api, jsonTypes), 'Pod', undefined, undefined, undefined, { encoding: 'json' });
  const failures: Error[] = [];
  const proto = await listKind(recording(api, protoTypes), 'Pod', undefined, undefined, undefined, { onProtobufFailed: (e) => failures.push(e) });
  t.same(failures, [], 'no page failed to decode');
  t.equal(jsonTypes.length, 2, 'two JSON pages');
  t.ok(jsonTypes.every((c) => c.startsWith('application/json')), 'JSON answered');
  t.equal(protoTypes.length, 2, 'two protobuf pages');
  t.ok(protoTypes.every((c) => c.startsWith('application/vnd.kubernetes.protobuf')), `protobuf answered (${protoTypes.join(', ')})`);
  t.equal(proto.items.length, VARIED.length - 1 + BULK.length - 1, 'every pod');
  t.strictSame(proto.items, json.items, 'the same slim pods, in the same order');
  t.equal(proto.resourceVersion, json.resourceVersion);

  // Not vacuous: the fields that differ in shape between the encodings made it through.
  const get = (name: string): Pod => proto.items.find((p) => p.metadata.name === name) as Pod;
  const full = get('full');
  t.same(full.metadata.annotations, { 'sidecar.istio.io/inject': 'true', 'istio.io/rev': 'canary', 'meshguard.io/note': 'ünïcödé "quoted" \\ back\nnew line\ttab 😀', 'ambient.istio.io/redirection': 'enabled' });
  t.equal(full.metadata.labels?.['123'], 'numeric-key');
  t.equal(full.metadata.labels?.empty, '');
  t.same(full.status?.podIPs, [{ ip: '10.1.0.5' }, { ip: 'fd00:10:1::5' }]);
  t.same(full.spec.containers[0]?.livenessProbe, { httpGet: { port: 'http' } });
  t.same(full.spec.containers[0]?.startupProbe, { grpc: { port: 9090 } });
  t.same(full.spec.containers[1], { name: 'sidecar', ports: [{ name: 'admin', containerPort: 15000, protocol: 'TCP' }], startupProbe: { tcpSocket: { port: 'admin' } } });
  t.same(full.spec.initContainers, [{ name: 'init', ports: [{ containerPort: 15001, protocol: 'TCP' }] }]);
  t.equal(get('host-net').spec.hostNetwork, true);
  t.equal(get('bare').spec.hostNetwork, undefined);
  t.same(get('bare').status, { phase: 'Pending' }, 'the apiserver sets Pending on create');
  t.equal(get('cilium-abcde').spec.containers[0]?.image, 'quay.io/cilium/cilium:v1.16.3');
  t.match(get('held').metadata.deletionTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

  // From the apiserver's watch cache (resourceVersion=0, LiveSource's first list; ADR 0009): every pod in
  // one protobuf body, read as it streams, the pods the JSON list gave. The cache may trail etcd by a
  // moment (the delete above): the list is asked again until it has caught up.
  let cached: Awaited<ReturnType<typeof listKind>> | undefined;
  let cacheTypes: string[] = [];
  for (let i = 0; i < 50 && (cached === undefined || JSON.stringify(cached.items) !== JSON.stringify(json.items)); i++) {
    cacheTypes = [];
    cached = await listKind(recording(api, cacheTypes), 'Pod', undefined, undefined, undefined, { fromCache: true });
  }
  t.same(cacheTypes.length, 1, 'one body: the watch cache ignores limit');
  t.ok(cacheTypes[0]?.startsWith('application/vnd.kubernetes.protobuf'), 'in protobuf');
  t.strictSame(cached!.items, json.items, 'the same slim pods, in the same order');
  t.match(cached!.resourceVersion, /^\d+$/);
  // A kind in JSON from the cache: one page too.
  const nsTypes: string[] = [];
  const namespaces = await listKind(recording(api, nsTypes), 'Namespace', undefined, undefined, undefined, { fromCache: true });
  t.equal(nsTypes.length, 1);
  t.ok(namespaces.items.some((n) => n.metadata.name === 'bulk'));
});
