// The README's rule table and its first commands are part of what a newcomer relies on.
import { readFileSync } from 'node:fs';
import t from 'tap';

import { allRules } from '../src/rules/registry.ts';
import { withRulesTable } from '../scripts/readme-rules.ts';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

t.test('the rule table is the registry (run `make readme` after adding a rule)', async (t) => {
  t.equal(readme, withRulesTable(readme));
  for (const r of allRules()) t.match(readme, `[\`${r.id}\`](docs/rules/${r.id}.md)`);
});

t.test('the first screen shows make run and make test', async (t) => {
  const head = readme.split('\n').slice(0, 10).join('\n');
  t.match(head, 'make run');
  t.match(head, 'make test');
});
