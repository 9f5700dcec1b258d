// Shared by the rules where Cilium's L7 proxy meets Istio (split-brain-l7-sidecar, split-brain-l7-ambient,
// dual-l7-authz): which Cilium L7 sections apply to a pod and port, which pods a request can change that
// for, and a before/after diff of "conflicts" keyed so that a problem that already existed is recognised.

import type { Change } from '../core/change.ts';
import {
  changedLabelKeys,
  ciliumConfig,
  endpointLabels,
  formatPolicyRef,
  indexablePair,
  isCiliumEndpoint,
  istioRootNamespace,
  matchesSelector,
  meshMode,
  NAMESPACE_LABEL,
  namespaceLabelReadByL7,
  namedPort,
  normalizeKey,
  policiesSelecting,
  policyModel,
  selectorIsReserved,
  subjectPods,
  podsSelectedBy,
  type Direction,
  type L7Rules,
  type Peer,
  type PolicyModel,
  type PolicyRef,
  type PortRule,
  type PortSection,
} from '../policy/index.ts';
import type { ClusterState, Labels, Pod, PolicyObject } from '../state/types.ts';
import { podRef } from './helpers.ts';

export const CILIUM_POLICY_KINDS = ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy'] as const;

export function isCiliumPolicyChange(change: Change): boolean {
  return change.kind === 'CiliumNetworkPolicy' || change.kind === 'CiliumClusterwideNetworkPolicy';
}

/** L7 rules that make Cilium's Envoy proxy parse the stream (http, kafka, generic l7). DNS is not one. */
export function hasStreamL7(rules: L7Rules | undefined): boolean {
  if (!rules) return false;
  return (rules.http?.length ?? 0) > 0 || (rules.kafka?.length ?? 0) > 0 || (rules.l7?.length ?? 0) > 0 || !!rules.l7proto;
}

/** "HTTP", "Kafka" or the l7proto name, for messages. */
export function l7Kind(rules: L7Rules | undefined): string {
  if ((rules?.http?.length ?? 0) > 0) return 'HTTP';
  if ((rules?.kafka?.length ?? 0) > 0) return 'Kafka';
  return rules?.l7proto ?? 'L7';
}

/**
 * Whether Cilium enforces L7 rules at all: `enable-l7-proxy: false` makes the agent skip them and
 * `enable-policy: never` turns policy off entirely.
 */
export function l7ProxyEnabled(state: ClusterState): boolean {
  const cfg = ciliumConfig(state);
  return cfg.l7Proxy && cfg.enablePolicy !== 'never';
}

/** A stream-L7 section of an allow element of a policy model, in one direction. */
export interface L7Use {
  readonly model: PolicyModel;
  readonly direction: Direction;
  readonly peers: readonly Peer[];
  readonly section: PortSection;
}

/** Every stream-L7 section (allow elements) of a model in a direction. */
export function l7Uses(model: PolicyModel, direction?: Direction): L7Use[] {
  const out: L7Use[] = [];
  for (const el of model.elements) {
    if (el.deny || (direction && el.direction !== direction)) continue;
    for (const section of el.ports) {
      if (hasStreamL7(section.rules)) out.push({ model, direction: el.direction, peers: el.peers, section });
    }
  }
  return out;
}

/**
 * The TCP ports of `pod` a port section covers: numbers, named ports resolved on the pod; `undefined`
 * in the result stands for "every port" (empty ports, port 0). UDP/SCTP-only entries carry no TCP stream.
 */
export function coveredPorts(pod: Pod, section: PortSection): (number | undefined)[] {
  if (section.ports.length === 0) return [undefined];
  const out = new Set<number | undefined>();
  for (const pr of section.ports) {
    if (pr.protocol === 'UDP' || pr.protocol === 'SCTP') continue;
    const n = resolvePort(pod, pr);
    if (n === 'all') {
      out.add(undefined);
    } else if (n !== undefined) {
      out.add(n);
      if (pr.endPort !== undefined) {
        // A range: the container ports inside it are what traffic can reach.
        for (const c of pod.spec.containers ?? []) {
          for (const cp of c.ports ?? []) if (cp.containerPort > n && cp.containerPort <= pr.endPort) out.add(cp.containerPort);
        }
      }
    }
  }
  return [...out];
}

function resolvePort(pod: Pod, pr: PortRule): number | 'all' | undefined {
  if (typeof pr.port === 'number') return pr.port === 0 ? 'all' : pr.port;
  const asNum = Number(pr.port);
  if (pr.port !== '' && Number.isInteger(asNum)) return asNum === 0 ? 'all' : asNum;
  return namedPort(pod, pr.port, 'TCP', true) ?? namedPort(pod, pr.port, 'ANY', true);
}

export function portLabel(port: number | undefined): string {
  return port === undefined ? 'all ports' : `port ${port}`;
}

/** Namespaces a Cilium endpoint selector pins with the namespace label (matchLabels or `In`), if any. */
function pinnedNamespaces(peer: Extract<Peer, { type: 'endpoints' }>): readonly (string | undefined)[] {
  if (peer.namespace !== undefined) return [peer.namespace];
  for (const [k, v] of Object.entries(peer.selector.matchLabels ?? {})) if (normalizeKey(k) === NAMESPACE_LABEL) return [String(v)];
  for (const r of peer.selector.matchExpressions ?? []) {
    if (normalizeKey(r.key) === NAMESPACE_LABEL && r.operator === 'In' && (r.values?.length ?? 0) > 0) return r.values!;
  }
  return [undefined];
}

/** Live pods an `endpoints` peer selects (reserved identities and other peer kinds: none). */
export function peerPods(state: ClusterState, peer: Peer): Pod[] {
  const out: Pod[] = [];
  somePeerPod(state, peer, (p) => {
    out.push(p);
    return false;
  });
  return out;
}

/** Does some live pod the `endpoints` peer selects satisfy `test`? Stops at the first one that does. */
export function somePeerPod(state: ClusterState, peer: Peer, test: (p: Pod) => boolean): boolean {
  if (peer.type !== 'endpoints' || selectorIsReserved(peer.selector)) return false;
  const pair = indexablePair(peer.selector);
  for (const ns of pinnedNamespaces(peer)) {
    const candidates = pair ? state.podsWithLabel(ns, pair.key, pair.value) : state.list('Pod', ns);
    for (const p of candidates) {
      if (!isCiliumEndpoint(p)) continue;
      if (peer.namespace !== undefined && p.metadata.namespace !== peer.namespace) continue;
      if (!matchesSelector(peer.selector, endpointLabels(state, p))) continue;
      if (peer.namespaceSelector) {
        const nsLabels: Labels = state.get('Namespace', undefined, p.metadata.namespace ?? '')?.metadata.labels ?? {};
        if (!matchesSelector(peer.namespaceSelector, nsLabels)) continue;
      }
      if (test(p)) return true;
    }
  }
  return false;
}

/** A problem found at one (direction, subject pod, destination pod, port): the unit of before/after diffs. */
export interface Conflict {
  readonly key: string;
  /** The pod whose traffic breaks (ingress: the destination; egress: the client). */
  readonly victim: Pod;
  readonly policy: PolicyRef;
  readonly direction: Direction;
  readonly port: number | undefined;
  readonly l7: string;
  /** Rule-specific detail for messages. */
  readonly detail: string;
}

export function conflictKey(direction: Direction, subject: Pod, dest: Pod | undefined, port: number | undefined): string {
  return `${direction}|${podRef(subject)}|${dest ? podRef(dest) : ''}|${port ?? '*'}`;
}

/** The same pod (by namespace/name) in another state; synthetic pods (not in the state) stay as they are. */
export function podIn(state: ClusterState, pod: Pod): Pod | undefined {
  const found = state.get('Pod', pod.metadata.namespace, pod.metadata.name);
  if (found) return found;
  // A pod named like a synthetic one never exists: keep it; a real pod missing from this state is gone.
  return pod.status === undefined && pod.spec.nodeName === undefined ? pod : undefined;
}

/**
 * Pods a Cilium policy change concerns: those the old object selected (before) and the new one
 * selects (after); when neither selects a live pod, the synthetic pods of the new object.
 */
export function policyChangePods(change: Change, before: ClusterState, after: ClusterState): { pods: Pod[]; synthetic: boolean } {
  const byRef = new Map<string, Pod>();
  if (change.oldObject) for (const p of podsSelectedBy(before, change.oldObject as PolicyObject)) byRef.set(podRef(p), p);
  if (change.object) for (const p of podsSelectedBy(after, change.object as PolicyObject)) byRef.set(podRef(p), p);
  if (byRef.size > 0 || !change.object) return { pods: [...byRef.values()], synthetic: false };
  const s = subjectPods(after, change.object as PolicyObject);
  return { pods: [...s.pods], synthetic: s.synthetic };
}

function matchLabelsOf(spec: Readonly<Record<string, unknown>> | undefined): Labels | undefined {
  const sel = spec?.['selector'];
  if (typeof sel !== 'object' || sel === null) return undefined;
  const ml = (sel as Record<string, unknown>)['matchLabels'];
  if (typeof ml !== 'object' || ml === null || Object.keys(ml).length === 0) return undefined;
  return ml as Labels;
}

/**
 * Pods an Istio policy object (PeerAuthentication, AuthorizationPolicy without targetRefs) can apply to:
 * its selector's pods in its namespace, or every pod of its namespace; from the root namespace, every
 * pod of the mesh. `rootSelectorEverywhere` is true for AuthorizationPolicy (a root-namespace selector
 * matches in every namespace) and false for PeerAuthentication (it does not apply outside the root).
 */
export function istioPolicyPods(state: ClusterState, obj: PolicyObject | undefined, rootSelectorEverywhere: boolean): Pod[] {
  if (!obj) return [];
  const ns = obj.metadata.namespace ?? '';
  const root = istioRootNamespace(state);
  const ml = matchLabelsOf(obj.spec);
  if (!ml) return [...(ns === root ? state.list('Pod') : state.list('Pod', ns))];
  const [k, v] = Object.entries(ml)[0]!;
  const searchNs = ns === root && rootSelectorEverywhere ? undefined : ns;
  return state.podsWithLabel(searchNs, k, String(v)).filter((p) => Object.entries(ml).every(([mk, mv]) => p.metadata.labels?.[mk] === String(mv)));
}

/** Union of pod lists by namespace/name. */
export function unionPods(...lists: readonly (readonly Pod[])[]): Pod[] {
  const m = new Map<string, Pod>();
  for (const l of lists) {
    for (const p of l) {
      const ref = podRef(p);
      if (!m.has(ref)) m.set(ref, p);
    }
  }
  return [...m.values()];
}

export function labelsChanged(change: Change): boolean {
  const a = change.oldObject?.metadata.labels ?? {};
  const b = change.object?.metadata.labels ?? {};
  const ka = Object.keys(a);
  return ka.length !== Object.keys(b).length || ka.some((k) => a[k] !== b[k]);
}

/**
 * Can this Namespace relabel change any L7 conflict of its pods (as destinations or clients)? Conflicts
 * depend on mesh membership and on the selectors of Cilium policies with L7 rules only (see
 * namespaceLabelReadByL7); a relabel outside those leaves them as they were.
 */
export function relabelReachesL7(change: Change, state: ClusterState): boolean {
  return changedLabelKeys(change.oldObject?.metadata.labels, change.object?.metadata.labels).some((k) => namespaceLabelReadByL7(state, k));
}

/** Every Cilium policy model (CNP in every namespace, CCNP) with stream-L7 egress. Per state revision is enough. */
export function l7EgressModels(state: ClusterState): PolicyModel[] {
  const out: PolicyModel[] = [];
  for (const kind of CILIUM_POLICY_KINDS) {
    for (const o of state.list(kind)) for (const m of policyModel(o)) if (l7Uses(m, 'egress').length > 0) out.push(m);
  }
  return out;
}

/** Models of a policy object (empty for odd input). */
export function modelsOf(obj: unknown): readonly PolicyModel[] {
  try {
    return obj ? policyModel(obj as PolicyObject) : [];
  } catch {
    return [];
  }
}

/** L7 models selecting a pod in a state (every CNP/CCNP, indexed). */
export function l7ModelsSelecting(state: ClusterState, pod: Pod): readonly PolicyModel[] {
  return policiesSelecting(state, pod).filter((m) => m.ref.kind !== 'NetworkPolicy' && m.elements.some((e) => !e.deny && e.ports.some((s) => hasStreamL7(s.rules))));
}

export { formatPolicyRef, meshMode };

/** Conflicts present in `after` but not in `before` (new), and those present in both (preexisting). */
export function diffConflicts(before: readonly Conflict[], after: readonly Conflict[]): { added: Conflict[]; kept: Conflict[] } {
  const old = new Set(before.map((c) => c.key));
  const added: Conflict[] = [];
  const kept: Conflict[] = [];
  const seen = new Set<string>();
  for (const c of after) {
    if (seen.has(c.key)) continue;
    seen.add(c.key);
    (old.has(c.key) ? kept : added).push(c);
  }
  return { added, kept };
}

/** The distinct victim pods of conflicts, in order. */
export function victimPods(conflicts: readonly Conflict[]): Pod[] {
  return unionPods(conflicts.map((c) => c.victim));
}
