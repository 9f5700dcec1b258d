import t from 'tap';
import { rule } from '../../src/rules/ambient-dns-policy-ineffective.ts';
import { baseCluster, cnp, ns, pod } from '../fixtures/cluster.ts';
import { runRule } from './rule-harness.ts';

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
  t.equal(findings.length, 1);
  const f = findings[0]!;
  t.equal(f.rule, 'ambient-dns-policy-ineffective');
  t.notOk(f.preexisting);
  t.match(f.message, /CiliumNetworkPolicy demo\/allow-dns: DNS restrictions \(rules\.dns api\.github\.com, rules\.dns \*\.svc\.cluster\.local\) on 2 ambient pods/);
  t.same(f.victims, ['demo/hello-app-1', 'demo/hello-app-2']);
  t.match(f.fix, /ambient\.istio\.io\/dns-capture: "false"/);
  t.equal(rule.severity, 'I', 'warn only');
});

t.test('toFQDNs on ambient pods warns too', async (t) => {
  const fqdn = dnsPolicy([{ matchPattern: '*' }], [{ toFQDNs: [{ matchName: 'api.github.com' }], toPorts: [{ ports: [{ port: '443', protocol: 'TCP' }] }] }]);
  const f = runRule(rule, baseCluster(demo), 'CREATE', fqdn).findings;
  t.equal(f.length, 1);
  t.match(f[0]!.message, /toFQDNs api\.github\.com/);
  t.notMatch(f[0]!.message, /rules\.dns/, 'matchPattern "*" alone is visibility, not a restriction');
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
  t.equal(f.length, 1);
  t.notOk(f[0]!.preexisting);
  t.match(f[0]!.message, /^Namespace demo: DNS restrictions \(rules\.dns api\.github\.com/);
});

t.test('pre-existing: re-applying the same restriction is reported as pre-existing', async (t) => {
  const relabelled = { ...restricted, metadata: { ...restricted.metadata, labels: { v: '2' } } };
  const f = runRule(rule, baseCluster([...demo, restricted]), 'UPDATE', relabelled).findings;
  t.equal(f.length, 1);
  t.equal(f[0]!.preexisting, true);
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
  t.equal(f.length, 1);
  t.match(f[0]!.message, /pods this policy would select/);
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
  t.equal(f.length, 1);
  t.same(f[0]?.victims, ['demo/hello-app-2']);
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
  t.equal(runRule(rule, baseCluster([...askedFor, istiod('1.24.3')] as never), 'CREATE', restricted).findings.length, 1, '1.24: the pod asked for capture');
  t.equal(runRule(rule, baseCluster([...demo, istiod('1.25.0')] as never), 'CREATE', restricted).findings.length, 1, '1.25: captured by default');
});
