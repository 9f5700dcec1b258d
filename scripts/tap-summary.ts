// Reads tap's raw TAP on stdin and prints what a person needs: one line per test file as it finishes,
// then every failure with its file, test name and location, then one closing line
// `N passed, N failed, N skipped`. The raw TAP itself is kept by the caller (the Makefile tees it to
// .tap/<suite>.tap). Exits 1 when anything failed or the stream ended before tap's final plan (tap
// crashed or was killed), so the exit code never depends on reading the output.
//
//   tap --reporter=tap ... | tee .tap/unit.tap | node scripts/tap-summary.ts --suite unit --json .tap/unit.json
//   node scripts/tap-summary.ts --total .tap/unit.json .tap/e2e.json     # one closing line for both
//
// Counting follows tap's own summary (`# { total, pass, fail, ... }`): every test point that is not the
// closing point of a subtest is one case; a subtest or test file that fails with no failing case
// inside it (a crash, a timeout, a missing plan) counts as one failure. Todo cases count as skipped.

import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Parser, type FinalResults, type Result } from 'tap-parser';

export interface Failure {
  /** The test file (the top-level test point's name). */
  readonly file: string;
  /** Subtest names from the file down to the failing point, joined with " > ". */
  readonly name: string;
  /** "file:line:column" when tap reported it. */
  readonly at?: string;
  /** A few lines saying why: the diff, or the exit code / signal / timeout of a file that died. */
  readonly detail: readonly string[];
}

export interface Summary {
  readonly suite: string;
  passed: number;
  failed: number;
  skipped: number;
  files: number;
  /** False when the stream ended before the runner's final plan, or bailed out. */
  complete: boolean;
  bailout?: string;
  readonly failures: Failure[];
}

const MAX_DETAIL_LINES = 16;

type Diag = Record<string, unknown> | null;

function location(diag: Diag): string | undefined {
  const at = diag?.['at'];
  if (typeof at !== 'object' || at === null) return undefined;
  const a = at as Record<string, unknown>;
  if (typeof a['fileName'] !== 'string') return undefined;
  return [a['fileName'], a['lineNumber'], a['columnNumber']].filter((x) => x !== undefined).join(':');
}

function detail(diag: Diag): string[] {
  if (!diag) return [];
  const out: string[] = [];
  if (typeof diag['diff'] === 'string') {
    out.push(...diag['diff'].trimEnd().split('\n'));
  } else {
    for (const key of ['found', 'wanted', 'message', 'expired', 'timeout', 'exitCode', 'signal', 'tapCaught']) {
      const v = diag[key];
      if (v === undefined || v === null) continue;
      out.push(`${key}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
    }
  }
  if (out.length > MAX_DETAIL_LINES) out.splice(MAX_DETAIL_LINES, out.length, `... (${out.length - MAX_DETAIL_LINES} more lines in the raw TAP)`);
  return out;
}

/** Counts, lists and (optionally) prints per-file progress from a raw TAP stream. */
export function summarize(suite: string, onFile?: (line: string) => void): { parser: Parser; done: Promise<Summary> } {
  const summary: Summary = { suite, passed: 0, failed: 0, skipped: 0, files: 0, complete: false, failures: [] };
  const root = new Parser();
  root.on('bailout', (reason: string) => (summary.bailout = reason || 'bailed out'));

  // path: subtest names from the file down; the file itself is path[0].
  const watch = (parser: Parser, path: readonly string[]): void => {
    let open: { child: Parser; failedBefore: number; leavesBefore: number } | undefined;
    parser.on('child', (child: Parser) => {
      open = { child, failedBefore: summary.failed, leavesBefore: summary.passed + summary.failed + summary.skipped };
      watch(child, [...path, child.name]);
    });
    parser.on('assert', (r: Result) => {
      const closing = open !== undefined && r.name === open.child.name;
      const diag = r.diag as Diag;
      const names = [...path, r.name];
      if (closing) {
        const inner = open!;
        open = undefined;
        const innerFailed = summary.failed - inner.failedBefore;
        const innerLeaves = summary.passed + summary.failed + summary.skipped - inner.leavesBefore;
        if (!r.ok && !r.todo && innerFailed === 0) {
          // Failed with no failing case inside: a crash, a timeout, an unmet plan.
          summary.failed++;
          const why = detail(diag);
          if (diag && ('exitCode' in diag || 'signal' in diag)) why.push('(what the test process wrote to stderr is printed above)');
          summary.failures.push({ file: names[0]!, name: names.join(' > '), at: location(diag), detail: why });
        } else if (r.skip && innerLeaves === 0) {
          summary.skipped++;
        }
      } else if (r.skip || r.todo) {
        summary.skipped++;
      } else if (r.ok) {
        summary.passed++;
      } else {
        summary.failed++;
        summary.failures.push({ file: names[0]!, name: names.join(' > '), at: location(diag), detail: detail(diag) });
      }
      if (path.length === 0) {
        summary.files++;
        const status = r.ok ? (r.skip ? 'skip' : 'ok') : 'FAIL';
        const secs = r.time === null ? '' : `${(r.time / 1000).toFixed(1)}s`;
        onFile?.(`${status.padEnd(5)}${secs.padStart(7)}  ${r.name}`);
      }
    });
  };
  watch(root, []);

  const done = new Promise<Summary>((resolve) => {
    root.on('complete', (results: FinalResults) => {
      // The runner plans one test point per file up front: fewer points, or no plan, means it never
      // finished and some files may not have run at all.
      const { start, end, skipAll } = results.plan;
      const planned = start === null || end === null ? undefined : skipAll ? 0 : end - start + 1;
      summary.complete = planned !== undefined && results.count === planned && summary.bailout === undefined;
      resolve(summary);
    });
  });
  return { parser: root, done };
}

/** The closing line CI reads: exactly `N passed, N failed, N skipped`, alone on its line. */
export function countsLine(s: Pick<Summary, 'passed' | 'failed' | 'skipped'>): string {
  return `${s.passed} passed, ${s.failed} failed, ${s.skipped} skipped`;
}

export function report(s: Summary, rawLog: string | undefined): string[] {
  const lines: string[] = [''];
  if (s.failures.length > 0) {
    lines.push(`${s.suite}: ${s.failures.length} failure${s.failures.length === 1 ? '' : 's'}`);
    for (const f of s.failures) {
      lines.push('', `  ✖ ${f.name}`);
      if (f.at) lines.push(`    at ${f.at}`);
      for (const d of f.detail) lines.push(`    ${d}`);
    }
    lines.push('');
  }
  if (s.bailout !== undefined) lines.push(`${s.suite}: tap bailed out: ${s.bailout}`);
  else if (!s.complete) lines.push(`${s.suite}: the TAP stream ended before tap's final plan (tap crashed or was killed; see stderr above)`);
  if (rawLog) lines.push(`${s.suite}: ${s.files} test files; raw TAP in ${rawLog}`);
  lines.push(countsLine(s));
  return lines;
}

function arg(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

async function main(argv: string[]): Promise<number> {
  const total = argv.indexOf('--total');
  if (total >= 0) {
    // Combine the JSON written by earlier runs into one closing line (make test: unit + e2e).
    const sums = argv.slice(total + 1).map((f) => JSON.parse(readFileSync(f, 'utf8')) as Summary);
    const all = { passed: 0, failed: 0, skipped: 0 };
    const lines = [''];
    for (const s of sums) {
      lines.push(`${s.suite}: ${countsLine(s)}${s.complete ? '' : ' (incomplete)'}`);
      all.passed += s.passed;
      all.failed += s.failed;
      all.skipped += s.skipped;
    }
    lines.push(countsLine(all));
    process.stdout.write(lines.join('\n') + '\n');
    return all.failed > 0 || sums.some((s) => !s.complete) ? 1 : 0;
  }

  const suite = arg(argv, '--suite') ?? 'tests';
  const { parser, done } = summarize(suite, (line) => process.stdout.write(line + '\n'));
  process.stdin.setEncoding('utf8');
  for await (const chunk of process.stdin) parser.write(chunk as string);
  parser.end();
  const s = await done;
  process.stdout.write(report(s, arg(argv, '--log')).join('\n') + '\n');
  const json = arg(argv, '--json');
  if (json) writeFileSync(json, JSON.stringify(s, null, 2) + '\n');
  return s.failed > 0 || !s.complete ? 1 : 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
