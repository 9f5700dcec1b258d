// Istio's AuthorizationPolicy decision at one enforcement point (destination ztunnel, waypoint or
// sidecar) for one connection, as `meshguard trace` needs it. Which policies apply where lives in
// istio.ts (authzSelectsPod, waypointAuthorizationPolicies), which attributes need HTTP too
// (ruleHttpAttributes); this module only evaluates. Sources in docs/semantics.md ("The mesh path").
// Every evaluation is linear in the size of the policies: no attribute is matched by a RegExp.

import type { PolicyObject } from '../core/objects.ts';
import { canonicalIp, cidrContains, parseCidr } from './cidr.ts';
import { HTTP_OPERATION_FIELDS, HTTP_SOURCE_FIELDS, httpAttributesOf, L4_CONDITION_KEYS, ruleHttpAttributes } from './istio.ts';

export type IstioEnforcer = 'ztunnel' | 'waypoint' | 'sidecar';

/** An AuthorizationPolicy that decided (or a PeerAuthentication that refused plaintext). */
export interface IstioPolicyRef {
  readonly kind: 'AuthorizationPolicy' | 'PeerAuthentication';
  readonly namespace: string;
  readonly name: string;
  /** ALLOW, DENY, CUSTOM for an AuthorizationPolicy; STRICT for a PeerAuthentication. */
  readonly action: string;
}

/** Istio's decision at one enforcement point. */
export interface IstioDecision {
  readonly enforcer: IstioEnforcer;
  /** The pod (ztunnel, sidecar) or waypoint (namespace/name) where it is enforced. */
  readonly at: string;
  /** The source identity the enforcer sees (a SPIFFE principal), or undefined for plaintext. */
  readonly principal?: string;
  /**
   * allowed / denied for the connection; `conditional` when HTTP attributes (paths, methods, headers...)
   * decide per request, which a connection-level trace cannot know.
   */
  readonly verdict: 'allowed' | 'denied' | 'conditional';
  readonly policies: readonly IstioPolicyRef[];
  readonly reason: string;
}

/** Who an enforcer sees, and where. */
export interface AuthzRequest {
  /** The peer's principal (<trust domain>/ns/<namespace>/sa/<service account>), undefined for plaintext. */
  readonly principal?: string;
  readonly sourceNamespace?: string;
  readonly sourceServiceAccount?: string;
  readonly sourceIp?: string;
  /** The destination pod's IP (ztunnel and sidecar see it; a waypoint may see a Service address). */
  readonly destinationIp?: string;
  /** The destination port the policy's `ports` match: the application port. */
  readonly port: number;
  readonly enforcer: IstioEnforcer;
}

type Tri = 'yes' | 'no' | 'maybe';

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Istio's string match: exact, `*`, `prefix*` or `*suffix` (no regular expressions). */
export function istioStringMatch(pattern: string, value: string): boolean {
  if (pattern === '*') return true;
  if (pattern.endsWith('*')) return value.startsWith(pattern.slice(0, -1));
  if (pattern.startsWith('*')) return value.endsWith(pattern.slice(1));
  return pattern === value;
}

function and(a: Tri, b: Tri): Tri {
  if (a === 'no' || b === 'no') return 'no';
  return a === 'maybe' || b === 'maybe' ? 'maybe' : 'yes';
}

function or(a: Tri, b: Tri): Tri {
  if (a === 'yes' || b === 'yes') return 'yes';
  return a === 'maybe' || b === 'maybe' ? 'maybe' : 'no';
}

/**
 * One attribute list of a policy (e.g. `ports`, `ipBlocks`), parsed. `bad` counts entries Istio cannot
 * parse (a non-string, a port that is not a decimal 0-65535, a malformed address or CIDR): ztunnel drops
 * such entries (so a list left empty no longer constrains), Envoy's builder skips the whole rule.
 */
interface Parsed {
  readonly values: readonly string[];
  readonly bad: number;
}

const NONE: Parsed = { values: [], bad: 0 };

function parseList(v: unknown, valid: (s: string) => boolean): Parsed {
  if (v === undefined || v === null) return NONE;
  if (!Array.isArray(v)) return { values: [], bad: 1 };
  const values: string[] = [];
  let bad = 0;
  for (const x of v) {
    if (typeof x === 'string' && valid(x)) values.push(x);
    else bad++;
  }
  return { values, bad };
}

const anyString = (s: string): boolean => s.length > 0;

/** A destination port as Istio parses it: decimal digits only, at most 65535 ("80-90", "http", " 80" are not ports). */
function validPort(s: string): boolean {
  if (s.length === 0 || s.length > 5) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return Number(s) <= 65535;
}

function validIpOrCidr(s: string): boolean {
  return s.includes('/') ? parseCidr(s) !== undefined : canonicalIp(s) !== undefined;
}

function ipMatch(block: string, ip: string): boolean {
  const c = canonicalIp(ip);
  if (!c) return false;
  return block.includes('/') ? cidrContains(block, c) : canonicalIp(block) === c;
}

function portMatch(p: string, port: string): boolean {
  return Number(p) === Number(port);
}

/**
 * A positive / negative list pair against one value. An empty (or all-bad) positive list does not
 * constrain; an absent value matches no positive list and no negative one.
 */
function listMatch(pos: Parsed, neg: Parsed, value: string | undefined, match: (p: string, v: string) => boolean): Tri {
  let r: Tri = 'yes';
  if (pos.values.length > 0) r = value !== undefined && pos.values.some((p) => match(p, value)) ? 'yes' : 'no';
  if (neg.values.length > 0 && value !== undefined && neg.values.some((p) => match(p, value))) r = 'no';
  return r;
}

/** `serviceAccounts` entries: "namespace/name", or "name" in the policy's namespace. */
function serviceAccountMatch(policyNs: string) {
  return (entry: string, value: string): boolean => (entry.includes('/') ? entry : `${policyNs}/${entry}`) === value;
}

/** How HTTP attributes count: `maybe` where a proxy sees the request, `ignore` (match) in a ztunnel DENY. */
type HttpMode = 'maybe' | 'ignore';

interface RuleEval {
  r: Tri;
  bad: number;
}

function hasHttp(o: Record<string, unknown>, keys: readonly string[]): boolean {
  return keys.some((k) => {
    const v = o[k];
    return Array.isArray(v) ? v.length > 0 : v !== undefined && v !== null;
  });
}

function sourceMatch(src: Record<string, unknown>, q: AuthzRequest, http: HttpMode, policyNs: string, e: RuleEval): Tri {
  const peer = q.principal !== undefined;
  const list = (k: string, valid: (s: string) => boolean): Parsed => {
    const p = parseList(src[k], valid);
    e.bad += p.bad;
    return p;
  };
  const sa = peer && q.sourceServiceAccount !== undefined ? `${q.sourceNamespace ?? ''}/${q.sourceServiceAccount}` : undefined;
  let r = listMatch(list('principals', anyString), list('notPrincipals', anyString), q.principal, istioStringMatch);
  r = and(r, listMatch(list('namespaces', anyString), list('notNamespaces', anyString), peer ? q.sourceNamespace : undefined, istioStringMatch));
  r = and(r, listMatch(list('serviceAccounts', anyString), list('notServiceAccounts', anyString), sa, serviceAccountMatch(policyNs)));
  r = and(r, listMatch(list('ipBlocks', validIpOrCidr), list('notIpBlocks', validIpOrCidr), q.sourceIp, ipMatch));
  return hasHttp(src, HTTP_SOURCE_FIELDS) && http === 'maybe' ? and(r, 'maybe') : r;
}

function operationMatch(op: Record<string, unknown>, q: AuthzRequest, http: HttpMode, e: RuleEval): Tri {
  const ports = parseList(op['ports'], validPort);
  const notPorts = parseList(op['notPorts'], validPort);
  e.bad += ports.bad + notPorts.bad;
  const r = listMatch(ports, notPorts, String(q.port), portMatch);
  return hasHttp(op, HTTP_OPERATION_FIELDS) && http === 'maybe' ? and(r, 'maybe') : r;
}

function conditionMatch(cond: Record<string, unknown>, q: AuthzRequest, http: HttpMode, e: RuleEval): Tri {
  const key = typeof cond['key'] === 'string' ? cond['key'] : '';
  const isIp = key === 'source.ip' || key === 'destination.ip';
  const valid = isIp ? validIpOrCidr : key === 'destination.port' ? validPort : anyString;
  const values = parseList(cond['values'], valid);
  const notValues = parseList(cond['notValues'], valid);
  if (L4_CONDITION_KEYS.has(key)) e.bad += values.bad + notValues.bad;
  const peer = q.principal !== undefined;
  switch (key) {
    case 'source.ip':
      return listMatch(values, notValues, q.sourceIp, ipMatch);
    case 'destination.ip':
      if (q.enforcer === 'waypoint' || q.destinationIp === undefined) return 'maybe';
      return listMatch(values, notValues, q.destinationIp, ipMatch);
    case 'source.namespace':
      return listMatch(values, notValues, peer ? q.sourceNamespace : undefined, istioStringMatch);
    case 'source.principal':
      return listMatch(values, notValues, q.principal, istioStringMatch);
    case 'destination.port':
      return listMatch(values, notValues, String(q.port), portMatch);
    default:
      // request.*, remote.ip, connection.sni and the rest: not known to a trace (ztunnel drops them).
      return http === 'maybe' ? 'maybe' : 'yes';
  }
}

/** Does one rule match? `maybe` when it depends on what a trace does not know (HTTP attributes). */
function ruleMatch(rule: Record<string, unknown>, q: AuthzRequest, http: HttpMode, policyNs: string): RuleEval {
  const e: RuleEval = { r: 'yes', bad: 0 };
  let r: Tri = 'yes';
  const from = Array.isArray(rule['from']) ? rule['from'] : undefined;
  if (from && from.length > 0) {
    let any: Tri = 'no';
    for (const f of from) any = or(any, isObj(f) && isObj(f['source']) ? sourceMatch(f['source'], q, http, policyNs, e) : 'yes');
    r = and(r, any);
  }
  const to = Array.isArray(rule['to']) ? rule['to'] : undefined;
  if (to && to.length > 0) {
    let any: Tri = 'no';
    for (const t of to) any = or(any, isObj(t) && isObj(t['operation']) ? operationMatch(t['operation'], q, http, e) : 'yes');
    r = and(r, any);
  }
  for (const c of Array.isArray(rule['when']) ? rule['when'] : []) if (isObj(c)) r = and(r, conditionMatch(c, q, http, e));
  e.r = r;
  return e;
}

/**
 * Does the policy match the request? At ztunnel, which sees no HTTP (Istio's ambient conversion), a
 * rule needing HTTP never matches in an ALLOW policy and is enforced without its HTTP parts in a DENY
 * policy, and unparseable entries are dropped from their list. A proxy that sees HTTP (sidecar,
 * waypoint) answers `maybe` for HTTP attributes and skips a rule with an unparseable entry.
 */
function policyMatch(ap: PolicyObject, action: string, q: AuthzRequest): Tri {
  const rules = ap.spec?.['rules'];
  if (!Array.isArray(rules)) return 'no'; // no rules: an ALLOW matches nothing (deny all), a DENY nothing
  const policyNs = ap.metadata.namespace ?? '';
  let any: Tri = 'no';
  for (const rule of rules) {
    if (!isObj(rule)) continue;
    let m: Tri;
    if (q.enforcer === 'ztunnel') {
      if (action === 'ALLOW' && needsHttp(rule)) m = 'no';
      else m = ruleMatch(rule, q, 'ignore', policyNs).r;
    } else {
      const e = ruleMatch(rule, q, 'maybe', policyNs);
      m = e.bad > 0 ? 'no' : e.r;
    }
    any = or(any, m);
    if (any === 'yes') break;
  }
  return any;
}

function needsHttp(rule: Record<string, unknown>): boolean {
  const out = new Set<string>();
  ruleHttpAttributes(rule, out);
  return out.size > 0;
}

function actionOf(ap: PolicyObject): string {
  const a = ap.spec?.['action'];
  return typeof a === 'string' && a !== '' ? a : 'ALLOW';
}

function apRef(ap: PolicyObject, action: string): IstioPolicyRef {
  return { kind: 'AuthorizationPolicy', namespace: ap.metadata.namespace ?? '', name: ap.metadata.name, action };
}

const LISTED = 5;

/** "a/x, b/y" for at most a few policies, then "and N more": a reason stays one readable line. */
function names(refs: readonly { namespace?: string; name: string }[]): string {
  const shown = refs.slice(0, LISTED).map((r) => `${r.namespace ?? ''}/${r.name}`).join(', ');
  return refs.length > LISTED ? `${shown} and ${refs.length - LISTED} more` : shown;
}

/**
 * Istio's authorization at one enforcement point: CUSTOM (external authorizer: not known here; ztunnel
 * does not support it and ignores the policy), then DENY, then ALLOW (when any ALLOW policy applies, one
 * must match), else allowed. AUDIT never decides.
 */
export function authorize(policies: readonly PolicyObject[], q: AuthzRequest, at: string): IstioDecision {
  const who = q.principal ? `peer ${q.principal}` : `a plaintext peer${q.sourceIp ? ' ' + q.sourceIp : ''} (no identity)`;
  const base = { enforcer: q.enforcer, at, ...(q.principal ? { principal: q.principal } : {}) };
  const by = (action: string) => policies.filter((p) => actionOf(p) === action);
  const maybeDeny: IstioPolicyRef[] = [];
  for (const ap of by('DENY')) {
    const m = policyMatch(ap, 'DENY', q);
    if (m === 'yes') {
      return { ...base, verdict: 'denied', policies: [apRef(ap, 'DENY')], reason: `DENY policy ${ap.metadata.namespace}/${ap.metadata.name} matches ${who} on port ${q.port} at ${q.enforcer} ${at}` };
    }
    if (m === 'maybe') maybeDeny.push(apRef(ap, 'DENY'));
  }
  const custom = q.enforcer === 'ztunnel' ? [] : by('CUSTOM').filter((ap) => policyMatch(ap, 'CUSTOM', q) !== 'no');
  const allows = by('ALLOW');
  let allowVerdict: 'allowed' | 'denied' | 'conditional' = 'allowed';
  let allowRefs: IstioPolicyRef[] = [];
  if (allows.length > 0) {
    const yes: PolicyObject[] = [];
    const maybe: PolicyObject[] = [];
    for (const ap of allows) {
      const m = policyMatch(ap, 'ALLOW', q);
      if (m === 'yes') yes.push(ap);
      else if (m === 'maybe') maybe.push(ap);
    }
    if (yes.length > 0) allowRefs = yes.map((ap) => apRef(ap, 'ALLOW'));
    else if (maybe.length > 0) {
      allowVerdict = 'conditional';
      allowRefs = maybe.map((ap) => apRef(ap, 'ALLOW'));
    } else {
      return {
        ...base, verdict: 'denied', policies: allows.map((ap) => apRef(ap, 'ALLOW')),
        reason: `no rule of the ALLOW policies ${names(allows.map((a) => a.metadata))} matches ${who} on port ${q.port} at ${q.enforcer} ${at}` +
          (q.enforcer === 'ztunnel' && allows.some((a) => httpAttributesOf(a).length > 0) ? ' (rules that need HTTP never match at ztunnel)' : ''),
      };
    }
  }
  if (maybeDeny.length > 0 || custom.length > 0 || allowVerdict === 'conditional') {
    const refs = [...maybeDeny, ...custom.map((ap) => apRef(ap, 'CUSTOM')), ...allowRefs];
    const parts = [
      ...(maybeDeny.length > 0 ? [`DENY rules that need HTTP attributes (${names(maybeDeny)})`] : []),
      ...(custom.length > 0 ? [`an external authorizer (CUSTOM ${names(custom.map((a) => a.metadata))})`] : []),
      ...(allowVerdict === 'conditional' ? [`ALLOW rules that need HTTP attributes (${names(allowRefs)})`] : []),
    ];
    return { ...base, verdict: 'conditional', policies: refs, reason: `${who} is admitted per request at ${q.enforcer} ${at}: ${parts.join(' and ')} decide each request` };
  }
  if (allowRefs.length > 0) {
    return { ...base, verdict: 'allowed', policies: allowRefs, reason: `ALLOW policy ${names(allowRefs)} matches ${who} on port ${q.port} at ${q.enforcer} ${at}` };
  }
  return { ...base, verdict: 'allowed', policies: [], reason: `no AuthorizationPolicy applies to ${who} on port ${q.port} at ${q.enforcer} ${at}: allowed by default` };
}
