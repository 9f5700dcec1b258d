// An overlay pass's base decision facts are kept per class, one object per content (issue 21, heap at
// 50k pods): classes with the same matching denies and allows share it. Shared, the object is frozen
// (its lists cannot be swapped), equal content gives the same object and any difference (a ref, the
// order, deny vs allow) another one.

import t from 'tap';
import { sharedFacts } from '../../src/policy/reachability.ts';
import type { PolicyRef } from '../../src/policy/types.ts';

const ref = (kind: string, namespace: string, name: string): PolicyRef => ({ kind, namespace, name }) as PolicyRef;

t.test('equal content, one object; any difference, another', async (t) => {
  const a = sharedFacts([], [ref('CiliumNetworkPolicy', 'a', 'web'), ref('CiliumClusterwideNetworkPolicy', '', 'dns')]);
  const b = sharedFacts([], [ref('CiliumNetworkPolicy', 'a', 'web'), ref('CiliumClusterwideNetworkPolicy', '', 'dns')]);
  t.equal(a, b, 'refs of equal content (other objects): the same facts');
  t.ok(Object.isFrozen(a), 'frozen');
  t.throws(() => {
    (a as { allowBy: readonly PolicyRef[] }).allowBy = [];
  }, TypeError, 'its lists cannot be swapped');
  t.same(b.allowBy.map((r) => r.name), ['web', 'dns'], 'the other user still sees its two refs');
  const swapped = sharedFacts([], [ref('CiliumClusterwideNetworkPolicy', '', 'dns'), ref('CiliumNetworkPolicy', 'a', 'web')]);
  t.not(swapped, a, 'another order, another object');
  const asDeny = sharedFacts([ref('CiliumNetworkPolicy', 'a', 'web'), ref('CiliumClusterwideNetworkPolicy', '', 'dns')], []);
  t.not(asDeny, a, 'the same refs as denies: another object');
  t.same(asDeny.denyBy.map((r) => r.name), ['web', 'dns']);
  t.same(asDeny.allowBy, []);
  const otherNs = sharedFacts([], [ref('CiliumNetworkPolicy', 'b', 'web'), ref('CiliumClusterwideNetworkPolicy', '', 'dns')]);
  t.not(otherNs, a, 'another namespace: another object');
  // Names that would run together if the key had no separators.
  t.not(sharedFacts([], [ref('K', 'ab', 'c')]), sharedFacts([], [ref('K', 'a', 'bc')]));
});
