// policiesSelecting keeps one array per distinct answer of a namespace's model list (issue 21, the heap at
// 50k pods): identities with the same answer share it. A shared array must be frozen (a caller that
// changed one identity's list would change every other's), and sharing must never merge two answers.

import t from 'tap';
import { policiesSelecting } from '../../src/policy/selection.ts';
import type { PolicyModel } from '../../src/policy/types.ts';
import { baseCluster, ccnp, cnp, memoryState, ns, pod } from '../fixtures/cluster.ts';

const refs = (models: readonly PolicyModel[]): string[] => models.map((m) => `${m.ref.kind}/${m.ref.namespace}/${m.ref.name}#${m.specIndex}`);

function state(): ReturnType<typeof memoryState> {
  return memoryState(baseCluster([
    ns('a'), ns('b'),
    // web-1 and web-2 are two identities (the version label) with the same answer; db another answer.
    pod('a', 'web-1', { app: 'web', version: 'v1' }),
    pod('a', 'web-2', { app: 'web', version: 'v2' }),
    pod('a', 'db', { app: 'db' }),
    pod('a', 'lone', { app: 'lone' }),
    pod('b', 'web-1', { app: 'web', version: 'v1' }),
    ccnp('all', { endpointSelector: {}, egress: [{ toEntities: ['world'] }] }),
    cnp('a', 'web', { endpointSelector: { matchLabels: { app: 'web' } }, ingress: [{}] }),
    cnp('a', 'db', { endpointSelector: { matchLabels: { app: 'db' } }, ingress: [{}] }),
    cnp('b', 'web', { endpointSelector: { matchLabels: { app: 'web' } }, ingress: [{}] }),
  ]));
}

t.test('identities with the same answer share one frozen array; different answers stay apart', async (t) => {
  const s = state();
  const get = (namespace: string, name: string): readonly PolicyModel[] => policiesSelecting(s, s.get('Pod', namespace, name)!);
  const w1 = get('a', 'web-1');
  const w2 = get('a', 'web-2');
  const db = get('a', 'db');
  const lone = get('a', 'lone');
  const other = get('b', 'web-1');
  t.same([...refs(w1)].sort(), ['CiliumClusterwideNetworkPolicy//all#0', 'CiliumNetworkPolicy/a/web#0']);
  t.equal(w1, w2, 'two identities, one answer: one array');
  t.not(w1, db, 'another answer: another array');
  t.same(refs(db).filter((r) => r.includes('/a/')), ['CiliumNetworkPolicy/a/db#0']);
  t.same(refs(lone), ['CiliumClusterwideNetworkPolicy//all#0']);
  t.not(other, w1, 'another namespace keeps its own list');
  t.same(refs(other).filter((r) => r.includes('/b/')), ['CiliumNetworkPolicy/b/web#0']);
  for (const a of [w1, db, lone, other]) t.ok(Object.isFrozen(a), 'shared arrays are frozen');
  t.throws(() => (w1 as PolicyModel[]).push(db[0]!), TypeError, 'a push to a shared list throws');
  t.same(refs(get('a', 'web-2')), refs(w1), 'and left the other identity\'s answer as it was');
  t.equal(get('a', 'web-1').length, 2);
});

t.test('a shared answer is the same as a fresh state\'s for each pod', async (t) => {
  const s = state();
  for (const p of s.list('Pod')) {
    const fresh = state();
    t.same(refs(policiesSelecting(s, p)), refs(policiesSelecting(fresh, fresh.get('Pod', p.metadata.namespace, p.metadata.name)!)), `${p.metadata.namespace}/${p.metadata.name}`);
  }
});
