import t from 'tap';
import { ciliumRejection, ignoredSelectorFields, MAX_PORTS_PER_RULE } from '../../src/policy/sanitize.ts';
import type { PolicyObject } from '../../src/core/objects.ts';
import { ccnp, cnp, netpol } from '../fixtures/cluster.ts';

const P = (o: unknown) => o as PolicyObject;
const ports = (n: number) => Array.from({ length: n }, (_, i) => ({ port: String(8000 + i), protocol: 'TCP' }));
const el = (toPorts: unknown[]) => ({ toEntities: ['world'], toPorts });

t.test('ciliumRejection: the port and L7 checks of rule validation', async (t) => {
  const refused: [string, Record<string, unknown>, string][] = [
    ['http on UDP', { endpointSelector: {}, egress: [el([{ ports: [{ port: '80', protocol: 'UDP' }], rules: { http: [{}] } }])] }, 'spec.egress[0].toPorts[0]: L7 rules on a UDP port (L7 rules other than DNS need TCP)'],
    ['http on ANY', { endpointSelector: {}, egress: [el([{ ports: [{ port: '80', protocol: 'ANY' }], rules: { http: [{}] } }])] }, 'spec.egress[0].toPorts[0]: L7 rules on a ANY port (L7 rules other than DNS need TCP)'],
    // An omitted protocol is ANY to the agent (ParseL4Proto of ""): refused like ANY (found by the conformance test).
    ['http, protocol omitted', { endpointSelector: {}, ingress: [{ toPorts: [{ ports: [{ port: '80' }], rules: { http: [{}] } }] }] }, 'spec.ingress[0].toPorts[0]: L7 rules on a ANY port (L7 rules other than DNS need TCP)'],
    ['kafka on SCTP', { endpointSelector: {}, egress: [el([{ ports: [{ port: '9092', protocol: 'sctp' }], rules: { kafka: [{}] } }])] }, 'spec.egress[0].toPorts[0]: L7 rules on a SCTP port (L7 rules other than DNS need TCP)'],
    ['dns on ingress', { endpointSelector: {}, ingress: [{ toPorts: [{ ports: [{ port: '53' }], rules: { dns: [{ matchPattern: '*' }] } }] }] }, 'spec.ingress[0].toPorts[0]: DNS rules on ingress (DNS rules are egress only)'],
    ['dns + http', { endpointSelector: {}, egress: [el([{ ports: [{ port: '53', protocol: 'TCP' }], rules: { dns: [{}], http: [{}] } }])] }, 'spec.egress[0].toPorts[0]: DNS and HTTP rules in the same toPorts entry'],
    ['dns without port', { endpointSelector: {}, egress: [el([{ rules: { dns: [{ matchPattern: '*' }] } }])] }, 'spec.egress[0].toPorts[0]: DNS rules without a port (port 53 must be listed)'],
    ['http on port 0', { endpointSelector: {}, egress: [el([{ ports: [{ port: '0', protocol: 'TCP' }], rules: { http: [{}] } }])] }, 'spec.egress[0].toPorts[0]: L7 rules on port 0 (all ports)'],
    ['dns range', { endpointSelector: {}, egress: [el([{ ports: [{ port: 53, endPort: 60 }], rules: { dns: [{}] } }])] }, 'spec.egress[0].toPorts[0]: DNS rules on a port range (53-60)'],
    ['41 ports', { endpointSelector: {}, egress: [{}, el([{ ports: [{ port: '1' }] }, { ports: ports(MAX_PORTS_PER_RULE + 1) }])] }, 'spec.egress[1].toPorts[1]: 41 ports in one toPorts entry (the agent accepts at most 40)'],
  ];
  for (const [name, spec, why] of refused) t.equal(ciliumRejection(P(cnp('n', 'x', spec))), why, name);

  t.equal(
    ciliumRejection(P(ccnp('host', { nodeSelector: {}, egress: [el([{ ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{}] } }])] }))),
    'spec.egress[0].toPorts[0]: HTTP rules in a host policy (nodeSelector)',
  );
  t.match(ciliumRejection(P(cnp('n', 'x', { endpointSelector: {}, egress: [{ toEndpoints: [{}], toCIDR: ['10.0.0.0/8'] }] }))), /combining toEndpoints and toCIDR/, 'model refusals come first');

  const accepted: [string, unknown][] = [
    ['http on TCP', cnp('n', 'x', { endpointSelector: {}, ingress: [{ toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{ method: 'GET' }] } }] }] })],
    ['dns on UDP/ANY 53', cnp('n', 'x', { endpointSelector: {}, egress: [el([{ ports: [{ port: '53', protocol: 'UDP' }, { port: '53', protocol: 'ANY' }], rules: { dns: [{}] } }])] })],
    ['40 ports', cnp('n', 'x', { endpointSelector: {}, egress: [el([{ ports: ports(MAX_PORTS_PER_RULE) }])] })],
    ['empty L7 lists', cnp('n', 'x', { endpointSelector: {}, ingress: [{ toPorts: [{ ports: [{ port: '53', protocol: 'UDP' }], rules: { dns: [], http: [] } }] }] })],
    ['L4 range without L7', cnp('n', 'x', { endpointSelector: {}, egress: [el([{ ports: [{ port: '0' }, { port: '1000', endPort: 2000 }] }])] })],
    ['host policy, L4 only', ccnp('host', { nodeSelector: {}, ingress: [{ fromEntities: ['world'], toPorts: [{ ports: [{ port: '22', protocol: 'TCP' }] }] }] })],
    ['a NetworkPolicy', netpol('n', 'x', { podSelector: {}, ingress: [{ ports: [{ port: 80, protocol: 'UDP' }] }] })],
  ];
  for (const [name, obj] of accepted) t.equal(ciliumRejection(P(obj)), undefined, name);
});

t.test('ignoredSelectorFields: keys a label selector does not have', async (t) => {
  const obj = P({
    ...cnp('n', 'x', {
      endpointSelector: { matchLabels: { app: 'a' } },
      egress: [{ toEndpoints: [{ matchLabels: { app: 'db' }, toPorts: [{ ports: [{ port: '5432' }] }], rules: {} }] }],
    }),
    specs: [{ nodeSelector: { matchLabels: {}, ports: [] }, ingress: [{ fromRequires: [{ matchExpressions: [] }, { toPorts: [] }] }] }],
  });
  t.same(ignoredSelectorFields(obj), [
    { at: 'spec.egress[0].toEndpoints[0]', element: 'spec.egress[0]', fields: ['toPorts', 'rules'] },
    { at: 'specs[0].nodeSelector', element: 'specs[0]', fields: ['ports'] },
    { at: 'specs[0].ingress[0].fromRequires[1]', element: 'specs[0].ingress[0]', fields: ['toPorts'] },
  ]);
  t.same(ignoredSelectorFields(P(cnp('n', 'x', { endpointSelector: {}, egress: [{ toEndpoints: [{ matchLabels: { app: 'db' } }], toPorts: [{ ports: [{ port: '5432' }] }] }] }))), [], 'toPorts beside the selector list');
  t.same(ignoredSelectorFields(P(netpol('n', 'x', { podSelector: { matchLabels: {}, toPorts: [] } }))), [], 'only Cilium kinds');
});
