// ztunnel-l7-authz: an AuthorizationPolicy that ztunnel enforces (selector or namespace-wide, no
// targetRefs) on ambient pods but that uses HTTP attributes (paths, methods, hosts, request principals,
// request.* conditions). ztunnel only sees L4: an ALLOW rule that needs HTTP can never match, so the
// traffic it was meant to allow is denied (deny-all when every rule needs HTTP); a DENY policy is
// enforced on its L4 part alone, denying more than intended.

import type { Change } from '../core/change.ts';
import { authzAttachment, httpAttributesOf, istioRootNamespace, meshMode, podIn, unionPods } from '../policy/index.ts';
import type { ClusterState, Labels, Pod, PolicyObject } from '../state/types.ts';
import type { Finding, Rule } from './types.ts';
import { changeRef, labelsChanged } from '../impact/index.ts';
import { describeVictims, podRef, victimsOf } from './render-helpers.ts';

const ID = 'ztunnel-l7-authz';

interface Hit {
  readonly key: string;
  readonly pod: Pod;
  readonly policy: PolicyObject;
  readonly attributes: readonly string[];
  readonly action: string;
}

function actionOf(ap: PolicyObject): string {
  const a = ap.spec?.['action'];
  return typeof a === 'string' && a !== '' ? a : 'ALLOW';
}

function matchLabelsOf(ap: PolicyObject): Labels | undefined {
  const sel = ap.spec?.['selector'];
  if (typeof sel !== 'object' || sel === null) return undefined;
  const ml = (sel as Record<string, unknown>)['matchLabels'];
  return typeof ml === 'object' && ml !== null && Object.keys(ml).length > 0 ? (ml as Labels) : undefined;
}

/** A pod that does not exist yet, as the policy's selector would select it in the policy's namespace. */
function syntheticPod(ap: PolicyObject, labels: Labels): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `(any pod selected by ${ap.metadata.name})`, namespace: ap.metadata.namespace ?? '', labels },
    spec: { containers: [] },
  };
}

/** Ambient pods on which ztunnel enforces this policy while it needs HTTP; synthetic pods when none live. */
function hitsOf(state: ClusterState, ap: PolicyObject | undefined, only?: ReadonlySet<string>): { hits: Hit[]; synthetic: boolean } {
  if (!ap || ap.kind !== 'AuthorizationPolicy') return { hits: [], synthetic: false };
  const action = actionOf(ap);
  // CUSTOM and AUDIT are not authorization decisions ztunnel makes from the rules this way.
  if (action !== 'ALLOW' && action !== 'DENY') return { hits: [], synthetic: false };
  const attributes = httpAttributesOf(ap);
  if (attributes.length === 0) return { hits: [], synthetic: false };
  const att = authzAttachment(state, ap);
  if (att.targetRefs.length > 0) return { hits: [], synthetic: false };
  let pods: readonly Pod[] = att.pods;
  let synthetic = false;
  const ml = matchLabelsOf(ap);
  if (pods.length === 0 && ml && !only && (ap.metadata.namespace ?? '') !== istioRootNamespace(state)) {
    pods = [syntheticPod(ap, ml)];
    synthetic = true;
  }
  const hits: Hit[] = [];
  for (const pod of pods) {
    if (only && !only.has(podRef(pod))) continue;
    if (meshMode(state, pod) !== 'ambient') continue;
    hits.push({ key: `${podRef(pod)}|${ap.metadata.namespace ?? ''}/${ap.metadata.name}`, pod, policy: ap, attributes, action });
  }
  return { hits, synthetic };
}

function collect(change: Change, before: ClusterState, after: ClusterState): { b: Hit[]; a: Hit[]; synthetic: boolean } | undefined {
  if (change.kind === 'AuthorizationPolicy') {
    if (change.operation === 'DELETE') return undefined;
    const a = hitsOf(after, change.object as PolicyObject);
    const b = hitsOf(before, change.oldObject as PolicyObject | undefined);
    return { a: a.hits, b: b.hits, synthetic: a.synthetic };
  }
  if (change.kind === 'Namespace' && change.operation === 'UPDATE' && labelsChanged(change)) {
    const nsName = change.name;
    const pods = unionPods(after.list('Pod', nsName));
    if (pods.length === 0) return undefined;
    const only = new Set(pods.map(podRef));
    const policiesIn = (state: ClusterState): PolicyObject[] => {
      const root = istioRootNamespace(state);
      return [...state.list('AuthorizationPolicy', nsName), ...(root !== nsName ? state.list('AuthorizationPolicy', root) : [])];
    };
    const a = policiesIn(after).flatMap((ap) => hitsOf(after, ap, only).hits);
    const beforeOnly = new Set(pods.map((p) => podIn(before, p)).filter((p): p is Pod => !!p).map(podRef));
    const b = policiesIn(before).flatMap((ap) => hitsOf(before, ap, beforeOnly).hits);
    return { a, b, synthetic: false };
  }
  return undefined;
}

function evaluateZtunnel(change: Change, before: ClusterState, after: ClusterState): Finding[] {
  const got = collect(change, before, after);
  if (!got || got.a.length === 0) return [];
  const old = new Set(got.b.map((h) => h.key));
  const added = got.a.filter((h) => !old.has(h.key));
  const shown = added.length > 0 ? added : got.a;
  const first = shown[0]!;
  const victims = unionPods(shown.map((h) => h.pod));
  const apRef = `AuthorizationPolicy ${first.policy.metadata.namespace ?? ''}/${first.policy.metadata.name}`;
  const prefix = change.kind === 'AuthorizationPolicy' ? '' : `${changeRef(change)}: `;
  const attrs = first.attributes.slice(0, 3).join(', ') + (first.attributes.length > 3 ? ', ...' : '');
  const effect =
    first.action === 'ALLOW'
      ? 'ztunnel (L4 only) can never match those rules, so the traffic they allow is denied'
      : 'ztunnel (L4 only) enforces the DENY on its L4 part alone and denies more than intended';
  const who = got.synthetic ? ' (pods this policy would select)' : '';
  const message = `${prefix}${apRef} (${first.action}) uses HTTP attributes (${attrs}) on ambient pods without a waypoint; ${effect}${who}: ${describeVictims(victims)}`;
  const fix =
    `bind the policy to a waypoint (deploy one, label namespace ${first.pod.metadata.namespace ?? ''} istio.io/use-waypoint=<name>, ` +
    `and replace selector with targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: <name>}]), or remove the HTTP attributes`;
  return [{ rule: ID, message, fix, ...victimsOf(victims), ...(added.length > 0 ? {} : { preexisting: true }) }];
}

export const rule: Rule = {
  id: ID,
  severity: 'B',
  summary: 'AuthorizationPolicy enforced by ztunnel uses HTTP attributes: ALLOW never matches (deny), DENY becomes broader',
  docs: `docs/rules/${ID}.md`,
  triggers: [
    { kinds: ['AuthorizationPolicy'], operations: ['CREATE', 'UPDATE'] },
    { kinds: ['Namespace'], operations: ['UPDATE'] },
  ],
  evaluate(change, before, after) {
    try {
      return evaluateZtunnel(change, before, after);
    } catch {
      return []; // odd input: no finding rather than a crash
    }
  },
};
