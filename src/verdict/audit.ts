// The audit: every problem that exists in a cluster state now, each attributed to an object that
// causes it. The rules judge changes, so the audit asks them about one: for each object a rule can be
// triggered by on CREATE, the findings its creation would get on the state without it.
// - A problem the object alone causes is a plain finding of its creation.
// - A problem the object takes part in, that other objects cause too (two default-deny policies on the
//   same pods, neither allowing DNS), is a pre-existing finding of its creation: the rule still names
//   this object as one that has it. The audit reports it on each such object, marked `shared`, at the
//   rule's configured action (in admission a pre-existing problem never denies; here nothing is being
//   admitted, and the problem is real).
// - An object that does not take part gets no finding: the rules report a pre-existing problem only
//   about what the object itself does (an ingress-only policy on pods whose DNS egress is broken by
//   another policy is not reported).
// A problem that takes two different objects (cilium-config and an istiod Deployment) is reported on
// each of them. docs/cli.md#meshguard-audit says so for the user.

import { buildChange, type Change } from '../core/change.ts';
import type { Config } from '../config/config.ts';
import type { Decide } from '../core/decision.ts';
import { actionUnderMode, type ActedFinding } from '../core/finding.ts';
import { KINDS, type KindName } from '../core/kinds.ts';
import type { ClusterState, KubeObject } from '../core/objects.ts';
import type { Rule } from '../core/rule.ts';
import { overlay } from '../state/overlay.ts';

export interface AuditResult {
  readonly kind: KindName;
  readonly apiVersion: string;
  readonly namespace: string;
  readonly name: string;
  /** Findings this object causes or takes part in (`shared`). */
  readonly findings: readonly AuditFinding[];
}

export interface AuditFinding extends ActedFinding {
  /** Other objects cause the same problem too: it stays until all of them are fixed. */
  readonly shared?: boolean;
}

/** The action a problem gets in an audit: the rule's configured one (audit mode turns deny into audit). */
function auditAction(config: Pick<Config, 'mode' | 'rules'>, rule: string, fallback: ActedFinding['action']): ActedFinding['action'] {
  const configured = config.rules[rule];
  if (configured === undefined || configured === 'off') return fallback;
  return actionUnderMode(configured, config.mode);
}

/** Kinds whose objects are audited: those some rule judges on CREATE. */
export function auditedKinds(rules: readonly Rule[]): KindName[] {
  const kinds = new Set<KindName>();
  for (const r of rules) for (const t of r.triggers) if (t.operations.includes('CREATE')) for (const k of t.kinds) kinds.add(k);
  return [...kinds].sort();
}

function apiVersionOf(kind: KindName): string {
  const k = KINDS[kind];
  return k.group ? `${k.group}/${k.version}` : k.version;
}

/** The admission request that would create `obj` on a state without it. */
export function creationOf(kind: KindName, obj: KubeObject, index = 0): Change {
  const k = KINDS[kind];
  return buildChange({
    uid: `meshguard-audit-${index + 1}`,
    operation: 'CREATE',
    gvk: { group: k.group, version: k.version, kind },
    namespace: k.namespaced ? (obj.metadata.namespace ?? '') : '',
    name: obj.metadata.name,
    object: { stored: obj },
    dryRun: true,
    userInfo: { username: 'meshguard-audit' },
  });
}

export interface AuditOptions {
  /** Called between objects; returning true stops the audit early (results so far are returned). */
  readonly shouldStop?: () => boolean;
}

/** One object's audit: its creation judged on the state without it. */
export function auditObject(state: ClusterState, decide: Decide, config: Pick<Config, 'mode' | 'rules'>, kind: KindName, obj: KubeObject, index = 0): AuditResult {
  const create = creationOf(kind, obj, index);
  const without = overlay(state, { kind, namespace: create.namespace, name: create.name, delete: true });
  const decision = decide(create, without);
  return {
    kind,
    apiVersion: apiVersionOf(kind),
    namespace: create.namespace,
    name: create.name,
    findings: decision.findings.map((f): AuditFinding => {
      if (!f.preexisting) return f;
      const { preexisting: _p, ...finding } = f;
      return { ...finding, action: auditAction(config, f.rule, f.action), shared: true };
    }),
  };
}

/** The objects the audit visits, in a stable order (kind, namespace, name). */
export function auditSubjects(state: ClusterState, rules: readonly Rule[]): { kind: KindName; obj: KubeObject }[] {
  const out: { kind: KindName; obj: KubeObject }[] = [];
  for (const kind of auditedKinds(rules)) {
    const objs = [...state.list(kind)].sort((a, b) => {
      const an = `${a.metadata.namespace ?? ''}/${a.metadata.name}`;
      const bn = `${b.metadata.namespace ?? ''}/${b.metadata.name}`;
      return an < bn ? -1 : an > bn ? 1 : 0;
    });
    for (const obj of objs) out.push({ kind, obj });
  }
  return out;
}

/** Every object's audit result, objects without findings included (a report lists passes too). */
export function auditState(state: ClusterState, decide: Decide, rules: readonly Rule[], config: Pick<Config, 'mode' | 'rules'>, opts: AuditOptions = {}): AuditResult[] {
  const results: AuditResult[] = [];
  auditSubjects(state, rules).forEach(({ kind, obj }, i) => {
    if (opts.shouldStop?.()) return;
    results.push(auditObject(state, decide, config, kind, obj, i));
  });
  return results;
}
