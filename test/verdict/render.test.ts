// Findings with a code are rendered once, from their rule's message table, and every output prints that
// rendering and carries the code; findings without one (rules not converted yet) keep their own text.
import t from 'tap';

import { findingJson, renderGithub, renderJunit, renderSarif, type ReportMeta, type ReportObject } from '../../src/cli/formats.ts';
import { toAdmissionResponse } from '../../src/admission/review.ts';
import { defaultConfig } from '../../src/config/config.ts';
import { defineMessages } from '../../src/core/message.ts';
import { desiredReports } from '../../src/reports/reports.ts';
import { ruleById } from '../../src/rules/registry.ts';
import type { Rule } from '../../src/core/rule.ts';
import type { AuditResult } from '../../src/verdict/audit.ts';
import { createDecide } from '../../src/verdict/decide.ts';
import { detailOf, renderFinding, UnknownCodeError, withFix } from '../../src/verdict/render.ts';
import { cnp, memoryState, ns } from '../fixtures/cluster.ts';
import { makeChange } from '../rules/rule-harness.ts';

const messages = defineMessages<{ 'too-many': { readonly n: number; readonly names: readonly string[] }; bare: { readonly x: string } }>('fake-coded', {
  'too-many': {
    description: 'more than one',
    summary: (p) => `${p.n} pods\nbroken: ${p.names.join(', ')}`,
    fix: (p) => `remove ${p.n - 1}`,
    detail: 'list-victims',
  },
  bare: { description: 'no fix', summary: (p) => `just ${p.x}`, detail: 'self-contained' },
});

/** Reports `too-many` for a policy labelled fake/n, or a code its table lacks for fake/bad-code. */
const coded: Rule = {
  id: 'fake-coded',
  severity: 'B',
  summary: 'a rule with codes',
  docs: 'docs/rules/fake-coded.md',
  triggers: [{ kinds: ['CiliumNetworkPolicy'], operations: ['CREATE'] }],
  messages,
  evaluate(change) {
    const labels = change.object?.metadata.labels ?? {};
    if (labels['fake/bad-code']) return [{ rule: 'fake-coded', code: 'fake-coded/nope', params: {} }];
    const n = Number(labels['fake/n'] ?? 0);
    return n > 1 ? [messages.finding('too-many', { n, names: ['a/p1', 'a/p2'] }, { victims: ['a/p1', 'a/p2'], victimCount: n })] : [];
  },
};

t.test('codes and the table', async (t) => {
  t.same(messages.codes, ['fake-coded/too-many', 'fake-coded/bare']);
  t.equal(messages.code('bare'), 'fake-coded/bare');
  t.same(messages.finding('bare', { x: 'y' }, { preexisting: false }), { rule: 'fake-coded', code: 'fake-coded/bare', params: { x: 'y' } });
  t.throws(() => defineMessages('r', { Bad_Kind: { description: '', summary: () => '', detail: 'self-contained' } }), /not kebab-case/);
});

t.test('renderFinding: from the table for a code, one line', async (t) => {
  const f = messages.finding('too-many', { n: 3, names: ['a/p1'] });
  t.same(renderFinding(f, messages), { message: '3 pods broken: a/p1', fix: 'remove 2' });
  t.same(renderFinding(messages.finding('bare', { x: 'y' }), messages), { message: 'just y' });
  t.throws(() => renderFinding({ rule: 'fake-coded', code: 'fake-coded/nope', params: {} }, messages), UnknownCodeError);
  t.throws(() => renderFinding(f, undefined), UnknownCodeError, 'a code needs a table');
  t.equal(detailOf(f, messages), 'list-victims');
  t.equal(detailOf({ code: 'meshguard/rule-failed' }, messages), undefined, 'a code of no table (the verdict layer\'s own)');
  t.equal(withFix({ message: 'm', fix: 'f' }), 'm Fix: f');
  t.equal(withFix({ message: 'm' }, '\nFix: '), 'm');
});

t.test('decide renders coded findings; a code missing from the table fails like a throwing rule', async (t) => {
  const decide = createDecide([coded], defaultConfig([coded]));
  const state = memoryState([ns('a')]);
  const policy = (labels: Record<string, string>) => {
    const p = cnp('a', 'p', { endpointSelector: {} });
    return { ...p, metadata: { ...p.metadata, labels } };
  };
  const d = decide(makeChange('CREATE', policy({ 'fake/n': '3' })), state);
  t.equal(d.allowed, false);
  t.match(d.findings, [{ rule: 'fake-coded', code: 'fake-coded/too-many', params: { n: 3 }, message: '3 pods broken: a/p1, a/p2', fix: 'remove 2', action: 'deny' }]);
  const bad = decide(makeChange('CREATE', policy({ 'fake/bad-code': 'x' })), state);
  t.equal(bad.incomplete?.reason, 'rule-error');
  t.match(bad.findings, [{ rule: 'fake-coded', code: 'meshguard/rule-failed', failed: true, message: /fake-coded failed: finding code fake-coded\/nope is not in the message table/ }]);
});

t.test('every output carries the code and the same words', async (t) => {
  const f = { rule: 'cilium-cni-exclusive', code: 'cilium-cni-exclusive/config-turns-on', params: {}, action: 'deny' as const, message: 'M', fix: 'F' };
  const objects: ReportObject[] = [{ kind: 'ConfigMap', namespace: 'kube-system', name: 'cilium-config', findings: [f] }];
  const meta: ReportMeta = { tool: 'meshguard', version: '0', rules: [], suite: 'meshguard check' };
  const sarif = JSON.parse(renderSarif(objects, meta)) as { runs: { results: { ruleId: string; properties?: { code: string }; message: { text: string } }[] }[] };
  t.match(sarif.runs[0]!.results[0], { ruleId: 'cilium-cni-exclusive', properties: { code: 'cilium-cni-exclusive/config-turns-on' }, message: { text: 'ConfigMap kube-system/cilium-config: M Fix: F' } });
  t.match(renderJunit(objects, meta), '<failure type="deny" message="M">M\nFix: F</failure>');
  t.match(renderGithub(objects), '::M%0AFix: F');
  t.same(findingJson(f, (r) => `https://docs/${r}`), { rule: f.rule, code: f.code, action: 'deny', message: 'M', fix: 'F', docs: 'https://docs/cilium-cni-exclusive' });
  t.same(findingJson({ rule: 'x', code: 'meshguard/rule-failed', action: 'warn', message: 'M' }, () => '').code, 'meshguard/rule-failed');

  const results: AuditResult[] = [{ kind: 'ConfigMap', apiVersion: 'v1', namespace: 'kube-system', name: 'cilium-config', findings: [f] }];
  const report = [...desiredReports(results, new Date(0)).values()][0]!;
  t.match(report.results[0], { rule: 'cilium-cni-exclusive', message: 'M', properties: { code: 'cilium-cni-exclusive/config-turns-on', fix: 'F' } });
});

t.test('admission: kubectl sees the rendered text; the table decides whether victims are appended', async (t) => {
  // A coded finding of a real rule whose table says `self-contained`: victims are not appended even
  // though the message does not name them.
  t.ok(ruleById('cilium-cni-exclusive')?.messages, 'the rule has codes');
  const finding = { rule: 'cilium-cni-exclusive', code: 'cilium-cni-exclusive/config-turns-on', params: {}, action: 'deny' as const, message: 'M', fix: 'F', victims: ['a/p'] };
  const denied = toAdmissionResponse('u', { allowed: false, findings: [finding], skipped: [] });
  t.match(denied.status?.message, /\[cilium-cni-exclusive\] M Fix: F Docs:/);
  t.notMatch(denied.status?.message, /Affected/);
  // A table that says `list-victims`: they are appended.
  const listed = toAdmissionResponse('u', {
    allowed: false,
    findings: [{ ...finding, rule: 'webhook-ingress-apiserver-entity', code: 'webhook-ingress-apiserver-entity/blocks-webhook' }],
    skipped: [],
  });
  t.match(listed.status?.message, /\[webhook-ingress-apiserver-entity\] M Affected: a\/p\. Fix: F/);
  const warned = toAdmissionResponse('u', { allowed: true, findings: [{ ...finding, action: 'warn' as const }], skipped: [] });
  t.match(warned.warnings?.[0], /^\[cilium-cni-exclusive\] M Fix: F/);
});
