import t from 'tap';
import { checkBudget } from '../../src/core/budget.ts';
import { toChange } from '../../src/admission/review.ts';
import type { AdmissionReview } from '../../src/admission/schema.ts';
import { defaultConfig } from '../../src/config/config.ts';
import { allRules } from '../../src/rules/registry.ts';
import { stateFromObjects } from '../../src/state/snapshot.ts';
import type { Decide } from '../../src/core/decision.ts';
import { createDecide } from '../../src/verdict/decide.ts';
import { warmUpChanges, warmUpInSlices } from '../../src/verdict/warmup.ts';
import { fqdnPolicyScans } from '../../src/policy/fqdn.ts';
import { generateCluster } from '../../bench/cluster-gen.ts';
import { requestMix } from '../../bench/requests.ts';
import { baseCluster, cnp, ns, pod } from '../fixtures/cluster.ts';
import { loopTurns } from '../helpers/loop-turns.ts';

const PODS = 300;

t.test('warm-up requests cover every (kind, operation) the rules trigger on, from objects of the state', async (t) => {
  const rules = allRules();
  const state = stateFromObjects(generateCluster(PODS));
  const changes = warmUpChanges(rules, state);
  for (const rule of rules) {
    for (const trig of rule.triggers) {
      for (const kind of trig.kinds) {
        for (const op of trig.operations) {
          if (op === 'CONNECT' || state.list(kind).length === 0) continue;
          t.ok(changes.some((c) => c.kind === kind && c.operation === op), `${rule.id}: ${kind} ${op}`);
        }
      }
    }
  }
  for (const c of changes) {
    t.equal(c.dryRun, true);
    if (c.operation === 'DELETE') t.equal(c.object, undefined);
    else t.ok(state.get(c.kind!, c.namespace || undefined, c.name), 'an object of the state');
  }
});

t.test('decisions after a warm-up equal those of a cold process', async (t) => {
  const rules = allRules();
  const mix = requestMix(PODS, 120);
  const cold = createDecide(rules, defaultConfig(allRules()));
  const coldState = stateFromObjects(generateCluster(PODS));
  const expected = mix.map((r) => cold(toChange(r.review as unknown as AdmissionReview), coldState));

  const warm = createDecide(rules, defaultConfig(allRules()));
  const warmState = stateFromObjects(generateCluster(PODS));
  t.ok((await warmUpInSlices(warm, rules, () => warmState, 50)) > 0);
  const got = mix.map((r) => warm(toChange(r.review as unknown as AdmissionReview), warmState));
  t.same(got, expected);
  t.ok(expected.some((d) => !d.allowed) && expected.some((d) => d.findings.length > 0), 'the mix exercises findings and denials');
});

t.test('a warm-up of 0 ms still stops, on an empty state too', async (t) => {
  const rules = allRules();
  t.equal(await warmUpInSlices(createDecide(rules, defaultConfig(allRules())), rules, () => stateFromObjects([]), 0), 0);
});

/**
 * A fake clock for the warm-up's budgets: decisions advance it by what they "cost", so budgets and slices
 * are counted exactly, whatever else the machine is doing.
 */
function fakeClock(): { now: () => number; advance: (ms: number) => void } {
  let ms = 0;
  return { now: () => ms, advance: (d) => (ms += d) };
}

t.test('the sliced warm-up hands the event loop back and keeps to its budget', async (t) => {
  const rules = allRules();
  const slowState = stateFromObjects(baseCluster([ns('shop'), pod('shop', 'web-1', { app: 'web' }), cnp('shop', 'p', { endpointSelector: {}, egress: [{}] })]) as never);
  const perRound = warmUpChanges(rules, slowState).length;
  t.ok(perRound > 0);
  const clock = fakeClock();
  const loop = loopTurns();
  // Every decision takes 2 ms, and one starts only in the first half of a 5 ms slice (a decision may take
  // its whole budget): slices of two decisions (at 0 and 2 ms), and the event loop turns between them.
  const real = createDecide(rules, defaultConfig(allRules()));
  const turnsAtDecision: number[] = [];
  const decide: typeof real = (c, st) => {
    clock.advance(2);
    turnsAtDecision.push(loop.turns);
    return real(c, st);
  };
  const n = await warmUpInSlices(decide, rules, () => slowState, 150, 1500, 5, undefined, clock.now);
  loop.stop();
  // Whole rounds until 150 ms of 2 ms decisions (75) are done: it stops at the first round boundary after that.
  t.equal(n, Math.ceil(75 / perRound) * perRound, `decisions made (${n}, rounds of ${perRound})`);
  t.equal(turnsAtDecision.length, n);
  let longest = 0;
  for (let i = 0, run = 0; i < n; i++) {
    run = i > 0 && turnsAtDecision[i] === turnsAtDecision[i - 1] ? run + 1 : 1;
    longest = Math.max(longest, run);
  }
  t.equal(longest, 2, 'at most two decisions, both started in the first half of a 5 ms slice, between turns of the event loop');
  t.ok(loop.turns >= Math.floor(n / 2), `the event loop turned during the warm-up (${loop.turns} turns)`);
  t.equal(await warmUpInSlices(decide, rules, () => stateFromObjects([]), 100, undefined, undefined, undefined, clock.now), 0, 'an empty state has nothing to warm');
});

t.test('the sliced warm-up stops at its cap even within a round', async (t) => {
  const rules = allRules();
  const s = stateFromObjects(generateCluster(PODS));
  const perRound = warmUpChanges(rules, s).length;
  const clock = fakeClock();
  const real = createDecide(rules, defaultConfig(allRules()));
  const decide: typeof real = (c, st) => {
    clock.advance(2);
    return real(c, st);
  };
  // 30 ms of 2 ms decisions: the cap cuts the first round after the 16th (32 ms > 30 ms).
  t.ok(perRound > 16, `a round is longer than the cap (${perRound} decisions)`);
  t.equal(await warmUpInSlices(decide, rules, () => s, 10, 30, 5, undefined, clock.now), 16);
});

t.test('the sliced warm-up ends at the first slice boundary after it is told to stop', async (t) => {
  const rules = allRules();
  const s = stateFromObjects(baseCluster([ns('shop'), pod('shop', 'web-1', { app: 'web' })]) as never);
  const real = createDecide(rules, defaultConfig(allRules()));
  const clock = fakeClock();
  let calls = 0;
  let stop = false;
  // Decisions of 2 ms in slices of 5 ms, a decision started only in a slice's first half: slices of two
  // decisions. The stop comes during the fifth, the first of the third slice, which ends after the sixth.
  const decide: typeof real = (c, st) => {
    calls++;
    clock.advance(2);
    if (calls === 5) stop = true;
    return real(c, st);
  };
  const n = await warmUpInSlices(decide, rules, () => s, 5_000, 50_000, 5, () => stop, clock.now);
  t.equal(n, calls);
  t.equal(n, 6, `stopped at the end of the slice it was told in (${n} decisions, a 5 s budget would allow 2500)`);
});

t.test('the sliced warm-up counts its own work against the budget, not time others spend in between', async (t) => {
  const rules = allRules();
  const s = stateFromObjects(baseCluster([ns('shop'), pod('shop', 'web-1', { app: 'web' })]) as never);
  const real = createDecide(rules, defaultConfig(allRules()));
  const clock = fakeClock();
  const decide: typeof real = (c, st) => {
    clock.advance(2);
    return real(c, st);
  };
  // Someone else holds the event loop for 15 ms whenever the warm-up yields.
  const blocker = loopTurns(() => clock.advance(15));
  const n = await warmUpInSlices(decide, rules, () => s, 60, 60, 5, undefined, clock.now);
  blocker.stop();
  const wall = clock.now();
  // 60 ms of its own work is 30 decisions of 2 ms (31 when the cap, not a round's end, stops it); a
  // wall-clock budget would stop after about 8 (two decisions, then 15 ms elsewhere, per 19 ms).
  t.ok(n === 30 || n === 31, `decisions worth its own budget (${n})`);
  t.ok(wall >= 2 * n + 15 * Math.floor(n / 2 - 1), `while the wall clock ran on (${wall} ms)`);
});

t.test('one warm-up decision longer than a slice is cut at the slice: timers run between, and it completes', async (t) => {
  const rules = allRules();
  const s = stateFromObjects(baseCluster([ns('shop'), pod('shop', 'web-1', { app: 'web' })]) as never);
  const perRound = warmUpChanges(rules, s).length;
  const clock = fakeClock();
  // Each decision would take 1 s of work (10,000 steps of 0.1 ms), checking the evaluation budget at
  // every step as the policy engine's loops do: the warm-up's slice budget must cut it short.
  const stepsPerDecision = 10_000;
  const costs: number[] = [];
  const decide: Decide = () => {
    const t0 = clock.now();
    try {
      for (let i = 0; i < stepsPerDecision; i++) {
        clock.advance(0.1);
        checkBudget();
      }
    } finally {
      costs.push(clock.now() - t0);
    }
    throw new Error('never reached: the budget ends every decision');
  };
  // A callback queued before the warm-up: it can only run if the warm-up hands the event loop back. (A
  // setTimeout(0) here raced: it waits for 1 ms of real time, and the cut decisions of this fake clock can
  // all end sooner than that.)
  let timerFiredAfter = -1;
  setImmediate(() => (timerFiredAfter = costs.length));
  const loop = loopTurns();
  const n = await warmUpInSlices(decide, rules, () => s, 100, 1_000, 5, undefined, clock.now);
  loop.stop();
  t.ok(n > 0 && n % perRound === 0, `whole rounds of cut decisions (${n}, rounds of ${perRound})`);
  t.equal(costs.length, n);
  // The budget is checked on a clock read every 64 steps (src/core/budget.ts): a cut decision runs at most
  // one stride past its 5 ms.
  const longest = Math.max(...costs);
  t.ok(longest <= 5 + 64 * 0.1 + 1e-9, `no decision ran past its slice (longest ${longest.toFixed(1)} ms of work; uncut: 1000 ms)`);
  t.ok(timerFiredAfter >= 0 && timerFiredAfter < n, `a callback queued before ran during the warm-up (after decision ${timerFiredAfter} of ${n})`);
  t.ok(loop.turns >= n - 1, `the event loop turned between decisions (${loop.turns} turns, ${n} decisions)`);
});

t.test('decisions cut by the warm-up leave no half-built caches: later decisions equal a cold process', async (t) => {
  const rules = allRules();
  const mix = requestMix(PODS, 120);
  const cold = createDecide(rules, defaultConfig(allRules()));
  const coldState = stateFromObjects(generateCluster(PODS));
  const expected = mix.map((r) => cold(toChange(r.review as unknown as AdmissionReview), coldState));

  // A clock that moves 1 ms per read: every warm-up decision overruns its 1 ms slice at its first
  // budget check, wherever in the policy engine that is.
  let ms = 0;
  const now = (): number => (ms += 1);
  const warm = createDecide(rules, defaultConfig(allRules()));
  const warmState = stateFromObjects(generateCluster(PODS));
  let incomplete = 0;
  const counting: Decide = (c, st) => {
    const d = warm(c, st);
    if (d.incomplete?.reason === 'budget') incomplete++;
    return d;
  };
  const n = await warmUpInSlices(counting, rules, () => warmState, 50, 500, 1, undefined, now);
  t.ok(n > 0 && incomplete > 0, `the warm-up cut decisions (${incomplete} of ${n})`);
  const got = mix.map((r) => warm(toChange(r.review as unknown as AdmissionReview), warmState));
  t.same(got, expected);
});

t.test('a warm-up decision cut at its slice is made once: later rounds leave it out and keep their memos', async (t) => {
  const rules = allRules();
  const s = stateFromObjects(generateCluster(PODS));
  const changes = warmUpChanges(rules, s);
  const clock = fakeClock();
  // Decisions about cluster-wide policies run 100 steps of 0.1 ms checking the budget (cut at the 5 ms
  // slice); every other decision takes 1 ms and completes.
  const calls = new Map<string, number>();
  const order: string[] = [];
  const decide: Decide = (c) => {
    const key = `${c.operation} ${c.gvk.kind} ${c.namespace}/${c.name}`;
    calls.set(key, (calls.get(key) ?? 0) + 1);
    order.push(c.gvk.kind);
    if (c.gvk.kind === 'CiliumClusterwideNetworkPolicy') {
      for (let i = 0; i < 100; i++) {
        clock.advance(0.1);
        checkBudget();
      }
    }
    clock.advance(1);
    return { allowed: true, findings: [], skipped: [] };
  };
  const wide = changes.filter((c) => c.gvk.kind === 'CiliumClusterwideNetworkPolicy').length;
  t.ok(wide > 0 && wide < changes.length, `the state has cluster-wide policies (${wide} of ${changes.length} warm-up changes)`);
  // A budget of several rounds of the 1 ms decisions.
  const n = await warmUpInSlices(decide, rules, () => s, 4 * changes.length, 40 * changes.length, 5, undefined, clock.now);
  t.same(order.slice(0, wide), Array(wide).fill('CiliumClusterwideNetworkPolicy'), 'the cluster-wide policies come first in the first round');
  for (const c of changes) {
    const key = `${c.operation} ${c.gvk.kind} ${c.namespace}/${c.name}`;
    if (c.gvk.kind === 'CiliumClusterwideNetworkPolicy') t.equal(calls.get(key), 1, `cut once, not made again: ${key}`);
    else t.ok((calls.get(key) ?? 0) >= 2, `made in every round: ${key} (${calls.get(key)})`);
  }
  t.equal(n, order.length);
});

t.test('the warm-up groups the pod classes of every namespace before its first decision, in slices', async (t) => {
  const rules = allRules();
  const base = stateFromObjects(generateCluster(PODS));
  const clock = fakeClock();
  // A view of the state that counts the namespaces whose Pod list was read, each read 2 ms of work.
  const listed = new Set<string>();
  const s = new Proxy(base, {
    get(target, prop) {
      if (prop === 'list') {
        return (kind: string, namespace?: string) => {
          if (kind === 'Pod' && namespace !== undefined) {
            listed.add(namespace);
            clock.advance(2);
          }
          return target.list(kind as never, namespace);
        };
      }
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  const namespaces = base.namespacesWith('Pod');
  t.ok(namespaces.length >= 5, `namespaces with pods: ${namespaces.length}`);
  let listedAtFirstDecision = -1;
  const decide: Decide = () => {
    if (listedAtFirstDecision < 0) listedAtFirstDecision = listed.size;
    clock.advance(1);
    return { allowed: true, findings: [], skipped: [] };
  };
  const loop = loopTurns();
  const turnsBefore = (): number => loop.turns;
  let turnsAtFirstDecision = -1;
  const first: Decide = (c, st) => {
    if (turnsAtFirstDecision < 0) turnsAtFirstDecision = turnsBefore();
    return decide(c, st);
  };
  await warmUpInSlices(first, rules, () => s, 100, 1000, 5, undefined, clock.now);
  loop.stop();
  t.equal(listedAtFirstDecision, namespaces.length, 'every namespace grouped before the first decision');
  // 2 ms per namespace in 5 ms slices: the loop turns at least every third namespace.
  t.ok(turnsAtFirstDecision >= Math.floor(namespaces.length / 3), `the event loop turned while grouping (${turnsAtFirstDecision} turns for ${namespaces.length} namespaces)`);
});

/**
 * A view of `base` whose pods cost `podMs` of fake time at the first read of their metadata (each pod
 * one object for the whole view), and that records when each namespace's Service list was first read.
 */
function costlyPods(base: ReturnType<typeof stateFromObjects>, clock: { advance: (ms: number) => void }, podMs: number, onServices: (ns: string) => void = () => undefined) {
  const views = new WeakMap<object, object>();
  const viewOf = (p: object): object => {
    let v = views.get(p);
    if (!v) {
      let paid = false;
      v = new Proxy(p, {
        get(target, prop) {
          if (prop === 'metadata' && !paid) {
            paid = true;
            clock.advance(podMs);
          }
          return Reflect.get(target, prop, target) as unknown;
        },
      });
      views.set(p, v);
    }
    return v;
  };
  const lists = new WeakMap<object, readonly object[]>();
  return new Proxy(base, {
    get(target, prop) {
      if (prop === 'list') {
        return (kind: string, namespace?: string) => {
          const list = target.list(kind as never, namespace) as readonly object[];
          if (kind === 'Service' && namespace !== undefined) onServices(namespace);
          if (kind !== 'Pod') return list;
          // The same array for the same list: memos keyed by the list array keep working.
          let l = lists.get(list);
          if (!l) lists.set(list, (l = list.map(viewOf)));
          return l;
        };
      }
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

t.test('the warm-up groups a big namespace in slices of pods, not in one step', async (t) => {
  const rules = allRules();
  const pods = Array.from({ length: 40 }, (_, i) => pod('big', `web-${i}`, { app: `web-${i % 4}` }));
  const base = stateFromObjects(baseCluster([ns('big'), ...pods, cnp('big', 'p', { endpointSelector: {}, egress: [{}] })]) as never);
  const clock = fakeClock();
  // Each pod costs 1 ms the first time it is read: the 40 pods of one namespace are 40 ms of grouping.
  const s = costlyPods(base, clock, 1);
  const loop = loopTurns();
  let turnsAtFirstDecision = -1;
  const decide: Decide = () => {
    if (turnsAtFirstDecision < 0) turnsAtFirstDecision = loop.turns;
    clock.advance(1);
    return { allowed: true, findings: [], skipped: [] };
  };
  await warmUpInSlices(decide, rules, () => s as never, 50, 500, 5, undefined, clock.now);
  loop.stop();
  // In 5 ms slices, the 40 ms of one namespace's pods hand the loop back at least 7 times.
  t.ok(turnsAtFirstDecision >= 7, `the event loop turned within the namespace's grouping (${turnsAtFirstDecision} turns)`);
});

t.test('the warm-up builds the address indexes a namespace at a time, in slices, before the namespaced policies are decided', async (t) => {
  const rules = allRules();
  const base = stateFromObjects(generateCluster(PODS));
  const clock = fakeClock();
  const withServices = base.namespacesWith('Service');
  t.ok(withServices.length >= 5, `namespaces with Services: ${withServices.length}`);
  const servicesRead = new Set<string>();
  const turnsAtRead: number[] = [];
  const loop = loopTurns();
  const s = costlyPods(base, clock, 0, (n) => {
    if (!servicesRead.has(n)) turnsAtRead.push(loop.turns);
    servicesRead.add(n);
    // Each namespace's index is 2 ms of work.
    clock.advance(2);
  });
  let readAtFirstNamespaced: string[] | undefined;
  const decide: Decide = (c) => {
    if (c.kind !== 'CiliumClusterwideNetworkPolicy' && readAtFirstNamespaced === undefined) readAtFirstNamespaced = [...servicesRead];
    clock.advance(1);
    return { allowed: true, findings: [], skipped: [] };
  };
  await warmUpInSlices(decide, rules, () => s as never, 100, 1000, 5, undefined, clock.now);
  loop.stop();
  t.same(withServices.filter((n) => !readAtFirstNamespaced?.includes(n)), [], 'every namespace with Services indexed before the first namespaced decision');
  t.ok(turnsAtRead.at(-1)! - turnsAtRead[0]! >= Math.floor(withServices.length / 3) - 1, `the event loop turned while indexing (${turnsAtRead.at(-1)! - turnsAtRead[0]!} turns for ${withServices.length} namespaces)`);
});

t.test('the warm-up stops at its cap while building the tables', async (t) => {
  const rules = allRules();
  const base = stateFromObjects(generateCluster(PODS));
  const clock = fakeClock();
  const withServices = base.namespacesWith('Service');
  t.ok(withServices.length >= 5, `namespaces with Services: ${withServices.length}`);
  const read = new Set<string>();
  // Each namespace's address index costs 20 ms: the cap (60 ms) is spent after a few of them.
  const s = costlyPods(base, clock, 0, (n) => {
    read.add(n);
    clock.advance(20);
  });
  const decide: Decide = () => ({ allowed: true, findings: [], skipped: [] });
  await warmUpInSlices(decide, rules, () => s as never, 50, 60, 5, undefined, clock.now);
  t.ok(read.size < withServices.length, `stopped after ${read.size} of ${withServices.length} namespaces`);
  t.ok(clock.now() <= 60 + 20, `ended within one step past the cap (${clock.now()} ms)`);
});

t.test('the "any toFQDNs" answer and every policy model are built in steps before the first decision', async (t) => {
  // The first cluster-wide decision asked it, and built every policy's models in one piece inside itself
  // (the longest block after listening at 50k pods): the warm-up builds it first, a policy per step.
  const rules = allRules();
  const s = stateFromObjects(generateCluster(PODS));
  const clock = fakeClock();
  const before = fqdnPolicyScans();
  let atFirstDecision: number | undefined;
  const decide: Decide = () => {
    atFirstDecision ??= fqdnPolicyScans();
    clock.advance(1);
    return { allowed: true, findings: [], skipped: [] };
  };
  t.ok((await warmUpInSlices(decide, rules, () => s, 20, 200, 5, undefined, clock.now)) > 0);
  t.equal(atFirstDecision, before + 1, 'scanned once, before any decision');
});
