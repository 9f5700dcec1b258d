// The pod label index of MemoryState against a plain scan, through inserts, replacements and removals
// that move groups across the array/Set threshold.
import t from 'tap';
import { MemoryState } from '../../src/state/store.ts';
import { transformObject } from '../../src/state/transform.ts';
import type { Pod } from '../../src/core/objects.ts';

function rand(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), a | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const pod = (ns: string, name: string, labels: Record<string, string>) =>
  transformObject('Pod', { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns, labels }, spec: { containers: [] } }) as Pod;

t.test('podsWithLabel equals a scan', async (t) => {
  const r = rand(7);
  const state = new MemoryState();
  let checks = 0;
  for (let step = 0; step < 3000; step++) {
    const ns = `ns${Math.floor(r() * 2)}`;
    const name = `p${Math.floor(r() * 150)}`;
    if (r() < 0.3) state.remove('Pod', ns, name);
    else state.upsert('Pod', pod(ns, name, { app: `a${Math.floor(r() * 2)}`, tier: r() < 0.5 ? 'web' : 'db', ...(r() < 0.1 ? { rare: 'yes' } : {}) }));
    if (step % 50 !== 0) continue;
    for (const key of ['app', 'tier', 'rare']) {
      for (const value of ['a0', 'a1', 'web', 'db', 'yes']) {
        for (const where of [undefined, 'ns0', 'ns1']) {
          const want = state.list('Pod', where).filter((p) => p.metadata.labels?.[key] === value);
          const got = state.podsWithLabel(where, key, value);
          // Same pods, each once (the order is an index detail: a replaced pod keeps its place in an
          // array group and moves to the end of a Set).
          t.equal(got.length, want.length);
          t.same(new Set(got), new Set(want));
          checks++;
        }
      }
    }
  }
  t.ok(checks > 0);
  // Groups above the Set threshold exist in this run (150 names, 2 namespaces, 2 tiers).
  t.ok(state.podsWithLabel('ns0', 'tier', 'web').length > 0);
});

t.test('a handed-out group does not change under later updates', async (t) => {
  const state = new MemoryState();
  state.upsert('Pod', pod('a', 'p1', { app: 'x' }));
  const before = state.podsWithLabel('a', 'app', 'x');
  state.upsert('Pod', pod('a', 'p2', { app: 'x' }));
  state.remove('Pod', 'a', 'p1');
  t.same(before.map((p) => p.metadata.name), ['p1']);
  t.same(state.podsWithLabel('a', 'app', 'x').map((p) => p.metadata.name), ['p2']);
  state.replaceAll('Pod', []);
  t.same(state.podsWithLabel('a', 'app', 'x'), []);
});

t.test('a replacement puts the new object in the old one\'s place in each group it stays in, in a new array where a reader holds the old', async (t) => {
  const state = new MemoryState();
  for (const n of ['p1', 'p2', 'p3']) state.upsert('Pod', pod('a', n, { app: 'x', v: '1' }));
  const before = state.podsWithLabel('a', 'app', 'x');
  const oldP2 = state.get('Pod', 'a', 'p2');
  // One label changes (v), one stays (app).
  const newP2 = pod('a', 'p2', { app: 'x', v: '2' });
  state.upsert('Pod', newP2);
  const after = state.podsWithLabel('a', 'app', 'x');
  t.not(after, before, 'a new array: memos keyed by the group see the change');
  t.same(before.map((p) => p === oldP2), [false, true, false], 'the handed-out group still holds the old object');
  t.equal(after.length, 3);
  t.equal(after[1], newP2, "the new object in the old one's place");
  t.notOk(after.includes(oldP2!), 'and the old object gone');
  t.same(state.podsWithLabel('a', 'v', '1').map((p) => p.metadata.name), ['p1', 'p3'], 'the label it lost');
  t.same(state.podsWithLabel('a', 'v', '2'), [newP2], 'the label it gained');
  // The same labels (one shared label map): every group it is in takes the new object.
  const again = pod('a', 'p2', { app: 'x', v: '2' });
  t.not(again, newP2);
  state.upsert('Pod', { ...again, spec: { containers: [{ name: 'c' }] } } as Pod);
  t.equal(state.podsWithLabel('a', 'v', '2').length, 1);
  t.equal(state.podsWithLabel('a', 'v', '2')[0], state.get('Pod', 'a', 'p2'));
  t.equal(state.podsWithLabel('a', 'app', 'x')[1], state.get('Pod', 'a', 'p2'));
  // A Set group (64 pods and more): the new object replaces the old one there too.
  const big = new MemoryState();
  for (let i = 0; i < 70; i++) big.upsert('Pod', pod('b', `q${i}`, { all: 'y' }));
  const oldQ5 = big.get('Pod', 'b', 'q5');
  big.upsert('Pod', pod('b', 'q5', { all: 'y', extra: 'z' }));
  const group = big.podsWithLabel('b', 'all', 'y');
  t.equal(group.length, 70);
  t.ok(group.includes(big.get('Pod', 'b', 'q5')!));
  t.notOk(group.includes(oldQ5!));
});

t.test('a group grows past the Set threshold and shrinks back to nothing', async (t) => {
  const state = new MemoryState();
  const names = Array.from({ length: 100 }, (_, i) => `p${i}`);
  const check = () => {
    const want = state.list('Pod', 'a').filter((p) => p.metadata.labels?.['all'] === 'y');
    const got = state.podsWithLabel('a', 'all', 'y');
    t.equal(got.length, want.length);
    t.same(new Set(got), new Set(want));
    t.same(new Set(state.podsWithLabel(undefined, 'all', 'y')), new Set(want));
  };
  for (const n of names) {
    state.upsert('Pod', pod('a', n, { all: 'y' }));
    check();
  }
  for (const n of names.filter((_, i) => i % 3 === 0)) {
    state.upsert('Pod', pod('a', n, { all: 'y', again: 'yes' })); // a replacement keeps it once
    check();
  }
  for (const n of [...names].reverse()) {
    state.remove('Pod', 'a', n);
    check();
  }
  t.same(state.podsWithLabel('a', 'all', 'y'), []);
});

t.test('a replacement changes a group in place unless a reader has been given it', async (t) => {
  const state = new MemoryState();
  for (const n of ['p1', 'p2', 'p3']) state.upsert('Pod', pod('a', n, { app: 'x', v: '1' }));
  // A new object with the same labels (a spec change): every group keeps the pod, at its place.
  const next = (image: string) => ({ ...pod('a', 'p2', { app: 'x', v: '1' }), spec: { containers: [{ name: 'c', image }] } }) as Pod;
  state.upsert('Pod', next('i1'));
  state.upsert('Pod', next('i2'));
  t.same(state.labelIndexStats(), { copiedForReaders: 0, changedInPlace: 4, handedOut: 0 }, 'no reader was given a group: both groups changed in place, twice');
  const held = state.podsWithLabel('a', 'app', 'x');
  t.equal(state.labelIndexStats().handedOut, 1);
  t.equal(held[1], state.get('Pod', 'a', 'p2'), 'the group holds the latest object');
  const heldObject = held[1];
  state.upsert('Pod', next('i3'));
  t.same(state.labelIndexStats(), { copiedForReaders: 1, changedInPlace: 5, handedOut: 0 }, 'the group given to a reader was copied, the other (v=1) changed in place');
  t.equal(held[1], heldObject, 'the array the reader holds did not change');
  const after = state.podsWithLabel('a', 'app', 'x');
  t.not(after, held);
  t.equal(after[1], state.get('Pod', 'a', 'p2'));
  t.same(state.podsWithLabel('a', 'v', '1').map((p) => p === state.get('Pod', 'a', 'p2')), [false, true, false]);
  // Both copies have been given out in turn (just above): the next change copies each once, and no more.
  state.upsert('Pod', next('i4'));
  state.upsert('Pod', next('i5'));
  t.same(state.labelIndexStats(), { copiedForReaders: 3, changedInPlace: 7, handedOut: 0 }, 'one copy per group given out since its last change');
  t.equal(after[1]!.spec.containers[0]!.image, 'i3', 'the second reader kept its array too');
  // Arrays that stop being groups leave the set of handed-out ones: a label lost, a pod removed, a relist.
  state.podsWithLabel('a', 'app', 'x');
  state.podsWithLabel('a', 'v', '1');
  t.equal(state.labelIndexStats().handedOut, 2);
  state.upsert('Pod', pod('a', 'p2', { app: 'x' })); // loses v=1 (a filtered copy), keeps app=x (copied for its reader)
  t.equal(state.labelIndexStats().handedOut, 0);
  state.podsWithLabel('a', 'app', 'x');
  state.upsert('Pod', pod('a', 'p4', { app: 'x' })); // joins app=x: a longer copy
  t.equal(state.labelIndexStats().handedOut, 0);
  state.podsWithLabel('a', 'app', 'x');
  state.remove('Pod', 'a', 'p4');
  t.equal(state.labelIndexStats().handedOut, 0);
  state.podsWithLabel('a', 'app', 'x');
  state.replaceAll('Pod', [pod('a', 'p1', { app: 'x' })]);
  t.equal(state.labelIndexStats().handedOut, 0, 'a relist empties it');
});

t.test('groups a reader was given in a state built aside stay unchanged after it is adopted', async (t) => {
  for (const how of ['adoptKind', 'adopt'] as const) {
    const live = new MemoryState();
    const aside = new MemoryState();
    for (const n of ['p1', 'p2']) aside.upsert('Pod', pod('a', n, { app: 'x' }));
    const held = aside.podsWithLabel('a', 'app', 'x');
    const old = held[0];
    if (how === 'adoptKind') live.adoptKind('Pod', aside);
    else live.adopt(aside);
    live.upsert('Pod', { ...pod('a', 'p1', { app: 'x' }), spec: { containers: [{ name: 'c' }] } } as Pod);
    t.equal(held[0], old, `${how}: the held array still holds the old object`);
    t.equal(live.podsWithLabel('a', 'app', 'x')[0], live.get('Pod', 'a', 'p1'), `${how}: the index has the new one`);
    t.equal(live.labelIndexStats().copiedForReaders, 1, `${how}: copied once`);
  }
});

t.test('no array a reader holds changes, through random updates, relists and adoptions', async (t) => {
  const podOf = (ns: string, name: string, labels: Record<string, string>, image: string) =>
    transformObject('Pod', { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns, labels }, spec: { containers: [{ name: 'c', image }] } }) as Pod;
  for (const seed of [1, 2, 3]) {
    const r = rand(seed);
    const state = new MemoryState();
    const held: { group: readonly Pod[]; copy: readonly Pod[] }[] = [];
    let changed = 0;
    let checks = 0;
    for (let step = 0; step < 6000; step++) {
      const ns = `ns${Math.floor(r() * 2)}`;
      const name = `p${Math.floor(r() * 100)}`;
      const x = r();
      if (x < 0.2) state.remove('Pod', ns, name);
      else if (x < 0.5) {
        // Same labels, new object: the replacements that change groups in place.
        const o = state.get('Pod', ns, name);
        if (o) state.upsert('Pod', podOf(ns, name, o.metadata.labels ?? {}, `i${step}`));
      } else if (x < 0.85) state.upsert('Pod', podOf(ns, name, { app: `a${Math.floor(r() * 2)}`, tier: r() < 0.5 ? 'web' : 'db' }, `i${step}`));
      else if (x < 0.855) state.replaceNamespace('Pod', ns, state.list('Pod', ns).slice(0, 30));
      else if (x < 0.86) {
        // A relist built aside, read there, then taken over.
        const aside = new MemoryState();
        for (const p of state.list('Pod')) aside.upsert('Pod', p);
        const g = aside.podsWithLabel('ns0', 'tier', 'web');
        held.push({ group: g, copy: [...g] });
        if (r() < 0.5) state.adoptKind('Pod', aside);
        else state.adopt(aside);
      } else if (x < 0.862) state.replaceAll('Pod', state.list('Pod').slice(0, 80));
      else {
        const g = state.podsWithLabel(ns, r() < 0.5 ? 'app' : 'tier', ['a0', 'a1', 'web', 'db'][Math.floor(r() * 4)]!);
        held.push({ group: g, copy: [...g] });
      }
      if (step % 50 === 0) {
        for (const h of held) {
          checks++;
          if (h.group.length !== h.copy.length || h.group.some((p, i) => p !== h.copy[i])) changed++;
        }
      }
      if (held.length > 400) held.splice(0, 200);
    }
    const stats = state.labelIndexStats();
    t.equal(changed, 0, `seed ${seed}: no held array changed (${checks} checks)`);
    t.ok(stats.changedInPlace > 0 && stats.copiedForReaders > 0, `seed ${seed}: both paths taken (${JSON.stringify(stats)})`);
    // At most one entry per group: 2 namespaces x (2 app values + 2 tiers).
    t.ok(stats.handedOut <= 8, `seed ${seed}: ${stats.handedOut} handed-out arrays, at most one per group`);
  }
});
