// What the Cilium agent does with CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy content before it
// reaches the policy repository. The one rejection path of meshguard: `policyModel` (model.ts) gives a
// refused object no rule, and the agent-rejected-policy rule reports the same reason.
//
// - `ciliumRejection(obj)`: why the agent refuses the object. `CiliumNetworkPolicy.Parse`
//   (pkg/k8s/apis/cilium.io/v2/cnp_types.go) runs `Rule.Sanitize` (pkg/policy/api/rule_validation.go)
//   on every rule, and one error leaves the whole object out. Covered, in that order: the rule's
//   selectors and sections (`Rule.Sanitize`), an element combining L3 kinds or `icmps` with `toPorts`
//   (`IngressCommonRule.sanitize`, `EgressCommonRule.sanitize`), a port that is missing or neither a
//   number nor a port name (`PortProtocol.sanitize`), more than 40 ports in one entry, L7 rules on port
//   0, on a port that is not TCP (protocol omitted counts as ANY), DNS rules on ingress, without a port
//   or on a range, two L7 kinds in one entry (`PortRule.sanitize`, `L7Rules.sanitize`), L7 rules in a
//   host policy (`IngressRule.sanitize`/`EgressRule.sanitize` with hostPolicy). The method names are
//   those of Cilium v1.18.10, v1.19.4 and v1.20.2 (the same in the three); only checks whose outcome is
//   the same across them are here.
// - `ignoredSelectorFields(obj)`: keys of a label selector other than matchLabels/matchExpressions (e.g.
//   `toPorts` indented one step too far, under a `toEndpoints` item). The CRD's structural schema has no
//   such field: the API server drops it (or refuses the object under strict field validation), so the
//   stored policy means something else than the file.
//
// Pure, linear in the size of the object. The reasons are plain data written here, not Cilium's strings.

import type { PolicyObject } from '../core/objects.ts';
import type { Direction } from './types.ts';

type Raw = Readonly<Record<string, unknown>>;

const isObj = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);
const arr = (v: unknown): readonly unknown[] => (Array.isArray(v) ? v : []);
const objs = (v: unknown): readonly Raw[] => arr(v).filter(isObj);

/** A port name as the agent accepts it (an IANA service name: letters, digits, '-', one letter at least). */
const PORT_NAME = /^(?=.*[a-z])(?!.*--)[a-z0-9](?:[a-z0-9-]{0,13}[a-z0-9])?$/i;

/** Why the agent refuses a port value (Sanitize of PortProtocol), or undefined. */
function portRefusal(v: unknown): string | undefined {
  if (v === undefined || v === null || v === '') return 'port must be specified';
  const s = String(v);
  if (PORT_NAME.test(s)) return undefined;
  return /^\d+$/.test(s) && Number(s) <= 65535 ? undefined : `unable to parse port ${JSON.stringify(s)}`;
}

const L3_FIELDS: Readonly<Record<Direction, readonly string[]>> = {
  ingress: ['fromEndpoints', 'fromCIDR', 'fromCIDRSet', 'fromEntities', 'fromGroups', 'fromNodes'],
  egress: ['toEndpoints', 'toCIDR', 'toCIDRSet', 'toEntities', 'toServices', 'toFQDNs', 'toGroups', 'toNodes'],
};

/** Why the agent refuses one rule element (IngressCommonRule/EgressCommonRule and PortRule Sanitize). */
function elementRefusal(direction: Direction, el: Raw): string | undefined {
  // Only non-empty lists count (the agent compares their lengths).
  const l3 = L3_FIELDS[direction].filter((f) => arr(el[f]).length > 0);
  if (l3.length > 1) return `combining ${l3[0]} and ${l3[1]} is not supported`;
  if (arr(el.icmps).length > 0 && arr(el.toPorts).length > 0) return 'the ICMPs block may only be present without ToPorts';
  for (const tp of objs(el.toPorts)) {
    for (const p of objs(tp.ports)) {
      const why = portRefusal(p.port);
      if (why) return why;
    }
  }
  return undefined;
}

/**
 * The structural refusals of `Rule.Sanitize`: a rule without endpointSelector/nodeSelector or without
 * any section, an element combining L3 kinds or icmps with toPorts, a port that is missing or neither a
 * number nor a port name.
 */
function structuralRefusal(obj: PolicyObject): string | undefined {
  const rules = rulesOf(obj).map((r) => r.rule);
  if (rules.length === 0) return 'the policy has no spec or specs';
  for (const rule of rules) {
    if (!isObj(rule.endpointSelector) && !isObj(rule.nodeSelector)) return 'rule must have one of EndpointSelector or NodeSelector';
    if (isObj(rule.endpointSelector) && isObj(rule.nodeSelector)) return 'rule cannot have both EndpointSelector and NodeSelector';
    // Host policies are clusterwide only (CiliumNetworkPolicy.Parse).
    if (obj.kind === 'CiliumNetworkPolicy' && isObj(rule.nodeSelector)) return 'rule cannot have NodeSelector';
    const sections = ['ingress', 'ingressDeny', 'egress', 'egressDeny'].filter((f) => objs(rule[f]).length > 0);
    if (sections.length === 0) return 'rule must have at least one of Ingress, IngressDeny, Egress, EgressDeny';
    for (const f of sections) {
      for (const el of objs(rule[f])) {
        const why = elementRefusal(f.startsWith('ingress') ? 'ingress' : 'egress', el);
        if (why) return why;
      }
    }
  }
  return undefined;
}

/** Cilium's limit on the ports of one `toPorts` entry (maxPorts in rule_validation.go). */
export const MAX_PORTS_PER_RULE = 40;

const SECTIONS = [
  ['ingress', true, false],
  ['ingressDeny', true, true],
  ['egress', false, false],
  ['egressDeny', false, true],
] as const;

function rulesOf(obj: PolicyObject): { readonly path: string; readonly rule: Raw }[] {
  const out: { path: string; rule: Raw }[] = [];
  if (isObj(obj.spec)) out.push({ path: 'spec', rule: obj.spec });
  objs(obj.specs).forEach((rule, i) => out.push({ path: `specs[${i}]`, rule }));
  return out;
}

const isCilium = (obj: PolicyObject): boolean => obj.kind === 'CiliumNetworkPolicy' || obj.kind === 'CiliumClusterwideNetworkPolicy';

/** A numeric port value (number or decimal string), or undefined for a name or garbage. */
function portNumber(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  return typeof v === 'string' && /^\d{1,5}$/.test(v) ? Number(v) : undefined;
}

/** Why the agent refuses one `toPorts` entry, or undefined. `allow`: an allow section (deny ports carry no rules). */
function portRuleProblem(tp: Raw, ingress: boolean, allow: boolean, hostPolicy: boolean): string | undefined {
  const ports = objs(tp.ports);
  if (ports.length > MAX_PORTS_PER_RULE) return `${ports.length} ports in one toPorts entry (the agent accepts at most ${MAX_PORTS_PER_RULE})`;
  if (!allow || !isObj(tp.rules)) return undefined;
  const r = tp.rules;
  // Only non-empty lists count: an empty list is the conservative reading (no L7 rule).
  const dns = arr(r.dns).length > 0;
  const http = arr(r.http).length > 0;
  const otherL7 = arr(r.kafka).length > 0 || (typeof r.l7proto === 'string' && r.l7proto !== '');
  if (!dns && !http && !otherL7) return undefined;
  if (ingress && dns) return 'DNS rules on ingress (DNS rules are egress only)';
  if (hostPolicy && ingress) return 'L7 rules in a host policy (nodeSelector) on ingress';
  if (hostPolicy && http) return 'HTTP rules in a host policy (nodeSelector)';
  if (dns && http) return 'DNS and HTTP rules in the same toPorts entry';
  if (dns && ports.length === 0) return 'DNS rules without a port (port 53 must be listed)';
  for (const p of ports) {
    const n = portNumber(p.port);
    if (n === 0) return 'L7 rules on port 0 (all ports)';
    const end = portNumber(p.endPort);
    if (dns && n !== undefined && end !== undefined && end > n) return `DNS rules on a port range (${n}-${end})`;
    // DNS rules may be TCP, UDP or ANY; every other L7 rule needs TCP. An omitted protocol is ANY
    // (ParseL4Proto of ""), so it is refused too (found by the conformance test).
    const proto = typeof p.protocol === 'string' && p.protocol !== '' ? p.protocol.toUpperCase() : 'ANY';
    if (!dns && proto !== 'TCP') return `L7 rules on a ${proto} port (L7 rules other than DNS need TCP)`;
  }
  return undefined;
}

/**
 * Why the Cilium agent refuses a CNP/CCNP (one refused rule drops the whole object: it has no effect at
 * all), or undefined when it imports it, or when the object is not a Cilium policy.
 */
export function ciliumRejection(obj: PolicyObject): string | undefined {
  if (!isCilium(obj)) return undefined;
  const refused = structuralRefusal(obj);
  if (refused !== undefined) return refused;
  for (const { path, rule } of rulesOf(obj)) {
    const hostPolicy = isObj(rule.nodeSelector) && !isObj(rule.endpointSelector);
    for (const [section, ingress, deny] of SECTIONS) {
      const els = objs(rule[section]);
      for (let i = 0; i < els.length; i++) {
        const tps = objs(els[i]!.toPorts);
        for (let k = 0; k < tps.length; k++) {
          const why = portRuleProblem(tps[k]!, ingress, !deny, hostPolicy);
          if (why) return `${path}.${section}[${i}].toPorts[${k}]: ${why}`;
        }
      }
    }
  }
  return undefined;
}

/** A selector with keys a label selector does not have: where, and which keys. */
export interface IgnoredSelectorFields {
  /** The selector, e.g. `spec.egress[0].toEndpoints[0]`. */
  readonly at: string;
  /** The rule element it belongs to, e.g. `spec.egress[0]` (or the rule, for its own selector). */
  readonly element: string;
  /** The stray keys, in the order written. */
  readonly fields: readonly string[];
}

const SELECTOR_KEYS = new Set(['matchLabels', 'matchExpressions']);
const PEER_SELECTOR_LISTS = ['fromEndpoints', 'fromRequires', 'fromNodes', 'toEndpoints', 'toRequires', 'toNodes'];

function stray(sel: unknown): string[] {
  return isObj(sel) ? Object.keys(sel).filter((k) => !SELECTOR_KEYS.has(k)) : [];
}

/** Every selector of a CNP/CCNP with keys other than matchLabels/matchExpressions, in document order. */
export function ignoredSelectorFields(obj: PolicyObject): readonly IgnoredSelectorFields[] {
  if (!isCilium(obj)) return [];
  const out: IgnoredSelectorFields[] = [];
  for (const { path, rule } of rulesOf(obj)) {
    for (const key of ['endpointSelector', 'nodeSelector']) {
      const fields = stray(rule[key]);
      if (fields.length > 0) out.push({ at: `${path}.${key}`, element: path, fields });
    }
    for (const [section] of SECTIONS) {
      const els = objs(rule[section]);
      for (let i = 0; i < els.length; i++) {
        const element = `${path}.${section}[${i}]`;
        for (const list of PEER_SELECTOR_LISTS) {
          const sels = arr(els[i]![list]);
          for (let j = 0; j < sels.length; j++) {
            const fields = stray(sels[j]);
            if (fields.length > 0) out.push({ at: `${element}.${list}[${j}]`, element, fields });
          }
        }
      }
    }
  }
  return out;
}
