// The rule contract lives in src/core (core/rule.ts, core/finding.ts, core/decision.ts). This file only
// re-exports it under its old path for rule files not yet rewritten to import core directly; it goes
// once they are (docs/adr/0006-one-way-layers.md).

export type { Action, ActedFinding, Finding, Severity } from '../core/finding.ts';
export { actionUnderMode, defaultAction } from '../core/finding.ts';
export type { Decide, Decision } from '../core/decision.ts';
export type { Rule, RuleContext, RuleInfo, RuleSettings, Trigger } from '../core/rule.ts';
