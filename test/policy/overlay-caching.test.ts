// The engine caches derived data by object identity (policy lists, pod lists, Namespace objects) so that
// an overlay (one admission request) reuses the base's work. These tests check that every kind of change
// an overlay can carry is still seen, and print the cost of evaluations on a large state (not asserted).

import t from 'tap';
import { evaluate } from '../../src/policy/reachability.ts';
import { enforcement, podsSelectedBy, policiesSelecting } from '../../src/policy/selection.ts';
import { mutationOf } from '../../src/core/change.ts';
import { overlay } from '../../src/state/overlay.ts';
import type { ClusterState, PolicyObject } from '../../src/core/objects.ts';
import { baseCluster, ccnp, cnp, findPod, memoryState, netpol, ns, pod } from '../fixtures/cluster.ts';
import { makeChange } from '../rules/rule-harness.ts';

type Obj = Parameters<typeof makeChange>[1] & object;

function cluster(): ReturnType<typeof memoryState> {
  return memoryState(baseCluster([
    ns('a', { team: 'red' }), ns('b'),
    pod('a', 'web', { app: 'web' }, { ip: '10.1.0.1' }),
    pod('b', 'client', { app: 'client' }, { ip: '10.2.0.1' }),
    netpol('a', 'deny-in', { podSelector: {}, policyTypes: ['Ingress'] }),
  ]));
}

function canReach(s: ClusterState): boolean {
  const web = s.get('Pod', 'a', 'web')!;
  const client = s.get('Pod', 'b', 'client')!;
  return evaluate(s, client, { type: 'pod', pod: web }, 80, 'TCP').allowed;
}

t.test('CREATE of an allow policy in an overlay is seen; the base keeps its answer', async (t) => {
  const base = cluster();
  t.notOk(canReach(base));
  const allow = cnp('a', 'allow-b', { endpointSelector: {}, ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'b' } }] }] }) as Obj;
  const after = overlay(base, mutationOf(makeChange('CREATE', allow)));
  t.ok(canReach(after));
  t.notOk(canReach(base), 'base unchanged after the overlay was evaluated');
  t.ok(canReach(after), 'overlay answer stable');
});

t.test('DELETE of the deny-all in an overlay is seen', async (t) => {
  const base = cluster();
  const np = base.get('NetworkPolicy', 'a', 'deny-in') as unknown as Obj;
  const after = overlay(base, mutationOf(makeChange('DELETE', undefined, np)));
  t.ok(canReach(after));
  t.equal(enforcement(after, after.get('Pod', 'a', 'web')!, 'ingress').enforced, false);
  t.equal(enforcement(base, base.get('Pod', 'a', 'web')!, 'ingress').enforced, true);
});

t.test('Namespace relabel in an overlay changes namespace-selector matches', async (t) => {
  const base = memoryState(baseCluster([
    ns('a'), ns('b', { team: 'red' }),
    pod('a', 'web', { app: 'web' }), pod('b', 'client', { app: 'client' }),
    netpol('a', 'from-red', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'red' } } }] }] }),
    cnp('a', 'from-red-cnp', { endpointSelector: {}, egress: [{ toEndpoints: [{ matchLabels: { 'k8s:io.cilium.k8s.namespace.labels.team': 'red' } }] }] }),
  ]));
  t.ok(canReach(base));
  const after = overlay(base, mutationOf(makeChange('UPDATE', ns('b', { team: 'blue' }) as Obj, ns('b', { team: 'red' }) as Obj)));
  t.notOk(canReach(after), 'b is no longer team=red');
  const web = after.get('Pod', 'a', 'web')!;
  const client = after.get('Pod', 'b', 'client')!;
  t.notOk(evaluate(after, web, { type: 'pod', pod: client }, 80, 'TCP').allowed, 'CNP namespace-label peer follows the relabel');
  t.ok(evaluate(base, base.get('Pod', 'a', 'web')!, { type: 'pod', pod: base.get('Pod', 'b', 'client')! }, 80, 'TCP').allowed);
});

t.test('a new pod and a relabelled pod in an overlay are selected correctly', async (t) => {
  const base = cluster();
  const policy = cnp('a', 'only-api', { endpointSelector: { matchLabels: { app: 'api' } }, egress: [{ toEntities: ['kube-apiserver'] }] });
  base.upsert('CiliumNetworkPolicy', policy as never);
  t.same(podsSelectedBy(base, policy as unknown as PolicyObject), []);
  const created = overlay(base, mutationOf(makeChange('CREATE', pod('a', 'api-1', { app: 'api' }) as Obj)));
  t.same(podsSelectedBy(created, policy as unknown as PolicyObject).map((p) => p.metadata.name), ['api-1']);
  const api1 = created.get('Pod', 'a', 'api-1')!;
  t.same(policiesSelecting(created, api1).map((m) => m.ref.name).sort(), ['deny-in', 'only-api']);
  t.notOk(evaluate(created, api1, { type: 'ip', ip: '8.8.8.8' }, 443, 'TCP').allowed);
  const relabelled = overlay(base, mutationOf(makeChange('UPDATE', pod('a', 'web', { app: 'api' }, { ip: '10.1.0.1' }) as Obj)));
  t.notOk(evaluate(relabelled, relabelled.get('Pod', 'a', 'web')!, { type: 'ip', ip: '8.8.8.8' }, 443, 'TCP').allowed);
  t.ok(evaluate(base, base.get('Pod', 'a', 'web')!, { type: 'ip', ip: '8.8.8.8' }, 443, 'TCP').allowed);
  // The pod IP index follows the overlay too: 10.1.0.9 is a pod only in the overlay.
  const moved = overlay(base, mutationOf(makeChange('CREATE', pod('a', 'new', { app: 'x' }, { ip: '10.1.0.9' }) as Obj)));
  const client = base.get('Pod', 'b', 'client')!;
  t.equal(evaluate(moved, client, { type: 'ip', ip: '10.1.0.9' }, 80, 'TCP').ingress.enforced, true, 'resolved to the new pod (deny-in applies)');
  t.equal(evaluate(base, client, { type: 'ip', ip: '10.1.0.9' }, 80, 'TCP').ingress.enforced, false, 'world address in the base');
});

t.test('a CCNP change in an overlay reaches every namespace', async (t) => {
  const base = cluster();
  const client = base.get('Pod', 'b', 'client')!;
  t.ok(evaluate(base, client, { type: 'ip', ip: '8.8.8.8' }, 443, 'TCP').allowed);
  const after = overlay(base, mutationOf(makeChange('CREATE', ccnp('no-world', { endpointSelector: {}, egressDeny: [{ toEntities: ['world'] }], enableDefaultDeny: { egress: false } }) as Obj)));
  t.notOk(evaluate(after, after.get('Pod', 'b', 'client')!, { type: 'ip', ip: '8.8.8.8' }, 443, 'TCP').allowed);
  t.ok(evaluate(after, after.get('Pod', 'b', 'client')!, { type: 'pod', pod: after.get('Pod', 'a', 'web')! }, 443, 'TCP').allowed === false, 'deny-in still applies');
  t.ok(evaluate(base, client, { type: 'ip', ip: '8.8.8.8' }, 443, 'TCP').allowed);
});

t.test('perf: 20,000 pods, one overlay per request, 200 evaluations each (printed, not asserted)', async (t) => {
  const objs: Obj[] = [];
  for (let n = 0; n < 200; n++) {
    objs.push(ns(`ns-${n}`, { team: String(n % 5) }) as Obj);
    for (let p = 0; p < 100; p++) objs.push(pod(`ns-${n}`, `p-${p}`, { app: `a${p % 10}`, tier: p % 2 ? 'fe' : 'be' }, { ip: `10.${n}.${Math.floor(p / 250)}.${(p % 250) + 1}` }) as Obj);
    objs.push(netpol(`ns-${n}`, 'same-ns', { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] }) as Obj);
    objs.push(cnp(`ns-${n}`, 'egress', {
      endpointSelector: { matchLabels: { tier: 'fe' } },
      egress: [
        { toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s:k8s-app': 'kube-dns' } }], toPorts: [{ ports: [{ port: '53', protocol: 'UDP' }], rules: { dns: [{ matchPattern: '*' }] } }] },
        { toEntities: ['kube-apiserver'] },
      ],
    }) as Obj);
  }
  const base = memoryState(baseCluster(objs as never));
  const dns = findPod(base, 'kube-system/coredns-1');
  const start = performance.now();
  let allowed = 0;
  const requests = 50;
  for (let r = 0; r < requests; r++) {
    const n = r % 200;
    const change = makeChange('CREATE', cnp(`ns-${n}`, `extra-${r}`, { endpointSelector: { matchLabels: { app: 'a1' } }, egress: [{ toEntities: ['world'] }] }) as Obj);
    const after = overlay(base, mutationOf(change));
    for (let p = 0; p < 100; p++) {
      const from = after.get('Pod', `ns-${n}`, `p-${p}`)!;
      if (evaluate(after, from, { type: 'pod', pod: dns }, 53, 'UDP').allowed) allowed++;
      if (evaluate(after, from, { type: 'entity', entity: 'kube-apiserver' }, 6443, 'TCP').allowed) allowed++;
    }
  }
  const ms = performance.now() - start;
  t.comment(`${requests} overlays x 200 evaluations on 20,000 pods: ${ms.toFixed(0)} ms (${((ms / requests) * 1000 / 200).toFixed(1)} µs per evaluation)`);
  t.ok(allowed > 0);
});

t.test('podsSelectedBy answers are shared by equal selectors and follow pod and Namespace changes', async (t) => {
  const base = memoryState(baseCluster([
    ns('a', { team: 'red' }), ns('b'),
    pod('a', 'web', { app: 'web' }), pod('a', 'api', { app: 'api' }), pod('b', 'web', { app: 'web' }),
  ]));
  const names = (pods: readonly { metadata: { namespace?: string; name: string } }[]) => pods.map((p) => `${p.metadata.namespace}/${p.metadata.name}`).sort();
  const web = (name: string) => cnp('a', name, { endpointSelector: { matchLabels: { app: 'web' } }, egress: [{ toEntities: ['world'] }] }) as unknown as PolicyObject;
  const first = podsSelectedBy(base, web('one'));
  t.same(names(first), ['a/web']);
  t.equal(podsSelectedBy(base, web('two')), first, 'another policy object with the same selector in the same namespace shares the answer');
  const policyOverlay = overlay(base, mutationOf(makeChange('CREATE', web('three') as unknown as Obj)));
  t.equal(podsSelectedBy(policyOverlay, web('four')), first, 'a policy request leaves pods and Namespaces as they were');
  t.same(names(podsSelectedBy(base, cnp('b', 'one', { endpointSelector: { matchLabels: { app: 'web' } }, egress: [{ toEntities: ['world'] }] }) as unknown as PolicyObject)), ['b/web'], 'the namespace is part of the key');

  // A pod relabel (a watch event) is seen by the next answer.
  base.upsert('Pod', pod('a', 'api', { app: 'web' }) as never);
  t.same(names(podsSelectedBy(base, web('five'))), ['a/api', 'a/web']);
  // A pod created only in an overlay is seen there, not in the base.
  const podOverlay = overlay(base, mutationOf(makeChange('CREATE', pod('a', 'web-2', { app: 'web' }) as Obj)));
  t.same(names(podsSelectedBy(podOverlay, web('six'))), ['a/api', 'a/web', 'a/web-2']);
  t.same(names(podsSelectedBy(base, web('seven'))), ['a/api', 'a/web']);

  // Namespace labels feed CCNP selectors: a relabel in an overlay and then in the base are both seen.
  const red = ccnp('red-web', { endpointSelector: { matchLabels: { 'k8s:io.cilium.k8s.namespace.labels.team': 'red', app: 'web' } }, egress: [{ toEntities: ['world'] }] }) as unknown as PolicyObject;
  t.same(names(podsSelectedBy(base, red)), ['a/api', 'a/web']);
  const relabel = overlay(base, mutationOf(makeChange('UPDATE', ns('b', { team: 'red' }) as Obj, ns('b') as Obj)));
  t.same(names(podsSelectedBy(relabel, ccnp('red-web-2', { endpointSelector: { matchLabels: { 'k8s:io.cilium.k8s.namespace.labels.team': 'red', app: 'web' } }, egress: [{ toEntities: ['world'] }] }) as unknown as PolicyObject)), ['a/api', 'a/web', 'b/web']);
  base.upsert('Namespace', ns('a') as never);
  t.same(names(podsSelectedBy(base, ccnp('red-web-3', { endpointSelector: { matchLabels: { 'k8s:io.cilium.k8s.namespace.labels.team': 'red', app: 'web' } }, egress: [{ toEntities: ['world'] }] }) as unknown as PolicyObject)), [], 'a is no longer team=red');
});
