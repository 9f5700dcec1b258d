// The counters the benchmark reads from meshguard's /metrics around each load phase. prom-client shows
// a labelled series only once it has been observed: before a server's first major collection the page
// declares nodejs_gc_duration_seconds but has no {kind="major"} sample, and that must read as zero
// collections, or the phase with the first one is reported as "-" instead of its count.

import t from 'tap';

import { parseServerCounters, sampleValue } from '../../bench/harness.ts';
import { createMetrics } from '../../src/server/metrics.ts';

const majorSamples = (count: number, seconds: number): string =>
  `nodejs_gc_duration_seconds_sum{kind="major"} ${seconds}\nnodejs_gc_duration_seconds_count{kind="major"} ${count}\n`;

t.test("a fresh server's page: no lookups, no major collections, both read as 0", async (t) => {
  const page = await createMetrics().render();
  t.notMatch(page, /kind="major"/, 'precondition: prom-client has no major series before the first major collection');
  t.same(parseServerCounters(page), { hit: 0, miss: 0, majorGcs: 0, majorGcSeconds: 0 });
});

t.test('the phase with the first major collection is counted', async (t) => {
  const before = parseServerCounters(await createMetrics().render());
  const after = parseServerCounters((await createMetrics().render()) + majorSamples(2, 0.0375));
  t.equal(after.majorGcs - before.majorGcs, 2);
  t.equal((after.majorGcSeconds - before.majorGcSeconds) * 1000, 37.5);
});

t.test('a page that does not declare a metric reads as NaN, not as 0', async (t) => {
  const counters = parseServerCounters('# TYPE something_else counter\nsomething_else 3\n');
  t.ok(Number.isNaN(counters.hit) && Number.isNaN(counters.miss) && Number.isNaN(counters.majorGcs));
});

t.test('sampleValue matches the whole sample name and label set', async (t) => {
  const page = [
    '# TYPE meshguard_verdict_cache_lookups_total counter',
    'meshguard_verdict_cache_lookups_total{result="hit"} 12',
    'meshguard_verdict_cache_lookups_total{result="miss"} 4',
    '# TYPE nodejs_gc_duration_seconds histogram',
    'nodejs_gc_duration_seconds_count{kind="minor"} 90',
    'nodejs_gc_duration_seconds_count{kind="major"} 1e+0',
  ].join('\n');
  t.equal(sampleValue(page, 'meshguard_verdict_cache_lookups_total', 'result="hit"', 'meshguard_verdict_cache_lookups_total'), 12);
  t.equal(sampleValue(page, 'meshguard_verdict_cache_lookups_total', 'result="miss"', 'meshguard_verdict_cache_lookups_total'), 4);
  t.equal(sampleValue(page, 'nodejs_gc_duration_seconds_count', 'kind="major"', 'nodejs_gc_duration_seconds'), 1);
  t.equal(sampleValue(page, 'nodejs_gc_duration_seconds_count', 'kind="incremental"', 'nodejs_gc_duration_seconds'), 0, 'declared, not observed yet');
  t.ok(Number.isNaN(sampleValue(page, 'nodejs_gc_duration_seconds_count', 'kind="incremental"', 'nodejs_gc_duration')), 'a prefix of a declared name is not a declaration');
});

t.test('a line for the series that cannot be read is NaN, not 0; a timestamp is allowed', async (t) => {
  const declared = '# TYPE nodejs_gc_duration_seconds histogram\n';
  const read = (line: string): number => sampleValue(declared + line + '\n', 'nodejs_gc_duration_seconds_count', 'kind="major"', 'nodejs_gc_duration_seconds');
  t.ok(Number.isNaN(read('nodejs_gc_duration_seconds_count{kind="major",pod="a"} 3')), 'more labels than asked for');
  t.equal(read('nodejs_gc_duration_seconds_count{kind="major"} 3 1733467200000'), 3, 'with a timestamp');
  t.equal(read('nodejs_gc_duration_seconds_count{kind="major"} +Inf'), Infinity);
  t.equal(read('nodejs_gc_duration_seconds_count{kind="minor"} 7'), 0, 'only another series observed yet');
});
