import t from 'tap';

import type { Change } from '../../src/core/change.ts';
import { toChange } from '../../src/admission/review.ts';
import type { AdmissionReview } from '../../src/admission/schema.ts';
import { defaultConfig } from '../../src/config/config.ts';
import { allRules } from '../../src/rules/registry.ts';
import type { Decide, Decision } from '../../src/core/decision.ts';
import { stateFromObjects } from '../../src/state/snapshot.ts';
import { transformObject } from '../../src/state/transform.ts';
import type { ClusterState } from '../../src/core/objects.ts';
import { cacheKey, cachingDecide, decisionWeight } from '../../src/verdict/cache.ts';
import { createDecide } from '../../src/verdict/decide.ts';
import { generateCluster } from '../../bench/cluster-gen.ts';
import { requestMix } from '../../bench/requests.ts';
import { cnp, memoryState, ns } from '../fixtures/cluster.ts';
import { makeChange } from '../rules/rule-harness.ts';
import { FAKE_RULES } from './fake-rules.ts';

const policy = (name = 'p', namespace = 'team-a', spec: Record<string, unknown> = { endpointSelector: {}, egress: [{}] }) => cnp(namespace, name, spec);

/** The fake catalogue's decide, counting its calls. */
function counted(): { decide: Decide; calls: () => number } {
  const inner = createDecide(FAKE_RULES, defaultConfig(FAKE_RULES));
  let n = 0;
  return {
    decide: (change, state) => {
      n++;
      return inner(change, state);
    },
    calls: () => n,
  };
}

/** The policy with labels on it. */
const withLabels = (o: ReturnType<typeof policy>, labels: Record<string, string>) => ({ ...o, metadata: { ...o.metadata, labels } }) as ReturnType<typeof policy>;

const without = (d: Decision): Decision => {
  const { cached: _, ...rest } = d;
  return rest;
};

t.test('a repeated request on the same state is answered from the cache, with the same decision', async (t) => {
  const state = memoryState([ns('team-a')]);
  const { decide, calls } = counted();
  const cached = cachingDecide(decide);
  // fake-orphan-policy denies a policy in a namespace that does not exist.
  const first = cached(makeChange('CREATE', policy('p', 'nowhere')), state);
  t.equal(first.allowed, false);
  t.notOk(first.cached);
  const second = cached(makeChange('CREATE', policy('p', 'nowhere')), state);
  t.equal(calls(), 1, 'decided once');
  t.equal(second.cached, true);
  t.same(without(second), first);
  t.match(cached.stats(), { hits: 1, misses: 1, entries: 1 });
});

t.test('request uid, dryRun and userInfo do not make a request new; anything a rule reads does', async (t) => {
  const state = memoryState([ns('team-a')]);
  const { decide, calls } = counted();
  const cached = cachingDecide(decide);
  const base = makeChange('CREATE', policy());
  cached(base, state);
  cached({ ...base, uid: 'another', dryRun: true, userInfo: { username: 'someone-else', groups: ['g'] } }, state);
  t.equal(calls(), 1, 'uid, dryRun and user are not read by rules');

  const variants: [string, Change][] = [
    ['spec', makeChange('CREATE', policy('p', 'team-a', { endpointSelector: { matchLabels: { app: 'x' } }, egress: [{}] }))],
    ['name', makeChange('CREATE', policy('q'))],
    ['namespace', makeChange('CREATE', policy('p', 'team-b'))],
    ['operation', makeChange('UPDATE', policy(), policy())],
    ['old object', makeChange('UPDATE', policy(), policy('p', 'team-a', { endpointSelector: {}, ingress: [{}] }))],
    ['labels', makeChange('CREATE', withLabels(policy(), { 'fake/finding': 'x' }))],
    ['gvk version', { ...base, gvk: { ...base.gvk, version: 'v2alpha1' } }],
  ];
  let expected = 1;
  for (const [what, change] of variants) {
    cached(change, state);
    t.equal(calls(), ++expected, `a different ${what} is evaluated`);
    t.not(cacheKey(change), cacheKey(base), `${what} is in the key`);
  }
  // The label variant really decides differently: the cache must not have answered it with base's.
  const labelled = cached(variants[5]![1], state);
  t.equal(labelled.findings.length, 1);
});

t.test('any state change empties the cache: the decision follows the new state', async (t) => {
  const state = memoryState([ns('team-a')]);
  const { decide, calls } = counted();
  const cached = cachingDecide(decide);
  const change = makeChange('CREATE', policy('p', 'later'));
  t.equal(cached(change, state).allowed, false);
  state.upsert('Namespace', ns('later') as never);
  const after = cached(change, state);
  t.equal(calls(), 2);
  t.equal(after.allowed, true, 'the namespace now exists');
  t.notOk(after.cached);
  t.equal(cached.stats().entries, 1, 'entries of the old revision are gone');
  // An unrelated object changing is a new revision too.
  state.upsert('CiliumNetworkPolicy', policy('other') as never);
  cached(change, state);
  t.equal(calls(), 3);
});

t.test('a watch event that changes nothing the transform keeps (a pod turning Ready) keeps the cache', async (t) => {
  const raw = (resourceVersion: string, ready: string, labels: Record<string, string> = { app: 'web' }) => ({
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name: 'web-1', namespace: 'team-a', resourceVersion, labels },
    spec: { containers: [{ name: 'app' }] },
    status: { phase: 'Running', podIP: '10.0.0.1', conditions: [{ type: 'Ready', status: ready }] },
  });
  const state = memoryState([ns('team-a')]);
  state.upsert('Pod', transformObject('Pod', raw('1', 'False')));
  const { decide, calls } = counted();
  const cached = cachingDecide(decide);
  const change = makeChange('CREATE', policy('p'));
  cached(change, state);
  state.upsert('Pod', transformObject('Pod', raw('2', 'True')));
  t.ok(cached(change, state).cached, 'answered from the cache after the status update');
  t.equal(calls(), 1);
  state.upsert('Pod', transformObject('Pod', raw('3', 'True', { app: 'web', tier: 'front' })));
  t.notOk(cached(change, state).cached, 'a label change is a new state');
  t.equal(calls(), 2);
});

t.test('another state with the same revision is not confused with the first', async (t) => {
  const a = memoryState([ns('team-a'), ns('elsewhere')]);
  const b = memoryState([ns('team-a'), ns('nowhere')]);
  t.equal(a.revision, b.revision, 'precondition: same revision number');
  const { decide, calls } = counted();
  const cached = cachingDecide(decide);
  const change = makeChange('CREATE', policy('p', 'nowhere'));
  t.equal(cached(change, a).allowed, false);
  t.equal(cached(change, b).allowed, true);
  t.equal(calls(), 2);
});

t.test('the cache is bounded and keeps the most recently used decisions', async (t) => {
  const state = memoryState([ns('team-a')]);
  const { decide, calls } = counted();
  const cached = cachingDecide(decide, 2);
  const [p1, p2, p3] = ['p1', 'p2', 'p3'].map((n) => makeChange('CREATE', policy(n)));
  cached(p1!, state);
  cached(p2!, state);
  cached(p1!, state); // p1 is now the most recent
  cached(p3!, state); // evicts p2
  t.equal(calls(), 3);
  t.equal(cached.stats().entries, 2);
  cached(p1!, state);
  t.equal(calls(), 3, 'p1 kept');
  cached(p2!, state);
  t.equal(calls(), 4, 'p2 evicted');
});

t.test('the text the cache holds is bounded too: long decisions push old ones out, one too long is not kept', async (t) => {
  const state = memoryState([ns('team-a')]);
  let calls = 0;
  const long = (n: number): Decide => () => {
    calls++;
    return { allowed: true, skipped: [], findings: [{ rule: 'r', code: 'r/test', params: {}, action: 'warn', message: 'x'.repeat(n) }] };
  };
  // Budget 16,000: a decision may weigh 1,000 at most; these weigh about 700 each, so 22 fit by text.
  const cached = cachingDecide(long(400), 100, 16_000);
  const one = makeChange('CREATE', policy('p0'));
  t.ok(decisionWeight(cached(one, state)) > 600);
  for (let i = 1; i < 40; i++) cached(makeChange('CREATE', policy(`p${i}`)), state);
  const s = cached.stats();
  t.ok(s.weight <= 16_000, `weight within the budget (${s.weight})`);
  t.ok(s.entries < 40 && s.entries >= 15, `entries limited by text, not count (${s.entries})`);
  calls = 0;
  cached(one, state);
  t.equal(calls, 1, 'the oldest was pushed out');
  cached(makeChange('CREATE', policy('p39')), state);
  t.equal(calls, 1, 'the newest is kept');

  const huge = cachingDecide(long(2000), 100, 16_000);
  huge(one, state);
  huge(one, state);
  t.equal(huge.stats().entries, 0, 'heavier than a 16th of the budget: not kept');
  t.equal(huge.stats().hits, 0);
});

t.test('a decision with a rule failure is not kept; size 0 disables; unmodeled kinds go through', async (t) => {
  const state = memoryState([ns('team-a')]);
  const { decide, calls } = counted();
  const cached = cachingDecide(decide);
  const throwing = makeChange('CREATE', withLabels(policy(), { 'fake/throw': 'yes' }));
  const d = cached(throwing, state);
  t.ok(d.findings.some((f) => f.failed === true), 'the failure is marked');
  cached(throwing, state);
  t.equal(calls(), 2, 'evaluated again');

  const off = cachingDecide(decide, 0);
  off(makeChange('CREATE', policy()), state);
  off(makeChange('CREATE', policy()), state);
  t.equal(calls(), 4);
  t.same(off.stats(), { hits: 0, misses: 0, entries: 0, weight: 0 });

  const configMap = makeChange('CREATE', policy());
  const other: Change = { ...configMap, gvk: { group: '', version: 'v1', kind: 'ConfigMap' }, kind: undefined };
  cached(other, state);
  cached(other, state);
  t.equal(calls(), 6);
  t.equal(cached.stats().misses, 2, 'not counted as lookups');
});

t.test('a Change field the key does not cover fails here: decide what the cache must do with it', async (t) => {
  // The key covers operation, gvk, namespace, name, object and oldObject (kind derives from gvk);
  // uid, dryRun and userInfo are left out because no rule reads them. A new field needs a decision.
  const review = {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: 'u', kind: { group: 'cilium.io', version: 'v2', kind: 'CiliumNetworkPolicy' }, operation: 'UPDATE', namespace: 'team-a', name: 'p',
      object: policy(), oldObject: policy(), dryRun: true, userInfo: { username: 'a' },
    },
  };
  const change = toChange(review as unknown as AdmissionReview);
  t.same(Object.keys(change).sort(), ['dryRun', 'gvk', 'kind', 'name', 'namespace', 'object', 'oldObject', 'operation', 'uid', 'userInfo']);
});

t.test('with the real catalogue, cached decisions equal fresh ones on the benchmark mix, across users and a policy change', async (t) => {
  const objects = generateCluster(1000);
  const state = stateFromObjects(objects);
  const rules = allRules();
  const fresh = createDecide(rules, defaultConfig(rules));
  const cached = cachingDecide(createDecide(rules, defaultConfig(rules)));
  const mix = requestMix(1000, 120).map((r) => r.review as unknown as AdmissionReview);
  /** The same review from someone else, as a dry run, with its own uid: what the cache key leaves out. */
  const asOther = (review: AdmissionReview, i: number): AdmissionReview =>
    ({ ...review, request: { ...review.request, uid: `other-${i}`, dryRun: true, userInfo: { username: 'system:serviceaccount:argocd:argocd-application-controller', groups: ['system:serviceaccounts'] } } }) as AdmissionReview;
  const check = (s: ClusterState, pass: string, vary: boolean): string[] => {
    const verdicts: string[] = [];
    mix.forEach((review, i) => {
      const r = vary ? asOther(review, i) : review;
      // Fresh: the varied request itself; cached: possibly the answer to the original one.
      const a = fresh(toChange(r), s);
      const b = cached(toChange(r), s);
      verdicts.push(JSON.stringify(a));
      if (JSON.stringify(a) !== JSON.stringify(without(b))) t.fail(`${pass}: ${JSON.stringify(review).slice(0, 200)} decided differently`);
    });
    return verdicts;
  };
  const first = check(state, 'first pass', false);
  // The mix repeats some requests (the same Namespace and NetworkPolicy updates): hits within a pass.
  const withinPass = cached.stats().hits;
  check(state, 'second pass, other user', true);
  t.equal(cached.stats().hits - withinPass, mix.length, 'the second pass is answered from the cache');
  t.ok(first.some((v) => v.includes('"allowed":false')), 'the mix has denials');
  // Cilium's L7 proxy turned off: every L7 policy of the mix now gets l7-proxy-disabled.
  const config = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'cilium-config')!;
  state.upsert('ConfigMap', transformObject('ConfigMap', { ...config, data: { ...(config['data'] as object), 'enable-l7-proxy': 'false' } }));
  const hitsBefore = cached.stats().hits;
  const after = check(state, 'after the policy change', false);
  t.equal(cached.stats().hits - hitsBefore, withinPass, 'the change emptied the cache: only repeats within the pass hit');
  const changed = after.filter((v, i) => v !== first[i]).length;
  t.ok(changed > 0, `decisions changed with the state (${changed}), and the cache followed`);
});
