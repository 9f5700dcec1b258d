// Client authentication (--client-ca): the listener asks every client for a certificate, and answers
// anything but GET /healthz and /readyz only for one the client CA bundle verifies: 401 without a
// certificate, 403 with one it does not verify. Shared with the registering instance, so that it
// guards every route of it.

import type { TLSSocket } from 'node:tls';

import type { Logger } from 'pino';

import { errorBody, statusName } from '../http-errors.ts';
import type { Metrics } from '../metrics.ts';
import { sharedWithParent } from './share.ts';

export const clientAuth = sharedWithParent<{ readonly logger: Logger; readonly metrics: Metrics }>(async (app, { logger, metrics }) => {
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
});
