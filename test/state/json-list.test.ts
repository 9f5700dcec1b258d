// A .json List is read item by item (forEachManifest), so a big snapshot is never one tree of raw
// objects. It must read exactly what the whole-document parse reads (used for .yaml files holding JSON):
// the same objects, lines and errors.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { chunkedJsonList } from '../../src/state/io/json.ts';
import { forEachManifest, readManifests, type ManifestDoc } from '../../src/state/io/manifests.ts';

const cm = (name: string, extra: Record<string, unknown> = {}) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'ns' }, ...extra });

/** What readManifests gives for `text` as a .json file and as a .yaml file (whole-document JSON path). */
function both(dir: string, text: string): { json: unknown; yaml: unknown } {
  writeFileSync(join(dir, 'x.json'), text);
  writeFileSync(join(dir, 'x.yaml'), text);
  const run = (f: string) => {
    try {
      return { docs: readManifests([join(dir, f)]).map((d) => ({ object: d.object, line: d.line })) };
    } catch (e) {
      const err = e as Error & { line?: number };
      return { error: err.message.replace(/^.*x\.(json|yaml)/, 'FILE'), name: err.name, line: err.line };
    }
  };
  return { json: run('x.json'), yaml: run('x.yaml') };
}

const list = (items: unknown[], extra = {}) => ({ apiVersion: 'v1', kind: 'List', ...extra, items });
/** Texts the item-by-item reader must read as the whole-document parse does (some are not Lists). */
const TEXTS = [
    JSON.stringify(list([cm('a'), cm('b')]), null, 2),
    JSON.stringify(list([cm('a'), null, cm('b')])),
    JSON.stringify(list([])),
    `\n\n  ${JSON.stringify(list([cm('a')]), null, 1)}  \n`,
    JSON.stringify(list([cm('a"]}[{,', { data: { items: '[{"x": 1}]', k: 'a\\"b' } }), cm('b')])),
    JSON.stringify(list([list([cm('inner')]), cm('b')])), // a List inside a List stays an object
    JSON.stringify({ items: [cm('a')], apiVersion: 'v1', kind: 'ConfigMapList', metadata: { items: [1] } }),
    '{"apiVersion":"v1","kind":"List","items":5,"items":[' + JSON.stringify(cm('last-wins')) + ']}',
    '{"apiVersion":"v1","kind":"List","items":[' + JSON.stringify(cm('first')) + '],"items":[]}',
    JSON.stringify({ apiVersion: 'v1', kind: 'Thing', metadata: { name: 'not-a-list' }, items: [cm('a')] }),
    // errors: syntax in a later item wins over a missing name in an earlier one, as before
    '{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{}},\n{"bad": }]}',
    '{"apiVersion":"v1","kind":"List","items":[\n' + JSON.stringify(cm('a')) + ',\n{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}\n]}',
    '{"apiVersion":"v1","kind":"List","items":[' + JSON.stringify(cm('a')) + ']} trailing',
    '{"apiVersion":"v1","kind":"List","items":[' + JSON.stringify(cm('a')) + ',]}',
    '{"apiVersion":"v1","kind":"List","items":[' + JSON.stringify(cm('a')) + ']',
    '{"kind":"List","items":[' + JSON.stringify(cm('a')) + ']}',
    '\u00a0{"apiVersion":"v1","kind":"List","items":[]}',
    '[{"apiVersion":"v1","kind":"List","items":[]}]',
    '',
];

t.test('same objects, lines and errors as the whole-document parse', async (t) => {
  const dir = t.testdir({});
  const texts = TEXTS;
  for (const text of texts) {
    const { json, yaml } = both(dir, text);
    let valid = true;
    try {
      JSON.parse(text);
    } catch {
      valid = false;
    }
    // Valid JSON in a .yaml file takes the whole-document JSON path; invalid JSON there falls back to
    // YAML, so those cases are checked against the JSON error below instead.
    if (valid || text.trim() === '') t.same(json, yaml, text.slice(0, 80));
    else t.match(json, { error: /^FILE:\d+: invalid JSON/, name: 'InputError' }, text.slice(0, 80));
  }
  // A syntax error in a later item is reported, not the missing name of an earlier one.
  t.match(both(dir, texts[10]!).json, { error: /^FILE:2: invalid JSON/, line: 2 });
  t.match(both(dir, texts[11]!).json, { error: 'FILE:3: item 1 of the List (ConfigMap) has no metadata.name', line: 3 });
});

t.test('random Lists: item by item equals whole document', async (t) => {
  const dir = t.testdir({});
  const item = fc.oneof(
    fc.record({ apiVersion: fc.constant('v1'), kind: fc.constantFrom('ConfigMap', 'Pod', 'List'), metadata: fc.record({ name: fc.string({ minLength: 1, maxLength: 5 }) }), data: fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }) }),
    fc.constant(null),
  );
  fc.assert(
    fc.property(fc.array(item, { maxLength: 5 }), fc.jsonValue({ maxDepth: 2 }), fc.constantFrom(0, 1, 2), (items, meta, indent) => {
      const text = JSON.stringify({ metadata: meta, kind: 'List', items, apiVersion: 'v1' }, null, indent);
      const { json, yaml } = both(dir, text);
      t.same(json, yaml);
      return true;
    }),
    { numRuns: 150 },
  );
});

t.test('forEachManifest visits in order, before the whole file is read', async (t) => {
  const dir = t.testdir({ 'a.json': JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [cm('a'), cm('b')] }), 'b.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n' });
  const seen: ManifestDoc[] = [];
  forEachManifest([dir], (d) => seen.push(d));
  t.same(seen.map((d) => (d.object.metadata as { name: string }).name), ['a', 'b', 'c']);
  t.same(seen.map((d) => d.line), [1, 1, 1]);
});

/** Runs `fn` with every .json file read in chunks of `chunkBytes`; returns how many Lists were read so. */
function chunked(chunkBytes: number, fn: () => void): number {
  const saved = { ...chunkedJsonList };
  chunkedJsonList.fromBytes = 0;
  chunkedJsonList.chunkBytes = chunkBytes;
  const before = chunkedJsonList.listsRead;
  try {
    fn();
    return chunkedJsonList.listsRead - before;
  } finally {
    chunkedJsonList.fromBytes = saved.fromBytes;
    chunkedJsonList.chunkBytes = saved.chunkBytes;
  }
}

t.test('big .json files are read in chunks: the same objects, lines and errors, whatever the chunk size', async (t) => {
  const dir = t.testdir({});
  const bom = '\ufeff' + JSON.stringify(list([cm('a', { data: { k: 'é€𝄞' } })]), null, 1);
  const texts = [...TEXTS, bom, JSON.stringify(list([cm('ü'.repeat(40)), cm('b', { data: { x: '"]},[{' } })]))];
  const listsBySize: number[] = [];
  for (const size of [1, 2, 7, 64, 1 << 20]) {
    let lists = 0;
    for (const text of texts) {
      const whole = both(dir, text).json;
      let viaChunks: unknown;
      lists += chunked(size, () => (viaChunks = both(dir, text).json));
      t.same(viaChunks, whole, `${size}-byte chunks: ${text.slice(0, 60)}`);
    }
    listsBySize.push(lists);
  }
  // The chunk size changes nothing about which files are read in chunks: at least the seven Lists at
  // the head of TEXTS and the two added here (the rest are errors or not Lists, left to the text path).
  t.same(new Set(listsBySize).size, 1, `Lists read in chunks at each size: ${listsBySize.join(', ')}`);
  t.ok(listsBySize[0]! >= 9, `${listsBySize[0]} of ${texts.length} texts read in chunks`);
});

t.test('random Lists read in chunks equal the whole document', async (t) => {
  const dir = t.testdir({});
  const item = fc.oneof(
    fc.record({ apiVersion: fc.constant('v1'), kind: fc.constantFrom('ConfigMap', 'Pod', 'List'), metadata: fc.record({ name: fc.string({ minLength: 1, maxLength: 5 }) }), data: fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }) }),
    fc.constant(null),
  );
  let lists = 0;
  fc.assert(
    fc.property(fc.array(item, { maxLength: 5 }), fc.jsonValue({ maxDepth: 2 }), fc.constantFrom(0, 1, 2), fc.integer({ min: 1, max: 40 }), (items, meta, indent, size) => {
      const text = JSON.stringify({ metadata: meta, kind: 'List', items, apiVersion: 'v1' }, null, indent);
      const whole = both(dir, text).json;
      let viaChunks: unknown;
      lists += chunked(size, () => (viaChunks = both(dir, text).json));
      t.same(viaChunks, whole);
      return true;
    }),
    { numRuns: 150 },
  );
  t.equal(lists, 150, 'every random List was read in chunks');
});
