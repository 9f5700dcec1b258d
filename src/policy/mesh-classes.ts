// Pod classes for the mesh rules (issue 21). A pod class (classes.ts) groups pods that differ only in
// what names one pod or one rollout: name, IP, node and the labels of LABELS_PER_POD (pod-template-hash
// and the like). Cilium's identity drops those labels, so every Cilium question has one answer per
// class; Istio's workload selectors do not drop them: a PeerAuthentication may select one rollout of a
// Deployment by `pod-template-hash`, and then two pods of one class get different mTLS modes.
//
// A question that reads, besides what a class shares, only the PeerAuthentications of a state (mesh
// mode, Cilium selection, container ports, effectiveMtls) is judged per unit: a class, split by the
// values of the per-pod labels that some PeerAuthentication selector reads. No selector reads one in
// almost every cluster, so a unit is a class: a Namespace relabel of 2,500 pods asks each question of
// its ~10 classes, not of every pod.

import type { ClusterState, Pod } from '../core/objects.ts';
import { LABELS_PER_POD, type PodClass } from './classes.ts';
import { istioSelectorOf } from './istio.ts';
import { perContentOf } from './memo.ts';

const PER_POD = new Set(LABELS_PER_POD);

/**
 * The keys of LABELS_PER_POD that some PeerAuthentication selector (`selector.matchLabels`) of `state`
 * reads, sorted; usually none. Kept per PeerAuthentication content.
 */
export function perPodKeysReadByPeerAuthentication(state: ClusterState): readonly string[] {
  return perContentOf(state, 'perPodKeysReadByPeerAuthentication', ['PeerAuthentication'], () => {
    const keys = new Set<string>();
    for (const pa of state.list('PeerAuthentication')) {
      const sel = istioSelectorOf(pa.spec);
      if (sel.kind === 'labels') for (const k of Object.keys(sel.labels)) if (PER_POD.has(k)) keys.add(k);
    }
    return keys.size === 0 ? NO_KEYS : [...keys].sort();
  });
}
const NO_KEYS: readonly string[] = Object.freeze([]);

/**
 * The pods of `classes` as judging units for a question that reads what a class shares and the
 * PeerAuthentications of `states`: each class, split by the values of the per-pod labels a
 * PeerAuthentication selector of one of `states` reads (perPodKeysReadByPeerAuthentication). Two pods
 * of one unit get the same effective mTLS mode on every port in each of `states`.
 */
export function mtlsUnits(classes: readonly PodClass[], states: readonly ClusterState[]): readonly (readonly Pod[])[] {
  const keys = new Set<string>();
  for (const s of states) for (const k of perPodKeysReadByPeerAuthentication(s)) keys.add(k);
  if (keys.size === 0) return classUnits(classes);
  const read = [...keys].sort();
  const out: (readonly Pod[])[] = [];
  for (const c of classes) {
    if (c.pods.length === 1) {
      out.push(c.pods);
      continue;
    }
    const byToken = new Map<string, Pod[]>();
    for (const p of c.pods) {
      const labels = p.metadata.labels ?? {};
      const token = JSON.stringify(read.map((k) => labels[k] ?? null));
      const g = byToken.get(token);
      if (g) g.push(p);
      else byToken.set(token, [p]);
    }
    for (const g of byToken.values()) out.push(g);
  }
  return out;
}

/** The pods of `classes` as judging units for a question that reads only what a class shares. */
export function classUnits(classes: readonly PodClass[]): readonly (readonly Pod[])[] {
  return classes.map((c) => c.pods);
}
