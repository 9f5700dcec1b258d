// The catalogue is discovered from src/rules: every rule (a folder `<id>/index.ts`) is registered
// under its name, has its docs page, and every docs page belongs to a rule.

import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';

import { OPERATIONS } from '../../src/core/change.ts';
import { KIND_NAMES } from '../../src/core/kinds.ts';
import { allRules, discoverRules, ruleById, ruleEntries } from '../../src/rules/registry.ts';

const root = new URL('../../', import.meta.url);
const ruleIds = ruleEntries(new URL('src/rules/', root)).map((e) => e.id);
const docsDir = new URL('docs/rules/', root);
const docPages = existsSync(docsDir) ? readdirSync(docsDir).filter((f) => f.endsWith('.md')) : [];

t.test('src/rules holds rule folders and, beside them, only the registry and the shared wording', async (t) => {
  const entries = readdirSync(new URL('src/rules/', root), { withFileTypes: true });
  const files = entries.filter((e) => !e.isDirectory()).map((e) => e.name).sort();
  t.same(files, ['registry.ts', 'render-helpers.ts'], 'a rule is a folder: no single-file rule, no semantic helper module');
  const folders = entries.filter((e) => e.isDirectory()).map((e) => e.name).sort();
  t.same(folders, ruleIds, 'every folder is a rule');
});

t.test('every rule has a message table of its own, with kebab-case codes under its id', async (t) => {
  for (const r of allRules()) {
    if (!r.messages) {
      t.fail(`${r.id}: no message table`);
      continue;
    }
    t.equal(r.messages.rule, r.id, `${r.id}: table`);
    t.ok(r.messages.byCode.size > 0, `${r.id}: has codes`);
    for (const code of r.messages.byCode.keys()) {
      t.ok(code.startsWith(`${r.id}/`), `${code}: under its rule id`);
      t.match(code.slice(r.id.length + 1), /^[a-z0-9]+(-[a-z0-9]+)*$/, `${code}: kebab-case kind`);
    }
  }
});

t.test('every rule folder is registered under its own name, sorted, once', async (t) => {
  const ids = allRules().map((r) => r.id);
  t.same(ids, ruleIds);
  t.ok(ids.length >= 16, `${ids.length} rules`);
  t.same(ids, [...ids].sort(), 'sorted by id');
  t.equal(new Set(ids).size, ids.length, 'unique');
  for (const r of allRules()) t.equal(ruleById(r.id), r);
  t.equal(ruleById('no-such-rule'), undefined);
});

t.test('every rule is well formed', async (t) => {
  for (const r of allRules()) {
    t.match(r.id, /^[a-z0-9]+(-[a-z0-9]+)*$/, `${r.id}: id is kebab-case`);
    t.ok(r.id.length <= 63, `${r.id}: fits an audit annotation key`);
    t.ok(['B', 'I', 'R'].includes(r.severity), `${r.id}: severity`);
    t.ok(r.summary.length > 0 && !r.summary.includes('\n'), `${r.id}: one-line summary`);
    t.equal(r.docs, `docs/rules/${r.id}.md`, `${r.id}: docs path`);
    t.ok(r.triggers.length > 0, `${r.id}: has triggers`);
    for (const tr of r.triggers) {
      for (const k of tr.kinds) t.ok((KIND_NAMES as readonly string[]).includes(k), `${r.id}: trigger kind ${k}`);
      for (const o of tr.operations) t.ok(OPERATIONS.includes(o), `${r.id}: trigger operation ${o}`);
      t.ok(tr.kinds.length > 0 && tr.operations.length > 0, `${r.id}: trigger not empty`);
    }
  }
});

t.test('every rule has its docs page and every docs page has a rule', async (t) => {
  for (const r of allRules()) t.ok(existsSync(new URL(r.docs, root)), `${r.docs} exists`);
  const ids = new Set(allRules().map((r) => r.id));
  for (const page of docPages) t.ok(ids.has(page.replace(/\.md$/, '')), `docs/rules/${page} belongs to a registered rule`);
});

/** A rules directory of its own: `files` maps a relative path to its content. */
const tempDirs: string[] = [];
t.teardown(() => tempDirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function rulesDir(files: Record<string, string>): URL {
  const dir = mkdtempSync(join(tmpdir(), 'meshguard-rules-'));
  tempDirs.push(dir);
  writeFileSync(join(dir, 'package.json'), '{"type": "module"}\n');
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return pathToFileURL(dir + '/');
}

const ruleModule = (id: string) =>
  `export const rule = { id: ${JSON.stringify(id)}, severity: 'R', summary: 's', docs: 'docs/rules/${id}.md', triggers: [], evaluate: () => [] };\n`;

t.test('a rule is a kebab-case folder with an index module; files and other folders are not rules', async (t) => {
  const dir = rulesDir({
    'in-a-folder/index.ts': ruleModule('in-a-folder'),
    'in-a-folder/messages.ts': 'export const x = 1;\n',
    'single-file.ts': ruleModule('single-file'),
    'render-helpers.ts': 'export const y = 2;\n',
    'not-a-rule/data.yaml': 'a: 1\n',
    'Not_A_Rule/index.ts': ruleModule('Not_A_Rule'),
  });
  t.same(ruleEntries(dir), [{ id: 'in-a-folder', path: 'in-a-folder/index.ts' }]);
  t.same((await discoverRules(dir)).map((r) => r.id), ['in-a-folder']);
});

t.test('a stale <id>.js beside the folder of the same id (an old dist/) is ignored', async (t) => {
  const dir = rulesDir({ 'twice/index.ts': ruleModule('twice'), 'twice.ts': ruleModule('other-id') });
  t.same((await discoverRules(dir)).map((r) => r.id), ['twice']);
});

t.test('a misnamed or malformed rule fails at startup', async (t) => {
  await t.rejects(discoverRules(rulesDir({ 'good-name/index.ts': ruleModule('other-name') })), {
    message: 'src/rules/good-name/index.ts exports rule id "other-name"; it must be "good-name"',
  });
  await t.rejects(discoverRules(rulesDir({ 'no-export/index.ts': 'export const rules = [];\n' })), {
    message: 'src/rules/no-export/index.ts does not export `rule: Rule`',
  });
});
