// One Istio semantics for the rules and `trace`: where an AuthorizationPolicy applies (istio.ts) and
// how it decides one connection (authz.ts), with the cases where two earlier copies disagreed settled
// from Istio's own code and docs, and hostile input. Sources:
//   https://istio.io/latest/docs/reference/config/security/authorization-policy/ (selector: root
//     namespace selects in every namespace; targetRefs; when keys; ports)
//   istio/istio pilot/pkg/serviceregistry/kube/controller/ambient/authorization.go (what ztunnel gets:
//     scope from `selector == nil`, CUSTOM unsupported, HTTP rules dropped from ALLOW and stripped from
//     DENY, `l4WhenAttributes`, unparseable ports and addresses dropped from their lists)
//   istio/istio pilot/pkg/model/policyattachment.go (GetTargetRefs: targetRefs, else the legacy targetRef;
//     a selector matches when its labels are a subset of the workload's, so an empty one matches all)

import t from 'tap';
import { authorize, type AuthzRequest } from '../../src/policy/authz.ts';
import { authzAttachment, authzSelectsPod, httpAttributesOf, istioSelectorOf, meshConfig, effectiveMtls } from '../../src/policy/istio.ts';
import { meshPath } from '../../src/policy/mesh-path.ts';
import type { PolicyObject } from '../../src/core/objects.ts';
import { authzPolicy, baseCluster, findPod, memoryState, ns, peerAuth, pod, type Obj } from '../fixtures/cluster.ts';

const AMBIENT = { 'istio.io/dataplane-mode': 'ambient' };

function cluster(extra: Obj[] = [], blueLabels: Record<string, string> = {}): Obj[] {
  return baseCluster([
    ns('red', AMBIENT),
    ns('blue', { ...AMBIENT, ...blueLabels }),
    pod('red', 'curl', { app: 'curl' }, { sa: 'curl', ip: '10.0.1.6' }),
    pod('blue', 'httpbin', { app: 'httpbin' }, { sa: 'httpbin', ip: '10.0.2.5', ports: [{ name: 'http', containerPort: 80 }] }),
    ...extra,
  ]);
}

function trace(objs: Obj[], from = 'red/curl', to = 'blue/httpbin', port = 80) {
  const s = memoryState(objs);
  return meshPath(s, findPod(s, from), { type: 'pod', pod: findPod(s, to) }, port, 'TCP')!;
}

function ap(spec: Record<string, unknown>, namespace = 'blue', name = 'p'): PolicyObject {
  return authzPolicy(namespace, name, spec) as unknown as PolicyObject;
}

const PEER: AuthzRequest = {
  principal: 'cluster.local/ns/red/sa/curl', sourceNamespace: 'red', sourceServiceAccount: 'curl', sourceIp: '10.0.1.6', destinationIp: '10.0.2.5', port: 80, enforcer: 'ztunnel',
};
const at = (q: Partial<AuthzRequest>): AuthzRequest => ({ ...PEER, ...q });
const verdict = (policies: PolicyObject[], q: AuthzRequest = PEER) => authorize(policies, q, 'blue/httpbin').verdict;

t.test('meshConfig: one parse gives root namespace and trust domain, each defaulting alone', async (t) => {
  const cm = (mesh: string): Obj => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'istio', namespace: 'istio-system' }, data: { mesh } });
  t.same(meshConfig(memoryState(baseCluster())), { rootNamespace: 'istio-system', trustDomain: 'cluster.local' });
  t.same(meshConfig(memoryState(baseCluster([cm('rootNamespace: mesh-root\ntrustDomain: example.org\n')]))), { rootNamespace: 'mesh-root', trustDomain: 'example.org' });
  t.same(meshConfig(memoryState(baseCluster([cm('trustDomain: example.org\n')]))), { rootNamespace: 'istio-system', trustDomain: 'example.org' });
  t.same(meshConfig(memoryState(baseCluster([cm('rootNamespace: 7\ntrustDomain: [a]\n')]))), { rootNamespace: 'istio-system', trustDomain: 'cluster.local' }, 'non-string fields: defaults');
  t.same(meshConfig(memoryState(baseCluster([cm(': : [\n')]))), { rootNamespace: 'istio-system', trustDomain: 'cluster.local' }, 'broken YAML: defaults');
  const s = memoryState(baseCluster([cm('trustDomain: example.org\n')]));
  t.equal(meshConfig(s), meshConfig(s), 'memoised per state revision');
});

t.test('selector: empty selects like none; a non-string matchLabels value is an object the API server rejects', async (t) => {
  t.same(istioSelectorOf({}), { kind: 'none' });
  t.same(istioSelectorOf({ selector: {} }), { kind: 'none' }, 'selector: {} (Istio: empty labels are a subset of every workload\'s)');
  t.same(istioSelectorOf({ selector: { matchLabels: {} } }), { kind: 'none' });
  t.same(istioSelectorOf({ selector: { matchLabels: { app: 'web' } } }), { kind: 'labels', labels: { app: 'web' } });
  t.same(istioSelectorOf({ selector: { matchLabels: { version: 1 } } }), { kind: 'invalid' }, 'a number (YAML `version: 1`)');
  t.same(istioSelectorOf({ selector: { matchLabels: { app: null } } }), { kind: 'invalid' }, 'null (YAML `app:`)');
  t.same(istioSelectorOf({ selector: { matchLabels: ['app'] } }), { kind: 'invalid' });
  t.same(istioSelectorOf({ selector: 'app=web' }), { kind: 'invalid' });

  const s = memoryState(cluster());
  const hb = findPod(s, 'blue/httpbin');
  const numeric = ap({ selector: { matchLabels: { app: 1 } } });
  t.same(authzAttachment(s, numeric).pods, [], 'the rules: applies to no pod');
  t.equal(authzSelectsPod(s, numeric, hb), false, 'trace: applies to no pod either');
  // An ALLOW-nothing policy with that selector would deny everything if it applied: trace says allowed.
  const m = trace(cluster([authzPolicy('blue', 'bad-sel', { selector: { matchLabels: { app: 1 } } })]));
  t.equal(m.istio[0]!.verdict, 'allowed');
  // The same reading for PeerAuthentication: an invalid workload policy is not namespace-wide.
  const pa = memoryState(cluster([peerAuth('blue', 'strict-bad', { selector: { matchLabels: { app: true } }, mtls: { mode: 'STRICT' } })]));
  t.equal(effectiveMtls(pa, findPod(pa, 'blue/httpbin')).mode, 'PERMISSIVE');
});

t.test('empty selector and root-namespace selectors: the rules and trace agree', async (t) => {
  const s = memoryState(cluster([pod('red', 'web', { app: 'httpbin' }, { ip: '10.0.1.9' })]));
  const hb = findPod(s, 'blue/httpbin');
  const redWeb = findPod(s, 'red/web');
  const emptySel = ap({ selector: {} });
  t.equal(authzAttachment(s, emptySel).pods.length, 1, 'namespace-wide in blue');
  t.equal(authzSelectsPod(s, emptySel, hb), true);
  t.equal(authzSelectsPod(s, emptySel, redWeb), false);
  const rootSel = ap({ selector: { matchLabels: { app: 'httpbin' } } }, 'istio-system');
  t.same(authzAttachment(s, rootSel).pods.map((p) => `${p.metadata.namespace}/${p.metadata.name}`).sort(), ['blue/httpbin', 'red/web'], 'root selector: every namespace');
  t.equal(authzSelectsPod(s, rootSel, hb), true);
  t.equal(authzSelectsPod(s, rootSel, redWeb), true);
  t.equal(authzSelectsPod(s, rootSel, findPod(s, 'red/curl')), false);
  // In trace: a root-namespace DENY with a selector denies at blue/httpbin's ztunnel.
  const m = trace(cluster([authzPolicy('istio-system', 'deny-red', { selector: { matchLabels: { app: 'httpbin' } }, action: 'DENY', rules: [{ from: [{ source: { namespaces: ['red'] } }] }] })]));
  t.same([m.decidedBy, m.istio[0]!.policies[0]!.name], ['istio', 'deny-red']);
});

t.test('targetRefs wins over the legacy targetRef (model.GetTargetRefs); junk entries are dropped', async (t) => {
  const s = memoryState(cluster());
  const gwRef = { kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'waypoint' };
  const svcRef = { kind: 'Service', group: '', name: 'httpbin' };
  t.same(authzAttachment(s, ap({ targetRefs: [gwRef], targetRef: svcRef })).targetRefs, [gwRef], 'both: targetRefs only');
  t.same(authzAttachment(s, ap({ targetRefs: [], targetRef: svcRef })).targetRefs, [svcRef], 'empty targetRefs: the singular');
  t.same(authzAttachment(s, ap({ targetRef: svcRef })).targetRefs, [svcRef]);
  const junk = ap({ targetRefs: ['waypoint', 7] });
  t.same(authzAttachment(s, junk).targetRefs, [], 'no usable ref: a workload policy, for the rules');
  t.equal(authzSelectsPod(s, junk, findPod(s, 'blue/httpbin')), true, 'and for trace');
});

t.test('when keys: ztunnel enforces exactly five; every other key needs HTTP, for the rules and for trace', async (t) => {
  const sni = ap({ rules: [{ when: [{ key: 'connection.sni', values: ['a.example'] }] }] });
  t.same(httpAttributesOf(sni), ['when connection.sni'], 'the ztunnel-l7-authz rule sees it');
  t.equal(verdict([sni]), 'denied', 'ztunnel drops the rule from an ALLOW policy: nothing matches');
  t.equal(verdict([sni], at({ enforcer: 'sidecar' })), 'conditional', 'a sidecar decides per connection, trace cannot know');
  const dip = ap({ rules: [{ when: [{ key: 'destination.ip', values: ['10.0.2.0/24'] }] }] });
  t.same(httpAttributesOf(dip), [], 'destination.ip is L4');
  t.equal(verdict([dip]), 'allowed', 'evaluated at ztunnel against the destination pod IP');
  t.equal(verdict([dip], at({ destinationIp: '10.9.9.9' })), 'denied');
  t.equal(verdict([dip], at({ enforcer: 'waypoint' })), 'conditional', 'a waypoint may see a Service address');
});

t.test('CUSTOM is not supported by ztunnel (ignored there); serviceAccounts are evaluated', async (t) => {
  const custom = ap({ action: 'CUSTOM', provider: { name: 'ext' }, rules: [{}] });
  t.equal(verdict([custom]), 'allowed');
  t.equal(verdict([custom], at({ enforcer: 'sidecar' })), 'conditional');
  const bySa = ap({ rules: [{ from: [{ source: { serviceAccounts: ['red/curl'] } }] }] });
  t.equal(verdict([bySa]), 'allowed');
  t.equal(verdict([bySa], at({ principal: 'cluster.local/ns/red/sa/other', sourceServiceAccount: 'other' })), 'denied');
  const localSa = ap({ rules: [{ from: [{ source: { serviceAccounts: ['curl'] } }] }] });
  t.equal(verdict([localSa]), 'denied', 'a bare name is in the policy\'s namespace (blue), not red');
  const notSa = ap({ action: 'DENY', rules: [{ from: [{ source: { notServiceAccounts: ['red/curl'] } }] }] });
  t.equal(verdict([notSa]), 'allowed');
});

t.test('unparseable ports and addresses: ztunnel drops the entry, Envoy skips the rule', async (t) => {
  for (const ports of [['80-90'], ['http'], [' 80'], ['99999'], [80], [[80]], '80']) {
    const allow = ap({ rules: [{ to: [{ operation: { ports } }] }] });
    t.equal(verdict([allow]), 'allowed', `ztunnel: ports ${JSON.stringify(ports)} left no constraint`);
    t.equal(verdict([allow], at({ enforcer: 'sidecar' })), 'denied', `sidecar: ports ${JSON.stringify(ports)} skip the rule`);
  }
  const mixed = ap({ rules: [{ to: [{ operation: { ports: ['8080', 'x'] } }] }] });
  t.equal(verdict([mixed]), 'denied', 'ztunnel keeps 8080: port 80 does not match');
  t.equal(verdict([ap({ rules: [{ to: [{ operation: { ports: ['080'] } }] }] })]), 'allowed', '"080" is port 80');
  for (const ipBlocks of [['10.0.0.0/33'], ['garbage'], ['10.0.1.6/'], [''], [{}]]) {
    const deny = ap({ action: 'DENY', rules: [{ from: [{ source: { ipBlocks } }] }] });
    t.equal(verdict([deny]), 'denied', `ztunnel: ipBlocks ${JSON.stringify(ipBlocks)} dropped, the DENY matches every source`);
    t.equal(verdict([deny], at({ enforcer: 'sidecar' })), 'allowed', `sidecar: ipBlocks ${JSON.stringify(ipBlocks)} skip the DENY rule`);
  }
  t.equal(verdict([ap({ rules: [{ from: [{ source: { ipBlocks: ['10.0.1.0/24'] } }] }] })]), 'allowed');
  t.equal(verdict([ap({ rules: [{ from: [{ source: { ipBlocks: ['10.0.1.0/24'] } }] }] })], at({ sourceIp: '10.0.3.1' })), 'denied');
});

t.test('hostile shapes give an answer, not a crash', async (t) => {
  const shapes: unknown[] = [
    { rules: 'x' }, { rules: [null, 7, 'x', []] }, { rules: [{ from: 'x', to: 5, when: {} }] },
    { rules: [{ from: [null, { source: 'x' }, { source: { principals: 'cluster.local/ns/red/sa/curl' } }] }] },
    { rules: [{ when: [null, { key: 7, values: [1] }, { key: 'source.ip', values: [[['10.0.1.6']]] }, { key: 'destination.port', values: ['80'], notValues: {} }] }] },
    { action: 7, rules: [{}] }, { action: 'AUDIT', rules: [{}] }, { selector: { matchLabels: { app: { nested: 'x' } } } },
  ];
  for (const spec of shapes) {
    for (const enforcer of ['ztunnel', 'sidecar', 'waypoint'] as const) {
      const d = authorize([ap(spec as Record<string, unknown>)], at({ enforcer }), 'blue/httpbin');
      t.ok(['allowed', 'denied', 'conditional'].includes(d.verdict), `${JSON.stringify(spec)} at ${enforcer}: ${d.verdict}`);
    }
  }
  // Deeply nested when values: never walked, only the top-level strings count.
  let deep: unknown = '10.0.1.6';
  for (let i = 0; i < 10_000; i++) deep = [deep];
  t.equal(verdict([ap({ rules: [{ when: [{ key: 'source.ip', values: [deep] }] }] })], at({ enforcer: 'sidecar' })), 'denied', 'a non-string value is unparseable: the rule is skipped');
});

t.test('huge policies are evaluated in linear time, with a short reason', async (t) => {
  const n = 20_000;
  const principals = Array.from({ length: n }, (_, i) => `cluster.local/ns/other/sa/sa-${i}`);
  const rules = Array.from({ length: n }, (_, i) => ({ from: [{ source: { principals: [`cluster.local/ns/x${i}/sa/a`] } }], to: [{ operation: { ports: [String(1000 + (i % 60000))] } }] }));
  const big = ap({ rules: [...rules, { from: [{ source: { principals } }] }] });
  t.equal(verdict([big]), 'denied', 'no rule names red/curl');
  const many = Array.from({ length: 2_000 }, (_, i) => ap({ rules: [{ from: [{ source: { namespaces: [`ns-${i}`] } }] }] }, 'blue', `p${i}`));
  const d = authorize(many, PEER, 'blue/httpbin');
  t.equal(d.verdict, 'denied');
  t.equal(d.policies.length, 2_000, 'every ALLOW policy is listed as data');
  t.ok(d.reason.length < 400, 'the reason names five and counts the rest');
  t.match(d.reason, /and 1995 more/);
});

t.test('trace: an ambient pod with no IP, and a waypoint that does not exist', async (t) => {
  const noIp = pod('red', 'pending', { app: 'pending' }, { sa: 'pending' });
  delete (noIp['status'] as Record<string, unknown>)['podIP'];
  const ipOnly = authzPolicy('blue', 'from-red-subnet', { rules: [{ from: [{ source: { ipBlocks: ['10.0.1.0/24'] } }] }] });
  const m = trace(cluster([noIp, ipOnly]), 'red/pending');
  t.equal(m.hops[0]!.fromIp, undefined);
  t.equal(m.istio[0]!.verdict, 'denied', 'no source address matches no ipBlocks');
  const missing = trace(cluster([], { 'istio.io/use-waypoint': 'gone' }));
  t.equal(missing.wire, 'hbone', 'no waypoint on the path');
  t.equal(missing.waypoint, undefined);
  t.match(missing.notes.join('\n'), /asks for waypoint blue\/gone .* which does not exist/);
});

t.test('a waypoint trace does not work out the pods of every workload policy in the cluster', async (t) => {
  const n = 500;
  const gw = {
    apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'waypoint', namespace: 'blue', labels: { 'istio.io/waypoint-for': 'all' } },
    spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] },
  } as Obj;
  const policies = Array.from({ length: n }, (_, i) => authzPolicy('istio-system', `wl-${i}`, { selector: { matchLabels: { app: `a${i}` } }, rules: [{}] }));
  const s = memoryState(cluster([gw, ...policies], { 'istio.io/use-waypoint': 'waypoint' }));
  let podLookups = 0;
  const list = s.list.bind(s);
  const withLabel = s.podsWithLabel.bind(s);
  (s as { list: typeof s.list }).list = ((kind: string, namespace?: string) => {
    if (kind === 'Pod') podLookups++;
    return list(kind as never, namespace);
  }) as typeof s.list;
  (s as { podsWithLabel: typeof s.podsWithLabel }).podsWithLabel = ((...a: Parameters<typeof s.podsWithLabel>) => {
    podLookups++;
    return withLabel(...a);
  }) as typeof s.podsWithLabel;
  const m = meshPath(s, findPod(s, 'red/curl'), { type: 'pod', pod: findPod(s, 'blue/httpbin') }, 80, 'TCP')!;
  t.equal(m.wire, 'hbone-via-waypoint');
  t.ok(podLookups < 20, `pod lookups: ${podLookups}, not one per policy (${n})`);
});

t.test('trace to a Service ClusterIP: the Service\'s waypoint must exist and admit the Service\'s namespace', async (t) => {
  const svc = {
    apiVersion: 'v1', kind: 'Service', metadata: { name: 'httpbin', namespace: 'blue', labels: { 'istio.io/use-waypoint': 'shared', 'istio.io/use-waypoint-namespace': 'infra' } },
    spec: { clusterIP: '10.96.5.5', selector: { app: 'httpbin' }, ports: [{ name: 'http', port: 8000, targetPort: 80, protocol: 'TCP' }] },
  } as Obj;
  const shared = (from: string): Obj => ({
    apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'shared', namespace: 'infra' },
    spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE', allowedRoutes: { namespaces: { from } } }] },
  }) as Obj;
  const viaSvc = (objs: Obj[]) => {
    const s = memoryState(objs);
    return meshPath(s, findPod(s, 'red/curl'), { type: 'ip', ip: '10.96.5.5' }, 8000, 'TCP')!;
  };
  const all = viaSvc(cluster([ns('infra', AMBIENT), svc, shared('All')]));
  t.same([all.wire, all.waypoint], ['hbone-via-waypoint', 'infra/shared']);
  const same = viaSvc(cluster([ns('infra', AMBIENT), svc, shared('Same')]));
  t.same([same.wire, same.waypoint], ['hbone', undefined], 'a waypoint of another namespace that admits only its own');
  t.match(same.notes.join('\n'), /Service blue\/httpbin asks for waypoint infra\/shared/);
  const gone = viaSvc(cluster([svc]));
  t.equal(gone.wire, 'hbone');
  t.match(gone.notes.join('\n'), /Service blue\/httpbin asks for waypoint infra\/shared .* which does not exist/);
});
