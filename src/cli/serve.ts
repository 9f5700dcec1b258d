// `meshguard serve`: the admission webhook. Wires the config, the rule catalogue, a state source
// (files, a kubeconfig, or the in-cluster service account) and the HTTPS server, and drains on SIGTERM.

import { Command } from 'commander';
import type { Level, Logger } from 'pino';

import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

import { loadConfig } from '../config/config.ts';
import { Lease } from '../reports/lease.ts';
import { ReportWriter } from '../reports/writer.ts';
import { BackgroundAudit } from '../server/background-audit.ts';
import { TableRefill } from '../server/table-refill.ts';
import { SERVICE_ACCOUNT_DIR, type KubeApi } from '../state/kube-api.ts';
import { docsLinks } from '../config/docs-links.ts';
import { InputError } from '../core/errors.ts';
import { tuneHeapForServing } from '../server/heap-tuning.ts';
import { DEFAULT_V8_WORKER_NICE, lowerV8WorkerPriority, thenUnlessStopping, type WorkerPriority } from '../server/worker-priority.ts';
import { createLogger } from '../server/log-bounds.ts';
import { createServer, DEFAULT_DRAIN_SECONDS, DEFAULT_MAX_CONNECTIONS, installSignalHandlers } from '../server/server.ts';
import { LiveSource, loadKubeConfig } from '../state/live.ts';
import { SnapshotSource } from '../state/snapshot.ts';
import type { StateSource } from '../core/objects.ts';
import { cachingDecide, DEFAULT_VERDICT_CACHE_ENTRIES, MAX_VERDICT_CACHE_ENTRIES } from '../verdict/cache.ts';
import { createDecide } from '../verdict/decide.ts';
import { warmUpInSlices } from '../verdict/warmup.ts';
import { warmUpOnSample } from '../verdict/warmup-sample.ts';
import { addLimitOptions, choice as choiceOf, collect, inputLimits, stateArgs, version, type CliContext } from './common.ts';

/** Time spent warming up the decision path before readiness (see verdict/warmup.ts). */
const WARM_UP_MS = 500;

/** Where the serving certificate is mounted in the cluster (deploy/ mounts the cert-manager Secret here). */

export const DEFAULT_TLS_CERT = '/etc/meshguard/tls/tls.crt';
export const DEFAULT_TLS_KEY = '/etc/meshguard/tls/tls.key';

const LEVELS: readonly Level[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'];

export interface ServeOptions {
  readonly config?: string;
  readonly kubeconfig?: string;
  readonly context?: string;
  readonly state?: string[];
  readonly port: string;
  readonly host: string;
  readonly tlsCert: string;
  readonly tlsKey: string;
  readonly drainSeconds: string;
  readonly logLevel: string;
  readonly verdictCache: string;
  readonly maxInputBytes?: string;
  readonly maxYamlBytes?: string;
  readonly backgroundAudit: string;
  readonly auditCpuPercent: string;
  readonly auditDebounceSeconds: string;
  readonly metricsPort: string;
  readonly maxConnections: string;
  readonly clientCa?: string;
  readonly v8WorkerNice: string;
}

/** This replica's name and namespace: the downward API's POD_NAME / POD_NAMESPACE, else the service account's. */
function podIdentity(): { name: string; namespace: string } {
  let namespace = process.env.POD_NAMESPACE;
  if (!namespace) {
    try {
      namespace = readFileSync(`${SERVICE_ACCOUNT_DIR}/namespace`, 'utf8').trim();
    } catch {
      namespace = 'meshguard';
    }
  }
  return { name: process.env.POD_NAME || hostname(), namespace: namespace || 'meshguard' };
}

/**
 * How the live source lists Pods: protobuf unless MESHGUARD_POD_LIST_ENCODING=json (ADR 0008). Not a
 * flag: the protobuf list falls back to JSON by itself; the variable is for benches that compare the two
 * and for an apiserver path that must see JSON.
 */
function podListEncoding(): 'json' | 'protobuf' {
  const v = process.env.MESHGUARD_POD_LIST_ENCODING;
  if (v === undefined || v === '' || v === 'protobuf') return 'protobuf';
  if (v === 'json') return 'json';
  throw new InputError(`MESHGUARD_POD_LIST_ENCODING: must be json or protobuf, not "${v.slice(0, 40)}"`);
}

/** What lowerV8WorkerPriority did: at info, or at warn when it did not take. */
function logWorkerPriority(priority: WorkerPriority, logger: Logger): void {
  if (typeof priority === 'object' && priority.error !== undefined) {
    const hint = priority.changed > 0 ? "some of V8's workers keep the main thread's priority" : "V8's workers keep the main thread's priority";
    logger.warn({ v8WorkerPriority: priority, hint: `${hint}; see --v8-worker-nice in docs/cli.md` }, 'V8 worker thread priority');
  } else {
    logger.info({ v8WorkerPriority: priority }, 'V8 worker thread priority');
  }
}

function intFlag(flag: string, value: string, min: number, max: number): number {
  if (!/^\d+$/.test(value.trim())) throw new InputError(`${flag}: not a whole number: "${value}"`);
  const n = Number(value);
  if (n < min || n > max) throw new InputError(`${flag}: must be between ${min} and ${max} (got ${n})`);
  return n;
}

/** Exit safely even if some handle were left open after the drain (the pod must not hang in Terminating). */
function endProcess(code: number): void {
  process.exitCode = code;
  setTimeout(() => process.exit(code), 5_000).unref();
}

export async function runServe(opts: ServeOptions, ctx: CliContext): Promise<void> {
  stateArgs(opts, false);
  const port = intFlag('--port', opts.port, 0, 65535);
  const drainSeconds = intFlag('--drain-seconds', opts.drainSeconds, 0, 600);
  const metricsPort = intFlag('--metrics-port', opts.metricsPort, 0, 65535);
  if (metricsPort !== 0 && metricsPort === port) throw new InputError(`--metrics-port: must differ from --port (${port})`);
  const maxConnections = intFlag('--max-connections', opts.maxConnections, 1, 65535);
  // More entries than the cache's text budget can hold would only be a promise it cannot keep.
  const cacheEntries = intFlag('--verdict-cache', opts.verdictCache, 0, MAX_VERDICT_CACHE_ENTRIES);
  const backgroundAudit = choiceOf('--background-audit', opts.backgroundAudit, ['on', 'off']);
  const auditCpuPercent = intFlag('--audit-cpu-percent', opts.auditCpuPercent, 1, 100);
  const auditDebounceSeconds = intFlag('--audit-debounce-seconds', opts.auditDebounceSeconds, 0, 3600);
  const v8WorkerNice = intFlag('--v8-worker-nice', opts.v8WorkerNice, 0, 19);
  const level = LEVELS.find((l) => l === opts.logLevel);
  if (!level) throw new InputError(`--log-level: must be one of ${LEVELS.join(', ')}`);
  const limits = inputLimits(opts);
  const config = loadConfig(opts.config, ctx.rules, limits);
  const logger: Logger = createLogger(level, version());
  // Before the state is loaded: its objects must not mark the request path's allocation sites long-lived.
  const pretenuring = tuneHeapForServing();

  let source: StateSource;
  let api: KubeApi | undefined;
  /** Which kubeconfig and context (or the service account) a live source reads, for the log. */
  let cluster: string | undefined;
  const fromFiles = (opts.state?.length ?? 0) > 0;
  if (fromFiles) {
    source = new SnapshotSource(opts.state!, { limits });
    // Files are read before listening: a bad file is an input error (exit 2), not a webhook that never gets
    // ready. The read hands the event loop back every 20 ms (loadSnapshotInSlices), so signals and timers
    // are not held up by a big snapshot.
    await source.start();
  } else {
    // Without --kubeconfig: $KUBECONFIG, ~/.kube/config, then the in-cluster service account.
    api = loadKubeConfig(opts.kubeconfig, opts.context);
    cluster = api.source;
    source = new LiveSource({ api, logger, ...(opts.kubeconfig ? { kubeconfigPath: opts.kubeconfig } : {}), podListEncoding: podListEncoding() });
  }

  const decide = createDecide(ctx.rules, config);
  // Requests repeat (dry run then apply, GitOps diffs and re-syncs): answer a repeat from memory while
  // the state is unchanged. The warm-up below uses `decide` itself, so that it always runs the rules.
  const cached = cachingDecide(decide, cacheEntries);
  // The per-class tables the warm-up fills, filled again in idle time after a change empties them
  // (server/table-refill.ts); started once the warm-up has run.
  let refill: TableRefill | undefined;
  const server = await createServer({
    source,
    decide: cached,
    docsUrl: docsLinks(config.docs.baseUrl),
    ...(cacheEntries > 0 ? { verdictCacheStats: () => cached.stats(source.state) } : {}),
    // Before the first ready answer: compile the decision path and fill the state's caches (bounded).
    // In slices, so readiness probes get a prompt 503 "warming up" meanwhile instead of timing out.
    // Then V8's collector threads yield the cores to reviews from the end of the warm-up on
    // (--v8-worker-nice, server/worker-priority.ts); not before: during the load and the warm-up
    // nothing waits on them.
    warmUp: thenUnlessStopping(
      async (shouldStop) => {
        const t0 = performance.now();
        // The costly requests' code first, on a sample of the state (verdict/warmup-sample.ts).
        const onSample = await warmUpOnSample(decide, ctx.rules, source.state, 20, shouldStop);
        const decisions = shouldStop() ? 0 : await warmUpInSlices(decide, ctx.rules, () => source.state, WARM_UP_MS, 10 * WARM_UP_MS, 20, shouldStop);
        logger.info({ decisions, onSample, ms: Math.round(performance.now() - t0) }, 'decision path warmed up');
        if (!shouldStop()) refill?.start();
      },
      () => logWorkerPriority(lowerV8WorkerPriority(v8WorkerNice), logger),
    ),
    tlsCertFile: opts.tlsCert,
    tlsKeyFile: opts.tlsKey,
    ...(opts.clientCa !== undefined ? { clientCaFile: opts.clientCa } : {}),
    host: opts.host,
    port,
    ...(metricsPort !== 0 ? { metricsPort } : {}),
    maxConnections,
    drainSeconds,
    logger,
  });
  let url: string;
  try {
    url = await server.listen();
  } catch (e) {
    await source.stop().catch(() => undefined);
    const code = (e as NodeJS.ErrnoException).code;
    const ports = metricsPort !== 0 ? `${port} (or --metrics-port ${metricsPort})` : String(port);
    throw new InputError(`cannot listen on ${opts.host}:${ports}: ${code ?? (e as Error).message}`);
  }
  refill = new TableRefill({ source, lastReviewAt: () => server.lastReviewAt, logger, settings: config.settings });
  // The background audit: gauges always; policy reports from a live cluster, by the lease holder only.
  let audit: BackgroundAudit | undefined;
  if (backgroundAudit === 'on') {
    const me = podIdentity();
    audit = new BackgroundAudit({
      source,
      rules: ctx.rules,
      config,
      decide,
      logger,
      metrics: server.metrics,
      ...(api ? { writer: new ReportWriter(api, logger), lease: new Lease({ api, namespace: me.namespace, name: 'meshguard-audit', identity: me.name }) } : {}),
      docsOf: docsLinks(config.docs.baseUrl),
      cpuShare: auditCpuPercent / 100,
      // A review within the last second: costly objects wait for a quiet moment (at most 5 minutes).
      webhookBusy: () => server.lastReviewAt !== undefined && performance.now() - server.lastReviewAt < 1000,
      debounceMs: auditDebounceSeconds * 1000,
    });
    audit.start();
  }
  // Every way out stops the same things: the audit (which gives its Lease up, so another replica
  // takes over at once) and the state source.
  const stopWork = async (): Promise<void> => {
    await refill?.stop();
    await audit?.stop();
    await source.stop();
  };
  installSignalHandlers(server, { logger, onShutdown: stopWork, exit: endProcess });
  // A snapshot is synced already: warm up now rather than at the first readiness probe.
  if (fromFiles) server.startWarmUp();
  logger.info(
    {
      url,
      ...(server.metricsUrl ? { metricsUrl: server.metricsUrl } : {}),
      clientAuth: opts.clientCa !== undefined,
      maxConnections,
      state: source.state.describe(),
      ...(cluster !== undefined ? { cluster } : {}),
      mode: config.mode,
      config: config.file ?? 'defaults',
      rules: ctx.rules.filter((r) => config.rules[r.id] !== 'off').length,
      exemptNamespaces: config.exemptions.namespaces,
      allocationSitePretenuring: pretenuring,
    },
    'meshguard webhook listening',
  );
  if (!fromFiles) {
    // Readiness stays 503 until the informers have synced; the webhook keeps retrying meanwhile.
    source.start().then(() => server.startWarmUp(), (e: unknown) => {
      // Stopped by a SIGTERM before the first sync: the signal handler is already ending the process.
      if (server.draining) return;
      logger.error({ err: (e as Error).message }, 'cluster state source failed; shutting down');
      void server
        .shutdown()
        .then(stopWork)
        .finally(() => endProcess(1));
    });
  }
}

export function serveCommand(ctx: CliContext): Command {
  return addLimitOptions(new Command('serve'))
    .description('run the admission webhook over HTTPS (POST /validate, /healthz, /readyz; /metrics on --metrics-port)')
    .option('--config <file>', 'meshguard config file (default: built-in defaults)')
    .option('--kubeconfig <file>', 'watch this cluster (default: $KUBECONFIG, ~/.kube/config, or in-cluster)')
    .option('--context <name>', 'kubeconfig context to watch instead of current-context')
    .option('--state <path>', 'serve a fixed state from files instead of a live cluster (repeatable)', collect)
    .option('--port <port>', 'HTTPS port', '8443')
    .option('--host <address>', 'listen address', '0.0.0.0')
    .option('--tls-cert <file>', 'serving certificate (PEM); reloaded when it changes', DEFAULT_TLS_CERT)
    .option('--tls-key <file>', 'serving key (PEM); reloaded when it changes', DEFAULT_TLS_KEY)
    .option('--metrics-port <port>', 'plain-HTTP port for GET /metrics, /healthz, /readyz (0: none)', '0')
    .option('--max-connections <n>', 'most connections the HTTPS port holds at once; more are closed on arrival', String(DEFAULT_MAX_CONNECTIONS))
    .option('--client-ca <file>', 'CA bundle (PEM): answer /validate only for client certificates it verifies; reloaded when it changes')
    .option('--drain-seconds <n>', 'on SIGTERM, keep serving this long with readiness failed', String(DEFAULT_DRAIN_SECONDS))
    .option('--log-level <level>', `log level: ${LEVELS.join(', ')}`, 'info')
    .option('--background-audit <on|off>', 'audit the whole state after start and after changes: meshguard_existing_findings, and policy reports from a live cluster', 'on')
    .option('--audit-cpu-percent <n>', 'share of one core the background audit may use', '20')
    .option('--audit-debounce-seconds <n>', 'quiet time after a state change before the background audit runs again', '10')
    .option('--v8-worker-nice <n>', "once warmed up, run V8's collector threads this many nice steps above the main thread (lower priority; Linux; 0 leaves them alone)", String(DEFAULT_V8_WORKER_NICE))
    .option('--verdict-cache <entries>', 'decisions kept for repeated requests while the cluster state is unchanged (0 disables)', String(DEFAULT_VERDICT_CACHE_ENTRIES))
    .action(async (opts: ServeOptions) => {
      await runServe(opts, ctx);
    });
}
