// split-brain-l7-sidecar: Cilium L7 rules (http, kafka, l7) on traffic that Istio sidecars encrypt with
// mTLS. Cilium's Envoy sees TLS where it expects HTTP and answers 503. Ingress: L7 rules on sidecar pods
// whose effective PeerAuthentication on that port is not DISABLE (PERMISSIVE still gets mTLS from every
// meshed client). Egress: L7 rules of sidecar pods toward sidecar pods that accept mTLS on that port.

//
// The rule folder: index.ts (this file: metadata, scope, check), messages.ts (the words, per code),
// testdata/*.yaml (fixtures run by test/rules/fixtures.test.ts). docs/adding-a-rule.md explains the layout.

import type { Change } from '../../core/change.ts';
import type { Finding } from '../../core/finding.ts';
import type { ClusterState, Pod, PolicyObject } from '../../core/objects.ts';
import type { Rule, RuleContext } from '../../core/rule.ts';
import { changedLabelKeys, effectiveMtls, isMeshProxyPod, namespaceLabelReadByPeers, modelSelects, podsSelectedBy, selectorIsReserved, type EffectiveMtls, type Peer, type PolicyModel, CILIUM_POLICY_KINDS, l7PoliciesWith, conflictKey, coveredPorts, formatPolicyRef, istioPolicyPods, l7ModelsSelecting, l7ProxyEnabled, l7Uses, meshMode, modelsOf, peerPods, podIn, podRef, somePeerPod, unionPods, victimPods, type Conflict } from '../../policy/index.ts';
import { diffKeyed as diffConflicts, isCiliumPolicyChange, namespaceUnits, perUnitInOrder, relabelReachesL7, touchedPods } from '../../impact/index.ts';
import { victimParams, victimsOf, l7Kind } from '../render-helpers.ts';
import { messages } from './messages.ts';

const ID = 'split-brain-l7-sidecar';
/** Bound the egress fan-out (client pods x destination pods) per policy rule. */
const MAX_EGRESS_DESTS = 20;

/** A conflict with what the message needs: the mTLS that reaches Cilium's proxy, and for egress the destination pod. */
interface MtlsConflict extends Conflict {
  readonly mtls: EffectiveMtls;
  readonly destination?: Pod;
}

/** The mTLS mode that reaches Cilium's proxy on a port; for "all ports", the first non-DISABLE one. */
function mtlsOn(state: ClusterState, pod: Pod, port: number | undefined): EffectiveMtls | undefined {
  const candidates: (number | undefined)[] = [port];
  if (port === undefined) for (const c of pod.spec.containers ?? []) for (const cp of c.ports ?? []) candidates.push(cp.containerPort);
  for (const p of candidates) {
    const m = effectiveMtls(state, pod, p);
    if (m.mode !== 'DISABLE') return m;
  }
  return undefined;
}

function ingressConflicts(state: ClusterState, pod: Pod, prev?: ClusterState, admits = new Map<readonly Peer[], boolean>()): MtlsConflict[] {
  if (meshMode(state, pod) !== 'sidecar') return [];
  const out: MtlsConflict[] = [];
  for (const m of l7ModelsSelecting(state, pod)) {
    for (const use of l7Uses(m, 'ingress')) {
      // Replicas share their models' peer lists: judge each list once per state.
      let ok = admits.get(use.peers);
      if (ok === undefined) admits.set(use.peers, (ok = admitsMeshClients(state, use.peers, prev)));
      if (!ok) continue;
      for (const port of coveredPorts(pod, use.section)) {
        const mt = mtlsOn(state, pod, port);
        if (!mt) continue;
        out.push({
          key: conflictKey('ingress', pod, pod, port),
          victim: pod,
          policy: m.ref,
          direction: 'ingress',
          port,
          l7: l7Kind(use.section.rules),
          detail: '',
          mtls: mt,
        });
      }
    }
  }
  return out;
}

/**
 * Can the peers of an L7 ingress element include mesh clients (sidecars, ambient pods, Istio gateways),
 * whose traffic arrives as mTLS? Clients outside the mesh send plaintext that a PERMISSIVE sidecar
 * accepts and Cilium parses. Endpoint peers are judged by their live pods; peers without a live pod,
 * no peer at all, and the cluster/all entities may always include mesh clients. With `prev` (the state
 * before a relabel), a peer that had live pods there and has none now lost them to the relabel: that
 * brings no mesh client in, so it is judged empty rather than "may include mesh clients".
 */
function admitsMeshClients(state: ClusterState, peers: readonly Peer[], prev?: ClusterState): boolean {
  if (peers.length === 0) return true;
  const anyPod = (): boolean => true;
  return peers.some((peer) => {
    if (peer.type === 'entities') return peer.entities.includes('cluster') || peer.entities.includes('all');
    if (peer.type !== 'endpoints') return false; // CIDR, FQDN, Services: never pods
    if (selectorIsReserved(peer.selector)) return false;
    // Stop at the first mesh client rather than list every pod the peer selects.
    if (somePeerPod(state, peer, (p) => isMeshProxyPod(p) || meshMode(state, p) !== 'none')) return true;
    if (somePeerPod(state, peer, anyPod)) return false; // live pods, none of them in the mesh
    return !prev || !somePeerPod(prev, peer, anyPod);
  });
}

/** Egress L7 of `model` from sidecar `subject` toward sidecar destinations (optionally only `dests`). */
function egressConflicts(state: ClusterState, model: PolicyModel, subject: Pod, dests?: ReadonlySet<string>): MtlsConflict[] {
  if (meshMode(state, subject) !== 'sidecar') return [];
  const out: MtlsConflict[] = [];
  for (const use of l7Uses(model, 'egress')) {
    let n = 0;
    for (const peer of use.peers) {
      for (const dest of peerPods(state, peer)) {
        if (dests && !dests.has(podRef(dest))) continue;
        if (n++ >= MAX_EGRESS_DESTS) break;
        if (meshMode(state, dest) !== 'sidecar') continue;
        for (const port of coveredPorts(dest, use.section)) {
          const mt = mtlsOn(state, dest, port);
          if (!mt) continue;
          out.push({
            key: conflictKey('egress', subject, dest, port),
            victim: subject,
            policy: model.ref,
            direction: 'egress',
            port,
            l7: l7Kind(use.section.rules),
            detail: '',
            mtls: mt,
            destination: dest,
          });
        }
      }
    }
  }
  return out;
}


/** Egress conflicts of every Cilium policy with L7 egress toward the given destination pods. */
function egressTowards(state: ClusterState, dests: readonly Pod[]): MtlsConflict[] {
  if (dests.length === 0) return [];
  // Named once a policy with L7 egress rules is met (most states have none).
  let destSet: Set<string> | undefined;
  const out: MtlsConflict[] = [];
  for (const kind of CILIUM_POLICY_KINDS) {
    for (const { obj, models } of l7PoliciesWith(state.list(kind), 'egress')) {
      destSet ??= new Set(dests.map(podRef));
      for (const subject of podsSelectedBy(state, obj as PolicyObject)) {
        for (const m of models) if (modelSelects(state, m, subject)) out.push(...egressConflicts(state, m, subject, destSet));
      }
    }
  }
  return out;
}

/**
 * The ingress conflicts of `pods` in `state`, in pod order. With `units` (pods of one class that
 * PeerAuthentication selectors do not tell apart: the same mesh mode, L7 policies, container ports and
 * effective mTLS), asked once per unit unless its first pod has a conflict.
 */
function ingressOf(state: ClusterState, pods: readonly Pod[], prev?: ClusterState, units?: readonly (readonly Pod[])[]): MtlsConflict[] {
  const admits = new Map<readonly Peer[], boolean>();
  return perUnitInOrder(pods, units, (p) => {
    const here = podIn(state, p);
    return here ? ingressConflicts(state, here, prev, admits) : NO_CONFLICTS;
  });
}
const NO_CONFLICTS: readonly MtlsConflict[] = [];

function policyEgress(state: ClusterState, obj: unknown, pods: readonly Pod[]): MtlsConflict[] {
  const out: MtlsConflict[] = [];
  for (const m of modelsOf(obj)) {
    if (l7Uses(m, 'egress').length === 0) continue;
    for (const p of pods) {
      const here = podIn(state, p);
      if (here && modelSelects(state, m, here)) out.push(...egressConflicts(state, m, here));
    }
  }
  return out;
}

/** What the request does that this rule judges; undefined: nothing to judge. */
type Subject =
  | { readonly by: 'cilium-policy' }
  | { readonly by: 'peer-authentication'; readonly ref: string }
  | { readonly by: 'namespace'; readonly namespace: string };

/** Cheap, from the request alone: a Cilium policy written, a PeerAuthentication written or deleted, a Namespace relabelled. */
export function scope(change: Change): Subject | undefined {
  if (isCiliumPolicyChange(change)) return change.operation === 'DELETE' ? undefined : { by: 'cilium-policy' };
  if (change.kind === 'PeerAuthentication') return { by: 'peer-authentication', ref: `${change.namespace ?? ''}/${change.name}` };
  if (change.kind === 'Namespace' && change.operation === 'UPDATE') return { by: 'namespace', namespace: change.name };
  return undefined;
}

function collect(subject: Subject, change: Change, before: ClusterState, after: ClusterState): { b: MtlsConflict[]; a: MtlsConflict[]; synthetic: boolean } | undefined {
  if (subject.by === 'cilium-policy') {
    const { pods, synthetic } = touchedPods(change, before, after, { direction: 'l7' });
    if (pods.length === 0) return undefined;
    return {
      b: [...ingressOf(before, pods), ...policyEgress(before, change.oldObject, pods)],
      a: [...ingressOf(after, pods), ...policyEgress(after, change.object, pods)],
      synthetic,
    };
  }
  let pods: readonly Pod[];
  let units: readonly (readonly Pod[])[] | undefined;
  if (subject.by === 'peer-authentication') {
    pods = unionPods(
      istioPolicyPods(before, change.oldObject as PolicyObject | undefined, false),
      istioPolicyPods(after, change.object as PolicyObject | undefined, false),
    );
  } else if (relabelReachesL7(change, before)) {
    pods = after.list('Pod', subject.namespace);
    // Per class and the per-pod labels PeerAuthentication selectors read, when `before` has the same pods.
    units = namespaceUnits(before, after, subject.namespace, { mtls: true }).units;
  } else {
    return undefined; // a relabel no L7 rule reads (and no mesh label) cannot change a conflict
  }
  if (pods.length === 0) return undefined;
  // A Namespace relabel also changes its pods as clients: injected, they originate mTLS under their own
  // L7 egress rules (PeerAuthentication changes leave clients as they are).
  const asClients = subject.by === 'namespace';
  // Rules elsewhere see the relabelled pods differently only when they join or leave the mesh (an Istio
  // label) or when a peer selector reads a changed label; scanning every L7 rule of the cluster for any
  // other label would cost every owner or cost-centre relabel.
  const elsewhere =
    asClients &&
    changedLabelKeys(change.oldObject?.metadata.labels, change.object?.metadata.labels).some((k) => /istio/i.test(k) || namespaceLabelReadByPeers(before, k));
  // With units, `before` holds the same pod objects (namespaceUnits).
  const beforePods = units !== undefined ? pods : pods.map((p) => podIn(before, p)).filter((p): p is Pod => !!p);
  return {
    b: [...ingressOf(before, pods, undefined, units), ...egressTowards(before, beforePods), ...(asClients ? egressFrom(before, beforePods, units) : [])],
    a: [
      // A peer the relabel empties (its namespace no longer matches) admits no new mesh client.
      ...ingressOf(after, pods, asClients ? before : undefined, units),
      ...egressTowards(after, pods),
      ...(asClients ? egressFrom(after, pods, units) : []),
      ...(elsewhere ? newIngressElsewhere(before, after, change.name) : []),
    ],
    synthetic: false,
  };
}

/**
 * L7 ingress conflicts this relabel creates outside the namespace: L7 rules elsewhere that admit its
 * pods, which send mTLS once the namespace joins the mesh. Only new ones (pre-existing problems
 * elsewhere are not this request's to repeat).
 */
function newIngressElsewhere(before: ClusterState, after: ClusterState, namespace: string): MtlsConflict[] {
  const pods = new Map<string, Pod>();
  for (const kind of CILIUM_POLICY_KINDS) {
    for (const { obj } of l7PoliciesWith(after.list(kind), 'ingress')) {
      for (const p of podsSelectedBy(after, obj as PolicyObject)) if (p.metadata.namespace !== namespace) pods.set(podRef(p), p);
    }
  }
  if (pods.size === 0) return [];
  const old = new Set(ingressOf(before, [...pods.values()]).map((c) => c.key));
  return ingressOf(after, [...pods.values()], before).filter((c) => !old.has(c.key));
}

/**
 * Egress conflicts of the L7 egress rules selecting these pods (the pods as clients), in pod order. With
 * `units` (pods of one class: the same mesh mode and L7 policies; the destinations are the policies'
 * peers, the same for every client), asked once per unit unless its first pod has a conflict.
 */
function egressFrom(state: ClusterState, pods: readonly Pod[], units?: readonly (readonly Pod[])[]): MtlsConflict[] {
  return perUnitInOrder(pods, units, (p) => {
    const here = podIn(state, p);
    if (!here) return NO_CONFLICTS;
    const out: MtlsConflict[] = [];
    for (const m of l7ModelsSelecting(state, here)) if (l7Uses(m, 'egress').length > 0) out.push(...egressConflicts(state, m, here));
    return out;
  });
}

export function check(subject: Subject, change: Change, before: ClusterState, after: ClusterState): Finding[] {
  if (!l7ProxyEnabled(after)) return [];
  const got = collect(subject, change, before, after);
  if (!got) return [];
  const { added, kept } = diffConflicts(got.b, got.a);
  const preexisting = added.length === 0;
  const shown = preexisting ? kept : added;
  if (shown.length === 0) return [];
  const first = shown[0]!;
  const victims = victimPods(shown);
  const policies = [...new Set(shown.map((c) => formatPolicyRef(c.policy)))];
  const source = first.mtls.source;
  const conflict = {
    l7: first.l7,
    policies: policies.slice(0, 2),
    policyCount: policies.length,
    ...(first.port === undefined ? {} : { port: first.port }),
    mtls: first.mtls.mode,
    ...(source ? { mtlsSource: `${source.namespace}/${source.name}`, mtlsLevel: source.level } : {}),
    ...victimParams(victims),
  };
  const extras = { ...victimsOf(victims), preexisting };
  if (first.direction === 'ingress') {
    const app = first.victim.metadata.labels?.['app'];
    const ingress = { ...conflict, podNamespace: first.victim.metadata.namespace ?? '', ...(app ? { app } : {}) };
    switch (subject.by) {
      case 'cilium-policy':
        return [messages.finding(preexisting ? 'policy-ingress-mtls-kept' : 'policy-ingress-mtls', { ...ingress, wouldSelect: got.synthetic }, extras)];
      case 'peer-authentication':
        return [messages.finding(preexisting ? 'peer-authentication-ingress-mtls-kept' : 'peer-authentication-ingress-mtls', { ...ingress, peerAuthentication: subject.ref }, extras)];
      case 'namespace':
        return [messages.finding(preexisting ? 'namespace-ingress-mtls-kept' : 'namespace-ingress-mtls', { ...ingress, namespace: subject.namespace }, extras)];
    }
  }
  const egress = { ...conflict, destination: first.destination ? podRef(first.destination) : '' };
  switch (subject.by) {
    case 'cilium-policy':
      return [messages.finding(preexisting ? 'policy-egress-mtls-kept' : 'policy-egress-mtls', { ...egress, wouldSelect: got.synthetic }, extras)];
    case 'peer-authentication':
      return [messages.finding(preexisting ? 'peer-authentication-egress-mtls-kept' : 'peer-authentication-egress-mtls', { ...egress, peerAuthentication: subject.ref }, extras)];
    case 'namespace':
      return [messages.finding(preexisting ? 'namespace-egress-mtls-kept' : 'namespace-egress-mtls', { ...egress, namespace: subject.namespace }, extras)];
  }
}

export const rule: Rule = {
  id: ID,
  severity: 'B',
  summary: 'Cilium L7 rules on sidecar traffic that Istio encrypts with mTLS (PeerAuthentication not DISABLE): HTTP 503',
  docs: `docs/rules/${ID}.md`,
  triggers: [
    { kinds: ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy'], operations: ['CREATE', 'UPDATE'], when: 'adds L7 rules on mTLS traffic' },
    { kinds: ['PeerAuthentication'], operations: ['CREATE', 'UPDATE', 'DELETE'], when: 'a workload STRICT overriding a namespace DISABLE, or deleting the DISABLE, re-enables mTLS under existing L7 rules' },
    { kinds: ['Namespace'], operations: ['UPDATE'], when:
        "enabling injection (`istio-injection=enabled`, `istio.io/rev`) under existing L7 rules: its pods' ingress L7, L7 egress of other pods toward them, " +
        'and their own L7 egress toward sidecar pods, and, when an Istio label or a label some peer selector reads changed, L7 ingress rules elsewhere ' +
        'that admit its pods (they send mTLS once injected; only new conflicts there); a relabel no L7 rule reads is skipped' },
  ],
  messages,
  evaluate: (change: Change, before: ClusterState, after: ClusterState, _ctx: RuleContext): Finding[] => {
    const subject = scope(change);
    return subject ? check(subject, change, before, after) : [];
  },
};
