// Which pods talk to the kube-apiserver, and whether policy lets them (apiserver-egress-missing).
//
// "Uses the API server" is judged from RBAC, not from the mere presence of a token: a pod whose service
// account is a subject of some RoleBinding/ClusterRoleBinding (directly, or through the
// `system:serviceaccounts:<ns>` group) was given API permissions for a reason. Pods the config names
// (CoreDNS, istiod by default) are added, since they use permissions granted in ways meshguard cannot
// always see (aggregated roles, bindings in other clusters' tooling).

import { apiserverEndpoints, matchesSelector, reachable, nodeAddresses, nodeIPs, perContentOf, policySettings } from '../policy/index.ts';
import type { ClusterState, Pod, RoleBinding } from '../state/types.ts';
import { podClassKey } from './egress-helpers.ts';
import type { RuleSettings } from './types.ts';
import { ScopedWeakMap } from '../state/request-scope.ts';

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

/** Does this pod use the API server (RBAC subject or a configured client)? */
export function usesApiserver(state: ClusterState, pod: Pod, settings: RuleSettings): boolean {
  const ns = pod.metadata.namespace ?? '';
  const sa = pod.spec.serviceAccountName || 'default';
  const idx = rbacIndex(state);
  if (idx.serviceAccounts.has(`${ns}/${sa}`) || idx.namespaces.has(ns)) return true;
  for (const c of settings.apiserverClients ?? []) {
    if (c.namespace !== undefined && c.namespace !== ns) continue;
    if (matchesSelector(c.selector, pod.metadata.labels ?? {})) return true;
  }
  return false;
}

export interface ApiserverTarget {
  /** Endpoint IPs (empty when the EndpointSlice is unknown: the kube-apiserver entity is used). */
  readonly ips: readonly string[];
  readonly port: number;
  /** Every endpoint IP is a Node address (the control plane runs on the nodes). */
  readonly onNodes: boolean;
}

// Keyed by what it is computed from (the default namespace's EndpointSlice list, the node address map,
// the kubernetes Service), which stay the same objects across requests that do not change them.
const targetCache = new ScopedWeakMap<object, ScopedWeakMap<object, { svc: unknown; target: ApiserverTarget }>>();

export function apiserverTarget(state: ClusterState): ApiserverTarget {
  const slices = state.list('EndpointSlice', 'default');
  const nodes = nodeAddresses(state);
  const svc = state.get('Service', 'default', 'kubernetes');
  let byNodes = targetCache.get(slices);
  if (!byNodes) targetCache.set(slices, (byNodes = new ScopedWeakMap()));
  const hit = byNodes.get(nodes);
  if (hit && hit.svc === svc) return hit.target;
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
  const nodes = new Set(nodeIPs(state));
  return { ips: ep.ips, port, onNodes: ep.ips.length > 0 && ep.ips.every((ip) => nodes.has(ip)) };
}

/** What apiserverReach reports when the endpoints are unknown and the kube-apiserver entity is judged. */
export const APISERVER_ENTITY = 'kube-apiserver';

/** The targets of the API server check: its endpoint IPs, or the kube-apiserver entity when they are unknown. */
export function apiserverTargets(state: ClusterState): readonly string[] {
  const t = apiserverTarget(state);
  return t.ips.length > 0 ? t.ips : [APISERVER_ENTITY];
}

/** The kube-apiserver endpoints (IPs, or the entity when they are unknown) the pod can reach on TCP. */
export function apiserverReach(state: ClusterState, pod: Pod): string[] {
  const t = apiserverTarget(state);
  if (t.ips.length === 0) return reachable(state, pod, { type: 'entity', entity: 'kube-apiserver' }, t.port, 'TCP') ? [APISERVER_ENTITY] : [];
  return t.ips.filter((ip) => reachable(state, pod, { type: 'ip', ip }, t.port, 'TCP'));
}

/** The egress rule that allows the API server, in the dialect of the policy kind (one line of flow YAML). */
export function apiserverAllowRule(kind: string | undefined, state: ClusterState): string {
  const t = apiserverTarget(state);
  const cidrSeesNodes = policySettings(state).cidrMatchesNodes;
  if (kind === 'NetworkPolicy' && t.ips.length > 0 && (!t.onNodes || cidrSeesNodes)) {
    const to = t.ips.map((ip) => `{ipBlock: {cidr: ${ip}${ip.includes(':') ? '/128' : '/32'}}}`).join(', ');
    return `egress: [{to: [${to}], ports: [{port: ${t.port}, protocol: TCP}]}]`;
  }
  const cnp = `egress: [{toEntities: [kube-apiserver], toPorts: [{ports: [{port: "${t.port}", protocol: TCP}]}]}]`;
  // ipBlock cannot select node addresses under Cilium's default policy-cidr-match-mode: use a CNP.
  return kind === 'NetworkPolicy' ? `a CiliumNetworkPolicy selecting the same pods with ${cnp} (ipBlock does not match API servers on node IPs)` : cnp;
}

/**
 * Class key for API server checks: when the API server runs on nodes, a pod on one of those nodes sees
 * it as `host`, elsewhere as `remote-node`; pods on other nodes share one class.
 */
export function apiserverClassKey(state: ClusterState): (pod: Pod) => string {
  const byIp = nodeAddresses(state);
  const apiNodes = new Set(apiserverEndpoints(state).ips.map((ip) => byIp.get(ip)).filter((n): n is string => n !== undefined));
  return (pod) => {
    const node = pod.spec.nodeName ?? '';
    return podClassKey(pod, apiNodes.has(node) ? node : apiNodes.size > 0 ? '*' : '');
  };
}
