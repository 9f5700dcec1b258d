// What a rule reports (Finding) and what it becomes once the config has given it an action
// (ActedFinding). Shared by the rules, the verdict layer and everything that renders findings.

import type { Params } from './message.ts';

/** B = breaks traffic (default deny), I = silently ineffective (default warn), R = risky (default warn). */
export type Severity = 'B' | 'I' | 'R';
export type Action = 'deny' | 'warn' | 'audit' | 'off';

export interface Finding {
  readonly rule: string;
  /**
   * The stable code of this kind of finding, `<rule>/<kind>` (src/core/message.ts), or one of the
   * verdict layer's own (VERDICT_CODES). A rule's finding carries no prose: src/verdict/render.ts writes
   * `message` and `fix` from the rule's message table and `params`.
   */
  readonly code: string;
  /** The data the message is rendered from (names, counts, ports, lists). */
  readonly params: Params;
  /** "ns/pod" names of the first few pods affected (at most 5). */
  readonly victims?: readonly string[];
  /** How many pods are affected in all. */
  readonly victimCount?: number;
  /**
   * The problem exists before this request too and the request does not make it worse: never denied,
   * reported as a warning at most.
   */
  readonly preexisting?: boolean;
}

export function defaultAction(severity: Severity): Action {
  return severity === 'B' ? 'deny' : 'warn';
}

/** What the config's `mode` makes of an action: audit mode turns every deny into audit (nothing is refused). */
export function actionUnderMode<A extends Action>(action: A, mode: 'enforce' | 'audit'): A | 'audit' {
  return mode === 'audit' && action === 'deny' ? 'audit' : action;
}

/** A finding with the action the config gives it for this request. */
export interface ActedFinding extends Finding {
  /** One short line: what breaks, for whom. No newlines. Rendered from `code` + `params`. */
  readonly message: string;
  /** The smallest change that fixes it, one line (a longer YAML fix lives in the rule's docs). */
  readonly fix?: string;
  readonly action: Exclude<Action, 'off'>;
  /** `mode: audit` turned this finding's deny into audit: the request would be refused in enforce mode. */
  readonly wouldDeny?: boolean;
  /** The rule threw: this finding is the warning that says so, not a result of the rule. */
  readonly failed?: boolean;
}

/**
 * Codes of the findings the verdict layer writes itself when a rule gives no answer (the error policy,
 * ADR 0004): the finding's `rule` is the rule that failed. Part of the contract like the rules' codes.
 */
export const VERDICT_CODES = {
  /** The rule threw (or produced a code its message table lacks). */
  ruleFailed: 'meshguard/rule-failed',
  /** The evaluation budget ran out while the rule ran (the rules not run are named). */
  budgetExceeded: 'meshguard/budget-exceeded',
} as const;
