// The per-pass shortcuts of the DNS and API server rules (issue 21, branch `trim`), each against what
// takes no shortcut, with near misses where it must not apply:
// - changedSelecting answers every endpoint at once for CCNPs with an empty endpointSelector
//   (everyEndpoint) against modelSelects per pod; not for a selector with labels, nor a namespaced `{}`.
// - the askers (reachesDnsAsker, apiserverReachAsker, one per state and pass) and fromBasePass (the
//   changed object's egress verdict kept per model array and destination, an address's identity from
//   the source's node or any other) on overlays whose base answered first, against the same question
//   on a state built with the change: API server endpoints on node-a, clients on node-a and node-b
//   (host there, remote-node here), host-network clients, and allows or denies of `host`,
//   `remote-node`, `kube-apiserver`, FQDN peers (whose verdicts are never kept) and DELETEs.
// - dns-egress-missing's servers-drop wording from the comparison's lost classes (onLost) against a
//   second pass over the lost pods (everyClass), the near miss being one lost class whose egress is cut.
// - judgeByClass's kept plan against the pod-by-pod path (a node-reading key, pods split by node), and
//   reused only for the same classes array and key function.
// - withoutDnsBackends' kept answer, not reused when the backends differ.

import t from 'tap';
import type { Test } from 'tap';
import type { ClusterState, Pod, PolicyObject } from '../../src/core/objects.ts';
import { mutationOf } from '../../src/core/change.ts';
import { overlay } from '../../src/state/overlay.ts';
import { inRequestScope } from '../../src/state/request-scope.ts';
import { everyClass, judgeByClass } from '../../src/impact/compare.ts';
import { apiserverReach, apiserverReachAsker } from '../../src/policy/apiserver.ts';
import { classifiedPods, readsNode, type ClassKeyFn } from '../../src/policy/classes.ts';
import { dnsTarget, reachesDns, reachesDnsAsker, reachesDnsEgressOnly, withoutDnsBackends } from '../../src/policy/dns.ts';
import { apiserverClassKey, dnsClassKey, podRef } from '../../src/policy/identity.ts';
import { policyModel } from '../../src/policy/model.ts';
import { changedSelecting } from '../../src/policy/reachability.ts';
import { modelSelects } from '../../src/policy/selection.ts';
import { rule as dnsRule } from '../../src/rules/dns-egress-missing/index.ts';
import { baseCluster, ccnp, ciliumConfigMap, cnp, HEALTHY_CILIUM_CONFIG, memoryState, ns, pod } from '../fixtures/cluster.ts';
import { makeChange, runRule } from '../rules/rule-harness.ts';

type Obj = Parameters<typeof makeChange>[1] & object;

const dnsEgress = { toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s-app': 'kube-dns' } }], toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }] }] };

/** A pod on `node` (the fixtures put pods on node-a; the API server endpoint is node-a's address). */
function on(node: string, o: Obj): Obj {
  const p = o as Obj & { spec: Record<string, unknown>; status: Record<string, unknown> };
  const hostIP = node === 'node-a' ? '192.168.0.10' : '192.168.0.11';
  return { ...p, spec: { ...p.spec, nodeName: node }, status: { ...p.status, hostIP, ...(p.spec['hostNetwork'] === true ? { podIP: hostIP } : {}) } };
}

function objects(extra: Obj[] = []): Obj[] {
  return baseCluster([
    ns('a'), ns('b'),
    pod('a', 'web-1', { app: 'web' }), on('node-b', pod('a', 'web-2', { app: 'web' })),
    pod('a', 'db', { app: 'db' }),
    on('node-b', pod('b', 'api', { app: 'api' })),
    on('node-b', pod('b', 'agent', { app: 'agent' }, { hostNetwork: true })),
    pod('b', 'local-agent', { app: 'local-agent' }, { hostNetwork: true, ip: '192.168.0.10' }),
    cnp('b', 'b-dns', { endpointSelector: {}, egress: [dnsEgress] }),
    ...extra,
  ]) as Obj[];
}

const key = (o: Obj): string => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
const without = (objs: Obj[], o: Obj): Obj[] => objs.filter((x) => key(x) !== key(o));
const refsOf = (models: readonly { ref: { name: string }; specIndex: number }[]): string[] => models.map((m) => `${m.ref.name}#${m.specIndex}`);

t.test('changedSelecting: every endpoint at once only for cluster-wide empty selectors', async (t) => {
  const cases: { name: string; obj: Obj }[] = [
    { name: 'a CCNP {}', obj: ccnp('all', { endpointSelector: {}, egress: [dnsEgress] }) },
    { name: 'a CCNP {} with two specs', obj: ccnp('all', { specs: [{ endpointSelector: {}, egress: [dnsEgress] }, { endpointSelector: {}, ingress: [{ fromEntities: ['cluster'] }] }] }) },
    { name: 'near miss: a CCNP with a label selector', obj: ccnp('web', { endpointSelector: { matchLabels: { app: 'web' } }, egress: [dnsEgress] }) },
    { name: 'near miss: a CCNP {} beside a labelled spec', obj: ccnp('mixed', { specs: [{ endpointSelector: {}, egress: [dnsEgress] }, { endpointSelector: { matchLabels: { app: 'db' } }, egress: [dnsEgress] }] }) },
    { name: 'near miss: a namespaced CNP {}', obj: cnp('a', 'a-all', { endpointSelector: {}, egress: [dnsEgress] }) },
  ];
  const base = memoryState(objects([on('node-b', { ...(pod('a', 'done', { app: 'web' }) as Obj), status: { phase: 'Succeeded', podIP: '10.0.9.9' } } as Obj)]));
  for (const c of cases) {
    inRequestScope(() => {
      const after = overlay(base, mutationOf(makeChange('CREATE', c.obj)));
      const obj = after.get(c.obj.kind as 'CiliumNetworkPolicy', c.obj.metadata.namespace, c.obj.metadata.name) as PolicyObject;
      const ref = { kind: c.obj.kind, namespace: c.obj.metadata.namespace ?? '', name: c.obj.metadata.name };
      for (const p of after.list('Pod')) {
        const want = policyModel(obj).filter((m) => modelSelects(after, m, p));
        t.same(refsOf(changedSelecting(after, ref, p)), refsOf(want), `${c.name}: ${podRef(p)}`);
      }
    });
  }
});

/** Each pod's DNS and API server answers through the askers on `s` and asked afresh on `fresh`. */
function agree(t: Test, s: ClusterState, fresh: ClusterState, what: string): void {
  const dns = reachesDnsAsker(s);
  const api = apiserverReachAsker(s);
  for (const p of s.list('Pod')) {
    const q = fresh.get('Pod', p.metadata.namespace, p.metadata.name)!;
    t.equal(dns(p), reachesDns(fresh, q), `${what}: ${podRef(p)} DNS`);
    t.same(api(p), apiserverReach(fresh, q), `${what}: ${podRef(p)} API server`);
  }
}

function agreesOnOverlay(t: Test, objs: Obj[], op: 'CREATE' | 'DELETE', obj: Obj, what: string): void {
  const base = memoryState(objs);
  agree(t, base, memoryState(objs), `${what}, base`);
  const next = op === 'DELETE' ? without(objs, obj) : [...without(objs, obj), obj];
  inRequestScope(() => {
    const change = op === 'DELETE' ? makeChange('DELETE', undefined, obj) : makeChange('CREATE', obj);
    const after = overlay(base, mutationOf(change));
    agree(t, after, memoryState(next), what);
    // Asked twice in one pass: the kept answers.
    agree(t, after, memoryState(next), `${what}, again`);
  });
}

t.test('askers and the per-pass derivation agree with states built with the change', async (t) => {
  const all = (name: string, spec: Record<string, unknown>): Obj => ccnp(name, { endpointSelector: {}, ...spec });
  const creates: { name: string; obj: Obj }[] = [
    { name: 'an allow to host', obj: all('to-host', { egress: [dnsEgress, { toEntities: ['host'] }] }) },
    { name: 'an allow to remote-node', obj: all('to-remote', { egress: [dnsEgress, { toEntities: ['remote-node'] }] }) },
    { name: 'an allow to kube-apiserver', obj: all('to-api', { egress: [dnsEgress, { toEntities: ['kube-apiserver'] }] }) },
    { name: 'an allow to the API server address', obj: all('to-cidr', { egress: [dnsEgress, { toCIDR: ['192.168.0.10/32'] }] }) },
    { name: 'a deny of DNS', obj: all('no-dns', { egress: [{ toEntities: ['all'] }], egressDeny: [{ toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system' } }] }] }) },
    { name: 'a deny to host beside an allow to all', obj: all('no-host', { egress: [{ toEntities: ['all'] }], egressDeny: [{ toEntities: ['host'] }] }) },
    { name: 'FQDN peers (verdicts never kept)', obj: all('fqdn', { egress: [dnsEgress, { toFQDNs: [{ matchName: 'example.com' }] }] }) },
    { name: 'a label selector (classes derived per identity)', obj: ccnp('web-only', { endpointSelector: { matchLabels: { app: 'web' } }, egress: [{ toEntities: ['host'] }] }) },
  ];
  for (const c of creates) agreesOnOverlay(t, objects(), 'CREATE', c.obj, `CREATE ${c.name}`);
  const dnsAll = all('dns-all', { egress: [dnsEgress, { toEntities: ['host'] }] });
  agreesOnOverlay(t, objects([dnsAll]), 'DELETE', dnsAll, 'DELETE of a CCNP {}');
  const strict = objects().map((o) => (o.kind === 'ConfigMap' ? ciliumConfigMap({ ...HEALTHY_CILIUM_CONFIG, 'enable-policy': 'always' }) : o)) as Obj[];
  agreesOnOverlay(t, strict, 'CREATE', all('to-host', { egress: [dnsEgress, { toEntities: ['host'] }] }), 'CREATE under enable-policy=always');
});

t.test("dns-egress-missing: the servers-drop wording from the comparison's lost classes", async (t) => {
  const config = (objs: Obj[]): Obj => ({ ...objs.find((o) => o.kind === 'ConfigMap')!, data: { ...HEALTHY_CILIUM_CONFIG, 'enable-policy': 'always' } }) as Obj;
  // Under `always` the kube-dns pods (no policy in kube-system) drop every client; clients whose egress
  // allows DNS lose it through the servers alone.
  const dnsOnly = [
    ns('a'), pod('a', 'web', { app: 'web' }), pod('a', 'db', { app: 'db' }),
    cnp('a', 'a-dns', { endpointSelector: {}, egress: [dnsEgress] }),
    cnp('istio-system', 'istio-dns', { endpointSelector: {}, egress: [dnsEgress] }),
  ];
  const cases: { name: string; objs: Obj[]; code: string }[] = [
    { name: "every lost class's egress still allows DNS", objs: baseCluster(dnsOnly) as Obj[], code: 'dns-egress-missing/config-servers-drop' },
    { name: 'near miss: one lost class has no egress allow', objs: baseCluster([...dnsOnly, ns('c'), pod('c', 'job', { app: 'job' })]) as Obj[], code: 'dns-egress-missing/config-leaves-no-dns' },
  ];
  for (const c of cases) {
    const run = runRule(dnsRule, c.objs, 'UPDATE', config(c.objs));
    t.same(run.findings.map((f) => f.code), [c.code], c.name);
    // What a second pass over the lost pods says (the rule's former way).
    const lostPods = run.after.list('Pod').filter((p) => p.metadata.namespace !== 'kube-system' && reachesDns(run.before, p) === true && reachesDns(run.after, p) === false);
    const target = dnsTarget(run.after)!;
    const secondPass = everyClass(lostPods, dnsClassKey(run.after), (p) => reachesDnsEgressOnly(run.after, p, target));
    t.equal(c.code.endsWith('servers-drop'), secondPass, `${c.name}: the same answer as a second pass`);
  }
});

t.test("judgeByClass: the kept plan judges as the pod-by-pod path does, and only for its classes and key", async (t) => {
  const objs = objects([
    on('node-b', pod('a', 'web-3', { app: 'web' })), pod('a', 'web-4', { app: 'web' }),
    on('node-b', pod('a', 'db-2', { app: 'db' })),
  ]);
  const s = memoryState(objs);
  const pods = classifiedPods(s);
  const apiKey = apiserverClassKey(s);
  let calls = 0;
  const counting: ClassKeyFn = readsNode((p: Pod) => {
    calls++;
    return apiKey(p);
  }, apiKey.nodeToken!);
  const judge = (p: Pod): { outcome: 'lost' | 'still' | 'ok' } => ({ outcome: p.spec.nodeName === 'node-a' ? 'lost' : p.metadata.namespace === 'a' ? 'still' : 'ok' });
  const grouped = judgeByClass(pods, counting, judge);
  const plain = judgeByClass([...pods], apiKey, judge);
  const names = (ps: readonly Pod[]): string[] => ps.map(podRef).sort();
  t.same(names(grouped.lost), names(plain.lost), 'the same lost pods');
  t.same(names(grouped.stillMissing), names(plain.stillMissing), 'the same still-missing pods');
  t.equal(grouped.classes, plain.classes, 'the same classes');
  t.same(grouped.lostClasses.map((c) => [c.key, c.count]).sort(), plain.lostClasses.map((c) => [c.key, c.count]).sort(), 'the same lost classes and counts');
  t.ok(calls > 0, 'the first pass computes the keys');
  const first = calls;
  judgeByClass(pods, counting, judge);
  t.equal(calls, first, 'a second pass over the same classes and key function computes none');
  const other: ClassKeyFn = readsNode((p: Pod) => {
    calls++;
    return apiKey(p);
  }, apiKey.nodeToken!);
  judgeByClass(pods, other, judge);
  t.ok(calls > first, 'another key function: computed again');
});

t.test('withoutDnsBackends: the kept answer only for the same backends', async (t) => {
  const objs = objects();
  const s1 = memoryState(objs);
  const pods = classifiedPods(s1);
  const backends = (s: ClusterState): string[] => (dnsTarget(s)?.pods ?? []).map(podRef);
  const r1 = withoutDnsBackends(s1, pods);
  t.same(r1.map(podRef).sort(), pods.map(podRef).filter((r) => !r.startsWith('kube-system/coredns')).sort(), 'no backend left');
  t.equal(withoutDnsBackends(s1, pods), r1, 'kept');
  // coredns-2 relabelled: no longer a backend of the Service, so it stays among the clients.
  const s2 = memoryState(objs.map((o) => (o.kind === 'Pod' && o.metadata.name === 'coredns-2' ? ({ ...o, metadata: { ...o.metadata, labels: { app: 'old-dns' } } } as Obj) : o)));
  t.same(backends(s2), ['kube-system/coredns-1'], 'one backend in the other state');
  const r2 = withoutDnsBackends(s2, pods);
  t.ok(r2.map(podRef).includes('kube-system/coredns-2'), 'other backends: not the kept answer');
  t.notOk(r2.map(podRef).includes('kube-system/coredns-1'), 'the remaining backend is left out');
});
