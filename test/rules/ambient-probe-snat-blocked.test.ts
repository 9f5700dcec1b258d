// ambient-probe-snat-blocked: findings asserted as data (code, params, victims); one golden test per code
// for the wording. More cases as fixtures: src/rules/ambient-probe-snat-blocked/testdata/*.yaml.
import t from 'tap';
import { messages } from '../../src/rules/ambient-probe-snat-blocked/messages.ts';
import { rule, scope } from '../../src/rules/ambient-probe-snat-blocked/index.ts';
import { renderFinding } from '../../src/verdict/render.ts';
import { baseCluster, ccnp, ciliumConfigMap, cnp, HEALTHY_CILIUM_CONFIG, memoryState, netpol, ns, pod } from '../fixtures/cluster.ts';
import { DEFAULT_SETTINGS, makeChange, runRule } from './rule-harness.ts';

const CODE = (kind: string) => `ambient-probe-snat-blocked/${kind}`;
const codes = (f: readonly { code?: string }[]) => f.map((x) => x.code);

/** The pod with these probes on its first container (`readinessProbe: {...}`, ...). */
function withProbes<T extends ReturnType<typeof pod>>(p: T, probes: Record<string, unknown>): T {
  const spec = p.spec as { containers: Record<string, unknown>[] };
  return { ...p, spec: { ...spec, containers: [{ ...spec.containers[0], ...probes }, ...spec.containers.slice(1)] } };
}
// The app probes its named port (http = 8000) for readiness and liveness; the gateway is probed on
// Istio's health port 15021 (which it does not declare: a numbered probe needs no container port).
const appProbes = { readinessProbe: { httpGet: { path: '/healthz', port: 'http' } }, livenessProbe: { tcpSocket: { port: 8000 } } };
const gatewayProbes = { readinessProbe: { httpGet: { path: '/healthz/ready', port: 15021 } } };

// Seed 004: the ambient "demo" namespace.
const AMBIENT = { 'istio.io/dataplane-mode': 'ambient' };
const demoPods = [
  withProbes(pod('demo', 'hello-gateway-1', { app: 'hello-gateway' }), gatewayProbes),
  withProbes(pod('demo', 'hello-app-1', { app: 'hello-app' }, { ports: [{ name: 'http', containerPort: 8000 }] }), appProbes),
  withProbes(pod('demo', 'hello-app-2', { app: 'hello-app' }, { ports: [{ name: 'http', containerPort: 8000 }] }), appProbes),
];
const demo = [ns('demo', AMBIENT), ...demoPods];
const plainDemo = [ns('demo'), ...demoPods];

const appRule = { fromEndpoints: [{ matchLabels: { app: 'hello-gateway' } }], toPorts: [{ ports: [{ port: '8000', protocol: 'TCP' }, { port: '15008', protocol: 'TCP' }] }] };
const helloIngress = (extra: Record<string, unknown>[] = []) =>
  cnp('demo', 'hello-app-ingress', { endpointSelector: { matchLabels: { app: 'hello-app' } }, ingress: [appRule, ...extra] });
const probeRule = { fromCIDR: ['169.254.7.127/32'] };
// Istio's documented fix for Cilium, scoped so it does not put every pod into default deny.
const hostprobes = ccnp('allow-ambient-hostprobes', {
  endpointSelector: {},
  enableDefaultDeny: { ingress: false, egress: false },
  ingress: [{ fromCIDR: ['169.254.7.127/32'] }],
});

t.test('seed 004: an ingress policy on ambient pods without 169.254.7.127/32 is denied', async (t) => {
  const { findings } = runRule(rule, baseCluster(demo), 'CREATE', helloIngress());
  t.same(findings, [{
    rule: 'ambient-probe-snat-blocked',
    code: CODE('policy-blocks-probes'),
    params: {
      source: '169.254.7.127', ports: ['8000'], pods: ['demo/hello-app-1', 'demo/hello-app-2'], podCount: 2, synthetic: false,
      policyKind: 'CiliumNetworkPolicy', policy: 'demo/hello-app-ingress',
    },
    victims: ['demo/hello-app-1', 'demo/hello-app-2'],
    victimCount: 2,
  }]);
  t.equal(renderFinding(findings[0]!, rule.messages).fix, 'add to CiliumNetworkPolicy demo/hello-app-ingress: ingress: [{fromCIDR: ["169.254.7.127/32"]}]');
});

t.test('seed 004: with the 169.254.7.127/32 allow it is admitted', async (t) => {
  t.same(runRule(rule, baseCluster(demo), 'CREATE', helloIngress([probeRule])).findings, []);
  // ... or with the cluster-wide hostprobes policy in place.
  t.same(runRule(rule, baseCluster([...demo, hostprobes]), 'CREATE', helloIngress()).findings, []);
  // world / a wider CIDR / a ports-only rule (any peer) also admit the SNATed source.
  t.same(runRule(rule, baseCluster(demo), 'CREATE', helloIngress([{ fromEntities: ['world'] }])).findings, []);
  t.same(runRule(rule, baseCluster(demo), 'CREATE', helloIngress([{ fromCIDRSet: [{ cidr: '169.254.0.0/16' }] }])).findings, []);
  t.same(runRule(rule, baseCluster(demo), 'CREATE', helloIngress([{ toPorts: [{ ports: [{ port: '8000', protocol: 'TCP' }] }] }])).findings, []);
});

t.test('a CIDR that excludes the probe address, or host/cluster entities, do not admit it', async (t) => {
  const except = helloIngress([{ fromCIDRSet: [{ cidr: '169.254.0.0/16', except: ['169.254.7.0/24'] }] }]);
  t.same(codes(runRule(rule, baseCluster(demo), 'CREATE', except).findings), [CODE('policy-blocks-probes')]);
  const hostEntity = helloIngress([{ fromEntities: ['host', 'cluster'] }]);
  t.same(codes(runRule(rule, baseCluster(demo), 'CREATE', hostEntity).findings), [CODE('policy-blocks-probes')], 'the SNATed source is world, not host');
});

t.test('an ingress deny of world on all ports blocks the probes even with an allow', async (t) => {
  const policy = cnp('demo', 'deny-world', {
    endpointSelector: { matchLabels: { app: 'hello-app' } },
    ingress: [probeRule],
    ingressDeny: [{ fromEntities: ['world'] }],
  });
  // The deny decides (an allow would not help): the finding names the element, not an allow.
  const f = runRule(rule, baseCluster(demo), 'CREATE', policy).findings;
  t.same(f.map((x) => [x.code, x.params?.denies, x.params?.denyPeers, x.params?.denyValues]), [
    [CODE('denied-by-policy'), ['CiliumNetworkPolicy demo/deny-world ingressDeny[0]'], ['entity'], ['world']],
  ]);
});

t.test('not ambient: host probes are always allowed by Cilium, nothing to report', async (t) => {
  t.same(runRule(rule, baseCluster(plainDemo), 'CREATE', helloIngress()).findings, []);
  const sidecarNs = [ns('demo', { 'istio-injection': 'enabled' }), ...demoPods];
  t.same(runRule(rule, baseCluster(sidecarNs), 'CREATE', helloIngress()).findings, []);
});

t.test('egress-only policies do not enforce ingress', async (t) => {
  const egressOnly = cnp('demo', 'egress-only', { endpointSelector: {}, egress: [{ toEntities: ['cluster'] }] });
  t.same(runRule(rule, baseCluster(demo), 'CREATE', egressOnly).findings, []);
});

t.test('enableDefaultDeny.ingress needs an ingress element: the flag alone keeps probes, ingress: [{}] drops them', async (t) => {
  const byFlag = cnp('demo', 'egress-and-flag', { endpointSelector: {}, enableDefaultDeny: { ingress: true }, egress: [{ toEntities: ['cluster'] }] });
  t.same(runRule(rule, baseCluster(demo), 'CREATE', byFlag).findings, [], 'no ingress element: ingress stays open (RulesToPolicyEntries)');
  const braces = cnp('demo', 'egress-and-braces', { endpointSelector: {}, egress: [{ toEntities: ['cluster'] }], ingress: [{}] });
  const f = runRule(rule, baseCluster(demo), 'CREATE', braces).findings;
  t.same(f.map((x) => [x.code, x.victimCount, x.params?.podCount]), [[CODE('policy-blocks-probes'), 3, 3]], 'ingress: [{}] enforces and admits no probe');
});

t.test('a change that cannot affect ingress is not judged, even where probes were already blocked', async (t) => {
  const egressOnly = cnp('demo', 'egress-only', { endpointSelector: {}, egress: [{ toEntities: ['cluster'] }] });
  t.same(runRule(rule, baseCluster([...demo, helloIngress()]), 'CREATE', egressOnly).findings, []);
});

t.test('a NetworkPolicy default-deny ingress is denied; the ipBlock fix admits it', async (t) => {
  const denyAll = netpol('demo', 'deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] });
  const f = runRule(rule, baseCluster(demo), 'CREATE', denyAll).findings;
  t.same(f.map((x) => [x.code, x.victimCount, x.params?.policyKind, x.params?.policy]), [[CODE('policy-blocks-probes'), 3, 'NetworkPolicy', 'demo/deny-ingress']]);
  t.equal(renderFinding(f[0]!, rule.messages).fix, 'add to NetworkPolicy demo/deny-ingress: ingress: [{from: [{ipBlock: {cidr: 169.254.7.127/32}}]}]');
  const withProbes = netpol('demo', 'deny-ingress', { podSelector: {}, policyTypes: ['Ingress'], ingress: [{ from: [{ ipBlock: { cidr: '169.254.7.127/32' } }] }] });
  t.same(runRule(rule, baseCluster(demo), 'CREATE', withProbes).findings, []);
});

t.test('pre-existing problem: an unrelated update of the broken policy is only a warning', async (t) => {
  const old = helloIngress();
  const relabelled = { ...old, metadata: { ...old.metadata, labels: { team: 'a' } } };
  const f = runRule(rule, baseCluster([...demo, old]), 'UPDATE', relabelled).findings;
  t.same(f.map((x) => [x.code, x.preexisting]), [[CODE('policy-keeps-blocking-probes'), true]]);
});

t.test('enrolling a namespace into ambient under an existing ingress policy is denied', async (t) => {
  const f = runRule(rule, baseCluster([...plainDemo, helloIngress()]), 'UPDATE', ns('demo', AMBIENT)).findings;
  t.same(f.map((x) => [x.code, x.params?.namespace, x.params?.podCount, x.preexisting]), [[CODE('namespace-relabel-blocks-probes'), 'demo', 2, undefined]]);
  t.equal(renderFinding(f[0]!, rule.messages).fix, 'allow ingress from 169.254.7.127/32 to these pods (e.g. an ingress rule fromCIDR: ["169.254.7.127/32"])');
});

t.test('deleting the hostprobes policy is denied', async (t) => {
  const f = runRule(rule, baseCluster([...demo, helloIngress(), hostprobes]), 'DELETE', hostprobes).findings;
  t.same(f.map((x) => [x.code, x.victims, x.params?.policyKind, x.params?.policy, x.preexisting]), [
    [CODE('policy-deletion-blocks-probes'), ['demo/hello-app-1', 'demo/hello-app-2'], 'CiliumClusterwideNetworkPolicy', 'allow-ambient-hostprobes', undefined],
  ]);
});

t.test('single-stack IPv6 pods need the IPv6 SNAT address', async (t) => {
  const v6 = [ns('demo', AMBIENT), withProbes(pod('demo', 'hello-app-1', { app: 'hello-app' }, { ip: 'fd00::10' }), { livenessProbe: { tcpSocket: { port: 8000 } } })];
  const onlyV4 = runRule(rule, baseCluster(v6), 'CREATE', helloIngress([probeRule])).findings;
  t.same(onlyV4.map((x) => [x.code, x.params?.source]), [[CODE('policy-blocks-probes'), 'fd16:9254:7127:1337:ffff:ffff:ffff:ffff']]);
  t.equal(renderFinding(onlyV4[0]!, rule.messages).fix, 'add to CiliumNetworkPolicy demo/hello-app-ingress: ingress: [{fromCIDR: ["fd16:9254:7127:1337:ffff:ffff:ffff:ffff/128"]}]');
  t.same(runRule(rule, baseCluster(v6), 'CREATE', helloIngress([probeRule, { fromCIDR: ['fd16:9254:7127:1337:ffff:ffff:ffff:ffff/128'] }])).findings, []);
});

t.test('synthetic pod for a policy on an empty ambient namespace', async (t) => {
  const policy = cnp('fresh', 'api-ingress', { endpointSelector: { matchLabels: { app: 'api' } }, ingress: [{ fromEndpoints: [{}] }] });
  const f = runRule(rule, baseCluster([ns('fresh', AMBIENT)]), 'CREATE', policy).findings;
  t.same(f.map((x) => [x.code, x.params?.synthetic, x.params?.podCount]), [[CODE('policy-blocks-probes'), true, 1]]);
});

t.test('cilium-config enable-policy: always puts ambient pods without ingress policy into default deny: denied', async (t) => {
  t.ok(rule.triggers.some((tr) => tr.kinds.includes('ConfigMap') && tr.operations.includes('UPDATE')), 'cilium-config is a trigger');
  const always = ciliumConfigMap({ ...HEALTHY_CILIUM_CONFIG, 'enable-policy': 'always' });
  const f = runRule(rule, baseCluster(demo), 'UPDATE', always).findings;
  t.same(f.map((x) => [x.code, x.preexisting, x.victimCount, x.params?.source]), [[CODE('config-blocks-probes'), undefined, 3, '169.254.7.127']]);
  // Istio's hostprobes policy keeps them admitted.
  t.same(runRule(rule, baseCluster([...demo, hostprobes]), 'UPDATE', always).findings, []);
  // Probes that were already blocked are not this request's problem to repeat.
  t.same(runRule(rule, baseCluster([...demo, helloIngress()]), 'UPDATE', ciliumConfigMap({ ...HEALTHY_CILIUM_CONFIG, 'policy-cidr-match-mode': 'nodes' })).findings, []);
});

t.test('enable-policy: never enforces no policy, deny rules included: nothing to report', async (t) => {
  const denyWorld = cnp('demo', 'deny-world', { endpointSelector: {}, ingressDeny: [{ fromEntities: ['world'] }] });
  t.same(codes(runRule(rule, baseCluster(demo), 'CREATE', denyWorld).findings), [CODE('denied-by-policy')], 'the SNATed probes are world: the deny decides');
  t.same(runRule(rule, baseCluster(demo, { ...HEALTHY_CILIUM_CONFIG, 'enable-policy': 'never' }), 'CREATE', denyWorld).findings, []);
});

t.test('cilium-config edits that do not touch the policy mode judge no pod', async (t) => {
  // States in which every ambient pod's probes are admitted before and dropped after (the after state
  // also holds an app-port policy without the probe allow): judging the pods would report a loss. A
  // cilium-config edit of another key cannot cause it, so the rule must not judge the pods at all (at
  // 10k pods that would cost every unrelated config edit a full scan).
  const cfg = (data: Record<string, string>) => ciliumConfigMap({ ...HEALTHY_CILIUM_CONFIG, ...data });
  const ctx = { settings: DEFAULT_SETTINGS };
  const judge = (data: Record<string, string>) => {
    const before = memoryState(baseCluster(demo));
    const after = memoryState(baseCluster([...demo, helloIngress()], { ...HEALTHY_CILIUM_CONFIG, ...data }));
    return rule.evaluate(makeChange('UPDATE', cfg(data), cfg({})), before, after, ctx);
  };
  t.same(judge({ 'cni-exclusive': 'false' }), [], 'a non-mode key: not judged');
  t.same(judge({ 'enable-l7-proxy': 'false' }), [], 'another non-mode key: not judged');
  // The same states with a policy-mode key edit are judged, and the loss is found.
  const f = judge({ 'policy-cidr-match-mode': 'nodes' });
  t.same(f.map((x) => [x.code, x.victims]), [[CODE('config-blocks-probes'), ['demo/hello-app-1', 'demo/hello-app-2']]], 'a policy-mode key: judged');
});

t.test('deleting a policy from pods whose probes another policy already drops: pre-existing', async (t) => {
  const other = cnp('demo', 'other-ingress', { endpointSelector: { matchLabels: { app: 'hello-app' } }, ingress: [{ fromEndpoints: [{}] }] });
  const f = runRule(rule, baseCluster([...demo, helloIngress(), other]), 'DELETE', other).findings;
  t.same(f.map((x) => [x.code, x.preexisting]), [[CODE('policy-deletion-blocks-probes'), true]]);
});

t.test('scope: from the request alone', async (t) => {
  t.same(scope(makeChange('CREATE', helloIngress())), { by: 'policy', policyKind: 'CiliumNetworkPolicy', policy: 'demo/hello-app-ingress', deleted: false });
  t.same(scope(makeChange('DELETE', undefined, hostprobes)), { by: 'policy', policyKind: 'CiliumClusterwideNetworkPolicy', policy: 'allow-ambient-hostprobes', deleted: true });
  t.same(scope(makeChange('UPDATE', ns('demo', AMBIENT), ns('demo'))), { by: 'namespace', namespace: 'demo' });
  t.same(scope(makeChange('UPDATE', ciliumConfigMap(HEALTHY_CILIUM_CONFIG))), { by: 'cilium-config' });
  t.equal(scope(makeChange('CREATE', ns('demo', AMBIENT))), undefined, 'a new namespace has no pods yet');
  t.equal(scope(makeChange('UPDATE', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'other', namespace: 'kube-system' }, data: {} })), undefined);
});

// Golden wording, one per code: the text users read in kubectl, check and audit.
t.test('wording', async (t) => {
  const say = (f: ReturnType<typeof messages.finding>) => renderFinding(f, rule.messages);
  const p = { source: '169.254.7.127', ports: ['8000', '5432'], pods: ['demo/a-1', 'demo/a-2', 'demo/a-3'], podCount: 5, synthetic: false };
  const tail =
    '5 ambient pods ingress-enforced with no allow from 169.254.7.127 on probe ports 8000, 5432 (kubelet probes SNATed by istio-cni): probes fail, pods restart: ' +
    'demo/a-1, demo/a-2, demo/a-3 and 2 more';
  const generic = 'allow ingress from 169.254.7.127/32 to these pods (e.g. an ingress rule fromCIDR: ["169.254.7.127/32"])';
  t.same(say(messages.finding('policy-blocks-probes', { ...p, policyKind: 'CiliumNetworkPolicy', policy: 'demo/x' })), {
    message: `CiliumNetworkPolicy demo/x: ${tail}`,
    fix: 'add to CiliumNetworkPolicy demo/x: ingress: [{fromCIDR: ["169.254.7.127/32"]}]',
  });
  t.same(say(messages.finding('policy-keeps-blocking-probes', { ...p, policyKind: 'NetworkPolicy', policy: 'demo/x' })), {
    message: `NetworkPolicy demo/x: ${tail}`,
    fix: 'add to NetworkPolicy demo/x: ingress: [{from: [{ipBlock: {cidr: 169.254.7.127/32}}]}]',
  });
  t.same(say(messages.finding('policy-deletion-blocks-probes', { ...p, policyKind: 'CiliumClusterwideNetworkPolicy', policy: 'hostprobes' })), {
    message: `CiliumClusterwideNetworkPolicy hostprobes: ${tail}`,
    fix: generic,
  });
  t.same(say(messages.finding('namespace-relabel-blocks-probes', { ...p, ports: ['8000'], namespace: 'demo' })), {
    message: `Namespace demo: ${tail.replace('probe ports 8000, 5432', 'probe port 8000')}`,
    fix: generic,
  });
  // The synthetic pod of a policy that selects no pod yet: its probes are not known.
  t.same(say(messages.finding('config-blocks-probes', { source: 'fd16:9254:7127:1337:ffff:ffff:ffff:ffff', ports: [], pods: ['fresh/x'], podCount: 1, synthetic: true })), {
    message:
      'ConfigMap kube-system/cilium-config: 1 ambient pod (pods this policy would select) ingress-enforced with no allow from fd16:9254:7127:1337:ffff:ffff:ffff:ffff on any port ' +
      '(kubelet probes SNATed by istio-cni): probes fail, pods restart: fresh/x',
    fix: 'allow ingress from fd16:9254:7127:1337:ffff:ffff:ffff:ffff/128 to these pods (e.g. an ingress rule fromCIDR: ["fd16:9254:7127:1337:ffff:ffff:ffff:ffff/128"])',
  });
  const deny = { denies: ['CiliumNetworkPolicy demo/x ingressDeny[0]'], denyPeers: ['entity'], denyValues: ['world'], denyPorts: [''], change: 'Namespace demo' };
  t.same(say(messages.finding('denied-by-policy', { ...p, ...deny, defaultPods: ['demo/b-1'], defaultPodCount: 1 })), {
    message:
      'Namespace demo: 5 ambient pods drop the kubelet probes SNATed by istio-cni (from 169.254.7.127 on probe ports 8000, 5432), and a deny decides, which no allow overrides: ' +
      'CiliumNetworkPolicy demo/x ingressDeny[0] (fromEntities world, every port); probes fail, pods restart: demo/a-1, demo/a-2, demo/a-3 and 2 more; 1 more pod lacks an allow: demo/b-1',
    fix:
      'narrow CiliumNetworkPolicy demo/x ingressDeny[0]: replace world in its fromEntities by the peers it means to deny (world covers the probe source 169.254.7.127), ' +
      'or limit it with toPorts to the ports it means to deny (not 8000/TCP, 5432/TCP), or remove the element (an allow does not help: a Cilium deny wins over every allow); ' +
      `for the other 1 pod (demo/b-1), no deny decides: ${generic}`,
  });
  t.same(say(messages.finding('still-denied-by-policy', { ...p, ...deny, ports: ['8000'], podCount: 1, pods: ['demo/a-1'], denyPeers: ['cidr'], denyValues: ['0.0.0.0/0'], denyPorts: ['8000/TCP'], defaultPods: [], defaultPodCount: 0 })), {
    message:
      'Namespace demo: 1 ambient pod drops the kubelet probes SNATed by istio-cni (from 169.254.7.127 on probe port 8000), and a deny decides, which no allow overrides: ' +
      'CiliumNetworkPolicy demo/x ingressDeny[0] (fromCIDR 0.0.0.0/0, on 8000/TCP); probes fail, pods restart: demo/a-1',
    fix:
      'narrow CiliumNetworkPolicy demo/x ingressDeny[0]: add 169.254.7.127/32 to the except list of 0.0.0.0/0 (a fromCIDRSet entry), or drop 8000/TCP from its toPorts (8000/TCP), ' +
      'or remove the element (an allow does not help: a Cilium deny wins over every allow)',
  });
  t.same(messages.codes.length, 7, 'one golden test per code');
});

// ---- probes read from the pods (issue 18, part 2)

t.test('a pod without network probes is no victim; one with probes next to it is', async (t) => {
  const bare = [ns('demo', AMBIENT), pod('demo', 'hello-app-1', { app: 'hello-app' }, { ports: [{ name: 'http', containerPort: 8000 }] })];
  t.same(runRule(rule, baseCluster(bare), 'CREATE', helloIngress()).findings, [], 'no probe: nothing for the kubelet to send');
  const mixed = [...bare, withProbes(pod('demo', 'hello-app-2', { app: 'hello-app', v: '2' }, { ports: [{ name: 'http', containerPort: 8000 }] }), appProbes)];
  const f = runRule(rule, baseCluster(mixed), 'CREATE', helloIngress()).findings;
  t.same(f.map((x) => [x.code, x.victims, x.params?.ports]), [[CODE('policy-blocks-probes'), ['demo/hello-app-2'], ['8000']]]);
});

t.test('deny rules limited to some ports count on the probe port only', async (t) => {
  const denyOn = (port: string) =>
    cnp('demo', 'deny-world-port', {
      endpointSelector: { matchLabels: { app: 'hello-app' } },
      ingress: [probeRule],
      ingressDeny: [{ fromEntities: ['world'], toPorts: [{ ports: [{ port, protocol: 'TCP' }] }] }],
    });
  const on8000 = runRule(rule, baseCluster(demo), 'CREATE', denyOn('8000')).findings;
  t.same(on8000.map((x) => [x.code, x.params?.ports, x.params?.denyPorts]), [[CODE('denied-by-policy'), ['8000'], ['8000/TCP']]], 'a deny of world on the probe port wins over the allow (and is named)');
  t.same(runRule(rule, baseCluster(demo), 'CREATE', denyOn('9090')).findings, [], 'a deny on another port leaves the probe alone');
});

t.test('a probe port newly dropped is new breakage even when another probe port already was', async (t) => {
  // Two probe ports: 8000 (readiness, named) and 9090 (liveness). Before, the probe address was admitted
  // on 8000 only (9090 already dropped: a warning); the update takes 8000 away too.
  const twoProbes = { readinessProbe: { httpGet: { path: '/ready', port: 'http' } }, livenessProbe: { tcpSocket: { port: 9090 } } };
  const app = [ns('demo', AMBIENT), withProbes(pod('demo', 'hello-app-1', { app: 'hello-app' }, { ports: [{ name: 'http', containerPort: 8000 }] }), twoProbes)];
  const probesOn = (ports: string[]) => helloIngress(ports.length > 0 ? [{ fromCIDR: ['169.254.7.127/32'], toPorts: [{ ports: ports.map((port) => ({ port, protocol: 'TCP' })) }] }] : []);
  const old = probesOn(['8000']);
  const f = runRule(rule, baseCluster([...app, old]), 'UPDATE', probesOn([])).findings;
  t.same(f.map((x) => [x.code, x.params?.ports, x.preexisting]), [[CODE('policy-blocks-probes'), ['9090', '8000'], undefined]], 'liveness, readiness, startup order');
  const same = runRule(rule, baseCluster([...app, old]), 'UPDATE', { ...old, metadata: { ...old.metadata, labels: { v: '2' } } as typeof old.metadata }).findings;
  t.same(same.map((x) => [x.code, x.params?.ports, x.preexisting]), [[CODE('policy-keeps-blocking-probes'), ['9090'], true]]);
});

t.test('the synthetic pod of a policy that selects no pod yet has unknown probes: judged for any port', async (t) => {
  const policy = cnp('fresh', 'api-ingress', { endpointSelector: { matchLabels: { app: 'api' } }, ingress: [{ fromEndpoints: [{}] }] });
  const f = runRule(rule, baseCluster([ns('fresh', AMBIENT)]), 'CREATE', policy).findings;
  t.same(f.map((x) => [x.code, x.params?.ports, x.params?.synthetic]), [[CODE('policy-blocks-probes'), [], true]]);
  // The probe address admitted on some port: a future pod may well probe there.
  const somePort = cnp('fresh', 'api-ingress', { endpointSelector: { matchLabels: { app: 'api' } }, ingress: [{ fromEndpoints: [{}] }, { fromCIDR: ['169.254.7.127/32'], toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }] }] }] });
  t.same(runRule(rule, baseCluster([ns('fresh', AMBIENT)]), 'CREATE', somePort).findings, []);
});
