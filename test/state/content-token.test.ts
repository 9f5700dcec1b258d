// contentToken(kind): the same object while a kind is unchanged, a new one when any object of it changes;
// overlays pass the base's through for other kinds. podByIp keys its answers on it, so a pod event must
// make the next lookup see the new pods.
import t from 'tap';
import { mutationOf, type Change } from '../../src/core/change.ts';
import { ipIdentity } from '../../src/policy/reachability.ts';
import { overlay } from '../../src/state/overlay.ts';
import { MemoryState } from '../../src/state/store.ts';
import { transformObject } from '../../src/state/transform.ts';
import type { KubeObject } from '../../src/core/objects.ts';

const pod = (ns: string, name: string, ip: string): KubeObject =>
  transformObject('Pod', { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns, labels: { app: name } }, spec: { containers: [{ name: 'c' }] }, status: { podIP: ip, phase: 'Running' } });
const service = (ns: string, name: string): KubeObject =>
  transformObject('Service', { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns }, spec: { clusterIP: '10.96.0.50', ports: [{ port: 80 }] } });

function change(operation: 'CREATE' | 'UPDATE' | 'DELETE', o: KubeObject, kind: 'Pod' | 'Service'): Change {
  return {
    uid: 'u', operation, kind, gvk: { group: '', version: 'v1', kind },
    namespace: o.metadata.namespace ?? '', name: o.metadata.name,
    ...(operation === 'DELETE' ? { oldObject: o } : { object: o }),
    dryRun: false, userInfo: { username: 'test' },
  };
}

t.test('a MemoryState replaces a kind\'s token exactly when that kind changes', async (t) => {
  const s = new MemoryState();
  s.upsert('Pod', pod('a', 'x', '10.0.0.1'));
  s.upsert('Service', service('a', 'web'));
  const pods = s.contentToken('Pod');
  const services = s.contentToken('Service');
  t.equal(s.contentToken('Pod'), pods, 'stable across reads');
  s.upsert('Pod', pod('b', 'y', '10.0.0.2'));
  t.not(s.contentToken('Pod'), pods, 'a new pod in another namespace changes the Pod token');
  t.equal(s.contentToken('Service'), services, 'the Service token is untouched');
  const afterAdd = s.contentToken('Pod');
  s.remove('Pod', 'b', 'y');
  t.not(s.contentToken('Pod'), afterAdd, 'a removal changes it');
  const afterRemove = s.contentToken('Pod');
  s.replaceAll('Pod', [pod('a', 'x', '10.0.0.1')]);
  t.not(s.contentToken('Pod'), afterRemove, 'a relist changes it');
  const other = new MemoryState();
  other.upsert('Service', service('a', 'web'));
  s.adopt(other);
  t.not(s.contentToken('Service'), services, 'adopting another state changes every token');
});

t.test('an overlay passes other kinds\' tokens through and has its own for the changed kind', async (t) => {
  const base = new MemoryState();
  base.upsert('Pod', pod('a', 'x', '10.0.0.1'));
  const o = overlay(base, mutationOf(change('CREATE', service('a', 'web'), 'Service')));
  t.equal(o.contentToken('Pod'), base.contentToken('Pod'), 'Pod token shared with the base');
  t.not(o.contentToken('Service'), base.contentToken('Service'), 'the changed kind has its own');
  const own = o.contentToken('Service');
  t.equal(o.contentToken('Service'), own, 'stable while the base does not change');
  base.upsert('Pod', pod('a', 'z', '10.0.0.3'));
  t.equal(o.contentToken('Service'), own, "the same after an event of another kind: the changed kind's content is the same");
  t.equal(o.contentToken('Pod'), base.contentToken('Pod'));
  base.upsert('Service', service('a', 'db'));
  t.not(o.contentToken('Service'), own, 'a new one once the base changed that kind');
  const next = o.contentToken('Service');
  t.equal(o.contentToken('Service'), next, 'and stable again');
});

t.test('ipIdentity sees pod events and the request\'s own pod', async (t) => {
  const s = new MemoryState();
  s.upsert('Pod', pod('a', 'x', '10.0.0.7'));
  t.equal(ipIdentity(s, '10.0.0.7', undefined).pod?.metadata.name, 'x');
  // The address moves to another pod (x restarted elsewhere, y took its IP): answers must follow.
  s.upsert('Pod', pod('a', 'x', '10.0.0.8'));
  s.upsert('Pod', pod('b', 'y', '10.0.0.7'));
  t.equal(ipIdentity(s, '10.0.0.7', undefined).pod?.metadata.name, 'y', 'the answer cached before the change is not reused');
  t.equal(ipIdentity(s, '10.0.0.8', undefined).pod?.metadata.name, 'x');
  // A request that creates a pod with a new address: the overlay's answer has it, the base's does not.
  const o = overlay(s, mutationOf(change('CREATE', pod('c', 'z', '10.0.0.9'), 'Pod')));
  t.equal(ipIdentity(o, '10.0.0.9', undefined).pod?.metadata.name, 'z');
  t.equal(ipIdentity(s, '10.0.0.9', undefined).pod, undefined);
  s.remove('Pod', 'b', 'y');
  t.equal(ipIdentity(s, '10.0.0.7', undefined).pod, undefined, 'a deleted pod\'s address is no pod\'s');
});
