// serve's refill of the per-class tables in idle time after a change that empties them (issue 21), on
// fake time: polls, quiet and idle times are moved by the test; the fill's slices by a ticking clock.
import t from 'tap';
import { toChange } from '../../src/admission/review.ts';
import type { AdmissionReview } from '../../src/admission/schema.ts';
import { defaultConfig } from '../../src/config/config.ts';
import type { Change } from '../../src/core/change.ts';
import type { Decide } from '../../src/core/decision.ts';
import type { ClusterState } from '../../src/core/objects.ts';
import { classPlanComputations, keptFilterJudgements } from '../../src/policy/classes.ts';
import { baseFactsComputed } from '../../src/policy/reachability.ts';
import { reachComputations } from '../../src/policy/reach-memo.ts';
import { allRules } from '../../src/rules/registry.ts';
import { TableRefill } from '../../src/server/table-refill.ts';
import { stateFromObjects } from '../../src/state/snapshot.ts';
import { transformObject } from '../../src/state/transform.ts';
import { createDecide } from '../../src/verdict/decide.ts';
import { fillTablesInSlices, warmUpInSlices } from '../../src/verdict/warmup.ts';
import { generateCluster, type Obj } from '../../bench/cluster-gen.ts';
import { review } from '../../bench/requests.ts';
import { FakeClock } from '../helpers/fake-clock.ts';

const PODS = 400;
const rules = allRules();

/** A clock that moves only as it is read: the fill's slices are counted exactly. */
function ticking(): () => number {
  let ms = 0;
  return () => (ms += 1);
}

const uncut = (): Decide => createDecide(rules, defaultConfig(rules), { budget: { clock: { now: () => 0 } } });

type Mutable = ClusterState & { upsert(kind: string, o: unknown): void };

async function setUp(): Promise<{ objs: Obj[]; state: Mutable; decide: Decide; clock: FakeClock; everyPod: Change }> {
  const objs = generateCluster(PODS);
  const state = stateFromObjects(objs as never) as unknown as Mutable;
  const decide = uncut();
  await warmUpInSlices(decide, rules, () => state, 50, 500, 5, undefined, ticking());
  const policy = {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumClusterwideNetworkPolicy',
    metadata: { name: 'every-pod' },
    spec: { endpointSelector: {}, egress: [{ toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s-app': 'kube-dns' } }], toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }] }] }] },
  };
  return { objs, state, decide, clock: new FakeClock(), everyPod: toChange(review('CREATE', policy, null) as unknown as AdmissionReview) };
}

/** A policy change: a copy of one of the state's CNPs under a new name. */
function changePolicy(objs: readonly Obj[], state: Mutable, name: string): void {
  const c = objs.find((o) => o.kind === 'CiliumNetworkPolicy')!;
  state.upsert('CiliumNetworkPolicy', transformObject('CiliumNetworkPolicy', { ...c, metadata: { ...c.metadata, name } } as unknown as Record<string, unknown>));
}

/** What a decision computed of the per-class tables. */
function computedBy(fn: () => unknown): number {
  const c = reachComputations() + baseFactsComputed();
  fn();
  return reachComputations() + baseFactsComputed() - c;
}

function refillOf(state: ClusterState, clock: FakeClock, lastReviewAt: () => number | undefined, onFill: () => void = () => undefined): TableRefill {
  return new TableRefill({
    source: { state, synced: () => true },
    lastReviewAt,
    now: clock.now,
    timers: clock,
    pollMs: 1000,
    quietMs: 5000,
    idleMs: 1000,
    fill: (s, stop) => {
      onFill();
      return fillTablesInSlices(s, 6, stop, ticking());
    },
  });
}

/** Moves the fake clock a poll at a time, letting a refill the poll started run to its end. */
async function poll(clock: FakeClock, refill: TableRefill, times = 1): Promise<void> {
  for (let i = 0; i < times; i++) {
    clock.advance(1000);
    await refill.running;
  }
}

t.test('after a policy change, once quiet and idle, the tables are refilled: the next cluster-wide decision computes no class', async (t) => {
  const { objs, state, decide, clock, everyPod } = await setUp();
  const refill = refillOf(state, clock, () => undefined);
  refill.start();
  changePolicy(objs, state, 'changed-1');
  await poll(clock, refill, 5);
  t.equal(refill.fills, 0, 'not before the state has been quiet for 5 s');
  await poll(clock, refill, 2);
  t.equal(refill.fills, 1, 'refilled once quiet');
  t.equal(computedBy(() => decide(everyPod, state)), 0, 'the first cluster-wide decision after the change computes nothing');
  await refill.stop();
});

t.test('near miss: without the refill, the first cluster-wide decision after a policy change computes every class', async (t) => {
  const { objs, state, decide, everyPod } = await setUp();
  changePolicy(objs, state, 'changed-1');
  t.ok(computedBy(() => decide(everyPod, state)) > 10, 'the change emptied the tables');
});

t.test('pod events start no refill (they keep the tables)', async (t) => {
  const { objs, state, clock } = await setUp();
  let fills = 0;
  const refill = refillOf(state, clock, () => undefined, () => fills++);
  refill.start();
  await poll(clock, refill, 7);
  t.equal(fills, 1, 'the one refill after start-up');
  const p = objs.find((o) => o.kind === 'Pod' && o.metadata.namespace?.startsWith('team-'))!;
  for (let i = 0; i < 3; i++) {
    state.upsert('Pod', transformObject('Pod', { ...p, metadata: { ...p.metadata, name: `copy-${i}` }, status: { ...(p['status'] as object), podIP: `10.251.0.${i + 1}`, podIPs: [{ ip: `10.251.0.${i + 1}` }] } } as unknown as Record<string, unknown>));
    await poll(clock, refill, 3);
  }
  await poll(clock, refill, 10);
  t.equal(fills, 1, 'none after the pod events');
  await refill.stop();
});

t.test('a change that keeps coming is refilled only once it stops; reviews keep it waiting', async (t) => {
  const { objs, state, clock } = await setUp();
  let lastReview: number | undefined;
  const refill = refillOf(state, clock, () => lastReview);
  refill.start();
  for (let i = 0; i < 4; i++) {
    changePolicy(objs, state, `burst-${i}`);
    await poll(clock, refill, 4);
  }
  t.equal(refill.fills, 0, 'a change every 4 s: never quiet for 5 s');
  // Quiet now, but a review every poll: the webhook is busy.
  for (let i = 0; i < 8; i++) {
    // A review half-way between two polls.
    clock.advance(500);
    lastReview = clock.now();
    clock.advance(500);
    await refill.running;
  }
  t.equal(refill.fills, 0, 'busy: no refill');
  await poll(clock, refill, 2);
  t.equal(refill.fills, 1, 'idle: refilled');
  await refill.stop();
});

t.test('a review that arrives stops the refill at its next slice; a later idle moment refills', async (t) => {
  const { objs, state, clock } = await setUp();
  let lastReview: number | undefined;
  let slices = 0;
  const refill = new TableRefill({
    source: { state, synced: () => true },
    lastReviewAt: () => lastReview,
    now: clock.now,
    timers: clock,
    fill: (s, stop) =>
      fillTablesInSlices(s, 6, () => {
        // A review arrives during the third slice of the first refill.
        if (++slices === 3 && refill.fills === 0) lastReview = clock.now();
        return stop();
      }, ticking()),
  });
  refill.start();
  changePolicy(objs, state, 'changed-1');
  await poll(clock, refill, 6);
  t.equal(refill.stopsByReview, 1, 'stopped by the review');
  t.equal(refill.fills, 0);
  t.equal(slices, 3, 'at the slice the review came in');
  await poll(clock, refill, 2);
  t.equal(refill.fills, 1, 'refilled at the next idle poll');
  await refill.stop();
});

t.test('the first refill comes after start-up, for a warm-up stopped at its cap before its table steps', async (t) => {
  const objs = generateCluster(PODS);
  const state = stateFromObjects(objs as never) as unknown as Mutable;
  const decide = uncut();
  // A cap of 1 ms of the ticking clock: no table step runs.
  await warmUpInSlices(decide, rules, () => state, 1, 1, 5, undefined, ticking());
  const clock = new FakeClock();
  const refill = refillOf(state, clock, () => undefined);
  refill.start();
  await poll(clock, refill, 7);
  t.equal(refill.fills, 1);
  const policy = { apiVersion: 'cilium.io/v2', kind: 'CiliumClusterwideNetworkPolicy', metadata: { name: 'every-pod' }, spec: { endpointSelector: {}, egress: [{ toEntities: ['world'] }] } };
  t.equal(computedBy(() => decide(toChange(review('CREATE', policy, null) as unknown as AdmissionReview), state)), 0, 'the first cluster-wide decision computes nothing');
  await refill.stop();
});

t.test('stop() ends a refill under way and polls no more', async (t) => {
  const { objs, state, clock } = await setUp();
  let calls = 0;
  let stopping: Promise<void> | undefined;
  let slices = 0;
  const refill = new TableRefill({
    source: { state, synced: () => true },
    lastReviewAt: () => undefined,
    now: clock.now,
    timers: clock,
    fill: (s, stop) => {
      calls++;
      return fillTablesInSlices(s, 6, () => {
        if (++slices === 2) stopping = refill.stop();
        return stop();
      }, ticking());
    },
  });
  refill.start();
  changePolicy(objs, state, 'changed-1');
  await poll(clock, refill, 6);
  await stopping;
  t.equal(calls, 1);
  t.equal(slices, 2, 'ended at the slice after stop()');
  t.equal(refill.fills, 0);
  t.same(clock.pending(), [], 'no poll left');
  changePolicy(objs, state, 'changed-2');
  clock.advance(60_000);
  t.equal(calls, 1, 'no refill after stop()');
});

t.test("the default fill keeps the API server clients under the decide's settings: after an RBAC change the first CCNP {} filters and plans none", async (t) => {
  for (const withSettings of [true, false]) {
    const { objs, state, decide, clock, everyPod } = await setUp();
    const refill = new TableRefill({
      source: { state, synced: () => true },
      lastReviewAt: () => undefined,
      now: clock.now,
      timers: clock,
      pollMs: 1000,
      quietMs: 5000,
      idleMs: 1000,
      ...(withSettings ? { settings: decide.settings! } : {}),
    });
    refill.start();
    // A new RoleBinding makes another service account an API server client: a new RBAC index, so a new
    // clients filter to fill (the refill runs after the warm-up's, for a change of a kind that empties tables).
    const ns = objs.find((o) => o.kind === 'Namespace' && o.metadata.name.startsWith('team-'))!.metadata.name;
    state.upsert('RoleBinding', transformObject('RoleBinding', { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'app-1-reader', namespace: ns }, roleRef: { kind: 'ClusterRole', name: 'view' }, subjects: [{ kind: 'ServiceAccount', name: 'app-1', namespace: ns }] } as unknown as Record<string, unknown>));
    await poll(clock, refill, 7);
    t.equal(refill.fills, 1, `${withSettings ? 'with' : 'without'} settings: refilled once quiet`);
    const f = keptFilterJudgements();
    const p = classPlanComputations();
    decide(everyPod, state);
    if (withSettings) {
      t.equal(keptFilterJudgements() - f, 0, 'with settings: no class asked whether it is an API server client');
      t.equal(classPlanComputations() - p, 0, 'with settings: no class key computed');
    } else {
      t.ok(keptFilterJudgements() - f > 0, 'near miss, without settings: the first request filters the clients itself');
    }
    await refill.stop();
  }
});
