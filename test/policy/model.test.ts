import t from 'tap';
import { policyModel } from '../../src/policy/model.ts';
import { ciliumRejection } from '../../src/policy/sanitize.ts';
import { dnsBackends, apiserverEndpoints, nodeIPs } from '../../src/policy/cluster.ts';
import type { PolicyObject } from '../../src/core/objects.ts';
import { baseCluster, ccnp, cnp, memoryState, netpol } from '../fixtures/cluster.ts';

const P = (o: unknown) => o as PolicyObject;

t.test('CNP: spec + specs, cached, namespace defaulting of peers', async (t) => {
  const obj = P({
    ...cnp('shop', 'web', { endpointSelector: { matchLabels: { app: 'web' } }, ingress: [{ fromEndpoints: [{ matchLabels: { app: 'fe' } }] }] }),
    specs: [{ endpointSelector: {}, egress: [{ toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system' } }] }] }],
  });
  const m = policyModel(obj);
  t.equal(m.length, 2);
  t.equal(policyModel(obj), m, 'cached on the object');
  t.same(m[0]!.ref, { kind: 'CiliumNetworkPolicy', namespace: 'shop', name: 'web' });
  t.same(m[0]!.enforces, { ingress: true, egress: false });
  t.same(m[0]!.elements[0]!.peers[0], { type: 'endpoints', selector: { matchLabels: { app: 'fe' } }, namespace: 'shop' });
  t.equal(m[1]!.specIndex, 1);
  t.same(m[1]!.enforces, { ingress: false, egress: true });
  const peer = m[1]!.elements[0]!.peers[0]!;
  t.equal(peer.type === 'endpoints' && peer.namespace, undefined, 'explicit namespace key: no defaulting');
  const byNsLabel = policyModel(P(cnp('shop', 'nsl', { endpointSelector: {}, egress: [{ toEndpoints: [{ matchLabels: { 'k8s:io.cilium.k8s.namespace.labels.team': 'blue' } }] }] })))[0]!;
  const p2 = byNsLabel.elements[0]!.peers[0]!;
  t.equal(p2.type === 'endpoints' && p2.namespace, undefined, 'namespace-label selectors reach other namespaces');
});

t.test('CCNP: peers without a namespace key select pods of any namespace (namespace label Exists)', async (t) => {
  const m = policyModel(P(ccnp('all', { endpointSelector: {}, egress: [{ toEndpoints: [{}, { matchLabels: { app: 'x' } }, { matchLabels: { 'reserved:host': '' } }] }] })))[0]!;
  const exists = { key: 'io.kubernetes.pod.namespace', operator: 'Exists' };
  t.same(m.elements[0]!.peers, [
    { type: 'endpoints', selector: { matchExpressions: [exists] } },
    { type: 'endpoints', selector: { matchLabels: { app: 'x' }, matchExpressions: [exists] } },
    { type: 'endpoints', selector: { matchLabels: { 'reserved:host': '' } } },
  ]);
  t.equal(m.ref.namespace, '');
});

t.test('empty sections, {} elements, enableDefaultDeny', async (t) => {
  const a = policyModel(P(cnp('n', 'a', { endpointSelector: {}, egress: [], ingress: [{ fromEndpoints: [{}] }] })))[0]!;
  t.same(a.enforces, { ingress: true, egress: false }, 'egress: [] does not enforce');
  const b = policyModel(P(cnp('n', 'b', { endpointSelector: {}, egress: [{}] })))[0]!;
  t.same(b.enforces, { ingress: false, egress: true }, 'egress: [{}] enforces');
  t.same(b.elements, [], '{} has no L3 selector and no port: no element, it allows nothing');
  for (const field of ['ingress', 'ingressDeny', 'egress', 'egressDeny'] as const) {
    const m = policyModel(P(cnp('n', 'b-' + field, { endpointSelector: {}, [field]: [{}] })))[0]!;
    const dir = field.startsWith('ingress') ? 'ingress' : 'egress';
    t.same(m.elements, [], `${field}: [{}] allows or denies nothing`);
    t.equal(m.enforces[dir], true, `${field}: [{}] puts ${dir} into default deny`);
  }
  const noPorts = policyModel(P(cnp('n', 'np', { endpointSelector: {}, egress: [{ toEntities: ['world'], toPorts: [{}] }, { toPorts: [{ ports: [] }] }] })))[0]!;
  t.same(noPorts.elements, [], 'a toPorts entry without ports adds no L4 filter: matches nothing, not every port');
  const c = policyModel(P(cnp('n', 'c', { endpointSelector: {}, egressDeny: [{ toEntities: ['world'] }], enableDefaultDeny: { egress: false } })))[0]!;
  t.same(c.enforces, { ingress: false, egress: false });
  t.same(c.hasSection, { ingress: false, egress: true });
  t.equal(c.elements[0]!.deny, true);
  const d = policyModel(P(cnp('n', 'd', { endpointSelector: {}, egress: [{ toPorts: [{ ports: [{ port: '53', protocol: 'UDP' }], rules: { dns: [{ matchPattern: '*' }] } }] }] })))[0]!;
  t.same(d.elements[0]!.peers, [], 'toPorts alone: any peer');
  t.same(d.elements[0]!.ports[0]!.ports, [{ port: 53, protocol: 'UDP' }]);
  t.ok(d.hasL7);
  const e = policyModel(P(cnp('n', 'e', { endpointSelector: {}, egress: [{ toFQDNs: [{ matchName: 'a.com' }], toPorts: [{ ports: [{ port: 'https', endPort: 9000 }] }] }] })))[0]!;
  t.ok(e.fqdnDependent);
  t.same(e.elements[0]!.ports[0]!.ports, [{ port: 'https', endPort: 9000, protocol: 'ANY' }]);
  const f = policyModel(P(cnp('n', 'f', { endpointSelector: {}, ingress: [{ fromEndpoints: [] }] })))[0]!;
  t.equal(f.elements.length, 0, 'fromEndpoints: [] selects no peer');
  t.ok(f.enforces.ingress);
});

t.test('policies the agent refuses (Rule.Sanitize) have no rule at all', async (t) => {
  const refused: [string, Record<string, unknown>, RegExp][] = [
    ['no section', { endpointSelector: {}, egress: [], enableDefaultDeny: { egress: true } }, /at least one of Ingress/],
    ['no selector', { egress: [{ toEntities: ['world'] }] }, /EndpointSelector or NodeSelector/],
    ['port missing', { endpointSelector: {}, egress: [{ toEntities: ['world'], toPorts: [{ ports: [{ protocol: 'TCP' }] }] }] }, /port must be specified/],
    ['port out of range', { endpointSelector: {}, ingressDeny: [{ toPorts: [{ ports: [{ port: '70000' }] }] }] }, /unable to parse port/],
    ['two L3 kinds', { endpointSelector: {}, egress: [{ toEndpoints: [{}], toCIDR: ['10.0.0.0/8'] }] }, /combining toEndpoints and toCIDR/],
    ['icmps with toPorts', { endpointSelector: {}, egress: [{ toEntities: ['world'], icmps: [{ fields: [{ type: 8 }] }], toPorts: [{ ports: [{ port: '80' }] }] }] }, /ICMPs block/],
    ['nodeSelector in a CNP', { nodeSelector: {}, ingress: [{ fromEntities: ['cluster'] }] }, /cannot have NodeSelector/],
    ['both selectors', { endpointSelector: {}, nodeSelector: {}, ingress: [{ fromEntities: ['cluster'] }] }, /both EndpointSelector and NodeSelector/],
  ];
  for (const [name, spec, why] of refused) {
    const obj = P(cnp('n', name.replace(/ /g, '-'), spec));
    t.match(ciliumRejection(obj), why, name);
    t.same(policyModel(obj), [], `${name}: refused, no effect`);
  }
  // One refused rule in specs takes the whole object out.
  const mixed = P({ ...cnp('n', 'mixed', { endpointSelector: {}, egress: [{}] }), specs: [{ endpointSelector: {}, enableDefaultDeny: { ingress: true } }] });
  t.same(policyModel(mixed), []);
  for (const ok of [
    { endpointSelector: {}, egress: [{ toEndpoints: [], toCIDR: ['10.0.0.0/8'] }] },
    { endpointSelector: {}, egress: [{ toPorts: [{ ports: [{ port: 'http-alt' }, { port: '0' }, { port: '65535' }] }] }] },
  ]) {
    t.equal(ciliumRejection(P(cnp('n', 'ok', ok))), undefined, JSON.stringify(ok));
  }
});

t.test('NetworkPolicy: policyTypes inference, peers, ports', async (t) => {
  const a = policyModel(P(netpol('x', 'a', { podSelector: {} })))[0]!;
  t.same(a.enforces, { ingress: true, egress: false }, 'unset policyTypes: Ingress');
  const b = policyModel(P(netpol('x', 'b', { podSelector: {}, egress: [{}] })))[0]!;
  t.same(b.enforces, { ingress: true, egress: true }, 'egress rules present: Egress too');
  t.same(b.elements, [{ direction: 'egress', deny: false, peers: [], ports: [] }], 'empty rule = everything');
  const c = policyModel(P(netpol('x', 'c', { podSelector: {}, policyTypes: ['Egress'] })))[0]!;
  t.same(c.enforces, { ingress: false, egress: true });
  const d = policyModel(P(netpol('x', 'd', {
    podSelector: { matchLabels: { app: 'a' } },
    ingress: [{
      from: [
        { podSelector: { matchLabels: { app: 'b' } } },
        { namespaceSelector: { matchLabels: { team: 'y' } }, podSelector: { matchLabels: { app: 'c' } } },
        { namespaceSelector: {} },
        { ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } },
      ],
      ports: [{ port: 80 }, { port: 'http', protocol: 'UDP' }, { port: 8000, endPort: 8100 }],
    }],
  })))[0]!;
  const el = d.elements[0]!;
  t.same(el.peers, [
    { type: 'endpoints', selector: { matchLabels: { app: 'b' } }, namespace: 'x' },
    { type: 'endpoints', selector: { matchLabels: { app: 'c' } }, namespaceSelector: { matchLabels: { team: 'y' } } },
    { type: 'endpoints', selector: {}, namespaceSelector: {} },
    { type: 'cidr', cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] },
  ]);
  t.same(el.ports[0]!.ports, [
    { port: 80, protocol: 'TCP' },
    { port: 'http', protocol: 'UDP' },
    { port: 8000, endPort: 8100, protocol: 'TCP' },
  ]);
});

t.test('cluster facts', async (t) => {
  const s = memoryState(baseCluster());
  const dns = dnsBackends(s);
  t.same(dns.pods.map((p) => p.metadata.name).sort(), ['coredns-1', 'coredns-2']);
  t.same(dns.ports, [{ port: 53, protocol: 'UDP' }, { port: 53, protocol: 'TCP' }]);
  t.same(dns.serviceIPs, ['10.96.0.10']);
  t.same(apiserverEndpoints(s), { ips: ['192.168.0.10'], ports: [6443] });
  t.same(nodeIPs(s), ['192.168.0.10', '192.168.0.11']);
  t.same(dnsBackends(memoryState([])), { pods: [], ports: [], serviceIPs: [] });
});

t.test('property: arbitrary (malformed) specs never throw in policyModel, selection or evaluate', async (t) => {
  const fc = (await import('fast-check')).default;
  const { evaluate } = await import('../../src/policy/reachability.ts');
  const { policiesSelecting } = await import('../../src/policy/selection.ts');
  const { pod: mkPod, ns: mkNs } = await import('../fixtures/cluster.ts');
  const fieldValue = fc.oneof(
    fc.anything({ maxDepth: 3 }),
    fc.constant([{}]),
    fc.constant([{ toPorts: 'x' }]),
    fc.constant([{ toEndpoints: [{ matchLabels: 5 }], toPorts: [{ ports: [{ port: {}, protocol: 7 }] }] }]),
    fc.constant([{ fromCIDRSet: [{ cidr: 'nope', except: 'x' }], toFQDNs: [{ matchPattern: 3 }] }]),
  );
  const spec = fc.record(
    {
      endpointSelector: fc.oneof(fc.constant({}), fc.anything({ maxDepth: 2 })),
      podSelector: fc.oneof(fc.constant({}), fc.anything({ maxDepth: 2 })),
      ingress: fieldValue, egress: fieldValue, ingressDeny: fieldValue, egressDeny: fieldValue,
      policyTypes: fc.anything({ maxDepth: 1 }), enableDefaultDeny: fc.anything({ maxDepth: 1 }),
    },
    { requiredKeys: [] },
  );
  fc.assert(
    fc.property(spec, fc.constantFrom('CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy', 'NetworkPolicy'), (sp, kind) => {
      const obj = kind === 'CiliumNetworkPolicy' ? cnp('n', 'p', sp) : kind === 'NetworkPolicy' ? netpol('n', 'p', sp) : ccnp('p', sp);
      const s = memoryState(baseCluster([mkNs('n'), mkPod('n', 'a', { app: 'a' }), mkPod('n', 'b', { app: 'b' }), obj]));
      const a = s.get('Pod', 'n', 'a')!;
      const b = s.get('Pod', 'n', 'b')!;
      policyModel(obj as unknown as PolicyObject);
      policiesSelecting(s, a);
      evaluate(s, a, { type: 'pod', pod: b }, 80, 'TCP');
      evaluate(s, a, { type: 'fqdn', name: 'x.example.com' }, 443, 'TCP');
      evaluate(s, a, { type: 'ip', ip: '1.2.3.4' }, 53, 'UDP');
      return true;
    }),
    { numRuns: 300 },
  );
  t.pass();
});
