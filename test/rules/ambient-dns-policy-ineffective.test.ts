// ambient-dns-policy-ineffective: findings asserted as data (code, params, victims); one golden test per
// code for the wording. More cases as fixtures: src/rules/ambient-dns-policy-ineffective/testdata/*.yaml.
import t from 'tap';
import { messages } from '../../src/rules/ambient-dns-policy-ineffective/messages.ts';
import { rule, scope } from '../../src/rules/ambient-dns-policy-ineffective/index.ts';
import { renderFinding } from '../../src/verdict/render.ts';
import { baseCluster, cnp, netpol, ns, pod } from '../fixtures/cluster.ts';
import { makeChange, runRule } from './rule-harness.ts';

const CODE = (kind: string) => `ambient-dns-policy-ineffective/${kind}`;

// Seed 004: the ambient "demo" namespace, where "DNS policy cannot effectively restrict DNS destinations".
const AMBIENT = { 'istio.io/dataplane-mode': 'ambient' };
const demoPods = [pod('demo', 'hello-app-1', { app: 'hello-app' }), pod('demo', 'hello-app-2', { app: 'hello-app' })];
const demo = [ns('demo', AMBIENT), ...demoPods];
const plainDemo = [ns('demo'), ...demoPods];

const kubeDns = [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s:k8s-app': 'kube-dns' } }];
const dnsPolicy = (dns: Record<string, string>[], extra: Record<string, unknown>[] = []) =>
  cnp('demo', 'allow-dns', {
    endpointSelector: { matchLabels: { app: 'hello-app' } },
    egress: [{ toEndpoints: kubeDns, toPorts: [{ ports: [{ port: '53', protocol: 'UDP' }], rules: { dns } }] }, ...extra],
  });
const restricted = dnsPolicy([{ matchName: 'api.github.com' }, { matchPattern: '*.svc.cluster.local' }]);

t.test('seed 004: a rules.dns restriction on ambient pods warns', async (t) => {
  const { findings } = runRule(rule, baseCluster(demo), 'CREATE', restricted);
  t.same(findings, [{
    rule: 'ambient-dns-policy-ineffective',
    code: CODE('policy-restricts'),
    params: {
      restrictions: ['rules.dns api.github.com', 'rules.dns *.svc.cluster.local'], restrictionCount: 2,
      pods: ['demo/hello-app-1', 'demo/hello-app-2'], podCount: 2, synthetic: false, policy: 'CiliumNetworkPolicy demo/allow-dns',
    },
    victims: ['demo/hello-app-1', 'demo/hello-app-2'],
    victimCount: 2,
  }]);
  t.equal(rule.severity, 'I', 'warn only');
});

t.test('toFQDNs on ambient pods warns too', async (t) => {
  const fqdn = dnsPolicy([{ matchPattern: '*' }], [{ toFQDNs: [{ matchName: 'api.github.com' }], toPorts: [{ ports: [{ port: '443', protocol: 'TCP' }] }] }]);
  const f = runRule(rule, baseCluster(demo), 'CREATE', fqdn).findings;
  t.same(f.map((x) => [x.code, x.params?.restrictions, x.params?.restrictionCount]), [[CODE('policy-restricts'), ['toFQDNs api.github.com'], 1]],
    'matchPattern "*" alone is visibility, not a restriction');
});

t.test('visibility-only DNS rules (matchPattern "*") are not a restriction', async (t) => {
  t.same(runRule(rule, baseCluster(demo), 'CREATE', dnsPolicy([{ matchPattern: '*' }])).findings, []);
  t.same(runRule(rule, baseCluster(demo), 'CREATE', dnsPolicy([{ matchName: 'x.example.com' }, { matchPattern: '*' }])).findings, []);
});

t.test('not ambient, or DNS capture opted out: the restriction applies, nothing to say', async (t) => {
  t.same(runRule(rule, baseCluster(plainDemo), 'CREATE', restricted).findings, []);
  const optedOut = [ns('demo', AMBIENT), pod('demo', 'hello-app-1', { app: 'hello-app' }, { annotations: { 'ambient.istio.io/dns-capture': 'false' } })];
  t.same(runRule(rule, baseCluster(optedOut), 'CREATE', restricted).findings, []);
  const sidecars = [ns('demo', { 'istio-injection': 'enabled' }), ...demoPods];
  t.same(runRule(rule, baseCluster(sidecars), 'CREATE', restricted).findings, []);
});

t.test('enrolling a namespace into ambient under an existing DNS restriction warns', async (t) => {
  const f = runRule(rule, baseCluster([...plainDemo, restricted]), 'UPDATE', ns('demo', AMBIENT)).findings;
  t.same(f.map((x) => [x.code, x.params?.namespace, x.params?.restrictions, x.preexisting]), [
    [CODE('namespace-joins-ambient'), 'demo', ['rules.dns api.github.com', 'rules.dns *.svc.cluster.local'], undefined],
  ]);
});

t.test('pre-existing: re-applying the same restriction is reported as pre-existing', async (t) => {
  const relabelled = { ...restricted, metadata: { ...restricted.metadata, labels: { v: '2' } } };
  const f = runRule(rule, baseCluster([...demo, restricted]), 'UPDATE', relabelled).findings;
  t.same(f.map((x) => [x.code, x.preexisting]), [[CODE('policy-keeps-restricting'), true]]);
});

t.test('policies without DNS restrictions and unrelated namespace changes are ignored', async (t) => {
  const l4 = cnp('demo', 'l4', { endpointSelector: {}, egress: [{ toEntities: ['world'], toPorts: [{ ports: [{ port: '443', protocol: 'TCP' }] }] }] });
  t.same(runRule(rule, baseCluster([...demo, restricted]), 'CREATE', l4).findings, []);
  t.same(runRule(rule, baseCluster([...demo, restricted]), 'UPDATE', ns('demo', { ...AMBIENT, team: 'x' })).findings, []);
});

t.test('a restriction for a namespace with no pods yet uses the synthetic pod', async (t) => {
  const policy = cnp('fresh', 'dns', {
    endpointSelector: { matchLabels: { app: 'api' } },
    egress: [{ toEndpoints: kubeDns, toPorts: [{ ports: [{ port: '53', protocol: 'UDP' }], rules: { dns: [{ matchName: 'db.example.com' }] } }] }],
  });
  const f = runRule(rule, baseCluster([ns('fresh', AMBIENT)]), 'CREATE', policy).findings;
  t.same(f.map((x) => [x.code, x.params?.synthetic, x.params?.podCount]), [[CODE('policy-restricts'), true, 1]]);
});

t.test('replicas with the same labels but a different data plane are judged one by one', async (t) => {
  // Mid-migration from sidecars to ambient: a replica created before injection was turned off still
  // runs its sidecar; a replacement of the same ReplicaSet (same labels) is captured by ambient.
  const objs = baseCluster([
    ns('demo', AMBIENT),
    pod('demo', 'hello-app-1', { app: 'hello-app' }, { sidecar: true }),
    pod('demo', 'hello-app-2', { app: 'hello-app' }),
  ]);
  const f = runRule(rule, objs, 'CREATE', restricted).findings;
  t.same(f.map((x) => [x.code, x.victims]), [[CODE('policy-restricts'), ['demo/hello-app-2']]]);
  // Likewise a replica opted out of DNS capture by annotation is no victim, its sibling is.
  const optOut = baseCluster([
    ns('demo', AMBIENT),
    pod('demo', 'hello-app-1', { app: 'hello-app' }, { annotations: { 'ambient.istio.io/dns-capture': 'false' } }),
    pod('demo', 'hello-app-2', { app: 'hello-app' }),
  ]);
  t.same(runRule(rule, optOut, 'CREATE', restricted).findings[0]?.victims, ['demo/hello-app-2']);
});

t.test('Istio before 1.25 (istiod image tag): ambient does not capture DNS unless the pod asks', async (t) => {
  const istiod = (tag: string) => ({
    apiVersion: 'apps/v1', kind: 'Deployment',
    metadata: { name: 'istiod', namespace: 'istio-system', labels: { app: 'istiod' } },
    spec: { template: { metadata: { labels: { app: 'istiod' } }, spec: { containers: [{ name: 'discovery', image: `docker.io/istio/pilot:${tag}` }] } } },
  });
  t.same(runRule(rule, baseCluster([...demo, istiod('1.24.3')] as never), 'CREATE', restricted).findings, [], '1.24: no capture by default');
  const askedFor = [ns('demo', AMBIENT), pod('demo', 'hello-app-1', { app: 'hello-app' }, { annotations: { 'ambient.istio.io/dns-capture': 'true' } })];
  const codes = (objs: never) => runRule(rule, objs, 'CREATE', restricted).findings.map((f) => f.code);
  t.same(codes(baseCluster([...askedFor, istiod('1.24.3')] as never) as never), [CODE('policy-restricts')], '1.24: the pod asked for capture');
  t.same(codes(baseCluster([...demo, istiod('1.25.0')] as never) as never), [CODE('policy-restricts')], '1.25: captured by default');
});

t.test("restrictions of every policy selecting the pods are named, the request's first; two shown, the rest counted", async (t) => {
  const other = cnp('demo', 'fqdn', { endpointSelector: {}, egress: [{ toFQDNs: [{ matchName: 'a.example.com' }, { matchPattern: '*.b.example.com' }] }] });
  const f = runRule(rule, baseCluster([...demo, other]), 'CREATE', restricted).findings;
  t.same(f.map((x) => [x.params?.restrictions, x.params?.restrictionCount]), [[['rules.dns api.github.com', 'rules.dns *.svc.cluster.local'], 4]]);
});

t.test('scope: from the request alone', async (t) => {
  t.same(scope(makeChange('CREATE', restricted)), {
    by: 'policy', policy: 'CiliumNetworkPolicy demo/allow-dns', restrictions: ['rules.dns api.github.com', 'rules.dns *.svc.cluster.local'],
  });
  t.equal(scope(makeChange('CREATE', dnsPolicy([{ matchPattern: '*' }]))), undefined, 'visibility only: nothing to judge');
  t.equal(scope(makeChange('DELETE', undefined, restricted)), undefined, 'a deletion restricts nothing');
  t.equal(scope(makeChange('CREATE', netpol('demo', 'np', { podSelector: {}, policyTypes: ['Egress'] }))), undefined, 'NetworkPolicy has no DNS rules');
  t.same(scope(makeChange('UPDATE', ns('demo', AMBIENT), ns('demo'))), { by: 'namespace', namespace: 'demo' });
  t.equal(scope(makeChange('UPDATE', ns('demo', { ...AMBIENT, team: 'x' }), ns('demo', AMBIENT))), undefined, 'already ambient');
});

// Golden wording, one per code: the text users read in kubectl, check and audit (unchanged by the move to codes).
t.test('wording', async (t) => {
  const fix =
    'restrict DNS where it is resolved (ztunnel, or Istio ServiceEntry/egress policy), or opt the pods out of ambient DNS capture with the annotation ambient.istio.io/dns-capture: "false"';
  const say = (f: ReturnType<typeof messages.finding>) => renderFinding(f, rule.messages);
  const p = { restrictions: ['rules.dns a', 'toFQDNs b'], restrictionCount: 3, pods: ['demo/a-1', 'demo/a-2', 'demo/a-3'], podCount: 7, synthetic: false };
  const tail =
    "DNS restrictions (rules.dns a, toFQDNs b and 1 more) on 7 ambient pods whose DNS ztunnel captures: lookups ztunnel answers never reach Cilium's DNS proxy, " +
    'so they do not apply as written: demo/a-1, demo/a-2, demo/a-3 and 4 more';
  t.same(say(messages.finding('policy-restricts', { ...p, policy: 'CiliumNetworkPolicy demo/x' })), { message: `CiliumNetworkPolicy demo/x: ${tail}`, fix });
  t.same(say(messages.finding('policy-keeps-restricting', { ...p, policy: 'CiliumClusterwideNetworkPolicy x' })), { message: `CiliumClusterwideNetworkPolicy x: ${tail}`, fix });
  t.same(say(messages.finding('namespace-joins-ambient', { ...p, restrictions: ['toFQDNs b'], restrictionCount: 1, pods: ['fresh/x'], podCount: 1, synthetic: true, namespace: 'fresh' })), {
    message:
      "Namespace fresh: DNS restrictions (toFQDNs b) on 1 ambient pod (pods this policy would select) whose DNS ztunnel captures: lookups ztunnel answers never reach Cilium's DNS proxy, " +
      'so they do not apply as written: fresh/x',
    fix,
  });
  t.same(messages.codes.length, 3, 'one golden test per code');
});
