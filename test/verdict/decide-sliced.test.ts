// decide.sliced: the webhook's path, which hands the event loop back between a review's costly rules.
// Driven by a fake clock (rules move it) and an explicit hand-back (the test sees each one): no timing.

import t from 'tap';

import { checkBudget } from '../../src/core/budget.ts';
import type { Change } from '../../src/core/change.ts';
import { defaultConfig, type Config } from '../../src/config/config.ts';
import type { Decision } from '../../src/core/decision.ts';
import { VERDICT_CODES } from '../../src/core/finding.ts';
import type { Rule } from '../../src/core/rule.ts';
import { isEphemeral } from '../../src/state/request-scope.ts';
import { cachingDecide } from '../../src/verdict/cache.ts';
import { createDecide, type DecideOptions } from '../../src/verdict/decide.ts';
import { cnp, memoryState, ns } from '../fixtures/cluster.ts';
import { makeChange } from '../rules/rule-harness.ts';
import { postReview, review, startServer } from '../server/harness.ts';
import { FAKE_RULES, textMessages } from './fake-rules.ts';

/** The fake clock every rule below moves (the budget's and the slices' clock). */
const clock = { ms: 0, now: () => clock.ms };

/** What the rules saw, in order: "<rule>" per call, with the review's tag when one is set. */
let calls: string[] = [];
let tag = '';

/** A rule that takes `ms` of the fake clock; `then` runs inside it (checks, findings). */
function timed(id: string, ms: number, then: (change: Change) => string | undefined = () => undefined): Rule {
  const messages = textMessages(id);
  return {
    id,
    severity: 'B',
    summary: `takes ${ms} ms`,
    docs: `docs/rules/${id}.md`,
    triggers: [{ kinds: ['CiliumNetworkPolicy'], operations: ['CREATE', 'UPDATE', 'DELETE'] }],
    messages,
    evaluate(change) {
      calls.push(tag + id);
      clock.ms += ms;
      const text = then(change);
      return text === undefined ? [] : [messages.finding('text', { text })];
    },
  };
}

function configFor(rules: readonly Rule[], over: Partial<Config> = {}): Config {
  return { ...defaultConfig(rules), ...over };
}

/** A decide over `rules` whose hand-backs are recorded (what had run at each) and run `between`. */
function slicedDecide(rules: readonly Rule[], opts: DecideOptions & { config?: Config; between?: () => void } = {}) {
  const handBacks: string[][] = [];
  const decide = createDecide(rules, opts.config ?? configFor(rules), {
    budget: { clock, stride: 1 },
    ...opts,
    handBack: async () => {
      handBacks.push([...calls]);
      opts.between?.();
    },
  });
  return { decide, handBacks };
}

const state = memoryState([ns('team-a')]);
const policy = (name = 'p') => cnp('team-a', name, { endpointSelector: {}, egress: [{}] });

t.beforeEach(() => {
  calls = [];
  tag = '';
  clock.ms = 0;
});

t.test('a slice ends after the rule that takes it to sliceMs; the next rule runs after the hand-back', async (t) => {
  const rules = [timed('fake-a', 6), timed('fake-b', 2), timed('fake-c', 3), timed('fake-d', 0)];
  const { decide, handBacks } = slicedDecide(rules, { sliceMs: 5 });
  const d = await decide.sliced!(makeChange('CREATE', policy()), state);
  t.equal(d.allowed, true);
  t.same(calls, ['fake-a', 'fake-b', 'fake-c', 'fake-d'], 'every rule ran, in order');
  // fake-a alone reaches 5 ms; fake-b + fake-c reach exactly 5 (the boundary ends the slice too).
  t.same(handBacks, [['fake-a'], ['fake-a', 'fake-b', 'fake-c']]);
});

t.test('a review that stays under sliceMs never hands back, and the synchronous decide never does', async (t) => {
  const rules = [timed('fake-a', 1), timed('fake-b', 1), timed('fake-c', 1)];
  const { decide, handBacks } = slicedDecide(rules, { sliceMs: 5 });
  await decide.sliced!(makeChange('CREATE', policy()), state);
  t.same(handBacks, [], 'three rules of 1 ms: one slice');
  calls = [];
  const zero = slicedDecide(rules, { sliceMs: 0 });
  zero.decide(makeChange('CREATE', policy()), state);
  t.same(calls, ['fake-a', 'fake-b', 'fake-c']);
  t.same(zero.handBacks, [], 'decide() runs every rule at once, whatever sliceMs');
  await zero.decide.sliced!(makeChange('CREATE', policy()), state);
  t.equal(zero.handBacks.length, 2, 'sliceMs 0: a hand-back between every two rules, none after the last');
});

t.test('the sliced decision is the synchronous one: findings, failures, skips and notices', async (t) => {
  const rules = [...FAKE_RULES, timed('fake-a', 3, () => 'a says so'), timed('fake-b', 3)];
  const labelled = (labels: Record<string, string>, annotations?: Record<string, string>) => {
    const p = policy('q') as ReturnType<typeof policy> & { metadata: Record<string, unknown> };
    return { ...p, metadata: { ...p.metadata, namespace: 'nowhere', labels, ...(annotations ? { annotations } : {}) } } as unknown as ReturnType<typeof policy>;
  };
  const changes = [
    makeChange('CREATE', policy()),
    makeChange('CREATE', labelled({ 'fake/finding': 'look', 'fake/throw': 'yes' })),
    makeChange('CREATE', labelled({}, { 'meshguard.io/skip': 'fake-a, no-such-rule', 'meshguard.io/skip-reason': 'test' })),
    makeChange('DELETE', undefined, policy()),
  ];
  const { decide, handBacks } = slicedDecide(rules, { sliceMs: 0 });
  for (const c of changes) {
    const whole = decide(c, state);
    const sliced = await decide.sliced!(c, state);
    t.same(sliced, whole, `${c.operation} ${c.namespace}/${c.name}`);
  }
  t.ok(handBacks.length >= 8, `the sliced decisions were sliced (${handBacks.length} hand-backs)`);
  const failed = await decide.sliced!(changes[1]!, state);
  t.ok(failed.findings.some((f) => f.code === VERDICT_CODES.ruleFailed && f.rule === 'fake-throws'), 'a rule that throws is a failure finding, the others still ran');
  t.ok(failed.findings.some((f) => f.rule === 'fake-a'), 'a rule after the failing one still ran');
});

t.test('one budget for the whole review: the deadline counts the time between slices, and is current only inside them', async (t) => {
  let seenInside: boolean[] = [];
  const check = (change: Change): undefined => {
    seenInside.push(isEphemeral(change));
    checkBudget();
    return undefined;
  };
  const rules = [timed('fake-a', 4, check), timed('fake-b', 0, check), timed('fake-c', 0, check)];
  const outside: string[] = [];
  let change = makeChange('CREATE', policy());
  const { decide } = slicedDecide(rules, {
    sliceMs: 0,
    config: configFor(rules, { evaluation: { budgetMs: 10 } } as Partial<Config>),
    between: () => {
      // Between two slices the clock moves on (other work runs); nothing of the review is current.
      clock.ms += 4;
      try {
        checkBudget();
        outside.push('no budget');
      } catch {
        outside.push('cut by the review budget');
      }
      outside.push(isEphemeral(change) ? 'in the review scope' : 'no scope');
    },
  });
  const d = await decide.sliced!(change, state);
  t.same(outside, ['no budget', 'no scope', 'no budget', 'no scope'], 'between slices: neither the budget nor the request scope is current');
  t.same(seenInside, [true, true], 'inside every slice the request scope is current (the change is its own)');
  // 4 (fake-a) + 4 between slices = 8: fake-b runs; + 4 = 12 > 10 before fake-c: it is not started.
  t.same(calls, ['fake-a', 'fake-b'], 'a deadline passed between two slices stops the review before its next rule');
  t.equal(d.incomplete?.reason, 'budget');
  const cut = d.findings.find((f) => f.code === VERDICT_CODES.budgetExceeded);
  t.equal(cut?.rule, 'fake-c', 'the rule it stopped at is named');

  // The same review with less time between slices stays within the budget.
  clock.ms = 0;
  seenInside = [];
  change = makeChange('CREATE', policy());
  const calm = slicedDecide(rules, { sliceMs: 0, config: configFor(rules, { evaluation: { budgetMs: 10 } } as Partial<Config>), between: () => void (clock.ms += 1) });
  const ok = await calm.decide.sliced!(change, state);
  t.equal(ok.incomplete, undefined, '4 + 1 + 1 = 6 ms: complete');

  // The deadline counts from arrival: a review that waits for its turn behind a slow one runs out first.
  clock.ms = 0;
  calls = [];
  const slow = [timed('fake-slow', 12), timed('fake-b', 0)];
  const queue = slicedDecide(slow, { sliceMs: 0, config: configFor(slow, { evaluation: { budgetMs: 10 } } as Partial<Config>) });
  const [first, second] = await Promise.all([queue.decide.sliced!(makeChange('CREATE', policy('one')), state), queue.decide.sliced!(makeChange('CREATE', policy('two')), state)]);
  t.equal(first.incomplete?.reason, 'budget', 'the slow review itself: 12 ms before fake-b');
  t.equal(second.incomplete?.reason, 'budget', 'the one that waited: its 10 ms went by in the queue');
  t.same(calls, ['fake-slow'], 'neither ran a rule past its deadline');
});

t.test('reviews run one at a time in arrival order; a queued one starts after a hand-back', async (t) => {
  const rules = [timed('fake-a', 1), timed('fake-b', 1), timed('fake-c', 1)];
  const { decide, handBacks } = slicedDecide(rules, { sliceMs: 0 });
  const order: string[] = [];
  const run = async (name: string): Promise<Decision> => {
    const d = await decide.sliced!(makeChange('CREATE', policy(name)), state);
    order.push(name);
    return d;
  };
  // Each review tags its rule calls through the change's name.
  const tagged = rules.map((r): Rule => ({ ...r, evaluate: (c, b, a, x) => ((tag = `${c.name}:`), r.evaluate(c, b, a, x)) }));
  const q = slicedDecide(tagged, { sliceMs: 0 });
  await Promise.all(['one', 'two', 'three'].map((n) => q.decide.sliced!(makeChange('CREATE', policy(n)), state)));
  t.same(calls, ['one:fake-a', 'one:fake-b', 'one:fake-c', 'two:fake-a', 'two:fake-b', 'two:fake-c', 'three:fake-a', 'three:fake-b', 'three:fake-c'], 'no interleaving');
  t.equal(q.handBacks.length, 3 * 2 + 2, 'two per review between its rules, and one before each queued review');
  calls = [];
  await Promise.all([run('x'), run('y')]);
  t.same(order, ['x', 'y']);
  t.equal(handBacks.length, 2 + 1 + 2);
  // A review with nothing to evaluate (here: an exempt namespace) is answered at once, not behind one in flight.
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const held = createDecide(rules, configFor(rules, { exemptions: { namespaces: ['sandbox'] } } as Partial<Config>), { sliceMs: 0, handBack: () => gate });
  const answered: string[] = [];
  const inFlight = held.sliced!(makeChange('CREATE', policy('busy')), state).then(() => answered.push('busy'));
  const sandboxed = cnp('sandbox', 'p', { endpointSelector: {}, egress: [{}] });
  const d = await held.sliced!(makeChange('CREATE', sandboxed), state);
  answered.push('exempt');
  t.match(d.exemptReason, /exempt/);
  release();
  await inFlight;
  t.same(answered, ['exempt', 'busy'], 'the exempt request did not wait for the review in flight');
});

t.test('a hand-back that throws rejects its review, and the queue goes on', async (t) => {
  const rules = [timed('fake-a', 1), timed('fake-b', 1)];
  let boom = true;
  const { decide } = slicedDecide(rules, {
    sliceMs: 0,
    between: () => {
      if (boom) {
        boom = false;
        throw new Error('hand-back failed');
      }
    },
  });
  const first = decide.sliced!(makeChange('CREATE', policy('one')), state);
  const second = decide.sliced!(makeChange('CREATE', policy('two')), state);
  await t.rejects(first, /hand-back failed/);
  const d = await second;
  t.equal(d.allowed, true, 'the next review was evaluated');
  t.same(calls, ['fake-a', 'fake-a', 'fake-b']);
});

t.test('the verdict cache answers a sliced repeat, and keeps no decision whose state moved while it was made', async (t) => {
  const rules = [timed('fake-a', 1, () => 'found'), timed('fake-b', 1)];
  const live = memoryState([ns('team-a')]);
  let event: (() => void) | undefined;
  const { decide } = slicedDecide(rules, { sliceMs: 0, between: () => event?.() });
  const cached = cachingDecide(decide);
  t.ok(cached.sliced !== undefined, 'the cache keeps the sliced path');
  const first = await cached.sliced!(makeChange('CREATE', policy()), live);
  t.equal(first.cached, undefined);
  const again = await cached.sliced!(makeChange('CREATE', policy()), live);
  t.equal(again.cached, true, 'a repeat on the same state is a hit');
  t.same(cached.stats(live), { hits: 1, misses: 1, entries: 1, weight: cached.stats(live).weight });

  // A watch event between two rules of the review, and a look at the cache after it (another review, a
  // metrics scrape: the cache moves on to the new revision): the review's decision is not kept.
  let n = 0;
  event = () => {
    live.upsert('Namespace', ns(`later-${n++}`) as never);
    cached.stats(live);
  };
  calls = [];
  const moved = await cached.sliced!(makeChange('CREATE', policy('other')), live);
  t.equal(moved.cached, undefined);
  event = undefined;
  t.equal(cached.stats(live).entries, 0, 'nothing kept for a state that moved during the review');
  const after = await cached.sliced!(makeChange('CREATE', policy('other')), live);
  t.equal(after.cached, undefined, 'evaluated again');
  t.same(calls, ['fake-a', 'fake-b', 'fake-a', 'fake-b']);
  t.equal((await cached.sliced!(makeChange('CREATE', policy('other')), live)).cached, true, 'and kept now that the state stayed put');
});

t.test('the webhook route evaluates in slices: the event loop turns between two rules of one review', async (t) => {
  // fake-a asks for a callback on the next turn of the event loop; fake-b reports whether it ran.
  let turned = false;
  const rules = [
    timed('fake-a', 0, () => {
      turned = false;
      setImmediate(() => (turned = true));
      return undefined;
    }),
    timed('fake-b', 0, () => (turned ? 'the loop turned' : 'held')),
  ];
  const decide = createDecide(rules, configFor(rules, { mode: 'audit' } as Partial<Config>), { sliceMs: 0 });
  t.equal(decide(makeChange('CREATE', policy()), state).findings[0]?.message, 'held', 'decide() holds the loop for the whole review');
  const s = await startServer(t, { decide });
  const res = await postReview(s.url, review(), { ca: s.ca });
  t.equal(res.status, 200);
  const warnings = (res.json.response as { warnings?: string[] }).warnings ?? [];
  t.ok(warnings.some((w) => w.includes('the loop turned')), `served in slices: ${JSON.stringify(warnings)}`);
});

t.test('while a sliced review is in flight the server counts as reviewing (idle-time work waits for it)', async (t) => {
  let reached!: () => void;
  const atHandBack = new Promise<void>((r) => (reached = r));
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const rules = [timed('fake-a', 0), timed('fake-b', 0)];
  const decide = createDecide(rules, configFor(rules), {
    sliceMs: 0,
    handBack: () => {
      reached();
      return gate;
    },
  });
  const s = await startServer(t, { decide });
  const pending = postReview(s.url, review(), { ca: s.ca });
  await atHandBack;
  const mark = performance.now();
  await new Promise((r) => setImmediate(r));
  t.ok(s.server.lastReviewAt! >= mark, 'between two slices: lastReviewAt is now, not the arrival');
  release();
  const res = await pending;
  t.equal(res.status, 200);
  const done = s.server.lastReviewAt;
  await new Promise((r) => setImmediate(r));
  t.equal(s.server.lastReviewAt, done, 'once answered it stays at the end of the review');
});

/** A rule with a prepare of `steps` steps of `ms` each (recorded), that throws at step `throwAt`. */
function preparing(id: string, steps: number, ms: number, throwAt = -1, then?: () => void): Rule {
  const base = timed(id, 1, () => (prepared.length > 0 ? `prepared ${prepared.length}` : 'unprepared'));
  let prepared: number[] = [];
  return {
    ...base,
    evaluate(...a) {
      const found = base.evaluate(...a);
      prepared = [];
      return found;
    },
    *prepare() {
      prepared = [];
      for (let i = 0; i < steps; i++) {
        if (i === throwAt) throw new Error('prepare failed');
        calls.push(`${id}:prepare ${i}`);
        clock.ms += ms;
        then?.();
        prepared.push(i);
        yield;
      }
    },
  };
}

t.test('a rule\'s prepare runs in the sliced review only, before evaluate, its steps sliced like rules', async (t) => {
  const rules = [timed('fake-a', 1), preparing('fake-p', 3, 3)];
  const { decide, handBacks } = slicedDecide(rules, { sliceMs: 5 });
  const whole = decide(makeChange('CREATE', policy()), state);
  t.same(calls, ['fake-a', 'fake-p'], 'decide() skips prepare');
  t.equal(whole.findings[0]?.message, 'unprepared');
  calls = [];
  const d = await decide.sliced!(makeChange('CREATE', policy()), state);
  t.same(calls, ['fake-a', 'fake-p:prepare 0', 'fake-p:prepare 1', 'fake-p:prepare 2', 'fake-p']);
  // 1 + 3 + 3 = 7 >= 5 after the second prepare step; the next slice: the third (3 ms), then evaluate.
  t.same(handBacks, [['fake-a', 'fake-p:prepare 0', 'fake-p:prepare 1']]);
  t.equal(d.findings[0]?.message, 'prepared 3', 'evaluate ran after the whole prepare');
});

t.test('a prepare that throws leaves the rule to evaluate; a budget spent in prepare ends the rule', async (t) => {
  const rules = [preparing('fake-p', 3, 1, 1), timed('fake-b', 1)];
  const { decide } = slicedDecide(rules, { sliceMs: 0 });
  const d = await decide.sliced!(makeChange('CREATE', policy()), state);
  t.same(calls, ['fake-p:prepare 0', 'fake-p', 'fake-b'], 'the failed prepare stopped; evaluate and the next rule ran');
  t.equal(d.findings.find((f) => f.rule === 'fake-p')?.message, 'prepared 1');
  t.equal(d.incomplete, undefined, 'no failure: prepare is no part of the answer');

  calls = [];
  clock.ms = 0;
  const spent = [preparing('fake-p', 3, 6, -1, checkBudget), timed('fake-b', 1)];
  const cut = slicedDecide(spent, { sliceMs: 0, config: configFor(spent, { evaluation: { budgetMs: 10 } } as Partial<Config>) });
  const c = await cut.decide.sliced!(makeChange('CREATE', policy()), state);
  t.equal(c.incomplete?.reason, 'budget');
  t.equal(c.findings.find((f) => f.code === VERDICT_CODES.budgetExceeded)?.rule, 'fake-p');
  t.same(calls, ['fake-p:prepare 0', 'fake-p:prepare 1'], 'the second step ran past the deadline: neither evaluate nor fake-b ran');
});

t.test('a repeat that arrives while the first is being decided waits for it; not once the state moved', async (t) => {
  const rules = [timed('fake-a', 1, () => 'found'), timed('fake-b', 1)];
  const live = memoryState([ns('team-a')]);
  let event: (() => void) | undefined;
  const { decide } = slicedDecide(rules, { sliceMs: 0, between: () => event?.() });
  const cached = cachingDecide(decide);
  const [one, two] = await Promise.all([cached.sliced!(makeChange('CREATE', policy()), live), cached.sliced!(makeChange('CREATE', policy()), live)]);
  t.same(calls, ['fake-a', 'fake-b'], 'one evaluation for both');
  t.equal(two, one, 'the repeat got the first one\'s decision');
  t.equal(cached.stats(live).misses, 2, 'both were misses of the cache (neither was kept yet)');

  // Near miss: the state moves while the first is decided (between its two rules), before the repeat
  // arrives: the repeat is decided on the state as it is now.
  calls = [];
  let repeat: Promise<Decision> | undefined;
  let n = 0;
  event = () => {
    if (repeat !== undefined) return;
    live.upsert('Namespace', ns(`later-${n++}`) as never);
    repeat = cached.sliced!(makeChange('CREATE', policy('other')), live);
  };
  const first = await cached.sliced!(makeChange('CREATE', policy('other')), live);
  event = undefined;
  const second = await repeat!;
  t.same(calls, ['fake-a', 'fake-b', 'fake-a', 'fake-b'], 'two evaluations');
  t.not(second, first);
});

t.test('a repeat does not take over a decision the budget cut: it is evaluated itself', async (t) => {
  // fake-slow takes the clock past the 10 ms budget of the first review; the repeat arrived meanwhile.
  let slow = true;
  const rules = [timed('fake-a', 0, () => (checkBudget(), undefined)), timed('fake-slow', 0, () => ((clock.ms += slow ? 12 : 0), checkBudget(), undefined))];
  const { decide } = slicedDecide(rules, { sliceMs: 0, config: configFor(rules, { evaluation: { budgetMs: 10 } } as Partial<Config>) });
  const cached = cachingDecide(decide);
  const live = memoryState([ns('team-a')]);
  const first = cached.sliced!(makeChange('CREATE', policy()), live);
  const repeat = cached.sliced!(makeChange('CREATE', policy()), live);
  const d1 = await first;
  slow = false;
  const d2 = await repeat;
  t.equal(d1.incomplete?.reason, 'budget', 'precondition: the first ran out');
  t.equal(d2.incomplete, undefined, 'the repeat was evaluated on its own budget');
  t.same(calls, ['fake-a', 'fake-slow', 'fake-a', 'fake-slow']);
});
