// The path a connection really takes through the mesh, for `meshguard trace`: which 5-tuples Cilium
// enforces on the wire (HBONE to TCP 15008 for ambient destinations, via a waypoint when one is on the
// path; the application port for sidecars and plaintext), Cilium's verdict on each, and Istio's
// AuthorizationPolicy / PeerAuthentication decision where it is enforced (destination ztunnel, waypoint
// or sidecar). Pure functions over a state; sources in docs/semantics.md ("The mesh path").

import { parse as parseYaml } from 'yaml';
import type { ClusterState, Gateway, Labels, Pod, PolicyObject, Service } from '../core/objects.ts';
import { canonicalIp, cidrContains } from './cidr.ts';
import { serviceBackendPods, serviceTargetPort } from './cluster.ts';
import { DEFAULT_ROOT_NAMESPACE, effectiveMtls, httpAttributesOf, istioRootNamespace, meshMode, targetsWaypoint, waypointFor } from './istio.ts';
import { HBONE_PORT } from './mesh-peers.ts';
import { perRevision } from './memo.ts';
import { evaluate, serviceByClusterIp, targetIdentity } from './reachability.ts';
import type { MeshMode, Protocol, Reachability, Target } from './types.ts';

// ---------- result types ----------

/** What the packets between two pods are, as Cilium sees them. */
export type WireKind = 'hbone' | 'mtls' | 'plaintext';

/** One connection on the wire: the 5-tuple Cilium's policy judges, and its verdict. */
export interface WireHop {
  /** "red/netshoot", or "waypoint blue/waypoint (pod blue/waypoint-abc)" for a waypoint hop. */
  readonly from: string;
  readonly fromIp?: string;
  readonly to: string;
  readonly toIp?: string;
  readonly port: number;
  readonly protocol: Protocol;
  readonly kind: WireKind;
  /** Cilium's verdict on this 5-tuple (egress of the sending pod, ingress of the receiving pod). */
  readonly cilium: Reachability;
}

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

export interface MeshPath {
  readonly sourceMode: MeshMode;
  readonly destinationMode: MeshMode;
  /** The destination pod the path ends at (a Service VIP resolves to a backend). */
  readonly destination: string;
  /** The application port at the destination pod (a Service port translated to its target port). */
  readonly appPort: number;
  /** HBONE, HBONE through a waypoint, Istio mTLS on the app port (sidecar to sidecar), or plaintext. */
  readonly wire: 'hbone' | 'hbone-via-waypoint' | 'mtls' | 'plaintext';
  /** Set when the path goes through a waypoint: its Gateway (namespace/name). */
  readonly waypoint?: string;
  /** The connections on the wire, in order; Cilium enforces each. */
  readonly hops: readonly WireHop[];
  /** Istio's decisions along the path (empty when no mesh proxy authorizes the connection). */
  readonly istio: readonly IstioDecision[];
  /** The real path goes through: every hop allowed by Cilium and no Istio decision denies. */
  readonly allowed: boolean;
  /** The layer that denies (Cilium first: it drops the packets before a proxy sees them), or `none`. */
  readonly decidedBy: 'cilium' | 'istio' | 'none';
  /** One line: which layer decides and why. */
  readonly summary: string;
  /** Notes on what the path assumes (e.g. a waypoint bypassed by a sidecar or a non-mesh source). */
  readonly notes: readonly string[];
}

// ---------- helpers ----------

const GATEWAY_NAME_LABEL = 'gateway.networking.k8s.io/gateway-name';
const WAYPOINT_FOR_LABEL = 'istio.io/waypoint-for';

function ref(pod: Pod): string {
  return `${pod.metadata.namespace ?? ''}/${pod.metadata.name}`;
}

function podIp(pod: Pod): string | undefined {
  return pod.status?.podIP ?? pod.status?.podIPs?.[0]?.ip;
}

/** The trust domain of the mesh (mesh config `trustDomain`), default cluster.local. */
export function istioTrustDomain(state: ClusterState): string {
  return perRevision(state, 'istioTrustDomain', () => {
    const cms = [state.get('ConfigMap', DEFAULT_ROOT_NAMESPACE, 'istio')];
    for (const cm of state.list('ConfigMap', DEFAULT_ROOT_NAMESPACE)) if (cm.metadata.name.startsWith('istio-')) cms.push(cm);
    for (const cm of cms) {
      const mesh = cm?.data?.['mesh'];
      if (typeof mesh !== 'string') continue;
      try {
        const parsed: unknown = parseYaml(mesh);
        const td = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>)['trustDomain'] : undefined;
        if (typeof td === 'string' && td !== '') return td;
      } catch {
        // a mesh config Istio would reject: the default applies
      }
      return 'cluster.local';
    }
    return 'cluster.local';
  });
}

/** The SPIFFE principal Istio gives a pod's workload: <trust domain>/ns/<namespace>/sa/<service account>. */
export function principalOf(state: ClusterState, pod: Pod): string {
  return `${istioTrustDomain(state)}/ns/${pod.metadata.namespace ?? ''}/sa/${pod.spec.serviceAccountName || 'default'}`;
}

/**
 * Which traffic a waypoint takes (`istio.io/waypoint-for` on the Gateway): `service` (the default) takes
 * traffic addressed to a Service, `workload` traffic addressed to a pod IP, `all` both, `none` neither.
 */
function waypointTakes(gw: Gateway, addressedTo: 'service' | 'workload'): boolean {
  const v = gw.metadata.labels?.[WAYPOINT_FOR_LABEL] ?? 'service';
  return v === 'all' || v === addressedTo;
}

/** The waypoint serving a Service (Service label, else its namespace's), for traffic to its ClusterIP. */
function serviceWaypoint(state: ClusterState, svc: Service, backend: Pod): Gateway | undefined {
  const name = svc.metadata.labels?.['istio.io/use-waypoint'];
  if (name === 'none') return undefined;
  if (name) {
    const gwNs = svc.metadata.labels?.['istio.io/use-waypoint-namespace'] || (svc.metadata.namespace ?? '');
    const gw = state.get('Gateway', gwNs, name);
    return gw?.spec?.gatewayClassName === 'istio-waypoint' ? gw : undefined;
  }
  // No label on the Service: its namespace's waypoint (as waypointFor reads it for a pod of that namespace).
  const probe: Pod = { ...backend, metadata: { ...backend.metadata, labels: withoutWaypointLabels(backend.metadata.labels) } };
  return waypointFor(state, probe);
}

function withoutWaypointLabels(labels: Labels | undefined): Labels {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels ?? {})) if (k !== 'istio.io/use-waypoint' && k !== 'istio.io/use-waypoint-namespace') out[k] = v;
  return out;
}

/** A pod of a waypoint: a live one (gateway-name label), else one standing for it. */
function waypointPod(state: ClusterState, gw: Gateway): Pod {
  const ns = gw.metadata.namespace ?? '';
  const live = state.podsWithLabel(ns, GATEWAY_NAME_LABEL, gw.metadata.name)[0] ?? state.podsWithLabel(ns, 'istio.io/gateway-name', gw.metadata.name)[0];
  if (live) return live;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `(a pod of waypoint ${gw.metadata.name})`, namespace: ns, labels: { [GATEWAY_NAME_LABEL]: gw.metadata.name } },
    // Istio's waypoint deployment runs as a service account named after the Gateway.
    spec: { serviceAccountName: gw.metadata.name, containers: [{ name: 'istio-proxy' }] },
  };
}

// ---------- AuthorizationPolicy evaluation ----------

/** Who an enforcer sees, and where. */
interface AuthzRequest {
  /** The peer's principal, undefined for plaintext. */
  readonly principal?: string;
  readonly sourceNamespace?: string;
  readonly sourceIp?: string;
  /** The destination port the policy's `ports` match: the application port. */
  readonly port: number;
  readonly enforcer: IstioEnforcer;
}

type Tri = 'yes' | 'no' | 'maybe';

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function strings(v: unknown): string[] | undefined {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : undefined;
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

/** A positive (`values`) / negative (`notValues`) list pair against one value (absent value: no match for positive lists). */
function listMatch(values: string[] | undefined, notValues: string[] | undefined, value: string | undefined, match: (p: string, v: string) => boolean): Tri {
  let r: Tri = 'yes';
  if (values && values.length > 0) r = value !== undefined && values.some((p) => match(p, value)) ? 'yes' : 'no';
  if (notValues && notValues.length > 0 && value !== undefined && notValues.some((p) => match(p, value))) r = 'no';
  return r;
}

function ipMatch(block: string, ip: string): boolean {
  const c = canonicalIp(ip);
  if (!c) return false;
  return block.includes('/') ? cidrContains(block, c) : canonicalIp(block) === c;
}

function portMatch(p: string, port: string): boolean {
  return p.trim() === port;
}

const HTTP_SOURCE = ['requestPrincipals', 'notRequestPrincipals', 'remoteIpBlocks', 'notRemoteIpBlocks'];
const HTTP_OPERATION = ['hosts', 'notHosts', 'methods', 'notMethods', 'paths', 'notPaths'];

function hasAny(o: Record<string, unknown>, keys: readonly string[]): boolean {
  return keys.some((k) => (strings(o[k])?.length ?? 0) > 0);
}

function sourceMatch(src: Record<string, unknown>, q: AuthzRequest): Tri {
  let r = listMatch(strings(src['principals']), strings(src['notPrincipals']), q.principal, istioStringMatch);
  r = and(r, listMatch(strings(src['namespaces']), strings(src['notNamespaces']), q.principal ? q.sourceNamespace : undefined, istioStringMatch));
  r = and(r, listMatch(strings(src['ipBlocks']), strings(src['notIpBlocks']), q.sourceIp, ipMatch));
  return hasAny(src, HTTP_SOURCE) ? and(r, 'maybe') : r;
}

function operationMatch(op: Record<string, unknown>, q: AuthzRequest): Tri {
  const r = listMatch(strings(op['ports']), strings(op['notPorts']), String(q.port), portMatch);
  return hasAny(op, HTTP_OPERATION) ? and(r, 'maybe') : r;
}

function conditionMatch(cond: Record<string, unknown>, q: AuthzRequest): Tri {
  const key = typeof cond['key'] === 'string' ? cond['key'] : '';
  const values = strings(cond['values']);
  const notValues = strings(cond['notValues']);
  switch (key) {
    case 'source.ip':
    case 'source.ipBlocks':
      return listMatch(values, notValues, q.sourceIp, ipMatch);
    case 'source.namespace':
      return listMatch(values, notValues, q.principal ? q.sourceNamespace : undefined, istioStringMatch);
    case 'source.principal':
      return listMatch(values, notValues, q.principal, istioStringMatch);
    case 'destination.port':
      return listMatch(values, notValues, String(q.port), portMatch);
    default:
      // request.*, remote.ip, destination.ip, connection.sni and the rest: not known to a trace.
      return 'maybe';
  }
}

/** Does one rule match? `maybe` when it depends on request attributes a trace does not know. */
function ruleMatch(rule: Record<string, unknown>, q: AuthzRequest): Tri {
  let r: Tri = 'yes';
  const from = Array.isArray(rule['from']) ? rule['from'] : undefined;
  if (from && from.length > 0) {
    let any: Tri = 'no';
    for (const f of from) any = or(any, isObj(f) && isObj(f['source']) ? sourceMatch(f['source'], q) : 'yes');
    r = and(r, any);
  }
  const to = Array.isArray(rule['to']) ? rule['to'] : undefined;
  if (to && to.length > 0) {
    let any: Tri = 'no';
    for (const t of to) any = or(any, isObj(t) && isObj(t['operation']) ? operationMatch(t['operation'], q) : 'yes');
    r = and(r, any);
  }
  for (const c of Array.isArray(rule['when']) ? rule['when'] : []) if (isObj(c)) r = and(r, conditionMatch(c, q));
  return r;
}

/**
 * Does the policy match the request? At ztunnel, which sees no HTTP, a rule needing HTTP fails closed
 * (Istio's ambient L4 policy docs): in an ALLOW policy it never matches, in a DENY policy its L4 part
 * alone decides. A proxy that sees HTTP (sidecar, waypoint) answers `maybe` for such a rule.
 */
function policyMatch(ap: PolicyObject, action: string, q: AuthzRequest): Tri {
  const rules = ap.spec?.['rules'];
  if (!Array.isArray(rules)) return 'no'; // no rules: an ALLOW matches nothing (deny all), a DENY nothing
  let any: Tri = 'no';
  for (const rule of rules) {
    let m = isObj(rule) ? ruleMatch(rule, q) : 'no';
    if (m === 'maybe' && q.enforcer === 'ztunnel') m = action === 'DENY' ? l4Only(rule as Record<string, unknown>, q) : 'no';
    any = or(any, m);
  }
  return any;
}

/** A rule's L4 part alone (HTTP attributes dropped), as ztunnel enforces a DENY rule that needs HTTP. */
function l4Only(rule: Record<string, unknown>, q: AuthzRequest): Tri {
  const r = ruleMatch(rule, q);
  return r === 'maybe' ? 'yes' : r;
}

function actionOf(ap: PolicyObject): string {
  const a = ap.spec?.['action'];
  return typeof a === 'string' && a !== '' ? a : 'ALLOW';
}

function apRef(ap: PolicyObject, action: string): IstioPolicyRef {
  return { kind: 'AuthorizationPolicy', namespace: ap.metadata.namespace ?? '', name: ap.metadata.name, action };
}

function matchLabels(ap: PolicyObject): Labels | undefined {
  const sel = ap.spec?.['selector'];
  const ml = isObj(sel) ? sel['matchLabels'] : undefined;
  return isObj(ml) && Object.keys(ml).length > 0 ? (ml as Labels) : undefined;
}

function hasTargetRefs(ap: PolicyObject): boolean {
  return isObj(ap.spec?.['targetRef']) || (Array.isArray(ap.spec?.['targetRefs']) && (ap.spec['targetRefs'] as unknown[]).length > 0);
}

/** AuthorizationPolicies a workload's own proxy (ztunnel or sidecar) enforces: selector, namespace or root, no targetRefs. */
function workloadPolicies(state: ClusterState, pod: Pod): PolicyObject[] {
  const ns = pod.metadata.namespace ?? '';
  const root = istioRootNamespace(state);
  const out: PolicyObject[] = [];
  const consider = (ap: PolicyObject): void => {
    if (hasTargetRefs(ap)) return;
    const ml = matchLabels(ap);
    if (ml && !Object.entries(ml).every(([k, v]) => pod.metadata.labels?.[k] === String(v))) return;
    out.push(ap);
  };
  for (const ap of state.list('AuthorizationPolicy', ns)) consider(ap);
  if (root !== ns) for (const ap of state.list('AuthorizationPolicy', root)) consider(ap);
  return out;
}

/** AuthorizationPolicies a waypoint enforces for this traffic: its Gateway / GatewayClass targetRefs, and the Service's. */
function waypointPolicies(state: ClusterState, gw: Gateway, svc: Service | undefined): PolicyObject[] {
  const out: PolicyObject[] = [];
  for (const ap of state.list('AuthorizationPolicy')) {
    if (!hasTargetRefs(ap)) continue;
    if (targetsWaypoint(state, ap, gw)) {
      out.push(ap);
      continue;
    }
    if (!svc || (ap.metadata.namespace ?? '') !== (svc.metadata.namespace ?? '')) continue;
    const refs = [...(Array.isArray(ap.spec?.['targetRefs']) ? (ap.spec['targetRefs'] as unknown[]) : []), ap.spec?.['targetRef']];
    if (refs.some((r) => isObj(r) && r['kind'] === 'Service' && (r['group'] ?? '') === '' && r['name'] === svc.metadata.name)) out.push(ap);
  }
  return out;
}

/**
 * Istio's authorization at one enforcement point: CUSTOM (external authorizer: not known here), then
 * DENY, then ALLOW (when any ALLOW policy applies, one must match), else allowed.
 */
function authorize(policies: readonly PolicyObject[], q: AuthzRequest, at: string): IstioDecision {
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
  const custom = by('CUSTOM').filter((ap) => policyMatch(ap, 'CUSTOM', q) !== 'no');
  const allows = by('ALLOW');
  let allowVerdict: 'allowed' | 'denied' | 'conditional' = 'allowed';
  let allowRefs: IstioPolicyRef[] = [];
  if (allows.length > 0) {
    const yes = allows.filter((ap) => policyMatch(ap, 'ALLOW', q) === 'yes');
    const maybe = allows.filter((ap) => policyMatch(ap, 'ALLOW', q) === 'maybe');
    if (yes.length > 0) allowRefs = yes.map((ap) => apRef(ap, 'ALLOW'));
    else if (maybe.length > 0) {
      allowVerdict = 'conditional';
      allowRefs = maybe.map((ap) => apRef(ap, 'ALLOW'));
    } else {
      return {
        ...base, verdict: 'denied', policies: allows.map((ap) => apRef(ap, 'ALLOW')),
        reason: `no rule of the ALLOW policies ${allows.map((a) => `${a.metadata.namespace}/${a.metadata.name}`).join(', ')} matches ${who} on port ${q.port} at ${q.enforcer} ${at}` +
          (q.enforcer === 'ztunnel' && allows.some((a) => httpAttributesOf(a).length > 0) ? ' (rules that need HTTP never match at ztunnel)' : ''),
      };
    }
  }
  if (maybeDeny.length > 0 || custom.length > 0 || allowVerdict === 'conditional') {
    const refs = [...maybeDeny, ...custom.map((ap) => apRef(ap, 'CUSTOM')), ...allowRefs];
    const parts = [
      ...(maybeDeny.length > 0 ? [`DENY rules that need HTTP attributes (${maybeDeny.map((r) => `${r.namespace}/${r.name}`).join(', ')})`] : []),
      ...(custom.length > 0 ? [`an external authorizer (CUSTOM ${custom.map((a) => `${a.metadata.namespace}/${a.metadata.name}`).join(', ')})`] : []),
      ...(allowVerdict === 'conditional' ? [`ALLOW rules that need HTTP attributes (${allowRefs.map((r) => `${r.namespace}/${r.name}`).join(', ')})`] : []),
    ];
    return { ...base, verdict: 'conditional', policies: refs, reason: `${who} is admitted per request at ${q.enforcer} ${at}: ${parts.join(' and ')} decide each request` };
  }
  if (allowRefs.length > 0) {
    return { ...base, verdict: 'allowed', policies: allowRefs, reason: `ALLOW policy ${allowRefs.map((r) => `${r.namespace}/${r.name}`).join(', ')} matches ${who} on port ${q.port} at ${q.enforcer} ${at}` };
  }
  return { ...base, verdict: 'allowed', policies: [], reason: `no AuthorizationPolicy applies to ${who} on port ${q.port} at ${q.enforcer} ${at}: allowed by default` };
}

/** A STRICT PeerAuthentication at `dest` refuses plaintext: the decision, or undefined when plaintext is accepted. */
function strictRefusal(state: ClusterState, dest: Pod, port: number, enforcer: IstioEnforcer, sourceIp: string | undefined): IstioDecision | undefined {
  const mtls = effectiveMtls(state, dest, port);
  if (mtls.mode !== 'STRICT') return undefined;
  const pa: IstioPolicyRef[] = mtls.source ? [{ kind: 'PeerAuthentication', namespace: mtls.source.namespace, name: mtls.source.name, action: 'STRICT' }] : [];
  return {
    enforcer, at: ref(dest), verdict: 'denied', policies: pa,
    reason: `mTLS mode STRICT${mtls.source ? ` (PeerAuthentication ${mtls.source.namespace}/${mtls.source.name})` : ''} at ${enforcer} ${ref(dest)} refuses plaintext from ${sourceIp ?? 'a peer outside the mesh'}`,
  };
}

// ---------- the path ----------

function hop(state: ClusterState, from: Pod, fromName: string, to: Pod, toName: string, port: number, protocol: Protocol, kind: WireKind): WireHop {
  const fromIp = podIp(from);
  const toIp = podIp(to);
  return {
    from: fromName, ...(fromIp ? { fromIp } : {}), to: toName, ...(toIp ? { toIp } : {}), port, protocol, kind,
    cilium: evaluate(state, from, { type: 'pod', pod: to }, port, protocol),
  };
}

function hopText(h: WireHop): string {
  return `${h.from} -> ${h.to} :${h.port}/${h.protocol}`;
}

/**
 * The mesh path of `from` -> `dest` on the application port `appPort` (already translated from a Service
 * port), reached by address (`addressedTo` 'workload') or through Service `svc`. Undefined when neither
 * end is in the mesh (the application-level trace is then the whole story).
 */
function pathTo(state: ClusterState, from: Pod, dest: Pod, appPort: number, protocol: Protocol, svc: Service | undefined): MeshPath | undefined {
  const src = meshMode(state, from);
  const dst = meshMode(state, dest);
  if (src === 'none' && dst === 'none') return undefined;
  const notes: string[] = [];
  const hops: WireHop[] = [];
  const istio: IstioDecision[] = [];
  const fromName = ref(from);
  const destName = ref(dest);
  const srcIp = podIp(from);
  let wire: MeshPath['wire'];
  let waypoint: string | undefined;

  if (protocol !== 'TCP') {
    // ztunnel and sidecars capture TCP only: other protocols leave the pod as they are.
    notes.push(`the mesh carries TCP only: ${protocol} goes on the wire as sent, without a mesh proxy`);
    wire = 'plaintext';
    hops.push(hop(state, from, fromName, dest, destName, appPort, protocol, 'plaintext'));
  } else if (dst === 'ambient' && src !== 'none') {
    // Both ends in the mesh: HBONE to the destination pod's 15008, through its waypoint when the source's
    // ztunnel sends it there (sidecars do not use waypoints).
    const gw = svc ? serviceWaypoint(state, svc, dest) : waypointFor(state, dest);
    const viaWaypoint = gw && waypointTakes(gw, svc ? 'service' : 'workload') ? gw : undefined;
    if (gw && !viaWaypoint) notes.push(`waypoint ${gw.metadata.namespace}/${gw.metadata.name} takes ${gw.metadata.labels?.[WAYPOINT_FOR_LABEL] ?? 'service'} traffic (istio.io/waypoint-for), not traffic addressed to ${svc ? 'a Service' : 'a pod'}: not on this path`);
    if (viaWaypoint && src === 'sidecar') notes.push(`a sidecar sends directly to the destination, not through waypoint ${viaWaypoint.metadata.namespace}/${viaWaypoint.metadata.name}`);
    const useWaypoint = viaWaypoint && src === 'ambient' ? viaWaypoint : undefined;
    if (useWaypoint) {
      const wpPod = waypointPod(state, useWaypoint);
      waypoint = `${useWaypoint.metadata.namespace ?? ''}/${useWaypoint.metadata.name}`;
      const wpName = `waypoint ${waypoint} (pod ${ref(wpPod)})`;
      wire = 'hbone-via-waypoint';
      hops.push(hop(state, from, fromName, wpPod, wpName, HBONE_PORT, 'TCP', 'hbone'));
      hops.push(hop(state, wpPod, wpName, dest, destName, HBONE_PORT, 'TCP', 'hbone'));
      istio.push(authorize(waypointPolicies(state, useWaypoint, svc), {
        principal: principalOf(state, from), sourceNamespace: from.metadata.namespace ?? '', ...(srcIp ? { sourceIp: srcIp } : {}), port: appPort, enforcer: 'waypoint',
      }, waypoint));
      // The destination's ztunnel sees the waypoint's identity, not the client's (Istio's L4 policy docs).
      const wpIp = podIp(wpPod);
      istio.push(authorize(workloadPolicies(state, dest), {
        principal: principalOf(state, wpPod), sourceNamespace: wpPod.metadata.namespace ?? '', ...(wpIp ? { sourceIp: wpIp } : {}), port: appPort, enforcer: 'ztunnel',
      }, destName));
    } else {
      wire = 'hbone';
      hops.push(hop(state, from, fromName, dest, destName, HBONE_PORT, 'TCP', 'hbone'));
      istio.push(authorize(workloadPolicies(state, dest), {
        principal: principalOf(state, from), sourceNamespace: from.metadata.namespace ?? '', ...(srcIp ? { sourceIp: srcIp } : {}), port: appPort, enforcer: 'ztunnel',
      }, destName));
    }
  } else if (dst === 'sidecar' && src === 'ambient') {
    // ztunnel upgrades traffic to a destination with a sidecar to HBONE (Istio's ambient data plane docs).
    wire = 'hbone';
    hops.push(hop(state, from, fromName, dest, destName, HBONE_PORT, 'TCP', 'hbone'));
    istio.push(authorize(workloadPolicies(state, dest), {
      principal: principalOf(state, from), sourceNamespace: from.metadata.namespace ?? '', ...(srcIp ? { sourceIp: srcIp } : {}), port: appPort, enforcer: 'sidecar',
    }, destName));
  } else if (dst === 'sidecar' && src === 'sidecar') {
    // Sidecar to sidecar: Istio mTLS on the application port; the inbound redirect to 15006 happens
    // inside the destination pod, after Cilium's policy at the pod's interface.
    wire = 'mtls';
    hops.push(hop(state, from, fromName, dest, destName, appPort, protocol, 'mtls'));
    istio.push(authorize(workloadPolicies(state, dest), {
      principal: principalOf(state, from), sourceNamespace: from.metadata.namespace ?? '', ...(srcIp ? { sourceIp: srcIp } : {}), port: appPort, enforcer: 'sidecar',
    }, destName));
  } else if (dst === 'none') {
    // A meshed source to a pod outside the mesh: plaintext to the application port, no Istio authorization.
    wire = 'plaintext';
    notes.push(`${destName} is not in the mesh: ${src === 'ambient' ? 'ztunnel' : 'the sidecar'} sends plaintext to the application port`);
    hops.push(hop(state, from, fromName, dest, destName, appPort, protocol, 'plaintext'));
  } else {
    // A source outside the mesh to a meshed destination: plaintext on the application port, no waypoint;
    // the destination's ztunnel or sidecar authorizes it without a peer identity.
    wire = 'plaintext';
    const enforcer: IstioEnforcer = dst === 'ambient' ? 'ztunnel' : 'sidecar';
    const gw = dst === 'ambient' ? (svc ? serviceWaypoint(state, svc, dest) : waypointFor(state, dest)) : undefined;
    if (gw) notes.push(`${fromName} is not in the mesh: its traffic does not go through waypoint ${gw.metadata.namespace}/${gw.metadata.name}`);
    hops.push(hop(state, from, fromName, dest, destName, appPort, protocol, 'plaintext'));
    istio.push(strictRefusal(state, dest, appPort, enforcer, srcIp) ?? authorize(workloadPolicies(state, dest), { ...(srcIp ? { sourceIp: srcIp } : {}), port: appPort, enforcer }, destName));
  }

  const ciliumDenied = hops.find((h) => !h.cilium.allowed);
  const istioDenied = istio.find((d) => d.verdict === 'denied');
  const allowed = !ciliumDenied && !istioDenied;
  const decidedBy: MeshPath['decidedBy'] = ciliumDenied ? 'cilium' : istioDenied ? 'istio' : 'none';
  const summary = summarize(hops, istio, ciliumDenied, istioDenied);
  return {
    sourceMode: src, destinationMode: dst, destination: destName, appPort, wire, ...(waypoint ? { waypoint } : {}),
    hops, istio, allowed, decidedBy, summary, notes,
  };
}

function ciliumRefs(r: Reachability): string {
  const v = r.egress.verdict === 'denied' ? r.egress : r.ingress;
  return v.decidingPolicies.map((p) => `${p.kind} ${p.namespace ? p.namespace + '/' : ''}${p.name}`).join(', ');
}

function summarize(hops: readonly WireHop[], istio: readonly IstioDecision[], ciliumDenied: WireHop | undefined, istioDenied: IstioDecision | undefined): string {
  if (ciliumDenied) {
    const refs = ciliumRefs(ciliumDenied.cilium);
    const where = ciliumDenied.cilium.egress.verdict === 'denied' ? 'egress' : 'ingress';
    return `Cilium denies ${ciliumDenied.kind === 'hbone' ? 'HBONE ' : ''}${hopText(ciliumDenied)} (${where}${refs ? ': ' + refs : ''}): DENIED by Cilium`;
  }
  const wireText = hops.map((h) => `${h.kind === 'hbone' ? 'HBONE ' : ''}${h.port}`).filter((v, i, a) => a.indexOf(v) === i).join(', ');
  const ciliumPart = `Cilium allows ${wireText}`;
  const decisionText = (d: IstioDecision): string => {
    const who = d.policies.length > 0 ? d.policies.map((p) => `${p.kind} ${p.namespace}/${p.name}`).join(', ') : 'no AuthorizationPolicy';
    const verb = d.verdict === 'denied' ? 'denies' : d.verdict === 'allowed' ? 'allows' : 'decides per request';
    return `${who} ${verb} at ${d.enforcer}`;
  };
  if (istioDenied) return `${ciliumPart}; ${decisionText(istioDenied)}: DENIED by Istio`;
  if (istio.length === 0) return `${ciliumPart}; no mesh proxy authorizes it: ALLOWED`;
  const conditional = istio.some((d) => d.verdict === 'conditional');
  return `${ciliumPart}; ${istio.map(decisionText).join('; ')}: ALLOWED${conditional ? ' (HTTP attributes decide each request)' : ''}`;
}

/**
 * The mesh path of a trace query: `from` to a pod (or a pod's IP, or a Service ClusterIP, which resolves
 * to its backends: the first whose path is denied, else the first) on port/protocol. Undefined when the
 * target is not a pod, the pod is `from` itself, or neither end is in the mesh.
 */
export function meshPath(state: ClusterState, from: Pod, to: Target, port: number, protocol: Protocol): MeshPath | undefined {
  if (to.type === 'ip') {
    const svc = serviceByClusterIp(state, to.ip);
    const sp = svc?.spec.ports?.find((p) => p.port === port && (p.protocol ?? 'TCP').toUpperCase() === protocol);
    if (svc && sp) {
      let chosen: MeshPath | undefined;
      for (const backend of serviceBackendPods(state, svc)) {
        const target = serviceTargetPort(sp, backend);
        if (target === undefined || sameEndpoint(from, backend)) continue;
        const p = pathTo(state, from, backend, target, protocol, svc);
        if (!p) continue;
        if (!chosen || (chosen.allowed && !p.allowed)) chosen = p;
        if (!p.allowed) break;
      }
      return chosen;
    }
  }
  if (to.type !== 'pod' && to.type !== 'ip') return undefined;
  const dest = to.type === 'pod' ? to.pod : targetIdentity(state, from, to).pod;
  if (!dest || dest.spec.hostNetwork || from.spec.hostNetwork || sameEndpoint(from, dest)) return undefined;
  return pathTo(state, from, dest, port, protocol, undefined);
}

function sameEndpoint(a: Pod, b: Pod): boolean {
  return a === b || ((a.metadata.namespace ?? '') === (b.metadata.namespace ?? '') && a.metadata.name === b.metadata.name);
}
