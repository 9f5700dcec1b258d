// Writes the rule table of README.md (between the rules:begin / rules:end markers) from the rule
// registry, so the catalogue is never maintained by hand twice. `make readme` runs it;
// test/readme.test.ts fails when the README is out of date.

import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { formatRulesMarkdown, ruleRows } from '../src/cli/rules.ts';
import { allRules } from '../src/rules/registry.ts';

export const BEGIN = '<!-- rules:begin -->';
export const END = '<!-- rules:end -->';

export function rulesTable(): string {
  const ctx = { io: { stdout: () => {}, stderr: () => {} }, rules: allRules(), exitCode: 0 };
  // Links relative to the README, so that they follow the branch being read.
  return formatRulesMarkdown(ruleRows(ctx as never), false, 'repository');
}

/** The README text with its rule table replaced by the registry's. */
export function withRulesTable(readme: string): string {
  const a = readme.indexOf(BEGIN);
  const b = readme.indexOf(END);
  if (a < 0 || b < a) throw new Error(`README.md has no ${BEGIN} ... ${END} block`);
  return readme.slice(0, a + BEGIN.length) + '\n' + rulesTable() + readme.slice(b);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = new URL('../README.md', import.meta.url);
  writeFileSync(file, withRulesTable(readFileSync(file, 'utf8')));
}
