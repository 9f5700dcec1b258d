// The monitoring listener (--metrics-port): plain HTTP (Prometheus and the kubelet's probes need no
// certificate), GET /metrics, /healthz and /readyz only, tiny bodies, and a small connection cap of
// its own so that a busy scraper never takes the webhook's connections. The network policy admits it
// only from the node (probes) and the monitoring namespace. /metrics is only here: it describes the
// cluster state, and the webhook port is the apiserver's. The listener is a Fastify instance of its own,
// listened to by `listen()` after the webhook and closed together with the webhook (its onClose hook).

import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import type { Logger } from 'pino';

import type { Timers } from '../../core/timers.ts';
import { errorBody, notFoundHandler } from '../http-errors.ts';
import type { Metrics } from '../metrics.ts';
import { closeWithin, drain, type Drain } from './drain.ts';
import { healthRoutes, type Readiness } from './health.ts';

/** The monitoring port serves a scraper or two and the kubelet's probes. */
export const MONITOR_MAX_CONNECTIONS = 32;

export interface MonitorOptions {
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly readiness: Readiness;
  readonly drain: Drain;
  readonly timers: Timers;
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** Idle keep-alive connections are closed after this (the webhook's setting). */
  readonly keepAliveTimeoutMs: number;
}

/** The monitoring listener: created with the webhook, listening once `listen()` is called. */
export class MonitorListener {
  readonly app: FastifyInstance;
  readonly #opts: MonitorOptions;
  #url: string | undefined;

  constructor(opts: MonitorOptions) {
    this.#opts = opts;
    const { logger } = opts;
    const app = Fastify({
      loggerInstance: logger as FastifyBaseLogger,
      logController: new LogController({ disableRequestLogging: true }),
      childLoggerFactory: (parent) => parent,
      http: { requestTimeout: 10_000, headersTimeout: 10_000, connectionsCheckingInterval: 1_000 },
      bodyLimit: 1024,
      requestTimeout: 10_000,
      keepAliveTimeout: opts.keepAliveTimeoutMs,
      connectionTimeout: 15_000,
      return503OnClosing: true,
      forceCloseConnections: 'idle',
    });
    app.server.maxConnections = MONITOR_MAX_CONNECTIONS;
    app.removeAllContentTypeParsers();
    app.setNotFoundHandler(notFoundHandler);
    app.setErrorHandler((err: FastifyError, _req, reply) => {
      const code = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
      if (code >= 500) logger.error({ err: { message: err.message, stack: err.stack } }, 'monitoring request failed');
      return reply.code(code).send(errorBody(code, code >= 500 ? 'internal error' : err.message));
    });
    void app.register(drain, { drain: opts.drain });
    void app.register(healthRoutes, { readiness: opts.readiness });
    app.get('/metrics', async (_req, reply) => reply.type(opts.metrics.contentType).send(await opts.metrics.render()));
    this.app = app;
  }

  /** Its base URL once listening (http://127.0.0.1:9090). */
  get url(): string | undefined {
    return this.#url;
  }

  async listen(): Promise<string> {
    this.#url = await this.app.listen({ host: this.#opts.host, port: this.#opts.port });
    return this.#url;
  }

  /** Closes it, cutting connections still busy after `timeoutMs`. */
  close(timeoutMs: number): Promise<void> {
    return closeWithin(this.app, timeoutMs, this.#opts.timers);
  }
}

/**
 * Ties the monitoring listener to the webhook's life: it starts closing when the webhook does (its
 * probes answer 503 until then), and the webhook's close waits for it.
 */
export const monitorListener: FastifyPluginAsync<{ readonly monitor: MonitorListener; readonly closeTimeoutMs: number }> = async (app, opts) => {
  let closing: Promise<void> | undefined;
  app.addHook('preClose', (done) => {
    closing = opts.monitor.close(opts.closeTimeoutMs);
    done();
  });
  app.addHook('onClose', async () => {
    await (closing ?? opts.monitor.close(opts.closeTimeoutMs));
  });
};
