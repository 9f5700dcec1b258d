// The webhook port's connections: a cap on how many it holds at once (past it Node closes each new
// connection as it is accepted, and counts a drop; open ones are unaffected), the count of open ones
// for /metrics, and no TLS renegotiation.

import type { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';

import type { FastifyPluginAsync } from 'fastify';

import type { Metrics } from '../metrics.ts';

/**
 * Connections the webhook port holds at once. An idle kept-alive TLS connection costs about 60 KB of
 * RSS (bench/idle-connections.ts): 256 of them ~15 MB, far below the pod's memory limit, and far more
 * than the apiserver needs (it keeps up to 25 idle per webhook host and opens one per call in flight).
 */
export const DEFAULT_MAX_CONNECTIONS = 256;

export const connections: FastifyPluginAsync<{ readonly metrics: Metrics; readonly maxConnections?: number }> = async (app, opts) => {
  const server = app.server as HttpsServer;
  server.maxConnections = opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  let open = 0;
  const onConnection = (socket: Socket): void => {
    open++;
    socket.once('close', () => open--);
  };
  const onDrop = (): void => opts.metrics.connectionDropped();
  // Belt and braces with SSL_OP_NO_RENEGOTIATION: a renegotiation attempt is a socket error, which
  // ends the connection.
  const onSecure = (socket: TLSSocket): void => socket.disableRenegotiation();
  server.on('connection', onConnection);
  server.on('drop', onDrop);
  server.on('secureConnection', onSecure);
  opts.metrics.watchConnections(() => open);
  app.addHook('onClose', (_app, done) => {
    server.off('connection', onConnection);
    server.off('drop', onDrop);
    server.off('secureConnection', onSecure);
    done();
  });
};
