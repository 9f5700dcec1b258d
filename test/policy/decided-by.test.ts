// Which rule decided a denied direction (DecidedBy): every matching deny element named by policy,
// section and index with what of it matched, or default deny with the policies that enforce it. The
// same answer from evaluate() (DirectionVerdict.decidedBy) and from recordDenials around the fast path
// (reachable), which the rules' before/after comparison uses.

import t from 'tap';
import { evaluate, ingressFromIpAllowed, reachable, recordDenials } from '../../src/policy/reachability.ts';
import { baseCluster, ccnp, cnp, findPod, memoryState, ns, pod } from '../fixtures/cluster.ts';
import { hasDenyRules } from '../../src/policy/selection.ts';
import { denyRulesByList } from '../../src/policy/memo.ts';
import { transformObject } from '../../src/state/transform.ts';
import { decidedByOf } from '../../src/impact/decided-by.ts';
import { mutationOf } from '../../src/core/change.ts';
import { overlay } from '../../src/state/overlay.ts';
import { makeChange } from '../rules/rule-harness.ts';

const kubeDns = { matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s:k8s-app': 'kube-dns' } };
const dns53 = [{ ports: [{ port: '53', protocol: 'UDP' }] }];

t.test('two deny elements and an allow match: both deny elements are named, in section order, with what matched', async (t) => {
  const s = memoryState(baseCluster([
    ns('app'), pod('app', 'web', { app: 'web' }),
    cnp('app', 'web', {
      endpointSelector: { matchLabels: { app: 'web' } },
      // The allow comes first: in Cilium a deny wins whatever the order.
      egress: [{ toEndpoints: [kubeDns], toPorts: dns53 }],
      egressDeny: [
        { toEntities: ['world'] }, // does not match a pod peer
        { toEntities: ['cluster', 'host'], toPorts: [{ ports: [{ port: '53', protocol: 'UDP' }, { port: '443', protocol: 'TCP' }] }] },
        { toEndpoints: [{ matchLabels: { 'k8s:k8s-app': 'kube-dns' } }] }, // CNP: confined to namespace app, kube-dns is not there
        { toEndpoints: [kubeDns] },
      ],
    }),
  ]));
  const web = findPod(s, 'app/web');
  const coredns = findPod(s, 'kube-system/coredns-1');
  const v = evaluate(s, web, { type: 'pod', pod: coredns }, 53, 'UDP').egress;
  t.equal(v.verdict, 'denied');
  t.same(v.decidedBy, {
    by: 'deny',
    denies: [
      { policy: { kind: 'CiliumNetworkPolicy', namespace: 'app', name: 'web' }, specIndex: 0, section: 'egressDeny', index: 1, peers: [{ type: 'entity', entity: 'cluster' }], ports: ['53/UDP'] },
      { policy: { kind: 'CiliumNetworkPolicy', namespace: 'app', name: 'web' }, specIndex: 0, section: 'egressDeny', index: 3, peers: [{ type: 'endpoints', selector: kubeDns }], ports: [] },
    ],
  });
  const rec = recordDenials(() => reachable(s, web, { type: 'pod', pod: coredns }, 53, 'UDP'));
  t.equal(rec.result, false);
  t.equal(rec.denials.length, 1, 'the fast path records the same decision once');
  t.same(rec.denials[0]!.decidedBy, v.decidedBy, 'reachable() under recordDenials names the same elements as evaluate()');
  t.match(rec.denials[0], { direction: 'egress', subject: 'app/web', port: 53, protocol: 'UDP' });

  // On another port only the element without toPorts decides.
  const other = evaluate(s, web, { type: 'pod', pod: coredns }, 8080, 'TCP').egress;
  t.same(other.decidedBy && other.decidedBy.by === 'deny' ? other.decidedBy.denies.map((d) => d.index) : [], [3]);
});

t.test('no allow matches and no deny: default deny, with the policies that enforce it', async (t) => {
  const s = memoryState(baseCluster([
    ns('app'), pod('app', 'web', { app: 'web' }),
    cnp('app', 'web', { endpointSelector: { matchLabels: { app: 'web' } }, egress: [{ toEndpoints: [kubeDns], toPorts: dns53 }], egressDeny: [{ toEntities: ['cluster'], toPorts: [{ ports: [{ port: '5432', protocol: 'TCP' }] }] }] }),
  ]));
  const web = findPod(s, 'app/web');
  const coredns = findPod(s, 'kube-system/coredns-1');
  const v = evaluate(s, web, { type: 'pod', pod: coredns }, 53, 'TCP').egress;
  t.equal(v.verdict, 'denied');
  t.same(v.decidedBy, { by: 'default-deny', enforcedBy: [{ kind: 'CiliumNetworkPolicy', namespace: 'app', name: 'web' }] }, 'a deny on another port does not decide');
  const rec = recordDenials(() => reachable(s, web, { type: 'pod', pod: coredns }, 53, 'TCP'));
  t.same(rec.denials.map((d) => d.decidedBy.by), ['default-deny']);
  t.same(recordDenials(() => reachable(s, web, { type: 'pod', pod: coredns }, 53, 'UDP')).denials, [], 'allowed: nothing recorded');
  t.equal(evaluate(s, web, { type: 'pod', pod: coredns }, 53, 'UDP').egress.decidedBy, undefined, 'allowed: no decidedBy');
});

t.test('a CIDR deny (toCIDRSet with except) and an ingress deny on the destination', async (t) => {
  const s = memoryState(baseCluster([
    ns('app'), pod('app', 'web', { app: 'web' }), pod('app', 'api', { app: 'api' }, { ip: '10.0.1.50' }),
    ccnp('deny-ext', { endpointSelector: { matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'app' } }, egressDeny: [{ toCIDRSet: [{ cidr: '0.0.0.0/0', except: ['10.0.0.0/8'] }] }] }),
    cnp('app', 'api', { endpointSelector: { matchLabels: { app: 'api' } }, ingress: [{ fromEndpoints: [{}] }], ingressDeny: [{ fromEndpoints: [{ matchLabels: { app: 'web' } }], toPorts: [{ ports: [{ port: '8000', endPort: 8100, protocol: 'TCP' }] }] }] }),
  ]));
  const web = findPod(s, 'app/web');
  const out = evaluate(s, web, { type: 'ip', ip: '192.0.2.10' }, 443, 'TCP').egress;
  t.same(out.decidedBy, {
    by: 'deny',
    denies: [{ policy: { kind: 'CiliumClusterwideNetworkPolicy', namespace: '', name: 'deny-ext' }, specIndex: 0, section: 'egressDeny', index: 0, peers: [{ type: 'cidr', cidr: '0.0.0.0/0', except: ['10.0.0.0/8'] }], ports: [] }],
  });
  const api = findPod(s, 'app/api');
  const inn = evaluate(s, web, { type: 'pod', pod: api }, 8080, 'TCP').ingress;
  t.match(inn.decidedBy, { by: 'deny', denies: [{ section: 'ingressDeny', index: 0, peers: [{ type: 'endpoints' }], ports: ['8000-8100/TCP'] }] });
  t.equal(evaluate(s, web, { type: 'pod', pod: api }, 9000, 'TCP').ingress.verdict, 'allowed', 'outside the deny range the allow decides');
  // ingressFromIpAllowed records too (the probe rule's question).
  const rec = recordDenials(() => ingressFromIpAllowed(s, api, '169.254.7.127', 8080, 'TCP'));
  t.equal(rec.result, false, 'the SNAT source is world: the allow from the namespace\'s pods does not cover it');
  t.same(rec.denials.map((d) => [d.direction, d.subject, d.decidedBy.by]), [['ingress', 'app/api', 'default-deny']], 'the deny selects web only: default deny decides');
});

t.test('hasDenyRules: whether any deny element exists, per state and for an overlay from its base', async (t) => {
  const plain = memoryState(baseCluster([ns('app'), pod('app', 'web', { app: 'web' }), cnp('app', 'allow', { endpointSelector: {}, egress: [{ toEndpoints: [kubeDns], toPorts: dns53 }] })]));
  t.equal(hasDenyRules(plain), false, 'allows only');
  const add = (obj: Parameters<typeof makeChange>[1]) => overlay(plain, mutationOf(makeChange('CREATE', obj)));
  t.equal(hasDenyRules(add(cnp('app', 'd', { endpointSelector: {}, egressDeny: [{ toEntities: ['world'] }] }))), true, 'a CNP with a deny added');
  t.equal(hasDenyRules(add(ccnp('d', { endpointSelector: {}, ingressDeny: [{ fromEntities: ['world'] }] }))), true, 'a CCNP with a deny added');
  t.equal(hasDenyRules(add(cnp('app', 'a', { endpointSelector: {}, egress: [{ toEntities: ['world'] }] }))), false, 'near miss: a policy with allows only added');
  t.equal(hasDenyRules(plain), false, 'the base is unchanged by its overlays');
  const withDeny = memoryState(baseCluster([ns('app'), pod('app', 'web', { app: 'web' }), cnp('other', 'd', { endpointSelector: {}, egressDeny: [{ toEntities: ['world'] }] })]));
  t.equal(hasDenyRules(withDeny), true, 'a deny in another namespace counts: the shortcut is about the whole state');
  // With no deny anywhere, decidedByOf names no deny without asking again.
  let asked = 0;
  const d = decidedByOf(['x'], [{ key: 'k', first: 'x' }], () => 'k', () => (asked++, false), plain);
  t.same([d.byDefault, d.byDeny, asked], [['x'], [], 0]);
  const d2 = decidedByOf(['x'], [{ key: 'k', first: 'x' }], () => 'k', () => (asked++, false), withDeny);
  t.same([d2.byDefault, asked], [['x'], 1], 'with a deny somewhere the class is asked again');
  // Kept per policy list: a pod event leaves it (no scan of every policy per revision); a policy change does not.
  t.equal(hasDenyRules(withDeny), true);
  const cnps = withDeny.list('CiliumNetworkPolicy');
  withDeny.upsert('Pod', transformObject('Pod', pod('app', 'web-2', { app: 'web' })));
  t.equal(withDeny.list('CiliumNetworkPolicy'), cnps, 'a pod event keeps the CNP list array');
  t.equal(denyRulesByList.get(cnps), true, 'and its answer');
  withDeny.remove('CiliumNetworkPolicy', 'other', 'd');
  t.equal(hasDenyRules(withDeny), false, 'the deny removed: answered from the new list');
});
