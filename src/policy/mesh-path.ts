// The path a connection really takes through the mesh, for `meshguard trace`: which 5-tuples Cilium
// enforces on the wire (HBONE to TCP 15008 for ambient destinations, via a waypoint when one is on the
// path; the application port for sidecars and plaintext), Cilium's verdict on each, and Istio's
// AuthorizationPolicy / PeerAuthentication decision where it is enforced (destination ztunnel, waypoint
// or sidecar). Pure functions over a state; sources in docs/semantics.md ("The mesh path").

import type { ClusterState, Gateway, Labels, Pod, Service } from '../core/objects.ts';
import { authorize, type AuthzRequest, type IstioDecision, type IstioEnforcer, type IstioPolicyRef } from './authz.ts';

export type { IstioDecision, IstioEnforcer, IstioPolicyRef };
import { serviceBackendPods, serviceTargetPort } from './cluster.ts';
import { effectiveMtls, meshMode, principalOf, requestedServiceWaypoint, requestedWaypoint, serviceWaypointFor, WAYPOINT_GATEWAY_CLASS, waypointAuthorizationPolicies, waypointFor, workloadAuthorizationPolicies } from './istio.ts';
import { HBONE_PORT } from './mesh-peers.ts';
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

/**
 * Which traffic a waypoint takes (`istio.io/waypoint-for` on the Gateway): `service` (the default) takes
 * traffic addressed to a Service, `workload` traffic addressed to a pod IP, `all` both, `none` neither.
 */
function waypointTakes(gw: Gateway, addressedTo: 'service' | 'workload'): boolean {
  const v = gw.metadata.labels?.[WAYPOINT_FOR_LABEL] ?? 'service';
  return v === 'all' || v === addressedTo;
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

/** What an enforcer at `dest` sees of an mTLS / HBONE peer `from`. */
function peerRequest(state: ClusterState, from: Pod, dest: Pod, port: number, enforcer: IstioEnforcer): AuthzRequest {
  const sourceIp = podIp(from);
  const destinationIp = podIp(dest);
  return {
    principal: principalOf(state, from), sourceNamespace: from.metadata.namespace ?? '', sourceServiceAccount: from.spec?.serviceAccountName || 'default',
    ...(sourceIp ? { sourceIp } : {}), ...(destinationIp ? { destinationIp } : {}), port, enforcer,
  };
}

/** What an enforcer at `dest` sees of a plaintext peer: its address only. */
function plaintextRequest(from: Pod, dest: Pod, port: number, enforcer: IstioEnforcer): AuthzRequest {
  const sourceIp = podIp(from);
  const destinationIp = podIp(dest);
  return { ...(sourceIp ? { sourceIp } : {}), ...(destinationIp ? { destinationIp } : {}), port, enforcer };
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
    const gw = svc ? serviceWaypointFor(state, svc) : waypointFor(state, dest);
    const asked = gw ? undefined : svc ? requestedServiceWaypoint(state, svc) : requestedWaypoint(state, dest);
    if (asked) notes.push(`${svc ? `Service ${svc.metadata.namespace ?? ''}/${svc.metadata.name}` : destName} asks for waypoint ${asked.namespace}/${asked.name} (istio.io/use-waypoint), which does not exist, is not of class ${WAYPOINT_GATEWAY_CLASS} or does not admit its namespace: no waypoint is on this path`);
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
      istio.push(authorize(waypointAuthorizationPolicies(state, useWaypoint, svc), peerRequest(state, from, dest, appPort, 'waypoint'), waypoint));
      // The destination's ztunnel sees the waypoint's identity, not the client's (Istio's L4 policy docs).
      istio.push(authorize(workloadAuthorizationPolicies(state, dest), peerRequest(state, wpPod, dest, appPort, 'ztunnel'), destName));
    } else {
      wire = 'hbone';
      hops.push(hop(state, from, fromName, dest, destName, HBONE_PORT, 'TCP', 'hbone'));
      istio.push(authorize(workloadAuthorizationPolicies(state, dest), peerRequest(state, from, dest, appPort, 'ztunnel'), destName));
    }
  } else if (dst === 'sidecar' && src === 'ambient') {
    // ztunnel upgrades traffic to a destination with a sidecar to HBONE (Istio's ambient data plane docs).
    wire = 'hbone';
    hops.push(hop(state, from, fromName, dest, destName, HBONE_PORT, 'TCP', 'hbone'));
    istio.push(authorize(workloadAuthorizationPolicies(state, dest), peerRequest(state, from, dest, appPort, 'sidecar'), destName));
  } else if (dst === 'sidecar' && src === 'sidecar') {
    // Sidecar to sidecar: Istio mTLS on the application port; the inbound redirect to 15006 happens
    // inside the destination pod, after Cilium's policy at the pod's interface.
    wire = 'mtls';
    hops.push(hop(state, from, fromName, dest, destName, appPort, protocol, 'mtls'));
    istio.push(authorize(workloadAuthorizationPolicies(state, dest), peerRequest(state, from, dest, appPort, 'sidecar'), destName));
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
    const gw = dst === 'ambient' ? (svc ? serviceWaypointFor(state, svc) : waypointFor(state, dest)) : undefined;
    if (gw) notes.push(`${fromName} is not in the mesh: its traffic does not go through waypoint ${gw.metadata.namespace}/${gw.metadata.name}`);
    hops.push(hop(state, from, fromName, dest, destName, appPort, protocol, 'plaintext'));
    istio.push(strictRefusal(state, dest, appPort, enforcer, srcIp) ?? authorize(workloadAuthorizationPolicies(state, dest), plaintextRequest(from, dest, appPort, enforcer), destName));
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
