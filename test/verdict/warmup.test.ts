import t from 'tap';
import { toChange } from '../../src/admission/review.ts';
import type { AdmissionReview } from '../../src/admission/schema.ts';
import { defaultConfig } from '../../src/config/config.ts';
import { allRules } from '../../src/rules/registry.ts';
import { stateFromObjects } from '../../src/state/snapshot.ts';
import { createDecide } from '../../src/verdict/decide.ts';
import { warmUpChanges, warmUpInSlices } from '../../src/verdict/warmup.ts';
import { generateCluster } from '../../bench/cluster-gen.ts';
import { requestMix } from '../../bench/requests.ts';
import { baseCluster, cnp, ns, pod } from '../fixtures/cluster.ts';

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
  const cold = createDecide(rules, defaultConfig());
  const coldState = stateFromObjects(generateCluster(PODS));
  const expected = mix.map((r) => cold(toChange(r.review as unknown as AdmissionReview), coldState));

  const warm = createDecide(rules, defaultConfig());
  const warmState = stateFromObjects(generateCluster(PODS));
  t.ok((await warmUpInSlices(warm, rules, () => warmState, 50)) > 0);
  const got = mix.map((r) => warm(toChange(r.review as unknown as AdmissionReview), warmState));
  t.same(got, expected);
  t.ok(expected.some((d) => !d.allowed) && expected.some((d) => d.findings.length > 0), 'the mix exercises findings and denials');
});

t.test('a warm-up of 0 ms still stops, on an empty state too', async (t) => {
  const rules = allRules();
  t.equal(await warmUpInSlices(createDecide(rules, defaultConfig()), rules, () => stateFromObjects([]), 0), 0);
});

t.test('the sliced warm-up hands the event loop back and keeps to its budget', async (t) => {
  const rules = allRules();
  const slowState = stateFromObjects(baseCluster([ns('shop'), pod('shop', 'web-1', { app: 'web' }), cnp('shop', 'p', { endpointSelector: {}, egress: [{}] })]) as never);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  // Every decision takes ~3 ms: slices of 5 ms must let the 1 ms timer run many times in 150 ms.
  const slowDecide = createDecide(rules, defaultConfig());
  const decide: typeof slowDecide = (c, st) => {
    const end = performance.now() + 3;
    while (performance.now() < end);
    return slowDecide(c, st);
  };
  const t0 = performance.now();
  const n = await warmUpInSlices(decide, rules, () => slowState, 150, 1500, 5);
  const took = performance.now() - t0;
  clearInterval(timer);
  t.ok(n >= 20, `decisions made (${n})`);
  t.ok(ticks >= 10, `timers ran during the warm-up (${ticks})`);
  t.ok(took < 1500, 'stops near its budget');
  t.equal(await warmUpInSlices(decide, rules, () => stateFromObjects([]), 100), 0, 'an empty state has nothing to warm');
});

t.test('the sliced warm-up ends at the first slice boundary after it is told to stop', async (t) => {
  const rules = allRules();
  const s = stateFromObjects(baseCluster([ns('shop'), pod('shop', 'web-1', { app: 'web' })]) as never);
  const real = createDecide(rules, defaultConfig());
  let calls = 0;
  const decide: typeof real = (c, st) => {
    calls++;
    const end = performance.now() + 2;
    while (performance.now() < end);
    return real(c, st);
  };
  let stop = false;
  setTimeout(() => (stop = true), 30);
  const n = await warmUpInSlices(decide, rules, () => s, 5_000, 50_000, 5, () => stop);
  t.equal(n, calls);
  t.ok(n > 0 && n < 100, `stopped early (${n} decisions, a 5 s budget would allow ~2500)`);
});

t.test('the sliced warm-up counts its own work against the budget, not time others spend in between', async (t) => {
  const rules = allRules();
  const s = stateFromObjects(baseCluster([ns('shop'), pod('shop', 'web-1', { app: 'web' })]) as never);
  const real = createDecide(rules, defaultConfig());
  const decide: typeof real = (c, st) => {
    const end = performance.now() + 3;
    while (performance.now() < end);
    return real(c, st);
  };
  // Someone else holds the event loop for 15 ms whenever the warm-up yields.
  let blocking = true;
  const blocker = (): void => {
    if (!blocking) return;
    const end = performance.now() + 15;
    while (performance.now() < end);
    setImmediate(blocker);
  };
  setImmediate(blocker);
  const t0 = performance.now();
  const n = await warmUpInSlices(decide, rules, () => s, 60, 60, 5);
  const wall = performance.now() - t0;
  blocking = false;
  // ~60 ms of its own work is ~20 decisions of 3 ms; a wall-clock budget would stop after ~5.
  t.ok(n >= 12, `decisions worth its own budget (${n})`);
  t.ok(wall > 120, `while the wall clock ran on (${wall.toFixed(0)} ms)`);
});
