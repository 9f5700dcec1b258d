import t from 'tap';
import { rule } from '../../src/rules/l7-proxy-disabled.ts';
import { baseCluster, ccnp, ciliumConfigMap, cnp, HEALTHY_CILIUM_CONFIG, ns, pod } from '../fixtures/cluster.ts';
import { runRule } from './rule-harness.ts';

const noProxy = { ...HEALTHY_CILIUM_CONFIG, 'enable-l7-proxy': 'false' };
const apps = [ns('blue'), pod('blue', 'httpbin-1', { app: 'httpbin' }), pod('blue', 'httpbin-2', { app: 'httpbin' })];
const httpPolicy = cnp('blue', 'httpbin-l7', {
  endpointSelector: { matchLabels: { app: 'httpbin' } },
  ingress: [{ toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{ method: 'GET', path: '/ip' }] } }] }],
});
const l4Policy = cnp('blue', 'httpbin-l4', {
  endpointSelector: { matchLabels: { app: 'httpbin' } },
  ingress: [{ toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }] }],
});

t.test('an HTTP rule while enable-l7-proxy is "false" is reported (warn: the agent rejects it)', async (t) => {
  t.equal(rule.severity, 'I');
  const { findings } = runRule(rule, baseCluster(apps, noProxy), 'CREATE', httpPolicy);
  t.equal(findings.length, 1);
  const f = findings[0]!;
  t.equal(f.rule, 'l7-proxy-disabled');
  t.match(f.message, /CiliumNetworkPolicy blue\/httpbin-l7 has L7 rules \(http\) but enable-l7-proxy is "false"/);
  t.match(f.message, /rejects the whole policy/);
  t.same(f.victims, ['blue/httpbin-1', 'blue/httpbin-2']);
  t.notOk(f.preexisting);
});

t.test('DNS rules count as L7 too', async (t) => {
  const dns = ccnp('dns-visibility', {
    endpointSelector: {},
    egress: [{ toEndpoints: [{ matchLabels: { 'k8s:k8s-app': 'kube-dns' } }], toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }], rules: { dns: [{ matchPattern: '*' }] } }] }],
  });
  const { findings } = runRule(rule, baseCluster(apps, noProxy), 'CREATE', dns);
  t.equal(findings.length, 1);
  t.match(findings[0]!.message, /\(dns\)/);
});

t.test('not caught: the proxy enabled (explicitly or by default), or an L3/L4-only policy', async (t) => {
  t.same(runRule(rule, baseCluster(apps), 'CREATE', httpPolicy).findings, []);
  const { 'enable-l7-proxy': _drop, ...unset } = HEALTHY_CILIUM_CONFIG;
  t.same(runRule(rule, baseCluster(apps, unset), 'CREATE', httpPolicy).findings, []);
  t.same(runRule(rule, baseCluster(apps, noProxy), 'CREATE', l4Policy).findings, []);
});

t.test('an UPDATE of a policy that already had L7 rules is pre-existing', async (t) => {
  const { findings } = runRule(rule, baseCluster([...apps, httpPolicy], noProxy), 'UPDATE', httpPolicy);
  t.equal(findings.length, 1);
  t.equal(findings[0]!.preexisting, true);
  // Adding L7 to an L4 policy is new.
  const upgraded = { ...httpPolicy, metadata: { ...httpPolicy.metadata, name: 'httpbin-l4' } };
  const r = runRule(rule, baseCluster([...apps, l4Policy], noProxy), 'UPDATE', upgraded);
  t.notOk(r.findings[0]?.preexisting);
});

t.test('turning the proxy off while L7 policies exist lists them', async (t) => {
  const more = [1, 2, 3, 4].map((i) =>
    cnp('blue', `l7-${i}`, { endpointSelector: { matchLabels: { app: 'httpbin' } }, ingress: [{ toPorts: [{ ports: [{ port: '80' }], rules: { http: [{}] } }] }] }),
  );
  const objs = baseCluster([...apps, l4Policy, ...more]);
  const { findings } = runRule(rule, objs, 'UPDATE', ciliumConfigMap(noProxy));
  t.equal(findings.length, 1);
  t.match(findings[0]!.message, /setting enable-l7-proxy to "false" makes the Cilium agent reject 4 policies with L7 rules: CiliumNetworkPolicy blue\/l7-1, CiliumNetworkPolicy blue\/l7-2, CiliumNetworkPolicy blue\/l7-3 and 1 more/);
  t.notMatch(findings[0]!.message, /httpbin-l4/);
  t.equal(findings[0]!.victimCount, 2);
  // No L7 policies, or the proxy stays on: nothing to say.
  t.same(runRule(rule, baseCluster([...apps, l4Policy]), 'UPDATE', ciliumConfigMap(noProxy)).findings, []);
  t.same(runRule(rule, objs, 'UPDATE', ciliumConfigMap({ ...HEALTHY_CILIUM_CONFIG, 'cni-exclusive': 'true' })).findings, []);
});
