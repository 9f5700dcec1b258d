// Per-class DNS and API server reachability is kept per state revision and, for an admission overlay that
// changes one policy object, taken from the base for every class whose selecting lists (its own and the
// destinations') the change leaves alone (src/policy/reach-memo.ts). These tests check the answers against
// a state built from scratch with the change applied, after the base's answers were memoised, on the
// near misses: changes that alter a class's reachability without selecting the class itself (a policy on
// the DNS servers' ingress, a Namespace relabel read by other namespaces' peers, a cilium-config change),
// and count the classes judged for a change that touches one namespace.

import t from 'tap';
import type { Test } from 'tap';
import { dnsTarget, reachesDns, reachesDnsEgressOnly } from '../../src/policy/dns.ts';
import { apiserverReach } from '../../src/policy/apiserver.ts';
import { reachComputations, reachDerivations } from '../../src/policy/reach-memo.ts';

/** Answers worked out so far: computed in full, or derived from the base's decisions. */
const judged = (): number => reachComputations() + reachDerivations();
import { mutationOf } from '../../src/core/change.ts';
import { overlay } from '../../src/state/overlay.ts';
import { forgetCachedResults, inRequestScope } from '../../src/state/request-scope.ts';
import type { ClusterState, Pod } from '../../src/core/objects.ts';
import { baseCluster, ccnp, cnp, memoryState, netpol, ns, pod, withObject as applied } from '../fixtures/cluster.ts';
import { makeChange } from '../rules/rule-harness.ts';

type Obj = Parameters<typeof makeChange>[1] & object;

const key = (o: Obj): string => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;

const dnsEgress = { toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s-app': 'kube-dns' } }], toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }] }] };
const kubeDnsSelector = { matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s-app': 'kube-dns' } };

function objects(extra: Obj[] = []): Obj[] {
  return baseCluster([
    ns('a', { team: 'red' }), ns('b', { team: 'blue' }), ns('c'),
    pod('a', 'web', { app: 'web' }, { sa: 'web' }), pod('a', 'db', { app: 'db' }),
    pod('b', 'web', { app: 'web' }), pod('b', 'api', { app: 'api' }),
    pod('c', 'job', { app: 'job' }),
    cnp('a', 'a-egress', { endpointSelector: {}, egress: [dnsEgress, { toEntities: ['kube-apiserver'] }] }),
    netpol('b', 'b-egress', { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: {} }] }] }),
    ...extra,
  ]) as Obj[];
}

const clientPods = (s: ClusterState): Pod[] => s.list('Pod').filter((p) => ['a', 'b', 'c'].includes(p.metadata.namespace ?? ''));

/** Every client's answers on the overlay equal those of a state built with the change, the base's memoised first. */
function agrees(t: Test, objs: Obj[], change: ReturnType<typeof makeChange>, next: Obj[], expectChanged: string[]): void {
  const base = memoryState(objs);
  for (const p of base.list('Pod')) {
    reachesDns(base, p);
    reachesDnsEgressOnly(base, p, dnsTarget(base)!);
    apiserverReach(base, p);
  }
  const fresh = memoryState(next);
  inRequestScope(() => {
    const after = overlay(base, mutationOf(change));
    const changed: string[] = [];
    for (const p of clientPods(after)) {
      const ref = `${p.metadata.namespace}/${p.metadata.name}`;
      const q = fresh.get('Pod', p.metadata.namespace, p.metadata.name)!;
      t.equal(reachesDns(after, p), reachesDns(fresh, q), `${ref}: DNS as a state built with the change`);
      t.same(apiserverReach(after, p), apiserverReach(fresh, q), `${ref}: API server as a state built with the change`);
      t.equal(reachesDnsEgressOnly(after, p, dnsTarget(after)!), reachesDnsEgressOnly(fresh, q, dnsTarget(fresh)!), `${ref}: DNS egress as a state built with the change`);
      const b = base.get('Pod', p.metadata.namespace, p.metadata.name);
      if (b && reachesDns(base, b) !== reachesDns(after, p)) changed.push(ref);
    }
    t.same(changed.sort(), expectChanged.sort(), 'the classes whose DNS reachability the change alters');
  });
}

t.test('a policy on the DNS servers\' ingress changes the DNS of clients it does not select', async (t) => {
  const objs = objects();
  const o = cnp('kube-system', 'dns-from-red', {
    endpointSelector: { matchLabels: { 'k8s-app': 'kube-dns' } },
    ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.cilium.k8s.namespace.labels.team': 'red' } }] }],
  });
  agrees(t, objs, makeChange('CREATE', o), applied(objs, o), ['b/api', 'b/web', 'c/job']);
});

t.test('a CCNP on the DNS servers\' ingress, deleted', async (t) => {
  const o = ccnp('dns-from-red', { endpointSelector: kubeDnsSelector, ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.cilium.k8s.namespace.labels.team': 'red' } }] }] });
  const objs = objects([o]);
  agrees(t, objs, makeChange('DELETE', undefined, o), applied(objs, o, true), ['b/api', 'b/web', 'c/job']);
});

t.test('a Namespace relabel changes the namespaceSelector matches of other namespaces\' policies', async (t) => {
  const dnsFromRed = ccnp('dns-from-red', { endpointSelector: kubeDnsSelector, ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.cilium.k8s.namespace.labels.team': 'red' } }] }] });
  const objs = objects([dnsFromRed]);
  const relabel = ns('b', { team: 'red' });
  agrees(t, objs, makeChange('UPDATE', relabel, objs.find((o) => key(o) === key(relabel))), applied(objs, relabel), ['b/api', 'b/web']);
  const out = ns('a', { team: 'green' });
  agrees(t, objs, makeChange('UPDATE', out, objs.find((o) => key(o) === key(out))), applied(objs, out), ['a/db', 'a/web']);
});

t.test('a cilium-config change alters the enforcement of every class', async (t) => {
  const objs = objects();
  const old = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'cilium-config')!;
  const cm = { ...old, data: { ...(old['data'] as Record<string, string>), 'enable-policy': 'always' } } as Obj;
  // The DNS servers' ingress is enforced too (no policy admits the clients): every class loses DNS.
  const derivedBefore = reachDerivations();
  agrees(t, objs, makeChange('UPDATE', cm, old), applied(objs, cm), ['a/db', 'a/web', 'b/api', 'b/web', 'c/job']);
  t.ok(reachDerivations() > derivedBefore, 'derived from the base\'s decisions (enforcement from the new settings)');
  // And back, and to `never` (which turns every policy off: judged in full).
  const always = objs.map((o) => (o === old ? cm : o));
  agrees(t, always, makeChange('UPDATE', old, cm), applied(always, old), ['a/db', 'a/web', 'b/api', 'b/web', 'c/job']);
  const never = { ...old, data: { ...(old['data'] as Record<string, string>), 'enable-policy': 'never' } } as Obj;
  const dnsFromRed = ccnp('dns-from-red', { endpointSelector: kubeDnsSelector, ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.cilium.k8s.namespace.labels.team': 'red' } }] }] });
  const withDeny = objects([dnsFromRed]);
  agrees(t, withDeny, makeChange('UPDATE', never, old), applied(withDeny, never), ['b/api', 'b/web', 'c/job']);
  const narrowed = { ...old, data: { ...(old['data'] as Record<string, string>), 'enable-policy': 'always' } } as Obj;
  // c/job, now egress-enforced, could not reach the servers before either (not team=red): no change.
  agrees(t, withDeny, makeChange('UPDATE', narrowed, old), applied(withDeny, narrowed), []);
});

t.test('policy changes in one namespace', async (t) => {
  const objs = objects();
  const deny = cnp('c', 'c-deny', { endpointSelector: {}, egress: [{ toEntities: ['world'] }] });
  agrees(t, objs, makeChange('CREATE', deny), applied(objs, deny), ['c/job']);
  // Selects a's pods (their lists change) without changing their DNS: judged again, same answer.
  const ingressOnly = cnp('a', 'a-in', { endpointSelector: {}, ingress: [{}] });
  agrees(t, objs, makeChange('CREATE', ingressOnly), applied(objs, ingressOnly), []);
  const egress = objs.find((o) => key(o) === 'CiliumNetworkPolicy/a/a-egress')!;
  agrees(t, objs, makeChange('DELETE', undefined, egress), applied(objs, egress, true), []);
  const narrowed = cnp('a', 'a-egress', { endpointSelector: {}, egress: [{ toEntities: ['kube-apiserver'] }] });
  agrees(t, objs, makeChange('UPDATE', narrowed, egress), applied(objs, narrowed), ['a/db', 'a/web']);
});

t.test('deny rules and policies allowing what others allow too, derived from the base\'s decisions', async (t) => {
  const everywhere = ccnp('dns-everywhere', { endpointSelector: {}, egress: [dnsEgress] });
  const objs = objects([everywhere]);
  // a keeps DNS through its own policy, b through its NetworkPolicy; c leaves default deny with it.
  agrees(t, objs, makeChange('DELETE', undefined, everywhere), applied(objs, everywhere, true), []);
  const denyDns = cnp('b', 'b-deny-dns', { endpointSelector: { matchLabels: { app: 'api' } }, egressDeny: [{ toEndpoints: [kubeDnsSelector.matchLabels ? { matchLabels: kubeDnsSelector.matchLabels } : {}] }] });
  agrees(t, objs, makeChange('CREATE', denyDns), applied(objs, denyDns), ['b/api']);
  const serversDeny = ccnp('dns-deny-b', { endpointSelector: kubeDnsSelector, ingressDeny: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'b' } }] }] });
  // Its ingress section also puts the servers into ingress default deny: every client loses DNS.
  const all = ['a/db', 'a/web', 'b/api', 'b/web', 'c/job'];
  agrees(t, objs, makeChange('CREATE', serversDeny), applied(objs, serversDeny), all);
  const objsDeny = objects([everywhere, serversDeny]);
  agrees(t, objsDeny, makeChange('DELETE', undefined, serversDeny), applied(objsDeny, serversDeny, true), all);
  const denyBOnly = ccnp('dns-deny-b', { endpointSelector: kubeDnsSelector, ingress: [{ fromEntities: ['cluster'] }], ingressDeny: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'b' } }] }] });
  agrees(t, objs, makeChange('CREATE', denyBOnly), applied(objs, denyBOnly), ['b/api', 'b/web']);
  // An update that keeps allowing DNS for some classes and stops for others.
  const narrowed = ccnp('dns-everywhere', { endpointSelector: { matchLabels: { app: 'web' } }, egress: [dnsEgress] });
  agrees(t, objs, makeChange('UPDATE', narrowed, everywhere), applied(objs, narrowed), []);
  const apiOnly = ccnp('dns-everywhere', { endpointSelector: {}, egress: [{ toEntities: ['kube-apiserver'] }] });
  agrees(t, objs, makeChange('UPDATE', apiOnly, everywhere), applied(objs, apiOnly), ['c/job']);
});

t.test('a change that touches one namespace judges that namespace\'s classes, not the cluster\'s', async (t) => {
  const extra: Obj[] = [];
  for (let i = 0; i < 20; i++) {
    extra.push(ns(`n${i}`));
    for (const app of ['web', 'api', 'worker']) for (let r = 0; r < 3; r++) extra.push(pod(`n${i}`, `${app}-${r}`, { app }));
  }
  const base = memoryState(baseCluster(extra) as Obj[]);
  const all = (s: ClusterState): Pod[] => s.list('Pod').filter((p) => (p.metadata.namespace ?? '').startsWith('n'));
  for (const p of all(base)) reachesDns(base, p);
  const warm = judged();
  for (const p of all(base)) reachesDns(base, p);
  t.equal(judged() - warm, 0, 'the base answers every class from its memo');
  // A review cut by its budget forgets the caches that may hold half-built entries, not these.
  forgetCachedResults();
  const cut = judged();
  for (const p of all(base)) reachesDns(base, p);
  t.equal(judged() - cut, 0, 'kept through forgetCachedResults (a budget cut)');
  inRequestScope(() => {
    const after = overlay(base, mutationOf(makeChange('CREATE', cnp('n7', 'deny-egress', { endpointSelector: {}, egress: [{ toEntities: ['world'] }] }))));
    const start = judged();
    const computedBefore = reachComputations();
    const answers = all(after).map((p) => reachesDns(after, p));
    t.equal(judged() - start, 3, "n7's three classes are judged, the 57 others come from the base");
    t.equal(reachComputations() - computedBefore, 0, "n7's classes from the base's decisions and the new policy's rules");
    t.same(answers.filter((a) => a === false).length, 9, "n7's nine pods lose DNS");
  });
  inRequestScope(() => {
    // A policy on the servers' ingress: every client is judged again.
    const after = overlay(base, mutationOf(makeChange('CREATE', cnp('kube-system', 'dns-in', { endpointSelector: { matchLabels: { 'k8s-app': 'kube-dns' } }, ingress: [{}] }))));
    const start = judged();
    for (const p of all(after)) reachesDns(after, p);
    t.equal(judged() - start, 60, 'every class is judged');
  });
});
