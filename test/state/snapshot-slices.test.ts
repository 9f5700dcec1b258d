// A snapshot loaded in slices (serve --state, issue 21): the event loop is handed back while the files
// are read, the state is the one a synchronous load builds, and nothing sees it part-filled. Slices are
// measured on a clock the test drives (one tick per object read), so nothing depends on machine speed.
import t from 'tap';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { chunkedJsonList } from '../../src/state/io/json.ts';
import { manifestDocs, PAUSE } from '../../src/state/io/manifests.ts';
import { loadSnapshot, loadSnapshotInSlices, SnapshotSource } from '../../src/state/snapshot.ts';
import { KIND_NAMES } from '../../src/core/kinds.ts';
import type { MemoryState } from '../../src/state/store.ts';

const pod = (ns: string, name: string, app: string) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: ns, labels: { app }, managedFields: [{ manager: 'kubectl' }] },
  spec: { containers: [{ name: 'app', image: 'nginx' }] },
});
const objects = [
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels: { team: 'a' } } },
  { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cilium-config', namespace: 'kube-system' }, data: { 'enable-policy': 'default' } },
  { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'other', namespace: 'shop' }, data: {} },
  ...Array.from({ length: 300 }, (_, i) => pod('shop', `web-${i}`, i % 3 === 0 ? 'api' : 'web')),
];
const list = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }, null, 1);

/** Everything a review can read from a state, as data. */
function contents(s: MemoryState): unknown {
  return {
    label: s.describe(),
    kinds: KIND_NAMES.map((k) => [k, s.list(k).map((o) => JSON.stringify(o)).sort()]),
    web: s.podsWithLabel('shop', 'app', 'web').length,
    api: s.podsWithLabel('shop', 'app', 'api').length,
  };
}

/** A clock that moves one ms each time it is read: the load reads it once per object (and pause). */
function tickingClock(): { now: () => number; reads: () => number } {
  let n = 0;
  return { now: () => n++, reads: () => n };
}

/** Runs `fn` with .json files read in chunks (as a big snapshot is) of `bytes`. */
async function chunked<T>(bytes: number, fn: () => Promise<T>): Promise<T> {
  const saved = { ...chunkedJsonList };
  chunkedJsonList.fromBytes = 0;
  chunkedJsonList.chunkBytes = bytes;
  try {
    return await fn();
  } finally {
    chunkedJsonList.fromBytes = saved.fromBytes;
    chunkedJsonList.chunkBytes = saved.chunkBytes;
  }
}

t.test('the state loaded in slices is the one a synchronous load builds, from every kind of file', async (t) => {
  const dir = t.testdir({ 'list.json': list, 'list.yaml': stringify({ apiVersion: 'v1', kind: 'List', items: objects }), 'docs.yaml': objects.map((o) => stringify(o)).join('---\n') });
  for (const f of ['list.json', 'list.yaml', 'docs.yaml']) {
    const path = join(dir, f);
    const whole = contents(loadSnapshot([path]));
    t.same(contents(await loadSnapshotInSlices([path], { sliceMs: 5, now: tickingClock().now })), whole, f);
    if (f === 'list.json') {
      const viaChunks = await chunked(256, () => loadSnapshotInSlices([path], { sliceMs: 5, now: tickingClock().now }));
      t.same(contents(viaChunks), whole, `${f} read in chunks`);
    }
  }
  const s = loadSnapshot([join(dir, 'list.json')]);
  t.equal(s.count('Pod'), 300);
  t.equal(s.count('ConfigMap'), 1, 'ConfigMaps outside kube-system and the Istio namespaces are left out, as before');
});

t.test('the event loop is handed back every slice: a task queued before the load runs while it goes on', async (t) => {
  const dir = t.testdir({ 'list.json': list });
  for (const viaChunks of [false, true]) {
    const clock = tickingClock();
    let yields = 0;
    const readsAtYield: number[] = [];
    // An explicit event queued before the load starts: it must run before the load ends.
    let ranAfterReads = -1;
    setImmediate(() => (ranAfterReads = clock.reads()));
    const load = () =>
      loadSnapshotInSlices([join(dir, 'list.json')], {
        sliceMs: 10,
        now: clock.now,
        yieldNow: async () => {
          yields++;
          readsAtYield.push(clock.reads());
          await new Promise<void>((r) => setImmediate(r));
        },
      });
    const state = viaChunks ? await chunked(512, load) : await load();
    const what = viaChunks ? 'read in chunks' : 'read whole';
    t.equal(state.count('Pod'), 300, what);
    const total = clock.reads();
    t.ok(ranAfterReads > 0 && ranAfterReads < total, `${what}: the queued task ran mid-load (after ${ranAfterReads} of ${total} clock reads)`);
    // At least one turn per 10 clock reads (one read per object or pause): no slice runs longer.
    t.ok(yields >= Math.floor(total / 11), `${what}: ${yields} turns handed back for ${total} clock reads`);
    const gaps = readsAtYield.map((r, i) => r - (readsAtYield[i - 1] ?? 0));
    t.ok(Math.max(...gaps) <= 12, `${what}: at most a slice between two turns (${Math.max(...gaps)} reads)`);
  }
});

t.test('the big .json path pauses between chunks of its scan, before its first object', async (t) => {
  const dir = t.testdir({ 'list.json': list });
  const seq = await chunked(1024, async () => [...manifestDocs([join(dir, 'list.json')])]);
  const firstDoc = seq.findIndex((d) => d !== PAUSE);
  t.ok(firstDoc >= Math.floor(Buffer.byteLength(list) / 1024), `${firstDoc} pauses during the scan of ${Buffer.byteLength(list)} bytes`);
  t.equal(seq.filter((d) => d !== PAUSE).length, objects.length);
});

t.test('SnapshotSource: not synced and empty while loading, whole once synced; errors as before', async (t) => {
  const dir = t.testdir({ 'list.json': list, 'bad.json': list.replace('"web-7"', '"web-7",') });
  const seen: string[] = [];
  let src!: SnapshotSource;
  src = new SnapshotSource([join(dir, 'list.json')], {
    sliceMs: 10,
    now: tickingClock().now,
    yieldNow: async () => {
      seen.push(`${src.synced()} ${src.state.count('Pod')}`);
      await new Promise<void>((r) => setImmediate(r));
    },
  });
  await src.start();
  t.ok(seen.length > 3, `${seen.length} turns handed back`);
  t.same([...new Set(seen)], ['false 0'], 'nothing part-filled is ever visible');
  t.equal(src.synced(), true);
  t.equal(src.state.count('Pod'), 300);

  let syncErr: unknown;
  try {
    loadSnapshot([join(dir, 'bad.json')]);
  } catch (e) {
    syncErr = e;
  }
  t.match(syncErr, { name: 'InputError' });
  const bad = new SnapshotSource([join(dir, 'bad.json')], { sliceMs: 10, now: tickingClock().now });
  await t.rejects(bad.start(), { name: 'InputError', message: (syncErr as Error).message }, 'the error a synchronous load reports');
  t.equal(bad.synced(), false);

  let asked = 0;
  await t.rejects(
    loadSnapshotInSlices([join(dir, 'list.json')], { sliceMs: 10, now: tickingClock().now, shouldStop: () => ++asked >= 2 }),
    { name: 'AbortError' },
    'a load told to stop ends at its next turn',
  );
  t.equal(asked, 2);
});

t.test('a file over the YAML bound is refused before any read, sliced or not', async (t) => {
  const dir = t.testdir({ 'big.yaml': stringify({ apiVersion: 'v1', kind: 'List', items: objects }) });
  const limits = { maxBytes: 1 << 30, maxYamlBytes: 1024 };
  t.throws(() => loadSnapshot([join(dir, 'big.yaml')], { limits }), { name: 'InputError' });
  await t.rejects(loadSnapshotInSlices([join(dir, 'big.yaml')], { limits }), { name: 'InputError' });
});
