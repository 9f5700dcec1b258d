// Reachability: can pod `from` open a connection to a target on port/protocol, the way Cilium's datapath
// decides it? Egress of `from` and ingress of the destination pod are judged separately; in each, any
// matching deny wins, then any matching allow (union of CNP, CCNP and NetworkPolicy), then default deny
// if the direction is enforced, else allow. Sources for every rule are in docs/semantics.md.

import type { ClusterState, Labels, Pod, PolicyObject, Service } from '../core/objects.ts';
import type {
  Allowing,
  DecidedBy,
  Denial,
  DenyMatch,
  DenyPeer,
  Direction,
  DirectionVerdict,
  Peer,
  PolicyModel,
  PolicyRef,
  PortSection,
  Protocol,
  Reachability,
  RuleElement,
  Target,
} from './types.ts';
import { dnsNameMatches, normalizeDnsName } from './dns-pattern.ts';
import { canonicalIp, cidrInfo, cidrSetContains, ipFamily, isLinkLocal } from './cidr.ts';
import { apiserverEndpoints, dnsBackends, endpointSlicesRead, namedPort, nodeAddresses, serviceBackendPods, serviceTargetPort } from './cluster.ts';
import { formatPolicyRef, policyModel } from './model.ts';
import { podClassId } from './classes.ts';
import { podIdentityKey } from './identity.ts';
import { enforcement, enforcementOfModels, isCiliumEndpoint, modelSelects, policiesSelecting, policySettings, selectingLookup, type PolicySettings } from './selection.ts';
import { CLUSTER_LABEL, endpointLabels, identityLabelKept, matchesSelector, NAMESPACE_LABELS_PREFIX, reservedLabels, selectorIsReserved, selectorMentions } from './selectors.ts';
import { checkBudget } from '../core/budget.ts';
import { atLeast, clusterVersions } from './versions.ts';
import type { ScopedWeakMap } from '../state/request-scope.ts';
import { directionFactsByContent, fqdnPeerLists, ipIndexByList, keptAcrossPodEvents, perRevision, perRevisionFor, podIdentities, podIpAnswers, vipAnswers, namespaceLabelCache, vipIndexByList } from './memo.ts';

export { dnsNameMatches };

/** Every entity name Cilium accepts in toEntities/fromEntities. */
export const ENTITY_NAMES = [
  'host', 'remote-node', 'kube-apiserver', 'ingress', 'cluster', 'init', 'health', 'unmanaged',
  'world', 'world-ipv4', 'world-ipv6', 'all', 'none',
] as const;
/** Entities that name one kind of peer and so can be a reachability target. */
export const TARGET_ENTITIES = [
  'host', 'remote-node', 'kube-apiserver', 'ingress', 'init', 'health', 'unmanaged', 'world', 'world-ipv4', 'world-ipv6',
] as const;
/** Reserved identities the `cluster` entity includes besides every pod. */
const CLUSTER_RESERVED = ['host', 'remote-node', 'init', 'ingress', 'health', 'unmanaged', 'kube-apiserver'];

/** The peer of a connection as Cilium's policy sees it. */
export interface Identity {
  readonly description: string;
  /** A Cilium endpoint pod (pods in host network are node identities instead). */
  readonly pod?: Pod;
  /** Reserved labels: host, remote-node, kube-apiserver, world, world-ipv4, ... */
  readonly reserved: ReadonlySet<string>;
  /** Labels endpoint selectors match against. */
  readonly labels: Labels;
  /** The IP, when CIDR peers may select this identity. */
  readonly cidrIp?: string;
  /** A world peer of unknown address (entity:world, an FQDN): only /0 CIDRs of this family select it. */
  readonly worldFamily?: 'ipv4' | 'ipv6' | 'any';
  readonly fqdn?: string;
}

// ---------- identities ----------

const NO_RESERVED: ReadonlySet<string> = new Set();

function podIdentity(state: ClusterState, pod: Pod): Identity {
  // Per pod object and Namespace object (all the labels read): asked for both ends of every decision.
  const ns = state.get('Namespace', undefined, pod.metadata.namespace ?? '');
  const hit = podIdentities.get(pod);
  if (hit !== undefined && hit.namespace === ns) return hit.identity as Identity;
  const identity: Identity = {
    description: `pod ${pod.metadata.namespace ?? ''}/${pod.metadata.name}`,
    pod,
    reserved: NO_RESERVED,
    labels: endpointLabels(state, pod),
  };
  podIdentities.set(pod, { namespace: ns, identity });
  return identity;
}

function reservedIdentity(description: string, reserved: string[], extra: Partial<Identity> = {}): Identity {
  return { description, reserved: new Set(reserved), labels: reservedLabels(...reserved), ...extra };
}

/**
 * IP -> pod per namespace pod list. The index is keyed by the list array, which a state (and an overlay
 * over it) keeps identical until that namespace changes, so one changed pod does not re-index the cluster.
 */
function podByIp(state: ClusterState, ip: string): Pod | undefined {
  // Requests ask about the same few addresses (probe source, API server) for many pods. The answer is
  // kept per content token of the Pod kind, which a state keeps (and an admission overlay passes
  // through) until some pod changes: the scan over every namespace then runs once per address. (Keyed
  // on the whole-cluster Pod list instead, every pod event made the next request build a 50k list.)
  return lookupByToken(podIpAnswers, state.contentToken('Pod'), ip, () => scanPodByIp(state, ip));
}

function lookupByToken<T>(cache: ScopedWeakMap<object, Map<string, T | null>>, token: object, ip: string, scan: () => T | null): T | undefined {
  let answers = cache.get(token);
  if (!answers) cache.set(token, (answers = new Map()));
  let hit = answers.get(ip);
  if (hit === undefined) {
    hit = scan();
    if (answers.size > 10_000) answers.clear();
    answers.set(ip, hit);
  }
  return hit ?? undefined;
}

function scanPodByIp(state: ClusterState, ip: string): Pod | null {
  for (const ns of state.namespacesWith('Pod')) {
    const pods = state.list('Pod', ns);
    if (pods.length === 0) continue;
    const hit = podIpIndex(pods).get(ip);
    if (hit) return hit;
  }
  return null;
}

/** IP -> pod of one namespace's Pod list (memoised per list array). */
function podIpIndex(pods: readonly Pod[]): Map<string, Pod> {
  let idx = ipIndexByList.get(pods);
  if (!idx) {
    idx = new Map();
    for (const p of pods) {
      if (p.spec.hostNetwork) continue; // their IP is the node's
      for (const a of [p.status?.podIP, ...(p.status?.podIPs ?? []).map((x) => x.ip)]) {
        const c = a ? canonicalIp(a) : undefined;
        if (c) idx.set(c, p);
      }
    }
    ipIndexByList.set(pods, idx);
  }
  return idx;
}

/**
 * Builds the address indexes of one namespace that the first lookup of a pod IP or a Service ClusterIP
 * would otherwise build for every namespace in one piece (the warm-up calls it a namespace at a time,
 * so that no single step holds the event loop: issue 21). Answers are unchanged.
 */
export function indexAddressesOf(state: ClusterState, namespace: string): void {
  const pods = state.list('Pod', namespace);
  if (pods.length > 0) podIpIndex(pods);
  const services = state.list('Service', namespace);
  if (services.length > 0) vipIndex(services);
}

/** The identity Cilium assigns to an IP: a pod, a node (host/remote-node), the kube-apiserver, or world. */
export function ipIdentity(state: ClusterState, ip: string, localNode: string | undefined, settings = policySettings(state)): Identity {
  const c = canonicalIp(ip);
  if (!c) throw new Error(`not an IP address: ${ip}`);
  const apiserver = apiserverEndpoints(state).ips.some((a) => canonicalIp(a) === c);
  const node = nodeAddresses(state).get(c);
  // Node and apiserver addresses are never pod addresses, nor are link-local ones (169.254.0.0/16,
  // fe80::/10: pod IPs come from the pod CIDRs; istio-cni's probe source 169.254.7.127 is one): look
  // pods up only for the rest. The probe source is asked about for every ambient pod, and after any pod
  // change a lookup that finds nothing visits every namespace's index.
  const pod = apiserver || node !== undefined || isLinkLocal(c) ? undefined : podByIp(state, c);
  if (pod) return podIdentity(state, pod);
  const reserved: string[] = [];
  if (apiserver) reserved.push('kube-apiserver');
  if (node !== undefined) {
    reserved.push(node === localNode ? 'host' : 'remote-node');
    // Node IPs are only selectable by CIDR with policy-cidr-match-mode=nodes.
    return reservedIdentity(`${reserved.join('+')} ${c}`, reserved, settings.cidrMatchesNodes ? { cidrIp: c } : {});
  }
  reserved.push(worldLabel(settings, ipFamily(c) === 'ipv6' ? 'ipv6' : 'ipv4'));
  return reservedIdentity(`${apiserver ? 'kube-apiserver' : 'world'} ${c}`, reserved, { cidrIp: c });
}

/**
 * The reserved label of a world address of a family, as the agent's getWorldLabel gives it: the
 * family-qualified label when the other family is enabled too (dual stack), plain `world` on a
 * single-stack agent. So on a single-stack IPv4 cluster (the default) `world-ipv4` selects no address.
 */
function worldLabel(settings: PolicySettings, family: 'ipv4' | 'ipv6'): string {
  if (family === 'ipv4') return settings.ipv6 ? 'world-ipv4' : 'world';
  return settings.ipv4 ? 'world-ipv6' : 'world';
}

function firstNodeIp(state: ClusterState, pick: (node: string) => boolean): string | undefined {
  for (const [ip, node] of nodeAddresses(state)) if (pick(node)) return ip;
  return undefined;
}

/** The identity of a node-level peer of `pod`'s node: host when it is the same node, else remote-node. */
function nodeIdentity(state: ClusterState, node: string | undefined, localNode: string | undefined, ip: string | undefined, settings: PolicySettings): Identity {
  const name = node !== undefined && node === localNode ? 'host' : 'remote-node';
  const c = ip ? canonicalIp(ip) : undefined;
  return reservedIdentity(`${name}${node ? ' ' + node : ''}`, [name], settings.cidrMatchesNodes && c ? { cidrIp: c } : {});
}

/** The identity a target resolves to, seen from `from`. */
export function targetIdentity(state: ClusterState, from: Pod, to: Target): Identity {
  const settings = policySettings(state);
  const localNode = from.spec.nodeName;
  switch (to.type) {
    case 'pod':
      if (to.pod.spec.hostNetwork) return hostNetworkIdentity(state, to.pod, localNode, settings);
      return podIdentity(state, to.pod);
    case 'ip':
      return ipIdentity(state, to.ip, localNode, settings);
    case 'fqdn':
      return reservedIdentity(`fqdn ${to.name}`, ['world'], { fqdn: normalizeDnsName(to.name), worldFamily: 'any' });
    case 'entity': {
      const e = to.entity.toLowerCase();
      switch (e) {
        case 'kube-apiserver': {
          const ip = apiserverEndpoints(state).ips[0];
          return ip ? ipIdentity(state, ip, localNode, settings) : reservedIdentity('kube-apiserver', ['kube-apiserver']);
        }
        case 'host':
          return nodeIdentity(state, localNode, localNode, localNode ? firstNodeIp(state, (n) => n === localNode) : undefined, settings);
        case 'remote-node': {
          const ip = firstNodeIp(state, (n) => n !== localNode);
          return nodeIdentity(state, ip ? nodeAddresses(state).get(ip) : undefined, localNode, ip, settings);
        }
        case 'world':
          return reservedIdentity('world', ['world'], { worldFamily: 'any' });
        case 'world-ipv4':
          return reservedIdentity('world-ipv4', [worldLabel(settings, 'ipv4')], { worldFamily: 'ipv4' });
        case 'world-ipv6':
          return reservedIdentity('world-ipv6', [worldLabel(settings, 'ipv6')], { worldFamily: 'ipv6' });
        case 'ingress':
        case 'init':
        case 'health':
        case 'unmanaged':
          return reservedIdentity(e, [e]);
        default:
          throw new Error(`entity "${to.entity}" is not a single peer; use one of: ${TARGET_ENTITIES.join(', ')}`);
      }
    }
  }
}

/**
 * A host-network pod has its node's identity: the identity of its node address when that is a known
 * Node address (which also carries kube-apiserver for an apiserver static pod), else host/remote-node.
 */
function hostNetworkIdentity(state: ClusterState, pod: Pod, localNode: string | undefined, settings: PolicySettings): Identity {
  const ip = pod.status?.hostIP ?? pod.status?.podIP;
  const c = ip ? canonicalIp(ip) : undefined;
  if (c && nodeAddresses(state).has(c)) return ipIdentity(state, c, localNode, settings);
  return nodeIdentity(state, pod.spec.nodeName, localNode, c, settings);
}

/** The identity of `from` as the destination pod `to` sees it on ingress. */
function sourceIdentity(state: ClusterState, from: Pod, to: Pod, settings: PolicySettings): Identity {
  if (from.spec.hostNetwork) return hostNetworkIdentity(state, from, to.spec.nodeName, settings);
  return podIdentity(state, from);
}

// ---------- matching ----------

/** Does an entity name select this identity? */
export function entityMatches(entity: string, id: Identity): boolean {
  switch (entity) {
    case 'all':
      return true;
    case 'none':
      return false;
    case 'cluster':
      return !!id.pod || CLUSTER_RESERVED.some((r) => id.reserved.has(r));
    case 'world':
      return id.reserved.has('world') || id.reserved.has('world-ipv4') || id.reserved.has('world-ipv6');
    default:
      return id.reserved.has(entity);
  }
}

interface EvalContext {
  readonly state: ClusterState;
  readonly settings: PolicySettings;
  readonly from: Pod;
  /** Guards the DNS-visibility check against recursion. */
  readonly dnsCheck: boolean;
}

// Per Namespace object (a state never modifies one; a relabel is a new object).
function namespaceLabels(state: ClusterState, namespace: string): Labels {
  const nsObj = state.get('Namespace', undefined, namespace);
  if (!nsObj) return { 'kubernetes.io/metadata.name': namespace };
  let labels = namespaceLabelCache.get(nsObj);
  if (!labels) {
    // The agent matches a NetworkPolicy namespaceSelector against the pod identity's namespace labels,
    // so the identity-label filter applies to them as to pod labels.
    const kept = Object.entries(nsObj.metadata.labels ?? {}).filter(([k]) => identityLabelKept(NAMESPACE_LABELS_PREFIX + k));
    namespaceLabelCache.set(nsObj, (labels = { 'kubernetes.io/metadata.name': namespace, ...Object.fromEntries(kept) }));
  }
  return labels;
}

function endpointsPeerMatches(ctx: EvalContext, peer: Extract<Peer, { type: 'endpoints' }>, id: Identity): boolean {
  if (!id.pod) {
    // Reserved identities have no namespace: only unscoped selectors (e.g. reserved:host keys) can match.
    if (peer.namespace !== undefined || peer.namespaceSelector) return false;
    // Nor a cluster name: with policy-default-local-cluster the agent adds the local cluster to every
    // peer selector without `reserved:` keys or a cluster key of its own (getEndpointSelector,
    // addClusterFilterByDefault), so such a selector only selects pods.
    if (ctx.settings.peersLocalCluster && !selectorIsReserved(peer.selector) && !selectorMentions(peer.selector, CLUSTER_LABEL)) return false;
    return matchesSelector(peer.selector, id.labels);
  }
  const ns = id.pod.metadata.namespace ?? '';
  if (peer.namespace !== undefined && peer.namespace !== ns) return false;
  if (peer.namespaceSelector && !matchesSelector(peer.namespaceSelector, namespaceLabels(ctx.state, ns))) return false;
  return matchesSelector(peer.selector, id.labels);
}

function cidrPeerMatches(peer: Extract<Peer, { type: 'cidr' }>, id: Identity): boolean {
  if (id.cidrIp !== undefined) return cidrSetContains(peer.cidr, peer.except, id.cidrIp);
  if (id.worldFamily !== undefined) {
    // A world peer of unknown address is covered only by a whole-family prefix. Its `except` holes do
    // not take the world identity out: every prefix a policy names gets its own CIDR identity in the
    // ipcache, so the world identity is left for addresses outside all of them, and the agent's /0
    // selector (world label AND NOT the except prefixes) selects it. An FQDN's addresses may fall in
    // a hole, so for those only a /0 without holes counts.
    const info = cidrInfo(peer.cidr);
    return !!info && info.bits === 0 && (peer.except.length === 0 || id.fqdn === undefined) && (id.worldFamily === 'any' || id.worldFamily === info.family);
  }
  return false; // pods and node/apiserver identities are never selected by CIDR
}

function servicesPeerMatches(ctx: EvalContext, model: PolicyModel, peer: Extract<Peer, { type: 'services' }>, id: Identity): boolean {
  const { state } = ctx;
  const policyNs = model.ref.namespace || undefined;
  for (const raw of peer.services) {
    const byName = raw.k8sService as { serviceName?: unknown; namespace?: unknown } | undefined;
    const bySel = raw.k8sServiceSelector as { selector?: unknown; namespace?: unknown } | undefined;
    const services = [];
    if (byName && typeof byName.serviceName === 'string') {
      const ns = typeof byName.namespace === 'string' && byName.namespace ? byName.namespace : policyNs;
      if (ns !== undefined) {
        const s = state.get('Service', ns, byName.serviceName);
        if (s) services.push(s);
      } else services.push(...state.list('Service').filter((s) => s.metadata.name === byName.serviceName));
    }
    if (bySel && typeof bySel.selector === 'object' && bySel.selector) {
      const ns = typeof bySel.namespace === 'string' && bySel.namespace ? bySel.namespace : policyNs;
      const sel = bySel.selector as { matchLabels?: Labels; matchExpressions?: never };
      services.push(...state.list('Service', ns).filter((s) => matchesSelector(sel, s.metadata.labels ?? {})));
    }
    for (const svc of services) {
      const svcNs = svc.metadata.namespace ?? 'default';
      if (svc.spec.selector && Object.keys(svc.spec.selector).length > 0) {
        if (id.pod && (id.pod.metadata.namespace ?? '') === svcNs && matchesSelector({ matchLabels: svc.spec.selector }, id.pod.metadata.labels ?? {})) return true;
        continue;
      }
      // Selector-less Service: its EndpointSlices list the backend addresses.
      const ips = new Set<string>();
      for (const es of state.list('EndpointSlice', svcNs)) {
        if (es.metadata.labels?.['kubernetes.io/service-name'] !== svc.metadata.name) continue;
        for (const e of es.endpoints ?? []) for (const a of e.addresses ?? []) ips.add(canonicalIp(a) ?? a);
      }
      const candidates = id.pod ? [id.pod.status?.podIP, ...(id.pod.status?.podIPs ?? []).map((x) => x.ip)] : [id.cidrIp];
      if (candidates.some((ip) => ip !== undefined && ips.has(canonicalIp(ip) ?? ip))) return true;
    }
  }
  return false;
}

function peerMatches(ctx: EvalContext, model: PolicyModel, el: RuleElement, peer: Peer, id: Identity): boolean {
  switch (peer.type) {
    case 'endpoints':
      return endpointsPeerMatches(ctx, peer, id);
    case 'entities':
      return peer.entities.some((e) => entityMatches(e, id));
    case 'cidr':
      return cidrPeerMatches(peer, id);
    case 'fqdn':
      if (id.fqdn === undefined || !dnsNameMatches(peer, id.fqdn)) return false;
      // Deny rules do not support toFQDNs; for allows the DNS proxy must have seen the lookup.
      return el.deny || dnsVisible(ctx, id.fqdn);
    case 'services':
      return servicesPeerMatches(ctx, model, peer, id);
  }
}

// Shared results for the common no-section cases (portMatch runs per element per evaluation).
const NO_PORT_MATCH: { readonly matched: boolean; readonly section?: PortSection } = Object.freeze({ matched: false });
const ALL_PORTS_MATCH: { readonly matched: boolean; readonly section?: PortSection } = Object.freeze({ matched: true });

/** The port section of an element that admits port/protocol (undefined section = element has no ports). */
function portMatch(
  el: RuleElement,
  port: number,
  protocol: Protocol,
  destPod: Pod | undefined,
  endPorts = true,
): { readonly matched: boolean; readonly section?: PortSection } {
  if (el.ports.length === 0) return ALL_PORTS_MATCH;
  for (const section of el.ports) {
    if (section.ports.length === 0) return { matched: true, section };
    for (const r of section.ports) {
      if (r.protocol !== 'ANY' && r.protocol !== protocol) continue;
      let lo: number | undefined;
      if (typeof r.port === 'number') lo = r.port;
      else if (destPod) lo = namedPort(destPod, r.port, r.protocol === 'ANY' ? protocol : r.protocol, true);
      if (lo === undefined || lo < 0) continue;
      if (lo === 0) return { matched: true, section }; // port 0 = every port
      // Agents before 1.16 ignore endPort (cilium#28684): the rule is its first port only.
      const hi = endPorts && r.endPort !== undefined && r.endPort >= lo ? r.endPort : lo;
      if (port >= lo && port <= hi) return { matched: true, section };
    }
  }
  return NO_PORT_MATCH;
}

// Most evaluations match nothing in a direction: share the empty answer instead of allocating it.
const NO_REFS: readonly PolicyRef[] = Object.freeze([]);
const NO_ALLOWING: readonly Allowing[] = Object.freeze([]);

/** el.peers.some(peerMatches), without allocating a closure per element on this hot path. */
function anyPeerMatches(ctx: EvalContext, model: PolicyModel, el: RuleElement, id: Identity): boolean {
  for (const p of el.peers) if (peerMatches(ctx, model, el, p, id)) return true;
  return false;
}

/**
 * What one direction's decision saw, for explanations: `meshguard trace`, evaluate() and the messages
 * that name deciding policies pass one; the rules' fast path (reachable) passes none.
 */
export interface Tracer {
  /** Policy does not apply at the subject at all: `never` (enable-policy=never) or `not-endpoint`. */
  unenforced(why: 'never' | 'not-endpoint'): void;
  /** An element of `model` matched the peer and the port (its port section when it has ports): a deny or an allow. */
  matched(model: PolicyModel, el: RuleElement, section: PortSection | undefined): void;
}

/**
 * THE decision of one direction at `subject` (the pod whose policy applies) against `peer`: a matching
 * deny wins; else allowed when some allow matches or the direction is not enforced. With a tracer every
 * matching element is reported (no early return); without one, nothing is allocated.
 */
function decideDirection(
  ctx: EvalContext,
  subject: Pod,
  direction: Direction,
  peer: Identity,
  port: number,
  protocol: Protocol,
  destPod: Pod | undefined,
  tracer: Tracer | undefined,
  localHost = false,
): boolean {
  if (ctx.settings.enablePolicy === 'never') {
    tracer?.unenforced('never');
    return true;
  }
  if (!isCiliumEndpoint(subject)) {
    tracer?.unenforced('not-endpoint');
    return true;
  }
  let allowed = false;
  let denied = false;
  // Which rule decided is worked out when someone asks: a Collector (evaluate) or recordDenials. The
  // DNS-visibility check inside an FQDN match is not the flow's decision: never recorded.
  const recorder = ctx.dnsCheck ? undefined : recording;
  const collector = tracer instanceof Collector ? tracer : undefined;
  const t = tracer ?? (recorder ? NO_TRACER : undefined);
  let denies: DenyMatch[] | undefined;
  const models = policiesSelecting(ctx.state, subject);
  for (const m of models) {
    for (const el of m.elements) {
      if (el.direction !== direction) continue;
      const pm = portMatch(el, port, protocol, destPod, ctx.settings.endPortSupported);
      if (!pm.matched) continue;
      if (el.peers.length > 0 && !anyPeerMatches(ctx, m, el, peer)) continue;
      if (t === undefined) {
        if (el.deny) return false;
        allowed = true;
      } else {
        t.matched(m, el, pm.section);
        if (el.deny) {
          denied = true;
          if (recorder || collector) (denies ??= []).push(denyMatchOf(ctx, m, el, peer, port, protocol, destPod));
        } else allowed = true;
      }
    }
  }
  if (denied) {
    if (recorder || collector) decided(recorder, collector, subject, direction, peer, port, protocol, { by: 'deny', denies: denies ?? [] });
    return false;
  }
  if (allowed) return true;
  const enf = enforcementOfModels(models, direction, ctx.settings);
  if (!enf.enforced || (localHost && localHostAllowed(ctx.state, subject))) return true;
  if (recorder || collector) decided(recorder, collector, subject, direction, peer, port, protocol, { by: 'default-deny', enforcedBy: enf.by });
  return false;
}

// ---------- which rule decided ----------

/** The denials recordDenials is collecting (undefined: none is running, nothing is recorded). */
let recording: Denial[] | undefined;

/** Is recordDenials running? Memos that answer without deciding (policy/reach-memo.ts) decide afresh then. */
export function recordingDenials(): boolean {
  return recording !== undefined;
}

/** A tracer that keeps nothing: decideDirection's full pass when only recordDenials asks. */
const NO_TRACER: Tracer = { unenforced: () => undefined, matched: () => undefined };

/**
 * Run `run` (any reachability question: reachable, evaluate, ingressFromIpAllowed,
 * evaluateIngressFromAddress, or a predicate built on them) and collect every direction it found denied,
 * with the rule that decided each (a deny element, or default deny). Synchronous and nestable: an inner
 * call collects its own. Outside of it, nothing is recorded and the fast path allocates nothing.
 */
export function recordDenials<T>(run: () => T): { readonly result: T; readonly denials: readonly Denial[] } {
  const outer = recording;
  const mine: Denial[] = [];
  recording = mine;
  try {
    return { result: run(), denials: mine };
  } finally {
    recording = outer;
  }
}

/**
 * Adds denials recorded before (by an inner recordDenials) to the running recordDenials, if one runs:
 * for a memo that keeps a question's denials with its answer (policy/reach-memo.ts).
 */
export function replayDenials(denials: readonly Denial[]): void {
  if (recording !== undefined) for (const d of denials) recording.push(d);
}

function decided(
  recorder: Denial[] | undefined,
  collector: Collector | undefined,
  subject: Pod,
  direction: Direction,
  peer: Identity,
  port: number,
  protocol: Protocol,
  decidedBy: DecidedBy,
): void {
  if (collector) collector.decidedBy = decidedBy;
  recorder?.push({ direction, subject: `${subject.metadata.namespace ?? ''}/${subject.metadata.name}`, peer: peer.description, port, protocol, decidedBy });
}

/** A deny element that matched: where it is written, which of its peers selected `peer`, which port rules matched. */
function denyMatchOf(ctx: EvalContext, m: PolicyModel, el: RuleElement, peer: Identity, port: number, protocol: Protocol, destPod: Pod | undefined): DenyMatch {
  const peers: DenyPeer[] = [];
  for (const p of el.peers) {
    if (!peerMatches(ctx, m, el, p, peer)) continue;
    switch (p.type) {
      case 'entities':
        for (const e of p.entities) if (entityMatches(e, peer)) peers.push({ type: 'entity', entity: e });
        break;
      case 'cidr':
        peers.push({ type: 'cidr', cidr: p.cidr, except: p.except });
        break;
      case 'endpoints':
        peers.push({ type: 'endpoints', selector: p.selector });
        break;
      case 'services':
      case 'fqdn': // deny rules have no toFQDNs; kept for completeness
        peers.push({ type: 'services' });
        break;
    }
  }
  if (el.peers.length === 0) peers.push({ type: 'any' });
  const ports: string[] = [];
  for (const section of el.ports) {
    for (const r of section.ports) {
      // Only the port rules that match this flow (one element may list 53/UDP and 443/TCP).
      if (!portMatch({ ...el, ports: [{ ports: [r] }] }, port, protocol, destPod, ctx.settings.endPortSupported).matched) continue;
      // Port 0 is every port (written `all/TCP` here).
      const range = r.port === 0 ? 'all' : r.endPort !== undefined && ctx.settings.endPortSupported ? `${r.port}-${r.endPort}` : `${r.port}`;
      ports.push(`${range}/${r.protocol}`);
    }
    if (section.ports.length === 0) ports.push('all/ANY');
  }
  return {
    policy: m.ref,
    specIndex: m.specIndex,
    section: el.direction === 'egress' ? 'egressDeny' : 'ingressDeny',
    index: el.index ?? 0,
    peers,
    ports,
  };
}

/**
 * The agent's allow-localhost (`always` in Kubernetes mode) for traffic from the local host (the
 * endpoint's own node address, a host-network pod on the same node) to an endpoint in ingress default
 * deny: an allow of the lowest precedence, so a matching deny rule still wins. Cilium 1.20 adds it only
 * beside the endpoint's ingress rules (`computePolicyEnforcementAndRules`: `addDefaultRule` with
 * `HostSelectors` when the ingress rules enable default deny), so an endpoint that `enable-policy: always`
 * alone puts into default deny does not admit its host; before 1.20 it was inserted into every endpoint's
 * map state (`determineAllowLocalhostIngress`). Found by the conformance test.
 */
function localHostAllowed(state: ClusterState, dest: Pod): boolean {
  if (!atLeast(clusterVersions(state).cilium, 1, 20)) return true;
  return policiesSelecting(state, dest).some((m) => m.hasSection.ingress);
}

const LOCAL_HOST_REASON = 'traffic from the local host to its endpoints is allowed (allow-localhost)';

/** A Tracer that keeps what evaluate() explains: the deny rules' policies and the allowing elements. */
class Collector implements Tracer {
  why: 'never' | 'not-endpoint' | undefined;
  /** When the direction was denied: the rule that decided (decideDirection sets it). */
  decidedBy: DecidedBy | undefined;
  denies: PolicyRef[] | undefined;
  allowing: Allowing[] | undefined;
  unenforced(why: 'never' | 'not-endpoint'): void {
    this.why = why;
  }
  matched(model: PolicyModel, el: RuleElement, section: PortSection | undefined): void {
    if (el.deny) {
      this.denies ??= [];
      if (!this.denies.includes(model.ref)) this.denies.push(model.ref);
    } else {
      (this.allowing ??= []).push(section ? { policy: model.ref, element: el, portSection: section } : { policy: model.ref, element: el });
    }
  }
}

function uniq(refs: readonly PolicyRef[]): PolicyRef[] {
  const out: PolicyRef[] = [];
  for (const r of refs) if (!out.some((o) => o.kind === r.kind && o.namespace === r.namespace && o.name === r.name)) out.push(r);
  return out;
}

function names(refs: readonly PolicyRef[]): string {
  return refs.map(formatPolicyRef).join(', ');
}

/** decideDirection, explained: the verdict with its deciding policies, allowing rules and reason. */
function judge(
  ctx: EvalContext,
  subject: Pod,
  direction: Direction,
  peer: Identity,
  port: number,
  protocol: Protocol,
  destPod: Pod | undefined,
  localHost = false,
): DirectionVerdict {
  const who = `${subject.metadata.namespace ?? ''}/${subject.metadata.name}`;
  const c = new Collector();
  const ok = decideDirection(ctx, subject, direction, peer, port, protocol, destPod, c, localHost);
  if (c.why === 'never') {
    return { enforced: false, verdict: 'allowed', decidingPolicies: [], allowing: [], reason: 'enable-policy=never: Cilium enforces no policy' };
  }
  if (c.why === 'not-endpoint') {
    return {
      enforced: false, verdict: 'allowed', decidingPolicies: [], allowing: [],
      reason: `${who} is not a Cilium endpoint (host network or finished): endpoint policy does not apply`,
    };
  }
  const enf = enforcement(ctx.state, subject, direction);
  const denies = c.denies ?? NO_REFS;
  const allowing = c.allowing ?? NO_ALLOWING;
  const what = `${direction} of ${who} ${direction === 'egress' ? 'to' : 'from'} ${peer.description} on ${port}/${protocol}`;
  if (!ok && denies.length > 0) {
    const decidedBy = c.decidedBy ?? { by: 'deny' as const, denies: [] };
    return { enforced: enf.enforced, verdict: 'denied', decidingPolicies: uniq(denies), allowing, reason: `${what} is denied by a deny rule in ${names(uniq(denies))}`, decidedBy };
  }
  if (ok && !enf.enforced) {
    return {
      enforced: false, verdict: 'allowed', decidingPolicies: [], allowing,
      reason: `${what}: allowed, no policy puts ${who} into default deny for ${direction}`,
    };
  }
  if (ok && localHost && allowing.length === 0) {
    return { enforced: true, verdict: 'allowed', decidingPolicies: [], allowing, reason: `${what}: ${LOCAL_HOST_REASON}` };
  }
  if (ok) {
    const refs = uniq(allowing.map((a) => a.policy));
    return { enforced: true, verdict: 'allowed', decidingPolicies: refs, allowing, reason: `${what} is allowed by ${names(refs)}` };
  }
  const by = enf.by.length > 0 ? ` (default deny from ${names(enf.by)})` : ' (enable-policy=always)';
  return { enforced: true, verdict: 'denied', decidingPolicies: enf.by, allowing, reason: `${what}: no allow rule matches${by}`, decidedBy: c.decidedBy ?? { by: 'default-deny', enforcedBy: enf.by } };
}

/**
 * Would the DNS proxy see `from`'s lookup of `name`? Some egress allow from `from` to a DNS backend pod
 * on a DNS port must carry a `rules.dns` entry that matches the name (and no deny may block it).
 */
function dnsVisible(ctx: EvalContext, name: string): boolean {
  if (ctx.dnsCheck) return false;
  const inner: EvalContext = { ...ctx, dnsCheck: true };
  const dns = dnsBackends(ctx.state);
  const ports = dns.ports.length > 0 ? dns.ports : [{ port: 53, protocol: 'UDP' as const }];
  for (const backend of dns.pods) {
    const id = targetIdentity(ctx.state, ctx.from, { type: 'pod', pod: backend });
    for (const p of ports) {
      const v = judge(inner, ctx.from, 'egress', id, p.port, p.protocol, backend);
      if (v.verdict !== 'allowed') continue;
      if (v.allowing.some((a) => a.portSection?.rules?.dns?.some((r) => dnsNameMatches(r, name)))) return true;
    }
  }
  return false;
}

// ClusterIP -> Service, per namespace Service list (identical across revisions that change no Service there).
/** The Service whose ClusterIP is `ip`, if any. */
export function serviceByClusterIp(state: ClusterState, ip: string): Service | undefined {
  const c = canonicalIp(ip);
  if (!c) return undefined;
  return lookupByToken(vipAnswers, state.contentToken('Service'), c, () => scanServiceByIp(state, c));
}

function scanServiceByIp(state: ClusterState, c: string): Service | null {
  for (const ns of state.namespacesWith('Service')) {
    const services = state.list('Service', ns);
    if (services.length === 0) continue;
    const hit = vipIndex(services).get(c);
    if (hit) return hit;
  }
  return null;
}

/** ClusterIP -> Service of one namespace's Service list (memoised per list array). */
function vipIndex(services: readonly Service[]): Map<string, Service> {
  let idx = vipIndexByList.get(services);
  if (!idx) {
    idx = new Map();
    for (const svc of services) {
      const ips = svc.spec.clusterIPs?.length ? svc.spec.clusterIPs : svc.spec.clusterIP ? [svc.spec.clusterIP] : [];
      for (const vip of ips) {
        const v = vip && vip !== 'None' ? canonicalIp(vip) : undefined;
        if (v) idx.set(v, svc);
      }
    }
    vipIndexByList.set(services, idx);
  }
  return idx;
}

/**
 * A Service ClusterIP is translated to a backend before policy applies (Cilium's service load-balancing
 * runs ahead of policy), so the flow is judged against each selected backend pod on its target port.
 * The answer is the first backend that is denied, else the first backend. Undefined when `ip` is not a
 * ClusterIP of a Service with that port and selected backends (the IP is then judged as an address).
 */
function evaluateServiceVip(state: ClusterState, from: Pod, ip: string, port: number, protocol: Protocol): Reachability | undefined {
  const svc = serviceByClusterIp(state, ip);
  if (!svc) return undefined;
  const sp = (svc.spec.ports ?? []).find((p) => p.port === port && (p.protocol ?? 'TCP').toUpperCase() === protocol);
  if (!sp) return undefined;
  let chosen: { r: Reachability; pod: Pod; target: number } | undefined;
  // Backends of one pod class on one node and target port get the same verdict (policy/classes.ts):
  // each such group is judged once, so a Service with thousands of replicas costs per class.
  const judged = new Set<string>();
  for (const backend of serviceBackendPods(state, svc)) {
    const target = serviceTargetPort(sp, backend);
    if (target === undefined) continue;
    // `from` itself among the backends is judged on its own (traffic to itself).
    const group = isSamePod(from, backend) ? undefined : `${podClassId(backend)}\u0000${backend.spec.nodeName ?? ''}\u0000${target}`;
    if (group !== undefined) {
      if (judged.has(group)) continue;
      judged.add(group);
    }
    const r = evaluate(state, from, { type: 'pod', pod: backend }, target, protocol);
    if (!chosen || (chosen.r.allowed && !r.allowed)) chosen = { r, pod: backend, target };
    if (!r.allowed) break;
  }
  if (!chosen) return undefined;
  const via = `via Service ${svc.metadata.namespace ?? ''}/${svc.metadata.name} (${port} -> ${chosen.pod.metadata.namespace ?? ''}/${chosen.pod.metadata.name}:${chosen.target}): `;
  const prefix = (v: DirectionVerdict): DirectionVerdict => ({ ...v, reason: via + v.reason });
  return { allowed: chosen.r.allowed, egress: prefix(chosen.r.egress), ingress: prefix(chosen.r.ingress) };
}

function isSamePod(a: Pod, b: Pod): boolean {
  return a === b || ((a.metadata.namespace ?? '') === (b.metadata.namespace ?? '') && a.metadata.name === b.metadata.name);
}

const notAPod: DirectionVerdict = {
  enforced: false,
  verdict: 'allowed',
  decidingPolicies: [],
  allowing: [],
  reason: 'destination is not a Cilium endpoint: no ingress policy applies',
};

/**
 * Can `from` reach `to` on port/protocol? Egress is judged at `from`; ingress at the destination when it
 * is a Cilium endpoint pod (a pod target, or an IP that is a pod's address). `port` 0 asks for "every
 * port": only rules that allow all ports match it.
 */
export function evaluate(state: ClusterState, from: Pod, to: Target, port: number, protocol: Protocol): Reachability {
  checkBudget();
  if (to.type === 'ip') {
    const viaService = evaluateServiceVip(state, from, to.ip, port, protocol);
    if (viaService) return viaService;
  }
  const settings = policySettings(state);
  const dest = targetIdentity(state, from, to);
  const destPod = dest.pod;
  if (destPod && isSamePod(from, destPod)) {
    // A pod's connection to its own address never leaves its network namespace: no policy sees it.
    const self = (direction: Direction): DirectionVerdict => ({
      enforced: enforcement(state, from, direction).enforced, verdict: 'allowed', decidingPolicies: [], allowing: [],
      reason: 'a pod reaching itself stays inside its network namespace: policy does not apply',
    });
    return { allowed: true, egress: self('egress'), ingress: self('ingress') };
  }
  const ctx: EvalContext = { state, settings, from, dnsCheck: false };
  const egress = judge(ctx, from, 'egress', dest, port, protocol, destPod);
  let ingress: DirectionVerdict = notAPod;
  if (destPod) {
    const src = sourceIdentity(state, from, destPod, settings);
    ingress = judge(ctx, destPod, 'ingress', src, port, protocol, destPod, fromLocalHost(from, destPod));
  }
  return { allowed: egress.verdict === 'allowed' && ingress.verdict === 'allowed', egress, ingress };
}

// ---------- the verdict alone ----------

/**
 * Whether `from` can reach `to` on port/protocol, by the same decision as evaluate() (decideDirection),
 * without a tracer, so without building an explanation: `egress` asks only whether the source's egress policy allows it, `ingress` only whether
 * the destination's ingress policy does, `both` whether the connection goes through. For rules that
 * need the answer many times per request; trace and messages use evaluate().
 */
export function reachable(state: ClusterState, from: Pod, to: Target, port: number, protocol: Protocol, which: 'both' | 'egress' | 'ingress' = 'both'): boolean {
  checkBudget();
  if (to.type === 'ip' && serviceByClusterIp(state, to.ip)) {
    const r = evaluate(state, from, to, port, protocol);
    return which === 'egress' ? r.egress.verdict === 'allowed' : which === 'ingress' ? r.ingress.verdict === 'allowed' : r.allowed;
  }
  const settings = policySettings(state);
  const dest = targetIdentity(state, from, to);
  const destPod = dest.pod;
  if (destPod && isSamePod(from, destPod)) return true;
  const ctx: EvalContext = { state, settings, from, dnsCheck: false };
  if (which !== 'ingress' && !decideDirection(ctx, from, 'egress', dest, port, protocol, destPod, undefined)) return false;
  if (which === 'egress' || !destPod) return true;
  return decideDirection(ctx, destPod, 'ingress', sourceIdentity(state, from, destPod, settings), port, protocol, destPod, undefined, fromLocalHost(from, destPod));
}

/**
 * The ingress decision at pod `dest` on port/protocol for every source that is a pod of the cluster
 * (not in the host network, and not `dest` itself, which reaches itself), when it cannot depend on which
 * pod: every ingress element of `dest` that matches the port either has no peers (it matches every
 * source) or only peers whose answer is the same for every pod identity (entities: `all` and `cluster`
 * select every pod, the others none; CIDRs and FQDNs select no pod). Undefined when some such element
 * has an endpoint selector or a Service peer (the answer then depends on the source), or while
 * recordDenials runs (the decision must be made for the flow to be recorded). Kept per state revision,
 * destination, port and protocol: a DNS check asks it once per class.
 */
/** Is `source` one podSourceIngress answers for at `dest`: a pod-network pod other than `dest` itself? */
export function plainPodSource(source: Pod, dest: Pod): boolean {
  return source.spec.hostNetwork !== true && !isSamePod(source, dest);
}

export function podSourceIngress(state: ClusterState, dest: Pod, port: number, protocol: Protocol): boolean | undefined {
  if (recording !== undefined) return undefined;
  const v = perRevisionFor(state, `podSourceIngress:${port}/${protocol}`, dest, () => computePodSourceIngress(state, dest, port, protocol));
  return v ?? undefined;
}

function computePodSourceIngress(state: ClusterState, dest: Pod, port: number, protocol: Protocol): boolean | null {
  const settings = policySettings(state);
  if (settings.enablePolicy !== 'never' && isCiliumEndpoint(dest)) {
    for (const m of policiesSelecting(state, dest)) {
      for (const el of m.elements) {
        if (el.direction !== 'ingress' || !portMatch(el, port, protocol, dest, settings.endPortSupported).matched) continue;
        for (const p of el.peers) if (p.type === 'endpoints' || p.type === 'services') return null;
      }
    }
  }
  // Any pod identity decides as every other one does: dest's own stands for them (decided as for a
  // source that is not dest, which would reach itself without policy).
  const ctx: EvalContext = { state, settings, from: dest, dnsCheck: false };
  return decideDirection(ctx, dest, 'ingress', podIdentity(state, dest), port, protocol, dest, undefined);
}

/** A host-network client on the destination's own node: the local host (allow-localhost applies). */
function fromLocalHost(from: Pod, dest: Pod): boolean {
  return from.spec.hostNetwork === true && from.spec.nodeName !== undefined && from.spec.nodeName === dest.spec.nodeName;
}

// ---------- ingress from an IP ----------

// ---------- ingress from an IP ----------

/** Does the element cover every port (so it applies to whatever port the probe uses)? */
function allPorts(el: RuleElement): boolean {
  return el.ports.length === 0 || el.ports.some((s) => s.ports.length === 0 || s.ports.some((r) => r.port === 0 && (r.protocol === 'ANY' || r.protocol === 'TCP')));
}

/** Does the element admit TCP on some port? (UDP/SCTP-only elements never carry HTTP/TCP probes.) */
function someTcpPort(el: RuleElement): boolean {
  return el.ports.length === 0 || el.ports.some((s) => s.ports.length === 0 || s.ports.some((r) => r.protocol === 'ANY' || r.protocol === 'TCP'));
}

/**
 * Ingress of `pod` from a source IP (not a pod), on an unknown TCP port: 'allowed' when not enforced or
 * some allow element selects the IP's identity (peers matched as for any
 * other source, see peerMatches) on some TCP port and no all-ports deny does; else
 * 'denied'. A deny limited to some ports is not counted (the probe port is not known): this errs
 * towards "allowed", i.e. towards no finding.
 */
export function ingressFromIp(state: ClusterState, pod: Pod, ip: string): { enforced: boolean; verdict: 'allowed' | 'denied'; by: readonly PolicyRef[] } {
  const enf = enforcement(state, pod, 'ingress');
  // enable-policy: never turns every policy off, deny rules included (as reachable() answers).
  if (policySettings(state).enablePolicy === 'never') return { enforced: false, verdict: 'allowed', by: [] };
  const id = ipIdentity(state, ip, pod.spec.nodeName);
  const ctx: EvalContext = { state, settings: policySettings(state), from: pod, dnsCheck: false };
  let allowed = false;
  const denies: PolicyRef[] = [];
  for (const m of policiesSelecting(state, pod)) {
    for (const el of m.elements) {
      if (el.direction !== 'ingress') continue;
      const peerOk = el.peers.length === 0 || anyPeerMatches(ctx, m, el, id);
      if (!peerOk) continue;
      if (el.deny) {
        if (allPorts(el)) denies.push(m.ref);
      } else if (someTcpPort(el)) allowed = true;
    }
  }
  if (denies.length > 0) return { enforced: enf.enforced, verdict: 'denied', by: denies };
  if (!enf.enforced || allowed) return { enforced: enf.enforced, verdict: 'allowed', by: [] };
  return { enforced: true, verdict: 'denied', by: enf.by };
}

/**
 * Could `dest`'s ingress admit one of `sources` (pods) on some TCP port? An over-approximation of
 * "reachable on ingress on some port", for skipping pairs that no port can connect: true when policy
 * does not apply at `dest` or its ingress is not enforced, or some ingress allow element whose peers
 * select a source's identity admits TCP on some port (deny rules are not counted: they can only make it
 * false). False means ingress denies every source on every TCP port.
 */
export function ingressMayAdmitTcp(state: ClusterState, sources: Iterable<Pod>, dest: Pod): boolean {
  checkBudget();
  const settings = policySettings(state);
  if (settings.enablePolicy === 'never' || !isCiliumEndpoint(dest)) return true;
  if (!enforcement(state, dest, 'ingress').enforced) return true;
  // The allow elements that admit TCP on some port, once per destination; then each source's identity.
  const models = policiesSelecting(state, dest);
  const candidates: { m: PolicyModel; el: RuleElement }[] = [];
  for (const m of models) {
    for (const el of m.elements) {
      if (el.direction !== 'ingress' || el.deny || !someTcpPort(el)) continue;
      if (el.peers.length === 0) return true;
      candidates.push({ m, el });
    }
  }
  for (const from of sources) {
    if (from.spec.hostNetwork && from.spec.nodeName !== undefined && from.spec.nodeName === dest.spec.nodeName) return true; // allow-localhost
    if (candidates.length === 0) continue;
    const id = sourceIdentity(state, from, dest, settings);
    const ctx: EvalContext = { state, settings, from, dnsCheck: false };
    for (const { m, el } of candidates) if (anyPeerMatches(ctx, m, el, id)) return true;
  }
  return false;
}

/**
 * ingressMayAdmitTcp(state, sources, ·) for many destinations, the sources all pod-network pods: whether
 * an allow element admits one of them is kept per element (an element belongs to one model), as the
 * match of its peers reads only the sources' identities, which do not depend on the destination (only a
 * host-network source's does: its node may be the destination's).
 */
export function ingressMayAdmitTcpFrom(state: ClusterState, sources: readonly Pod[]): (dest: Pod) => boolean {
  if (sources.some((s) => s.spec.hostNetwork === true)) return (dest) => ingressMayAdmitTcp(state, sources, dest);
  const settings = policySettings(state);
  const byModels = ingressMayAdmitTcpByModels(state, sources);
  return (dest) => {
    checkBudget();
    if (settings.enablePolicy === 'never' || !isCiliumEndpoint(dest)) return true;
    return byModels(policiesSelecting(state, dest));
  };
}

/**
 * ingressMayAdmitTcpFrom's answer for a Cilium endpoint of `state` given its selecting models
 * (policiesSelecting), which, with the settings, is all it reads of the destination when the sources
 * are pod-network pods: a caller that already holds a destination's list (or one equal in content)
 * asks by it. Host-network sources are refused (allow-localhost reads the destination's node).
 */
export function ingressMayAdmitTcpByModels(state: ClusterState, sources: readonly Pod[]): (models: readonly PolicyModel[]) => boolean {
  if (sources.some((s) => s.spec.hostNetwork === true)) throw new Error('ingressMayAdmitTcpByModels: host-network sources read the destination');
  const settings = policySettings(state);
  const ids = sources.map((s) => podIdentity(state, s));
  // One context per source for every element asked (a relabel's few sources against every model of the
  // cluster's ambient pods: thousands of elements).
  const ctxs: EvalContext[] = sources.map((from) => ({ state, settings, from, dnsCheck: false }));
  // Whether one of a model's allow elements admits a source on some TCP port, kept per model: lists
  // share models, and an element belongs to one model.
  const admits = new Map<PolicyModel, boolean>();
  const modelAdmits = (m: PolicyModel): boolean => {
    for (const el of m.elements) {
      if (el.direction !== 'ingress' || el.deny || !someTcpPort(el)) continue;
      if (el.peers.length === 0) return true;
      for (let i = 0; i < sources.length; i++) if (anyPeerMatches(ctxs[i]!, m, el, ids[i]!)) return true;
    }
    return false;
  };
  return (models) => {
    checkBudget();
    if (settings.enablePolicy === 'never') return true;
    if (!enforcementOfModels(models, 'ingress', settings).enforced) return true;
    for (const m of models) {
      let v = admits.get(m);
      if (v === undefined) admits.set(m, (v = modelAdmits(m)));
      if (v) return true;
    }
    return false;
  };
}

/**
 * Whether `pod`'s ingress admits a connection from a source IP that is not a pod's own (the kubelet's
 * SNATed probe source, a world address) on `port`/`protocol`: the same decision as reachable()
 * (decideDirection), port-specific deny rules and named ports included, unlike ingressFromIp, which
 * asks about an unknown port.
 */
export function ingressFromIpAllowed(state: ClusterState, pod: Pod, ip: string, port: number, protocol: Protocol): boolean {
  checkBudget();
  const settings = policySettings(state);
  const ctx: EvalContext = { state, settings, from: pod, dnsCheck: false };
  return decideDirection(ctx, pod, 'ingress', ipIdentity(state, ip, pod.spec.nodeName, settings), port, protocol, pod, undefined);
}

// ---------- ingress from a control-plane address ----------

/**
 * Ingress of `dest` on port/protocol from a peer that is not a pod, given by its address: the
 * kube-apiserver calling an admission webhook (or istiod's). The same decision as the ingress half of
 * evaluate(): the address gets the identity ipIdentity gives it (kube-apiserver, plus host/remote-node
 * when it is a Node address, world outside the nodes), and an address of `dest`'s own node is the local
 * host (allow-localhost, see localHostAllowed). `ip` undefined stands for the kube-apiserver entity when its endpoints are unknown.
 */
export function evaluateIngressFromAddress(state: ClusterState, dest: Pod, ip: string | undefined, port: number, protocol: Protocol): DirectionVerdict {
  checkBudget();
  const settings = policySettings(state);
  const c = ip === undefined ? undefined : canonicalIp(ip);
  if (ip !== undefined && !c) throw new Error(`not an IP address: ${ip}`);
  const node = dest.spec.nodeName;
  const localHost = c !== undefined && node !== undefined && nodeAddresses(state).get(c) === node;
  const id = c ? ipIdentity(state, c, node, settings) : reservedIdentity('kube-apiserver', ['kube-apiserver']);
  return judge({ state, settings, from: dest, dnsCheck: false }, dest, 'ingress', id, port, protocol, dest, localHost);
}

// ---------- an admission overlay's decision from its base's ----------

/** What a direction's decision at a subject saw in a state: the policies with a matching deny, and with a matching allow. */
export interface DirectionFacts {
  readonly denyBy: readonly PolicyRef[];
  readonly allowBy: readonly PolicyRef[];
}

/** The object an overlay changes, as the refs of its models name it. */
export interface ChangedPolicy {
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
}

const isRef = (r: PolicyRef, c: ChangedPolicy): boolean => r.kind === c.kind && r.namespace === c.namespace && r.name === c.name;

/**
 * `fromBasePass(state, base, changed).reach(from, to, port, protocol, classKey, question, targetKey,
 * which)`: reachable(state, from, to, port, protocol) for an overlay `state` that differs from `base` by
 * the policy object `changed` alone, without judging the pod's policies again: a decision in one direction
 * is a deny if some deny element matches, else an allow if some allow element matches or the direction
 * is not enforced (decideDirection). The subject's selecting models in `state` are its models in `base`
 * less the changed object's old ones plus its new ones (policy/selection.ts selectingFromBase), and every
 * other model matches the same peers on the same ports in both (nothing else differs). So the base's
 * matching denies and allows other than the changed object's (kept on the base per `classKey`, the
 * caller's interned class key of `from`, `question`, a fixed string naming the port and protocol for
 * this state, and `targetKey`, the target pod or address: together they must determine both subjects'
 * models and both peers' identities)
 * plus the changed object's new elements, tested here, give the overlay's decision. `which` 'egress'
 * asks only whether the source's egress allows it (as reachable() does).
 * Undefined where this does not apply (a Service address, whose backends are judged instead).
 *
 * A pass serves many sources of one overlay `state` over `base`: what it reads of the two states (settings, the
 * base's decision facts, the changed object's models, the selecting lists) looked up once per pass
 * instead of once per class. Kept per revision of `state` (for one base and changed object).
 */
export interface FromBasePass {
  readonly base: ClusterState;
  readonly changed: ChangedPolicy;
  reach(from: Pod, to: Target, port: number, protocol: Protocol, classKey: string, question: string, targetKey: object | string, which?: 'both' | 'egress'): boolean | undefined;
}

/**
 * The `changed` of a pass that only fills the base's decision facts (fromBasePass(base, base,
 * BASE_FACTS_ONLY)): its reach() decides nothing (it answers false, so that a derivation asks every
 * target) and keeps the facts of both directions the overlays' passes read, for the class and target it
 * is asked about. Serve's warm-up fills the long-lived state's facts with it, a class per step, without
 * building an overlay (issue 21: the first cluster-wide request after start-up).
 */
export const BASE_FACTS_ONLY: ChangedPolicy = Object.freeze({ kind: '', namespace: '', name: '' });

export function fromBasePass(state: ClusterState, base: ClusterState, changed: ChangedPolicy): FromBasePass {
  if (changed === BASE_FACTS_ONLY) return perRevision(base, 'fromBaseFactsOnly', () => new FromBase(base, base, changed, true));
  const kept = perRevision(state, 'fromBasePass', newPassSlot);
  const hit = kept.pass;
  if (hit !== undefined && hit.base === base && hit.changed.kind === changed.kind && hit.changed.namespace === changed.namespace && hit.changed.name === changed.name) return hit;
  return (kept.pass = new FromBase(state, base, changed));
}
const newPassSlot = (): { pass?: FromBase } => ({});

/** A mutable EvalContext for one pass (decisions are synchronous and never nest: `from` is set per call). */
type PassContext = { -readonly [K in keyof EvalContext]: EvalContext[K] };

/** The base's decision facts of one class toward one target. */
type KeptFacts = { egress?: DirectionFacts; ingress?: DirectionFacts };

class FromBase implements FromBasePass {
  readonly base: ClusterState;
  readonly changed: ChangedPolicy;
  readonly #state: ClusterState;
  readonly #ctx: PassContext;
  readonly #baseCtx: PassContext;
  /** The base's facts: question -> target -> class key (kept per base revision, across requests). */
  readonly #facts: Map<string, Map<object | string, Map<string, KeptFacts>>>;
  /** The identities of pod-network destination pods (they do not depend on the source). */
  readonly #podIds = new Map<Pod, Identity>();
  /** Per address: its node (if a node's), and its identity from that node and from anywhere else. */
  readonly #ipIds = new Map<string, { readonly node: string | undefined; local?: Identity; other?: Identity }>();
  /**
   * The changed object's egress verdict (ADDED_*) per selecting-model array, destination identity, port
   * and protocol: egress peers are matched against the destination alone (but for FQDN peers, which
   * read the source's DNS lookups: never kept), so every class with the same new models shares it.
   */
  readonly #addedEgress = new Map<readonly PolicyModel[], Map<Identity, Map<string, number>>>();
  readonly changedSelecting: (pod: Pod) => readonly PolicyModel[];
  readonly baseSelecting: (pod: Pod) => readonly PolicyModel[];
  /** A BASE_FACTS_ONLY pass: reach() fills the facts and decides nothing. */
  readonly #factsOnly: boolean;

  constructor(state: ClusterState, base: ClusterState, changed: ChangedPolicy, factsOnly = false) {
    this.#factsOnly = factsOnly;
    this.#state = state;
    this.base = base;
    this.changed = changed;
    const settings = policySettings(state);
    this.#ctx = { state, settings, from: undefined as unknown as Pod, dnsCheck: false };
    this.#baseCtx = { state: base, settings: policySettings(base), from: undefined as unknown as Pod, dnsCheck: false };
    // Kept across pod events too: a fact reads of the pod set only its source class (the key), its target
    // (a pod object, or an API server address, which is never looked up as a pod) and the EndpointSlices
    // read by name (toServices peers of selector-less Services).
    this.#facts = keptAcrossPodEvents(base, 'directionFacts', () => endpointSlicesRead(base), newFactsTable);
    this.changedSelecting = changedSelectingLookup(state, changed);
    this.baseSelecting = selectingLookup(base);
  }

  reach(from: Pod, to: Target, port: number, protocol: Protocol, classKey: string, question: string, targetKey: object | string, which: 'both' | 'egress' = 'both'): boolean | undefined {
    checkBudget();
    const state = this.#state;
    if (to.type === 'ip' && serviceByClusterIp(state, to.ip)) return undefined;
    const dest = to.type === 'ip' ? this.#ipIdentity(from, to.ip) : to.type === 'pod' && to.pod.spec.hostNetwork !== true ? this.#podIdentity(to.pod) : targetIdentity(state, from, to);
    const destPod = dest.pod;
    if (destPod && isSamePod(from, destPod)) return !this.#factsOnly;
    const ctx = this.#ctx;
    const baseCtx = this.#baseCtx;
    ctx.from = from;
    baseCtx.from = from;
    // The base's facts of this class and target (class keys are interned strings: hashed once).
    let byTarget = this.#facts.get(question);
    if (byTarget === undefined) this.#facts.set(question, (byTarget = new Map()));
    let byClass = byTarget.get(targetKey);
    if (byClass === undefined) byTarget.set(targetKey, (byClass = new Map()));
    let facts = byClass.get(classKey);
    if (facts === undefined) {
      if (byClass.size >= FACTS_LIMIT) byClass.clear();
      byClass.set(classKey, (facts = {}));
    }
    if (this.#factsOnly) {
      // Both directions, whatever the base decides: an overlay's egress may allow what the base's denies.
      if (isCiliumEndpoint(from)) facts.egress ??= directionFactsCounted(baseCtx, from, 'egress', dest, port, protocol, destPod);
      if (destPod && which === 'both' && isCiliumEndpoint(destPod)) facts.ingress ??= directionFactsCounted(baseCtx, destPod, 'ingress', sourceIdentity(state, from, destPod, ctx.settings), port, protocol, destPod);
      return false;
    }
    if (!this.#decide(from, 'egress', dest, port, protocol, destPod, facts, false)) return false;
    if (!destPod || which === 'egress') return true;
    // A host-network client on the destination's node is its local host: allow-localhost as decideDirection
    // applies it (the lowest-precedence allow: a matching deny still wins, and from Cilium 1.20 only beside
    // ingress rules).
    return this.#decide(destPod, 'ingress', sourceIdentity(state, from, destPod, ctx.settings), port, protocol, destPod, facts, fromLocalHost(from, destPod));
  }

  /**
   * targetIdentity of an address seen from `from`: it reads the source's node only when the address is a
   * node's (host on that node, remote-node on any other), so at most two identities per address.
   */
  #ipIdentity(from: Pod, ip: string): Identity {
    let e = this.#ipIds.get(ip);
    if (e === undefined) {
      const c = canonicalIp(ip);
      this.#ipIds.set(ip, (e = { node: c === undefined ? undefined : nodeAddresses(this.#state).get(c) }));
    }
    const localNode = from.spec.nodeName;
    if (e.node !== undefined && localNode === e.node) return (e.local ??= ipIdentity(this.#state, ip, localNode, this.#ctx.settings));
    return (e.other ??= ipIdentity(this.#state, ip, undefined, this.#ctx.settings));
  }

  #podIdentity(pod: Pod): Identity {
    let id = this.#podIds.get(pod);
    if (id === undefined) this.#podIds.set(pod, (id = podIdentity(this.#state, pod)));
    return id;
  }

  /**
   * The overlay's decision in one direction at `subject`: a decision is a deny if some deny element
   * matches, else an allow if some allow element matches or the direction is not enforced
   * (decideDirection), from the base's matching elements other than the changed object's plus the
   * changed object's new models that select the subject.
   */
  #decide(subject: Pod, direction: Direction, peer: Identity, port: number, protocol: Protocol, destPod: Pod | undefined, kept: KeptFacts, localHost: boolean): boolean {
    const ctx = this.#ctx;
    if (ctx.settings.enablePolicy === 'never' || !isCiliumEndpoint(subject)) return true;
    fromBaseCount[direction]++;
    const changed = this.changed;
    let facts = kept[direction];
    if (facts === undefined) {
      factsComputed++;
      facts = kept[direction] = directionFacts(this.#baseCtx, subject, direction, peer, port, protocol, destPod);
    }
    // Indexed loops: an array iterator is an allocation per loop wherever this runs unoptimized (the
    // sampling heap profiler found 0.3-0.5 MB of them per cluster-wide send at 50k pods).
    const denyBy = facts.denyBy;
    for (let i = 0; i < denyBy.length; i++) if (!isRef(denyBy[i]!, changed)) return false;
    let allowed = false;
    const allowBy = facts.allowBy;
    for (let i = 0; i < allowBy.length; i++) if (!isRef(allowBy[i]!, changed)) allowed = true;
    // The changed object's new models that select the subject: the overlay's list is the base's less the
    // changed object's old models plus these (policy/selection.ts selectingFromBase), so it is not needed.
    const added = this.changedSelecting(subject);
    const v = added.length === 0 ? ADDED_NONE : direction === 'egress' ? this.#addedEgressVerdict(added, peer, port, protocol, destPod) : addedVerdict(ctx, added, direction, peer, port, protocol, destPod);
    if (v === ADDED_DENY) return false;
    if (allowed || v === ADDED_ALLOW) return true;
    return !this.#enforced(subject, direction, added) || (localHost && localHostAllowed(ctx.state, subject));
  }

  #addedEgressVerdict(added: readonly PolicyModel[], peer: Identity, port: number, protocol: Protocol, destPod: Pod | undefined): number {
    if (readsSourceDns(added)) return addedVerdict(this.#ctx, added, 'egress', peer, port, protocol, destPod);
    let byPeer = this.#addedEgress.get(added);
    if (byPeer === undefined) this.#addedEgress.set(added, (byPeer = new Map()));
    let byPort = byPeer.get(peer);
    if (byPort === undefined) {
      if (byPeer.size >= 10_000) byPeer.clear(); // host-network destinations get an identity per source
      byPeer.set(peer, (byPort = new Map()));
    }
    const k = protocol + port;
    let v = byPort.get(k);
    if (v === undefined) byPort.set(k, (v = addedVerdict(this.#ctx, added, 'egress', peer, port, protocol, destPod)));
    return v;
  }

  /**
   * Is `direction` enforced at `subject` in the overlay, from its base list: the enforcing models are the
   * base's (under the overlay's settings) less the changed object's old ones, plus its new ones that
   * select the subject (`added`). For an overlay that changes no policy the lists are the same.
   */
  #enforced(subject: Pod, direction: Direction, added: readonly PolicyModel[]): boolean {
    const settings = this.#ctx.settings;
    const was = enforcementOfModels(this.baseSelecting(subject), direction, settings);
    if (!was.enforced) return added.length > 0 && enforcementOfModels(added, direction, settings).enforced;
    if (settings.enablePolicy === 'always') return true;
    for (const r of was.by) if (!isRef(r, this.changed)) return true;
    return added.length > 0 && enforcementOfModels(added, direction, settings).enforced;
  }
}

/** targetIdentity of an address, kept per state revision, address and source node (all it reads of the source). */
function ipTargetIdentity(state: ClusterState, from: Pod, to: Extract<Target, { type: 'ip' }>): Identity {
  const ids = perRevision(state, 'ipTargetIdentities', newIdentityTable);
  const k = to.ip + '\u0000' + (from.spec.nodeName ?? '');
  let id = ids.get(k);
  if (id === undefined) {
    id = targetIdentity(state, from, to);
    if (ids.size >= 10_000) ids.clear();
    ids.set(k, id);
  }
  return id;
}
const newIdentityTable = (): Map<string, Identity> => new Map();

const fromBaseCount = { egress: 0, ingress: 0 };
let factsComputed = 0;

/** How many of the base's decision facts fromBasePass has worked out (not found kept) so far (for tests). */
export function baseFactsComputed(): number {
  return factsComputed;
}

/** How many direction decisions fromBasePass has made so far, per direction (for tests that count the work per class). */
export function fromBaseDecisions(): { readonly egress: number; readonly ingress: number } {
  return { ...fromBaseCount };
}

/** The changed policy object's models in the overlay `state` (none when it is deleted or no policy changed), and their answers per identity. */
interface ChangedModels {
  readonly models: readonly PolicyModel[];
  /**
   * The answer for every Cilium endpoint when it cannot depend on the pod: every model that selects pods
   * is a CCNP with an empty subject selector (`endpointSelector: {}` selects every endpoint); else undefined.
   */
  readonly everyEndpoint: readonly PolicyModel[] | undefined;
  readonly byId: Map<string, readonly PolicyModel[]>;
  readonly byMask: Map<number, readonly PolicyModel[]>;
}

function changedModels(state: ClusterState, changed: ChangedPolicy): ChangedModels {
  return perRevision(state, 'changedPolicyModels', () => {
    const obj = changed.name === '' ? undefined : state.get(changed.kind as 'CiliumNetworkPolicy', changed.namespace === '' ? undefined : changed.namespace, changed.name);
    const models = obj === undefined ? NO_MODELS : policyModel(obj as PolicyObject);
    return { models, everyEndpoint: everyEndpointModels(models), byId: new Map(), byMask: new Map() };
  });
}
const NO_MODELS: readonly PolicyModel[] = Object.freeze([]);

/**
 * The changed object's models that select `pod` in the overlay `state`, one array per distinct answer
 * (so that enforcement, kept per model list, is computed once per answer).
 */
export function changedSelecting(state: ClusterState, changed: ChangedPolicy, pod: Pod): readonly PolicyModel[] {
  if (changed.name === '') return NO_MODELS;
  return changedSelectingIn(state, changedModels(state, changed), pod);
}

/** changedSelecting for many pods of one state: the changed object's models looked up once. */
export function changedSelectingLookup(state: ClusterState, changed: ChangedPolicy): (pod: Pod) => readonly PolicyModel[] {
  if (changed.name === '') return noModels;
  const c = changedModels(state, changed);
  if (c.models.length === 0) return noModels;
  return (pod) => changedSelectingIn(state, c, pod);
}
const noModels = (): readonly PolicyModel[] => NO_MODELS;

function changedSelectingIn(state: ClusterState, c: ChangedModels, pod: Pod): readonly PolicyModel[] {
  if (c.models.length === 0 || !isCiliumEndpoint(pod)) return NO_MODELS;
  if (c.everyEndpoint !== undefined) return c.everyEndpoint;
  // Per identity (what modelSelects reads: the pod's endpoint labels, its namespace's) and revision:
  // asked for every class by each question, both directions.
  const id = podIdentityKey(pod);
  let hit = c.byId.get(id);
  if (hit === undefined) {
    hit = computeChangedSelecting(state, c, pod);
    if (c.byId.size >= 50_000) c.byId.clear();
    c.byId.set(id, hit);
  }
  return hit;
}

const ADDED_NONE = 0;
const ADDED_ALLOW = 1;
const ADDED_DENY = 2;

/** The verdict of the changed object's new models `added` in one direction at a subject: a matching deny, else a matching allow, else none. */
function addedVerdict(ctx: EvalContext, added: readonly PolicyModel[], direction: Direction, peer: Identity, port: number, protocol: Protocol, destPod: Pod | undefined): number {
  let v = ADDED_NONE;
  for (const m of added) {
    for (const el of m.elements) {
      if (el.direction !== direction) continue;
      if (!portMatch(el, port, protocol, destPod, ctx.settings.endPortSupported).matched) continue;
      if (el.peers.length > 0 && !anyPeerMatches(ctx, m, el, peer)) continue;
      if (el.deny) return ADDED_DENY;
      v = ADDED_ALLOW;
    }
  }
  return v;
}

/** Does some element of `models` have an FQDN peer (whose match reads the source's DNS lookups)? Per model array. */
function readsSourceDns(models: readonly PolicyModel[]): boolean {
  let v = fqdnPeerLists.get(models);
  if (v === undefined) {
    v = models.some((m) => m.elements.some((el) => el.peers.some((p) => p.type === 'fqdn')));
    fqdnPeerLists.set(models, v);
  }
  return v;
}

/** ChangedModels.everyEndpoint: the models that select pods when each selects every endpoint (as modelSelects decides), else undefined. */
function everyEndpointModels(models: readonly PolicyModel[]): readonly PolicyModel[] | undefined {
  if (models.length === 0) return undefined;
  for (const m of models) {
    if (m.selectsNodes) continue; // selects no pod
    const sel = m.subjectSelector;
    if (m.ref.kind !== 'CiliumClusterwideNetworkPolicy' || sel === undefined) return undefined;
    if ((sel.matchLabels !== undefined && Object.keys(sel.matchLabels).length > 0) || (sel.matchExpressions !== undefined && sel.matchExpressions.length > 0)) return undefined;
  }
  const out = models.filter((m) => !m.selectsNodes);
  return out.length === 0 ? NO_MODELS : out.length === models.length ? models : out;
}

function computeChangedSelecting(state: ClusterState, c: ChangedModels, pod: Pod): readonly PolicyModel[] {
  const models = c.models;
  if (models.length > 30) return models.filter((m) => modelSelects(state, m, pod)); // not interned: a policy of 30+ specs
  let mask = 0;
  for (let i = 0; i < models.length; i++) if (modelSelects(state, models[i]!, pod)) mask |= 1 << i;
  if (mask === 0) return NO_MODELS;
  let out = c.byMask.get(mask);
  if (out === undefined) c.byMask.set(mask, (out = models.filter((_, i) => (mask & (1 << i)) !== 0)));
  return out;
}

/** directionFacts, counted by baseFactsComputed (a BASE_FACTS_ONLY pass's fill). */
function directionFactsCounted(ctx: EvalContext, subject: Pod, direction: Direction, peer: Identity, port: number, protocol: Protocol, destPod: Pod | undefined): DirectionFacts {
  factsComputed++;
  return directionFacts(ctx, subject, direction, peer, port, protocol, destPod);
}

/** The policies whose deny and allow elements match, in one direction at `subject` (no early return). */
function directionFacts(ctx: EvalContext, subject: Pod, direction: Direction, peer: Identity, port: number, protocol: Protocol, destPod: Pod | undefined): DirectionFacts {
  let denyBy: PolicyRef[] | undefined;
  let allowBy: PolicyRef[] | undefined;
  for (const m of policiesSelecting(ctx.state, subject)) {
    for (const el of m.elements) {
      if (el.direction !== direction) continue;
      if (!portMatch(el, port, protocol, destPod, ctx.settings.endPortSupported).matched) continue;
      if (el.peers.length > 0 && !anyPeerMatches(ctx, m, el, peer)) continue;
      if (el.deny) (denyBy ??= []).push(m.ref);
      else (allowBy ??= []).push(m.ref);
    }
  }
  if (denyBy === undefined && allowBy === undefined) return NO_FACTS;
  return sharedFacts(denyBy ?? NO_REFS, allowBy ?? NO_REFS);
}
const NO_FACTS: DirectionFacts = Object.freeze({ denyBy: NO_REFS, allowBy: NO_REFS });

/**
 * One DirectionFacts per content (the kind, namespace and name of each ref, in order): the base's
 * facts of 10k classes hold a few distinct answers (issue 21, heap at 50k pods: 19k objects and 9.5k
 * arrays built by push, each with spare capacity). Only the refs' content is read (#decide's isRef), so
 * facts with equal content are interchangeable.
 */
export function sharedFacts(denyBy: readonly PolicyRef[], allowBy: readonly PolicyRef[]): DirectionFacts {
  let key = '';
  for (const r of denyBy) key += `${r.kind}\u0001${r.namespace}\u0001${r.name}\u0000`;
  key += '\u0002';
  for (const r of allowBy) key += `${r.kind}\u0001${r.namespace}\u0001${r.name}\u0000`;
  let hit = directionFactsByContent.get(key);
  if (hit === undefined) {
    if (directionFactsByContent.size >= FACTS_LIMIT) directionFactsByContent.clear();
    // slice(): arrays of their own length (built by push they keep spare capacity). Never modified
    // (readonly); not frozen, so that #decide's loops see one kind of array.
    const own = (refs: readonly PolicyRef[]): readonly PolicyRef[] => (refs.length === 0 ? NO_REFS : refs.slice());
    hit = Object.freeze({ denyBy: own(denyBy), allowBy: own(allowBy) });
    directionFactsByContent.set(key, hit);
  }
  return hit as DirectionFacts;
}
const newFactsTable = (): Map<string, Map<object | string, Map<string, KeptFacts>>> => new Map();
/** Classes whose facts are kept per base revision (a cluster has ~10k; synthetic pods add a few). */
const FACTS_LIMIT = 50_000;
