// ztunnel-l7-authz: findings asserted as data (code, params, victims); the wording has one golden message
// per code in the fixtures, src/rules/ztunnel-l7-authz/testdata/*.yaml.
import t from 'tap';
import { rule, scope } from '../../src/rules/ztunnel-l7-authz/index.ts';
import { authzPolicy, baseCluster, ns, pod } from '../fixtures/cluster.ts';
import { makeChange, runRule } from './rule-harness.ts';

const CODE = (kind: string): string => `ztunnel-l7-authz/${kind}`;

// Seed 004: the ambient "demo" namespace.
const AMBIENT = { 'istio.io/dataplane-mode': 'ambient' };
const demoPods = [
  pod('demo', 'hello-gateway-1', { app: 'hello-gateway' }, { sa: 'hello-gateway-istio' }),
  pod('demo', 'hello-app-1', { app: 'hello-app' }, { sa: 'hello-app', ports: [{ name: 'http', containerPort: 8000 }] }),
  pod('demo', 'postgres-1', { app: 'postgres' }, { sa: 'postgres' }),
];
const demo = [ns('demo', AMBIENT), ...demoPods];

function helloAppPolicy(operation: Record<string, unknown>) {
  return authzPolicy('demo', 'hello-app-policy', {
    selector: { matchLabels: { app: 'hello-app' } },
    action: 'ALLOW',
    rules: [{ from: [{ source: { principals: ['cluster.local/ns/demo/sa/hello-gateway-istio'] } }], to: [{ operation }] }],
  });
}
const l4Policy = helloAppPolicy({ ports: ['8000'] });
const withPaths = helloAppPolicy({ ports: ['8000'], paths: ['/api/*'] });

t.test('seed 004: the L4 AuthorizationPolicy by principal and port is admitted', async (t) => {
  t.same(runRule(rule, baseCluster(demo), 'CREATE', l4Policy).findings, []);
});

t.test('seed 004: the same policy with paths is denied', async (t) => {
  const { findings } = runRule(rule, baseCluster(demo), 'CREATE', withPaths);
  t.equal(findings.length, 1);
  const f = findings[0]!;
  t.equal(f.rule, 'ztunnel-l7-authz');
  t.notOk(f.preexisting);
  t.equal(f.code, CODE('allow-never-matches'));
  t.same(f.params, {
    policy: 'demo/hello-app-policy',
    attributes: ['to.operation.paths'],
    attributeCount: 1,
    pods: ['demo/hello-app-1'],
    podCount: 1,
    podNamespace: 'demo',
    wouldSelect: false,
  });
  t.same(f.victims, ['demo/hello-app-1']);
  t.equal(f.victimCount, 1);
  // UPDATE from the L4 version adds paths: denied as well
  const upd = runRule(rule, baseCluster([...demo, l4Policy]), 'UPDATE', withPaths).findings;
  t.same(upd.map((f) => [f.code, f.preexisting]), [[CODE('allow-never-matches'), undefined]]);
});

t.test('DENY with HTTP attributes: broader deny', async (t) => {
  const deny = authzPolicy('demo', 'deny-admin', {
    action: 'DENY',
    rules: [{ to: [{ operation: { methods: ['POST'] } }], when: [{ key: 'request.headers[x-admin]', values: ['1'] }] }],
  });
  const { findings } = runRule(rule, baseCluster(demo), 'CREATE', deny);
  t.equal(findings.length, 1);
  t.equal(findings[0]!.code, CODE('deny-broadened'));
  t.same(findings[0]!.params?.['attributes'], ['to.operation.methods', 'when request.headers']);
  t.equal(findings[0]!.victimCount, 3, 'namespace-wide');
});

t.test('not caught: waypoint targetRefs, sidecar pods, plain pods, AUDIT', async (t) => {
  const wp = authzPolicy('demo', 'wp', {
    targetRefs: [{ kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'waypoint' }],
    rules: [{ to: [{ operation: { paths: ['/x'] } }] }],
  });
  t.same(runRule(rule, baseCluster(demo), 'CREATE', wp).findings, [], 'enforced by the waypoint');
  const side = [ns('demo', { 'istio-injection': 'enabled' }), pod('demo', 'hello-app-1', { app: 'hello-app' }, { sidecar: true })];
  t.same(runRule(rule, baseCluster(side), 'CREATE', withPaths).findings, [], 'sidecar Envoy sees HTTP');
  t.same(runRule(rule, baseCluster([ns('demo'), ...demoPods]), 'CREATE', withPaths).findings, [], 'not in the mesh');
  const optOut = [ns('demo', AMBIENT), pod('demo', 'hello-app-1', { app: 'hello-app', 'istio.io/dataplane-mode': 'none' })];
  t.same(runRule(rule, baseCluster(optOut), 'CREATE', withPaths).findings, [], 'pod opted out of ambient');
  const audit = authzPolicy('demo', 'audit', { action: 'AUDIT', rules: [{ to: [{ operation: { paths: ['/x'] } }] }] });
  t.same(runRule(rule, baseCluster(demo), 'CREATE', audit).findings, []);
});

t.test('synthetic pod: a policy for pods not deployed yet in an ambient namespace', async (t) => {
  const ap = authzPolicy('demo', 'future', { selector: { matchLabels: { app: 'future' } }, rules: [{ to: [{ operation: { methods: ['GET'] } }] }] });
  const { findings } = runRule(rule, baseCluster(demo), 'CREATE', ap);
  t.equal(findings.length, 1);
  t.equal(findings[0]!.code, CODE('allow-never-matches'));
  t.equal(findings[0]!.params?.['wouldSelect'], true);
  t.same(findings[0]!.victims, ['demo/(any pod selected by future)']);
});

t.test('enrolling a namespace into ambient with an existing HTTP policy; preexisting on re-apply', async (t) => {
  const { findings } = runRule(rule, baseCluster([ns('demo'), ...demoPods, withPaths]), 'UPDATE', ns('demo', AMBIENT));
  t.equal(findings.length, 1);
  t.equal(findings[0]!.code, CODE('namespace-allow-never-matches'));
  t.same([findings[0]!.params?.['namespace'], findings[0]!.params?.['policy']], ['demo', 'demo/hello-app-policy']);
  t.notOk(findings[0]!.preexisting);
  const again = runRule(rule, baseCluster([...demo, withPaths]), 'UPDATE', withPaths).findings;
  t.equal(again.length, 1);
  t.equal(again[0]!.code, CODE('allow-kept'));
  t.equal(again[0]!.preexisting, true);
});

t.test('scope: from the request alone', async (t) => {
  t.same(scope(makeChange('CREATE', withPaths)), { by: 'authorization-policy' });
  t.equal(scope(makeChange('DELETE', undefined, withPaths)), undefined, 'deleting a policy repairs');
  t.same(scope(makeChange('UPDATE', ns('demo', AMBIENT), ns('demo'))), { by: 'namespace', namespace: 'demo' });
  t.equal(scope(makeChange('UPDATE', ns('demo', AMBIENT), ns('demo', AMBIENT))), undefined, 'labels unchanged');
});

t.test('when keys: connection.sni needs a proxy that sees the request, destination.ip does not (istiod l4WhenAttributes)', async (t) => {
  const withWhen = (key: string) => authzPolicy('demo', 'hello-app-policy', {
    selector: { matchLabels: { app: 'hello-app' } },
    action: 'ALLOW',
    rules: [{ from: [{ source: { principals: ['cluster.local/ns/demo/sa/hello-gateway-istio'] } }], when: [{ key, values: ['10.0.0.0/8'] }] }],
  });
  const sni = runRule(rule, baseCluster(demo), 'CREATE', withWhen('connection.sni')).findings;
  t.same(sni.map((f) => [f.code, f.params['attributes']]), [[CODE('allow-never-matches'), ['when connection.sni']]]);
  t.same(runRule(rule, baseCluster(demo), 'CREATE', withWhen('destination.ip')).findings, []);
  // A selector whose value is not a string is refused by the API server: it selects no pod, no finding.
  const numeric = authzPolicy('demo', 'numeric', { selector: { matchLabels: { app: 1 } }, rules: [{ to: [{ operation: { paths: ['/x'] } }] }] });
  t.same(runRule(rule, baseCluster(demo), 'CREATE', numeric).findings, []);
});
