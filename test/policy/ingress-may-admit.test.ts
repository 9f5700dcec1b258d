// ingressMayAdmitTcp over-approximates "ingress admits the source on some TCP port" (hbone-15008-blocked
// skips destinations of a relabelled namespace's pods with it): whenever reachable() admits a source on
// a TCP port, it must say true; it must also say false somewhere, or it would skip nothing.

import t from 'tap';
import { ingressMayAdmitTcp, ingressMayAdmitTcpByModels, ingressMayAdmitTcpFrom, reachable } from '../../src/policy/reachability.ts';
import { isCiliumEndpoint, policiesSelecting } from '../../src/policy/selection.ts';
import { baseCluster, cnp, memoryState, netpol, ns, pod } from '../fixtures/cluster.ts';

t.test('never false where reachable() admits a TCP port', async (t) => {
  const s = memoryState(baseCluster([
    ns('a', { team: 'red' }), ns('b', { team: 'blue' }), ns('c'),
    pod('a', 'web', { app: 'web' }, { ports: [{ name: 'http', containerPort: 8080 }] }),
    pod('a', 'db', { app: 'db' }, { ports: [{ containerPort: 5432 }] }),
    pod('b', 'api', { app: 'api' }, { ports: [{ name: 'http', containerPort: 8080 }] }),
    pod('b', 'job', { app: 'job' }),
    pod('c', 'free', { app: 'free' }),
    pod('c', 'host', { app: 'host' }, { hostNetwork: true }),
    cnp('a', 'web-from-red', { endpointSelector: { matchLabels: { app: 'web' } }, ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.cilium.k8s.namespace.labels.team': 'red' } }], toPorts: [{ ports: [{ port: 'http', protocol: 'TCP' }] }] }] }),
    cnp('a', 'db-from-web-udp', { endpointSelector: { matchLabels: { app: 'db' } }, ingress: [{ fromEndpoints: [{ matchLabels: { app: 'web' } }], toPorts: [{ ports: [{ port: '5432', protocol: 'UDP' }] }] }] }),
    netpol('b', 'api-from-a', { podSelector: { matchLabels: { app: 'api' } }, policyTypes: ['Ingress'], ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'red' } } }], ports: [{ port: 8080 }] }] }),
    cnp('b', 'job-deny', { endpointSelector: { matchLabels: { app: 'job' } }, ingressDeny: [{ fromEntities: ['cluster'] }] }),
  ]));
  const pods = s.list('Pod');
  let falses = 0;
  for (const from of pods) {
    for (const dest of pods) {
      if (from === dest) continue;
      const may = ingressMayAdmitTcp(s, [from], dest);
      if (!may) falses++;
      for (const port of [53, 80, 5432, 8080, 15008]) {
        if (reachable(s, from, { type: 'pod', pod: dest }, port, 'TCP', 'ingress')) {
          t.ok(may, `${from.metadata.namespace}/${from.metadata.name} -> ${dest.metadata.namespace}/${dest.metadata.name}:${port}`);
        }
      }
    }
  }
  t.ok(falses > 0, 'some pairs are excluded');
  const b = s.get('Pod', 'b', 'api')!;
  t.notOk(ingressMayAdmitTcp(s, [s.get('Pod', 'c', 'free')!], b), 'c is not team=red');
  t.ok(ingressMayAdmitTcp(s, [s.get('Pod', 'c', 'free')!, s.get('Pod', 'a', 'db')!], b), 'one admitted source is enough');
});

t.test('ingressMayAdmitTcpFrom: the same answer as ingressMayAdmitTcp for every destination, per element kept', async (t) => {
  const s = memoryState(baseCluster([
    ns('a', { team: 'red' }), ns('b', { team: 'blue' }), ns('c'),
    pod('a', 'web', { app: 'web' }, { ports: [{ name: 'http', containerPort: 8080 }] }),
    pod('a', 'db', { app: 'db' }, { ports: [{ containerPort: 5432 }] }),
    pod('b', 'api', { app: 'api' }, { ports: [{ name: 'http', containerPort: 8080 }] }),
    pod('b', 'api-2', { app: 'api', tier: 'x' }, { ports: [{ name: 'http', containerPort: 8080 }] }),
    pod('b', 'job', { app: 'job' }),
    pod('c', 'free', { app: 'free' }),
    pod('c', 'host', { app: 'host' }, { hostNetwork: true }),
    cnp('a', 'web-from-red', { endpointSelector: { matchLabels: { app: 'web' } }, ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.cilium.k8s.namespace.labels.team': 'red' } }], toPorts: [{ ports: [{ port: 'http', protocol: 'TCP' }] }] }] }),
    cnp('a', 'db-from-web-udp', { endpointSelector: { matchLabels: { app: 'db' } }, ingress: [{ fromEndpoints: [{ matchLabels: { app: 'web' } }], toPorts: [{ ports: [{ port: '5432', protocol: 'UDP' }] }] }] }),
    netpol('b', 'api-from-a', { podSelector: { matchLabels: { app: 'api' } }, policyTypes: ['Ingress'], ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'red' } } }], ports: [{ port: 8080 }] }] }),
    cnp('b', 'api-from-free', { endpointSelector: { matchLabels: { tier: 'x' } }, ingress: [{ fromEndpoints: [{ matchLabels: { app: 'free' } }] }] }),
    cnp('b', 'job-deny', { endpointSelector: { matchLabels: { app: 'job' } }, ingressDeny: [{ fromEntities: ['cluster'] }] }),
    cnp('c', 'free-from-cluster', { endpointSelector: { matchLabels: { app: 'free' } }, ingress: [{ fromEntities: ['cluster'] }] }),
    // d: one destination admits c/free alone, another any source on port 80 (an element without peers).
    ns('d'),
    pod('d', 'only-free', { app: 'of' }),
    pod('d', 'open', { app: 'open' }),
    cnp('d', 'of-from-free', { endpointSelector: { matchLabels: { app: 'of' } }, ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'c', app: 'free' } }] }] }),
    cnp('d', 'open-80', { endpointSelector: { matchLabels: { app: 'open' } }, ingress: [{ toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }] }] }),
  ]));
  const pods = s.list('Pod');
  const ref = (p: (typeof pods)[number]): string => `${p.metadata.namespace}/${p.metadata.name}`;
  // Every pair of source sets (pod-network ones; with a host-network source it falls back) and destination.
  const sets = [['a/web'], ['c/free'], ['a/db', 'c/free'], ['a/web', 'c/free'], ['b/job'], ['c/host'], ['c/host', 'b/job'], ['a/web', 'a/db', 'b/api']];
  let trues = 0;
  let falses = 0;
  for (const set of sets) {
    const sources = set.map((r) => pods.find((p) => ref(p) === r)!);
    const ask = ingressMayAdmitTcpFrom(s, sources);
    const hostSource = sources.some((p) => p.spec.hostNetwork === true);
    const byModels = hostSource ? undefined : ingressMayAdmitTcpByModels(s, sources);
    // Each destination twice, in both orders: a kept element answer must not leak between destinations.
    for (const dest of [...pods, ...[...pods].reverse()]) {
      const want = ingressMayAdmitTcp(s, sources, dest);
      t.equal(ask(dest), want, `${set.join('+')} -> ${ref(dest)}`);
      // Asked by the destination's selecting list (what mayAdmitTcpByList does for a relabel).
      if (byModels && isCiliumEndpoint(dest)) t.equal(byModels(policiesSelecting(s, dest)), want, `by models: ${set.join('+')} -> ${ref(dest)}`);
      if (want) trues++;
      else falses++;
    }
  }
  t.ok(trues > 0 && falses > 0, `both answers occur (${trues} true, ${falses} false)`);
  // A host-network source reads the destination's node (allow-localhost): no answer by list alone.
  t.throws(() => ingressMayAdmitTcpByModels(s, [pods.find((p) => ref(p) === 'c/host')!]), /host-network/);
  const of = pods.find((p) => ref(p) === 'd/only-free')!;
  t.notOk(ingressMayAdmitTcpFrom(s, [pods.find((p) => ref(p) === 'a/web')!])(of), 'a/web alone is not admitted at d/only-free');
  t.ok(ingressMayAdmitTcpFrom(s, ['a/web', 'c/free'].map((r) => pods.find((p) => ref(p) === r)!))(of), 'the second source is');
  t.ok(ingressMayAdmitTcpFrom(s, [pods.find((p) => ref(p) === 'a/web')!])(pods.find((p) => ref(p) === 'd/open')!), 'an allow element without peers admits any source');
});
