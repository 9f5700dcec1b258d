// The kube-dns backends the DNS checks test against (src/policy/dns.ts dnsTarget): one per pod class,
// whatever order the state lists the pods in. A live state's order follows its events (a backend
// relabelled and back moves to the end of its namespace's list); two backends with the same labels are
// not interchangeable when one runs in the host network (it is no Cilium endpoint: no ingress policy).
// Found by test/verdict/long-lived-state.test.ts (churn seed 142): the live state picked the
// host-network backend for the label set where a fresh state picked the pod-network one, and counted
// 21 pods losing DNS to `enable-policy: always` where a fresh state counted 25.

import t from 'tap';
import { dnsTarget, reachesDns } from '../../src/policy/dns.ts';
import { baseCluster, cnp, HEALTHY_CILIUM_CONFIG, memoryState, ns, pod, type Obj } from '../fixtures/cluster.ts';

const backend = (name: string, host: boolean): Obj => {
  const p = pod('kube-system', name, { 'k8s-app': 'kube-dns' }, { sa: 'coredns', hostNetwork: host, ...(host ? { ip: '192.168.0.11' } : {}), ports: [{ name: 'dns', containerPort: 53, protocol: 'UDP' }] }) as Obj & { spec: Record<string, unknown> };
  p.spec['nodeName'] = host ? 'node-b' : 'node-a';
  return p;
};

function cluster(order: 'pod-first' | 'host-first', enablePolicy = 'default'): Obj[] {
  const objs = baseCluster([ns('a'), pod('a', 'web', { app: 'web' })], { ...HEALTHY_CILIUM_CONFIG, 'enable-policy': enablePolicy }).filter((o) => !(o.kind === 'Pod' && o.metadata.name.startsWith('coredns')));
  const backends = [backend('coredns-1', false), backend('coredns-2', true)];
  return [...objs, ...(order === 'pod-first' ? backends : backends.reverse())];
}

t.test('one backend per class, in the same order whatever the state lists first', async (t) => {
  for (const order of ['pod-first', 'host-first'] as const) {
    const s = memoryState(cluster(order));
    const names = dnsTarget(s)!.pods.map((p) => p.metadata.name).sort();
    t.same(names, ['coredns-1', 'coredns-2'], `${order}: both classes (same labels, one in the host network)`);
  }
  const a = dnsTarget(memoryState(cluster('pod-first')))!.pods.map((p) => p.metadata.name);
  const b = dnsTarget(memoryState(cluster('host-first')))!.pods.map((p) => p.metadata.name);
  t.same(a, b, 'the same order');
});

t.test('replicas of one class: one of them, the same one in either order', async (t) => {
  const mk = (names: string[]) => {
    const objs = baseCluster([ns('a')]).filter((o) => !(o.kind === 'Pod' && o.metadata.name.startsWith('coredns')));
    return memoryState([...objs, ...names.map((n) => backend(n, false))]);
  };
  t.same(dnsTarget(mk(['coredns-b', 'coredns-a']))!.pods.map((p) => p.metadata.name), ['coredns-a']);
  t.same(dnsTarget(mk(['coredns-a', 'coredns-b']))!.pods.map((p) => p.metadata.name), ['coredns-a']);
});

t.test('at most three classes, the same three in either order', async (t) => {
  const objs = baseCluster([ns('a')]).filter((o) => !(o.kind === 'Pod' && o.metadata.name.startsWith('coredns')));
  const variants = ['v1', 'v2', 'v3', 'v4'].map((v) => pod('kube-system', `coredns-${v}`, { 'k8s-app': 'kube-dns', variant: v }, { ports: [{ name: 'dns', containerPort: 53, protocol: 'UDP' }] }));
  const x = dnsTarget(memoryState([...objs, ...variants]))!.pods.map((p) => p.metadata.name);
  const y = dnsTarget(memoryState([...objs, ...[...variants].reverse()]))!.pods.map((p) => p.metadata.name);
  t.equal(x.length, 3);
  t.same(x, y);
});

t.test('the answer follows the classes, not the list order: a host-network backend under enable-policy always', async (t) => {
  // The client may send DNS to both backends (the host-network one has its node's identity: the
  // remote-node entity); their ingress is enforced and nothing admits it, but the host-network backend
  // is no Cilium endpoint and enforces nothing: the client reaches DNS through it.
  const egress = cnp('a', 'dns', {
    endpointSelector: {},
    egress: [
      { toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s-app': 'kube-dns' } }], toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }] }] },
      { toEntities: ['remote-node'], toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }] }] },
    ],
  });
  for (const order of ['pod-first', 'host-first'] as const) {
    const s = memoryState([...cluster(order, 'always'), egress]);
    t.equal(reachesDns(s, s.get('Pod', 'a', 'web')!), true, `${order}: through the host-network backend`);
  }
});
