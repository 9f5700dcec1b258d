// apiserver-egress-missing: findings asserted as data (code, params, victims, preexisting); one golden
// test per code for the wording. More cases as fixtures: src/rules/apiserver-egress-missing/testdata/*.yaml.
import t from 'tap';
import { DEFAULT_SETTINGS } from '../../src/config/config.ts';
import { rule, scope } from '../../src/rules/apiserver-egress-missing/index.ts';
import { messages } from '../../src/rules/apiserver-egress-missing/messages.ts';
import { renderFinding } from '../../src/verdict/render.ts';
import { rbacIndex, usesApiserver } from '../../src/policy/index.ts';
import { mutationOf } from '../../src/core/change.ts';
import { overlay } from '../../src/state/overlay.ts';
import type { KubeObject, Pod } from '../../src/core/objects.ts';
import { baseCluster, ccnp, ciliumConfigMap, cnp, HEALTHY_CILIUM_CONFIG, memoryState, netpol, ns, pod } from '../fixtures/cluster.ts';
import { makeChange, runRule } from './rule-harness.ts';

type Obj = Parameters<typeof runRule>[1][number];

function roleBinding(namespace: string, name: string, subjects: Record<string, string>[]): Obj {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name, namespace },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'reader' }, subjects,
  };
}
function clusterRoleBinding(name: string, subjects: Record<string, string>[]): Obj {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' }, subjects,
  };
}

// ops: an operator whose service account is bound, and a web pod with no API permissions.
const ops = [
  ns('ops'),
  pod('ops', 'operator-1', { app: 'operator' }, { sa: 'operator' }),
  pod('ops', 'web-1', { app: 'web' }),
  roleBinding('ops', 'operator-reads', [{ kind: 'ServiceAccount', name: 'operator', namespace: 'ops' }]),
];
// An egress allow list that names only a peer that does not exist: everything else is dropped.
const denyAllEgress = cnp('ops', 'deny-egress', { endpointSelector: {}, egress: [{ toEndpoints: [{ matchLabels: { app: 'nothing' } }] }] });

t.test('a default-deny egress denies the pods whose service account is an RBAC subject, not the others', async (t) => {
  const { findings } = runRule(rule, baseCluster(ops), 'CREATE', denyAllEgress);
  t.equal(findings.length, 1);
  t.same(findings[0], {
    rule: 'apiserver-egress-missing',
    code: 'apiserver-egress-missing/policy-cuts-access',
    params: {
      allowForm: 'entity', port: 6443, ips: ['192.168.0.10'],
      object: 'CiliumNetworkPolicy ops/deny-egress', podCount: 1, pods: ['ops/operator-1'], endpoints: ['192.168.0.10'],
    },
    victims: ['ops/operator-1'],
    victimCount: 1,
  });
});

t.test('a pod with a token but no RBAC binding does not need the API server', async (t) => {
  const objs = baseCluster([ns('ops'), pod('ops', 'web-1', { app: 'web' })]);
  t.same(runRule(rule, objs, 'CREATE', denyAllEgress).findings, []);
});

t.test('allowing the kube-apiserver entity (or cluster / all) admits the policy', async (t) => {
  for (const entity of ['kube-apiserver', 'cluster', 'all']) {
    const policy = cnp('ops', 'deny-egress', { endpointSelector: {}, egress: [{ toEntities: [entity] }] });
    t.same(runRule(rule, baseCluster(ops), 'CREATE', policy).findings, [], entity);
  }
});

t.test('a toCIDR covering an off-node API server admits it; the wrong port does not', async (t) => {
  // Managed control plane: the EndpointSlice address is not a Node address.
  const objs = baseCluster(ops).map((o) =>
    o.kind === 'EndpointSlice' ? { ...o, endpoints: [{ addresses: ['172.20.0.5'] }] } : o,
  );
  const ok = cnp('ops', 'deny-egress', { endpointSelector: {}, egress: [{ toCIDR: ['172.20.0.0/24'], toPorts: [{ ports: [{ port: '6443', protocol: 'TCP' }] }] }] });
  t.same(runRule(rule, objs, 'CREATE', ok).findings, []);
  const wrongPort = cnp('ops', 'deny-egress', { endpointSelector: {}, egress: [{ toCIDR: ['172.20.0.0/24'], toPorts: [{ ports: [{ port: '443', protocol: 'TCP' }] }] }] });
  t.equal(runRule(rule, objs, 'CREATE', wrongPort).findings.length, 1);
});

t.test('NetworkPolicy ipBlock of an API server on node IPs does not match (cilium#20550): denied, fix says use a CNP', async (t) => {
  const np = netpol('ops', 'egress', {
    podSelector: {}, policyTypes: ['Egress'],
    egress: [{ to: [{ ipBlock: { cidr: '192.168.0.10/32' } }], ports: [{ port: 6443, protocol: 'TCP' }] }],
  });
  const { findings } = runRule(rule, baseCluster(ops), 'CREATE', np);
  t.same(findings.map((f) => [f.code, f.params?.allowForm]), [['apiserver-egress-missing/policy-cuts-access', 'cnp-instead']]);
});

t.test('a ClusterRoleBinding subject, the system:serviceaccounts:<ns> group, and configured clients count', async (t) => {
  const base = [ns('ops'), pod('ops', 'ctrl', { app: 'ctrl' }, { sa: 'ctrl' }), pod('ops', 'web-1', { app: 'web' })];
  const crb = clusterRoleBinding('ctrl-view', [{ kind: 'ServiceAccount', name: 'ctrl', namespace: 'ops' }]);
  let r = runRule(rule, baseCluster([...base, crb]), 'CREATE', denyAllEgress);
  t.same(r.findings[0]?.victims, ['ops/ctrl']);

  const group = roleBinding('ops', 'all-sas', [{ kind: 'Group', name: 'system:serviceaccounts:ops' }]);
  r = runRule(rule, baseCluster([...base, group]), 'CREATE', denyAllEgress);
  t.equal(r.findings[0]?.victimCount, 2);

  // The cluster-wide groups are bound to discovery roles everywhere: they do not make every pod a client.
  const broad = clusterRoleBinding('discovery', [{ kind: 'Group', name: 'system:authenticated' }, { kind: 'Group', name: 'system:serviceaccounts' }]);
  t.same(runRule(rule, baseCluster([...base, broad]), 'CREATE', denyAllEgress).findings, []);

  // istiod is a configured client (default settings) even without a binding in the state.
  const istiodLock = cnp('istio-system', 'lock', { endpointSelector: { matchLabels: { app: 'istiod' } }, egress: [{ toEntities: ['world'] }] });
  r = runRule(rule, baseCluster(), 'CREATE', istiodLock);
  t.same(r.findings[0]?.victims, ['istio-system/istiod-1']);
  // ... and not when the config says otherwise.
  t.same(runRule(rule, baseCluster(), 'CREATE', istiodLock, { settings: { apiserverClients: [] } }).findings, []);
});

t.test('deleting the API-server allow while another policy enforces egress is denied; when it was the only one, not', async (t) => {
  const allowApi = cnp('ops', 'allow-api', { endpointSelector: { matchLabels: { app: 'operator' } }, egress: [{ toEntities: ['kube-apiserver'] }] });
  const denied = runRule(rule, baseCluster([...ops, denyAllEgress, allowApi]), 'DELETE', allowApi).findings;
  t.same(denied.map((f) => [f.code, f.params?.object, f.victims]), [['apiserver-egress-missing/delete-removes-allow', 'CiliumNetworkPolicy ops/allow-api', ['ops/operator-1']]]);
  t.same(runRule(rule, baseCluster([...ops, allowApi]), 'DELETE', allowApi).findings, []);
});

t.test('an already-blocked client is pre-existing, not a new victim', async (t) => {
  const another = cnp('ops', 'to-db', { endpointSelector: { matchLabels: { app: 'operator' } }, egress: [{ toEndpoints: [{ matchLabels: { app: 'db' } }] }] });
  const { findings } = runRule(rule, baseCluster([...ops, denyAllEgress]), 'CREATE', another);
  t.same(findings.map((f) => [f.code, f.preexisting, f.victims]), [['apiserver-egress-missing/policy-keeps-missing', true, ['ops/operator-1']]]);
});

t.test('namespace relabel and enable-policy: always are triggers too', async (t) => {
  const locked = ccnp('locked', { endpointSelector: { matchLabels: { 'io.cilium.k8s.namespace.labels.zone': 'locked' } }, egress: [{ toEntities: ['world'] }] });
  const r1 = runRule(rule, baseCluster([...ops, locked]), 'UPDATE', ns('ops', { zone: 'locked' }));
  t.same(r1.findings.map((f) => [f.code, f.params?.object, f.victims]), [['apiserver-egress-missing/namespace-relabel-cuts-access', 'ops', ['ops/operator-1']]]);
  const r2 = runRule(rule, baseCluster(ops), 'UPDATE', ciliumConfigMap({ ...HEALTHY_CILIUM_CONFIG, 'enable-policy': 'always' }));
  t.same(r2.findings.map((f) => f.code), ['apiserver-egress-missing/config-cuts-access']);
  t.ok(r2.findings[0]?.victims?.includes('ops/operator-1'));
  t.notOk(r2.findings[0]?.victims?.includes('ops/web-1'));
});

t.test('an ingress-only policy never reports, not even the pre-existing lack of access', async (t) => {
  const ingressOnly = cnp('ops', 'in', { endpointSelector: {}, ingress: [{ fromEntities: ['cluster'] }] });
  t.same(runRule(rule, baseCluster([...ops, denyAllEgress]), 'CREATE', ingressOnly).findings, []);
});

t.test('NetworkPolicy ipBlock of an off-node API server (managed control plane) admits it, fix uses ipBlock', async (t) => {
  const objs = baseCluster(ops).map((o) => (o.kind === 'EndpointSlice' ? { ...o, endpoints: [{ addresses: ['172.20.0.5'] }] } : o));
  const ok = netpol('ops', 'egress', {
    podSelector: {}, policyTypes: ['Egress'],
    egress: [{ to: [{ ipBlock: { cidr: '172.20.0.0/16' } }], ports: [{ port: 6443, protocol: 'TCP' }] }],
  });
  t.same(runRule(rule, objs, 'CREATE', ok).findings, []);
  const broken = netpol('ops', 'egress', { podSelector: {}, policyTypes: ['Egress'] });
  const { findings } = runRule(rule, objs, 'CREATE', broken);
  t.same(findings.map((f) => [f.code, f.params?.allowForm, f.params?.ips, f.params?.endpoints, f.params?.port]), [
    ['apiserver-egress-missing/policy-cuts-access', 'ip-block', ['172.20.0.5'], ['172.20.0.5'], 6443],
  ]);
});

t.test('three API server endpoints: cutting off one a pod still reached is a loss even when it missed another', async (t) => {
  // Managed control plane with three endpoints, none on a node.
  const threeApiservers = (extra: Obj[]) =>
    baseCluster([...ops, ...extra]).map((o) => (o.kind === 'EndpointSlice' ? { ...o, endpoints: [{ addresses: ['172.20.0.5', '172.20.0.6', '172.20.0.7'] }] } : o));
  const allowTo = (name: string, cidrs: string[]) =>
    cnp('ops', name, { endpointSelector: {}, egress: [{ toCIDR: cidrs, toPorts: [{ ports: [{ port: '6443', protocol: 'TCP' }] }] }] });
  const twoOfThree = allowTo('apiserver', ['172.20.0.5/32', '172.20.0.6/32']);

  // Before: two of three reachable (already intermittent). The update keeps only one: a loss, denied.
  let run = runRule(rule, threeApiservers([twoOfThree]), 'UPDATE', allowTo('apiserver', ['172.20.0.5/32']));
  t.equal(run.findings.length, 1);
  t.notOk(run.findings[0]!.preexisting, 'the pod loses 172.20.0.6, which it reached before');
  t.same(run.findings[0]!.victims, ['ops/operator-1']);
  t.same([run.findings[0]!.code, run.findings[0]!.params?.endpoints, run.findings[0]!.params?.endpointTotal], ['apiserver-egress-missing/policy-cuts-access', ['172.20.0.6'], 3]);

  // Deleting the allow leaves the pods with nothing: both lost endpoints are named.
  run = runRule(rule, threeApiservers([twoOfThree, denyAllEgress]), 'DELETE', twoOfThree);
  t.equal(run.findings.length, 1);
  t.notOk(run.findings[0]!.preexisting);
  t.same([run.findings[0]!.code, run.findings[0]!.params?.endpoints, run.findings[0]!.params?.endpointTotal], ['apiserver-egress-missing/delete-removes-allow', ['172.20.0.5', '172.20.0.6'], 3]);

  // An update that still misses the third endpoint and loses nothing is the old problem, not this request's.
  run = runRule(rule, threeApiservers([twoOfThree]), 'UPDATE', allowTo('apiserver', ['172.20.0.6/32', '172.20.0.5/32']));
  t.equal(run.findings.length, 1);
  t.equal(run.findings[0]!.preexisting, true);
  t.same([run.findings[0]!.code, run.findings[0]!.params?.endpoints, run.findings[0]!.params?.endpointTotal], ['apiserver-egress-missing/policy-keeps-missing', ['172.20.0.5', '172.20.0.6', '172.20.0.7'], undefined]);

  // Swapping which endpoint is missing, or reaching more of them, makes nothing worse: not denied.
  run = runRule(rule, threeApiservers([twoOfThree]), 'UPDATE', allowTo('apiserver', ['172.20.0.6/32', '172.20.0.7/32']));
  t.equal(run.findings.length, 1);
  t.equal(run.findings[0]!.preexisting, true, 'two of three before and after');
  run = runRule(rule, threeApiservers([allowTo('apiserver', ['172.20.0.5/32'])]), 'UPDATE', allowTo('apiserver', ['172.20.0.6/32', '172.20.0.7/32']));
  t.equal(run.findings[0]?.preexisting, true, 'one of three to two of three');

  // Reaching all three is fine.
  t.same(runRule(rule, threeApiservers([twoOfThree]), 'UPDATE', allowTo('apiserver', ['172.20.0.0/24'])).findings, []);
});

t.test('the RBAC index is kept across pod changes and rebuilt when a binding changes', async (t) => {
  const s = memoryState(baseCluster([...ops, pod('ops', 'batch-1', { app: 'batch' }, { sa: 'batch' })]));
  const settings = DEFAULT_SETTINGS;
  const batch = (): Pod => s.get('Pod', 'ops', 'batch-1')!;
  const first = rbacIndex(s);
  t.ok(first.serviceAccounts.has('ops/operator'), 'the RoleBinding subject is indexed');
  t.notOk(usesApiserver(s, batch(), settings), 'the batch service account has no binding');

  // A pod event (a new revision of the state) reads the same bindings: the index stays.
  const web = s.get('Pod', 'ops', 'web-1')!;
  s.upsert('Pod', { ...web, metadata: { ...web.metadata, labels: { app: 'web', 'pod-template-hash': 'abc' } } });
  t.equal(rbacIndex(s), first, 'a pod change keeps the index object');

  // A binding of either kind changes it.
  s.upsert('ClusterRoleBinding', clusterRoleBinding('batch-view', [{ kind: 'ServiceAccount', name: 'batch', namespace: 'ops' }]) as KubeObject);
  t.not(rbacIndex(s), first, 'a new ClusterRoleBinding rebuilds it');
  t.ok(usesApiserver(s, batch(), settings), 'and its subject now uses the API server');
  s.remove('ClusterRoleBinding', undefined, 'batch-view');
  t.notOk(usesApiserver(s, batch(), settings), 'removed again: no longer');
  s.remove('RoleBinding', 'ops', 'operator-reads');
  t.notOk(rbacIndex(s).serviceAccounts.has('ops/operator'), 'a removed RoleBinding leaves the index');

  // A request's own binding is seen in its overlay only.
  const withBinding = overlay(s, mutationOf(makeChange('CREATE', roleBinding('ops', 'batch-reads', [{ kind: 'ServiceAccount', name: 'batch' }]))));
  t.ok(usesApiserver(withBinding, batch(), settings), 'the overlay sees the binding the request creates');
  t.notOk(usesApiserver(s, batch(), settings), 'the state it overlays does not');
});

t.test('scope: from the request alone', async (t) => {
  t.same(scope(makeChange('CREATE', denyAllEgress)), { by: 'policy', object: 'CiliumNetworkPolicy ops/deny-egress', dialect: 'CiliumNetworkPolicy' });
  const np = netpol('ops', 'egress', { podSelector: {} });
  t.same(scope(makeChange('DELETE', undefined, np)), { by: 'policy-delete', object: 'NetworkPolicy ops/egress', dialect: 'NetworkPolicy' });
  t.same(scope(makeChange('UPDATE', ciliumConfigMap(HEALTHY_CILIUM_CONFIG))), { by: 'cilium-config' });
  t.same(scope(makeChange('UPDATE', ns('ops', { zone: 'locked' }), ns('ops'))), { by: 'namespace', namespace: 'ops' });
  const otherCm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'istio', namespace: 'istio-system' }, data: {} };
  t.equal(scope(makeChange('UPDATE', otherCm)), undefined);
});

// Golden wording, one per code: the text users read in kubectl, check and audit (unchanged by the move to codes).
t.test('wording', async (t) => {
  const say = (f: ReturnType<typeof messages.finding>) => renderFinding(f, rule.messages);
  const entity = 'egress: [{toEntities: [kube-apiserver], toPorts: [{ports: [{port: "6443", protocol: TCP}]}]}]';
  const p = {
    allowForm: 'entity', port: 6443, ips: ['192.168.0.10'], object: 'CiliumNetworkPolicy ops/deny-egress',
    podCount: 4, pods: ['ops/a', 'ops/b', 'ops/c'], endpoints: ['192.168.0.10'],
  } as const;
  t.same(say(messages.finding('policy-cuts-access', p)), {
    message: 'CiliumNetworkPolicy ops/deny-egress leaves 4 pods using the API server egress-enforced without access to it (TCP 6443 to 192.168.0.10): ops/a, ops/b, ops/c and 1 more',
    fix: `add to CiliumNetworkPolicy ops/deny-egress: ${entity}`,
  });
  const three = { ...p, ips: ['172.20.0.5', '172.20.0.6', '172.20.0.7'], endpoints: ['172.20.0.5', '172.20.0.6'], endpointTotal: 3, podCount: 1, pods: ['ops/a'] };
  t.same(say(messages.finding('delete-removes-allow', three)), {
    message: 'deleting CiliumNetworkPolicy ops/deny-egress removes the API server allow (TCP 6443 to 172.20.0.5, 172.20.0.6, 2 of the 3 API server endpoints) of 1 pod using the API server that stay egress-enforced: ops/a',
    fix: `before deleting, allow the API server for these pods in another policy: ${entity}`,
  });
  t.same(say(messages.finding('config-cuts-access', { ...p, object: '', endpoints: [] })), {
    message: 'this cilium-config change leaves 4 pods using the API server without access to it (TCP 6443 to the kube-apiserver): ops/a, ops/b, ops/c and 1 more',
    fix: `allow the API server for these pods first: ${entity}`,
  });
  t.same(say(messages.finding('namespace-relabel-cuts-access', { ...p, object: 'ops', allowForm: 'cnp-instead' })), {
    message: 'relabelling namespace ops leaves 4 pods using the API server egress-enforced without access to it (TCP 6443 to 192.168.0.10): ops/a, ops/b, ops/c and 1 more',
    fix: `allow the API server for these pods in namespace ops: a CiliumNetworkPolicy selecting the same pods with ${entity} (ipBlock does not match API servers on node IPs)`,
  });
  t.same(say(messages.finding('policy-keeps-missing', { ...p, object: 'NetworkPolicy ops/egress', allowForm: 'ip-block', ips: ['172.20.0.5', 'fd00::1'], endpoints: ['172.20.0.5', 'fd00::1'] })), {
    message: '4 pod(s) using the API server and selected by NetworkPolicy ops/egress already cannot reach it (TCP 6443 to 172.20.0.5, fd00::1): ops/a, ops/b, ops/c and 1 more',
    fix: 'add to NetworkPolicy ops/egress: egress: [{to: [{ipBlock: {cidr: 172.20.0.5/32}}, {ipBlock: {cidr: fd00::1/128}}], ports: [{port: 6443, protocol: TCP}]}]',
  });
  const deny = { denies: ['CiliumNetworkPolicy ops/deny-egress egressDeny[0]'], denyPeers: ['cidr'], denyValues: ['172.16.0.0/12'], denyPorts: [''] };
  t.same(say(messages.finding('denied-by-policy', { ...p, ...deny, ips: ['172.20.0.5', 'fd00::1'], endpoints: ['172.20.0.5', 'fd00::1'], change: 'this cilium-config change', defaultPods: ['ops/d'], defaultPodCount: 1 })), {
    message: 'this cilium-config change leaves 4 pods using the API server without access to it (TCP 6443 to 172.20.0.5, fd00::1), and a deny decides, which no allow overrides: CiliumNetworkPolicy ops/deny-egress egressDeny[0] (toCIDR 172.16.0.0/12, every port): ops/a, ops/b, ops/c and 1 more; 1 more pod lacks an allow: ops/d',
    fix: 'narrow CiliumNetworkPolicy ops/deny-egress egressDeny[0]: add 172.20.0.5/32, fd00::1/128 to the except list of 172.16.0.0/12 (a toCIDRSet entry), or limit it with toPorts to the ports it means to deny (not 6443/TCP), or remove the element ' +
      `(an allow does not help: a Cilium deny wins over every allow); for the other 1 pod (ops/d), no deny decides: allow the API server for them: ${entity}`,
  });
  t.same(say(messages.finding('still-denied-by-policy', { ...p, ...deny, denyPeers: ['any'], denyValues: [''], denyPorts: ['6443/TCP'], endpoints: [], change: 'CiliumNetworkPolicy ops/x', defaultPods: [], defaultPodCount: 0 })), {
    message: 'CiliumNetworkPolicy ops/x leaves 4 pods using the API server without access to it (TCP 6443 to the kube-apiserver), and a deny decides, which no allow overrides: CiliumNetworkPolicy ops/deny-egress egressDeny[0] (every peer, on 6443/TCP): ops/a, ops/b, ops/c and 1 more',
    fix: 'narrow CiliumNetworkPolicy ops/deny-egress egressDeny[0]: give it a toEndpoints/toCIDRSet peer that leaves out the API server (kube-apiserver), or drop 6443/TCP from its toPorts (6443/TCP), or remove the element (an allow does not help: a Cilium deny wins over every allow)',
  });
  t.equal(messages.codes.length, 7, 'one golden test per code');
});
