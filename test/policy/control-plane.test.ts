// src/policy/control-plane.ts and evaluateIngressFromAddress: the kube-apiserver as a source, on each of the
// three shapes Cilium gives it (on a node address: kube-apiserver with remote-node or host; outside the
// nodes: kube-apiserver with its address; unknown endpoints: the entity), and the webhook backends.

import t from 'tap';

import {
  apiserverReachesPod,
  apiserverSources,
  clusterWideIngressDefaultDeny,
  evaluateIngressFromAddress,
  istiodPorts,
  webhookTargetsAmong,
  xdsClients,
} from '../../src/policy/index.ts';
import type { PolicyObject } from '../../src/core/objects.ts';
import { baseCluster, ccnp, cnp, findPod, memoryState, netpol, pod, type Obj } from '../fixtures/cluster.ts';

const hookPod = (node: string): Obj => {
  const p = pod('hooks', 'hook-1', { app: 'hook' }, { ports: [{ name: 'https', containerPort: 9443 }] });
  (p.spec as { nodeName: string }).nodeName = node;
  return p;
};
const hookService: Obj = {
  apiVersion: 'v1', kind: 'Service', metadata: { name: 'hook', namespace: 'hooks' },
  spec: { selector: { app: 'hook' }, ports: [{ port: 443, targetPort: 'https', protocol: 'TCP' }] },
};
const vwc: Obj = {
  apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingWebhookConfiguration', metadata: { name: 'hooks' },
  webhooks: [
    { name: 'in.cluster', clientConfig: { service: { name: 'hook', namespace: 'hooks', port: 443 } } },
    { name: 'outside', failurePolicy: 'Ignore', clientConfig: { url: 'https://hooks.example.com/' } },
  ],
};
const onlyKubeSystem = cnp('hooks', 'lockdown', { endpointSelector: { matchLabels: { app: 'hook' } }, ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system' } }] }] }) as Obj;
const fromEntity = (e: string): Obj => cnp('hooks', `from-${e}`, { endpointSelector: { matchLabels: { app: 'hook' } }, ingress: [{ fromEntities: [e], toPorts: [{ ports: [{ port: '9443', protocol: 'TCP' }] }] }] }) as Obj;

/** The base cluster with the API server moved to `ip` (or its EndpointSlice removed when undefined). */
function cluster(apiserverIp: string | undefined, extra: Obj[], node = 'node-b'): ReturnType<typeof memoryState> {
  const objs = baseCluster([hookPod(node), hookService, vwc, ...extra]).filter((o) => !(o.kind === 'EndpointSlice' && o.metadata.name === 'kubernetes'));
  if (apiserverIp) {
    objs.push({
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { name: 'kubernetes', namespace: 'default', labels: { 'kubernetes.io/service-name': 'kubernetes' } },
      addressType: 'IPv4', endpoints: [{ addresses: [apiserverIp] }], ports: [{ name: 'https', port: 6443, protocol: 'TCP' }],
    });
  }
  return memoryState(objs);
}

t.test('an API server on a node address is kube-apiserver+remote-node; pod peers never match it', async (t) => {
  for (const [policy, want] of [[onlyKubeSystem, []], [fromEntity('kube-apiserver'), ['192.168.0.10']], [fromEntity('remote-node'), ['192.168.0.10']], [fromEntity('world'), []]] as const) {
    const s = cluster('192.168.0.10', [policy]);
    t.same(apiserverReachesPod(s, findPod(s, 'hooks/hook-1'), 9443), want, `${policy.metadata.name}`);
  }
  // On the API server's own node the local host always gets in (allow-localhost).
  const local = cluster('192.168.0.10', [onlyKubeSystem], 'node-a');
  const v = evaluateIngressFromAddress(local, findPod(local, 'hooks/hook-1'), '192.168.0.10', 9443, 'TCP');
  t.same([v.verdict, v.enforced], ['allowed', true]);
});

t.test('an API server outside the nodes is kube-apiserver with its address: ipBlock matches it, remote-node does not', async (t) => {
  const ipBlock = netpol('hooks', 'apiserver', { podSelector: { matchLabels: { app: 'hook' } }, policyTypes: ['Ingress'], ingress: [{ from: [{ ipBlock: { cidr: '10.20.0.5/32' } }], ports: [{ port: 9443 }] }] }) as Obj;
  for (const [policy, want] of [[ipBlock, ['10.20.0.5']], [fromEntity('kube-apiserver'), ['10.20.0.5']], [fromEntity('remote-node'), []]] as const) {
    const s = cluster('10.20.0.5', [policy]);
    t.same(apiserverReachesPod(s, findPod(s, 'hooks/hook-1'), 9443), want, `${policy.metadata.name}`);
  }
});

t.test('with no endpoints in the state the kube-apiserver entity is judged', async (t) => {
  const ok = cluster(undefined, [fromEntity('kube-apiserver')]);
  t.same(apiserverSources(ok), ['kube-apiserver']);
  t.same(apiserverReachesPod(ok, findPod(ok, 'hooks/hook-1'), 9443), ['kube-apiserver']);
  const cut = cluster(undefined, [onlyKubeSystem]);
  const v = evaluateIngressFromAddress(cut, findPod(cut, 'hooks/hook-1'), undefined, 9443, 'TCP');
  t.same([v.verdict, v.decidingPolicies.map((r) => r.name)], ['denied', ['lockdown']]);
});

t.test('webhook targets: service backends with their resolved port; url webhooks have none', async (t) => {
  const s = cluster('192.168.0.10', []);
  const targets = webhookTargetsAmong(s, s.list('Pod'));
  t.same(targets.map((x) => [x.backend.configuration, x.backend.webhook, x.backend.failurePolicy, x.port]), [['ValidatingWebhookConfiguration/hooks', 'in.cluster', 'Fail', 9443]]);
});

t.test('istiod ports default to 15012/15017; xDS clients by kind', async (t) => {
  const s = memoryState(baseCluster([
    pod('red', 'app-1', { app: 'a' }, { sidecar: true }),
    pod('istio-system', 'ztunnel-1', { app: 'ztunnel' }),
    { ...pod('istio-system', 'gw-1', { istio: 'ingressgateway' }), spec: { nodeName: 'node-a', containers: [{ name: 'istio-proxy' }] } } as Obj,
  ]));
  t.same(istiodPorts(s, findPod(s, 'istio-system/istiod-1')), { xds: 15012, webhook: 15017 });
  t.same(xdsClients(s).map((c) => `${c.kind} ${c.pod.metadata.name}`).sort(), ['gateway gw-1', 'sidecar app-1', 'ztunnel ztunnel-1']);
});

t.test('clusterWideIngressDefaultDeny: a {} CCNP with ingress, not with enableDefaultDeny ingress false nor a narrower selector', async (t) => {
  const s = memoryState(baseCluster());
  const spec = { endpointSelector: {}, ingress: [{ fromCIDR: ['169.254.7.127/32'] }] };
  t.ok(clusterWideIngressDefaultDeny(s, ccnp('all', spec) as unknown as PolicyObject));
  t.notOk(clusterWideIngressDefaultDeny(s, ccnp('fixed', { ...spec, enableDefaultDeny: { ingress: false } }) as unknown as PolicyObject));
  t.notOk(clusterWideIngressDefaultDeny(s, ccnp('narrow', { ...spec, endpointSelector: { matchLabels: { app: 'x' } } }) as unknown as PolicyObject));
  t.notOk(clusterWideIngressDefaultDeny(s, cnp('ns', 'all', spec) as unknown as PolicyObject));
});

t.test('one definition of "the API server runs on the nodes": apiserverTarget and controlPlaneOutsideNodes agree', async (t) => {
  const { apiserverPlacement, apiserverTarget, controlPlaneOutsideNodes, nodeIPs } = await import('../../src/policy/index.ts');
  const withEndpoints = (ips: string[]): Obj[] =>
    baseCluster().map((o) => (o.kind === 'EndpointSlice' ? { ...o, endpoints: ips.length > 0 ? [{ addresses: ips }] : [] } : o)) as Obj[];
  // baseCluster's nodes: node-a 192.168.0.10, node-b 192.168.0.11.
  const cases: [string, string[], string][] = [
    ['kubeadm: every endpoint a node address', ['192.168.0.10'], 'on-nodes'],
    ['HA on two nodes', ['192.168.0.10', '192.168.0.11'], 'on-nodes'],
    ['managed: no endpoint on a node', ['172.20.0.5', '172.20.0.6'], 'outside-nodes'],
    ['one of each', ['192.168.0.10', '172.20.0.5'], 'mixed'],
    ['no endpoints in the state', [], 'unknown'],
  ];
  for (const [name, ips, placement] of cases) {
    const s = memoryState(withEndpoints(ips) as never);
    const target = apiserverTarget(s);
    t.equal(target.placement, placement, `${name}: placement`);
    const outside = controlPlaneOutsideNodes('auto', target.ips, nodeIPs(s));
    t.equal(outside, placement === 'outside-nodes', `${name}: outside the nodes`);
    if (placement !== 'unknown') t.equal(target.onNodes, !outside, `${name}: onNodes is the complement of outside`);
    else t.equal(target.onNodes, false, `${name}: unknown is neither`);
  }
  // Addresses are compared canonically, on both sides.
  t.equal(apiserverPlacement(['fd00:0:0:0::1'], ['fd00::1']), 'on-nodes');
  t.equal(apiserverPlacement(['10.0.0.1'], []), 'unknown', 'no nodes known');
  // The config setting overrides auto.
  t.equal(controlPlaneOutsideNodes('outside-nodes', ['192.168.0.10'], ['192.168.0.10']), true);
  t.equal(controlPlaneOutsideNodes('on-nodes', ['172.20.0.5'], ['192.168.0.10']), false);
});
