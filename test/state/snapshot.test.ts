import t from 'tap';
import { symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../../src/core/errors.ts';
import { jsonErrorOffset, jsonItemLines } from '../../src/state/io/json.ts';
import { readManifests } from '../../src/state/io/manifests.ts';
import { loadSnapshot, SnapshotSource } from '../../src/state/snapshot.ts';
import type { ConfigMap, Pod } from '../../src/core/objects.ts';

const podList = `apiVersion: v1
kind: List
metadata:
  resourceVersion: ""
items:
- apiVersion: v1
  kind: Pod
  metadata:
    name: web-1
    namespace: shop
    labels: {app: web}
    managedFields: [{manager: kubectl}]
  spec:
    containers: [{name: app, image: nginx}]
- apiVersion: v1
  kind: Pod
  metadata:
    name: web-2
    namespace: shop
  spec:
    containers: [{name: app}]
`;

const multiDoc = `# leading comment
---
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels:
    istio.io/dataplane-mode: ambient
---
---
# only a comment
---
apiVersion: v1
kind: Secret
metadata: {name: s, namespace: shop}
data: {password: aHVudGVyMg==}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: deny-all, namespace: shop}
spec:
  endpointSelector: {}
  egressDeny: [{toEntities: [world]}]
`;

const jsonPodList = JSON.stringify(
  {
    apiVersion: 'v1',
    kind: 'PodList',
    items: [
      { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'db-1', namespace: 'data' }, spec: { containers: [] } },
      { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'db-2', namespace: 'data' }, spec: { containers: [] } },
    ],
  },
  null,
  2,
);

t.test('List, multi-document YAML and JSON, with lines', async (t) => {
  const dir = t.testdir({ 'list.yaml': podList, 'multi.yml': multiDoc, 'pods.json': jsonPodList });
  const list = readManifests([join(dir, 'list.yaml')]);
  t.same(list.map((d) => [(d.object.metadata as { name: string }).name, d.line]), [['web-1', 6], ['web-2', 15]]);
  const multi = readManifests([join(dir, 'multi.yml')]);
  t.same(multi.map((d) => [d.object.kind, d.line]), [['Namespace', 3], ['Secret', 13], ['CiliumNetworkPolicy', 18]]);
  const json = readManifests([join(dir, 'pods.json')]);
  t.same(json.map((d) => [(d.object.metadata as { name: string }).name, d.line]), [['db-1', 5], ['db-2', 16]]);
  t.equal(json[0]!.file, join(dir, 'pods.json'));
});

t.test('directories are read recursively, sorted, skipping other and hidden files', async (t) => {
  const dir = t.testdir({
    'b.yaml': podList,
    'a.json': jsonPodList,
    'README.md': 'not yaml: [',
    '.hidden.yaml': 'broken: [',
    sub: { 'c.yml': multiDoc, 'notes.txt': '{' },
  });
  symlinkSync(dir, join(dir, 'sub', 'loop')); // a symlink loop must not hang
  const docs = readManifests([dir]);
  t.same([...new Set(docs.map((d) => d.file))], [join(dir, 'a.json'), join(dir, 'b.yaml'), join(dir, 'sub', 'c.yml')]);
  t.equal(docs.length, 2 + 2 + 3);
});

t.test('bad input is an InputError naming file and line', async (t) => {
  const dir = t.testdir({
    'bad.yaml': 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  labels: {x: [\n',
    'tab.yaml': 'apiVersion: v1\nkind: Pod\nmetadata:\n\tname: a\n',
    'second.yaml': 'apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n  oops: [\n',
    'noname.yaml': 'apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n\napiVersion: v1\nkind: Namespace\nmetadata: {}\n',
    'nokind.yaml': 'apiVersion: v1\nmetadata: {name: a}\n',
    'scalar.yaml': 'just a string\n',
    'badItem.yaml': 'apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: a}\n- kind: Pod\n  metadata: {name: b}\n',
    'bad.json': '{\n  "apiVersion": "v1",\n  "kind": "Pod",\n  "metadata": {"name": "a"},\n}\n',
    'dup.yaml': 'apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\nmetadata: {name: b}\n',
  });
  const cases: [string, number, RegExp][] = [
    ['bad.yaml', 6, /invalid YAML/],
    ['tab.yaml', 4, /invalid YAML/],
    ['second.yaml', 8, /invalid YAML/],
    ['noname.yaml', 6, /metadata\.name/],
    ['nokind.yaml', 1, /no kind/],
    ['scalar.yaml', 1, /not a Kubernetes object/],
    ['badItem.yaml', 7, /item 1 of the List has no apiVersion/],
    ['bad.json', 5, /invalid JSON/],
  ];
  for (const [file, line, msg] of cases) {
    const path = join(dir, file);
    t.throws(() => readManifests([path]), InputError, file);
    try {
      readManifests([path]);
    } catch (e) {
      const err = e as InputError;
      t.equal(err.file, path, `${file}: file`);
      t.equal(err.line, line, `${file}: line`);
      t.match(err.message, msg, `${file}: message`);
      t.ok(err.message.startsWith(`${path}:${line}: `), `${file}: prefix`);
      t.notMatch(err.message, /\n/, `${file}: one line`);
    }
  }
  // Duplicate keys: the last one wins, as kubectl does, rather than an error.
  t.equal((readManifests([join(dir, 'dup.yaml')])[0]!.object.metadata as { name: string }).name, 'b');
  t.throws(() => readManifests([join(dir, 'missing.yaml')]), { name: 'InputError', file: join(dir, 'missing.yaml') });
});

t.test('an alias bomb is an error, not a hang', async (t) => {
  const lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
  for (let i = 0; i < 9; i++) lines.push(`${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)}]`);
  const dir = t.testdir({ 'bomb.yaml': `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n  ${lines.join('\n  ')}\n` });
  t.throws(() => readManifests([join(dir, 'bomb.yaml')]), InputError);
});

t.test('jsonErrorOffset points at the first error', async (t) => {
  t.equal(jsonErrorOffset('{"a": }'), 6);
  t.equal(jsonErrorOffset('[1, 2,]'), 6);
  t.equal(jsonErrorOffset('{"a": tru}'), 6);
  t.equal(jsonErrorOffset('{"a": "x\n"}'), 8);
});

const cluster = `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: cilium-config, namespace: kube-system}
  data: {routing-mode: tunnel}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: istio, namespace: mesh-ctl}
  data:
    mesh: |-
      rootNamespace: mesh-root
      defaultConfig: {}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: settings, namespace: mesh-root}
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: istiod, namespace: mesh-ctl}
  spec:
    template:
      spec: {containers: [{name: discovery}]}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: app-config, namespace: shop}
  data: {password: hunter2}
- apiVersion: v1
  kind: Pod
  metadata: {name: web-1, namespace: shop, labels: {app: web}}
  spec: {containers: [{name: app}]}
`;

t.test('loadSnapshot keeps known kinds and ConfigMaps of kube-system and the Istio namespaces only', async (t) => {
  const dir = t.testdir({ 'cluster.yaml': cluster, 'more.yaml': multiDoc });
  const s = loadSnapshot([dir]);
  t.same(s.list('ConfigMap').map((c) => `${c.metadata.namespace}/${c.metadata.name}`).sort(), [
    'kube-system/cilium-config',
    'mesh-ctl/istio',
    'mesh-root/settings',
  ]);
  t.same((s.get('ConfigMap', 'kube-system', 'cilium-config') as ConfigMap).data, { 'routing-mode': 'tunnel' });
  t.equal(s.list('Pod').length, 1);
  t.equal(s.podsWithLabel('shop', 'app', 'web')[0]?.metadata.name, 'web-1');
  t.equal(s.list('CiliumNetworkPolicy').length, 1);
  t.equal(s.list('Namespace').length, 1);
  t.equal((s.list('Pod')[0] as Pod).metadata.annotations, undefined);
  t.equal(s.describe(), `snapshot(2 files: ${dir})`);
});

t.test('SnapshotSource lifecycle and stats', async (t) => {
  const dir = t.testdir({ 'cluster.yaml': cluster, 'bad.yaml': 'kind: [' });
  const src = new SnapshotSource([join(dir, 'cluster.yaml')]);
  const state = src.state;
  t.equal(src.synced(), false);
  t.equal(state.list('Pod').length, 0);
  await src.start();
  t.equal(src.synced(), true);
  t.equal(state, src.state, 'the same state object is filled in');
  t.equal(state.list('Pod').length, 1);
  const st = src.stats();
  t.equal(st.synced, true);
  t.equal(st.objects.Pod, 1);
  t.equal(st.objects.ConfigMap, 3);
  t.equal(st.objects.Deployment, 1);
  t.equal(st.objects.Gateway, 0);
  t.equal(st.secondsSinceLastEvent, undefined);
  t.match(state.describe(), /^snapshot\(1 file: /);
  await src.stop();

  const bad = new SnapshotSource([dir]);
  await t.rejects(bad.start(), { name: 'InputError', file: join(dir, 'bad.yaml'), line: 1 });
  t.equal(bad.synced(), false);
});

t.test('JSON fast path: item lines match the YAML parser, also inside a .yaml file with a comment header', async (t) => {
  const tricky = {
    apiVersion: 'v1',
    kind: 'List',
    metadata: { note: 'items: [ "not", {this} ]', items: ['nested key at depth 2'] },
    items: [
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a"b\\[', namespace: 'kube-system' }, data: { items: '[{]' } },
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'x', labels: { items: 'y' } }, spec: { items: [1, 2, [3]] } },
    ],
  };
  const pretty = JSON.stringify(tricky, null, 2);
  const dir = t.testdir({ 'l.json': pretty, 'l.yaml': `# a snapshot header\n\n# more\n${pretty}\n`, 'compact.json': JSON.stringify(tricky) });
  const json = readManifests([join(dir, 'l.json')]);
  t.same(json.map((d) => d.line), [11, 22]);
  t.same(json.map((d) => d.object.kind), ['ConfigMap', 'Namespace']);
  const yaml = readManifests([join(dir, 'l.yaml')]);
  t.same(yaml.map((d) => d.line), [14, 25], 'shifted by the 3 header lines');
  t.same(readManifests([join(dir, 'compact.json')]).map((d) => d.line), [1, 1]);

  // Property: on random pretty-printed Lists, the scanner agrees with the YAML parser's positions.
  const fc = (await import('fast-check')).default;
  const { LineCounter, parseDocument, isMap, isSeq } = await import('yaml');
  fc.assert(
    fc.property(fc.array(fc.jsonValue({ maxDepth: 3 }), { maxLength: 6 }), fc.jsonValue({ maxDepth: 2 }), fc.constantFrom(0, 1, 2, 4), (items, meta, indent) => {
      const text = JSON.stringify({ metadata: meta, kind: 'List', items, apiVersion: 'v1' }, null, indent);
      const lc = new LineCounter();
      const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: false });
      const seq = isMap(doc.contents) ? doc.contents.get('items', true) : undefined;
      const expected = isSeq(seq) ? seq.items.map((n) => lc.linePos((n as { range: [number] }).range[0]).line) : [];
      t.same(jsonItemLines(text), expected);
      return true;
    }),
    { numRuns: 200 },
  );
});

t.test('"-" reads standard input', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const script = `import { readManifests } from ${JSON.stringify(new URL('../../src/state/io/manifests.ts', import.meta.url).href)};
try { console.log(JSON.stringify(readManifests(['-']).map((d) => [d.file, d.line, d.object.kind]))); }
catch (e) { console.log(String(e.message)); }`;
  const run = (input: string) =>
    spawnSync(process.execPath, ['--input-type=module', '-e', script], { input, encoding: 'utf8', timeout: 20_000 }).stdout.trim();
  t.equal(run(podList), JSON.stringify([['<stdin>', 6, 'Pod'], ['<stdin>', 15, 'Pod']]));
  t.equal(run('apiVersion: v1\nkind: Pod\nmetadata: [\n'), '<stdin>:4: invalid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]');
});

t.test('a state with no objects is an input error, not an empty cluster (a mistyped CI path must fail)', async (t) => {
  const dir = t.testdir({ empty: {}, 'blank.yaml': '# nothing here\n', 'only-empty-docs.yaml': '---\n---\n', ok: { 'ns.yaml': 'apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n' } });
  for (const p of ['empty', 'blank.yaml', 'only-empty-docs.yaml']) {
    t.throws(() => loadSnapshot([join(dir, p)]), InputError, p);
    t.throws(() => loadSnapshot([join(dir, p)]), /no Kubernetes objects found in state/, p);
  }
  // One real object anywhere among the paths is enough.
  t.equal(loadSnapshot([join(dir, 'empty'), join(dir, 'ok', 'ns.yaml')]).list('Namespace').length, 1);
});
