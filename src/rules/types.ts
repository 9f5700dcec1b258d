// The contract between the rules and everything else. A rule is a pure function of the change and two
// views of the cluster: `before` (the state as it is) and `after` (the overlay: the state as it would be
// if the request were admitted). Rules do no I/O. A rule that cannot judge throws (the verdict layer's
// error policy answers, ADR 0004); odd input that leaves nothing to judge returns no finding.

import type { Change, Operation } from '../admission/change.ts';
import type { KindName } from '../state/kinds.ts';
import type { ClusterState, LabelSelector } from '../state/types.ts';
import type { MessageTable, Params } from '../core/message.ts';

/** B = breaks traffic (default deny), I = silently ineffective (default warn), R = risky (default warn). */
export type Severity = 'B' | 'I' | 'R';
export type Action = 'deny' | 'warn' | 'audit' | 'off';

export interface Finding {
  readonly rule: string;
  /**
   * The stable code of this kind of finding, `<rule>/<kind>` (src/core/message.ts). A finding with a
   * code carries `params` and no prose: src/verdict/render.ts writes `message` and `fix` from the rule's
   * message table. Rules not converted yet set `message` (and `fix`) themselves and no code.
   */
  readonly code?: string;
  /** The data the message is rendered from (names, counts, ports, lists). Set with `code`. */
  readonly params?: Params;
  /** One short line: what breaks, for whom. No newlines. Rendered from `code` + `params` when there is a code. */
  readonly message?: string;
  /** The smallest change that fixes it, one line (a longer YAML fix lives in the rule's docs). */
  readonly fix?: string;
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

/** When a rule can fire: kinds and operations of the request. */
export interface Trigger {
  readonly kinds: readonly KindName[];
  readonly operations: readonly Operation[];
  /** For the rule's docs page only (the Triggers table, scripts/rule-docs.ts): which such requests it judges. */
  readonly when?: string;
}

/** Cluster facts that cannot be read from the API and that the config file may state. */
export interface RuleSettings {
  /**
   * Pods that talk to the kube-apiserver besides those whose service account is an RBAC subject
   * (apiserver-egress-missing). Namespace + selector; namespace undefined = any namespace.
   */
  readonly apiserverClients: readonly { readonly namespace?: string; readonly selector: LabelSelector }[];
  /**
   * Where the kube-apiserver runs (istiod-unreachable-overlay): `auto` compares the default/kubernetes
   * EndpointSlice with the Nodes' InternalIPs; `outside-nodes` for managed control planes (EKS, GKE, AKS);
   * `on-nodes` when it runs on cluster nodes.
   */
  readonly controlPlane: 'auto' | 'outside-nodes' | 'on-nodes';
}

export interface RuleContext {
  readonly settings: RuleSettings;
}

export interface Rule {
  /** Stable id: part of the contract (config keys, messages, annotations). */
  readonly id: string;
  readonly severity: Severity;
  /** One line for `meshguard rules` and the README table. */
  readonly summary: string;
  /** Path of the rule's page relative to the repo root: docs/rules/<id>.md */
  readonly docs: string;
  readonly triggers: readonly Trigger[];
  /** The message table of a rule whose findings carry codes (src/rules/<id>/messages.ts). */
  readonly messages?: MessageTable;
  evaluate(change: Change, before: ClusterState, after: ClusterState, ctx: RuleContext): Finding[];
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
  /** Always set once acted: rendered from the code, or the rule's own text. */
  readonly message: string;
  readonly action: Exclude<Action, 'off'>;
  /** `mode: audit` turned this finding's deny into audit: the request would be refused in enforce mode. */
  readonly wouldDeny?: boolean;
  /** The rule threw: this finding is the warning that says so, not a result of the rule. */
  readonly failed?: boolean;
}

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

/** The whole evaluation of one request against a state (src/verdict builds it from rules + config). */
export type Decide = (change: import('../admission/change.ts').Change, before: ClusterState) => Decision;
