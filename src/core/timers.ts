// The clock and timers that the long-running parts (the live state source, the server's drain and
// warm-up check) run on: the real ones in production; tests pass a fake clock and move time themselves.

/** A timer from Timers: besides clearing it, callers only refresh and unref it. */
export interface Timer {
  refresh(): unknown;
  unref(): unknown;
}

export interface Timers {
  now(): number;
  setTimeout(fn: () => void, ms: number): Timer;
  clearTimeout(timer: Timer): void;
  setInterval(fn: () => void, ms: number): Timer;
  clearInterval(timer: Timer): void;
}

/**
 * Calls `fn` after `firstMs`, then `everyMs` after each call returns, until `stopped()` is true; the
 * timers never keep the process alive (the server's background polls). Returns what clears the pending one.
 */
export function pollUnref(timers: Pick<Timers, 'setTimeout' | 'clearTimeout'>, firstMs: number, everyMs: number, fn: () => void, stopped: () => boolean): () => void {
  let pending: Timer;
  const tick = (): void => {
    if (stopped()) return;
    fn();
    pending = timers.setTimeout(tick, everyMs);
    pending.unref();
  };
  pending = timers.setTimeout(tick, firstMs);
  pending.unref();
  return () => timers.clearTimeout(pending);
}

/** Date.now and the global timers. */
export const REAL_TIMERS: Timers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (timer) => clearTimeout(timer as NodeJS.Timeout),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (timer) => clearInterval(timer as NodeJS.Timeout),
};
