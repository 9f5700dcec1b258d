// Prometheus metrics of the webhook, in a registry of their own (so tests and several servers in one
// process never collide on the global registry). State gauges are read from the StateSource at scrape
// time, so they are never stale and cost nothing between scrapes.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

import { KIND_NAMES } from '../core/kinds.ts';
import type { StateSource } from '../core/objects.ts';
import type { Decision } from '../core/decision.ts';
import type { VerdictCacheStats } from '../verdict/cache.ts';

/** allowed / denied: a decision was made; invalid: a 4xx on /validate; error: a 500 on /validate. */
export type Verdict = 'allowed' | 'denied' | 'invalid' | 'error';
export type TlsReloadResult = 'success' | 'failure';
/** Why a request was refused by client authentication: no certificate, or one the client CA does not verify. */
export type ClientAuthRefusal = 'no-certificate' | 'untrusted-certificate';

export interface Metrics {
  readonly registry: Registry;
  /** Count one /validate answer (and its findings) and observe its latency when it was evaluated. */
  observeRequest(verdict: Verdict, seconds?: number, decision?: Decision): void;
  tlsReload(result: TlsReloadResult): void;
  /** Count a request refused for want of a trusted client certificate. */
  clientAuthRefused(reason: ClientAuthRefusal): void;
  /** Count a connection closed on arrival because the webhook port was at its connection cap. */
  connectionDropped(): void;
  /** Read the webhook port's open connections from this function at scrape time. */
  watchConnections(open: () => number): void;
  /** Read state gauges from this source at scrape time (the latest call wins). */
  watchSource(source: StateSource): void;
  /** Read the verdict cache's counters from this function at scrape time. */
  watchVerdictCache(stats: () => VerdictCacheStats): void;
  /** The latest background audit's findings, counted by rule and action. */
  existingFindings(results: readonly { readonly findings: readonly { readonly rule: string; readonly action: string }[] }[]): void;
  /** One background audit finished: its wall time and the CPU time it worked, in seconds. */
  auditRun(seconds: number, workSeconds: number): void;
  /** Whether this replica holds the report-writer lease. */
  auditWriter(held: boolean): void;
  /** Prometheus text exposition. */
  render(): Promise<string>;
  readonly contentType: string;
}

export interface MetricsOptions {
  /** Node.js process metrics (CPU, memory, event loop lag, GC); default true. */
  readonly processMetrics?: boolean;
  readonly source?: StateSource;
}

/** Latency buckets from 100µs (a cache hit on a small state) to 10s (beyond any sane webhook timeout). */
export const DURATION_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export function createMetrics(opts: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  let source: StateSource | undefined = opts.source;
  let cacheStats: (() => VerdictCacheStats) | undefined;
  let openConnections: (() => number) | undefined;

  const requests = new Counter({
    name: 'meshguard_admission_requests_total',
    help: 'AdmissionReview requests answered, by verdict (allowed, denied, invalid envelope, internal error).',
    labelNames: ['verdict'] as const,
    registers: [registry],
  });
  const findings = new Counter({
    name: 'meshguard_findings_total',
    help: 'Rule findings reported in admission answers, by rule id and action.',
    labelNames: ['rule', 'action'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'meshguard_admission_duration_seconds',
    help: 'Time from receiving a parsed AdmissionReview to having its answer.',
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  const incomplete = new Counter({
    name: 'meshguard_evaluation_incomplete_total',
    help: 'Reviews meshguard could not finish judging, by reason (rule-error: a rule threw; budget: the evaluation budget ran out) and outcome of the error policy (fail: denied; ignore: admitted with a warning).',
    labelNames: ['reason', 'outcome'] as const,
    registers: [registry],
  });
  const seenExisting = new Map<string, { rule: string; action: string }>();
  const existing = new Gauge({
    name: 'meshguard_existing_findings',
    help: 'Problems that exist in the cluster now, from the latest background audit, by rule and action (deny, warn, audit). Exported by the replica that runs the audit (the report writer).',
    labelNames: ['rule', 'action'] as const,
    registers: [registry],
  });
  const auditRuns = new Counter({
    name: 'meshguard_audit_runs_total',
    help: 'Background audits completed.',
    registers: [registry],
  });
  const auditSeconds = new Gauge({
    name: 'meshguard_audit_last_duration_seconds',
    help: 'Wall time of the latest background audit, pauses included.',
    registers: [registry],
  });
  const auditWorkSeconds = new Gauge({
    name: 'meshguard_audit_last_work_seconds',
    help: 'Time the latest background audit spent evaluating (its CPU share is this over the wall time).',
    registers: [registry],
  });
  const auditWriter = new Gauge({
    name: 'meshguard_audit_report_writer',
    help: '1 when this replica holds the lease that makes it the one that audits and writes policy reports.',
    registers: [registry],
  });
  const tlsReloads = new Counter({
    name: 'meshguard_tls_reloads_total',
    help: 'Serving certificate reloads after the files changed, by result (a failure keeps the previous pair).',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  const authRefusals = new Counter({
    name: 'meshguard_client_auth_refusals_total',
    help: 'Requests refused because the client presented no certificate or one the client CA does not verify (only with --client-ca).',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const dropped = new Counter({
    name: 'meshguard_connections_dropped_total',
    help: 'Connections to the webhook port closed on arrival because it was at --max-connections.',
    registers: [registry],
  });
  new Gauge({
    name: 'meshguard_connections_open',
    help: 'TCP connections open on the webhook port (capped by --max-connections).',
    registers: [registry],
    collect() {
      this.set(openConnections?.() ?? 0);
    },
  });
  new Gauge({
    name: 'meshguard_state_synced',
    help: '1 when the cluster state cache has synced (every kind listed), else 0.',
    registers: [registry],
    collect() {
      this.set(source?.stats().synced ? 1 : 0);
    },
  });
  new Gauge({
    name: 'meshguard_state_objects',
    help: 'Objects held in the cluster state cache, by kind.',
    labelNames: ['kind'] as const,
    registers: [registry],
    collect() {
      this.reset();
      if (!source) return;
      const objects = source.stats().objects;
      for (const kind of KIND_NAMES) this.set({ kind }, objects[kind] ?? 0);
    },
  });
  new Gauge({
    name: 'meshguard_state_seconds_since_last_event',
    help: 'Seconds since the last watch event or relist of any kind (absent for a file snapshot).',
    registers: [registry],
    collect() {
      this.reset();
      const s = source?.stats().secondsSinceLastEvent;
      if (s !== undefined) this.set(s);
    },
  });
  new Counter({
    name: 'meshguard_state_watch_events_total',
    help: 'Watch events applied to the cluster state cache, by kind and result: changed (a new state revision: caches rebuilt) or unchanged (nothing meshguard keeps changed, e.g. pod readiness).',
    labelNames: ['kind', 'result'] as const,
    registers: [registry],
    collect() {
      this.reset();
      const events = source?.stats().watchEvents;
      if (!events) return;
      for (const kind of KIND_NAMES) {
        const c = events[kind];
        if (!c) continue;
        this.inc({ kind, result: 'changed' }, c.changed);
        this.inc({ kind, result: 'unchanged' }, c.unchanged);
      }
    },
  });
  new Counter({
    name: 'meshguard_verdict_cache_lookups_total',
    help: 'Requests of kinds meshguard models answered from the verdict cache (hit: same request, same state revision) or evaluated (miss).',
    labelNames: ['result'] as const,
    registers: [registry],
    collect() {
      this.reset();
      const s = cacheStats?.();
      this.inc({ result: 'hit' }, s?.hits ?? 0);
      this.inc({ result: 'miss' }, s?.misses ?? 0);
    },
  });
  new Gauge({
    name: 'meshguard_verdict_cache_entries',
    help: 'Decisions held in the verdict cache (emptied whenever the cluster state changes).',
    registers: [registry],
    collect() {
      this.set(cacheStats?.().entries ?? 0);
    },
  });
  // Initialise the series so dashboards see zeros rather than gaps.
  for (const v of ['allowed', 'denied', 'invalid', 'error'] as const) requests.inc({ verdict: v }, 0);
  for (const r of ['success', 'failure'] as const) tlsReloads.inc({ result: r }, 0);
  for (const reason of ['rule-error', 'budget'] as const) {
    for (const outcome of ['fail', 'ignore'] as const) incomplete.inc({ reason, outcome }, 0);
  }
  for (const r of ['no-certificate', 'untrusted-certificate'] as const) authRefusals.inc({ reason: r }, 0);
  if (opts.processMetrics !== false) collectDefaultMetrics({ register: registry });

  return {
    registry,
    contentType: registry.contentType,
    observeRequest(verdict, seconds, decision) {
      requests.inc({ verdict });
      if (seconds !== undefined) duration.observe(seconds);
      for (const f of decision?.findings ?? []) findings.inc({ rule: f.rule, action: f.action });
      // A cached decision is never incomplete (verdict/cache.ts keeps no failures).
      if (decision?.incomplete) incomplete.inc({ reason: decision.incomplete.reason, outcome: decision.incomplete.outcome });
    },
    tlsReload(result) {
      tlsReloads.inc({ result });
    },
    clientAuthRefused(reason) {
      authRefusals.inc({ reason });
    },
    connectionDropped() {
      dropped.inc();
    },
    watchConnections(open) {
      openConnections = open;
    },
    watchSource(s) {
      source = s;
    },
    watchVerdictCache(stats) {
      cacheStats = stats;
    },
    existingFindings(results) {
      existing.reset();
      const counts = new Map<string, { rule: string; action: string; n: number }>();
      for (const r of results) {
        for (const f of r.findings) {
          const key = `${f.rule}\u0000${f.action}`;
          const c = counts.get(key);
          if (c) c.n++;
          else counts.set(key, { rule: f.rule, action: f.action, n: 1 });
        }
      }
      // A problem fixed since the last audit reads 0 (not a vanished series), so alerts resolve.
      for (const [key, c] of seenExisting) if (!counts.has(key)) existing.set({ rule: c.rule, action: c.action }, 0);
      for (const [key, c] of counts) {
        existing.set({ rule: c.rule, action: c.action }, c.n);
        seenExisting.set(key, c);
      }
    },
    auditRun(seconds, workSeconds) {
      auditRuns.inc();
      auditSeconds.set(seconds);
      auditWorkSeconds.set(workSeconds);
    },
    auditWriter(held) {
      auditWriter.set(held ? 1 : 0);
    },
    render() {
      return registry.metrics();
    },
  };
}
