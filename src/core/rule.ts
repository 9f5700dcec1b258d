// The contract between the rules and everything else. A rule is a pure function of the change and two
// views of the cluster: `before` (the state as it is) and `after` (the overlay: the state as it would be
// if the request were admitted). Rules do no I/O. A rule that cannot judge throws (the verdict layer's
// error policy answers, ADR 0004); odd input that leaves nothing to judge returns no finding.

import type { Change, Operation } from './change.ts';
import type { Finding, Severity } from './finding.ts';
import type { KindName } from './kinds.ts';
import type { MessageTable } from './message.ts';
import type { ClusterState, LabelSelector } from './objects.ts';

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

/** What the config needs to know of a rule: its id and the severity its default action follows from. */
export interface RuleInfo {
  /** Stable id: part of the contract (config keys, messages, annotations). */
  readonly id: string;
  readonly severity: Severity;
}

export interface Rule extends RuleInfo {
  /** One line for `meshguard rules` and the README table. */
  readonly summary: string;
  /** Path of the rule's page relative to the repo root: docs/rules/<id>.md */
  readonly docs: string;
  readonly triggers: readonly Trigger[];
  /** The message table of a rule whose findings carry codes (src/rules/<id>/messages.ts). */
  readonly messages?: MessageTable;
  evaluate(change: Change, before: ClusterState, after: ClusterState, ctx: RuleContext): Finding[];
  /**
   * For a rule that judges thousands of classes: asks, a little per step, the per-class questions its
   * evaluate will ask, so that the policy layer's memos hold the answers when evaluate runs. No findings
   * and no other effect: a step cut short, a state that moved between steps, or no prepare at all leave
   * evaluate's answer as it is. The webhook runs it before evaluate, one slice of a review at a time
   * (verdict/decide.ts decide.sliced), so a cluster-wide review never holds the event loop for a whole
   * rule; the CLI and decide() skip it.
   */
  prepare?(change: Change, before: ClusterState, after: ClusterState, ctx: RuleContext): Generator<void, void, void>;
}
