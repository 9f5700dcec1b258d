// The background audit against a real kube-apiserver: a policy that breaks DNS, applied while
// meshguard is not running, shows up after start as an openreports.io Report on that policy and in
// meshguard_existing_findings; fixing the policy deletes the report and the gauge reads 0. The Lease
// that makes this replica the writer is in the cluster. Waits are bounded polls on the API state.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';

import { REPO_ROOT } from '../helpers/kube-bins.ts';
import { applyObjects, KUBE_DNS, pod, startControlPlane, startMeshguard, waitFor } from './harness.ts';

const example = (name: string) => parse(readFileSync(join(REPO_ROOT, 'examples', 'policies', name), 'utf8')) as Record<string, unknown>;

t.test('policy reports and the existing-findings gauge follow the cluster', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.stop());
  const { kubectl } = cp;

  const crds = await kubectl(['apply', '-k', join(REPO_ROOT, 'deploy', 'crds')]);
  t.equal(crds.code, 0, crds.stderr);
  const est = await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/reports.openreports.io', 'crd/clusterreports.openreports.io']);
  t.equal(est.code, 0, est.stderr);

  // The broken policy is there before meshguard starts.
  await applyObjects(kubectl, [
    ...KUBE_DNS,
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'meshguard' } },
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'green' } },
    pod('green', 'netshoot-1', { app: 'netshoot' }),
    example('dns-egress-missing.bad.yaml'),
  ]);

  const mg = await startMeshguard({ kubeconfigPath: cp.kubeconfigPath, extraArgs: ['--audit-debounce-seconds', '1'] });
  t.teardown(() => mg.stop());

  const reportOf = async (): Promise<{ summary?: { fail?: number }; results?: { policy: string; result: string; properties?: Record<string, string> }[]; scope?: { kind: string; name: string } } | undefined> => {
    const r = await kubectl(['get', 'reports.openreports.io', '-n', 'green', 'meshguard-networkpolicy-netshoot-egress', '-o', 'json', '--ignore-not-found']);
    return r.stdout.trim() ? JSON.parse(r.stdout) : undefined;
  };
  await waitFor('the report on the broken policy', async () => (await reportOf())?.summary?.fail === 1, 90_000, 500);
  const report = (await reportOf())!;
  t.same(report.scope && { kind: report.scope.kind, name: report.scope.name }, { kind: 'NetworkPolicy', name: 'netshoot-egress' });
  t.same(report.results?.map((r) => [r.policy, r.result]), [['dns-egress-missing', 'fail']]);
  t.match(report.results?.[0]?.properties?.victims, /green\/netshoot-1/);
  const gauge = async () => (await mg.metrics()).body.split('\n').find((l) => l.startsWith('meshguard_existing_findings{rule="dns-egress-missing",action="deny"}'));
  t.equal(await gauge(), 'meshguard_existing_findings{rule="dns-egress-missing",action="deny"} 1');
  t.match((await mg.metrics()).body, /meshguard_audit_report_writer 1/);
  const lease = await kubectl(['get', 'lease', '-n', 'meshguard', 'meshguard-audit', '-o', 'jsonpath={.spec.holderIdentity}']);
  t.equal(lease.code, 0, lease.stderr);
  t.ok(lease.stdout.length > 0, `the lease is held (${lease.stdout})`);

  // Fix the policy: the report goes, the gauge reads 0.
  await applyObjects(kubectl, [example('dns-egress-missing.good.yaml')]);
  await waitFor('the report deleted', async () => (await reportOf()) === undefined, 90_000, 500);
  await waitFor('the gauge at 0', async () => (await gauge()) === 'meshguard_existing_findings{rule="dns-egress-missing",action="deny"} 0', 30_000, 500);
  const left = await kubectl(['get', 'reports.openreports.io', '-A', '-l', 'app.kubernetes.io/managed-by=meshguard', '-o', 'name']);
  t.equal(left.stdout.trim(), '', 'no meshguard report left');
});
