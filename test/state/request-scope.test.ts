import t from 'tap';
import { forgetCachedResults, inRequestScope, isEphemeral, markEphemeral, ScopedWeakMap } from '../../src/state/request-scope.ts';

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
