// src/policy/deny-only.ts: deny-only rules and the default deny they still cause (cilium#14992).
import t from 'tap';
import { denyOnlyDirections, denyOnlyEnforcement, modelOfObject, policyModel } from '../../src/policy/index.ts';
import type { PolicyObject } from '../../src/core/objects.ts';
import { baseCluster, ccnp, cnp, findPod, memoryState, ns, pod } from '../fixtures/cluster.ts';

const deny22 = [{ toPorts: [{ ports: [{ port: '22' }] }] }];
const asPolicy = (o: unknown) => o as PolicyObject;

t.test('denyOnlyDirections: a deny section without an allow section, per direction; node rules do not count', async (t) => {
  t.same(denyOnlyDirections(asPolicy(cnp('a', 'p', { endpointSelector: {}, ingressDeny: deny22 }))), ['ingress']);
  t.same(denyOnlyDirections(asPolicy(cnp('a', 'p', { endpointSelector: {}, ingressDeny: deny22, egressDeny: deny22, egress: [{ toEntities: ['all'] }] }))), ['ingress']);
  t.same(denyOnlyDirections(asPolicy(cnp('a', 'p', { endpointSelector: {}, ingress: [{}], ingressDeny: deny22 }))), [], 'ingress: [{}] is an allow section');
  t.same(denyOnlyDirections(asPolicy(ccnp('n', { nodeSelector: {}, ingressDeny: deny22 }))), [], 'a node rule');
  t.same(denyOnlyDirections(asPolicy({ ...cnp('a', 'p', {}), spec: undefined, specs: [{ endpointSelector: {}, egress: [{}] }, { endpointSelector: {}, egressDeny: deny22 }] })), ['egress'], 'specs[] count');
});

t.test('denyOnlyEnforcement: deny-only alone vs an allow from any selecting policy; modelOfObject', async (t) => {
  const block = cnp('a', 'block', { endpointSelector: {}, ingressDeny: deny22 });
  const base = [ns('a'), pod('a', 'w', { app: 'w' })];
  let s = memoryState(baseCluster([...base, block]));
  let r = denyOnlyEnforcement(s, findPod(s, 'a/w'), 'ingress');
  t.equal(r.allDenyOnly, true);
  t.ok(r.models.some((m) => modelOfObject(m, asPolicy(block))));
  t.equal(denyOnlyEnforcement(s, findPod(s, 'a/w'), 'egress').allDenyOnly, false, 'egress is not enforced');
  s = memoryState(baseCluster([...base, block, cnp('a', 'allow', { endpointSelector: {}, ingress: [{ fromEntities: ['cluster'] }] })]));
  r = denyOnlyEnforcement(s, findPod(s, 'a/w'), 'ingress');
  t.equal(r.allDenyOnly, false, 'another policy allows');
  t.equal(r.models.length, 2);
  const other = asPolicy(cnp('b', 'block', { endpointSelector: {} }));
  t.notOk(policyModel(asPolicy(block)).some((m) => modelOfObject(m, other)), 'same name, other namespace');
});
