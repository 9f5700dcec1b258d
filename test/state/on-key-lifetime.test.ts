// ScopedWeakMap's onKey entries (src/state/request-scope.ts) live exactly as long as their key, as a
// WeakMap's would: checked with the collector itself, in a child process with --expose-gc. And the map
// that holds them on keys is for memos declared once: the process refuses the one past MAX_ON_KEY_MAPS.
// This file imports request-scope.ts alone, so every onKey slot is its own to count (a module with
// onKey memos imported here would take slots first).

import { spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import t from 'tap';

import { MAX_ON_KEY_MAPS, ScopedWeakMap } from '../../src/state/request-scope.ts';

const moduleUrl = pathToFileURL(new URL('../../src/state/request-scope.ts', import.meta.url).pathname).href;

function inChild(body: string): Record<string, unknown> {
  const script = `
    import { ScopedWeakMap, entriesOnKey } from ${JSON.stringify(moduleUrl)};
    ${body}
  `;
  const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`child failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

t.test('an entry on a key dies with the key, and lives while the key does', async (t) => {
  const out = inChild(`
    const onKey = new ScopedWeakMap({ onKey: true });
    const kept = new ScopedWeakMap({ onKey: true, keepOnForget: true });
    let key = { name: 'k' };
    const living = { name: 'living' };
    let value = { big: new Array(1000).fill(1) };
    const dead = new WeakRef(value);
    onKey.set(key, value);
    kept.set(living, { v: 1 });
    const alive = new WeakRef(kept.get(living));
    value = undefined;
    // Entries on keys no longer used for anything else.
    for (let i = 0; i < 10000; i++) onKey.set({ i }, { i });
    await new Promise((r) => setTimeout(r, 0));
    gc();
    // Read through the key after the collection: a variable never read again is dead to V8 too.
    const beforeDrop = dead.deref() !== undefined && onKey.get(key) === dead.deref();
    key = undefined;
    await new Promise((r) => setTimeout(r, 0));
    gc();
    console.log(JSON.stringify({ beforeDrop, afterDrop: dead.deref() !== undefined, living: alive.deref() !== undefined, entries: entriesOnKey(living) }));
  `);
  t.equal(out['beforeDrop'], true, 'the value lives while its key does');
  t.equal(out['afterDrop'], false, 'and dies with it');
  t.equal(out['living'], true, "another key's entry is untouched");
  t.equal(out['entries'], 1);
});

t.test(`at most ${MAX_ON_KEY_MAPS} onKey maps per process (a map made over and over must not hold entries on keys)`, async (t) => {
  let made = 0;
  let error: unknown;
  try {
    for (let i = 0; i <= MAX_ON_KEY_MAPS; i++) {
      new ScopedWeakMap({ onKey: true });
      made++;
    }
  } catch (e) {
    error = e;
  }
  t.equal(made, MAX_ON_KEY_MAPS, 'the one past the limit is refused');
  t.match(String(error), /onKey is for maps created once/);
  t.doesNotThrow(() => new ScopedWeakMap(), 'maps without onKey are not counted');
});
