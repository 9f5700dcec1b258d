// The in-process scale curve (bench/scale-curve.ts): nothing is timed before every request has been
// warmed up on every state, sizes are timed in interleaved rounds (each starting one size further on),
// and each cell is the median of that size's and request's own timed calls. A fake clock advanced by
// the fake decide() makes the figures exact.

import t from 'tap';

import type { Change } from '../../src/core/change.ts';
import type { Decide, Decision } from '../../src/core/decision.ts';
import type { ClusterState } from '../../src/core/objects.ts';
import { median, scaleCurve, timeDecide, WARMUP_CALLS } from '../../bench/scale-curve.ts';

const ALLOWED: Decision = { allowed: true, findings: [], skipped: [] };
const state = (name: string): ClusterState => ({ describe: () => name }) as unknown as ClusterState;
const change = (name: string): Change => ({ name }) as unknown as Change;

/**
 * A decide() that records which (state, change) it was called with and advances the fake clock by
 * `costMs(state, change, call)`, the call counted per (state, change).
 */
function fakeDecide(costMs: (s: string, c: string, call: number) => number = () => 0): { decide: Decide; calls: string[]; now: () => number } {
  const calls: string[] = [];
  let clock = 0;
  const decide: Decide = (c, s) => {
    const key = `${s.describe()}/${c.name}`;
    calls.push(key);
    clock += costMs(s.describe(), c.name, calls.filter((x) => x === key).length);
    return ALLOWED;
  };
  return { decide, calls, now: () => clock };
}

const twoSizes = (): Map<number, ClusterState> => new Map([[1000, state('1k')], [50000, state('50k')]]);
const twoChanges = [{ label: 'a', change: change('a') }, { label: 'b', change: change('b') }];

t.test('median of odd and even sample counts', async (t) => {
  t.equal(median([5, 1, 3]), 3);
  t.equal(median([4, 1, 3, 2]), 3, 'the upper middle of an even count');
});

t.test('every request is warmed up on every state before the first timed call', async (t) => {
  const { decide, calls, now } = fakeDecide();
  scaleCurve(decide, twoSizes(), twoChanges, { rounds: 3, iterations: 4, now });
  const warmup = 2 * 2 * WARMUP_CALLS;
  t.equal(calls.length, warmup + 3 * 2 * 2 * 4, 'warm-up, then rounds x sizes x requests x iterations');
  const warm = calls.slice(0, warmup);
  for (const key of ['1k/a', '1k/b', '50k/a', '50k/b']) t.equal(warm.filter((c) => c === key).length, WARMUP_CALLS, `${key} warmed up`);
  // The first call of each (size, request) block of 4 timed calls: rounds interleave the sizes and
  // each round starts one size further on (1k first, then 50k first, then 1k first again).
  const blocks = calls.slice(warmup).filter((_, i) => i % 4 === 0);
  t.same(blocks, ['1k/a', '1k/b', '50k/a', '50k/b', '50k/a', '50k/b', '1k/a', '1k/b', '1k/a', '1k/b', '50k/a', '50k/b']);
});

t.test('each cell is the median of its own size and request', async (t) => {
  // Costs differ by size and by request; the warm-up calls are far slower and must not count.
  const cost: Record<string, number> = { '1k/a': 0.1, '1k/b': 0.2, '50k/a': 0.3, '50k/b': 0.4 };
  const { decide, now } = fakeDecide((s, c, call) => (call <= WARMUP_CALLS ? 50 : cost[`${s}/${c}`]!));
  const rows = scaleCurve(decide, twoSizes(), twoChanges, { rounds: 2, iterations: 3, now });
  t.same(rows.map((r) => r['pods']), [1000, 50000], 'one row per size, in the states\' order');
  const cells = rows.map((r) => [Math.round(r['a']!), Math.round(r['b']!)]);
  t.same(cells, [[100, 200], [300, 400]], 'µs per (size, request)');
});

t.test('one slow call does not move its cell, the median of its calls', async (t) => {
  // The 50k state's third timed call of request a takes 20 ms (a collection, say); the median of its six calls stays at 0.3 ms.
  const { decide, now } = fakeDecide((s, c, call) => (s === '50k' && c === 'a' && call === WARMUP_CALLS + 3 ? 20 : s === '50k' ? 0.3 : 0.1));
  const rows = scaleCurve(decide, twoSizes(), [{ label: 'a', change: change('a') }], { rounds: 2, iterations: 3, now });
  t.equal(Math.round(rows[1]!['a']!), 300);
});

t.test('timeDecide warms up, then returns the median of the timed calls', async (t) => {
  const { decide, calls, now } = fakeDecide((_s, _c, call) => (call <= WARMUP_CALLS ? 50 : call - WARMUP_CALLS));
  const us = timeDecide(decide, state('x'), change('a'), 5, now);
  t.equal(calls.length, WARMUP_CALLS + 5);
  t.equal(Math.round(us), 3000, 'timed calls cost 1..5 ms: median 3 ms');
});
