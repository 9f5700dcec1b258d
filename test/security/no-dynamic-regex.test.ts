// No regular expression is built at run time in src/: a pattern built from object content can
// backtrack for minutes (a DNS matchPattern froze a replica). Regex literals are fine: they are
// written here, not by whoever applies an object. Matching of user patterns lives in
// src/policy/dns-pattern.ts, in linear time.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';

const src = new URL('../../src/', import.meta.url).pathname;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

t.test('src/ never constructs a RegExp at run time', async (t) => {
  const all = files(src);
  t.ok(all.length > 50, `${all.length} source files read`);
  const offenders: string[] = [];
  for (const f of all) {
    readFileSync(f, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        if (/\bRegExp\s*\(/.test(line.replace(/\/\/.*$/, ''))) offenders.push(`${f.slice(src.length)}:${i + 1}: ${line.trim()}`);
      });
  }
  t.same(offenders, []);
});
