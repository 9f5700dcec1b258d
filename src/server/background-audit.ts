// The audit in the background of `serve`: once the state has synced, and again after it changes
// (debounced: after `debounceMs` without a change, or `maxDelayMs` after the first one at the latest),
// meshguard audits the whole state (src/verdict/audit.ts), exports the counts as
// `meshguard_existing_findings{rule,action}` and, on the replica that holds the report Lease, writes
// them as policy reports. The audit runs in slices of `sliceMs` with pauses between them so that it
// takes at most `cpuShare` of the process, and inside a slice it lets the event loop turn every
// `yieldMs`: a review that arrives meanwhile waits for one object's evaluation, not for a slice.

import type { Logger } from 'pino';

import type { Clock } from '../core/budget.ts';
import { performanceClock } from '../core/budget.ts';
import { pollUnref, REAL_TIMERS, type Timer, type Timers } from '../core/timers.ts';
import type { Config } from '../config/config.ts';
import type { Lease } from '../reports/lease.ts';
import { desiredReports } from '../reports/reports.ts';
import type { ReconcileOutcome, ReportWriter } from '../reports/writer.ts';
import type { Decide } from '../core/decision.ts';
import type { Rule } from '../core/rule.ts';
import type { KubeObject, StateSource } from '../core/objects.ts';
import type { KindName } from '../core/kinds.ts';
import { auditObject, auditSubjects, type AuditResult } from '../verdict/audit.ts';
import type { Metrics } from './metrics.ts';

/** The timers the audit needs (src/core/timers.ts; tests pass fake ones). Its timers never keep the process alive. */
export type AuditTimers = Pick<Timers, 'setTimeout' | 'clearTimeout'>;

export interface BackgroundAuditOptions {
  readonly source: StateSource;
  readonly rules: readonly Rule[];
  readonly config: Pick<Config, 'mode' | 'rules'>;
  /** The uncached decide: every object is judged afresh. */
  readonly decide: Decide;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Writes reports; absent when serving files (no API server). */
  readonly writer?: ReportWriter;
  /** Decides which replica writes; absent = this one. */
  readonly lease?: Lease;
  readonly docsOf?: (rule: string) => string | undefined;
  /** Quiet time after a state change before auditing (default 10 s). */
  readonly debounceMs?: number;
  /** Longest delay after a first change, however busy the cluster (default 60 s). */
  readonly maxDelayMs?: number;
  /** How often the state's revision is looked at (default 1 s). */
  readonly pollMs?: number;
  /** Lease renewal period (default 10 s). */
  readonly renewMs?: number;
  /** Work per slice (default 20 ms). */
  readonly sliceMs?: number;
  /** Work between two turns of the event loop inside a slice (default 2 ms). */
  readonly yieldMs?: number;
  /** Lets the event loop turn (default setImmediate; tests pass their own). */
  readonly yieldNow?: () => Promise<void>;
  /**
   * An object whose evaluation took longer than this (default 50 ms: a cluster-wide policy at tens of
   * thousands of pods) holds the event loop for all of it, and no slice can cut one evaluation short.
   * It is re-evaluated only when it changes itself, or `heavyIntervalMs` (default 15 min) after its
   * last evaluation; in between its last findings stand.
   */
  readonly heavyMs?: number;
  readonly heavyIntervalMs?: number;
  /**
   * Is the webhook answering reviews now (serve: a review arrived within the last second)? A costly
   * object (one that took longer than heavyMs last time, or, before its first evaluation, a
   * cluster-wide one: a CiliumClusterwideNetworkPolicy or cilium-config) is then put off to the end of
   * the run and evaluated at the first quiet moment, so that its evaluation, which no slice can cut,
   * does not hold reviews up. Default: never busy.
   */
  readonly webhookBusy?: () => boolean;
  /** Longest a costly object waits for a quiet moment, from the start of the run (default 5 min). */
  readonly quietWaitMs?: number;
  /** How often a waiting run looks again whether the webhook is quiet (default 250 ms). */
  readonly quietPollMs?: number;
  /** Share of one core the audit may use, 0 < share <= 1 (default 0.2). */
  readonly cpuShare?: number;
  readonly clock?: Clock;
  readonly timers?: AuditTimers;
  readonly now?: () => Date;
}

export interface AuditRun {
  readonly results: readonly AuditResult[];
  readonly objects: number;
  readonly ms: number;
  readonly slices: number;
  /** Costly objects whose last findings were reused (see heavyMs). */
  readonly reused: number;
  readonly reports?: ReconcileOutcome;
}

export class BackgroundAudit {
  readonly #o: BackgroundAuditOptions;
  readonly #clock: Clock;
  readonly #timers: AuditTimers;
  #cancelPoll: (() => void) | undefined;
  #renew: Timer | undefined;
  #stopped = false;
  #running: Promise<AuditRun | undefined> | undefined;
  /** Revision last audited, and the one last seen with when it was first seen. */
  #auditedRevision: number | undefined;
  #seenRevision: number | undefined;
  #lastChangeAt = 0;
  #firstPendingAt: number | undefined;
  #last: AuditRun | undefined;
  /** Costly objects' last evaluation: the object as it was, when, and what it found. */
  readonly #heavy = new Map<string, { obj: object; at: number; result: AuditResult }>();
  /** Objects evaluated at least once (by key): their cost is known, so none is presumed costly. */
  readonly #costKnown = new Set<string>();

  constructor(o: BackgroundAuditOptions) {
    this.#o = o;
    this.#clock = o.clock ?? performanceClock;
    this.#timers = o.timers ?? REAL_TIMERS;
  }

  get last(): AuditRun | undefined {
    return this.#last;
  }

  /** Whether this replica may audit and write: it holds the lease, or there is none. */
  get #leading(): boolean {
    return this.#o.lease === undefined || this.#o.lease.held;
  }

  start(): void {
    this.#cancelPoll = pollUnref(this.#timers, 0, this.#o.pollMs ?? 1000, () => this.check(), () => this.#stopped);
    if (this.#o.lease) {
      const renewMs = this.#o.renewMs ?? 10_000;
      const renew = (): void => {
        if (this.#stopped) return;
        const was = this.#o.lease!.held;
        void this.#o.lease!.tryAcquireOrRenew().then((held) => {
          this.#o.metrics.auditWriter(held);
          if (held && !was) {
            this.#o.logger.info('policy report writer: this replica holds the lease');
            // A new writer lists what the previous one left, and audits now.
            this.#o.writer?.reset();
            this.#auditedRevision = undefined;
          } else if (!held && was) {
            this.#o.logger.info('policy report writer: lease lost');
            // Only the holder exports the counts: the new holder's gauge takes over, this one reads 0.
            this.#o.metrics.existingFindings([]);
          }
          if (!this.#stopped) {
            this.#renew = this.#timers.setTimeout(renew, renewMs);
            this.#renew.unref();
          }
        });
      };
      renew();
    }
  }

  /** Looks at the state once: starts an audit when one is due. Exposed for tests. */
  check(): void {
    if (this.#stopped || this.#running || !this.#o.source.synced() || !this.#leading) return;
    const rev = this.#o.source.state.revision;
    const now = this.#clock.now();
    if (rev !== this.#seenRevision) {
      this.#seenRevision = rev;
      this.#lastChangeAt = now;
    }
    if (rev === this.#auditedRevision) {
      this.#firstPendingAt = undefined;
      return;
    }
    if (this.#auditedRevision === undefined) {
      // The first audit after start (or after taking the lease) does not wait.
      this.#runLogged();
      return;
    }
    this.#firstPendingAt ??= now;
    const quiet = now - this.#lastChangeAt >= (this.#o.debounceMs ?? 10_000);
    const overdue = now - this.#firstPendingAt >= (this.#o.maxDelayMs ?? 60_000);
    if (quiet || overdue) this.#runLogged();
  }

  /** A run started by the schedule: a failure is logged, never an unhandled rejection (it would end the process). */
  #runLogged(): void {
    this.runNow().catch((e: unknown) => this.#o.logger.warn({ err: (e as Error).message }, 'background audit failed'));
  }

  /** Audits the state now (waits for a run in progress instead of starting a second one). */
  runNow(): Promise<AuditRun | undefined> {
    if (this.#running) return this.#running;
    this.#running = this.#run().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => void this.#timers.setTimeout(resolve, ms).unref());
  }

  async #run(): Promise<AuditRun | undefined> {
    const { source, decide, rules, config, metrics, logger } = this.#o;
    const sliceMs = this.#o.sliceMs ?? 20;
    const yieldMs = this.#o.yieldMs ?? 2;
    const yieldNow = this.#o.yieldNow ?? (() => new Promise<void>((resolve) => setImmediate(resolve)));
    let lastYield = this.#clock.now();
    let reused = 0;
    const share = Math.min(1, Math.max(0.01, this.#o.cpuShare ?? 0.2));
    // The pause after a slice is in proportion to the slice's own length (which overruns sliceMs by
    // the last object's cost), so the audit's share of the time holds whatever one object costs.
    const pauseFor = (worked: number): number => (worked * (1 - share)) / share;
    const startRevision = source.state.revision;
    // Changes from now on wait for the next run, from its own first change.
    this.#firstPendingAt = undefined;
    const t0 = this.#clock.now();
    let working = 0;
    let slices = 1;
    const subjects = auditSubjects(source.state, rules);
    const results: AuditResult[] = [];
    const busy = this.#o.webhookBusy ?? (() => false);
    // Costly objects put off while the webhook answers reviews (see webhookBusy), by index.
    const deferred: number[] = [];
    const judge = (i: number, key: string, kind: KindName, current: KubeObject): AuditResult => {
      const t = this.#clock.now();
      const result = auditObject(source.state, decide, config, kind, current, i);
      const cost = this.#clock.now() - t;
      this.#costKnown.add(key);
      if (cost > (this.#o.heavyMs ?? 50)) this.#heavy.set(key, { obj: current, at: t, result });
      else this.#heavy.delete(key);
      return result;
    };
    let sliceStart = this.#clock.now();
    for (let i = 0; i < subjects.length; i++) {
      if (this.#stopped) return undefined;
      const { kind, obj } = subjects[i]!;
      // The object may have gone since the list was taken: then there is nothing to say about it.
      const current = source.state.get(kind, obj.metadata.namespace, obj.metadata.name);
      if (current) {
        const key = `${kind}/${current.metadata.namespace ?? ''}/${current.metadata.name}`;
        const prev = this.#heavy.get(key);
        // A state replaces an object when it changes: the same object is an unchanged one.
        if (prev && prev.obj === current && this.#clock.now() - prev.at < (this.#o.heavyIntervalMs ?? 15 * 60_000)) {
          results.push(prev.result);
          reused++;
        } else if (busy() && this.#presumedCostly(key, kind, current)) {
          deferred.push(i);
        } else {
          results.push(judge(i, key, kind, current));
        }
      }
      const now = this.#clock.now();
      if (now - sliceStart >= sliceMs && i < subjects.length - 1) {
        working += now - sliceStart;
        await this.#pause(pauseFor(now - sliceStart));
        slices++;
        sliceStart = this.#clock.now();
        lastYield = sliceStart;
      } else if (now - lastYield >= yieldMs) {
        // Requests that arrived meanwhile are read and answered before the next object.
        await yieldNow();
        lastYield = this.#clock.now();
      }
    }
    working += this.#clock.now() - sliceStart;
    // The costly objects, each at a quiet moment (or once the longest wait is over).
    for (const i of deferred) {
      const quietBy = t0 + (this.#o.quietWaitMs ?? 5 * 60_000);
      while (!this.#stopped && busy() && this.#clock.now() < quietBy) await this.#pause(this.#o.quietPollMs ?? 250);
      if (this.#stopped) return undefined;
      const { kind, obj } = subjects[i]!;
      const current = source.state.get(kind, obj.metadata.namespace, obj.metadata.name);
      if (!current) continue;
      const t = this.#clock.now();
      results.push(judge(i, `${kind}/${current.metadata.namespace ?? ''}/${current.metadata.name}`, kind, current));
      working += this.#clock.now() - t;
      slices++;
      await yieldNow();
    }
    this.#auditedRevision = startRevision;
    // Objects that are gone are forgotten (their cost too: one created again under the name is new).
    const seen = new Set(subjects.map(({ kind, obj }) => `${kind}/${obj.metadata.namespace ?? ''}/${obj.metadata.name}`));
    for (const key of this.#heavy.keys()) if (!seen.has(key)) this.#heavy.delete(key);
    for (const key of this.#costKnown) if (!seen.has(key)) this.#costKnown.delete(key);
    metrics.existingFindings(results);
    let reports: ReconcileOutcome | undefined;
    if (this.#o.writer && this.#leading && !this.#stopped) {
      try {
        reports = await this.#o.writer.reconcile(desiredReports(results, (this.#o.now ?? (() => new Date()))(), this.#o.docsOf));
      } catch (e) {
        logger.warn({ err: (e as Error).message }, 'policy reports not written');
      }
    }
    const ms = this.#clock.now() - t0;
    const run: AuditRun = { results, objects: subjects.length, ms, slices, reused, ...(reports ? { reports } : {}) };
    this.#last = run;
    metrics.auditRun(ms / 1000, working / 1000);
    const withFindings = results.filter((r) => r.findings.length > 0).length;
    logger.info(
      { objects: subjects.length, withFindings, ms: Math.round(ms), workMs: Math.round(working), slices, reused, ...(reports ? { reports } : {}) },
      'background audit done',
    );
    return run;
  }

  /** Costly to evaluate: it was last time, or, never evaluated, it is cluster-wide. */
  #presumedCostly(key: string, kind: KindName, obj: KubeObject): boolean {
    if (this.#heavy.has(key)) return true;
    if (this.#costKnown.has(key)) return false;
    return kind === 'CiliumClusterwideNetworkPolicy' || (kind === 'ConfigMap' && obj.metadata.namespace === 'kube-system' && obj.metadata.name === 'cilium-config');
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#cancelPoll?.();
    if (this.#renew) this.#timers.clearTimeout(this.#renew);
    await this.#running?.catch(() => undefined);
    await this.#o.lease?.release();
  }
}
