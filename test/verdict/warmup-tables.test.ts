// The warm-up fills the long-lived state's per-class tables that cluster-wide requests read (issue 21:
// the first worst-case request served after start-up judged every class from cold tables): the DNS and
// API server reach tables and the base's decision facts the overlays derive from, a class per step.
import t from 'tap';
import { toChange } from '../../src/admission/review.ts';
import type { AdmissionReview } from '../../src/admission/schema.ts';
import { defaultConfig } from '../../src/config/config.ts';
import type { Change } from '../../src/core/change.ts';
import type { Decide } from '../../src/core/decision.ts';
import type { ClusterState } from '../../src/core/objects.ts';
import { xdsNamespaceScans } from '../../src/policy/control-plane.ts';
import { baseFactsComputed } from '../../src/policy/reachability.ts';
import { endpointLabels } from '../../src/policy/selectors.ts';
import { reachComputations } from '../../src/policy/reach-memo.ts';
import { allRules } from '../../src/rules/registry.ts';
import { forgetCachedResults } from '../../src/state/request-scope.ts';
import { stateFromObjects } from '../../src/state/snapshot.ts';
import { transformObject } from '../../src/state/transform.ts';
import { createDecide } from '../../src/verdict/decide.ts';
import { warmUpInSlices } from '../../src/verdict/warmup.ts';
import { generateCluster, type Obj } from '../../bench/cluster-gen.ts';
import { review } from '../../bench/requests.ts';

const PODS = 600;
const rules = allRules();
const dnsEgress = [{ toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s-app': 'kube-dns' } }], toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }] }] }];

/** The cluster-wide requests of bench/worst-case.ts that a state of PODS pods has the objects for. */
function clusterWide(objs: readonly Obj[]): { readonly label: string; readonly change: Change }[] {
  const config = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'cilium-config')!;
  const dns = objs.find((o) => o.kind === 'CiliumClusterwideNetworkPolicy' && o.metadata.name === 'allow-dns-everywhere')!;
  const all = {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumClusterwideNetworkPolicy',
    metadata: { name: 'every-pod' },
    spec: { endpointSelector: {}, egress: [...dnsEgress, { toEndpoints: [{ matchLabels: { app: 'app-2' } }], toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }] }] }] },
  };
  const always = { ...config, data: { ...(config['data'] as Record<string, string>), 'enable-policy': 'always' } };
  const change = (operation: string, object: Obj | null, old: Obj | null): Change => toChange(review(operation, object, old) as unknown as AdmissionReview);
  return [
    { label: 'CCNP endpointSelector {} with egress', change: change('CREATE', all, null) },
    { label: 'cilium-config enable-policy=always', change: change('UPDATE', always, config) },
    { label: 'DELETE of the cluster-wide DNS policy', change: change('DELETE', null, dns) },
  ];
}

/** A decide whose budget never runs out (a fake clock): a cut would drop what the test counts. */
const uncut = (): Decide => createDecide(rules, defaultConfig(rules), { budget: { clock: { now: () => 0 } } });

/** A clock for the warm-up that moves only as the warm-up reads it: every budget and slice is counted exactly. */
function tickingClock(): () => number {
  let ms = 0;
  return () => (ms += 0.01);
}

async function warmedUp(objs: readonly Obj[]): Promise<{ state: ClusterState; decide: Decide }> {
  const state = stateFromObjects(objs as never);
  const decide = uncut();
  t.ok((await warmUpInSlices(decide, rules, () => state, 50, 500, 5, undefined, tickingClock())) > 0, 'the warm-up made decisions');
  return { state, decide };
}

/** What a decision computed of the per-class tables: answers computed, decision facts computed. */
function counted<T>(fn: () => T): { value: T; computed: number; facts: number } {
  const c = reachComputations();
  const f = baseFactsComputed();
  const value = fn();
  return { value, computed: reachComputations() - c, facts: baseFactsComputed() - f };
}

t.test('the first cluster-wide decision after the warm-up computes no class', async (t) => {
  const objs = generateCluster(PODS);
  const { state, decide } = await warmedUp(objs);
  const cold = uncut();
  const coldState = stateFromObjects(objs as never);
  for (const r of clusterWide(objs)) {
    const first = counted(() => decide(r.change, state));
    t.equal(first.computed, 0, `${r.label}: no class's answer computed`);
    t.equal(first.facts, 0, `${r.label}: no decision fact computed`);
    t.same(first.value, cold(r.change, coldState), `${r.label}: the verdict of a cold process`);
  }
});

t.test('the xDS clients are found by the warm-up, a namespace per step, and survive a budget cut', async (t) => {
  const objs = generateCluster(PODS);
  const { state, decide } = await warmedUp(objs);
  forgetCachedResults();
  const [, config] = clusterWide(objs);
  const scans = xdsNamespaceScans();
  decide(config!.change, state);
  t.equal(xdsNamespaceScans() - scans, 0, 'the cilium-config request scans no namespace for xDS clients');
});

t.test('endpoint labels outlive a budget cut (the first cluster-wide selection after the warm-up reads every identity)', async (t) => {
  const state = stateFromObjects(generateCluster(PODS) as never);
  const pod = state.list('Pod')[0]!;
  const labels = endpointLabels(state, pod);
  forgetCachedResults();
  t.equal(endpointLabels(state, pod), labels, 'the same object: not built again');
});

t.test('the tables outlive a budget cut after the warm-up', async (t) => {
  const objs = generateCluster(PODS);
  const { state, decide } = await warmedUp(objs);
  forgetCachedResults(); // what a decision cut at its budget does
  for (const r of clusterWide(objs)) {
    const first = counted(() => decide(r.change, state));
    t.equal(first.computed + first.facts, 0, `${r.label}: nothing computed`);
  }
});

t.test('near miss: a class that appears after the warm-up is computed by the first request that asks it', async (t) => {
  const objs = generateCluster(PODS);
  const { state, decide } = await warmedUp(objs);
  const some = objs.find((o) => o.kind === 'Pod' && o.metadata.namespace?.startsWith('team-'))!;
  // A new Deployment's pod: labels no pod had, so a class of its own.
  const fresh = { ...some, metadata: { ...some.metadata, name: 'brand-new-0', labels: { app: 'brand-new' } }, status: { ...(some['status'] as object), podIP: '10.251.0.1', podIPs: [{ ip: '10.251.0.1' }] } };
  (state as unknown as { upsert(kind: string, o: unknown): void }).upsert('Pod', transformObject('Pod', fresh as unknown as Record<string, unknown>));
  const [all] = clusterWide(objs);
  const first = counted(() => decide(all!.change, state));
  t.ok(first.computed + first.facts > 0, `the new class is judged (${first.computed} answers, ${first.facts} facts computed)`);
  const second = counted(() => decide(all!.change, state));
  t.equal(second.computed + second.facts, 0, 'and kept for the next request');
});

t.test('the table steps hand the event loop back: a class per step', async (t) => {
  const objs = generateCluster(PODS);
  const state = stateFromObjects(objs as never);
  // The warm-up's clock moves by 1 ms per decision fact computed (and a little per read): a step that
  // filled many classes at once would hold the loop for many ms of this clock.
  let reads = 0;
  const now = (): number => baseFactsComputed() + (reads += 0.001);
  const factsAtTurn: number[] = [];
  let running = true;
  const turn = (): void => {
    factsAtTurn.push(baseFactsComputed());
    if (running) setImmediate(turn);
  };
  setImmediate(turn);
  const f0 = baseFactsComputed();
  await warmUpInSlices(uncut(), rules, () => state, 50, 50_000, 6, undefined, now);
  running = false;
  const filled = baseFactsComputed() - f0;
  t.ok(filled > 50, `facts filled by the warm-up: ${filled}`);
  let most = 0;
  for (let i = 1; i < factsAtTurn.length; i++) most = Math.max(most, factsAtTurn[i]! - factsAtTurn[i - 1]!);
  // Half a slice (3 ms) plus one class's facts (a few DNS backends and API server addresses, both directions).
  t.ok(most <= 3 + 10, `at most ${most} facts computed between two turns of the loop`);
});
