// pa-disable-ignored-ambient: a PeerAuthentication whose DISABLE mode (whole policy or portLevelMtls)
// decides the effective mTLS mode of pods enrolled in ambient. ztunnel always speaks HBONE (mTLS) and
// ignores DISABLE policies: the inherited mode applies instead, so whatever DISABLE was meant for (plaintext
// for Cilium L7 parsing, for non-mesh clients under a STRICT namespace) does not happen.

//
// The rule folder: index.ts (this file: metadata, scope, check), messages.ts (the words, per code),
// testdata/*.yaml (fixtures run by test/rules/fixtures.test.ts). docs/adding-a-rule.md explains the layout.

import type { Change } from '../../core/change.ts';
import type { Finding } from '../../core/finding.ts';
import type { ClusterState, Labels, Pod, PolicyObject } from '../../core/objects.ts';
import type { Rule, RuleContext } from '../../core/rule.ts';
import { istioMatchLabels, effectiveMtls, meshMode, istioPolicyPods, podIn, podRef, unionPods } from '../../policy/index.ts';
import { labelsChanged, namespaceUnits, perUnitInOrder } from '../../impact/index.ts';
import { victimParams, victimsOf } from '../render-helpers.ts';
import { messages } from './messages.ts';

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

/**
 * The hits of `pods` in `state`, in pod order. With `units` (pods of one class that PeerAuthentication
 * selectors do not tell apart: the same mesh mode and effective mTLS on every port), asked once per unit
 * unless its first pod has a hit.
 */
function hitsOf(state: ClusterState, pods: readonly Pod[], units?: readonly (readonly Pod[])[]): Hit[] {
  return perUnitInOrder(pods, units, (p) => {
    const here = podIn(state, p);
    return here ? hitsFor(state, here) : NO_HITS;
  });
}
const NO_HITS: readonly Hit[] = [];

/**
 * The pods whose mode the request may change; a synthetic pod when a new selector selects none yet. For
 * a relabel, `units`: its pods per class and the per-pod labels PeerAuthentication selectors read.
 */
function touched(subject: Subject, change: Change, before: ClusterState, after: ClusterState): { pods: readonly Pod[]; synthetic: boolean; units?: readonly (readonly Pod[])[] } {
  if (subject.by === 'peer-authentication') {
    const obj = change.object as PolicyObject;
    const pods = unionPods(istioPolicyPods(before, change.oldObject as PolicyObject | undefined, false), istioPolicyPods(after, obj, false));
    const ml = istioMatchLabels(obj?.spec);
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
  return { pods: after.list('Pod', subject.namespace), synthetic: false, ...namespaceUnits(before, after, subject.namespace, { mtls: true }) };
}

/** What the request does that this rule judges; undefined: nothing to judge. */
type Subject = { readonly by: 'peer-authentication' } | { readonly by: 'namespace'; readonly namespace: string };

/** Cheap, from the request alone: a PeerAuthentication written, or a Namespace relabelled. */
export function scope(change: Change): Subject | undefined {
  if (change.kind === 'PeerAuthentication') return change.operation === 'DELETE' || !change.object ? undefined : { by: 'peer-authentication' };
  if (change.kind === 'Namespace' && change.operation === 'UPDATE' && labelsChanged(change)) return { by: 'namespace', namespace: change.name };
  return undefined;
}

export function check(subject: Subject, change: Change, before: ClusterState, after: ClusterState): Finding[] {
  const t = touched(subject, change, before, after);
  if (t.pods.length === 0) return [];
  const a = hitsOf(after, t.pods, t.units);
  if (a.length === 0) return [];
  const old = new Set(hitsOf(before, t.pods, t.units).map((h) => h.key));
  const added = a.filter((h) => !old.has(h.key));
  const preexisting = added.length === 0;
  const shown = preexisting ? a : added;
  const first = shown[0]!;
  const victims = unionPods(shown.map((h) => h.pod));
  const disabled = {
    source: first.source,
    ...(first.port === undefined ? {} : { port: first.port }),
    ...victimParams(victims),
    podNamespace: first.pod.metadata.namespace ?? '',
  };
  const extras = { ...victimsOf(victims), preexisting };
  if (subject.by === 'peer-authentication') {
    return [messages.finding(preexisting ? 'policy-keeps-disable' : 'policy-disables', { ...disabled, wouldSelect: t.synthetic }, extras)];
  }
  return [messages.finding(preexisting ? 'namespace-keeps-disabled' : 'namespace-enrols-disabled', { ...disabled, namespace: subject.namespace }, extras)];
}

export const rule: Rule = {
  id: ID,
  severity: 'I',
  summary: 'PeerAuthentication DISABLE on ambient pods is ignored by ztunnel (HBONE is always mTLS)',
  docs: `docs/rules/${ID}.md`,
  triggers: [
    { kinds: ['PeerAuthentication'], operations: ['CREATE', 'UPDATE'], when: 'a DISABLE (whole policy or portLevelMtls) that lands on ambient pods' },
    { kinds: ['Namespace'], operations: ['UPDATE'], when: 'a label change, such as enrolling a namespace with DISABLE policies into ambient' },
  ],
  messages,
  evaluate: (change: Change, before: ClusterState, after: ClusterState, _ctx: RuleContext): Finding[] => {
    const subject = scope(change);
    return subject ? check(subject, change, before, after) : [];
  },
};
