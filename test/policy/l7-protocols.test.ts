// l7Protocols: which L7 protocols a Cilium policy's rules name, as the agent's "L7 proxy disabled" check sees them.
import t from 'tap';
import { l7Protocols } from '../../src/policy/index.ts';
import type { PolicyObject } from '../../src/core/objects.ts';

const cnp = (spec: Record<string, unknown>) =>
  ({ apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: 'p', namespace: 'blue' }, spec }) as unknown as PolicyObject;
const port = (rules?: Record<string, unknown>) => ({ toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }], ...(rules ? { rules } : {}) }] });

t.test('each protocol, once, in order; none for L3/L4 only or no object', async (t) => {
  t.same(l7Protocols(undefined), []);
  t.same(l7Protocols(cnp({ endpointSelector: {}, ingress: [port()] })), []);
  t.same(l7Protocols(cnp({ endpointSelector: {}, ingress: [port({ http: [{}] }), port({ http: [{ path: '/' }] })] })), ['http']);
  t.same(l7Protocols(cnp({ endpointSelector: {}, egress: [port({ dns: [{ matchPattern: '*' }] })], ingress: [port({ kafka: [{ topic: 't' }] })] })).sort(), ['dns', 'kafka']);
  t.same(l7Protocols(cnp({ endpointSelector: {}, ingress: [port({ l7proto: 'envoy.redis', l7: [{}] })] })), ['envoy.redis']);
  t.same(l7Protocols(cnp({ endpointSelector: {}, ingress: [port({ l7: [{ cmd: 'x' }] })] })), ['l7']);
  t.same(l7Protocols(cnp({ endpointSelector: {}, ingress: [port({ http: [] })] })), [], 'an empty list is no rule');
});
