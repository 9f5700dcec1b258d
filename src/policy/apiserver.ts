// Which pods talk to the kube-apiserver, where it is, and whether policy lets them reach it.
//
// "Uses the API server" is judged from RBAC, not from the mere presence of a token: a pod whose service
// account is a subject of some RoleBinding/ClusterRoleBinding (directly, or through the
// `system:serviceaccounts:<ns>` group) was given API permissions for a reason. Pods the config names
// (CoreDNS, istiod by default) are added, since they use permissions granted in ways meshguard cannot
// always see (aggregated roles, bindings in other clusters' tooling).

import type { ClusterState, LabelSelector, Pod, RoleBinding } from '../core/objects.ts';
import { isEphemeral, markEphemeral, ScopedWeakMap } from '../state/request-scope.ts';
import { canonicalIp } from './cidr.ts';
import { apiserverEndpoints, endpointSlicesRead, nodeAddresses, nodeIPs } from './cluster.ts';
import { apiserverClientTokens, apiserverTargetCache, perContentOf, perRevision } from './memo.ts';
import { fromBasePass, ipIdentity, reachable, serviceByClusterIp } from './reachability.ts';
import { baseTablesFiller, memoReach, reachAsker, type ReachAsker, type ReachQuestion } from './reach-memo.ts';
import type { Target } from './types.ts';
import { apiserverClassKey } from './identity.ts';
import { fillSegmentKept, filterPodsKept, outsideClassesOf, type PodClass } from './classes.ts';
import { matchesSelector } from './selectors.ts';

interface RbacIndex {
  /** "namespace/serviceaccount" subjects. */
  readonly serviceAccounts: ReadonlySet<string>;
  /** Namespaces whose every service account is a subject (group system:serviceaccounts:<ns>). */
  readonly namespaces: ReadonlySet<string>;
}

const NS_GROUP_PREFIX = 'system:serviceaccounts:';

function addSubjects(binding: RoleBinding, clusterScoped: boolean, sas: Set<string>, nss: Set<string>): void {
  for (const s of binding.subjects ?? []) {
    if (!s || typeof s.name !== 'string') continue;
    if (s.kind === 'ServiceAccount') {
      // In a RoleBinding the subject namespace defaults to the binding's namespace; a
      // ClusterRoleBinding SA subject without a namespace is invalid and grants nothing.
      const ns = s.namespace || (clusterScoped ? undefined : binding.metadata.namespace);
      if (ns) sas.add(`${ns}/${s.name}`);
    } else if (s.kind === 'Group' && s.name.startsWith(NS_GROUP_PREFIX) && s.name.length > NS_GROUP_PREFIX.length) {
      // Only the per-namespace group: `system:serviceaccounts` / `system:authenticated` are bound to
      // discovery roles in every cluster and say nothing about a pod needing the API server.
      nss.add(s.name.slice(NS_GROUP_PREFIX.length));
    }
  }
}

// Kept per content of the two kinds it reads, not per state revision: pod events, the bulk of a live
// cluster's, keep it. Rebuilt after every pod event it was the largest cost of pod churn (50k pods, one
// pod change every 10 requests: 165 of the 240 ms added to 2,400 requests' decide()).
export function rbacIndex(state: ClusterState): RbacIndex {
  return perContentOf(state, 'rbacIndex', ['RoleBinding', 'ClusterRoleBinding'], () => {
    const sas = new Set<string>();
    const nss = new Set<string>();
    for (const b of state.list('RoleBinding')) addSubjects(b, false, sas, nss);
    for (const b of state.list('ClusterRoleBinding')) addSubjects(b, true, sas, nss);
    return { serviceAccounts: sas, namespaces: nss };
  });
}

/** Clients of the API server the configuration names (RuleSettings.apiserverClients). */
export interface ApiserverClients {
  readonly apiserverClients?: readonly { readonly namespace?: string; readonly selector: LabelSelector }[];
}
/** Does this pod use the API server (RBAC subject or a configured client)? */
export function usesApiserver(state: ClusterState, pod: Pod, settings: ApiserverClients): boolean {
  return apiserverClientTest(state, settings)(pod);
}

/** usesApiserver for many pods of one state: the RBAC index looked up once. */
export function apiserverClientTest(state: ClusterState, settings: ApiserverClients): (pod: Pod) => boolean {
  const idx = rbacIndex(state);
  const clients = settings.apiserverClients ?? [];
  return (pod) => {
    const ns = pod.metadata.namespace ?? '';
    if (idx.namespaces.has(ns) || idx.serviceAccounts.has(`${ns}/${pod.spec.serviceAccountName || 'default'}`)) return true;
    for (const c of clients) {
      if (c.namespace !== undefined && c.namespace !== ns) continue;
      if (matchesSelector(c.selector, pod.metadata.labels ?? {})) return true;
    }
    return false;
  };
}

/**
 * The pods of `pods` that use the API server in `state` (filterPods with apiserverClientTest), kept per
 * RBAC index and configured clients, per namespace (filterPodsKept): a class's answer reads its
 * namespace, service account and labels, the RBAC index (RoleBindings and ClusterRoleBindings, kept per
 * their content) and the configured clients, never another pod, so a pod event elsewhere keeps each
 * namespace's answer and the answer for every pod of the state is assembled from them.
 */
export function apiserverClients(state: ClusterState, pods: readonly Pod[], settings: ApiserverClients): readonly Pod[] {
  const index = rbacIndex(state);
  const clients = clientsOf(settings);
  return filterPodsKept(pods, clientsToken(index, clients), apiserverClientTest(state, settings));
}
const NO_CLIENTS: NonNullable<ApiserverClients['apiserverClients']> = [];
/** The configured clients, one shared array when there are none (what is kept per it is then shared by every config). */
const clientsOf = (settings: ApiserverClients): NonNullable<ApiserverClients['apiserverClients']> =>
  settings.apiserverClients !== undefined && settings.apiserverClients.length > 0 ? settings.apiserverClients : NO_CLIENTS;

/**
 * apiserverClients' kept answer for one namespace's classes (`seg`, podClassesIn), filled as a later
 * apiserverClients over any pods holding them finds it, and returned (for warm-ups: a namespace per step).
 */
export function apiserverClientsIn(state: ClusterState, seg: readonly PodClass[], settings: ApiserverClients): readonly PodClass[] {
  return fillSegmentKept(seg, clientsToken(rbacIndex(state), clientsOf(settings)), apiserverClientTest(state, settings));
}

/** One object per (RBAC index, configured clients array). */
function clientsToken(index: RbacIndex, clients: object): object {
  let byClients = apiserverClientTokens.get(index);
  if (byClients === undefined) apiserverClientTokens.set(index, (byClients = new WeakMap()));
  let t = byClients.get(clients);
  if (t === undefined) {
    byClients.set(clients, (t = {}));
    if (isEphemeral(index) || isEphemeral(clients)) markEphemeral(t); // a request's own: what is kept per it goes with the request
  }
  return t;
}

/**
 * Where the kube-apiserver runs, from its `default/kubernetes` endpoint addresses and the Nodes'
 * addresses (compared canonically): every endpoint on a node (kubeadm, kind, k3s), none on a node
 * (managed control planes: EKS, GKE, AKS), some of each, or unknown when the state has no endpoints or
 * no nodes. The one definition behind `ApiserverTarget.onNodes` and `controlPlaneOutsideNodes`.
 */
export type ApiserverPlacement = 'on-nodes' | 'outside-nodes' | 'mixed' | 'unknown';

export function apiserverPlacement(apiserverIps: readonly string[], nodeIps: Iterable<string>): ApiserverPlacement {
  const nodes = new Set<string>();
  for (const ip of nodeIps) nodes.add(canonicalIp(ip) ?? ip);
  if (apiserverIps.length === 0 || nodes.size === 0) return 'unknown';
  let on = 0;
  for (const ip of apiserverIps) if (nodes.has(canonicalIp(ip) ?? ip)) on++;
  return on === apiserverIps.length ? 'on-nodes' : on === 0 ? 'outside-nodes' : 'mixed';
}

export interface ApiserverTarget {
  /** Endpoint IPs (empty when the EndpointSlice is unknown: the kube-apiserver entity is used). */
  readonly ips: readonly string[];
  readonly port: number;
  readonly placement: ApiserverPlacement;
  /**
   * Some endpoint IP is a Node address (placement 'on-nodes' or 'mixed'): its connections carry the
   * node's identity, and a CIDR/ipBlock selects it only with policy-cidr-match-mode=nodes. Exactly the
   * complement of controlPlaneOutsideNodes(`auto`) when the placement is known.
   */
  readonly onNodes: boolean;
}

export function apiserverTarget(state: ClusterState): ApiserverTarget {
  const slices = state.list('EndpointSlice', 'default');
  const nodes = nodeAddresses(state);
  const svc = state.get('Service', 'default', 'kubernetes');
  let byNodes = apiserverTargetCache.get(slices);
  if (!byNodes) apiserverTargetCache.set(slices, (byNodes = new ScopedWeakMap()));
  const hit = byNodes.get(nodes);
  if (hit && hit.svc === svc) return hit.target as ApiserverTarget;
  const target = computeApiserverTarget(state, apiserverEndpoints(state));
  byNodes.set(nodes, { svc, target });
  return target;
}

function computeApiserverTarget(state: ClusterState, ep: { ips: readonly string[]; ports: readonly number[] }): ApiserverTarget {
  let port = ep.ports[0];
  if (port === undefined) {
    const svc = state.get('Service', 'default', 'kubernetes');
    const sp = svc?.spec.ports?.[0];
    port = typeof sp?.targetPort === 'number' ? sp.targetPort : (sp?.port ?? 443);
  }
  const placement = apiserverPlacement(ep.ips, nodeIPs(state));
  return { ips: ep.ips, port, placement, onNodes: placement === 'on-nodes' || placement === 'mixed' };
}

/** What apiserverReach reports when the endpoints are unknown and the kube-apiserver entity is judged. */
export const APISERVER_ENTITY = 'kube-apiserver';

/** The targets of the API server check: its endpoint IPs, or the kube-apiserver entity when they are unknown. */
export function apiserverTargets(state: ClusterState): readonly string[] {
  const t = apiserverTarget(state);
  return t.ips.length > 0 ? t.ips : [APISERVER_ENTITY];
}

/** The kube-apiserver endpoints (IPs, or the entity when they are unknown) the pod can reach on TCP. */
export function apiserverReach(state: ClusterState, pod: Pod): readonly string[] {
  // Per API server class (apiserverClassKey) and state revision; an overlay's from its base where it cannot differ.
  return memoReach(APISERVER_REACH, state, pod);
}

const APISERVER_REACH: ReachQuestion<readonly string[]> = {
  name: 'apiserverReach',
  destsName: 'apiserverReach:dests',
  dests: (state) => perRevision(state, 'apiserverDestPods', () => apiserverDestPods(state)),
  // The endpoint pods and the EndpointSlices read by name; when an endpoint is a Service ClusterIP (no
  // endpoint pods listed) the Pod kind's content token: the table is then kept per pod content only.
  reads: (state) => [...(perRevision(state, 'apiserverDestPods', () => apiserverDestPods(state)) ?? [state.contentToken('Pod')]), ...endpointSlicesRead(state)],
  compute: (state, pod) => computeApiserverReach(state, pod),
  keyer: (state) => {
    const dests = perRevision(state, 'apiserverDestPods', () => apiserverDestPods(state));
    if (dests === undefined) return noKey;
    const fn = perRevision(state, 'apiserverClassKeyFn', () => apiserverClassKey(state));
    return dests.length === 0 ? fn : outsideClassesOf(dests, fn);
  },
  deriver: (state, base, changed) => {
    const t = apiserverTarget(state);
    const pass = fromBasePass(state, base, changed);
    if (t.ips.length === 0) {
      const entity: Target = { type: 'entity', entity: 'kube-apiserver' };
      return (pod, key) => {
        const r = pass.reach(pod, entity, t.port, 'TCP', key, 'apiserver', 'entity');
        return r === undefined ? undefined : r ? [APISERVER_ENTITY] : [];
      };
    }
    const targets = t.ips.map((ip): Target => ({ type: 'ip', ip }));
    return (pod, key) => {
      const out: string[] = [];
      for (let i = 0; i < targets.length; i++) {
        const ip = t.ips[i]!;
        const r = pass.reach(pod, targets[i]!, t.port, 'TCP', key, 'apiserver', ip);
        if (r === undefined) return undefined;
        if (r) out.push(ip);
      }
      return out;
    };
  },
};

const noKey = (): undefined => undefined;

/** Fills the long-lived state's API server table and decision facts for a pod's class (baseTablesFiller). For many pods of one state. */
export function apiserverTablesFiller(state: ClusterState): (pod: Pod) => void {
  return baseTablesFiller(APISERVER_REACH, state);
}

/** apiserverReach(state, ·) for many pods of one state: see reachAsker. */
export function apiserverReachAsker(state: ClusterState): ReachAsker<readonly string[]> {
  return reachAsker(APISERVER_REACH, state);
}

/**
 * The pods whose ingress decides whether the API server endpoints are reached (an endpoint address that
 * is a pod's), or undefined when an endpoint is a Service ClusterIP (judged at the Service's backends).
 */
function apiserverDestPods(state: ClusterState): readonly Pod[] | undefined {
  const out: Pod[] = [];
  for (const ip of apiserverTarget(state).ips) {
    if (serviceByClusterIp(state, ip)) return undefined;
    const pod = ipIdentity(state, ip, undefined).pod;
    if (pod) out.push(pod);
  }
  return out;
}

function computeApiserverReach(state: ClusterState, pod: Pod): readonly string[] {
  const t = apiserverTarget(state);
  if (t.ips.length === 0) return reachable(state, pod, { type: 'entity', entity: 'kube-apiserver' }, t.port, 'TCP') ? [APISERVER_ENTITY] : [];
  return t.ips.filter((ip) => reachable(state, pod, { type: 'ip', ip }, t.port, 'TCP'));
}
/**
 * Is the kube-apiserver outside the nodes (managed control planes: EKS, GKE, AKS)? The config's
 * `controlPlane` setting decides when it is not `auto`; `auto` is apiserverPlacement 'outside-nodes'
 * (unknown and mixed count as "not outside", so no finding rests on a guess).
 */
export function controlPlaneOutsideNodes(
  setting: 'auto' | 'outside-nodes' | 'on-nodes' | undefined,
  apiserverIps: readonly string[],
  nodeIps: readonly string[],
): boolean {
  if (setting === 'outside-nodes') return true;
  if (setting === 'on-nodes') return false;
  return apiserverPlacement(apiserverIps, nodeIps) === 'outside-nodes';
}
