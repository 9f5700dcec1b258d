// victimParams + namesAndMore: the victims as message params, worded exactly as describeVictims words the pods.
import t from 'tap';
import fc from 'fast-check';
import { describeVictims, namesAndMore, victimParams } from '../../src/rules/render-helpers.ts';
import type { Pod } from '../../src/core/objects.ts';

const podNamed = (namespace: string, name: string): Pod => ({ apiVersion: 'v1', kind: 'Pod', metadata: { namespace, name }, spec: { containers: [] } });

t.test('victimParams: the first three names and the count', async (t) => {
  const pods = ['a', 'b', 'c', 'd', 'e'].map((n) => podNamed('ns', n));
  t.same(victimParams(pods), { pods: ['ns/a', 'ns/b', 'ns/c'], podCount: 5 });
  t.same(victimParams(pods.slice(0, 2)), { pods: ['ns/a', 'ns/b'], podCount: 2 });
  t.same(victimParams([]), { pods: [], podCount: 0 });
});

t.test('namesAndMore', async (t) => {
  t.equal(namesAndMore(['ns/a', 'ns/b', 'ns/c'], 5), 'ns/a, ns/b, ns/c and 2 more');
  t.equal(namesAndMore(['ns/a'], 1), 'ns/a');
});

t.test('namesAndMore(victimParams(pods)) is describeVictims(pods)', async (t) => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.constantFrom('a', 'b'), fc.string({ minLength: 1, maxLength: 5 })), { maxLength: 8 }), (refs) => {
      const pods = refs.map(([ns, n]) => podNamed(ns, n));
      const p = victimParams(pods);
      return namesAndMore(p.pods, p.podCount) === describeVictims(pods);
    }),
  );
  t.pass('equal on every generated list');
});
