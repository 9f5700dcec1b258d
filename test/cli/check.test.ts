// `meshguard check` and `meshguard rules` run in-process with the fake rules (the real catalogue is
// exercised by test/examples), plus the real entry point spawned for exit codes and stream separation.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { runCli } from '../../src/cli/program.ts';
import type { Rule } from '../../src/core/rule.ts';
import { FAKE_RULES } from '../verdict/fake-rules.ts';

/** Where rule pages are linked by default: package.json homepage + /blob/main/docs/rules. */
const DOCS = 'https://github.com/meshguard/meshguard/blob/main/docs/rules';

const dir = mkdtempSync(join(tmpdir(), 'meshguard-cli-'));
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const STATE = file(
  'state.yaml',
  `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Namespace
  metadata: {name: team-a}
- apiVersion: cilium.io/v2
  kind: CiliumNetworkPolicy
  metadata: {name: existing, namespace: team-a}
  spec: {endpointSelector: {}}
`,
);

const cnp = (name: string, ns: string, labels: Record<string, string> = {}) =>
  `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: ${name}
  namespace: ${ns}
  labels: ${JSON.stringify(labels)}
spec:
  endpointSelector: {}
`;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(argv: string[], rules: readonly Rule[] = FAKE_RULES): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, { rules, io: { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s) } });
  return { code, stdout, stderr };
}

t.test('allowed objects: exit 0, text report', async (t) => {
  const m = file('ok.yaml', cnp('new', 'team-a'));
  const r = await run(['check', '--state', STATE, m]);
  t.equal(r.code, 0);
  t.equal(r.stderr, '');
  t.match(r.stdout, `CREATE CiliumNetworkPolicy team-a/new (${m}:1): allowed`);
  t.match(r.stdout, /1 object checked: 1 allowed, 0 denied, 0 findings/);
});

t.test('a denial: exit 1, JSON document of DESIGN §2', async (t) => {
  const m = file('deny.yaml', cnp('orphan', 'nowhere') + '---\n' + cnp('existing', 'team-a', { 'fake/finding': 'just so you know' }));
  const r = await run(['check', '--state', STATE, '--output', 'json', m]);
  t.equal(r.code, 1);
  t.equal(r.stderr, '');
  const doc = JSON.parse(r.stdout) as { results: Record<string, unknown>[] };
  t.same(Object.keys(doc), ['results']);
  t.equal(doc.results.length, 2);
  t.match(doc.results[0], {
    kind: 'CiliumNetworkPolicy',
    namespace: 'nowhere',
    name: 'orphan',
    operation: 'CREATE',
    allowed: false,
    findings: [
      {
        rule: 'fake-orphan-policy',
        action: 'deny',
        message: 'namespace nowhere does not exist',
        fix: 'create namespace nowhere first',
        victims: ['nowhere/orphan'],
        victimCount: 3,
      },
    ],
    file: m,
    line: 1,
  });
  // The object already in the state is an UPDATE.
  t.match(doc.results[1], {
    kind: 'CiliumNetworkPolicy',
    namespace: 'team-a',
    name: 'existing',
    operation: 'UPDATE',
    allowed: true,
    findings: [{ rule: 'fake-label', action: 'warn', message: 'just so you know' }],
  });
  for (const res of doc.results) {
    for (const k of ['kind', 'namespace', 'name', 'operation'] as const) t.type(res[k], 'string');
    t.type(res.allowed, 'boolean');
    for (const f of res.findings as Record<string, unknown>[]) {
      t.type(f.rule, 'string');
      t.ok(['deny', 'warn', 'audit'].includes(f.action as string));
      t.type(f.message, 'string');
    }
  }
});

t.test('text report of a denial names rule, action, message, fix and docs', async (t) => {
  const m = file('deny-text.yaml', cnp('orphan', 'nowhere'));
  const r = await run(['check', '--state', STATE, m]);
  t.equal(r.code, 1);
  t.match(r.stdout, 'CREATE CiliumNetworkPolicy nowhere/orphan');
  t.match(r.stdout, 'DENIED');
  t.match(r.stdout, 'deny  fake-orphan-policy: namespace nowhere does not exist');
  t.match(r.stdout, 'affected: nowhere/orphan and 2 more');
  t.match(r.stdout, 'fix: create namespace nowhere first');
  t.match(r.stdout, `docs: ${DOCS}/fake-orphan-policy.md`);
});

t.test('the text report, word for word', async (t) => {
  const m = file('golden.yaml', cnp('orphan', 'nowhere') + '---\n' + cnp('labelled', 'team-a', { 'fake/finding': 'just so you know' }));
  const r = await run(['check', '--state', STATE, m]);
  t.equal(
    r.stdout,
    `CREATE CiliumNetworkPolicy nowhere/orphan (${m}:1): DENIED
  deny  fake-orphan-policy: namespace nowhere does not exist
        affected: nowhere/orphan and 2 more
        fix: create namespace nowhere first
        docs: ${DOCS}/fake-orphan-policy.md
CREATE CiliumNetworkPolicy team-a/labelled (${m}:10): allowed with findings
  warn  fake-label: just so you know
        docs: ${DOCS}/fake-label.md
2 objects checked: 1 allowed, 1 denied, 2 findings
`,
  );
});

t.test('findings link to their rule page: JSON docs field, under the config\'s docs.baseUrl', async (t) => {
  const m = file('docs-json.yaml', cnp('orphan', 'nowhere') + '---\n' + cnp('labelled', 'team-a', { 'fake/finding': 'note' }));
  const dflt = JSON.parse((await run(['check', '--state', STATE, '--output', 'json', m])).stdout) as { results: { findings: { rule: string; docs: string }[] }[] };
  t.same(dflt.results.flatMap((r) => r.findings.map((f) => f.docs)), [`${DOCS}/fake-orphan-policy.md`, `${DOCS}/fake-label.md`]);
  const cfg = file('docs-cfg.yaml', 'docs:\n  baseUrl: https://wiki.example.com/meshguard/\n');
  const moved = await run(['check', '--state', STATE, '--config', cfg, '--output', 'json', m]);
  const doc = JSON.parse(moved.stdout) as { results: { findings: { docs: string }[] }[] };
  t.same(doc.results.flatMap((r) => r.findings.map((f) => f.docs)), ['https://wiki.example.com/meshguard/fake-orphan-policy.md', 'https://wiki.example.com/meshguard/fake-label.md']);
  t.match((await run(['check', '--state', STATE, '--config', cfg, m])).stdout, '        docs: https://wiki.example.com/meshguard/fake-orphan-policy.md\n');
});

t.test('objects are applied in order: a namespace created first makes its policy valid', async (t) => {
  const ns = 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-b\n';
  const inOrder = file('in-order.yaml', ns + '---\n' + cnp('p', 'team-b'));
  const r1 = await run(['check', '--state', STATE, '--output', 'json', inOrder]);
  t.equal(r1.code, 0, 'namespace admitted, then the policy sees it');
  const reversed = file('reversed.yaml', cnp('p', 'team-b') + '---\n' + ns);
  const r2 = await run(['check', '--state', STATE, '--output', 'json', reversed]);
  t.equal(r2.code, 1, 'policy before its namespace is denied');
  // A denied object is not applied: the same object again is still a CREATE.
  const twice = file('twice.yaml', cnp('q', 'nowhere') + '---\n' + cnp('q', 'nowhere'));
  const r3 = JSON.parse((await run(['check', '--state', STATE, '--output', 'json', twice])).stdout) as { results: { operation: string }[] };
  t.same(r3.results.map((r) => r.operation), ['CREATE', 'CREATE']);
  // An admitted one is: the second apply is an UPDATE.
  const twiceOk = file('twice-ok.yaml', cnp('q', 'team-a') + '---\n' + cnp('q', 'team-a'));
  const r4 = JSON.parse((await run(['check', '--state', STATE, '--output', 'json', twiceOk])).stdout) as { results: { operation: string }[] };
  t.same(r4.results.map((r) => r.operation), ['CREATE', 'UPDATE']);
});

t.test('a manifest without a namespace lands in "default", like kubectl', async (t) => {
  const m = file('nons.yaml', 'apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: p\nspec: {endpointSelector: {}}\n');
  const r = await run(['check', '--state', STATE, '--output', 'json', m]);
  const doc = JSON.parse(r.stdout) as { results: { namespace: string }[] };
  t.equal(doc.results[0]?.namespace, 'default');
  t.equal(r.code, 1, 'there is no default namespace in this state');
});

t.test('--operation DELETE evaluates deletions with the stored object', async (t) => {
  const m = file('del.yaml', cnp('existing', 'team-a'));
  const stateWithLabel = file(
    'state-label.yaml',
    'apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n---\n' + cnp('existing', 'team-a', { 'fake/finding': 'removing the DNS allow' }),
  );
  const r = await run(['check', '--state', stateWithLabel, '--operation', 'delete', '--output', 'json', m]);
  t.equal(r.code, 0);
  const doc = JSON.parse(r.stdout) as { results: { operation: string; findings: { rule: string; message: string }[] }[] };
  t.equal(doc.results[0]?.operation, 'DELETE');
  t.same(doc.results[0]?.findings.map((f) => f.message), ['removing the DNS allow'], 'the stored copy (with its label) was judged');
});

t.test('kinds meshguard does not read are allowed and reported as not checked', async (t) => {
  const m = file('secret.yaml', 'apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: team-a}\ndata: {}\n');
  const r = await run(['check', '--state', STATE, m]);
  t.equal(r.code, 0);
  t.match(r.stdout, 'not checked: meshguard does not check Secret');
});

t.test('the summary counts objects meshguard does not judge apart from the checked ones', async (t) => {
  const secret = 'apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: team-a}\n';
  const service = 'apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: team-a}\nspec: {selector: {app: web}}\n';
  const m = file('mixed.yaml', [cnp('orphan', 'nowhere'), secret, service, cnp('fine', 'team-a')].join('---\n'));
  const r = await run(['check', '--state', STATE, m]);
  t.equal(r.code, 1);
  t.match(r.stdout, /\n2 objects checked: 1 allowed, 1 denied, 1 finding; 2 not checked \(kinds meshguard does not read: 1, no rule applies: 1\)\n$/);
  t.match(r.stdout, 'CREATE Service team-a/web (' );
  t.match(r.stdout, '  not checked: no meshguard rule judges a CREATE of a Service\n');
  t.match((await run(['check', '--state', STATE, '--operation', 'UPDATE', file('eps.yaml', 'apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: e, namespace: team-a}\naddressType: IPv4\nendpoints: []\n')])).stdout, 'not checked: no meshguard rule judges an UPDATE of an EndpointSlice\n');
  const json = JSON.parse((await run(['check', '--state', STATE, '-o', 'json', m])).stdout) as { results: { kind: string; notChecked?: string; exemptReason?: string }[] };
  t.same(json.results.map((x) => [x.kind, x.notChecked]), [['CiliumNetworkPolicy', undefined], ['Secret', 'kind'], ['Service', 'no-rule'], ['CiliumNetworkPolicy', undefined]]);
  // Only kinds it does not read: the reason is named once, without counts.
  const secrets = file('secrets.yaml', secret + '---\n' + secret.replace('name: s', 'name: t'));
  t.match((await run(['check', '--state', STATE, secrets])).stdout, /\n0 objects checked: 0 allowed, 0 denied, 0 findings; 2 not checked \(kinds meshguard does not read\)\n$/);
  // An exempt namespace is not checked either, whatever the kind.
  const exempt = file('exempt-ns.yaml', 'exemptions:\n  namespaces: [nowhere]\n');
  const ex = await run(['check', '--state', STATE, '--config', exempt, '-o', 'json', file('orphan-ex.yaml', cnp('orphan', 'nowhere'))]);
  t.match(JSON.parse(ex.stdout), { results: [{ allowed: true, notChecked: 'exempt', exemptReason: 'namespace nowhere is exempt by the meshguard config' }] });
  // A rule turned off judges nothing: a kind only it reads is then not checked.
  const off = file('all-off.yaml', 'rules:\n  fake-label: off\n  fake-orphan-policy: off\n  fake-throws: off\n');
  t.match((await run(['check', '--state', STATE, '--config', off, file('cnp-off.yaml', cnp('p', 'team-a'))])).stdout, /\n0 objects checked: .*; 1 not checked \(no rule applies\)\n$/);
});

t.test('with the real catalogue: Deployments other than istiod and ConfigMaps other than cilium-config are not checked', async (t) => {
  const root = new URL('../../', import.meta.url).pathname;
  const deployment = (name: string, ns: string) => `apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: ${name}, namespace: ${ns}}\nspec:\n  selector: {matchLabels: {app: ${name}}}\n  template:\n    metadata: {labels: {app: ${name}}}\n    spec: {containers: [{name: c, image: x}]}\n`;
  const m = file('plumbing.yaml', [
    deployment('web', 'demo'),
    deployment('istiod', 'istio-system'),
    'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app-settings, namespace: demo}\ndata: {a: b}\n',
  ].join('---\n'));
  let out = '';
  await runCli(['check', '--state', `${root}examples/cluster`, '-o', 'json', m], { io: { stdout: (x) => void (out += x), stderr: () => {} } });
  const results = (JSON.parse(out) as { results: { name: string; notChecked?: string; exemptReason?: string }[] }).results;
  t.same(results.map((x) => [x.name, x.notChecked, x.exemptReason]), [
    ['web', 'no-rule', 'meshguard judges only istiod Deployments'],
    ['istiod', undefined, undefined],
    ['app-settings', 'no-rule', 'meshguard judges only the kube-system/cilium-config ConfigMap'],
  ]);
});

t.test('an ignored opt-out annotation is reported as a note (text) and in notices (JSON)', async (t) => {
  const m = file('skip.yaml', `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: opt-out
  namespace: team-a
  annotations: {meshguard.io/skip: fake-label}
spec: {endpointSelector: {}}
`);
  const text = await run(['check', '--state', STATE, m]);
  t.match(text.stdout, 'note: meshguard.io/skip is ignored: it takes effect only with a non-empty meshguard.io/skip-reason');
  const json = await run(['check', '--state', STATE, '--output', 'json', m]);
  t.same(JSON.parse(json.stdout).results[0].notices, ['meshguard.io/skip is ignored: it takes effect only with a non-empty meshguard.io/skip-reason']);
});

t.test('config: exemptions and audit mode apply; a bad config is exit 2', async (t) => {
  const m = file('orphan2.yaml', cnp('orphan', 'nowhere'));
  const audit = file('audit.yaml', 'mode: audit\n');
  const r = await run(['check', '--state', STATE, '--config', audit, '--output', 'json', m]);
  t.equal(r.code, 0);
  t.match(JSON.parse(r.stdout), { results: [{ allowed: true, findings: [{ rule: 'fake-orphan-policy', action: 'audit' }] }] });
  const exempt = file('exempt.yaml', 'exemptions:\n  namespaces: [nowhere]\n');
  t.equal((await run(['check', '--state', STATE, '--config', exempt, m])).code, 0);
  const bad = file('bad-config.yaml', 'rules:\n  fake-label: warn\n  no-such-rule: deny\n');
  const b = await run(['check', '--state', STATE, '--config', bad, m]);
  t.equal(b.code, 2);
  t.equal(b.stdout, '');
  t.equal(b.stderr, `meshguard: ${bad}:3: rules.no-such-rule: unknown rule id; \`meshguard rules\` lists them\n`);
});

t.test('input errors: exit 2, one line on stderr, nothing on stdout', async (t) => {
  const badYaml = file('bad.yaml', 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a: b\n');
  const cases: [string[], RegExp][] = [
    [['check', '--state', STATE, badYaml], new RegExp(`^meshguard: ${badYaml.replace(/[.]/g, '\\.')}:4: invalid YAML`)],
    [['check', '--state', STATE, join(dir, 'missing.yaml')], /cannot read: ENOENT/],
    [['check', '--state', join(dir, 'missing-state'), file('fine.yaml', cnp('a', 'team-a'))], /missing-state: cannot read: ENOENT/],
    [['check', file('fine2.yaml', cnp('a', 'team-a'))], /one of --state PATH or --kubeconfig FILE \(or --context NAME\) is required/],
    [['check', '--state', STATE, '--kubeconfig', 'k', file('fine3.yaml', cnp('a', 'team-a'))], /either --state or --kubeconfig, not both/],
    [['check', '--state', STATE], /missing required argument 'manifest'/],
    [['check', '--state', STATE, '--frobnicate', 'x.yaml'], /unknown option '--frobnicate'/],
    [['check', '--state', STATE, '--output', 'xml', 'x.yaml'], /argument 'xml' is invalid/],
    [['check', '--state', STATE, '--operation', 'PATCH', file('fine4.yaml', cnp('a', 'team-a'))], /--operation: must be one of CREATE, UPDATE, DELETE/],
    [['check', '--state', STATE, file('empty.yaml', '# nothing\n')], /no Kubernetes objects found/],
    [['check', '--state', STATE, file('noname.yaml', 'apiVersion: v1\nkind: Namespace\nmetadata: {}\n')], /:1: .*no metadata\.name/],
    [['nonsense'], /unknown command 'nonsense'/],
    [['--bogus'], /unknown option '--bogus'/],
  ];
  for (const [argv, err] of cases) {
    const r = await run(argv);
    t.equal(r.code, 2, argv.join(' '));
    t.equal(r.stdout, '', `no stdout: ${argv.join(' ')}`);
    t.match(r.stderr, err, argv.join(' '));
    t.equal(r.stderr.split('\n').length, 2, `one line: ${JSON.stringify(r.stderr)}`);
  }
});

t.test('an internal error is exit 3 with one line', async (t) => {
  const broken: Rule = { ...FAKE_RULES[0]!, id: 'fake-broken', triggers: null as unknown as Rule['triggers'] };
  const m = file('any.yaml', cnp('a', 'team-a'));
  let stderr = '';
  let stdout = '';
  const code = await runCli(['check', '--state', STATE, '--config', file('on.yaml', 'rules:\n  fake-broken: deny\n'), m], {
    rules: [broken],
    io: { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s) },
  });
  t.equal(code, 3);
  t.equal(stdout, '');
  t.match(stderr, /^meshguard: internal error: .+\n$/);
});

t.test('rules: text table and JSON from the catalogue given', async (t) => {
  const text = await run(['rules']);
  t.equal(text.code, 0);
  t.match(text.stdout, /^RULE\s+SEVERITY\s+DEFAULT\s+SUMMARY/);
  for (const r of FAKE_RULES) t.match(text.stdout, r.id);
  const json = await run(['rules', '--output', 'json']);
  const doc = JSON.parse(json.stdout) as { rules: Record<string, unknown>[] };
  t.same(
    doc.rules,
    FAKE_RULES.map((r) => ({
      id: r.id,
      severity: r.severity,
      defaultAction: r.severity === 'B' ? 'deny' : 'warn',
      action: r.severity === 'B' ? 'deny' : 'warn',
      summary: r.summary,
      docs: r.docs,
      docsUrl: `${DOCS}/${r.id}.md`,
    })),
  );
  t.match(text.stdout, `reports the fake/finding label [${DOCS}/fake-label.md]`, 'the text table links each rule');
  const cfg = file('rules-cfg.yaml', 'rules:\n  fake-label: off\n');
  const withCfg = JSON.parse((await run(['rules', '--output', 'json', '--config', cfg])).stdout) as { rules: { id: string; action: string }[] };
  t.equal(withCfg.rules.find((r) => r.id === 'fake-label')?.action, 'off');
  t.match((await run(['rules', '--config', cfg])).stdout, /ACTION/);
  const md = await run(['rules', '--output', 'markdown']);
  t.equal(md.code, 0);
  const lines = md.stdout.trimEnd().split('\n');
  t.equal(lines[0], '| rule | severity | default | summary |');
  t.equal(lines.length, 2 + FAKE_RULES.length);
  t.equal(lines[2], `| [\`fake-label\`](${DOCS}/fake-label.md) | I | warn | reports the fake/finding label |`);
  const movedCfg = file('rules-docs.yaml', 'docs:\n  baseUrl: https://wiki.example.com/mg\n');
  const moved = JSON.parse((await run(['rules', '--output', 'json', '--config', movedCfg])).stdout) as { rules: { id: string; docsUrl: string }[] };
  t.same(moved.rules.map((r) => r.docsUrl), FAKE_RULES.map((r) => `https://wiki.example.com/mg/${r.id}.md`));
});

t.test('rules --config in audit mode shows the action the config gives: audit where the rule denies', async (t) => {
  const cfg = file('rules-audit.yaml', 'mode: audit\nrules:\n  fake-label: deny\n  fake-throws: warn\n');
  const text = await run(['rules', '--config', cfg]);
  t.equal(text.code, 0);
  t.match(text.stdout, /^fake-orphan-policy +B \(breaks traffic\) +deny +audit +a policy/m, 'DEFAULT deny, ACTION audit');
  t.match(text.stdout, /^fake-label +I \(ineffective\) +warn +audit +/m, 'configured deny: audit too');
  t.match(text.stdout, /^fake-throws +R \(risky\) +warn +warn +/m, 'warn is untouched');
  t.match(text.stdout, /\nmode: audit, so every deny is audit: nothing is refused\n$/);
  const json = JSON.parse((await run(['rules', '--config', cfg, '-o', 'json'])).stdout) as { rules: { id: string; defaultAction: string; action: string }[] };
  t.same(json.rules.map((r) => [r.id, r.defaultAction, r.action]), [['fake-label', 'warn', 'audit'], ['fake-orphan-policy', 'deny', 'audit'], ['fake-throws', 'warn', 'warn']]);
  // What rules says is what check does with the same config.
  const checked = JSON.parse((await run(['check', '--state', STATE, '--config', cfg, '-o', 'json', file('rules-audit-m.yaml', cnp('orphan', 'nowhere'))])).stdout);
  t.match(checked, { results: [{ allowed: true, findings: [{ rule: 'fake-orphan-policy', action: json.rules[1]!.action }] }] });
  t.notMatch((await run(['rules', '--config', file('rules-enforce.yaml', 'mode: enforce\n')])).stdout, /mode: audit/, 'no note in enforce mode');
});

t.test('-o is --output in check and rules, as in every command', async (t) => {
  const m = file('short-o.yaml', cnp('orphan', 'nowhere'));
  const check = await run(['check', '--state', STATE, '-o', 'json', m]);
  t.equal(check.code, 1);
  t.equal(JSON.parse(check.stdout).results[0].allowed, false);
  const rules = await run(['rules', '-o', 'json']);
  t.same((JSON.parse(rules.stdout) as { rules: { id: string }[] }).rules.map((r) => r.id), FAKE_RULES.map((r) => r.id));
  t.match((await run(['rules', '-o', 'markdown'])).stdout, /^\| rule \| severity/);
  const bad = await run(['check', '--state', STATE, '-o', 'yaml', m]);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /argument 'yaml' is invalid/);
});

t.test('--version and --help exit 0', async (t) => {
  const v = await run(['--version']);
  t.equal(v.code, 0);
  t.match(v.stdout, /^\d+\.\d+\.\d+\n$/);
  const h = await run(['check', '--help']);
  t.equal(h.code, 0);
  t.match(h.stdout, /--state <path>/);
});

t.test('the real entry point: exit codes and streams', async (t) => {
  const node = process.execPath; // Node 24 from the devDependency (tap runs with it)
  const main = new URL('../../src/cli/main.ts', import.meta.url).pathname;
  const sh = (args: string[]) => spawnSync(node, [main, ...args], { encoding: 'utf8', timeout: 60_000 });
  const bad = sh(['check', '--state', STATE, file('bad2.yaml', 'kind: [\n')]);
  t.equal(bad.status, 2);
  t.equal(bad.stdout, '');
  t.match(bad.stderr, /^meshguard: .*bad2\.yaml:\d+: invalid YAML/);
  const ok = sh(['check', '--state', STATE, '--output', 'json', file('secret2.yaml', 'apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n')]);
  t.equal(ok.status, 0, ok.stderr);
  t.match(JSON.parse(ok.stdout), { results: [{ kind: 'Secret', allowed: true, findings: [] }] });
  const rules = sh(['rules', '--output', 'json']);
  t.equal(rules.status, 0, rules.stderr);
  t.ok(Array.isArray((JSON.parse(rules.stdout) as { rules: unknown[] }).rules));
});

t.test('trace is part of the program; its exit code comes back through runCli', async (t) => {
  const before = process.exitCode;
  const bad = await run(['trace', '--bogus']);
  t.equal(bad.code, 2);
  t.equal(bad.stdout, '');
  t.match(bad.stderr, /unknown option '--bogus'/);
  const missing = await run(['trace', '--state', STATE, '--from', 'team-a/nope', '--to', 'entity:world', '--port', '443/tcp']);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /unknown pod team-a\/nope/);
  t.equal((await run(['trace', '--help'])).code, 0);
  t.equal(process.exitCode, before, "runCli leaves the caller's exit code alone");
});

t.test('--per-file judges each file against the original state', async (t) => {
  const sub = join(dir, 'per-file');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(sub);
  writeFileSync(join(sub, '1-namespace.yaml'), 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-c\n');
  writeFileSync(join(sub, '2-policy.yaml'), cnp('p', 'team-c') + '---\n' + cnp('p', 'team-c'));
  const together = JSON.parse((await run(['check', '--state', STATE, '--output', 'json', sub])).stdout) as { results: { allowed: boolean; operation: string }[] };
  t.same(together.results.map((r) => r.allowed), [true, true, true], 'one apply: the namespace exists for the policy');
  const perFile = await run(['check', '--state', STATE, '--per-file', '--output', 'json', sub]);
  t.equal(perFile.code, 1);
  const results = (JSON.parse(perFile.stdout) as { results: { allowed: boolean; operation: string }[] }).results;
  t.same(results.map((r) => r.allowed), [true, false, false], 'the second file does not see the first');
  t.same(results.map((r) => r.operation), ['CREATE', 'CREATE', 'CREATE']);
});
