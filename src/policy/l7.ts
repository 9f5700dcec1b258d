// Where Cilium's L7 proxy meets Istio (split-brain-l7-sidecar, split-brain-l7-ambient, dual-l7-authz):
// which Cilium L7 sections apply to a pod and port, which pods a peer or an Istio policy selects, and the
// "conflict" unit (direction, subject, destination, port) that before/after comparisons key on.

import type { ClusterState, Labels, Pod, PolicyObject } from '../core/objects.ts';
import { ciliumConfig } from './cilium-config.ts';
import { namedPort } from './cluster.ts';
import { istioRootNamespace, istioSelectorOf } from './istio.ts';
import { l7EgressByList, l7EgressByObj, l7IngressByList, l7IngressByObj } from './memo.ts';
import { policyModel } from './model.ts';
import { podRef } from './identity.ts';
import { isCiliumEndpoint, policiesSelecting } from './selection.ts';
import { endpointLabels, indexablePair, matchesSelector, NAMESPACE_LABEL, normalizeKey, selectorIsReserved } from './selectors.ts';
import type { Direction, L7Rules, Peer, PolicyModel, PolicyRef, PortRule, PortSection } from './types.ts';

export const CILIUM_POLICY_KINDS = ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy'] as const;

/** L7 rules that make Cilium's Envoy proxy parse the stream (http, kafka, generic l7). DNS is not one. */
export function hasStreamL7(rules: L7Rules | undefined): boolean {
  if (!rules) return false;
  return (rules.http?.length ?? 0) > 0 || (rules.kafka?.length ?? 0) > 0 || (rules.l7?.length ?? 0) > 0 || !!rules.l7proto;
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
 * Pods an Istio policy object (PeerAuthentication, AuthorizationPolicy without targetRefs) can apply to:
 * its selector's pods in its namespace, or every pod of its namespace; from the root namespace, every
 * pod of the mesh. `rootSelectorEverywhere` is true for AuthorizationPolicy (a root-namespace selector
 * matches in every namespace) and false for PeerAuthentication (it does not apply outside the root).
 */
export function istioPolicyPods(state: ClusterState, obj: PolicyObject | undefined, rootSelectorEverywhere: boolean): Pod[] {
  if (!obj) return [];
  const ns = obj.metadata.namespace ?? '';
  const root = istioRootNamespace(state);
  const sel = istioSelectorOf(obj.spec);
  if (sel.kind === 'invalid') return [];
  if (sel.kind === 'none') return [...(ns === root ? state.list('Pod') : state.list('Pod', ns))];
  const ml = sel.labels;
  const [k, v] = Object.entries(ml)[0]!;
  const searchNs = ns === root && rootSelectorEverywhere ? undefined : ns;
  return state.podsWithLabel(searchNs, k, v).filter((p) => Object.entries(ml).every(([mk, mv]) => p.metadata.labels?.[mk] === mv));
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

/** The distinct victim pods of conflicts, in order. */
export function victimPods(conflicts: readonly Conflict[]): Pod[] {
  return unionPods(conflicts.map((c) => c.victim));
}

/** The Cilium policies of a list with stream-L7 rules in `direction`, each with those models (kept per list array). */
export function l7PoliciesWith(list: readonly object[], direction: Direction): readonly { obj: object; models: readonly PolicyModel[] }[] {
  const [byList, byObj] = direction === 'egress' ? [l7EgressByList, l7EgressByObj] : [l7IngressByList, l7IngressByObj];
  let hit = byList.get(list);
  if (!hit) {
    const out: { obj: object; models: readonly PolicyModel[] }[] = [];
    for (const obj of list) {
      let models = byObj.get(obj);
      if (!models) byObj.set(obj, (models = modelsOf(obj).filter((m) => l7Uses(m, direction).length > 0)));
      if (models.length > 0) out.push({ obj, models });
    }
    byList.set(list, (hit = out));
  }
  return hit;
}

/**
 * The L7 protocols a Cilium policy object's rules use ("http", "kafka", "dns", an l7proto name, or "l7"),
 * in the order first met; empty when none. Every section counts (ingress and egress, allow and deny): the
 * agent refuses the whole object for any of them when the L7 proxy is off (l7-proxy-disabled).
 */
export function l7Protocols(obj: PolicyObject | undefined): string[] {
  if (!obj) return [];
  const kinds = new Set<string>();
  for (const m of policyModel(obj)) {
    if (!m.hasL7) continue;
    for (const e of m.elements) {
      for (const s of e.ports) {
        const r = s.rules;
        if (!r) continue;
        if ((r.http?.length ?? 0) > 0) kinds.add('http');
        if ((r.kafka?.length ?? 0) > 0) kinds.add('kafka');
        if ((r.dns?.length ?? 0) > 0) kinds.add('dns');
        if ((r.l7?.length ?? 0) > 0 || r.l7proto) kinds.add(r.l7proto ?? 'l7');
      }
    }
  }
  return [...kinds];
}
