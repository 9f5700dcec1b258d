import t from 'tap';
import { rule } from '../../src/rules/deny-only-default-deny.ts';
import { reachable } from '../../src/policy/index.ts';
import { baseCluster, ccnp, cnp, findPod, HEALTHY_CILIUM_CONFIG, netpol, ns, pod } from '../fixtures/cluster.ts';
import { runRule } from './rule-harness.ts';

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
  t.equal(findings.length, 1);
  const f = findings[0]!;
  t.equal(f.rule, 'deny-only-default-deny');
  t.notOk(f.preexisting);
  t.match(f.message, /CiliumNetworkPolicy apps\/block-10255 has only egressDeny and puts 2 pods into egress default deny/);
  t.same(f.victims, ['apps/web-1', 'apps/web-2']);
  t.match(f.fix, /enableDefaultDeny: \{egress: false\}/);
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
  t.equal(findings.length, 1);
  t.match(findings[0]!.fix, /enable-non-default-deny-policies is off/);
  t.match(findings[0]!.fix, /toEntities: \[all\]/);
});

t.test('ingressDeny only: ingress default deny', async (t) => {
  const policy = cnp('apps', 'no-ssh', { endpointSelector: { matchLabels: { app: 'web' } }, ingressDeny: [{ toPorts: [{ ports: [{ port: '22' }] }] }] });
  const { findings } = runRule(rule, baseCluster(apps), 'CREATE', policy);
  t.equal(findings.length, 1);
  t.match(findings[0]!.message, /has only ingressDeny and puts 2 pods into ingress default deny/);
  t.match(findings[0]!.fix, /enableDefaultDeny: \{ingress: false\}/);
});

t.test('already in deny-only default deny: pre-existing', async (t) => {
  const first = cnp('apps', 'block-a', { endpointSelector: { matchLabels: { app: 'web' } }, egressDeny: deny10255 });
  const second = cnp('apps', 'block-b', { endpointSelector: { matchLabels: { app: 'web' } }, egressDeny: [{ toPorts: [{ ports: [{ port: '25' }] }] }] });
  const { findings } = runRule(rule, baseCluster([...apps, first]), 'CREATE', second);
  t.equal(findings.length, 1);
  t.equal(findings[0]!.preexisting, true);
});

t.test('an UPDATE that removes the allow section leaves only the deny: caught', async (t) => {
  const old = cnp('apps', 'web', { endpointSelector: { matchLabels: { app: 'web' } }, egressDeny: deny10255, egress: [{ toEntities: ['all'] }] });
  const updated = cnp('apps', 'web', { endpointSelector: { matchLabels: { app: 'web' } }, egressDeny: deny10255 });
  const { findings } = runRule(rule, baseCluster([...apps, old]), 'UPDATE', updated);
  t.equal(findings.length, 1);
  t.notOk(findings[0]!.preexisting);
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
  t.equal(findings.length, 1);
  t.match(findings[0]!.message, /pods this policy would select/);
});

t.test('an UPDATE of another policy that drops the last allow section leaves the deny-only rule enforcing: caught', async (t) => {
  // block-ssh (ingressDeny only) was harmless while web-ingress enforced ingress with its allows. Once
  // web-ingress keeps only egress rules, block-ssh alone holds the web pods in ingress default deny.
  const blockSsh = cnp('apps', 'block-ssh', { endpointSelector: {}, ingressDeny: [{ toPorts: [{ ports: [{ port: '22' }] }] }] });
  const webIngress = cnp('apps', 'web-ingress', { endpointSelector: { matchLabels: { app: 'web' } }, ingress: [{ fromEntities: ['cluster'] }] });
  const objs = baseCluster([...apps, blockSsh, webIngress]);
  const egressOnly = cnp('apps', 'web-ingress', { endpointSelector: { matchLabels: { app: 'web' } }, egress: [{ toEntities: ['all'] }] });
  const { findings } = runRule(rule, objs, 'UPDATE', egressOnly);
  t.equal(findings.length, 1);
  t.notOk(findings[0]?.preexisting);
  t.same(findings[0]?.victims, ['apps/web-1', 'apps/web-2']);
  t.match(findings[0]?.message ?? '', /CiliumNetworkPolicy apps\/web-ingress no longer enforces ingress for 2 pods/);
  t.match(findings[0]?.message ?? '', /CiliumNetworkPolicy apps\/block-ssh/);
  t.match(findings[0]?.fix ?? '', /enableDefaultDeny: \{ingress: false\} to CiliumNetworkPolicy apps\/block-ssh/);
  // Narrowing the allow policy's selector does the same to the pods it lets go.
  const narrowed = cnp('apps', 'web-ingress', { endpointSelector: { matchLabels: { app: 'web', tier: 'front' } }, ingress: [{ fromEntities: ['cluster'] }] });
  t.equal(runRule(rule, objs, 'UPDATE', narrowed).findings.length, 1);
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
  t.equal(f.length, 1);
  t.same(f[0]?.victims, ['apps/web-1', 'apps/web-2']);
});
