// Wording shared by the rules: naming victims, listing names, and the allow rules a fix suggests. No
// semantics here (those live in src/policy and src/impact) and no caches.

import { apiserverPlacement, apiserverTarget, APISERVER_SOURCE_ENTITY, formatPolicyRef, nodeIPs, podRef, policySettings, type DenyMatch, type L7Rules } from '../policy/index.ts';
import type { ClusterState, Labels, LabelSelector, Pod } from '../core/objects.ts';
import type { IngressSubject, LossDecidedBy } from '../impact/index.ts';

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
  const placement = apiserverPlacement(ips, nodeIPs(state));
  const onNodes = placement === 'on-nodes' || placement === 'mixed';
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

// ---------- when a deny decides ----------

/**
 * The deny elements that decide a loss, as data for a message's params (parallel lists, one entry per
 * element): where each is written (`CiliumNetworkPolicy app/x egressDeny[1]`), what of it selected the
 * peer (`denyPeers`: `entity` / `cidr` / `endpoints` / `services` / `any`, with `denyValues`: the entity,
 * the CIDR (`0.0.0.0/0 except 10.0.0.0/8`), the selector as `k=v` pairs, or ``), and the port rules that
 * matched (`denyPorts`: `53/UDP`, `` for an element without toPorts, i.e. every port).
 * `defaultPods`/`defaultPodCount`: the other victims, whose flow no deny decides (default deny).
 */
export type DenyFix = {
  readonly denies: readonly string[];
  readonly denyPeers: readonly string[];
  readonly denyValues: readonly string[];
  readonly denyPorts: readonly string[];
  readonly defaultPods: readonly string[];
  readonly defaultPodCount: number;
};

function selectorText(sel: LabelSelector): string {
  const parts = Object.entries(sel.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of sel.matchExpressions ?? []) parts.push(`${e.key} ${e.operator}${e.values?.length ? ` (${e.values.join(', ')})` : ''}`);
  return parts.length > 0 ? parts.join(', ') : '{}';
}

/** The element as a message names it: `CiliumNetworkPolicy app/x egressDeny[1]` (`specs[2].egressDeny[1]` in a multi-rule object). */
export function denyElementName(d: DenyMatch): string {
  return `${formatPolicyRef(d.policy)} ${d.specIndex > 0 ? `specs[${d.specIndex}].` : ''}${d.section}[${d.index}]`;
}

/**
 * DenyFix params from the impact layer's decidedBy (undefined when no deny decides any victim: the allow
 * fix stands). The victims a deny decides are `decidedBy.byDeny`; a finding names those.
 */
export function denyFixOf(decidedBy: LossDecidedBy | undefined): DenyFix | undefined {
  if (!decidedBy || decidedBy.byDeny.length === 0 || decidedBy.denies.length === 0) return undefined;
  return { ...denyFixFrom(decidedBy.denies), defaultPods: decidedBy.byDefault.slice(0, NAMED_VICTIMS).map(podRef), defaultPodCount: decidedBy.byDefault.length };
}

/** DenyFix params from deny elements (no default-deny victims). */
export function denyFixFrom(denies: readonly DenyMatch[]): DenyFix {
  const first = denies.map((d) => d.peers[0] ?? { type: 'any' as const });
  return {
    denies: denies.map(denyElementName),
    denyPeers: first.map((p) => p.type),
    denyValues: first.map((p) =>
      p.type === 'entity' ? p.entity : p.type === 'cidr' ? `${p.cidr}${p.except.length > 0 ? ` except ${p.except.join(', ')}` : ''}` : p.type === 'endpoints' ? selectorText(p.selector) : '',
    ),
    denyPorts: denies.map((d) => d.ports.join(', ')),
    defaultPods: [],
    defaultPodCount: 0,
  };
}

/** What a deny fix keeps out of the deny: the peer in words, its addresses (for a CIDR's except) and the flow's port. */
export interface DenyTarget {
  /** "the DNS servers (kube-system pods k8s-app=kube-dns)". */
  readonly peer: string;
  /** Addresses to carve out of a CIDR deny (`/32` each); empty: say it in words. */
  readonly addresses?: readonly string[];
  /** "53/UDP". */
  readonly port: string;
  /** What a victim is, singular ("pod" when unset; "client" for istiod's clients). */
  readonly victim?: string;
}

/**
 * How to take the flow's port out of a deny's toPorts (`denyPorts`, e.g. `15000-15100/TCP`): a range
 * that holds it is split around it; else the port is dropped.
 */
function dropPort(denyPorts: string, flowPort: string): string {
  const port = Number.parseInt(flowPort, 10);
  for (const entry of denyPorts.split(', ')) {
    const [range = '', proto = ''] = entry.split('/');
    const [lo, hi] = range.split('-').map((x) => Number.parseInt(x, 10));
    if (lo === undefined || hi === undefined || Number.isNaN(lo) || Number.isNaN(hi) || !(port >= lo && port <= hi)) continue;
    const parts = [lo < port ? `${lo}${port - 1 > lo ? `-${port - 1}` : ''}` : '', hi > port ? `${port + 1}${hi > port + 1 ? `-${hi}` : ''}` : ''].filter((x) => x !== '');
    return `split its toPorts range ${entry} around ${port} (${parts.map((x) => `${x}/${proto}`).join(' and ')})`;
  }
  return `drop ${flowPort} from its toPorts (${denyPorts})`;
}

/** "CiliumNetworkPolicy app/x egressDeny[1] (toEntities cluster, every port)": the deny elements that decide. */
export function denyNames(p: DenyFix): string {
  return p.denies.map((d, i) => `${d} (${denyWhat(p, i)})`).join(', ');
}

function denyWhat(p: DenyFix, i: number): string {
  const to = (p.denies[i] ?? '').includes('ingressDeny[') ? 'from' : 'to';
  const value = p.denyValues[i] ?? '';
  const peer =
    p.denyPeers[i] === 'entity' ? `${to}Entities ${value}` :
    p.denyPeers[i] === 'cidr' ? `${to}${value.includes(' except ') ? 'CIDRSet' : 'CIDR'} ${value}` :
    p.denyPeers[i] === 'endpoints' ? `${to}Endpoints ${value}` :
    p.denyPeers[i] === 'services' ? 'toServices' : 'every peer';
  return `${peer}, ${p.denyPorts[i] ? `on ${p.denyPorts[i]}` : 'every port'}`;
}

/**
 * The fix when deny elements decide: for each, how to narrow it so it leaves `target` alone (or remove
 * it); never an allow, which a deny overrides. When some victims are decided by default deny instead,
 * `allowForOthers` (the rule's allow fix) is said for those.
 */
export function denyFixText(p: DenyFix, target: DenyTarget, allowForOthers?: string): string {
  const steps = p.denies.map((d, i) => {
    const to = d.includes('ingressDeny[') ? 'from' : 'to';
    const value = p.denyValues[i] ?? '';
    let how: string;
    switch (p.denyPeers[i]) {
      case 'entity':
        how = `replace ${value} in its ${to}Entities by the peers it means to deny (${value} covers ${target.peer})`;
        break;
      case 'cidr': {
        const except = (target.addresses ?? []).map((a) => `${a}${a.includes(':') ? '/128' : '/32'}`);
        how = except.length > 0 ? `add ${except.join(', ')} to the except list of ${value.split(' ')[0]} (a ${to}CIDRSet entry)` : `carve ${target.peer} out of ${value.split(' ')[0]} with a ${to}CIDRSet except`;
        break;
      }
      case 'endpoints':
        how = `narrow its ${to}Endpoints selector (${value}) so it no longer selects ${target.peer}`;
        break;
      case 'services':
        how = `take ${target.peer} out of its toServices`;
        break;
      default:
        how = `give it a ${to}Endpoints/${to}CIDRSet peer that leaves out ${target.peer}`;
    }
    const ports = p.denyPorts[i] ? `, or ${dropPort(p.denyPorts[i]!, target.port)}` : `, or limit it with toPorts to the ports it means to deny (not ${target.port})`;
    return `narrow ${d}: ${how}${ports}, or remove the element`;
  });
  const victim = target.victim ?? 'pod';
  const others =
    p.defaultPodCount > 0 && allowForOthers
      ? `; for the other ${p.defaultPodCount} ${victim}${p.defaultPodCount === 1 ? '' : 's'} (${namesAndMore(p.defaultPods, p.defaultPodCount)}), no deny decides: ${allowForOthers}`
      : '';
  return `${steps.join('; ')} (an allow does not help: a Cilium deny wins over every allow)${others}`;
}
