// DNS of ambient pods: the DNS restrictions Cilium policies make, and whether ztunnel captures a pod's DNS.

import t from 'tap';
import { dnsRestrictions, ztunnelCapturesDns } from '../../src/policy/ambient-dns.ts';
import { policyModel } from '../../src/policy/model.ts';
import type { PolicyObject } from '../../src/core/objects.ts';
import { baseCluster, cnp, findPod, memoryState, netpol, ns, pod } from '../fixtures/cluster.ts';

const models = (o: ReturnType<typeof cnp>) => policyModel(o as unknown as PolicyObject);
const kubeDns = [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s:k8s-app': 'kube-dns' } }];
const dnsRule = (dns: Record<string, string>[]) => ({ toEndpoints: kubeDns, toPorts: [{ ports: [{ port: '53', protocol: 'UDP' }], rules: { dns } }] });

t.test('rules.dns names and patterns, and toFQDNs, are restrictions, each once, in order', async (t) => {
  const p = cnp('demo', 'x', {
    endpointSelector: {},
    egress: [
      dnsRule([{ matchName: 'api.github.com' }, { matchPattern: '*.example.com' }]),
      { toFQDNs: [{ matchName: 'api.github.com' }, { matchPattern: '*.s3.amazonaws.com' }], toPorts: [{ ports: [{ port: '443', protocol: 'TCP' }] }] },
      dnsRule([{ matchName: 'api.github.com' }]),
    ],
  });
  t.same(dnsRestrictions(models(p)), ['rules.dns api.github.com', 'rules.dns *.example.com', 'toFQDNs api.github.com', 'toFQDNs *.s3.amazonaws.com']);
});

t.test('matchPattern "*" anywhere in a list, deny rules, ingress and NetworkPolicies restrict no DNS', async (t) => {
  t.same(dnsRestrictions(models(cnp('demo', 'v', { endpointSelector: {}, egress: [dnsRule([{ matchName: 'a.example.com' }, { matchPattern: ' * ' }])] }))), []);
  t.same(dnsRestrictions(models(cnp('demo', 'd', { endpointSelector: {}, egressDeny: [{ toFQDNs: [{ matchName: 'a.example.com' }] }] }))), []);
  t.same(dnsRestrictions(models(netpol('demo', 'n', { podSelector: {}, policyTypes: ['Egress'], egress: [{ ports: [{ port: 53, protocol: 'UDP' }] }] }))), []);
});

t.test('ztunnel captures the DNS of ambient pods unless opted out; of no other pod', async (t) => {
  const istiod = (tag: string) => ({
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'istiod', namespace: 'istio-system', labels: { app: 'istiod' } },
    spec: { template: { metadata: { labels: { app: 'istiod' } }, spec: { containers: [{ name: 'discovery', image: `docker.io/istio/pilot:${tag}` }] } } },
  });
  const objs = [
    ns('demo', { 'istio.io/dataplane-mode': 'ambient' }), ns('plain'),
    pod('demo', 'a', {}), pod('demo', 'out', {}, { annotations: { 'ambient.istio.io/dns-capture': 'false' } }),
    pod('demo', 'bypass', {}, { annotations: { 'ambient.istio.io/bypass-dns-capture': 'true' } }),
    pod('demo', 'asks', {}, { annotations: { 'ambient.istio.io/dns-capture': 'true' } }), pod('plain', 'p', {}),
  ];
  const s = memoryState(baseCluster(objs));
  const captured = (state: typeof s) => ['demo/a', 'demo/out', 'demo/bypass', 'demo/asks', 'plain/p'].filter((r) => ztunnelCapturesDns(state, findPod(state, r)));
  t.same(captured(s), ['demo/a', 'demo/asks'], 'unknown istiod version: the newest (1.25+) behaviour');
  const old = memoryState(baseCluster([...objs, istiod('1.24.3')] as never));
  t.same(captured(old), ['demo/asks'], 'before 1.25 only pods that ask');
});
