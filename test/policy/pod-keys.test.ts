// The string keys of a pod (ref, identity, class keys, shape, class id) are kept in one record per pod
// object (issue 21: one record instead of six WeakMap tables of 2 MB each at 50k pods; the record rides on
// the pod object, so no ephemeron table at all, except for a frozen pod). Each pod's record holds
// its own keys only, every key is the one a fresh copy of the pod computes, and a key asked with a node
// other than '', '*' or the pod's own is not stored.

import t from 'tap';
import { podClassId } from '../../src/policy/classes.ts';
import { ambientIngressClassKey, podClassKey, podIdentityKey, podRef } from '../../src/policy/identity.ts';
import { knownPodKeys } from '../../src/policy/memo.ts';
import type { Pod } from '../../src/core/objects.ts';
import { pod } from '../fixtures/cluster.ts';

const onNode = (p: ReturnType<typeof pod>, node: string): Pod => {
  const o = p as unknown as Pod;
  return { ...o, spec: { ...o.spec, nodeName: node } } as Pod;
};
const keysOf = (p: Pod): string[] => [podRef(p), podIdentityKey(p), podClassKey(p, p.spec.nodeName ?? ''), podClassKey(p, ''), podClassKey(p, '*'), ambientIngressClassKey(p), podClassId(p)];

t.test('each pod record holds that pod\'s keys, the same as a fresh copy computes', async (t) => {
  const a = onNode(pod('a', 'web-1', { app: 'web' }, { ip: '10.1.0.1' }), 'n1');
  const b = onNode(pod('b', 'db-1', { app: 'db' }, { ip: '10.1.0.2', sa: 'db', ports: [{ name: 'pg', containerPort: 5432 }] }), 'n2');
  t.equal(knownPodKeys(a), undefined, 'no record before a key is asked');
  const ka = keysOf(a);
  const kb = keysOf(b);
  t.same(ka, keysOf(structuredClone(a)), 'a: a fresh copy computes the same keys');
  t.same(kb, keysOf(structuredClone(b)), 'b: a fresh copy computes the same keys');
  t.same(keysOf(a), ka, 'asked again: the kept keys');
  const ra = knownPodKeys(a)!;
  const rb = knownPodKeys(b)!;
  t.not(ra, rb, 'one record per pod');
  t.same([ra.ref, ra.identity, ra.classOwnNode, ra.classNoNode, ra.classAnyNode, ra.ambient, ra.classId], ka);
  t.same([rb.ref, rb.identity, rb.classOwnNode, rb.classNoNode, rb.classAnyNode, rb.ambient, rb.classId], kb);
  t.equal(ra.ref, 'a/web-1');
  t.equal(rb.ref, 'b/db-1');
  t.not(ra.identity, rb.identity);
  t.ok(ra.shape !== undefined && ra.shape !== rb.shape, 'the shape key (read by the ambient key) is kept per pod too');
});

t.test('a class key for another node is computed, not stored over the kept ones', async (t) => {
  const a = onNode(pod('a', 'web-1', { app: 'web' }, { ip: '10.1.0.1' }), 'n1');
  const own = podClassKey(a, 'n1');
  const none = podClassKey(a, '');
  const other = podClassKey(a, 'n9');
  t.not(other, own);
  t.not(other, none);
  const r = knownPodKeys(a)!;
  t.equal(r.classOwnNode, own);
  t.equal(r.classNoNode, none);
  t.equal(r.classAnyNode, undefined, "'*' not asked yet");
  t.equal(podClassKey(a, 'n9'), other, 'the same key again');
  t.equal(podClassKey(a, 'n1'), own);
});

t.test('the record rides on the pod object out of sight: a spread copy with other labels computes its own keys', async (t) => {
  const a = onNode(pod('a', 'web-1', { app: 'web' }, { ip: '10.1.0.1' }), 'n1');
  const json = JSON.stringify(a);
  const names = Object.keys(a);
  const ka = keysOf(a);
  t.equal(JSON.stringify(a), json, 'JSON unchanged');
  t.same(Object.keys(a), names, 'no enumerable property added');
  // How the overlay and transform derive a pod: a spread with new metadata. Had the record been copied,
  // the relabelled copy would answer with the old labels' keys.
  const relabelled = { ...a, metadata: { ...a.metadata, labels: { app: 'db' } } } as Pod;
  t.equal(knownPodKeys(relabelled), undefined, 'the copy starts with no record');
  const kr = keysOf(relabelled);
  t.not(kr[1], ka[1], 'its identity is its own');
  t.same(kr, keysOf(structuredClone(relabelled)));
  t.same(keysOf(a), ka, "the original's keys are unchanged");
  // V8 sees no WeakMap entry for it: the record is an own (non-enumerable) symbol property.
  t.equal(Object.getOwnPropertySymbols(a).length, 1);
  t.equal(Object.getOwnPropertyDescriptor(a, Object.getOwnPropertySymbols(a)[0]!)?.enumerable, false);
});

t.test('a frozen pod keeps its record as well (in the memo)', async (t) => {
  const a = Object.freeze(onNode(pod('a', 'web-1', { app: 'web' }, { ip: '10.1.0.1' }), 'n1'));
  const ka = keysOf(a);
  const r = knownPodKeys(a);
  t.ok(r, 'a record');
  t.equal(r!.ref, 'a/web-1');
  t.same(keysOf(a), ka);
  t.equal(knownPodKeys(a), r, 'the same record when asked again');
  t.same(ka, keysOf(structuredClone(a)));
});
