// POST /validate: an AdmissionReview in (checked against its schema), the decision, one log line per
// decision, and the AdmissionReview answer out. Its errors are counted in /metrics as invalid (4xx)
// or error (5xx) answers.

import type { FastifyPluginAsync, FastifyReply, FastifyRequest, FastifySchema } from 'fastify';
import type { Logger } from 'pino';

import type { Change } from '../../core/change.ts';
import { ReviewError, toAdmissionResponse, toChange, type AdmissionResponse, type AdmissionReviewResponse, type ResponseOptions } from '../../admission/review.ts';
import { admissionReviewSchema, type AdmissionReview } from '../../admission/schema.ts';
import type { Decide, Decision } from '../../core/decision.ts';
import type { StateSource } from '../../core/objects.ts';
import { errorBody, webhookErrorHandler } from '../http-errors.ts';
import type { Metrics } from '../metrics.ts';

export interface ValidateOptions {
  readonly source: StateSource;
  readonly decide: Decide;
  readonly wording: ResponseOptions;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Hears of every review as it arrives (the background audit keeps its costly work for quiet moments). */
  readonly onReview?: () => void;
  /** Called when a review that onReview announced has its answer (or failed): a sliced one spans several turns. */
  readonly onReviewDone?: () => void;
}

/**
 * The answer's JSON schema: Fastify serializes a 200 with it (fast-json-stringify, faster than
 * JSON.stringify). Typed by AdmissionResponse's keys, so that a field added there must be added here
 * (a field the schema does not name would be left out of the answer).
 */
const responseProperties: Record<keyof AdmissionResponse, object> = {
  uid: { type: 'string' },
  allowed: { type: 'boolean' },
  status: {
    type: 'object',
    properties: { code: { type: 'integer' }, reason: { type: 'string' }, message: { type: 'string' } },
    required: ['code', 'reason', 'message'],
  },
  warnings: { type: 'array', items: { type: 'string' } },
  auditAnnotations: { type: 'object', additionalProperties: { type: 'string' } },
};
export const admissionReviewResponseSchema = {
  type: 'object',
  properties: {
    apiVersion: { type: 'string' },
    kind: { type: 'string' },
    response: { type: 'object', properties: responseProperties, required: ['uid', 'allowed'] },
  },
  required: ['apiVersion', 'kind', 'response'],
} as const;

/** Only a 200 has a response schema: error bodies (client authentication's Status among them) are sent as they are. */
const ROUTE_SCHEMA: FastifySchema = { body: admissionReviewSchema, response: { 200: admissionReviewResponseSchema } };

type UidlessResponse = Omit<AdmissionResponse, 'uid'>;

/**
 * A decision answered from the verdict cache is the same object on every hit: its response (warnings
 * wrapped, messages cut) is rendered once, and each hit only adds its own uid.
 */
const rendered = new WeakMap<Decision, UidlessResponse>();

function answer(uid: string, decision: Decision, wording: ResponseOptions): AdmissionReviewResponse {
  let response: AdmissionResponse;
  if (decision.cached) {
    let rest = rendered.get(decision);
    if (rest === undefined) {
      const { uid: _blank, ...r } = toAdmissionResponse('', decision, wording);
      rest = r;
      rendered.set(decision, rest);
    }
    response = { uid, ...rest };
  } else {
    response = toAdmissionResponse(uid, decision, wording);
  }
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response };
}

function elapsedSeconds(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

function ruleList(decision: Decision): string[] {
  return decision.findings.map((f) => `${f.rule}:${f.action}${f.preexisting ? ':preexisting' : ''}`);
}

export const validate: FastifyPluginAsync<ValidateOptions> = async (app, opts) => {
  const { source, decide, wording, metrics, logger, onReview, onReviewDone } = opts;
  // Errors on this route (a bad body, a failed schema check, a body too large) are counted.
  app.setErrorHandler(webhookErrorHandler(logger, (outcome) => metrics.observeRequest(outcome)));

  app.post('/validate', { schema: ROUTE_SCHEMA }, async (req, reply) => {
    const start = process.hrtime.bigint();
    onReview?.();
    try {
      return await handle(req, reply, start);
    } finally {
      onReviewDone?.();
    }
  });

  async function handle(req: FastifyRequest, reply: FastifyReply, start: bigint): Promise<unknown> {
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
      // In slices when the decide has them: a review that judges every pod hands the event loop back
      // between its costly rules, so probes and other requests are not held for its whole length.
      decision = decide.sliced !== undefined ? await decide.sliced(change, source.state) : decide(change, source.state);
    } catch (e) {
      const err = e as Error;
      logger.error({ uid: change.uid, kind: change.gvk.kind, namespace: change.namespace, name: change.name, err: { message: err.message, stack: err.stack } }, 'evaluation failed');
      metrics.observeRequest('error', elapsedSeconds(start));
      return reply.code(500).send(errorBody(500, 'internal error while evaluating the request'));
    }
    const review = answer(change.uid, decision, wording);
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
    return review;
  }
};
