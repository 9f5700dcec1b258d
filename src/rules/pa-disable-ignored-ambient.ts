// pa-disable-ignored-ambient: a PeerAuthentication whose DISABLE mode (whole policy or portLevelMtls)
// decides the effective mTLS mode of pods enrolled in ambient. ztunnel always speaks HBONE (mTLS) and
// ignores DISABLE policies: the inherited mode applies instead, so whatever DISABLE was meant for (plaintext
// for Cilium L7 parsing, for non-mesh clients under a STRICT namespace) does not happen.

import type { Change } from '../core/change.ts';
import { effectiveMtls, meshMode, istioPolicyPods, podIn, unionPods } from '../policy/index.ts';
import type { ClusterState, Labels, Pod, PolicyObject } from '../state/types.ts';
import type { Finding, Rule } from './types.ts';
import { changeRef, labelsChanged } from '../impact/index.ts';
import { describeVictims, podRef, victimsOf } from './render-helpers.ts';

const ID = 'pa-disable-ignored-ambient';

interface Hit {
  readonly key: string;
  readonly pod: Pod;
  readonly port: number | undefined;
  readonly source: string;
}

/** Ports named in portLevelMtls of the namespace's PeerAuthentications (keys are container ports). */
function portLevelPorts(state: ClusterState, namespace: string): number[] {
  const out = new Set<number>();
  for (const pa of state.list('PeerAuthentication', namespace)) {
    const pl = pa.spec?.['portLevelMtls'];
    if (typeof pl !== 'object' || pl === null) continue;
    for (const k of Object.keys(pl)) {
      const n = Number(k);
      if (Number.isInteger(n) && n > 0) out.add(n);
    }
  }
  return [...out];
}

/** Where DISABLE decides an ambient pod's mTLS mode (the whole pod, or single ports). */
function hitsFor(state: ClusterState, pod: Pod): Hit[] {
  if (meshMode(state, pod) !== 'ambient') return [];
  const out: Hit[] = [];
  const whole = effectiveMtls(state, pod);
  if (whole.mode === 'DISABLE' && whole.source) {
    out.push({ key: `${podRef(pod)}|*`, pod, port: undefined, source: `${whole.source.namespace}/${whole.source.name}` });
  }
  for (const port of portLevelPorts(state, pod.metadata.namespace ?? '')) {
    const m = effectiveMtls(state, pod, port);
    if (m.mode === 'DISABLE' && m.source?.level === 'port') {
      out.push({ key: `${podRef(pod)}|${port}`, pod, port, source: `${m.source.namespace}/${m.source.name}` });
    }
  }
  return out;
}

function hitsOf(state: ClusterState, pods: readonly Pod[]): Hit[] {
  const out: Hit[] = [];
  for (const p of pods) {
    const here = podIn(state, p);
    if (here) out.push(...hitsFor(state, here));
  }
  return out;
}

function matchLabelsOf(obj: PolicyObject | undefined): Labels | undefined {
  const sel = obj?.spec?.['selector'];
  if (typeof sel !== 'object' || sel === null) return undefined;
  const ml = (sel as Record<string, unknown>)['matchLabels'];
  return typeof ml === 'object' && ml !== null && Object.keys(ml).length > 0 ? (ml as Labels) : undefined;
}

function touched(change: Change, before: ClusterState, after: ClusterState): { pods: Pod[]; synthetic: boolean } | undefined {
  if (change.kind === 'PeerAuthentication') {
    if (change.operation === 'DELETE' || !change.object) return undefined;
    const obj = change.object as PolicyObject;
    const pods = unionPods(istioPolicyPods(before, change.oldObject as PolicyObject | undefined, false), istioPolicyPods(after, obj, false));
    const ml = matchLabelsOf(obj);
    if (pods.length === 0 && ml) {
      // No pod deployed yet: judge the pod the selector describes, in the policy's namespace.
      const synthetic: Pod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: `(any pod selected by ${obj.metadata.name})`, namespace: obj.metadata.namespace ?? '', labels: ml },
        spec: { containers: [] },
      };
      return { pods: [synthetic], synthetic: true };
    }
    return { pods, synthetic: false };
  }
  if (change.kind === 'Namespace' && change.operation === 'UPDATE' && labelsChanged(change)) {
    return { pods: [...after.list('Pod', change.name)], synthetic: false };
  }
  return undefined;
}

function evaluatePaDisable(change: Change, before: ClusterState, after: ClusterState): Finding[] {
  const t = touched(change, before, after);
  if (!t || t.pods.length === 0) return [];
  const a = hitsOf(after, t.pods);
  if (a.length === 0) return [];
  const old = new Set(hitsOf(before, t.pods).map((h) => h.key));
  const added = a.filter((h) => !old.has(h.key));
  const shown = added.length > 0 ? added : a;
  const first = shown[0]!;
  const victims = unionPods(shown.map((h) => h.pod));
  const prefix = change.kind === 'PeerAuthentication' ? '' : `${changeRef(change)}: `;
  const where = first.port === undefined ? '' : ` on port ${first.port}`;
  const who = t.synthetic ? ' (pods this policy would select)' : '';
  const message =
    `${prefix}PeerAuthentication ${first.source} sets mTLS DISABLE${where} for pods enrolled in Istio ambient; ztunnel ignores DISABLE ` +
    `(HBONE is always mTLS) and the inherited mode applies${who}: ${describeVictims(victims)}`;
  const ns = first.pod.metadata.namespace ?? '';
  const fix =
    `if these pods must take plaintext, take them out of ambient (kubectl label namespace ${ns} istio.io/dataplane-mode- , ` +
    `or label the pods istio.io/dataplane-mode: none); otherwise delete the DISABLE or use PERMISSIVE`;
  return [{ rule: ID, message, fix, ...victimsOf(victims), ...(added.length > 0 ? {} : { preexisting: true }) }];
}

export const rule: Rule = {
  id: ID,
  severity: 'I',
  summary: 'PeerAuthentication DISABLE on ambient pods is ignored by ztunnel (HBONE is always mTLS)',
  docs: `docs/rules/${ID}.md`,
  triggers: [
    { kinds: ['PeerAuthentication'], operations: ['CREATE', 'UPDATE'] },
    { kinds: ['Namespace'], operations: ['UPDATE'] },
  ],
  evaluate(change, before, after) {
    try {
      return evaluatePaDisable(change, before, after);
    } catch {
      return []; // odd input: no finding rather than a crash
    }
  },
};
