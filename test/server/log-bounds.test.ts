// Every log line serve writes is bounded, whatever the request holds: a finding that lists 50,000
// victims or a user name of a megabyte must not become a megabyte log line.
import t from 'tap';

import { boundLogRecord, createLogger, MAX_LOG_ITEMS, MAX_LOG_STRING } from '../../src/server/log-bounds.ts';

t.test('strings, lists and nesting are cut, and the cut is said', async (t) => {
  const b = boundLogRecord({
    user: 'u'.repeat(100_000),
    rules: Array.from({ length: 1000 }, (_, i) => `rule-${i}:deny`),
    nested: { a: { b: { c: { d: { e: 'deep' } } } } },
    short: 'kept',
    n: 42,
  });
  t.equal((b.user as string).length, MAX_LOG_STRING + '...(99488 more characters)'.length);
  t.match(b.user, /\.\.\.\(99488 more characters\)$/);
  t.equal((b.rules as string[]).length, MAX_LOG_ITEMS + 1);
  t.equal((b.rules as string[])[MAX_LOG_ITEMS], '...(984 more)');
  t.same(b.nested, { a: { b: { c: '[too deep]' } } });
  t.equal(b.short, 'kept');
  t.equal(b.n, 42);
  // Near miss: a record within every bound is unchanged.
  const small = { uid: 'x', rules: ['a:deny'], latencyMs: 1.2, err: { message: 'm' } };
  t.same(boundLogRecord(small), small);
  t.same(boundLogRecord({ s: 'x'.repeat(MAX_LOG_STRING) }).s, 'x'.repeat(MAX_LOG_STRING), 'exactly at the bound is kept');
});

t.test("serve's logger bounds a hostile decision line", async (t) => {
  const lines: string[] = [];
  const logger = createLogger('info', '0.0.0-test', { write: (s: string) => void lines.push(s) });
  logger.info(
    {
      uid: 'u'.repeat(10_000),
      name: 'n'.repeat(300_000),
      user: 'mallory',
      notices: Array.from({ length: 5000 }, () => 'x'.repeat(5000)),
      errors: Array.from({ length: 100 }, () => ({ message: 'y'.repeat(100_000) })),
    },
    'admission decision',
  );
  t.equal(lines.length, 1);
  t.ok(lines[0]!.length < 32 * 1024, `one bounded line (${lines[0]!.length} characters)`);
  const rec = JSON.parse(lines[0]!) as Record<string, unknown>;
  t.equal(rec.msg, 'admission decision');
  t.equal(rec.app, 'meshguard');
  t.equal(rec.user, 'mallory');
});
