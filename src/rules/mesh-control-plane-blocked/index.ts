// mesh-control-plane-blocked: a policy that selects istiod can silently cut Istio's control plane. Every
// sidecar, ztunnel and gateway/waypoint pulls its configuration and certificates from istiod over xDS
// (15012, mTLS), and the kube-apiserver calls istiod's injection and validation webhooks on 15017. Istio's
// own Helm-chart NetworkPolicy for istiod lets 15017 in only from kube-system pods, which under Cilium
// the API server is not (it carries the kube-apiserver identity, with remote-node or host when it runs
// on the nodes); a cluster-wide CCNP with `endpointSelector: {}` and an ingress section shuts everything
// out. Judged before and after per client class (one pod per identity class); a request that does not
// make it worse is pre-existing (a warning).
//
// The rule folder: index.ts (metadata, scope, check), messages.ts (the words, per code), testdata/*.yaml.

import type { Change } from '../../core/change.ts';
import type { ClusterState, Pod } from '../../core/objects.ts';
import type { Finding } from '../../core/finding.ts';
import type { Rule, RuleContext } from '../../core/rule.ts';
import {
  APISERVER_SOURCE_ENTITY,
  apiserverIngress,
  apiserverReachesPod,
  apiserverSources,
  clusterWideIngressDefaultDeny,
  evaluate,
  formatPolicyRef,
  ingressEnforcementChanged,
  istiodPodSet,
  istiodPorts,
  nonDefaultDenyHonoured,
  podClassKey,
  podRef,
  reachable,
  xdsClientClasses,
  type XdsClientKind,
} from '../../policy/index.ts';
import { changeRef, decidedByOf, ingressSubject, judgeByClass, touchedPods, type IngressSubject } from '../../impact/index.ts';
import { apiserverIngressAllowRule, denyFixFrom, describeIngressSubject, MAX_VICTIMS, uniq } from '../render-helpers.ts';
import { messages } from './messages.ts';

const ID = 'mesh-control-plane-blocked';
const MAX_LISTED = 5;

/** Cheap, from the request alone: a policy write or delete, a Namespace relabel, a cilium-config write. */
export function scope(change: Change): IngressSubject | undefined {
  return ingressSubject(change);
}

/** One flow istiod must accept: a client kind (or the API server), the client pod, istiod's pod and port. */
interface Flow {
  readonly client: XdsClientKind | 'kube-apiserver';
  readonly from?: Pod;
  readonly istiod: Pod;
  readonly port: number;
}

type Verdict = { readonly outcome: 'ok' | 'lost' | 'still' | 'skip' };

/**
 * A client flow is lost when it worked before and not after. The API server calls from several
 * sources (its endpoints, balanced over): the flow is lost when fewer of them get through than before,
 * even if some were already shut out (HA control planes with a partial allow).
 */
function judgeFlow(before: ClusterState, after: ClusterState, f: Flow): Verdict {
  if (f.from) {
    const works = (s: ClusterState): boolean => reachable(s, f.from!, { type: 'pod', pod: f.istiod }, f.port, 'TCP', 'ingress');
    if (works(after)) return { outcome: 'ok' };
    return { outcome: works(before) ? 'lost' : 'still' };
  }
  const now = apiserverReachesPod(after, f.istiod, f.port).length;
  if (now === apiserverSources(after).length) return { outcome: 'ok' };
  return { outcome: now < apiserverReachesPod(before, f.istiod, f.port).length ? 'lost' : 'still' };
}

/** The policies that decide a cut flow, for the message. */
function deciding(state: ClusterState, f: Flow): string[] {
  const v = f.from
    ? evaluate(state, f.from, { type: 'pod', pod: f.istiod }, f.port, 'TCP').ingress
    : apiserverIngress(state, f.istiod, apiserverSources(state).find((s) => apiserverIngress(state, f.istiod, s, f.port).verdict !== 'allowed') ?? apiserverSources(state)[0]!, f.port);
  return v.decidingPolicies.map(formatPolicyRef);
}

/** The allow rules for the cut flows, in the dialect of the request's kind. */
function allowRules(kind: string | undefined, state: ClusterState, xdsPorts: readonly number[], webhookPorts: readonly number[]): string {
  const parts: string[] = [];
  if (xdsPorts.length > 0) {
    parts.push(
      kind === 'NetworkPolicy'
        ? `ingress: [{from: [{namespaceSelector: {}}], ports: [${xdsPorts.map((p) => `{port: ${p}, protocol: TCP}`).join(', ')}]}]`
        : `ingress: [{fromEntities: [cluster], toPorts: [{ports: [${xdsPorts.map((p) => `{port: "${p}", protocol: TCP}`).join(', ')}]}]}]`,
    );
  }
  if (webhookPorts.length > 0) parts.push(apiserverIngressAllowRule(kind, state, webhookPorts, apiserverSources(state)));
  return parts.join(' and ');
}

export function check(subject: IngressSubject, change: Change, before: ClusterState, after: ClusterState): Finding[] {
  const touched = touchedPods(change, before, after, { direction: 'ingress' });
  if (touched.pods.length === 0 || touched.synthetic) return [];
  // A cilium-config change of `enable-policy` alone reports only losses (below), and only an istiod whose
  // ingress enforcement it changes can lose a flow: the others keep every ingress answer.
  const pods = subject.by === 'cilium-config' ? (ingressEnforcementChanged(before, after, touched.pods) ?? touched.pods) : touched.pods;
  const istiods = istiodPodSet(after);
  // The few istiod pods among the touched ones, in the touched pods' order (no pass over every pod).
  const at = (p: Pod): number => (p.spec.hostNetwork === true ? -1 : pods.indexOf(p));
  const hit = [...istiods].filter((p) => at(p) >= 0).sort((a, b) => at(a) - at(b));
  if (hit.length === 0) return [];

  // One flow per client class (xdsClientClasses: kind and class) is judged; the verdicts are then
  // spread over every client of the class, in the order the clients are listed.
  const flows: Flow[] = [];
  const { clients, classOf, classes } = xdsClientClasses(after);
  for (const istiod of hit) {
    const ports = istiodPorts(after, istiod);
    flows.push({ client: 'kube-apiserver', istiod, port: ports.webhook });
    for (const c of classes) flows.push({ client: c.kind, from: c.pod, istiod, port: ports.xds });
  }
  const key = (f: Flow): string =>
    `${f.client}\u0000${f.port}\u0000${podClassKey(f.istiod, f.istiod.spec.nodeName ?? '')}\u0000${f.from ? podClassKey(f.from, '') : ''}`;
  const r = judgeByClass<Flow>(flows, key, (f) => judgeFlow(before, after, f));
  const lostAny = r.lostClasses.length > 0;
  if (!lostAny && subject.by !== 'policy') return [];
  const chosen = new Set((lostAny ? r.lostClasses : r.stillClasses).map((c) => c.key));
  const listed: Flow[] = [];
  for (const istiod of hit) {
    const ports = istiodPorts(after, istiod);
    const api: Flow = { client: 'kube-apiserver', istiod, port: ports.webhook };
    if (chosen.has(key(api))) listed.push(api);
    const cut = classes.map((c) => chosen.has(key({ client: c.kind, from: c.pod, istiod, port: ports.xds })));
    for (let i = 0; i < clients.length; i++) if (cut[classOf[i]!]) listed.push({ client: clients[i]!.kind, from: clients[i]!.pod, istiod, port: ports.xds });
  }
  const order: readonly string[] = ['sidecar', 'ztunnel', 'gateway', 'kube-apiserver'];
  // Stable: by client kind, then as listed (one pass per kind: a comparison sort of every client flow
  // was a tenth of the cilium-config request's profile).
  const cutFlows = order.flatMap((kind) => listed.filter((f) => f.client === kind));
  if (cutFlows.length === 0) return [];

  const firstClass = (lostAny ? r.lostClasses : r.stillClasses)[0]!.first;
  const clientNames = uniq(cutFlows.map((f) => (f.from ? podRef(f.from) : 'kube-apiserver')));
  const xdsPorts = uniq(cutFlows.filter((f) => f.from).map((f) => f.port)).sort((a, b) => a - b);
  const webhookPorts = uniq(cutFlows.filter((f) => !f.from).map((f) => f.port)).sort((a, b) => a - b);
  const cutKinds = uniq(cutFlows.map((f) => `${f.client}:${f.port}`));
  const cut = {
    request: changeRef(change),
    istiod: podRef(firstClass.istiod),
    cut: cutKinds,
    clients: clientNames.slice(0, MAX_LISTED),
    clientCount: clientNames.length,
    deciding: deciding(after, firstClass),
    allow: allowRules(subject.by === 'policy' ? change.kind : 'CiliumNetworkPolicy', after, xdsPorts, webhookPorts),
  };
  const extras = { victims: clientNames.slice(0, MAX_VICTIMS), victimCount: clientNames.length };

  // A deny decides some cut flows (an ingressDeny on istiod): name it, since an allow changes nothing there.
  const decided = decidedByOf<Flow>(cutFlows, lostAny ? r.lostClasses : r.stillClasses, key, (f) =>
    f.from ? reachable(after, f.from, { type: 'pod', pod: f.istiod }, f.port, 'TCP', 'ingress') : apiserverReachesPod(after, f.istiod, f.port),
    after,
  );
  if (decided.byDeny.length > 0 && decided.denies.length > 0) {
    const others = decided.byDefault;
    const otherNames = uniq(others.map((f) => (f.from ? podRef(f.from) : 'kube-apiserver')));
    const portsOf = (fs: readonly Flow[], xds: boolean): number[] => uniq(fs.filter((f) => !!f.from === xds).map((f) => f.port)).sort((a, b) => a - b);
    const denied = {
      ...cut,
      ...denyFixFrom(decided.denies),
      defaultPods: otherNames.slice(0, 3),
      defaultPodCount: otherNames.length,
      change: subject.by === 'policy' ? cut.request : describeIngressSubject(subject, cut.request),
      deniedCut: uniq(decided.byDeny.map((f) => `${f.client}:${f.port}`)),
      apiserverAddresses: decided.byDeny.some((f) => !f.from) ? apiserverSources(after).filter((s) => s !== APISERVER_SOURCE_ENTITY) : [],
      allow: others.length > 0 ? allowRules(subject.by === 'policy' ? change.kind : 'CiliumNetworkPolicy', after, portsOf(others, true), portsOf(others, false)) : '',
    };
    return [messages.finding(lostAny ? 'denied-by-policy' : 'still-denied-by-policy', denied, lostAny ? extras : { ...extras, preexisting: true })];
  }
  if (!lostAny) return [messages.finding('already-blocked', cut, { ...extras, preexisting: true })];
  if (subject.by !== 'policy') {
    return [messages.finding('change-blocks-istiod', { ...cut, change: describeIngressSubject(subject, cut.request) }, extras)];
  }
  if (clusterWideIngressDefaultDeny(after, subject.object)) {
    const v = nonDefaultDenyHonoured(after);
    return [messages.finding('cluster-default-deny', { ...cut, fixHonoured: v.honoured, cilium: v.cilium }, extras)];
  }
  return [messages.finding('blocks-istiod', cut, extras)];
}

export const rule: Rule = {
  id: ID,
  severity: 'B',
  summary: "A change cuts istiod's xDS (15012 from sidecars, ztunnel, gateways) or its webhook port (15017 from the kube-apiserver)",
  docs: `docs/rules/${ID}.md`,
  triggers: [
    {
      kinds: ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy', 'NetworkPolicy'],
      operations: ['CREATE', 'UPDATE', 'DELETE'],
      when: "when it can change istiod's ingress policy (it selects istiod's pods before or after)",
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
