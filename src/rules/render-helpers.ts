// Wording shared by the rules: naming victims, listing names, and the allow rules a fix suggests. No
// semantics here (those live in src/policy and src/impact) and no caches.

import { apiserverTarget, APISERVER_SOURCE_ENTITY, canonicalIp, nodeAddresses, podRef, policySettings, type L7Rules } from '../policy/index.ts';
import type { ClusterState, Labels, Pod } from '../core/objects.ts';
import type { IngressSubject } from '../impact/index.ts';

/** How many victims a finding names before saying "and N more". */
export const MAX_VICTIMS = 5;

/** The first few pod names and the total, for Finding.victims / victimCount. */
export function victimsOf(pods: readonly Pod[]): { victims: string[]; victimCount: number } {
  return { victims: pods.slice(0, MAX_VICTIMS).map(podRef), victimCount: pods.length };
}

/** "blue/httpbin-1, blue/httpbin-2 and 3 more" */
export function describeVictims(pods: readonly Pod[]): string {
  const names = pods.slice(0, 3).map(podRef);
  const rest = pods.length - names.length;
  return rest > 0 ? `${names.join(', ')} and ${rest} more` : names.join(', ');
}
/** "a, b, c and 4 more" */
export function listNames(names: readonly string[], max = 3): string {
  const shown = names.slice(0, max);
  const rest = names.length - shown.length;
  return rest > 0 ? `${shown.join(', ')} and ${rest} more` : shown.join(', ');
}
/**
 * The DNS server a fix allows, as data for a message's params: its pod labels as `key=value` (label keys
 * and values never hold `=`), its namespace and port (kube-system/kube-dns, 53 when unknown).
 */
export type DnsAllow = { readonly dnsLabels: readonly string[]; readonly dnsNamespace: string; readonly dnsPort: number };
export function dnsAllowOf(target: { selector: Labels; namespace: string; port: number } | undefined): DnsAllow {
  const selector = target?.selector ?? { 'k8s-app': 'kube-dns' };
  return { dnsLabels: Object.entries(selector).map(([k, v]) => `${k}=${v}`), dnsNamespace: target?.namespace ?? 'kube-system', dnsPort: target?.port ?? 53 };
}
/** The words of a DnsAllow: the egress rule in the dialect of the policy kind, one line of flow YAML. */
export function dnsAllowText(kind: string | undefined, a: DnsAllow, withDnsRules: boolean): string {
  const labels = a.dnsLabels.map((kv) => {
    const i = kv.indexOf('=');
    return [kv.slice(0, i), kv.slice(i + 1)] as const;
  });
  const { dnsNamespace: namespace, dnsPort: port } = a;
  if (kind === 'NetworkPolicy') {
    const podSel = labels.map(([k, v]) => `${k}: ${v}`).join(', ');
    return (
      `egress: [{to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ${namespace}}}, ` +
      `podSelector: {matchLabels: {${podSel}}}}], ports: [{port: ${port}, protocol: UDP}, {port: ${port}, protocol: TCP}]}]`
    );
  }
  const epSel = [`"k8s:io.kubernetes.pod.namespace": ${namespace}`, ...labels.map(([k, v]) => `"k8s:${k}": ${v}`)].join(', ');
  const rules = withDnsRules ? `, rules: {dns: [{matchPattern: "*"}]}` : '';
  return (
    `egress: [{toEndpoints: [{matchLabels: {${epSel}}}], ` +
    `toPorts: [{ports: [{port: "${port}", protocol: UDP}, {port: "${port}", protocol: TCP}]${rules}}]}]`
  );
}
/**
 * How a fix can allow the API server, as data for a message's params: `ip-block` (a NetworkPolicy with
 * the endpoint IPs), `entity` (a CNP's toEntities), `cnp-instead` (a NetworkPolicy cannot: ipBlock does
 * not match API servers on node IPs under Cilium's default policy-cidr-match-mode).
 */
export type ApiserverAllow = { readonly allowForm: 'ip-block' | 'entity' | 'cnp-instead'; readonly port: number; readonly ips: readonly string[] };
export function apiserverAllowOf(kind: string | undefined, state: ClusterState): ApiserverAllow {
  const t = apiserverTarget(state);
  const cidrSeesNodes = policySettings(state).cidrMatchesNodes;
  if (kind === 'NetworkPolicy' && t.ips.length > 0 && (!t.onNodes || cidrSeesNodes)) return { allowForm: 'ip-block', port: t.port, ips: t.ips };
  return { allowForm: kind === 'NetworkPolicy' ? 'cnp-instead' : 'entity', port: t.port, ips: t.ips };
}
/** The words of an ApiserverAllow: one line of flow YAML (or what to write instead). */
export function apiserverAllowText(a: ApiserverAllow): string {
  if (a.allowForm === 'ip-block') {
    const to = a.ips.map((ip) => `{ipBlock: {cidr: ${ip}${ip.includes(':') ? '/128' : '/32'}}}`).join(', ');
    return `egress: [{to: [${to}], ports: [{port: ${a.port}, protocol: TCP}]}]`;
  }
  const cnp = `egress: [{toEntities: [kube-apiserver], toPorts: [{ports: [{port: "${a.port}", protocol: TCP}]}]}]`;
  return a.allowForm === 'cnp-instead' ? `a CiliumNetworkPolicy selecting the same pods with ${cnp} (ipBlock does not match API servers on node IPs)` : cnp;
}
/** "HTTP", "Kafka" or the l7proto name, for messages. */
export function l7Kind(rules: L7Rules | undefined): string {
  if ((rules?.http?.length ?? 0) > 0) return 'HTTP';
  if ((rules?.kafka?.length ?? 0) > 0) return 'Kafka';
  return rules?.l7proto ?? 'L7';
}

export function portLabel(port: number | undefined): string {
  return port === undefined ? 'all ports' : `port ${port}`;
}

/** How many victims a message names before "and N more" (describeVictims). */
export const NAMED_VICTIMS = 3;

/** The victims as message params: the names a message shows (at most three) and how many there are. */
export function victimParams(pods: readonly Pod[]): { pods: string[]; podCount: number } {
  return { pods: pods.slice(0, NAMED_VICTIMS).map(podRef), podCount: pods.length };
}

/** "a, b, c and 4 more" from the names shown and the total: victimParams' params as describeVictims words them. */
export function namesAndMore(shown: readonly string[], total: number): string {
  const rest = total - shown.length;
  return rest > 0 ? `${shown.join(', ')} and ${rest} more` : shown.join(', ');
}

/**
 * The ingress rule that lets the kube-apiserver (`sources`: its endpoint IPs, or the entity) in on TCP
 * `ports`, in the dialect of the policy kind (one line of flow YAML). A NetworkPolicy can only name it by
 * ipBlock, which matches node addresses only with policy-cidr-match-mode=nodes: then a CNP is suggested.
 */
export function apiserverIngressAllowRule(kind: string | undefined, state: ClusterState, ports: readonly number[], sources: readonly string[]): string {
  const cnp = `ingress: [{fromEntities: [kube-apiserver], toPorts: [{ports: [${ports.map((p) => `{port: "${p}", protocol: TCP}`).join(', ')}]}]}]`;
  if (kind !== 'NetworkPolicy') return cnp;
  const ips = sources.filter((s) => s !== APISERVER_SOURCE_ENTITY);
  const onNodes = ips.some((ip) => nodeAddresses(state).has(canonicalIp(ip) ?? ip));
  if (ips.length > 0 && (!onNodes || policySettings(state).cidrMatchesNodes)) {
    const from = ips.map((ip) => `{ipBlock: {cidr: ${ip}${ip.includes(':') ? '/128' : '/32'}}}`).join(', ');
    return `ingress: [{from: [${from}], ports: [${ports.map((p) => `{port: ${p}, protocol: TCP}`).join(', ')}]}]`;
  }
  return `a CiliumNetworkPolicy selecting the same pods with ${cnp} (ipBlock does not match API servers on node IPs)`;
}

/** The distinct values, in first-seen order. */
export function uniq<T>(xs: Iterable<T>): T[] {
  return [...new Set(xs)];
}

/** A request that is not a policy write, as a message names it: "deleting <request>", "relabelling namespace x", ... */
export function describeIngressSubject(subject: Exclude<IngressSubject, { by: 'policy' }>, request: string): string {
  switch (subject.by) {
    case 'delete':
      return `deleting ${request}`;
    case 'namespace':
      return `relabelling namespace ${subject.namespace}`;
    case 'cilium-config':
      return 'this cilium-config change';
  }
}
