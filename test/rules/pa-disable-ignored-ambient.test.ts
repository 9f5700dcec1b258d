// pa-disable-ignored-ambient: findings asserted as data (code, params, victims); the wording has one golden
// message per code in the fixtures, src/rules/pa-disable-ignored-ambient/testdata/*.yaml.
import t from 'tap';
import { rule, scope } from '../../src/rules/pa-disable-ignored-ambient/index.ts';
import { baseCluster, ns, peerAuth, pod } from '../fixtures/cluster.ts';
import { makeChange, runRule } from './rule-harness.ts';

const CODE = (kind: string): string => `pa-disable-ignored-ambient/${kind}`;

const AMBIENT = { 'istio.io/dataplane-mode': 'ambient' };
const pods = [
  pod('demo', 'hello-app-1', { app: 'hello-app' }, { ports: [{ containerPort: 8000 }] }),
  pod('demo', 'postgres-1', { app: 'postgres' }, { ports: [{ containerPort: 5432 }] }),
];
const demo = [ns('demo', AMBIENT), ...pods];
const nsDisable = peerAuth('demo', 'default', { mtls: { mode: 'DISABLE' } });

t.test('namespace-wide DISABLE on ambient pods warns', async (t) => {
  const { findings } = runRule(rule, baseCluster(demo), 'CREATE', nsDisable);
  t.equal(findings.length, 1);
  const f = findings[0]!;
  t.equal(f.rule, 'pa-disable-ignored-ambient');
  t.notOk(f.preexisting);
  t.equal(f.code, CODE('policy-disables'));
  t.same(f.params, { source: 'demo/default', pods: ['demo/hello-app-1', 'demo/postgres-1'], podCount: 2, podNamespace: 'demo', wouldSelect: false });
  t.same(f.victims, ['demo/hello-app-1', 'demo/postgres-1']);
  t.equal(rule.severity, 'I');
});

t.test('port-level DISABLE on an ambient workload warns, naming the port', async (t) => {
  const pl = peerAuth('demo', 'pg', { selector: { matchLabels: { app: 'postgres' } }, mtls: { mode: 'STRICT' }, portLevelMtls: { '5432': { mode: 'DISABLE' } } });
  const { findings } = runRule(rule, baseCluster(demo), 'CREATE', pl);
  t.equal(findings.length, 1);
  t.equal(findings[0]!.code, CODE('policy-disables'));
  t.same(findings[0]!.params, { source: 'demo/pg', port: 5432, pods: ['demo/postgres-1'], podCount: 1, podNamespace: 'demo', wouldSelect: false });
  t.same(findings[0]!.victims, ['demo/postgres-1']);
});

t.test('not caught: STRICT/PERMISSIVE, sidecar or plain pods, DISABLE overridden, opted-out pods', async (t) => {
  t.same(runRule(rule, baseCluster(demo), 'CREATE', peerAuth('demo', 'default', { mtls: { mode: 'STRICT' } })).findings, []);
  t.same(runRule(rule, baseCluster([ns('demo', { 'istio-injection': 'enabled' }), ...pods]), 'CREATE', nsDisable).findings, [], 'sidecar namespace');
  t.same(runRule(rule, baseCluster([ns('demo'), ...pods]), 'CREATE', nsDisable).findings, [], 'not meshed');
  const strictAll = [
    peerAuth('demo', 'app', { selector: { matchLabels: { app: 'hello-app' } }, mtls: { mode: 'STRICT' } }),
    peerAuth('demo', 'pg', { selector: { matchLabels: { app: 'postgres' } }, mtls: { mode: 'PERMISSIVE' } }),
  ];
  t.same(runRule(rule, baseCluster([...demo, ...strictAll]), 'CREATE', nsDisable).findings, [], 'workload policies override the DISABLE');
  const optedOut = [ns('demo', AMBIENT), pod('demo', 'legacy-1', { app: 'legacy', 'istio.io/dataplane-mode': 'none' })];
  t.same(runRule(rule, baseCluster(optedOut), 'CREATE', nsDisable).findings, [], 'pod opted out of ambient');
});

t.test('enrolling a namespace with a DISABLE policy into ambient warns; re-applying is preexisting', async (t) => {
  const { findings } = runRule(rule, baseCluster([ns('demo'), ...pods, nsDisable]), 'UPDATE', ns('demo', AMBIENT));
  t.equal(findings.length, 1);
  t.equal(findings[0]!.code, CODE('namespace-enrols-disabled'));
  t.same(findings[0]!.params, { source: 'demo/default', pods: ['demo/hello-app-1', 'demo/postgres-1'], podCount: 2, podNamespace: 'demo', namespace: 'demo' });
  t.notOk(findings[0]!.preexisting);
  const again = runRule(rule, baseCluster([...demo, nsDisable]), 'UPDATE', nsDisable).findings;
  t.equal(again.length, 1);
  t.equal(again[0]!.code, CODE('policy-keeps-disable'));
  t.equal(again[0]!.preexisting, true);
  const relabel = runRule(rule, baseCluster([...demo, nsDisable]), 'UPDATE', ns('demo', { ...AMBIENT, team: 'a' })).findings;
  t.same(relabel.map((f) => [f.code, f.preexisting]), [[CODE('namespace-keeps-disabled'), true]], 'an unrelated relabel keeps it');
});

t.test('synthetic pod in an ambient namespace; root-namespace DISABLE', async (t) => {
  const future = peerAuth('demo', 'future', { selector: { matchLabels: { app: 'future' } }, mtls: { mode: 'DISABLE' } });
  const { findings } = runRule(rule, baseCluster(demo), 'CREATE', future);
  t.equal(findings.length, 1);
  t.equal(findings[0]!.code, CODE('policy-disables'));
  t.same(findings[0]!.params?.['wouldSelect'], true);
  t.same(findings[0]!.params?.['pods'], ['demo/(any pod selected by future)']);
  const root = peerAuth('istio-system', 'default', { mtls: { mode: 'DISABLE' } });
  t.equal(runRule(rule, baseCluster(demo), 'CREATE', root).findings[0]?.victimCount, 2, 'mesh-wide DISABLE reaches ambient pods');
});

t.test('scope: from the request alone', async (t) => {
  t.same(scope(makeChange('CREATE', nsDisable)), { by: 'peer-authentication' });
  t.equal(scope(makeChange('DELETE', undefined, nsDisable)), undefined, 'deleting a DISABLE repairs');
  t.same(scope(makeChange('UPDATE', ns('demo', AMBIENT), ns('demo'))), { by: 'namespace', namespace: 'demo' });
  t.equal(scope(makeChange('UPDATE', ns('demo', AMBIENT), ns('demo', AMBIENT))), undefined, 'labels unchanged');
});
