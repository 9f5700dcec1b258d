// hbone-15008-blocked: findings asserted as data (code, params, victims); one golden test per code for the
// wording. More cases as fixtures: src/rules/hbone-15008-blocked/testdata/*.yaml.
import t from 'tap';
import { messages } from '../../src/rules/hbone-15008-blocked/messages.ts';
import { rule, scope } from '../../src/rules/hbone-15008-blocked/index.ts';
import { renderFinding } from '../../src/verdict/render.ts';
import { baseCluster, ccnp, ciliumConfigMap, cnp, HEALTHY_CILIUM_CONFIG, memoryState, netpol, ns, pod } from '../fixtures/cluster.ts';
import { DEFAULT_SETTINGS, makeChange, runRule } from './rule-harness.ts';

const CODE = (kind: string) => `hbone-15008-blocked/${kind}`;
const NEW = CODE('hbone-not-allowed');
const OLD = CODE('hbone-still-not-allowed');
const codes = (f: readonly { code?: string }[]) => f.map((x) => x.code);

// Seed 004: the ambient "demo" namespace with the gateway, hello-app and postgres.
const AMBIENT = { 'istio.io/dataplane-mode': 'ambient' };
const demoPods = [
  pod('demo', 'hello-gateway-1', { app: 'hello-gateway' }, { sa: 'hello-gateway-istio' }),
  pod('demo', 'hello-app-1', { app: 'hello-app' }, { sa: 'hello-app', ports: [{ name: 'http', containerPort: 8000 }] }),
  pod('demo', 'hello-app-2', { app: 'hello-app' }, { sa: 'hello-app', ports: [{ name: 'http', containerPort: 8000 }] }),
  pod('demo', 'postgres-1', { app: 'postgres' }, { sa: 'postgres' }),
];
const demo = [ns('demo', AMBIENT), ...demoPods];
const plainDemo = [ns('demo'), ...demoPods];

const helloIngress = (ports: { port: string; protocol: string }[]) =>
  cnp('demo', 'hello-app-ingress', {
    endpointSelector: { matchLabels: { app: 'hello-app' } },
    ingress: [{ fromEndpoints: [{ matchLabels: { app: 'hello-gateway' } }], toPorts: [{ ports }] }],
  });
const onlyApp = helloIngress([{ port: '8000', protocol: 'TCP' }]);
const withHbone = helloIngress([{ port: '8000', protocol: 'TCP' }, { port: '15008', protocol: 'TCP' }]);
// Seed 004's 01-istio-ambient.yaml idea: one namespace-wide policy opening HBONE from the cluster.
const hboneForAll = cnp('demo', 'istio-ambient-hbone', {
  endpointSelector: {},
  ingress: [{ fromEntities: ['cluster'], toPorts: [{ ports: [{ port: '15008', protocol: 'TCP' }] }] }],
});

t.test('seed 004: an ingress policy on ambient pods without TCP 15008 is denied', async (t) => {
  const { findings } = runRule(rule, baseCluster(demo), 'CREATE', onlyApp);
  t.same(findings, [{
    rule: 'hbone-15008-blocked',
    code: NEW,
    params: {
      subject: 'CiliumNetworkPolicy demo/hello-app-ingress', pods: ['demo/hello-app-1', 'demo/hello-app-2'], podCount: 2, synthetic: false,
      peer: 'pods app=hello-gateway', appPort: 8000, policy: 'CiliumNetworkPolicy demo/hello-app-ingress',
    },
    victims: ['demo/hello-app-1', 'demo/hello-app-2'],
    victimCount: 2,
  }]);
  t.equal(
    renderFinding(findings[0]!, rule.messages).fix,
    'allow ingress on TCP 15008 from the same peers in CiliumNetworkPolicy demo/hello-app-ingress, e.g. add {port: "15008", protocol: TCP} to its toPorts/ports',
  );
});

t.test('seed 004: the same policy with TCP 15008 is admitted', async (t) => {
  t.same(runRule(rule, baseCluster(demo), 'CREATE', withHbone).findings, []);
});

t.test('seed 004: a namespace-wide HBONE allow (fromEntities cluster, 15008) admits the app policy', async (t) => {
  t.same(runRule(rule, baseCluster([...demo, hboneForAll]), 'CREATE', onlyApp).findings, []);
  // A ports-only rule (any peer) on 15008 works too.
  const portsOnly = cnp('demo', 'hbone-any', { endpointSelector: {}, ingress: [{ toPorts: [{ ports: [{ port: '15008', protocol: 'TCP' }] }] }] });
  t.same(runRule(rule, baseCluster([...demo, portsOnly]), 'CREATE', onlyApp).findings, []);
});

t.test('not ambient: the same policy in a plain namespace is fine (traffic arrives on the app port)', async (t) => {
  t.same(runRule(rule, baseCluster(plainDemo), 'CREATE', onlyApp).findings, []);
  // A pod that opts out of ambient redirection.
  const optedOut = [ns('demo', AMBIENT), pod('demo', 'hello-gateway-1', { app: 'hello-gateway' }),
    pod('demo', 'hello-app-1', { app: 'hello-app' }, { annotations: { 'ambient.istio.io/redirection': 'disabled' } })];
  t.same(runRule(rule, baseCluster(optedOut), 'CREATE', onlyApp).findings, []);
});

t.test('peers outside the mesh do not use HBONE', async (t) => {
  // The only admitted peer lives in a namespace that is not in the mesh: it connects in plaintext to 8000.
  const policy = cnp('demo', 'from-legacy', {
    endpointSelector: { matchLabels: { app: 'hello-app' } },
    ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'legacy', app: 'client' } }], toPorts: [{ ports: [{ port: '8000', protocol: 'TCP' }] }] }],
  });
  t.same(runRule(rule, baseCluster([...demo, ns('legacy'), pod('legacy', 'client-1', { app: 'client' })]), 'CREATE', policy).findings, []);
  // ... but a mesh namespace as peer does.
  const meshPeer = cnp('demo', 'from-mesh', {
    endpointSelector: { matchLabels: { app: 'hello-app' } },
    ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'shop', app: 'client' } }], toPorts: [{ ports: [{ port: '8000', protocol: 'TCP' }] }] }],
  });
  const f = runRule(rule, baseCluster([...demo, ns('shop', { 'istio-injection': 'enabled' })]), 'CREATE', meshPeer).findings;
  t.same(codes(f), [NEW], 'sidecar clients reach ambient pods over HBONE too');
});

t.test('a deny-all ingress admits no mesh peer: nothing HBONE-specific to report', async (t) => {
  const denyAll = cnp('demo', 'deny-all', { endpointSelector: {}, ingress: [{}] });
  t.same(runRule(rule, baseCluster(demo), 'CREATE', denyAll).findings, []);
});

t.test('NetworkPolicy: a named port without 15008 is denied; with 15008 admitted', async (t) => {
  const np = (ports: Record<string, unknown>[]) =>
    netpol('demo', 'hello-np', { podSelector: { matchLabels: { app: 'hello-app' } }, ingress: [{ from: [{ podSelector: {} }], ports }] });
  const bad = runRule(rule, baseCluster(demo), 'CREATE', np([{ port: 'http' }])).findings;
  t.same(bad.map((x) => [x.code, x.params?.appPort, x.params?.policy]), [[NEW, 8000, 'NetworkPolicy demo/hello-np']]);
  t.same(runRule(rule, baseCluster(demo), 'CREATE', np([{ port: 'http' }, { port: 15008, protocol: 'TCP' }])).findings, []);
});

t.test('a peer allowed on 15008 only for another client still breaks the others', async (t) => {
  const policy = cnp('demo', 'two-rules', {
    endpointSelector: { matchLabels: { app: 'hello-app' } },
    ingress: [
      { fromEndpoints: [{ matchLabels: { app: 'hello-gateway' } }], toPorts: [{ ports: [{ port: '8000', protocol: 'TCP' }, { port: '15008', protocol: 'TCP' }] }] },
      { fromEndpoints: [{ matchLabels: { app: 'postgres' } }], toPorts: [{ ports: [{ port: '8000', protocol: 'TCP' }] }] },
    ],
  });
  const f = runRule(rule, baseCluster(demo), 'CREATE', policy).findings;
  t.same(f.map((x) => [x.code, x.params?.peer]), [[NEW, 'pods app=postgres']]);
});

t.test('pre-existing: re-applying the same broken policy is only a warning', async (t) => {
  const relabelled = { ...onlyApp, metadata: { ...onlyApp.metadata, labels: { team: 'a' } } };
  const { findings } = runRule(rule, baseCluster([...demo, onlyApp]), 'UPDATE', relabelled);
  t.same(findings.map((x) => [x.code, x.preexisting]), [[OLD, true]]);
});

t.test('enrolling a namespace into ambient under an existing app-port-only policy is denied', async (t) => {
  const { findings } = runRule(rule, baseCluster([...plainDemo, onlyApp]), 'UPDATE', ns('demo', AMBIENT));
  t.same(findings.map((x) => [x.code, x.params?.subject, x.params?.podCount, x.preexisting]), [[NEW, 'Namespace demo', 2, undefined]]);
});

t.test('deleting the HBONE allow while the app policy stays is denied', async (t) => {
  const { findings } = runRule(rule, baseCluster([...demo, onlyApp, hboneForAll]), 'DELETE', hboneForAll);
  t.same(findings.map((x) => [x.code, x.params?.subject, x.victims]), [[NEW, 'CiliumNetworkPolicy demo/istio-ambient-hbone', ['demo/hello-app-1', 'demo/hello-app-2']]]);
});

t.test('a CCNP selecting an ambient namespace with no live pod uses the synthetic pod', async (t) => {
  const policy = ccnp('new-ns-ingress', {
    endpointSelector: { matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'fresh', app: 'api' } },
    ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'fresh' } }], toPorts: [{ ports: [{ port: '9090', protocol: 'TCP' }] }] }],
  });
  const { findings } = runRule(rule, baseCluster([ns('fresh', AMBIENT)]), 'CREATE', policy);
  t.same(findings.map((x) => [x.code, x.params?.synthetic, x.params?.podCount]), [[NEW, true, 1]]);
});

t.test('odd input never throws', async (t) => {
  const weird = cnp('demo', 'weird', { endpointSelector: 'nope', ingress: 'x' } as unknown as Record<string, unknown>);
  t.same(runRule(rule, baseCluster(demo), 'CREATE', weird).findings, []);
});

t.test('behind a waypoint, service traffic arrives from the waypoint pods on 15008', async (t) => {
  const waypoint = {
    apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'waypoint', namespace: 'demo' },
    spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] },
  };
  const wpPod = pod('demo', 'waypoint-6d9c', { 'gateway.networking.k8s.io/gateway-name': 'waypoint', 'istio.io/dataplane-mode': 'none' });
  const cluster = baseCluster([ns('demo', { ...AMBIENT, 'istio.io/use-waypoint': 'waypoint' }), ...demoPods, waypoint, wpPod]);
  // The gateway is admitted on 8000 and 15008, but its traffic reaches hello-app through the waypoint.
  const f = runRule(rule, cluster, 'CREATE', withHbone).findings;
  t.same(f.map((x) => [x.code, x.params?.waypoint, x.preexisting]), [[CODE('waypoint-not-allowed'), 'demo/waypoint', undefined]]);
  t.equal(
    renderFinding(f[0]!, rule.messages).fix,
    "allow ingress on TCP 15008 from the waypoint's pods (gateway.networking.k8s.io/gateway-name: waypoint) in CiliumNetworkPolicy demo/hello-app-ingress",
  );
  // Admitting the waypoint's pods on 15008 fixes it.
  const withWaypoint = cnp('demo', 'hello-app-ingress', {
    endpointSelector: { matchLabels: { app: 'hello-app' } },
    ingress: [
      { fromEndpoints: [{ matchLabels: { app: 'hello-gateway' } }], toPorts: [{ ports: [{ port: '8000', protocol: 'TCP' }, { port: '15008', protocol: 'TCP' }] }] },
      { fromEndpoints: [{ matchLabels: { 'gateway.networking.k8s.io/gateway-name': 'waypoint' } }], toPorts: [{ ports: [{ port: '15008', protocol: 'TCP' }] }] },
    ],
  });
  t.same(runRule(rule, cluster, 'CREATE', withWaypoint).findings, []);
  // A namespace-wide HBONE allow covers the waypoint too; without the waypoint binding, the first policy is fine.
  t.same(runRule(rule, [...cluster, hboneForAll], 'CREATE', withHbone).findings, []);
  t.same(runRule(rule, baseCluster([...demo, waypoint, wpPod]), 'CREATE', withHbone).findings, []);
});

t.test('a peer pinned to a namespace by matchExpressions is represented in that namespace', async (t) => {
  const policy = cnp('demo', 'from-shop', {
    endpointSelector: { matchLabels: { app: 'hello-app' } },
    ingress: [{
      fromEndpoints: [{ matchExpressions: [{ key: 'k8s:io.kubernetes.pod.namespace', operator: 'In', values: ['shop'] }] }],
      toPorts: [{ ports: [{ port: '8000', protocol: 'TCP' }] }],
    }],
  });
  const f = runRule(rule, baseCluster([...demo, ns('shop', AMBIENT)]), 'CREATE', policy).findings;
  t.same(codes(f), [NEW]);
  t.match(f[0]!.params?.peer, /io\.kubernetes\.pod\.namespace In shop/, 'the peer is described by its selector');
  // The same peer in a namespace outside the mesh connects in plaintext: fine.
  t.same(runRule(rule, baseCluster([...demo, ns('shop')]), 'CREATE', policy).findings, []);
});

t.test('enrolling a peer namespace into the mesh breaks the destinations that admit it on the app port only', async (t) => {
  // hello-app (ambient) admits the clients of namespace legacy on 8000. While legacy is outside the mesh
  // they connect in plaintext to 8000; once legacy joins ambient (or gets sidecars) their traffic
  // arrives over HBONE on 15008, which the policy does not admit: the relabel breaks demo, not legacy.
  const policy = cnp('demo', 'from-legacy', {
    endpointSelector: { matchLabels: { app: 'hello-app' } },
    ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'legacy', app: 'client' } }], toPorts: [{ ports: [{ port: '8000', protocol: 'TCP' }] }] }],
  });
  const objs = baseCluster([...demo, ns('legacy'), pod('legacy', 'client-1', { app: 'client' }), policy]);
  const { findings } = runRule(rule, objs, 'UPDATE', ns('legacy', AMBIENT));
  t.same(findings.map((x) => [x.code, x.params?.subject, x.params?.podCount, x.victims, x.preexisting]), [
    [NEW, 'Namespace legacy', 2, ['demo/hello-app-1', 'demo/hello-app-2'], undefined],
  ]);
  // Sidecar injection makes the clients mesh peers as well.
  t.same(codes(runRule(rule, objs, 'UPDATE', ns('legacy', { 'istio-injection': 'enabled' })).findings), [NEW]);
  // A label nothing reads there changes nothing (see also the next test).
  t.same(runRule(rule, objs, 'UPDATE', ns('legacy', { team: 'x' })).findings, []);
});

t.test('cilium-config turning enable-non-default-deny-policies off makes an app-port-only allow enforce: denied', async (t) => {
  t.ok(rule.triggers.some((tr) => tr.kinds.includes('ConfigMap') && tr.operations.includes('UPDATE')), 'cilium-config is a trigger');
  // enableDefaultDeny.ingress: false keeps the pods in default allow (its allow is redundant) while the
  // flag is on; with the flag off the agent ignores enableDefaultDeny and the section enforces.
  const nonDefault = cnp('demo', 'hello-app-ingress', {
    endpointSelector: { matchLabels: { app: 'hello-app' } },
    enableDefaultDeny: { ingress: false },
    ingress: [{ fromEndpoints: [{ matchLabels: { app: 'hello-gateway' } }], toPorts: [{ ports: [{ port: '8000', protocol: 'TCP' }] }] }],
  });
  const off = ciliumConfigMap({ ...HEALTHY_CILIUM_CONFIG, 'enable-non-default-deny-policies': 'false' });
  const f = runRule(rule, baseCluster([...demo, nonDefault]), 'UPDATE', off).findings;
  t.same(f.map((x) => [x.code, x.params?.subject, x.victims, x.preexisting]), [
    [NEW, 'ConfigMap kube-system/cilium-config', ['demo/hello-app-1', 'demo/hello-app-2'], undefined],
  ]);
  // Already broken before (an enforcing app-port-only policy): not repeated on a config change.
  t.same(runRule(rule, baseCluster([...demo, onlyApp]), 'UPDATE', off).findings, []);
});

t.test('an ingressDeny covering 15008 breaks HBONE from peers admitted on every port', async (t) => {
  // A hardening rule against the Envoy/Istio ports (15000-15100) next to an allow of the whole cluster:
  // app traffic is admitted on every port, but HBONE on 15008 is denied.
  const guard = ccnp('deny-istio-ports', {
    endpointSelector: { matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'demo' } },
    ingress: [{ fromEntities: ['cluster'] }],
    ingressDeny: [{ fromEntities: ['cluster'], toPorts: [{ ports: [{ port: '15000', endPort: 15100, protocol: 'TCP' }] }] }],
  });
  const f = runRule(rule, baseCluster(demo), 'CREATE', guard).findings;
  t.same(f.map((x) => [x.code, x.victimCount, x.params?.deniedBy]), [[CODE('hbone-denied'), 4, ['CiliumClusterwideNetworkPolicy deny-istio-ports']]]);
  // The fix narrows the deny element (split its port range around 15008); an allow would change nothing.
  t.same([f[0]!.params?.denies, f[0]!.params?.denyPorts], [['CiliumClusterwideNetworkPolicy deny-istio-ports ingressDeny[0]'], ['15000-15100/TCP']]);
  t.match(renderFinding(f[0]!, rule.messages).fix, 'split its toPorts range 15000-15100/TCP around 15008 (15000-15007/TCP and 15009-15100/TCP)');
  // The same deny in default-allow mode (enableDefaultDeny.ingress: false) drops HBONE just as well.
  const guardOnly = ccnp('deny-istio-ports', {
    endpointSelector: { matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'demo' } },
    enableDefaultDeny: { ingress: false },
    ingressDeny: [{ fromEntities: ['cluster'], toPorts: [{ ports: [{ port: '15000', endPort: 15100, protocol: 'TCP' }] }] }],
  });
  t.same(codes(runRule(rule, baseCluster(demo), 'CREATE', guardOnly).findings), [CODE('hbone-denied')]);
  // A deny that spares 15008 is fine.
  const spares = ccnp('deny-istio-ports', {
    endpointSelector: { matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'demo' } },
    ingress: [{ fromEntities: ['cluster'] }],
    ingressDeny: [{ fromEntities: ['cluster'], toPorts: [{ ports: [{ port: '15000', protocol: 'TCP' }] }] }],
  });
  t.same(runRule(rule, baseCluster(demo), 'CREATE', spares).findings, []);
});

t.test('a namespaceSelector peer matching several namespaces is represented by a meshed one', async (t) => {
  // Clients of every env=prod namespace are admitted on 8000; legacy (first in order) is outside the
  // mesh, but shop is ambient: its pods arrive on 15008 and are dropped.
  const np = netpol('demo', 'from-prod', {
    podSelector: { matchLabels: { app: 'hello-app' } },
    ingress: [{ from: [{ namespaceSelector: { matchLabels: { env: 'prod' } } }], ports: [{ port: 8000, protocol: 'TCP' }] }],
  });
  const objs = baseCluster([...demo, ns('aaa-legacy', { env: 'prod' }), ns('shop', { env: 'prod', ...AMBIENT })]);
  const f = runRule(rule, objs, 'CREATE', np).findings;
  t.same(f.map((x) => [x.code, x.victims]), [[NEW, ['demo/hello-app-1', 'demo/hello-app-2']]]);
  // Only non-mesh namespaces match: plaintext to 8000, nothing to report.
  const plain = baseCluster([...demo, ns('aaa-legacy', { env: 'prod' }), ns('shop', { env: 'prod' })]);
  t.same(runRule(rule, plain, 'CREATE', np).findings, []);
});

t.test('a peer pinned to several namespaces by In is represented by a meshed one', async (t) => {
  const policy = cnp('demo', 'from-legacy-and-shop', {
    endpointSelector: { matchLabels: { app: 'hello-app' } },
    ingress: [{
      fromEndpoints: [{ matchExpressions: [{ key: 'k8s:io.kubernetes.pod.namespace', operator: 'In', values: ['legacy', 'shop'] }] }],
      toPorts: [{ ports: [{ port: '8000', protocol: 'TCP' }] }],
    }],
  });
  const f = runRule(rule, baseCluster([...demo, ns('legacy'), ns('shop', AMBIENT)]), 'CREATE', policy).findings;
  t.same(codes(f), [NEW]);
  t.same(runRule(rule, baseCluster([...demo, ns('legacy'), ns('shop')]), 'CREATE', policy).findings, []);
});

t.test('a peer that loses HBONE is new breakage even when another peer was already cut off', async (t) => {
  // postgres was already admitted on 8000 only (broken); the update takes 15008 away from the gateway,
  // whose mesh traffic worked until now.
  const rules = (gatewayPorts: { port: string; protocol: string }[]) =>
    cnp('demo', 'two-rules', {
      endpointSelector: { matchLabels: { app: 'hello-app' } },
      ingress: [
        { fromEndpoints: [{ matchLabels: { app: 'hello-gateway' } }], toPorts: [{ ports: gatewayPorts }] },
        { fromEndpoints: [{ matchLabels: { app: 'postgres' } }], toPorts: [{ ports: [{ port: '8000', protocol: 'TCP' }] }] },
      ],
    });
  const old = rules([{ port: '8000', protocol: 'TCP' }, { port: '15008', protocol: 'TCP' }]);
  const f = runRule(rule, baseCluster([...demo, old]), 'UPDATE', rules([{ port: '8000', protocol: 'TCP' }])).findings;
  t.same(f.map((x) => [x.code, x.params?.peer, x.preexisting]), [[NEW, 'pods app=hello-gateway', undefined]]);
  // Re-applying it unchanged only repeats the postgres problem.
  const same = runRule(rule, baseCluster([...demo, old]), 'UPDATE', old).findings;
  t.same(same.map((x) => [x.code, x.params?.peer, x.preexisting]), [[OLD, 'pods app=postgres', true]]);
});

t.test('an already cut-off peer rewritten, narrowed or copied into a new policy is no new breakage', async (t) => {
  // hello-app admits the gateway on 8000 only: its HBONE traffic was already dropped (a warning). Edits
  // that keep dropping it stop no working traffic, whatever the selector text or the policy name.
  const ingFrom = (name: string, from: Record<string, unknown>) =>
    cnp('demo', name, {
      endpointSelector: { matchLabels: { app: 'hello-app' } },
      ingress: [{ fromEndpoints: [from], toPorts: [{ ports: [{ port: '8000', protocol: 'TCP' }] }] }],
    });
  const old = ingFrom('hello-app-ingress', { matchLabels: { app: 'hello-gateway', tier: 'edge' } });
  const gw = pod('demo', 'hello-gateway-1', { app: 'hello-gateway', tier: 'edge', version: 'v1' }, { sa: 'hello-gateway-istio' });
  const objs = baseCluster([ns('demo', AMBIENT), gw, ...demoPods.slice(1), old]);
  const edits: [string, 'CREATE' | 'UPDATE', ReturnType<typeof cnp>][] = [
    ['re-apply', 'UPDATE', old],
    ['keys reordered', 'UPDATE', ingFrom('hello-app-ingress', { matchLabels: { tier: 'edge', app: 'hello-gateway' } })],
    ['narrowed', 'UPDATE', ingFrom('hello-app-ingress', { matchLabels: { app: 'hello-gateway', tier: 'edge', version: 'v1' } })],
    ['own namespace key added', 'UPDATE', ingFrom('hello-app-ingress', { matchLabels: { app: 'hello-gateway', tier: 'edge', 'k8s:io.kubernetes.pod.namespace': 'demo' } })],
    ['copied under a new name', 'CREATE', ingFrom('hello-app-ingress-v2', { matchLabels: { app: 'hello-gateway', tier: 'edge' } })],
  ];
  for (const [what, op, obj] of edits) {
    const f = runRule(rule, objs, op, obj).findings;
    t.same(codes(f), [OLD], `${what}: still reported`);
    t.equal(f[0]?.preexisting, true, `${what}: a warning, not a denial`);
  }
  // Narrowing a selector that admitted the gateway on 15008 too (HBONE worked) to 8000 only is new.
  const working = cnp('demo', 'hello-app-ingress', {
    endpointSelector: { matchLabels: { app: 'hello-app' } },
    ingress: [{ fromEndpoints: [{ matchLabels: { app: 'hello-gateway' } }], toPorts: [{ ports: [{ port: '8000', protocol: 'TCP' }, { port: '15008', protocol: 'TCP' }] }] }],
  });
  const cut = runRule(rule, baseCluster([ns('demo', AMBIENT), gw, ...demoPods.slice(1), working]), 'UPDATE', edits[2]![2]).findings;
  t.same(codes(cut), [NEW]);
  t.notOk(cut[0]?.preexisting, 'HBONE that worked is cut off: denied');
});

t.test('labelling an already-ambient namespace into a peer selector cuts off nothing that worked', async (t) => {
  // hello-app admits env=prod namespaces on 8000 only. legacy (outside the mesh) is the only prod
  // namespace: its plaintext traffic to 8000 works before and after. shop is ambient already: its pods
  // are not admitted before the relabel and still dropped (on 15008) after it.
  const np = netpol('demo', 'from-prod', {
    podSelector: { matchLabels: { app: 'hello-app' } },
    ingress: [{ from: [{ namespaceSelector: { matchLabels: { env: 'prod' } } }], ports: [{ port: 8000, protocol: 'TCP' }] }],
  });
  const objs = baseCluster([...demo, ns('legacy', { env: 'prod' }), pod('legacy', 'c-1', { app: 'c' }), ns('shop', AMBIENT), pod('shop', 's-1', { app: 's' }), np]);
  t.same(runRule(rule, objs, 'UPDATE', ns('shop', { ...AMBIENT, env: 'prod' })).findings, []);
  // legacy joining the mesh does cut off traffic that worked (plaintext on 8000, now HBONE on 15008).
  const f = runRule(rule, objs, 'UPDATE', ns('legacy', { env: 'prod', ...AMBIENT })).findings;
  t.same(f.map((x) => [x.code, x.victims, x.preexisting]), [[NEW, ['demo/hello-app-1', 'demo/hello-app-2'], undefined]]);
  // ... also when another meshed prod namespace (shop, first in order) was already cut off and stands
  // for the peer: legacy's own pods are what the relabel cuts off.
  const withShop = baseCluster([...demo, ns('aaa-shop', { env: 'prod', ...AMBIENT }), pod('aaa-shop', 's-1', { app: 's' }), ns('legacy', { env: 'prod' }), pod('legacy', 'c-1', { app: 'c' }), np]);
  const g = runRule(rule, withShop, 'UPDATE', ns('legacy', { env: 'prod', ...AMBIENT })).findings;
  t.same(codes(g), [NEW], 'legacy joining the mesh is still found');
  t.notOk(g[0]?.preexisting);
});

t.test('a namespace label that neither the mesh nor any peer selector reads does not scan other namespaces', async (t) => {
  // With consistent states such a label can change no verdict anywhere, so whether other namespaces are
  // scanned is invisible in the findings. These states differ by more than the label (HBONE from the
  // ambient clients of legacy worked before and is dropped after), so a scan would report demo: the
  // skip (which spares a cluster-wide scan on every owner or cost-centre label) is what keeps it quiet.
  const policy = (ports: { port: string; protocol: string }[]) =>
    cnp('demo', 'from-legacy', {
      endpointSelector: { matchLabels: { app: 'hello-app' } },
      ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'legacy', app: 'client' } }], toPorts: [{ ports }] }],
    });
  const cluster = (ports: { port: string; protocol: string }[]) =>
    memoryState(baseCluster([...demo, ns('legacy', AMBIENT), pod('legacy', 'client-1', { app: 'client' }), policy(ports)]));
  const before = cluster([{ port: '8000', protocol: 'TCP' }, { port: '15008', protocol: 'TCP' }]);
  const after = cluster([{ port: '8000', protocol: 'TCP' }]);
  const ctx = { settings: DEFAULT_SETTINGS };
  const relabel = (labels: Record<string, string>) => rule.evaluate(makeChange('UPDATE', ns('legacy', { ...AMBIENT, ...labels }), ns('legacy', AMBIENT)), before, after, ctx);
  t.same(relabel({ team: 'x' }), [], 'team=x: demo not scanned');
  // An Istio label is scanned for: the same states then show demo losing legacy's HBONE traffic.
  const f = relabel({ 'istio.io/tag': 'x' });
  t.same(codes(f), [NEW], 'an Istio label: demo scanned');
  t.same(f[0]?.victims, ['demo/hello-app-1', 'demo/hello-app-2']);
});

t.test('a peer matching the destination\'s own namespace is represented there only when it is meshed', async (t) => {
  // hello-app is enrolled by its pod label in a namespace outside the mesh: the namespace's other pods
  // connect in plaintext, but the ambient pods of shop, which the same peer admits, arrive on 15008.
  const plainNs = [ns('plain', { env: 'prod' }), pod('plain', 'hello-app-1', { app: 'hello-app', ...AMBIENT }, { ports: [{ name: 'http', containerPort: 8000 }] })];
  const objs = baseCluster([...plainNs, ns('shop', { env: 'prod', ...AMBIENT })]);
  const byIn = cnp('plain', 'from-plain-and-shop', {
    endpointSelector: { matchLabels: { app: 'hello-app' } },
    ingress: [{
      fromEndpoints: [{ matchExpressions: [{ key: 'k8s:io.kubernetes.pod.namespace', operator: 'In', values: ['plain', 'shop'] }] }],
      toPorts: [{ ports: [{ port: '8000', protocol: 'TCP' }] }],
    }],
  });
  t.same(runRule(rule, objs, 'CREATE', byIn).findings[0]?.victims, ['plain/hello-app-1'], 'In: shop stands for the peer');
  const bySelector = netpol('plain', 'from-prod', {
    podSelector: { matchLabels: { app: 'hello-app' } },
    ingress: [{ from: [{ namespaceSelector: { matchLabels: { env: 'prod' } } }], ports: [{ port: 8000, protocol: 'TCP' }] }],
  });
  t.same(runRule(rule, objs, 'CREATE', bySelector).findings[0]?.victims, ['plain/hello-app-1'], 'namespaceSelector: shop stands for the peer');
  // With shop outside the mesh too, every admitted client connects in plaintext: nothing to report.
  const allPlain = baseCluster([...plainNs, ns('shop', { env: 'prod' })]);
  t.same(runRule(rule, allPlain, 'CREATE', byIn).findings, []);
  t.same(runRule(rule, allPlain, 'CREATE', bySelector).findings, []);
});

t.test('pre-existing variants: a deny or a waypoint that already dropped HBONE only warns on an unrelated edit', async (t) => {
  const guard = ccnp('deny-istio-ports', {
    endpointSelector: { matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'demo' } },
    ingress: [{ fromEntities: ['cluster'] }],
    ingressDeny: [{ fromEntities: ['cluster'], toPorts: [{ ports: [{ port: '15000', endPort: 15100, protocol: 'TCP' }] }] }],
  });
  const relabelled = { ...guard, metadata: { ...guard.metadata, labels: { team: 'a' } } };
  const d = runRule(rule, baseCluster([...demo, guard]), 'UPDATE', relabelled).findings;
  t.same(d.map((x) => [x.code, x.preexisting, x.params?.deniedBy]), [[CODE('hbone-still-denied'), true, ['CiliumClusterwideNetworkPolicy deny-istio-ports']]]);
  const waypoint = {
    apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'waypoint', namespace: 'demo' },
    spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] },
  };
  const wpPod = pod('demo', 'waypoint-6d9c', { 'gateway.networking.k8s.io/gateway-name': 'waypoint', 'istio.io/dataplane-mode': 'none' });
  const cluster = baseCluster([ns('demo', { ...AMBIENT, 'istio.io/use-waypoint': 'waypoint' }), ...demoPods, waypoint, wpPod, withHbone]);
  const again = { ...withHbone, metadata: { ...withHbone.metadata, labels: { team: 'a' } } };
  const w = runRule(rule, cluster, 'UPDATE', again).findings;
  t.same(w.map((x) => [x.code, x.preexisting, x.params?.waypoint]), [[CODE('waypoint-still-not-allowed'), true, 'demo/waypoint']]);
});

t.test('scope: from the request alone', async (t) => {
  t.same(scope(makeChange('CREATE', onlyApp)), { by: 'policy', subject: 'CiliumNetworkPolicy demo/hello-app-ingress' });
  t.same(scope(makeChange('DELETE', undefined, hboneForAll)), { by: 'policy', subject: 'CiliumNetworkPolicy demo/istio-ambient-hbone' });
  t.same(scope(makeChange('UPDATE', ciliumConfigMap(HEALTHY_CILIUM_CONFIG))), { by: 'cilium-config', subject: 'ConfigMap kube-system/cilium-config' });
  t.same(scope(makeChange('UPDATE', ns('demo', AMBIENT), ns('demo'))), { by: 'namespace', subject: 'Namespace demo', namespace: 'demo', changedKeys: ['istio.io/dataplane-mode'] });
  t.equal(scope(makeChange('UPDATE', ns('demo', AMBIENT), ns('demo', AMBIENT))), undefined, 'labels unchanged');
  t.equal(scope(makeChange('CREATE', ns('demo', AMBIENT))), undefined, 'a new namespace has no pods yet');
});

// Golden wording, one per code: the text users read in kubectl, check and audit (unchanged by the move to codes).
t.test('wording', async (t) => {
  const say = (f: ReturnType<typeof messages.finding>) => renderFinding(f, rule.messages);
  const p = {
    subject: 'CiliumNetworkPolicy demo/x', pods: ['demo/a-1', 'demo/a-2', 'demo/a-3'], podCount: 6, synthetic: false,
    peer: 'pods app=gw', appPort: 8000, policy: 'CiliumNetworkPolicy demo/x',
  };
  const head = 'CiliumNetworkPolicy demo/x: 6 ambient pods admit mesh peers but not TCP 15008 (HBONE)';
  const tail = '; ztunnel traffic to them is dropped: demo/a-1, demo/a-2, demo/a-3 and 3 more';
  const allow = 'allow ingress on TCP 15008 from the same peers in CiliumNetworkPolicy demo/x, e.g. add {port: "15008", protocol: TCP} to its toPorts/ports';
  t.same(say(messages.finding('hbone-not-allowed', p)), { message: `${head} (e.g. pods app=gw: allowed on 8000, not on 15008)${tail}`, fix: allow });
  t.same(say(messages.finding('hbone-still-not-allowed', { ...p, subject: 'Namespace demo', pods: ['demo/a-1'], podCount: 1, synthetic: true })), {
    message: 'Namespace demo: 1 ambient pod (pods this policy would select) admit mesh peers but not TCP 15008 (HBONE) (e.g. pods app=gw: allowed on 8000, not on 15008); ztunnel traffic to them is dropped: demo/a-1',
    fix: allow,
  });
  const deniedBy = ['CiliumClusterwideNetworkPolicy g1', 'CiliumNetworkPolicy demo/g2'];
  const denyFix = 'keep TCP 15008 out of the ingressDeny rules of CiliumClusterwideNetworkPolicy g1, CiliumNetworkPolicy demo/g2 for these pods (mesh traffic arrives on it)';
  const denied = `${head} (e.g. pods app=gw: allowed on 8000, 15008 denied by CiliumClusterwideNetworkPolicy g1, CiliumNetworkPolicy demo/g2)${tail}`;
  // Without the elements (none known), the policies are named as before.
  const noElements = { denies: [], denyPeers: [], denyValues: [], denyPorts: [], defaultPods: [], defaultPodCount: 0 };
  t.same(say(messages.finding('hbone-denied', { ...p, deniedBy, ...noElements })), { message: denied, fix: denyFix });
  const elements = { ...noElements, denies: ['CiliumClusterwideNetworkPolicy g1 ingressDeny[2]'], denyPeers: ['endpoints'], denyValues: ['app=gw'], denyPorts: ['15008/TCP'] };
  t.same(say(messages.finding('hbone-still-denied', { ...p, deniedBy: [deniedBy[0]!], ...elements })), {
    message: `${head} (e.g. pods app=gw: allowed on 8000, 15008 denied by CiliumClusterwideNetworkPolicy g1 ingressDeny[2] (fromEndpoints app=gw, on 15008/TCP))${tail}`,
    fix:
      'narrow CiliumClusterwideNetworkPolicy g1 ingressDeny[2]: narrow its fromEndpoints selector (app=gw) so it no longer selects the mesh peers (e.g. pods app=gw), whose traffic arrives over HBONE, ' +
      'or drop 15008/TCP from its toPorts (15008/TCP), or remove the element (an allow does not help: a Cilium deny wins over every allow)',
  });
  const wp = `${head} (service traffic arrives from waypoint demo/wp, which is not allowed on 15008)${tail}`;
  const wpFix = "allow ingress on TCP 15008 from the waypoint's pods (gateway.networking.k8s.io/gateway-name: wp) in CiliumNetworkPolicy demo/x";
  t.same(say(messages.finding('waypoint-not-allowed', { ...p, waypoint: 'demo/wp' })), { message: wp, fix: wpFix });
  t.same(say(messages.finding('waypoint-still-not-allowed', { ...p, waypoint: 'demo/wp' })), { message: wp, fix: wpFix });
  const wpDenied = `${head} (service traffic arrives from waypoint demo/wp, whose 15008 is denied by CiliumClusterwideNetworkPolicy g1 ingressDeny[2] (fromEndpoints app=gw, on 15008/TCP), which no allow overrides)${tail}`;
  const wpDenyFix =
    "narrow CiliumClusterwideNetworkPolicy g1 ingressDeny[2]: narrow its fromEndpoints selector (app=gw) so it no longer selects the waypoint's pods (gateway.networking.k8s.io/gateway-name: wp), " +
    'or drop 15008/TCP from its toPorts (15008/TCP), or remove the element (an allow does not help: a Cilium deny wins over every allow)';
  t.same(say(messages.finding('waypoint-denied', { ...p, waypoint: 'demo/wp', deniedBy: [deniedBy[0]!], ...elements })), { message: wpDenied, fix: wpDenyFix });
  t.same(say(messages.finding('waypoint-still-denied', { ...p, waypoint: 'demo/wp', deniedBy: [deniedBy[0]!], ...elements })), { message: wpDenied, fix: wpDenyFix });
  t.same(messages.codes.length, 8, 'one golden test per code');
});
