// Rule pages' Triggers (and, for rules with codes, Codes) sections are generated from the code.
import { readFileSync } from 'node:fs';
import t from 'tap';

import { allRules } from '../../src/rules/registry.ts';
import type { Rule } from '../../src/core/rule.ts';
import { CODES_BEGIN, TRIGGERS_BEGIN, TRIGGERS_END, triggersTable, withGenerated } from '../../scripts/rule-docs.ts';

const root = new URL('../../', import.meta.url);

t.test('every rule page is up to date with its rule (run `make readme` after changing triggers or codes)', async (t) => {
  for (const r of allRules()) {
    const page = readFileSync(new URL(r.docs, root), 'utf8');
    t.ok(page.includes(TRIGGERS_BEGIN), `${r.docs}: has the triggers block`);
    t.equal(page, withGenerated(r, page), `${r.docs}: generated sections match the code`);
    t.equal(page.includes(CODES_BEGIN), r.messages !== undefined, `${r.docs}: a codes block exactly when the rule has codes`);
    if (r.messages) for (const code of r.messages.byCode.keys()) t.match(page, `\`${code}\``, `${r.docs} lists ${code}`);
  }
});

t.test('the generated table follows the triggers', async (t) => {
  const fake = { id: 'x', triggers: [{ kinds: ['ConfigMap'], operations: ['CREATE'], when: 'a | b' }, { kinds: ['Namespace', 'Pod'], operations: ['UPDATE', 'DELETE'] }] } as unknown as Rule;
  t.equal(triggersTable(fake), ['| Kind | Operations | When |', '|---|---|---|', '| ConfigMap | CREATE | a \\| b |', '| Namespace, Pod | UPDATE, DELETE |  |'].join('\n'));
  const stale = `# x\n\n## Triggers\n\n${TRIGGERS_BEGIN}\n| old |\n${TRIGGERS_END}\n`;
  t.not(withGenerated({ ...fake, docs: 'docs/rules/x.md' } as Rule, stale), stale, 'a stale page is rewritten');
  t.throws(() => withGenerated(fake, '# no markers\n'), /no <!-- triggers:begin/);
});
