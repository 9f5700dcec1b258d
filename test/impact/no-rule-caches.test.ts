// Issue 20: rules keep no caches and no semantics helpers; they import from policy, impact and the one
// rules-level wording module.
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = join(import.meta.dirname, '../../src/rules');

t.test('no module-level cache and no *-helpers module with semantics in src/rules', async (t) => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
  for (const f of files) {
    const text = readFileSync(join(dir, f), 'utf8');
    t.notMatch(text, /ScopedWeakMap|new WeakMap|request-scope/, `${f} keeps no cache`);
    t.notMatch(text, /from '\.\/(?!render-helpers\.ts|types\.ts)[^']*-helpers\.ts'/, `${f} imports no semantics helper`);
  }
  t.same(files.filter((f) => f.endsWith('-helpers.ts')), ['render-helpers.ts']);
});
