// The evaluation budget: how long one review may hold the process. Node runs a review synchronously
// on its only thread, so while a review runs nothing else is answered (health, readiness, metrics,
// other reviews, SIGTERM). The rules and the policy engine call checkBudget() in their loops; once the
// review's deadline has passed it throws BudgetExceeded, and the verdict layer answers by the error
// policy. Outside a budgeted evaluation checkBudget() does nothing.
//
// Cost: one counter increment per call, a clock read every `stride` calls.

export interface Clock {
  now(): number;
}

export const performanceClock: Clock = { now: () => performance.now() };

/** Default budget per review, well under the webhook entries' timeoutSeconds (3 s and 5 s). */
export const DEFAULT_BUDGET_MS = 2000;
export const MIN_BUDGET_MS = 10;
export const MAX_BUDGET_MS = 25_000;

export class BudgetExceeded extends Error {
  readonly budgetMs: number;
  readonly elapsedMs: number;
  constructor(budgetMs: number, elapsedMs: number) {
    super(`evaluation budget of ${budgetMs} ms exceeded (${Math.round(elapsedMs)} ms)`);
    this.name = 'BudgetExceeded';
    this.budgetMs = budgetMs;
    this.elapsedMs = elapsedMs;
  }
}

interface Running {
  readonly clock: Clock;
  readonly start: number;
  readonly deadline: number;
  readonly budgetMs: number;
  readonly stride: number;
  calls: number;
  exceeded: boolean;
}

let running: Running | undefined;

export interface BudgetOptions {
  readonly clock?: Clock;
  /** Calls of checkBudget() between two clock reads (default 64). */
  readonly stride?: number;
}

/**
 * Runs `fn` with a deadline `budgetMs` from now. A nested call joins the enclosing budget. Once the
 * deadline has passed every checkBudget() throws, so code that catches one BudgetExceeded cannot carry
 * on evaluating.
 */
export function withBudget<T>(budgetMs: number, fn: () => T, opts: BudgetOptions = {}): T {
  if (running !== undefined) return fn();
  return new BudgetRun(budgetMs, opts).run(fn);
}

/**
 * A budget entered more than once: a review evaluated in slices (verdict/decide.ts), which hands the
 * event loop back between its slices. The deadline is fixed when the budget is made (the API server's
 * timeout counts the time between slices too); checkBudget() reads it only inside run(), so work that
 * runs between two slices (another review, a probe, the warm-up) is never cut by it.
 */
export class BudgetRun {
  readonly #running: Running;

  constructor(budgetMs: number, opts: BudgetOptions = {}) {
    const clock = opts.clock ?? performanceClock;
    const start = clock.now();
    this.#running = { clock, start, deadline: start + budgetMs, budgetMs, stride: Math.max(1, opts.stride ?? 64), calls: 0, exceeded: false };
  }

  /** Runs `fn` under this budget (inside another running budget: under that one, as withBudget does). */
  run<T>(fn: () => T): T {
    if (running !== undefined) return fn();
    running = this.#running;
    try {
      return fn();
    } finally {
      running = undefined;
    }
  }
}

/** Throws BudgetExceeded once the running budget's deadline has passed. */
export function checkBudget(): void {
  const r = running;
  if (r === undefined) return;
  if (!r.exceeded) {
    if (++r.calls % r.stride !== 0) return;
    if (r.clock.now() <= r.deadline) return;
    r.exceeded = true;
  }
  throw new BudgetExceeded(r.budgetMs, r.clock.now() - r.start);
}

/**
 * For the catch-all handlers around per-item work (a class judged, a client asked), which answer an
 * item that throws on odd input by skipping it: a spent budget is not the item's error. Rethrown, it
 * ends the evaluation at once; swallowed, every later item threw a new BudgetExceeded of its own (a
 * stack trace each: a warm-up decision with a 20 ms budget ran 60-70 ms at 10k pods, issue 21).
 */
export function rethrowIfBudget(e: unknown): void {
  if (e instanceof BudgetExceeded) throw e;
}

/**
 * The running budget's BudgetExceeded if its deadline has passed (a clock read, whatever the stride), else
 * undefined. For the verdict layer between two rules: a deadline that passed while other work ran (between
 * two slices of a review, or while it waited for its turn) stops the review before its next rule starts.
 */
export function deadlinePassed(): BudgetExceeded | undefined {
  const r = running;
  if (r === undefined) return undefined;
  const now = r.clock.now();
  if (!r.exceeded && now <= r.deadline) return undefined;
  r.exceeded = true;
  return new BudgetExceeded(r.budgetMs, now - r.start);
}

/**
 * Throws BudgetExceeded when the running budget has already been found exceeded. The verdict layer calls
 * it after each rule: a rule that caught a BudgetExceeded somewhere inside (a per-item guard for odd
 * input) returned an answer the budget cut short, which must not count as complete.
 */
export function assertBudgetNotExceeded(): void {
  const r = running;
  if (r !== undefined && r.exceeded) throw new BudgetExceeded(r.budgetMs, r.clock.now() - r.start);
}
