// What a pod or Namespace watch event invalidates (issue 21, the live path under churn): the store
// replaces only the arrays of the (kind, namespace) it changes, so what is derived per namespace Pod
// list (the pod classes) is kept for every other namespace, and an event that changes nothing kept
// (readiness) keeps everything, the verdict cache included. Checked by identity of the derived arrays
// and by counting the decisions actually made, never by time.
import t from 'tap';
import type { Decide } from '../../src/core/decision.ts';
import type { Change } from '../../src/core/change.ts';
import type { KubeObject, Pod, PolicyObject } from '../../src/core/objects.ts';
import { podClassId, podClassesIn } from '../../src/policy/classes.ts';
import { policyModel } from '../../src/policy/model.ts';
import { classesSelectedIn, podsSelectedBy } from '../../src/policy/selection.ts';
import { MemoryState } from '../../src/state/store.ts';
import { transformObject } from '../../src/state/transform.ts';
import { cachingDecide } from '../../src/verdict/cache.ts';
import { baseCluster, ccnp, ns, pod } from '../fixtures/cluster.ts';

/** A live state as the watch events leave it: objects through the transform into a MemoryState. */
function live(objs: readonly { kind: string }[]): MemoryState {
  const s = new MemoryState('live');
  for (const o of objs) s.upsert(o.kind as never, transformObject(o.kind as never, o as never));
  return s;
}
/** A MODIFIED watch event for a pod: its labels (and readiness) as given, the rest as it was. */
function modify(s: MemoryState, namespace: string, name: string, labels: Record<string, string>, ready = 'True'): void {
  const old = s.get('Pod', namespace, name)!;
  const raw = { ...old, metadata: { ...old.metadata, labels }, status: { ...old.status, conditions: [{ type: 'Ready', status: ready }] } };
  s.upsert('Pod', transformObject('Pod', raw as never));
}
const names = (pods: readonly Pod[]): string[] => pods.map((p) => p.metadata.name).sort();
/** Each class of a namespace as its key and its pods' names. */
const grouping = (s: MemoryState, namespace: string): [string, string[]][] =>
  podClassesIn(s, namespace).map((c) => [c.key, names(c.pods)] as [string, string[]]).sort((x, y) => (x[0] < y[0] ? -1 : 1));

function cluster(): MemoryState {
  return live(baseCluster([
    ns('a', { team: 'x' }), ns('b', { team: 'y' }),
    pod('a', 'web-1', { app: 'web', 'pod-template-hash': 'h1' }, { ip: '10.0.0.1' }),
    pod('a', 'web-2', { app: 'web', 'pod-template-hash': 'h1' }, { ip: '10.0.0.2' }),
    pod('a', 'api-1', { app: 'api' }, { ip: '10.0.0.3' }),
    pod('b', 'web-1', { app: 'web' }, { ip: '10.0.1.1' }),
    pod('b', 'db-1', { app: 'db' }, { ip: '10.0.1.2' }),
  ]));
}

t.test('a pod label change in namespace A keeps namespace B\'s Pod list and class grouping', async (t) => {
  const s = cluster();
  const bList = s.list('Pod', 'b');
  const bClasses = podClassesIn(s, 'b');
  const aClasses = podClassesIn(s, 'a');
  modify(s, 'a', 'api-1', { app: 'api', tier: 'back' });
  t.equal(s.list('Pod', 'b'), bList, 'B\'s Pod list is the same array');
  t.equal(podClassesIn(s, 'b'), bClasses, 'B\'s classes are the same array: not grouped again');
  t.not(podClassesIn(s, 'a'), aClasses, 'A\'s classes are grouped again');
});

t.test('a change that moves a pod into another class changes exactly that pod\'s class; the others keep their members', async (t) => {
  const s = cluster();
  const before = grouping(s, 'a');
  const web1 = s.get('Pod', 'a', 'web-1')!;
  const web2 = s.get('Pod', 'a', 'web-2')!;
  modify(s, 'a', 'web-2', { app: 'web', 'pod-template-hash': 'h1', version: 'v2' });
  t.equal(s.get('Pod', 'a', 'web-1'), web1, 'the unchanged pod is the same object (its class id is kept with it)');
  t.not(s.get('Pod', 'a', 'web-2'), web2, 'the changed pod is a new object');
  const after = grouping(s, 'a');
  t.equal(after.length, before.length + 1, 'one class more');
  const moved = podClassId(s.get('Pod', 'a', 'web-2')!);
  t.same(after.filter(([k]) => k !== moved), before.map(([k, pods]) => [k, pods.filter((n) => n !== 'web-2')] as [string, string[]]), 'every other class keeps its key and members, less the moved pod');
  t.same(after.find(([k]) => k === moved)?.[1], ['web-2'], 'the moved pod is alone in its new class');
});

t.test('a pod change that leaves its class: readiness keeps everything; a rollout hash keeps the class keys', async (t) => {
  const s = cluster();
  const revision = s.revision;
  const aList = s.list('Pod', 'a');
  const aClasses = podClassesIn(s, 'a');
  modify(s, 'a', 'web-1', { app: 'web', 'pod-template-hash': 'h1' }, 'False');
  t.equal(s.revision, revision, 'a readiness change is no new state revision');
  t.equal(s.list('Pod', 'a'), aList, 'nor a new Pod list');
  t.equal(podClassesIn(s, 'a'), aClasses, 'nor a new grouping');
  const keys = grouping(s, 'a');
  modify(s, 'a', 'web-1', { app: 'web', 'pod-template-hash': 'h2' });
  t.not(s.revision, revision, 'a label change is a new revision');
  t.same(grouping(s, 'a'), keys, 'but the same classes with the same members: the rollout hash is no part of a class');
});

t.test('a Namespace relabel keeps every pod grouping and changes the selections that read Namespace labels', async (t) => {
  const s = cluster();
  const policy = transformObject('CiliumClusterwideNetworkPolicy', ccnp('team-x', { endpointSelector: { matchLabels: { 'io.cilium.k8s.namespace.labels.team': 'x' } }, ingress: [{}] }) as never) as PolicyObject;
  s.upsert('CiliumClusterwideNetworkPolicy', policy as KubeObject);
  const aClasses = podClassesIn(s, 'a');
  const bClasses = podClassesIn(s, 'b');
  t.same(names(podsSelectedBy(s, policy)), ['api-1', 'web-1', 'web-2'], 'before: the pods of namespace a');
  const nsB = s.get('Namespace', undefined, 'b')!;
  s.upsert('Namespace', { ...nsB, metadata: { ...nsB.metadata, labels: { ...nsB.metadata.labels, team: 'x' } } });
  t.equal(podClassesIn(s, 'a'), aClasses, 'a\'s classes are the same array');
  t.equal(podClassesIn(s, 'b'), bClasses, 'b\'s too: a class holds no Namespace label');
  t.same(names(podsSelectedBy(s, policy)), ['api-1', 'db-1', 'web-1', 'web-1', 'web-2'], 'after: the selection reads the new Namespace labels');
});

t.test('the verdict cache keeps its decisions across events that change nothing kept, and drops them on a pod label change', async (t) => {
  const s = cluster();
  let made = 0;
  const decide: Decide = () => {
    made++;
    return { allowed: true, findings: [], skipped: [] };
  };
  const cached = cachingDecide(decide);
  const change = {
    uid: 'u', operation: 'CREATE', kind: 'CiliumNetworkPolicy', gvk: { group: 'cilium.io', version: 'v2', kind: 'CiliumNetworkPolicy' },
    namespace: 'a', name: 'p', object: { apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: 'p', namespace: 'a' }, spec: { endpointSelector: {} } },
    dryRun: true, userInfo: { username: 'test' },
  } as unknown as Change;
  cached(change, s);
  cached(change, s);
  t.equal(made, 1, 'the second request is answered from the cache');
  modify(s, 'b', 'db-1', { app: 'db' }, 'False');
  cached(change, s);
  t.equal(made, 1, 'a readiness event keeps it');
  modify(s, 'b', 'db-1', { app: 'db', tier: 'data' });
  cached(change, s);
  t.equal(made, 2, 'a label change anywhere starts a new revision: the decision is made again (the cache keeps no per-namespace inputs)');
});

t.test('a cluster-wide selection after a pod event asks the changed namespace again and keeps every other namespace\'s answer', async (t) => {
  const s = cluster();
  const policy = transformObject('CiliumClusterwideNetworkPolicy', ccnp('all-web', { endpointSelector: { matchLabels: { app: 'web' } }, ingress: [{}] }) as never) as PolicyObject;
  s.upsert('CiliumClusterwideNetworkPolicy', policy as KubeObject);
  const [model] = policyModel(policy);
  const inA = classesSelectedIn(s, model!, 'a');
  const inB = classesSelectedIn(s, model!, 'b');
  t.same(names(podsSelectedBy(s, policy)), ['web-1', 'web-1', 'web-2']);
  modify(s, 'a', 'api-1', { app: 'web' });
  t.equal(classesSelectedIn(s, model!, 'b'), inB, 'b asked nothing again: the same answer array');
  t.not(classesSelectedIn(s, model!, 'a'), inA, 'a asked again');
  t.same(names(podsSelectedBy(s, policy)), ['api-1', 'web-1', 'web-1', 'web-2'], 'the pod that became web is selected');
  const nsB = s.get('Namespace', undefined, 'b')!;
  const inA2 = classesSelectedIn(s, model!, 'a');
  s.upsert('Namespace', { ...nsB, metadata: { ...nsB.metadata, labels: { ...nsB.metadata.labels, team: 'z' } } });
  t.equal(classesSelectedIn(s, model!, 'a'), inA2, 'a Namespace relabel of b keeps a\'s answer');
  t.not(classesSelectedIn(s, model!, 'b'), inB, 'and asks b again');
  // Exact: every answer equals a cold computation on a state built afresh from the same objects.
  const fresh = new MemoryState('fresh');
  for (const kind of ['Namespace', 'Pod', 'CiliumClusterwideNetworkPolicy', 'Node', 'ConfigMap', 'Service', 'EndpointSlice'] as const) for (const o of s.list(kind)) fresh.upsert(kind, o);
  t.same(names(podsSelectedBy(s, policy)), names(podsSelectedBy(fresh, policy)), 'the kept answers equal a cold computation');
});
