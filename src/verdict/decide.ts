// From one request to a Decision: which rules run, what action each finding gets under the config, and
// whether the request is allowed. Shared by the webhook and `meshguard check`, so both answer alike.

import type { Config } from '../config/config.ts';
import { assertBudgetNotExceeded, BudgetExceeded, BudgetRun, deadlinePassed, performanceClock, rethrowIfBudget, type BudgetOptions } from '../core/budget.ts';
import { mutationOf, subjectOf, type Change } from '../core/change.ts';
import type { Decide, Decision } from '../core/decision.ts';
import { actionUnderMode, VERDICT_CODES, type ActedFinding, type Action, type Finding } from '../core/finding.ts';
import type { ClusterState } from '../core/objects.ts';
import type { Rule, RuleContext } from '../core/rule.ts';
import { changedLabelKeys, namespaceLabelMatters } from '../policy/namespace-labels.ts';
import { overlay, overlayDelta } from '../state/overlay.ts';
import { forgetCachedResults, markEphemeral, openRequestScope } from '../state/request-scope.ts';
import { errorOutcome } from './error-policy.ts';
import { renderFinding, type RenderedText } from './render.ts';

export const SKIP_ANNOTATION = 'meshguard.io/skip';
export const SKIP_REASON_ANNOTATION = 'meshguard.io/skip-reason';

/**
 * Rule ids an object opts out of: `meshguard.io/skip: "a, b"`, honoured only together with a non-empty
 * `meshguard.io/skip-reason` so every opt-out is explained where reviewers see it.
 */
export function skippedRules(change: Change): ReadonlySet<string> {
  // DELETE carries only the old object: its annotations are the ones that were reviewed.
  const ann = subjectOf(change)?.metadata.annotations;
  const list = ann?.[SKIP_ANNOTATION];
  const reason = ann?.[SKIP_REASON_ANNOTATION];
  if (!list || !reason || reason.trim() === '') return new Set();
  return new Set(
    list
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== ''),
  );
}

/**
 * What is wrong with an object's opt-out annotations: a `meshguard.io/skip` without its reason is
 * ignored, and rule ids meshguard does not have are usually typos. Said back to whoever applies it.
 */
export function skipNotices(change: Change, knownRules: ReadonlySet<string>): string[] {
  const ann = subjectOf(change)?.metadata.annotations;
  const list = ann?.[SKIP_ANNOTATION];
  if (list === undefined || list.trim() === '') return [];
  const out: string[] = [];
  const reason = ann?.[SKIP_REASON_ANNOTATION];
  if (!reason || reason.trim() === '') {
    out.push(`${SKIP_ANNOTATION} is ignored: it takes effect only with a non-empty ${SKIP_REASON_ANNOTATION}`);
  }
  const unknown = list
    .split(',')
    .map((s) => s.trim())
    .filter((id) => id !== '' && !knownRules.has(id));
  if (unknown.length > 0) {
    out.push(`${SKIP_ANNOTATION} names ${unknown.length === 1 ? 'an unknown rule' : 'unknown rules'}: ${unknown.join(', ')} (meshguard rules lists them)`);
  }
  return out;
}

/** The namespace an exemption is judged by: the request's, or a Namespace object's own name. */
function namespaceOf(change: Change): string {
  return change.kind === 'Namespace' ? change.name : change.namespace;
}

function triggered(rule: Rule, change: Change): boolean {
  const kind = change.kind;
  if (kind === undefined) return false;
  return rule.triggers.some((t) => t.kinds.includes(kind) && t.operations.includes(change.operation));
}

function errorMessage(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m.replace(/\s+/g, ' ').trim() || 'unknown error';
}

/** The action a finding gets: the rule's configured action, capped for pre-existing problems and audit mode. */
function actionFor(configured: Exclude<Action, 'off'>, finding: Finding, config: Config): Exclude<Action, 'off'> {
  let action = configured;
  // A problem this request did not create must not block it.
  if (finding.preexisting && action === 'deny') action = 'warn';
  return actionUnderMode(action, config.mode);
}

/** Is `obj` the object `state` (or the state an overlay is built on) stores under the change's name? */
function storedIn(state: ClusterState, change: Change, obj: object | undefined): boolean {
  if (obj === undefined || change.kind === undefined) return false;
  const ns = change.namespace === '' ? undefined : change.namespace;
  if (state.get(change.kind, ns, change.name) === obj) return true;
  const base = overlayDelta(state)?.base;
  return base !== undefined && base.get(change.kind, ns, change.name) === obj;
}

export interface DecideOptions {
  /** The budget's clock and check stride (tests use a fake clock). */
  readonly budget?: BudgetOptions;
  /**
   * decide.sliced(): a slice ends after the rule that takes it past this many milliseconds (on the
   * budget's clock); then the event loop is handed back before the next rule. 0: after every rule.
   */
  readonly sliceMs?: number;
  /** decide.sliced(): how the event loop is handed back between slices (default: setImmediate; tests step it). */
  readonly handBack?: () => Promise<void>;
}

/** Default DecideOptions.sliceMs: reviews of a few pods never hand back, a cluster-wide one between its costly rules. */
const DEFAULT_SLICE_MS = 5;

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * A rule's prepare steps (core/rule.ts), each a step of the review. A prepare that throws (a bug, odd
 * input) stops preparing and leaves the question to evaluate, which meets it the way it always does;
 * but a spent budget ends the rule.
 */
function* prepared(steps: Generator<void, void, void>): Generator<void, void, void> {
  for (;;) {
    let r: IteratorResult<void, void>;
    try {
      r = steps.next();
    } catch (e) {
      rethrowIfBudget(e);
      return;
    }
    if (r.done === true) return;
    yield;
  }
}

/** Runs a generator of steps to its end, all at once. */
function drain<T>(steps: Generator<void, T, void>): T {
  let r = steps.next();
  while (r.done !== true) r = steps.next();
  return r.value;
}

export function createDecide(rules: readonly Rule[], config: Config, opts: DecideOptions = {}): Decide {
  const exempt = new Set(config.exemptions.namespaces);
  const ctx: RuleContext = { settings: config.settings };
  const clientSelectors = (config.settings.apiserverClients ?? []).map((c) => c.selector);
  const active = rules
    .map((rule) => ({ rule, action: config.rules[rule.id] ?? 'off' }))
    .filter((r): r is { rule: Rule; action: Exclude<Action, 'off'> } => r.action !== 'off');

  const knownRules = new Set(rules.map((r) => r.id));

  const clock = opts.budget?.clock ?? performanceClock;
  const sliceMs = opts.sliceMs ?? DEFAULT_SLICE_MS;
  const handBack = opts.handBack ?? nextTurn;

  const withNotices = (change: Change, decision: Decision): Decision => {
    // On DELETE the annotations belong to the object going away: nothing left to correct.
    const notices = change.operation === 'DELETE' ? [] : skipNotices(change, knownRules);
    return notices.length > 0 ? { ...decision, notices } : decision;
  };
  const decide = (change: Change, before: ClusterState): Decision => {
    const plan = planRules(change, before);
    return withNotices(change, Array.isArray(plan) ? evaluateWhole(change, before, plan) : plan);
  };

  // Sliced reviews run one at a time: a scope and a budget are current only while their slice runs, and
  // a second review interleaved with the first would only make both later.
  let queue: Promise<unknown> = Promise.resolve();
  let queued = 0;
  const sliced = async (change: Change, before: ClusterState): Promise<Decision> => {
    const plan = planRules(change, before);
    if (!Array.isArray(plan)) return withNotices(change, plan);
    // The deadline counts from arrival: the API server's timeout counts the wait for a turn too.
    const budget = new BudgetRun(config.evaluation.budgetMs, opts.budget);
    const waited = queued > 0;
    queued++;
    const turn = queue.then(async () => {
      // Behind another review: its last slice ended this macrotask, so this one starts in the next.
      if (waited) await handBack();
      return evaluateSliced(change, before, plan, budget);
    });
    queue = turn.then(
      () => queued--,
      () => queued--,
    );
    return withNotices(change, await turn);
  };
  return Object.assign(decide, { settings: config.settings, sliced });

  /** The rules a request runs, or the decision when it runs none (exempt, not modeled, nothing read). */
  function planRules(change: Change, before: ClusterState): Decision | typeof active {
    const ns = namespaceOf(change);
    if (ns !== '' && exempt.has(ns)) {
      return { allowed: true, findings: [], skipped: [], exemptReason: `namespace ${ns} is exempt by the meshguard config` };
    }
    if (change.kind === undefined) {
      return { allowed: true, findings: [], skipped: [], exemptReason: `meshguard does not check ${change.gvk.kind}` };
    }
    const toRun = active.filter((r) => triggered(r.rule, change));
    if (toRun.length === 0) return { allowed: true, findings: [], skipped: [] };
    if (change.kind === 'Namespace' && change.operation === 'UPDATE') {
      // Most Namespace updates change labels no policy reads (owners, cost centres, GitOps tracking):
      // then no pod's policy, peers or mesh mode can change, and there is nothing to evaluate.
      const keys = changedLabelKeys(change.oldObject?.metadata.labels, change.object?.metadata.labels);
      if (!keys.some((k) => namespaceLabelMatters(before, k, clientSelectors))) {
        return { allowed: true, findings: [], skipped: [], exemptReason: 'no changed Namespace label is read by a policy selector or a mesh setting' };
      }
    }

    return toRun;
  }

  /** The rules evaluated at once, in a request scope and under the budget. */
  function evaluateWhole(change: Change, before: ClusterState, toRun: typeof active): Decision {
    const scope = openRequestScope();
    try {
      const budget = new BudgetRun(config.evaluation.budgetMs, opts.budget);
      return scope.run(() => budget.run(() => drain(evaluate(change, before, toRun, false))));
    } finally {
      scope.close();
    }
  }

  /**
   * The rules evaluated in slices: a slice runs rules until one ends at least sliceMs after the slice
   * began, then the event loop is handed back. One request scope and one budget (its deadline fixed at
   * the start) are entered by every slice. A live state may take watch events between two slices: each
   * rule still judges one state, before and after alike (the overlay follows its base: state/overlay.ts),
   * and the verdict cache keeps only a decision whose state did not move (verdict/cache.ts).
   */
  async function evaluateSliced(change: Change, before: ClusterState, toRun: typeof active, budget: BudgetRun): Promise<Decision> {
    const scope = openRequestScope();
    const steps = evaluate(change, before, toRun, true);
    let done = false;
    try {
      const slice = (): IteratorResult<void, Decision> => {
        const start = clock.now();
        let r = steps.next();
        while (r.done !== true && clock.now() - start < sliceMs) r = steps.next();
        return r;
      };
      for (;;) {
        const r = scope.run(() => budget.run(slice));
        if (r.done === true) {
          done = true;
          return r.value;
        }
        await handBack();
      }
    } finally {
      if (!done) steps.return(undefined as unknown as Decision);
      scope.close();
    }
  }

  /**
   * The evaluation as steps: one rule per step (the first step also marks the request's objects). Run
   * inside the request's scope and budget, whole (evaluateWhole) or a few steps at a time (evaluateSliced).
   */
  function* evaluate(change: Change, before: ClusterState, toRun: typeof active, sliced: boolean): Generator<void, Decision, void> {
    // Caches keyed by this request's objects keep those entries only for the request (see request-scope.ts).
    markEphemeral(change);
    // Not an object the state itself holds (the warm-up's, the audit's and `check`'s requests pass
    // stored objects): its models would die with the request while the state's kept tables
    // (keptPerRevision, which a budget cut keeps) still hold them, and the next review, comparing
    // models by identity, would take them for another policy's.
    if (!storedIn(before, change, change.object)) markEphemeral(change.object);
    if (!storedIn(before, change, change.oldObject)) markEphemeral(change.oldObject);
    const skip = skippedRules(change);
    const skipped: string[] = [];
    const findings: ActedFinding[] = [];
    const failures: { rule: string; error: string }[] = [];
    let budget: { exceeded: BudgetExceeded; notRun: string[] } | undefined;
    let after: ClusterState | undefined;
    let first = true;
    for (const { rule, action } of toRun) {
      if (skip.has(rule.id)) {
        skipped.push(rule.id);
        continue;
      }
      if (budget) {
        budget.notRun.push(rule.id);
        continue;
      }
      // Between two rules: where a sliced evaluation may hand the event loop back.
      if (!first) yield;
      first = false;
      // A deadline that passed before the rule starts (other work ran between two slices, or the review
      // waited for its turn): the rules left are not run. Nothing was left half-built, so the caches stay.
      const late = deadlinePassed();
      if (late !== undefined) {
        budget = { exceeded: late, notRun: [rule.id] };
        continue;
      }
      let found: Finding[];
      let texts: RenderedText[];
      try {
        // One overlay for the whole review: it follows its base if watch events arrive between two
        // slices (state/overlay.ts), as every cache keyed by it or by the change does by revision.
        after ??= overlay(before, mutationOf(change));
        if (sliced && rule.prepare !== undefined) {
          // The rule's costly questions first, a step at a time; then evaluate starts a slice of its own.
          yield* prepared(rule.prepare(change, before, after, ctx));
          yield;
        }
        found = rule.evaluate(change, before, after, ctx);
        assertBudgetNotExceeded();
        if (!Array.isArray(found)) throw new Error('evaluate did not return an array');
        // Rendered here, inside the rule's guard: a code missing from its table fails like a throw.
        texts = found.map((f) => renderFinding(f, rule.messages));
      } catch (e) {
        if (e instanceof BudgetExceeded) {
          budget = { exceeded: e, notRun: [rule.id] };
          // The rule stopped part way and may have left a cache entry half-built.
          forgetCachedResults();
        } else {
          // One rule's bug must not hide the other rules' findings: they still run.
          failures.push({ rule: rule.id, error: errorMessage(e) });
        }
        continue;
      }
      for (let i = 0; i < found.length; i++) {
        const f = found[i]!;
        // The finding belongs to the rule that produced it, whatever id it carries.
        const acted = actionFor(action, f, config);
        const wouldDeny = config.mode === 'audit' && acted === 'audit' && action === 'deny' && !f.preexisting;
        findings.push({ ...f, rule: rule.id, ...texts[i]!, action: acted, ...(wouldDeny ? { wouldDeny } : {}) });
      }
    }
    if (failures.length === 0 && !budget) return { allowed: !findings.some((f) => f.action === 'deny'), findings, skipped };

    // The error policy (verdict/error-policy.ts) answers for the rules that gave no answer.
    const outcome = errorOutcome(config, change.kind);
    const failAction: ActedFinding['action'] = outcome === 'ignore' ? 'warn' : actionUnderMode('deny' as const, config.mode);
    const why = outcome === 'ignore' ? 'admitted by the error policy (onError: ignore)' : 'refused by the error policy (onError: fail)';
    const failed = (rule: string, code: string, params: Record<string, string | number | readonly string[]>, message: string): ActedFinding => ({
      rule,
      code,
      params,
      action: failAction,
      message: `${message}; ${why}`,
      failed: true,
      ...(failAction === 'audit' ? { wouldDeny: true } : {}),
    });
    for (const f of failures) findings.push(failed(f.rule, VERDICT_CODES.ruleFailed, { error: f.error }, `${f.rule} failed: ${f.error}`));
    if (budget) {
      const [running, ...rest] = budget.notRun;
      const { budgetMs } = budget.exceeded;
      findings.push(
        failed(
          running!,
          VERDICT_CODES.budgetExceeded,
          { budgetMs, notRun: rest },
          `evaluation stopped: the ${budgetMs} ms budget ran out in ${running}${rest.length > 0 ? ` (not run: ${rest.join(', ')})` : ''}`,
        ),
      );
    }
    return {
      allowed: !findings.some((f) => f.action === 'deny'),
      findings,
      skipped,
      incomplete: {
        reason: budget ? 'budget' : 'rule-error',
        rules: [...failures.map((f) => f.rule), ...(budget?.notRun ?? [])],
        outcome,
      },
    };
  }
}
