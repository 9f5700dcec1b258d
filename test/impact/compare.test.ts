import t from 'tap';

import { askPerClass, capVictims, compareLoss, compareReach, diffKeyed, judgeByClass } from '../../src/impact/index.ts';
import { BudgetExceeded, checkBudget, withBudget } from '../../src/core/budget.ts';
import type { ClusterState, Pod } from '../../src/core/objects.ts';
import { groupsOf, podRef, reachesDns, readsNode, withClasses, type PodClass } from '../../src/policy/index.ts';
import * as fx from '../fixtures/cluster.ts';
import { baseCluster, cnp, findPod, memoryState, ns } from '../fixtures/cluster.ts';

function pod(name: string, labels: Record<string, string>, node = 'n1'): Pod {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'ns', labels }, spec: { containers: [], nodeName: node }, status: { phase: 'Running' } };
}
const before = { revision: 1 } as unknown as ClusterState;
const after = { revision: 2 } as unknown as ClusterState;

t.test('judgeByClass calls the predicate once per class, not per item, and counts every item', async (t) => {
  const items = ['a1', 'a2', 'b1', 'a3', 'c1', 'b2'];
  let calls = 0;
  const r = judgeByClass(items, (s) => s[0]!, (s) => {
    calls++;
    return { outcome: s.startsWith('a') ? 'lost' : s.startsWith('b') ? 'still' : 'ok', detail: s };
  });
  t.equal(calls, 3);
  t.equal(r.classes, 3);
  t.same(r.lost, ['a1', 'a2', 'a3']);
  t.same(r.stillMissing, ['b1', 'b2']);
  t.same(r.lostClasses.map((c) => [c.key, c.first, c.count, c.detail]), [['a', 'a1', 3, 'a1']]);
  t.same(r.stillClasses.map((c) => [c.key, c.first, c.count]), [['b', 'b1', 2]]);
});

t.test('a judge that throws skips its class only', async (t) => {
  const r = judgeByClass(['x', 'y'], (s) => s, (s) => {
    if (s === 'x') throw new Error('odd input');
    return { outcome: 'lost' };
  });
  t.same(r.lost, ['y']);
  t.equal(r.classes, 2);
});

t.test('compareLoss: replicas share one verdict (one call per state per class); a class lost on one pod only counts once', async (t) => {
  const web = [pod('web-1', { app: 'web' }), pod('web-2', { app: 'web' }), pod('web-3', { app: 'web' })];
  const db = pod('db-1', { app: 'db' });
  const seen: string[] = [];
  const ok = (state: ClusterState, p: Pod): boolean => {
    seen.push(`${state === before ? 'b' : 'a'}:${p.metadata.name}`);
    // The web class worked before and not after; db never worked.
    return p.metadata.labels?.['app'] === 'web' ? state === before : false;
  };
  const r = compareLoss([...web, db], before, after, ok);
  t.same(r.lost.map((p) => p.metadata.name), ['web-1', 'web-2', 'web-3']);
  t.same(r.stillMissing.map((p) => p.metadata.name), ['db-1']);
  t.same(seen, ['a:web-1', 'b:web-1', 'a:db-1', 'b:db-1']);
});

t.test('compareLoss: a near miss (one label differs) is its own class', async (t) => {
  const a = pod('a', { app: 'web' });
  const b = pod('b', { app: 'web', tier: 'canary' });
  const r = compareLoss([a, b], before, after, (state, p) => (p === b ? state === before : true));
  t.same(r.lost.map((p) => p.metadata.name), ['b']);
  t.same(r.stillMissing, []);
});

t.test('compareReach: lost when fewer targets are reached than before, still missing when as many', async (t) => {
  const p1 = pod('p1', { app: 'one' });
  const p2 = pod('p2', { app: 'two' });
  const reach = (state: ClusterState, p: Pod): string[] => {
    if (p === p1) return state === before ? ['10.0.0.1', '10.0.0.2'] : ['10.0.0.2'];
    return state === before ? ['10.0.0.1'] : ['10.0.0.2']; // swapped: nothing worse
  };
  const r = compareReach([p1, p2], before, after, ['10.0.0.1', '10.0.0.2'], reach, (p) => p.metadata.name);
  t.same(r.lost, [p1]);
  t.same(r.stillMissing, [p2]);
  t.same(r.lostTargets, ['10.0.0.1']);
});

// Pods registered with their classes, as classifiedPods hands them out: the classes' pods one after another.
function grouped(classes: readonly (readonly Pod[])[]): { pods: readonly Pod[]; groups: PodClass[] } {
  const groups = classes.map((c, i) => ({ key: `class-${i}`, pods: c }));
  return { pods: withClasses(classes.flat(), groups), groups };
}
const byApp = (p: Pod): string => p.metadata.labels?.['app'] ?? '';

t.test('judgeByClass on grouped pods: lost and still-missing pods gathered per class, registered with their classes', async (t) => {
  const web = [pod('web-1', { app: 'web' }), pod('web-2', { app: 'web' })];
  const db = [pod('db-1', { app: 'db' })];
  const api = [pod('api-1', { app: 'api' }), pod('api-2', { app: 'api' })];
  const { pods } = grouped([web, db, api]);
  const r = judgeByClass(pods, byApp, (p) => ({ outcome: byApp(p) === 'db' ? 'still' : byApp(p) === 'api' ? 'lost' : 'ok' }));
  t.same(r.lost.map((p) => p.metadata.name), ['api-1', 'api-2']);
  t.same(r.stillMissing.map((p) => p.metadata.name), ['db-1']);
  t.not(r.lost, pods, 'a part of the input is a new array');
  t.same(groupsOf(r.lost)?.map((g) => g.pods.map((p) => p.metadata.name)), [['api-1', 'api-2']], 'the lost pods carry their classes');
  t.same(groupsOf(r.stillMissing)?.map((g) => g.pods.length), [1]);
  t.same(r.lostClasses.map((c) => [c.key, c.count]), [['api', 2]]);
});

t.test('judgeByClass on grouped pods: every pod lost is the input array itself, no pod lost an empty array', async (t) => {
  const { pods } = grouped([[pod('a-1', { app: 'a' }), pod('a-2', { app: 'a' })], [pod('b-1', { app: 'b' })]]);
  const all = judgeByClass(pods, byApp, () => ({ outcome: 'lost' }));
  t.equal(all.lost, pods, 'no copy of every pod');
  t.equal(all.lost.length, 3);
  t.same(all.stillMissing, []);
  t.same(all.lostClasses.map((c) => c.count), [2, 1]);
  const none = judgeByClass(pods, byApp, () => ({ outcome: 'ok' }));
  t.same(none.lost, []);
  t.same(none.stillMissing, []);
  // Still missing everywhere is the same: the input array.
  t.equal(judgeByClass(pods, byApp, () => ({ outcome: 'still' })).stillMissing, pods);
});

t.test('judgeByClass on grouped pods: a class split by node, every pod lost, gathers every pod once (not the input order)', async (t) => {
  // A key that reads the node: the class of a-1 (node n1), a-2 (n2), a-3 (n1) is judged per node, so its
  // units run a-1, a-3 then a-2; the input is not in unit order and must not be handed back as is.
  const a = [pod('a-1', { app: 'a' }, 'n1'), pod('a-2', { app: 'a' }, 'n2'), pod('a-3', { app: 'a' }, 'n1')];
  const { pods } = grouped([a, [pod('b-1', { app: 'b' }, 'n1')]]);
  const key = readsNode((p: Pod) => `${byApp(p)}@${p.spec.nodeName}`, (p: Pod) => p.spec.nodeName ?? '');
  let calls = 0;
  const r = judgeByClass(pods, key, () => {
    calls++;
    return { outcome: 'lost' };
  });
  t.equal(calls, 3, 'a@n1, a@n2, b@n1');
  t.same([...r.lost].map((p) => p.metadata.name).sort(), ['a-1', 'a-2', 'a-3', 'b-1']);
  t.not(r.lost, pods);
  t.same(groupsOf(r.lost)?.reduce((n, g) => n + g.pods.length, 0), 4);
  t.same(r.lostClasses.map((c) => [c.key, c.count]), [['a@n1', 2], ['a@n2', 1], ['b@n1', 1]]);
});

t.test('compareReach: lost classes with the same answer arrays share a verdict; another answer gets its own lost targets', async (t) => {
  const targets = ['10.0.0.1', '10.0.0.2', '10.0.0.3'];
  const onlyThird = ['10.0.0.3'];
  const onlyFirst = ['10.0.0.1'];
  const ps = ['a', 'b', 'c', 'd'].map((n) => pod(n, { app: n }));
  // Before, every class reaches every target (one shared array). After: a and b reach the third target
  // only (shared array: lost 1 and 2), c the first only (lost 2 and 3), d an equal array of its own.
  const reach = (state: ClusterState, p: Pod): readonly string[] => {
    if (state === before) return targets;
    return p.metadata.name === 'c' ? onlyFirst : p.metadata.name === 'd' ? ['10.0.0.3'] : onlyThird;
  };
  const r = compareReach(ps, before, after, targets, reach, (p) => p.metadata.name);
  t.same(r.lost.map((p) => p.metadata.name), ['a', 'b', 'c', 'd']);
  t.same(r.lostTargets, targets, 'c lost the third target, which a and b kept');
  // Only a and b (and d): the third target is not lost.
  const ab = compareReach([ps[0]!, ps[1]!, ps[3]!], before, after, targets, reach, (p) => p.metadata.name);
  t.same(ab.lostTargets, ['10.0.0.1', '10.0.0.2']);
  // c first, then a: the verdict kept for c's answers is not a's.
  const ca = compareReach([ps[2]!, ps[0]!], before, after, targets, reach, (p) => p.metadata.name);
  t.same(ca.lostTargets, targets);
});

t.test('diffKeyed: added and kept problems, one per key', async (t) => {
  const c = (key: string, n: number) => ({ key, n });
  const r = diffKeyed([c('k1', 0)], [c('k1', 1), c('k2', 2), c('k2', 3), c('k1', 4)]);
  t.same(r.added, [c('k2', 2)]);
  t.same(r.kept, [c('k1', 1)]);
});

t.test('capVictims: lists at most max, counts all (no off-by-one at the boundary)', async (t) => {
  const five = [1, 2, 3, 4, 5];
  t.same(capVictims(five, 5), { listed: five, count: 5 });
  t.same(capVictims([...five, 6], 5), { listed: five, count: 6 });
  t.same(capVictims([1, 2, 3, 4], 5), { listed: [1, 2, 3, 4], count: 4 });
  t.same(capVictims([], 5), { listed: [], count: 0 });
});

t.test('decidedBy: which lost pods a deny decides (named) and which default deny decides; asked only when read', async (t) => {
  const kubeDns = { matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s:k8s-app': 'kube-dns' } };
  const dnsAllow = { toEndpoints: [kubeDns], toPorts: [{ ports: [{ port: '53', protocol: 'UDP' }] }] };
  const objects = [ns('app'), fx.pod('app', 'web-1', { app: 'web' }), fx.pod('app', 'web-2', { app: 'web' }), fx.pod('app', 'api-1', { app: 'api' })];
  const b = memoryState(baseCluster([...objects, cnp('app', 'dns', { endpointSelector: {}, egress: [dnsAllow] })]));
  const a = memoryState(baseCluster([
    ...objects,
    // web: the allow is still there, and a deny on the cluster entity wins over it.
    cnp('app', 'dns', { endpointSelector: { matchLabels: { app: 'web' } }, egress: [dnsAllow], egressDeny: [{ toEntities: ['world'] }, { toEntities: ['cluster'] }] }),
    // api: egress-enforced with no DNS allow.
    cnp('app', 'api', { endpointSelector: { matchLabels: { app: 'api' } }, egress: [{ toEntities: ['world'] }] }),
  ]));
  let calls = 0;
  const ok = (s: ClusterState, p: Pod): boolean => {
    calls++;
    return reachesDns(s, p) === true;
  };
  const pods = [findPod(a, 'app/web-1'), findPod(a, 'app/web-2'), findPod(a, 'app/api-1')];
  const r = compareLoss(pods, b, a, ok);
  t.same(r.lost.map(podRef), ['app/web-1', 'app/web-2', 'app/api-1']);
  t.equal(calls, 4, 'two classes, two states: not one call more until decidedBy is read');
  const d = r.decidedBy!;
  t.same(d.byDeny.map(podRef), ['app/web-1', 'app/web-2']);
  t.same(d.byDefault.map(podRef), ['app/api-1']);
  t.same(d.denies.map((m) => [m.policy.name, m.section, m.index, m.peers]), [['dns', 'egressDeny', 1, [{ type: 'entity', entity: 'cluster' }]]]);
  t.equal(calls, 6, 'reading it asks each lost class once more');
  t.equal(r.decidedBy, d, 'kept once computed');
  t.same(r.stillDecidedBy, { denies: [], byDeny: [], byDefault: [] });
});

t.test('a spent evaluation budget ends the judging at once: it is not an item error to skip', async (t) => {
  // judgeByClass skips an item whose judge throws (odd input); a BudgetExceeded is not that: swallowed,
  // every later item threw one of its own (a stack trace each), and a 20 ms warm-up decision ran 60-70 ms.
  const items = Array.from({ length: 100 }, (_, i) => `item-${i}`);
  let now = 0;
  let judged = 0;
  const run = () =>
    withBudget(
      10,
      () =>
        judgeByClass(items, (x) => x, () => {
          judged++;
          now += 1; // each item takes 1 ms of the budget's clock
          checkBudget();
          return { outcome: 'ok' as const };
        }),
      { clock: { now: () => now }, stride: 1 },
    );
  t.throws(run, BudgetExceeded, 'the BudgetExceeded comes out of the judging');
  t.ok(judged <= 11, `no item judged after the budget ran out (${judged})`);
  // An ordinary error is still the item's: skipped, the others judged.
  const r = judgeByClass(items.slice(0, 3), (x) => x, (x) => {
    if (x === 'item-1') throw new Error('odd input');
    return { outcome: 'lost' as const };
  });
  t.equal(r.lost.length, 2);
});

t.test('askPerClass asks the pod judgeByClass judges, once per class, a few classes per step', async (t) => {
  const classes = Array.from({ length: 7 }, (_, i) => [pod(`c${i}-1`, { app: `c${i}` }), pod(`c${i}-2`, { app: `c${i}` })]);
  // Two classes with one key: one unit asked for both, as judgeByClass judges one.
  classes.push([pod('c0-3', { app: 'c0' })]);
  const { pods } = grouped(classes);
  const judged: string[] = [];
  judgeByClass(pods, byApp, (p) => (judged.push(p.metadata.name), { outcome: 'ok' }));
  const asked: string[] = [];
  const steps = askPerClass(pods, byApp, () => (p) => void asked.push(p.metadata.name), [], 3);
  const perStep: number[] = [];
  let r = steps.next();
  perStep.push(asked.length);
  while (r.done !== true) {
    r = steps.next();
    perStep.push(asked.length);
  }
  t.same(asked, judged, 'the same pods, in the same order');
  t.equal(asked.length, 7);
  t.same(perStep, [3, 6, 7], 'three classes per step, the rest in the last');

  // Not grouped: one per distinct key, in input order.
  const loose = [pod('x-1', { app: 'x' }), pod('y-1', { app: 'y' }), pod('x-2', { app: 'x' })];
  const looseAsked: string[] = [];
  for (const _ of askPerClass(loose, byApp, () => (p) => void looseAsked.push(p.metadata.name), [], 1)) void _;
  t.same(looseAsked, ['x-1', 'y-1']);
});

t.test('askPerClass skips an ask that throws, but a spent budget ends it', async (t) => {
  const { pods } = grouped([[pod('a-1', { app: 'a' })], [pod('b-1', { app: 'b' })], [pod('c-1', { app: 'c' })]]);
  const asked: string[] = [];
  for (const _ of askPerClass(pods, byApp, () => (p) => {
    asked.push(p.metadata.name);
    if (p.metadata.name === 'a-1') throw new Error('odd input');
  }, [])) void _;
  t.same(asked, ['a-1', 'b-1', 'c-1'], 'odd input is the check\'s to meet: the next classes are still asked');
  let n = 0;
  t.throws(
    () =>
      withBudget(10, () => {
        for (const _ of askPerClass(pods, byApp, () => () => {
          n++;
          checkBudget();
        }, [])) void _;
      }, { clock: { now: () => (n === 0 ? 0 : 100) }, stride: 1 }),
    BudgetExceeded,
  );
  t.equal(n, 1, 'no class asked after the budget ran out');
});

t.test('askPerClass makes its asker again when a state moved between two steps, not otherwise', async (t) => {
  const { pods } = grouped(Array.from({ length: 6 }, (_, i) => [pod(`c${i}-1`, { app: `c${i}` })]));
  const state = { revision: 7 } as { revision: number };
  const other = { revision: 1 } as { revision: number };
  const made: number[] = [];
  const askedBy: string[] = [];
  const steps = askPerClass(pods, byApp, () => {
    const asker = made.length;
    made.push(state.revision);
    return (p) => void askedBy.push(`${asker}:${p.metadata.name}`);
  }, [other as unknown as ClusterState, state as unknown as ClusterState], 2);
  steps.next(); // c0, c1
  steps.next(); // c2, c3 (nothing moved)
  state.revision = 8; // a watch event while the event loop was handed back
  steps.next(); // c4, c5 by a new asker
  t.same(made, [7, 8], 'one asker per revision met');
  t.same(askedBy, ['0:c0-1', '0:c1-1', '0:c2-1', '0:c3-1', '1:c4-1', '1:c5-1']);
});
