// Properties of the protocol layer over generated input: any schema-valid review becomes a Change
// without throwing, and any Decision becomes a response within the apiserver's limits.

import fc from 'fast-check';
import t from 'tap';

import { toAdmissionResponse, toChange } from '../../src/admission/review.ts';
import { defaultDocsBaseUrl, ruleDocsUrl } from '../../src/config/docs-links.ts';
import { validateAdmissionReview } from '../../src/admission/schema.ts';
import type { ActedFinding } from '../../src/core/finding.ts';
import type { Decision } from '../../src/core/decision.ts';
import { KINDS, KIND_NAMES } from '../../src/core/kinds.ts';

const gvkArb = fc.oneof(
  fc.constantFrom(...KIND_NAMES).map((k) => ({ group: KINDS[k].group, version: KINDS[k].version, kind: k as string })),
  fc.record({ group: fc.string({ maxLength: 20 }), version: fc.string({ maxLength: 5 }), kind: fc.string({ minLength: 1, maxLength: 20 }) }),
);

const reviewArb = fc
  .record({
    uid: fc.string({ minLength: 1, maxLength: 40 }),
    kind: gvkArb,
    operation: fc.constantFrom('CREATE', 'UPDATE', 'DELETE', 'CONNECT'),
    namespace: fc.option(fc.string({ maxLength: 20 }), { nil: undefined }),
    name: fc.option(fc.string({ maxLength: 20 }), { nil: undefined }),
    dryRun: fc.option(fc.boolean(), { nil: undefined }),
    body: fc.object({ maxDepth: 4 }),
    metadata: fc.record(
      {
        name: fc.string({ maxLength: 10 }),
        namespace: fc.string({ maxLength: 10 }),
        labels: fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 })),
        annotations: fc.dictionary(fc.string({ maxLength: 20 }), fc.string({ maxLength: 10 })),
      },
      { requiredKeys: [] },
    ),
  })
  .map((r) => {
    const obj = { ...r.body, metadata: r.metadata };
    return {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid: r.uid, kind: r.kind, operation: r.operation,
        ...(r.namespace !== undefined ? { namespace: r.namespace } : {}),
        ...(r.name !== undefined ? { name: r.name } : {}),
        ...(r.dryRun !== undefined ? { dryRun: r.dryRun } : {}),
        object: r.operation === 'DELETE' ? null : obj,
        oldObject: r.operation === 'UPDATE' || r.operation === 'DELETE' ? obj : null,
      },
    };
  });

t.test('every schema-valid review becomes a consistent Change', async (t) => {
  let checked = 0;
  fc.assert(
    fc.property(reviewArb, (review) => {
      if (!validateAdmissionReview(review)) return true;
      checked++;
      const c = toChange(review);
      const req = review.request;
      return (
        c.uid === req.uid &&
        c.operation === req.operation &&
        c.dryRun === (req.dryRun === true) &&
        (req.operation === 'DELETE' ? c.object === undefined && c.oldObject !== undefined : true) &&
        (req.operation === 'CREATE' ? c.object !== undefined && c.oldObject === undefined : true) &&
        (c.kind === undefined || KINDS[c.kind].kind === req.kind.kind) &&
        typeof c.name === 'string' &&
        typeof c.namespace === 'string'
      );
    }),
    { numRuns: 1500, seed: 42 },
  );
  t.ok(checked > 1000, `${checked} valid reviews checked`);
});

const findingArb: fc.Arbitrary<ActedFinding> = fc.record(
  {
    rule: fc.oneof(fc.constantFrom('dns-egress-missing', 'apiserver-egress-missing', 'l7-policy-split-brain'), fc.string({ minLength: 1, maxLength: 70 })),
    code: fc.constantFrom('dns-egress-missing/policy-leaves-no-dns', 'webhook-ingress-apiserver-entity/blocks-webhook', 'x/y'),
    params: fc.constant({}),
    action: fc.constantFrom('deny', 'warn', 'audit'),
    message: fc.string({ maxLength: 400, unit: 'grapheme' }),
    fix: fc.string({ maxLength: 200 }),
    victims: fc.array(fc.string({ maxLength: 30 }), { maxLength: 5 }),
    victimCount: fc.nat(1000),
    preexisting: fc.boolean(),
  },
  { requiredKeys: ['rule', 'code', 'params', 'action', 'message'] },
);

const decisionArb: fc.Arbitrary<Decision> = fc.record({
  allowed: fc.boolean(),
  findings: fc.array(findingArb, { maxLength: 60 }),
  skipped: fc.constant([]),
});

t.test('every decision gives a response within the apiserver limits', async (t) => {
  const keyRe = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
  fc.assert(
    fc.property(fc.string({ minLength: 1, maxLength: 40 }), decisionArb, (uid, d) => {
      const r = toAdmissionResponse(uid, d);
      if (r.uid !== uid || r.allowed !== d.allowed) return false;
      for (const w of r.warnings ?? []) if ([...w].length > 120 || /[\u0000-\u001f]/.test(w)) return false;
      if (Buffer.byteLength((r.warnings ?? []).join(''), 'utf8') >= 4096) return false;
      for (const k of Object.keys(r.auditAnnotations ?? {})) if (!keyRe.test(k) || k.length > 63) return false;
      if (!d.allowed) {
        if (r.status?.code !== 403) return false;
        for (const f of d.findings) {
          if (f.action === 'deny' && !f.preexisting && !r.status.message.includes(`[${f.rule}] `)) return false;
        }
      } else if (r.status !== undefined) return false;
      // A link is whole or absent, never cut: every link line is the page of one of the findings.
      const pages = new Set(d.findings.map((f) => ruleDocsUrl(f.rule, defaultDocsBaseUrl())));
      for (const w of r.warnings ?? []) if (w.startsWith('  Docs: ') && !pages.has(w.slice('  Docs: '.length))) return false;
      // Nothing is silently lost: every warn/deny finding is in the message or the warnings (or counted as
      // dropped). A finding's warning starts unindented; its wrapped lines and its link are indented.
      const shown = (r.warnings ?? []).filter((w) => !w.startsWith('  ')).length + (r.status?.message.split('\n').length ?? 1) - 1;
      const reported = d.findings.filter((f) => f.action !== 'audit').length;
      const dropped = Number(/(\d+) more warnings? not shown/.exec((r.warnings ?? []).at(-1) ?? '')?.[1] ?? 0);
      return dropped > 0 ? shown - 1 + dropped === reported : shown === reported;
    }),
    { numRuns: 1000, seed: 7 },
  );
  t.pass('1000 decisions checked');
});
