// hbone-15008-blocked: ambient pods whose ingress policy admits mesh peers on their app ports but not on
// TCP 15008. In ambient mode the source's ztunnel tunnels the connection to the destination pod's port
// 15008 (HBONE), so Cilium sees ingress on 15008 from the source pod, not on the app port: the mesh
// connection is dropped although the app port is allowed.

import type { Change } from '../core/change.ts';
import { changedLabelKeys, classifiedPods, filterPods, formatPolicyRef, meshMode, namespaceLabelReadByPeers, ambientIngressClassKey, cutOffByRelabel, HBONE_PORT, hboneBlocked, ingressShapeKey, meshPeerWorked, type MeshPeer } from '../policy/index.ts';
import type { ClusterState, Pod } from '../state/types.ts';
import type { Finding, Rule, RuleContext } from './types.ts';
import { changeRef, isCiliumConfigChange, isPolicyChange, judgeByClass, touchedPods } from '../impact/index.ts';
import { describeVictims, victimsOf } from './render-helpers.ts';

const ID = 'hbone-15008-blocked';

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function evaluateHbone(change: Change, before: ClusterState, after: ClusterState, _ctx: RuleContext): Finding[] {
  // Only the destination's ingress policy is judged: a change that cannot affect ingress changes nothing.
  // A cilium-config change of the policy mode (enable-non-default-deny-policies off makes
  // enableDefaultDeny.ingress: false allows enforce) touches every pod.
  const touched = touchedPods(change, before, after, { direction: 'ingress' });
  // A Namespace's labels also decide whether its pods are mesh peers (ambient, sidecar) and which
  // namespace-label peers match it: ambient destinations in other namespaces that admit its pods on an
  // app port only start receiving their traffic over HBONE when it joins the mesh.
  // Only labels that can do either matter (mesh labels, keys peer selectors read): scanning every ambient
  // destination of the cluster costs ~10 ms at 10k pods, too much for every owner or cost-centre label.
  const peersElsewhere =
    change.kind === 'Namespace' &&
    change.operation === 'UPDATE' &&
    changedLabelKeys(change.oldObject?.metadata.labels, change.object?.metadata.labels).some((k) => /istio/i.test(k) || namespaceLabelReadByPeers(before, k));
  if (touched.pods.length === 0 && !peersElsewhere) return [];
  // Pods of one class (ambientIngressClassKey) get the same verdict, and pods of one ingress shape the
  // same blocked peers: judge each once.
  const memo = new Map<string, readonly MeshPeer[] | undefined>();
  const blockedIn = (state: ClusterState, pod: Pod): readonly MeshPeer[] | undefined => {
    // Most pods are not ambient: answer those before computing the (policy-selecting) shape key.
    if (meshMode(state, pod) !== 'ambient') return undefined;
    const key = `${state === after ? 'a' : 'b'}\u0000${ingressShapeKey(state, pod)}`;
    if (memo.has(key)) return memo.get(key);
    const v = hboneBlocked(state, pod);
    memo.set(key, v);
    return v;
  };
  // A pod loses HBONE when a peer cut off now had working traffic to it before, even if another peer
  // already was cut off. Asked of the state before rather than by comparing peer selectors: a reordered,
  // narrowed or renamed selector of a peer that was already dropped stops nothing.
  const judged = judgeByClass<Pod, MeshPeer>(touched.pods, ambientIngressClassKey, (pod) => {
    const now = blockedIn(after, pod);
    if (!now || now.length === 0) return { outcome: 'skip' };
    const fresh = now.filter((p) => meshPeerWorked(before, p, pod));
    return fresh.length > 0 ? { outcome: 'lost', detail: fresh[0] } : { outcome: 'still', detail: now[0] };
  });
  let firstNew: MeshPeer | undefined = judged.lostClasses[0]?.detail;
  const firstOld: MeshPeer | undefined = judged.stillClasses[0]?.detail;
  const { lost, stillMissing } = judged;
  if (peersElsewhere) {
    // Only traffic of the relabelled namespace's own pods can start or stop there: a destination elsewhere
    // is reported when one of them reached it before (plaintext on the app port while outside the mesh,
    // or over 15008) and is now admitted on an app port only. Pre-existing problems there, and pods that
    // were not admitted before and still are not, are not this request's.
    const sources = new Map<string, Pod>();
    for (const s of after.list('Pod', change.name)) {
      if (meshMode(after, s) === 'none') continue;
      const k = ambientIngressClassKey(s);
      if (!sources.has(k)) sources.set(k, s);
    }
    if (sources.size > 0) {
      const dests = filterPods(classifiedPods(after), (d) => d.metadata.namespace !== change.name && meshMode(after, d) === 'ambient');
      const cutOff = judgeByClass<Pod, MeshPeer>(dests, ambientIngressClassKey, (d) => {
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
      lost.push(...cutOff.lost);
    }
  }
  // A cluster-wide config change repeats no pre-existing problem: only what it breaks is reported.
  const victims = lost.length > 0 || isCiliumConfigChange(change) ? lost : stillMissing;
  if (victims.length === 0) return [];
  const peer = lost.length > 0 ? firstNew : firstOld;
  const deniedBy = peer?.deniedBy && peer.deniedBy.length > 0 ? peer.deniedBy.map(formatPolicyRef).join(', ') : undefined;
  const via = !peer
    ? ''
    : peer.waypoint
      ? ` (service traffic arrives from waypoint ${peer.waypoint}, which is not allowed on ${HBONE_PORT})`
      : deniedBy
        ? ` (e.g. ${peer.description}: allowed on ${peer.appPort}, ${HBONE_PORT} denied by ${deniedBy})`
        : ` (e.g. ${peer.description}: allowed on ${peer.appPort}, not on ${HBONE_PORT})`;
  const who = `${plural(victims.length, 'ambient pod')}${touched.synthetic ? ' (pods this policy would select)' : ''}`;
  const subject = isPolicyChange(change) || change.kind === 'Namespace' || isCiliumConfigChange(change) ? `${changeRef(change)}: ` : '';
  const message = `${subject}${who} admit mesh peers but not TCP ${HBONE_PORT} (HBONE)${via}; ztunnel traffic to them is dropped: ${describeVictims(victims)}`;
  const target = peer ? formatPolicyRef(peer.policy) : isPolicyChange(change) && change.object ? changeRef(change) : 'the ingress policy';
  const fix = peer?.waypoint
    ? `allow ingress on TCP ${HBONE_PORT} from the waypoint's pods (gateway.networking.k8s.io/gateway-name: ${peer.waypoint.split('/')[1]}) in ${target}`
    : deniedBy
      ? `keep TCP ${HBONE_PORT} out of the ingressDeny rules of ${deniedBy} for these pods (mesh traffic arrives on it)`
      : `allow ingress on TCP ${HBONE_PORT} from the same peers in ${target}, e.g. add {port: "${HBONE_PORT}", protocol: TCP} to its toPorts/ports`;
  return [
    {
      rule: ID,
      message,
      fix,
      ...victimsOf(victims),
      ...(lost.length > 0 ? {} : { preexisting: true }),
    },
  ];
}

export const rule: Rule = {
  id: ID,
  severity: 'B',
  summary: 'Ingress-enforced ambient pods admit mesh peers but not TCP 15008 (HBONE): ztunnel traffic is dropped',
  docs: `docs/rules/${ID}.md`,
  triggers: [
    { kinds: ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy', 'NetworkPolicy'], operations: ['CREATE', 'UPDATE', 'DELETE'] },
    { kinds: ['Namespace'], operations: ['UPDATE'] },
    { kinds: ['ConfigMap'], operations: ['CREATE', 'UPDATE'] },
  ],
  evaluate: evaluateHbone,
};
