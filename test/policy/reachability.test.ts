// Reachability and selection details beyond the truth tables: FQDN + DNS visibility, toServices,
// host-network pods, ports (named on egress, port 0, endPort, ANY), selection indexes and caches,
// synthetic subject pods, and CIDR containment properties.

import t from 'tap';
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { cidrContains, cidrSetContains } from '../../src/policy/cidr.ts';
import { dnsNameMatches, evaluate, recordDenials } from '../../src/policy/reachability.ts';
import { enforcement, podsSelectedBy, policiesSelecting, subjectPods } from '../../src/policy/selection.ts';
import type { PolicyObject } from '../../src/core/objects.ts';
import { baseCluster, ccnp, cnp, findPod, HEALTHY_CILIUM_CONFIG, memoryState, netpol, ns, pod } from '../fixtures/cluster.ts';

const P = (o: unknown) => o as PolicyObject;
const dnsAllow = (patterns: string[]) => ({
  toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s:k8s-app': 'kube-dns' } }],
  toPorts: [{ ports: [{ port: '53', protocol: 'UDP' }], rules: { dns: patterns.map((p) => ({ matchPattern: p })) } }],
});

t.test('toFQDNs needs a rules.dns allow toward the DNS backends that matches the name', async (t) => {
  const withDns = memoryState(baseCluster([ns('app'), pod('app', 'web', { app: 'web' }),
    cnp('app', 'fqdn', { endpointSelector: { matchLabels: { app: 'web' } }, egress: [dnsAllow(['*.example.com']), { toFQDNs: [{ matchPattern: '*.example.com' }, { matchName: 'exact.org' }] }] })]));
  const web = findPod(withDns, 'app/web');
  t.ok(evaluate(withDns, web, { type: 'fqdn', name: 'api.example.com' }, 443, 'TCP').allowed);
  t.ok(evaluate(withDns, web, { type: 'fqdn', name: 'API.Example.com.' }, 443, 'TCP').allowed, 'case and trailing dot');
  t.notOk(evaluate(withDns, web, { type: 'fqdn', name: 'exact.org' }, 443, 'TCP').allowed, 'in toFQDNs but the DNS proxy never sees exact.org');
  t.notOk(evaluate(withDns, web, { type: 'fqdn', name: 'example.com' }, 443, 'TCP').allowed, '*.example.com does not match the apex');

  const noDnsRule = memoryState(baseCluster([ns('app'), pod('app', 'web', { app: 'web' }),
    cnp('app', 'fqdn', {
      endpointSelector: { matchLabels: { app: 'web' } },
      egress: [{ toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s:k8s-app': 'kube-dns' } }], toPorts: [{ ports: [{ port: '53', protocol: 'UDP' }] }] }, { toFQDNs: [{ matchName: 'a.example.com' }] }],
    })]));
  const r = evaluate(noDnsRule, findPod(noDnsRule, 'app/web'), { type: 'fqdn', name: 'a.example.com' }, 443, 'TCP');
  t.notOk(r.allowed, 'DNS allowed at L4 only: no proxy, toFQDNs never learns IPs');
  t.ok(evaluate(noDnsRule, findPod(noDnsRule, 'app/web'), { type: 'pod', pod: findPod(noDnsRule, 'kube-system/coredns-1') }, 53, 'UDP').allowed);
});

t.test('dnsNameMatches patterns', async (t) => {
  t.ok(dnsNameMatches({ matchPattern: '*' }, 'anything.at.all'));
  t.ok(dnsNameMatches({ matchPattern: '*.cilium.io' }, 'docs.cilium.io'));
  t.notOk(dnsNameMatches({ matchPattern: '*.cilium.io' }, 'a.b.cilium.io'), '* stays within one label');
  t.ok(dnsNameMatches({ matchPattern: '**.cilium.io' }, 'a.b.cilium.io'));
  t.ok(dnsNameMatches({ matchPattern: 'api-*.svc.io' }, 'api-eu1.svc.io'));
  t.notOk(dnsNameMatches({ matchPattern: 'api-*.svc.io' }, 'apix.svc.io'));
  t.ok(dnsNameMatches({ matchName: 'Cilium.IO.' }, 'cilium.io'));
  t.notOk(dnsNameMatches({ matchName: 'cilium.io' }, 'www.cilium.io'));
});

t.test('toServices: by name (selector Service -> backend pods) and selector-less Service -> EndpointSlice IPs', async (t) => {
  const s = memoryState(baseCluster([
    ns('app'), ns('db'),
    pod('app', 'web', { app: 'web' }),
    pod('db', 'pg-0', { app: 'pg' }, { ip: '10.0.9.1' }),
    pod('db', 'other', { app: 'other' }, { ip: '10.0.9.2' }),
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'pg', namespace: 'db', labels: { tier: 'data' } }, spec: { selector: { app: 'pg' }, ports: [{ port: 5432 }] } },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'ext', namespace: 'app' }, spec: { ports: [{ port: 443 }] } },
    { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'ext-1', namespace: 'app', labels: { 'kubernetes.io/service-name': 'ext' } }, endpoints: [{ addresses: ['203.0.113.7'] }] },
    cnp('app', 'svc', {
      endpointSelector: { matchLabels: { app: 'web' } },
      egress: [
        { toServices: [{ k8sService: { serviceName: 'pg', namespace: 'db' } }] },
        { toServices: [{ k8sServiceSelector: { selector: { matchLabels: {} } } }] },
      ],
    }),
  ]));
  const web = findPod(s, 'app/web');
  t.ok(evaluate(s, web, { type: 'pod', pod: findPod(s, 'db/pg-0') }, 5432, 'TCP').allowed);
  t.notOk(evaluate(s, web, { type: 'pod', pod: findPod(s, 'db/other') }, 5432, 'TCP').allowed);
  t.ok(evaluate(s, web, { type: 'ip', ip: '203.0.113.7' }, 443, 'TCP').allowed, 'selector-less Service in the policy namespace');
  t.notOk(evaluate(s, web, { type: 'ip', ip: '203.0.113.8' }, 443, 'TCP').allowed);
});

t.test('host-network pods: node identity as peers, no endpoint policy as subjects, allow-localhost', async (t) => {
  const s = memoryState(baseCluster([
    ns('app'),
    pod('app', 'web', { app: 'web' }, { ports: [{ name: 'http', containerPort: 8080 }] }),
    pod('kube-system', 'agent', { app: 'agent' }, { hostNetwork: true, ip: '192.168.0.10' }),
    { ...pod('kube-system', 'agent-b', { app: 'agent' }, { hostNetwork: true, ip: '192.168.0.11' }), spec: { nodeName: 'node-b', hostNetwork: true, containers: [{ name: 'a' }] } },
    cnp('app', 'lock', { endpointSelector: {}, ingress: [{ fromEndpoints: [{ matchLabels: { app: 'agent' } }] }], egress: [{ toEntities: ['remote-node'] }] }),
    ccnp('all-agents', { endpointSelector: { matchLabels: { app: 'agent' } }, ingress: [{}], egress: [{}] }),
  ]));
  const web = findPod(s, 'app/web');
  const agent = findPod(s, 'kube-system/agent');
  const agentB = findPod(s, 'kube-system/agent-b');
  t.same(policiesSelecting(s, agent), [], 'host-network pods are not selected by endpoint policies');
  const local = evaluate(s, agent, { type: 'pod', pod: web }, 8080, 'TCP');
  t.ok(local.allowed, 'local host -> endpoint always allowed');
  t.equal(local.egress.enforced, false);
  const remote = evaluate(s, agentB, { type: 'pod', pod: web }, 8080, 'TCP');
  t.notOk(remote.allowed, 'remote-node is not app=agent pods');
  t.equal(remote.ingress.verdict, 'denied');
  t.notOk(evaluate(s, web, { type: 'pod', pod: agent }, 10250, 'TCP').allowed, 'same node: host, not remote-node');
  t.ok(evaluate(s, web, { type: 'pod', pod: agentB }, 10250, 'TCP').allowed, 'other node: remote-node');
});

t.test('a host-network kube-apiserver pod is the kube-apiserver entity as a client', async (t) => {
  const s = memoryState(baseCluster([
    ns('hooks'),
    pod('hooks', 'webhook', { app: 'webhook' }, { ports: [{ name: 'https', containerPort: 9443 }] }),
    { ...pod('kube-system', 'kube-apiserver-b', { component: 'kube-apiserver' }, { hostNetwork: true, ip: '192.168.0.11' }), spec: { nodeName: 'node-b', hostNetwork: true, containers: [{ name: 'kube-apiserver' }] } },
    {
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { name: 'kubernetes', namespace: 'default', labels: { 'kubernetes.io/service-name': 'kubernetes' } },
      addressType: 'IPv4', endpoints: [{ addresses: ['192.168.0.11'] }], ports: [{ name: 'https', port: 6443, protocol: 'TCP' }],
    },
    cnp('hooks', 'from-apiserver', { endpointSelector: {}, ingress: [{ fromEntities: ['kube-apiserver'], toPorts: [{ ports: [{ port: 'https' }] }] }] }),
  ]));
  const apiserver = findPod(s, 'kube-system/kube-apiserver-b');
  const webhook = findPod(s, 'hooks/webhook');
  const r = evaluate(s, apiserver, { type: 'pod', pod: webhook }, 9443, 'TCP');
  t.ok(r.allowed, r.ingress.reason);
  t.notOk(evaluate(s, findPod(s, 'kube-system/coredns-1'), { type: 'pod', pod: webhook }, 9443, 'TCP').allowed);
});

t.test('ports: named on egress, port 0, CNP endPort, protocol ANY', async (t) => {
  const s = memoryState(baseCluster([
    ns('app'),
    pod('app', 'client', { app: 'client' }),
    pod('app', 'server', { app: 'server' }, { ports: [{ name: 'metrics', containerPort: 9090 }] }),
    cnp('app', 'c', {
      endpointSelector: { matchLabels: { app: 'client' } },
      egress: [
        { toEndpoints: [{ matchLabels: { app: 'server' } }], toPorts: [{ ports: [{ port: 'metrics', protocol: 'TCP' }] }] },
        { toEndpoints: [{ matchLabels: { app: 'server' } }], toPorts: [{ ports: [{ port: '7000', endPort: 7002 }] }] },
        { toEntities: ['world'], toPorts: [{ ports: [{ port: '0', protocol: 'UDP' }] }] },
      ],
    }),
  ]));
  const c = findPod(s, 'app/client');
  const server = { type: 'pod' as const, pod: findPod(s, 'app/server') };
  t.ok(evaluate(s, c, server, 9090, 'TCP').allowed, 'named port resolved on the destination');
  t.notOk(evaluate(s, c, server, 9091, 'TCP').allowed);
  t.notOk(evaluate(s, c, server, 9090, 'UDP').allowed);
  t.ok(evaluate(s, c, server, 7001, 'UDP').allowed, 'range with protocol ANY');
  t.ok(evaluate(s, c, server, 7002, 'SCTP').allowed);
  t.notOk(evaluate(s, c, server, 7003, 'TCP').allowed);
  t.ok(evaluate(s, c, { type: 'ip', ip: '1.2.3.4' }, 12345, 'UDP').allowed, 'port 0 = all ports');
  t.notOk(evaluate(s, c, { type: 'ip', ip: '1.2.3.4' }, 12345, 'TCP').allowed);
  t.notOk(evaluate(s, c, { type: 'ip', ip: '1.2.3.4' }, 0, 'TCP').allowed);
  t.ok(evaluate(s, c, { type: 'entity', entity: 'world-ipv4' }, 0, 'UDP').allowed, 'query port 0 = every port: only all-port rules match');
  const r = evaluate(s, c, server, 9090, 'TCP');
  t.equal(r.egress.allowing.length, 1);
  t.same(r.egress.allowing[0]!.portSection?.ports, [{ port: 'metrics', protocol: 'TCP' }]);
});

t.test('selection: namespace scoping, CCNP, specs, caches per revision', async (t) => {
  const policy = cnp('a', 'web', { endpointSelector: { matchLabels: { app: 'web' } }, ingress: [{}] });
  const s = memoryState(baseCluster([
    ns('a'), ns('b'),
    pod('a', 'web-1', { app: 'web' }), pod('a', 'web-2', { app: 'web' }), pod('b', 'web-1', { app: 'web' }), pod('a', 'db', { app: 'db' }),
    policy,
    ccnp('everyone', { endpointSelector: { matchExpressions: [{ key: 'k8s:io.kubernetes.pod.namespace', operator: 'In', values: ['a', 'b'] }] }, egress: [{ toEntities: ['all'] }] }),
  ]));
  t.same(podsSelectedBy(s, P(policy)).map((p) => p.metadata.name).sort(), ['web-1', 'web-2']);
  const bWeb = findPod(s, 'b/web-1');
  t.same(policiesSelecting(s, bWeb).map((m) => m.ref.name), ['everyone']);
  t.equal(policiesSelecting(s, bWeb), policiesSelecting(s, bWeb), 'cached within a revision');
  t.same(enforcement(s, bWeb, 'egress'), { enforced: true, by: [{ kind: 'CiliumClusterwideNetworkPolicy', namespace: '', name: 'everyone' }] });
  t.same(enforcement(s, bWeb, 'ingress'), { enforced: false, by: [] });
  s.upsert('Pod', pod('a', 'web-3', { app: 'web' }) as never);
  t.equal(podsSelectedBy(s, P(policy)).length, 3, 'a new revision sees the new pod');
});

t.test('subjectPods: live pods, else a synthetic pod from matchLabels / In', async (t) => {
  const live = cnp('a', 'live', { endpointSelector: { matchLabels: { app: 'web' } }, egress: [{}] });
  const future = cnp('a', 'future', { endpointSelector: { matchLabels: { 'k8s:app': 'api' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['fe', 'be'] }] }, egress: [{ toEntities: ['kube-apiserver'] }] });
  const impossible = cnp('a', 'impossible', { endpointSelector: { matchExpressions: [{ key: 'x', operator: 'Bogus' }] }, egress: [{}] });
  const s = memoryState(baseCluster([ns('a'), pod('a', 'web-1', { app: 'web' }), live, future, impossible]));
  t.same(subjectPods(s, P(live)).synthetic, false);
  const f = subjectPods(s, P(future));
  t.equal(f.synthetic, true);
  t.equal(f.pods.length, 1);
  t.same(f.pods[0]!.metadata.labels, { app: 'api', tier: 'fe' });
  t.equal(f.pods[0]!.metadata.namespace, 'a');
  t.equal(subjectPods(s, P(future)).pods[0], f.pods[0], 'stable within a revision');
  t.same(policiesSelecting(s, f.pods[0]!).map((m) => m.ref.name), ['future'], 'the synthetic pod is selected by its policy');
  t.same(evaluate(s, f.pods[0]!, { type: 'entity', entity: 'world' }, 443, 'TCP').egress.verdict, 'denied');
  t.same(subjectPods(s, P(impossible)), { pods: [], synthetic: true });
  const np = netpol('b', 'np', { podSelector: {}, policyTypes: ['Egress'] });
  const s2 = memoryState(baseCluster([ns('b'), np]));
  t.equal(subjectPods(s2, P(np)).pods[0]?.metadata.namespace, 'b', 'NetworkPolicy {} in an empty namespace');
});

t.test('deny rules apply even when the direction is not default-deny', async (t) => {
  const s = memoryState(baseCluster([
    ns('a'), pod('a', 'p', { app: 'p' }),
    cnp('a', 'no-world', { endpointSelector: {}, enableDefaultDeny: { egress: false }, egressDeny: [{ toEntities: ['world'] }] }),
  ], { ...HEALTHY_CILIUM_CONFIG }));
  const p = findPod(s, 'a/p');
  const w = evaluate(s, p, { type: 'ip', ip: '8.8.8.8' }, 443, 'TCP');
  t.notOk(w.allowed);
  t.equal(w.egress.enforced, false);
  t.same(w.egress.decidingPolicies, [{ kind: 'CiliumNetworkPolicy', namespace: 'a', name: 'no-world' }]);
  t.ok(evaluate(s, p, { type: 'entity', entity: 'kube-apiserver' }, 6443, 'TCP').allowed);
});

// ---------- CIDR properties ----------

const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((a) => a.join('.'));
const bitsToInt = (ip: string) => ipaddr.IPv4.parse(ip).toByteArray().reduce((acc, b) => acc * 256 + b, 0);

t.test('property: IPv4 containment equals the integer prefix comparison', async (t) => {
  fc.assert(
    fc.property(v4, fc.integer({ min: 0, max: 32 }), v4, (net, bits, ip) => {
      const mask = bits === 0 ? 0 : Math.pow(2, 32) - Math.pow(2, 32 - bits);
      const a = bitsToInt(net);
      const b = bitsToInt(ip);
      const expected = Math.floor(a / Math.pow(2, 32 - bits)) === Math.floor(b / Math.pow(2, 32 - bits));
      void mask;
      return cidrContains(`${net}/${bits}`, ip) === expected;
    }),
    { numRuns: 3000 },
  );
  t.pass();
});

t.test('property: except removes exactly the excepted prefixes; families never mix; bad input is false', async (t) => {
  fc.assert(
    fc.property(v4, fc.integer({ min: 0, max: 24 }), fc.integer({ min: 0, max: 8 }), v4, (net, bits, extra, ip) => {
      const outer = `${net}/${bits}`;
      const inner = `${ip}/${bits + extra}`;
      // `ip` is inside `inner`; with inner excepted it is outside the set whatever the outer prefix.
      return !cidrSetContains(outer, [inner], ip) && cidrSetContains(outer, [], ip) === cidrContains(outer, ip);
    }),
  );
  fc.assert(fc.property(v4, (ip) => !cidrContains('::/0', ip) && cidrContains('0.0.0.0/0', ip)));
  // Dotted-quad tails are left out: ipaddr.js reads every `::a.b.c.d` as IPv4-mapped.
  fc.assert(fc.property(fc.ipV6().filter((ip) => !ip.includes('.')), (ip) => cidrContains('::/0', ip) && !cidrContains('0.0.0.0/0', ip)));
  t.notOk(cidrContains('10.0.0.0/33', '10.0.0.1'));
  t.notOk(cidrContains('garbage', '10.0.0.1'));
  t.notOk(cidrContains('10.0.0.0/8', 'not-an-ip'));
  t.ok(cidrContains('10.0.0.0/8', '::ffff:10.1.2.3'), 'IPv4-mapped IPv6 folds to IPv4');
  t.ok(cidrContains('10.1.2.3', '10.1.2.3'), 'bare IP = host prefix');
});

t.test('a Service ClusterIP is judged at its backends on the target port', async (t) => {
  const s = memoryState(baseCluster([
    ns('app'), ns('db'),
    pod('app', 'web', { app: 'web' }),
    pod('db', 'pg-0', { app: 'pg' }, { ports: [{ name: 'pg', containerPort: 5432 }] }),
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'pg', namespace: 'db' }, spec: { clusterIP: '10.96.5.5', selector: { app: 'pg' }, ports: [{ port: 80, targetPort: 'pg' }] } },
    cnp('db', 'pg-in', { endpointSelector: { matchLabels: { app: 'pg' } }, ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'app' } }], toPorts: [{ ports: [{ port: '5432', protocol: 'TCP' }] }] }] }),
    cnp('app', 'web-out', { endpointSelector: { matchLabels: { app: 'web' } }, egress: [{ toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'db' } }], toPorts: [{ ports: [{ port: '5432' }] }] }] }),
  ]));
  const web = findPod(s, 'app/web');
  const r = evaluate(s, web, { type: 'ip', ip: '10.96.5.5' }, 80, 'TCP');
  t.ok(r.allowed, 'port 80 on the VIP is 5432 on the backend');
  t.match(r.ingress.reason, /via Service db\/pg \(80 -> db\/pg-0:5432\)/);
  t.equal(r.ingress.enforced, true);
  t.notOk(evaluate(s, findPod(s, 'kube-system/coredns-1'), { type: 'ip', ip: '10.96.5.5' }, 80, 'TCP').allowed, 'other namespaces denied at the backend');
  const other = evaluate(s, web, { type: 'ip', ip: '10.96.5.5' }, 81, 'TCP');
  t.notOk(other.allowed, 'no such service port: judged as an address (world)');
  t.equal(other.ingress.enforced, false);
});

t.test('a Service with many replicas of one class: judged per class, a denied class among them still decides', async (t) => {
  // 300 replicas of one class (they differ only in pod-template-hash, which Cilium's identity ignores)
  // and, last, one canary with another label that web may not reach: the VIP is denied because of it.
  const replicas = Array.from({ length: 300 }, (_, i) => pod('db', `pg-${i}`, { app: 'pg', 'pod-template-hash': `h${i % 7}` }, { ports: [{ name: 'pg', containerPort: 5432 }] }));
  const s = memoryState(baseCluster([
    ns('app'), ns('db'),
    pod('app', 'web', { app: 'web' }),
    ...replicas,
    pod('db', 'pg-canary', { app: 'pg', track: 'canary' }, { ports: [{ name: 'pg', containerPort: 5432 }] }),
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'pg', namespace: 'db' }, spec: { clusterIP: '10.96.5.6', selector: { app: 'pg' }, ports: [{ port: 80, targetPort: 'pg' }] } },
    cnp('db', 'pg-in', { endpointSelector: { matchLabels: { app: 'pg' } }, ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'app' } }], toPorts: [{ ports: [{ port: '5432', protocol: 'TCP' }] }] }] }),
    cnp('db', 'canary-closed', { endpointSelector: { matchLabels: { track: 'canary' } }, ingressDeny: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'app' } }] }] }),
  ]));
  const web = findPod(s, 'app/web');
  const { result, denials } = recordDenials(() => evaluate(s, web, { type: 'ip', ip: '10.96.5.6' }, 80, 'TCP'));
  t.notOk(result.allowed, 'the canary behind the VIP is denied');
  t.match(result.ingress.reason, /pg-canary:5432/, 'and named');
  t.equal(denials.length, 1, 'one denied direction recorded');
  // Near miss: the same replicas without the canary are reached (one class judged for 300 pods).
  const noCanary = memoryState(baseCluster([ns('app'), ns('db'), pod('app', 'web', { app: 'web' }), ...replicas,
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'pg', namespace: 'db' }, spec: { clusterIP: '10.96.5.6', selector: { app: 'pg' }, ports: [{ port: 80, targetPort: 'pg' }] } },
    cnp('db', 'pg-in', { endpointSelector: { matchLabels: { app: 'pg' } }, ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'app' } }], toPorts: [{ ports: [{ port: '5432', protocol: 'TCP' }] }] }] }),
  ]));
  t.ok(evaluate(noCanary, findPod(noCanary, 'app/web'), { type: 'ip', ip: '10.96.5.6' }, 80, 'TCP').allowed);
  t.notOk(evaluate(noCanary, findPod(noCanary, 'kube-system/coredns-1'), { type: 'ip', ip: '10.96.5.6' }, 80, 'TCP').allowed, 'a client the backends refuse');
});
