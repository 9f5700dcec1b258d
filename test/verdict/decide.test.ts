import t from 'tap';

import type { Change } from '../../src/core/change.ts';
import { defaultConfig, type Config } from '../../src/config/config.ts';
import type { Rule } from '../../src/core/rule.ts';
import type { ClusterState } from '../../src/core/objects.ts';
import { createDecide, skippedRules } from '../../src/verdict/decide.ts';
import { cnp, memoryState, ns } from '../fixtures/cluster.ts';
import { makeChange } from '../rules/rule-harness.ts';
import { FAKE_RULES, labelRule, orphanPolicy, throwingRule } from './fake-rules.ts';

type Obj = ReturnType<typeof cnp>;

function config(over: Partial<Config> = {}): Config {
  return { ...defaultConfig(FAKE_RULES), ...over };
}

function labelled(obj: Obj, labels: Record<string, string>, annotations?: Record<string, string>): Obj {
  const m = obj.metadata as Record<string, unknown>;
  const metadata = { ...m, labels: { ...(m.labels as object), ...labels }, ...(annotations ? { annotations } : {}) };
  return { ...obj, metadata: metadata as unknown as Obj['metadata'] };
}

const state = memoryState([ns('team-a'), ns('sandbox')]);
const policy = (name = 'p', namespace = 'team-a') => cnp(namespace, name, { endpointSelector: {}, egress: [{}] });

/** A rule that records what it was called with. */
function spy(triggers: Rule['triggers'] = [{ kinds: ['CiliumNetworkPolicy'], operations: ['CREATE', 'UPDATE', 'DELETE'] }]) {
  const calls: { change: Change; before: ClusterState; after: ClusterState; settings: unknown }[] = [];
  const rule: Rule = {
    id: 'fake-spy',
    severity: 'B',
    summary: 'records calls',
    docs: 'docs/rules/fake-spy.md',
    triggers,
    evaluate(change, before, after, ctx) {
      calls.push({ change, before, after, settings: ctx.settings });
      return [];
    },
  };
  return { rule, calls };
}

t.test('a finding at the default deny action rejects the request', async (t) => {
  const decide = createDecide(FAKE_RULES, config());
  const d = decide(makeChange('CREATE', policy('p', 'nowhere')), state);
  t.equal(d.allowed, false);
  t.same(d.findings, [
    {
      rule: 'fake-orphan-policy',
      code: 'fake-orphan-policy/text',
      params: { text: 'namespace nowhere does not exist', fix: 'create namespace nowhere first' },
      message: 'namespace nowhere does not exist',
      fix: 'create namespace nowhere first',
      victims: ['nowhere/p'],
      victimCount: 3,
      action: 'deny',
    },
  ]);
  t.same(d.skipped, []);
  t.equal(d.exemptReason, undefined);
});

t.test('no finding: allowed', async (t) => {
  const d = createDecide(FAKE_RULES, config())(makeChange('CREATE', policy()), state);
  t.same(d, { allowed: true, findings: [], skipped: [] });
});

t.test('warn-level findings allow the request; the finding carries the id of the rule that made it', async (t) => {
  const d = createDecide(FAKE_RULES, config())(makeChange('CREATE', labelled(policy(), { 'fake/finding': 'heads up' })), state);
  t.equal(d.allowed, true);
  t.same(d.findings, [{ rule: 'fake-label', code: 'fake-label/text', params: { text: 'heads up' }, message: 'heads up', action: 'warn' }]);
});

t.test('the configured action wins over the default', async (t) => {
  const c = config({ rules: { ...config().rules, 'fake-label': 'deny', 'fake-orphan-policy': 'audit' } });
  const d = createDecide(FAKE_RULES, c)(makeChange('CREATE', labelled(policy('p', 'nowhere'), { 'fake/finding': 'x' })), state);
  t.equal(d.allowed, false);
  t.same(
    d.findings.map((f) => [f.rule, f.action]),
    [
      ['fake-label', 'deny'],
      ['fake-orphan-policy', 'audit'],
    ],
  );
});

t.test('a rule that is off does not run', async (t) => {
  const s = spy();
  const c = { ...config(), rules: { ...config().rules, 'fake-spy': 'off' as const } };
  createDecide([s.rule], c)(makeChange('CREATE', policy()), state);
  t.equal(s.calls.length, 0);
  // A rule missing from the config's table (not in the catalogue the config was built for) is off too.
  createDecide([s.rule], config())(makeChange('CREATE', policy()), state);
  t.equal(s.calls.length, 0);
});

t.test('rules run only for their trigger kinds and operations', async (t) => {
  const s = spy([{ kinds: ['CiliumNetworkPolicy'], operations: ['CREATE'] }]);
  const c = { ...config(), rules: { 'fake-spy': 'deny' as const } };
  const decide = createDecide([s.rule], c);
  decide(makeChange('UPDATE', policy(), policy()), state);
  decide(makeChange('CREATE', ns('new')), state);
  decide(makeChange('CONNECT', policy()), state);
  t.equal(s.calls.length, 0);
  decide(makeChange('CREATE', policy()), state);
  t.equal(s.calls.length, 1);
});

t.test('rules see before = the state and after = the overlay with the change, and the settings', async (t) => {
  const s = spy();
  const c = { ...config(), rules: { 'fake-spy': 'deny' as const } };
  const decide = createDecide([s.rule], c);
  decide(makeChange('CREATE', policy('fresh')), state);
  const call = s.calls[0]!;
  t.equal(call.before, state);
  t.equal(call.before.get('CiliumNetworkPolicy', 'team-a', 'fresh'), undefined);
  t.ok(call.after.get('CiliumNetworkPolicy', 'team-a', 'fresh'), 'after holds the new object');
  t.equal(call.settings, c.settings);

  const withPolicy = memoryState([ns('team-a'), policy('old')]);
  decide(makeChange('DELETE', undefined, policy('old')), withPolicy);
  const del = s.calls[1]!;
  t.ok(del.before.get('CiliumNetworkPolicy', 'team-a', 'old'));
  t.equal(del.after.get('CiliumNetworkPolicy', 'team-a', 'old'), undefined, 'after lacks the deleted object');
});

t.test('exempt namespaces: allowed without running any rule', async (t) => {
  const s = spy([{ kinds: ['CiliumNetworkPolicy', 'Namespace'], operations: ['CREATE', 'UPDATE', 'DELETE'] }]);
  const c: Config = { ...config(), rules: { 'fake-spy': 'deny' }, exemptions: { namespaces: ['sandbox'] } };
  const decide = createDecide([s.rule], c);
  const d = decide(makeChange('CREATE', policy('p', 'sandbox')), state);
  t.equal(d.allowed, true);
  t.match(d.exemptReason, /namespace sandbox is exempt/);
  // A Namespace object is judged by its own name.
  const n = decide(makeChange('UPDATE', ns('sandbox', { a: 'b' }), ns('sandbox')), state);
  t.match(n.exemptReason, /sandbox/);
  t.equal(s.calls.length, 0);
  // Other namespaces are checked.
  decide(makeChange('CREATE', policy('p', 'team-a')), state);
  decide(makeChange('CREATE', ns('sandbox2')), state);
  t.equal(s.calls.length, 2);
});

t.test('kinds meshguard does not model are allowed untouched', async (t) => {
  const s = spy();
  const c = { ...config(), rules: { 'fake-spy': 'deny' as const } };
  const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: 'team-a' } };
  const change = makeChange('CREATE', secret);
  t.equal(change.kind, undefined);
  const d = createDecide([s.rule], c)(change, state);
  t.equal(d.allowed, true);
  t.match(d.exemptReason, /does not check Secret/);
  t.equal(s.calls.length, 0);
});

t.test('a rule that throws never hides other findings; the error policy answers for it', async (t) => {
  const d = createDecide(FAKE_RULES, config())(makeChange('CREATE', labelled(policy('p', 'nowhere'), { 'fake/throw': 'yes' })), state);
  t.equal(d.allowed, false, 'the other rule still denies');
  const failed = d.findings.find((f) => f.rule === 'fake-throws');
  t.same(failed, {
    rule: 'fake-throws',
    code: 'meshguard/rule-failed',
    params: { error: 'boom second line' },
    action: 'deny',
    message: 'fake-throws failed: boom second line; refused by the error policy (onError: fail)',
    failed: true,
  });
  t.ok(d.findings.some((f) => f.rule === 'fake-orphan-policy'));
  t.same(d.incomplete, { reason: 'rule-error', rules: ['fake-throws'], outcome: 'fail' });

  // A crash of a rule configured to warn still fails closed: the failure is meshguard's, not the rule's verdict.
  const alone = createDecide([throwingRule], { ...config(), rules: { 'fake-throws': 'warn' } });
  const a = alone(makeChange('CREATE', labelled(policy(), { 'fake/throw': 'yes' })), state);
  t.equal(a.allowed, false, 'a policy object that could not be judged is not admitted in enforce mode');
  t.equal(a.findings[0]?.action, 'deny');
});

t.test('a rule returning something other than an array counts as a failure', async (t) => {
  const bad: Rule = { ...orphanPolicy, id: 'fake-bad', evaluate: () => undefined as unknown as [] };
  const d = createDecide([bad], { ...config(), rules: { 'fake-bad': 'deny' } })(makeChange('CREATE', policy()), state);
  t.equal(d.allowed, false);
  t.match(d.findings[0]?.message, /^fake-bad failed: /);
  t.equal(d.incomplete?.reason, 'rule-error');
});

t.test('messages stay on one line', async (t) => {
  const d = createDecide([labelRule], config())(makeChange('CREATE', labelled(policy(), { 'fake/finding': 'a\nb' })), state);
  t.equal(d.findings[0]?.message, 'a b');
});

t.test('pre-existing problems are at most warnings', async (t) => {
  const c = { ...config(), rules: { ...config().rules, 'fake-label': 'deny' as const } };
  const obj = labelled(policy(), { 'fake/finding': 'old problem', 'fake/preexisting': 'true' });
  const d = createDecide(FAKE_RULES, c)(makeChange('CREATE', obj), state);
  t.equal(d.allowed, true);
  t.same(d.findings, [{ rule: 'fake-label', code: 'fake-label/text', params: { text: 'old problem' }, message: 'old problem', preexisting: true, action: 'warn' }]);
  // An audit action stays audit.
  const audit = { ...config(), rules: { ...config().rules, 'fake-label': 'audit' as const } };
  t.equal(createDecide(FAKE_RULES, audit)(makeChange('CREATE', obj), state).findings[0]?.action, 'audit');
});

t.test('mode audit turns every deny into audit and allows', async (t) => {
  const c = config({ mode: 'audit' });
  const d = createDecide(FAKE_RULES, c)(makeChange('CREATE', labelled(policy('p', 'nowhere'), { 'fake/finding': 'w' })), state);
  t.equal(d.allowed, true);
  t.same(
    d.findings.map((f) => [f.rule, f.action]),
    [
      ['fake-label', 'warn'],
      ['fake-orphan-policy', 'audit'],
    ],
  );
  // The downgraded deny is marked, so the response can still warn about what enforce would refuse.
  t.same(d.findings.map((f) => f.wouldDeny ?? false), [false, true]);
  const configuredAudit = config({ mode: 'audit', rules: { ...config().rules, 'fake-orphan-policy': 'audit' } });
  const d2 = createDecide(FAKE_RULES, configuredAudit)(makeChange('CREATE', labelled(policy('p', 'nowhere'), { 'fake/finding': 'w' })), state);
  t.equal(d2.findings.find((f) => f.rule === 'fake-orphan-policy')?.wouldDeny, undefined, 'a rule configured as audit would not deny');
});

t.test('skip annotation: honoured with a reason', async (t) => {
  const obj = labelled(policy('p', 'nowhere'), { 'fake/finding': 'w' }, {
    'meshguard.io/skip': 'fake-orphan-policy, fake-label',
    'meshguard.io/skip-reason': 'namespace is created by the pipeline later',
  });
  const d = createDecide(FAKE_RULES, config())(makeChange('CREATE', obj), state);
  t.equal(d.allowed, true);
  t.same(d.findings, []);
  t.same(d.skipped, ['fake-label', 'fake-orphan-policy']);
});

t.test('skip annotation: ignored without a reason or with a blank one', async (t) => {
  for (const annotations of [
    { 'meshguard.io/skip': 'fake-orphan-policy' } as Record<string, string>,
    { 'meshguard.io/skip': 'fake-orphan-policy', 'meshguard.io/skip-reason': '   ' },
  ]) {
    const d = createDecide(FAKE_RULES, config())(makeChange('CREATE', labelled(policy('p', 'nowhere'), {}, annotations)), state);
    t.equal(d.allowed, false);
    t.same(d.skipped, []);
    t.same(d.notices, ['meshguard.io/skip is ignored: it takes effect only with a non-empty meshguard.io/skip-reason'], 'and says so');
  }
});

t.test('skip annotation: rule ids meshguard does not have are reported', async (t) => {
  const obj = labelled(policy('p', 'team-a'), {}, { 'meshguard.io/skip': 'fake-label, dns-egres-missing, nope', 'meshguard.io/skip-reason': 'r' });
  const d = createDecide(FAKE_RULES, config())(makeChange('CREATE', obj), state);
  t.same(d.notices, ['meshguard.io/skip names unknown rules: dns-egres-missing, nope (meshguard rules lists them)']);
  const fine = labelled(policy('p', 'team-a'), {}, { 'meshguard.io/skip': 'fake-label', 'meshguard.io/skip-reason': 'r' });
  t.equal(createDecide(FAKE_RULES, config())(makeChange('CREATE', fine), state).notices, undefined, 'no notice for a valid opt-out');
  // Notices come with every answer, also when no rule runs for the object.
  const exemptNs = createDecide(FAKE_RULES, config({ ...config(), exemptions: { namespaces: ['team-a'] } }))(makeChange('CREATE', obj), state);
  t.ok(exemptNs.exemptReason);
  t.equal(exemptNs.notices?.length, 1);
  // Not on DELETE: the annotated object is going away.
  const del = createDecide(FAKE_RULES, config())(makeChange('DELETE', undefined, obj), memoryState([ns('team-a'), obj]));
  t.equal(del.notices, undefined);
});

t.test('skip annotation: only the listed rules are skipped', async (t) => {
  const obj = labelled(policy('p', 'nowhere'), { 'fake/finding': 'w' }, {
    'meshguard.io/skip': 'fake-label',
    'meshguard.io/skip-reason': 'known',
  });
  const d = createDecide(FAKE_RULES, config())(makeChange('CREATE', obj), state);
  t.equal(d.allowed, false);
  t.same(d.skipped, ['fake-label']);
  t.same(d.findings.map((f) => f.rule), ['fake-orphan-policy']);
});

t.test('skip annotation on DELETE is read from the old object', async (t) => {
  const old = labelled(policy(), { 'fake/finding': 'deleting this hurts' }, {
    'meshguard.io/skip': 'fake-label',
    'meshguard.io/skip-reason': 'decommissioning team-a',
  });
  const withOld = memoryState([ns('team-a'), old]);
  const change = makeChange('DELETE', undefined, old);
  t.same([...skippedRules(change)], ['fake-label']);
  const d = createDecide(FAKE_RULES, config())(change, withOld);
  t.same(d.findings, []);
  t.same(d.skipped, ['fake-label']);
  // Without the annotation the finding is reported on DELETE too.
  const plain = labelled(policy(), { 'fake/finding': 'deleting this hurts' });
  const d2 = createDecide(FAKE_RULES, config())(makeChange('DELETE', undefined, plain), memoryState([ns('team-a'), plain]));
  t.same(d2.findings.map((f) => f.rule), ['fake-label']);
});
