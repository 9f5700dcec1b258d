// fqdn-without-dns-proxy: findings asserted as data (code, params, victims, preexisting); one golden test
// per code for the wording. More cases as fixtures: src/rules/fqdn-without-dns-proxy/testdata/*.yaml.
import t from 'tap';
import { rule, scope } from '../../src/rules/fqdn-without-dns-proxy/index.ts';
import { messages } from '../../src/rules/fqdn-without-dns-proxy/messages.ts';
import { renderFinding } from '../../src/verdict/render.ts';
import { baseCluster, ccnp, cnp, ns, pod } from '../fixtures/cluster.ts';
import { makeChange, runRule } from './rule-harness.ts';

const team = [ns('team'), pod('team', 'client-1', { app: 'client' }), pod('team', 'client-2', { app: 'client' })];
const kubeDns = [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s:k8s-app': 'kube-dns' } }];
const dnsL4Only = { toEndpoints: kubeDns, toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }] }] };
const dnsWith = (dns: Record<string, string>[]) => ({ toEndpoints: kubeDns, toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }], rules: { dns } }] });
const toApi = { toFQDNs: [{ matchName: 'api.example.com' }], toPorts: [{ ports: [{ port: '443', protocol: 'TCP' }] }] };
const client = { matchLabels: { app: 'client' } };

t.test('cilium#11767: toFQDNs with a bare port-53 DNS allow (no rules.dns) is denied', async (t) => {
  const policy = cnp('team', 'egress', { endpointSelector: client, egress: [dnsL4Only, toApi] });
  const { findings } = runRule(rule, baseCluster(team), 'CREATE', policy);
  t.same(findings, [
    {
      rule: 'fqdn-without-dns-proxy',
      code: 'fqdn-without-dns-proxy/no-dns-proxy',
      params: {
        dnsLabels: ['k8s-app=kube-dns'], dnsNamespace: 'kube-system', dnsPort: 53,
        policy: 'CiliumNetworkPolicy team/egress', names: ['api.example.com'], nameCount: 1,
        pods: ['team/client-1', 'team/client-2'], podCount: 2, synthetic: false,
      },
      victims: ['team/client-1', 'team/client-2'],
      victimCount: 2,
    },
  ]);
});

t.test('not caught: rules.dns matchPattern "*" or a pattern covering the name', async (t) => {
  for (const dns of [[{ matchPattern: '*' }], [{ matchPattern: '*.example.com' }], [{ matchName: 'api.example.com' }]]) {
    const policy = cnp('team', 'egress', { endpointSelector: client, egress: [dnsWith(dns), toApi] });
    t.same(runRule(rule, baseCluster(team), 'CREATE', policy).findings, [], JSON.stringify(dns));
  }
});

t.test('rules.dns patterns that do not cover the FQDN names are denied', async (t) => {
  const policy = cnp('team', 'egress', {
    endpointSelector: client,
    egress: [dnsWith([{ matchPattern: '*.internal.corp' }]), toApi, { toFQDNs: [{ matchPattern: '*.internal.corp' }] }],
  });
  const { findings } = runRule(rule, baseCluster(team), 'CREATE', policy);
  // Only the uncovered name; *.internal.corp is covered.
  t.same(findings.map((f) => [f.code, f.params?.names, f.params?.nameCount]), [['fqdn-without-dns-proxy/names-not-covered', ['api.example.com'], 1]]);
});

t.test('no DNS egress at all is left to dns-egress-missing', async (t) => {
  const policy = cnp('team', 'egress', { endpointSelector: client, egress: [toApi] });
  t.same(runRule(rule, baseCluster(team), 'CREATE', policy).findings, []);
});

t.test('the rules.dns may come from another policy, e.g. a CCNP for every pod', async (t) => {
  const dnsEverywhere = ccnp('dns-proxy', { endpointSelector: {}, egress: [dnsWith([{ matchPattern: '*' }])] });
  const policy = cnp('team', 'egress', { endpointSelector: client, egress: [toApi] });
  t.same(runRule(rule, baseCluster([...team, dnsEverywhere]), 'CREATE', policy).findings, []);
});

t.test('deleting the policy that carried the dns rule is denied', async (t) => {
  const fqdnPolicy = cnp('team', 'egress', { endpointSelector: client, egress: [dnsL4Only, toApi] });
  const dnsPolicy = cnp('team', 'dns-visibility', { endpointSelector: {}, egress: [dnsWith([{ matchPattern: '*' }])] });
  const { findings } = runRule(rule, baseCluster([...team, fqdnPolicy, dnsPolicy]), 'DELETE', dnsPolicy);
  t.same(findings.map((f) => [f.code, f.params?.policy, f.params?.names, f.preexisting]), [
    ['fqdn-without-dns-proxy/delete-leaves-no-dns-proxy', 'CiliumNetworkPolicy team/dns-visibility', ['api.example.com'], undefined],
  ]);
  // Deleting an unrelated policy keeps the FQDN rules working.
  const other = cnp('team', 'other', { endpointSelector: client, ingress: [{ fromEndpoints: [{}] }] });
  t.same(runRule(rule, baseCluster([...team, fqdnPolicy, dnsPolicy, other]), 'DELETE', other).findings, []);
});

t.test('an already broken FQDN policy is pre-existing when another policy on the pods changes', async (t) => {
  const broken = cnp('team', 'egress', { endpointSelector: client, egress: [dnsL4Only, toApi] });
  const unrelated = cnp('team', 'to-db', { endpointSelector: client, egress: [{ toEndpoints: [{ matchLabels: { app: 'db' } }] }] });
  const { findings } = runRule(rule, baseCluster([...team, broken]), 'CREATE', unrelated);
  t.same(findings.map((f) => [f.code, f.preexisting, f.params?.deleted]), [['fqdn-without-dns-proxy/still-no-dns-proxy', true, false]]);
  // An ingress-only policy cannot change egress: not even a reminder.
  const ingressOnly = cnp('team', 'ingress', { endpointSelector: client, ingress: [{ fromEndpoints: [{}] }] });
  t.same(runRule(rule, baseCluster([...team, broken]), 'CREATE', ingressOnly).findings, []);
});

t.test('a new namespace is judged on the synthetic pod', async (t) => {
  const policy = cnp('fresh', 'egress', { endpointSelector: { matchLabels: { app: 'x' } }, egress: [dnsL4Only, toApi] });
  const { findings } = runRule(rule, baseCluster([ns('fresh')]), 'CREATE', policy);
  t.same(findings.map((f) => [f.code, f.params?.synthetic, f.params?.podCount]), [['fqdn-without-dns-proxy/no-dns-proxy', true, 1]]);
});

t.test('a name that worked before breaks although another name was already broken: denied', async (t) => {
  // rules.dns covered api.example.com but not *.s3.amazonaws.com (already broken). Dropping rules.dns
  // breaks api.example.com as well: that part is new.
  const s3 = { toFQDNs: [{ matchPattern: '*.s3.amazonaws.com' }], toPorts: [{ ports: [{ port: '443', protocol: 'TCP' }] }] };
  const old = cnp('team', 'egress', { endpointSelector: client, egress: [dnsWith([{ matchName: 'api.example.com' }]), toApi, s3] });
  const updated = cnp('team', 'egress', { endpointSelector: client, egress: [dnsL4Only, toApi, s3] });
  const f = runRule(rule, baseCluster([...team, old]), 'UPDATE', updated).findings;
  t.same(f.map((x) => [x.code, x.preexisting, x.params?.names]), [['fqdn-without-dns-proxy/no-dns-proxy', undefined, ['api.example.com', '*.s3.amazonaws.com']]]);
  // Re-applying the old policy unchanged only repeats the s3 problem as a warning.
  const same = runRule(rule, baseCluster([...team, old]), 'UPDATE', old).findings;
  t.same(same.map((x) => [x.code, x.preexisting, x.params?.names]), [['fqdn-without-dns-proxy/still-names-uncovered', true, ['*.s3.amazonaws.com']]]);
});

t.test('respelling an already-uncovered name (case, trailing dot) is the same breakage: warning, not denial', async (t) => {
  const fq = (name: string) => ({ toFQDNs: [{ matchName: name }], toPorts: [{ ports: [{ port: '443', protocol: 'TCP' }] }] });
  const old = cnp('team', 'egress', { endpointSelector: client, egress: [dnsWith([{ matchName: 'api.example.com' }]), fq('api.example.com'), fq('s3.amazonaws.com')] });
  const respelt = cnp('team', 'egress', { endpointSelector: client, egress: [dnsWith([{ matchName: 'api.example.com' }]), fq('api.example.com'), fq('S3.amazonaws.com.')] });
  const objs = baseCluster([...team, old]);
  t.equal(runRule(rule, objs, 'UPDATE', old).findings[0]?.preexisting, true, 're-apply: warning');
  const f = runRule(rule, objs, 'UPDATE', respelt).findings;
  t.equal(f.length, 1);
  t.equal(f[0]?.preexisting, true, 'same name respelt: warning');
  // A really different uncovered name is still new breakage.
  const other = cnp('team', 'egress', { endpointSelector: client, egress: [dnsWith([{ matchName: 'api.example.com' }]), fq('api.example.com'), fq('s4.amazonaws.com')] });
  t.notOk(runRule(rule, objs, 'UPDATE', other).findings[0]?.preexisting, 'another name: denied');
});

t.test('scope: from the request alone', async (t) => {
  const policy = cnp('team', 'egress', { endpointSelector: client, egress: [dnsL4Only, toApi] });
  t.same(scope(makeChange('CREATE', policy)), { policy: 'CiliumNetworkPolicy team/egress', deleted: false });
  t.same(scope(makeChange('DELETE', undefined, policy)), { policy: 'CiliumNetworkPolicy team/egress', deleted: true });
  t.equal(scope(makeChange('CREATE', ns('team'))), undefined);
});

// Golden wording, one per code: the text users read in kubectl, check and audit (unchanged by the move to codes).
t.test('wording', async (t) => {
  const say = (f: ReturnType<typeof messages.finding>) => renderFinding(f, rule.messages);
  const p = {
    dnsLabels: ['k8s-app=kube-dns'], dnsNamespace: 'kube-system', dnsPort: 53, policy: 'CiliumNetworkPolicy team/egress',
    names: ['a.example.com', 'b.example.com', 'c.example.com'], nameCount: 5, pods: ['team/client-1'], podCount: 1, synthetic: false,
  };
  const allow =
    'egress: [{toEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": kube-system, "k8s:k8s-app": kube-dns}}], ' +
    'toPorts: [{ports: [{port: "53", protocol: UDP}, {port: "53", protocol: TCP}], rules: {dns: [{matchPattern: "*"}]}}]}]';
  const names = 'a.example.com, b.example.com, c.example.com and 2 more';
  const noProxy = 'their DNS egress (UDP 53 to kube-system/kube-dns) has no rules.dns, so the DNS proxy never sees the lookups';
  const uncovered = 'their rules.dns patterns do not cover these names, so the DNS proxy never learns their IPs';
  t.same(say(messages.finding('no-dns-proxy', p)), {
    message: `CiliumNetworkPolicy team/egress: toFQDNs ${names} never match for 1 pod: ${noProxy} and the traffic is dropped: team/client-1`,
    fix: `in CiliumNetworkPolicy team/egress, allow DNS through the proxy: ${allow}`,
  });
  const many = { ...p, pods: ['team/a', 'team/b', 'team/c'], podCount: 7, synthetic: true };
  t.same(say(messages.finding('names-not-covered', many)), {
    message: `CiliumNetworkPolicy team/egress: toFQDNs ${names} never match for 7 pods (pods this policy would select): ${uncovered} and the traffic is dropped: team/a, team/b, team/c and 4 more`,
    fix: `in CiliumNetworkPolicy team/egress, widen rules.dns on the DNS egress to cover ${names} (e.g. matchPattern: "*")`,
  });
  t.same(say(messages.finding('delete-leaves-no-dns-proxy', p)), {
    message: `deleting CiliumNetworkPolicy team/egress: toFQDNs ${names} never match for 1 pod: ${noProxy} and the traffic is dropped: team/client-1`,
    fix: `in a remaining egress policy of these pods, allow DNS through the proxy: ${allow}`,
  });
  t.same(say(messages.finding('delete-leaves-names-uncovered', p)), {
    message: `deleting CiliumNetworkPolicy team/egress: toFQDNs ${names} never match for 1 pod: ${uncovered} and the traffic is dropped: team/client-1`,
    fix: `in a remaining egress policy of these pods, widen rules.dns on the DNS egress to cover ${names} (e.g. matchPattern: "*")`,
  });
  t.same(say(messages.finding('still-no-dns-proxy', { ...p, deleted: false })), {
    message: `toFQDNs ${names} never match for 1 pod: ${noProxy} and the traffic is dropped (already the case before this request): team/client-1`,
    fix: `in CiliumNetworkPolicy team/egress, allow DNS through the proxy: ${allow}`,
  });
  t.same(say(messages.finding('still-names-uncovered', { ...p, deleted: true })), {
    message: `toFQDNs ${names} never match for 1 pod: ${uncovered} and the traffic is dropped (already the case before this request): team/client-1`,
    fix: `in a remaining egress policy of these pods, widen rules.dns on the DNS egress to cover ${names} (e.g. matchPattern: "*")`,
  });
  t.equal(messages.codes.length, 6, 'one golden test per code');
});
