// The warm-up's decisions on a sample of the state (src/verdict/warmup-sample.ts): what the sample
// holds, which changes it decides, that the real state is left as it was and its later decisions equal
// a cold process's, and that it hands the event loop back.

import t from 'tap';
import { toChange } from '../../src/admission/review.ts';
import type { AdmissionReview } from '../../src/admission/schema.ts';
import type { Change } from '../../src/core/change.ts';
import { defaultConfig } from '../../src/config/config.ts';
import type { ClusterState } from '../../src/core/objects.ts';
import { allRules } from '../../src/rules/registry.ts';
import { stateFromObjects } from '../../src/state/snapshot.ts';
import { createDecide } from '../../src/verdict/decide.ts';
import { costlyChanges, SAMPLE_COPY_PREFIX, sampleNamespaces, sampleState, warmUpOnSample } from '../../src/verdict/warmup-sample.ts';
import { generateCluster } from '../../bench/cluster-gen.ts';
import { requestMix } from '../../bench/requests.ts';
import { loopTurns } from '../helpers/loop-turns.ts';
import { baseCluster, ccnp, cnp, HEALTHY_CILIUM_CONFIG, netpol, ns, pod } from '../fixtures/cluster.ts';

type Obj = ReturnType<typeof ns>;
const labelsOf = (c: Change): Record<string, string> => (c.object?.metadata.labels ?? {}) as Record<string, string>;

/** A cluster with one namespace of each mesh flavour, a big one, and policies of every kind. */
function cluster(cilium: Record<string, string> = HEALTHY_CILIUM_CONFIG): Obj[] {
  const big: Obj[] = [];
  for (let i = 0; i < 301; i++) big.push(pod('big', `p-${i}`, { app: 'p' }));
  return baseCluster(
    [
      ns('plain', { team: 'a' }), pod('plain', 'web-1', { app: 'web' }),
      ns('amb', { 'istio.io/dataplane-mode': 'ambient' }), pod('amb', 'api-1', { app: 'api' }),
      ns('side', { 'istio-injection': 'enabled' }), pod('side', 'db-1', { app: 'db' }),
      ns('big'), ...big,
      ns('empty'),
      ccnp('dns', { endpointSelector: {}, egress: [{ toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system' } }] }] }),
      cnp('plain', 'web-in', { endpointSelector: { matchLabels: { app: 'web' } }, ingress: [{ fromEndpoints: [{}] }] }),
      cnp('big', 'p-in', { endpointSelector: {}, ingress: [{}] }),
      netpol('amb', 'deny', { podSelector: {}, policyTypes: ['Ingress'] }),
    ],
    cilium,
  );
}

t.test('the sample: the system namespaces, a namespace of each mesh flavour, none over the pod limit', async (t) => {
  const state = stateFromObjects(cluster());
  const names = sampleNamespaces(state);
  for (const n of ['kube-system', 'default', 'istio-system', 'plain', 'amb', 'side']) t.ok(names.includes(n), n);
  t.notOk(names.includes('big'), 'a namespace of 301 pods is left out');
  const sample = sampleState(state, names);
  // The very objects of the state, in the namespaces taken; none of the others.
  t.equal(sample.get('Pod', 'amb', 'api-1'), state.get('Pod', 'amb', 'api-1'), 'the same pod object');
  t.equal(sample.get('ConfigMap', 'kube-system', 'cilium-config'), state.get('ConfigMap', 'kube-system', 'cilium-config'));
  t.equal(sample.list('Pod', 'big').length, 0);
  t.equal(sample.get('CiliumNetworkPolicy', 'big', 'p-in'), undefined, 'objects of a namespace left out stay out');
  t.equal(sample.get('Namespace', undefined, 'big'), undefined, 'and so does its Namespace');
  // Every cluster-scoped object but the Namespaces left out.
  t.equal(sample.list('Node').length, state.list('Node').length);
  t.equal(sample.list('CiliumClusterwideNetworkPolicy').length, 1);
});

t.test('the costly changes: relabels into and out of the mesh, the policy mode switched, new policies, deletions', async (t) => {
  const state = stateFromObjects(cluster());
  const names = sampleNamespaces(state);
  const sample = sampleState(state, names);
  const changes = costlyChanges(sample, names);
  const relabels = (n: string): Change[] => changes.filter((c) => c.kind === 'Namespace' && c.name === n);
  // A namespace outside the mesh is moved into ambient, and into sidecar injection.
  t.same(relabels('plain').map((c) => [labelsOf(c)['istio.io/dataplane-mode'], labelsOf(c)['istio-injection'], labelsOf(c)['team']]), [['ambient', undefined, 'a'], [undefined, 'enabled', 'a']]);
  // One in ambient is moved out of it; one injected has injection removed.
  t.equal(labelsOf(relabels('amb')[0]!)['istio.io/dataplane-mode'], undefined, 'out of ambient');
  t.equal(labelsOf(relabels('side')[1]!)['istio-injection'], undefined, 'out of injection');
  for (const c of relabels('plain')) t.equal(c.oldObject, sample.get('Namespace', undefined, 'plain'), 'the old object is the state\'s');
  t.same(relabels('empty'), [], 'a namespace without pods is not sampled');
  const cm = changes.filter((c) => c.kind === 'ConfigMap');
  t.same(cm.map((c) => (c.object as unknown as { data: Record<string, string> }).data['enable-policy']), ['always'], 'default -> always');
  t.same(
    changes.filter((c) => c.operation === 'CREATE').map((c) => `${c.kind} ${c.namespace}/${c.name}`),
    [`CiliumClusterwideNetworkPolicy /${SAMPLE_COPY_PREFIX}dns`, `CiliumNetworkPolicy plain/${SAMPLE_COPY_PREFIX}web-in`, `NetworkPolicy amb/${SAMPLE_COPY_PREFIX}deny`],
    'a copy of each policy of the sample under a new name (the big namespace\'s is not sampled)',
  );
  t.same(changes.filter((c) => c.operation === 'DELETE').map((c) => c.name), ['dns'], 'the cluster-wide policy deleted');
  for (const c of changes) t.equal(c.dryRun, true);

  // The other way round: `always` is switched to `default`; `never` is left alone (nothing to enforce).
  const always = sampleState(stateFromObjects(cluster({ ...HEALTHY_CILIUM_CONFIG, 'enable-policy': 'always' })), names);
  t.same(costlyChanges(always, names).filter((c) => c.kind === 'ConfigMap').map((c) => (c.object as unknown as { data: Record<string, string> }).data['enable-policy']), ['default']);
  const never = sampleState(stateFromObjects(cluster({ ...HEALTHY_CILIUM_CONFIG, 'enable-policy': 'never' })), names);
  t.same(costlyChanges(never, names).filter((c) => c.kind === 'ConfigMap'), []);
});

t.test('warmUpOnSample decides every change on the sample, never on the state, and leaves the state as it was', async (t) => {
  const rules = allRules();
  const state = stateFromObjects(cluster());
  const revision = state.revision;
  const real = createDecide(rules, defaultConfig(rules));
  const seen: { state: ClusterState; change: Change }[] = [];
  const n = await warmUpOnSample((c, s) => {
    seen.push({ state: s, change: c });
    return real(c, s);
  }, rules, state);
  t.equal(n, seen.length);
  t.ok(n > 10, `decisions made (${n})`);
  t.ok(seen.every((d) => d.state !== state), 'none on the state itself');
  t.equal(new Set(seen.map((d) => d.state)).size, 1, 'all on one sample');
  t.ok(seen.some((d) => d.change.kind === 'Namespace' && labelsOf(d.change)['istio.io/dataplane-mode'] === 'ambient'), 'a relabel into ambient among them');
  t.equal(state.revision, revision, 'the state did not change');
  t.equal(state.get('CiliumClusterwideNetworkPolicy', undefined, `${SAMPLE_COPY_PREFIX}dns`), undefined, 'no copy reached the state');
  t.equal(await warmUpOnSample(real, rules, stateFromObjects([])), 0, 'an empty state has nothing to sample');
});

t.test('decisions after warmUpOnSample equal those of a cold process, the costly changes on the whole state included', async (t) => {
  const PODS = 300;
  const rules = allRules();
  const mix = requestMix(PODS, 120).map((r) => toChange(r.review as unknown as AdmissionReview));
  const cold = createDecide(rules, defaultConfig(rules));
  const coldState = stateFromObjects(generateCluster(PODS));
  // The costly changes asked of the whole state (namespaces of the sample, and one that is not).
  const costly = (s: ClusterState): Change[] => costlyChanges(s, s.namespacesWith('Pod'));
  const expected = [...mix, ...costly(coldState)].map((c) => cold(c, coldState));

  const warm = createDecide(rules, defaultConfig(rules));
  const warmState = stateFromObjects(generateCluster(PODS));
  t.ok((await warmUpOnSample(warm, rules, warmState)) > 0);
  const got = [...mix, ...costly(warmState)].map((c) => warm(c, warmState));
  t.same(got, expected);
  t.ok(expected.some((d) => d.findings.length > 0), 'the requests exercise findings');
});

t.test('warmUpOnSample hands the event loop back once half a slice is spent, and stops when told', async (t) => {
  const rules = allRules();
  const state = stateFromObjects(cluster());
  const real = createDecide(rules, defaultConfig(rules));
  let ms = 0;
  const loop = loopTurns();
  const turnsAt: number[] = [];
  // Each decision "costs" 2 ms of a fake clock; slices of 8 ms: a hand-back after every second decision.
  const decide: typeof real = (c, s) => {
    ms += 2;
    turnsAt.push(loop.turns);
    return real(c, s);
  };
  const n = await warmUpOnSample(decide, rules, state, 8, undefined, () => ms);
  loop.stop();
  let longest = 0;
  for (let i = 0, run = 0; i < n; i++) {
    run = i > 0 && turnsAt[i] === turnsAt[i - 1] ? run + 1 : 1;
    longest = Math.max(longest, run);
  }
  t.equal(longest, 2, 'at most two 2 ms decisions between turns of the event loop (half of an 8 ms slice)');
  let asked = 0;
  const stopped = await warmUpOnSample(decide, rules, state, 8, () => ++asked >= 2, () => ms);
  t.equal(stopped, 4, 'stopped at the second hand-back');
});
