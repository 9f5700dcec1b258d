import t from 'tap';
import { entriesOnKey, forgetCachedResults, inRequestScope, isEphemeral, markEphemeral, openRequestScope, ScopedWeakMap } from '../../src/state/request-scope.ts';

t.test('outside a request scope a ScopedWeakMap is a plain WeakMap', async (t) => {
  const m = new ScopedWeakMap<object, string>();
  const k = {};
  markEphemeral(k); // no scope: ignored
  t.equal(isEphemeral(k), false);
  m.set(k, 'v');
  t.equal(m.get(k), 'v');
  t.equal(m.has(k), true);
  t.equal(m.delete(k), true);
  t.equal(m.has(k), false);
});

t.test('entries of ephemeral keys last for their request only; stable keys keep theirs', async (t) => {
  const m = new ScopedWeakMap<object, object>();
  const stable = {};
  const request = {};
  const value = { computed: true };
  inRequestScope(() => {
    markEphemeral(request);
    m.set(request, value);
    m.set(stable, { s: 1 });
    t.same(m.get(request), value);
    t.equal(m.has(request), true);
    // What is computed from an ephemeral key is ephemeral itself.
    t.equal(isEphemeral(value), true);
    t.equal(isEphemeral(stable), false);
  });
  t.equal(m.has(request), false, 'dropped with its scope');
  t.same(m.get(stable), { s: 1 }, 'stable entry survives the scope');
  inRequestScope(() => {
    // A stable entry stays visible even for a key this request marked ephemeral.
    markEphemeral(stable);
    t.same(m.get(stable), { s: 1 });
    t.equal(m.has(request), false);
  });
});

t.test('nested scopes join the outer one; a throwing request still ends its scope', async (t) => {
  const m = new ScopedWeakMap<object, number>();
  const k = {};
  inRequestScope(() => {
    markEphemeral(k);
    inRequestScope(() => m.set(k, 1));
    t.equal(m.get(k), 1, 'inner set visible in the outer scope');
  });
  t.equal(m.get(k), undefined);
  t.throws(() =>
    inRequestScope(() => {
      markEphemeral(k);
      m.set(k, 2);
      throw new Error('boom');
    }),
  );
  t.equal(isEphemeral(k), false, 'no scope left open');
  t.equal(m.get(k), undefined);
});

t.test('forgetCachedResults empties every map but those that keep their entries; ephemeral keys still go with their request', async (t) => {
  const dropped = new ScopedWeakMap<object, string>();
  const kept = new ScopedWeakMap<object, string>({ keepOnForget: true });
  const key = {};
  dropped.set(key, 'a');
  kept.set(key, 'a');
  forgetCachedResults();
  t.equal(dropped.get(key), undefined, 'dropped');
  t.equal(kept.get(key), 'a', 'kept');
  t.ok(kept.has(key));
  const mine = {};
  inRequestScope(() => {
    markEphemeral(mine);
    kept.set(mine, 'b');
    t.equal(kept.get(mine), 'b');
  });
  t.equal(kept.get(mine), undefined, "a request's own key goes with the request");
});

// ---------- onKey: stable entries held on the key object (issue 21: no ephemeron per entry) ----------

t.test('an onKey map holds a stable entry on its key, unseen by spreads, JSON, keys and clones', async (t) => {
  const m = new ScopedWeakMap<object, { v: number }>({ onKey: true });
  const plain = new ScopedWeakMap<object, { v: number }>();
  const key: Record<string, unknown> = { a: 1, b: [2] };
  const json = JSON.stringify(key);
  t.equal(m.get(key), undefined);
  t.equal(m.has(key), false);
  m.set(key, { v: 1 });
  plain.set(key, { v: 9 });
  t.equal(entriesOnKey(key), 1, 'one entry on the key (the plain map keeps its own in its WeakMap)');
  t.same(m.get(key), { v: 1 });
  t.equal(m.has(key), true);
  t.same(plain.get(key), { v: 9 }, 'the plain map answers on its own');
  t.equal(JSON.stringify(key), json, 'JSON unchanged');
  t.same(Object.keys(key), ['a', 'b'], 'no enumerable property');
  const copy = { ...key };
  t.equal(m.get(copy), undefined, 'a spread copy starts with no entry');
  t.equal(entriesOnKey(copy), 0);
  t.equal(m.get(structuredClone(key)), undefined, 'neither does a clone');
  m.set(key, { v: 2 });
  t.same(m.get(key), { v: 2 }, 'a second set replaces the value');
  t.equal(entriesOnKey(key), 1, 'in the same slot');
});

t.test('two onKey maps on one key answer each for itself; delete removes one entry only', async (t) => {
  const a = new ScopedWeakMap<object, string>({ onKey: true });
  const b = new ScopedWeakMap<object, string>({ onKey: true });
  const key = {};
  const other = {};
  a.set(key, 'a');
  b.set(key, 'b');
  a.set(other, 'o');
  t.equal(entriesOnKey(key), 2);
  t.equal(a.get(key), 'a');
  t.equal(b.get(key), 'b');
  t.equal(b.get(other), undefined, 'an entry of a on another key is not b\'s');
  t.equal(a.delete(key), true);
  t.equal(a.has(key), false);
  t.equal(a.get(key), undefined);
  t.equal(b.get(key), 'b', "b's entry stays");
  t.equal(a.delete(key), false, 'nothing left to delete');
  a.set(key, 'again');
  t.equal(a.get(key), 'again', 'set after delete');
  t.equal(entriesOnKey(key), 2, 'the deleted slot is reused');
});

t.test('an onKey map keeps a frozen key in its WeakMap, and an array key on the array', async (t) => {
  const m = new ScopedWeakMap<object, number>({ onKey: true });
  const frozen = Object.freeze({ f: 1 });
  const sealed = Object.seal({ s: 1 });
  const arr = [1, 2, 3];
  m.set(frozen, 1);
  m.set(sealed, 2);
  m.set(arr, 3);
  t.equal(m.get(frozen), 1);
  t.equal(m.get(sealed), 2);
  t.equal(m.get(arr), 3);
  t.equal(m.has(frozen), true);
  t.equal(entriesOnKey(frozen), 0, 'frozen: no record');
  t.equal(entriesOnKey(sealed), 0, 'sealed: no record');
  t.equal(entriesOnKey(arr), 1, 'an array takes one');
  t.equal(arr.length, 3, 'the array is unchanged');
  t.same([...arr], [1, 2, 3]);
  t.equal(m.delete(frozen), true);
  t.equal(m.get(frozen), undefined);
  t.equal(m.get(sealed), 2, 'the other WeakMap entry stays');
});

t.test('forgetCachedResults drops an onKey map\'s entries unless it keeps them; a set after it stores again', async (t) => {
  const dropped = new ScopedWeakMap<object, string>({ onKey: true });
  const kept = new ScopedWeakMap<object, string>({ onKey: true, keepOnForget: true });
  const key = {};
  const frozen = Object.freeze({});
  dropped.set(key, 'a');
  dropped.set(frozen, 'f');
  kept.set(key, 'k');
  forgetCachedResults();
  t.equal(dropped.get(key), undefined, 'dropped: the record entry is of an earlier epoch');
  t.equal(dropped.has(key), false);
  t.equal(dropped.get(frozen), undefined, 'dropped: the WeakMap entry too');
  t.equal(kept.get(key), 'k', 'kept');
  dropped.set(key, 'b');
  t.equal(dropped.get(key), 'b');
  t.equal(entriesOnKey(key), 2, 'the stale entry was replaced, not added to');
  forgetCachedResults();
  forgetCachedResults();
  t.equal(dropped.get(key), undefined, 'two forgets in a row');
  t.equal(kept.get(key), 'k');
});

t.test("an onKey map keeps a request's own keys in the request's map, and a stable entry visible to it", async (t) => {
  const m = new ScopedWeakMap<object, object>({ onKey: true });
  const stable = {};
  const request = {};
  const value = { computed: true };
  m.set(stable, { s: 1 });
  inRequestScope(() => {
    markEphemeral(request);
    m.set(request, value);
    t.equal(entriesOnKey(request), 0, 'not on the per-request key');
    t.same(m.get(request), value);
    t.equal(isEphemeral(value), true, 'what is computed from it is ephemeral');
    markEphemeral(stable);
    t.same(m.get(stable), { s: 1 }, 'a stable entry stays visible for a key the request marked');
  });
  t.equal(m.has(request), false, 'dropped with its scope');
  t.same(m.get(stable), { s: 1 });
});

t.test("an object made with an onKey map's key as its prototype is a key of its own", async (t) => {
  const m = new ScopedWeakMap<object, string>({ onKey: true });
  const parent = { p: 1 };
  m.set(parent, 'parent');
  const child = Object.create(parent) as object;
  t.equal(m.get(child), undefined, "the parent's record is not the child's");
  t.equal(m.has(child), false);
  t.equal(entriesOnKey(child), 0);
  m.set(child, 'child');
  t.equal(m.get(child), 'child');
  t.equal(m.get(parent), 'parent', "the child's entry did not go into the parent's record");
  t.equal(m.delete(child), true);
  t.equal(m.get(parent), 'parent');
});

t.test('a copy made from own property descriptors carries the record but none of its entries', async (t) => {
  const m = new ScopedWeakMap<object, string>({ onKey: true });
  const key = { k: 1 };
  m.set(key, 'original');
  const copy = Object.defineProperties({}, Object.getOwnPropertyDescriptors(key)) as object;
  t.equal(m.get(copy), undefined, "the record names its own key: the copy's lookups miss");
  t.equal(entriesOnKey(copy), 0);
  m.set(copy, 'copy');
  t.equal(m.get(copy), 'copy');
  t.equal(m.get(key), 'original', 'the original keeps its entry');
});

t.test('a key frozen after it took a record: new entries go to the WeakMap, and nothing throws', async (t) => {
  const a = new ScopedWeakMap<object, string>({ onKey: true });
  const b = new ScopedWeakMap<object, string>({ onKey: true });
  const key = { k: 1 };
  a.set(key, 'a1');
  Object.freeze(key);
  t.doesNotThrow(() => b.set(key, 'b1'), 'a second map stores on a frozen key');
  t.equal(b.get(key), 'b1');
  t.equal(b.has(key), true);
  t.equal(entriesOnKey(key), 1, "b's entry is not in the record");
  a.set(key, 'a2');
  t.equal(a.get(key), 'a2', 'the record itself is still writable after a shallow freeze');
  // A copy from descriptors of the frozen key carries a read-only record of another object.
  const copy = Object.defineProperties({}, Object.getOwnPropertyDescriptors(key)) as object;
  t.doesNotThrow(() => a.set(copy, 'copy'));
  t.equal(a.get(copy), 'copy');
  t.equal(a.get(key), 'a2');
});

t.test('a record frozen too (a deep freeze): set, get, has and delete still answer as a WeakMap', async (t) => {
  const m = new ScopedWeakMap<object, string>({ onKey: true });
  const key = { k: 1 };
  m.set(key, 'old');
  Object.freeze(key);
  for (const s of Object.getOwnPropertySymbols(key)) Object.freeze((key as Record<symbol, object>)[s]);
  t.doesNotThrow(() => m.set(key, 'new'));
  t.equal(m.get(key), 'new', 'the newer value, not the frozen record\'s');
  t.equal(m.delete(key), true);
  t.equal(m.has(key), false, 'deleted, though the frozen record still holds the old value');
  t.equal(m.get(key), undefined);
  t.equal(m.delete(key), false);
  m.set(key, 'again');
  t.equal(m.get(key), 'again');
  const other = { o: 1 };
  m.set(other, 'x');
  Object.freeze(other);
  for (const s of Object.getOwnPropertySymbols(other)) Object.freeze((other as Record<symbol, object>)[s]);
  t.equal(m.delete(other), true, 'delete of an entry only a frozen record holds');
  t.equal(m.get(other), undefined);
  t.equal(m.has(other), false);
});

t.test('an unscoped onKey map keeps a request\'s own key as a stable entry', async (t) => {
  const unscoped = new ScopedWeakMap<object, object>({ onKey: true, unscoped: true, keepOnForget: true });
  const scoped = new ScopedWeakMap<object, object>({ onKey: true, keepOnForget: true });
  const built = [1, 2];
  const v = { plan: true };
  inRequestScope(() => {
    markEphemeral(built);
    unscoped.set(built, v);
    scoped.set(built, v);
    t.equal(isEphemeral(v), true, 'the scoped map marks what it computed from an ephemeral key');
  });
  t.equal(unscoped.get(built), v, 'kept past the request');
  t.equal(entriesOnKey(built), 1, 'on the key');
  t.equal(scoped.get(built), undefined, 'the scoped map dropped it with the request');
});

t.test("a scope entered again (a review's next slice) finds its entries, whatever scopes ran in between", async (t) => {
  for (const opts of [{}, { onKey: true }, { keepOnForget: true, onKey: true }] as const) {
    const m = new ScopedWeakMap<object, string>(opts);
    const review = openRequestScope();
    const own = { name: 'overlay' };
    review.run(() => {
      markEphemeral(own);
      m.set(own, 'first slice');
    });
    t.equal(isEphemeral(own), false, 'between two slices the scope is not current');
    t.equal(m.get(own), undefined, 'nor are its entries seen outside it');
    // Between the slices: another decision with its own scope uses the same map.
    inRequestScope(() => {
      const other = { name: 'other overlay' };
      markEphemeral(other);
      m.set(other, 'other');
      t.equal(m.get(own), undefined, "another scope does not see the review's entry");
      t.equal(m.get(other), 'other');
    });
    review.run(() => {
      t.equal(isEphemeral(own), true, `${JSON.stringify(opts)}: the next slice is the same request`);
      t.equal(m.get(own), 'first slice', `${JSON.stringify(opts)}: its entry is where it left it`);
      t.equal(m.has(own), true);
    });
    // A forget between two slices drops the entry, unless the map keeps its entries.
    forgetCachedResults();
    review.run(() => t.equal(m.get(own), opts.keepOnForget === true ? 'first slice' : undefined, `${JSON.stringify(opts)}: after a forget`));
    review.close();
    const next = openRequestScope();
    next.run(() => t.equal(m.get(own), undefined, 'a closed scope took its entries with it'));
    next.close();
  }
});
