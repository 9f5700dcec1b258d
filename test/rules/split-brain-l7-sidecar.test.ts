// split-brain-l7-sidecar: findings asserted as data (code, params, victims); the wording has one golden
// message per code in the fixtures, src/rules/split-brain-l7-sidecar/testdata/*.yaml.
import t from 'tap';
import { rule, scope } from '../../src/rules/split-brain-l7-sidecar/index.ts';
import { baseCluster, ccnp, cnp, ns, peerAuth, pod, HEALTHY_CILIUM_CONFIG } from '../fixtures/cluster.ts';
import { makeChange, runRule } from './rule-harness.ts';

const CODE = (kind: string): string => `split-brain-l7-sidecar/${kind}`;

// Seed 001 (the Cilium Istio guide): red and blue are injected, green is not; httpbin and netshoot in each.
const INJECTED = { 'istio-injection': 'enabled' };
const seed = [
  ns('red', INJECTED), ns('blue', INJECTED), ns('green'),
  pod('red', 'httpbin-1', { app: 'httpbin' }, { sidecar: true }),
  pod('red', 'netshoot-1', { app: 'netshoot' }, { sidecar: true }),
  pod('blue', 'httpbin-1', { app: 'httpbin' }, { sidecar: true }),
  pod('blue', 'netshoot-1', { app: 'netshoot' }, { sidecar: true }),
  pod('green', 'netshoot-1', { app: 'netshoot' }),
];

function httpbinPolicy(l7: boolean) {
  return cnp('blue', 'default', {
    endpointSelector: { matchLabels: { app: 'httpbin' } },
    ingress: [{
      fromEndpoints: [{ matchExpressions: [{ key: 'io.kubernetes.pod.namespace', operator: 'In', values: ['red', 'blue'] }] }],
      toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }], ...(l7 ? { rules: { http: [{ method: 'GET', path: '/ip' }] } } : {}) }],
    }],
  });
}
const l4 = httpbinPolicy(false);
const l7 = httpbinPolicy(true);
const disableBlue = peerAuth('blue', 'default', { mtls: { mode: 'DISABLE' } });
const strictHttpbin = peerAuth('blue', 'httpbin-strict', { selector: { matchLabels: { app: 'httpbin' } }, mtls: { mode: 'STRICT' } });

t.test('seed 001: L4 policy on httpbin in blue is admitted', async (t) => {
  t.same(runRule(rule, baseCluster(seed), 'CREATE', l4).findings, []);
});

t.test('seed 001: the L7 /ip policy is denied while blue has Istio mTLS', async (t) => {
  const { findings } = runRule(rule, baseCluster([...seed, l4]), 'UPDATE', l7);
  t.equal(findings.length, 1);
  const f = findings[0]!;
  t.equal(f.rule, 'split-brain-l7-sidecar');
  t.notOk(f.preexisting);
  t.equal(f.code, CODE('policy-ingress-mtls'));
  // The mesh default: no mtlsSource, no mtlsLevel.
  t.same(f.params, {
    l7: 'HTTP',
    policies: ['CiliumNetworkPolicy blue/default'],
    policyCount: 1,
    port: 80,
    mtls: 'PERMISSIVE',
    pods: ['blue/httpbin-1'],
    podCount: 1,
    podNamespace: 'blue',
    app: 'httpbin',
    wouldSelect: false,
  });
  t.same(f.victims, ['blue/httpbin-1']);
  t.equal(f.victimCount, 1);
  // CREATE of the L7 policy straight away: same
  t.same(runRule(rule, baseCluster(seed), 'CREATE', l7).findings.map((f) => f.code), [CODE('policy-ingress-mtls')]);
});

t.test('seed 001: with PeerAuthentication DISABLE in blue the L7 policy is admitted', async (t) => {
  t.same(runRule(rule, baseCluster([...seed, l4, disableBlue]), 'UPDATE', l7).findings, []);
  t.same(runRule(rule, baseCluster([...seed, disableBlue]), 'CREATE', l7).findings, []);
});

t.test('seed 001: a workload STRICT overriding the namespace DISABLE brings the denial back', async (t) => {
  // creating the STRICT PeerAuthentication breaks the existing L7 policy: denied
  const { findings } = runRule(rule, baseCluster([...seed, disableBlue, l7]), 'CREATE', strictHttpbin);
  t.equal(findings.length, 1);
  const f = findings[0]!;
  t.equal(f.rule, 'split-brain-l7-sidecar');
  t.notOk(f.preexisting);
  t.equal(f.code, CODE('peer-authentication-ingress-mtls'));
  t.same([f.params?.['peerAuthentication'], f.params?.['mtls'], f.params?.['mtlsSource'], f.params?.['mtlsLevel']], ['blue/httpbin-strict', 'STRICT', 'blue/httpbin-strict', 'workload']);
  t.same(f.victims, ['blue/httpbin-1']);
  // with the STRICT in place, applying the L7 policy is denied again
  const again = runRule(rule, baseCluster([...seed, disableBlue, strictHttpbin]), 'CREATE', l7).findings;
  t.equal(again.length, 1);
  t.notOk(again[0]!.preexisting);
});

t.test('deleting the namespace DISABLE breaks the existing L7 policy', async (t) => {
  const { findings } = runRule(rule, baseCluster([...seed, disableBlue, l7]), 'DELETE', disableBlue);
  t.equal(findings.length, 1);
  t.notOk(findings[0]!.preexisting);
  t.equal(findings[0]!.code, CODE('peer-authentication-ingress-mtls'));
  t.equal(findings[0]!.params?.['peerAuthentication'], 'blue/default');
});

t.test('updating the namespace DISABLE to STRICT or PERMISSIVE is denied; to DISABLE again is fine', async (t) => {
  // UNSET inherits: no root policy, so the mesh default (PERMISSIVE, no source).
  for (const [m, effective, source] of [['STRICT', 'STRICT', 'blue/default'], ['PERMISSIVE', 'PERMISSIVE', 'blue/default'], ['UNSET', 'PERMISSIVE', undefined]] as const) {
    const f = runRule(rule, baseCluster([...seed, disableBlue, l7]), 'UPDATE', peerAuth('blue', 'default', { mtls: { mode: m } })).findings;
    t.equal(f.length, 1, m);
    t.equal(f[0]?.code, CODE('peer-authentication-ingress-mtls'), m);
    t.same([f[0]?.params?.['mtls'], f[0]?.params?.['mtlsSource']], [effective, source], m);
    t.notOk(f[0]?.preexisting, m);
  }
  t.same(runRule(rule, baseCluster([...seed, disableBlue, l7]), 'UPDATE', peerAuth('blue', 'default', { mtls: { mode: 'DISABLE' } })).findings, []);
  t.same(runRule(rule, baseCluster([...seed, disableBlue, l7]), 'CREATE', peerAuth('red', 'default', { mtls: { mode: 'STRICT' } })).findings, [], 'another namespace');
});

t.test('port-level DISABLE on the L7 port is enough; on another port it is not', async (t) => {
  const portDisable = (port: string) =>
    peerAuth('blue', 'httpbin', { selector: { matchLabels: { app: 'httpbin' } }, mtls: { mode: 'STRICT' }, portLevelMtls: { [port]: { mode: 'DISABLE' } } });
  t.same(runRule(rule, baseCluster([...seed, portDisable('80')]), 'CREATE', l7).findings, []);
  t.equal(runRule(rule, baseCluster([...seed, portDisable('8080')]), 'CREATE', l7).findings.length, 1);
});

t.test('not caught: pods without sidecar, DNS rules, L7 proxy disabled', async (t) => {
  const greenL7 = cnp('green', 'l7', {
    endpointSelector: { matchLabels: { app: 'netshoot' } },
    ingress: [{ toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{ method: 'GET' }] } }] }],
  });
  t.same(runRule(rule, baseCluster(seed), 'CREATE', greenL7).findings, [], 'green is not injected');
  const dnsOnly = cnp('blue', 'dns', {
    endpointSelector: {},
    egress: [{ toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s-app': 'kube-dns' } }], toPorts: [{ ports: [{ port: '53', protocol: 'UDP' }], rules: { dns: [{ matchPattern: '*' }] } }] }],
  });
  t.same(runRule(rule, baseCluster(seed), 'CREATE', dnsOnly).findings, [], 'DNS rules are not parsed by Envoy HTTP');
  t.same(runRule(rule, baseCluster(seed, { ...HEALTHY_CILIUM_CONFIG, 'enable-l7-proxy': 'false' }), 'CREATE', l7).findings, [], 'no L7 proxy');
  t.same(runRule(rule, baseCluster(seed, { ...HEALTHY_CILIUM_CONFIG, 'enable-policy': 'never' }), 'CREATE', l7).findings, [], 'policy enforcement off');
});

t.test('preexisting: an unchanged L7 policy re-applied is a warning, not a denial', async (t) => {
  const { findings } = runRule(rule, baseCluster([...seed, l7]), 'UPDATE', l7);
  t.equal(findings.length, 1);
  t.equal(findings[0]!.code, CODE('policy-ingress-mtls-kept'));
  t.equal(findings[0]!.preexisting, true);
});

t.test('new namespace: a policy selecting no live pod is judged on a synthetic pod', async (t) => {
  const fresh = cnp('purple', 'l7', {
    endpointSelector: { matchLabels: { app: 'api' } },
    ingress: [{ toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }], rules: { http: [{ path: '/' }] } }] }],
  });
  const { findings } = runRule(rule, baseCluster([ns('purple', INJECTED)]), 'CREATE', fresh);
  t.equal(findings.length, 1);
  t.equal(findings[0]!.code, CODE('policy-ingress-mtls'));
  t.equal(findings[0]!.params?.['wouldSelect'], true);
  t.same(runRule(rule, baseCluster([ns('purple')]), 'CREATE', fresh).findings, [], 'not injected namespace');
});

t.test('namespace enabling injection brings L7 policies into conflict', async (t) => {
  const plain = [ns('shop'), pod('shop', 'api-1', { app: 'api' }), cnp('shop', 'l7', {
    endpointSelector: { matchLabels: { app: 'api' } },
    ingress: [{ toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }], rules: { http: [{ path: '/' }] } }] }],
  })];
  const { findings } = runRule(rule, baseCluster(plain), 'UPDATE', ns('shop', INJECTED));
  t.equal(findings.length, 1);
  t.equal(findings[0]!.code, CODE('namespace-ingress-mtls'));
  t.equal(findings[0]!.params?.['namespace'], 'shop');
  t.same(findings[0]!.victims, ['shop/api-1']);
  t.same(runRule(rule, baseCluster(plain), 'UPDATE', ns('shop', { team: 'x' })).findings, [], 'unrelated label');
});

t.test('egress L7 from sidecar pods toward sidecar pods', async (t) => {
  const egress = cnp('red', 'to-httpbin', {
    endpointSelector: { matchLabels: { app: 'netshoot' } },
    egress: [{
      toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'blue', app: 'httpbin' } }],
      toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{ method: 'GET' }] } }],
    }],
  });
  const { findings } = runRule(rule, baseCluster(seed), 'CREATE', egress);
  t.equal(findings.length, 1);
  t.equal(findings[0]!.code, CODE('policy-egress-mtls'));
  t.same([findings[0]!.params?.['destination'], findings[0]!.params?.['port']], ['blue/httpbin-1', 80]);
  t.same(findings[0]!.victims, ['red/netshoot-1']);
  t.same(runRule(rule, baseCluster([...seed, disableBlue]), 'CREATE', egress).findings, [], 'destination accepts plaintext');
  // the PeerAuthentication side: removing the DISABLE breaks the existing egress rule
  const del = runRule(rule, baseCluster([...seed, disableBlue, egress]), 'DELETE', disableBlue).findings;
  t.equal(del.length, 1);
  t.equal(del[0]!.code, CODE('peer-authentication-egress-mtls'));
  t.same(del[0]!.victims, ['red/netshoot-1']);
});

t.test('CCNP with L7 ingress on injected pods', async (t) => {
  const cw = ccnp('l7-all-httpbin', {
    endpointSelector: { matchLabels: { app: 'httpbin' } },
    ingress: [{ toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{}] } }] }],
  });
  const { findings } = runRule(rule, baseCluster(seed), 'CREATE', cw);
  t.equal(findings.length, 1);
  t.equal(findings[0]!.victimCount, 2);
});

t.test('odd input: no throw, no finding', async (t) => {
  t.same(runRule(rule, baseCluster(seed), 'CREATE', cnp('blue', 'odd', { endpointSelector: 'x', ingress: 'y' } as never)).findings, []);
});

t.test('namespace enabling injection makes its pods sidecar clients of their own L7 egress rules', async (t) => {
  // green's netshoot has HTTP egress rules toward blue's httpbin (sidecar, mTLS). Without a sidecar it
  // sends plaintext and Cilium parses it; once green is injected its sidecar originates mTLS and the
  // egress proxy answers 503.
  const egress = cnp('green', 'to-httpbin', {
    endpointSelector: { matchLabels: { app: 'netshoot' } },
    egress: [{
      toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'blue', app: 'httpbin' } }],
      toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{ method: 'GET' }] } }],
    }],
  });
  const objs = baseCluster([...seed, egress]);
  const { findings } = runRule(rule, objs, 'UPDATE', ns('green', INJECTED));
  t.equal(findings.length, 1);
  t.notOk(findings[0]?.preexisting);
  t.same(findings[0]?.victims, ['green/netshoot-1']);
  t.equal(findings[0]?.code, CODE('namespace-egress-mtls'));
  t.same([findings[0]?.params?.['namespace'], findings[0]?.params?.['destination'], findings[0]?.params?.['port']], ['green', 'blue/httpbin-1', 80]);
  t.same(runRule(rule, baseCluster([...seed, egress, disableBlue]), 'UPDATE', ns('green', INJECTED)).findings, [], 'destination accepts plaintext');
});

t.test('L7 ingress admitting only clients outside the mesh is not reported (they send plaintext)', async (t) => {
  // Prometheus (not injected) scrapes blue's httpbin through an HTTP rule: PERMISSIVE takes its plaintext,
  // and Cilium's proxy parses it. Mesh clients (red, injected) would send mTLS: that is reported.
  const scrape = (fromNs: string) => cnp('blue', 'scrape', {
    endpointSelector: { matchLabels: { app: 'httpbin' } },
    ingress: [{
      fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': fromNs, app: 'prometheus' } }],
      toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{ method: 'GET', path: '/metrics' }] } }],
    }],
  });
  const objs = baseCluster([...seed, ns('monitoring'), pod('monitoring', 'prometheus-0', { app: 'prometheus' }), pod('red', 'prometheus-0', { app: 'prometheus' }, { sidecar: true })]);
  t.same(runRule(rule, objs, 'CREATE', scrape('monitoring')).findings, []);
  t.equal(runRule(rule, objs, 'CREATE', scrape('red')).findings.length, 1);
  // Host and world peers are never mesh clients either; the whole cluster includes them.
  const fromWorld = cnp('blue', 'from-world', {
    endpointSelector: { matchLabels: { app: 'httpbin' } },
    ingress: [{ fromEntities: ['world', 'host'], toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{ method: 'GET' }] } }] }],
  });
  t.same(runRule(rule, objs, 'CREATE', fromWorld).findings, []);
  const fromCluster = cnp('blue', 'from-cluster', {
    endpointSelector: { matchLabels: { app: 'httpbin' } },
    ingress: [{ fromEntities: ['cluster'], toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{ method: 'GET' }] } }] }],
  });
  t.equal(runRule(rule, objs, 'CREATE', fromCluster).findings.length, 1);
  // An Istio gateway is a mesh proxy: it speaks mTLS to the sidecar.
  const gw = pod('istio-system', 'istio-ingressgateway-1', { istio: 'ingressgateway' });
  (gw.spec as { containers: { name: string }[] }).containers = [{ name: 'istio-proxy' }];
  const fromGw = cnp('blue', 'from-gw', {
    endpointSelector: { matchLabels: { app: 'httpbin' } },
    ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'istio-system', istio: 'ingressgateway' } }], toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{ method: 'GET' }] } }] }],
  });
  t.equal(runRule(rule, baseCluster([...seed, gw]), 'CREATE', fromGw).findings.length, 1);
});

t.test('injecting the namespace of L7 ingress clients makes them send mTLS into the rule: denied', async (t) => {
  const scrape = cnp('blue', 'scrape', {
    endpointSelector: { matchLabels: { app: 'httpbin' } },
    ingress: [{
      fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'monitoring', app: 'prometheus' } }],
      toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{ method: 'GET', path: '/metrics' }] } }],
    }],
  });
  const objs = baseCluster([...seed, ns('monitoring'), pod('monitoring', 'prometheus-0', { app: 'prometheus' }), scrape]);
  const f = runRule(rule, objs, 'UPDATE', ns('monitoring', INJECTED)).findings;
  t.equal(f.length, 1);
  t.notOk(f[0]?.preexisting);
  t.same(f[0]?.victims, ['blue/httpbin-1']);
  t.equal(f[0]?.code, CODE('namespace-ingress-mtls'));
  t.equal(f[0]?.params?.['namespace'], 'monitoring');
  // A relabel that keeps monitoring out of the mesh repeats nothing from elsewhere.
  t.same(runRule(rule, objs, 'UPDATE', ns('monitoring', { team: 'obs' })).findings, []);
});

t.test('relabelling the only (uninjected) client namespace out of an L7 peer is not reported: nothing joins the mesh', async (t) => {
  // blue/httpbin admits Prometheus from namespaces labelled team=obs on /metrics; monitoring (not
  // injected) is the only match. Renaming its label leaves the peer without live pods, which must not
  // count as "may include mesh clients" when the relabel is what emptied it.
  const scrape = cnp('blue', 'scrape', {
    endpointSelector: { matchLabels: { app: 'httpbin' } },
    ingress: [{
      fromEndpoints: [{ matchLabels: { 'k8s:io.cilium.k8s.namespace.labels.team': 'obs', app: 'prometheus' } }],
      toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{ method: 'GET', path: '/metrics' }] } }],
    }],
  });
  const objs = baseCluster([...seed, ns('monitoring', { team: 'obs' }), pod('monitoring', 'prometheus-0', { app: 'prometheus' }), pod('red', 'prometheus-0', { app: 'prometheus' }, { sidecar: true })]);
  t.same(runRule(rule, objs, 'CREATE', scrape).findings, [], 'policy admitted: only plaintext clients');
  t.same(runRule(rule, [...objs, scrape], 'UPDATE', ns('monitoring', { team: 'observability' })).findings, [], 'rename: no finding');
  // Injecting monitoring while keeping the label still makes its pods mTLS clients: denied.
  const injected = runRule(rule, [...objs, scrape], 'UPDATE', ns('monitoring', { team: 'obs', ...INJECTED })).findings;
  t.equal(injected.length, 1);
  t.notOk(injected[0]?.preexisting);
  // Labelling the injected red namespace team=obs newly admits its meshed Prometheus: denied.
  const red = runRule(rule, [...objs, scrape], 'UPDATE', ns('red', { ...INJECTED, team: 'obs' })).findings;
  t.equal(red.length, 1);
  t.notOk(red[0]?.preexisting);
  t.same(red[0]?.victims, ['blue/httpbin-1']);
});

t.test('scope: from the request alone', async (t) => {
  t.same(scope(makeChange('CREATE', l7)), { by: 'cilium-policy' });
  t.equal(scope(makeChange('DELETE', undefined, l7)), undefined, 'deleting L7 rules repairs');
  t.same(scope(makeChange('DELETE', undefined, disableBlue)), { by: 'peer-authentication', ref: 'blue/default' }, 'deleting a DISABLE can break');
  t.same(scope(makeChange('UPDATE', ns('shop', INJECTED), ns('shop'))), { by: 'namespace', namespace: 'shop' });
  t.equal(scope(makeChange('CREATE', ns('shop', INJECTED))), undefined, 'a new namespace has no pods yet');
});
