// The error policy and the evaluation budget: a rule that throws, or a review that runs out of time,
// is answered the way the webhook entry carrying it fails (deny for policy objects in enforce mode,
// admit with a warning for cluster plumbing and in audit mode), unless `evaluation.onError` says
// otherwise. Budgets run on a fake clock: no test here depends on how fast the machine is.

import t from 'tap';

import { checkBudget, type Clock } from '../../src/core/budget.ts';
import { defaultConfig, type Config } from '../../src/config/config.ts';
import { allRules } from '../../src/rules/registry.ts';
import type { Rule } from '../../src/core/rule.ts';
import { inRequestScope, ScopedWeakMap } from '../../src/state/request-scope.ts';
import { readManifests } from '../../src/state/io/manifests.ts';
import { loadSnapshot } from '../../src/state/snapshot.ts';
import { createDecide } from '../../src/verdict/decide.ts';
import { errorOutcome, POLICY_KINDS } from '../../src/verdict/error-policy.ts';
import { cnp, memoryState, ns } from '../fixtures/cluster.ts';
import { makeChange } from '../rules/rule-harness.ts';
import { textMessages } from './fake-rules.ts';

const state = memoryState([ns('team-a', { team: 'a' })]);

function throwing(id: string, kinds: Rule['triggers'][number]['kinds']): Rule {
  return {
    id,
    severity: 'B',
    summary: 'throws',
    docs: `docs/rules/${id}.md`,
    triggers: [{ kinds, operations: ['CREATE', 'UPDATE', 'DELETE'] }],
    evaluate() {
      throw new Error('boom');
    },
  };
}

/** Reports one warning: shows that findings of rules that did run are kept. */
const warns: Rule = {
  id: 'fake-warns',
  severity: 'I',
  summary: 'always warns',
  docs: 'docs/rules/fake-warns.md',
  triggers: [{ kinds: ['CiliumNetworkPolicy', 'Namespace'], operations: ['CREATE', 'UPDATE', 'DELETE'] }],
  messages: textMessages('fake-warns'),
  evaluate: () => [textMessages('fake-warns').finding('text', { text: 'heads up' })],
};

/** Calls checkBudget() `times` times, as the policy engine does in its loops. */
function busy(id: string, times: number): Rule {
  return {
    id,
    severity: 'B',
    summary: 'works for a while',
    docs: `docs/rules/${id}.md`,
    triggers: [{ kinds: ['CiliumNetworkPolicy', 'Namespace'], operations: ['CREATE', 'UPDATE', 'DELETE'] }],
    evaluate() {
      for (let i = 0; i < times; i++) checkBudget();
      return [];
    },
  };
}

/** A clock that moves `step` ms each time it is read. */
function steppingClock(step: number): Clock & { reads: number } {
  let now = 0;
  const c = {
    reads: 0,
    now() {
      c.reads++;
      return (now += step);
    },
  };
  return c;
}

function config(rules: readonly Rule[], over: Partial<Config> = {}, evaluation: Partial<Config['evaluation']> = {}): Config {
  const base = defaultConfig(rules);
  return { ...base, ...over, evaluation: { ...base.evaluation, ...evaluation } };
}

const policy = cnp('team-a', 'p', { endpointSelector: {}, egress: [{}] });
const namespaceUpdate = () => makeChange('CREATE', ns('team-b', { team: 'b' }));

t.test('default outcome follows the webhook entry: policy kinds fail closed in enforce, the rest fail open', async (t) => {
  const enforce = config([]);
  for (const kind of POLICY_KINDS) t.equal(errorOutcome(enforce, kind), 'fail', `${kind} in enforce`);
  for (const kind of ['Namespace', 'ConfigMap', 'Deployment'] as const) t.equal(errorOutcome(enforce, kind), 'ignore', `${kind} in enforce`);
  t.equal(errorOutcome(config([], { mode: 'audit' }), 'CiliumNetworkPolicy'), 'ignore', 'audit mode admits');
  t.equal(errorOutcome(config([], {}, { onError: 'ignore' }), 'NetworkPolicy'), 'ignore', 'onError: ignore wins');
  t.equal(errorOutcome(config([], { mode: 'audit' }, { onError: 'fail' }), 'Namespace'), 'fail', 'onError: fail wins');
});

t.test('a throwing rule on a policy object in enforce mode denies, naming the rule and the policy', async (t) => {
  const rules = [warns, throwing('fake-throws', ['CiliumNetworkPolicy', 'Namespace'])];
  const d = createDecide(rules, config(rules))(makeChange('CREATE', policy), state);
  t.equal(d.allowed, false);
  t.same(d.incomplete, { reason: 'rule-error', rules: ['fake-throws'], outcome: 'fail' });
  const f = d.findings.find((x) => x.failed);
  t.equal(f?.rule, 'fake-throws');
  t.equal(f?.action, 'deny');
  t.match(f?.message, /fake-throws failed: boom; refused by the error policy \(onError: fail\)/);
  t.ok(d.findings.some((x) => x.rule === 'fake-warns' && x.action === 'warn'), 'the other rule still reports');
});

t.test('near misses: the same failure is admitted with a warning where the entry is Ignore', async (t) => {
  const rules = [throwing('fake-throws', ['CiliumNetworkPolicy', 'Namespace'])];
  const plumbing = createDecide(rules, config(rules))(namespaceUpdate(), state);
  t.equal(plumbing.allowed, true, 'a Namespace (plumbing) is admitted');
  t.equal(plumbing.findings[0]?.action, 'warn');
  t.equal(plumbing.incomplete?.outcome, 'ignore');
  t.match(plumbing.findings[0]?.message, /admitted by the error policy \(onError: ignore\)/);

  const audit = createDecide(rules, config(rules, { mode: 'audit' }))(makeChange('CREATE', policy), state);
  t.equal(audit.allowed, true, 'audit mode admits a policy object');
  t.equal(audit.findings[0]?.action, 'warn');

  const ignore = createDecide(rules, config(rules, {}, { onError: 'ignore' }))(makeChange('CREATE', policy), state);
  t.equal(ignore.allowed, true, 'onError: ignore admits a policy object in enforce mode');

  const fail = createDecide(rules, config(rules, {}, { onError: 'fail' }))(namespaceUpdate(), state);
  t.equal(fail.allowed, false, 'onError: fail denies plumbing too');

  const failAudit = createDecide(rules, config(rules, { mode: 'audit' }, { onError: 'fail' }))(makeChange('CREATE', policy), state);
  t.equal(failAudit.allowed, true, 'audit mode never refuses, even with onError: fail');
  t.equal(failAudit.findings[0]?.action, 'audit');
  t.equal(failAudit.findings[0]?.wouldDeny, true, 'but says it would have been denied');
});

t.test('audit mode with pre-existing findings and a failing rule: everything reported, nothing refused', async (t) => {
  const preexisting: Rule = { ...warns, id: 'fake-pre', severity: 'B', messages: textMessages('fake-pre'), evaluate: () => [textMessages('fake-pre').finding('text', { text: 'old' }, { preexisting: true })] };
  const rules = [preexisting, throwing('fake-throws', ['CiliumNetworkPolicy'])];
  const d = createDecide(rules, config(rules, { mode: 'audit' }))(makeChange('CREATE', policy), state);
  t.equal(d.allowed, true);
  t.same(
    d.findings.map((f) => [f.rule, f.action, f.failed === true]),
    [
      ['fake-pre', 'warn', false],
      ['fake-throws', 'warn', true],
    ],
  );
});

t.test('the budget stops a long evaluation and the error policy answers', async (t) => {
  const rules = [warns, busy('fake-busy', 10_000), busy('fake-later', 1)];
  const clock = steppingClock(1); // 1 ms per read: a read every call with stride 1
  const d = createDecide(rules, config(rules, {}, { budgetMs: 100 }), { budget: { clock, stride: 1 } })(makeChange('CREATE', policy), state);
  t.equal(d.allowed, false, 'a policy object whose review ran out of time is refused in enforce mode');
  t.same(d.incomplete, { reason: 'budget', rules: ['fake-busy', 'fake-later'], outcome: 'fail' });
  const f = d.findings.find((x) => x.failed);
  t.match(f?.message, /the 100 ms budget ran out in fake-busy \(not run: fake-later\)/);
  t.same([f?.code, f?.params], ['meshguard/budget-exceeded', { budgetMs: 100, notRun: ['fake-later'] }], 'the verdict layer\'s own code, with its data');
  t.ok(clock.reads < 150, `stopped soon after the deadline (${clock.reads} clock reads)`);
  t.ok(d.findings.some((x) => x.rule === 'fake-warns'), 'a rule that finished before keeps its finding');

  const plumbing = createDecide(rules, config(rules, {}, { budgetMs: 100 }), { budget: { clock: steppingClock(1), stride: 1 } })(namespaceUpdate(), state);
  t.equal(plumbing.allowed, true, 'plumbing is admitted when the budget runs out');
  t.equal(plumbing.incomplete?.reason, 'budget');
});

t.test('a rule that catches the budget inside (a per-item guard) still leaves the review incomplete', async (t) => {
  // Like a per-class guard that turns odd input into "skip": it catches the BudgetExceeded too and
  // returns what it had. As the last rule, nothing after it would notice the spent budget.
  const swallowing: Rule = {
    ...busy('fake-swallows', 0),
    evaluate() {
      for (let i = 0; i < 10_000; i++) {
        try {
          checkBudget();
        } catch {
          // skipped item
        }
      }
      return [];
    },
  };
  const rules = [warns, swallowing];
  const d = createDecide(rules, config(rules, {}, { budgetMs: 100 }), { budget: { clock: steppingClock(1), stride: 1 } })(makeChange('CREATE', policy), state);
  t.same(d.incomplete, { reason: 'budget', rules: ['fake-swallows'], outcome: 'fail' }, 'the cut-short answer is not taken as complete');
  t.equal(d.allowed, false);
  const quick = [warns, { ...swallowing, evaluate: () => [] }];
  const ok = createDecide(quick, config(quick, {}, { budgetMs: 100 }), { budget: { clock: steppingClock(1), stride: 1 } })(makeChange('CREATE', policy), state);
  t.equal(ok.incomplete, undefined, 'near miss: the same rule within its budget is complete');
});

t.test('near miss: work that ends within the budget is answered normally', async (t) => {
  const rules = [busy('fake-busy', 99)];
  const d = createDecide(rules, config(rules, {}, { budgetMs: 100 }), { budget: { clock: steppingClock(1), stride: 1 } })(makeChange('CREATE', policy), state);
  t.equal(d.allowed, true);
  t.equal(d.incomplete, undefined);
  t.same(d.findings, []);
});

t.test('the stride spaces clock reads: a budget is checked every N calls', async (t) => {
  const rules = [busy('fake-busy', 640)];
  const clock = steppingClock(0);
  createDecide(rules, config(rules), { budget: { clock, stride: 64 } })(makeChange('CREATE', policy), state);
  t.equal(clock.reads, 1 + 1 + 640 / 64, 'one read to start, one before the rule (a deadline passed between two rules), then one per 64 checks');
});

t.test('a budget that runs out forgets every cached result (an entry may be half-built)', async (t) => {
  const cache = new ScopedWeakMap<object, string>();
  const key = {};
  cache.set(key, 'computed before');
  const rules = [busy('fake-busy', 1000)];
  createDecide(rules, config(rules, {}, { budgetMs: 10 }), { budget: { clock: steppingClock(1), stride: 1 } })(makeChange('CREATE', policy), state);
  t.equal(inRequestScope(() => cache.get(key)), undefined, 'the cache was emptied');
  cache.set(key, 'again');
  const ok = [busy('fake-busy', 1)];
  createDecide(ok, config(ok), { budget: { clock: steppingClock(0), stride: 1 } })(makeChange('CREATE', policy), state);
  t.equal(cache.get(key), 'again', 'a review within its budget keeps the caches');
});

t.test('the policy engine itself checks the budget (real rules, example cluster)', async (t) => {
  const cluster = loadSnapshot(['examples/cluster']);
  const rules = allRules().filter((r) => r.id === 'dns-egress-missing');
  const [bad] = readManifests(['examples/policies/dns-egress-missing.bad.yaml']);
  const change = makeChange('CREATE', bad!.object as Parameters<typeof makeChange>[1]);
  const normal = createDecide(rules, config(rules))(change, cluster);
  t.equal(normal.allowed, false, 'the example is denied for DNS when there is time');
  t.equal(normal.incomplete, undefined);
  // Every clock read is 1 s later: the first check inside the engine finds the budget spent.
  const starved = createDecide(rules, config(rules, {}, { budgetMs: 10 }), { budget: { clock: steppingClock(1000), stride: 1 } })(change, cluster);
  t.equal(starved.incomplete?.reason, 'budget', 'stopped by a check inside src/policy');
  t.same(starved.incomplete?.rules, ['dns-egress-missing']);
  t.equal(starved.allowed, false);
});
