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

import { rethrowIfBudget } from '../../core/budget.ts';
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
  hasDenyRules,
  ingressEnforcementChanged,
  istiodPodSet,
  istiodPorts,
  nonDefaultDenyHonoured,
  podClassKey,
  podIngressWorks,
  podRef,
  podSourceIngress,
  reachable,
  xdsClientClasses,
  type XdsClientKind,
} from '../../policy/index.ts';
import { changeRef, decidedByOf, ingressSubject, touchedPods, type IngressSubject } from '../../impact/index.ts';
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

type Outcome = 'ok' | 'lost' | 'still' | 'skip';

/**
 * A client flow is lost when it worked before and not after. The API server calls from several
 * sources (its endpoints, balanced over): the flow is lost when fewer of them get through than before,
 * even if some were already shut out (HA control planes with a partial allow).
 */
function judgeApiFlow(before: ClusterState, after: ClusterState, f: Flow): Outcome {
  const now = apiserverReachesPod(after, f.istiod, f.port).length;
  if (now === apiserverSources(after).length) return 'ok';
  return now < apiserverReachesPod(before, f.istiod, f.port).length ? 'lost' : 'still';
}

/**
 * The same for a client pod's flow (lost: it worked before and not after), with istiod's answers for
 * every pod source in both states (podSourceIngress) where they exist.
 */
function judgePodFlow(before: ClusterState, after: ClusterState, from: Pod, istiod: Pod, port: number, anyBefore: boolean | undefined, anyAfter: boolean | undefined): Outcome {
  // Asked once per client class and istiod (9.5k classes at 50k pods on a cilium-config change): no flow
  // object or closure per class, which lived through the request's scavenges (issue 21: promotion).
  try {
    // Once per state, istiod and port where istiod's ingress admits (or drops) every pod source alike
    // (podSourceIngress: no ingress element on the port that reads the source), else per client class.
    if (podIngressWorks(after, from, istiod, port, anyAfter)) return 'ok';
    return podIngressWorks(before, from, istiod, port, anyBefore) ? 'lost' : 'still';
  } catch (e) {
    rethrowIfBudget(e);
    return 'skip';
  }
}

/** A judgement that throws (odd input) skips the flow: no finding rather than a crash, as judgeByClass does. */
function verdictOrSkip(judge: () => Outcome): Outcome {
  try {
    return judge();
  } catch (e) {
    rethrowIfBudget(e);
    return 'skip';
  }
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

  // One flow per client class (xdsClientClasses: kind and class) is judged, and its verdict spread over
  // every client of the class, in the order the clients are listed. Istiods of one class (and port) get
  // the same verdicts: judged once. Where istiod's ingress admits or drops every pod source alike (no
  // ingress element on the port that reads the source: podSourceIngress) the verdict is the same for every class: decided once per state.
  const { clients, classOf, classes } = xdsClientClasses(after);
  const ports = hit.map((istiod) => istiodPorts(after, istiod));
  const istiodKeys = hit.map((istiod) => podClassKey(istiod, istiod.spec.nodeName ?? ''));
  /** Per istiod: the API server flow's outcome, and each client class's (by class index). */
  const apiOutcome: Outcome[] = [];
  const classOutcomes: (readonly Outcome[])[] = [];
  /** Per istiod: whether its API server flow, its class flows, are judged here (not copies of an earlier istiod's). */
  const ownApi: boolean[] = [];
  const ownXds: boolean[] = [];
  const apiSeen = new Map<string, Outcome>();
  const xdsSeen = new Map<string, readonly Outcome[]>();
  for (let h = 0; h < hit.length; h++) {
    const istiod = hit[h]!;
    const { xds, webhook } = ports[h]!;
    const apiKey = `${webhook}\u0000${istiodKeys[h]}`;
    let api = apiSeen.get(apiKey);
    ownApi.push(api === undefined);
    if (api === undefined) {
      api = verdictOrSkip(() => judgeApiFlow(before, after, { client: 'kube-apiserver', istiod, port: webhook }));
      apiSeen.set(apiKey, api);
    }
    apiOutcome.push(api);
    const xdsKey = `${xds}\u0000${istiodKeys[h]}`;
    let outcomes = xdsSeen.get(xdsKey);
    ownXds.push(outcomes === undefined);
    if (outcomes === undefined) {
      const anyBefore = podSourceIngress(before, istiod, xds, 'TCP');
      const anyAfter = podSourceIngress(after, istiod, xds, 'TCP');
      outcomes = classes.map((c) => judgePodFlow(before, after, c.pod, istiod, xds, anyBefore, anyAfter));
      xdsSeen.set(xdsKey, outcomes);
    }
    classOutcomes.push(outcomes);
  }
  // The judged classes in flow order (per istiod: the API server flow, then the client classes).
  const judgedIn = (outcome: Outcome, firstOnly = false): Flow[] => {
    const out: Flow[] = [];
    for (let h = 0; h < hit.length; h++) {
      const istiod = hit[h]!;
      if (ownApi[h] && apiOutcome[h] === outcome) out.push({ client: 'kube-apiserver', istiod, port: ports[h]!.webhook });
      if (firstOnly && out.length > 0) return out;
      if (!ownXds[h]) continue;
      for (let i = 0; i < classes.length; i++) {
        if (classOutcomes[h]![i] !== outcome) continue;
        out.push({ client: classes[i]!.kind, from: classes[i]!.pod, istiod, port: ports[h]!.xds });
        if (firstOnly) return out;
      }
    }
    return out;
  };
  const lostAny = apiOutcome.includes('lost') || classOutcomes.some((o) => o.includes('lost'));
  if (!lostAny && subject.by !== 'policy') return [];
  const chosen: Outcome = lostAny ? 'lost' : 'still';
  const apiCut = apiOutcome.map((o) => o === chosen);
  const classCut = classOutcomes.map((o) => o.map((x) => x === chosen));
  if (!apiCut.includes(true) && !classCut.some((c) => c.includes(true))) return [];
  const firstClass = judgedIn(chosen, true)[0]!;

  // The cut flows, ordered by client kind, then istiod, then as the clients are listed (what every
  // client judged on its own gives), are not built one per client: names, ports and kinds come from
  // the per-class verdicts (a client flow and a key string per client pod was most of the rule's time).
  const order: readonly (XdsClientKind | 'kube-apiserver')[] = ['sidecar', 'ztunnel', 'gateway', 'kube-apiserver'];
  const cutKinds = uniq(
    order.flatMap((kind) =>
      hit.flatMap((_, h) =>
        kind === 'kube-apiserver' ? (apiCut[h] ? [`${kind}:${ports[h]!.webhook}`] : []) : classes.some((c, i) => c.kind === kind && classCut[h]![i]) ? [`${kind}:${ports[h]!.xds}`] : [],
      ),
    ),
  );
  const xdsPorts = uniq(hit.flatMap((_, h) => (classCut[h]!.includes(true) ? [ports[h]!.xds] : []))).sort((a, b) => a - b);
  const webhookPorts = uniq(hit.flatMap((_, h) => (apiCut[h] ? [ports[h]!.webhook] : []))).sort((a, b) => a - b);
  // Asked of every client pod (thousands at 50k pods): a loop, not a callback made per call.
  const cutClient = (i: number): boolean => {
    const k = classOf[i]!;
    for (let h = 0; h < classCut.length; h++) if (classCut[h]![k]) return true;
    return false;
  };
  let clientCount = apiCut.includes(true) ? 1 : 0;
  for (let i = 0; i < clients.length; i++) if (cutClient(i)) clientCount++;
  const firstNames: string[] = [];
  const wanted = Math.max(MAX_LISTED, MAX_VICTIMS);
  names: for (const kind of order) {
    if (kind === 'kube-apiserver') {
      if (apiCut.includes(true) && firstNames.length < wanted) firstNames.push('kube-apiserver');
      break;
    }
    const seen = new Set<string>(firstNames);
    for (let h = 0; h < hit.length; h++) {
      for (let i = 0; i < clients.length && firstNames.length < wanted; i++) {
        if (clients[i]!.kind !== kind || !classCut[h]![classOf[i]!]) continue;
        const name = podRef(clients[i]!.pod);
        if (!seen.has(name)) {
          seen.add(name);
          firstNames.push(name);
        }
      }
      if (firstNames.length >= wanted) break names;
    }
  }
  const clientNames = { first: firstNames, count: clientCount };
  // Built only where a deny decides something (an ingressDeny on istiod): every cut flow, in that order.
  const cutFlows = (): Flow[] => {
    const listed: Flow[] = [];
    for (let h = 0; h < hit.length; h++) {
      const istiod = hit[h]!;
      if (apiCut[h]) listed.push({ client: 'kube-apiserver', istiod, port: ports[h]!.webhook });
      for (let i = 0; i < clients.length; i++) if (classCut[h]![classOf[i]!]) listed.push({ client: clients[i]!.kind, from: clients[i]!.pod, istiod, port: ports[h]!.xds });
    }
    return order.flatMap((kind) => listed.filter((f) => f.client === kind));
  };
  const key = (f: Flow): string =>
    `${f.client}\u0000${f.port}\u0000${podClassKey(f.istiod, f.istiod.spec.nodeName ?? '')}\u0000${f.from ? podClassKey(f.from, '') : ''}`;
  const cut = {
    request: changeRef(change),
    istiod: podRef(firstClass.istiod),
    cut: cutKinds,
    clients: clientNames.first.slice(0, MAX_LISTED),
    clientCount: clientNames.count,
    deciding: deciding(after, firstClass),
    allow: allowRules(subject.by === 'policy' ? change.kind : 'CiliumNetworkPolicy', after, xdsPorts, webhookPorts),
  };
  const extras = { victims: clientNames.first.slice(0, MAX_VICTIMS), victimCount: clientNames.count };

  // A deny decides some cut flows (an ingressDeny on istiod): name it, since an allow changes nothing there.
  // With no deny element in the state, default deny decides every flow (decidedByOf's own shortcut).
  const decided = hasDenyRules(after)
    ? decidedByOf<Flow>(
        cutFlows(),
        judgedIn(chosen).map((f) => ({ key: key(f), first: f })),
        key,
        (f) => (f.from ? reachable(after, f.from, { type: 'pod', pod: f.istiod }, f.port, 'TCP', 'ingress') : apiserverReachesPod(after, f.istiod, f.port)),
        after,
      )
    : undefined;
  if (decided !== undefined && decided.byDeny.length > 0 && decided.denies.length > 0) {
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
