// l7-proxy-disabled: findings asserted as data (code, params, victims, preexisting); one golden test per
// code for the wording. The same cases as fixtures: src/rules/l7-proxy-disabled/testdata/*.yaml.
import t from 'tap';
import { rule, scope } from '../../src/rules/l7-proxy-disabled/index.ts';
import { messages } from '../../src/rules/l7-proxy-disabled/messages.ts';
import { renderFinding } from '../../src/verdict/render.ts';
import { baseCluster, ccnp, ciliumConfigMap, cnp, HEALTHY_CILIUM_CONFIG, ns, pod } from '../fixtures/cluster.ts';
import { makeChange, runRule } from './rule-harness.ts';

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
  t.same(findings, [
    {
      rule: 'l7-proxy-disabled',
      code: 'l7-proxy-disabled/policy-rejected',
      params: { policy: 'CiliumNetworkPolicy blue/httpbin-l7', protocols: ['http'] },
      victims: ['blue/httpbin-1', 'blue/httpbin-2'],
      victimCount: 2,
    },
  ]);
});

t.test('DNS rules count as L7 too', async (t) => {
  const dns = ccnp('dns-visibility', {
    endpointSelector: {},
    egress: [{ toEndpoints: [{ matchLabels: { 'k8s:k8s-app': 'kube-dns' } }], toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }], rules: { dns: [{ matchPattern: '*' }] } }] }],
  });
  const { findings } = runRule(rule, baseCluster(apps, noProxy), 'CREATE', dns);
  t.same(findings.map((f) => [f.code, f.params?.protocols]), [['l7-proxy-disabled/policy-rejected', ['dns']]]);
});

t.test('not caught: the proxy enabled (explicitly or by default), or an L3/L4-only policy', async (t) => {
  t.same(runRule(rule, baseCluster(apps), 'CREATE', httpPolicy).findings, []);
  const { 'enable-l7-proxy': _drop, ...unset } = HEALTHY_CILIUM_CONFIG;
  t.same(runRule(rule, baseCluster(apps, unset), 'CREATE', httpPolicy).findings, []);
  t.same(runRule(rule, baseCluster(apps, noProxy), 'CREATE', l4Policy).findings, []);
});

t.test('an UPDATE of a policy that already had L7 rules is pre-existing', async (t) => {
  const { findings } = runRule(rule, baseCluster([...apps, httpPolicy], noProxy), 'UPDATE', httpPolicy);
  t.same(findings.map((f) => [f.code, f.preexisting]), [['l7-proxy-disabled/policy-still-rejected', true]]);
  // Adding L7 to an L4 policy is new.
  const upgraded = { ...httpPolicy, metadata: { ...httpPolicy.metadata, name: 'httpbin-l4' } };
  const r = runRule(rule, baseCluster([...apps, l4Policy], noProxy), 'UPDATE', upgraded);
  t.same(r.findings.map((f) => [f.code, f.preexisting]), [['l7-proxy-disabled/policy-rejected', undefined]]);
});

t.test('turning the proxy off while L7 policies exist lists them', async (t) => {
  const more = [1, 2, 3, 4].map((i) =>
    cnp('blue', `l7-${i}`, { endpointSelector: { matchLabels: { app: 'httpbin' } }, ingress: [{ toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{}] } }] }] }),
  );
  const objs = baseCluster([...apps, l4Policy, ...more]);
  const { findings } = runRule(rule, objs, 'UPDATE', ciliumConfigMap(noProxy));
  t.same(findings, [
    {
      rule: 'l7-proxy-disabled',
      code: 'l7-proxy-disabled/proxy-turned-off',
      // The L4 policy is not one of them.
      params: { policies: ['CiliumNetworkPolicy blue/l7-1', 'CiliumNetworkPolicy blue/l7-2', 'CiliumNetworkPolicy blue/l7-3'], policyCount: 4 },
      victims: ['blue/httpbin-1', 'blue/httpbin-2'],
      victimCount: 2,
    },
  ]);
  // No L7 policies, or the proxy stays on: nothing to say.
  t.same(runRule(rule, baseCluster([...apps, l4Policy]), 'UPDATE', ciliumConfigMap(noProxy)).findings, []);
  t.same(runRule(rule, objs, 'UPDATE', ciliumConfigMap({ ...HEALTHY_CILIUM_CONFIG, 'cni-exclusive': 'true' })).findings, []);
});

t.test('scope: from the request alone', async (t) => {
  t.match(scope(makeChange('CREATE', httpPolicy)), { by: 'policy', ref: 'CiliumNetworkPolicy blue/httpbin-l7', update: false });
  t.same(scope(makeChange('UPDATE', ciliumConfigMap(noProxy))), { by: 'cilium-config' });
  t.equal(scope(makeChange('DELETE', undefined, httpPolicy)), undefined, 'a deleted policy is rejected by no one');
  t.equal(scope(makeChange('CREATE', ns('blue'))), undefined);
  const otherCm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'istio', namespace: 'istio-system' }, data: {} };
  t.equal(scope(makeChange('UPDATE', otherCm)), undefined);
});

// Golden wording, one per code: the text users read in kubectl, check and audit (unchanged by the move to codes).
t.test('wording', async (t) => {
  const say = (f: ReturnType<typeof messages.finding>) => renderFinding(f, rule.messages);
  const policy = { policy: 'CiliumNetworkPolicy blue/httpbin-l7', protocols: ['http', 'kafka'] };
  const rejected = {
    message: 'CiliumNetworkPolicy blue/httpbin-l7 has L7 rules (http, kafka) but enable-l7-proxy is "false": the Cilium agent rejects the whole policy, none of its rules apply',
    fix: 'remove the toPorts[].rules sections (keep L3/L4 only), or set enable-l7-proxy: "true" in kube-system/cilium-config',
  };
  t.same(say(messages.finding('policy-rejected', policy)), rejected);
  t.same(say(messages.finding('policy-still-rejected', policy, { preexisting: true })), rejected);
  t.same(say(messages.finding('proxy-turned-off', { policies: ['CiliumNetworkPolicy blue/l7-1'], policyCount: 1 })), {
    message: 'setting enable-l7-proxy to "false" makes the Cilium agent reject 1 policy with L7 rules: CiliumNetworkPolicy blue/l7-1',
    fix: 'keep enable-l7-proxy: "true", or first remove the L7 rules (toPorts[].rules) from CiliumNetworkPolicy blue/l7-1',
  });
  t.equal(messages.codes.length, 3, 'one golden test per code');
});
