// Whole-cluster derived data kept per namespace (issue 21: the first request after a pod event). A pod
// event replaces one namespace's Pod list array, and so that namespace's class array; the filters and
// judging plans over every class (xdsClientClasses, ingressEnforcementChanged, apiserverClients,
// withoutDnsBackends, classPlan, a request's cluster-wide selection) keep every other namespace's part
// and assemble the cluster's answer from the parts. These tests count the classes asked about after a
// pod event elsewhere (only the changed namespace's), and compare every answer with a state built from
// scratch after near misses: a pod event in the same namespace that adds a class, in the DNS backends'
// namespace, in a new namespace, the last pod of a namespace gone, an RBAC change, a Namespace relabel.

import t from 'tap';
import type { Test } from 'tap';
import { mutationOf } from '../../src/core/change.ts';
import { KIND_NAMES } from '../../src/core/kinds.ts';
import type { ClusterState, KubeObject, Pod } from '../../src/core/objects.ts';
import { apiserverClients } from '../../src/policy/apiserver.ts';
import { classifiedPods, classPlan, classPlanComputations, groupsOf, keptFilterJudgements, podClassesIn } from '../../src/policy/classes.ts';
import { xdsClientClasses, xdsNamespaceScans } from '../../src/policy/control-plane.ts';
import { backendSegmentScans, withoutDnsBackends } from '../../src/policy/dns.ts';
import { byPodClass } from '../../src/impact/compare.ts';
import { ambientPods, ambientPodsElsewhere, ingressEnforcementChanged } from '../../src/policy/mesh-memo.ts';
import { classSelections, podsSelectedBy } from '../../src/policy/selection.ts';
import type { PolicyObject } from '../../src/core/objects.ts';
import { overlay } from '../../src/state/overlay.ts';
import { inRequestScope } from '../../src/state/request-scope.ts';
import type { MemoryState } from '../../src/state/store.ts';
import { baseCluster, ccnp, ciliumConfigMap, cnp, HEALTHY_CILIUM_CONFIG, memoryState, ns, pod, type Obj } from '../fixtures/cluster.ts';
import { DEFAULT_SETTINGS, makeChange } from '../rules/rule-harness.ts';

const roleBinding = (namespace: string): Obj => ({
  apiVersion: 'rbac.authorization.k8s.io/v1',
  kind: 'RoleBinding',
  metadata: { name: 'reader', namespace },
  roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' },
  subjects: [{ kind: 'ServiceAccount', name: 'default' }],
});

function objects(): Obj[] {
  return baseCluster([
    ns('a'), ns('b', { team: 'x' }), ns('c', { 'istio.io/dataplane-mode': 'ambient' }),
    pod('a', 'web-1', { app: 'web' }, { sidecar: true }), pod('a', 'web-2', { app: 'web' }, { sidecar: true }), pod('a', 'db-1', { app: 'db' }),
    pod('b', 'api-1', { app: 'api' }, { sidecar: true }), pod('b', 'api-2', { app: 'api' }, { sidecar: true }), pod('b', 'job-1', { app: 'job' }),
    pod('c', 'x-1', { app: 'x' }), pod('c', 'y-1', { app: 'y' }, { sidecar: true }),
    // Ingress enforced on a's web pods and b's pods, not elsewhere: enable-policy=always changes the rest.
    cnp('a', 'a-web-in', { endpointSelector: { matchLabels: { app: 'web' } }, ingress: [{ fromEntities: ['cluster'] }] }),
    cnp('b', 'b-in', { endpointSelector: {}, ingress: [{ fromEntities: ['cluster'] }] }),
    roleBinding('b'),
  ]);
}

const ref = (p: Pod): string => `${p.metadata.namespace}/${p.metadata.name}`;
const refs = (pods: readonly Pod[]): string[] => pods.map(ref);

/** The same objects in a state built from scratch, in the order the live state lists them. */
function rebuilt(live: MemoryState): MemoryState {
  const objs: KubeObject[] = [];
  for (const k of KIND_NAMES) for (const o of live.list(k)) objs.push(structuredClone(o));
  return memoryState(objs);
}

/** Everything the kept-per-namespace data answers for `s`, as plain data (each asked in its own request scope, as decide does). */
function answers(s: ClusterState): Record<string, unknown> {
  return inRequestScope(() => {
    const all = classifiedPods(s);
    const xds = xdsClientClasses(s);
    const enablePolicy = makeChange('UPDATE', ciliumConfigMap({ ...HEALTHY_CILIUM_CONFIG, 'enable-policy': 'always' }), { stored: s.get('ConfigMap', 'kube-system', 'cilium-config')! });
    const after = overlay(s, mutationOf(enablePolicy));
    // A request's own cluster-wide policy: a new object per request.
    const create = makeChange('CREATE', ccnp('every-pod', { endpointSelector: {}, egress: [{ toEntities: ['cluster'] }] }));
    const selected = podsSelectedBy(overlay(s, mutationOf(create)), create.object as PolicyObject);
    const plan = classPlan(groupsOf(all)!, byPodClass);
    const relabel = makeChange('UPDATE', ns('a', { 'istio.io/dataplane-mode': 'ambient' }), { stored: s.get('Namespace', undefined, 'a')! });
    return {
      all: refs(all),
      xds: { clients: xds.clients.map((c) => `${c.kind}:${ref(c.pod)}`), classOf: xds.classOf, classes: xds.classes.map((c) => `${c.kind}:${ref(c.pod)}`) },
      enforcementChanged: refs(ingressEnforcementChanged(s, after, classifiedPods(after))!),
      apiserverClients: refs(apiserverClients(s, all, DEFAULT_SETTINGS)),
      withoutDnsBackends: refs(withoutDnsBackends(s, all)),
      selected: refs(selected),
      selectedWithoutDnsBackends: refs(withoutDnsBackends(s, selected)),
      selectedClients: refs(apiserverClients(s, selected, DEFAULT_SETTINGS)),
      plan: { units: plan.units.map(refs), keyIndex: plan.keyIndex, keys: plan.keys.length },
      ambient: refs(ambientPods(s)),
      ambientElsewhere: refs(ambientPodsElsewhere(s, overlay(s, mutationOf(relabel)), 'a')),
    };
  });
}

interface Counts {
  readonly xdsNamespaces: number;
  readonly filtered: number;
  readonly backendSegments: number;
  readonly planned: number;
  readonly selected: number;
}
const counts = (): Counts => ({ xdsNamespaces: xdsNamespaceScans(), filtered: keptFilterJudgements(), backendSegments: backendSegmentScans(), planned: classPlanComputations(), selected: classSelections() });
const since = (c: Counts): Counts => {
  const n = counts();
  return { xdsNamespaces: n.xdsNamespaces - c.xdsNamespaces, filtered: n.filtered - c.filtered, backendSegments: n.backendSegments - c.backendSegments, planned: n.planned - c.planned, selected: n.selected - c.selected };
};

/** The live state's answers after `event` equal a rebuilt state's, and what was asked anew. */
function afterEvent(t: Test, live: MemoryState, event: (s: MemoryState) => void, label: string): Counts {
  answers(live); // everything kept before the event
  event(live);
  const before = counts();
  const got = answers(live);
  const asked = since(before);
  t.same(got, answers(rebuilt(live)), `${label}: the live state answers as a rebuilt one`);
  return asked;
}

const copyOf = (live: MemoryState, namespace: string, name: string, newName: string): KubeObject => {
  const p = structuredClone(live.get('Pod', namespace, name)!) as Pod;
  return { ...p, metadata: { ...p.metadata, name: newName } } as unknown as KubeObject;
};

t.test('a pod event in one namespace: only that namespace is asked again, the answers as a rebuilt state', async (t) => {
  const live = memoryState(objects());
  const classesOfC = podClassesIn(live, 'c').length;
  t.equal(classesOfC, 2);
  const asked = afterEvent(t, live, (s) => s.upsert('Pod', copyOf(s, 'c', 'y-1', 'y-2')), 'a new replica in c');
  t.equal(asked.xdsNamespaces, 1, 'xdsClientClasses scans only c');
  // ingressEnforcementChanged, apiserverClients and ambientPods ask c's classes only (the request's
  // selection of every pod is classifiedPods' own array, so its apiserverClients answer is the same), and
  // ambientPodsElsewhere c's ambient ones (x; y has a sidecar).
  t.equal(asked.filtered, 3 * classesOfC + 1, "the filters ask only c's classes");
  t.equal(asked.backendSegments, 0, "withoutDnsBackends: kube-system's answer kept");
  t.equal(asked.selected, classesOfC, "the request's cluster-wide selection asks only c's classes");
  t.equal(asked.planned, classesOfC, "the plan computes keys for c's classes only");
  // A cluster-wide `{}` selection is every pod's own array: what is kept per it is shared with the
  // requests that touch every pod (a cilium-config change).
  inRequestScope(() => {
    const create = makeChange('CREATE', ccnp('every-pod', { endpointSelector: {}, egress: [{ toEntities: ['cluster'] }] }));
    t.equal(podsSelectedBy(overlay(live, mutationOf(create)), create.object as PolicyObject), classifiedPods(live), '`{}` selects classifiedPods itself');
    const some = makeChange('CREATE', ccnp('some-pods', { endpointSelector: { matchLabels: { app: 'web' } }, egress: [{ toEntities: ['cluster'] }] }));
    t.not(podsSelectedBy(overlay(live, mutationOf(some)), some.object as PolicyObject), classifiedPods(live));
  });
  // A second request on the same revision asks nothing at all.
  const again = counts();
  answers(live);
  t.same(since(again), { xdsNamespaces: 0, filtered: 0, backendSegments: 0, planned: 0, selected: 0 }, 'the same revision again: nothing asked');
});

t.test('near misses: the changed namespace is asked again and answers afresh', async (t) => {
  const live = memoryState(objects());
  // A pod event in the same namespace that adds a class: a sidecar pod using the API server (b is bound).
  let asked = afterEvent(t, live, (s) => s.upsert('Pod', pod('b', 'new-1', { app: 'new' }, { sidecar: true }) as unknown as KubeObject), 'a new class in b');
  t.equal(asked.xdsNamespaces, 1);
  t.equal(asked.filtered, 3 * podClassesIn(live, 'b').length, "b's classes asked again, the new one among them");
  t.ok(answers(live)['apiserverClients'] !== undefined && (answers(live)['apiserverClients'] as string[]).includes('b/new-1'), 'the new class uses the API server');
  // A pod event in the DNS backends' namespace: withoutDnsBackends asks it again.
  asked = afterEvent(t, live, (s) => s.upsert('Pod', copyOf(s, 'kube-system', 'coredns-2', 'coredns-3')), 'a new DNS backend');
  t.ok(asked.backendSegments >= 1, "kube-system's classes filtered again");
  t.notOk((answers(live)['withoutDnsBackends'] as string[]).includes('kube-system/coredns-3'), 'the new backend is left out');
  // A pod in a namespace that had none, and the last pod of a namespace gone.
  afterEvent(t, live, (s) => s.upsert('Pod', pod('d', 'z-1', { app: 'z' }, { sidecar: true }) as unknown as KubeObject), 'a pod in a new namespace');
  afterEvent(t, live, (s) => {
    s.remove('Pod', 'c', 'x-1');
    s.remove('Pod', 'c', 'y-1');
  }, 'the pods of c gone');
  afterEvent(t, live, (s) => s.upsert('Pod', pod('c', 'x-9', { app: 'x' }) as unknown as KubeObject), 'c again, after d');
  // A pod that changes class in place (relabelled, stopped).
  afterEvent(t, live, (s) => {
    const p = structuredClone(s.get('Pod', 'a', 'db-1')!) as Pod;
    s.upsert('Pod', { ...p, metadata: { ...p.metadata, labels: { app: 'web' } } } as unknown as KubeObject);
  }, 'a pod relabelled into a selected class');
  afterEvent(t, live, (s) => {
    const p = structuredClone(s.get('Pod', 'b', 'api-1')!) as Pod;
    s.upsert('Pod', { ...p, status: { ...p.status, phase: 'Succeeded' } } as unknown as KubeObject);
  }, 'a client that stopped');
  // What the filters read besides the classes: RBAC, policies, Namespaces.
  asked = afterEvent(t, live, (s) => s.upsert('RoleBinding', roleBinding('a') as unknown as KubeObject), 'an RBAC change');
  t.ok((answers(live)['apiserverClients'] as string[]).includes('a/web-1'), "a's pods use the API server now");
  afterEvent(t, live, (s) => s.upsert('CiliumNetworkPolicy', cnp('c', 'c-in', { endpointSelector: {}, ingress: [{ fromEntities: ['cluster'] }] }) as unknown as KubeObject), 'a policy that enforces c');
  afterEvent(t, live, (s) => s.remove('CiliumNetworkPolicy', 'b', 'b-in'), 'a policy deleted');
  afterEvent(t, live, (s) => s.upsert('Namespace', ns('a', { team: 'y' }) as unknown as KubeObject), 'a Namespace relabelled');
  afterEvent(t, live, (s) => s.upsert('Namespace', ns('b', { 'istio.io/dataplane-mode': 'ambient' }) as unknown as KubeObject), 'a Namespace into ambient');
  t.ok((answers(live)['ambient'] as string[]).includes('b/job-1'), "b's pods without a sidecar are ambient now");
});
