// The rules' prepare steps (core/rule.ts): run before evaluate in the webhook's sliced reviews, they must
// ask every per-class question evaluate asks (evaluate then computes or derives at most its wording's
// one-off questions), and change no
// answer. On the worst-case requests of issue 21 (bench/worst-case.ts) on a generated state, and on a
// near miss: an ingress-only policy, which changes no pod's egress: nothing to prepare. With a deny rule
// in the state too, where the wording asks every lost class which rule decided it.

import t from 'tap';

import { toChange } from '../../src/admission/review.ts';
import type { AdmissionReview } from '../../src/admission/schema.ts';
import { mutationOf } from '../../src/core/change.ts';
import type { Rule } from '../../src/core/rule.ts';
import { defaultConfig } from '../../src/config/config.ts';
import { baseFactsComputed } from '../../src/policy/reachability.ts';
import { reachComputations, reachDerivations } from '../../src/policy/reach-memo.ts';
import { allRules } from '../../src/rules/registry.ts';
import { overlay } from '../../src/state/overlay.ts';
import { inRequestScope } from '../../src/state/request-scope.ts';
import { stateFromObjects } from '../../src/state/snapshot.ts';
import { transformObject } from '../../src/state/transform.ts';
import { reachesDnsAsker } from '../../src/policy/dns.ts';
import { podRef, recordDenials } from '../../src/policy/index.ts';
import * as fx from '../fixtures/cluster.ts';
import { baseCluster, memoryState, ns } from '../fixtures/cluster.ts';
import { BULK_NAMESPACE, generateCluster } from '../../bench/cluster-gen.ts';
import { review } from '../../bench/requests.ts';
import { worstCaseRequests } from '../../bench/worst-case.ts';

const work = (): number => reachComputations() + reachDerivations() + baseFactsComputed();
const ctx = { settings: defaultConfig(allRules()).settings };
const objs = generateCluster(1500);
const baseState = stateFromObjects(objs);
const state = baseState;
const prepared = allRules().filter((r): r is Rule & Required<Pick<Rule, 'prepare'>> => r.prepare !== undefined);

t.test('the rules with a prepare step', async (t) => {
  t.same(prepared.map((r) => r.id).sort(), ['apiserver-egress-missing', 'dns-egress-missing']);
});

// worstCaseRequests reads the bulk namespace of a 50k-pod state for its relabel, not needed here.
const requests = worstCaseRequests([...objs, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: BULK_NAMESPACE } }]).filter((r) => r.object?.kind !== 'Namespace' && r.oldObject?.kind !== 'Namespace');
// The same state with a deny rule no DNS or API server flow matches (a cluster-wide egressDeny to a
// documentation range, as clusters deny the metadata address): the wordings then ask every lost class
// which rule decided it (impact/decided-by.ts), which prepare asks too.
const denyState = stateFromObjects([...objs, { apiVersion: 'cilium.io/v2', kind: 'CiliumClusterwideNetworkPolicy', metadata: { name: 'deny-doc-net' }, spec: { endpointSelector: {}, egressDeny: [{ toCIDR: ['203.0.113.0/24'] }] } }]);
for (const [req, state, withDeny] of requests.flatMap((r) => [[r, baseState, false], [r, denyState, true]] as const)) {
  const change = toChange(review(req.operation, req.object, req.oldObject) as unknown as AdmissionReview);
  for (const rule of prepared) {
    if (!rule.triggers.some((tr) => tr.kinds.includes(change.kind!) && tr.operations.includes(change.operation))) continue;
    t.test(`${rule.id}, ${req.label}${withDeny ? ', with a deny rule' : ''}: after prepare, evaluate asks nothing new and finds the same`, async (t) => {
      // The base's answers first (as serve's warm-up and earlier reviews leave them).
      inRequestScope(() => rule.evaluate(change, state, overlay(state, mutationOf(change)), ctx));
      const plain = inRequestScope(() => {
        const w = work();
        const found = rule.evaluate(change, state, overlay(state, mutationOf(change)), ctx);
        return { found, work: work() - w };
      });
      const withPrepare = inRequestScope(() => {
        const after = overlay(state, mutationOf(change));
        const w0 = work();
        let steps = 0;
        for (const _ of rule.prepare(change, state, after, ctx)) steps++;
        const w1 = work();
        const found = rule.evaluate(change, state, after, ctx);
        return { found, prepareWork: w1 - w0, evaluateWork: work() - w1, steps };
      });
      t.ok(plain.work > 0, `precondition: evaluate alone answers the overlay's classes (${plain.work})`);
      t.ok(withPrepare.prepareWork > 0, `prepare did that work (${withPrepare.prepareWork}, ${withPrepare.steps} steps)`);
      // Left to evaluate: the wording's one-off questions of one lost class (DNS over TCP for the stand-in,
      // which policy decides the loss), never one per class.
      t.ok(withPrepare.evaluateWork <= 2, `evaluate then found every per-class answer (${withPrepare.evaluateWork} new of ${plain.work})`);
      t.same(withPrepare.found, plain.found, 'the same findings');
    });
  }
}

t.test('near miss: an ingress-only policy (no pod\'s egress changes) leaves nothing to prepare', async (t) => {
  const change = toChange(
    review('CREATE', { apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: 'ingress-only', namespace: 'default' }, spec: { endpointSelector: {}, ingress: [{}] } }, null) as unknown as AdmissionReview,
  );
  for (const rule of prepared) {
    const n = inRequestScope(() => {
      const after = overlay(state, mutationOf(change));
      let steps = 0;
      const w = work();
      for (const _ of rule.prepare(change, state, after, ctx)) steps++;
      return { steps, work: work() - w };
    });
    t.same(n, { steps: 0, work: 0 }, rule.id);
  }
});

t.test('a pod event between prepare and evaluate keeps what prepare asked (the overlay keeps its content token)', async (t) => {
  const live = stateFromObjects(objs);
  const [ccnp] = requests;
  const change = toChange(review(ccnp!.operation, ccnp!.object, ccnp!.oldObject) as unknown as AdmissionReview);
  const template = objs.find((o) => o.kind === 'Pod' && o.metadata.namespace?.startsWith('team-'))!;
  for (const rule of prepared) {
    inRequestScope(() => rule.evaluate(change, live, overlay(live, mutationOf(change)), ctx)); // the base's answers
    const r = inRequestScope(() => {
      const after = overlay(live, mutationOf(change));
      for (const _ of rule.prepare(change, live, after, ctx)) void _;
      // A replica more of an existing class: a watch event while the event loop was handed back.
      const copy = structuredClone(template) as typeof template & { metadata: { name: string; uid?: string } };
      copy.metadata.name = `${copy.metadata.name}-${rule.id}`;
      copy.metadata.uid = `uid-${rule.id}`;
      live.upsert('Pod', transformObject('Pod', copy));
      const w = work();
      const found = rule.evaluate(change, live, after, ctx);
      return { found, work: work() - w };
    });
    const fresh = inRequestScope(() => rule.evaluate(change, live, overlay(live, mutationOf(change)), ctx));
    t.ok(r.work <= 2, `${rule.id}: evaluate after the event found prepare's answers (${r.work} new)`);
    t.same(r.found, fresh, `${rule.id}: the same findings as on a fresh overlay after the event`);
  }
});

t.test("ifKept asks nothing that would not be kept: a DNS server's own class is judged on its own", async (t) => {
  const backend = state.list('Pod').find((p) => p.metadata.namespace === 'kube-system' && p.metadata.labels?.['k8s-app'] === 'kube-dns')!;
  t.ok(backend, 'precondition: the generated state has a kube-dns pod');
  const ask = reachesDnsAsker(state);
  const w = work();
  t.equal(ask.ifKept(backend), undefined);
  t.equal(work() - w, 0, 'nothing computed for it');
  ask(backend);
  t.equal(work() - w, 1, 'asked plainly, it is computed (and not kept)');
  ask(backend);
  t.equal(work() - w, 2, 'and computed again');
});

t.test('under recordDenials an asker keeps the denials per class, and names the pod asked when it replays them', async (t) => {
  // Two replicas (one class) whose egress a policy enforces without allowing DNS: denied at the source.
  const small = memoryState(baseCluster([ns('shop'), fx.pod('shop', 'web-1', { app: 'web' }), fx.pod('shop', 'web-2', { app: 'web' }), fx.cnp('shop', 'web-out', { endpointSelector: { matchLabels: { app: 'web' } }, egress: [{ toEntities: ['world'] }] })]));
  const [a, b] = ['web-1', 'web-2'].map((n) => small.get('Pod', 'shop', n)!);
  inRequestScope(() => {
    const ask = reachesDnsAsker(small);
    const w = work();
    const first = recordDenials(() => ask(a!));
    const second = recordDenials(() => ask(b!));
    t.equal(work() - w, 1, 'one decision for the class');
    t.equal(first.result, false, 'precondition: no DNS');
    t.equal(second.result, first.result);
    t.ok(first.denials.some((d) => d.direction === 'egress' && d.subject === podRef(a!)), 'precondition: decided at the pod asked (its egress)');
    t.same(second.denials.map((d) => d.subject), first.denials.map((d) => (d.subject === podRef(a!) ? podRef(b!) : d.subject)), 'the replay names the pod asked where the first named its own');
    t.same(second.denials.map((d) => d.decidedBy), first.denials.map((d) => d.decidedBy), 'the same rule decided');
  });
});
