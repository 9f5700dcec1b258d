// Properties shared by the egress rules (dns-egress-missing, apiserver-egress-missing,
// deny-only-default-deny, fqdn-without-dns-proxy, l7-proxy-disabled): odd policies never make them
// throw, findings are well formed, and the fix a finding suggests really removes the finding.

import fc from 'fast-check';
import t from 'tap';
import { rule as apiserver } from '../../src/rules/apiserver-egress-missing/index.ts';
import { rule as denyOnly } from '../../src/rules/deny-only-default-deny/index.ts';
import { rule as dns } from '../../src/rules/dns-egress-missing/index.ts';
import { rule as fqdn } from '../../src/rules/fqdn-without-dns-proxy/index.ts';
import { rule as l7 } from '../../src/rules/l7-proxy-disabled/index.ts';
import { renderFinding } from '../../src/verdict/render.ts';
import { baseCluster, ccnp, cnp, HEALTHY_CILIUM_CONFIG, netpol, ns, pod } from '../fixtures/cluster.ts';
import { runRule } from './rule-harness.ts';

const RULES = [dns, apiserver, denyOnly, fqdn, l7];

const cluster = baseCluster(
  [
    ns('shop'),
    pod('shop', 'web-1', { app: 'web' }),
    pod('shop', 'op-1', { app: 'op' }, { sa: 'op' }),
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'op', namespace: 'shop' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'r' }, subjects: [{ kind: 'ServiceAccount', name: 'op' }],
    },
  ],
  { ...HEALTHY_CILIUM_CONFIG, 'enable-l7-proxy': 'false' },
);

const kubeDnsPeer = { matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s:k8s-app': 'kube-dns' } };

const port = fc.oneof(fc.constantFrom('53', '80', '443', '6443', '0', 'dns', ''), fc.integer({ min: -1, max: 70000 }), fc.constant(null));
const protocol = fc.constantFrom('TCP', 'UDP', 'ANY', 'SCTP', 'ICMP', '', 'tcp', undefined);
const toPorts = fc.array(
  fc.record(
    {
      ports: fc.array(fc.record({ port, protocol }, { requiredKeys: [] }), { maxLength: 2 }),
      rules: fc.oneof(
        fc.constant(undefined),
        fc.record({ dns: fc.array(fc.record({ matchPattern: fc.constantFrom('*', '*.example.com', 'x.org') }), { maxLength: 2 }) }),
        fc.record({ http: fc.array(fc.record({ method: fc.constantFrom('GET', 'POST') }), { maxLength: 1 }) }),
      ),
    },
    { requiredKeys: [] },
  ),
  { maxLength: 2 },
);
const egressElement = fc.record(
  {
    toEndpoints: fc.oneof(fc.constant([kubeDnsPeer]), fc.constant([{}]), fc.constant([]), fc.constant([{ matchLabels: { app: 'db' } }]), fc.constant('garbage')),
    toEntities: fc.array(fc.constantFrom('world', 'cluster', 'kube-apiserver', 'all', 'host', 'bogus'), { maxLength: 2 }),
    toCIDR: fc.array(fc.constantFrom('192.168.0.10/32', '0.0.0.0/0', '10.0.0.0/8', 'not-a-cidr'), { maxLength: 1 }),
    toFQDNs: fc.array(fc.record({ matchName: fc.constantFrom('api.example.com', 'x.org') }), { maxLength: 1 }),
    toPorts,
  },
  { requiredKeys: [] },
);
const spec = fc.record(
  {
    endpointSelector: fc.constantFrom({}, { matchLabels: { app: 'web' } }, { matchLabels: { app: 'op' } }, { matchLabels: { app: 'none' } }, 'bad'),
    egress: fc.oneof(fc.array(egressElement, { maxLength: 3 }), fc.constant(null), fc.constant({})),
    egressDeny: fc.array(egressElement, { maxLength: 1 }),
    ingressDeny: fc.array(fc.record({ toPorts }), { maxLength: 1 }),
    enableDefaultDeny: fc.record({ egress: fc.boolean(), ingress: fc.boolean() }, { requiredKeys: [] }),
  },
  { requiredKeys: [] },
);

t.test('random Cilium policies: no throw, well-formed findings', async (t) => {
  let checked = 0;
  fc.assert(
    fc.property(spec, fc.constantFrom('CREATE', 'UPDATE', 'DELETE'), fc.boolean(), (s, op, clusterwide) => {
      const obj = clusterwide ? ccnp('random', s as Record<string, unknown>) : cnp('shop', 'random', s as Record<string, unknown>);
      const objects = op === 'CREATE' ? cluster : [...cluster, obj];
      for (const r of RULES) {
        const { findings } = runRule(r, objects, op, obj);
        for (const f of findings) {
          if (f.rule !== r.id) return false;
          // Coded findings carry no prose: their words are rendered from the rule's message table.
          const text = renderFinding(f, r.messages);
          if (text.message.length === 0 || /\n/.test(text.message) || (text.fix !== undefined && /\n/.test(text.fix))) return false;
          if ((f.victims?.length ?? 0) > 5 || (f.victims && (f.victimCount ?? 0) < f.victims.length)) return false;
          checked++;
        }
      }
      return true;
    }),
    { numRuns: 150, seed: 20261121 },
  );
  t.ok(checked > 0, `findings were produced and checked (${checked})`);
});

t.test('the DNS fix of a finding, applied, removes the finding (CNP and NetworkPolicy dialects)', async (t) => {
  let fixed = 0;
  const proxyOn = baseCluster([ns('shop'), pod('shop', 'web-1', { app: 'web' })]);
  fc.assert(
    fc.property(fc.array(egressElement, { minLength: 1, maxLength: 3 }), (egress) => {
      const policy = cnp('shop', 'p', { endpointSelector: { matchLabels: { app: 'web' } }, egress });
      const before = runRule(dns, proxyOn, 'CREATE', policy).findings;
      if (before.length === 0 || before[0]!.preexisting) return true;
      // The rule's fix: the kube-dns egress element (UDP and TCP on the backend port).
      const withFix = cnp('shop', 'p', {
        endpointSelector: { matchLabels: { app: 'web' } },
        egress: [...egress, { toEndpoints: [kubeDnsPeer], toPorts: [{ ports: [{ port: '53', protocol: 'UDP' }, { port: '53', protocol: 'TCP' }] }] }],
      });
      fixed++;
      return runRule(dns, proxyOn, 'CREATE', withFix).findings.length === 0;
    }),
    { numRuns: 150, seed: 7 },
  );
  t.ok(fixed > 0, `fixes verified (${fixed})`);

  const npFixed = netpol('shop', 'p', {
    podSelector: {},
    policyTypes: ['Egress'],
    egress: [
      { to: [{ ipBlock: { cidr: '0.0.0.0/0' } }], ports: [{ port: 443 }] },
      {
        to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
        ports: [{ port: 53, protocol: 'UDP' }, { port: 53, protocol: 'TCP' }],
      },
    ],
  });
  const npBroken = netpol('shop', 'p', { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/0' } }], ports: [{ port: 443 }] }] });
  t.equal(runRule(dns, proxyOn, 'CREATE', npBroken).findings.length, 1);
  t.same(runRule(dns, proxyOn, 'CREATE', npFixed).findings, []);
});

t.test('the API server fix of a finding, applied, removes the finding', async (t) => {
  let fixed = 0;
  fc.assert(
    fc.property(fc.array(egressElement, { minLength: 1, maxLength: 3 }), (egress) => {
      const policy = cnp('shop', 'p', { endpointSelector: { matchLabels: { app: 'op' } }, egress });
      const before = runRule(apiserver, cluster, 'CREATE', policy).findings;
      if (before.length === 0 || before[0]!.preexisting) return true;
      const withFix = cnp('shop', 'p', {
        endpointSelector: { matchLabels: { app: 'op' } },
        egress: [...egress, { toEntities: ['kube-apiserver'], toPorts: [{ ports: [{ port: '6443', protocol: 'TCP' }] }] }],
      });
      fixed++;
      return runRule(apiserver, cluster, 'CREATE', withFix).findings.length === 0;
    }),
    { numRuns: 150, seed: 11 },
  );
  t.ok(fixed > 0, `fixes verified (${fixed})`);
});

