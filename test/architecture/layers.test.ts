// The one-way layer order of src/ (docs/adr/0006-one-way-layers.md): an import may point to its own
// layer or a lower one, never up. Also: rules keep no caches of their own (module-level Maps), those
// belong to src/policy. Both are checked over every file of src/, and the checker itself is checked on
// synthetic files so that a broken parser cannot pass silently.

import t from 'tap';

import { importsOf, moduleLevelNews } from './imports.ts';
import { describe, LAYERS, layerOf, layerViolations, ruleModuleCaches, sourceFiles, type SourceFile } from './layers.ts';

const root = new URL('../../', import.meta.url).pathname;
const files = sourceFiles(root);

/**
 * Imports against the layer order that cannot be fixed yet, each with its reason: `file` imports
 * `target`. The test fails when an entry no longer matches a real import, so this list only shrinks.
 */
const LAYER_ALLOW: readonly { readonly file: string; readonly target: string; readonly why: string }[] = [];

/**
 * Module-level caches in src/rules allowed for now, keyed by file and the name the cache is declared as.
 * Empty since the `impact` work (issue 20) moved every memo to src/policy/memo.ts; an entry that no longer
 * matches a real cache fails the test, so the list can only shrink.
 */
const RULE_CACHE_ALLOW: readonly { readonly file: string; readonly name: string }[] = [];

t.test('every source file sits in a layer', async (t) => {
  t.ok(files.length > 80, `${files.length} files read`);
  t.same(
    files.filter((f) => layerOf(f.path) === undefined).map((f) => f.path),
    [],
    `files directly in src/ or in a folder that is not one of: ${LAYERS.join(', ')}`,
  );
});

t.test('no import points to a higher layer', async (t) => {
  const found = layerViolations(files);
  const allowed = (v: (typeof found)[number]) => LAYER_ALLOW.some((a) => a.file === v.file && a.target === v.target);
  t.same(found.filter((v) => !allowed(v)).map(describe), [], 'imports against the layer order (file:line: from-layer form target: to-layer)');
  for (const a of LAYER_ALLOW) t.ok(found.some((v) => v.file === a.file && v.target === a.target), `allow-listed ${a.file} -> ${a.target} is still needed`);
});

t.test('rule files create no cache at module level', async (t) => {
  const found = ruleModuleCaches(files);
  const key = (c: { file: string; name: string }) => `${c.file} ${c.name}`;
  const allowed = new Set(RULE_CACHE_ALLOW.map(key));
  t.same(
    found.filter((c) => !allowed.has(key(c))).map((c) => `${c.file}:${c.line}: module-level new ${c.ctor}() ${c.name}`),
    [],
    'caches belong to src/policy, not to rules',
  );
  for (const a of RULE_CACHE_ALLOW) t.ok(found.some((c) => key(c) === key(a)), `allow-listed ${key(a)} is still a module-level cache`);
});

// ---------------------------------------------------------------------------------------------------
// The checker itself

t.test('every import form is read, and nothing inside comments or strings', async (t) => {
  const src = [
    "import { a } from './a.ts';",
    "import type { B } from '../b.ts';",
    'import {',
    '  c,',
    '  type D,',
    "} from './c.ts';",
    "import './side-effect.ts';",
    "export * from './star.ts';",
    "export { e } from './e.ts';",
    "export type { F } from './f.ts';",
    'export { local };',
    "const g = await import('./g.ts');",
    "type H = import('./h.ts').H;",
    "const dyn = await import(someVariable);",
    "// import { no } from './comment.ts';",
    "/* import { no } from './block.ts'; */",
    "const s = \"import { no } from './string.ts'\";",
    "const tpl = `import { no } from './template.ts' ${x}`;",
    "const re = /import('.\\/regex.ts')/;",
    'const meta = import.meta.url;',
    "const obj = { import: 1, from: './not.ts' };",
  ].join('\n');
  t.same(
    importsOf(src).map((r) => `${r.line} ${r.form} ${r.spec}`),
    [
      '1 import ./a.ts',
      '2 import type ../b.ts',
      '6 import ./c.ts',
      '7 import ./side-effect.ts',
      '8 export from ./star.ts',
      '9 export from ./e.ts',
      '10 export from ./f.ts',
      '12 dynamic import ./g.ts',
      '13 dynamic import ./h.ts',
    ],
  );
});

t.test('the checker reports an import to a higher layer, with file:line and both layers', async (t) => {
  const synthetic: SourceFile[] = [
    { path: 'src/rules/bad.ts', text: "import type { Change } from '../core/change.ts';\nimport { createDecide } from '../verdict/decide.ts';\n" },
    { path: 'src/core/also-bad.ts', text: "export type { X } from '../state/store.ts';\n" },
    { path: 'src/state/lazy.ts', text: "async function f() {\n  return import('../admission/review.ts');\n}\n" },
    { path: 'src/cli/fine.ts', text: "import { a } from '../core/a.ts';\nimport { b } from './b.ts';\nimport { c } from 'commander';\n" },
    { path: 'src/stray.ts', text: "import { d } from './core/d.ts';\n" },
    { path: 'src/policy/test-helper.ts', text: "import { e } from '../../test/helpers/e.ts';\n" },
  ];
  t.same(layerViolations(synthetic).map(describe), [
    'src/rules/bad.ts:2: rules (layer 6) import src/verdict/decide.ts: verdict (layer 7)',
    'src/core/also-bad.ts:1: core (layer 1) export from src/state/store.ts: state (layer 2)',
    'src/state/lazy.ts:2: state (layer 2) dynamic import src/admission/review.ts: admission (layer 9)',
    'src/stray.ts:1: no layer import src/core/d.ts: core (layer 1)',
    'src/policy/test-helper.ts:1: policy (layer 4) import test/helpers/e.ts: no layer',
  ]);
});

t.test('module-level caches are found; per-call ones are not', async (t) => {
  const src = [
    'const a = new Map<string, number>();',
    'export const b = new ScopedWeakMap<object, string>();',
    'const c = { byId: new WeakMap() };',
    'const d = wrap(new Map());',
    'function f(x = new Map()) {',
    '  const e = new Map();',
    '  return e;',
    '}',
    'const g = () => new Map();',
    'const h = (m = new Map()) => m;',
    'const i = function () { return new WeakMap(); };',
    'class K {',
    '  readonly j = new Map();',
    '  m() { return new Map(); }',
    '}',
    'const l = new Set();',
    'const n = [new WeakMap()];',
  ].join('\n');
  t.same(
    moduleLevelNews(src).map((n) => `${n.line} ${n.ctor} ${n.name}`),
    ['1 Map a', '2 ScopedWeakMap b', '3 WeakMap c', '4 Map d', '17 WeakMap n'],
  );
});
