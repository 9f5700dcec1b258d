// The policy layer's memos (src/policy/memo.ts) and the store's label keys hold their stable entries on
// their keys (ScopedWeakMap onKey; issue 21: a WeakMap entry per key left V8's major collections 10-19
// ms of marking for their final pause at 50k pods). Checked through the memos themselves.

import t from 'tap';

import { namespaceClasses, podIdentities } from '../../src/policy/memo.ts';
import { entriesOnKey, forgetCachedResults } from '../../src/state/request-scope.ts';
import { stateFromObjects } from '../../src/state/snapshot.ts';
import type { Pod } from '../../src/core/objects.ts';
import { ns, pod } from '../fixtures/cluster.ts';

t.test('memo(), keptMemo() and pureMemo() maps hold entries on their keys', async (t) => {
  const pods: Pod[] = [pod('a', 'web-1', { app: 'web' }) as unknown as Pod];
  const before = entriesOnKey(pods);
  namespaceClasses.set(pods, []);
  t.equal(entriesOnKey(pods), before + 1, 'pureMemo: namespaceClasses');
  const p = pods[0]!;
  const n = entriesOnKey(p);
  podIdentities.set(p, { namespace: undefined, identity: 'x' });
  t.equal(entriesOnKey(p), n + 1, 'memo: podIdentities');
  forgetCachedResults();
  t.equal(podIdentities.get(p), undefined, 'a memo() map still forgets on a budget cut');
  t.same(namespaceClasses.get(pods), [], 'a pureMemo keeps its entry');
});

t.test("the store's label keys are held on each label map", async (t) => {
  const state = stateFromObjects([ns('a'), pod('a', 'web-1', { app: 'web', tier: 'front' }), pod('a', 'web-2', { app: 'web', tier: 'front' })]);
  const hits = state.podsWithLabel('a', 'app', 'web');
  t.equal(hits.length, 2, 'the index answers');
  for (const p of hits) t.ok(entriesOnKey(p.metadata.labels!) >= 1, `${p.metadata.name}: an entry on its labels`);
});
