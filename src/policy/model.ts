// The normalized policy model: CiliumNetworkPolicy (spec and specs[]), CiliumClusterwideNetworkPolicy and
// Kubernetes NetworkPolicy turned into one shape (subject selector, enforced directions, allow/deny rule
// elements with peers and ports), with every defaulting Cilium applies made explicit. Built once per
// policy object (the object stays identical across state overlays) and cached in a WeakMap.
//
// Sources for each decision are in docs/semantics.md.

import type { LabelSelector, LabelSelectorRequirement, PolicyObject } from '../core/objects.ts';
import type {
  Direction,
  L7Rules,
  Peer,
  PolicyKind,
  PolicyModel,
  PolicyRef,
  PortRule,
  PortSection,
  Protocol,
  RuleElement,
} from './types.ts';
import { NAMESPACE_LABEL, NAMESPACE_LABELS_PREFIX, normalizeKey, selectorIsReserved, selectorMentions } from './selectors.ts';
import { isEphemeral, markEphemeral } from '../state/request-scope.ts';
import { policyModels as cache } from './memo.ts';
import { ciliumRejection } from './sanitize.ts';

type Raw = Readonly<Record<string, unknown>>;


/** The PolicyRef of a policy object (kind, namespace "" for CCNP, name). */
export function policyRef(obj: PolicyObject): PolicyRef {
  const kind = obj.kind as PolicyKind;
  return {
    kind,
    namespace: kind === 'CiliumClusterwideNetworkPolicy' ? '' : (obj.metadata.namespace ?? 'default'),
    name: obj.metadata.name,
  };
}

/** "CiliumNetworkPolicy ns/name" for messages. */
export function formatPolicyRef(ref: PolicyRef): string {
  return `${ref.kind} ${ref.namespace ? ref.namespace + '/' : ''}${ref.name}`;
}

/** The policy model of a CNP / CCNP / NetworkPolicy object (one entry per `spec`/`specs[]` rule). Cached. */
export function policyModel(obj: PolicyObject): readonly PolicyModel[] {
  const hit = cache.get(obj);
  if (hit) return hit;
  let out: readonly PolicyModel[];
  switch (obj.kind) {
    case 'CiliumNetworkPolicy':
    case 'CiliumClusterwideNetworkPolicy':
      out = ciliumModels(obj);
      break;
    case 'NetworkPolicy':
      out = obj.spec ? [networkPolicyModel(obj, obj.spec)] : [];
      break;
    default:
      out = [];
  }
  out = Object.freeze(out);
  if (isEphemeral(obj)) {
    // The request's own policy: its models key other caches only for this request.
    for (const m of out) {
      markEphemeral(m);
      markEphemeral(m.subjectSelector);
    }
  }
  cache.set(obj, out);
  return out;
}

// ---------- small readers for untyped specs ----------

function isObj(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function arr(v: unknown): readonly unknown[] {
  return Array.isArray(v) ? v : [];
}
function objs(v: unknown): readonly Raw[] {
  return arr(v).filter(isObj);
}
function strs(v: unknown): readonly string[] {
  return arr(v).filter((x): x is string => typeof x === 'string');
}

/** A LabelSelector from raw input (tolerates missing parts; non-string values are stringified). */
export function toSelector(v: unknown): LabelSelector | undefined {
  if (!isObj(v)) return undefined;
  const out: { matchLabels?: Record<string, string>; matchExpressions?: LabelSelectorRequirement[] } = {};
  if (isObj(v.matchLabels)) {
    const ml: Record<string, string> = {};
    for (const [k, val] of Object.entries(v.matchLabels)) ml[k] = val === null || val === undefined ? '' : String(val);
    out.matchLabels = ml;
  }
  if (Array.isArray(v.matchExpressions)) {
    out.matchExpressions = objs(v.matchExpressions).map((r) => ({
      key: String(r.key ?? ''),
      operator: String(r.operator ?? ''),
      values: arr(r.values).map(String),
    }));
  }
  return out;
}

function protocolOf(v: unknown, dflt: Protocol | 'ANY'): Protocol | 'ANY' | undefined {
  if (v === undefined || v === null || v === '') return dflt;
  const p = String(v).toUpperCase();
  if (p === 'TCP' || p === 'UDP' || p === 'SCTP' || p === 'ANY') return p;
  return undefined; // ICMP or garbage: matches no TCP/UDP/SCTP query
}

/**
 * A port value: number, numeric string, name, or 0 (all ports) when missing/empty. `caseless`: a
 * Cilium policy's port names are compared without case (Sanitize lowercases them; container port
 * names are lowercase).
 */
function portOf(v: unknown, caseless = false): number | string {
  if (v === undefined || v === null || v === '') return 0;
  if (typeof v === 'number') return v;
  const s = String(v);
  return /^\d+$/.test(s) ? Number(s) : caseless ? s.toLowerCase() : s;
}

function endPortOf(v: unknown): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : undefined;
  return n !== undefined && n > 0 ? n : undefined;
}

// ---------- Cilium ----------

const CILIUM_INGRESS_PEERS = ['fromEndpoints', 'fromCIDR', 'fromCIDRSet', 'fromEntities', 'fromRequires', 'fromGroups', 'fromNodes'];
const CILIUM_EGRESS_PEERS = [
  'toEndpoints', 'toCIDR', 'toCIDRSet', 'toEntities', 'toServices', 'toFQDNs', 'toRequires', 'toGroups', 'toNodes',
];

function ciliumModels(obj: PolicyObject): PolicyModel[] {
  const ref = policyRef(obj);
  // The agent imports a CNP/CCNP whole or not at all: one refused rule drops every rule of the object.
  // One rejection path: the same answer agent-rejected-policy reports (sanitize.ts).
  if (ciliumRejection(obj) !== undefined) return [];
  const rules: Raw[] = [];
  if (isObj(obj.spec)) rules.push(obj.spec);
  for (const s of objs(obj.specs)) rules.push(s);
  return rules.map((r, i) => ciliumRuleModel(ref, i, r));
}

function ciliumRuleModel(ref: PolicyRef, specIndex: number, rule: Raw): PolicyModel {
  const clusterwide = ref.kind === 'CiliumClusterwideNetworkPolicy';
  const selectsNodes = isObj(rule.nodeSelector) && !isObj(rule.endpointSelector);
  const subjectSelector = toSelector(selectsNodes ? rule.nodeSelector : rule.endpointSelector) ?? {};
  const elements: RuleElement[] = [];
  const sections = { ingress: false, egress: false };
  for (const [field, direction, deny] of [
    ['ingress', 'ingress', false],
    ['ingressDeny', 'ingress', true],
    ['egress', 'egress', false],
    ['egressDeny', 'egress', true],
  ] as const) {
    const list = objs(rule[field]);
    // A section puts the direction into default deny only when it has at least one element:
    // `egress: []` is the same as no egress section, `egress: [{}]` enforces and allows nothing.
    if (list.length > 0) sections[direction] = true;
    // The index as written (non-object entries counted), for messages that name the element.
    for (const [index, el] of arr(rule[field]).entries()) {
      if (!isObj(el)) continue;
      const e = ciliumElement(ref, clusterwide, direction, deny, el, index);
      if (e) elements.push(e);
    }
  }
  const edd = isObj(rule.enableDefaultDeny) ? rule.enableDefaultDeny : {};
  // The agent decides default deny per rule element (RulesToPolicyEntries gives every element the
  // rule's enableDefaultDeny for its direction): a rule with no element in a direction contributes
  // nothing there, so `enableDefaultDeny: {egress: true}` without an egress section enforces nothing.
  const defaultDeny = (d: Direction): boolean => sections[d] && (typeof edd[d] === 'boolean' ? (edd[d] as boolean) : true);
  return finish({
    ref,
    specIndex,
    subjectSelector,
    selectsNodes,
    enforces: { ingress: defaultDeny('ingress'), egress: defaultDeny('egress') },
    hasSection: sections,
    elements: ownLength(elements),
  });
}

function finish(m: Omit<PolicyModel, 'hasL7' | 'fqdnDependent'>): PolicyModel {
  let hasL7 = false;
  let fqdnDependent = false;
  for (const e of m.elements) {
    for (const p of e.peers) if (p.type === 'fqdn') fqdnDependent = true;
    for (const s of e.ports) {
      const r = s.rules;
      if (r && ((r.http?.length ?? 0) > 0 || (r.kafka?.length ?? 0) > 0 || (r.dns?.length ?? 0) > 0 || (r.l7?.length ?? 0) > 0 || !!r.l7proto)) hasL7 = true;
    }
  }
  return Object.freeze({ ...m, hasL7, fqdnDependent });
}

/**
 * An endpoints peer of a Cilium rule, with the defaulting the agent applies when it parses the policy:
 * selectors with `reserved:` keys are left alone; without a namespace key, a CNP peer is confined to the
 * policy namespace (unless it selects by namespace labels) and a CCNP peer to pods of any namespace
 * (namespace label Exists: a CCNP `{}` is every pod, not world/host).
 */
function ciliumEndpointPeer(ref: PolicyRef, clusterwide: boolean, raw: unknown): Peer | undefined {
  const selector = toSelector(raw);
  if (!selector) return undefined;
  if (selectorIsReserved(selector) || selectorMentions(selector, NAMESPACE_LABEL)) return { type: 'endpoints', selector };
  if (clusterwide) {
    const matchExpressions = [...(selector.matchExpressions ?? []), { key: NAMESPACE_LABEL, operator: 'Exists' }];
    return { type: 'endpoints', selector: { ...selector, matchExpressions } };
  }
  if (selectorMentionsPrefix(selector, NAMESPACE_LABELS_PREFIX)) return { type: 'endpoints', selector };
  return { type: 'endpoints', selector, namespace: ref.namespace };
}

function selectorMentionsPrefix(selector: LabelSelector, prefix: string): boolean {
  return (
    Object.keys(selector.matchLabels ?? {}).some((k) => normalizeKey(k).startsWith(prefix)) ||
    (selector.matchExpressions ?? []).some((r) => normalizeKey(r.key).startsWith(prefix))
  );
}

function cidrPeers(el: Raw, listField: string, setField: string): Peer[] {
  const out: Peer[] = [];
  for (const c of strs(el[listField])) out.push({ type: 'cidr', cidr: c, except: [] });
  for (const s of objs(el[setField])) {
    // cidrGroupRef/cidrGroupSelector point at CiliumCIDRGroup objects meshguard does not read: no peer.
    if (typeof s.cidr === 'string') out.push({ type: 'cidr', cidr: s.cidr, except: strs(s.except) });
  }
  return out;
}

/**
 * `a` in an array of its own length: built by push, an array of 1-16 entries keeps room for 17 or more,
 * and models are kept for every policy of the cluster (issue 21, the heap at 50k pods).
 */
function ownLength<T>(a: T[]): T[] {
  return a.length === 0 ? a : a.slice();
}

/** toPorts entries; undefined when entries exist but none has a usable port (matches no traffic). */
function ciliumPortSections(el: Raw): PortSection[] | undefined {
  const out: PortSection[] = [];
  const raw = objs(el.toPorts);
  for (const tp of raw) {
    const ports: PortRule[] = [];
    for (const p of objs(tp.ports)) {
      const protocol = protocolOf(p.protocol, 'ANY');
      if (protocol === undefined) continue;
      const endPort = endPortOf(p.endPort);
      ports.push(endPort !== undefined ? { port: portOf(p.port, true), endPort, protocol } : { port: portOf(p.port, true), protocol });
    }
    // An entry without a usable port (`toPorts: [{}]`, `ports: []`, only unknown protocols) matches
    // nothing, not "all ports": the agent adds one L4 filter per port of the entry
    // (L4PolicyMap.mergeL4Filter iterates GetPortProtocols), so such an entry adds none.
    if (ports.length === 0) continue;
    const section: { ports: PortRule[]; rules?: L7Rules; serverNames?: string[] } = { ports: ownLength(ports) };
    if (isObj(tp.rules)) section.rules = l7Of(tp.rules);
    if (Array.isArray(tp.serverNames)) section.serverNames = [...strs(tp.serverNames)];
    out.push(section);
  }
  return raw.length > 0 && out.length === 0 ? undefined : ownLength(out);
}

function l7Of(r: Raw): L7Rules {
  const out: {
    http?: Raw[];
    kafka?: Raw[];
    dns?: { matchName?: string; matchPattern?: string }[];
    l7proto?: string;
    l7?: Raw[];
  } = {};
  if (Array.isArray(r.http)) out.http = [...objs(r.http)];
  if (Array.isArray(r.kafka)) out.kafka = [...objs(r.kafka)];
  if (Array.isArray(r.dns)) {
    out.dns = objs(r.dns).map((d) => {
      const x: { matchName?: string; matchPattern?: string } = {};
      if (typeof d.matchName === 'string') x.matchName = d.matchName;
      if (typeof d.matchPattern === 'string') x.matchPattern = d.matchPattern;
      return x;
    });
  }
  if (typeof r.l7proto === 'string') out.l7proto = r.l7proto;
  if (Array.isArray(r.l7)) out.l7 = [...objs(r.l7)];
  return out;
}

function ciliumElement(ref: PolicyRef, clusterwide: boolean, direction: Direction, deny: boolean, el: Raw, index: number): RuleElement | undefined {
  const peers: Peer[] = [];
  let hasPeerField = false;
  const fields = direction === 'ingress' ? CILIUM_INGRESS_PEERS : CILIUM_EGRESS_PEERS;
  for (const f of fields) if (el[f] !== undefined && el[f] !== null) hasPeerField = true;
  // An empty list in one of these fields makes the whole element select no peer, whatever the other
  // L3 fields hold (mergeEndpointSelectors returns nil L3 for an empty non-nil slice).
  const pfx = direction === 'ingress' ? 'from' : 'to';
  for (const f of ['Endpoints', 'Nodes', 'Entities', 'CIDR', 'CIDRSet']) {
    const v = el[pfx + f];
    if (Array.isArray(v) && v.length === 0) return undefined;
  }
  const ep = direction === 'ingress' ? el.fromEndpoints : el.toEndpoints;
  for (const s of arr(ep)) {
    const p = ciliumEndpointPeer(ref, clusterwide, s);
    if (p) peers.push(p);
  }
  const ent = strs(direction === 'ingress' ? el.fromEntities : el.toEntities).map((e) => e.toLowerCase());
  if (ent.length > 0) peers.push({ type: 'entities', entities: ent });
  peers.push(...(direction === 'ingress' ? cidrPeers(el, 'fromCIDR', 'fromCIDRSet') : cidrPeers(el, 'toCIDR', 'toCIDRSet')));
  if (direction === 'egress') {
    for (const f of objs(el.toFQDNs)) {
      const p: { type: 'fqdn'; matchName?: string; matchPattern?: string } = { type: 'fqdn' };
      if (typeof f.matchName === 'string') p.matchName = f.matchName;
      if (typeof f.matchPattern === 'string') p.matchPattern = f.matchPattern;
      peers.push(p);
    }
    const svcs = objs(el.toServices);
    if (svcs.length > 0) peers.push({ type: 'services', services: svcs });
  }
  const ports = ciliumPortSections(el);
  if (ports === undefined) return undefined;
  const hasIcmp = Array.isArray(el.icmps) && el.icmps.length > 0;
  // ICMP only: the element's L4 part is ICMP, so it matches no TCP/UDP/SCTP traffic.
  if (hasIcmp && ports.length === 0) return undefined;
  // `{}` has neither an L3 nor an L4 part: it allows (or denies) nothing. The agent's
  // L4PolicyMap.mergeL4Filter adds an L3-only filter only when the element has at least one L3
  // selector, and port filters only for its ports; the element still puts the direction into default
  // deny (its section is counted above). `toPorts` alone is every peer on those ports.
  if (!hasPeerField && ports.length === 0) return undefined;
  if (hasPeerField && peers.length === 0) {
    // Peer fields present but empty (`toEndpoints: []`) or unsupported (toGroups, toNodes, toRequires,
    // cidrGroupRef): selects no peer. fromRequires/toRequires only add constraints, they never allow.
    return undefined;
  }
  return Object.freeze({ direction, deny, peers: ownLength(peers), ports, index });
}

// ---------- Kubernetes NetworkPolicy ----------

function networkPolicyModel(obj: PolicyObject, spec: Raw): PolicyModel {
  const ref = policyRef(obj);
  const subjectSelector = toSelector(spec.podSelector) ?? {};
  const types = strs(spec.policyTypes);
  // As the agent's ParseNetworkPolicy converts it: every ingress/egress rule becomes an entry whatever
  // policyTypes says (rules of a direction policyTypes leaves out still apply and enforce), and a
  // direction without rules is put into default deny when policyTypes names it; ingress also when
  // policyTypes does not name Egress (so an unset policyTypes is Ingress, plus Egress with egress rules).
  const ingressRules = objs(spec.ingress);
  const egressRules = objs(spec.egress);
  const ingress = ingressRules.length > 0 || types.includes('Ingress') || !types.includes('Egress');
  const egress = egressRules.length > 0 || types.includes('Egress');
  const elements: RuleElement[] = [];
  const add = (e: RuleElement | undefined): void => {
    if (e) elements.push(e);
  };
  for (const r of ingressRules) add(npElement(ref, 'ingress', r, r.from));
  for (const r of egressRules) add(npElement(ref, 'egress', r, r.to));
  return finish({
    ref,
    specIndex: 0,
    subjectSelector,
    selectsNodes: false,
    enforces: { ingress, egress },
    hasSection: { ingress, egress },
    elements: ownLength(elements),
  });
}

function npElement(ref: PolicyRef, direction: Direction, rule: Raw, rawPeers: unknown): RuleElement | undefined {
  const peers: Peer[] = [];
  for (const p of objs(rawPeers)) {
    if (isObj(p.ipBlock) && typeof p.ipBlock.cidr === 'string') {
      peers.push({ type: 'cidr', cidr: p.ipBlock.cidr, except: strs(p.ipBlock.except) });
      continue;
    }
    const podSel = toSelector(p.podSelector);
    const nsSel = toSelector(p.namespaceSelector);
    if (nsSel) {
      // namespaceSelector (+ podSelector, ANDed in the same peer): pods in matching namespaces.
      peers.push({ type: 'endpoints', selector: podSel ?? {}, namespaceSelector: nsSel });
    } else if (podSel) {
      // The agent's parsePodSelector overwrites a matchLabels `io.kubernetes.pod.namespace` with the
      // policy namespace (expressions on it are kept and ANDed).
      const { [NAMESPACE_LABEL]: _overwritten, ...matchLabels } = podSel.matchLabels ?? {};
      const selector = podSel.matchLabels && NAMESPACE_LABEL in podSel.matchLabels ? { ...podSel, matchLabels } : podSel;
      peers.push({ type: 'endpoints', selector, namespace: ref.namespace });
    }
    // A peer with none of the three fields is rejected by the apiserver; it selects nothing here.
  }
  const hadPeers = objs(rawPeers).length > 0;
  const ports: PortRule[] = [];
  for (const p of objs(rule.ports)) {
    const protocol = protocolOf(p.protocol, 'TCP');
    if (protocol === undefined) continue;
    const port = portOf(p.port);
    const endPort = typeof port === 'number' ? endPortOf(p.endPort) : undefined;
    ports.push(endPort !== undefined ? { port, endPort, protocol } : { port, protocol });
  }
  // Ports given but none usable (unknown protocol): matches nothing, not "all ports".
  if (objs(rule.ports).length > 0 && ports.length === 0) return undefined;
  const portSections: PortSection[] = ports.length > 0 ? [{ ports }] : [];
  // Empty `from`/`to` = every peer; but peers that were all invalid must not widen to every peer.
  if (hadPeers && peers.length === 0) return undefined;
  return Object.freeze({ direction, deny: false, peers: ownLength(peers), ports: portSections });
}
