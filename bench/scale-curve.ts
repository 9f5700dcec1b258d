// The in-process scale curve of `make bench`: decide() time for the same requests against clusters of
// growing size, without HTTP. Kept apart from bench/run.ts so that the order of its measurements can be
// tested (test/bench/scale-curve.test.ts).

import type { Change } from '../src/core/change.ts';
import type { Decide } from '../src/core/decision.ts';
import type { ClusterState } from '../src/core/objects.ts';

/** Warm-up calls of decide() per request and state before anything is timed. */
export const WARMUP_CALLS = 20;

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** A clock in milliseconds (performance.now; tests pass their own). */
export type Clock = () => number;
const performanceClock: Clock = () => performance.now();

/** `iterations` timings of one decide() of `change` on `state`, in µs. */
export function timeChange(decide: Decide, state: ClusterState, change: Change, iterations: number, now: Clock = performanceClock): number[] {
  const samples: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t0 = now();
    decide(change, state);
    samples.push((now() - t0) * 1000);
  }
  return samples;
}

/** Median µs of decide() for one change on one state, after WARMUP_CALLS calls. */
export function timeDecide(decide: Decide, state: ClusterState, change: Change, iterations: number, now: Clock = performanceClock): number {
  for (let i = 0; i < WARMUP_CALLS; i++) decide(change, state);
  return median(timeChange(decide, state, change, iterations, now));
}

export interface CurveOptions {
  /** Rounds over all sizes. */
  readonly rounds: number;
  /** Timed decide() calls per request, size and round. */
  readonly iterations: number;
  readonly now?: Clock;
}

/**
 * The same requests against every cluster size: one row per size (`pods`, then the median µs per
 * request label). Every request is warmed up on every state before anything is timed, and the sizes are
 * then timed in interleaved rounds, each round starting one size further on. Measured one size after
 * the other, the first size also paid for the JIT still compiling and for the garbage of the loads
 * before it: a 1k-pod row once read about 7 times the 10k and 50k rows (426-539 µs against 60-77),
 * which made the scale target look better met than it was.
 */
export function scaleCurve(
  decide: Decide,
  states: ReadonlyMap<number, ClusterState>,
  changes: readonly { readonly label: string; readonly change: Change }[],
  opts: CurveOptions = { rounds: 5, iterations: 40 },
): Record<string, number>[] {
  for (const state of states.values()) for (const { change } of changes) for (let i = 0; i < WARMUP_CALLS; i++) decide(change, state);
  const samples = new Map<number, Map<string, number[]>>([...states.keys()].map((pods) => [pods, new Map(changes.map(({ label }) => [label, []]))]));
  const sizes = [...states];
  for (let round = 0; round < opts.rounds; round++) {
    for (let k = 0; k < sizes.length; k++) {
      const [pods, state] = sizes[(round + k) % sizes.length]!;
      for (const { label, change } of changes) samples.get(pods)!.get(label)!.push(...timeChange(decide, state, change, opts.iterations, opts.now));
    }
  }
  return [...samples].map(([pods, byLabel]) => {
    const row: Record<string, number> = { pods };
    for (const [label, xs] of byLabel) row[label] = median(xs);
    return row;
  });
}
