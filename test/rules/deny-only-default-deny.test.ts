// deny-only-default-deny: findings asserted as data (code, params, victims, preexisting); one golden test
// per code for the wording. More cases as fixtures: src/rules/deny-only-default-deny/testdata/*.yaml.
import t from 'tap';
import { rule, scope } from '../../src/rules/deny-only-default-deny/index.ts';
import { messages } from '../../src/rules/deny-only-default-deny/messages.ts';
import { renderFinding } from '../../src/verdict/render.ts';
import { reachable } from '../../src/policy/index.ts';
import { baseCluster, ccnp, cnp, findPod, HEALTHY_CILIUM_CONFIG, netpol, ns, pod } from '../fixtures/cluster.ts';
import { makeChange, runRule } from './rule-harness.ts';

const apps = [
  ns('apps'),
  pod('apps', 'web-1', { app: 'web' }),
  pod('apps', 'web-2', { app: 'web' }),
  pod('apps', 'prometheus-0', { app: 'prometheus' }),
];
const deny10255 = [{ toPorts: [{ ports: [{ port: '10255', protocol: 'TCP' }] }] }];

t.test('cilium#14992: an egressDeny-only policy puts its pods into egress default deny', async (t) => {
  const policy = cnp('apps', 'block-10255', {
    endpointSelector: { matchExpressions: [{ key: 'k8s:app', operator: 'NotIn', values: ['prometheus'] }] },
    egressDeny: deny10255,
  });
  const { findings } = runRule(rule, baseCluster(apps), 'CREATE', policy);
  t.same(findings, [
    {
      rule: 'deny-only-default-deny',
      code: 'deny-only-default-deny/puts-pods-in-default-deny',
      params: { policy: 'CiliumNetworkPolicy apps/block-10255', direction: 'egress', pods: ['apps/web-1', 'apps/web-2'], podCount: 2, nonDefaultDeny: true, synthetic: false },
      victims: ['apps/web-1', 'apps/web-2'],
      victimCount: 2,
    },
  ]);
});

t.test('the CCNP of the issue selects pods in every namespace', async (t) => {
  const policy = ccnp('block-10255-egress', {
    endpointSelector: { matchExpressions: [{ key: 'k8s:app', operator: 'NotIn', values: ['prometheus'] }] },
    egressDeny: deny10255,
  });
  const { findings } = runRule(rule, baseCluster(apps), 'CREATE', policy);
  t.equal(findings.length, 1);
  t.ok(findings[0]!.victims!.includes('apps/web-1'));
  t.notOk(findings[0]!.victims!.includes('apps/prometheus-0'));
  t.ok(findings[0]!.victimCount! >= 5); // web x2, coredns x2, istiod
});

t.test('not caught: enableDefaultDeny.egress false, an allow section, or pods already enforced by an allow policy', async (t) => {
  const withFlag = cnp('apps', 'block', { endpointSelector: {}, egressDeny: deny10255, enableDefaultDeny: { egress: false } });
  t.same(runRule(rule, baseCluster(apps), 'CREATE', withFlag).findings, []);

  const withAllow = cnp('apps', 'block', { endpointSelector: {}, egressDeny: deny10255, egress: [{ toEntities: ['all'] }] });
  t.same(runRule(rule, baseCluster(apps), 'CREATE', withAllow).findings, []);

  const existingAllow = netpol('apps', 'egress-allow', { podSelector: {}, policyTypes: ['Egress'], egress: [{}] });
  const denyOnly = cnp('apps', 'block', { endpointSelector: {}, egressDeny: deny10255 });
  t.same(runRule(rule, baseCluster([...apps, existingAllow]), 'CREATE', denyOnly).findings, []);
});

t.test('when the agent ignores enableDefaultDeny the flag does not help, and the fix says so', async (t) => {
  const withFlag = cnp('apps', 'block', { endpointSelector: { matchLabels: { app: 'web' } }, egressDeny: deny10255, enableDefaultDeny: { egress: false } });
  const cfg = { ...HEALTHY_CILIUM_CONFIG, 'enable-non-default-deny-policies': 'false' };
  const objs = baseCluster(apps, cfg);
  const { findings } = runRule(rule, objs, 'CREATE', withFlag);
  t.same(findings.map((f) => [f.code, f.params?.direction, f.params?.nonDefaultDeny]), [['deny-only-default-deny/puts-pods-in-default-deny', 'egress', false]]);
});

t.test('ingressDeny only: ingress default deny', async (t) => {
  const policy = cnp('apps', 'no-ssh', { endpointSelector: { matchLabels: { app: 'web' } }, ingressDeny: [{ toPorts: [{ ports: [{ port: '22' }] }] }] });
  const { findings } = runRule(rule, baseCluster(apps), 'CREATE', policy);
  t.same(findings.map((f) => [f.code, f.params?.direction, f.params?.podCount, f.params?.nonDefaultDeny]), [['deny-only-default-deny/puts-pods-in-default-deny', 'ingress', 2, true]]);
});

t.test('already in deny-only default deny: pre-existing', async (t) => {
  const first = cnp('apps', 'block-a', { endpointSelector: { matchLabels: { app: 'web' } }, egressDeny: deny10255 });
  const second = cnp('apps', 'block-b', { endpointSelector: { matchLabels: { app: 'web' } }, egressDeny: [{ toPorts: [{ ports: [{ port: '25' }] }] }] });
  const { findings } = runRule(rule, baseCluster([...apps, first]), 'CREATE', second);
  t.same(findings.map((f) => [f.code, f.preexisting, f.victims]), [['deny-only-default-deny/already-default-deny', true, ['apps/web-1', 'apps/web-2']]]);
});

t.test('an UPDATE that removes the allow section leaves only the deny: caught', async (t) => {
  const old = cnp('apps', 'web', { endpointSelector: { matchLabels: { app: 'web' } }, egressDeny: deny10255, egress: [{ toEntities: ['all'] }] });
  const updated = cnp('apps', 'web', { endpointSelector: { matchLabels: { app: 'web' } }, egressDeny: deny10255 });
  const { findings } = runRule(rule, baseCluster([...apps, old]), 'UPDATE', updated);
  t.same(findings.map((f) => [f.code, f.preexisting]), [['deny-only-default-deny/puts-pods-in-default-deny', undefined]]);
});

t.test('enable-policy always/never: deny-only rules change nothing', async (t) => {
  const policy = cnp('apps', 'block', { endpointSelector: {}, egressDeny: deny10255 });
  for (const mode of ['always', 'never']) {
    const objs = baseCluster(apps, { ...HEALTHY_CILIUM_CONFIG, 'enable-policy': mode });
    t.same(runRule(rule, objs, 'CREATE', policy).findings, [], mode);
  }
});

t.test('a new namespace with no pods yet is judged on the synthetic pod', async (t) => {
  const policy = cnp('fresh', 'block', { endpointSelector: { matchLabels: { app: 'api' } }, egressDeny: deny10255 });
  const { findings } = runRule(rule, baseCluster([ns('fresh')]), 'CREATE', policy);
  t.same(findings.map((f) => [f.code, f.params?.synthetic, f.params?.podCount]), [['deny-only-default-deny/puts-pods-in-default-deny', true, 1]]);
});

t.test('an UPDATE of another policy that drops the last allow section leaves the deny-only rule enforcing: caught', async (t) => {
  // block-ssh (ingressDeny only) was harmless while web-ingress enforced ingress with its allows. Once
  // web-ingress keeps only egress rules, block-ssh alone holds the web pods in ingress default deny.
  const blockSsh = cnp('apps', 'block-ssh', { endpointSelector: {}, ingressDeny: [{ toPorts: [{ ports: [{ port: '22' }] }] }] });
  const webIngress = cnp('apps', 'web-ingress', { endpointSelector: { matchLabels: { app: 'web' } }, ingress: [{ fromEntities: ['cluster'] }] });
  const objs = baseCluster([...apps, blockSsh, webIngress]);
  const egressOnly = cnp('apps', 'web-ingress', { endpointSelector: { matchLabels: { app: 'web' } }, egress: [{ toEntities: ['all'] }] });
  const { findings } = runRule(rule, objs, 'UPDATE', egressOnly);
  t.same(findings, [
    {
      rule: 'deny-only-default-deny',
      code: 'deny-only-default-deny/update-leaves-deny-only',
      params: {
        policy: 'CiliumNetworkPolicy apps/web-ingress', direction: 'ingress', pods: ['apps/web-1', 'apps/web-2'], podCount: 2, nonDefaultDeny: true,
        denyPolicies: ['CiliumNetworkPolicy apps/block-ssh'], denyPolicyCount: 1,
      },
      victims: ['apps/web-1', 'apps/web-2'],
      victimCount: 2,
    },
  ]);
  // Narrowing the allow policy's selector does the same to the pods it lets go.
  const narrowed = cnp('apps', 'web-ingress', { endpointSelector: { matchLabels: { app: 'web', tier: 'front' } }, ingress: [{ fromEntities: ['cluster'] }] });
  t.same(runRule(rule, objs, 'UPDATE', narrowed).findings.map((f) => f.code), ['deny-only-default-deny/update-leaves-deny-only']);
  // An update that keeps an allow section is fine.
  const relabelled = cnp('apps', 'web-ingress', { endpointSelector: { matchLabels: { app: 'web' } }, ingress: [{ fromEntities: ['cluster'] }, { fromEntities: ['host'] }] });
  t.same(runRule(rule, objs, 'UPDATE', relabelled).findings, []);
});

t.test('enableDefaultDeny.ingress:false on the allow policy, allows kept: its allows still apply, not caught', async (t) => {
  // block-ssh enforces ingress for the web pods; web-ingress's cluster allow applies whether or not it
  // enforces the direction itself, so the update changes no traffic.
  const withClient = [...apps, pod('apps', 'client-1', { app: 'client' })];
  const blockSsh = cnp('apps', 'block-ssh', { endpointSelector: {}, ingressDeny: [{ toPorts: [{ ports: [{ port: '22' }] }] }] });
  const web = { matchLabels: { app: 'web' } };
  const webIngress = cnp('apps', 'web-ingress', { endpointSelector: web, ingress: [{ fromEntities: ['cluster'] }] });
  const objs = baseCluster([...withClient, blockSsh, webIngress]);
  const relaxed = cnp('apps', 'web-ingress', { endpointSelector: web, enableDefaultDeny: { ingress: false }, ingress: [{ fromEntities: ['cluster'] }] });
  const run = runRule(rule, objs, 'UPDATE', relaxed);
  const client = findPod(run.after as never, 'apps/client-1');
  const web1 = findPod(run.after as never, 'apps/web-1');
  t.ok(reachable(run.before, client, { type: 'pod', pod: web1 }, 8080, 'TCP'), 'engine: allowed before');
  t.ok(reachable(run.after, client, { type: 'pod', pod: web1 }, 8080, 'TCP'), 'engine: still allowed after');
  t.same(run.findings, []);
  // Creating block-ssh next to an allow policy that never enforced ingress: the allows apply too.
  const objs2 = baseCluster([...withClient, relaxed]);
  t.same(runRule(rule, objs2, 'CREATE', blockSsh).findings.filter((f) => f.victims?.includes('apps/web-1')), []);
  // Dropping the allows while relaxing still leaves the web pods to block-ssh alone: caught.
  const emptied = cnp('apps', 'web-ingress', { endpointSelector: web, enableDefaultDeny: { ingress: false }, egress: [{ toEntities: ['all'] }] });
  const f = runRule(rule, objs, 'UPDATE', emptied).findings;
  t.same(f.map((x) => [x.code, x.victims]), [['deny-only-default-deny/update-leaves-deny-only', ['apps/web-1', 'apps/web-2']]]);
});

t.test('scope: from the request alone', async (t) => {
  const policy = cnp('apps', 'block', { endpointSelector: {}, egressDeny: deny10255 });
  t.match(scope(makeChange('CREATE', policy)), { ref: 'CiliumNetworkPolicy apps/block', old: undefined });
  t.match(scope(makeChange('UPDATE', policy, policy)), { ref: 'CiliumNetworkPolicy apps/block', old: { metadata: { name: 'block' } } });
  t.equal(scope(makeChange('CREATE', netpol('apps', 'np', { podSelector: {} }))), undefined, 'NetworkPolicy has no deny sections');
});

// Golden wording, one per code: the text users read in kubectl, check and audit (unchanged by the move to codes).
t.test('wording', async (t) => {
  const say = (f: ReturnType<typeof messages.finding>) => renderFinding(f, rule.messages);
  const p = { policy: 'CiliumNetworkPolicy apps/block', direction: 'egress', pods: ['apps/a', 'apps/b', 'apps/c'], podCount: 4, nonDefaultDeny: true, synthetic: false } as const;
  t.same(say(messages.finding('puts-pods-in-default-deny', p)), {
    message:
      'CiliumNetworkPolicy apps/block has only egressDeny and puts 4 pods into egress default deny: all egress traffic no other policy allows is dropped, not just the denied traffic: apps/a, apps/b, apps/c and 1 more',
    fix: 'add enableDefaultDeny: {egress: false} to the rule of CiliumNetworkPolicy apps/block (Cilium >= 1.16) so only the egressDeny entries drop traffic, or add the egress allows these pods need',
  });
  t.same(say(messages.finding('already-default-deny', { ...p, direction: 'ingress', pods: ['apps/a'], podCount: 1, nonDefaultDeny: false, synthetic: true })), {
    message: '1 pod (pods this policy would select) selected by CiliumNetworkPolicy apps/block are already in ingress default deny from deny-only rules: apps/a',
    fix: 'enable-non-default-deny-policies is off, so enableDefaultDeny is ignored: add the ingress allows these pods need (e.g. ingress: [{fromEntities: [all]}])',
  });
  const left = { ...p, direction: 'ingress', denyPolicies: ['CiliumNetworkPolicy apps/x', 'CiliumClusterwideNetworkPolicy y'], denyPolicyCount: 3 } as const;
  const shown = 'CiliumNetworkPolicy apps/x, CiliumClusterwideNetworkPolicy y and 1 more';
  t.same(say(messages.finding('update-leaves-deny-only', left)), {
    message:
      `CiliumNetworkPolicy apps/block no longer enforces ingress for 4 pods, which stay in ingress default deny through deny-only rules (${shown}): ` +
      'all ingress traffic no other policy allows is dropped, not just the denied traffic: apps/a, apps/b, apps/c and 1 more',
    fix: `keep a ingress allow for these pods in CiliumNetworkPolicy apps/block, or add enableDefaultDeny: {ingress: false} to ${shown} (Cilium >= 1.16) so only its ingressDeny entries drop traffic`,
  });
  t.same(say(messages.finding('update-leaves-deny-only', { ...left, nonDefaultDeny: false })).fix,
    `keep a ingress allow for these pods in CiliumNetworkPolicy apps/block (enable-non-default-deny-policies is off, so enableDefaultDeny on ${shown} is ignored)`);
  t.equal(messages.codes.length, 3, 'one golden test per code');
});
