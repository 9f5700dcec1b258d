// Pod classes (issue 21): pods interchangeable for every policy question are grouped once, and
// selection and before/after judging cost per class. Near misses first: what must and must not share
// a class; then that the work is done per class (counted, not timed).

import t from 'tap';
import { judgeByClass, touchedPods } from '../../src/impact/index.ts';
import { classifiedPods, groupsOf, LABELS_PER_POD, podClassId, podClassesIn, readsNode } from '../../src/policy/classes.ts';
import { knownPodKeys } from '../../src/policy/memo.ts';
import { identityLabelKept } from '../../src/policy/selectors.ts';
import { podsSelectedBy } from '../../src/policy/selection.ts';
import { mutationOf } from '../../src/core/change.ts';
import { overlay } from '../../src/state/overlay.ts';
import type { Pod, PolicyObject } from '../../src/core/objects.ts';
import { baseCluster, ccnp, memoryState, ns, pod } from '../fixtures/cluster.ts';
import { makeChange } from '../rules/rule-harness.ts';

const get = (s: ReturnType<typeof memoryState>, namespace: string, name: string): Pod => s.get('Pod', namespace, name)!;

t.test('every label left out of a class is one Cilium drops from identities', async (t) => {
  for (const k of LABELS_PER_POD) t.notOk(identityLabelKept(k), k);
});

t.test('near misses: rollout hash, one identity label, namespace, service account', async (t) => {
  const s = memoryState(baseCluster([
    ns('a'), ns('b'),
    pod('a', 'web-1', { app: 'web', 'pod-template-hash': 'aaa' }),
    pod('a', 'web-2', { app: 'web', 'pod-template-hash': 'bbb' }),
    pod('a', 'web-v2', { app: 'web', 'pod-template-hash': 'aaa', version: 'v2' }),
    pod('b', 'web-1', { app: 'web', 'pod-template-hash': 'aaa' }),
    pod('a', 'web-sa', { app: 'web', 'pod-template-hash': 'aaa' }, { sa: 'other' }),
    pod('a', 'web-host', { app: 'web', 'pod-template-hash': 'aaa' }, { hostNetwork: true }),
  ]));
  const id = (namespace: string, name: string): string => podClassId(get(s, namespace, name));
  t.equal(id('a', 'web-1'), id('a', 'web-2'), 'pods differing only in pod-template-hash share a class');
  t.not(id('a', 'web-1'), id('a', 'web-v2'), 'one identity label more: another class');
  t.not(id('a', 'web-1'), id('b', 'web-1'), 'same labels in another namespace: another class');
  t.not(id('a', 'web-1'), id('a', 'web-sa'), 'another service account: another class');
  t.not(id('a', 'web-1'), id('a', 'web-host'), 'host network: another class');
  const classes = podClassesIn(s, 'a');
  t.same(classes.map((c) => c.pods.map((p) => p.metadata.name)), [['web-1', 'web-2'], ['web-v2'], ['web-sa'], ['web-host']]);
  t.equal(podClassesIn(s, 'a'), classes, 'memoised while the namespace keeps its pods');
  t.same(podClassesIn(s).length, classes.length + 1 + podClassesIn(s, 'kube-system').length + podClassesIn(s, 'istio-system').length + podClassesIn(s, 'default').length);
});

t.test('a pod event regroups its own namespace only', async (t) => {
  const s = memoryState(baseCluster([ns('a'), ns('b'), pod('a', 'x-1', { app: 'x' }), pod('b', 'y-1', { app: 'y' })]));
  const a = podClassesIn(s, 'a');
  const b = podClassesIn(s, 'b');
  s.upsert('Pod', pod('a', 'x-2', { app: 'x', 'pod-template-hash': 'new' }) as never);
  t.not(podClassesIn(s, 'a'), a, 'namespace a regrouped');
  t.equal(podClassesIn(s, 'b'), b, 'namespace b kept');
  t.same(podClassesIn(s, 'a').map((c) => c.pods.length), [2], 'the new replica joined the class');
});

t.test('a Namespace relabel moves a whole class in or out of a selection', async (t) => {
  const pods = Array.from({ length: 6 }, (_, i) => pod('a', `web-${i}`, { app: 'web', 'pod-template-hash': `h${i % 2}` }));
  const stored = ccnp('t1', { endpointSelector: { matchExpressions: [{ key: 'io.cilium.k8s.namespace.labels.team', operator: 'In', values: ['t1'] }] }, egress: [{}] });
  const s = memoryState(baseCluster([ns('a', { team: 't1' }), ns('b', { team: 't1' }), ...pods, pod('b', 'web-0', { app: 'web' }), stored]));
  const policy = s.get('CiliumClusterwideNetworkPolicy', undefined, 't1') as PolicyObject;
  const selected = (st: Parameters<typeof podsSelectedBy>[0]): string[] => podsSelectedBy(st, policy).map((p) => `${p.metadata.namespace}/${p.metadata.name}`).sort();
  t.equal(selected(s).length, 7);
  const nsA = s.get('Namespace', undefined, 'a')!;
  const relabel = makeChange('UPDATE', { ...nsA, metadata: { ...nsA.metadata, labels: { ...nsA.metadata.labels, team: 't2' } } } as never, nsA as never);
  const after = overlay(s, mutationOf(relabel));
  t.same(selected(after), ['b/web-0'], 'the six pods of a (one class) left together');
  const touched = touchedPods(relabel, s, after, { direction: 'egress' });
  t.equal(touched.pods.length, 6);
  t.equal(groupsOf(touched.pods)?.length, 1, 'touched as one class');
});

t.test('selection asks a selector once per class, not once per pod', async (t) => {
  const pods = Array.from({ length: 300 }, (_, i) => pod('big', `p-${i}`, { app: `app-${i % 3}`, 'pod-template-hash': `h${i}` }));
  const s = memoryState(baseCluster([ns('big', { team: 'x' }), ...pods]));
  // Not indexable (matchExpressions only): every class of the cluster is a candidate.
  const policy = ccnp('all-x', { endpointSelector: { matchExpressions: [{ key: 'io.cilium.k8s.namespace.labels.team', operator: 'Exists' }] }, egress: [{}] }) as unknown as PolicyObject;
  const selected = podsSelectedBy(s, policy);
  t.equal(selected.length, 300);
  const asked = s.list('Pod', 'big').filter((p) => knownPodKeys(p)?.identity !== undefined).length;
  t.equal(asked, 3, 'one pod per class had its identity (and so its selector match) computed');
  t.equal(groupsOf(selected)?.length, 3, 'the answer carries its classes');
});

t.test('judgeByClass calls its judge once per class, once per class and node token when the key reads the node', async (t) => {
  const pods = Array.from({ length: 200 }, (_, i) => pod('big', `p-${i}`, { app: `app-${i % 4}` }));
  const s = memoryState(baseCluster([ns('big'), ...pods]));
  const all = classifiedPods(s, 'big');
  let calls = 0;
  const r = judgeByClass(all, (p) => podClassId(p), () => (calls++, { outcome: 'lost' as const }));
  t.equal(calls, 4);
  t.equal(r.lost.length, 200, 'every pod of a lost class counted');
  t.equal(groupsOf(r.lost)?.length, 4, 'the victims keep their classes');
  // The fixture's pods share one node: give each class two tokens by pod number (as two nodes would).
  calls = 0;
  const token = (p: Pod): string => String(Math.floor(Number(p.metadata.name.slice(2)) / 4) % 2);
  const byParity = readsNode((p: Pod) => `${podClassId(p)}|${token(p)}`, token);
  judgeByClass(all, byParity, () => (calls++, { outcome: 'ok' as const }));
  t.equal(calls, 8);
  // An array not built from classes is judged pod by pod, as before.
  calls = 0;
  judgeByClass([...all], (p) => podClassId(p), () => (calls++, { outcome: 'ok' as const }));
  t.equal(calls, 4, 'the class key still merges pods of one class');
});
