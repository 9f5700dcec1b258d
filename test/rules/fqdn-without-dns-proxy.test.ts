import t from 'tap';
import { rule } from '../../src/rules/fqdn-without-dns-proxy.ts';
import { baseCluster, ccnp, cnp, ns, pod } from '../fixtures/cluster.ts';
import { runRule } from './rule-harness.ts';

const team = [ns('team'), pod('team', 'client-1', { app: 'client' }), pod('team', 'client-2', { app: 'client' })];
const kubeDns = [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s:k8s-app': 'kube-dns' } }];
const dnsL4Only = { toEndpoints: kubeDns, toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }] }] };
const dnsWith = (dns: Record<string, string>[]) => ({ toEndpoints: kubeDns, toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }], rules: { dns } }] });
const toApi = { toFQDNs: [{ matchName: 'api.example.com' }], toPorts: [{ ports: [{ port: '443', protocol: 'TCP' }] }] };
const client = { matchLabels: { app: 'client' } };

t.test('cilium#11767: toFQDNs with a bare port-53 DNS allow (no rules.dns) is denied', async (t) => {
  const policy = cnp('team', 'egress', { endpointSelector: client, egress: [dnsL4Only, toApi] });
  const { findings } = runRule(rule, baseCluster(team), 'CREATE', policy);
  t.equal(findings.length, 1);
  const f = findings[0]!;
  t.equal(f.rule, 'fqdn-without-dns-proxy');
  t.notOk(f.preexisting);
  t.match(f.message, /toFQDNs api\.example\.com never match for 2 pods: their DNS egress \(UDP 53 to kube-system\/kube-dns\) has no rules\.dns/);
  t.same(f.victims, ['team/client-1', 'team/client-2']);
  t.match(f.fix, /rules: \{dns: \[\{matchPattern: "\*"\}\]\}/);
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
  t.equal(findings.length, 1);
  t.match(findings[0]!.message, /toFQDNs api\.example\.com never match/);
  t.notMatch(findings[0]!.message, /internal\.corp never/);
  t.match(findings[0]!.message, /rules\.dns patterns do not cover/);
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
  t.equal(findings.length, 1);
  t.match(findings[0]!.message, /^deleting CiliumNetworkPolicy team\/dns-visibility: toFQDNs api\.example\.com never match/);
  t.notOk(findings[0]!.preexisting);
  // Deleting an unrelated policy keeps the FQDN rules working.
  const other = cnp('team', 'other', { endpointSelector: client, ingress: [{ fromEndpoints: [{}] }] });
  t.same(runRule(rule, baseCluster([...team, fqdnPolicy, dnsPolicy, other]), 'DELETE', other).findings, []);
});

t.test('an already broken FQDN policy is pre-existing when another policy on the pods changes', async (t) => {
  const broken = cnp('team', 'egress', { endpointSelector: client, egress: [dnsL4Only, toApi] });
  const unrelated = cnp('team', 'to-db', { endpointSelector: client, egress: [{ toEndpoints: [{ matchLabels: { app: 'db' } }] }] });
  const { findings } = runRule(rule, baseCluster([...team, broken]), 'CREATE', unrelated);
  t.equal(findings.length, 1);
  t.equal(findings[0]!.preexisting, true);
  t.match(findings[0]!.message, /already the case before this request/);
  // An ingress-only policy cannot change egress: not even a reminder.
  const ingressOnly = cnp('team', 'ingress', { endpointSelector: client, ingress: [{ fromEndpoints: [{}] }] });
  t.same(runRule(rule, baseCluster([...team, broken]), 'CREATE', ingressOnly).findings, []);
});

t.test('a new namespace is judged on the synthetic pod', async (t) => {
  const policy = cnp('fresh', 'egress', { endpointSelector: { matchLabels: { app: 'x' } }, egress: [dnsL4Only, toApi] });
  const { findings } = runRule(rule, baseCluster([ns('fresh')]), 'CREATE', policy);
  t.equal(findings.length, 1);
  t.match(findings[0]!.message, /pods this policy would select/);
});

t.test('a name that worked before breaks although another name was already broken: denied', async (t) => {
  // rules.dns covered api.example.com but not *.s3.amazonaws.com (already broken). Dropping rules.dns
  // breaks api.example.com as well: that part is new.
  const s3 = { toFQDNs: [{ matchPattern: '*.s3.amazonaws.com' }], toPorts: [{ ports: [{ port: '443', protocol: 'TCP' }] }] };
  const old = cnp('team', 'egress', { endpointSelector: client, egress: [dnsWith([{ matchName: 'api.example.com' }]), toApi, s3] });
  const updated = cnp('team', 'egress', { endpointSelector: client, egress: [dnsL4Only, toApi, s3] });
  const f = runRule(rule, baseCluster([...team, old]), 'UPDATE', updated).findings;
  t.equal(f.length, 1);
  t.notOk(f[0]?.preexisting);
  t.match(f[0]?.message ?? '', /api\.example\.com/);
  // Re-applying the old policy unchanged only repeats the s3 problem as a warning.
  const same = runRule(rule, baseCluster([...team, old]), 'UPDATE', old).findings;
  t.equal(same.length, 1);
  t.equal(same[0]?.preexisting, true);
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
