// ztunnel-l7-authz: an AuthorizationPolicy that ztunnel enforces (selector or namespace-wide, no
// targetRefs) on ambient pods but that uses HTTP attributes (paths, methods, hosts, request principals,
// request.* conditions). ztunnel only sees L4: an ALLOW rule that needs HTTP can never match, so the
// traffic it was meant to allow is denied (deny-all when every rule needs HTTP); a DENY policy is
// enforced on its L4 part alone, denying more than intended.

//
// The rule folder: index.ts (this file: metadata, scope, check), messages.ts (the words, per code),
// testdata/*.yaml (fixtures run by test/rules/fixtures.test.ts). docs/adding-a-rule.md explains the layout.

import type { Change } from '../../core/change.ts';
import type { Finding } from '../../core/finding.ts';
import type { ClusterState, Labels, Pod, PolicyObject } from '../../core/objects.ts';
import type { Rule, RuleContext } from '../../core/rule.ts';
import { istioMatchLabels, authzAttachment, httpAttributesOf, istioRootNamespace, meshMode, podIn, podRef, unionPods } from '../../policy/index.ts';
import { labelsChanged } from '../../impact/index.ts';
import { victimParams, victimsOf } from '../render-helpers.ts';
import { messages } from './messages.ts';

const ID = 'ztunnel-l7-authz';

interface Hit {
  readonly key: string;
  readonly pod: Pod;
  readonly policy: PolicyObject;
  readonly attributes: readonly string[];
  readonly action: 'ALLOW' | 'DENY';
}

function actionOf(ap: PolicyObject): string {
  const a = ap.spec?.['action'];
  return typeof a === 'string' && a !== '' ? a : 'ALLOW';
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

/** An AuthorizationPolicy that hitsOf may find hits for: an ALLOW or DENY that uses HTTP attributes. */
function mayNeedHttp(ap: PolicyObject): boolean {
  if (ap.kind !== 'AuthorizationPolicy') return false;
  const action = actionOf(ap);
  return (action === 'ALLOW' || action === 'DENY') && httpAttributesOf(ap).length > 0;
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
  const ml = istioMatchLabels(ap.spec);
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

/** What the request does that this rule judges; undefined: nothing to judge. */
type Subject = { readonly by: 'authorization-policy' } | { readonly by: 'namespace'; readonly namespace: string };

/** Cheap, from the request alone: an AuthorizationPolicy written, or a Namespace relabelled. */
export function scope(change: Change): Subject | undefined {
  if (change.kind === 'AuthorizationPolicy') return change.operation === 'DELETE' ? undefined : { by: 'authorization-policy' };
  if (change.kind === 'Namespace' && change.operation === 'UPDATE' && labelsChanged(change)) return { by: 'namespace', namespace: change.name };
  return undefined;
}

function collect(subject: Subject, change: Change, before: ClusterState, after: ClusterState): { b: Hit[]; a: Hit[]; synthetic: boolean } {
  if (subject.by === 'authorization-policy') {
    const a = hitsOf(after, change.object as PolicyObject | undefined);
    const b = hitsOf(before, change.oldObject as PolicyObject | undefined);
    return { a: a.hits, b: b.hits, synthetic: a.synthetic };
  }
  const nsName = subject.namespace;
  const policiesIn = (state: ClusterState): PolicyObject[] => {
    const root = istioRootNamespace(state);
    return [...state.list('AuthorizationPolicy', nsName), ...(root !== nsName ? state.list('AuthorizationPolicy', root) : [])];
  };
  const policiesAfter = policiesIn(after);
  // No policy there that needs HTTP (most relabels): no hit after, so nothing to report, and the
  // namespace's pods are not named one by one.
  if (!policiesAfter.some(mayNeedHttp)) return { a: [], b: [], synthetic: false };
  const pods = unionPods(after.list('Pod', nsName));
  if (pods.length === 0) return { a: [], b: [], synthetic: false };
  const only = new Set(pods.map(podRef));
  const a = policiesAfter.flatMap((ap) => hitsOf(after, ap, only).hits);
  const beforeOnly = new Set(pods.map((p) => podIn(before, p)).filter((p): p is Pod => !!p).map(podRef));
  const b = policiesIn(before).flatMap((ap) => hitsOf(before, ap, beforeOnly).hits);
  return { a, b, synthetic: false };
}

export function check(subject: Subject, change: Change, before: ClusterState, after: ClusterState): Finding[] {
  const got = collect(subject, change, before, after);
  if (got.a.length === 0) return [];
  const old = new Set(got.b.map((h) => h.key));
  const added = got.a.filter((h) => !old.has(h.key));
  const preexisting = added.length === 0;
  const shown = preexisting ? got.a : added;
  const first = shown[0]!;
  const victims = unionPods(shown.map((h) => h.pod));
  const enforced = {
    policy: `${first.policy.metadata.namespace ?? ''}/${first.policy.metadata.name}`,
    attributes: first.attributes.slice(0, 3),
    attributeCount: first.attributes.length,
    ...victimParams(victims),
    podNamespace: first.pod.metadata.namespace ?? '',
  };
  const extras = { ...victimsOf(victims), preexisting };
  const allow = first.action === 'ALLOW';
  if (subject.by === 'authorization-policy') {
    const kind = allow ? (preexisting ? 'allow-kept' : 'allow-never-matches') : preexisting ? 'deny-kept' : 'deny-broadened';
    return [messages.finding(kind, { ...enforced, wouldSelect: got.synthetic }, extras)];
  }
  const kind = allow
    ? preexisting ? 'namespace-allow-kept' : 'namespace-allow-never-matches'
    : preexisting ? 'namespace-deny-kept' : 'namespace-deny-broadened';
  return [messages.finding(kind, { ...enforced, namespace: subject.namespace }, extras)];
}

export const rule: Rule = {
  id: ID,
  severity: 'B',
  summary: 'AuthorizationPolicy enforced by ztunnel uses HTTP attributes: ALLOW never matches (deny), DENY becomes broader',
  docs: `docs/rules/${ID}.md`,
  triggers: [
    { kinds: ['AuthorizationPolicy'], operations: ['CREATE', 'UPDATE'], when: 'a policy ztunnel enforces (selector or namespace-wide, no targetRefs) that uses HTTP attributes on ambient pods' },
    { kinds: ['Namespace'], operations: ['UPDATE'], when: 'a label change, such as enrolling a namespace into ambient under existing HTTP policies' },
  ],
  messages,
  evaluate: (change: Change, before: ClusterState, after: ClusterState, _ctx: RuleContext): Finding[] => {
    const subject = scope(change);
    return subject ? check(subject, change, before, after) : [];
  },
};
