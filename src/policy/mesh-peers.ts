// Ambient ingress semantics (hbone-15008-blocked, ambient-probe-snat-blocked): which peers a pod's
// ingress policy admits, a representative pod for each of them, whether HBONE (TCP 15008) is open to
// them, and the ingress verdict for a source that is an IP rather than a pod (the SNATed kubelet
// probes). Pure functions over a state.

import type { ClusterState, KubeObject, Labels, LabelSelector, Pod } from '../core/objects.ts';
import { ScopedWeakMap } from '../state/request-scope.ts';
import { ipFamily } from './cidr.ts';
import { namedPort } from './cluster.ts';
import { meshMode, namespaceAmbientEnabled, namespaceInjectionEnabled, waypointFor } from './istio.ts';
import { firstMatchCache, nsMatchCache } from './memo.ts';
import { formatPolicyRef } from './model.ts';
import { evaluate, ingressFromIp, reachable } from './reachability.ts';
import { enforcement, policiesSelecting } from './selection.ts';
import { matchesSelector, NAMESPACE_LABEL, NAMESPACE_LABELS_PREFIX, normalizeKey, selectorIsReserved, SERVICE_ACCOUNT_LABEL } from './selectors.ts';
import type { DenyMatch, Peer, PolicyModel, PolicyRef, RuleElement } from './types.ts';

/** ztunnel's HBONE port: mesh traffic between ambient workloads arrives on it, whatever the app port. */
export const HBONE_PORT = 15008;

/** The link-local address istio-cni SNATs kubelet probes to for ambient pods. */
export const PROBE_SNAT_IPV4 = '169.254.7.127';

/** Its IPv6 counterpart (single-stack IPv6 pods). */
export const PROBE_SNAT_IPV6 = 'fd16:9254:7127:1337:ffff:ffff:ffff:ffff';

// ---------- representative peers ----------

/** An ingress peer admitted on some app port, and the pod standing for it. */
export interface MeshPeer {
  readonly source: Pod;
  /** "pods app=gateway" for messages. */
  readonly description: string;
  readonly policy: PolicyRef;
  /** The app port the policy admits it on. */
  readonly appPort: number;
  /** Set when the connection really arrives from the destination's waypoint, not from the peer. */
  readonly waypoint?: string;
  /** Set when HBONE is dropped by deny rules (these policies) rather than for want of an allow. */
  readonly deniedBy?: readonly PolicyRef[];
  /** The deny elements that drop it (with deniedBy): which section and element, what they matched. */
  readonly denies?: readonly DenyMatch[];
}

/** The peer as cut off on 15008 from `source`: with the deny elements when a deny decides, as it is. */
function hboneCut(state: ClusterState, source: Pod, dest: Pod, peer: MeshPeer): MeshPeer {
  const v = evaluate(state, source, { type: 'pod', pod: dest }, HBONE_PORT, 'TCP').ingress;
  if (v.decidedBy?.by !== 'deny') return peer;
  return { ...peer, deniedBy: v.decidingPolicies, denies: v.decidedBy.denies };
}

/** Label Istio puts on the pods of a Gateway API gateway (waypoints included). */
const GATEWAY_NAME_LABEL = 'gateway.networking.k8s.io/gateway-name';

/** A pod of the waypoint serving `dest`: a live one, or one built from the gateway-name label. */
function waypointPod(state: ClusterState, dest: Pod): { pod: Pod; name: string } | undefined {
  const gw = waypointFor(state, dest);
  if (!gw) return undefined;
  const ns = gw.metadata.namespace ?? dest.metadata.namespace ?? '';
  const name = `${ns}/${gw.metadata.name}`;
  const live = state.podsWithLabel(ns, GATEWAY_NAME_LABEL, gw.metadata.name)[0] ?? state.podsWithLabel(ns, 'istio.io/gateway-name', gw.metadata.name)[0];
  if (live) return { pod: live, name };
  const pod = podFor(`(a pod of waypoint ${name})`, ns, { matchLabels: { [GATEWAY_NAME_LABEL]: gw.metadata.name } }, undefined);
  return pod ? { pod, name } : undefined;
}

function selectorText(sel: LabelSelector): string {
  const parts = Object.entries(sel.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const r of sel.matchExpressions ?? []) parts.push(`${r.key} ${r.operator}${r.values?.length ? ' ' + r.values.join('|') : ''}`);
  return parts.length > 0 ? parts.join(',') : '{}';
}

function peerText(peer: Peer | undefined): string {
  if (!peer) return 'any peer';
  switch (peer.type) {
    case 'endpoints':
      return `pods ${selectorText(peer.selector)}${peer.namespaceSelector ? ` in namespaces ${selectorText(peer.namespaceSelector)}` : ''}`;
    case 'entities':
      return `entities ${peer.entities.join(',')}`;
    default:
      return peer.type;
  }
}

/** The namespace a representative of an endpoints peer lives in, or undefined when none can be chosen. */
function peerNamespace(state: ClusterState, peer: Extract<Peer, { type: 'endpoints' }>, dest: Pod): string | undefined {
  const destNs = dest.metadata.namespace ?? '';
  const pinned = Object.entries(peer.selector.matchLabels ?? {}).find(([k]) => normalizeKey(k) === NAMESPACE_LABEL);
  if (pinned) return pinned[1];
  const pinnedIn = (peer.selector.matchExpressions ?? []).find((r) => normalizeKey(r.key) === NAMESPACE_LABEL && r.operator === 'In');
  if (pinnedIn?.values?.length) {
    // A meshed namespace first (its pods use HBONE), the destination's own among them, as for
    // namespaceSelector peers below; a non-mesh one only when none is meshed.
    const meshed = (v: string): boolean => meshedNamespace(state.get('Namespace', undefined, v));
    if (pinnedIn.values.includes(destNs) && meshed(destNs)) return destNs;
    return pinnedIn.values.find(meshed) ?? (pinnedIn.values.includes(destNs) ? destNs : pinnedIn.values[0]);
  }
  if (peer.namespace !== undefined) return peer.namespace;
  if (peer.namespaceSelector) {
    const labelsOf = (name: string): Labels => ({
      'kubernetes.io/metadata.name': name,
      ...(state.get('Namespace', undefined, name)?.metadata.labels ?? {}),
    });
    // Prefer the destination's own namespace when it is meshed: the likeliest mesh peer, and no scan
    // needed. Outside the mesh (the destination enrolled by its pod label) its pods connect in plaintext
    // and would hide meshed namespaces the selector also matches.
    const ownMatches = matchesSelector(peer.namespaceSelector, labelsOf(destNs));
    if (ownMatches && meshedNamespace(state.get('Namespace', undefined, destNs))) return destNs;
    const first = firstNamespaceMatching(state, peer.namespaceSelector, labelsOf);
    return ownMatches && (first === undefined || !meshedNamespace(state.get('Namespace', undefined, first))) ? destNs : first;
  }
  return destNs; // CCNP peer without namespace: any namespace, the destination's will do
}

/** The namespace's pods join the mesh (ambient enrolment or sidecar injection). */
function meshedNamespace(ns: KubeObject | undefined): boolean {
  return namespaceAmbientEnabled(ns) || namespaceInjectionEnabled(ns);
}

function firstNamespaceMatching(state: ClusterState, selector: LabelSelector, labelsOf: (name: string) => Labels): string | undefined {
  const list = state.list('Namespace');
  const text = JSON.stringify(selector);
  let bySel = firstMatchCache.get(list);
  if (!bySel) firstMatchCache.set(list, (bySel = new Map()));
  let hit = bySel.get(text);
  if (hit === undefined) {
    // A Namespace update makes a new list: rescan, but judge each unchanged Namespace object from memory.
    let byNs = nsMatchCache.get(text);
    if (!byNs) {
      if (nsMatchCache.size >= SELECTOR_CACHE_LIMIT) nsMatchCache.clear(); // selectors seen over time: bounded
      nsMatchCache.set(text, (byNs = new ScopedWeakMap()));
    }
    const memo = byNs;
    const matches = (n: object & { metadata: { name: string } }): boolean => {
      if (state.get('Namespace', undefined, n.metadata.name) !== n) return matchesSelector(selector, labelsOf(n.metadata.name));
      let m = memo.get(n);
      if (m === undefined) memo.set(n, (m = matchesSelector(selector, labelsOf(n.metadata.name))));
      return m;
    };
    // Meshed namespaces first: their pods reach the destination over HBONE, so one of them is the peer
    // that matters (a non-mesh namespace that happens to come first would hide them).
    hit = (list.find((n) => meshedNamespace(n) && matches(n)) ?? list.find(matches))?.metadata.name ?? null;
    if (bySel.size >= SELECTOR_CACHE_LIMIT) bySel.clear();
    bySel.set(text, hit);
  }
  return hit ?? undefined;
}

const SELECTOR_CACHE_LIMIT = 4096;

/** A pod (not in the state) that an endpoints selector selects, or undefined when it cannot be built. */
function podFor(name: string, namespace: string, selector: LabelSelector, nodeName: string | undefined): Pod | undefined {
  const labels: Record<string, string> = {};
  let sa = 'default';
  const put = (rawKey: string, value: string): boolean => {
    const key = normalizeKey(rawKey);
    if (key === NAMESPACE_LABEL) return true;
    if (key === SERVICE_ACCOUNT_LABEL) {
      sa = value;
      return true;
    }
    // Namespace labels and reserved/other sources cannot be put on a pod: the reachable() check that
    // follows drops the representative if the selector needed them.
    if (key.includes(':') || key.startsWith(NAMESPACE_LABELS_PREFIX)) return true;
    labels[key] = value;
    return true;
  };
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) put(k, String(v ?? ''));
  for (const r of selector.matchExpressions ?? []) {
    if (r.operator === 'In' && r.values?.[0] !== undefined) put(r.key, r.values[0]);
    else if (r.operator === 'Exists' && labels[normalizeKey(r.key)] === undefined) put(r.key, 'true');
  }
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels },
    spec: { serviceAccountName: sa, containers: [], ...(nodeName ? { nodeName } : {}) },
  };
}

/** Stand-in app port for a destination that declares no TCP container port. */
const DEFAULT_APP_PORT = 80;

/**
 * The app ports a peer admitted on every port may use: the destination's declared TCP container ports
 * (HBONE's own port excluded), else a stand-in. Checking such a peer on 15008 itself would hide a deny
 * of 15008 behind the very check that is meant to find it.
 */
function appPorts(dest: Pod): number[] {
  const out: number[] = [];
  for (const c of [...dest.spec.containers, ...(dest.spec.initContainers ?? [])]) {
    for (const p of c.ports ?? []) {
      if ((p.protocol ?? 'TCP') === 'TCP' && p.containerPort !== HBONE_PORT && !out.includes(p.containerPort)) out.push(p.containerPort);
    }
  }
  return out.length > 0 ? out : [DEFAULT_APP_PORT];
}

/**
 * The TCP ports the element admits, to check a representative against ("app ports"). Elements that
 * admit every port yield the destination's app ports. Empty for UDP/SCTP-only elements (the mesh
 * carries TCP) and unresolvable named ports.
 */
function sampleTcpPorts(el: RuleElement, dest: Pod): number[] {
  if (el.ports.length === 0) return appPorts(dest);
  for (const s of el.ports) {
    if (s.ports.length === 0) return appPorts(dest);
    for (const r of s.ports) {
      if (r.protocol !== 'ANY' && r.protocol !== 'TCP') continue;
      if (typeof r.port === 'number') return r.port === 0 ? appPorts(dest) : [r.port];
      const p = namedPort(dest, r.port, 'TCP', true);
      if (p !== undefined) return [p];
    }
  }
  return [];
}

/**
 * Representatives of the in-cluster peers an allow element admits: one per endpoints peer, one plain
 * pod of the destination's namespace for `cluster`/`all` entities and for "any peer". CIDR, FQDN,
 * Service and other entity peers are never pods, so never mesh clients.
 */
function representatives(state: ClusterState, el: RuleElement, dest: Pod, ref: PolicyRef): { pod: Pod; peer?: Peer }[] {
  const destNs = dest.metadata.namespace ?? '';
  const plain = (): Pod => podFor(`(a pod of ${destNs})`, destNs, {}, dest.spec.nodeName)!;
  if (el.peers.length === 0) return [{ pod: plain() }];
  const out: { pod: Pod; peer?: Peer }[] = [];
  for (const peer of el.peers) {
    if (peer.type === 'entities') {
      if (peer.entities.includes('cluster') || peer.entities.includes('all')) out.push({ pod: plain(), peer });
    } else if (peer.type === 'endpoints') {
      if (selectorIsReserved(peer.selector)) continue;
      const ns = peerNamespace(state, peer, dest);
      if (ns === undefined) continue;
      const p = podFor(`(a pod matching ${formatPolicyRef(ref)} ${peerText(peer)})`, ns, peer.selector, dest.spec.nodeName);
      if (p) out.push({ pod: p, peer });
    }
  }
  return out;
}

/**
 * The mesh peers (sidecar or ambient pods, which reach an ambient destination over HBONE) that the
 * destination's ingress policy admits on an app port. Each is checked with reachable(), so a
 * representative that does not really match its selector, or is denied, is left out.
 */
export function admittedMeshPeers(state: ClusterState, dest: Pod): MeshPeer[] {
  const out: MeshPeer[] = [];
  const models: readonly PolicyModel[] = policiesSelecting(state, dest);
  for (const m of models) {
    for (const el of m.elements) {
      if (el.direction !== 'ingress' || el.deny) continue;
      const ports = sampleTcpPorts(el, dest);
      if (ports.length === 0) continue;
      for (const { pod, peer } of representatives(state, el, dest, m.ref)) {
        if (meshMode(state, pod) === 'none') continue;
        const appPort = ports.find((p) => reachable(state, pod, { type: 'pod', pod: dest }, p, 'TCP', 'ingress'));
        if (appPort === undefined) continue;
        out.push({ source: pod, description: peerText(peer), policy: m.ref, appPort });
      }
    }
  }
  // Ingress not enforced (deny rules only): every peer is admitted on every port, mesh peers included.
  if (!enforcement(state, dest, 'ingress').enforced) {
    const denying = models.find((m) => m.elements.some((e) => e.direction === 'ingress' && e.deny));
    const any = podFor(`(a pod of ${dest.metadata.namespace ?? ''})`, dest.metadata.namespace ?? '', {}, dest.spec.nodeName);
    if (denying && any && meshMode(state, any) !== 'none') {
      const appPort = appPorts(dest).find((p) => reachable(state, any, { type: 'pod', pod: dest }, p, 'TCP', 'ingress'));
      if (appPort !== undefined) out.push({ source: any, description: 'any peer (ingress not in default deny)', policy: denying.ref, appPort });
    }
  }
  return out;
}

/**
 * hbone-15008-blocked's check for one pod: undefined when it does not apply (not ambient), else the mesh
 * peers admitted on an app port that are denied on TCP 15008 (the waypoint first when it is cut off;
 * empty when HBONE is open to every admitted peer).
 */
export function hboneBlocked(state: ClusterState, dest: Pod): MeshPeer[] | undefined {
  if (meshMode(state, dest) !== 'ambient') return undefined;
  if (!enforcement(state, dest, 'ingress').enforced && !hasIngressDeny(state, dest)) return [];
  const peers = admittedMeshPeers(state, dest);
  const out: MeshPeer[] = [];
  // Service traffic to a pod behind a waypoint reaches it from the waypoint's pods, over HBONE as well.
  const wp = peers.length > 0 ? waypointPod(state, dest) : undefined;
  if (wp && !reachable(state, wp.pod, { type: 'pod', pod: dest }, HBONE_PORT, 'TCP', 'ingress')) {
    out.push(hboneCut(state, wp.pod, dest, { ...peers[0]!, waypoint: wp.name }));
  }
  for (const peer of peers) {
    if (peer.appPort === HBONE_PORT) {
      // Admitted on 15008 itself: the reachable() check above already covered HBONE.
      continue;
    }
    if (!reachable(state, peer.source, { type: 'pod', pod: dest }, HBONE_PORT, 'TCP', 'ingress')) {
      // Dropped by a deny (whether or not an allow matched: the deny wins) or for want of an allow.
      out.push(hboneCut(state, peer.source, dest, peer));
    }
  }
  return out;
}

/**
 * Did the blocked peer's traffic reach `dest` in `state` (the state before a change)? Over HBONE (TCP
 * 15008) when both ends used the mesh there, else in plaintext (or sidecar mTLS) on the app port; a
 * waypoint peer's service traffic came from the waypoint's pods on 15008 when there was one. A peer
 * that is cut off now but also was before stops no working traffic, whatever its selector text.
 */
export function meshPeerWorked(state: ClusterState, peer: MeshPeer, dest: Pod): boolean {
  const to = { type: 'pod', pod: dest } as const;
  if (peer.waypoint !== undefined) {
    const wp = waypointPod(state, dest);
    if (wp) return reachable(state, wp.pod, to, HBONE_PORT, 'TCP', 'ingress');
  }
  return mesh15008Works(state, peer.source, dest, peer.appPort);
}

/** `source` reaches `dest` on `appPort` in `state`: over HBONE when both are in the mesh, else directly. */
export function mesh15008Works(state: ClusterState, source: Pod, dest: Pod, appPort: number): boolean {
  const hbone = meshMode(state, dest) === 'ambient' && meshMode(state, source) !== 'none';
  return reachable(state, source, { type: 'pod', pod: dest }, hbone ? HBONE_PORT : appPort, 'TCP', 'ingress');
}

/**
 * A pod of a relabelled namespace that the relabel cuts off from an ambient `dest` whose HBONE is blocked
 * (`blocked`, from hboneBlocked in the state after): its traffic reached `dest` before (see
 * mesh15008Works) and now, in the mesh, is admitted on an app port but not on 15008. Returns it as a
 * blocked peer for the message, else undefined (it was not admitted before, or still gets through).
 */
export function cutOffByRelabel(before: ClusterState, after: ClusterState, source: Pod, dest: Pod, blocked: readonly MeshPeer[]): MeshPeer | undefined {
  if (meshMode(after, source) === 'none') return undefined;
  const to = { type: 'pod', pod: dest } as const;
  for (const peer of blocked) {
    if (peer.waypoint !== undefined) continue;
    const v = evaluate(after, source, to, peer.appPort, 'TCP').ingress;
    if (v.verdict !== 'allowed') continue;
    if (reachable(after, source, to, HBONE_PORT, 'TCP', 'ingress')) return undefined;
    if (!mesh15008Works(before, source, dest, peer.appPort)) return undefined;
    const policy = v.allowing[0]?.policy ?? peer.policy;
    return hboneCut(after, source, dest, { source, description: `pods of namespace ${source.metadata.namespace ?? ''}`, policy, appPort: peer.appPort });
  }
  return undefined;
}

function hasIngressDeny(state: ClusterState, pod: Pod): boolean {
  return policiesSelecting(state, pod).some((m) => m.elements.some((e) => e.direction === 'ingress' && e.deny));
}

/**
 * ambient-probe-snat-blocked's check for one pod: undefined when it does not apply (not ambient), false
 * when the SNATed kubelet probe source is denied, else true.
 */
export function probesAdmitted(state: ClusterState, pod: Pod): boolean | undefined {
  if (meshMode(state, pod) !== 'ambient') return undefined;
  return ingressFromIp(state, pod, probeSourceFor(pod)).verdict === 'allowed';
}

/** The SNAT source kubelet probes of this pod carry: IPv6 only for single-stack IPv6 pods. */
export function probeSourceFor(pod: Pod): string {
  const ips = [pod.status?.podIP, ...(pod.status?.podIPs ?? []).map((x) => x.ip)].filter((x): x is string => !!x);
  const v6only = ips.length > 0 && ips.every((ip) => ipFamily(ip) === 'ipv6');
  return v6only ? PROBE_SNAT_IPV6 : PROBE_SNAT_IPV4;
}
