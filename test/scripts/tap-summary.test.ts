// scripts/tap-summary.ts: what `make unit` / `make e2e` print after tap's raw TAP, and whether they fail.
import t from 'tap';

import { countsLine, report, summarize, type Summary } from '../../scripts/tap-summary.ts';

async function run(tap: string): Promise<{ summary: Summary; files: string[] }> {
  const files: string[] = [];
  const { parser, done } = summarize('unit', (line) => files.push(line));
  parser.end(tap);
  return { summary: await done, files };
}

// The shape tap 21's runner writes with --reporter=tap: one top-level test point per test file.
const RUN = `TAP version 14
1..3
# Subtest: test/a.test.ts
    # Subtest: group one
        ok 1 - fine
        # Subtest: inner
            not ok 1 - one is two
              ---
              at:
                fileName: test/a.test.ts
                lineNumber: 4
                columnNumber: 42
              diff: |
                --- expected
                +++ actual
                @@ -1,1 +1,1 @@
                -2
                +1
              ...
            1..1
        not ok 2 - inner # time=75ms
        1..2
    not ok 1 - group one # time=99ms
    ok 2 - skipped thing # SKIP no kubectl
    ok 3 - todo thing # TODO
    1..3
not ok 1 - test/a.test.ts # time=190ms
  ---
  exitCode: 1
  ...

# Subtest: test/b.test.ts
    ok 1 - yes
    1..1
ok 2 - test/b.test.ts # time=70ms

# Subtest: test/c.test.ts
    1..0 # no tests found
not ok 3 - test/c.test.ts # time=1253ms
  ---
  exitCode: 1
  signal: null
  ...

# { total: 6, pass: 2, fail: 2, todo: 1, skip: 1 }
`;

t.test('counts cases as tap does, and lists each failure once, with file, subtest path and location', async (t) => {
  const { summary, files } = await run(RUN);
  t.match(summary, { passed: 2, failed: 2, skipped: 2, files: 3, complete: true });
  t.same(summary.failures.map((f) => [f.file, f.name, f.at]), [
    ['test/a.test.ts', 'test/a.test.ts > group one > inner > one is two', 'test/a.test.ts:4:42'],
    // A file that died without a failing assertion is a failure of its own.
    ['test/c.test.ts', 'test/c.test.ts', undefined],
  ]);
  t.same(summary.failures[0]!.detail, ['--- expected', '+++ actual', '@@ -1,1 +1,1 @@', '-2', '+1']);
  t.match(summary.failures[1]!.detail, ['exitCode: 1', /stderr/]);
  t.same(files.map((l) => l.split(/\s+/)[0]), ['FAIL', 'ok', 'FAIL'], 'one progress line per test file');
});

t.test('the last line is exactly the counts, alone on its line', async (t) => {
  const { summary } = await run(RUN);
  const lines = report(summary, '.tap/unit.tap');
  t.equal(lines.at(-1), '2 passed, 2 failed, 2 skipped');
  t.match(lines.at(-1), /^\d+ passed, \d+ failed(, \d+ skipped)?$/);
  t.equal(countsLine({ passed: 13346, failed: 0, skipped: 0 }), '13346 passed, 0 failed, 0 skipped');
});

t.test('a run cut short, or bailed out, is incomplete', async (t) => {
  const cut = RUN.split('\n').slice(0, 30).join('\n') + '\n';
  const a = await run(cut);
  t.equal(a.summary.complete, false, 'fewer test points than the plan');
  t.match(report(a.summary, undefined).join('\n'), /ended before tap's final plan/);

  const b = await run('TAP version 14\nok 1 - test/a.test.ts\n');
  t.equal(b.summary.complete, false, 'no plan at all');

  const c = await run('TAP version 14\n1..2\nok 1 - test/a.test.ts\nBail out! etcd is gone\n');
  t.equal(c.summary.complete, false);
  t.equal(c.summary.bailout, 'etcd is gone');

  const d = await run('TAP version 14\n1..1\nok 1 - test/a.test.ts\n');
  t.match(d.summary, { complete: true, passed: 1, failed: 0 });
});
