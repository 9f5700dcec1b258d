// The in-process scale curve (bench/scale-curve.ts): nothing is timed before every request has been
// warmed up on every state, sizes are timed in interleaved rounds, and each row's figure is the median
// of that size's timed calls.

import t from 'tap';

import type { Change } from '../../src/admission/change.ts';
import type { Decide, Decision } from '../../src/rules/types.ts';
import type { ClusterState } from '../../src/state/types.ts';
import { median, scaleCurve, timeDecide, WARMUP_CALLS } from '../../bench/scale-curve.ts';

const ALLOWED: Decision = { allowed: true, findings: [], skipped: [] };
const state = (name: string): ClusterState => ({ describe: () => name }) as unknown as ClusterState;
const change = (name: string): Change => ({ name }) as unknown as Change;

/** A decide() that records which (state, change) it was called with, spinning `costMs(state)` each time. */
function recordingDecide(costMs: (s: string) => number = () => 0): { decide: Decide; calls: string[] } {
  const calls: string[] = [];
  const decide: Decide = (c, s) => {
    calls.push(`${s.describe()}/${c.name}`);
    const until = performance.now() + costMs(s.describe());
    while (performance.now() < until);
    return ALLOWED;
  };
  return { decide, calls };
}

t.test('median of odd and even sample counts', async (t) => {
  t.equal(median([5, 1, 3]), 3);
  t.equal(median([4, 1, 3, 2]), 3, 'the upper middle of an even count');
});

t.test('every request is warmed up on every state before the first timed call', async (t) => {
  const { decide, calls } = recordingDecide();
  const states = new Map([[1000, state('1k')], [50000, state('50k')]]);
  const changes = [{ label: 'a', change: change('a') }, { label: 'b', change: change('b') }];
  scaleCurve(decide, states, changes, { rounds: 3, iterations: 4 });
  const warmup = 2 * 2 * WARMUP_CALLS;
  t.equal(calls.length, warmup + 3 * 2 * 2 * 4, 'warm-up, then rounds x sizes x requests x iterations');
  const warm = calls.slice(0, warmup);
  for (const key of ['1k/a', '1k/b', '50k/a', '50k/b']) t.equal(warm.filter((c) => c === key).length, WARMUP_CALLS, `${key} warmed up`);
  // Timed calls: rounds interleave the sizes (1k, 50k, 1k, 50k, ...), never one size's rounds in a row.
  const timed = calls.slice(warmup).filter((_, i) => i % 4 === 0).map((c) => c.split('/')[0]);
  t.same(timed, ['1k', '1k', '50k', '50k', '1k', '1k', '50k', '50k', '1k', '1k', '50k', '50k']);
});

t.test('each row is the median of its own timed calls', async (t) => {
  const { decide } = recordingDecide((s) => (s === '50k' ? 2 : 0.2));
  const states = new Map([[1000, state('1k')], [50000, state('50k')]]);
  const rows = scaleCurve(decide, states, [{ label: 'a', change: change('a') }], { rounds: 2, iterations: 3 });
  t.same(rows.map((r) => r['pods']), [1000, 50000]);
  const small = rows[0]!['a']!;
  const large = rows[1]!['a']!;
  t.ok(small >= 200 && small < 1500, `1k row ~200 µs (${small})`);
  t.ok(large >= 2000 && large < 4000, `50k row ~2000 µs (${large})`);
});

t.test('timeDecide warms up, then returns the median of the timed calls', async (t) => {
  const { decide, calls } = recordingDecide((s) => (s === 'x' ? 1 : 0));
  const us = timeDecide(decide, state('x'), change('a'), 5);
  t.equal(calls.length, WARMUP_CALLS + 5);
  t.ok(us >= 1000 && us < 3000, `~1000 µs (${us})`);
});
