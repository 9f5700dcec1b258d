// The JSON error bodies both listeners answer with, and the error handler that sends them.

import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';

export interface ErrorBody {
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
export const statusName = (code: number): string => STATUS_NAMES[code] ?? (code < 500 ? 'Bad Request' : 'Internal Server Error');

export function errorBody(code: number, message: string): ErrorBody {
  return { error: statusName(code), message };
}

/** Both listeners' answer to a route they do not have: a JSON 404 that names the method and path. */
export function notFoundHandler(req: FastifyRequest, reply: FastifyReply): FastifyReply {
  return reply.code(404).send(errorBody(404, `no route ${req.method} ${req.url}`));
}

/** What became of a request that ended in the error handler: refused (4xx) or failed (5xx). */
export type ErrorOutcome = 'invalid' | 'error';

/**
 * The webhook port's error handler: a 4xx says what was wrong with the request (a failed schema check
 * is a 400), anything else is a 500 whose details go to the log only. `counted` hears of each one.
 */
export function webhookErrorHandler(logger: Logger, counted?: (outcome: ErrorOutcome) => void) {
  return (err: FastifyError, req: FastifyRequest, reply: FastifyReply): FastifyReply => {
    let code = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (err.validation) code = 400;
    if (code >= 500) {
      logger.error({ err: { message: err.message, code: err.code, stack: err.stack }, url: req.url }, 'request failed');
      counted?.('error');
      return reply.code(code).send(errorBody(code, 'internal error while evaluating the request'));
    }
    counted?.('invalid');
    logger.debug({ status: code, err: err.message, url: req.url }, 'rejected request');
    const message = err.validation ? `invalid AdmissionReview: ${err.message}` : err.message;
    return reply.code(code).send(errorBody(code, message));
  };
}
