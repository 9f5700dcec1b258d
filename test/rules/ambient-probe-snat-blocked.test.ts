import t from 'tap';
import { rule } from '../../src/rules/ambient-probe-snat-blocked.ts';
import { baseCluster, ccnp, ciliumConfigMap, cnp, HEALTHY_CILIUM_CONFIG, memoryState, netpol, ns, pod } from '../fixtures/cluster.ts';
import { DEFAULT_SETTINGS, makeChange, runRule } from './rule-harness.ts';

// Seed 004: the ambient "demo" namespace.
const AMBIENT = { 'istio.io/dataplane-mode': 'ambient' };
const demoPods = [
  pod('demo', 'hello-gateway-1', { app: 'hello-gateway' }),
  pod('demo', 'hello-app-1', { app: 'hello-app' }, { ports: [{ name: 'http', containerPort: 8000 }] }),
  pod('demo', 'hello-app-2', { app: 'hello-app' }, { ports: [{ name: 'http', containerPort: 8000 }] }),
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
  t.equal(findings.length, 1);
  const f = findings[0]!;
  t.equal(f.rule, 'ambient-probe-snat-blocked');
  t.notOk(f.preexisting);
  t.match(f.message, /CiliumNetworkPolicy demo\/hello-app-ingress: 2 ambient pods ingress-enforced with no allow from 169\.254\.7\.127/);
  t.same(f.victims, ['demo/hello-app-1', 'demo/hello-app-2']);
  t.equal(f.victimCount, 2);
  t.match(f.fix, /fromCIDR: \["169\.254\.7\.127\/32"\]/);
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
  t.equal(runRule(rule, baseCluster(demo), 'CREATE', except).findings.length, 1);
  const hostEntity = helloIngress([{ fromEntities: ['host', 'cluster'] }]);
  t.equal(runRule(rule, baseCluster(demo), 'CREATE', hostEntity).findings.length, 1, 'the SNATed source is world, not host');
});

t.test('an ingress deny of world on all ports blocks the probes even with an allow', async (t) => {
  const policy = cnp('demo', 'deny-world', {
    endpointSelector: { matchLabels: { app: 'hello-app' } },
    ingress: [probeRule],
    ingressDeny: [{ fromEntities: ['world'] }],
  });
  t.equal(runRule(rule, baseCluster(demo), 'CREATE', policy).findings.length, 1);
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
  t.equal(f.length, 1, 'ingress: [{}] enforces and admits no probe');
  t.equal(f[0]!.victimCount, 3);
});

t.test('a change that cannot affect ingress is not judged, even where probes were already blocked', async (t) => {
  const egressOnly = cnp('demo', 'egress-only', { endpointSelector: {}, egress: [{ toEntities: ['cluster'] }] });
  t.same(runRule(rule, baseCluster([...demo, helloIngress()]), 'CREATE', egressOnly).findings, []);
});

t.test('a NetworkPolicy default-deny ingress is denied; the ipBlock fix admits it', async (t) => {
  const denyAll = netpol('demo', 'deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] });
  const f = runRule(rule, baseCluster(demo), 'CREATE', denyAll).findings;
  t.equal(f.length, 1);
  t.equal(f[0]!.victimCount, 3);
  t.match(f[0]!.fix, /ipBlock: \{cidr: 169\.254\.7\.127\/32\}/);
  const withProbes = netpol('demo', 'deny-ingress', { podSelector: {}, policyTypes: ['Ingress'], ingress: [{ from: [{ ipBlock: { cidr: '169.254.7.127/32' } }] }] });
  t.same(runRule(rule, baseCluster(demo), 'CREATE', withProbes).findings, []);
});

t.test('pre-existing problem: an unrelated update of the broken policy is only a warning', async (t) => {
  const old = helloIngress();
  const relabelled = { ...old, metadata: { ...old.metadata, labels: { team: 'a' } } };
  const f = runRule(rule, baseCluster([...demo, old]), 'UPDATE', relabelled).findings;
  t.equal(f.length, 1);
  t.equal(f[0]!.preexisting, true);
});

t.test('enrolling a namespace into ambient under an existing ingress policy is denied', async (t) => {
  const f = runRule(rule, baseCluster([...plainDemo, helloIngress()]), 'UPDATE', ns('demo', AMBIENT)).findings;
  t.equal(f.length, 1);
  t.notOk(f[0]!.preexisting);
  t.match(f[0]!.message, /^Namespace demo: 2 ambient pods/);
  t.match(f[0]!.fix, /fromCIDR/);
});

t.test('deleting the hostprobes policy is denied', async (t) => {
  const f = runRule(rule, baseCluster([...demo, helloIngress(), hostprobes]), 'DELETE', hostprobes).findings;
  t.equal(f.length, 1);
  t.same(f[0]!.victims, ['demo/hello-app-1', 'demo/hello-app-2']);
});

t.test('single-stack IPv6 pods need the IPv6 SNAT address', async (t) => {
  const v6 = [ns('demo', AMBIENT), pod('demo', 'hello-app-1', { app: 'hello-app' }, { ip: 'fd00::10' })];
  const onlyV4 = runRule(rule, baseCluster(v6), 'CREATE', helloIngress([probeRule])).findings;
  t.equal(onlyV4.length, 1);
  t.match(onlyV4[0]!.message, /fd16:9254:7127:1337:ffff:ffff:ffff:ffff/);
  t.same(runRule(rule, baseCluster(v6), 'CREATE', helloIngress([probeRule, { fromCIDR: ['fd16:9254:7127:1337:ffff:ffff:ffff:ffff/128'] }])).findings, []);
});

t.test('synthetic pod for a policy on an empty ambient namespace', async (t) => {
  const policy = cnp('fresh', 'api-ingress', { endpointSelector: { matchLabels: { app: 'api' } }, ingress: [{ fromEndpoints: [{}] }] });
  const f = runRule(rule, baseCluster([ns('fresh', AMBIENT)]), 'CREATE', policy).findings;
  t.equal(f.length, 1);
  t.match(f[0]!.message, /pods this policy would select/);
});

t.test('cilium-config enable-policy: always puts ambient pods without ingress policy into default deny: denied', async (t) => {
  t.ok(rule.triggers.some((tr) => tr.kinds.includes('ConfigMap') && tr.operations.includes('UPDATE')), 'cilium-config is a trigger');
  const always = ciliumConfigMap({ ...HEALTHY_CILIUM_CONFIG, 'enable-policy': 'always' });
  const f = runRule(rule, baseCluster(demo), 'UPDATE', always).findings;
  t.equal(f.length, 1);
  t.notOk(f[0]?.preexisting);
  t.equal(f[0]?.victimCount, 3);
  t.match(f[0]?.message ?? '', /^ConfigMap kube-system\/cilium-config: 3 ambient pods ingress-enforced/);
  t.match(f[0]?.fix ?? '', /169\.254\.7\.127\/32/);
  // Istio's hostprobes policy keeps them admitted.
  t.same(runRule(rule, baseCluster([...demo, hostprobes]), 'UPDATE', always).findings, []);
  // Probes that were already blocked are not this request's problem to repeat.
  t.same(runRule(rule, baseCluster([...demo, helloIngress()]), 'UPDATE', ciliumConfigMap({ ...HEALTHY_CILIUM_CONFIG, 'policy-cidr-match-mode': 'nodes' })).findings, []);
});

t.test('enable-policy: never enforces no policy, deny rules included: nothing to report', async (t) => {
  const denyWorld = cnp('demo', 'deny-world', { endpointSelector: {}, ingressDeny: [{ fromEntities: ['world'] }] });
  t.equal(runRule(rule, baseCluster(demo), 'CREATE', denyWorld).findings.length, 1, 'the SNATed probes are world');
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
  t.equal(f.length, 1, 'a policy-mode key: judged');
  t.same(f[0]?.victims, ['demo/hello-app-1', 'demo/hello-app-2']);
});
