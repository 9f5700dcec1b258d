// Graceful shutdown. A shutdown first fails readiness and keeps serving for the drain period, asking
// keep-alive clients to reconnect (to a ready replica) after each answer, while the apiserver and the
// Service move to other replicas; then the listener closes: in-flight requests finish, idle
// connections are closed, and a connection still busy after the close timeout is cut.

import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';

import type { Timers } from '../../core/timers.ts';
import { sharedWithParent } from './share.ts';

export const DEFAULT_DRAIN_SECONDS = 5;
export const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;

export interface DrainOptions {
  /** How long shutdown keeps serving with readiness failed (default 5). */
  readonly drainSeconds?: number;
  /** After the drain, connections still busy are cut after this (default 10 s). */
  readonly closeTimeoutMs?: number;
  readonly timers: Timers;
  readonly logger: Logger;
}

/** Closes `app`, cutting the connections still busy after `timeoutMs`. */
export async function closeWithin(app: FastifyInstance, timeoutMs: number, timers: Timers): Promise<void> {
  const cut = timers.setTimeout(() => app.server.closeAllConnections(), timeoutMs);
  cut.unref();
  try {
    await app.close();
  } finally {
    timers.clearTimeout(cut);
  }
}

/** The drain of one webhook: whether it has begun, and the shutdown itself. */
export class Drain {
  readonly #opts: DrainOptions;
  #draining = false;
  #listening = false;
  #shutdown: Promise<void> | undefined;

  constructor(opts: DrainOptions) {
    this.#opts = opts;
  }

  /** True from the start of shutdown. */
  get draining(): boolean {
    return this.#draining;
  }

  get closeTimeoutMs(): number {
    return this.#opts.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
  }

  /** Fails readiness, keeps `app` serving for the drain period (once it listens), then closes it. Idempotent. */
  shutdown(app: FastifyInstance): Promise<void> {
    this.#shutdown ??= (async () => {
      this.#draining = true;
      const { logger, timers } = this.#opts;
      const drainSeconds = this.#opts.drainSeconds ?? DEFAULT_DRAIN_SECONDS;
      if (this.#listening && drainSeconds > 0) {
        logger.info({ drainSeconds }, 'shutting down: readiness failed, draining');
        await new Promise<void>((r) => timers.setTimeout(r, drainSeconds * 1000));
      }
      // Every plugin closes what it holds in its onClose hook (the certificate watch, the monitoring listener).
      await closeWithin(app, this.closeTimeoutMs, timers);
      logger.info('meshguard webhook stopped');
    })();
    return this.#shutdown;
  }

  /** Marks the webhook listening: from then on a shutdown drains first. */
  listening(): void {
    this.#listening = true;
  }
}

/**
 * The drain's part of a listener: while draining, every answer carries `connection: close`. Shared
 * with the registering instance, so that it covers every route of it.
 */
export const drain = sharedWithParent<{ readonly drain: Drain; readonly primary?: boolean }>(async (app, opts) => {
  // (A callback hook: an async one costs a promise per request.)
  app.addHook('onSend', (_req, reply, payload, done) => {
    if (opts.drain.draining) reply.header('connection', 'close');
    done(null, payload);
  });
  // The webhook listener (not the monitoring one) decides whether a shutdown waits for the drain.
  if (opts.primary) {
    app.addHook('onListen', (done) => {
      opts.drain.listening();
      done();
    });
  }
});
