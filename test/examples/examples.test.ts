// The bundled examples: each examples/policies/<rule>.bad.yaml makes exactly its rule fire against
// examples/cluster, its .good.yaml twin does not, and the cluster itself is healthy (re-applying it is
// never denied). Runs the real CLI in-process with the real catalogue.

import { existsSync, readdirSync } from 'node:fs';
import t from 'tap';

import { runCli } from '../../src/cli/program.ts';
import { allRules, ruleById } from '../../src/rules/registry.ts';
import { defaultAction } from '../../src/core/finding.ts';

const root = new URL('../../', import.meta.url).pathname;
const CLUSTER = `${root}examples/cluster`;
const POLICIES = `${root}examples/policies`;

interface Result {
  kind: string;
  namespace: string;
  name: string;
  operation: string;
  allowed: boolean;
  findings: { rule: string; action: string; message: string; preexisting?: boolean }[];
}

async function check(...args: string[]): Promise<{ code: number; results: Result[]; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(['check', '--state', CLUSTER, '--output', 'json', ...args], {
    io: { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s) },
  });
  const results = stdout ? ((JSON.parse(stdout) as { results: Result[] }).results ?? []) : [];
  return { code, results, stderr };
}

const files = existsSync(POLICIES) ? readdirSync(POLICIES).sort() : [];
const pairs = [...new Set(files.map((f) => /^(.+)\.(bad|good)\.ya?ml$/.exec(f)?.[1]).filter((x): x is string => !!x))];

t.test('every examples/policies file is part of a <rule>.bad/.good pair of a registered rule', async (t) => {
  for (const f of files) t.match(f, /^.+\.(bad|good)\.ya?ml$/, `${f} is named <rule-id>.bad.yaml or <rule-id>.good.yaml`);
  for (const id of pairs) {
    t.ok(ruleById(id), `${id} is a registered rule`);
    t.ok(files.includes(`${id}.bad.yaml`), `${id}.bad.yaml exists`);
    t.ok(files.includes(`${id}.good.yaml`), `${id}.good.yaml exists`);
  }
});

for (const id of pairs) {
  const rule = ruleById(id);
  if (!rule) continue;
  t.test(`${id}: the bad example fires exactly this rule once, the good twin does not`, async (t) => {
    const bad = await check(`${POLICIES}/${id}.bad.yaml`);
    t.equal(bad.stderr, '', 'no error');
    const badFindings = bad.results.flatMap((r) => r.findings);
    t.same(
      badFindings.map((f) => f.rule),
      [id],
      `exactly one finding, from ${id}: ${JSON.stringify(badFindings.map((f) => `${f.rule}: ${f.message}`))}`,
    );
    const denies = defaultAction(rule.severity) === 'deny';
    t.equal(bad.code, denies ? 1 : 0, `exit code for a ${denies ? 'deny' : 'warn'}-level rule`);
    t.equal(badFindings[0]?.action, defaultAction(rule.severity));

    const good = await check(`${POLICIES}/${id}.good.yaml`);
    t.equal(good.stderr, '', 'no error');
    const goodFindings = good.results.flatMap((r) => r.findings);
    t.same(goodFindings.filter((f) => f.rule === id), [], `no ${id} finding on the good twin`);
    t.equal(good.code, 0, `the good twin is admitted: ${JSON.stringify(goodFindings.map((f) => `${f.rule}: ${f.message}`))}`);
  });
}

t.test('every registered rule has an example pair', async (t) => {
  for (const r of allRules()) t.ok(pairs.includes(r.id), `examples/policies/${r.id}.bad.yaml + .good.yaml`);
});

t.test('checking the whole examples/policies directory runs without crashes', async (t) => {
  if (files.length === 0) return t.pass('no examples yet');
  const all = await check(POLICIES);
  t.equal(all.stderr, '');
  t.ok(all.code === 0 || all.code === 1, `exit ${all.code}`);
  t.ok(all.results.length >= files.length, 'one result per object at least');
  const crashes = all.results.flatMap((r) => r.findings).filter((f) => / failed: /.test(f.message) && f.action === 'warn');
  t.same(crashes, [], 'no rule failed');
});

t.test('the whole directory with --per-file: each rule fires once, on its bad example, never on a good one', async (t) => {
  if (files.length === 0) return t.pass('no examples yet');
  let stdout = '';
  let stderr = '';
  await runCli(['check', '--state', CLUSTER, '--per-file', '--output', 'json', POLICIES], {
    io: { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s) },
  });
  t.equal(stderr, '');
  const results = (JSON.parse(stdout) as { results: (Result & { file: string })[] }).results;
  const fired = results.flatMap((r) => r.findings.map((f) => `${r.file.split('/').pop()}: ${f.rule}`)).sort();
  t.same(fired, pairs.map((id) => `${id}.bad.yaml: ${id}`).sort());
});

t.test('the example cluster is healthy: re-applying it is never denied and no rule crashes', async (t) => {
  const again = await check(CLUSTER);
  t.equal(again.stderr, '');
  t.ok(again.results.length > 50, `${again.results.length} objects`);
  t.ok(again.results.every((r) => r.operation === 'UPDATE'), 'every object is already in the state');
  const denied = again.results.filter((r) => !r.allowed).map((r) => `${r.kind} ${r.namespace}/${r.name}: ${r.findings.map((f) => f.rule).join(',')}`);
  t.same(denied, [], 'nothing denied');
  t.equal(again.code, 0);
  const crashes = again.results.flatMap((r) => r.findings).filter((f) => / failed: /.test(f.message));
  t.same(crashes, []);
  // Deleting any of its policies is an ordinary change too: it must not crash a rule.
  const del = await check('--operation', 'DELETE', `${CLUSTER}/40-policies.yaml`);
  t.equal(del.stderr, '');
  t.same(del.results.flatMap((r) => r.findings).filter((f) => / failed: /.test(f.message)), []);
});
