// mesh-control-plane-blocked judges one xDS flow per client class (kind and class) and spreads the verdict
// over every client of the class: the clients named, their count and their order must be those of judging
// every client on its own (the order the pods are listed in, classes interleaved).

import t from 'tap';
import { rule } from '../../src/rules/mesh-control-plane-blocked/index.ts';
import { baseCluster, cnp, ns, pod } from '../fixtures/cluster.ts';
import { runRule } from './rule-harness.ts';

t.test('a policy cutting xDS from some client classes names their pods in list order', async (t) => {
  const objects = baseCluster([
    ns('a', { 'istio-injection': 'enabled' }),
    // Interleaved classes: app=x pods are cut off, app=y pods are admitted.
    pod('a', 'x-1', { app: 'x' }, { sidecar: true }),
    pod('a', 'y-1', { app: 'y' }, { sidecar: true }),
    pod('a', 'x-2', { app: 'x' }, { sidecar: true }),
    pod('a', 'y-2', { app: 'y' }, { sidecar: true }),
    pod('a', 'x-3', { app: 'x' }, { sidecar: true }),
  ]);
  const policy = cnp('istio-system', 'istiod-in', {
    endpointSelector: { matchLabels: { app: 'istiod' } },
    ingress: [
      { fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'a', app: 'y' } }], toPorts: [{ ports: [{ port: '15012', protocol: 'TCP' }] }] },
      { fromEntities: ['kube-apiserver', 'remote-node', 'host'], toPorts: [{ ports: [{ port: '15017', protocol: 'TCP' }] }] },
    ],
  });
  const { findings } = runRule(rule, objects, 'CREATE', policy);
  t.equal(findings.length, 1);
  const p = findings[0]!.params as Record<string, unknown>;
  t.same(p['clients'], ['a/x-1', 'a/x-2', 'a/x-3'], 'every pod of the cut class, in list order');
  t.equal(p['clientCount'], 3);
  t.same(p['cut'], ['sidecar:15012']);
});
