// Policy reports from audit results (openreports.io/v1alpha1), the writer that keeps the cluster's
// reports equal to them, and the Lease that makes one replica the writer. Against an in-memory API
// (fake-kube.ts); the real API server is exercised by test/e2e/audit-reports.test.ts.

import { pino } from 'pino';
import t from 'tap';

import { Lease } from '../../src/reports/lease.ts';
import { desiredReports, reportName, reportPath } from '../../src/reports/reports.ts';
import { ReportWriter } from '../../src/reports/writer.ts';
import type { AuditResult } from '../../src/verdict/audit.ts';
import { FakeKube } from './fake-kube.ts';

const silent = pino({ level: 'silent' });
const now = new Date('2026-12-06T10:00:00Z');

const np: AuditResult = {
  kind: 'NetworkPolicy',
  apiVersion: 'networking.k8s.io/v1',
  namespace: 'green',
  name: 'netshoot-egress',
  findings: [
    { rule: 'dns-egress-missing', code: 'dns-egress-missing/policy-leaves-no-dns', params: {}, action: 'deny', message: 'no DNS', fix: 'allow UDP 53', victims: ['green/a', 'green/b'], victimCount: 7 },
    { rule: 'apiserver-egress-missing', code: 'apiserver-egress-missing/test', params: {}, action: 'warn', message: 'no API server', shared: true },
  ],
};
const ns: AuditResult = { kind: 'Namespace', apiVersion: 'v1', namespace: '', name: 'blue', findings: [{ rule: 'istiod-unreachable-overlay', code: 'istiod-unreachable-overlay/test', params: {}, action: 'audit', message: 'istiod unreachable' }] };
const clean: AuditResult = { kind: 'CiliumNetworkPolicy', apiVersion: 'cilium.io/v2', namespace: 'green', name: 'fine', findings: [] };

t.test('a Report per object with findings, scoped to it; a ClusterReport for cluster-scoped ones', async (t) => {
  const reports = desiredReports([np, ns, clean], now, (r) => `https://docs.test/${r}`);
  t.same([...reports.keys()].sort(), ['ClusterReport//meshguard-namespace-blue', 'Report/green/meshguard-networkpolicy-netshoot-egress']);
  const r = reports.get('Report/green/meshguard-networkpolicy-netshoot-egress')!;
  t.equal(r.apiVersion, 'openreports.io/v1alpha1');
  t.same(r.metadata, { name: 'meshguard-networkpolicy-netshoot-egress', namespace: 'green', labels: { 'app.kubernetes.io/managed-by': 'meshguard' } });
  t.same(r.scope, { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', name: 'netshoot-egress', namespace: 'green' });
  t.same(r.summary, { pass: 0, fail: 1, warn: 1, error: 0, skip: 0 });
  t.same(
    r.results.map((x) => [x.policy, x.result, x.severity, x.scored]),
    [
      ['dns-egress-missing', 'fail', 'high', true],
      ['apiserver-egress-missing', 'warn', 'medium', false],
    ],
  );
  t.same(r.results[0]!.properties, { code: 'dns-egress-missing/policy-leaves-no-dns', fix: 'allow UDP 53', victims: 'green/a, green/b', victimCount: '7', docs: 'https://docs.test/dns-egress-missing' });
  t.equal(r.results[1]!.properties?.shared, 'true');
  t.same(r.results[0]!.timestamp, { seconds: 1796551200, nanos: 0 });
  const c = reports.get('ClusterReport//meshguard-namespace-blue')!;
  t.equal(c.kind, 'ClusterReport');
  t.equal(c.metadata.namespace, undefined);
  t.equal(c.results[0]!.result, 'warn', 'audit-level problems warn');
});

t.test('report names are valid whatever the object name', async (t) => {
  const long = reportName('CiliumNetworkPolicy', 'x'.repeat(253));
  t.equal(long.length, 253);
  t.not(long, reportName('CiliumNetworkPolicy', `${'x'.repeat(252)}y`), 'distinct objects, distinct names');
  t.equal(reportName('NetworkPolicy', 'a'), 'meshguard-networkpolicy-a');
});

t.test('the writer applies new reports, skips unchanged ones, deletes fixed ones and strangers it left', async (t) => {
  const api = new FakeKube();
  // A report left by an earlier meshguard for an object that is fine now, and another tool's report.
  api.objects.set(reportPath('Report', 'green', 'meshguard-ciliumnetworkpolicy-old'), { metadata: { name: 'meshguard-ciliumnetworkpolicy-old', namespace: 'green', labels: { 'app.kubernetes.io/managed-by': 'meshguard' } } });
  api.objects.set(reportPath('Report', 'green', 'kyverno-thing'), { metadata: { name: 'kyverno-thing', namespace: 'green', labels: { 'app.kubernetes.io/managed-by': 'kyverno' } } });
  const w = new ReportWriter(api, silent);
  const first = await w.reconcile(desiredReports([np, ns], now));
  t.same(first, { applied: 2, deleted: 1, unchanged: 0, failed: 0 });
  t.ok(api.objects.has(reportPath('Report', 'green', 'meshguard-networkpolicy-netshoot-egress')));
  t.ok(api.objects.has(reportPath('ClusterReport', undefined, 'meshguard-namespace-blue')));
  t.notOk(api.objects.has(reportPath('Report', 'green', 'meshguard-ciliumnetworkpolicy-old')), "meshguard's stale report deleted");
  t.ok(api.objects.has(reportPath('Report', 'green', 'kyverno-thing')), "another tool's report untouched");
  t.ok(api.calls.some((c) => c.startsWith('PATCH ') && c.includes('fieldManager=meshguard')), 'server-side apply');

  const later = new Date(now.getTime() + 60_000);
  t.same(await w.reconcile(desiredReports([np, ns], later)), { applied: 0, deleted: 0, unchanged: 2, failed: 0 }, 'same findings later: no write');

  const fixed = await w.reconcile(desiredReports([np, { ...ns, findings: [] }], later));
  t.same(fixed, { applied: 0, deleted: 1, unchanged: 1, failed: 0 }, 'fixing the object deletes its report');
  t.notOk(api.objects.has(reportPath('ClusterReport', undefined, 'meshguard-namespace-blue')));

  const changed = await w.reconcile(desiredReports([{ ...np, findings: np.findings.slice(0, 1) }], later));
  t.same(changed, { applied: 1, deleted: 0, unchanged: 0, failed: 0 }, 'a changed finding list is rewritten');
});

t.test('without the report CRDs the writer says so and writes nothing', async (t) => {
  const api = new FakeKube();
  api.missing.add('/apis/openreports.io/');
  const lines: string[] = [];
  const w = new ReportWriter(api, pino({ level: 'warn' }, { write: (s: string) => void lines.push(s) }));
  t.same(await w.reconcile(desiredReports([np], now)), { applied: 0, deleted: 0, unchanged: 0, failed: 0, missingApi: true });
  await w.reconcile(desiredReports([np], now));
  t.equal(lines.length, 1, 'said once');
  t.match(lines[0], /openreports\.io CRDs are not installed/);
  t.notOk(api.calls.some((c) => !c.startsWith('GET ')), 'no write attempted');
});

function clock(start: number) {
  let wall = start;
  return { now: () => wall, wall: () => wall, advance: (ms: number) => void (wall += ms) };
}

t.test('the lease: one holder; renewals keep it; another replica takes it once it saw no change for the lease time', async (t) => {
  const api = new FakeKube();
  const c = clock(Date.parse('2026-12-06T10:00:00Z'));
  const a = new Lease({ api, namespace: 'meshguard', name: 'meshguard-audit', identity: 'pod-a', leaseMs: 30_000, clock: c });
  const b = new Lease({ api, namespace: 'meshguard', name: 'meshguard-audit', identity: 'pod-b', leaseMs: 30_000, clock: c });
  t.equal(await a.tryAcquireOrRenew(), true, 'a creates and holds it');
  t.equal(await b.tryAcquireOrRenew(), false, 'b sees it held');
  c.advance(20_000);
  t.equal(await a.tryAcquireOrRenew(), true, 'a renews');
  c.advance(20_000);
  t.equal(await b.tryAcquireOrRenew(), false, 'b sees the renewal: the lease time counts from now (near miss)');
  c.advance(29_999);
  t.equal(await b.tryAcquireOrRenew(), false, '1 ms short of 30 s unchanged');
  c.advance(1);
  t.equal(await b.tryAcquireOrRenew(), true, '30 s without a change as b saw it: b takes over');
  t.equal(await a.tryAcquireOrRenew(), false, 'a lost it');
  const lease = api.objects.get('/apis/coordination.k8s.io/v1/namespaces/meshguard/leases/meshguard-audit') as unknown as { spec: { holderIdentity: string; leaseTransitions: number } };
  t.equal(lease.spec.holderIdentity, 'pod-b');
  t.equal(lease.spec.leaseTransitions, 1);
  await b.release();
  t.equal(await a.tryAcquireOrRenew(), true, 'a released lease is taken at once');
});

t.test('the lease: a holder whose renewals stall stops counting itself before anyone can take over', async (t) => {
  const api = new FakeKube();
  const c = clock(Date.parse('2026-12-06T10:00:00Z'));
  const a = new Lease({ api, namespace: 'm', name: 'l', identity: 'a', leaseMs: 30_000, clock: c });
  t.equal(await a.tryAcquireOrRenew(), true);
  c.advance(29_999);
  t.equal(a.held, true, 'within the lease time of its last renewal');
  c.advance(1);
  t.equal(a.held, false, 'no renewal for the lease time: no longer the writer, though nothing told it');
});

t.test("the lease: another replica's clock being ahead does not make it take a live lease", async (t) => {
  const api = new FakeKube();
  const c = clock(Date.parse('2026-12-06T10:00:00Z'));
  const ahead = { now: c.now, wall: () => c.wall() + 120_000 };
  const a = new Lease({ api, namespace: 'm', name: 'l', identity: 'a', leaseMs: 30_000, clock: c });
  const b = new Lease({ api, namespace: 'm', name: 'l', identity: 'b', leaseMs: 30_000, clock: ahead });
  t.equal(await a.tryAcquireOrRenew(), true);
  t.equal(await b.tryAcquireOrRenew(), false, 'b reads a renewTime 2 minutes old by its own clock, and still waits');
  c.advance(10_000);
  t.equal(await a.tryAcquireOrRenew(), true);
  c.advance(10_000);
  t.equal(await b.tryAcquireOrRenew(), false);
});

t.test('the lease: two replicas racing for an expired lease cannot both win', async (t) => {
  const api = new FakeKube();
  const c = clock(Date.parse('2026-12-06T10:00:00Z'));
  const old = new Lease({ api, namespace: 'm', name: 'l', identity: 'gone', clock: c });
  await old.tryAcquireOrRenew();
  const a = new Lease({ api, namespace: 'm', name: 'l', identity: 'a', clock: c });
  const b = new Lease({ api, namespace: 'm', name: 'l', identity: 'b', clock: c });
  // Both observe the lease, then it stays unchanged past its time.
  await a.tryAcquireOrRenew();
  await b.tryAcquireOrRenew();
  c.advance(60_000);
  const won = await Promise.all([a.tryAcquireOrRenew(), b.tryAcquireOrRenew()]);
  t.same(won.filter(Boolean).length, 1, `exactly one wins (${won.join(', ')})`);
});

t.test('a shortened report name never ends its head in - or . before the hash', async (t) => {
  // 236 characters of head would end in '.' here: the cut moves back past it.
  const name = `${'a'.repeat(253 - 17 - 'meshguard-networkpolicy-'.length - 1)}.b${'c'.repeat(40)}`;
  const r = reportName('NetworkPolicy', name);
  t.ok(r.length <= 253);
  t.match(r, /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
  t.notMatch(r, /[-.]-[0-9a-f]{16}$/, 'no "-" or "." right before the hash separator');
});
