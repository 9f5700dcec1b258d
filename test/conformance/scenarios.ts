// Seeded random scenarios for the differential test against Cilium's own policy code
// (tools/cilium-oracle): namespaces, pods, CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy /
// NetworkPolicy objects and flows, as plain Kubernetes objects both sides read.
//
// The generator stays inside what both sides model from the objects alone. Constructs left out, and
// why, are listed in EXCLUDED (printed by `make conformance`, kept in docs/semantics.md).

export interface ScenarioNamespace {
  readonly name: string;
  readonly labels: Record<string, string>;
}
export interface ScenarioPod {
  readonly name: string;
  readonly namespace: string;
  readonly labels: Record<string, string>;
  readonly serviceAccount: string;
  readonly ip: string;
  readonly ports: { name: string; port: number; protocol: 'TCP' | 'UDP' }[];
  /** Ports named on an init container only. */
  readonly initPorts: { name: string; port: number; protocol: 'TCP' | 'UDP' }[];
}
export type FlowEnd = { pod: string } | { entity: string } | { ip: string };
/**
 * A flow. From a pod: egress compared, and ingress when the destination is a pod. From an entity or a
 * world address (`host`, `remote-node`, `kube-apiserver`, an IP) to a pod: ingress compared only (a
 * reserved identity has no egress policy of its own).
 */
export interface ScenarioFlow {
  readonly from: FlowEnd;
  readonly to: FlowEnd;
  readonly port: number;
  readonly protocol: 'TCP' | 'UDP' | 'SCTP';
}
export interface Scenario {
  readonly id: string;
  /** Both address families enabled (cilium-config enable-ipv6): IPv4 world addresses are world-ipv4. */
  readonly dualStack: boolean;
  /** cilium-config enable-policy. */
  readonly enablePolicy: 'default' | 'always' | 'never';
  readonly namespaces: ScenarioNamespace[];
  readonly pods: ScenarioPod[];
  readonly policies: Record<string, unknown>[];
  readonly flows: ScenarioFlow[];
}

/** Constructs the generator leaves out, with the reason. */
export const EXCLUDED: readonly { construct: string; why: string }[] = [
  { construct: 'toFQDNs', why: 'needs the DNS proxy and its learned IPs (datapath state, not policy objects); rules.dns are generated (port-rule mutations), where they must leave the L3/L4 verdict alone' },
  { construct: 'L7 rules other than http (kafka, l7proto), serverNames, listeners, auth', why: 'decided by Envoy after the L3/L4 verdict; the oracle reads the L3/L4 map state only (http rules are generated, to check that they leave the L3/L4 verdict alone)' },
  { construct: 'toServices, toGroups, CiliumCIDRGroup (cidrGroupRef/cidrGroupSelector)', why: 'resolved by agent watchers from other objects (Services, cloud groups, CIDR groups) before the policy repository sees them' },
  { construct: 'fromRequires/toRequires', why: 'deprecated; meshguard does not model them (docs: Not modelled)' },
  { construct: 'nodeSelector, toNodes/fromNodes, host firewall', why: 'host policies apply to the node, not to pods (meshguard: Not modelled)' },
  { construct: 'ICMP flows (icmps rules are generated, flows are TCP/UDP/SCTP)', why: 'meshguard answers TCP/UDP/SCTP flows only' },
  { construct: 'a pod reaching its own address, host-network pods, Service ClusterIPs', why: 'decided outside the policy repository (loopback, node identity, service translation)' },
  { construct: 'entities health, ingress, init, unmanaged as flow sources', why: 'meshguard judges a non-pod source by its address (evaluateIngressFromAddress), and these identities have none a state shows' },
  { construct: 'policy tiers, priorities and pass verdicts (Cilium 1.20)', why: 'newer than the CRD fields meshguard reads' },
  { construct: 'an API server outside the nodes (managed control planes)', why: 'the oracle has the reserved kube-apiserver identity only (7: kube-apiserver on a remote node); scenarios put the API server on node-b, the only placement both sides model alike' },
  { construct: 'entity:world as a destination', why: 'meshguard reads it as a world peer of unknown address family; a dual-stack agent gives IPv4 addresses world-ipv4 (compared) and never the bare world identity' },
  { construct: 'one label key under two spellings in a matchLabels (app and any:app)', why: 'ambiguous: the agent keeps whichever its map iteration yields' },
];

// ---------- seeded PRNG ----------

export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  /** mulberry32: small, fast, good enough for test generation, reproducible from the seed. */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }
  some<T>(xs: readonly T[], min: number, max: number): T[] {
    const n = this.int(min, max);
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(this.pick(xs));
    return out;
  }
}

// ---------- the universe ----------

const NAMESPACES = ['ns-a', 'ns-b', 'ns-c'] as const;
const APPS = ['web', 'api', 'db'] as const;
const TIERS = ['fe', 'be'] as const;
const TEAMS = ['red', 'blue'] as const;
/** Named container ports per app: one identity never maps a name to two ports. */
const APP_PORTS: Record<(typeof APPS)[number], ScenarioPod['ports']> = {
  web: [{ name: 'http', port: 80, protocol: 'TCP' }, { name: 'metrics', port: 9000, protocol: 'TCP' }],
  api: [{ name: 'http', port: 8080, protocol: 'TCP' }, { name: 'dns', port: 53, protocol: 'UDP' }],
  db: [{ name: 'db', port: 5432, protocol: 'TCP' }, { name: 'dns', port: 53, protocol: 'UDP' }],
};
const FILTERED_KEYS = ['pod-template-hash', 'statefulset.kubernetes.io/pod-name', 'app.kubernetes.io/name', 'kubernetes.io/role', 'controller-revision-hash', 'io.cilium.k8s.policy.serviceaccount'] as const;
const FILTERED_VALUES = ['v1', 'v2'] as const;
const QUERY_PORTS = [53, 80, 443, 5432, 8080, 8081, 9000] as const;
const PROTOCOLS = ['TCP', 'UDP', 'SCTP'] as const;
const WORLD_IPS = ['1.1.1.1', '8.8.8.8', '192.0.2.10', '192.0.2.200', '203.0.113.5'] as const;
const CIDRS = ['0.0.0.0/0', '1.1.1.0/24', '8.8.8.8/32', '192.0.2.0/24', '203.0.113.0/24', '10.0.0.0/8'] as const;
const EXCEPTS: Record<string, string[]> = {
  '0.0.0.0/0': ['192.0.2.0/24', '8.8.8.8/32', '10.0.0.0/8'],
  '1.1.1.0/24': ['1.1.1.1/32'],
  '192.0.2.0/24': ['192.0.2.128/25', '192.0.2.10/32'],
  '203.0.113.0/24': ['203.0.113.0/28'],
  '10.0.0.0/8': ['10.1.0.0/16'],
};
const ENTITIES = ['all', 'world', 'world-ipv4', 'cluster', 'host', 'remote-node', 'kube-apiserver', 'health', 'ingress', 'unmanaged', 'init', 'none'] as const;
/**
 * The nodes every scenario has (meshguard reads them from Node objects and the default/kubernetes
 * EndpointSlice; the oracle uses the matching reserved identities): the pods run on node-a (so its
 * address is `host` to them), the API server on node-b (`kube-apiserver` + `remote-node`, the agent's
 * reserved identity 7), node-c is a plain `remote-node`. Inside 10.0.0.0/8, which CIDR peers name:
 * a CIDR selects no node under the default policy-cidr-match-mode.
 */
export const NODES = [
  { name: 'node-a', ip: '10.0.0.1' },
  { name: 'node-b', ip: '10.0.0.2' },
  { name: 'node-c', ip: '10.0.0.3' },
] as const;
export const APISERVER_NODE = 'node-b';
/** The node address a non-pod flow source stands for, on meshguard's side. */
export const SOURCE_ADDRESS: Readonly<Record<string, string>> = { host: '10.0.0.1', 'kube-apiserver': '10.0.0.2', 'remote-node': '10.0.0.3' };
/** Non-pod flow sources (ingress of a pod compared). */
const SOURCE_ENTITIES = ['host', 'remote-node', 'kube-apiserver'] as const;
/** Entities that are one peer, as flow destinations. */
const TARGET_ENTITIES = ['world-ipv4', 'host', 'remote-node', 'health', 'ingress', 'unmanaged'] as const;

// ---------- selectors ----------

type Selector = { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values?: string[] }[] };

/** A label key with an optional Cilium source prefix (CNP only; NetworkPolicy keys are plain). */
function key(r: Rng, k: string, cilium: boolean): string {
  if (!cilium) return k;
  return r.pick(['', '', 'k8s:', 'any:']) + k;
}

function podLabelSelector(r: Rng, cilium: boolean, peer: boolean): Selector {
  const sel: Selector = {};
  const ml: Record<string, string> = {};
  const me: NonNullable<Selector['matchExpressions']> = [];
  const n = r.int(0, 2);
  for (let i = 0; i < n; i++) {
    switch (r.int(0, 9)) {
      case 0:
      case 1:
      case 2:
        ml[key(r, 'app', cilium)] = r.pick(APPS);
        break;
      case 3:
        ml[key(r, 'tier', cilium)] = r.pick(TIERS);
        break;
      case 4:
        me.push({ key: key(r, 'app', cilium), operator: r.pick(['In', 'NotIn']), values: r.some(APPS, 1, 2) });
        break;
      case 5:
        me.push({ key: key(r, 'tier', cilium), operator: r.pick(['Exists', 'DoesNotExist']) });
        break;
      case 6:
        if (cilium) ml[key(r, 'io.cilium.k8s.namespace.labels.team', true)] = r.pick(TEAMS);
        else ml.tier = r.pick(TIERS);
        break;
      case 7:
        if (cilium) ml[key(r, 'io.cilium.k8s.policy.serviceaccount', true)] = r.pick(['default', 'sa1']);
        else me.push({ key: 'app', operator: 'Exists' });
        break;
      case 8:
        // Namespace constraints: in a subject (item 3 of the fidelity issue) and in peers.
        if (cilium) {
          const form = r.int(0, 3);
          if (form === 0) ml['k8s:io.kubernetes.pod.namespace'] = r.pick(NAMESPACES);
          else if (form === 1) ml['io.kubernetes.pod.namespace'] = r.pick(NAMESPACES);
          else if (form === 2) me.push({ key: 'k8s:io.kubernetes.pod.namespace', operator: r.pick(['In', 'NotIn']), values: r.some(NAMESPACES, 1, 2) });
          else me.push({ key: 'io.kubernetes.pod.namespace', operator: 'In', values: r.some(NAMESPACES, 1, 2) });
        } else if (r.chance(0.5)) {
          ml['io.kubernetes.pod.namespace'] = r.pick(NAMESPACES);
        } else {
          me.push({ key: 'io.kubernetes.pod.namespace', operator: r.pick(['In', 'NotIn']), values: r.some(NAMESPACES, 1, 2) });
        }
        break;
      case 9:
        if (cilium && peer && r.chance(0.5)) ml['reserved:' + r.pick(['host', 'world', 'world-ipv4', 'kube-apiserver', 'remote-node'])] = '';
        else if (r.chance(0.5)) ml[r.pick(FILTERED_KEYS.filter((k) => cilium || !k.startsWith('io.cilium')))] = r.pick(FILTERED_VALUES);
        else ml[key(r, 'app', cilium)] = r.pick(APPS);
        break;
    }
  }
  // One label under two spellings (`app` and `any:app`) with different values is ambiguous: the agent
  // keeps one of them, whichever its map iteration yields. Keep the first spelling only.
  const seen = new Set<string>();
  for (const k of Object.keys(ml)) {
    const plain = k.replace(/^(k8s|any):/, '');
    if (seen.has(plain)) delete ml[k];
    seen.add(plain);
  }
  if (Object.keys(ml).length > 0) sel.matchLabels = ml;
  if (me.length > 0) sel.matchExpressions = me;
  return sel;
}

function namespaceSelector(r: Rng): Selector {
  switch (r.int(0, 3)) {
    case 0:
      return {};
    case 1:
      return { matchLabels: { team: r.pick(TEAMS) } };
    case 2:
      return { matchLabels: { 'kubernetes.io/metadata.name': r.pick(NAMESPACES) } };
    default: {
      const operator = r.pick(['In', 'NotIn', 'Exists', 'DoesNotExist']);
      return { matchExpressions: [operator === 'In' || operator === 'NotIn' ? { key: 'team', operator, values: [r.pick(TEAMS)] } : { key: 'team', operator }] };
    }
  }
}

// ---------- ports ----------

function ciliumPort(r: Rng): Record<string, unknown> {
  const p: Record<string, unknown> = {};
  const kind = r.int(0, 9);
  if (kind <= 4) p.port = String(r.pick(QUERY_PORTS));
  else if (kind <= 6) p.port = r.pick(['http', 'dns', 'db', 'metrics', 'HTTP', 'init-http']);
  else if (kind === 7) p.port = '0';
  else if (kind === 8) {
    p.port = String(r.pick([53, 80, 8000]));
    p.endPort = r.pick([80, 443, 8080, 9000]);
  }
  // kind 9: no port, which the agent refuses (Sanitize: "port must be specified"); rarely, so that
  // most scenarios still import their policies.
  if (kind === 9 && r.chance(0.7)) p.port = String(r.pick(QUERY_PORTS));
  if (r.chance(0.75)) p.protocol = r.pick(['TCP', 'UDP', 'SCTP', 'ANY']);
  return p;
}

/**
 * Sometimes HTTP rules on an allow entry: they send the flow to the proxy but must not change the
 * L3/L4 verdict. Only where the agent accepts them (TCP ports, none of them 0 or unset).
 */
function withHttp(r: Rng, entry: Record<string, unknown>): Record<string, unknown> {
  const ports = (entry.ports ?? []) as Record<string, unknown>[];
  const tcpOnly = ports.length > 0 && ports.every((p) => p.protocol === 'TCP' && p.port !== undefined && p.port !== '0');
  return tcpOnly && r.chance(0.4) ? { ...entry, rules: { http: [{ method: r.pick(['GET', 'POST']), path: '/api/.*' }] } } : entry;
}

function ciliumToPorts(r: Rng): Record<string, unknown>[] {
  const n = r.int(0, 2);
  const out: Record<string, unknown>[] = [];
  for (let i = 0; i < n; i++) {
    if (r.chance(0.08)) {
      out.push(r.chance(0.5) ? {} : { ports: [] });
      continue;
    }
    out.push({ ports: Array.from({ length: r.int(1, 2) }, () => ciliumPort(r)) });
  }
  return out;
}

function npPorts(r: Rng): Record<string, unknown>[] {
  return Array.from({ length: r.int(1, 2) }, () => {
    const p: Record<string, unknown> = {};
    const kind = r.int(0, 7);
    if (kind <= 3) p.port = r.pick(QUERY_PORTS);
    else if (kind <= 5) p.port = r.pick(['http', 'dns', 'db', 'metrics', 'init-http']);
    else if (kind === 6) {
      p.port = r.pick([53, 80, 8000]);
      p.endPort = r.pick([80, 443, 8080, 9000]);
    }
    if (r.chance(0.6)) p.protocol = r.pick(PROTOCOLS);
    return p;
  });
}

// ---------- Cilium rules ----------

function cidrPeer(r: Rng, set: boolean): unknown {
  const cidr = r.pick(CIDRS);
  if (!set) return cidr;
  const out: Record<string, unknown> = { cidr };
  if (EXCEPTS[cidr] && r.chance(0.5)) out.except = r.some(EXCEPTS[cidr]!, 1, 1);
  return out;
}

function ciliumElement(r: Rng, ingress: boolean, deny: boolean): Record<string, unknown> {
  const el: Record<string, unknown> = {};
  const pfx = ingress ? 'from' : 'to';
  const l3 = r.int(0, 9);
  if (l3 <= 3) el[pfx + 'Endpoints'] = Array.from({ length: r.chance(0.07) ? 0 : r.int(1, 2) }, () => podLabelSelector(r, true, true));
  else if (l3 <= 5) el[pfx + 'Entities'] = r.chance(0.05) ? [] : r.some(ENTITIES, 1, 2);
  else if (l3 === 6) el[pfx + 'CIDR'] = Array.from({ length: r.int(1, 2) }, () => cidrPeer(r, false));
  else if (l3 === 7) el[pfx + 'CIDRSet'] = Array.from({ length: r.int(1, 2) }, () => cidrPeer(r, true));
  // 8, 9: no L3 part (toPorts alone, or `{}`)
  // Rarely a second L3 kind, which the agent refuses (with the whole policy).
  if (l3 <= 7 && r.chance(0.03)) el[pfx + 'Entities'] = [r.pick(ENTITIES)];
  if (l3 <= 5 && r.chance(0.03)) el[pfx + 'CIDR'] = [cidrPeer(r, false)];
  // ICMP alone or beside ports: never matches a TCP/UDP/SCTP flow by itself.
  if (r.chance(0.04) && (el.toPorts === undefined || r.chance(0.2))) el.icmps = [{ fields: [{ type: 8 }] }];
  if (r.chance(0.55)) {
    const tp = ciliumToPorts(r);
    if (tp.length > 0 || r.chance(0.3)) el.toPorts = deny ? tp.map((t) => (t.ports ? { ports: t.ports } : t)) : tp.map((t) => withHttp(r, t));
  }
  return el;
}

function ciliumRule(r: Rng, clusterwide: boolean): Record<string, unknown> {
  const rule: Record<string, unknown> = { endpointSelector: podLabelSelector(r, true, false) };
  const sections = ['ingress', 'ingressDeny', 'egress', 'egressDeny'] as const;
  let any = false;
  for (const s of sections) {
    if (!r.chance(s.endsWith('Deny') ? 0.25 : 0.5)) continue;
    const n = r.chance(0.08) ? 0 : r.int(1, 2);
    rule[s] = Array.from({ length: n }, () => ciliumElement(r, s.startsWith('ingress'), s.endsWith('Deny')));
    any ||= n > 0;
  }
  // A rule needs a section (Rule.Sanitize): mostly give it one, sometimes not, to cover refusal.
  if (!any && r.chance(0.85)) rule[r.pick(['ingress', 'egress'])] = [ciliumElement(r, r.chance(0.5), false)];
  if (r.chance(0.3)) {
    const edd: Record<string, boolean> = {};
    if (r.chance(0.7)) edd.ingress = r.chance(0.5);
    if (r.chance(0.7)) edd.egress = r.chance(0.5);
    rule.enableDefaultDeny = edd;
  }
  void clusterwide;
  return rule;
}

function ciliumPolicy(r: Rng, i: number, clusterwide: boolean): Record<string, unknown> {
  const metadata: Record<string, string> = { name: `p${i}` };
  if (!clusterwide) metadata.namespace = r.pick(NAMESPACES);
  const obj: Record<string, unknown> = {
    apiVersion: 'cilium.io/v2',
    kind: clusterwide ? 'CiliumClusterwideNetworkPolicy' : 'CiliumNetworkPolicy',
    metadata,
  };
  if (r.chance(0.15)) obj.specs = Array.from({ length: 2 }, () => ciliumRule(r, clusterwide));
  else obj.spec = ciliumRule(r, clusterwide);
  return obj;
}

// ---------- NetworkPolicy ----------

function npPeer(r: Rng): Record<string, unknown> {
  switch (r.int(0, 4)) {
    case 0:
    case 1:
      return { podSelector: podLabelSelector(r, false, true) };
    case 2:
      return { namespaceSelector: namespaceSelector(r) };
    case 3:
      return { namespaceSelector: namespaceSelector(r), podSelector: podLabelSelector(r, false, true) };
    default: {
      const cidr = r.pick(CIDRS);
      return { ipBlock: EXCEPTS[cidr] && r.chance(0.5) ? { cidr, except: r.some(EXCEPTS[cidr]!, 1, 1) } : { cidr } };
    }
  }
}

function networkPolicy(r: Rng, i: number): Record<string, unknown> {
  const spec: Record<string, unknown> = { podSelector: podLabelSelector(r, false, false) };
  for (const [dir, peers] of [['ingress', 'from'], ['egress', 'to']] as const) {
    if (!r.chance(0.6)) continue;
    spec[dir] = Array.from({ length: r.int(0, 2) }, () => {
      const rule: Record<string, unknown> = {};
      const k = r.int(0, 4);
      if (k === 0) rule[peers] = [];
      else if (k <= 3) rule[peers] = Array.from({ length: r.int(1, 2) }, () => npPeer(r));
      if (r.chance(0.5)) rule.ports = npPorts(r);
      return rule;
    });
  }
  if (r.chance(0.6)) spec.policyTypes = r.pick([['Ingress'], ['Egress'], ['Ingress', 'Egress']]);
  return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: `np${i}`, namespace: r.pick(NAMESPACES) }, spec };
}

// ---------- port-rule mutations (drawn last) ----------

/**
 * Rarely, on a `toPorts` entry: L7 rules wherever they land (port 0, UDP, ANY or no protocol, names,
 * ranges), DNS rules (also on ingress, beside HTTP, on a range), or more ports than the agent accepts
 * (40). Most of these the agent refuses with the whole policy (PortRule.sanitize, L7Rules.sanitize),
 * the rest must leave the L3/L4 verdict alone. Drawn after the rest of the scenario.
 */
function mutatePortRules(r: Rng, policy: Record<string, unknown>): void {
  const rules = [policy.spec, ...((policy.specs as unknown[] | undefined) ?? [])].filter((x): x is Record<string, unknown> => !!x && typeof x === 'object');
  for (const rule of rules) {
    for (const section of ['ingress', 'egress'] as const) {
      for (const el of (rule[section] as Record<string, unknown>[] | undefined) ?? []) {
        for (const tp of (el.toPorts as Record<string, unknown>[] | undefined) ?? []) {
          if (!Array.isArray(tp.ports) || !r.chance(0.12)) continue;
          switch (r.int(0, 4)) {
            case 0:
            case 1:
              tp.rules = { http: [{ method: r.pick(['GET', 'POST']) }] };
              break;
            case 2:
              tp.rules = { dns: [{ matchPattern: r.pick(['*', '*.example.com']) }] };
              break;
            case 3:
              tp.rules = { http: [{ path: '/' }], dns: [{ matchName: 'example.com' }] };
              break;
            default:
              tp.ports = Array.from({ length: r.pick([40, 41]) }, (_, i) => ({ port: String(1000 + i), protocol: 'TCP' }));
          }
        }
      }
    }
  }
}

// ---------- scenarios ----------

export function generateScenario(seed: number, index: number): Scenario {
  const r = new Rng((seed * 0x9e3779b1 + index * 0x85ebca6b) >>> 0);
  const namespaces: ScenarioNamespace[] = NAMESPACES.map((name) => {
    const labels: Record<string, string> = { 'kubernetes.io/metadata.name': name };
    if (r.chance(0.7)) labels.team = r.pick(TEAMS);
    return { name, labels };
  });
  const pods: ScenarioPod[] = [];
  const podCount = r.int(3, 6);
  for (let i = 0; i < podCount; i++) {
    const app = r.pick(APPS);
    const labels: Record<string, string> = { app };
    if (r.chance(0.5)) labels.tier = r.pick(TIERS);
    // Keys the agent's identity-label filter drops (or keeps against a broader drop).
    if (r.chance(0.3)) labels[r.pick(FILTERED_KEYS)] = r.pick(FILTERED_VALUES);
    pods.push({
      name: `pod${i}`,
      namespace: r.pick(NAMESPACES),
      labels,
      serviceAccount: r.chance(0.7) ? 'default' : 'sa1',
      ip: `10.244.0.${i + 10}`,
      ports: APP_PORTS[app],
      initPorts: r.chance(0.2) ? [{ name: 'init-http', port: 8081, protocol: 'TCP' }] : [],
    });
  }
  const policies: Record<string, unknown>[] = [];
  const policyCount = r.int(1, 3);
  for (let i = 0; i < policyCount; i++) {
    const k = r.next();
    policies.push(k < 0.5 ? ciliumPolicy(r, i, false) : k < 0.7 ? ciliumPolicy(r, i, true) : networkPolicy(r, i));
  }
  const flows: ScenarioFlow[] = [];
  const ref = (p: ScenarioPod): string => `${p.namespace}/${p.name}`;
  const flowCount = r.int(8, 14);
  for (let i = 0; i < flowCount; i++) {
    const from = r.pick(pods);
    const others = pods.filter((p) => p !== from);
    const kind = r.next();
    const to: FlowEnd = kind < 0.6 ? { pod: ref(r.pick(others)) } : kind < 0.8 ? { entity: r.pick(TARGET_ENTITIES) } : { ip: r.pick(WORLD_IPS) };
    flows.push({ from: { pod: ref(from) }, to, port: r.pick(QUERY_PORTS), protocol: r.chance(0.15) ? 'SCTP' : r.chance(0.35) ? 'UDP' : 'TCP' });
  }
  const mode = r.next();
  const enablePolicy = mode < 0.9 ? 'default' : mode < 0.97 ? 'always' : 'never';
  const dualStack = r.chance(0.5);
  // Drawn after everything above, so that the flows above stay those of earlier generator versions
  // for the same seed: ingress from entities and world addresses (fromEntities, fromCIDR, fromCIDRSet,
  // `reserved:` peers, allow-localhost against deny rules), and egress to the API server on its node.
  const extra = r.int(2, 4);
  for (let i = 0; i < extra; i++) {
    const to = r.pick(pods);
    const k = r.next();
    const proto = (): 'TCP' | 'UDP' | 'SCTP' => (r.chance(0.15) ? 'SCTP' : r.chance(0.35) ? 'UDP' : 'TCP');
    if (k < 0.8) {
      const from: FlowEnd = r.chance(0.5) ? { ip: r.pick(WORLD_IPS) } : { entity: r.pick(SOURCE_ENTITIES) };
      flows.push({ from, to: { pod: ref(to) }, port: r.pick(QUERY_PORTS), protocol: proto() });
    } else {
      flows.push({ from: { pod: ref(to) }, to: { entity: 'kube-apiserver' }, port: r.pick(QUERY_PORTS), protocol: proto() });
    }
  }
  for (const policy of policies) if (policy.kind !== 'NetworkPolicy') mutatePortRules(r, policy);
  return { id: `${seed}-${index}`, dualStack, enablePolicy, namespaces, pods, policies, flows };
}

export function generateScenarios(seed: number, count: number): Scenario[] {
  return Array.from({ length: count }, (_, i) => generateScenario(seed, i));
}
