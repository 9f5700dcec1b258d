// Malformed objects of every kind meshguard reads, checked against the example cluster with every
// operation: no rule may crash (a crash shows as a "<rule> failed:" finding) and the CLI must answer.
// Objects kubectl itself would refuse (labels, annotations, ConfigMap data or selectors that are not
// strings) never reach a rule: `check` refuses them as input errors, and that is checked too.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { runCli } from '../../src/cli/program.ts';
import { KINDS, KIND_NAMES } from '../../src/core/kinds.ts';
import { kubectlRejects } from '../../src/state/io/objects.ts';

const root = new URL('../../', import.meta.url).pathname;

// Bodies with wrong types, nulls and nonsense in the places rules read.
const BODIES: Record<string, unknown>[] = [
  {},
  { spec: null },
  { spec: 'x' },
  { spec: [1, 2] },
  { spec: { endpointSelector: null, egress: [null, {}, 'x'], ingress: {}, egressDeny: [{}], enableDefaultDeny: 'yes' } },
  {
    spec: {
      podSelector: { matchLabels: null, matchExpressions: [{ key: 'a', operator: 'Bogus' }] },
      policyTypes: ['Egress', 'Weird'],
      egress: [{ to: null, ports: [{ port: 'abc', protocol: 'XYZ', endPort: 'z' }] }],
      ingress: [{ from: [{ ipBlock: { cidr: 'not-a-cidr', except: [null] } }] }],
    },
  },
  {
    spec: {
      endpointSelector: {},
      egress: [{ toFQDNs: [{ matchName: null }], toEntities: ['nonsense'], toPorts: [{ ports: [{ port: '99999' }], rules: { dns: null, http: [null] } }] }],
      ingress: [{ fromCIDR: ['300.1.1.1/99'], toPorts: [{ ports: [{ port: '15008', protocol: 'TCP' }], rules: { http: [{ path: '/' }] } }] }],
    },
  },
  {
    spec: {
      selector: { matchLabels: { app: 1 } },
      action: 'WHAT',
      rules: [{ to: [{ operation: { paths: null, ports: [8000] } }], from: [{ source: { principals: 'x' } }] }],
      targetRefs: [null, { kind: 'Gateway' }],
      mtls: { mode: 'NOPE' },
      portLevelMtls: { x: 1 },
    },
  },
  { data: { 'routing-mode': 'tunnel', 'kube-proxy-replacement': 1, 'cni-exclusive': null, 'enable-l7-proxy': 'false' } },
  { spec: { template: null, selector: 'x' } },
  { spec: { template: { spec: { hostNetwork: 'true', containers: null } } } },
  { webhooks: [null, { clientConfig: null }, { name: 'x', clientConfig: { service: { name: 'istiod', namespace: 'istio-system' } } }] },
  { subjects: [null, { kind: 'ServiceAccount' }], roleRef: null },
  { endpoints: [{ addresses: null }], ports: 'x', status: { addresses: 'x' } },
  { spec: { containers: [{ name: 'istio-proxy', ports: [{ containerPort: 'x' }] }], hostNetwork: 1 }, status: { podIP: 'garbage' } },
];
const NAMESPACES = ['demo', 'blue', 'kube-system', 'istio-system', 'green', 'nowhere'];

function apiVersion(kind: (typeof KIND_NAMES)[number]): string {
  const k = KINDS[kind];
  return k.group ? `${k.group}/${k.version}` : k.version;
}

function oddObjects(): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  let i = 0;
  for (const kind of KIND_NAMES) {
    for (const body of BODIES) {
      i++;
      let metadata: Record<string, unknown> = { name: `odd-${i}` };
      if (KINDS[kind].namespaced) metadata.namespace = NAMESPACES[i % NAMESPACES.length];
      // Hit the objects rules watch most closely, by their real names.
      if (kind === 'ConfigMap') metadata = { name: 'cilium-config', namespace: 'kube-system' };
      if (kind === 'Deployment' && i % 2 === 1) metadata = { name: 'istiod', namespace: 'istio-system' };
      if (kind === 'Namespace' && i % 3 === 0) metadata = { name: 'demo', labels: { 'istio.io/dataplane-mode': 'ambient', 'istio-injection': 'enabled' } };
      if (i % 7 === 0) metadata = { ...metadata, labels: { a: null, b: 1 }, annotations: 'x' };
      out.push({ apiVersion: apiVersion(kind), kind, metadata, ...body });
    }
  }
  return out;
}

const dir = mkdtempSync(join(tmpdir(), 'meshguard-odd-'));
const file = join(dir, 'odd.json');
const odd = oddObjects();
const refused = odd.filter((o) => kubectlRejects(o) !== undefined);
const accepted = odd.filter((o) => kubectlRejects(o) === undefined);
writeFileSync(file, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: accepted }));

t.test('objects kubectl would refuse are input errors, each one', async (t) => {
  t.ok(refused.length >= KIND_NAMES.length, `${refused.length} refused objects`);
  for (const o of refused) {
    const one = join(dir, 'refused.json');
    writeFileSync(one, JSON.stringify(o));
    let stderr = '';
    const code = await runCli(['check', '--state', `${root}examples/cluster`, one], { io: { stdout: () => undefined, stderr: (s) => void (stderr += s) } });
    t.equal(code, 2, `${String(o.kind)} ${String((o.metadata as { name: string }).name)}: ${stderr.trim()}`);
  }
});

for (const op of ['CREATE', 'UPDATE', 'DELETE']) {
  t.test(`malformed objects, ${op}: answered, no rule crashes`, async (t) => {
    let stdout = '';
    let stderr = '';
    const code = await runCli(['check', '--state', `${root}examples/cluster`, '--operation', op, '--output', 'json', file], {
      io: { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s) },
    });
    t.equal(stderr, '');
    t.ok(code === 0 || code === 1, `exit ${code}`);
    const results = (JSON.parse(stdout) as { results: { kind: string; name: string; findings: { rule: string; message: string }[] }[] }).results;
    t.equal(results.length, accepted.length);
    t.ok(accepted.length > KIND_NAMES.length * BODIES.length * 0.7, `most odd objects still reach the rules (${accepted.length})`);
    const crashes = results.flatMap((r) => r.findings.filter((f) => / failed: /.test(f.message)).map((f) => `${r.kind} ${r.name}: ${f.message}`));
    t.same(crashes, [], 'no rule failed');
  });
}
