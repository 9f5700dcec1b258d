// The catalogue is discovered from src/rules: every rule file is registered under its file name, has
// its docs page, and every docs page belongs to a rule.

import { existsSync, readdirSync } from 'node:fs';
import t from 'tap';

import { OPERATIONS } from '../../src/core/change.ts';
import { allRules, isRuleFile, ruleById, ruleIdOfFile } from '../../src/rules/registry.ts';
import { KIND_NAMES } from '../../src/state/kinds.ts';

const root = new URL('../../', import.meta.url);
const ruleFiles = readdirSync(new URL('src/rules/', root)).filter(isRuleFile).sort();
const docsDir = new URL('docs/rules/', root);
const docPages = existsSync(docsDir) ? readdirSync(docsDir).filter((f) => f.endsWith('.md')) : [];

t.test('which files are rules', async (t) => {
  for (const f of ['dns-egress-missing.ts', 'split-brain-l7-sidecar.js']) t.ok(isRuleFile(f), f);
  for (const f of ['index.ts', 'registry.ts', 'types.js', 'helpers.ts', 'egress-helpers.ts', 'port-utils.ts', 'x.d.ts', 'x.js.map', 'README.md']) {
    t.notOk(isRuleFile(f), f);
  }
  t.equal(ruleIdOfFile('hbone-15008-blocked.ts'), 'hbone-15008-blocked');
});

t.test('every rule file is registered under its own name, sorted, once', async (t) => {
  const ids = allRules().map((r) => r.id);
  t.same(ids, ruleFiles.map(ruleIdOfFile));
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
