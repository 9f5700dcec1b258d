// The webhook's HTTPS server: POST /validate answers AdmissionReviews (and GET /healthz /readyz), and an
// optional plain-HTTP monitoring listener serves GET /metrics /healthz /readyz to Prometheus and the
// kubelet. Built so that the webhook never becomes the cluster's outage: bad input gets a 4xx and never
// crashes or hangs the process, certificates rotate without a restart, and a shutdown first fails
// readiness and keeps serving while the apiserver moves to other replicas. And so that only the
// apiserver gets answers: a cap on connections, strict TLS, and optionally client certificates.

import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';

import type { ResponseOptions } from '../admission/review.ts';
import { createAjv } from '../admission/schema.ts';
import type { DocsLinks } from '../config/docs-links.ts';
import { InputError } from '../core/errors.ts';
import type { Decide } from '../core/decision.ts';
import type { StateSource } from '../core/objects.ts';
import { REAL_TIMERS, type Timers } from '../core/timers.ts';
import type { VerdictCacheStats } from '../verdict/cache.ts';
import { notFoundHandler, webhookErrorHandler } from './http-errors.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { clientAuth } from './plugins/client-auth.ts';
import { connections, DEFAULT_MAX_CONNECTIONS } from './plugins/connections.ts';
import { drain, Drain, DEFAULT_DRAIN_SECONDS } from './plugins/drain.ts';
import { health, Readiness, type WarmUp } from './plugins/health.ts';
import { MonitorListener, monitorListener } from './plugins/metrics.ts';
import { tlsReload } from './plugins/tls-reload.ts';
import { validate } from './plugins/validate.ts';
import { loadKeyPair, secureContextOptions, type KeyPair, type ReloadOutcome, type TlsReloader } from './tls.ts';

export { DEFAULT_DRAIN_SECONDS, DEFAULT_MAX_CONNECTIONS };

/** The apiserver caps a request body at 3 MiB; a review carries object and oldObject, plus the envelope. */
export const DEFAULT_BODY_LIMIT = 2 * 3 * 1024 * 1024 + 256 * 1024;

export interface ServerOptions {
  readonly source: StateSource;
  readonly decide: Decide;
  /** Links findings to their rule's page (the config's docs.baseUrl; default: the project's pages). */
  readonly docsUrl?: DocsLinks;
  /** The verdict cache's counters, when `decide` keeps one (see verdict/cache.ts), for /metrics. */
  readonly verdictCacheStats?: () => VerdictCacheStats;
  readonly tlsCertFile: string;
  readonly tlsKeyFile: string;
  /** Listen address (default 0.0.0.0). */
  readonly host?: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** How long shutdown keeps serving with readiness failed (default 5). */
  readonly drainSeconds?: number;
  /** Largest accepted request body (default 6.25 MiB). */
  readonly bodyLimitBytes?: number;
  readonly logger: Logger;
  /** Defaults to a fresh registry with process metrics. */
  readonly metrics?: Metrics;
  /** Certificate poll interval, a fallback to file events (default 30; 0 disables). */
  readonly tlsPollSeconds?: number;
  /** Quiet time after a certificate file event before reloading (default 300). */
  readonly tlsDebounceMs?: number;
  /** Longest time to receive a whole request (default 30 s, the largest webhook timeout). */
  readonly requestTimeoutMs?: number;
  /**
   * Idle keep-alive connections are closed after this (default 95 s: longer than Go's 90 s client idle
   * timeout, so the apiserver closes idle connections first and never sends a POST into one this
   * server is closing, which Go does not retry).
   */
  readonly keepAliveTimeoutMs?: number;
  /** After the drain, connections still busy are cut after this (default 10 s). */
  readonly closeTimeoutMs?: number;
  /** A TLS handshake not finished within this is cut (default 10 s). */
  readonly handshakeTimeoutMs?: number;
  /**
   * Most TCP connections the webhook port holds at once (default 256); a connection beyond it is closed
   * as soon as it is accepted, and the ones already open keep being served.
   */
  readonly maxConnections?: number;
  /**
   * PEM CA bundle for client authentication: when set, the server asks every client for a certificate
   * and answers anything but GET /healthz and /readyz only for one this bundle verifies (401 without a
   * certificate, 403 with one it does not verify). Reloaded with the serving pair.
   */
  readonly clientCaFile?: string;
  /**
   * Port of the plain-HTTP monitoring listener (GET /metrics, /healthz, /readyz) on the same host;
   * 0 picks a free port; undefined: no monitoring listener.
   */
  readonly metricsPort?: number;
  /**
   * Run once the state is synced, before readiness answers ready (a bounded warm-up of the decision
   * path; see verdict/warmup.ts). Started by startWarmUp(), by a check every 250 ms once listening, or
   * by a readiness probe that finds the state synced; readiness answers 503 "warming up" until it
   * settles. `shouldStop` turns true when shutdown begins: a warm-up should then end early.
   */
  readonly warmUp?: WarmUp;
  /** Timers for the drain, the close timeout and the warm-up check (default: the real ones; tests pass fake ones). */
  readonly timers?: Timers;
}

export interface MeshguardServer {
  readonly app: FastifyInstance;
  readonly metrics: Metrics;
  /** Starts listening (and watching the certificate files); resolves to the base URL, e.g. https://127.0.0.1:8443. */
  listen(): Promise<string>;
  /** The monitoring listener, once listening (http://127.0.0.1:9090); undefined when there is none. */
  readonly metricsUrl: string | undefined;
  /** The monitoring listener's Fastify instance, when there is one. */
  readonly monitor: FastifyInstance | undefined;
  /** Fails readiness, keeps serving for drainSeconds, then closes. Idempotent. */
  shutdown(): Promise<void>;
  /** True from the start of shutdown. */
  readonly draining: boolean;
  /** Re-reads the certificate files now (they are also watched and polled). */
  reloadTls(): Promise<ReloadOutcome>;
  /** Serial of the certificate being served (upper-case hex). */
  readonly tlsSerial: string;
  /** Starts the warm-up if the state is synced and it has not started; idempotent. */
  startWarmUp(): void;
  /**
   * When the last review arrived (performance.now()), undefined before the first; now while a review is
   * in flight (a sliced review spans several turns of the event loop: idle-time work must wait for it).
   */
  readonly lastReviewAt: number | undefined;
}

/**
 * The webhook: a Fastify instance composed of encapsulated plugins (./plugins/), each registering what
 * it needs and closing what it holds in its onClose hook: connections (cap, count, no renegotiation),
 * client-auth (with --client-ca), drain, health, tls-reload, validate, and the monitoring listener.
 */
export async function createServer(opts: ServerOptions): Promise<MeshguardServer> {
  const { source, logger } = opts;
  const timers = opts.timers ?? REAL_TIMERS;
  const metrics = opts.metrics ?? createMetrics();
  metrics.watchSource(source);
  if (opts.verdictCacheStats) metrics.watchVerdictCache(opts.verdictCacheStats);

  let initial: KeyPair;
  try {
    initial = await loadKeyPair(opts.tlsCertFile, opts.tlsKeyFile, opts.clientCaFile);
  } catch (e) {
    throw new InputError(`cannot use the TLS certificate${opts.clientCaFile ? ' or client CA' : ''}: ${(e as Error).message}`);
  }
  const withClientAuth = opts.clientCaFile !== undefined;

  const requestTimeout = opts.requestTimeoutMs ?? 30_000;
  const keepAliveTimeoutMs = opts.keepAliveTimeoutMs ?? 95_000;
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // One line per decision is logged by the handler; Fastify's per-request lines would double it.
    logController: new LogController({ disableRequestLogging: true }),
    // Handlers log through `logger` with the review's uid; a per-request child logger would be built
    // and dropped unused for every request.
    childLoggerFactory: (parent) => parent,
    https: {
      ...secureContextOptions(initial),
      // Asked for, not required by the handshake: the kubelet's probes carry no certificate, and a
      // refused caller gets a JSON error it can log rather than a bare handshake failure.
      ...(withClientAuth ? { requestCert: true, rejectUnauthorized: false } : {}),
      handshakeTimeout: opts.handshakeTimeoutMs ?? 10_000,
      // Node checks request/header deadlines on this interval (default 30 s): check often enough that
      // a stalled client is cut close to its deadline.
      requestTimeout,
      headersTimeout: Math.min(10_000, requestTimeout),
      connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(requestTimeout / 4))),
    },
    bodyLimit: opts.bodyLimitBytes ?? DEFAULT_BODY_LIMIT,
    requestTimeout,
    keepAliveTimeout: keepAliveTimeoutMs,
    // Socket inactivity while a request is in progress: a client that stalls mid-body is cut.
    connectionTimeout: requestTimeout + 5_000,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  });

  // Route schemas are compiled with meshguard's ajv: no type coercion, no property removal.
  const ajv = createAjv();
  app.setValidatorCompiler(({ schema }) => ajv.compile(schema));
  // Only JSON bodies: the apiserver always sends application/json; anything else is a 415.
  app.removeAllContentTypeParsers();
  // Fastify's JSON parser (400 on bad JSON or an empty body; a __proto__ key is an error).
  app.addContentTypeParser('application/json', { parseAs: 'string' }, app.getDefaultJsonParser('error', 'ignore'));
  // Set before the plugins are registered: they inherit them (validate sets its own, which counts).
  app.setErrorHandler(webhookErrorHandler(logger));
  app.setNotFoundHandler(notFoundHandler);

  const drainer = new Drain({
    ...(opts.drainSeconds !== undefined ? { drainSeconds: opts.drainSeconds } : {}),
    ...(opts.closeTimeoutMs !== undefined ? { closeTimeoutMs: opts.closeTimeoutMs } : {}),
    timers,
    logger,
  });
  const isDraining = (): boolean => drainer.draining;
  const readiness = new Readiness({ source, ...(opts.warmUp ? { warmUp: opts.warmUp } : {}), isDraining, logger, timers });
  const host = opts.host ?? '0.0.0.0';
  const monitor = opts.metricsPort === undefined
    ? undefined
    : new MonitorListener({ logger, metrics, readiness, drain: drainer, timers, host, port: opts.metricsPort, keepAliveTimeoutMs });
  let reloader: TlsReloader | undefined;

  await app.register(connections, { metrics, ...(opts.maxConnections !== undefined ? { maxConnections: opts.maxConnections } : {}) });
  if (withClientAuth) await app.register(clientAuth, { logger, metrics });
  await app.register(drain, { drain: drainer, primary: true });
  await app.register(tlsReload, {
    certFile: opts.tlsCertFile,
    keyFile: opts.tlsKeyFile,
    ...(opts.clientCaFile ? { clientCaFile: opts.clientCaFile } : {}),
    initial,
    logger,
    metrics,
    ...(opts.tlsDebounceMs !== undefined ? { debounceMs: opts.tlsDebounceMs } : {}),
    ...(opts.tlsPollSeconds !== undefined ? { pollSeconds: opts.tlsPollSeconds } : {}),
    expose: (r) => (reloader = r),
  });
  // Also on the webhook port, for clients of the HTTPS contract; the Deployment probes the monitoring port.
  await app.register(health, { readiness });
  const wording: ResponseOptions = opts.docsUrl ? { docsUrl: opts.docsUrl } : {};
  let lastReviewAt: number | undefined;
  let inFlight = 0;
  const onReview = (): void => {
    lastReviewAt = performance.now();
    inFlight++;
  };
  const onReviewDone = (): void => {
    inFlight--;
    lastReviewAt = performance.now();
  };
  await app.register(validate, { source, decide: opts.decide, wording, metrics, logger, onReview, onReviewDone });
  if (monitor) await app.register(monitorListener, { monitor, closeTimeoutMs: drainer.closeTimeoutMs });
  await app.ready();
  const tls = reloader!;

  return {
    app,
    metrics,
    monitor: monitor?.app,
    get metricsUrl() {
      return monitor?.url;
    },
    get draining() {
      return drainer.draining;
    },
    get tlsSerial() {
      return tls.current.serial;
    },
    reloadTls: () => tls.check(),
    startWarmUp: () => readiness.startWarmUp(),
    get lastReviewAt() {
      return inFlight > 0 ? performance.now() : lastReviewAt;
    },
    async listen() {
      const url = await app.listen({ host, port: opts.port });
      if (monitor) {
        try {
          await monitor.listen();
        } catch (e) {
          await app.close();
          throw e;
        }
      }
      return url;
    },
    shutdown: () => drainer.shutdown(app),
  };
}

export interface SignalOptions {
  readonly logger?: Logger;
  /** Runs after the server has closed (stop the state source, flush logs). */
  readonly onShutdown?: () => void | Promise<void>;
  /** Default process.exit. */
  readonly exit?: (code: number) => void;
  readonly signals?: readonly NodeJS.Signals[];
}

/**
 * SIGTERM/SIGINT start the drain and exit when it is done; a second signal exits at once. Returns a
 * function that removes the handlers.
 */
export function installSignalHandlers(server: Pick<MeshguardServer, 'shutdown'>, opts: SignalOptions = {}): () => void {
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  const signals = opts.signals ?? (['SIGTERM', 'SIGINT'] as const);
  let received = false;
  const handler = (signal: NodeJS.Signals): void => {
    if (received) {
      opts.logger?.warn({ signal }, 'second signal: exiting without finishing the drain');
      exit(1);
      return;
    }
    received = true;
    opts.logger?.info({ signal }, 'signal received');
    server
      .shutdown()
      .then(() => opts.onShutdown?.())
      .then(
        () => exit(0),
        (e: unknown) => {
          opts.logger?.error({ err: (e as Error).message }, 'shutdown failed');
          exit(1);
        },
      );
  };
  for (const s of signals) process.on(s, handler);
  return () => {
    for (const s of signals) process.off(s, handler);
  };
}
