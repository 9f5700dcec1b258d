// `meshguard audit` through the CLI: exit codes like check's, and the CI formats (SARIF 2.1.0, JUnit
// XML, GitHub annotations) holding the same findings as the JSON output, as data.

import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { runCli } from '../../src/cli/program.ts';
import { fileUri, renderGithub, renderJunit, renderSarif, type ReportMeta } from '../../src/cli/formats.ts';

const root = new URL('../../', import.meta.url).pathname;

/** The example cluster plus the given example manifests, as a state directory. */
function cluster(...examples: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'meshguard-audit-'));
  cpSync(`${root}examples/cluster`, dir, { recursive: true });
  for (const e of examples) cpSync(`${root}examples/policies/${e}`, join(dir, `zzz-${e}`));
  return dir;
}

async function audit(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(['audit', ...args], { io: { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s) } });
  return { code, stdout, stderr };
}

const broken = cluster('dns-egress-missing.bad.yaml', 'dual-l7-authz.bad.yaml');
const warnOnly = cluster('dual-l7-authz.bad.yaml');

t.test('exit codes: 0 clean, 1 deny-level, warn-level only with --fail-on-warn, 2 input error', async (t) => {
  const clean = await audit('--state', `${root}examples/cluster`);
  t.equal(clean.code, 0);
  t.match(clean.stdout, /^\d+ objects audited: 0 with findings, 0 findings \(0 at deny level\)\n$/);
  t.equal((await audit('--state', broken)).code, 1);
  t.equal((await audit('--state', warnOnly)).code, 0, 'warnings alone pass');
  t.equal((await audit('--state', warnOnly, '--fail-on-warn')).code, 1, '--fail-on-warn fails on them');
  const bad = await audit('--state', join(root, 'nope'));
  t.equal(bad.code, 2);
  t.equal(bad.stdout, '');
  t.match(bad.stderr, /nope: cannot read: ENOENT/);
  t.equal((await audit('--state', broken, '-o', 'yaml')).code, 2, 'unknown format');
});

t.test('JSON: results per object, only objects with findings', async (t) => {
  const r = await audit('--state', broken, '-o', 'json');
  const out = JSON.parse(r.stdout) as { audited: number; results: { kind: string; namespace: string; name: string; findings: { rule: string; action: string }[] }[] };
  t.ok(out.audited > out.results.length);
  t.same(
    out.results.map((x) => [x.kind, x.namespace, x.name, x.findings.map((f) => `${f.rule}:${f.action}`)]),
    [
      ['AuthorizationPolicy', 'blue', 'httpbin-paths', ['dual-l7-authz:warn']],
      ['CiliumNetworkPolicy', 'blue', 'httpbin-l4', ['dual-l7-authz:warn']],
      ['NetworkPolicy', 'green', 'netshoot-egress', ['dns-egress-missing:deny']],
    ],
  );
});

t.test('SARIF 2.1.0: the catalogue as rules, a result per finding with level and location', async (t) => {
  const r = await audit('--state', broken, '-o', 'sarif');
  t.equal(r.code, 1);
  const sarif = JSON.parse(r.stdout) as {
    version: string;
    runs: { tool: { driver: { name: string; rules: { id: string; shortDescription: { text: string } }[] } }; results: { ruleId: string; ruleIndex: number; level: string; message: { text: string }; locations: { logicalLocations: { fullyQualifiedName: string }[] }[] }[] }[];
  };
  t.equal(sarif.version, '2.1.0');
  const run = sarif.runs[0]!;
  t.equal(run.tool.driver.name, 'meshguard');
  t.ok(run.tool.driver.rules.some((x) => x.id === 'dns-egress-missing' && x.shortDescription.text.length > 0));
  const dns = run.results.find((x) => x.ruleId === 'dns-egress-missing')!;
  t.equal(dns.level, 'error');
  t.equal(run.tool.driver.rules[dns.ruleIndex]?.id, 'dns-egress-missing', 'ruleIndex points at the rule');
  t.equal(dns.locations[0]?.logicalLocations[0]?.fullyQualifiedName, 'NetworkPolicy green/netshoot-egress');
  t.same(run.results.map((x) => x.level).sort(), ['error', 'warning', 'warning']);
});

const meta: ReportMeta = { tool: 'meshguard', version: '0.0.0', suite: 'meshguard check', rules: [{ id: 'r', summary: 's', severity: 'B', helpUri: 'https://example.test/r' }] };
const objects = [
  { kind: 'NetworkPolicy', namespace: 'a', name: 'p<1>', file: 'dir/p.yaml', line: 7, findings: [{ rule: 'r', code: 'r/breaks', action: 'deny' as const, message: 'breaks "DNS" & more', fix: 'add UDP 53' }] },
  { kind: 'Namespace', namespace: '', name: 'b', findings: [{ rule: 'r', code: 'r/warns', action: 'warn' as const, message: 'line one\nline two: 100%, or so' }] },
  { kind: 'ConfigMap', namespace: 'kube-system', name: 'c', findings: [] },
];

t.test('SARIF: a manifest file and line become a physical location; helpUri is carried', async (t) => {
  const s = JSON.parse(renderSarif(objects, meta)) as { runs: { tool: { driver: { rules: { helpUri: string }[] } }; results: { locations: { physicalLocation?: { artifactLocation: { uri: string }; region: { startLine: number } } }[] }[] }[] };
  t.equal(s.runs[0]!.tool.driver.rules[0]!.helpUri, 'https://example.test/r');
  t.same(s.runs[0]!.results[0]!.locations[0]!.physicalLocation, { artifactLocation: { uri: 'dir/p.yaml' }, region: { startLine: 7 } });
  t.equal(s.runs[0]!.results[1]!.locations[0]!.physicalLocation, undefined, 'no file, no physical location');
});

t.test('SARIF URIs: relative below the working directory, segments percent-encoded, file:// outside it', async (t) => {
  t.equal(fileUri('/repo/k8s/a b#1.yaml', '/repo'), 'k8s/a%20b%231.yaml');
  t.equal(fileUri('k8s/50%.yaml', '/repo'), 'k8s/50%25.yaml');
  t.equal(fileUri('/elsewhere/x.yaml', '/repo'), 'file:///elsewhere/x.yaml');
});

t.test('audit JUnit lists every audited object: a clean one as a passing case', async (t) => {
  const r = await audit('--state', `${root}examples/cluster`, '-o', 'junit');
  t.equal(r.code, 0);
  const cases = r.stdout.match(/<testcase /g)?.length ?? 0;
  t.ok(cases > 20, `${cases} passing cases`);
  t.match(r.stdout, /<testcase classname="CiliumNetworkPolicy blue\/httpbin-l4" name="no findings"\/>/);
  t.notMatch(r.stdout, /<failure/);
});

t.test('JUnit: a test case per object and rule, failures for deny, escaped', async (t) => {
  const x = renderJunit(objects, meta);
  t.match(x, /^<\?xml version="1\.0" encoding="UTF-8"\?>\n<testsuites name="meshguard check" tests="3" failures="1">/);
  t.match(x, /<testcase classname="NetworkPolicy a\/p&lt;1&gt;" name="r">\n\s+<failure type="deny" message="breaks &quot;DNS&quot; &amp; more">breaks &quot;DNS&quot; &amp; more\nFix: add UDP 53 \(dir\/p\.yaml:7\)<\/failure>/);
  t.match(x, /<testcase classname="Namespace b" name="r">\n\s+<system-out>warn: line one\nline two: 100%, or so<\/system-out>/);
  t.match(x, /<testcase classname="ConfigMap kube-system\/c" name="no findings"\/>/);
  t.notMatch(x, /<(?!\/?(testsuites|testsuite|testcase|failure|system-out)\b|\?xml)/, 'no other element: nothing unescaped');
});

t.test('GitHub annotations: one command per finding, escaped, file and line when known', async (t) => {
  const lines = renderGithub(objects).trimEnd().split('\n');
  t.same(lines, [
    '::error file=dir/p.yaml,line=7,title=meshguard r%3A NetworkPolicy a/p<1>::breaks "DNS" & more%0AFix: add UDP 53',
    '::warning title=meshguard r%3A Namespace b::line one%0Aline two: 100%25, or so',
  ]);
  t.equal(renderGithub([objects[2]!]), '', 'nothing to say, nothing printed');
});

t.test('links: JSON findings and SARIF rules carry the https page of each rule', async (t) => {
  const out = JSON.parse((await audit('--state', broken, '-o', 'json')).stdout) as { results: { findings: { rule: string; docs: string }[] }[] };
  const f = out.results.flatMap((r) => r.findings).find((x) => x.rule === 'dns-egress-missing')!;
  t.equal(f.docs, 'https://github.com/meshguard/meshguard/blob/main/docs/rules/dns-egress-missing.md');
  const sarif = JSON.parse((await audit('--state', broken, '-o', 'sarif')).stdout) as { runs: { tool: { driver: { informationUri: string; rules: { id: string; helpUri: string }[] } } }[] };
  const driver = sarif.runs[0]!.tool.driver;
  t.equal(driver.informationUri, 'https://github.com/meshguard/meshguard');
  t.equal(driver.rules.find((r) => r.id === 'hbone-15008-blocked')?.helpUri, 'https://github.com/meshguard/meshguard/blob/main/docs/rules/hbone-15008-blocked.md');
});

async function check(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(['check', ...args], { io: { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s) } });
  return { code, stdout, stderr };
}

t.test('check shares the CI formats: manifest file and line as the location; --fail-on-warn', async (t) => {
  const bad = `${root}examples/policies/dns-egress-missing.bad.yaml`;
  const sarif = await check('--state', `${root}examples/cluster`, '-o', 'sarif', bad);
  t.equal(sarif.code, 1);
  const result = (JSON.parse(sarif.stdout) as { runs: { results: { ruleId: string; level: string; locations: { physicalLocation: { artifactLocation: { uri: string }; region: { startLine: number } } }[] }[] }[] }).runs[0]!.results[0]!;
  t.equal(result.ruleId, 'dns-egress-missing');
  t.equal(result.level, 'error');
  t.same(result.locations[0]!.physicalLocation, { artifactLocation: { uri: 'examples/policies/dns-egress-missing.bad.yaml' }, region: { startLine: 3 } }, 'relative to the working directory');
  const gh = await check('--state', `${root}examples/cluster`, '-o', 'github', bad);
  t.match(gh.stdout, new RegExp(`^::error file=${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')},line=3,title=meshguard dns-egress-missing%3A NetworkPolicy green/netshoot-egress::`));
  const junit = await check('--state', `${root}examples/cluster`, '-o', 'junit', bad);
  t.match(junit.stdout, /<testcase classname="NetworkPolicy green\/netshoot-egress" name="dns-egress-missing">\n\s+<failure type="deny"/);
  const warnOnlyManifest = `${root}examples/policies/dual-l7-authz.bad.yaml`;
  t.equal((await check('--state', `${root}examples/cluster`, warnOnlyManifest)).code, 0, 'warnings alone pass');
  t.equal((await check('--state', `${root}examples/cluster`, '--fail-on-warn', warnOnlyManifest)).code, 1, '--fail-on-warn fails on them');
  t.equal((await check('--state', `${root}examples/cluster`, '--fail-on-warn', `${root}examples/policies/dns-egress-missing.good.yaml`)).code, 0, 'near miss: nothing to warn about');
});
