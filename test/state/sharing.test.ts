// The transform shares identical label maps, container lists and repeated strings between cached
// objects to keep large clusters small; sharing must never merge objects whose content differs.
import t from 'tap';
import { transformObject } from '../../src/state/transform.ts';
import type { Pod } from '../../src/core/objects.ts';

const pod = (name: string, labels: Record<string, unknown>, containers: unknown[] = [{ name: 'app', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] }]) =>
  transformObject('Pod', JSON.parse(JSON.stringify({
    apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'shop', labels },
    spec: { serviceAccountName: 'web', nodeName: 'n1', containers }, status: { podIP: '10.0.0.1', podIPs: [{ ip: '10.0.0.1' }] },
  }))) as Pod;

t.test('replicas share their labels and containers', async (t) => {
  const a = pod('a', { app: 'web', version: 'v1' });
  const b = pod('b', { app: 'web', version: 'v1' });
  t.equal(a.metadata.labels, b.metadata.labels);
  t.equal(a.spec.containers, b.spec.containers);
  t.same(b.metadata.labels, { app: 'web', version: 'v1' });
  t.same(b.spec.containers, [{ name: 'app', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] }]);
  t.not(a.metadata, b.metadata);
});

t.test('replicas share their init containers too; different ones are not shared', async (t) => {
  const withInit = (name: string, init: unknown[]) =>
    transformObject('Pod', JSON.parse(JSON.stringify({
      apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'shop', labels: { app: 'web' } },
      spec: { containers: [{ name: 'app' }], initContainers: init }, status: { podIP: '10.0.0.1' },
    }))) as Pod;
  const a = withInit('a', [{ name: 'istio-init' }]);
  const b = withInit('b', [{ name: 'istio-init' }]);
  const c = withInit('c', [{ name: 'istio-validation' }]);
  t.equal(a.spec.initContainers, b.spec.initContainers, 'one list for both replicas');
  t.same(a.spec.initContainers, [{ name: 'istio-init' }]);
  t.not(a.spec.initContainers, c.spec.initContainers);
  t.same(c.spec.initContainers, [{ name: 'istio-validation' }]);
  t.equal(withInit('d', []).spec.initContainers, undefined, 'none: no list');
  t.equal(withInit('e', [{ name: 'app' }]).spec.initContainers, a.spec.containers, 'an init list equal to a container list is the same list');
});

t.test('different content is never shared', async (t) => {
  const cases: Record<string, unknown>[] = [
    { a: 'b\u0000c' }, { 'a\u0000b': 'c' }, { a: 'b', c: '' }, { a: 'b' }, { '1:a': 'b' }, { '1': 'a:b' },
    { a: '1' }, { a: 1 }, { b: 'a', a: 'b' }, { a: 'b', b: 'a' }, { ab: '' }, { a: 'b' + '' },
  ];
  const seen = cases.map((labels, i) => ({ labels, got: pod(`p${i}`, labels).metadata.labels }));
  for (const { labels, got } of seen) t.same(got, Object.fromEntries(Object.entries(labels).map(([k, v]) => [k, String(v)])));
  // Same entries in the same order share; anything else does not.
  for (const x of seen) {
    for (const y of seen) {
      if (x.got === y.got) t.same(Object.entries(x.got ?? {}), Object.entries(y.got ?? {}));
    }
  }
  const ports = [
    [{ name: 'app', ports: [{ containerPort: 80 }] }],
    [{ name: 'app', ports: [{ containerPort: 80, name: '' }] }],
    [{ name: 'app', ports: [{ containerPort: 80, protocol: 'UDP' }] }],
    [{ name: 'app', ports: [{ containerPort: 81 }] }],
    [{ name: 'app' }, { name: 'x' }],
    [{ name: 'appx' }],
    [{ name: 'app', ports: [{ containerPort: 80 }, { containerPort: 81 }] }],
    [{ name: 'app', ports: [{ containerPort: 80 }] }, { name: 'b', ports: [{ containerPort: 81 }] }],
  ];
  const lists = ports.map((c, i) => pod(`c${i}`, {}, c).spec.containers);
  t.equal(new Set(lists).size, ports.length - 0, 'each distinct list is its own object');
  t.equal(pod('again', {}, ports[0]!).spec.containers, lists[0]);
});

t.test('podIPs[0] equal to podIP, and objects without undefined keys', async (t) => {
  const a = pod('a', { app: 'web' });
  t.equal(a.status?.podIPs?.[0]?.ip, a.status?.podIP);
  t.same(Object.keys(a.metadata), ['name', 'namespace', 'labels']);
  t.same(Object.keys(a.spec), ['serviceAccountName', 'nodeName', 'containers']);
});
