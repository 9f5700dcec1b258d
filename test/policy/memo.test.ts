// perContentOf: derived data kept per content of the kinds it reads, across changes of other kinds.

import t from 'tap';
import { perContentOf } from '../../src/policy/memo.ts';
import { mutationOf } from '../../src/core/change.ts';
import { overlay } from '../../src/state/overlay.ts';
import type { ClusterState, KubeObject } from '../../src/core/objects.ts';
import { baseCluster, memoryState, ns, pod } from '../fixtures/cluster.ts';
import { makeChange } from '../rules/rule-harness.ts';

type Obj = Parameters<typeof makeChange>[1] & object;

t.test('kept while other kinds change, recomputed when a kind it reads changes', async (t) => {
  const s = memoryState(baseCluster([ns('a'), pod('a', 'web-1', { app: 'web' })]));
  let computed = 0;
  const namespaces = (state: ClusterState = s): string[] => perContentOf(state, 'test:namespaces', ['Pod', 'Namespace'], () => {
    computed++;
    return state.list('Namespace').map((n) => n.metadata.name).sort();
  });
  const first = namespaces();
  t.equal(computed, 1);
  t.equal(namespaces(), first, 'asked again: the same value');

  s.upsert('Service', { apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'a', name: 'web' }, spec: {} } as KubeObject);
  t.equal(namespaces(), first, 'a kind it does not read changed: kept');
  t.equal(computed, 1);

  s.upsert('Namespace', ns('b') as KubeObject);
  t.ok(namespaces().includes('b'), 'the last kind listed changed: recomputed');
  t.equal(computed, 2);
  const second = namespaces();
  const web = s.get('Pod', 'a', 'web-1')!;
  s.upsert('Pod', { ...web, metadata: { ...web.metadata, labels: { app: 'web', v: '2' } } });
  t.not(namespaces(), second, 'the first kind listed changed: recomputed');
  t.equal(computed, 3);

  const other = perContentOf(s, 'test:other', ['Namespace'], () => 'other');
  t.equal(other, 'other', 'another key has its own value');

  const withC = overlay(s, mutationOf(makeChange('CREATE', ns('c') as Obj)));
  t.ok(namespaces(withC).includes('c'), 'an overlay that changes a kind it reads gets its own value');
  t.notOk(namespaces().includes('c'), 'the state under it keeps its own');
});

t.test('every policy-layer memo is declared once in memo.ts, with a unique name and a purpose', async (t) => {
  const { memos } = await import('../../src/policy/memo.ts');
  const list = memos();
  t.ok(list.length >= 30);
  t.equal(new Set(list.map((m) => m.name)).size, list.length);
  for (const m of list) t.ok(m.purpose.length > 10, m.name);
});
