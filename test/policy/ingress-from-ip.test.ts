// ingressFromIp (the SNATed kubelet probe source of ambient pods) matches peers with the same code as
// evaluate()/reachable() (peerMatches in reachability.ts), not with a copy of its own.

import t from 'tap';

import { ingressFromIp, PROBE_SNAT_IPV4 } from '../../src/policy/index.ts';
import { baseCluster, ccnp, findPod, HEALTHY_CILIUM_CONFIG, memoryState, ns, pod, type Obj } from '../fixtures/cluster.ts';

function state(policy: Obj, cilium: Record<string, string> = HEALTHY_CILIUM_CONFIG) {
  return memoryState(baseCluster([ns('shop', { 'istio.io/dataplane-mode': 'ambient' }), pod('shop', 'web-1', { app: 'web' }), policy], cilium));
}

const allEndpoints = ccnp('all-endpoints', { endpointSelector: { matchLabels: { app: 'web' } }, ingress: [{ fromEndpoints: [{}] }] }) as Obj;

t.test('an endpoints peer, even {}, never admits the probe source (a world address), whatever policy-default-local-cluster says', async (t) => {
  const on = state(allEndpoints);
  const v = ingressFromIp(on, findPod(on, 'shop/web-1'), PROBE_SNAT_IPV4);
  t.same([v.enforced, v.verdict], [true, 'denied']);
  const off = state(allEndpoints, { ...HEALTHY_CILIUM_CONFIG, 'policy-default-local-cluster': 'false' });
  t.equal(ingressFromIp(off, findPod(off, 'shop/web-1'), PROBE_SNAT_IPV4).verdict, 'denied');
});

t.test('world and CIDR peers admit the probe source; a deny of every port wins', async (t) => {
  const world = state(ccnp('world', { endpointSelector: { matchLabels: { app: 'web' } }, ingress: [{ fromEntities: ['world'] }] }) as Obj);
  t.equal(ingressFromIp(world, findPod(world, 'shop/web-1'), PROBE_SNAT_IPV4).verdict, 'allowed');
  const cidr = state(ccnp('cidr', { endpointSelector: { matchLabels: { app: 'web' } }, ingress: [{ fromCIDR: ['169.254.7.127/32'] }] }) as Obj);
  t.equal(ingressFromIp(cidr, findPod(cidr, 'shop/web-1'), PROBE_SNAT_IPV4).verdict, 'allowed');
  const denied = state(ccnp('deny', { endpointSelector: { matchLabels: { app: 'web' } }, ingressDeny: [{ fromCIDR: ['169.254.0.0/16'] }] }) as Obj);
  const v = ingressFromIp(denied, findPod(denied, 'shop/web-1'), PROBE_SNAT_IPV4);
  t.same([v.verdict, v.by.map((r) => r.name)], ['denied', ['deny']]);
});
