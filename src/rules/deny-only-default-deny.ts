// deny-only-default-deny: a CNP/CCNP rule with only ingressDeny/egressDeny in a direction (no allow
// section there) still puts its endpoints into default deny in that direction, unless
// `enableDefaultDeny.<dir>: false` is set and honoured. Users write "deny port X" and get "deny
// everything" (cilium#14992).

import type { Change } from '../core/change.ts';
import { formatPolicyRef, podsSelectedBy, policiesSelecting, policyModel, policySettings, subjectPods, type Direction, type PolicyModel } from '../policy/index.ts';
import type { ClusterState, Pod, PolicyObject } from '../state/types.ts';
import type { Finding, Rule, RuleContext } from './types.ts';
import { changeRef } from '../impact/index.ts';
import { describeVictims, victimsOf } from './render-helpers.ts';

const ID = 'deny-only-default-deny';
const DIRECTIONS: readonly Direction[] = ['ingress', 'egress'];

type Raw = Readonly<Record<string, unknown>>;

function nonEmptyList(v: unknown): boolean {
  return Array.isArray(v) && v.length > 0;
}

/** The raw rules of a Cilium policy object in model order (spec first, then specs[]). */
function rawRules(obj: PolicyObject): Raw[] {
  const out: Raw[] = [];
  if (obj.spec && typeof obj.spec === 'object') out.push(obj.spec);
  for (const s of obj.specs ?? []) if (s && typeof s === 'object') out.push(s);
  return out;
}

/** Whether a rule has a deny section and no allow section in the direction. */
function denyOnlyRaw(raw: Raw | undefined, d: Direction): boolean {
  if (!raw) return false;
  return nonEmptyList(raw[`${d}Deny`]) && !nonEmptyList(raw[d]);
}

function modelRaw(state: ClusterState, m: PolicyModel): Raw | undefined {
  if (m.ref.kind === 'NetworkPolicy') return undefined;
  const obj = state.get(m.ref.kind, m.ref.namespace || undefined, m.ref.name);
  return obj ? rawRules(obj)[m.specIndex] : undefined;
}

/**
 * The models that put the pod's direction into default deny, and whether every one of them is
 * deny-only while no other selecting policy allows anything in that direction (then nothing at all is
 * allowed). The allows of a policy that does not enforce the direction itself (`enableDefaultDeny:
 * false`) still apply once another policy enforces it, so they count as allows.
 */
function enforcingModels(state: ClusterState, pod: Pod, d: Direction): { models: readonly PolicyModel[]; allDenyOnly: boolean } {
  const settings = policySettings(state);
  const selecting = policiesSelecting(state, pod);
  const enforces = (m: PolicyModel): boolean => (settings.nonDefaultDenyPolicies ? m.enforces[d] : m.hasSection[d]);
  const models = selecting.filter(enforces);
  const allDenyOnly =
    models.length > 0 &&
    models.every((m) => denyOnlyRaw(modelRaw(state, m), d)) &&
    !selecting.some((m) => !enforces(m) && m.elements.some((e) => e.direction === d && !e.deny));
  return { models, allDenyOnly };
}

function sameRef(a: PolicyModel, obj: PolicyObject): boolean {
  const ns = obj.kind === 'CiliumClusterwideNetworkPolicy' ? '' : (obj.metadata.namespace ?? '');
  return a.ref.kind === obj.kind && a.ref.name === obj.metadata.name && a.ref.namespace === ns;
}

function evaluateDenyOnly(change: Change, before: ClusterState, after: ClusterState, _ctx: RuleContext): Finding[] {
  const obj = change.object as PolicyObject | undefined;
  if (!obj || (change.kind !== 'CiliumNetworkPolicy' && change.kind !== 'CiliumClusterwideNetworkPolicy')) return [];
  const settings = policySettings(after);
  // `always` enforces every endpoint anyway and `never` none: deny-only rules change nothing then.
  if (settings.enablePolicy !== 'default') return [];
  const raws = rawRules(obj);
  const models = policyModel(obj);
  const dirs = DIRECTIONS.filter((d) => models.some((m) => !m.selectsNodes && denyOnlyRaw(raws[m.specIndex], d)));
  const findings: Finding[] = [];
  // An update that takes the last enforcing allow away from pods (removes the section, narrows the
  // selector, sets enableDefaultDeny false) leaves another policy's deny-only rule holding them in
  // default deny: as broken as creating that rule, though this object has no deny-only rule itself.
  const old = change.operation === 'UPDATE' ? (change.oldObject as PolicyObject | undefined) : undefined;
  for (const d of old ? DIRECTIONS.filter((x) => !dirs.includes(x)) : []) {
    const f = leftToDenyOnly(change, before, after, old!, d, settings.nonDefaultDenyPolicies);
    if (f) findings.push(f);
  }
  if (dirs.length === 0) return findings;
  const { pods, synthetic } = subjectPods(after, obj);
  for (const d of dirs) {
    const lost: Pod[] = [];
    const still: Pod[] = [];
    for (const pod of pods) {
      const now = enforcingModels(after, pod, d);
      // Only when the direction is enforced solely by deny-only rules, one of them from this object.
      if (!now.allDenyOnly || !now.models.some((m) => sameRef(m, obj))) continue;
      const then = enforcingModels(before, pod, d);
      if (then.allDenyOnly) still.push(pod);
      else lost.push(pod);
    }
    const victims = lost.length > 0 ? lost : still;
    if (victims.length === 0) continue;
    const dirDeny = `${d}Deny`;
    const fix = settings.nonDefaultDenyPolicies
      ? `add enableDefaultDeny: {${d}: false} to the rule of ${changeRef(change)} (Cilium >= 1.16) so only the ${dirDeny} entries drop traffic, or add the ${d} allows these pods need`
      : `enable-non-default-deny-policies is off, so enableDefaultDeny is ignored: add the ${d} allows these pods need (e.g. ${d}: [{${d === 'egress' ? 'toEntities' : 'fromEntities'}: [all]}])`;
    const who = `${victims.length} pod${victims.length === 1 ? '' : 's'}${synthetic ? ' (pods this policy would select)' : ''}`;
    findings.push({
      rule: ID,
      message:
        lost.length > 0
          ? `${changeRef(change)} has only ${dirDeny} and puts ${who} into ${d} default deny: all ${d} traffic no other policy allows is dropped, not just the denied traffic: ${describeVictims(victims)}`
          : `${who} selected by ${changeRef(change)} are already in ${d} default deny from deny-only rules: ${describeVictims(victims)}`,
      fix,
      ...victimsOf(victims),
      ...(lost.length > 0 ? {} : { preexisting: true }),
    });
  }
  return findings;
}

/** Pods the old object selected that this update leaves enforced in direction `d` by deny-only rules alone. */
function leftToDenyOnly(change: Change, before: ClusterState, after: ClusterState, old: PolicyObject, d: Direction, nonDefaultDeny: boolean): Finding | undefined {
  const lost: Pod[] = [];
  const by = new Map<string, PolicyModel>();
  for (const pod of podsSelectedBy(before, old)) {
    const here = after.get('Pod', pod.metadata.namespace, pod.metadata.name);
    if (!here) continue;
    const now = enforcingModels(after, here, d);
    if (!now.allDenyOnly || enforcingModels(before, pod, d).allDenyOnly) continue;
    lost.push(here);
    for (const m of now.models) by.set(formatPolicyRef(m.ref), m);
  }
  if (lost.length === 0) return undefined;
  const denyRefs = [...by.keys()];
  const shown = denyRefs.length > 2 ? `${denyRefs.slice(0, 2).join(', ')} and ${denyRefs.length - 2} more` : denyRefs.join(', ');
  const who = `${lost.length} pod${lost.length === 1 ? '' : 's'}`;
  const fix = nonDefaultDeny
    ? `keep a ${d} allow for these pods in ${changeRef(change)}, or add enableDefaultDeny: {${d}: false} to ${shown} (Cilium >= 1.16) so only its ${d}Deny entries drop traffic`
    : `keep a ${d} allow for these pods in ${changeRef(change)} (enable-non-default-deny-policies is off, so enableDefaultDeny on ${shown} is ignored)`;
  return {
    rule: ID,
    message:
      `${changeRef(change)} no longer enforces ${d} for ${who}, which stay in ${d} default deny through deny-only rules (${shown}): ` +
      `all ${d} traffic no other policy allows is dropped, not just the denied traffic: ${describeVictims(lost)}`,
    fix,
    ...victimsOf(lost),
  };
}

export const rule: Rule = {
  id: ID,
  severity: 'B',
  summary: 'A CNP/CCNP with only ingressDeny/egressDeny (no allow, default deny not disabled) drops all traffic in that direction',
  docs: 'docs/rules/deny-only-default-deny.md',
  triggers: [{ kinds: ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy'], operations: ['CREATE', 'UPDATE'] }],
  evaluate: evaluateDenyOnly,
};
