// The one Change builder (src/core/change.ts) that the webhook, `meshguard check`, the audit and the
// rule tests all use, with the state's slimming (src/state/slim.ts); and mutationOf, the Change as the
// overlay's mutation.

import t from 'tap';

import { buildChange, gvkOf, mutationOf, type Change } from '../../src/core/change.ts';
import type { KubeObject, Pod } from '../../src/core/objects.ts';
import { slimRequestObject } from '../../src/state/slim.ts';
import { transformObject } from '../../src/state/transform.ts';

const pod = (ns: string | undefined, name: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, ...(ns !== undefined ? { namespace: ns } : {}), labels: { app: 'web' }, managedFields: [{ manager: 'kubectl' }], annotations: { 'meshguard.io/skip': 'x', 'example.com/other': 'y' } },
  spec: { containers: [{ name: 'app', image: 'nginx', ports: [{ containerPort: 80 }] }], nodeName: 'n1' },
  status: { podIP: '10.0.0.1', conditions: [{ type: 'Ready' }] },
  ...extra,
});
const base = { uid: 'u1', gvk: gvkOf('v1', 'Pod') } as const;

t.test('gvkOf splits an apiVersion', async (t) => {
  t.same(gvkOf('v1', 'Pod'), { group: '', version: 'v1', kind: 'Pod' });
  t.same(gvkOf('cilium.io/v2', 'CiliumNetworkPolicy'), { group: 'cilium.io', version: 'v2', kind: 'CiliumNetworkPolicy' });
});

t.test('CREATE: the new object, slimmed; no old object', async (t) => {
  const c = buildChange({ ...base, operation: 'CREATE', object: { sent: pod('a', 'p') }, oldObject: { sent: pod('a', 'p') } }, slimRequestObject);
  t.equal(c.kind, 'Pod');
  t.equal(c.namespace, 'a');
  t.equal(c.name, 'p');
  t.equal(c.oldObject, undefined, 'a CREATE has no old object');
  t.same(c.object, transformObject('Pod', pod('a', 'p')), 'slim: what the state transform keeps');
  t.equal((c.object!.metadata as unknown as Record<string, unknown>).managedFields, undefined, 'managedFields dropped');
  t.same(c.object!.metadata.annotations, { 'meshguard.io/skip': 'x' }, 'only the annotations meshguard reads');
  t.equal(c.dryRun, false);
  t.same(c.userInfo, {});
});

t.test('UPDATE: both objects; DELETE: only the old one', async (t) => {
  const u = buildChange({ ...base, operation: 'UPDATE', object: { sent: pod('a', 'p') }, oldObject: { sent: pod('a', 'p', { spec: { containers: [] } }) } }, slimRequestObject);
  t.ok(u.object && u.oldObject);
  t.same((u.oldObject as Pod).spec.containers, []);
  const d = buildChange({ ...base, operation: 'DELETE', object: { sent: pod('a', 'p') }, oldObject: { sent: pod('a', 'p') } }, slimRequestObject);
  t.equal(d.object, undefined, 'a DELETE carries no new object');
  t.same(d.oldObject, transformObject('Pod', pod('a', 'p')));
  t.equal(d.name, 'p');
});

t.test("the request's namespace and name win, and fill an object that lacks them", async (t) => {
  const c = buildChange({ ...base, operation: 'CREATE', namespace: 'from-url', name: 'generated-x1', object: { sent: pod(undefined, '') } }, slimRequestObject);
  t.equal(c.namespace, 'from-url');
  t.equal(c.name, 'generated-x1');
  t.equal(c.object!.metadata.namespace, 'from-url', 'namespace filled from the request');
  t.equal(c.object!.metadata.name, 'generated-x1', 'name filled from the request (generateName)');
  const own = buildChange({ ...base, operation: 'CREATE', object: { sent: pod('own', 'mine') } }, slimRequestObject);
  t.equal(own.namespace, 'own', "without a request namespace, the object's own");
  t.equal(own.name, 'mine');
  const ns = buildChange({ uid: 'u', gvk: gvkOf('v1', 'Namespace'), operation: 'CREATE', namespace: 'ignored', object: { sent: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team' } } } }, slimRequestObject);
  t.equal(ns.object!.metadata.namespace, undefined, 'a cluster-scoped object gets no namespace');
});

t.test('a kind meshguard does not model keeps identity, labels and its meshguard annotations', async (t) => {
  const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: 'a', uid: 'x-1', labels: { l: '1', n: 2 }, annotations: { 'istio.io/rev': 'r', other: 'o' } }, data: { k: 'v' } };
  const c = buildChange({ uid: 'u', gvk: gvkOf('v1', 'Secret'), operation: 'CREATE', object: { sent: secret } }, slimRequestObject);
  t.equal(c.kind, undefined);
  t.same(c.object, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: 'a', uid: 'x-1', labels: { l: '1' }, annotations: { 'istio.io/rev': 'r' } } });
});

t.test('TypeMeta comes from the request kind when the object lacks it; CONNECT options are not modeled', async (t) => {
  const { apiVersion: _a, kind: _k, ...bare } = pod('a', 'p');
  const c = buildChange({ ...base, operation: 'CREATE', object: { sent: bare } }, slimRequestObject);
  t.equal(c.object!.apiVersion, 'v1');
  t.equal(c.object!.kind, 'Pod');
  const connect = buildChange({ ...base, operation: 'CONNECT', object: { sent: { apiVersion: 'v1', kind: 'PodExecOptions', metadata: { name: '' }, command: ['sh'] } }, namespace: 'a', name: 'p' }, slimRequestObject);
  t.same(connect.object, { apiVersion: 'v1', kind: 'PodExecOptions', metadata: { name: 'p', namespace: 'a' } });
  t.equal(connect.oldObject, undefined);
});

t.test('a stored object is taken as it is; a sent non-object is dropped', async (t) => {
  const stored = transformObject('Pod', pod('a', 'p'));
  const c = buildChange({ ...base, operation: 'UPDATE', object: { sent: pod('a', 'p') }, oldObject: { stored } }, slimRequestObject);
  t.equal(c.oldObject, stored, 'same object, not a copy');
  const audit = buildChange({ ...base, operation: 'CREATE', object: { stored } });
  t.equal(audit.object, stored, 'no slim function needed for stored objects');
  t.throws(() => buildChange({ ...base, operation: 'CREATE', object: { sent: pod('a', 'p') } }), /needs a slim function/);
  const junk = buildChange({ ...base, operation: 'CREATE', namespace: 'a', name: 'p', object: { sent: 'not an object' } }, slimRequestObject);
  t.equal(junk.object, undefined);
  t.equal(junk.name, 'p');
});

t.test('mutationOf: what the overlay applies', async (t) => {
  const obj = transformObject('Pod', pod('a', 'p'));
  const create = buildChange({ ...base, operation: 'CREATE', object: { stored: obj } });
  t.same(mutationOf(create), { kind: 'Pod', namespace: 'a', name: 'p', object: obj });
  const del = buildChange({ ...base, operation: 'DELETE', oldObject: { stored: obj } });
  t.same(mutationOf(del), { kind: 'Pod', namespace: 'a', name: 'p', delete: true });
  const cns = buildChange({ uid: 'u', gvk: gvkOf('v1', 'Namespace'), operation: 'UPDATE', namespace: 'stray', object: { stored: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team' } } as KubeObject } });
  t.same(mutationOf(cns), { kind: 'Namespace', namespace: '', name: 'team', object: cns.object }, 'cluster-scoped: no namespace');
  const none: Change[] = [
    buildChange({ ...base, operation: 'CONNECT', namespace: 'a', name: 'p' }),
    buildChange({ ...base, operation: 'CREATE', namespace: 'a', name: 'p' }),
    buildChange({ uid: 'u', gvk: gvkOf('v1', 'Secret'), operation: 'DELETE', namespace: 'a', name: 's' }),
  ];
  for (const c of none) t.equal(mutationOf(c), undefined, `${c.operation} ${c.gvk.kind}: nothing to apply`);
});
