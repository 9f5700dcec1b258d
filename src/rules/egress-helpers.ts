// Shared by the egress rules (dns-egress-missing, apiserver-egress-missing, fqdn-without-dns-proxy,
// deny-only-default-deny): which pods a request can change the policy of, and the before/after
// comparison that separates what this request breaks from what was already broken.

import { internKey } from '../state/intern.ts';
import type { Change } from '../core/change.ts';
import {
  changedLabelKeys,
  dnsBackends,
  namespaceLabelReadFor,
  reachable,
  podsSelectedBy,
  policyModel,
  policySettings,
  subjectPods,
  type Direction,
  type Protocol,
} from '../policy/index.ts';
import type { ClusterState, Labels, Pod, PolicyObject } from '../state/types.ts';
import { podRef } from './helpers.ts';
import { ScopedWeakMap } from '../state/request-scope.ts';

export const POLICY_KINDS = ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy', 'NetworkPolicy'] as const;

export function isPolicyChange(change: Change): boolean {
  return change.kind !== undefined && (POLICY_KINDS as readonly string[]).includes(change.kind);
}

export function isCiliumConfigChange(change: Change): boolean {
  return change.kind === 'ConfigMap' && change.namespace === 'kube-system' && change.name === 'cilium-config';
}

/** The pods a request can change policy for, and whether they are synthetic (no live pod selected). */
export interface TouchedPods {
  readonly pods: readonly Pod[];
  readonly synthetic: boolean;
}

const NONE: TouchedPods = { pods: [], synthetic: false };

/**
 * Pods whose policy this request may change:
 * - a policy object: the pods the old object selects (before) and the new one selects (after); when
 *   neither selects a live pod, the synthetic pod of the new object (new namespaces are protected too);
 * - a Namespace whose labels change: its pods (namespace labels feed CCNP/NetworkPolicy selectors);
 * - cilium-config when the policy mode changes: every pod (rare, and the change is cluster-wide).
 */
/**
 * Can the policy object change anything in this direction for the pods it selects? Only through a
 * section of that direction (allow or deny rules) or through `enableDefaultDeny` turning that
 * direction's default deny on by itself (`enableDefaultDeny: {egress: true}` with ingress rules only
 * still puts the pods into egress default deny).
 */
export function affectsDirection(obj: PolicyObject | undefined, direction: Direction): boolean {
  return obj !== undefined && policyModel(obj).some((m) => m.hasSection[direction] || m.enforces[direction]);
}

/**
 * `direction`: a policy change whose old and new objects cannot affect that direction (see
 * affectsDirection; enforcement and allows are per direction) touches no pods for it.
 */
export function touchedPods(change: Change, before: ClusterState, after: ClusterState, opts: { direction?: Direction } = {}): TouchedPods {
  // Several rules ask the same question of one request: answer it once per (change, before, after).
  let hit = touchedCache.get(change);
  if (!hit || hit.before !== before || hit.after !== after) touchedCache.set(change, (hit = { before, after }));
  const slot = opts.direction ?? 'all';
  return (hit[slot] ??= computeTouchedPods(change, before, after, opts));
}

const touchedCache = new ScopedWeakMap<Change, { before: ClusterState; after: ClusterState; all?: TouchedPods; egress?: TouchedPods; ingress?: TouchedPods }>();

function computeTouchedPods(change: Change, before: ClusterState, after: ClusterState, opts: { direction?: Direction }): TouchedPods {
  try {
    if (isPolicyChange(change)) {
      const d = opts.direction;
      if (d && !affectsDirection(change.oldObject as PolicyObject | undefined, d) && !affectsDirection(change.object as PolicyObject | undefined, d)) {
        return NONE;
      }
      const byKey = new Map<string, Pod>();
      const add = (pods: readonly Pod[]): void => {
        for (const p of pods) byKey.set(podRef(p), p);
      };
      if (change.oldObject) add(podsSelectedBy(before, change.oldObject as PolicyObject));
      if (change.object) add(podsSelectedBy(after, change.object as PolicyObject));
      if (byKey.size > 0) return { pods: [...byKey.values()], synthetic: false };
      if (change.object) {
        const s = subjectPods(after, change.object as PolicyObject);
        return { pods: s.pods, synthetic: s.synthetic };
      }
      return NONE;
    }
    if (change.kind === 'Namespace' && change.operation === 'UPDATE') {
      const keys = changedLabelKeys(change.oldObject?.metadata.labels, change.object?.metadata.labels);
      if (keys.length === 0) return NONE;
      // A relabel that only changes which ingress policies select the pods (say) leaves their egress as it was.
      const d = opts.direction;
      if (d && !keys.some((k) => namespaceLabelReadFor(before, k, d))) return NONE;
      return { pods: after.list('Pod', change.name), synthetic: false };
    }
    if (isCiliumConfigChange(change)) {
      const a = policySettings(before);
      const b = policySettings(after);
      const same =
        a.enablePolicy === b.enablePolicy &&
        a.nonDefaultDenyPolicies === b.nonDefaultDenyPolicies &&
        a.cidrMatchesNodes === b.cidrMatchesNodes;
      return same ? NONE : { pods: after.list('Pod'), synthetic: false };
    }
  } catch {
    return NONE; // odd input: no finding rather than a crash
  }
  return NONE;
}

/** Pods that lose something with this request, and pods that lacked it before and still do. */
export interface Loss {
  readonly lost: Pod[];
  readonly stillMissing: Pod[];
}

/**
 * Compare a per-pod check before and after. `ok` returns undefined when it cannot judge (the pod is
 * then ignored). A pod absent from `before` (synthetic pods are evaluated in both states all the same:
 * they stand for pods that would be created).
 */
export function compareLoss(
  pods: readonly Pod[],
  before: ClusterState,
  after: ClusterState,
  ok: (state: ClusterState, pod: Pod) => boolean | undefined,
  classKey: (pod: Pod) => string = (pod) => podClassKey(pod, pod.spec.nodeName ?? ''),
): Loss {
  // One target, reached or not.
  const reach = (state: ClusterState, pod: Pod): readonly string[] | undefined => {
    const v = ok(state, pod);
    return v === undefined ? undefined : v ? ONE_TARGET : NO_TARGET;
  };
  const { lost, stillMissing } = compareReach(pods, before, after, ONE_TARGET, reach, classKey);
  return { lost, stillMissing };
}
const ONE_TARGET: readonly string[] = ['ok'];
const NO_TARGET: readonly string[] = [];

/** Like Loss, with the targets the lost pods can no longer reach. */
export interface ReachLoss extends Loss {
  /** Targets reached before and not after, by any lost class of pods. */
  readonly lostTargets: readonly string[];
}

/**
 * compareLoss for a check with several targets a pod should reach all of (say, every API server
 * endpoint, balanced over by a Service): a pod is lost when it reaches fewer targets than before, even
 * if it already missed some; still missing when it misses some and reaches as many as before (a
 * request that swaps which endpoint is missing, or reaches more of them, makes nothing worse). `reach`
 * returns the targets reached (undefined when it cannot judge: after, the pod is then ignored).
 */
export function compareReach(
  pods: readonly Pod[],
  before: ClusterState,
  after: ClusterState,
  targets: readonly string[],
  reach: (state: ClusterState, pod: Pod) => readonly string[] | undefined,
  classKey: (pod: Pod) => string,
): ReachLoss {
  const lost: Pod[] = [];
  const stillMissing: Pod[] = [];
  const lostTargets = new Set<string>();
  // Replicas of one workload have the same identity and node placement class: judge each class once
  // (a CCNP selecting every pod of a 50k-pod cluster is then a few thousand evaluations).
  const memo = new Map<string, 'ok' | 'lost' | 'still' | 'skip'>();
  for (const pod of pods) {
    const key = classKey(pod);
    let verdict = memo.get(key);
    if (verdict === undefined) {
      verdict = 'skip';
      try {
        const now = reach(after, pod);
        if (now !== undefined) {
          if (targets.every((t) => now.includes(t))) verdict = 'ok';
          else {
            // A pod that cannot be judged before (say, not there yet) is taken to have reached everything.
            const was = reach(before, pod) ?? targets;
            verdict = now.length < was.length ? 'lost' : 'still';
            if (verdict === 'lost') for (const t of was) if (!now.includes(t)) lostTargets.add(t);
          }
        }
      } catch {
        verdict = 'skip';
      }
      memo.set(key, verdict);
    }
    if (verdict === 'lost') lost.push(pod);
    else if (verdict === 'still') stillMissing.push(pod);
  }
  return { lost, stillMissing, lostTargets: targets.filter((t) => lostTargets.has(t)) };
}

/**
 * Everything policy evaluation reads from a pod: namespace, labels, service account, host network,
 * phase, and `node`: the pod's node when the target is node-level (host vs remote-node depends on it),
 * else a constant the caller picks, so replicas spread over nodes share one verdict. Host-network pods
 * are always keyed by their own node (their identity is their node's).
 */
export function podClassKey(pod: Pod, node: string): string {
  // A host-network pod carries its node's identity (host on its own node, remote-node elsewhere, and the
  // local host always reaches its endpoints): toward any pod its verdict depends on its node.
  if (pod.spec.hostNetwork === true) node = pod.spec.nodeName ?? '';
  // Asked with '', '*' (apiserverClassKey: "not an API server node") or the pod's own node almost always:
  // those are cached per pod (one shared string per identity and node), anything else is built on demand.
  const own = node === (pod.spec.nodeName ?? '');
  const cache = own ? ownNodeKeys : node === '' ? noNodeKeys : node === '*' ? anyNodeKeys : undefined;
  let key = cache?.get(pod);
  if (key === undefined) {
    key = internKey(JSON.stringify(node) + podIdentityKey(pod));
    cache?.set(pod, key);
  }
  return key;
}

const ownNodeKeys = new ScopedWeakMap<Pod, string>();
const noNodeKeys = new ScopedWeakMap<Pod, string>();
const anyNodeKeys = new ScopedWeakMap<Pod, string>();

// Pods in a state are immutable objects (an update replaces the object), so the key is computed once.
const identityKeys = new ScopedWeakMap<Pod, string>();
/** podClassKey without the node: namespace, service account, host network, phase and sorted labels. */
function podIdentityKey(pod: Pod): string {
  let key = identityKeys.get(pod);
  if (key === undefined) {
    const labels = Object.entries(pod.metadata.labels ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    key = internKey(JSON.stringify([pod.metadata.namespace ?? '', pod.spec.serviceAccountName ?? '', pod.spec.hostNetwork === true, pod.status?.phase ?? '', labels]));
    identityKeys.set(pod, key);
  }
  return key;
}

// ---------- DNS ----------

/** The kube-dns backends to test against: one pod per distinct label set (at most 3), and the UDP port. */
export interface DnsTarget {
  readonly pods: readonly Pod[];
  readonly port: number;
  /** The Service selector (labels the fix should use). */
  readonly selector: Labels;
  readonly namespace: string;
}

export function dnsTarget(state: ClusterState): DnsTarget | undefined {
  const b = dnsBackends(state);
  const svc =
    state.get('Service', 'kube-system', 'kube-dns') ??
    state.list('Service', 'kube-system').find((s) => s.metadata.labels?.['k8s-app'] === 'kube-dns');
  const selector: Labels = svc?.spec.selector ?? { 'k8s-app': 'kube-dns' };
  const namespace = svc?.metadata.namespace ?? 'kube-system';
  const udp = b.ports.find((p) => p.protocol === 'UDP');
  const port = udp?.port ?? 53;
  let pods: Pod[] = [];
  const seen = new Set<string>();
  for (const p of b.pods) {
    const key = JSON.stringify(p.metadata.labels ?? {});
    if (seen.has(key)) continue;
    seen.add(key);
    pods.push(p);
    if (pods.length >= 3) break;
  }
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

/** Class key for DNS checks: the node matters only when a DNS backend runs in the host network. */
export function dnsClassKey(state: ClusterState): (pod: Pod) => string {
  const nodeLevel = dnsBackends(state).pods.some((p) => p.spec.hostNetwork === true);
  return (pod) => podClassKey(pod, nodeLevel ? (pod.spec.nodeName ?? '') : '');
}

/** Is a pod one of the DNS backends (they do not need to reach themselves)? */
export function isDnsBackend(state: ClusterState, pod: Pod): boolean {
  return dnsBackends(state).pods.some((p) => podRef(p) === podRef(pod));
}

/** Can the pod reach at least one DNS backend on the given protocol (default UDP)? undefined = no DNS Service known. */
export function reachesDns(state: ClusterState, pod: Pod, protocol: Protocol = 'UDP'): boolean | undefined {
  const t = dnsTarget(state);
  if (!t) return undefined;
  const port = protocol === 'UDP' ? t.port : (dnsBackends(state).ports.find((p) => p.protocol === protocol)?.port ?? t.port);
  return t.pods.some((d) => reachable(state, pod, { type: 'pod', pod: d }, port, protocol));
}

/** The egress rule that allows DNS, in the dialect of the policy kind, as one line of flow YAML. */
export function dnsAllowRule(kind: string | undefined, target: { selector: Labels; namespace: string; port: number } | undefined, withDnsRules: boolean): string {
  const selector = target?.selector ?? { 'k8s-app': 'kube-dns' };
  const namespace = target?.namespace ?? 'kube-system';
  const port = target?.port ?? 53;
  const labels = Object.entries(selector);
  if (kind === 'NetworkPolicy') {
    const podSel = labels.map(([k, v]) => `${k}: ${v}`).join(', ');
    return (
      `egress: [{to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ${namespace}}}, ` +
      `podSelector: {matchLabels: {${podSel}}}}], ports: [{port: ${port}, protocol: UDP}, {port: ${port}, protocol: TCP}]}]`
    );
  }
  const epSel = [`"k8s:io.kubernetes.pod.namespace": ${namespace}`, ...labels.map(([k, v]) => `"k8s:${k}": ${v}`)].join(', ');
  const rules = withDnsRules ? `, rules: {dns: [{matchPattern: "*"}]}` : '';
  return (
    `egress: [{toEndpoints: [{matchLabels: {${epSel}}}], ` +
    `toPorts: [{ports: [{port: "${port}", protocol: UDP}, {port: "${port}", protocol: TCP}]${rules}}]}]`
  );
}

/** "CiliumNetworkPolicy ns/name" of the request's object. */
export function changeRef(change: Change): string {
  return `${change.gvk.kind} ${change.namespace ? change.namespace + '/' : ''}${change.name}`;
}
