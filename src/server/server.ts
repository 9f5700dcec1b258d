// The webhook's HTTPS server: POST /validate answers AdmissionReviews (and GET /healthz /readyz), and an
// optional plain-HTTP monitoring listener serves GET /metrics /healthz /readyz to Prometheus and the
// kubelet. Built so that the webhook never becomes the cluster's outage: bad input gets a 4xx and never
// crashes or hangs the process, certificates rotate without a restart, and a shutdown first fails
// readiness and keeps serving while the apiserver moves to other replicas. And so that only the
// apiserver gets answers: a cap on connections, strict TLS, and optionally client certificates.

import { constants as cryptoConstants } from 'node:crypto';
import type { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { SecureContextOptions, TLSSocket } from 'node:tls';

import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';

import type { Change } from '../core/change.ts';
import { ReviewError, toAdmissionReview, toChange, type ResponseOptions } from '../admission/review.ts';
import type { DocsLinks } from '../config/docs-links.ts';
import { admissionReviewSchema, createAjv, type AdmissionReview } from '../admission/schema.ts';
import { InputError } from '../core/errors.ts';
import type { Decide, Decision } from '../rules/types.ts';
import type { StateSource } from '../state/types.ts';
import { REAL_TIMERS, type Timers } from '../core/timers.ts';
import type { VerdictCacheStats } from '../verdict/cache.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { loadKeyPair, TlsReloader, type KeyPair, type ReloadOutcome } from './tls.ts';

/** The apiserver caps a request body at 3 MiB; a review carries object and oldObject, plus the envelope. */
export const DEFAULT_BODY_LIMIT = 2 * 3 * 1024 * 1024 + 256 * 1024;
export const DEFAULT_DRAIN_SECONDS = 5;
/**
 * Connections the webhook port holds at once. An idle kept-alive TLS connection costs about 60 KB of
 * RSS (bench/idle-connections.ts): 256 of them ~15 MB, far below the pod's memory limit, and far more
 * than the apiserver needs (it keeps up to 25 idle per webhook host and opens one per call in flight).
 */
export const DEFAULT_MAX_CONNECTIONS = 256;
/** The monitoring port serves a scraper or two and the kubelet's probes. */
export const MONITOR_MAX_CONNECTIONS = 32;

/**
 * TLS 1.2 suites with forward secrecy (ECDHE) and an AEAD cipher only: no static-RSA key exchange, no
 * CBC. The TLS 1.3 suites are all AEAD with forward secrecy. Go's TLS client (the kube-apiserver)
 * offers all of these.
 */
export const TLS_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/**
 * Everything the secure context holds. Node's setSecureContext() replaces the whole context, so a
 * certificate reload must pass the protocol settings again or it would fall back to Node's defaults.
 */
export function secureContextOptions(pair: KeyPair): SecureContextOptions {
  return {
    cert: pair.cert,
    key: pair.key,
    ...(pair.clientCa ? { ca: pair.clientCa } : {}),
    minVersion: 'TLSv1.2',
    ciphers: TLS_CIPHERS,
    honorCipherOrder: true,
    // Renegotiation (TLS 1.2) lets a client make the server redo the costly half of a handshake at will;
    // the apiserver never renegotiates. Refused by OpenSSL here, and per socket again below.
    secureOptions: cryptoConstants.SSL_OP_NO_RENEGOTIATION,
  };
}

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
  readonly warmUp?: (shouldStop: () => boolean) => void | Promise<void>;
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
}

interface ErrorBody {
  readonly error: string;
  readonly message: string;
}

const STATUS_NAMES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};
const statusName = (code: number): string => STATUS_NAMES[code] ?? (code < 500 ? 'Bad Request' : 'Internal Server Error');

function errorBody(code: number, message: string): ErrorBody {
  return { error: statusName(code), message };
}

function elapsedSeconds(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

function ruleList(decision: Decision): string[] {
  return decision.findings.map((f) => `${f.rule}:${f.action}${f.preexisting ? ':preexisting' : ''}`);
}

/** How every answer's JSON starts, up to request.uid's value (toAdmissionReview puts uid first). */
const ANSWER_HEAD = '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":';

/**
 * A decision answered from the verdict cache is the same object on every hit: its answer is serialized
 * once, and each hit splices its own uid in.
 */
const answerTails = new WeakMap<Decision, string>();
function cachedAnswer(uid: string, decision: Decision, wording: ResponseOptions): ReturnType<typeof toAdmissionReview> | string {
  if (!decision.cached) return toAdmissionReview(uid, decision, wording);
  let tail = answerTails.get(decision);
  if (tail === undefined) {
    const text = JSON.stringify(toAdmissionReview('', decision, wording));
    if (!text.startsWith(`${ANSWER_HEAD}""`)) return toAdmissionReview(uid, decision, wording);
    tail = text.slice(ANSWER_HEAD.length + 2);
    answerTails.set(decision, tail);
  }
  return ANSWER_HEAD + JSON.stringify(uid) + tail;
}

export async function createServer(opts: ServerOptions): Promise<MeshguardServer> {
  const { source, decide, logger } = opts;
  const wording: ResponseOptions = opts.docsUrl ? { docsUrl: opts.docsUrl } : {};
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
  const clientAuth = opts.clientCaFile !== undefined;

  const requestTimeout = opts.requestTimeoutMs ?? 30_000;
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
      ...(clientAuth ? { requestCert: true, rejectUnauthorized: false } : {}),
      handshakeTimeout: opts.handshakeTimeoutMs ?? 10_000,
      // Node checks request/header deadlines on this interval (default 30 s): check often enough that
      // a stalled client is cut close to its deadline.
      requestTimeout,
      headersTimeout: Math.min(10_000, requestTimeout),
      connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(requestTimeout / 4))),
    },
    bodyLimit: opts.bodyLimitBytes ?? DEFAULT_BODY_LIMIT,
    requestTimeout,
    keepAliveTimeout: opts.keepAliveTimeoutMs ?? 95_000,
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

  let draining = false;
  let warmUpState: 'pending' | 'running' | 'done' = opts.warmUp ? 'pending' : 'done';
  const startWarmUp = (): void => {
    if (warmUpState !== 'pending' || draining || !source.synced()) return;
    warmUpState = 'running';
    const t0 = performance.now();
    Promise.resolve()
      .then(() => opts.warmUp!(() => draining))
      .catch((e: unknown) => logger.warn({ err: (e as Error).message, ms: Math.round(performance.now() - t0) }, 'warm-up failed'))
      .finally(() => {
        warmUpState = 'done';
      });
  };
  const reloader = new TlsReloader({
    certFile: opts.tlsCertFile,
    keyFile: opts.tlsKeyFile,
    current: initial,
    logger,
    ...(opts.clientCaFile ? { clientCaFile: opts.clientCaFile } : {}),
    apply: (pair) => (app.server as HttpsServer).setSecureContext(secureContextOptions(pair)),
    onResult: (r) => metrics.tlsReload(r),
    debounceMs: opts.tlsDebounceMs ?? 300,
    pollMs: (opts.tlsPollSeconds ?? 30) * 1000,
  });

  const tlsServer = app.server as HttpsServer;
  // Past the cap Node closes each new connection as it is accepted ('drop'); open ones are unaffected.
  tlsServer.maxConnections = opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  let openConnections = 0;
  tlsServer.on('connection', (socket: Socket) => {
    openConnections++;
    socket.once('close', () => openConnections--);
  });
  tlsServer.on('drop', () => metrics.connectionDropped());
  metrics.watchConnections(() => openConnections);
  // Belt and braces with SSL_OP_NO_RENEGOTIATION: a renegotiation attempt is a socket error, which
  // ends the connection.
  tlsServer.on('secureConnection', (socket: TLSSocket) => socket.disableRenegotiation());

  if (clientAuth) {
    // Before the body is read: an unauthenticated caller never gets a 6 MB body parsed.
    app.addHook('onRequest', (req, reply, done) => {
      const route = req.routeOptions.url;
      if (req.method === 'GET' && (route === '/healthz' || route === '/readyz')) return done();
      const socket = req.raw.socket as TLSSocket;
      if (socket.authorized) return done();
      // An empty object when the client sent no certificate.
      const presented = Object.keys(socket.getPeerCertificate() ?? {}).length > 0;
      const reason = presented ? 'untrusted-certificate' : 'no-certificate';
      metrics.clientAuthRefused(reason);
      logger.warn(
        { remote: socket.remoteAddress, url: req.url, reason, ...(presented ? { err: String(socket.authorizationError) } : {}) },
        'client authentication failed',
      );
      const code = presented ? 403 : 401;
      const message = presented ? `client certificate not accepted: ${String(socket.authorizationError)}` : 'a client certificate is required';
      // Also a Kubernetes Status, so that the apiserver's "failed calling webhook" error quotes the
      // message (it reads any other body as "unknown"): a misconfigured apiserver says what is wrong.
      const status = { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: statusName(code), code };
      // (Replying from a callback hook: done() is not called.)
      void reply.code(code).send({ ...errorBody(code, message), ...status });
    });
  }

  app.setErrorHandler((err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
    let code = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (err.validation) code = 400;
    const isValidate = req.routeOptions.url === '/validate';
    if (code >= 500) {
      logger.error({ err: { message: err.message, code: err.code, stack: err.stack }, url: req.url }, 'request failed');
      if (isValidate) metrics.observeRequest('error');
      return reply.code(code).send(errorBody(code, 'internal error while evaluating the request'));
    }
    if (isValidate) metrics.observeRequest('invalid');
    logger.debug({ status: code, err: err.message, url: req.url }, 'rejected request');
    const message = err.validation ? `invalid AdmissionReview: ${err.message}` : err.message;
    return reply.code(code).send(errorBody(code, message));
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send(errorBody(404, `no route ${req.method} ${req.url}`)));

  // While draining, ask keep-alive clients to reconnect (to a ready replica) after each answer.
  // (A callback hook: an async one costs a promise per request.)
  app.addHook('onSend', (_req, reply, payload, done) => {
    if (draining) reply.header('connection', 'close');
    done(null, payload);
  });

  const healthz = async (): Promise<{ status: string }> => ({ status: 'ok' });
  const readyz = async (_req: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    if (draining) return reply.code(503).send({ status: 'draining' });
    if (!source.synced()) return reply.code(503).send({ status: 'state not synced' });
    if (warmUpState !== 'done') {
      startWarmUp();
      return reply.code(503).send({ status: 'warming up' });
    }
    return { status: 'ready' };
  };
  // Also on the webhook port, for clients of the HTTPS contract; the Deployment probes the monitoring
  // port. /metrics is only there: it describes the cluster state, and the webhook port is the apiserver's.
  app.get('/healthz', healthz);
  app.get('/readyz', readyz);
  const monitor = opts.metricsPort === undefined ? undefined : createMonitor(logger, opts, { healthz, readyz, metrics, isDraining: () => draining });

  app.post('/validate', { schema: { body: admissionReviewSchema } }, async (req, reply) => {
    const start = process.hrtime.bigint();
    let change: Change;
    try {
      change = toChange(req.body as AdmissionReview);
    } catch (e) {
      if (e instanceof ReviewError) {
        metrics.observeRequest('invalid');
        return reply.code(400).send(errorBody(400, e.message));
      }
      throw e;
    }
    let decision: Decision;
    try {
      decision = decide(change, source.state);
    } catch (e) {
      const err = e as Error;
      logger.error({ uid: change.uid, kind: change.gvk.kind, namespace: change.namespace, name: change.name, err: { message: err.message, stack: err.stack } }, 'evaluation failed');
      metrics.observeRequest('error', elapsedSeconds(start));
      return reply.code(500).send(errorBody(500, 'internal error while evaluating the request'));
    }
    const answer = cachedAnswer(change.uid, decision, wording);
    const seconds = elapsedSeconds(start);
    const verdict = decision.allowed ? 'allowed' : 'denied';
    metrics.observeRequest(verdict, seconds, decision);
    logger.info(
      {
        uid: change.uid,
        kind: change.gvk.group ? `${change.gvk.kind}.${change.gvk.group}` : change.gvk.kind,
        namespace: change.namespace,
        name: change.name,
        operation: change.operation,
        dryRun: change.dryRun,
        user: change.userInfo.username,
        verdict,
        rules: ruleList(decision),
        ...(decision.skipped.length > 0 ? { skipped: decision.skipped } : {}),
        ...(decision.exemptReason ? { exempt: decision.exemptReason } : {}),
        ...(decision.notices ? { notices: decision.notices } : {}),
        ...(decision.cached ? { cached: true } : {}),
        latencyMs: Math.round(seconds * 1e6) / 1e3,
      },
      'admission decision',
    );
    if (decision.incomplete) {
      // Once per review, whatever number of rules failed.
      logger.warn(
        {
          uid: change.uid,
          kind: change.gvk.kind,
          namespace: change.namespace,
          name: change.name,
          reason: decision.incomplete.reason,
          rules: decision.incomplete.rules,
          outcome: decision.incomplete.outcome,
          errors: decision.findings.filter((f) => f.failed).map((f) => f.message),
        },
        'evaluation incomplete',
      );
    }
    for (const f of decision.findings) {
      if (f.action !== 'audit') continue;
      logger.info(
        { uid: change.uid, rule: f.rule, namespace: change.namespace, name: change.name, message: f.message },
        'audit finding',
      );
    }
    if (typeof answer === 'string') return reply.type('application/json; charset=utf-8').send(answer);
    return answer;
  });

  let listening = false;
  let shutdownPromise: Promise<void> | undefined;
  let metricsUrl: string | undefined;

  return {
    app,
    metrics,
    monitor,
    get metricsUrl() {
      return metricsUrl;
    },
    get draining() {
      return draining;
    },
    get tlsSerial() {
      return reloader.current.serial;
    },
    reloadTls: () => reloader.check(),
    startWarmUp,
    async listen() {
      const url = await app.listen({ host: opts.host ?? '0.0.0.0', port: opts.port });
      if (monitor) {
        try {
          metricsUrl = await monitor.listen({ host: opts.host ?? '0.0.0.0', port: opts.metricsPort! });
        } catch (e) {
          await app.close();
          throw e;
        }
      }
      listening = true;
      // The state may sync at any time (a live source's last stream, a resync): start the warm-up as
      // soon as it does rather than at the next readiness probe.
      if (warmUpState === 'pending') {
        const poll = timers.setInterval(() => {
          startWarmUp();
          if (warmUpState !== 'pending' || draining) timers.clearInterval(poll);
        }, 250);
        poll.unref();
      }
      reloader.start();
      logger.info(
        { url, serial: initial.serial, notAfter: initial.notAfter, ...(initial.clientCaSubjects ? { clientCa: initial.clientCaSubjects } : {}) },
        'tls: serving certificate loaded',
      );
      return url;
    },
    shutdown() {
      shutdownPromise ??= (async () => {
        draining = true;
        const drainSeconds = opts.drainSeconds ?? DEFAULT_DRAIN_SECONDS;
        if (listening && drainSeconds > 0) {
          logger.info({ drainSeconds }, 'shutting down: readiness failed, draining');
          await new Promise<void>((r) => timers.setTimeout(r, drainSeconds * 1000));
        }
        reloader.stop();
        // In-flight requests finish; a connection still busy after the close timeout is cut.
        const cut = timers.setTimeout(() => {
          app.server.closeAllConnections();
          monitor?.server.closeAllConnections();
        }, opts.closeTimeoutMs ?? 10_000);
        cut.unref();
        try {
          await Promise.all([app.close(), monitor?.close()]);
        } finally {
          timers.clearTimeout(cut);
        }
        logger.info('meshguard webhook stopped');
      })();
      return shutdownPromise;
    },
  };
}

interface MonitorRoutes {
  readonly healthz: () => Promise<unknown>;
  readonly readyz: (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
  readonly metrics: Metrics;
  readonly isDraining: () => boolean;
}

/**
 * The monitoring listener: plain HTTP (Prometheus and the kubelet's probes need no certificate), GET
 * only, tiny bodies, a small connection cap of its own so a busy scraper never takes the webhook's
 * connections. The network policy admits it only from the node (probes) and the monitoring namespace.
 */
function createMonitor(logger: Logger, opts: ServerOptions, routes: MonitorRoutes): FastifyInstance {
  const monitor = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: (parent) => parent,
    http: { requestTimeout: 10_000, headersTimeout: 10_000, connectionsCheckingInterval: 1_000 },
    bodyLimit: 1024,
    requestTimeout: 10_000,
    keepAliveTimeout: opts.keepAliveTimeoutMs ?? 95_000,
    connectionTimeout: 15_000,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  });
  monitor.server.maxConnections = MONITOR_MAX_CONNECTIONS;
  monitor.removeAllContentTypeParsers();
  monitor.addHook('onSend', (_req, reply, payload, done) => {
    if (routes.isDraining()) reply.header('connection', 'close');
    done(null, payload);
  });
  monitor.setNotFoundHandler((req, reply) => reply.code(404).send(errorBody(404, `no route ${req.method} ${req.url}`)));
  monitor.setErrorHandler((err: FastifyError, _req, reply) => {
    const code = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (code >= 500) logger.error({ err: { message: err.message, stack: err.stack } }, 'monitoring request failed');
    return reply.code(code).send(errorBody(code, code >= 500 ? 'internal error' : err.message));
  });
  monitor.get('/healthz', routes.healthz);
  monitor.get('/readyz', routes.readyz);
  monitor.get('/metrics', async (_req, reply) => reply.type(routes.metrics.contentType).send(await routes.metrics.render()));
  return monitor;
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
