// The mesh path of a connection (src/policy/mesh-path.ts): the 5-tuples Cilium really enforces when
// ztunnel, a waypoint or a sidecar carries the traffic, beside Istio's authorization, and which layer
// decides. Built from Istio's and Cilium's docs:
//   https://istio.io/latest/docs/ambient/architecture/data-plane/ (HBONE between the pods, from the
//     source pod's own network namespace; waypoints; sources outside the mesh skip waypoints)
//   https://istio.io/latest/docs/ambient/usage/l4-policy/ (allow-curl-to-httpbin; an L7 policy at
//     ztunnel denies; behind a waypoint the destination's ztunnel sees the waypoint's identity)
//   https://istio.io/latest/docs/ambient/usage/waypoint/ (istio.io/use-waypoint, istio.io/waypoint-for)
//   https://docs.cilium.io/en/stable/network/servicemesh/istio/ (Cilium with Istio; policy at the pod's
//     interface sees the application port for sidecars)

import t from 'tap';
import { meshPath } from '../../src/policy/mesh-path.ts';
import { istioStringMatch } from '../../src/policy/authz.ts';
import { principalOf } from '../../src/policy/istio.ts';
import { authzPolicy, baseCluster, cnp, findPod, memoryState, netpol, ns, peerAuth, pod, type Obj } from '../fixtures/cluster.ts';

const AMBIENT = { 'istio.io/dataplane-mode': 'ambient' };
const HTTPBIN_PORTS = [{ name: 'http', containerPort: 80, protocol: 'TCP' }];

/** red and blue in ambient (the case), red/netshoot and red/curl clients, blue/httpbin serving 80. */
function ambientCluster(extra: Obj[] = [], blueLabels: Record<string, string> = {}): Obj[] {
  return baseCluster([
    ns('red', AMBIENT),
    ns('blue', { ...AMBIENT, ...blueLabels }),
    pod('red', 'netshoot', { app: 'netshoot' }, { sa: 'netshoot', ip: '10.0.1.5' }),
    pod('red', 'curl', { app: 'curl' }, { sa: 'curl', ip: '10.0.1.6' }),
    pod('blue', 'httpbin', { app: 'httpbin' }, { sa: 'httpbin', ports: HTTPBIN_PORTS, ip: '10.0.2.5' }),
    ...extra,
  ]);
}

/** blue/httpbin admits red only on HBONE, as Cilium's ambient examples do; port 80 is never allowed. */
const hboneOnly = cnp('blue', 'allow-hbone-from-red', {
  endpointSelector: { matchLabels: { app: 'httpbin' } },
  ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'red' } }], toPorts: [{ ports: [{ port: '15008', protocol: 'TCP' }] }] }],
});

function trace(objs: Obj[], from: string, to: string, port = 80, protocol: 'TCP' | 'UDP' = 'TCP') {
  const s = memoryState(objs);
  return meshPath(s, findPod(s, from), { type: 'pod', pod: findPod(s, to) }, port, protocol);
}

t.test('the issue: ambient -> ambient on 80 is HBONE on 15008, allowed while port 80 alone is denied', async (t) => {
  const m = trace(ambientCluster([hboneOnly]), 'red/netshoot', 'blue/httpbin');
  t.ok(m);
  t.equal(m!.wire, 'hbone');
  t.equal(m!.hops.length, 1);
  const h = m!.hops[0]!;
  t.same([h.fromIp, h.toIp, h.port, h.protocol, h.kind], ['10.0.1.5', '10.0.2.5', 15008, 'TCP', 'hbone'], 'pod IPs, port 15008: the 5-tuple Cilium sees');
  t.equal(h.cilium.allowed, true);
  t.same(h.cilium.ingress.decidingPolicies.map((p) => p.name), ['allow-hbone-from-red']);
  t.equal(m!.istio.length, 1);
  t.same([m!.istio[0]!.enforcer, m!.istio[0]!.verdict, m!.istio[0]!.principal], ['ztunnel', 'allowed', 'cluster.local/ns/red/sa/netshoot']);
  t.equal(m!.allowed, true);
  t.equal(m!.decidedBy, 'none');
  t.match(m!.summary, /^Cilium allows HBONE 15008; .*ALLOWED$/);
});

t.test('a Cilium policy that blocks 15008: DENIED by Cilium, naming the policy', async (t) => {
  const denyHbone = cnp('blue', 'deny-hbone', {
    endpointSelector: {},
    ingressDeny: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'red' } }], toPorts: [{ ports: [{ port: '15008', protocol: 'TCP' }] }] }],
  });
  const m = trace(ambientCluster([hboneOnly, denyHbone]), 'red/netshoot', 'blue/httpbin')!;
  t.equal(m.allowed, false);
  t.equal(m.decidedBy, 'cilium');
  t.same(m.hops[0]!.cilium.ingress.decidingPolicies.map((p) => p.name), ['deny-hbone']);
  t.match(m.summary, /Cilium denies HBONE red\/netshoot -> blue\/httpbin :15008\/TCP \(ingress: CiliumNetworkPolicy blue\/deny-hbone\): DENIED by Cilium/);
  // Only port 80 allowed (a policy written for the app port): 15008 falls into default deny.
  const appOnly = cnp('blue', 'allow-80', {
    endpointSelector: { matchLabels: { app: 'httpbin' } },
    ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'red' } }], toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }] }],
  });
  const m2 = trace(ambientCluster([appOnly]), 'red/netshoot', 'blue/httpbin')!;
  t.equal(m2.allowed, false, 'the app port is allowed, HBONE is not: the real path is dropped');
  t.equal(m2.decidedBy, 'cilium');
  t.same(m2.hops[0]!.cilium.ingress.decidingPolicies.map((p) => p.name), ['allow-80'], 'the policy whose default deny drops it');
});

t.test('AuthorizationPolicy DENY at ztunnel: DENIED by Istio though Cilium allows HBONE', async (t) => {
  const denyRed = authzPolicy('blue', 'deny-red', { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['red'] } }] }] });
  const m = trace(ambientCluster([hboneOnly, denyRed]), 'red/netshoot', 'blue/httpbin')!;
  t.equal(m.hops[0]!.cilium.allowed, true);
  t.equal(m.allowed, false);
  t.equal(m.decidedBy, 'istio');
  t.same(m.istio[0]!.policies, [{ kind: 'AuthorizationPolicy', namespace: 'blue', name: 'deny-red', action: 'DENY' }]);
  t.equal(m.summary, 'Cilium allows HBONE 15008; AuthorizationPolicy blue/deny-red denies at ztunnel: DENIED by Istio');
});

t.test("Istio's allow-curl-to-httpbin: the named principal passes, others are denied; its L7 variant denies at ztunnel", async (t) => {
  // https://istio.io/latest/docs/ambient/usage/l4-policy/ (namespace red stands for ambient-demo)
  const allowCurl = authzPolicy('blue', 'allow-curl-to-httpbin', {
    selector: { matchLabels: { app: 'httpbin' } }, action: 'ALLOW',
    rules: [{ from: [{ source: { principals: ['cluster.local/ns/red/sa/curl'] } }] }],
  });
  const objs = ambientCluster([hboneOnly, allowCurl]);
  const curl = trace(objs, 'red/curl', 'blue/httpbin')!;
  t.equal(curl.allowed, true);
  t.same(curl.istio[0]!.policies.map((p) => p.name), ['allow-curl-to-httpbin']);
  const netshoot = trace(objs, 'red/netshoot', 'blue/httpbin')!;
  t.equal(netshoot.allowed, false);
  t.equal(netshoot.decidedBy, 'istio');
  t.match(netshoot.istio[0]!.reason, /no rule of the ALLOW policies blue\/allow-curl-to-httpbin matches peer cluster.local\/ns\/red\/sa\/netshoot/);
  // The same policy with `methods: ["GET"]` and no waypoint: ztunnel cannot see HTTP and denies.
  const l7 = authzPolicy('blue', 'allow-curl-to-httpbin', {
    selector: { matchLabels: { app: 'httpbin' } }, action: 'ALLOW',
    rules: [{ from: [{ source: { principals: ['cluster.local/ns/red/sa/curl'] } }], to: [{ operation: { methods: ['GET'] } }] }],
  });
  const curlL7 = trace(ambientCluster([hboneOnly, l7]), 'red/curl', 'blue/httpbin')!;
  t.equal(curlL7.allowed, false, 'the identity is right, the policy needs HTTP: ztunnel denies');
  t.match(curlL7.istio[0]!.reason, /rules that need HTTP never match at ztunnel/);
  // The port in `to.operation.ports` is the application port, not 15008.
  const port80 = authzPolicy('blue', 'deny-80', { action: 'DENY', rules: [{ to: [{ operation: { ports: ['80'] } }] }] });
  t.equal(trace(ambientCluster([hboneOnly, port80]), 'red/curl', 'blue/httpbin')!.decidedBy, 'istio');
});

t.test('waypoint-bound destination: source -> waypoint :15008, waypoint -> destination :15008', async (t) => {
  // blue uses waypoint blue/waypoint (istio.io/use-waypoint); traffic to the httpbin Service goes through it.
  const gw = (labels: Record<string, string> = {}): Obj => ({
    apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'waypoint', namespace: 'blue', labels },
    spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] },
  }) as Obj;
  const wpPod = pod('blue', 'waypoint-7f9', { 'gateway.networking.k8s.io/gateway-name': 'waypoint' }, { sa: 'waypoint', ip: '10.0.2.9' });
  (wpPod.spec as { containers: { name: string }[] }).containers = [{ name: 'istio-proxy' }];
  const svc = {
    apiVersion: 'v1', kind: 'Service', metadata: { name: 'httpbin', namespace: 'blue' },
    spec: { clusterIP: '10.96.5.5', selector: { app: 'httpbin' }, ports: [{ name: 'http', port: 8000, targetPort: 80, protocol: 'TCP' }] },
  } as Obj;
  const objs = ambientCluster([hboneOnly, gw(), wpPod, svc], { 'istio.io/use-waypoint': 'waypoint' });
  const s = memoryState(objs);
  const m = meshPath(s, findPod(s, 'red/netshoot'), { type: 'ip', ip: '10.96.5.5' }, 8000, 'TCP')!;
  t.equal(m.wire, 'hbone-via-waypoint');
  t.equal(m.waypoint, 'blue/waypoint');
  t.equal(m.appPort, 80, 'the Service port is translated to the target port');
  t.same(m.hops.map((h) => [h.fromIp, h.toIp, h.port]), [['10.0.1.5', '10.0.2.9', 15008], ['10.0.2.9', '10.0.2.5', 15008]]);
  t.same(m.hops.map((h) => h.cilium.allowed), [true, false], 'httpbin admits HBONE from red only: the waypoint (in blue) is dropped');
  t.equal(m.decidedBy, 'cilium');
  t.match(m.summary, /waypoint blue\/waypoint .* -> blue\/httpbin :15008\/TCP/);
  t.same(m.istio.map((d) => [d.enforcer, d.principal]), [['waypoint', 'cluster.local/ns/red/sa/netshoot'], ['ztunnel', 'cluster.local/ns/blue/sa/waypoint']],
    'the waypoint sees the client; the destination ztunnel sees the waypoint');

  // Admit HBONE from the waypoint too; an L7 AuthorizationPolicy on the waypoint then decides per request.
  const fromWaypoint = cnp('blue', 'allow-hbone-from-waypoint', {
    endpointSelector: { matchLabels: { app: 'httpbin' } },
    ingress: [{ fromEndpoints: [{ matchLabels: { 'gateway.networking.k8s.io/gateway-name': 'waypoint' } }], toPorts: [{ ports: [{ port: '15008', protocol: 'TCP' }] }] }],
  });
  const l7 = authzPolicy('blue', 'get-only', {
    targetRefs: [{ kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'waypoint' }], action: 'ALLOW',
    rules: [{ to: [{ operation: { methods: ['GET'] } }] }],
  });
  const s2 = memoryState([...objs, fromWaypoint, l7]);
  const m2 = meshPath(s2, findPod(s2, 'red/netshoot'), { type: 'ip', ip: '10.96.5.5' }, 8000, 'TCP')!;
  t.same(m2.hops.map((h) => h.cilium.allowed), [true, true]);
  t.equal(m2.istio[0]!.verdict, 'conditional');
  t.same(m2.istio[0]!.policies.map((p) => p.name), ['get-only']);
  t.equal(m2.allowed, true);

  // Addressed to the pod, a waypoint for `service` traffic (the default) is not on the path...
  const direct = meshPath(s2, findPod(s2, 'red/netshoot'), { type: 'pod', pod: findPod(s2, 'blue/httpbin') }, 80, 'TCP')!;
  t.equal(direct.wire, 'hbone');
  t.match(direct.notes.join('\n'), /takes service traffic/);
  // ...one for `workload` (or `all`) traffic is.
  const s3 = memoryState(ambientCluster([hboneOnly, fromWaypoint, gw({ 'istio.io/waypoint-for': 'workload' }), wpPod, svc], { 'istio.io/use-waypoint': 'waypoint' }));
  const viaWorkload = meshPath(s3, findPod(s3, 'red/netshoot'), { type: 'pod', pod: findPod(s3, 'blue/httpbin') }, 80, 'TCP')!;
  t.equal(viaWorkload.wire, 'hbone-via-waypoint');
});

t.test('sidecar -> sidecar: Istio mTLS on the application port; the sidecar authorizes, HTTP rules per request', async (t) => {
  const objs = baseCluster([
    ns('shop', { 'istio-injection': 'enabled' }),
    pod('shop', 'web', { app: 'web' }, { sa: 'web', sidecar: true, ip: '10.0.3.5' }),
    pod('shop', 'api', { app: 'api' }, { sa: 'api', sidecar: true, ports: HTTPBIN_PORTS, ip: '10.0.3.6' }),
    netpol('shop', 'api-80', { podSelector: { matchLabels: { app: 'api' } }, ingress: [{ ports: [{ port: 80 }] }] }),
    authzPolicy('shop', 'api-get', { selector: { matchLabels: { app: 'api' } }, rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/web'] } }], to: [{ operation: { methods: ['GET'] } }] }] }),
  ]);
  const m = trace(objs, 'shop/web', 'shop/api')!;
  t.equal(m.wire, 'mtls');
  t.same(m.hops.map((h) => [h.port, h.kind, h.cilium.allowed]), [[80, 'mtls', true]], 'Cilium sees port 80 at the pod interface, not 15006');
  t.same([m.istio[0]!.enforcer, m.istio[0]!.verdict], ['sidecar', 'conditional'], 'a sidecar sees HTTP: GET passes, the rest does not');
  t.equal(m.allowed, true);
  // Port 80 not admitted by Cilium: the mTLS connection is dropped before the sidecar sees it.
  const closed = trace([...objs.filter((o) => o.metadata.name !== 'api-80'), netpol('shop', 'api-81', { podSelector: { matchLabels: { app: 'api' } }, ingress: [{ ports: [{ port: 81 }] }] })], 'shop/web', 'shop/api')!;
  t.equal(closed.decidedBy, 'cilium');
});

t.test('mesh -> non-mesh: plaintext on the application port, no HBONE, no Istio authorization', async (t) => {
  const objs = ambientCluster([ns('legacy'), pod('legacy', 'db', { app: 'db' }, { ports: [{ containerPort: 5432 }], ip: '10.0.4.5' })]);
  const m = trace(objs, 'red/netshoot', 'legacy/db', 5432)!;
  t.equal(m.wire, 'plaintext');
  t.same(m.hops.map((h) => [h.port, h.kind]), [[5432, 'plaintext']]);
  t.same(m.istio, []);
  t.equal(m.allowed, true);
  // Non-mesh -> non-mesh: no mesh path at all.
  t.equal(trace(objs, 'legacy/db', 'legacy/db'), undefined, 'a pod to itself');
  const s = memoryState([...objs, pod('legacy', 'app', {}, { ip: '10.0.4.6' })]);
  t.equal(meshPath(s, findPod(s, 'legacy/app'), { type: 'pod', pod: findPod(s, 'legacy/db') }, 5432, 'TCP'), undefined);
});

t.test('non-mesh -> ambient: plaintext on the app port; ztunnel authorizes without identity; STRICT refuses it', async (t) => {
  const objs = ambientCluster([ns('legacy'), pod('legacy', 'app', {}, { ip: '10.0.4.6' })]);
  const m = trace(objs, 'legacy/app', 'blue/httpbin')!;
  t.same([m.wire, m.hops[0]!.port, m.istio[0]!.enforcer, m.istio[0]!.principal], ['plaintext', 80, 'ztunnel', undefined]);
  t.equal(m.allowed, true, 'ztunnel accepts plaintext by default');
  const strict = trace([...objs, peerAuth('blue', 'strict', { mtls: { mode: 'STRICT' } })], 'legacy/app', 'blue/httpbin')!;
  t.equal(strict.decidedBy, 'istio');
  t.same(strict.istio[0]!.policies, [{ kind: 'PeerAuthentication', namespace: 'blue', name: 'strict', action: 'STRICT' }]);
  // A namespaces rule never matches a peer without identity.
  const byNs = authzPolicy('blue', 'from-legacy', { rules: [{ from: [{ source: { namespaces: ['legacy'] } }] }] });
  t.equal(trace([...objs, byNs], 'legacy/app', 'blue/httpbin')!.decidedBy, 'istio');
});

t.test('near-misses: a pod opted out of ambient, a pod with injection disabled', async (t) => {
  // blue is ambient but httpbin says istio.io/dataplane-mode: none: red's ztunnel sends plaintext to 80,
  // so the HBONE-only policy no longer lets it in.
  const objs = ambientCluster([hboneOnly]);
  const httpbin = objs.find((o) => o.kind === 'Pod' && o.metadata.name === 'httpbin')!;
  (httpbin.metadata as unknown as { labels: Record<string, string> }).labels['istio.io/dataplane-mode'] = 'none';
  const m = trace(objs, 'red/netshoot', 'blue/httpbin')!;
  t.same([m.destinationMode, m.wire, m.hops[0]!.port], ['none', 'plaintext', 80]);
  t.equal(m.decidedBy, 'cilium');

  // Injection enabled for the namespace, disabled for the client pod: it is outside the mesh and talks
  // plaintext to the sidecar on 80, which its STRICT PeerAuthentication refuses.
  const shop = baseCluster([
    ns('shop', { 'istio-injection': 'enabled' }),
    pod('shop', 'job', { 'sidecar.istio.io/inject': 'false' }, { ip: '10.0.3.7' }),
    pod('shop', 'api', { app: 'api' }, { sa: 'api', sidecar: true, ports: HTTPBIN_PORTS, ip: '10.0.3.6' }),
    peerAuth('shop', 'strict', { mtls: { mode: 'STRICT' } }),
  ]);
  const j = trace(shop, 'shop/job', 'shop/api')!;
  t.same([j.sourceMode, j.destinationMode, j.wire], ['none', 'sidecar', 'plaintext']);
  t.same([j.istio[0]!.enforcer, j.istio[0]!.verdict, j.decidedBy], ['sidecar', 'denied', 'istio']);
});

t.test('mixed: sidecar -> ambient is HBONE without the waypoint; ambient -> sidecar is HBONE to the sidecar', async (t) => {
  const objs = ambientCluster([
    hboneOnly,
    ns('shop', { 'istio-injection': 'enabled' }),
    pod('shop', 'web', { app: 'web' }, { sa: 'web', sidecar: true, ip: '10.0.3.5' }),
  ]);
  const s2a = trace(objs, 'shop/web', 'blue/httpbin')!;
  t.same([s2a.sourceMode, s2a.wire, s2a.hops[0]!.port], ['sidecar', 'hbone', 15008]);
  t.equal(s2a.decidedBy, 'cilium', 'allow-hbone-from-red does not admit shop');
  const a2s = trace(objs, 'red/netshoot', 'shop/web', 8080)!;
  t.same([a2s.wire, a2s.hops[0]!.port, a2s.istio[0]!.enforcer], ['hbone', 15008, 'sidecar']);
});

t.test('UDP is not carried by the mesh', async (t) => {
  const m = trace(ambientCluster([hboneOnly]), 'red/netshoot', 'blue/httpbin', 53, 'UDP')!;
  t.same([m.wire, m.hops[0]!.port, m.hops[0]!.protocol], ['plaintext', 53, 'UDP']);
  t.same(m.istio, []);
});

t.test('helpers: Istio string matching and principals', async (t) => {
  t.ok(istioStringMatch('*', 'x'));
  t.ok(istioStringMatch('cluster.local/ns/red/*', 'cluster.local/ns/red/sa/a'));
  t.ok(istioStringMatch('*/sa/a', 'cluster.local/ns/red/sa/a'));
  t.notOk(istioStringMatch('red', 'red2'));
  const s = memoryState(ambientCluster([
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'istio', namespace: 'istio-system' }, data: { mesh: 'trustDomain: example.org\n' } } as Obj,
  ]));
  t.equal(principalOf(s, findPod(s, 'red/curl')), 'example.org/ns/red/sa/curl');
});
