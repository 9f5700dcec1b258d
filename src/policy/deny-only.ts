// Deny-only Cilium rules (deny-only-default-deny): a CNP/CCNP rule with only ingressDeny/egressDeny in a
// direction (no allow section there) still puts its endpoints into default deny in that direction,
// unless `enableDefaultDeny.<dir>: false` is set and honoured (cilium#14992). Which rules are deny-only,
// and whether a pod's direction is enforced by deny-only rules alone.

import type { ClusterState, Pod, PolicyObject } from '../core/objects.ts';
import { policyModel } from './model.ts';
import { policiesSelecting, policySettings } from './selection.ts';
import type { Direction, PolicyModel } from './types.ts';

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

/** The directions in which some endpoint rule (not a node rule) of a Cilium policy object is deny-only. */
export function denyOnlyDirections(obj: PolicyObject): Direction[] {
  const raws = rawRules(obj);
  const models = policyModel(obj);
  return DIRECTIONS.filter((d) => models.some((m) => !m.selectsNodes && denyOnlyRaw(raws[m.specIndex], d)));
}

/**
 * The models that put the pod's direction into default deny, and whether every one of them is
 * deny-only while no other selecting policy allows anything in that direction (then nothing at all is
 * allowed). The allows of a policy that does not enforce the direction itself (`enableDefaultDeny:
 * false`) still apply once another policy enforces it, so they count as allows.
 */
export function denyOnlyEnforcement(state: ClusterState, pod: Pod, d: Direction): { models: readonly PolicyModel[]; allDenyOnly: boolean } {
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

/** Is the model one of this policy object's rules? */
export function modelOfObject(m: PolicyModel, obj: PolicyObject): boolean {
  const ns = obj.kind === 'CiliumClusterwideNetworkPolicy' ? '' : (obj.metadata.namespace ?? '');
  return m.ref.kind === obj.kind && m.ref.name === obj.metadata.name && m.ref.namespace === ns;
}
