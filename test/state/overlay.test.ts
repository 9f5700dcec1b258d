import t from 'tap';
import fc from 'fast-check';
import { mutationOf, type Change, type Operation } from '../../src/core/change.ts';
import { KINDS, KIND_NAMES, type KindName } from '../../src/core/kinds.ts';
import { overlay } from '../../src/state/overlay.ts';
import { inRequestScope, isEphemeral } from '../../src/state/request-scope.ts';
import { MemoryState } from '../../src/state/store.ts';
import { transformObject } from '../../src/state/transform.ts';
import type { ClusterState, KubeObject } from '../../src/core/objects.ts';

const NAMESPACES = ['a', 'b', 'c'];
const NAMES = ['x', 'y', 'z'];
const LABEL_KEYS = ['app', 'tier'];
const LABEL_VALUES = ['web', 'db'];
const KINDS_UNDER_TEST: KindName[] = ['Pod', 'Namespace', 'CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy', 'Service'];

/** Which write of an object this is (an annotation the transform keeps, so writes differ). */
const GEN = 'meshguard.io/test-generation';

function obj(kind: KindName, namespace: string, name: string, labels: Record<string, string>, gen: number): KubeObject {
  const k = KINDS[kind];
  return transformObject(kind, {
    apiVersion: k.group ? `${k.group}/${k.version}` : k.version,
    kind,
    metadata: { name, ...(k.namespaced ? { namespace } : {}), labels, annotations: { [GEN]: String(gen) } },
    spec: kind === 'Pod' ? { containers: [{ name: 'app' }] } : { endpointSelector: {} },
  });
}

function change(operation: Operation, kind: KindName, o: KubeObject): Change {
  const k = KINDS[kind];
  return {
    uid: 'u', operation, kind,
    gvk: { group: k.group, version: k.version, kind },
    namespace: o.metadata.namespace ?? '',
    name: o.metadata.name,
    ...(operation === 'DELETE' ? { oldObject: o } : { object: o }),
    dryRun: false, userInfo: {},
  };
}

function apply(s: MemoryState, c: Change): void {
  if (!c.kind) return;
  if (c.operation === 'DELETE') s.remove(c.kind, c.namespace, c.name);
  else if (c.operation !== 'CONNECT' && c.object) s.upsert(c.kind, c.object);
}

const key = (o: KubeObject) => `${o.metadata.namespace ?? ''}/${o.metadata.name}@${o.metadata.annotations?.[GEN]}`;
const sorted = (xs: readonly KubeObject[]) => xs.map(key).sort();

/** Every read of the ClusterState interface, over the whole key space, in a comparable form. */
function observe(s: ClusterState): unknown {
  const out: Record<string, unknown> = {};
  for (const kind of KIND_NAMES) {
    out[`list ${kind}`] = sorted(s.list(kind));
    out[`ns ${kind}`] = [...s.namespacesWith(kind)].sort();
    for (const ns of [...NAMESPACES, 'none']) {
      out[`list ${kind} ${ns}`] = sorted(s.list(kind, ns));
      for (const name of NAMES) {
        const g = s.get(kind, ns, name);
        out[`get ${kind} ${ns} ${name}`] = g ? key(g) : null;
      }
    }
  }
  for (const ns of [...NAMESPACES, undefined]) {
    for (const k of LABEL_KEYS) for (const v of LABEL_VALUES) out[`pods ${ns} ${k}=${v}`] = sorted(s.podsWithLabel(ns, k, v));
  }
  return out;
}

const arbObj = fc.record({
  kind: fc.constantFrom(...KINDS_UNDER_TEST),
  ns: fc.constantFrom(...NAMESPACES),
  name: fc.constantFrom(...NAMES),
  labels: fc.dictionary(fc.constantFrom(...LABEL_KEYS), fc.constantFrom(...LABEL_VALUES), { maxKeys: 2 }),
});
const arbChange = fc.record({ op: fc.constantFrom<Operation>('CREATE', 'UPDATE', 'DELETE', 'CONNECT'), o: arbObj });

t.test('overlay behaves like a fresh MemoryState with the change applied (random sequences, chained)', async (t) => {
  let gen = 0;
  fc.assert(
    fc.property(fc.array(arbObj, { maxLength: 25 }), fc.array(arbChange, { minLength: 1, maxLength: 6 }), (baseObjs, changes) => {
      const base = new MemoryState('base');
      const expected = new MemoryState('expected');
      for (const b of baseObjs) {
        const o = obj(b.kind, b.ns, b.name, b.labels, gen++);
        base.upsert(b.kind, o);
        expected.upsert(b.kind, o);
      }
      const before = observe(base);
      const baseRevision = base.revision;
      let view: ClusterState = base;
      const revisions = new Set<number>([base.revision]);
      for (const c of changes) {
        const ch = change(c.op, c.o.kind, obj(c.o.kind, c.o.ns, c.o.name, c.o.labels, gen++));
        const next = overlay(view, mutationOf(ch));
        apply(expected, ch);
        if (c.op === 'CONNECT') {
          if (next !== view) return false;
        } else {
          if (revisions.has(next.revision)) return false;
          revisions.add(next.revision);
        }
        view = next;
        // Check every intermediate view, and twice (the second read comes from the caches).
        t.same(observe(view), observe(expected));
        t.same(observe(view), observe(expected));
      }
      // The base is untouched.
      t.same(observe(base), before);
      t.equal(base.revision, baseRevision);
      return true;
    }),
    { numRuns: 150 },
  );
});

t.test('reads outside the changed kind/namespace go to the base (same arrays)', async (t) => {
  const base = new MemoryState('base');
  base.upsert('Pod', obj('Pod', 'a', 'x', { app: 'web' }, 1));
  base.upsert('Pod', obj('Pod', 'b', 'y', { app: 'web' }, 2));
  base.upsert('Service', obj('Service', 'a', 's', {}, 3));
  const o = overlay(base, mutationOf(change('CREATE', 'Pod', obj('Pod', 'b', 'z', { app: 'web' }, 4))));
  t.equal(o.list('Pod', 'a'), base.list('Pod', 'a'));
  t.equal(o.list('Service'), base.list('Service'));
  t.equal(o.namespacesWith('Service'), base.namespacesWith('Service'));
  t.same(o.podsWithLabel('a', 'app', 'web'), base.podsWithLabel('a', 'app', 'web'));
  t.equal(o.list('Pod', 'b').length, 2);
  t.equal(o.list('Pod', 'b'), o.list('Pod', 'b'), 'cached');
  t.equal(o.podsWithLabel(undefined, 'app', 'web').length, 3);
  t.match(o.describe(), /^overlay\(base \+ put Pod b\/z\)$/);
  t.not(o.revision, base.revision);
});

t.test('Namespace changes are visible; namespace and name come from the request', async (t) => {
  const base = new MemoryState('base');
  base.upsert('Namespace', obj('Namespace', '', 'shop', {}, 1));
  const relabelled = obj('Namespace', '', 'shop', { 'istio.io/dataplane-mode': 'ambient' }, 2);
  const o = overlay(base, mutationOf(change('UPDATE', 'Namespace', relabelled)));
  t.equal(o.get('Namespace', undefined, 'shop')?.metadata.labels?.['istio.io/dataplane-mode'], 'ambient');
  t.equal(o.list('Namespace').length, 1);
  t.equal(base.get('Namespace', undefined, 'shop')?.metadata.labels, undefined);
  const gone = overlay(base, mutationOf(change('DELETE', 'Namespace', relabelled)));
  t.equal(gone.get('Namespace', undefined, 'shop'), undefined);
  t.same(gone.list('Namespace'), []);

  // A manifest without metadata.namespace, admitted into namespace "a".
  const bare = transformObject('Pod', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', labels: { app: 'web' } }, spec: {} });
  const c: Change = { ...change('CREATE', 'Pod', bare), namespace: 'a' };
  const withPod = overlay(base, mutationOf(c));
  t.equal(withPod.get('Pod', 'a', 'p')?.metadata.namespace, 'a');
  t.equal(withPod.list('Pod', 'a').length, 1);
  t.same(withPod.namespacesWith('Pod'), ['a']);
  t.equal(withPod.podsWithLabel('a', 'app', 'web').length, 1);
});

t.test('unknown kind, CONNECT and CREATE without object leave the base', async (t) => {
  const base = new MemoryState('base');
  const c = change('CREATE', 'Pod', obj('Pod', 'a', 'x', {}, 1));
  t.equal(overlay(base, mutationOf({ ...c, kind: undefined })), base);
  t.equal(overlay(base, mutationOf({ ...c, operation: 'CONNECT' })), base);
  const { object: _drop, ...noObject } = c;
  t.equal(overlay(base, mutationOf(noObject)), base);
  t.equal(overlay(base, mutationOf({ ...c, kind: 'Secret' as KindName })), base);
  t.equal(overlay(base, undefined), base, 'no mutation');
});

t.test('an overlay follows its base when the base changes (live cache events)', async (t) => {
  let gen = 1000;
  fc.assert(
    fc.property(
      fc.array(arbObj, { maxLength: 15 }),
      fc.array(arbChange, { minLength: 1, maxLength: 4 }),
      fc.array(fc.record({ remove: fc.boolean(), o: arbObj }), { minLength: 1, maxLength: 6 }),
      (baseObjs, changes, baseEdits) => {
        const base = new MemoryState('base');
        for (const b of baseObjs) base.upsert(b.kind, obj(b.kind, b.ns, b.name, b.labels, gen++));
        let view: ClusterState = base;
        const chs: Change[] = [];
        for (const c of changes) {
          const ch = change(c.op, c.o.kind, obj(c.o.kind, c.o.ns, c.o.name, c.o.labels, gen++));
          chs.push(ch);
          view = overlay(view, mutationOf(ch));
        }
        observe(view); // fill the caches
        const before = view.revision;
        const baseBefore = base.revision;
        for (const e of baseEdits) {
          if (e.remove) base.remove(e.o.kind, e.o.ns, e.o.name);
          else base.upsert(e.o.kind, obj(e.o.kind, e.o.ns, e.o.name, e.o.labels, gen++));
        }
        const expected = new MemoryState('expected');
        for (const kind of KIND_NAMES) for (const o of base.list(kind)) expected.upsert(kind, o);
        for (const ch of chs) apply(expected, ch);
        t.same(observe(view), observe(expected));
        if (view !== base && base.revision !== baseBefore) t.not(view.revision, before, 'new revision after base changes');
        if (base.revision === baseBefore) t.equal(view.revision, before, 'same revision while the base is unchanged');
        return true;
      },
    ),
    { numRuns: 100 },
  );
});

t.test("lists an overlay passes through unchanged stay the base's own (not marked as the request's)", async (t) => {
  const base = new MemoryState();
  base.upsert('CiliumNetworkPolicy', obj('CiliumNetworkPolicy', 'a', 'x', {}, 1));
  const absent = obj('CiliumNetworkPolicy', 'a', 'gone', {}, 1);
  const present = obj('CiliumNetworkPolicy', 'a', 'x', {}, 2);
  inRequestScope(() => {
    // DELETE of an object the base does not have: the list and the namespaces are the base's.
    const del = overlay(base, mutationOf(change('DELETE', 'CiliumNetworkPolicy', absent)));
    const list = del.list('CiliumNetworkPolicy', 'a');
    t.equal(list, base.list('CiliumNetworkPolicy', 'a'), 'the same array as the base');
    t.equal(isEphemeral(list), false, 'a cache keyed by the base list keeps its entry after the request');
    const namespaces = del.namespacesWith('CiliumNetworkPolicy');
    t.equal(namespaces, base.namespacesWith('CiliumNetworkPolicy'));
    t.equal(isEphemeral(namespaces), false);
    // An UPDATE builds its own list, which is the request's.
    const upd = overlay(base, mutationOf(change('UPDATE', 'CiliumNetworkPolicy', present)));
    const patched = upd.list('CiliumNetworkPolicy', 'a');
    t.not(patched, base.list('CiliumNetworkPolicy', 'a'));
    t.equal(isEphemeral(patched), true);
  });
});

t.test("an object the base holds, put by a request (the warm-up's, the audit's), is not marked as the request's", async (t) => {
  const base = new MemoryState();
  const stored = obj('CiliumClusterwideNetworkPolicy', '', 'x', {}, 1);
  base.upsert('CiliumClusterwideNetworkPolicy', stored);
  const storedCnp = obj('CiliumNetworkPolicy', 'a', 'y', {}, 1);
  base.upsert('CiliumNetworkPolicy', storedCnp);
  inRequestScope(() => {
    overlay(base, mutationOf(change('UPDATE', 'CiliumClusterwideNetworkPolicy', stored)));
    t.equal(isEphemeral(stored), false, 'the stored cluster-scoped object outlives the request: so do caches keyed by it');
    overlay(base, mutationOf(change('UPDATE', 'CiliumNetworkPolicy', storedCnp)));
    t.equal(isEphemeral(storedCnp), false, 'and a namespaced one');
    // The audit judges a stored object's creation on an overlay that deletes it: still the base's.
    const without = overlay(base, mutationOf(change('DELETE', 'CiliumNetworkPolicy', storedCnp)));
    overlay(without, mutationOf(change('CREATE', 'CiliumNetworkPolicy', storedCnp)));
    t.equal(isEphemeral(storedCnp), false, "held by the deleting overlay's base");
    // Near misses: an equal object that is not the stored one, and a new one, are the request's.
    const copy = obj('CiliumClusterwideNetworkPolicy', '', 'x', {}, 1);
    overlay(base, mutationOf(change('UPDATE', 'CiliumClusterwideNetworkPolicy', copy)));
    t.equal(isEphemeral(copy), true, 'an equal copy is the request\'s own');
    const fresh = obj('CiliumNetworkPolicy', 'b', 'y', {}, 1);
    overlay(base, mutationOf(change('CREATE', 'CiliumNetworkPolicy', fresh)));
    t.equal(isEphemeral(fresh), true, 'a new object is the request\'s own');
  });
});
