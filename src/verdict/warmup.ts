// Warm-up before readiness: the first few hundred decisions of a fresh process run in V8's interpreter
// and fill the per-state caches, at several times the steady cost (2-13 ms instead of 0.3 ms at 10k
// pods). Running decisions on requests built from the state's own objects before the webhook reports
// ready moves that cost out of the apiserver's path. decide() is pure: the answers are discarded and
// only the JIT and the caches of the stable state (which any real request would fill the same way) keep
// anything.

import type { Change } from '../core/change.ts';
import { BudgetExceeded, withBudget } from '../core/budget.ts';
import { KINDS, type KindName } from '../core/kinds.ts';
import type { ClusterState, KubeObject, Pod } from '../core/objects.ts';
import type { Decide } from '../core/decision.ts';
import type { Rule } from '../core/rule.ts';
import { classifiedPods, classPlan, groupsOf, podClassesIn, podClassId } from '../policy/classes.ts';
import { hasFqdnRules } from '../policy/fqdn.ts';
import { ambientIngressClassKey, apiserverClassKey, dnsClassKey, podClassKey } from '../policy/identity.ts';
import { policyModel } from '../policy/model.ts';
import { namespaceLabelMatters, namespaceLabelReadByL7, namespaceLabelReadByPeers, namespaceLabelReadFor } from '../policy/namespace-labels.ts';
import { indexAddressesOf } from '../policy/reachability.ts';
import { apiserverClients, apiserverClientsIn, apiserverTablesFiller, type ApiserverClients } from '../policy/apiserver.ts';
import { dnsTablesFiller, withoutDnsBackends } from '../policy/dns.ts';
import { indexXdsClientsOf, xdsClientClasses } from '../policy/control-plane.ts';
import { enforcementOfModels, podsSelectedBy, policiesSelecting, policySettings, warmClassSelections, type PolicySettings } from '../policy/selection.ts';
import { warmAmbientPlan, warmEnforcementSwitch } from '../policy/mesh-memo.ts';
import { CILIUM_POLICY_KINDS, l7PoliciesWith } from '../policy/l7.ts';
import type { PolicyObject } from '../core/objects.ts';

/** Objects picked per (kind, operation) the rules trigger on, spread over the state's list. */
const PER_TRIGGER = 8;

/** A Namespace label key asked about only to build the tables of the keys policies read. */
const WARM_UP_LABEL_KEY = 'meshguard.dev/warm-up';

const POLICY_KINDS = ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy', 'NetworkPolicy'] as const;

function spread(objs: readonly KubeObject[], n: number): KubeObject[] {
  if (objs.length <= n) return [...objs];
  const out: KubeObject[] = [];
  for (let i = 0; i < n; i++) out.push(objs[Math.floor((i * objs.length) / n)]!);
  return out;
}

/** The class keys of a pod that the rules' judging passes ask (each kept per pod object). */
function fillPodKeys(p: Pod): void {
  podClassKey(p, '');
  ambientIngressClassKey(p);
}

/** The first pod of `pods` with each token. */
function onePerToken(pods: readonly Pod[], token: (p: Pod) => string): Pod[] {
  const seen = new Set<string>();
  const out: Pod[] = [];
  for (const p of pods) {
    const t = token(p);
    if (seen.has(t)) continue;
    seen.add(t);
    out.push(p);
  }
  return out;
}

/** Requests the rules react to, each an UPDATE/CREATE/DELETE of an object already in the state. */
export function warmUpChanges(rules: readonly Rule[], state: ClusterState): Change[] {
  const seen = new Set<string>();
  const out: Change[] = [];
  for (const rule of rules) {
    for (const t of rule.triggers) {
      for (const kind of t.kinds) {
        for (const operation of t.operations) {
          const key = `${kind} ${operation}`;
          if (seen.has(key) || operation === 'CONNECT') continue;
          seen.add(key);
          for (const obj of spread(state.list(kind as KindName), PER_TRIGGER)) {
            const k = KINDS[kind as KindName];
            out.push({
              uid: 'meshguard-warm-up',
              operation,
              gvk: { group: k.group, version: k.version, kind },
              kind: kind as KindName,
              namespace: k.namespaced ? (obj.metadata.namespace ?? '') : '',
              name: obj.metadata.name,
              ...(operation === 'DELETE' ? {} : { object: obj }),
              ...(operation === 'CREATE' ? {} : { oldObject: obj }),
              dryRun: true,
              userInfo: { username: 'meshguard-warm-up' },
            });
          }
        }
      }
    }
  }
  return out;
}

const policiesOf = (s: ClusterState): PolicyObject[] => POLICY_KINDS.flatMap((k) => s.list(k) as readonly PolicyObject[]);

/**
 * The steps that build what the decisions read of the long-lived state, each one policy, namespace or
 * class (see warmUpInSlices, and fillTablesInSlices for the refill after a change).
 */
export function* tableSteps(s: ClusterState, ruleSettings?: ApiserverClients): Generator<() => void> {
  for (const p of policiesOf(s)) yield () => policyModel(p);
  yield () => hasFqdnRules(s);
  for (const ns of new Set([...s.namespacesWith('Pod'), ...s.namespacesWith('Service')])) yield () => indexAddressesOf(s, ns);
  // The Namespace label keys the policies read, per policy list (asked by the first Namespace relabel;
  // the warm-up's own Namespace updates change no label). Any key builds the lists' sets.
  yield () => namespaceLabelMatters(s, WARM_UP_LABEL_KEY);
  yield () => namespaceLabelReadByPeers(s, WARM_UP_LABEL_KEY);
  yield () => namespaceLabelReadFor(s, WARM_UP_LABEL_KEY, 'ingress');
  yield () => namespaceLabelReadFor(s, WARM_UP_LABEL_KEY, 'egress');
  yield () => namespaceLabelReadByL7(s, WARM_UP_LABEL_KEY);
  // The selecting list of each class, and its enforcement both ways under the state's settings and with
  // `enable-policy` switched between `default` and `always` (a cilium-config request asks every class's
  // list under the settings it brings: 15 ms of CPU at 50k pods for lists never asked so).
  const settings = policySettings(s);
  const switched: PolicySettings | undefined =
    settings.enablePolicy === 'never' ? undefined : { ...settings, enablePolicy: settings.enablePolicy === 'default' ? 'always' : 'default' };
  for (const ns of s.namespacesWith('Pod')) {
    for (const c of podClassesIn(s, ns)) {
      yield () => {
        const models = policiesSelecting(s, c.pods[0]!);
        for (const set of switched === undefined ? [settings] : [settings, switched]) {
          enforcementOfModels(models, 'ingress', set);
          enforcementOfModels(models, 'egress', set);
        }
      };
    }
  }
  // Which classes of each namespace the subject selectors of its policies and of the cluster-wide ones
  // select (policy/selection.ts classesSelectedIn), a namespace per step: kept by effective subject
  // selector, so the first cluster-wide `{}` request finds every namespace's answer (its CNP `{}`'s).
  for (const ns of s.namespacesWith('Pod')) yield () => warmClassSelections(s, ns);
  // Which classes switch ingress enforcement when a cilium-config request switches `enable-policy`
  // between `default` and `always` (policy/mesh-memo.ts ingressEnforcementChanged), a namespace per step:
  // the first such request judged every class (31 ms of CPU at 50k pods, issue 21).
  for (const ns of s.namespacesWith('Pod')) yield () => warmEnforcementSwitch(s, ns);
  // The ambient pods of each namespace and the judging plan over them (policy/mesh-memo.ts
  // warmAmbientPlan), a namespace per step, and the Cilium policies with L7 rules per policy list: what
  // a Namespace relabel's scans of the other namespaces read (17% and 14% of the first relabel's CPU
  // after the warm-up at 50k pods).
  for (const ns of s.namespacesWith('Pod')) yield () => warmAmbientPlan(s, ns);
  // (A kind and direction per step: 3-5 ms each at 50k pods.)
  for (const kind of CILIUM_POLICY_KINDS) for (const d of ['ingress', 'egress'] as const) yield () => l7PoliciesWith(s.list(kind), d);
  // The long-lived state's per-class reachability tables (DNS, API server) and the decision facts the
  // overlays derive from, a class per step: the first cluster-wide request judged every class from
  // cold tables (85-385 ms of CPU at 50k pods, the served p99 of issue 21). Kept across pod events.
  // A class whose key reads the node is filled once per node token: per node for host-network pods
  // (their identity is their node's), per API server node and "elsewhere" when the API server runs on
  // nodes, per node when a DNS backend is in the host network.
  const dns = dnsTablesFiller(s);
  const api = apiserverTablesFiller(s);
  const tokens = [dnsClassKey(s).nodeToken, apiserverClassKey(s).nodeToken].filter((f) => f !== undefined);
  const tokenOf = (p: Pod): string => (p.spec.hostNetwork === true ? (p.spec.nodeName ?? '') : tokens.map((f) => f(p)).join('\u0000'));
  for (const ns of s.namespacesWith('Pod')) {
    for (const c of podClassesIn(s, ns)) {
      for (const p of tokens.length > 0 || c.pods[0]!.spec.hostNetwork === true ? onePerToken(c.pods, tokenOf) : [c.pods[0]!]) {
        yield () => dns(p);
        yield () => api(p);
      }
    }
  }
  // The judging passes' plans over each namespace's classes for the DNS and API server class keys
  // (policy/classes.ts classPlan, kept per class array and key function; with the node token splits of
  // a key that reads the node): a cluster-wide request's pass assembles its plan from them.
  // The API server rule judges only the namespace's API server clients (a kept filter per class array,
  // under the decide's settings): their part and its plan too. At 50k pods the cluster-wide warm-up
  // decisions are cut before that rule runs, and the first CCNP {} filtered and planned 955 parts.
  for (const ns of s.namespacesWith('Pod')) {
    yield () => {
      const seg = podClassesIn(s, ns);
      classPlan(seg, dnsClassKey(s));
      classPlan(seg, apiserverClassKey(s));
      if (ruleSettings === undefined) return;
      const clients = apiserverClientsIn(s, seg, ruleSettings);
      if (clients !== seg && clients.length > 0) classPlan(clients, apiserverClassKey(s));
    };
  }
  // The cluster-wide pod arrays the first cluster-wide requests judge, each assembled once from the
  // namespaces' parts above, with the DNS and API server rules' parts of it and their plans: every pod
  // (a cilium-config change), an empty subject selector's pods (a new CCNP `{}`), and each cluster-wide
  // policy's (its update or DELETE), while what podsSelectedBy keeps stays within twice the cluster's
  // pods (it holds 200k). Assembling them cost the first such send 10-15 ms at 50k pods (joinPlans,
  // podsOfClasses in its profile).
  // Three steps per array (its selection, then each rule's part): up to 10 ms each at 50k pods.
  const everyPod = classifiedPods(s);
  yield () => dnsJudged(s, everyPod);
  yield () => apiserverJudged(s, everyPod, ruleSettings);
  let selected = 0;
  for (const policy of [EMPTY_SELECTOR_CCNP, ...s.list('CiliumClusterwideNetworkPolicy')]) {
    let pods: readonly Pod[] = [];
    yield () => {
      if (selected > 2 * everyPod.length) return;
      pods = podsSelectedBy(s, policy as PolicyObject);
      selected += pods.length;
    };
    yield () => dnsJudged(s, pods);
    yield () => apiserverJudged(s, pods, ruleSettings);
  }
  // The xDS clients of each namespace, then the cluster's (a pure function of the pods, kept per Pod
  // content and per namespace Pod list): the first cilium-config request built them in one piece.
  for (const ns of s.namespacesWith('Pod')) yield () => indexXdsClientsOf(s, ns);
  yield () => xdsClientClasses(s);
  // The class keys a few scans ask of every pod (the xDS clients by class without a node, a relabelled
  // namespace's pods by their ambient shape), kept per pod object, POD_KEYS_PER_STEP pods per step.
  // Last: the least worth of the steps (40-60 ms off the first Namespace relabel and cilium-config
  // requests at 50k pods, for 9 MB of heap), left out first when the warm-up reaches its cap. Not the
  // class key with the pod's own node: 14 MB more at 50k pods (a distinct key per class and node).
  for (const ns of s.namespacesWith('Pod')) {
    const pods = s.list('Pod', ns);
    for (let i = 0; i < pods.length; i += POD_KEYS_PER_STEP) yield () => { for (let j = i; j < Math.min(pods.length, i + POD_KEYS_PER_STEP); j++) fillPodKeys(pods[j]!); };
  }
}
/** A cluster-wide policy selecting every pod (what podsSelectedBy keeps is keyed by the selector alone). */
const EMPTY_SELECTOR_CCNP = {
  apiVersion: 'cilium.io/v2',
  kind: 'CiliumClusterwideNetworkPolicy',
  metadata: { name: 'meshguard-warm-up' },
  spec: { endpointSelector: {} },
};

/** `pods` without the DNS servers, planned as the DNS rule judges it. */
function dnsJudged(s: ClusterState, pods: readonly Pod[]): void {
  if (pods.length === 0) return;
  const groups = groupsOf(withoutDnsBackends(s, pods));
  if (groups !== undefined) classPlan(groups, dnsClassKey(s));
}

/** The API server clients of `pods`, planned as the API server rule judges them. */
function apiserverJudged(s: ClusterState, pods: readonly Pod[], settings: ApiserverClients | undefined): void {
  if (pods.length === 0 || settings === undefined) return;
  const groups = groupsOf(apiserverClients(s, pods, settings));
  if (groups !== undefined) classPlan(groups, apiserverClassKey(s));
}

/** Pods keyed per step (about 2 ms of work at 10 µs a pod). */
const POD_KEYS_PER_STEP = 200;

/**
 * Builds the table steps' tables (tableSteps: policy models, address indexes, Namespace-label key tables,
 * selecting lists, class keys, the DNS and API server answers and decision facts of every class) for
 * the state `state()` is when it starts, handing the event loop back whenever half of `sliceMs` is
 * spent; stops early when `shouldStop()` says so after a slice. True when every step ran. For serve's
 * refill in idle time after a change that empties those tables (server/table-refill.ts): what is still
 * there is looked up, not built again.
 */
export async function fillTablesInSlices(
  state: () => ClusterState,
  sliceMs = 20,
  shouldStop: () => boolean = () => false,
  now: () => number = () => performance.now(),
  settings?: ApiserverClients,
): Promise<boolean> {
  return inHalfSlices(
    tableSteps(state(), settings),
    (step) => {
      try {
        step();
      } catch {
        // an object the policy engine cannot read is the decisions' to report
      }
    },
    sliceMs,
    shouldStop,
    now,
  );
}

/**
 * Runs `step` over `items`, handing the event loop back once half of `sliceMs` is spent since the last
 * hand-back (a step started late in a slice may take up to a slice itself); false when `shouldStop()`
 * says so at a hand-back, true once every item is done.
 */
export async function inHalfSlices<T>(items: Iterable<T>, step: (item: T) => void, sliceMs: number, shouldStop: () => boolean, now: () => number): Promise<boolean> {
  let sliceStart = now();
  for (const item of items) {
    step(item);
    if (now() - sliceStart >= sliceMs / 2) {
      await new Promise((r) => setImmediate(r));
      if (shouldStop()) return false;
      sliceStart = now();
    }
  }
  return true;
}

/**
 * One warm-up decision, held to `sliceMs` by an evaluation budget on `clock` (the decision's own joins
 * it); true when it ran to its end, false when the budget cut it.
 */
export function decideWithin(decide: Decide, change: Change, state: ClusterState, sliceMs: number, clock: { now: () => number }): boolean {
  try {
    return withBudget(sliceMs, () => decide(change, state), { clock }).incomplete?.reason !== 'budget';
  } catch (e) {
    // decide() answers a spent budget itself; a Decide that does not (a test's) ends the same way.
    if (!(e instanceof BudgetExceeded)) throw e;
    return false;
  }
}

/**
 * Runs decide() over warmUpChanges(): whole rounds until `budgetMs` is spent, but never past `capMs`;
 * returns the number of decisions made. It hands the event loop back every `sliceMs`, so readiness
 * probes and metrics scrapes are answered while it runs. Budgets count the warm-up's own work, not the
 * time others spend in between. `state` is read again for every decision: a live state keeps changing
 * meanwhile. `now` is the clock the budgets are measured with (tests pass a fake one).
 *
 * One decision is itself held to `sliceMs` (an evaluation budget, src/core/budget.ts, that the decision's
 * own joins): on a large state one warm-up request can touch every pod (the CREATE of a cluster-wide
 * policy took 1.9 s at 50k pods, issue 21), and a decision cannot yield halfway. A decision starts only
 * in the first half of a slice, so the loop is held at most about one and a half `sliceMs` (plus what
 * the policy engine does between two budget checks). A cut decision is
 * discarded like any decision past its budget: decide() drops the memos of src/policy/memo.ts
 * (forgetCachedResults; an entry may be half-built) but the kept ones, keeping the pod classes, so a cut throws
 * away what the warm-up had filled before it; so a decision cut once is not made again in later rounds.
 * The price: on a state where single decisions take longer than a slice the warm-up warms the JIT and
 * the pod classes but not those decisions' memos; the per-class tables they read most (the DNS and API
 * server answers of every class and the base's decision facts the overlays derive from, which a cut
 * keeps, and the class keys, which it drops) are filled by the table steps instead, a class per step
 * (issue 21: the first cluster-wide request after start-up judged every class from cold tables, 85-385
 * ms of CPU at 50k pods), after the cluster-wide policies' decisions and again at the end of any round
 * that cut a decision after them (what the cut dropped is built again, the rest looked up).
 * What the first decisions would otherwise build in one piece (pod classes, policy models, address
 * indexes, selection tables, Namespace-label key tables) is built in steps of one pod, policy, class or
 * namespace, each step between two slice checks (see the comments below).
 */
export async function warmUpInSlices(
  decide: Decide,
  rules: readonly Rule[],
  state: () => ClusterState,
  budgetMs: number,
  capMs = 10 * budgetMs,
  sliceMs = 20,
  shouldStop: () => boolean = () => false,
  now: () => number = () => performance.now(),
): Promise<number> {
  const changes = warmUpChanges(rules, state());
  let spent = 0;
  let n = 0;
  let sliceStart = now();
  const yieldNow = async (): Promise<void> => {
    spent += now() - sliceStart;
    await new Promise((r) => setImmediate(r));
    sliceStart = now();
  };
  const used = (): number => spent + now() - sliceStart;
  const clock = { now };
  /** Whether the decision ran to its end (false: cut at its budget). */
  const decideOne = (c: Change): boolean => decideWithin(decide, c, state(), sliceMs, clock);
  /**
   * Runs `step` over `items`, handing the loop back whenever half a slice is spent; false if told to
   * stop, or (with `capped`) once past the cap. Half: these steps build the state's tables and allocate most of what the warm-up keeps, so
   * the major collections of a big state (20-40 ms pauses at 50k pods) come during them; a pause on top
   * of half a slice still leaves the loop held less than a slice plus a pause would.
   */
  const inSlices = async <T>(items: Iterable<T>, step: (item: T) => void, capped = false): Promise<boolean> => {
    for (const item of items) {
      step(item);
      if (now() - sliceStart >= sliceMs / 2) {
        await yieldNow();
        if (shouldStop() || (capped && used() > capMs)) return false;
      }
    }
    return true;
  };
  /** Runs `step` on each item, ignoring what it throws: an object the policy engine cannot read is the decisions' to report. */
  const tolerant = <T>(step: (item: T) => void) => (item: T): void => {
    try {
      step(item);
    } catch {
      // reported by the decisions
    }
  };
  // What the first decisions would build in one piece, between two budget checks, is built first in
  // slices, each step one pod, class, policy or namespace (issue 21):
  // - the pod classes: each pod's class key, then each namespace's grouping (the first decision that
  //   reads every pod grouped the whole cluster at once: 1.8 s at 50k pods; grouping one namespace of
  //   2,500 pods in one step held the loop 70-180 ms). The groupings are kept whatever a cut decision
  //   drops (policy/memo.ts pureMemo);
  // - the models of every policy (read whole by the L7 rules: 100-300 ms at 50k pods), and the
  //   selection table of which policies select each pod class, which fills the endpoint labels of
  //   every identity (the first CNP decision computed those for its namespace's classes in one piece:
  //   50-110 ms at 50k pods; which pods each policy selects is left to the decisions: built for every
  //   policy up front it raised peak RSS by ~20 MB at 50k pods for no shorter block), and the indexes
  //   of pod IPs and Service ClusterIPs, a namespace at a time (the first lookup built every namespace's: 50 ms at 50k pods),
  //   and the Namespace label keys the policies read (the first relabel of the request mix: 60 ms).
  //   A cut decision drops them all, so they are built after the decisions most often cut (the
  //   cluster-wide policies', below).
  const policies = (): PolicyObject[] => policiesOf(state());
  /** Warm-up time spent building what the decisions read (not counted against their budget). */
  let prepared = 0;
  /** Whether the tables are built and no decision was cut since (a cut drops them). */
  let tablesBuilt = false;
  const buildTables = async (): Promise<boolean> => {
    if (tablesBuilt) return true;
    tablesBuilt = true;
    const t = used();
    // Capped: unlike the grouping (which every decision needs), the tables are only a head start.
    const done = await inSlices(tableSteps(state(), decide.settings), tolerant((step: () => void) => step()), true);
    // Work the first decisions would have done: it counts against the cap, not the decisions' budget.
    prepared += used() - t;
    return done;
  };
  function* groupingSteps(): Generator<() => void> {
    const s = state();
    for (const ns of s.namespacesWith('Pod')) {
      for (const p of s.list('Pod', ns)) yield () => podClassId(p);
      yield () => podClassesIn(s, ns);
    }
    yield () => classifiedPods(s);
    // The first cluster-wide decision asks whether any CNP/CCNP has toFQDNs (fqdn-without-dns-proxy),
    // which reads every policy's models: built a policy per step here, it no longer builds them all in
    // one piece inside that decision (40 of its 75 ms of CPU at 50k pods). A cut decision drops them;
    // the table steps build them again.
    for (const p of policies()) yield () => policyModel(p);
    yield () => hasFqdnRules(s);
  }
  if (changes.length > 0 && !(await inSlices(groupingSteps(), (step) => step()))) return n;
  // The grouping is work the first decisions would have done: it counts against the cap, not against
  // the decisions' budget (on a loaded machine it could take the whole budget, and no decision would
  // warm the JIT).
  prepared = used();
  // The changes of cluster-wide policies first: they are the ones cut (their selection reads every
  // pod), and each cut drops the models and tables; those are built once they are done.
  changes.sort((a, b) => Number(b.kind === 'CiliumClusterwideNetworkPolicy') - Number(a.kind === 'CiliumClusterwideNetworkPolicy'));
  const lastWide = changes.findLast((c) => c.kind === 'CiliumClusterwideNetworkPolicy');
  if (lastWide === undefined && changes.length > 0 && !(await buildTables())) return n;
  // A decision cut at its budget drops every memo (see above), so the next decisions rebuild what
  // the earlier ones had filled (policy models of every policy: 100-300 ms at 50k pods, in one piece).
  // It is made once, for the JIT, and left out of the later rounds, which then keep what they fill.
  const cut = new Set<Change>();
  while (changes.length > 0 && used() - prepared < budgetMs) {
    if (cut.size === changes.length) break;
    for (const c of changes) {
      if (cut.has(c)) continue;
      if (!decideOne(c)) {
        cut.add(c);
        tablesBuilt = false;
      }
      n++;
      if (c === lastWide && !(await buildTables())) return n;
      if (used() > capMs) return n;
      // Handed back once half the slice is spent: the next decision may take its whole budget (a
      // slice), so one started late in a slice held the loop for up to two slices (45-60 ms at 10k
      // and 50k pods, with a collection); started in the first half, at most a slice and a half.
      if (now() - sliceStart >= sliceMs / 2) {
        await yieldNow();
        if (shouldStop()) return n;
      }
    }
    // A decision cut after the cluster-wide policies' ones (a CNP `{}` update at 50k pods) dropped part
    // of what the table steps built, and the cluster-wide ones, cut too, are not made again to rebuild
    // them: they run again at the end of the round (looked up where kept, built where dropped), so the
    // first requests after the warm-up do not find them gone (issue 21). A cut decision is not made in
    // later rounds: at most one rebuild per round that cut one.
    if (!tablesBuilt && !(await buildTables())) return n;
  }
  return n;
}
