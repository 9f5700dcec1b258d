// The deploy manifests grant meshguard exactly what its state reads (src/state/kinds.ts), read-only,
// and never Secrets: checked on the ClusterRole as each overlay renders it.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parseAllDocuments } from 'yaml';
import { KIND_NAMES, KINDS } from '../../src/state/kinds.ts';
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
    t.equal(roles.length, 1, 'one role, the meshguard ClusterRole');
    const role = roles[0]!;
    t.equal(role.kind, 'ClusterRole');
    const rules = role.rules ?? [];
    const granted = grants(rules);

    t.same([...granted.keys()].sort(), [...expected].sort(), 'grants exactly the kinds in src/state/kinds.ts');
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

    if (kubectl) {
      const bindings = docs.filter((d) => d.kind === 'ClusterRoleBinding' || d.kind === 'RoleBinding');
      t.equal(bindings.length, 1, 'one binding');
      t.match(bindings[0], {
        kind: 'ClusterRoleBinding',
        roleRef: { kind: 'ClusterRole', name: role.metadata?.name },
        subjects: [{ kind: 'ServiceAccount', name: 'meshguard', namespace: 'meshguard' }],
      });
      const deploy = docs.find((d) => d.kind === 'Deployment') as
        | { spec: { template: { spec: { serviceAccountName?: string } } } }
        | undefined;
      t.equal(deploy?.spec.template.spec.serviceAccountName, 'meshguard', 'the Deployment runs as that ServiceAccount');
    }
  });
}
