// src/impact/dns-servers.ts and the DNS helpers of src/policy (dns.ts, fqdn.ts) that dns-egress-missing uses.
import t from 'tap';
import { mutationOf } from '../../src/core/change.ts';
import { changesDnsServerSide, everyClass } from '../../src/impact/index.ts';
import { dnsTarget, policyUsesFqdn, reachesDnsEgressOnly, reachesDnsOverTcp } from '../../src/policy/index.ts';
import type { Pod, PolicyObject } from '../../src/core/objects.ts';
import { overlay } from '../../src/state/overlay.ts';
import { baseCluster, cnp, findPod, memoryState, netpol, ns, pod } from '../fixtures/cluster.ts';
import { makeChange } from '../rules/rule-harness.ts';

const shop = [ns('shop'), pod('shop', 'web-1', { app: 'web' })];

t.test('changesDnsServerSide: a policy on the kube-dns pods with ingress, or relabelling their namespace', async (t) => {
  const before = memoryState(baseCluster(shop));
  const judge = (op: 'CREATE' | 'UPDATE', obj: Parameters<typeof makeChange>[1], old?: Parameters<typeof makeChange>[2]) => {
    const change = makeChange(op, obj, old);
    return changesDnsServerSide(change, before, overlay(before, mutationOf(change)), 'kube-system');
  };
  const coredns = (spec: Record<string, unknown>) => cnp('kube-system', 'c', { endpointSelector: { matchLabels: { 'k8s-app': 'kube-dns' } }, ...spec });
  t.equal(judge('CREATE', coredns({ ingress: [{ fromEntities: ['cluster'] }] })), true);
  t.equal(judge('CREATE', coredns({ egress: [{ toEntities: ['world'] }] })), false, 'egress only');
  t.equal(judge('CREATE', cnp('shop', 'c', { endpointSelector: {}, ingress: [{}] })), false, 'other pods');
  t.equal(judge('UPDATE', ns('kube-system', { x: 'y' }), ns('kube-system')), true);
  t.equal(judge('UPDATE', ns('shop', { x: 'y' }), ns('shop')), false, 'another namespace');
  t.equal(judge('UPDATE', ns('kube-system'), ns('kube-system')), false, 'labels unchanged');
});

t.test('everyClass: once per class, false on a failing or throwing test', async (t) => {
  // Pods of two classes: web-1 and web-2 share one, db-1 has its own (the class key here is the app label).
  const pods = [pod('shop', 'web-1', { app: 'web' }), pod('shop', 'web-2', { app: 'web' }), pod('shop', 'db-1', { app: 'db' })] as unknown as Pod[];
  const byApp = (p: Pod): string => p.metadata.labels?.['app'] ?? '';
  const seen: string[] = [];
  t.equal(everyClass(pods, byApp, (p) => (seen.push(p.metadata.name), true)), true);
  t.same(seen, ['web-1', 'db-1']);
  t.equal(everyClass(pods, byApp, (p) => p.metadata.name !== 'db-1'), false);
  t.equal(everyClass(pods, () => { throw new Error('odd'); }, () => true), false);
});

t.test('reachesDnsEgressOnly and reachesDnsOverTcp; policyUsesFqdn', async (t) => {
  const tcp53 = netpol('shop', 'tcp', { podSelector: {}, policyTypes: ['Egress'], egress: [{ ports: [{ port: 53 }] }] });
  const s = memoryState(baseCluster([...shop, tcp53]));
  const web = findPod(s, 'shop/web-1');
  t.equal(reachesDnsOverTcp(s, web), true);
  t.equal(reachesDnsEgressOnly(s, web, dnsTarget(s)!), false, 'UDP egress is not allowed');
  const open = memoryState(baseCluster(shop));
  t.equal(reachesDnsEgressOnly(open, findPod(open, 'shop/web-1'), dnsTarget(open)!), true);
  t.equal(policyUsesFqdn(undefined), false);
  t.equal(policyUsesFqdn(cnp('shop', 'f', { endpointSelector: {}, egress: [{ toFQDNs: [{ matchName: 'a.example.com' }] }] }) as unknown as PolicyObject), true);
  t.equal(policyUsesFqdn(cnp('shop', 'f', { endpointSelector: {}, egress: [{ toEntities: ['world'] }] }) as unknown as PolicyObject), false);
});
