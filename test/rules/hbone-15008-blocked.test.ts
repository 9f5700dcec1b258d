import t from 'tap';
import { rule } from '../../src/rules/hbone-15008-blocked.ts';
import { baseCluster, ccnp, ciliumConfigMap, cnp, HEALTHY_CILIUM_CONFIG, memoryState, netpol, ns, pod } from '../fixtures/cluster.ts';
import { DEFAULT_SETTINGS, makeChange, runRule } from './rule-harness.ts';

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
  t.equal(findings.length, 1);
  const f = findings[0]!;
  t.equal(f.rule, 'hbone-15008-blocked');
  t.notOk(f.preexisting);
  t.match(f.message, /CiliumNetworkPolicy demo\/hello-app-ingress: 2 ambient pods admit mesh peers but not TCP 15008/);
  t.match(f.message, /app=hello-gateway/);
  t.match(f.message, /pods app=hello-gateway: allowed on 8000, not on 15008/);
  t.same(f.victims, ['demo/hello-app-1', 'demo/hello-app-2']);
  t.equal(f.victimCount, 2);
  t.match(f.fix, /port: "15008", protocol: TCP/);
  t.match(f.fix, /CiliumNetworkPolicy demo\/hello-app-ingress/);
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
  t.equal(f.length, 1, 'sidecar clients reach ambient pods over HBONE too');
});

t.test('a deny-all ingress admits no mesh peer: nothing HBONE-specific to report', async (t) => {
  const denyAll = cnp('demo', 'deny-all', { endpointSelector: {}, ingress: [{}] });
  t.same(runRule(rule, baseCluster(demo), 'CREATE', denyAll).findings, []);
});

t.test('NetworkPolicy: a named port without 15008 is denied; with 15008 admitted', async (t) => {
  const np = (ports: Record<string, unknown>[]) =>
    netpol('demo', 'hello-np', { podSelector: { matchLabels: { app: 'hello-app' } }, ingress: [{ from: [{ podSelector: {} }], ports }] });
  const bad = runRule(rule, baseCluster(demo), 'CREATE', np([{ port: 'http' }])).findings;
  t.equal(bad.length, 1);
  t.match(bad[0]!.message, /allowed on 8000/);
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
  t.equal(f.length, 1);
  t.match(f[0]!.message, /app=postgres/);
});

t.test('pre-existing: re-applying the same broken policy is only a warning', async (t) => {
  const relabelled = { ...onlyApp, metadata: { ...onlyApp.metadata, labels: { team: 'a' } } };
  const { findings } = runRule(rule, baseCluster([...demo, onlyApp]), 'UPDATE', relabelled);
  t.equal(findings.length, 1);
  t.equal(findings[0]!.preexisting, true);
});

t.test('enrolling a namespace into ambient under an existing app-port-only policy is denied', async (t) => {
  const { findings } = runRule(rule, baseCluster([...plainDemo, onlyApp]), 'UPDATE', ns('demo', AMBIENT));
  t.equal(findings.length, 1);
  t.notOk(findings[0]!.preexisting);
  t.match(findings[0]!.message, /^Namespace demo: 2 ambient pods/);
});

t.test('deleting the HBONE allow while the app policy stays is denied', async (t) => {
  const { findings } = runRule(rule, baseCluster([...demo, onlyApp, hboneForAll]), 'DELETE', hboneForAll);
  t.equal(findings.length, 1);
  t.same(findings[0]!.victims, ['demo/hello-app-1', 'demo/hello-app-2']);
});

t.test('a CCNP selecting an ambient namespace with no live pod uses the synthetic pod', async (t) => {
  const policy = ccnp('new-ns-ingress', {
    endpointSelector: { matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'fresh', app: 'api' } },
    ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'fresh' } }], toPorts: [{ ports: [{ port: '9090', protocol: 'TCP' }] }] }],
  });
  const { findings } = runRule(rule, baseCluster([ns('fresh', AMBIENT)]), 'CREATE', policy);
  t.equal(findings.length, 1);
  t.match(findings[0]!.message, /pods this policy would select/);
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
  t.equal(f.length, 1);
  t.match(f[0]!.message, /arrives from waypoint demo\/waypoint, which is not allowed on 15008/);
  t.match(f[0]!.fix, /gateway\.networking\.k8s\.io\/gateway-name: waypoint/);
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
  t.equal(f.length, 1);
  t.match(f[0]!.message, /io\.kubernetes\.pod\.namespace In shop/);
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
  t.equal(findings.length, 1);
  t.notOk(findings[0]?.preexisting);
  t.same(findings[0]?.victims, ['demo/hello-app-1', 'demo/hello-app-2']);
  t.match(findings[0]?.message ?? '', /^Namespace legacy: 2 ambient pods/);
  // Sidecar injection makes the clients mesh peers as well.
  t.equal(runRule(rule, objs, 'UPDATE', ns('legacy', { 'istio-injection': 'enabled' })).findings.length, 1);
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
  t.equal(f.length, 1);
  t.notOk(f[0]?.preexisting);
  t.same(f[0]?.victims, ['demo/hello-app-1', 'demo/hello-app-2']);
  t.match(f[0]?.message ?? '', /^ConfigMap kube-system\/cilium-config: 2 ambient pods/);
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
  t.equal(f.length, 1);
  t.equal(f[0]?.victimCount, 4);
  t.match(f[0]?.message ?? '', /15008 denied by CiliumClusterwideNetworkPolicy deny-istio-ports/);
  t.match(f[0]?.fix ?? '', /keep TCP 15008 out of the ingressDeny rules of CiliumClusterwideNetworkPolicy deny-istio-ports/);
  // The same deny in default-allow mode (enableDefaultDeny.ingress: false) drops HBONE just as well.
  const guardOnly = ccnp('deny-istio-ports', {
    endpointSelector: { matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'demo' } },
    enableDefaultDeny: { ingress: false },
    ingressDeny: [{ fromEntities: ['cluster'], toPorts: [{ ports: [{ port: '15000', endPort: 15100, protocol: 'TCP' }] }] }],
  });
  t.equal(runRule(rule, baseCluster(demo), 'CREATE', guardOnly).findings.length, 1);
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
  t.equal(f.length, 1);
  t.same(f[0]?.victims, ['demo/hello-app-1', 'demo/hello-app-2']);
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
  t.equal(f.length, 1);
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
  t.equal(f.length, 1);
  t.notOk(f[0]?.preexisting);
  t.match(f[0]?.message ?? '', /app=hello-gateway/);
  // Re-applying it unchanged only repeats the postgres problem.
  const same = runRule(rule, baseCluster([...demo, old]), 'UPDATE', old).findings;
  t.equal(same[0]?.preexisting, true);
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
    t.equal(f.length, 1, `${what}: still reported`);
    t.equal(f[0]?.preexisting, true, `${what}: a warning, not a denial`);
  }
  // Narrowing a selector that admitted the gateway on 15008 too (HBONE worked) to 8000 only is new.
  const working = cnp('demo', 'hello-app-ingress', {
    endpointSelector: { matchLabels: { app: 'hello-app' } },
    ingress: [{ fromEndpoints: [{ matchLabels: { app: 'hello-gateway' } }], toPorts: [{ ports: [{ port: '8000', protocol: 'TCP' }, { port: '15008', protocol: 'TCP' }] }] }],
  });
  const cut = runRule(rule, baseCluster([ns('demo', AMBIENT), gw, ...demoPods.slice(1), working]), 'UPDATE', edits[2]![2]).findings;
  t.equal(cut.length, 1);
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
  t.equal(f.length, 1);
  t.notOk(f[0]?.preexisting);
  t.same(f[0]?.victims, ['demo/hello-app-1', 'demo/hello-app-2']);
  // ... also when another meshed prod namespace (shop, first in order) was already cut off and stands
  // for the peer: legacy's own pods are what the relabel cuts off.
  const withShop = baseCluster([...demo, ns('aaa-shop', { env: 'prod', ...AMBIENT }), pod('aaa-shop', 's-1', { app: 's' }), ns('legacy', { env: 'prod' }), pod('legacy', 'c-1', { app: 'c' }), np]);
  const g = runRule(rule, withShop, 'UPDATE', ns('legacy', { env: 'prod', ...AMBIENT })).findings;
  t.equal(g.length, 1, 'legacy joining the mesh is still found');
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
  t.equal(f.length, 1, 'an Istio label: demo scanned');
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
