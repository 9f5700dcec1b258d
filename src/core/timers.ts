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

/** Date.now and the global timers. */
export const REAL_TIMERS: Timers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (timer) => clearTimeout(timer as NodeJS.Timeout),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (timer) => clearInterval(timer as NodeJS.Timeout),
};
