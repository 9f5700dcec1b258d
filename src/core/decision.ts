// What meshguard answers for one request, and the function type that computes it (src/verdict builds
// it from the rules and the config; admission, server and cli consume it).

import type { Change } from './change.ts';
import type { ActedFinding } from './finding.ts';
import type { ClusterState } from './objects.ts';
import type { RuleSettings } from './rule.ts';

/** What meshguard answers for one request (built by src/verdict from the findings and the config). */
export interface Decision {
  readonly allowed: boolean;
  readonly findings: readonly ActedFinding[];
  /** Rule ids skipped for this object by a `meshguard.io/skip` annotation with a reason. */
  readonly skipped: readonly string[];
  /** Set when the whole request was exempt (exempt namespace, kind meshguard does not read, ...). */
  readonly exemptReason?: string;
  /** Remarks about the request itself, not findings of a rule (an opt-out annotation that is ignored, ...). */
  readonly notices?: readonly string[];
  /** Answered from the verdict cache: the same request was decided on the same state revision before. */
  readonly cached?: boolean;
  /**
   * Some rules could not give an answer (one threw, or the evaluation budget ran out): the request was
   * answered by the error policy, `outcome` (fail = denied, ignore = admitted with a warning).
   */
  readonly incomplete?: {
    readonly reason: 'rule-error' | 'budget';
    /** Rules that threw, or that were running or not yet run when the budget ran out. */
    readonly rules: readonly string[];
    readonly outcome: 'fail' | 'ignore';
  };
}

/**
 * The whole evaluation of one request against a state (src/verdict builds it from rules + config), with
 * the rule settings it judges under (the warm-up fills what a judgement under them keeps).
 */
export type Decide = ((change: Change, before: ClusterState) => Decision) & {
  readonly settings?: RuleSettings;
  /**
   * The same decision, evaluated in slices that hand the event loop back between rules (the webhook's
   * path: a review that judges every pod must not hold health probes and other requests for its whole
   * length). Reviews evaluated this way run one at a time, in the order they came.
   */
  readonly sliced?: (change: Change, before: ClusterState) => Promise<Decision>;
};
