// The first cluster-wide requests after serve's warm-up do no whole-cluster work that a later send of the
// same request does not (issue 21: the served p99 of the CCNP `{}` and cilium-config requests was their
// first send). What the warm-up fills for them, counted:
// - which classes the subject selectors select, per namespace (classesSelectedIn, kept by effective
//   subject selector: a CCNP `{}` finds every namespace's CNP `{}` answer);
// - which classes switch ingress enforcement when cilium-config switches `enable-policy` between
//   `default` and `always` (ingressEnforcementChanged), a namespace per step;
// - the judging passes' plans over each namespace's classes (classPlan);
// and all of it again after a decision cut at its budget once the table steps have run (a cut drops
// the memos that are not kept).
import t from 'tap';
import { toChange } from '../../src/admission/review.ts';
import type { AdmissionReview } from '../../src/admission/schema.ts';
import { defaultConfig } from '../../src/config/config.ts';
import type { Change } from '../../src/core/change.ts';
import type { Decide } from '../../src/core/decision.ts';
import type { ClusterState } from '../../src/core/objects.ts';
import { classifiedPods, classPlanComputations, classPlanJoins, groupsOf, keptFilterJudgements, podClassesIn } from '../../src/policy/classes.ts';
import { apiserverClassKey } from '../../src/policy/identity.ts';
import { enforcementChangeScans } from '../../src/policy/mesh-memo.ts';
import { classSelections } from '../../src/policy/selection.ts';
import { allRules } from '../../src/rules/registry.ts';
import { forgetCachedResults } from '../../src/state/request-scope.ts';
import { stateFromObjects } from '../../src/state/snapshot.ts';
import { transformObject } from '../../src/state/transform.ts';
import { createDecide } from '../../src/verdict/decide.ts';
import { tableSteps, warmUpInSlices } from '../../src/verdict/warmup.ts';
import { generateCluster, type Obj } from '../../bench/cluster-gen.ts';
import { review } from '../../bench/requests.ts';

const PODS = 600;
const rules = allRules();
const dnsEgress = [{ toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s-app': 'kube-dns' } }], toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }] }] }];

const change = (operation: string, object: Obj | null, old: Obj | null): Change => toChange(review(operation, object, old) as unknown as AdmissionReview);

/** The CCNP `{}` request of bench/worst-case.ts. */
function everyPodPolicy(): Change {
  const all = {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumClusterwideNetworkPolicy',
    metadata: { name: 'every-pod' },
    spec: { endpointSelector: {}, egress: [...dnsEgress, { toEndpoints: [{ matchLabels: { app: 'app-2' } }], toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }] }] }] },
  };
  return change('CREATE', all, null);
}

/** cilium-config with `enable-policy` set to `mode` (and the other keys of `data`). */
function ciliumConfig(objs: readonly Obj[], mode: string, data: Record<string, string> = {}): Change {
  const config = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'cilium-config')!;
  return change('UPDATE', { ...config, data: { ...(config['data'] as Record<string, string>), 'enable-policy': mode, ...data } }, config);
}

/** A decide whose budget never runs out (a fake clock): a cut would drop what the test counts. */
const uncut = (): Decide => createDecide(rules, defaultConfig(rules), { budget: { clock: { now: () => 0 } } });

/** A clock for the warm-up that moves only as the warm-up reads it. */
function tickingClock(): () => number {
  let ms = 0;
  return () => (ms += 0.01);
}

interface Work {
  readonly joins: number;
  readonly selections: number;
  readonly enforcementScans: number;
  readonly plans: number;
  readonly filtered: number;
}

/** The whole-cluster work `fn` does, counted in classes (or scans). */
function work<T>(fn: () => T): { value: T; work: Work } {
  const s = classSelections();
  const e = enforcementChangeScans();
  const p = classPlanComputations();
  const f = keptFilterJudgements();
  const j = classPlanJoins();
  const value = fn();
  return { value, work: { joins: classPlanJoins() - j, selections: classSelections() - s, enforcementScans: enforcementChangeScans() - e, plans: classPlanComputations() - p, filtered: keptFilterJudgements() - f } };
}

async function warmedUp(objs: readonly Obj[], decide: Decide = uncut()): Promise<ClusterState> {
  const state = stateFromObjects(objs as never);
  t.ok((await warmUpInSlices(decide, rules, () => state, 50, 500, 5, undefined, tickingClock())) > 0, 'the warm-up made decisions');
  return state;
}

t.test('the first CCNP {} after the warm-up selects no class: the namespaces\' CNP {} answers are found', async (t) => {
  const objs = generateCluster(PODS);
  const state = await warmedUp(objs);
  const first = work(() => uncut()(everyPodPolicy(), state));
  t.equal(first.work.selections, 0, 'no class asked about the subject selector');
  t.equal(first.work.plans, 0, 'no class key computed for a judging pass');
  const cold = stateFromObjects(objs as never);
  t.same(first.value, uncut()(everyPodPolicy(), cold), 'the verdict of a cold process');
});

t.test('the first cilium-config enable-policy switch after the warm-up judges no class\'s enforcement, either way', async (t) => {
  const objs = generateCluster(PODS);
  const state = await warmedUp(objs);
  for (const mode of ['always', 'default']) {
    // `default` -> `default` changes nothing; the state's own mode is `default`: its switch back is judged
    // on a state that says `always` (below).
    if (mode === 'default') continue;
    const first = work(() => uncut()(ciliumConfig(objs, mode), state));
    t.equal(first.work.enforcementScans, 0, `${mode}: ingressEnforcementChanged judged no class`);
    t.same(first.value, uncut()(ciliumConfig(objs, mode), stateFromObjects(objs as never)), `${mode}: the verdict of a cold process`);
  }
  // A state whose cilium-config says `always`, switched back to `default`: the table the warm-up fills is
  // the same one (the Cilium endpoints `default` leaves unenforced).
  const config = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'cilium-config')!;
  const alwaysObjs = objs.map((o) => (o === config ? { ...config, data: { ...(config['data'] as Record<string, string>), 'enable-policy': 'always' } } : o));
  const alwaysState = await warmedUp(alwaysObjs);
  const back = work(() => uncut()(ciliumConfig(alwaysObjs, 'default'), alwaysState));
  t.equal(back.work.enforcementScans, 0, 'always -> default: judged no class');
  t.same(back.value, uncut()(ciliumConfig(alwaysObjs, 'default'), stateFromObjects(alwaysObjs as never)), 'always -> default: the verdict of a cold process');
});

t.test('the first Namespace relabel into ambient after the table steps plans only the relabelled namespace\'s classes', async (t) => {
  const objs = generateCluster(PODS);
  // The table steps alone (at 50k pods the warm-up's own decisions relabel only a sample's namespaces).
  const state = stateFromObjects(objs as never);
  for (const step of tableSteps(state)) step();
  // team-0002 is unmeshed (bench/cluster-gen.ts flavourOf): its relabel makes hbone-15008-blocked judge
  // the ambient pods of every other namespace by ambientIngressClassKey (warmAmbientPlan planned them).
  const target = objs.find((o) => o.kind === 'Namespace' && o.metadata.name === 'team-0002')!;
  const relabel = change('UPDATE', { ...target, metadata: { ...target.metadata, labels: { ...target.metadata.labels, 'istio.io/dataplane-mode': 'ambient' } } }, target);
  const own = podClassesIn(state, 'team-0002').length;
  const first = work(() => uncut()(relabel, state));
  // Its own classes (by ambientIngressClassKey, and its API server clients by the API server key): 12 of
  // its 10 classes at 600 pods, against 52 when the other namespaces' ambient classes are planned too.
  t.ok(first.work.plans <= 2 * own, `${first.work.plans} classes planned (the relabelled namespace has ${own})`);
  t.same(first.value, uncut()(relabel, stateFromObjects(objs as never)), 'the verdict of a cold process');
});

t.test('a decision cut after the table steps leaves them built again (not dropped until the first request)', async (t) => {
  const objs = generateCluster(PODS);
  // Every decision is cut, as a budget cut does (the cluster-wide ones, then a CNP `{}` update, at 50k
  // pods): the memos that are not kept are dropped and the decision reports its budget spent. The
  // table steps run after the cluster-wide policies' decisions, and the cuts after them drop part of
  // what they built.
  const real = uncut();
  let cuts = 0;
  const cutting: Decide = (c, s) => {
    const d = real(c, s);
    cuts++;
    forgetCachedResults();
    return { ...d, incomplete: { reason: 'budget' } } as ReturnType<Decide>;
  };
  const state = await warmedUp(objs, cutting);
  t.ok(cuts > 0, `decisions cut: ${cuts}`);
  const first = work(() => uncut()(everyPodPolicy(), state));
  t.equal(first.work.selections, 0, 'CCNP {}: no class asked about the subject selector');
  t.equal(first.work.plans, 0, 'CCNP {}: no class key computed for a judging pass');
  const config = work(() => uncut()(ciliumConfig(objs, 'always'), state));
  t.equal(config.work.enforcementScans, 0, 'cilium-config: ingressEnforcementChanged judged no class');
});

t.test('near miss: settings that are not an enable-policy switch alone are judged in full, and right', async (t) => {
  const objs = generateCluster(PODS);
  const state = await warmedUp(objs);
  // `never` is no switch between `default` and `always`; nor is a change of another key with it.
  for (const [label, c] of [
    ['never', ciliumConfig(objs, 'never')],
    ['always and non-default-deny off', ciliumConfig(objs, 'always', { 'enable-non-default-deny-policies': 'false' })],
  ] as const) {
    const first = work(() => uncut()(c, state));
    t.equal(first.work.enforcementScans, 0, `${label}: not the switch's table (undefined: every pod judged)`);
    t.same(first.value, uncut()(c, stateFromObjects(objs as never)), `${label}: the verdict of a cold process`);
  }
});

t.test('near miss: a policy change between the warm-up and the request is judged again, and right', async (t) => {
  const objs = generateCluster(PODS);
  const state = await warmedUp(objs);
  // A namespace's default-deny CNP loses its ingress section: its classes are no longer enforced under
  // `default`, so the switch to `always` now changes their enforcement.
  const cnp = objs.find((o) => o.kind === 'CiliumNetworkPolicy' && o.metadata.name === 'default-deny-with-dns')!;
  const spec = cnp['spec'] as Record<string, unknown>;
  const egressOnly = { ...cnp, spec: { endpointSelector: spec['endpointSelector'], egress: spec['egress'] } };
  (state as unknown as { upsert(kind: string, o: unknown): void }).upsert('CiliumNetworkPolicy', transformObject('CiliumNetworkPolicy', egressOnly as unknown as Record<string, unknown>));
  const after = objs.map((o) => (o === cnp ? egressOnly : o));
  const first = work(() => uncut()(ciliumConfig(after, 'always'), state));
  t.ok(first.work.enforcementScans > 0, 'the switch\'s table is judged again for the new policy set');
  t.same(first.value, uncut()(ciliumConfig(after, 'always'), stateFromObjects(after as never)), 'the verdict of a cold process');
  const sel = work(() => uncut()(everyPodPolicy(), state));
  t.same(sel.value, uncut()(everyPodPolicy(), stateFromObjects(after as never)), 'CCNP {}: the verdict of a cold process');
});

t.test('what is kept per content outlives a budget cut: every pod\'s classified array and its classes', async (t) => {
  const state = stateFromObjects(generateCluster(PODS) as never);
  const pods = classifiedPods(state);
  const groups = groupsOf(pods);
  t.ok(groups !== undefined, 'registered with its classes');
  const key = apiserverClassKey(state);
  forgetCachedResults(); // what a decision cut at its budget does
  t.equal(classifiedPods(state), pods, 'the same array: what is kept per it (class plans, kept filters) is found');
  t.equal(groupsOf(pods), groups, 'still registered with its classes');
  t.equal(apiserverClassKey(state), key, 'the same API server class key function: the plans kept per it are found');
});

t.test('decisions cut before the rules run (as at 50k pods): the table steps alone leave the first CCNP {} and cilium-config (almost) no plan to compute', async (t) => {
  const objs = generateCluster(PODS);
  // At 50k pods every cluster-wide warm-up decision is cut at its 20 ms slice before the API server and
  // DNS rules judge: what those rules' passes keep (the API server clients of each namespace, the plans
  // over them) comes from the table steps or from the first request. A decide that judges nothing stands
  // for that here.
  const judgeNothing = (): ReturnType<Decide> => ({ allowed: true, findings: [], skipped: [], incomplete: { reason: 'budget' } }) as unknown as ReturnType<Decide>;
  // With the settings of the decide that serves (the API server clients the table steps keep per namespace).
  const nothing: Decide = Object.assign(judgeNothing, { settings: uncut().settings });
  const state = await warmedUp(objs, nothing);
  const first = work(() => uncut()(everyPodPolicy(), state));
  t.equal(first.work.plans, 0, 'CCNP {}: no class key computed for a judging pass (the API server clients\' plans included)');
  t.equal(first.work.filtered, 0, 'CCNP {}: no class asked whether it is an API server client');
  t.same(first.value, uncut()(everyPodPolicy(), stateFromObjects(objs as never)), 'CCNP {}: the verdict of a cold process');
  // cilium-config first on a state of its own (the CCNP {} above filled what it reads).
  const state2 = await warmedUp(objs, nothing);
  const config = work(() => uncut()(ciliumConfig(objs, 'always'), state2));
  t.ok(config.work.plans <= 2, `cilium-config: class keys computed: ${config.work.plans} (the two system namespaces' ambient probe check at most)`);
  t.same(config.value, uncut()(ciliumConfig(objs, 'always'), stateFromObjects(objs as never)), 'cilium-config: the verdict of a cold process');
  // Near miss: a decide whose settings name API server clients keeps its own filter (another token).
  const named = createDecide(rules, { ...defaultConfig(rules), settings: { ...defaultConfig(rules).settings, apiserverClients: [{ selector: { matchLabels: { app: 'app-1' } } }] } }, { budget: { clock: { now: () => 0 } } });
  const other = work(() => named(everyPodPolicy(), state));
  t.ok(other.work.filtered > 0, 'clients named in the config: their filter is judged, not the warmed one found');
  t.same(other.value, named(everyPodPolicy(), stateFromObjects(objs as never)), 'named clients: the verdict of a cold process');
});

t.test('decisions cut before the rules run: the first cluster-wide requests find their pod arrays and plans assembled', async (t) => {
  const objs = generateCluster(PODS);
  const judgeNothing = (): ReturnType<Decide> => ({ allowed: true, findings: [], skipped: [], incomplete: { reason: 'budget' } }) as unknown as ReturnType<Decide>;
  const nothing: Decide = Object.assign(judgeNothing, { settings: uncut().settings });
  const ccnp = objs.find((o) => o.kind === 'CiliumClusterwideNetworkPolicy' && o.metadata.name === 'allow-dns-everywhere')!;
  // (A cilium-config switch joins the two system namespaces' plans of the ambient probe check: 2 parts.)
  const requests: [string, () => Change, number][] = [
    ['a new CCNP {}', everyPodPolicy, 0],
    ['the DELETE of a cluster-wide policy', () => change('DELETE', null, ccnp), 0],
    ['an update of a cluster-wide policy that keeps its selector', () => change('UPDATE', { ...ccnp, metadata: { ...ccnp.metadata, labels: { team: 'dns' } } }, ccnp), 0],
    ['a cilium-config switch', () => ciliumConfig(objs, 'always'), 2],
  ];
  for (const [label, request, parts] of requests) {
    const state = await warmedUp(objs, nothing);
    const first = work(() => uncut()(request(), state));
    t.ok(first.work.joins <= parts, `${label}: per-namespace plans joined: ${first.work.joins} (at most ${parts})`);
    t.same(first.value, uncut()(request(), stateFromObjects(objs as never)), `${label}: the verdict of a cold process`);
  }
  // Near miss: a cluster-wide selector the state's policies do not have is assembled by its first send.
  const state = await warmedUp(objs, nothing);
  const narrow = change('CREATE', { apiVersion: 'cilium.io/v2', kind: 'CiliumClusterwideNetworkPolicy', metadata: { name: 'tier-web' }, spec: { endpointSelector: { matchLabels: { tier: 'web' } }, egress: dnsEgress } }, null);
  t.ok(work(() => uncut()(narrow, state)).work.joins > 0, 'another selector: joined on its first send');
});
