// Policy selection, endpoint labels and address lookups are cached per identity (namespace, service
// account, labels), per Namespace labels that selectors read, and per cluster-wide list: these tests
// check that the caches never hand out a stale answer when one of those inputs changes.

import t from 'tap';
import { ipIdentity } from '../../src/policy/reachability.ts';
import { enforcement, policiesSelecting } from '../../src/policy/selection.ts';
import { endpointLabels } from '../../src/policy/selectors.ts';
import { mutationOf } from '../../src/core/change.ts';
import { overlay } from '../../src/state/overlay.ts';
import type { ClusterState, KubeObject, Pod } from '../../src/core/objects.ts';
import { baseCluster, ccnp, cnp, memoryState, ns, pod } from '../fixtures/cluster.ts';
import { makeChange } from '../rules/rule-harness.ts';

type Obj = Parameters<typeof makeChange>[1] & object;

const names = (s: ClusterState, p: Pod): string[] => policiesSelecting(s, p).map((m) => m.ref.name).sort();

function cluster(): ReturnType<typeof memoryState> {
  return memoryState(baseCluster([
    ns('a', { team: 'red' }),
    pod('a', 'web-1', { app: 'web' }, { ip: '10.1.0.1' }),
    pod('a', 'web-2', { app: 'web' }, { ip: '10.1.0.2' }),
    pod('a', 'db-1', { app: 'db' }, { ip: '10.1.0.3' }),
    pod('a', 'web-sa', { app: 'web' }, { ip: '10.1.0.4', sa: 'special' }),
    ccnp('red-teams', { endpointSelector: { matchLabels: { 'io.cilium.k8s.namespace.labels.team': 'red' } }, ingress: [{}] }),
    cnp('a', 'web-only', { endpointSelector: { matchLabels: { app: 'web' } }, egress: [{}] }),
    cnp('a', 'special-sa', { endpointSelector: { matchLabels: { 'io.cilium.k8s.policy.serviceaccount': 'special' } }, egress: [{}] }),
  ]));
}

t.test('replicas share one selection answer; other labels or service accounts get their own', async (t) => {
  const s = cluster();
  const [w1, w2, db, sa] = ['web-1', 'web-2', 'db-1', 'web-sa'].map((n) => s.get('Pod', 'a', n)!);
  t.same(names(s, w1!), ['red-teams', 'web-only']);
  t.equal(policiesSelecting(s, w1!), policiesSelecting(s, w2!), 'same identity, same answer object');
  t.same(names(s, db!), ['red-teams']);
  t.same(names(s, sa!), ['red-teams', 'special-sa', 'web-only'], 'service account is part of the identity');
  t.equal(endpointLabels(s, w1!), endpointLabels(s, w2!), 'replicas share their label set');
  t.notOk(endpointLabels(s, w1!) === endpointLabels(s, sa!), 'a different service account is a different label set');
});

t.test('a Namespace label that a selector reads changes selection; one nobody reads does not', async (t) => {
  const base = cluster();
  const web = base.get('Pod', 'a', 'web-1')!;
  t.same(names(base, web), ['red-teams', 'web-only']);
  t.equal(enforcement(base, web, 'ingress').enforced, true);

  const blue = overlay(base, mutationOf(makeChange('UPDATE', ns('a', { team: 'blue' }) as Obj, ns('a', { team: 'red' }) as Obj)));
  t.same(names(blue, web), ['web-only'], 'team=blue: the clusterwide policy no longer selects the pod');
  t.equal(enforcement(blue, web, 'ingress').enforced, false, 'and ingress is no longer enforced');
  t.equal(endpointLabels(blue, web)['io.cilium.k8s.namespace.labels.team'], 'blue');

  const unrelated = overlay(base, mutationOf(makeChange('UPDATE', ns('a', { team: 'red', cost: 'x' }) as Obj, ns('a', { team: 'red' }) as Obj)));
  t.equal(policiesSelecting(unrelated, web), policiesSelecting(base, web), 'unread label: the cached answer is reused');
  t.equal(endpointLabels(unrelated, web)['io.cilium.k8s.namespace.labels.cost'], 'x', 'endpoint labels still carry every Namespace label');

  const removed = overlay(base, mutationOf(makeChange('UPDATE', ns('a') as Obj, ns('a', { team: 'red' }) as Obj)));
  t.same(names(removed, web), ['web-only'], 'label removed: not selected');
  t.same(names(base, web), ['red-teams', 'web-only'], 'the base keeps its answer');
});

t.test('a policy that starts reading a Namespace label makes that label part of the cache key', async (t) => {
  const base = cluster();
  const web = base.get('Pod', 'a', 'web-1')!;
  const prodOnly = cnp('a', 'prod-only', { endpointSelector: { matchLabels: { 'io.cilium.k8s.namespace.labels.env': 'prod' } }, egress: [{}] }) as Obj;
  const withPolicy = overlay(base, mutationOf(makeChange('CREATE', prodOnly)));
  t.same(names(withPolicy, web), ['red-teams', 'web-only'], 'namespace a has no env=prod');
  // Overlays stack: the policy, then the Namespace relabel that it reads.
  const prod = overlay(withPolicy, mutationOf(makeChange('UPDATE', ns('a', { team: 'red', env: 'prod' }) as Obj, ns('a', { team: 'red' }) as Obj)));
  t.same(names(prod, web), ['prod-only', 'red-teams', 'web-only'], 'env=prod: the new policy selects the pod');
  t.same(names(withPolicy, web), ['red-teams', 'web-only'], 'the state without the relabel keeps its answer');
});

t.test('address lookups follow pod changes in the state', async (t) => {
  const s = cluster();
  t.equal(ipIdentity(s, '10.1.0.9', undefined).pod, undefined, 'no pod has 10.1.0.9 yet');
  t.equal(ipIdentity(s, '10.1.0.1', undefined).pod?.metadata.name, 'web-1');
  s.upsert('Pod', pod('a', 'late', { app: 'late' }, { ip: '10.1.0.9' }) as KubeObject);
  t.equal(ipIdentity(s, '10.1.0.9', undefined).pod?.metadata.name, 'late', 'a new pod is found by its address');
  s.remove('Pod', 'a', 'web-1');
  t.equal(ipIdentity(s, '10.1.0.1', undefined).pod, undefined, 'a removed pod is no longer found');
  const moved = overlay(s, mutationOf(makeChange('CREATE', pod('a', 'again', { app: 'x' }, { ip: '10.1.0.1' }) as Obj)));
  t.equal(ipIdentity(moved, '10.1.0.1', undefined).pod?.metadata.name, 'again', 'an overlay pod is found by its address');
  t.equal(ipIdentity(s, '10.1.0.1', undefined).pod, undefined, 'but not in the base');
});

t.test('link-local addresses are never looked up among pods: the probe source stays world after pod changes', async (t) => {
  const s = cluster();
  // A pod reporting a link-local address (no IPAM gives one) is not taken for the address's owner:
  // the probe source 169.254.7.127 and fe80:: addresses are judged as what Cilium sees them as.
  s.upsert('Pod', pod('a', 'odd', { app: 'odd' }, { ip: '169.254.7.127' }) as KubeObject);
  const probe = ipIdentity(s, '169.254.7.127', undefined);
  t.equal(probe.pod, undefined);
  t.ok(probe.reserved.has('world'), `reserved: ${[...probe.reserved].join(',')}`);
  t.equal(ipIdentity(s, 'fe80::1', undefined).pod, undefined);
  // Any other address still finds its pod.
  s.upsert('Pod', pod('a', 'late', { app: 'late' }, { ip: '10.1.0.9' }) as KubeObject);
  t.equal(ipIdentity(s, '10.1.0.9', undefined).pod?.metadata.name, 'late');
});
