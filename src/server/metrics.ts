// Prometheus metrics of the webhook, in a registry of their own (so tests and several servers in one
// process never collide on the global registry). State gauges are read from the StateSource at scrape
// time, so they are never stale and cost nothing between scrapes.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

import { KIND_NAMES } from '../state/kinds.ts';
import type { StateSource } from '../state/types.ts';
import type { Decision } from '../rules/types.ts';
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
  for (const r of ['no-certificate', 'untrusted-certificate'] as const) authRefusals.inc({ reason: r }, 0);
  if (opts.processMetrics !== false) collectDefaultMetrics({ register: registry });

  return {
    registry,
    contentType: registry.contentType,
    observeRequest(verdict, seconds, decision) {
      requests.inc({ verdict });
      if (seconds !== undefined) duration.observe(seconds);
      for (const f of decision?.findings ?? []) findings.inc({ rule: f.rule, action: f.action });
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
    render() {
      return registry.metrics();
    },
  };
}
