// What the Cilium agent does with CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy content beyond
// what `ciliumRefusal` (model.ts) already covers:
//
// - `ciliumRejection(obj)`: why the agent refuses the object, the refusals of `ciliumRefusal` first, then
//   the port and L7 checks of Cilium's rule validation (pkg/policy/api/rule_validation.go:
//   `PortRule.Validate`, `PortProtocol.Validate`, `L7Rules.Validate`, `IngressRule.Validate` and
//   `EgressRule.Validate` with `hostPolicy`; `sanitize` in releases before the Validate/Sanitize split).
//   Only checks whose outcome is the same across v1.18 to v1.20 are here.
// - `ignoredSelectorFields(obj)`: keys of a label selector other than matchLabels/matchExpressions (e.g.
//   `toPorts` indented one step too far, under a `toEndpoints` item). The CRD's structural schema has no
//   such field: the API server drops it (or refuses the object under strict field validation), so the
//   stored policy means something else than the file.
//
// Pure, linear in the size of the object. The reasons are plain data written here, not Cilium's strings.

import type { PolicyObject } from '../core/objects.ts';
import { ciliumRefusal } from './model.ts';

type Raw = Readonly<Record<string, unknown>>;

const isObj = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);
const arr = (v: unknown): readonly unknown[] => (Array.isArray(v) ? v : []);
const objs = (v: unknown): readonly Raw[] => arr(v).filter(isObj);

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
    // DNS rules may be TCP, UDP or ANY; every other L7 rule needs TCP. An omitted protocol is left alone.
    const proto = typeof p.protocol === 'string' ? p.protocol.toUpperCase() : '';
    if (!dns && proto !== '' && proto !== 'TCP') return `L7 rules on a ${proto} port (L7 rules other than DNS need TCP)`;
  }
  return undefined;
}

/** Why the Cilium agent refuses a CNP/CCNP (one refused rule drops the whole object), or undefined. */
export function ciliumRejection(obj: PolicyObject): string | undefined {
  if (!isCilium(obj)) return undefined;
  const refused = ciliumRefusal(obj);
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
