// dns-egress-missing: findings asserted as data (code, params, victims, preexisting); one golden test per
// code for the wording. More cases as fixtures: src/rules/dns-egress-missing/testdata/*.yaml.
import t from 'tap';
import { rule, scope } from '../../src/rules/dns-egress-missing/index.ts';
import { messages } from '../../src/rules/dns-egress-missing/messages.ts';
import { renderFinding } from '../../src/verdict/render.ts';
import { baseCluster, ccnp, ciliumConfigMap, cnp, HEALTHY_CILIUM_CONFIG, netpol, ns, pod } from '../fixtures/cluster.ts';
import { makeChange, runRule } from './rule-harness.ts';

// Seed 000: an egress-restricted namespace "shop" with two web pods.
const shop = [ns('shop'), pod('shop', 'web-1', { app: 'web' }), pod('shop', 'web-2', { app: 'web' })];

const defaultDenyEgress = netpol('shop', 'default-deny-egress', { podSelector: {}, policyTypes: ['Egress'] });
const kubeDnsEgress = {
  toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s:k8s-app': 'kube-dns' } }],
  toPorts: [{ ports: [{ port: '53', protocol: 'UDP' }, { port: '53', protocol: 'TCP' }] }],
};
const npDnsUdp = netpol('shop', 'allow-dns', {
  podSelector: {},
  policyTypes: ['Egress'],
  egress: [
    {
      to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
      ports: [{ port: 53, protocol: 'UDP' }, { port: 53, protocol: 'TCP' }],
    },
  ],
});

t.test('seed 000: a default-deny egress without DNS is denied', async (t) => {
  const { findings } = runRule(rule, baseCluster(shop), 'CREATE', defaultDenyEgress);
  // The fix speaks the dialect of the policy (NetworkPolicy: namespaceSelector + podSelector, UDP).
  t.same(findings, [
    {
      rule: 'dns-egress-missing',
      code: 'dns-egress-missing/policy-leaves-no-dns',
      params: {
        dnsLabels: ['k8s-app=kube-dns'], dnsNamespace: 'kube-system', dnsPort: 53,
        object: 'NetworkPolicy shop/default-deny-egress', synthetic: false, dialect: 'NetworkPolicy', withDnsRules: false,
        pods: ['shop/web-1', 'shop/web-2'], podCount: 2,
      },
      victims: ['shop/web-1', 'shop/web-2'],
      victimCount: 2,
    },
  ]);
});

t.test('seed 000: a CNP default-deny egress without DNS is denied, fix in CNP dialect', async (t) => {
  const policy = cnp('shop', 'only-db', { endpointSelector: { matchLabels: { app: 'web' } }, egress: [{ toEndpoints: [{ matchLabels: { app: 'db' } }] }] });
  const { findings } = runRule(rule, baseCluster(shop), 'CREATE', policy);
  t.same(findings.map((f) => [f.code, f.params?.dialect, f.params?.withDnsRules, f.params?.dnsPort]), [['dns-egress-missing/policy-leaves-no-dns', 'CiliumNetworkPolicy', false, 53]]);
});

t.test('enableDefaultDeny.egress without an egress element enforces nothing; egress: [{}] enforces and allows nothing', async (t) => {
  // The agent decides default deny per rule element (RulesToPolicyEntries): a rule without an egress
  // element never enforces egress, whatever enableDefaultDeny.egress says.
  const byFlag = cnp('shop', 'deny-by-flag', { endpointSelector: {}, enableDefaultDeny: { egress: true, ingress: true }, ingress: [{ fromEndpoints: [{}] }] });
  t.same(runRule(rule, baseCluster(shop), 'CREATE', byFlag).findings, []);
  // An egress element without peer and ports puts egress into default deny and allows nothing
  // (L4PolicyMap.mergeL4Filter adds no filter for it): DNS is cut.
  const braces = cnp('shop', 'deny-by-braces', { endpointSelector: {}, enableDefaultDeny: { egress: true }, ingress: [{ fromEndpoints: [{}] }], egress: [{}] });
  const f = runRule(rule, baseCluster(shop), 'CREATE', braces).findings;
  t.equal(f.length, 1);
  t.notOk(f[0]!.preexisting);
  t.same(f[0]!.victims, ['shop/web-1', 'shop/web-2']);
});

t.test('seed 000: adding the kube-dns rule admits it', async (t) => {
  const policy = cnp('shop', 'only-db', {
    endpointSelector: { matchLabels: { app: 'web' } },
    egress: [{ toEndpoints: [{ matchLabels: { app: 'db' } }] }, kubeDnsEgress],
  });
  t.same(runRule(rule, baseCluster(shop), 'CREATE', policy).findings, []);
  // Same for the NetworkPolicy pair: default deny + an allow-dns policy with UDP.
  t.same(runRule(rule, baseCluster([...shop, npDnsUdp]), 'CREATE', defaultDenyEgress).findings, []);
});

t.test('seed 000: a NetworkPolicy allowing port 53 without protocol UDP is denied (defaults to TCP)', async (t) => {
  const tcpOnly = netpol('shop', 'allow-dns', {
    podSelector: {},
    policyTypes: ['Egress'],
    egress: [{ to: [{ namespaceSelector: {}, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }], ports: [{ port: 53 }] }],
  });
  const { findings } = runRule(rule, baseCluster(shop), 'CREATE', tcpOnly);
  t.same(findings.map((f) => [f.code, f.victimCount]), [['dns-egress-missing/policy-allows-only-tcp', 2]]);
});

t.test('seed 000: deleting the DNS-allow policy while another policy keeps the pods egress-enforced is denied', async (t) => {
  const { findings } = runRule(rule, baseCluster([...shop, defaultDenyEgress, npDnsUdp]), 'DELETE', npDnsUdp);
  t.same(findings.map((f) => [f.code, f.params?.object, f.params?.namespace, f.victims, f.preexisting]), [
    ['dns-egress-missing/delete-removes-allow', 'NetworkPolicy shop/allow-dns', 'shop', ['shop/web-1', 'shop/web-2'], undefined],
  ]);
});

t.test('seed 000: deleting the DNS-allow policy when it was the only egress policy is not denied', async (t) => {
  // The pods go back to default-allow egress: DNS works again.
  t.same(runRule(rule, baseCluster([...shop, npDnsUdp]), 'DELETE', npDnsUdp).findings, []);
});

t.test('a pod that already lacked DNS is pre-existing, never a new victim', async (t) => {
  const extra = cnp('shop', 'to-db', { endpointSelector: { matchLabels: { app: 'web' } }, egress: [{ toEndpoints: [{ matchLabels: { app: 'db' } }] }] });
  const { findings } = runRule(rule, baseCluster([...shop, defaultDenyEgress]), 'CREATE', extra);
  t.same(findings.map((f) => [f.code, f.preexisting]), [['dns-egress-missing/policy-keeps-no-dns', true]]);
});

t.test('a policy in a namespace with no pods yet is judged on the synthetic pod', async (t) => {
  const policy = cnp('newteam', 'lockdown', { endpointSelector: { matchLabels: { app: 'api' } }, egress: [{ toEntities: ['world'] }] });
  const { findings } = runRule(rule, baseCluster([ns('newteam')]), 'CREATE', policy);
  t.same(findings.map((f) => [f.code, f.params?.synthetic, f.victimCount]), [['dns-egress-missing/policy-leaves-no-dns', true, 1]]);
});

t.test('toFQDNs policies get a fix with rules.dns', async (t) => {
  const policy = cnp('shop', 'fqdn', {
    endpointSelector: { matchLabels: { app: 'web' } },
    egress: [{ toFQDNs: [{ matchName: 'api.example.com' }], toPorts: [{ ports: [{ port: '443', protocol: 'TCP' }] }] }],
  });
  const { findings } = runRule(rule, baseCluster(shop), 'CREATE', policy);
  t.same(findings.map((f) => [f.code, f.params?.withDnsRules]), [['dns-egress-missing/policy-leaves-no-dns', true]]);
});

t.test('host-network pods and policies selecting only kube-dns are not victims', async (t) => {
  // Host-network pods have no Cilium endpoint: endpoint policy never applies to them.
  const pods = [ns('shop'), pod('shop', 'agent', { app: 'agent' }, { hostNetwork: true }), pod('shop', 'worker', { app: 'agent' })];
  const policy = cnp('shop', 'lock', { endpointSelector: { matchLabels: { app: 'agent' } }, egress: [{ toEntities: ['world'] }] });
  const { findings } = runRule(rule, baseCluster(pods), 'CREATE', policy);
  t.equal(findings.length, 1);
  t.same(findings[0]!.victims, ['shop/worker']);
  const coreDnsPolicy = cnp('kube-system', 'coredns-egress', { endpointSelector: { matchLabels: { 'k8s-app': 'kube-dns' } }, egress: [{ toEntities: ['world'] }] });
  t.same(runRule(rule, baseCluster(), 'CREATE', coreDnsPolicy).findings, []);
});

t.test('relabelling a namespace into a CCNP default-deny without DNS is denied', async (t) => {
  const locked = ccnp('locked-egress', {
    endpointSelector: { matchLabels: { 'io.cilium.k8s.namespace.labels.zone': 'locked' } },
    egress: [{ toEntities: ['world'] }],
  });
  const objects = baseCluster([...shop, locked]);
  const relabelled = ns('shop', { zone: 'locked' });
  const { findings } = runRule(rule, objects, 'UPDATE', relabelled);
  t.same(findings.map((f) => [f.code, f.params?.namespace, f.victimCount]), [['dns-egress-missing/namespace-relabel-leaves-no-dns', 'shop', 2]]);
  // A label change that the CCNP does not match is fine.
  t.same(runRule(rule, objects, 'UPDATE', ns('shop', { zone: 'open' })).findings, []);
});

t.test('cilium-config enable-policy: always removes DNS from pods with no egress allow', async (t) => {
  const objects = baseCluster(shop);
  const { findings } = runRule(rule, objects, 'UPDATE', ciliumConfigMap({ ...HEALTHY_CILIUM_CONFIG, 'enable-policy': 'always' }));
  t.same(findings.map((f) => f.code), ['dns-egress-missing/config-leaves-no-dns']);
  t.ok(findings[0]!.victims!.includes('shop/web-1'));
  // Unrelated cilium-config edits do not look at pods at all.
  t.same(runRule(rule, objects, 'UPDATE', ciliumConfigMap({ ...HEALTHY_CILIUM_CONFIG, 'cni-exclusive': 'true' })).findings, []);
});

t.test('an ingress-only policy does not touch DNS egress', async (t) => {
  const ingressOnly = cnp('shop', 'in', { endpointSelector: {}, ingress: [{ fromEndpoints: [{}] }] });
  t.same(runRule(rule, baseCluster(shop), 'CREATE', ingressOnly).findings, []);
});

t.test('seed 000: an UPDATE that adds the kube-dns rule to an existing default deny admits it', async (t) => {
  const before = cnp('shop', 'only-db', { endpointSelector: { matchLabels: { app: 'web' } }, egress: [{ toEndpoints: [{ matchLabels: { app: 'db' } }] }] });
  const fixed = cnp('shop', 'only-db', {
    endpointSelector: { matchLabels: { app: 'web' } },
    egress: [{ toEndpoints: [{ matchLabels: { app: 'db' } }] }, kubeDnsEgress],
  });
  t.same(runRule(rule, baseCluster([...shop, before]), 'UPDATE', fixed).findings, []);
  // The reverse UPDATE (dropping the DNS rule) is what breaks the pods.
  const { findings } = runRule(rule, baseCluster([...shop, fixed]), 'UPDATE', before);
  t.same(findings.map((f) => [f.code, f.preexisting]), [['dns-egress-missing/policy-leaves-no-dns', undefined]]);
});

t.test('ports match the DNS backend (targetPort), and the fix names it', async (t) => {
  const objs = baseCluster(shop).map((o) =>
    o.kind === 'Service' && o.metadata.name === 'kube-dns'
      ? { ...o, spec: { clusterIP: '10.96.0.10', selector: { 'k8s-app': 'kube-dns' }, ports: [{ name: 'dns', port: 53, targetPort: 8053, protocol: 'UDP' }] } }
      : o,
  );
  const on53 = cnp('shop', 'dns53', { endpointSelector: {}, egress: [kubeDnsEgress] });
  const { findings } = runRule(rule, objs, 'CREATE', on53);
  t.same(findings.map((f) => [f.code, f.params?.dnsPort, f.params?.dnsNamespace]), [['dns-egress-missing/policy-leaves-no-dns', 8053, 'kube-system']]);
  const on8053 = cnp('shop', 'dns8053', {
    endpointSelector: {},
    egress: [{ toEndpoints: kubeDnsEgress.toEndpoints, toPorts: [{ ports: [{ port: '8053', protocol: 'UDP' }] }] }],
  });
  t.same(runRule(rule, objs, 'CREATE', on8053).findings, []);
});

t.test('a deny rule on DNS wins over the allow', async (t) => {
  const policy = cnp('shop', 'no-dns', {
    endpointSelector: {},
    egress: [kubeDnsEgress],
    egressDeny: [{ toEndpoints: kubeDnsEgress.toEndpoints, toPorts: [{ ports: [{ port: '53', protocol: 'UDP' }] }] }],
  });
  t.equal(runRule(rule, baseCluster(shop), 'CREATE', policy).findings.length, 1);
});

t.test('odd input never throws: a policy without spec, a DELETE of an unknown object', async (t) => {
  const noSpec = { apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: 'x', namespace: 'shop' } };
  t.same(runRule(rule, baseCluster(shop), 'CREATE', noSpec).findings, []);
  t.same(runRule(rule, baseCluster(shop), 'DELETE', npDnsUdp).findings, []);
});

t.test('an ingress policy on the kube-dns pods that drops the clients denies every client it cuts off', async (t) => {
  const objs = baseCluster([...shop, ns('billing'), pod('billing', 'api-1', { app: 'api' })]);
  // Only the shop namespace may query CoreDNS: billing loses DNS although its own egress is open.
  const policy = cnp('kube-system', 'coredns-ingress', {
    endpointSelector: { matchLabels: { 'k8s-app': 'kube-dns' } },
    ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'shop' } }], toPorts: [{ ports: [{ port: '53', protocol: 'UDP' }] }] }],
  });
  const { findings } = runRule(rule, objs, 'CREATE', policy);
  t.same(findings.map((f) => [f.code, f.params?.object]), [['dns-egress-missing/servers-policy-blocks', 'CiliumNetworkPolicy kube-system/coredns-ingress']]);
  t.ok(findings[0]!.victims!.includes('billing/api-1'));
  t.notOk(findings[0]!.victims!.includes('shop/web-1'));
  // Allowing the whole cluster is fine.
  const open = cnp('kube-system', 'coredns-ingress', {
    endpointSelector: { matchLabels: { 'k8s-app': 'kube-dns' } },
    ingress: [{ fromEntities: ['cluster'], toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }] }] }],
  });
  t.same(runRule(rule, objs, 'CREATE', open).findings, []);
});

t.test('enableDefaultDeny.ingress on the kube-dns pods: only an ingress element enforces it', async (t) => {
  const objs = baseCluster([...shop]);
  // Egress rules only: the flag alone does not put ingress into default deny.
  const flagOnly = cnp('kube-system', 'coredns-lockdown', {
    endpointSelector: { matchLabels: { 'k8s-app': 'kube-dns' } },
    enableDefaultDeny: { ingress: true, egress: false },
    egress: [{ toEntities: ['world'] }],
  });
  t.same(runRule(rule, objs, 'CREATE', flagOnly).findings, []);
  // With `ingress: [{}]` it does, and that element allows nobody in.
  const policy = cnp('kube-system', 'coredns-lockdown', {
    endpointSelector: { matchLabels: { 'k8s-app': 'kube-dns' } },
    enableDefaultDeny: { ingress: true, egress: false },
    egress: [{ toEntities: ['world'] }],
    ingress: [{}],
  });
  const { findings } = runRule(rule, objs, 'CREATE', policy);
  t.same(findings.map((f) => [f.code, f.params?.object]), [['dns-egress-missing/servers-policy-blocks', 'CiliumNetworkPolicy kube-system/coredns-lockdown']]);
  t.ok(findings[0]!.victims!.includes('shop/web-1'));
});

t.test('relabelling kube-system breaks client policies whose namespaceSelector matched the old labels', async (t) => {
  const np = netpol('shop', 'allow-dns-by-label', {
    podSelector: {},
    policyTypes: ['Egress'],
    egress: [{ to: [{ namespaceSelector: { matchLabels: { role: 'system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }], ports: [{ port: 53, protocol: 'UDP' }] }],
  });
  const objs = baseCluster([...shop, np]).map((o) => (o.kind === 'Namespace' && o.metadata.name === 'kube-system' ? ns('kube-system', { role: 'system' }) : o));
  const { findings } = runRule(rule, objs, 'UPDATE', ns('kube-system'));
  // The clients' own egress no longer matches kube-dns: an egress loss, told as a relabel.
  t.same(findings.map((f) => [f.code, f.params?.namespace]), [['dns-egress-missing/namespace-relabel-leaves-no-dns', 'kube-system']]);
  t.same(findings[0]!.victims, ['shop/web-1', 'shop/web-2']);
  t.same(runRule(rule, objs, 'UPDATE', ns('kube-system', { role: 'system', extra: 'x' })).findings, []);
});

t.test('turning enable-non-default-deny-policies off makes enableDefaultDeny:false policies enforce: denied', async (t) => {
  const audit = ccnp('egress-world-audit', { endpointSelector: {}, enableDefaultDeny: { egress: false }, egress: [{ toEntities: ['world'] }] });
  const objs = baseCluster([...shop, audit]);
  const { findings } = runRule(rule, objs, 'UPDATE', ciliumConfigMap({ ...HEALTHY_CILIUM_CONFIG, 'enable-non-default-deny-policies': 'false' }));
  t.equal(findings.length, 1);
  t.ok(findings[0]!.victims!.includes('shop/web-1'));
  // With the flag on (the default), the same policy never enforces egress.
  t.same(runRule(rule, objs, 'CREATE', audit).findings, []);
});

t.test('host-network clients on different nodes are judged per node (host vs remote-node toward CoreDNS)', async (t) => {
  // A host-network DaemonSet with one pod per node. CoreDNS runs on node-a only. A CCNP allowing DNS
  // from every pod (fromEndpoints [{}] in a CCNP: pods only, no host/remote-node) leaves the agent on
  // node-a working (the local host always reaches its endpoints) but cuts the agent on node-b off.
  const agent = (name: string, node: string, ip: string) => {
    const p = pod('monitoring', name, { app: 'node-agent' }, { hostNetwork: true, ip });
    return { ...p, spec: { ...(p.spec as object), nodeName: node } } as typeof p;
  };
  const objs = baseCluster([ns('monitoring'), agent('agent-a', 'node-a', '192.168.0.10'), agent('agent-b', 'node-b', '192.168.0.11')]);
  const policy = ccnp('coredns-from-pods', {
    endpointSelector: { matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s-app': 'kube-dns' } },
    ingress: [{ fromEndpoints: [{}], toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }] }] }],
  });
  const { findings } = runRule(rule, objs, 'CREATE', policy);
  t.equal(findings.length, 1);
  t.same(findings[0]?.victims, ['monitoring/agent-b']);
});

t.test('when the kube-dns pods\' ingress drops DNS, the message and fix point at their ingress, not the clients\' egress', async (t) => {
  // Istio's ambient host-probe CCNP selects every pod with enableDefaultDeny false; with the agent flag
  // off that field is ignored and every pod, CoreDNS included, goes into ingress default deny.
  const hostprobes = ccnp('allow-ambient-hostprobes', { endpointSelector: {}, enableDefaultDeny: { egress: false, ingress: false }, ingress: [{ fromCIDR: ['169.254.7.127/32'] }] });
  let findings = runRule(rule, baseCluster([...shop, hostprobes]), 'UPDATE', ciliumConfigMap({ ...HEALTHY_CILIUM_CONFIG, 'enable-non-default-deny-policies': 'false' })).findings;
  t.same(findings.map((f) => f.code), ['dns-egress-missing/config-servers-drop']);
  t.ok(findings[0]!.victims!.includes('shop/web-1'));

  // The same change also puts billing into egress default deny (its enableDefaultDeny.egress: false is
  // ignored too): its pods need an egress rule, so the message stays the egress one.
  const billing = [ns('billing'), pod('billing', 'api-1', { app: 'api' }), cnp('billing', 'world-only', { endpointSelector: {}, enableDefaultDeny: { egress: false }, egress: [{ toEntities: ['world'] }] })];
  findings = runRule(rule, baseCluster([...shop, ...billing, hostprobes]), 'UPDATE', ciliumConfigMap({ ...HEALTHY_CILIUM_CONFIG, 'enable-non-default-deny-policies': 'false' })).findings;
  t.equal(findings.length, 1);
  t.ok(findings[0]!.victims!.includes('billing/api-1') && findings[0]!.victims!.includes('shop/web-1'));
  t.same(findings.map((f) => f.code), ['dns-egress-missing/config-leaves-no-dns'], 'mixed causes: not blamed on the servers alone');

  // CoreDNS admits namespaces by label; relabelling a client namespace drops it from that allow.
  const corednsByLabel = cnp('kube-system', 'coredns-ingress', {
    endpointSelector: { matchLabels: { 'k8s-app': 'kube-dns' } },
    ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.cilium.k8s.namespace.labels.dns': 'allowed' } }], toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }] }] }],
  });
  const labelled = baseCluster([...shop, corednsByLabel]).map((o) => (o.kind === 'Namespace' && o.metadata.name === 'shop' ? ns('shop', { dns: 'allowed' }) : o));
  findings = runRule(rule, labelled, 'UPDATE', ns('shop')).findings;
  t.equal(findings.length, 1);
  t.same(findings[0]!.victims, ['shop/web-1', 'shop/web-2']);
  t.same(findings.map((f) => [f.code, f.params?.namespace]), [['dns-egress-missing/namespace-relabel-servers-drop', 'shop']]);
});

t.test('relabelling kube-system into a lockdown that shuts the kube-dns pods\' ingress blocks every client', async (t) => {
  const lockdown = ccnp('lockdown-ingress', { endpointSelector: { matchLabels: { 'io.cilium.k8s.namespace.labels.lockdown': 'yes' } }, ingress: [{}] });
  const objs = baseCluster([...shop, lockdown]);
  const { findings } = runRule(rule, objs, 'UPDATE', ns('kube-system', { lockdown: 'yes' }));
  t.same(findings.map((f) => [f.code, f.params?.object, f.params?.namespace]), [['dns-egress-missing/dns-namespace-relabel-blocks', 'Namespace kube-system', 'kube-system']]);
  t.ok(findings[0]?.victims?.includes('shop/web-1'));
});

t.test('deleting the kube-dns pods\' ingress allow while another policy keeps their ingress enforced blocks clients', async (t) => {
  const shopOnly = cnp('kube-system', 'coredns-shop', {
    endpointSelector: { matchLabels: { 'k8s-app': 'kube-dns' } },
    ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'shop' } }], toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }] }] }],
  });
  const fromCluster = cnp('kube-system', 'coredns-cluster', {
    endpointSelector: { matchLabels: { 'k8s-app': 'kube-dns' } },
    ingress: [{ fromEntities: ['cluster'], toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }] }] }],
  });
  const objs = baseCluster([...shop, ns('billing'), pod('billing', 'api-1', { app: 'api' }), shopOnly, fromCluster]);
  const { findings } = runRule(rule, objs, 'DELETE', fromCluster);
  t.same(findings.map((f) => [f.code, f.params?.object]), [['dns-egress-missing/servers-policy-delete-blocks', 'CiliumNetworkPolicy kube-system/coredns-cluster']]);
  t.ok(findings[0]?.victims?.includes('billing/api-1'));
  t.notOk(findings[0]?.victims?.includes('shop/web-1'));
});

t.test('scope: from the request alone', async (t) => {
  t.match(scope(makeChange('CREATE', defaultDenyEgress)), { by: 'policy' });
  t.same(scope(makeChange('DELETE', undefined, npDnsUdp)), { by: 'policy-delete' });
  t.same(scope(makeChange('UPDATE', ciliumConfigMap(HEALTHY_CILIUM_CONFIG))), { by: 'cilium-config' });
  t.same(scope(makeChange('UPDATE', ns('shop', { zone: 'x' }), ns('shop'))), { by: 'namespace', namespace: 'shop' });
  const otherCm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'istio', namespace: 'istio-system' }, data: {} };
  t.equal(scope(makeChange('UPDATE', otherCm)), undefined);
});

// Golden wording, one per code: the text users read in kubectl, check and audit (unchanged by the move to codes).
t.test('wording', async (t) => {
  const say = (f: ReturnType<typeof messages.finding>) => renderFinding(f, rule.messages);
  const p = {
    dnsLabels: ['k8s-app=kube-dns'], dnsNamespace: 'kube-system', dnsPort: 53, object: 'CiliumNetworkPolicy shop/p', synthetic: false,
    dialect: 'CiliumNetworkPolicy', withDnsRules: false, pods: ['shop/a', 'shop/b', 'shop/c'], podCount: 4,
  } as const;
  const ns1 = { ...p, namespace: 'shop' };
  const victims = 'shop/a, shop/b, shop/c and 1 more';
  const cnpAllow = 'egress: [{toEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": kube-system, "k8s:k8s-app": kube-dns}}], toPorts: [{ports: [{port: "53", protocol: UDP}, {port: "53", protocol: TCP}]}]}]';
  const fqdnAllow = cnpAllow.replace(']}]}]', ']}], rules: {dns: [{matchPattern: "*"}]}}]}]').replace('TCP}]}], rules', 'TCP}], rules');
  const npAllow =
    'egress: [{to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}], ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]}]';
  const serverIngress = 'ingress: [{fromEntities: [cluster], toPorts: [{ports: [{port: "53", protocol: UDP}, {port: "53", protocol: TCP}]}]}]';
  const golden: [Parameters<typeof messages.finding>[0], object, string, string][] = [
    ['policy-leaves-no-dns', p, `CiliumNetworkPolicy shop/p leaves 4 pods egress-enforced without DNS (UDP 53 to kube-system/kube-dns): ${victims}`, `add to CiliumNetworkPolicy shop/p: ${cnpAllow}`],
    ['policy-allows-only-tcp', { ...p, object: 'NetworkPolicy shop/p', dialect: 'NetworkPolicy' },
      `NetworkPolicy shop/p leaves 4 pods egress-enforced without DNS (UDP 53 to kube-system/kube-dns) (only TCP 53 is allowed; NetworkPolicy ports default to TCP, DNS needs protocol: UDP): ${victims}`,
      `add to NetworkPolicy shop/p: ${npAllow}`],
    ['delete-removes-allow', { ...ns1, withDnsRules: true }, `deleting CiliumNetworkPolicy shop/p removes the DNS allow (UDP 53 to kube-system/kube-dns) of 4 pods that stay egress-enforced: ${victims}`,
      `before deleting, allow DNS for these pods in another policy of namespace shop: ${fqdnAllow}`],
    ['config-leaves-no-dns', p, `this cilium-config change leaves 4 pods egress-enforced without DNS (UDP 53 to kube-system/kube-dns): ${victims}`,
      `allow DNS for these pods first (e.g. a CiliumClusterwideNetworkPolicy): ${cnpAllow}`],
    ['namespace-relabel-leaves-no-dns', { ...ns1, synthetic: true, podCount: 1, pods: ['shop/a'] },
      'relabelling namespace shop leaves 1 pod (pods this policy would select) egress-enforced without DNS (UDP 53 to kube-system/kube-dns): shop/a',
      `allow DNS for these pods in namespace shop: ${cnpAllow}`],
    ['config-servers-drop', p, `this cilium-config change makes the kube-dns pods' ingress policy drop DNS (UDP 53 to kube-system/kube-dns) from 4 pods; their egress still allows it: ${victims}`,
      `first allow DNS ingress on the kube-dns pods from every client, e.g. ${serverIngress} (with enable-non-default-deny-policies off, a policy with enableDefaultDeny.ingress: false that selects them puts them into ingress default deny)`],
    ['namespace-relabel-servers-drop', ns1, `relabelling namespace shop makes the kube-dns pods' ingress policy drop DNS (UDP 53 to kube-system/kube-dns) from 4 pods; their egress still allows it: ${victims}`,
      "keep the labels of namespace shop that the kube-dns pods' ingress policy selects, or update its fromEndpoints/namespaceSelector peers"],
    ['servers-policy-blocks', p, `CiliumNetworkPolicy shop/p blocks DNS (UDP 53 to kube-system/kube-dns) for 4 pods: ${victims}`, `allow DNS ingress on the kube-dns pods from every client, e.g. ${serverIngress}`],
    ['servers-policy-delete-blocks', p, `deleting CiliumNetworkPolicy shop/p blocks DNS (UDP 53 to kube-system/kube-dns) for 4 pods: ${victims}`, `allow DNS ingress on the kube-dns pods from every client, e.g. ${serverIngress}`],
    ['dns-namespace-relabel-blocks', { ...p, object: 'Namespace kube-system', namespace: 'kube-system' }, `Namespace kube-system blocks DNS (UDP 53 to kube-system/kube-dns) for 4 pods: ${victims}`,
      'keep the labels of namespace kube-system that client policies select, or update their namespaceSelector peers'],
    ['policy-keeps-no-dns', p, `4 pod(s) selected by CiliumNetworkPolicy shop/p already have no DNS egress (UDP 53 to kube-system/kube-dns): ${victims}`, `add to CiliumNetworkPolicy shop/p: ${cnpAllow}`],
    ['denied-by-policy', { ...p, change: 'relabelling namespace shop', denies: ['CiliumClusterwideNetworkPolicy guard egressDeny[2]'], denyPeers: ['endpoints'], denyValues: ['k8s-app=kube-dns'], denyPorts: ['53/UDP'], defaultPods: ['shop/d'], defaultPodCount: 2 },
      `relabelling namespace shop leaves 4 pods without DNS (UDP 53 to kube-system/kube-dns), and a deny decides, which no allow overrides: CiliumClusterwideNetworkPolicy guard egressDeny[2] (toEndpoints k8s-app=kube-dns, on 53/UDP): ${victims}; 2 more pods lack an allow: shop/d and 1 more`,
      'narrow CiliumClusterwideNetworkPolicy guard egressDeny[2]: narrow its toEndpoints selector (k8s-app=kube-dns) so it no longer selects the DNS servers (kube-system pods k8s-app=kube-dns), or drop 53/UDP from its toPorts (53/UDP), or remove the element ' +
        `(an allow does not help: a Cilium deny wins over every allow); for the other 2 pods (shop/d and 1 more), no deny decides: allow DNS for them: ${cnpAllow}`],
    ['still-denied-by-policy', { ...p, change: 'CiliumNetworkPolicy shop/p', denies: ['CiliumNetworkPolicy shop/p egressDeny[0]', 'CiliumNetworkPolicy shop/q egressDeny[1]'], denyPeers: ['entity', 'any'], denyValues: ['all', ''], denyPorts: ['', 'all/ANY'], defaultPods: [], defaultPodCount: 0 },
      `CiliumNetworkPolicy shop/p leaves 4 pods without DNS (UDP 53 to kube-system/kube-dns), and a deny decides, which no allow overrides: CiliumNetworkPolicy shop/p egressDeny[0] (toEntities all, every port), CiliumNetworkPolicy shop/q egressDeny[1] (every peer, on all/ANY): ${victims}`,
      'narrow CiliumNetworkPolicy shop/p egressDeny[0]: replace all in its toEntities by the peers it means to deny (all covers the DNS servers (kube-system pods k8s-app=kube-dns)), or limit it with toPorts to the ports it means to deny (not 53/UDP), or remove the element; ' +
        'narrow CiliumNetworkPolicy shop/q egressDeny[1]: give it a toEndpoints/toCIDRSet peer that leaves out the DNS servers (kube-system pods k8s-app=kube-dns), or drop 53/UDP from its toPorts (all/ANY), or remove the element (an allow does not help: a Cilium deny wins over every allow)'],
  ];
  for (const [kind, params, message, fix] of golden) t.same(say(messages.finding(kind, params as never)), { message, fix }, kind);
  t.equal(new Set(golden.map(([k]) => k)).size, messages.codes.length, 'one golden test per code');
});

t.test('deleting a cluster-wide DNS allow: the namespace the fix names does not follow the order the state lists pods in', async (t) => {
  // Found by the long-lived-state test (seed 113): a live state lists pods in the order of its events, and
  // the finding named the namespace of the first lost pod met, so a live state and a fresh one differed.
  const dnsEverywhere = ccnp('dns-everywhere', { endpointSelector: {}, egress: [kubeDnsEgress] });
  const zeta = [ns('zeta'), pod('zeta', 'api', { app: 'api' }), netpol('zeta', 'deny', { podSelector: {}, policyTypes: ['Egress'] })];
  const alpha = [ns('alpha'), pod('alpha', 'web', { app: 'web' }), netpol('alpha', 'deny', { podSelector: {}, policyTypes: ['Egress'] })];
  for (const [label, objs] of [['zeta first', [...zeta, ...alpha]], ['alpha first', [...alpha, ...zeta]]] as const) {
    const { findings } = runRule(rule, baseCluster([...objs, dnsEverywhere]), 'DELETE', dnsEverywhere);
    t.same(findings.map((f) => [f.code, f.params?.namespace, [...(f.victims ?? [])].sort()]), [['dns-egress-missing/delete-removes-allow', 'alpha', ['alpha/web', 'zeta/api']]], label);
  }
});
