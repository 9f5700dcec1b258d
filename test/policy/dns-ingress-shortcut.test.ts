// The DNS servers' ingress decided once for every pod client when it cannot depend on which pod asks
// (src/policy/reachability.ts podSourceIngress, used by src/policy/dns.ts): these tests check reachesDns
// (UDP and TCP) and reachesDnsEgressOnly, on the live state and on admission overlays whose base answered
// first, against the explained decision (evaluate(), which takes no shortcut) on a state built with the
// change. The near misses: a backend ingress allow from a namespace selector or pod labels (the answer
// depends on the client), a deny on the backends' ingress from some clients or from every pod, CIDR-only
// and entity peers, an allow on another port, host-network clients on the backends' node and on
// another (node identity, allow-localhost), and the backend itself as a client. A count test checks
// that the per-class ingress decision is skipped where it is constant, and made where it is not.

import t from 'tap';
import type { Test } from 'tap';
import { dnsTarget, reachesDns, reachesDnsEgressOnly } from '../../src/policy/dns.ts';
import { evaluate, fromBaseDecisions, podSourceIngress } from '../../src/policy/reachability.ts';
import { dnsBackends } from '../../src/policy/cluster.ts';
import { reachComputations, reachDerivations } from '../../src/policy/reach-memo.ts';
import { mutationOf } from '../../src/core/change.ts';
import { overlay } from '../../src/state/overlay.ts';
import { inRequestScope } from '../../src/state/request-scope.ts';
import type { ClusterState, Pod } from '../../src/core/objects.ts';
import type { Protocol } from '../../src/policy/types.ts';
import { baseCluster, ccnp, ciliumConfigMap, cnp, HEALTHY_CILIUM_CONFIG, memoryState, netpol, ns, pod, withObject as applied } from '../fixtures/cluster.ts';
import { makeChange } from '../rules/rule-harness.ts';

type Obj = Parameters<typeof makeChange>[1] & object;

const dnsEgress = { toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s-app': 'kube-dns' } }], toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }] }] };
const kubeDns = { matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s-app': 'kube-dns' } };

function hostClient(name: string, node: string): Obj {
  const p = pod('c', name, { app: name }, { hostNetwork: true, ip: node === 'node-a' ? '192.168.0.10' : '192.168.0.11' }) as Obj & { spec: Record<string, unknown>; status: Record<string, unknown> };
  return { ...p, spec: { ...p.spec, nodeName: node }, status: { ...p.status, hostIP: node === 'node-a' ? '192.168.0.10' : '192.168.0.11' } };
}

function objects(extra: Obj[] = []): Obj[] {
  return baseCluster([
    ns('a', { team: 'red' }), ns('b', { team: 'blue' }), ns('c'),
    pod('a', 'web', { app: 'web' }), pod('a', 'db', { app: 'db' }),
    pod('b', 'api', { app: 'api' }),
    pod('c', 'job', { app: 'job' }),
    hostClient('agent-local', 'node-a'), hostClient('agent-remote', 'node-b'),
    cnp('a', 'a-egress', { endpointSelector: {}, egress: [dnsEgress] }),
    netpol('b', 'b-egress', { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: {} }] }] }),
    ...extra,
  ]) as Obj[];
}

/** Every pod that asks for DNS, the backends included (a backend reaches itself). */
const clients = (s: ClusterState): Pod[] => s.list('Pod').filter((p) => ['a', 'b', 'c', 'kube-system'].includes(p.metadata.namespace ?? ''));

/** What evaluate() (the explained decision, no shortcut) says: both directions, and egress only. */
function truth(s: ClusterState, p: Pod, protocol: Protocol): { both: boolean; egress: boolean } {
  const tgt = dnsTarget(s)!;
  const port = protocol === 'UDP' ? tgt.port : (dnsBackends(s).ports.find((x) => x.protocol === protocol)?.port ?? tgt.port);
  const rs = tgt.pods.map((d) => evaluate(s, p, { type: 'pod', pod: d }, port, protocol));
  return { both: rs.some((r) => r.allowed), egress: protocol === 'UDP' ? rs.some((r) => r.egress.verdict === 'allowed') : false };
}

function check(t: Test, s: ClusterState, fresh: ClusterState, what: string): void {
  for (const p of clients(s)) {
    const ref = `${p.metadata.namespace}/${p.metadata.name}`;
    const q = fresh.get('Pod', p.metadata.namespace, p.metadata.name)!;
    const udp = truth(fresh, q, 'UDP');
    t.equal(reachesDns(s, p), udp.both, `${what}: ${ref} DNS over UDP`);
    t.equal(reachesDns(s, p, 'TCP'), truth(fresh, q, 'TCP').both, `${what}: ${ref} DNS over TCP`);
    t.equal(reachesDnsEgressOnly(s, p, dnsTarget(s)!), udp.egress, `${what}: ${ref} DNS egress`);
  }
}

/** The live state's answers, then an overlay's (its base answered first) against a state built with the change. */
function agrees(t: Test, objs: Obj[], change: ReturnType<typeof makeChange>, next: Obj[]): void {
  const base = memoryState(objs);
  check(t, base, memoryState(objs), 'base');
  const fresh = memoryState(next);
  inRequestScope(() => check(t, overlay(base, mutationOf(change)), fresh, 'overlay'));
}

const always = (objs: Obj[]): Obj => {
  const old = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'cilium-config')!;
  return { ...old, data: { ...(old['data'] as Record<string, string>), 'enable-policy': 'always' } } as Obj;
};
const cmOf = (objs: Obj[]): Obj => objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'cilium-config')!;

/** Backend ingress policies, each with whether podSourceIngress can decide it once for every pod client. */
const backendPolicies: { name: string; policy: Obj; constant: boolean | undefined }[] = [
  { name: 'an allow from a namespace selector', constant: undefined, policy: cnp('kube-system', 'dns-in', { endpointSelector: { matchLabels: { 'k8s-app': 'kube-dns' } }, ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.cilium.k8s.namespace.labels.team': 'red' } }] }] }) },
  { name: 'a NetworkPolicy allow from one namespace', constant: undefined, policy: netpol('kube-system', 'dns-in', { podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } }, policyTypes: ['Ingress'], ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'blue' } } }] }] }) },
  { name: 'a deny from one namespace beside an allow from all', constant: undefined, policy: ccnp('dns-in', { endpointSelector: kubeDns, ingress: [{ fromEntities: ['all'] }], ingressDeny: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'b' } }] }] }) },
  { name: 'a deny from every pod (entity cluster)', constant: false, policy: ccnp('dns-in', { endpointSelector: kubeDns, ingress: [{ fromEntities: ['all'] }], ingressDeny: [{ fromEntities: ['cluster'] }] }) },
  { name: 'an allow from entity cluster', constant: true, policy: ccnp('dns-in', { endpointSelector: kubeDns, ingress: [{ fromEntities: ['cluster'] }] }) },
  { name: 'an allow from the host only', constant: false, policy: ccnp('dns-in', { endpointSelector: kubeDns, ingress: [{ fromEntities: ['host', 'remote-node'] }] }) },
  { name: 'a CIDR-only allow', constant: false, policy: ccnp('dns-in', { endpointSelector: kubeDns, ingress: [{ fromCIDR: ['10.0.0.0/8', '192.168.0.0/16'] }] }) },
  { name: 'an allow on another port from a selector', constant: false, policy: cnp('kube-system', 'dns-in', { endpointSelector: { matchLabels: { 'k8s-app': 'kube-dns' } }, ingress: [{ fromEndpoints: [{}], toPorts: [{ ports: [{ port: '9153', protocol: 'TCP' }] }] }] }) },
  { name: 'an allow from every source', constant: true, policy: cnp('kube-system', 'dns-in', { endpointSelector: { matchLabels: { 'k8s-app': 'kube-dns' } }, ingress: [{ fromEntities: ['all'] }] }) },
  { name: 'an empty ingress rule (selects no peer)', constant: false, policy: cnp('kube-system', 'dns-in', { endpointSelector: { matchLabels: { 'k8s-app': 'kube-dns' } }, ingress: [{}] }) },
];

t.test('podSourceIngress: decided once only where no port-matching element reads the source', async (t) => {
  const plain = memoryState(objects());
  const d = dnsTarget(plain)!.pods[0]!;
  t.equal(podSourceIngress(plain, d, 53, 'UDP'), true, 'no policy on the servers: not enforced');
  const strict = memoryState(objects().map((o) => (o.kind === 'ConfigMap' ? ciliumConfigMap({ ...HEALTHY_CILIUM_CONFIG, 'enable-policy': 'always' }) : o)) as Obj[]);
  t.equal(podSourceIngress(strict, dnsTarget(strict)!.pods[0]!, 53, 'UDP'), false, 'enable-policy=always, no allow: denied for every pod');
  for (const b of backendPolicies) {
    const s = memoryState(objects([b.policy]));
    t.equal(podSourceIngress(s, dnsTarget(s)!.pods[0]!, 53, 'UDP'), b.constant, b.name);
  }
});

t.test('the live state and overlays over it agree with the explained decision', async (t) => {
  for (const b of backendPolicies) {
    t.test(b.name, async (t) => {
      const objs = objects();
      // The backends' policy created, and deleted again.
      agrees(t, objs, makeChange('CREATE', b.policy), applied(objs, b.policy));
      const withIt = objects([b.policy]);
      agrees(t, withIt, makeChange('DELETE', undefined, b.policy), applied(withIt, b.policy, true));
      // A client policy created over it (the backends keep their lists).
      const deny = cnp('c', 'c-egress', { endpointSelector: {}, egress: [dnsEgress] });
      agrees(t, withIt, makeChange('CREATE', deny), applied(withIt, deny));
      // Enforcement everywhere.
      agrees(t, withIt, makeChange('UPDATE', always(withIt), cmOf(withIt)), applied(withIt, always(withIt)));
    });
  }
  t.test('no policy on the servers, then enforcement everywhere', async (t) => {
    const objs = objects();
    agrees(t, objs, makeChange('UPDATE', always(objs), cmOf(objs)), applied(objs, always(objs)));
  });
});

t.test('the per-class ingress decision is skipped where the servers\' ingress is the same for every pod', async (t) => {
  const extra: Obj[] = [];
  for (let i = 0; i < 20; i++) {
    extra.push(ns(`n${i}`, { team: i % 2 === 0 ? 'red' : 'blue' }));
    for (const app of ['web', 'api', 'worker']) for (let r = 0; r < 2; r++) extra.push(pod(`n${i}`, `${app}-${r}`, { app }));
  }
  const all = (s: ClusterState): Pod[] => s.list('Pod').filter((p) => (p.metadata.namespace ?? '').startsWith('n'));
  const run = (objs: Obj[], change: ReturnType<typeof makeChange>): { derived: number; computed: number; ingress: number; egress: number; lost: number } => {
    const base = memoryState(objs);
    for (const p of all(base)) {
      reachesDns(base, p);
      reachesDnsEgressOnly(base, p, dnsTarget(base)!);
    }
    let out = { derived: 0, computed: 0, ingress: 0, egress: 0, lost: 0 };
    inRequestScope(() => {
      const after = overlay(base, mutationOf(change));
      const [d0, c0, f0] = [reachDerivations(), reachComputations(), fromBaseDecisions()];
      const lost = all(after).filter((p) => reachesDns(after, p) === false).length;
      const f1 = fromBaseDecisions();
      out = { derived: reachDerivations() - d0, computed: reachComputations() - c0, ingress: f1.ingress - f0.ingress, egress: f1.egress - f0.egress, lost };
    });
    return out;
  };
  const objs = baseCluster(extra) as Obj[];
  // enable-policy=always: the servers (no policy of their own) drop every pod; no client's egress is asked.
  const strict = run(objs, makeChange('UPDATE', always(objs), cmOf(objs)));
  t.same(strict, { derived: 60, computed: 0, ingress: 0, egress: 0, lost: 120 }, 'every class derived, no per-class decision');
  // A client egress policy everywhere: only the clients' egress is decided per class.
  const everywhere = ccnp('everywhere', { endpointSelector: {}, egress: [dnsEgress] });
  t.same(run(objs, makeChange('CREATE', everywhere)), { derived: 60, computed: 0, ingress: 0, egress: 60, lost: 0 }, 'egress per class, ingress once');
  // A server policy whose peers read the client: the ingress is decided per class.
  const fromRed = cnp('kube-system', 'dns-in', { endpointSelector: { matchLabels: { 'k8s-app': 'kube-dns' } }, ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.cilium.k8s.namespace.labels.team': 'red' } }] }] });
  const withRed = applied(objs, fromRed);
  const dependent = run(withRed, makeChange('CREATE', everywhere));
  t.same(dependent, { derived: 60, computed: 0, ingress: 60, egress: 60, lost: 60 }, 'ingress per class where it reads the client');
});
