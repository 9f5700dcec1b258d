// Liveness and readiness. GET /healthz answers 200 while the process serves at all; GET /readyz answers
// 200 only when the cluster state has synced and the decision path has warmed up, and 503 with the
// reason otherwise (draining, state not synced, warming up). Both listeners serve them: the webhook
// port for clients of the HTTPS contract, the monitoring port for the kubelet's probes.

import type { FastifyPluginAsync } from 'fastify';
import type { Logger } from 'pino';

import type { StateSource } from '../../core/objects.ts';
import type { Timers } from '../../core/timers.ts';

/**
 * A bounded warm-up of the decision path (see verdict/warmup.ts), run once the state is synced and
 * before readiness answers ready. `shouldStop` turns true when shutdown begins: it should then end early.
 */
export type WarmUp = (shouldStop: () => boolean) => void | Promise<void>;

export interface ReadinessOptions {
  readonly source: StateSource;
  readonly warmUp?: WarmUp;
  /** True once shutdown has begun: readiness fails and no warm-up starts. */
  readonly isDraining: () => boolean;
  readonly logger: Logger;
  readonly timers: Timers;
}

export type ReadinessAnswer = { readonly ready: true } | { readonly ready: false; readonly reason: 'draining' | 'state not synced' | 'warming up' };

/** How often a listening webhook checks whether the state has synced, to start the warm-up. */
const WARM_UP_CHECK_MS = 250;

/** Whether the webhook is ready, and the warm-up that readiness waits for. */
export class Readiness {
  readonly #opts: ReadinessOptions;
  #warmUp: 'pending' | 'running' | 'done';
  #check: ReturnType<Timers['setInterval']> | undefined;

  constructor(opts: ReadinessOptions) {
    this.#opts = opts;
    this.#warmUp = opts.warmUp ? 'pending' : 'done';
  }

  /** Starts the warm-up if the state is synced and it has not started; idempotent. */
  startWarmUp(): void {
    const { source, warmUp, isDraining, logger } = this.#opts;
    if (this.#warmUp !== 'pending' || isDraining() || !source.synced()) return;
    this.#warmUp = 'running';
    const t0 = performance.now();
    Promise.resolve()
      .then(() => warmUp!(isDraining))
      .catch((e: unknown) => logger.warn({ err: (e as Error).message, ms: Math.round(performance.now() - t0) }, 'warm-up failed'))
      .finally(() => {
        this.#warmUp = 'done';
      });
  }

  /** Ready, or why not; a probe that finds the state synced starts the warm-up. */
  check(): ReadinessAnswer {
    if (this.#opts.isDraining()) return { ready: false, reason: 'draining' };
    if (!this.#opts.source.synced()) return { ready: false, reason: 'state not synced' };
    if (this.#warmUp !== 'done') {
      this.startWarmUp();
      return { ready: false, reason: 'warming up' };
    }
    return { ready: true };
  }

  /**
   * The state may sync at any time (a live source's last stream, a resync): start the warm-up as soon
   * as it does rather than at the next readiness probe.
   */
  watch(): void {
    if (this.#warmUp !== 'pending' || this.#check) return;
    const { timers, isDraining } = this.#opts;
    const check = timers.setInterval(() => {
      this.startWarmUp();
      if (this.#warmUp !== 'pending' || isDraining()) this.unwatch();
    }, WARM_UP_CHECK_MS);
    check.unref();
    this.#check = check;
  }

  unwatch(): void {
    if (this.#check) this.#opts.timers.clearInterval(this.#check);
    this.#check = undefined;
  }
}

/** GET /healthz and /readyz. */
export const healthRoutes: FastifyPluginAsync<{ readonly readiness: Readiness }> = async (app, { readiness }) => {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const r = readiness.check();
    if (!r.ready) return reply.code(503).send({ status: r.reason });
    return { status: 'ready' };
  });
};

/** The routes, and the warm-up watch from the moment the webhook listens until it closes. */
export const health: FastifyPluginAsync<{ readonly readiness: Readiness }> = async (app, opts) => {
  await app.register(healthRoutes, opts);
  app.addHook('onListen', (done) => {
    opts.readiness.watch();
    done();
  });
  app.addHook('onClose', (_app, done) => {
    opts.readiness.unwatch();
    done();
  });
};
