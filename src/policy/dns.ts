// The DNS target of the egress checks: which kube-dns backends a pod must reach, on which port, and
// whether it does. Pure functions over a state.

import type { ClusterState, Labels, Pod } from '../core/objects.ts';
import { dnsBackends, endpointSlicesRead } from './cluster.ts';
import { perRevision, withoutBackendsByPods, withoutBackendsBySegment } from './memo.ts';
import { dnsClassKey, podRef } from './identity.ts';
import { groupsOf, outsideClassesOf, podClassId, podsOfClasses, podsOfSegments, segmentsOf, type PodClass } from './classes.ts';
import { fromBasePass, plainPodSource, podSourceIngress, reachable } from './reachability.ts';
import { baseTablesFiller, memoReach, reachAsker, type ReachAsker, type ReachQuestion } from './reach-memo.ts';
import type { Protocol, Target } from './types.ts';

// ---------- DNS ----------

/** The kube-dns backends to test against: one pod per pod class (at most 3), and the UDP port. */
export interface DnsTarget {
  readonly pods: readonly Pod[];
  readonly port: number;
  /** The Service selector (labels the fix should use). */
  readonly selector: Labels;
  readonly namespace: string;
}

export function dnsTarget(state: ClusterState): DnsTarget | undefined {
  // Asked once per judged class by the DNS rules: once per state revision is enough.
  return perRevision(state, 'dnsTarget', () => computeDnsTarget(state));
}

function computeDnsTarget(state: ClusterState): DnsTarget | undefined {
  const b = dnsBackends(state);
  const svc =
    state.get('Service', 'kube-system', 'kube-dns') ??
    state.list('Service', 'kube-system').find((s) => s.metadata.labels?.['k8s-app'] === 'kube-dns');
  const selector: Labels = svc?.spec.selector ?? { 'k8s-app': 'kube-dns' };
  const namespace = svc?.metadata.namespace ?? 'kube-system';
  const udp = b.ports.find((p) => p.protocol === 'UDP');
  const port = udp?.port ?? 53;
  // One backend per pod class (pods of a class are interchangeable for every policy question; two
  // backends with the same labels are not when one is in the host network or on another node), at most
  // three, picked by class key and name: the same whatever order the state lists the pods in (a live
  // state's order follows its events).
  const byClass = new Map<string, Pod>();
  for (const p of b.pods) {
    const key = podClassId(p);
    const had = byClass.get(key);
    if (had === undefined || p.metadata.name < had.metadata.name) byClass.set(key, p);
  }
  let pods: Pod[] = [...byClass.keys()]
    .sort()
    .slice(0, 3)
    .map((k) => byClass.get(k)!);
  if (pods.length === 0) {
    if (!svc) return undefined;
    // No live backend (a snapshot without CoreDNS pods): a stand-in pod with the Service selector labels.
    pods = [
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: '(kube-dns backend)', namespace, labels: selector },
        spec: { containers: [] },
      },
    ];
  }
  return { pods, port, selector, namespace };
}

/** Is a pod one of the DNS backends (they do not need to reach themselves)? */
export function isDnsBackend(state: ClusterState, pod: Pod): boolean {
  return dnsBackends(state).pods.some((p) => podRef(p) === podRef(pod));
}

/**
 * `pods` without the DNS backends (which resolve upstream, not through kube-dns). Per class when `pods`
 * is registered with its classes: only a class holding a backend is looked at pod by pod. When `pods` is
 * a concatenation of per-namespace class arrays (every pod of a state), only the backends' namespaces
 * are looked at (a class key starts with the namespace): the others' arrays are passed through, and the
 * backends' namespace's answer is kept per its class array and the backends (it reads those classes'
 * pods and the backends' names, nothing else), so a pod event elsewhere only assembles the answer.
 */
export function withoutDnsBackends(state: ClusterState, pods: readonly Pod[]): readonly Pod[] {
  const backends = dnsBackends(state).pods;
  if (backends.length === 0) return pods;
  const groups = groupsOf(pods);
  if (!groups) return pods.filter((p) => !isDnsBackend(state, p));
  // Per pod array and backends (by reference): a classified array of every pod is kept across requests
  // until a pod changes, and so is this answer (rather than a 50k-pod array rebuilt per request).
  const refs = backends.map(podRef).join('\n');
  const hit = withoutBackendsByPods.get(pods);
  // (A plain WeakMap, as the pod array's own requests mark it ephemeral; the answer is used only while
  // it is still registered with its classes.)
  if (hit !== undefined && hit.backends === refs && (hit.pods === pods || groupsOf(hit.pods) !== undefined)) return hit.pods as readonly Pod[];
  const segments = segmentsOf(groups);
  const out = segments === undefined ? withoutBackendClasses(backends, pods, groups) : withoutBackendSegments(backends, refs, pods, segments);
  withoutBackendsByPods.set(pods, { backends: refs, pods: out });
  return out;
}

let segmentsFiltered = 0;

/** How many namespace class arrays withoutDnsBackends has filtered class by class (for tests). */
export function backendSegmentScans(): number {
  return segmentsFiltered;
}

/** withoutBackendClasses over a concatenation of per-namespace class arrays, namespace by namespace. */
function withoutBackendSegments(backends: readonly Pod[], refs: string, pods: readonly Pod[], segments: readonly (readonly PodClass[])[]): readonly Pod[] {
  const namespaces = new Set(backends.map((p) => p.metadata.namespace ?? ''));
  const parts: (readonly PodClass[])[] = [];
  let same = true;
  for (const seg of segments) {
    let part = seg;
    if (namespaces.has(seg[0]!.pods[0]!.metadata.namespace ?? '')) {
      const hit = withoutBackendsBySegment.get(seg);
      if (hit !== undefined && hit.backends === refs) part = hit.classes as readonly PodClass[];
      else {
        segmentsFiltered++;
        part = withoutBackendsIn(backends, seg) ?? seg;
        withoutBackendsBySegment.set(seg, { backends: refs, classes: part });
      }
    }
    if (part !== seg) same = false;
    if (part.length > 0) parts.push(part);
  }
  return same ? pods : podsOfSegments(parts);
}

function withoutBackendClasses(backends: readonly Pod[], pods: readonly Pod[], groups: readonly PodClass[]): readonly Pod[] {
  const kept = withoutBackendsIn(backends, groups);
  return kept === undefined ? pods : podsOfClasses(kept);
}

/** `groups` with the backends' pods left out of their classes (empty classes dropped), or undefined when no class holds a backend's class. */
function withoutBackendsIn(backends: readonly Pod[], groups: readonly PodClass[]): readonly PodClass[] | undefined {
  const backendClasses = new Set(backends.map(podClassId));
  const refs = new Set(backends.map(podRef));
  let changed = false;
  const kept: PodClass[] = [];
  for (const c of groups) {
    if (!backendClasses.has(podClassId(c.pods[0]!))) {
      kept.push(c);
      continue;
    }
    changed = true;
    const rest = c.pods.filter((p) => !refs.has(podRef(p)));
    if (rest.length > 0) kept.push({ key: c.key, pods: rest });
  }
  return changed ? kept : undefined;
}

/** Can the pod reach at least one DNS backend on the given protocol (default UDP)? undefined = no DNS Service known. */
export function reachesDns(state: ClusterState, pod: Pod, protocol: Protocol = 'UDP'): boolean | undefined {
  // Per DNS class (dnsClassKey) and state revision; an overlay's from its base where it cannot differ.
  const q = protocol === 'UDP' ? DNS_UDP : protocol === 'TCP' ? DNS_TCP : undefined;
  return q ? memoReach(q, state, pod) : computeReachesDns(state, pod, protocol);
}

function computeReachesDns(state: ClusterState, pod: Pod, protocol: Protocol): boolean | undefined {
  const t = dnsTarget(state);
  if (!t) return undefined;
  const port = dnsPort(state, t, protocol);
  for (const d of t.pods) {
    const ingress = backendIngress(state, pod, d, port, protocol);
    if (ingress === false) continue;
    if (reachable(state, pod, { type: 'pod', pod: d }, port, protocol, ingress === true ? 'egress' : 'both')) return true;
  }
  return false;
}

function dnsPort(state: ClusterState, t: DnsTarget, protocol: Protocol): number {
  return protocol === 'UDP' ? t.port : (dnsBackends(state).ports.find((p) => p.protocol === protocol)?.port ?? t.port);
}

/**
 * The ingress half of `pod` reaching backend `d` when it is the same for every pod client (decided once
 * per state, backend, port and protocol: podSourceIngress), else undefined (judged with the flow): a
 * host-network client has its node's identity (and may be the backend's local host), and a backend
 * reaches itself without policy.
 */
function backendIngress(state: ClusterState, pod: Pod, d: Pod, port: number, protocol: Protocol): boolean | undefined {
  return plainPodSource(pod, d) ? podSourceIngress(state, d, port, protocol) : undefined;
}

function dnsQuestion(protocol: Protocol): ReachQuestion<boolean | undefined> {
  const planKey = `reachesDns:${protocol}:derivePlan`;
  return {
    name: `reachesDns:${protocol}`,
    destsName: `reachesDns:${protocol}:dests`,
    dests: (state) => dnsTarget(state)?.pods ?? [],
    reads: dnsReads,
    compute: (state, pod) => computeReachesDns(state, pod, protocol),
    keyer: dnsKeyer,
    deriver: (state, base, changed) => {
      const plan = derivePlan(state, planKey, protocol);
      if (!plan) return undefined;
      const { t, port, ingresses, targets } = plan;
      const pass = fromBasePass(state, base, changed);
      return (pod, key) => {
        const hostNetwork = pod.spec.hostNetwork === true;
        for (let i = 0; i < t.pods.length; i++) {
          const ingress = hostNetwork ? undefined : ingresses[i];
          if (ingress === false) continue;
          const r = pass.reach(pod, targets[i]!, port, protocol, key, protocol, t.pods[i]!, ingress === true ? 'egress' : 'both');
          if (r !== false) return r;
        }
        return false;
      };
    },
  };
}

/** The DNS derivation's target, port, backend targets and the backends' ingress decided once for every pod client, per state revision. */
function derivePlan(state: ClusterState, planKey: string, protocol: Protocol): { readonly t: DnsTarget; readonly port: number; readonly ingresses: readonly (boolean | undefined)[]; readonly targets: readonly Target[] } | undefined {
  return perRevision(state, planKey + ':pass', () => {
    const t = dnsTarget(state);
    if (!t) return undefined;
    const port = dnsPort(state, t, protocol);
    return { t, port, ingresses: t.pods.map((d) => podSourceIngress(state, d, port, protocol)), targets: t.pods.map((d): Target => ({ type: 'pod', pod: d })) };
  });
}

/**
 * What the DNS questions' answers read of pods and EndpointSlices besides the class judged: every kube-dns
 * backend (the target's pods and the ports are taken from them) and the EndpointSlices read by name.
 */
function dnsReads(state: ClusterState): readonly object[] {
  return [...dnsBackends(state).pods, ...endpointSlicesRead(state)];
}

/** The DNS questions' class key for many pods of one state (a pod of a backend's class is judged on its own). */
function dnsKeyer(state: ClusterState): (pod: Pod) => string | undefined {
  const pods = dnsTarget(state)?.pods ?? [];
  const fn = dnsClassKey(state);
  return pods.length === 0 ? fn : outsideClassesOf(pods, fn);
}

const DNS_UDP = dnsQuestion('UDP');
const DNS_TCP = dnsQuestion('TCP');
const { deriver: _bothDirections, ...dnsKeys } = dnsQuestion('UDP');
const DNS_EGRESS: ReachQuestion<boolean> = {
  ...dnsKeys,
  name: 'reachesDnsEgressOnly',
  destsName: 'reachesDnsEgressOnly:dests',
  compute: (state, pod) => {
    const t = dnsTarget(state);
    return t !== undefined && computeReachesDnsEgressOnly(state, pod, t);
  },
  // The egress half of reachesDns's derivation (the same base decisions, kept per class and backend).
  deriver: (state, base, changed) => {
    const plan = derivePlan(state, 'reachesDnsEgressOnly:derivePlan', 'UDP');
    if (!plan) return undefined;
    const { t, targets } = plan;
    const pass = fromBasePass(state, base, changed);
    return (pod, key) => {
      for (let i = 0; i < t.pods.length; i++) {
        const r = pass.reach(pod, targets[i]!, t.port, 'UDP', key, 'UDP', t.pods[i]!, 'egress');
        if (r !== false) return r;
      }
      return false;
    };
  },
};

/** reachesDns(state, ·, protocol) for many pods of one state (UDP or TCP): see reachAsker. */
export function reachesDnsAsker(state: ClusterState, protocol: 'UDP' | 'TCP' = 'UDP'): ReachAsker<boolean | undefined> {
  return reachAsker(protocol === 'UDP' ? DNS_UDP : DNS_TCP, state);
}

/**
 * Fills the long-lived state's DNS tables for a pod's class (baseTablesFiller): the UDP answer the
 * "before" half of every DNS comparison reads, and the base's decision facts toward each backend that
 * the overlays' UDP and egress-only derivations share. For many pods of one state.
 */
export function dnsTablesFiller(state: ClusterState): (pod: Pod) => void {
  return baseTablesFiller(DNS_UDP, state);
}

/** reachesDnsEgressOnly(state, ·, dnsTarget(state)) for many pods of one state: see reachAsker. */
export function reachesDnsEgressOnlyAsker(state: ClusterState): ReachAsker<boolean> {
  return reachAsker(DNS_EGRESS, state);
}

/** Is the pod's egress toward a DNS backend allowed (ignoring the backend's ingress)? */
export function reachesDnsEgressOnly(state: ClusterState, pod: Pod, target: { readonly pods: readonly Pod[]; readonly port: number }): boolean {
  // The state's own DNS target (what the rules pass): per DNS class and state revision, as reachesDns.
  if (target === dnsTarget(state)) return memoReach(DNS_EGRESS, state, pod);
  return computeReachesDnsEgressOnly(state, pod, target);
}

function computeReachesDnsEgressOnly(state: ClusterState, pod: Pod, target: { readonly pods: readonly Pod[]; readonly port: number }): boolean {
  return target.pods.some((d) => reachable(state, pod, { type: 'pod', pod: d }, target.port, 'UDP', 'egress'));
}

/**
 * Can the pod reach DNS over TCP (while UDP, the lookups' protocol, may be dropped)? False when there is
 * no DNS Service or the state cannot be judged: the answer only adds a hint to a message, never a finding.
 */
export function reachesDnsOverTcp(state: ClusterState, pod: Pod): boolean {
  try {
    return reachesDns(state, pod, 'TCP') === true;
  } catch {
    return false;
  }
}
