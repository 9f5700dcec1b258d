// ingressMayAdmitTcp over-approximates "ingress admits the source on some TCP port" (hbone-15008-blocked
// skips destinations of a relabelled namespace's pods with it): whenever reachable() admits a source on
// a TCP port, it must say true; it must also say false somewhere, or it would skip nothing.

import t from 'tap';
import { ingressMayAdmitTcp, reachable } from '../../src/policy/reachability.ts';
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
