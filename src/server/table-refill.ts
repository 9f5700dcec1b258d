// The long-lived state's per-class tables (the DNS and API server answers of every class, the base's
// decision facts, the selecting lists: src/verdict/warmup.ts tableSteps), filled again in idle time
// after a change that empties them. They are kept across pod and EndpointSlice events
// (src/policy/memo.ts keptAcrossPodEvents) but keyed by the content of every other kind: after a
// policy, Namespace, Service or cilium-config change the next cluster-wide review would judge every
// class again (at 50k pods 60-110 ms of CPU instead of 25-40 for a cluster-wide policy, issue 21).
//
// So `serve` fills them again once the state has been quiet (no change to those kinds) for `quietMs`
// and no review came for `idleMs`, in slices of `sliceMs` (the event loop stays free for probes and
// reviews), and stops as soon as a review arrives or the process closes: the review then fills what
// it reads itself, and the refill is tried again at a later idle moment. Pod events alone never start
// one (they keep the tables; a new class is judged on its own when first asked). The first refill comes
// once after start-up: the warm-up before readiness stops at its cap, on a busy machine before its table
// steps are done.

import type { Logger } from 'pino';

import type { ClusterState, StateSource } from '../core/objects.ts';
import { pollUnref, REAL_TIMERS, type Timers } from '../core/timers.ts';
import { stableContentToken } from '../policy/memo.ts';
import { fillTablesInSlices } from '../verdict/warmup.ts';
import type { ApiserverClients } from '../policy/apiserver.ts';

export interface TableRefillOptions {
  readonly source: Pick<StateSource, 'state' | 'synced'>;
  /** When the last review arrived, on the `now` clock (undefined: none yet). */
  readonly lastReviewAt: () => number | undefined;
  /** The clock of `lastReviewAt` and of the quiet and idle times (default performance.now). */
  readonly now?: () => number;
  /** Timers for the polls (src/core/timers.ts; tests pass fake ones). They never keep the process alive. */
  readonly timers?: Pick<Timers, 'setTimeout' | 'clearTimeout'>;
  /** How often the state is looked at (default 1 s). */
  readonly pollMs?: number;
  /** Time without a change to the tables' kinds before refilling (default 5 s: changes come in bursts). */
  readonly quietMs?: number;
  /** Time without a review before refilling (default 1 s). */
  readonly idleMs?: number;
  /** Work between two turns of the event loop (default 20 ms; the fill yields at half of it). */
  readonly sliceMs?: number;
  /** The rule settings the decisions judge under (the API server clients the fill keeps per namespace). */
  readonly settings?: ApiserverClients;
  /** The fill itself (default fillTablesInSlices); resolves true when it ran to its end. */
  readonly fill?: (state: () => ClusterState, shouldStop: () => boolean) => Promise<boolean>;
  readonly logger?: Pick<Logger, 'info' | 'debug'>;
}

export class TableRefill {
  readonly #o: TableRefillOptions;
  readonly #timers: Pick<Timers, 'setTimeout' | 'clearTimeout'>;
  readonly #now: () => number;
  #cancelPoll: (() => void) | undefined;
  #stopped = false;
  #running: Promise<void> | undefined;
  /** The content the tables were last filled for by a refill that ran to its end (none at start). */
  #filled: object | undefined;
  /** The content last seen, and since when. */
  #seen: object | undefined;
  #seenAt = 0;
  #fills = 0;
  #stops = 0;

  constructor(o: TableRefillOptions) {
    this.#o = o;
    this.#timers = o.timers ?? REAL_TIMERS;
    this.#now = o.now ?? (() => performance.now());
  }

  /** Refills that ran to their end, and refills stopped by a review (for tests and the log). */
  get fills(): number {
    return this.#fills;
  }

  get stopsByReview(): number {
    return this.#stops;
  }

  /** The refill under way, if any (resolves when it ends). */
  get running(): Promise<void> | undefined {
    return this.#running;
  }

  /**
   * Starts polling (after the warm-up). The first refill comes at the first quiet, idle poll whatever the
   * state: the warm-up may have stopped at its cap before its table steps were done (a busy machine), and
   * where it did not, the refill finds every class kept and only looks them up.
   */
  start(): void {
    if (this.#cancelPoll !== undefined || this.#stopped) return;
    this.#seen = stableContentToken(this.#o.source.state);
    this.#seenAt = this.#now();
    const pollMs = this.#o.pollMs ?? 1000;
    this.#cancelPoll = pollUnref(this.#timers, pollMs, pollMs, () => void this.check(), () => this.#stopped);
  }

  /** One poll: starts a refill when the tables' content changed, has been quiet long enough, and no review came lately. */
  check(): Promise<void> | undefined {
    if (this.#stopped || this.#running !== undefined || !this.#o.source.synced()) return undefined;
    const state = this.#o.source.state;
    const token = stableContentToken(state);
    const now = this.#now();
    if (token !== this.#seen) {
      this.#seen = token;
      this.#seenAt = now;
    }
    if (token === this.#filled || now - this.#seenAt < (this.#o.quietMs ?? 5000)) return undefined;
    const last = this.#o.lastReviewAt();
    if (last !== undefined && now - last < (this.#o.idleMs ?? 1000)) return undefined;
    this.#running = this.#run(token, last).finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #run(token: object, reviewAtStart: number | undefined): Promise<void> {
    const t0 = this.#now();
    const sliceMs = this.#o.sliceMs ?? 20;
    const reviewed = (): boolean => this.#o.lastReviewAt() !== reviewAtStart;
    const shouldStop = (): boolean => this.#stopped || reviewed();
    const state = (): ClusterState => this.#o.source.state;
    const done = await (this.#o.fill ?? ((s, stop) => fillTablesInSlices(s, sliceMs, stop, undefined, this.#o.settings)))(state, shouldStop);
    if (done) {
      // Filled for the content it started from; a change meanwhile is refilled at a later poll.
      this.#filled = token;
      this.#fills++;
      this.#o.logger?.debug({ ms: Math.round(this.#now() - t0) }, 'per-class tables refilled after a change');
    } else if (reviewed()) {
      this.#stops++;
    }
  }

  /** Stops polling and ends a refill under way at its next slice. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#cancelPoll?.();
    await this.#running;
  }
}
