// Certificate reload: the serving pair (and the client CA bundle) is watched on disk from the moment
// the webhook listens, and each valid new pair replaces the listener's secure context without a
// restart (see ../tls.ts for how a change is detected and checked). The watch ends when the webhook closes.

import type { Server as HttpsServer } from 'node:https';

import type { FastifyPluginAsync } from 'fastify';
import type { Logger } from 'pino';

import type { Metrics } from '../metrics.ts';
import { secureContextOptions, TlsReloader, type KeyPair } from '../tls.ts';

export interface TlsReloadOptions {
  readonly certFile: string;
  readonly keyFile: string;
  readonly clientCaFile?: string;
  /** The pair the listener was created with. */
  readonly initial: KeyPair;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Quiet time after a certificate file event before reloading (default 300). */
  readonly debounceMs?: number;
  /** Certificate poll interval, a fallback to file events (default 30; 0 disables). */
  readonly pollSeconds?: number;
  /** Receives the reloader, for reloads on demand and the serial being served. */
  readonly expose: (reloader: TlsReloader) => void;
}

export const tlsReload: FastifyPluginAsync<TlsReloadOptions> = async (app, opts) => {
  const { initial, logger } = opts;
  const reloader = new TlsReloader({
    certFile: opts.certFile,
    keyFile: opts.keyFile,
    current: initial,
    logger,
    ...(opts.clientCaFile ? { clientCaFile: opts.clientCaFile } : {}),
    // setSecureContext() replaces the whole context: the protocol settings go with every pair.
    apply: (pair) => (app.server as HttpsServer).setSecureContext(secureContextOptions(pair)),
    onResult: (r) => opts.metrics.tlsReload(r),
    debounceMs: opts.debounceMs ?? 300,
    pollMs: (opts.pollSeconds ?? 30) * 1000,
  });
  opts.expose(reloader);
  app.addHook('onListen', (done) => {
    reloader.start();
    logger.info(
      { url: app.listeningOrigin, serial: initial.serial, notAfter: initial.notAfter, ...(initial.clientCaSubjects ? { clientCa: initial.clientCaSubjects } : {}) },
      'tls: serving certificate loaded',
    );
    done();
  });
  app.addHook('onClose', (_app, done) => {
    reloader.stop();
    done();
  });
};
