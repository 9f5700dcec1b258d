import t from 'tap';

import { sameJson, MemoryState } from '../../src/state/store.ts';
import { transformObject } from '../../src/state/transform.ts';
import type { Pod } from '../../src/core/objects.ts';

// A pod as the apiserver sends it; `extra` changes fields the transform drops or keeps.
function rawPod(extra: { labels?: Record<string, string>; resourceVersion?: string; conditions?: unknown[]; annotations?: Record<string, string>; podIP?: string } = {}) {
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: {
      name: 'web-1', namespace: 'shop', uid: 'u1', resourceVersion: extra.resourceVersion ?? '1',
      labels: extra.labels ?? { app: 'web' },
      annotations: { 'istio.io/rev': 'default', ...extra.annotations },
      managedFields: [{ manager: 'kubelet', time: `t${extra.resourceVersion ?? '1'}` }],
    },
    spec: { containers: [{ name: 'app', ports: [{ containerPort: 8080 }] }], nodeName: 'n1' },
    status: { phase: 'Running', podIP: extra.podIP ?? '10.0.0.1', conditions: extra.conditions ?? [] },
  };
}
const pod = (extra?: Parameters<typeof rawPod>[0]): Pod => transformObject('Pod', rawPod(extra)) as Pod;

t.test('sameJson: deep equality of plain JSON, key order aside', async (t) => {
  t.ok(sameJson({ a: 1, b: [1, { c: 'x' }] }, { b: [1, { c: 'x' }], a: 1 }));
  t.notOk(sameJson({ a: 1 }, { a: 1, b: 2 }));
  t.notOk(sameJson({ a: 1, b: 2 }, { a: 1, c: 2 }));
  t.notOk(sameJson([1, 2], [2, 1]), 'array order counts');
  t.notOk(sameJson([1], { 0: 1 }));
  t.notOk(sameJson({ 0: 1 }, [1]));
  t.notOk(sameJson({ a: null }, { a: {} }));
  t.notOk(sameJson({ a: '1' }, { a: 1 }));
  t.notOk(sameJson({ a: { b: [true] } }, { a: { b: [false] } }));
  t.ok(sameJson(null, null));
});

t.test('an upsert that changes nothing the transform keeps leaves the state and its caches as they are', async (t) => {
  const s = new MemoryState();
  const first = pod();
  s.upsert('Pod', first);
  const list = s.list('Pod', 'shop');
  const all = s.list('Pod');
  const token = s.contentToken('Pod');
  const revision = s.revision;

  // A kubelet status update: new resourceVersion, managedFields and conditions.
  const statusOnly = pod({ resourceVersion: '2', conditions: [{ type: 'Ready', status: 'True' }] });
  t.not(statusOnly, first);
  t.equal(s.upsert('Pod', statusOnly), first, 'returns the stored object');
  t.equal(s.get('Pod', 'shop', 'web-1'), first, 'the stored object stays');
  t.equal(s.revision, revision, 'no new revision');
  t.equal(s.list('Pod', 'shop'), list, 'namespace list cache kept');
  t.equal(s.list('Pod'), all, 'cluster list cache kept');
  t.equal(s.contentToken('Pod'), token, 'content token kept');
  t.equal(s.podsWithLabel('shop', 'app', 'web')[0], first);

  // An annotation meshguard does not keep changes nothing either.
  s.upsert('Pod', pod({ resourceVersion: '3', annotations: { 'kubectl.kubernetes.io/restartedAt': 'now' } }));
  t.equal(s.revision, revision);

  // Anything kept is a change: labels, kept annotations, status IPs.
  const changes: [string, Pod][] = [
    ['a label', pod({ resourceVersion: '4', labels: { app: 'web', tier: 'front' } })],
    ['a kept annotation', pod({ resourceVersion: '5', labels: { app: 'web', tier: 'front' }, annotations: { 'istio.io/rev': 'canary' } })],
    ['the pod IP', pod({ resourceVersion: '6', labels: { app: 'web', tier: 'front' }, annotations: { 'istio.io/rev': 'canary' }, podIP: '10.0.0.2' })],
  ];
  let rev = s.revision;
  for (const [what, next] of changes) {
    const stored = s.get('Pod', 'shop', 'web-1');
    t.equal(s.upsert('Pod', next), stored, `${what}: returns the replaced object`);
    t.equal(s.get('Pod', 'shop', 'web-1'), next, `${what}: replaced`);
    t.ok(s.revision > rev, `${what}: new revision`);
    t.not(s.contentToken('Pod'), token, `${what}: new content token`);
    rev = s.revision;
  }
  t.equal(s.podsWithLabel('shop', 'tier', 'front').length, 1, 'the label index follows the replacement');
  t.equal(s.podsWithLabel('shop', 'app', 'web')[0], s.get('Pod', 'shop', 'web-1'));
});

t.test('the transform drops resourceVersion and uid', async (t) => {
  t.same(Object.keys(pod().metadata).sort(), ['annotations', 'labels', 'name', 'namespace']);
  t.ok(sameJson(pod({ resourceVersion: '7' }), pod({ resourceVersion: '8' })));
});
