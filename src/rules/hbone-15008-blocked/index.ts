// hbone-15008-blocked: ambient pods whose ingress policy admits mesh peers on their app ports but not on
// TCP 15008. In ambient mode the source's ztunnel tunnels the connection to the destination pod's port
// 15008 (HBONE), so Cilium sees ingress on 15008 from the source pod, not on the app port: the mesh
// connection is dropped although the app port is allowed.
//
// The rule folder: index.ts (this file: metadata, scope, check), messages.ts (the words, per code),
// testdata/*.yaml (fixtures run by test/rules/fixtures.test.ts). docs/adding-a-rule.md explains the layout.

import type { Change } from '../../core/change.ts';
import type { Finding } from '../../core/finding.ts';
import type { ClusterState, Pod } from '../../core/objects.ts';
import type { Rule, RuleContext } from '../../core/rule.ts';
import { ambientPodsElsewhere, changedLabelKeys, podClassesIn, formatPolicyRef, ingressEnforcementChanged, mayAdmitTcpByList, meshMode, namespaceLabelReadByPeers, ambientIngressClassKey, cutOffByRelabel, hboneBlocked, ingressShapeKey, meshPeerWorked, type MeshPeer } from '../../policy/index.ts';
import { changeRef, isCiliumConfigChange, isPolicyChange, judgeByClass, touchedPods } from '../../impact/index.ts';
import { denyFixFrom, victimParams, victimsOf } from '../render-helpers.ts';
import { messages } from './messages.ts';

const ID = 'hbone-15008-blocked';

/** What the request does that this rule judges: something that can change who reaches ambient pods on 15008. */
type Subject =
  | { readonly by: 'policy' | 'cilium-config'; readonly subject: string }
  /** A relabel also decides whether its pods are mesh peers of ambient pods elsewhere. */
  | { readonly by: 'namespace'; readonly subject: string; readonly namespace: string; readonly changedKeys: readonly string[] };

/** Cheap, from the request alone. */
export function scope(change: Change): Subject | undefined {
  if (isPolicyChange(change)) return { by: 'policy', subject: changeRef(change) };
  if (isCiliumConfigChange(change)) return { by: 'cilium-config', subject: changeRef(change) };
  if (change.kind === 'Namespace' && change.operation === 'UPDATE') {
    const changedKeys = changedLabelKeys(change.oldObject?.metadata.labels, change.object?.metadata.labels);
    return changedKeys.length > 0 ? { by: 'namespace', subject: changeRef(change), namespace: change.name, changedKeys } : undefined;
  }
  return undefined;
}

export function check(subject: Subject, change: Change, before: ClusterState, after: ClusterState): Finding[] {
  // Only the destination's ingress policy is judged: a change that cannot affect ingress changes nothing.
  // A cilium-config change of the policy mode (enable-non-default-deny-policies off makes
  // enableDefaultDeny.ingress: false allows enforce) touches every pod.
  const touched = touchedPods(change, before, after, { direction: 'ingress' });
  // A Namespace's labels also decide whether its pods are mesh peers (ambient, sidecar) and which
  // namespace-label peers match it: ambient destinations in other namespaces that admit its pods on an
  // app port only start receiving their traffic over HBONE when it joins the mesh.
  // Only labels that can do either matter (mesh labels, keys peer selectors read): scanning every ambient
  // destination of the cluster costs ~10 ms at 10k pods, too much for every owner or cost-centre label.
  const peersElsewhere = subject.by === 'namespace' && subject.changedKeys.some((k) => /istio/i.test(k) || namespaceLabelReadByPeers(before, k));
  if (touched.pods.length === 0 && !peersElsewhere) return [];
  // Pods of one class (ambientIngressClassKey) get the same verdict, and pods of one ingress shape the
  // same blocked peers: judge each once.
  const byShape = new Map<string, readonly MeshPeer[] | undefined>();
  const blockedIn = (state: ClusterState, pod: Pod): readonly MeshPeer[] | undefined => {
    // Most pods are not ambient: answer those before computing the (policy-selecting) shape key.
    if (meshMode(state, pod) !== 'ambient') return undefined;
    const key = `${state === after ? 'a' : 'b'}\u0000${ingressShapeKey(state, pod)}`;
    if (byShape.has(key)) return byShape.get(key);
    const v = hboneBlocked(state, pod);
    byShape.set(key, v);
    return v;
  };
  // A cilium-config change of `enable-policy` alone reports only losses (below), and only a pod whose
  // ingress enforcement it changes can lose anything: every other pod keeps each ingress answer (its
  // blocked peers were cut off before too). Those pods are known per state revision, not per request.
  const judgedPods = subject.by === 'cilium-config' ? (ingressEnforcementChanged(before, after, touched.pods) ?? touched.pods) : touched.pods;
  // A pod loses HBONE when a peer cut off now had working traffic to it before, even if another peer
  // already was cut off. Asked of the state before rather than by comparing peer selectors: a reordered,
  // narrowed or renamed selector of a peer that was already dropped stops nothing.
  const judged = judgeByClass<Pod, MeshPeer>(judgedPods, ambientIngressClassKey, (pod) => {
    const now = blockedIn(after, pod);
    if (!now || now.length === 0) return { outcome: 'skip' };
    const fresh = now.filter((p) => meshPeerWorked(before, p, pod));
    return fresh.length > 0 ? { outcome: 'lost', detail: fresh[0] } : { outcome: 'still', detail: now[0] };
  });
  let firstNew: MeshPeer | undefined = judged.lostClasses[0]?.detail;
  const firstOld: MeshPeer | undefined = judged.stillClasses[0]?.detail;
  const { stillMissing } = judged;
  let lost = judged.lost;
  if (subject.by === 'namespace' && peersElsewhere) {
    // Only traffic of the relabelled namespace's own pods can start or stop there: a destination elsewhere
    // is reported when one of them reached it before (plaintext on the app port while outside the mesh,
    // or over 15008) and is now admitted on an app port only. Pre-existing problems there, and pods that
    // were not admitted before and still are not, are not this request's.
    // One source per class (in the order of each class's first pod): what the scan asks of a source, its
    // mesh mode and its Cilium identity, is the same for every pod of a class.
    const sources = new Map<string, Pod>();
    for (const c of podClassesIn(after, subject.namespace)) {
      const s = c.pods[0]!;
      if (meshMode(after, s) === 'none') continue;
      const k = ambientIngressClassKey(s);
      if (!sources.has(k)) sources.set(k, s);
    }
    if (sources.size > 0) {
      // The ambient pods elsewhere: the long-lived state's (their mesh mode reads their own Namespace).
      const dests = ambientPodsElsewhere(before, after, subject.namespace);
      // Asked once per selecting list (the sources are pod-network pods: the answer reads d's models).
      const mayAdmit = mayAdmitTcpByList(before, after, subject.namespace, [...sources.values()]);
      const cutOff = judgeByClass<Pod, MeshPeer>(dests, ambientIngressClassKey, (d) => {
        // A relabelled pod is cut off from `d` only where d's ingress admits it on an app port: a
        // destination that admits none of them on any TCP port is skipped before its peers are worked out.
        if (!mayAdmit(d)) return { outcome: 'skip' };
        const now = blockedIn(after, d);
        if (now && now.length > 0) {
          for (const s of sources.values()) {
            const cut = cutOffByRelabel(before, after, s, d, now);
            if (cut) return { outcome: 'lost', detail: cut };
          }
        }
        return { outcome: 'skip' };
      });
      firstNew ??= cutOff.lostClasses[0]?.detail;
      if (cutOff.lost.length > 0) lost = [...lost, ...cutOff.lost];
    }
  }
  // A cluster-wide config change repeats no pre-existing problem: only what it breaks is reported.
  const victims = lost.length > 0 || subject.by === 'cilium-config' ? lost : stillMissing;
  if (victims.length === 0) return [];
  const preexisting = lost.length === 0;
  const peer = preexisting ? firstOld : firstNew;
  // Every judged class with victims carries the peer it found blocked.
  if (!peer) throw new Error(`${ID}: ${victims.length} victims but no blocked peer`);
  const p = {
    subject: subject.subject,
    ...victimParams(victims),
    synthetic: touched.synthetic,
    peer: peer.description,
    appPort: peer.appPort,
    policy: formatPolicyRef(peer.policy),
  };
  const extras = { ...victimsOf(victims), preexisting };
  // A deny decides (an allow on 15008 would change nothing): the deny elements are named.
  const denied = peer.deniedBy && peer.deniedBy.length > 0 ? { deniedBy: peer.deniedBy.map(formatPolicyRef), ...denyFixFrom(peer.denies ?? []) } : undefined;
  if (peer.waypoint !== undefined) {
    if (denied) return [messages.finding(preexisting ? 'waypoint-still-denied' : 'waypoint-denied', { ...p, ...denied, waypoint: peer.waypoint }, extras)];
    return [messages.finding(preexisting ? 'waypoint-still-not-allowed' : 'waypoint-not-allowed', { ...p, waypoint: peer.waypoint }, extras)];
  }
  if (denied) return [messages.finding(preexisting ? 'hbone-still-denied' : 'hbone-denied', { ...p, ...denied }, extras)];
  return [messages.finding(preexisting ? 'hbone-still-not-allowed' : 'hbone-not-allowed', p, extras)];
}

export const rule: Rule = {
  id: ID,
  severity: 'B',
  summary: 'Ingress-enforced ambient pods admit mesh peers but not TCP 15008 (HBONE): ztunnel traffic is dropped',
  docs: `docs/rules/${ID}.md`,
  triggers: [
    { kinds: ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy', 'NetworkPolicy'], operations: ['CREATE', 'UPDATE', 'DELETE'], when: 'with an ingress section: pods selected by the old and the new object; the synthetic pod built from the selector when none is live' },
    { kinds: ['Namespace'], operations: ['UPDATE'], when: "labels changed (e.g. `istio.io/dataplane-mode=ambient` added): the namespace's pods; when an Istio label or a label some policy's peers select on changed, also ambient pods elsewhere that a pod of the namespace reached before and, now in the mesh, reaches on the app port only" },
    { kinds: ['ConfigMap'], operations: ['CREATE', 'UPDATE'], when: 'only `kube-system/cilium-config` changing the policy mode (`enable-policy`, `enable-non-default-deny-policies`, `policy-cidr-match-mode`): every pod; only new breakage is reported' },
  ],
  messages,
  evaluate: (change: Change, before: ClusterState, after: ClusterState, _ctx: RuleContext): Finding[] => {
    const subject = scope(change);
    return subject ? check(subject, change, before, after) : [];
  },
};
