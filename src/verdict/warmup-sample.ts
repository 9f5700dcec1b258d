// The code paths of the costly requests, compiled before the first one comes (issue 21).
//
// Serve's warm-up (warmup.ts) runs decisions on requests built from the state's own objects, each an
// object written again as it is. Those leave most of a rule's costly path unrun: a Namespace written
// with the same labels moves no pod into the mesh, a cilium-config written as it is changes no policy
// mode, and at 50k pods every cluster-wide decision is cut at its 20 ms slice before the later rules
// run. The first real relabel, cilium-config change or new cluster-wide policy then ran that code in
// V8's interpreter: 20-35 ms of CPU more than the same request's second send at 50k pods.
//
// Here those requests are decided on a sample of the state: a few namespaces with every object in
// them, the system namespaces, and every cluster-scoped object. On it a decision takes a few
// milliseconds and runs to its end, so every rule's path for the change is compiled, on objects of the
// real cluster. The sample shares the state's objects (they are never modified) and is dropped
// afterwards with everything derived from it: tables kept per state or per content token are the
// sample's own, and per-object memos are pure functions of the objects.

import type { Change } from '../core/change.ts';
import type { Decide } from '../core/decision.ts';
import { KIND_NAMES, KINDS, type KindName } from '../core/kinds.ts';
import type { ClusterState, KubeObject } from '../core/objects.ts';
import type { Rule } from '../core/rule.ts';
import { istioRootNamespace } from '../policy/istio.ts';
import { MemoryState } from '../state/store.ts';
import { decideWithin, inHalfSlices, warmUpChanges } from './warmup.ts';

/** Namespaces with pods taken into the sample besides the system ones (spread over the cluster's). */
const SAMPLE_NAMESPACES = 6;
/** A namespace with more pods than this is left out of the sample (the decisions must stay short). */
const SAMPLE_MAX_PODS = 300;
/** New cluster-wide and namespaced policies per kind: copies of existing ones under a new name. */
const COPIES_PER_KIND = 4;
/** The prefix of the names the copies get (no real object is named so). */
export const SAMPLE_COPY_PREFIX = 'meshguard-warm-up-copy-';

const AMBIENT = 'istio.io/dataplane-mode';
const INJECTION = 'istio-injection';

/** The namespaces the sample holds whole: the system ones, then up to SAMPLE_NAMESPACES spread over those with pods. */
export function sampleNamespaces(state: ClusterState): string[] {
  const out = new Set<string>(['kube-system', 'default', istioRootNamespace(state)]);
  const candidates = state.namespacesWith('Pod').filter((ns) => !out.has(ns) && state.list('Pod', ns).length <= SAMPLE_MAX_PODS);
  // Spread, and of every mesh flavour the cluster has (a namespace's Istio labels).
  const flavour = (ns: string): string => {
    const l = state.get('Namespace', undefined, ns)?.metadata.labels ?? {};
    return l[AMBIENT] === 'ambient' ? 'ambient' : l[INJECTION] === 'enabled' || l['istio.io/rev'] !== undefined ? 'sidecar' : 'none';
  };
  const seenFlavours = new Set<string>();
  for (const ns of candidates) {
    const f = flavour(ns);
    if (seenFlavours.has(f)) continue;
    seenFlavours.add(f);
    out.add(ns);
  }
  const step = Math.max(1, Math.floor(candidates.length / SAMPLE_NAMESPACES));
  for (let i = 0; i < candidates.length && out.size < SAMPLE_NAMESPACES + 3; i += step) out.add(candidates[i]!);
  return [...out];
}

/** A state holding every cluster-scoped object of `state` and everything in `namespaces` (the same objects). */
export function sampleState(state: ClusterState, namespaces: readonly string[]): MemoryState {
  const sample = new MemoryState('warm-up sample');
  for (const kind of KIND_NAMES) {
    if (!KINDS[kind].namespaced) {
      for (const o of state.list(kind)) {
        if (kind === 'Namespace' && !namespaces.includes(o.metadata.name)) continue;
        sample.upsert(kind, o);
      }
      continue;
    }
    for (const ns of namespaces) for (const o of state.list(kind, ns)) sample.upsert(kind, o);
  }
  return sample;
}

function change(kind: KindName, operation: Change['operation'], obj: KubeObject | undefined, old: KubeObject | undefined): Change {
  const k = KINDS[kind];
  const ref = (obj ?? old)!;
  return {
    uid: 'meshguard-warm-up',
    operation,
    gvk: { group: k.group, version: k.version, kind },
    kind,
    namespace: k.namespaced ? (ref.metadata.namespace ?? '') : '',
    name: ref.metadata.name,
    ...(obj ? { object: obj } : {}),
    ...(old ? { oldObject: old } : {}),
    dryRun: true,
    userInfo: { username: 'meshguard-warm-up' },
  };
}

function withLabels(o: KubeObject, labels: Record<string, string>): KubeObject {
  return { ...o, metadata: { ...o.metadata, labels } };
}

/**
 * Requests that change something, of the shapes whose paths cost most at scale: each sample namespace
 * with pods moved into ambient (or out of it) and into sidecar injection (or out of it); cilium-config's
 * `enable-policy` switched between `default` and `always`; copies of Cilium policies and NetworkPolicies
 * under new names, created; the deletion of cluster-wide policies (up to COPIES_PER_KIND of each, spread).
 */
export function costlyChanges(sample: ClusterState, namespaces: readonly string[]): Change[] {
  const out: Change[] = [];
  for (const ns of namespaces) {
    const n = sample.get('Namespace', undefined, ns);
    if (!n || sample.list('Pod', ns).length === 0) continue;
    const labels = { ...(n.metadata.labels ?? {}) };
    const ambient = { ...labels };
    if (ambient[AMBIENT] === 'ambient') delete ambient[AMBIENT];
    else ambient[AMBIENT] = 'ambient';
    out.push(change('Namespace', 'UPDATE', withLabels(n, ambient), n));
    const sidecar = { ...labels };
    if (sidecar[INJECTION] === 'enabled') delete sidecar[INJECTION];
    else sidecar[INJECTION] = 'enabled';
    out.push(change('Namespace', 'UPDATE', withLabels(n, sidecar), n));
  }
  const cm = sample.get('ConfigMap', 'kube-system', 'cilium-config');
  if (cm) {
    const data = (cm as KubeObject & { data?: Record<string, string> }).data ?? {};
    const mode = data['enable-policy'] ?? 'default';
    if (mode !== 'never') {
      const switched = { ...cm, data: { ...data, 'enable-policy': mode === 'always' ? 'default' : 'always' } } as KubeObject;
      out.push(change('ConfigMap', 'UPDATE', switched, cm));
    }
  }
  for (const kind of ['CiliumClusterwideNetworkPolicy', 'CiliumNetworkPolicy', 'NetworkPolicy'] as const) {
    const list = sample.list(kind);
    for (let i = 0; i < list.length && i < COPIES_PER_KIND; i++) {
      const o = list[Math.floor((i * list.length) / Math.min(list.length, COPIES_PER_KIND))]!;
      const copy = { ...o, metadata: { ...o.metadata, name: `${SAMPLE_COPY_PREFIX}${o.metadata.name}` } } as KubeObject;
      out.push(change(kind, 'CREATE', copy, undefined));
    }
  }
  const wide = sample.list('CiliumClusterwideNetworkPolicy');
  for (let i = 0; i < wide.length && i < COPIES_PER_KIND; i++) out.push(change('CiliumClusterwideNetworkPolicy', 'DELETE', undefined, wide[Math.floor((i * wide.length) / Math.min(wide.length, COPIES_PER_KIND))]!));
  return out;
}

/**
 * Decides, on a sample of `state`, the costly changes and the warm-up's own requests (each with a budget
 * of a slice, which on the sample it does not reach), handing the event loop back once half a slice is
 * spent; returns how many decisions it made. Serve runs it before warmUpInSlices, whose decisions on
 * the whole state then run compiled code too. Stops when told to, at the next hand-back.
 */
export async function warmUpOnSample(
  decide: Decide,
  rules: readonly Rule[],
  state: ClusterState,
  sliceMs = 20,
  shouldStop: () => boolean = () => false,
  now: () => number = () => performance.now(),
): Promise<number> {
  if (state.namespacesWith('Pod').length === 0) return 0;
  const namespaces = sampleNamespaces(state);
  const sample = sampleState(state, namespaces);
  const changes = [...costlyChanges(sample, namespaces), ...warmUpChanges(rules, sample)];
  let n = 0;
  await inHalfSlices(
    changes,
    (c) => {
      decideWithin(decide, c, sample, sliceMs, { now });
      n++;
    },
    sliceMs,
    shouldStop,
    now,
  );
  return n;
}
