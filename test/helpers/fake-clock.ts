// A fake clock with timers, for code that takes its clock and timers as a parameter (LiveSource's
// `timers`). Nothing happens until the test moves the clock: advance() runs every timer that falls due
// on the way, in order, synchronously, at the time it is due. Real I/O keeps running meanwhile, so a
// test waits for the consequences of one step (a request, a log line, a state change) before the next.

export class FakeTimer {
  readonly #clock: FakeClock;
  readonly fn: () => void;
  readonly ms: number;
  readonly every: boolean;
  due: number;
  seq: number;

  constructor(clock: FakeClock, fn: () => void, ms: number, every: boolean, due: number, seq: number) {
    this.#clock = clock;
    this.fn = fn;
    this.ms = ms;
    this.every = every;
    this.due = due;
    this.seq = seq;
  }

  /** Like Node's: starts the timer again from now (re-arms it when it has already fired). */
  refresh(): this {
    this.#clock.rearm(this);
    return this;
  }

  unref(): this {
    return this;
  }

  ref(): this {
    return this;
  }

  hasRef(): boolean {
    return false;
  }
}

export class FakeClock {
  #now: number;
  #seq = 0;
  readonly #pending = new Set<FakeTimer>();

  /** Starts at an arbitrary fixed time (2026-01-01T00:00:00Z by default). */
  constructor(start = Date.UTC(2026, 0, 1)) {
    this.#now = start;
  }

  // Arrow properties: they are handed around as plain functions (`now: clock.now`).
  readonly now = (): number => this.#now;

  readonly setTimeout = (fn: () => void, ms: number): FakeTimer => this.#add(fn, ms, false);

  readonly setInterval = (fn: () => void, ms: number): FakeTimer => this.#add(fn, ms, true);

  readonly clearTimeout = (timer: unknown): void => {
    this.#pending.delete(timer as FakeTimer);
  };

  readonly clearInterval = (timer: unknown): void => {
    this.#pending.delete(timer as FakeTimer);
  };

  /** Milliseconds until each pending timer is due, soonest first. */
  pending(): number[] {
    return [...this.#pending].map((t) => t.due - this.#now).sort((a, b) => a - b);
  }

  /**
   * Moves the clock forward by `ms`, running each timer that falls due on the way at its due time, in
   * order (timers due at the same time in the order they were set). Timers set by those callbacks run
   * too if they fall due within the step.
   */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new Error(`cannot move a clock back (${ms} ms)`);
    const target = this.#now + ms;
    for (;;) {
      let next: FakeTimer | undefined;
      for (const t of this.#pending) {
        if (t.due > target) continue;
        if (!next || t.due < next.due || (t.due === next.due && t.seq < next.seq)) next = t;
      }
      if (!next) break;
      this.#now = next.due;
      if (next.every) {
        next.due += next.ms;
        next.seq = ++this.#seq;
      } else {
        this.#pending.delete(next);
      }
      next.fn();
    }
    this.#now = target;
  }

  /** Moves the clock to `time` (see advance). */
  advanceTo(time: number): void {
    this.advance(time - this.#now);
  }

  /** @internal FakeTimer.refresh */
  rearm(timer: FakeTimer): void {
    timer.due = this.#now + timer.ms;
    timer.seq = ++this.#seq;
    this.#pending.add(timer);
  }

  #add(fn: () => void, ms: number, every: boolean): FakeTimer {
    // As Node does: a delay below 1 ms (or not a number) is 1 ms.
    const delay = Number.isFinite(ms) && ms >= 1 ? ms : 1;
    const timer = new FakeTimer(this, fn, delay, every, this.#now + delay, ++this.#seq);
    this.#pending.add(timer);
    return timer;
  }
}
