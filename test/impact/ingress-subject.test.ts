// ingressSubject: what a request does to the ingress of the pods a control-plane rule guards (istiod,
// webhook backends), from the request alone; describeIngressSubject: how a message names it.

import t from 'tap';

import { ingressSubject } from '../../src/impact/index.ts';
import { describeIngressSubject } from '../../src/rules/render-helpers.ts';
import { cnp, ns } from '../fixtures/cluster.ts';
import { makeChange } from '../rules/rule-harness.ts';

const policy = cnp('istio-system', 'lock-down', { endpointSelector: {}, ingress: [{}] });
const ciliumConfig = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cilium-config', namespace: 'kube-system' }, data: {} };
const otherConfig = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'coredns', namespace: 'kube-system' }, data: {} };

t.test('each kind of request, and the near misses that are none', async (t) => {
  const written = ingressSubject(makeChange('CREATE', policy));
  t.equal(written?.by, 'policy');
  t.equal(written?.by === 'policy' ? written.object.metadata.name : undefined, 'lock-down', 'carries the object written');
  t.equal(ingressSubject(makeChange('UPDATE', policy, policy))?.by, 'policy', 'an update writes it too');
  t.same(ingressSubject(makeChange('DELETE', undefined, policy)), { by: 'delete' });
  t.same(ingressSubject(makeChange('UPDATE', ns('team-a', { x: '1' }), ns('team-a'))), { by: 'namespace', namespace: 'team-a' });
  t.equal(ingressSubject(makeChange('CREATE', ns('team-b'))), undefined, 'creating a Namespace relabels nothing');
  t.same(ingressSubject(makeChange('UPDATE', ciliumConfig, ciliumConfig)), { by: 'cilium-config' });
  t.equal(ingressSubject(makeChange('DELETE', undefined, ciliumConfig)), undefined, 'deleting cilium-config is not judged');
  t.equal(ingressSubject(makeChange('UPDATE', otherConfig, otherConfig)), undefined, 'another ConfigMap');
});

t.test('how messages name a request that is not a policy write', async (t) => {
  t.equal(describeIngressSubject({ by: 'delete' }, 'CiliumNetworkPolicy istio-system/lock-down'), 'deleting CiliumNetworkPolicy istio-system/lock-down');
  t.equal(describeIngressSubject({ by: 'namespace', namespace: 'team-a' }, 'x'), 'relabelling namespace team-a');
  t.equal(describeIngressSubject({ by: 'cilium-config' }, 'x'), 'this cilium-config change');
});
