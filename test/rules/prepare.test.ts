// The rules' prepare steps (core/rule.ts): run before evaluate in the webhook's sliced reviews, they must
// ask every per-class question evaluate asks (evaluate then computes or derives at most its wording's
// one-off questions), and change no
// answer. On the worst-case requests of issue 21 (bench/worst-case.ts) on a generated state, and on a
// near miss: an ingress-only policy, which changes no pod's egress: nothing to prepare. (The questions
// asked under recordDenials, which policy decides a loss, are never kept, so never prepared: `work()`
// does not count them, and the generated state has no deny rule that would make evaluate ask them.)

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
import { BULK_NAMESPACE, generateCluster } from '../../bench/cluster-gen.ts';
import { review } from '../../bench/requests.ts';
import { worstCaseRequests } from '../../bench/worst-case.ts';

const work = (): number => reachComputations() + reachDerivations() + baseFactsComputed();
const ctx = { settings: defaultConfig(allRules()).settings };
const objs = generateCluster(1500);
const state = stateFromObjects(objs);
const prepared = allRules().filter((r): r is Rule & Required<Pick<Rule, 'prepare'>> => r.prepare !== undefined);

t.test('the rules with a prepare step', async (t) => {
  t.same(prepared.map((r) => r.id).sort(), ['apiserver-egress-missing', 'dns-egress-missing']);
});

// worstCaseRequests reads the bulk namespace of a 50k-pod state for its relabel, not needed here.
const requests = worstCaseRequests([...objs, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: BULK_NAMESPACE } }]).filter((r) => r.object?.kind !== 'Namespace' && r.oldObject?.kind !== 'Namespace');
for (const req of requests) {
  const change = toChange(review(req.operation, req.object, req.oldObject) as unknown as AdmissionReview);
  for (const rule of prepared) {
    if (!rule.triggers.some((tr) => tr.kinds.includes(change.kind!) && tr.operations.includes(change.operation))) continue;
    t.test(`${rule.id}, ${req.label}: after prepare, evaluate asks nothing new and finds the same`, async (t) => {
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
