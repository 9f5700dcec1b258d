// The per-class tables of the long-lived state (DNS and API server reach, selecting lists by identity, the
// base's decision facts) are kept across pod and EndpointSlice events (src/policy/memo.ts
// keptAcrossPodEvents): a pod event elsewhere keeps every class's answer, a new class is judged on its
// own, and an event on what the answers read by name (a DNS backend, a slice of a selector-less Service)
// or on any other kind judges them again. Each case checks the kept answers against a state built from
// scratch, and counts the classes judged after the event.

import t from 'tap';
import type { Test } from 'tap';
import type { ClusterState, KubeObject, Pod } from '../../src/core/objects.ts';
import { kindOf } from '../../src/core/kinds.ts';
import { mutationOf } from '../../src/core/change.ts';
import { apiserverReach } from '../../src/policy/apiserver.ts';
import { dnsTarget, reachesDns, reachesDnsEgressOnly } from '../../src/policy/dns.ts';
import { keptAcrossPodEvents, stableContentToken } from '../../src/policy/memo.ts';
import { reachComputations, reachDerivations } from '../../src/policy/reach-memo.ts';
import { baseFactsComputed } from '../../src/policy/reachability.ts';
import { policiesSelecting, selectingTableMisses } from '../../src/policy/selection.ts';
import { overlay } from '../../src/state/overlay.ts';
import { inRequestScope } from '../../src/state/request-scope.ts';
import type { MemoryState } from '../../src/state/store.ts';
import { baseCluster, ccnp, cnp, memoryState, ns, pod, withObject, type Obj } from '../fixtures/cluster.ts';
import { makeChange } from '../rules/rule-harness.ts';

const dnsPorts = [{ ports: [{ port: '53', protocol: 'ANY' }] }];
const toDns = (labels: Record<string, string>) => ({ toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', ...labels } }], toPorts: dnsPorts });

/** A selector-less Service whose EndpointSlice lists a backend address (toServices reads the slice). */
const extDns: Obj = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'ext-dns', namespace: 'kube-system' }, spec: { clusterIP: '10.96.0.53', ports: [{ port: 53, protocol: 'UDP' }] } };
const extSlice = (addr: string): Obj => ({
  apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
  metadata: { name: 'ext-dns-1', namespace: 'kube-system', labels: { 'kubernetes.io/service-name': 'ext-dns' } },
  addressType: 'IPv4', endpoints: [{ addresses: [addr] }], ports: [{ port: 53, protocol: 'UDP' }],
});
/** A slice of kube-dns (a Service with a selector: never read). */
const kubeDnsSlice = (addrs: string[]): Obj => ({
  apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
  metadata: { name: 'kube-dns-x1', namespace: 'kube-system', labels: { 'kubernetes.io/service-name': 'kube-dns' } },
  addressType: 'IPv4', endpoints: addrs.map((a) => ({ addresses: [a] })), ports: [{ name: 'dns', port: 53, protocol: 'UDP' }],
});

const COREDNS_B_IP = '10.0.3.2';
function objects(): Obj[] {
  const objs = baseCluster([
    ns('a'), ns('b'), ns('c'), ns('d'),
    pod('a', 'web-1', { app: 'web' }), pod('a', 'web-2', { app: 'web' }), pod('a', 'db', { app: 'db' }),
    pod('b', 'api', { app: 'api' }),
    pod('c', 'job', { app: 'job' }),
    pod('d', 'tool', { app: 'tool' }),
    // a: DNS to any backend; c: only to the backend labelled variant=b; d: through the selector-less Service.
    cnp('a', 'a-egress', { endpointSelector: {}, egress: [toDns({ 'k8s-app': 'kube-dns' }), { toEntities: ['kube-apiserver'] }] }),
    cnp('c', 'c-egress', { endpointSelector: {}, egress: [toDns({ 'k8s-app': 'kube-dns', variant: 'b' })] }),
    cnp('d', 'd-egress', { endpointSelector: {}, egress: [{ toServices: [{ k8sService: { serviceName: 'ext-dns', namespace: 'kube-system' } }] }] }),
    extDns, extSlice(COREDNS_B_IP), kubeDnsSlice(['10.0.9.1']),
  ]);
  // coredns-2 carries variant=b and a fixed address (the selector-less Service's slice lists it).
  const c2 = structuredClone(objs.find((o) => o.kind === 'Pod' && o.metadata.name === 'coredns-2')!) as Obj & { status: Record<string, unknown> };
  (c2.metadata as Record<string, unknown>)['labels'] = { 'k8s-app': 'kube-dns', variant: 'b' };
  c2.status['podIP'] = COREDNS_B_IP;
  return withObject(objs, c2);
}

const clients = (s: ClusterState): Pod[] => s.list('Pod').filter((p) => ['a', 'b', 'c', 'd'].includes(p.metadata.namespace ?? ''));
const ref = (p: Pod): string => `${p.metadata.namespace}/${p.metadata.name}`;

interface Answers {
  readonly dns: boolean | undefined;
  readonly tcp: boolean | undefined;
  readonly egressOnly: boolean;
  readonly apiserver: readonly string[];
}
function answers(s: ClusterState, p: Pod): Answers {
  return { dns: reachesDns(s, p), tcp: reachesDns(s, p, 'TCP'), egressOnly: reachesDnsEgressOnly(s, p, dnsTarget(s)!), apiserver: apiserverReach(s, p) };
}

type Event = { readonly put?: Obj; readonly drop?: Obj };
const apply = (live: MemoryState, e: Event): void => {
  if (e.put) live.upsert(kindOf(e.put as unknown as KubeObject)!, structuredClone(e.put) as unknown as KubeObject);
  if (e.drop) live.remove(kindOf(e.drop as unknown as KubeObject)!, e.drop.metadata.namespace, e.drop.metadata.name);
};

/**
 * Fills the live state's tables, applies `event`, and compares every client's answers with a state built
 * from scratch; returns how many classes were judged after the event and the answers that changed.
 */
function afterEvent(t: Test, event: Event, objs = objects()): { judged: number; changed: string[] } {
  const live = memoryState(objs.map((o) => structuredClone(o)));
  const before = new Map(clients(live).map((p) => [ref(p), answers(live, p)]));
  apply(live, event);
  let next = objs;
  if (event.put) next = withObject(next, event.put);
  if (event.drop) next = withObject(next, event.drop, true);
  const fresh = memoryState(next.map((o) => structuredClone(o)));
  const n0 = reachComputations();
  const now = clients(live).map((p) => [p, answers(live, p)] as const);
  const judged = reachComputations() - n0;
  const changed: string[] = [];
  for (const [p, got] of now) {
    t.same(got, answers(fresh, fresh.get('Pod', p.metadata.namespace, p.metadata.name)!), `${ref(p)}: as a state built from scratch`);
    const was = before.get(ref(p));
    if (was !== undefined && JSON.stringify(was) !== JSON.stringify(got)) changed.push(ref(p));
  }
  return { judged, changed: changed.sort() };
}

const podOf = (objs: Obj[], name: string): Obj => objs.find((o) => o.kind === 'Pod' && o.metadata.name === name)!;
const copyAs = (o: Obj, name: string, ip: string): Obj => {
  const c = structuredClone(o) as Obj & { status: Record<string, unknown> };
  (c.metadata as Record<string, unknown>)['name'] = name;
  c.status['podIP'] = ip;
  return c;
};

t.test('the fixture: each namespace reaches DNS as its policy says', async (t) => {
  const s = memoryState(objects());
  const dns = Object.fromEntries(clients(s).map((p) => [ref(p), reachesDns(s, p)]));
  t.same(dns, { 'a/web-1': true, 'a/web-2': true, 'a/db': true, 'b/api': true, 'c/job': true, 'd/tool': true });
});

t.test('a pod of an existing class, added or removed: no class judged again', async (t) => {
  const objs = objects();
  const added = afterEvent(t, { put: copyAs(podOf(objs, 'web-1'), 'web-3', '10.0.7.7') }, objs);
  t.equal(added.judged, 0, 'every answer kept across the pod event');
  t.same(added.changed, []);
  const removed = afterEvent(t, { drop: podOf(objs, 'web-2') }, objs);
  t.equal(removed.judged, 0, 'every answer kept across the pod deletion');
  // A pod rescheduled (same name, new address): its class keeps its answers.
  const moved = afterEvent(t, { put: copyAs(podOf(objs, 'api'), 'api', '10.0.7.8') }, objs);
  t.equal(moved.judged, 0);
});

t.test('a pod of a new class: that class alone is judged', async (t) => {
  const objs = objects();
  const newClass = pod('b', 'cache', { app: 'cache' });
  const r = afterEvent(t, { put: newClass }, objs);
  t.ok(r.judged > 0, 'the new class is judged');
  const all = afterEvent(t, { put: ns('b', { touched: 'yes' }) }, objs);
  t.ok(r.judged < all.judged, `fewer than after a Namespace event (${r.judged} < ${all.judged})`);
});

t.test('an event on another kind judges every class again', async (t) => {
  const objs = objects();
  const r = afterEvent(t, { put: ns('b', { touched: 'yes' }) }, objs);
  t.ok(r.judged >= clients(memoryState(objs)).length - 1, `every class judged (${r.judged})`);
  const policy = afterEvent(t, { put: cnp('b', 'b-in', { endpointSelector: {}, ingress: [{}] }) }, objs);
  t.ok(policy.judged > 0);
});

t.test('a DNS backend removed: the classes that could reach only it lose DNS', async (t) => {
  const objs = objects();
  const r = afterEvent(t, { drop: podOf(objs, 'coredns-2') }, objs);
  t.ok(r.judged > 0, 'judged again (the backends are read by name)');
  t.ok(r.changed.includes('c/job'), 'c reached only the variant=b backend');
  t.notOk(r.changed.includes('a/web-1'), 'a reaches the other backend');
});

t.test('a DNS backend relabelled: the classes that selected its labels lose DNS', async (t) => {
  const objs = objects();
  const c2 = structuredClone(podOf(objs, 'coredns-2'));
  (c2.metadata as Record<string, unknown>)['labels'] = { 'k8s-app': 'kube-dns', variant: 'c' };
  const r = afterEvent(t, { put: c2 }, objs);
  t.ok(r.changed.includes('c/job'));
});

t.test("the slice of a selector-less Service that a toServices peer names: read again", async (t) => {
  const objs = objects();
  const r = afterEvent(t, { put: extSlice('10.0.9.9') }, objs);
  t.ok(r.judged > 0);
  t.same(r.changed, ['d/tool'], 'd reached DNS through the slice only');
});

t.test('a slice of a Service with a selector (pod churn behind it): nothing judged again', async (t) => {
  const objs = objects();
  const r = afterEvent(t, { put: kubeDnsSlice(['10.0.9.1', '10.0.9.2']) }, objs);
  t.equal(r.judged, 0);
  const gone = afterEvent(t, { drop: kubeDnsSlice([]) }, objs);
  t.equal(gone.judged, 0);
});

t.test('the API server endpoints moved: judged again', async (t) => {
  const objs = objects();
  const slice = structuredClone(objs.find((o) => o.kind === 'EndpointSlice' && o.metadata.name === 'kubernetes')!);
  (slice as Record<string, unknown>)['endpoints'] = [{ addresses: ['192.168.0.99'] }];
  const r = afterEvent(t, { put: slice }, objs);
  t.ok(r.judged > 0);
});

t.test('selecting lists by identity are kept across a pod event, not across a Namespace relabel', async (t) => {
  const live = memoryState(objects());
  for (const p of clients(live)) policiesSelecting(live, p);
  apply(live, { put: copyAs(podOf(objects(), 'web-1'), 'web-9', '10.0.7.9') });
  let m0 = selectingTableMisses();
  for (const p of clients(live)) policiesSelecting(live, p);
  t.equal(selectingTableMisses() - m0, 0, 'no identity looked up again');
  apply(live, { put: ns('a', { team: 'x' }) });
  m0 = selectingTableMisses();
  for (const p of clients(live)) policiesSelecting(live, p);
  t.ok(selectingTableMisses() - m0 > 0, 'a Namespace event empties the table');
});

t.test("the base's decision facts that overlays derive from are kept across a pod event", async (t) => {
  const objs = objects();
  const live = memoryState(objs.map((o) => structuredClone(o)));
  const wide = ccnp('wide', { endpointSelector: {}, egress: [{ toEntities: ['world'] }] });
  const derive = (): void =>
    inRequestScope(() => {
      const after = overlay(live, mutationOf(makeChange('CREATE', wide)));
      for (const p of clients(after)) reachesDns(after, p);
    });
  const d0 = reachDerivations();
  derive();
  t.ok(reachDerivations() > d0, 'the overlay derives its answers from the base');
  apply(live, { put: copyAs(podOf(objs, 'db'), 'db-2', '10.0.7.10') });
  const f0 = baseFactsComputed();
  derive();
  t.equal(baseFactsComputed() - f0, 0, 'no fact of the base worked out again');
  apply(live, { put: cnp('b', 'b-in', { endpointSelector: {}, ingress: [{}] }) });
  const f1 = baseFactsComputed();
  derive();
  t.ok(baseFactsComputed() - f1 > 0, 'a policy event empties them');
});

t.test('stableContentToken follows every kind but Pod and EndpointSlice', async (t) => {
  const objs = objects();
  const live = memoryState(objs.map((o) => structuredClone(o)));
  let tok = stableContentToken(live);
  const same = (what: string, e: Event): void => {
    apply(live, e);
    t.equal(stableContentToken(live), tok, `${what}: same token`);
  };
  const moves = (what: string, e: Event): void => {
    apply(live, e);
    const next = stableContentToken(live);
    t.not(next, tok, `${what}: new token`);
    tok = next;
  };
  same('a pod', { put: pod('a', 'x', { app: 'x' }) });
  same('a slice', { put: kubeDnsSlice(['10.0.9.3']) });
  moves('a Namespace', { put: ns('c', { l: '1' }) });
  moves('a CNP', { put: cnp('c', 'p', { endpointSelector: {} }) });
  moves('a Service', { put: { ...extDns, spec: { clusterIP: '10.96.0.54' } } as Obj });
  moves('a Node', { put: { apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-c' }, status: {} } as Obj });
  moves('a RoleBinding', { put: { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'r', namespace: 'a' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' }, subjects: [] } as Obj });
  // An overlay of a policy: its own token; an overlay of a pod: the base's.
  inRequestScope(() => {
    t.not(stableContentToken(overlay(live, mutationOf(makeChange('CREATE', ccnp('o', { endpointSelector: {} }))))), tok);
    t.equal(stableContentToken(overlay(live, mutationOf(makeChange('CREATE', pod('a', 'y'))))), tok);
  });
});

t.test('keptAcrossPodEvents: kept while the objects read are the same, not for an overlay of a pod', async (t) => {
  const objs = objects();
  const live = memoryState(objs.map((o) => structuredClone(o)));
  let computed = 0;
  let reads: readonly object[] = [{}];
  const table = (s: ClusterState): object => keptAcrossPodEvents(s, 'test-table', () => reads, () => (computed++, {}));
  const first = table(live);
  apply(live, { put: pod('a', 'z') });
  t.equal(table(live), first, 'kept across a pod event');
  const backend = {};
  reads = [backend];
  apply(live, { put: pod('a', 'z2') });
  t.not(table(live), first, 'not when a read object differs');
  const second = table(live);
  reads = [backend];
  apply(live, { put: pod('a', 'z3') });
  t.equal(table(live), second, 'the same read objects (a new array): kept');
  inRequestScope(() => {
    const o = overlay(live, mutationOf(makeChange('CREATE', pod('a', 'z4'))));
    t.not(table(o), second, 'an overlay of a pod has its own');
  });
  t.equal(computed, 3);
});
