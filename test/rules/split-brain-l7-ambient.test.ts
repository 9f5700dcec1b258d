// split-brain-l7-ambient: findings asserted as data (code, params, victims); the wording has one golden
// message per code in the fixtures, src/rules/split-brain-l7-ambient/testdata/*.yaml.
import t from 'tap';
import { rule, scope } from '../../src/rules/split-brain-l7-ambient/index.ts';
import { baseCluster, ccnp, cnp, ns, pod, HEALTHY_CILIUM_CONFIG } from '../fixtures/cluster.ts';
import { makeChange, runRule } from './rule-harness.ts';

const CODE = (kind: string): string => `split-brain-l7-ambient/${kind}`;

const AMBIENT = { 'istio.io/dataplane-mode': 'ambient' };
const demoPods = [
  pod('demo', 'hello-app-1', { app: 'hello-app' }, { sa: 'hello-app', ports: [{ name: 'http', containerPort: 8000 }] }),
  pod('demo', 'hello-app-2', { app: 'hello-app' }, { sa: 'hello-app', ports: [{ name: 'http', containerPort: 8000 }] }),
  pod('demo', 'postgres-1', { app: 'postgres' }, { sa: 'postgres' }),
];
const l7Ingress = cnp('demo', 'hello-l7', {
  endpointSelector: { matchLabels: { app: 'hello-app' } },
  ingress: [{ toPorts: [{ ports: [{ port: 'http', protocol: 'TCP' }], rules: { http: [{ method: 'GET', path: '/' }] } }] }],
});
const l4Ingress = cnp('demo', 'hello-l7', {
  endpointSelector: { matchLabels: { app: 'hello-app' } },
  ingress: [{ toPorts: [{ ports: [{ port: '8000', protocol: 'TCP' }] }] }],
});

t.test('L7 rules on ambient pods are denied', async (t) => {
  const { findings } = runRule(rule, baseCluster([ns('demo', AMBIENT), ...demoPods]), 'CREATE', l7Ingress);
  t.equal(findings.length, 1);
  const f = findings[0]!;
  t.equal(f.rule, 'split-brain-l7-ambient');
  t.notOk(f.preexisting);
  t.equal(f.code, CODE('policy-selects-ambient'));
  t.same(f.params, {
    l7: 'HTTP',
    policies: ['CiliumNetworkPolicy demo/hello-l7'],
    policyCount: 1,
    direction: 'ingress',
    port: 8000,
    pods: ['demo/hello-app-1', 'demo/hello-app-2'],
    podCount: 2,
    podNamespace: 'demo',
    wouldSelect: false,
  });
  t.same(f.victims, ['demo/hello-app-1', 'demo/hello-app-2']);
  t.equal(f.victimCount, 2);
});

t.test('egress L7 (Kafka) from ambient pods is denied too', async (t) => {
  const kafka = cnp('demo', 'kafka', {
    endpointSelector: { matchLabels: { app: 'postgres' } },
    egress: [{ toEndpoints: [{ matchLabels: { app: 'broker' } }], toPorts: [{ ports: [{ port: '9092', protocol: 'TCP' }], rules: { kafka: [{ topic: 'x' }] } }] }],
  });
  const { findings } = runRule(rule, baseCluster([ns('demo', AMBIENT), ...demoPods]), 'CREATE', kafka);
  t.equal(findings.length, 1);
  t.equal(findings[0]!.code, CODE('policy-selects-ambient'));
  t.same([findings[0]!.params?.['l7'], findings[0]!.params?.['direction'], findings[0]!.params?.['port']], ['Kafka', 'egress', 9092]);
  t.same(findings[0]!.victims, ['demo/postgres-1']);
});

t.test('not caught: L4 only, DNS rules, opted-out pods, not ambient, L7 proxy off', async (t) => {
  t.same(runRule(rule, baseCluster([ns('demo', AMBIENT), ...demoPods]), 'CREATE', l4Ingress).findings, [], 'L4 only');
  const dns = cnp('demo', 'dns', {
    endpointSelector: {},
    egress: [{ toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s-app': 'kube-dns' } }], toPorts: [{ ports: [{ port: '53', protocol: 'UDP' }], rules: { dns: [{ matchPattern: '*' }] } }] }],
  });
  t.same(runRule(rule, baseCluster([ns('demo', AMBIENT), ...demoPods]), 'CREATE', dns).findings, [], 'DNS is not stream L7');
  const optedOut = [
    ns('demo', AMBIENT),
    pod('demo', 'hello-app-1', { app: 'hello-app', 'istio.io/dataplane-mode': 'none' }, { ports: [{ name: 'http', containerPort: 8000 }] }),
    pod('demo', 'hello-app-2', { app: 'hello-app' }, { ports: [{ name: 'http', containerPort: 8000 }], annotations: { 'ambient.istio.io/redirection': 'disabled' } }),
  ];
  t.same(runRule(rule, baseCluster(optedOut), 'CREATE', l7Ingress).findings, [], 'pods opted out');
  t.same(runRule(rule, baseCluster([ns('demo'), ...demoPods]), 'CREATE', l7Ingress).findings, [], 'namespace not in ambient');
  t.same(runRule(rule, baseCluster([ns('demo', AMBIENT), ...demoPods], { ...HEALTHY_CILIUM_CONFIG, 'enable-l7-proxy': 'false' }), 'CREATE', l7Ingress).findings, []);
});

t.test('enrolling a namespace into ambient under an existing L7 policy is denied; the reverse is fine', async (t) => {
  const { findings } = runRule(rule, baseCluster([ns('demo'), ...demoPods, l7Ingress]), 'UPDATE', ns('demo', AMBIENT));
  t.equal(findings.length, 1);
  t.equal(findings[0]!.code, CODE('namespace-joins-ambient'));
  t.equal(findings[0]!.params?.['namespace'], 'demo');
  t.notOk(findings[0]!.preexisting);
  t.same(runRule(rule, baseCluster([ns('demo', AMBIENT), ...demoPods, l7Ingress]), 'UPDATE', ns('demo')).findings, []);
  // A label an L7 policy reads, changed on an already-broken namespace: warning only.
  const teamL7 = ccnp('team-l7', {
    endpointSelector: { matchLabels: { 'io.cilium.k8s.namespace.labels.team': 'a', app: 'postgres' } },
    ingress: [{ toPorts: [{ ports: [{ port: '5432', protocol: 'TCP' }], rules: { http: [{ method: 'GET' }] } }] }],
  });
  const pre = runRule(rule, baseCluster([ns('demo', AMBIENT), ...demoPods, l7Ingress, teamL7]), 'UPDATE', ns('demo', { ...AMBIENT, team: 'b' })).findings;
  t.equal(pre.length, 1);
  t.equal(pre[0]!.code, CODE('namespace-keeps-ambient'));
  t.equal(pre[0]!.preexisting, true);
});

t.test('a relabel no L7 policy reads cannot change L7 conflicts: no finding, as decide() skips unread labels', async (t) => {
  const teamL4 = ccnp('team-l4', {
    endpointSelector: { matchLabels: { 'io.cilium.k8s.namespace.labels.team': 'a' } },
    ingress: [{ toPorts: [{ ports: [{ port: '9090', protocol: 'TCP' }] }] }],
  });
  const broken = baseCluster([ns('demo', { ...AMBIENT, team: 'a' }), ...demoPods, l7Ingress, teamL4]);
  t.same(runRule(rule, broken, 'UPDATE', ns('demo', { ...AMBIENT, team: 'b' })).findings, [], 'read by an L4 policy only');
  t.same(runRule(rule, broken, 'UPDATE', ns('demo', { ...AMBIENT, team: 'a', owner: 'x' })).findings, [], 'read by nothing');
  // Mesh labels always count, whatever reads them: leaving ambient and coming back.
  const left = baseCluster([ns('demo', { team: 'a' }), ...demoPods, l7Ingress, teamL4]);
  t.equal(runRule(rule, left, 'UPDATE', ns('demo', { ...AMBIENT, team: 'a' })).findings.length, 1);
});

t.test('a pod relabelled into ambient under an existing L7 policy is denied', async (t) => {
  const plainPod = pod('web', 'api-1', { app: 'api' }, { ports: [{ containerPort: 8080 }] });
  const l7 = cnp('web', 'l7', { endpointSelector: { matchLabels: { app: 'api' } }, ingress: [{ toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }], rules: { http: [{}] } }] }] });
  const enrolled = { ...plainPod, metadata: { ...(plainPod.metadata as object), labels: { app: 'api', 'istio.io/dataplane-mode': 'ambient' } } } as unknown as typeof plainPod;
  const { findings } = runRule(rule, baseCluster([ns('web'), plainPod, l7]), 'UPDATE', enrolled);
  t.equal(findings.length, 1);
  t.equal(findings[0]!.code, CODE('pod-joins-ambient'));
  t.equal(findings[0]!.params?.['pod'], 'web/api-1');
  t.same(findings[0]!.victims, ['web/api-1']);
  // Relabelled again while already enrolled: the conflict was there (preexisting).
  const again = { ...enrolled, metadata: { ...(enrolled.metadata as object), labels: { app: 'api', 'istio.io/dataplane-mode': 'ambient', v: '2' } } } as unknown as typeof plainPod;
  const pre = runRule(rule, baseCluster([ns('web'), enrolled, l7]), 'UPDATE', again).findings;
  t.same(pre.map((f) => [f.code, f.preexisting]), [[CODE('pod-keeps-ambient'), true]]);
});

t.test('synthetic pods in a new ambient namespace; CCNP', async (t) => {
  const { findings } = runRule(rule, baseCluster([ns('fresh', AMBIENT)]), 'CREATE', cnp('fresh', 'l7', {
    endpointSelector: { matchLabels: { app: 'x' } },
    ingress: [{ toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{}] } }] }],
  }));
  t.equal(findings.length, 1);
  t.equal(findings[0]!.code, CODE('policy-selects-ambient'));
  t.equal(findings[0]!.params?.['wouldSelect'], true);
  const cw = ccnp('l7', { endpointSelector: { matchLabels: { app: 'hello-app' } }, ingress: [{ toPorts: [{ ports: [{ port: '8000', protocol: 'TCP' }], rules: { http: [{}] } }] }] });
  t.equal(runRule(rule, baseCluster([ns('demo', AMBIENT), ...demoPods]), 'CREATE', cw).findings[0]?.victimCount, 2);
});

t.test('scope: from the request alone', async (t) => {
  t.same(scope(makeChange('CREATE', l7Ingress)), { by: 'cilium-policy' });
  t.equal(scope(makeChange('DELETE', undefined, l7Ingress)), undefined, 'deleting L7 rules repairs');
  t.same(scope(makeChange('UPDATE', ns('demo', AMBIENT), ns('demo'))), { by: 'namespace', namespace: 'demo' });
  const p = demoPods[0]!;
  const annotated = { ...p, metadata: { ...(p.metadata as object), annotations: { 'ambient.istio.io/redirection': 'disabled' } } } as unknown as typeof p;
  t.same(scope(makeChange('UPDATE', annotated, p)), { by: 'pod', namespace: 'demo', name: 'hello-app-1' }, 'the redirection annotation');
  t.equal(scope(makeChange('UPDATE', p, p)), undefined, 'pod unchanged in labels and redirection');
});
