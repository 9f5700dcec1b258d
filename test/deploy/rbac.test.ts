// The deploy manifests grant meshguard exactly what its state reads (src/core/kinds.ts), read-only,
// and never Secrets: checked on the ClusterRole as each overlay renders it. Its only writes are its
// policy reports (openreports.io) and one Lease in its own namespace, each in a role of its own.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parseAllDocuments } from 'yaml';
import { KIND_NAMES, KINDS } from '../../src/core/kinds.ts';
import { anyKubectl, REPO_ROOT } from '../helpers/kube-bins.ts';

interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}
interface Doc {
  kind?: string;
  metadata?: { name?: string; namespace?: string };
  rules?: PolicyRule[];
  roleRef?: { kind?: string; name?: string };
  subjects?: { kind?: string; name?: string; namespace?: string }[];
}

const OVERLAYS = ['enforce', 'audit', 'host-network', 'client-auth'] as const;
const READ_VERBS = new Set(['get', 'list', 'watch']);

const kubectl = anyKubectl();

function render(overlay: string): Doc[] {
  const dir = join(REPO_ROOT, 'deploy', 'overlays', overlay);
  const text = kubectl
    ? execFileSync(kubectl, ['kustomize', dir], { encoding: 'utf8' })
    // Without a kubectl the RBAC is checked as written (no overlay patches RBAC).
    : readFileSync(join(REPO_ROOT, 'deploy', 'base', 'rbac.yaml'), 'utf8');
  return parseAllDocuments(text).map((d) => d.toJS() as Doc);
}

/** "group/plural" for every resource the rules grant, plus the verbs granted per entry. */
function grants(rules: PolicyRule[]): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const r of rules) {
    for (const g of r.apiGroups ?? []) {
      for (const res of r.resources ?? []) {
        const key = `${g}/${res}`;
        const verbs = out.get(key) ?? new Set<string>();
        for (const v of r.verbs ?? []) verbs.add(v);
        out.set(key, verbs);
      }
    }
  }
  return out;
}

const expected = new Set(KIND_NAMES.map((k) => `${KINDS[k].group}/${KINDS[k].plural}`));

if (!kubectl) t.comment('no kubectl found: checking deploy/base/rbac.yaml as written');

for (const overlay of OVERLAYS) {
  t.test(`overlay ${overlay}`, async (t) => {
    const docs = render(overlay);
    const roles = docs.filter((d) => d.kind === 'ClusterRole' || d.kind === 'Role');
    t.same(roles.map((r) => `${r.kind}/${r.metadata?.name}`).sort(), ['ClusterRole/meshguard', 'ClusterRole/meshguard-reports', 'Role/meshguard-audit-lease']);
    const role = roles.find((r) => r.metadata?.name === 'meshguard')!;
    t.equal(role.kind, 'ClusterRole');
    const rules = role.rules ?? [];
    const granted = grants(rules);

    t.same([...granted.keys()].sort(), [...expected].sort(), 'grants exactly the kinds in src/core/kinds.ts');
    for (const [res, verbs] of granted) {
      t.same([...verbs].sort(), [...READ_VERBS].sort(), `${res}: get/list/watch only`);
    }
    for (const r of rules) {
      t.notOk(r.nonResourceURLs, 'no non-resource URLs');
      t.notOk(r.resourceNames, 'no resourceNames (they would silently break list/watch)');
      t.notOk((r.apiGroups ?? []).includes('*') || (r.resources ?? []).includes('*') || (r.verbs ?? []).includes('*'),
        'no wildcards');
      t.notOk((r.resources ?? []).some((x) => x === 'secrets' || x.startsWith('secrets/')), 'never secrets');
      t.notOk((r.resources ?? []).some((x) => x.includes('/')), 'no subresources');
    }

    const reports = roles.find((r) => r.metadata?.name === 'meshguard-reports')!;
    t.same(
      [...grants(reports.rules ?? [])].map(([res, verbs]) => [res, [...verbs].sort()]),
      [
        ['openreports.io/reports', ['create', 'delete', 'get', 'list', 'patch']],
        ['openreports.io/clusterreports', ['create', 'delete', 'get', 'list', 'patch']],
      ],
      'writes policy reports and nothing else',
    );
    const lease = roles.find((r) => r.metadata?.name === 'meshguard-audit-lease')!;
    t.equal(lease.kind, 'Role', 'the lease grant is namespaced');
    t.equal(lease.metadata?.namespace, 'meshguard');
    t.same(
      (lease.rules ?? []).map((r) => [r.apiGroups, r.resources, r.resourceNames ?? [], [...(r.verbs ?? [])].sort()]),
      [
        [['coordination.k8s.io'], ['leases'], [], ['create']],
        [['coordination.k8s.io'], ['leases'], ['meshguard-audit'], ['get', 'update']],
      ],
      'one Lease, by name, besides create',
    );
    for (const r of [...(reports.rules ?? []), ...(lease.rules ?? [])]) {
      t.notOk((r.resources ?? []).some((x) => x === 'secrets' || x.includes('/') || x === '*'), 'no secrets, subresources or wildcards');
      t.notOk((r.verbs ?? []).includes('*') || (r.verbs ?? []).includes('escalate') || (r.verbs ?? []).includes('bind'));
    }

    if (kubectl) {
      const bindings = docs.filter((d) => d.kind === 'ClusterRoleBinding' || d.kind === 'RoleBinding');
      t.equal(bindings.length, 3, 'one binding per role');
      for (const b of bindings) {
        t.match(b, { subjects: [{ kind: 'ServiceAccount', name: 'meshguard', namespace: 'meshguard' }] }, `${b.metadata?.name} binds meshguard's service account`);
        t.ok(roles.some((r) => r.kind === b.roleRef?.kind && r.metadata?.name === b.roleRef?.name), `${b.metadata?.name} binds one of the roles`);
      }
      const deploy = docs.find((d) => d.kind === 'Deployment') as
        | { spec: { template: { spec: { serviceAccountName?: string } } } }
        | undefined;
      t.equal(deploy?.spec.template.spec.serviceAccountName, 'meshguard', 'the Deployment runs as that ServiceAccount');
    }
  });
}
