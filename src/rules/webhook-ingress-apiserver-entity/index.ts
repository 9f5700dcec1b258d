// webhook-ingress-apiserver-entity: every admission webhook the cluster registers (Mutating- and
// ValidatingWebhookConfigurations whose clientConfig names a Service, meshguard's own included) is called
// by the kube-apiserver. Under Cilium the API server is not a pod: its connections carry the
// `kube-apiserver` identity (with `remote-node`, or `host` on the backend's own node, when it runs on
// the nodes), so an ingress policy on the backend pods that allows only pods (say, kube-system's) shuts
// it out. With failurePolicy Fail every write the webhook matches is then refused; with Ignore it goes
// through unchecked. A request that does not make it worse is pre-existing (a warning).
//
// The rule folder: index.ts (metadata, scope, check), messages.ts (the words, per code), testdata/*.yaml.

import type { Change } from '../../core/change.ts';
import type { ClusterState } from '../../core/objects.ts';
import type { Finding } from '../../core/finding.ts';
import type { Rule, RuleContext } from '../../core/rule.ts';
import {
  apiserverClassKey,
  apiserverIngress,
  apiserverReachesPod,
  apiserverSources,
  APISERVER_SOURCE_ENTITY,
  canonicalIp,
  clusterWideIngressDefaultDeny,
  formatPolicyRef,
  nodeAddresses,
  nonDefaultDenyHonoured,
  podRef,
  webhookTargetsAmong,
  type WebhookTarget,
} from '../../policy/index.ts';
import { changeRef, decidedByOf, ingressSubject, judgeByClass, touchedPods, type IngressSubject } from '../../impact/index.ts';
import { apiserverIngressAllowRule, denyFixFrom, describeIngressSubject, MAX_VICTIMS, uniq } from '../render-helpers.ts';
import { messages } from './messages.ts';

const ID = 'webhook-ingress-apiserver-entity';
const MAX_LISTED = 3;

/** Cheap, from the request alone: a policy write or delete, a Namespace relabel, a cilium-config write. */
export function scope(change: Change): IngressSubject | undefined {
  return ingressSubject(change);
}

type Verdict = { readonly outcome: 'ok' | 'lost' | 'still' | 'skip'; readonly detail?: readonly string[] };

/** The API server sources a webhook target misses after the request, judged against before. */
function judgeTarget(before: ClusterState, after: ClusterState, sources: readonly string[], t: WebhookTarget): Verdict {
  const now = apiserverReachesPod(after, t.pod, t.port);
  if (now.length === sources.length) return { outcome: 'ok' };
  const was = apiserverReachesPod(before, t.pod, t.port);
  const missing = sources.filter((s) => !now.includes(s));
  return { outcome: now.length < was.length ? 'lost' : 'still', detail: missing };
}

/** How Cilium labels the API server source as seen from the backend pod. */
function identityOf(state: ClusterState, source: string, t: WebhookTarget): string {
  if (source === APISERVER_SOURCE_ENTITY) return 'the kube-apiserver entity';
  const node = nodeAddresses(state).get(canonicalIp(source) ?? source);
  if (node === undefined) return 'kube-apiserver outside the nodes';
  return node === t.pod.spec.nodeName ? 'kube-apiserver+host' : 'kube-apiserver+remote-node';
}

export function check(subject: IngressSubject, change: Change, before: ClusterState, after: ClusterState): Finding[] {
  const touched = touchedPods(change, before, after, { direction: 'ingress' });
  // Synthetic pods (a policy that selects no live pod) back no webhook Service.
  if (touched.pods.length === 0 || touched.synthetic) return [];
  const targets = webhookTargetsAmong(after, touched.pods);
  if (targets.length === 0) return [];
  const sources = apiserverSources(after);
  const classKey = apiserverClassKey(after);
  const targetKey = (t: WebhookTarget): string => `${t.port}\u0000${classKey(t.pod)}`;
  const r = judgeByClass<WebhookTarget, readonly string[]>(targets, targetKey, (t) => judgeTarget(before, after, sources, t));
  const lostAny = r.lostClasses.length > 0;
  const classes = lostAny ? r.lostClasses : subject.by === 'policy' ? r.stillClasses : [];
  if (classes.length === 0) return [];
  const items = lostAny ? r.lost : r.stillMissing;

  const first = classes[0]!;
  const firstSource = first.detail?.[0] ?? sources[0]!;
  const verdict = apiserverIngress(after, first.first.pod, firstSource, first.first.port);
  const webhooks = uniq(items.map((t) => `${t.backend.configuration.split('/')[1]}/${t.backend.webhook}`));
  const ports = uniq(items.map((t) => t.port)).sort((a, b) => a - b);
  const missing = uniq(classes.flatMap((c) => c.detail ?? []));
  const cut = {
    request: changeRef(change),
    webhooks: webhooks.slice(0, MAX_LISTED),
    webhookCount: webhooks.length,
    failClosed: items.some((t) => t.backend.failurePolicy === 'Fail'),
    ports: ports.map((p) => `${p}/TCP`),
    sources: missing,
    identity: identityOf(after, firstSource, first.first),
    deciding: verdict.decidingPolicies.map(formatPolicyRef),
    allow: apiserverIngressAllowRule(subject.by === 'policy' ? change.kind : 'CiliumNetworkPolicy', after, ports, missing),
  };
  const victimPods = uniq(items.map((t) => podRef(t.pod)));
  const extras = { victims: victimPods.slice(0, MAX_VICTIMS), victimCount: victimPods.length };

  // A deny decides for some backends (an ingressDeny covering the API server's identity): name it, since
  // an allow from the kube-apiserver changes nothing there.
  const decided = decidedByOf<WebhookTarget>(items, classes, targetKey, (t) => apiserverReachesPod(after, t.pod, t.port), after);
  if (decided.byDeny.length > 0 && decided.denies.length > 0) {
    const others = decided.byDefault;
    const otherPods = uniq(others.map((t) => podRef(t.pod)));
    const otherPorts = uniq(others.map((t) => t.port)).sort((a, b) => a - b);
    const denied = {
      ...cut,
      ...denyFixFrom(decided.denies),
      defaultPods: otherPods.slice(0, 3),
      defaultPodCount: otherPods.length,
      change: subject.by === 'policy' ? cut.request : describeIngressSubject(subject, cut.request),
      deniedPorts: uniq(decided.byDeny.map((t) => `${t.port}/TCP`)),
      allow: others.length > 0 ? apiserverIngressAllowRule(subject.by === 'policy' ? change.kind : 'CiliumNetworkPolicy', after, otherPorts, missing) : '',
    };
    return [messages.finding(lostAny ? 'denied-by-policy' : 'still-denied-by-policy', denied, lostAny ? extras : { ...extras, preexisting: true })];
  }
  if (!lostAny) return [messages.finding('already-blocked', cut, { ...extras, preexisting: true })];
  if (subject.by !== 'policy') {
    return [messages.finding('change-blocks-webhook', { ...cut, change: describeIngressSubject(subject, cut.request) }, extras)];
  }
  if (clusterWideIngressDefaultDeny(after, subject.object)) {
    const v = nonDefaultDenyHonoured(after);
    return [messages.finding('cluster-default-deny', { ...cut, fixHonoured: v.honoured, cilium: v.cilium }, extras)];
  }
  return [messages.finding('blocks-webhook', cut, extras)];
}

export const rule: Rule = {
  id: ID,
  severity: 'B',
  summary: 'A change shuts the kube-apiserver out of an admission webhook backend (Cilium identity kube-apiserver / remote-node / host): admission calls fail',
  docs: `docs/rules/${ID}.md`,
  triggers: [
    {
      kinds: ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy', 'NetworkPolicy'],
      operations: ['CREATE', 'UPDATE', 'DELETE'],
      when: 'when it can change the ingress policy of a pod behind a webhook Service (Mutating/ValidatingWebhookConfiguration)',
    },
    { kinds: ['Namespace'], operations: ['UPDATE'], when: 'only when a changed label is read by some ingress selector' },
    { kinds: ['ConfigMap'], operations: ['CREATE', 'UPDATE'], when: 'only `kube-system/cilium-config`, when the policy mode changes' },
  ],
  messages,
  evaluate: (change: Change, before: ClusterState, after: ClusterState, _ctx: RuleContext): Finding[] => {
    const subject = scope(change);
    return subject ? check(subject, change, before, after) : [];
  },
};
