// policiesSelecting keeps one array per distinct answer of a namespace's model list (issue 21, the heap at
// 50k pods): identities with the same answer share it. A shared array must never be modified (a caller
// that changed one identity's list would change every other's: the lists are readonly to every caller,
// and every rule's decisions over this state leave them as they were), and sharing must never merge two
// answers.

import t from 'tap';
import { policiesSelecting } from '../../src/policy/selection.ts';
import type { PolicyModel } from '../../src/policy/types.ts';
import { defaultConfig } from '../../src/config/config.ts';
import { allRules } from '../../src/rules/registry.ts';
import { createDecide } from '../../src/verdict/decide.ts';
import { baseCluster, ccnp, cnp, memoryState, ns, pod } from '../fixtures/cluster.ts';
import { makeChange } from '../rules/rule-harness.ts';

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

t.test('identities with the same answer share one array; different answers stay apart', async (t) => {
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
  t.equal(get('a', 'web-1').length, 2);
});

t.test("every rule's decisions over the state leave the shared lists as they were", async (t) => {
  const s = state();
  const pods = s.list('Pod');
  const before = pods.map((p) => policiesSelecting(s, p));
  const texts = before.map(refs);
  const rules = allRules();
  const decide = createDecide(rules, defaultConfig(rules));
  const nsA = s.get('Namespace', undefined, 'a')!;
  const changes = [
    makeChange('CREATE', ccnp('new-all', { endpointSelector: {}, ingress: [{ fromEntities: ['cluster'] }] }) as never),
    makeChange('CREATE', cnp('a', 'new-web', { endpointSelector: { matchLabels: { app: 'web' } }, egress: [{ toEntities: ['world'] }] }) as never),
    makeChange('DELETE', undefined, cnp('a', 'web', { endpointSelector: { matchLabels: { app: 'web' } }, ingress: [{}] }) as never),
    makeChange('UPDATE', { ...nsA, metadata: { ...nsA.metadata, labels: { ...nsA.metadata.labels, team: 'x' } } } as never, nsA as never),
  ];
  for (const c of changes) decide(c, s);
  t.same(before.map(refs), texts, 'every list holds what it held');
  t.same(pods.map((p) => refs(policiesSelecting(s, p))), texts, 'and every pod still gets it');
});

t.test('a shared answer is the same as a fresh state\'s for each pod', async (t) => {
  const s = state();
  for (const p of s.list('Pod')) {
    const fresh = state();
    t.same(refs(policiesSelecting(s, p)), refs(policiesSelecting(fresh, fresh.get('Pod', p.metadata.namespace, p.metadata.name)!)), `${p.metadata.namespace}/${p.metadata.name}`);
  }
});
