// AdmissionReview -> Change and Decision -> AdmissionResponse, without a server.

import t from 'tap';

import { annotationKey, buildWarnings, denyMessage, LIMITS, toAdmissionResponse, toChange, truncate } from '../../src/admission/review.ts';
import { validateAdmissionReview, type AdmissionReview } from '../../src/admission/schema.ts';
import type { ActedFinding } from '../../src/core/finding.ts';
import type { Decision } from '../../src/core/decision.ts';

function review(request: Record<string, unknown>): AdmissionReview {
  const r = {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: { uid: 'u-1', userInfo: { username: 'bob' }, ...request },
  };
  if (!validateAdmissionReview(r)) throw new Error('test review does not pass the schema');
  return r;
}

const podRaw = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    name: 'web-1',
    namespace: 'shop',
    labels: { app: 'web' },
    annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{"big":"secret"}', 'sidecar.istio.io/inject': 'true' },
    managedFields: [{ manager: 'kubectl' }],
  },
  spec: { serviceAccountName: 'web', containers: [{ name: 'app', image: 'nginx', env: [{ name: 'PASSWORD', value: 'hunter2' }], ports: [{ containerPort: 8080 }] }] },
};
const podGvk = { group: '', version: 'v1', kind: 'Pod' };

t.test('CREATE of a modelled kind: object slimmed by the state transform', async (t) => {
  const c = toChange(review({ kind: podGvk, operation: 'CREATE', namespace: 'shop', name: 'web-1', object: podRaw, dryRun: true }));
  t.equal(c.uid, 'u-1');
  t.equal(c.kind, 'Pod');
  t.same(c.gvk, podGvk);
  t.equal(c.operation, 'CREATE');
  t.equal(c.dryRun, true);
  t.same(c.userInfo, { username: 'bob' });
  t.equal(c.namespace, 'shop');
  t.equal(c.name, 'web-1');
  t.equal(c.oldObject, undefined);
  const text = JSON.stringify(c.object);
  t.notOk(text.includes('hunter2'), 'env values dropped');
  t.notOk(text.includes('last-applied'), 'unread annotations dropped');
  t.notOk(text.includes('managedFields'));
  t.same(c.object?.metadata.labels, { app: 'web' });
  t.same(c.object?.metadata.annotations, { 'sidecar.istio.io/inject': 'true' });
});

t.test('namespace and name come from the request when the object lacks them', async (t) => {
  const raw = { ...podRaw, metadata: { generateName: 'web-', labels: { app: 'web' } } };
  const c = toChange(review({ kind: podGvk, operation: 'CREATE', namespace: 'shop', name: 'web-x7k2p', object: raw }));
  t.equal(c.object?.metadata.namespace, 'shop');
  t.equal(c.object?.metadata.name, 'web-x7k2p');
  t.equal(c.name, 'web-x7k2p');
});

t.test('UPDATE carries both objects; dryRun defaults to false', async (t) => {
  const newer = { ...podRaw, metadata: { ...podRaw.metadata, labels: { app: 'web', v: '2' } } };
  const c = toChange(review({ kind: podGvk, operation: 'UPDATE', namespace: 'shop', name: 'web-1', object: newer, oldObject: podRaw }));
  t.same(c.object?.metadata.labels, { app: 'web', v: '2' });
  t.same(c.oldObject?.metadata.labels, { app: 'web' });
  t.equal(c.dryRun, false);
});

t.test('DELETE: oldObject only (object null or absent)', async (t) => {
  for (const object of [null, undefined]) {
    const c = toChange(review({ kind: podGvk, operation: 'DELETE', namespace: 'shop', name: 'web-1', object, oldObject: podRaw }));
    t.equal(c.operation, 'DELETE');
    t.equal(c.object, undefined);
    t.equal(c.oldObject?.metadata.name, 'web-1');
    t.equal(c.kind, 'Pod');
  }
});

t.test('kinds meshguard does not model keep only identity, labels and read annotations', async (t) => {
  const secret = {
    apiVersion: 'v1', kind: 'Secret',
    metadata: { name: 's', namespace: 'shop', labels: { a: 'b' }, annotations: { 'meshguard.io/skip': 'x', other: 'y' } },
    data: { password: 'aHVudGVyMg==' },
  };
  const c = toChange(review({ kind: { group: '', version: 'v1', kind: 'Secret' }, operation: 'CREATE', namespace: 'shop', name: 's', object: secret }));
  t.equal(c.kind, undefined);
  t.same(c.object, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: 'shop', labels: { a: 'b' }, annotations: { 'meshguard.io/skip': 'x' } } });
  // Same kind name, other group: an Istio networking Gateway is not the Gateway API Gateway.
  const gw = toChange(review({ kind: { group: 'networking.istio.io', version: 'v1', kind: 'Gateway' }, operation: 'CREATE', namespace: 'shop', name: 'g', object: { metadata: { name: 'g' } } }));
  t.equal(gw.kind, undefined);
  t.equal(gw.object?.apiVersion, 'networking.istio.io/v1', 'TypeMeta filled from request.kind');
});

t.test('CONNECT: the options object is not treated as the stored kind', async (t) => {
  const c = toChange(review({
    kind: { group: '', version: 'v1', kind: 'PodExecOptions' }, resource: { group: '', version: 'v1', resource: 'pods' }, subResource: 'exec',
    operation: 'CONNECT', namespace: 'shop', name: 'web-1', object: { apiVersion: 'v1', kind: 'PodExecOptions', command: ['sh'] },
  }));
  t.equal(c.operation, 'CONNECT');
  t.equal(c.kind, undefined);
  t.equal(c.name, 'web-1');
  t.equal(c.namespace, 'shop');
  t.equal(c.oldObject, undefined);
  t.same(c.object, { apiVersion: 'v1', kind: 'PodExecOptions', metadata: { name: 'web-1', namespace: 'shop' } });
});

t.test('schema: garbage is rejected, extra apiserver fields are accepted', async (t) => {
  const ok = {
    apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
    request: {
      uid: 'a', kind: podGvk, resource: { group: '', version: 'v1', resource: 'pods' }, requestKind: podGvk,
      operation: 'CREATE', object: podRaw, options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
      someFutureField: { x: 1 }, userInfo: { username: 'u', extra: { 'scopes.example.com': ['a'] } },
    },
  };
  t.ok(validateAdmissionReview(ok));
  const bad: [string, unknown][] = [
    ['null', null],
    ['string', 'AdmissionReview'],
    ['no request', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }],
    ['wrong kind', { ...ok, kind: 'Pod' }],
    ['empty uid', { ...ok, request: { ...ok.request, uid: '' } }],
    ['kind without kind', { ...ok, request: { ...ok.request, kind: { group: '' } } }],
    ['object array', { ...ok, request: { ...ok.request, object: [] } }],
    ['groups not strings', { ...ok, request: { ...ok.request, userInfo: { groups: [1] } } }],
    ['dryRun string', { ...ok, request: { ...ok.request, dryRun: 'true' } }],
    ['UPDATE without oldObject', { ...ok, request: { ...ok.request, operation: 'UPDATE' } }],
  ];
  for (const [what, v] of bad) t.notOk(validateAdmissionReview(v), what);
});

/** The default base of rule pages: package.json homepage + /blob/main/docs/rules. */
const DOCS = 'https://github.com/meshguard/meshguard/blob/main/docs/rules';

const f = (rule: string, action: ActedFinding['action'], message: string, extra: Partial<ActedFinding> = {}): ActedFinding => ({
  rule, code: `${rule}/test`, params: {}, action, message, ...extra,
});
const decision = (allowed: boolean, findings: ActedFinding[]): Decision => ({ allowed, findings, skipped: [] });

t.test('response: allowed with nothing to say is minimal and echoes the uid', async (t) => {
  t.same(toAdmissionResponse('abc', decision(true, [])), { uid: 'abc', allowed: true });
});

t.test('response: deny names every denying rule with reason and fix', async (t) => {
  const r = toAdmissionResponse('u', decision(false, [
    f('dns-egress-missing', 'deny', 'egress default-deny drops DNS', { fix: 'allow kube-dns UDP/53' }),
    // A message kind that does not name its victims (list-victims): the denial appends them.
    f('webhook-ingress-apiserver-entity', 'deny', 'pods lose istiod', { code: 'webhook-ingress-apiserver-entity/blocks-webhook', victims: ['a/b', 'a/c'], victimCount: 2 }),
    f('dns-egress-missing', 'deny', 'second occurrence\nwith a newline'),
  ]));
  t.equal(r.allowed, false);
  t.same(r.status, {
    code: 403, reason: 'Forbidden',
    message: 'meshguard denied this request:\n' +
      '[dns-egress-missing] egress default-deny drops DNS Fix: allow kube-dns UDP/53 Docs: https://github.com/meshguard/meshguard/blob/main/docs/rules/dns-egress-missing.md\n' +
      '[webhook-ingress-apiserver-entity] pods lose istiod Affected: a/b, a/c. Docs: https://github.com/meshguard/meshguard/blob/main/docs/rules/webhook-ingress-apiserver-entity.md\n' +
      '[dns-egress-missing] second occurrence with a newline Docs: https://github.com/meshguard/meshguard/blob/main/docs/rules/dns-egress-missing.md',
  });
});

t.test('response: a very long deny message is capped but keeps every rule id', async (t) => {
  const findings = Array.from({ length: 12 }, (_, i) => f(`rule-${i}`, 'deny', 'x'.repeat(2000), { fix: 'y'.repeat(500) }));
  const msg = denyMessage(findings);
  t.ok(msg.length <= LIMITS.denyMessageChars, `length ${msg.length}`);
  for (let i = 0; i < 12; i++) t.ok(msg.includes(`[rule-${i}] `), `rule-${i} named`);
  t.equal(msg.split('\n').length, 13);
});

t.test('response: preexisting deny findings are warnings and do not change allowed', async (t) => {
  const r = toAdmissionResponse('u', decision(true, [f('dns-egress-missing', 'deny', 'already broken before', { preexisting: true })]));
  t.equal(r.allowed, true);
  t.equal(r.status, undefined);
  t.same(r.warnings, ['[dns-egress-missing] (pre-existing) already broken before', `  Docs: ${DOCS}/dns-egress-missing.md`]);
});

t.test('response: a deny finding on an allowed decision is shown as a warning, never dropped', async (t) => {
  const r = toAdmissionResponse('u', decision(true, [f('dns-egress-missing', 'deny', 'breaks DNS')]));
  t.equal(r.allowed, true);
  t.equal(r.status, undefined);
  t.same(r.warnings, ['[dns-egress-missing] breaks DNS', `  Docs: ${DOCS}/dns-egress-missing.md`]);
});

t.test('response: notices come first among the warnings, tagged meshguard', async (t) => {
  const r = toAdmissionResponse('u', {
    allowed: true,
    findings: [f('dns-egress-missing', 'warn', 'm')],
    skipped: [],
    notices: ['meshguard.io/skip is ignored: it takes effect only with a non-empty meshguard.io/skip-reason'],
  });
  t.equal(r.warnings?.[0], 'meshguard: meshguard.io/skip is ignored: it takes effect only with a non-empty meshguard.io/skip-reason');
  t.match(r.warnings?.[1], /^\[dns-egress-missing\] m/);
  // A long notice wraps like a finding instead of losing its end.
  const ids = Array.from({ length: 12 }, (_, i) => `no-such-rule-${i}`).join(', ');
  const long = toAdmissionResponse('u', { allowed: true, findings: [], skipped: [], notices: [`meshguard.io/skip names unknown rules: ${ids} (meshguard rules lists them)`] });
  t.ok(long.warnings!.length > 1);
  t.ok(long.warnings!.every((l) => l.length <= 120));
  t.match(long.warnings!.join(' '), /no-such-rule-11 \(meshguard rules lists them\)/);
});

t.test('response: a long warning is wrapped into several lines, never cut mid-sentence', async (t) => {
  const message = 'policy demo/lockdown puts 7 ambient pods into ingress default deny without an allow for TCP 15008 (HBONE): ztunnel traffic is dropped';
  const fix = 'add ingress: [{fromEntities: [cluster], toPorts: [{ports: [{port: "15008", protocol: TCP}]}]}]';
  const r = toAdmissionResponse('u', decision(true, [f('hbone-15008-blocked', 'warn', message, { fix })]));
  const lines = r.warnings!;
  t.ok(lines.length >= 2, 'wrapped');
  for (const l of lines) t.ok([...l].length <= LIMITS.warningChars, `<= 120: ${l}`);
  t.ok(lines.slice(1).every((l) => l.startsWith('  ')), 'continuation lines are indented');
  t.equal(lines.map((l) => l.trim()).join(' '), `[hbone-15008-blocked] ${message} Fix: ${fix} Docs: ${DOCS}/hbone-15008-blocked.md`, 'nothing lost');
  t.equal(lines.at(-1), `  Docs: ${DOCS}/hbone-15008-blocked.md`, 'the link has a line of its own');
});

t.test('response: links go to the configured base, in the deny message and in the warnings', async (t) => {
  const docsUrl = (rule: string) => `https://wiki.example.com/meshguard/${rule}.md`;
  const r = toAdmissionResponse('u', decision(false, [
    f('dns-egress-missing', 'deny', 'breaks DNS'),
    f('dual-l7-authz', 'warn', 'two L7 layers'),
  ]), { docsUrl });
  t.equal(r.status?.message, 'meshguard denied this request:\n[dns-egress-missing] breaks DNS Docs: https://wiki.example.com/meshguard/dns-egress-missing.md');
  t.same(r.warnings, ['[dual-l7-authz] two L7 layers', '  Docs: https://wiki.example.com/meshguard/dual-l7-authz.md']);
});

t.test('response: a message too long for its warning lines is cut, its link is kept whole', async (t) => {
  const message = Array.from({ length: 120 }, (_, i) => `word${i}`).join(' ');
  const lines = toAdmissionResponse('u', decision(true, [f('dns-egress-missing', 'warn', message)])).warnings!;
  t.equal(lines.length, 4, 'at most four lines per finding, the link included');
  t.ok(lines[2]!.endsWith('…'), 'the message is cut');
  t.equal(lines[3], `  Docs: ${DOCS}/dns-egress-missing.md`);
  // A base so long that "Docs: " does not fit: the bare URL; longer still: no link rather than half of one.
  const long = (n: number) => (rule: string) => `https://example.com/${'d'.repeat(n)}/${rule}.md`;
  const bare = toAdmissionResponse('u', decision(true, [f('r', 'warn', 'm')]), { docsUrl: long(90) }).warnings!;
  t.same(bare, ['[r] m', `  https://example.com/${'d'.repeat(90)}/r.md`]);
  const none = toAdmissionResponse('u', decision(true, [f('r', 'warn', 'm')]), { docsUrl: long(120) }).warnings!;
  t.same(none, ['[r] m']);
});

t.test('response: a deny message with many rules stays within its limit and keeps links while there is room', async (t) => {
  const few = denyMessage(Array.from({ length: 12 }, (_, i) => f(`rule-${i}`, 'deny', 'x'.repeat(2000))));
  for (let i = 0; i < 12; i++) t.ok(few.includes(`Docs: ${DOCS}/rule-${i}.md`), `rule-${i} linked`);
  const many = denyMessage(Array.from({ length: 40 }, (_, i) => f(`rule-${i}`, 'deny', 'x'.repeat(2000))));
  t.ok(many.length <= LIMITS.denyMessageChars, `length ${many.length}`);
  for (let i = 0; i < 40; i++) t.ok(many.includes(`[rule-${i}] `), `rule-${i} named`);
});

t.test('response: audit mode warns about what enforce mode would deny', async (t) => {
  const r = toAdmissionResponse('u', decision(true, [
    { ...f('dns-egress-missing', 'audit', 'breaks DNS'), wouldDeny: true },
    f('dual-l7-authz', 'audit', 'configured as audit'),
  ]));
  t.equal(r.allowed, true);
  t.same(r.warnings, ['[dns-egress-missing] (audit: would be denied) breaks DNS', `  Docs: ${DOCS}/dns-egress-missing.md`]);
  t.same(Object.keys(r.auditAnnotations ?? {}).sort(), ['dns-egress-missing', 'dual-l7-authz']);
});

t.test('response: audit annotations keyed by rule id, values truncated, same rule joined', async (t) => {
  const r = toAdmissionResponse('u', decision(true, [
    f('peer-auth-port-mismatch', 'audit', 'one'),
    f('peer-auth-port-mismatch', 'audit', 'two'),
    f('long-one', 'audit', 'z'.repeat(5000)),
  ]));
  t.equal(r.auditAnnotations?.['peer-auth-port-mismatch'], 'one; two');
  t.equal([...r.auditAnnotations!['long-one']!].length, LIMITS.auditValueChars);
  t.ok(r.auditAnnotations!['long-one']!.endsWith('…'));
  t.equal(r.warnings, undefined);
});

t.test('annotation keys are valid qualified-name segments', async (t) => {
  const re = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
  for (const id of ['dns-egress-missing', 'weird id/with:chars', '-leading', 'x'.repeat(100), '!!!']) {
    const k = annotationKey(id);
    t.match(k, re, id);
    t.ok(k.length <= 63, id);
  }
  t.equal(annotationKey('dns-egress-missing'), 'dns-egress-missing');
});

t.test('warnings: per-warning and total limits, with a count of what was dropped', async (t) => {
  t.same(buildWarnings(['short']), ['short']);
  const one = buildWarnings(['é'.repeat(300)]);
  t.equal([...one[0]!].length, 120);
  t.ok(one[0]!.endsWith('…'));
  // Multi-byte characters: 120 characters can be 240+ bytes, the total must still stay below 4 KiB.
  const many = buildWarnings(Array.from({ length: 100 }, (_, i) => `${i} ` + 'ü'.repeat(200)));
  const bytes = Buffer.byteLength(many.join(''), 'utf8');
  t.ok(bytes < 4096, `total ${bytes} bytes`);
  t.ok(many.every((w) => [...w].length <= 120));
  const shown = many.length - 1;
  t.equal(many.at(-1), `meshguard: ${100 - shown} more warnings not shown`);
  // Exactly fitting warnings: no note.
  const fit = buildWarnings(Array.from({ length: 10 }, () => 'a'.repeat(100)));
  t.equal(fit.length, 10);
  t.equal(truncate('abc', 3), 'abc');
  t.equal(truncate('abcd', 3), 'ab…');
});

t.test('deny message does not repeat victims the rule message already names', async (t) => {
  const r = toAdmissionResponse('u', {
    allowed: false,
    skipped: [],
    // A self-contained message kind: it names its victims itself.
    findings: [f('dns-egress-missing', 'deny', 'policy leaves 1 pod without DNS: a/b', { code: 'dns-egress-missing/policy-leaves-no-dns', victims: ['a/b'], victimCount: 1 })],
  });
  t.notMatch(r.status!.message, 'Affected');
  t.match(r.status!.message, 'a/b');
});

t.test('response: wrapping counts code points, so lines of astral characters fill up to the limit', async (t) => {
  // Words of 10 emoji (20 UTF-16 units each). Counting UTF-16 units would break lines at half the limit.
  const word = '\u{1F680}'.repeat(10);
  const message = Array.from({ length: 30 }, () => word).join(' ');
  const lines = toAdmissionResponse('u', decision(true, [f('r', 'warn', message)])).warnings!;
  // A naive reference: greedy wrap on words, lengths in code points.
  const ref: string[] = [];
  let line = '';
  for (const w of `[r] ${message}`.split(' ')) {
    const cand = line === '' ? (ref.length === 0 ? w : `  ${w}`) : `${line} ${w}`;
    if ([...cand].length <= LIMITS.warningChars) line = cand;
    else {
      ref.push(line);
      line = `  ${w}`;
    }
  }
  ref.push(line);
  const kept = ref.slice(0, 4);
  t.same(lines.slice(0, 2), kept.slice(0, 2), 'same breaks as the code-point reference');
  t.equal(lines.at(-1), `  Docs: ${DOCS}/r.md`);
  for (const l of lines) t.ok([...l].length <= LIMITS.warningChars);
  t.ok([...lines[0]!].length > 100, `first line filled: ${[...lines[0]!].length} code points`);
  t.equal(truncate('\u{1F680}'.repeat(5), 5), '\u{1F680}'.repeat(5), 'five code points fit in five');
  t.equal(truncate('\u{1F680}'.repeat(6), 5), '\u{1F680}'.repeat(4) + '…');
});
