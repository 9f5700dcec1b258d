// toFQDNs and Cilium's DNS proxy (fqdn-without-dns-proxy): toFQDNs selects IPs the DNS proxy learned,
// and the proxy only sees lookups that an egress allow toward the DNS server redirects to it with
// `rules.dns`. Which FQDN selectors apply to a pod, whether its DNS rules cover them, and whether a
// problem now breaks a name that worked before.

import type { ClusterState, Pod, PolicyObject } from '../core/objects.ts';
import { overlayDelta } from '../state/overlay.ts';
import { perContentOf, perRevision } from './memo.ts';
import { policyModel } from './model.ts';
import { dnsTarget } from './dns.ts';
import { dnsNameMatches } from './dns-pattern.ts';
import { evaluate } from './reachability.ts';
import { policiesSelecting } from './selection.ts';
import type { Peer } from './types.ts';

type FqdnPeer = Extract<Peer, { type: 'fqdn' }>;
type DnsRule = { readonly matchName?: string; readonly matchPattern?: string };

function fqdnLabel(p: FqdnPeer): string {
  return p.matchName ?? p.matchPattern ?? '?';
}

/** DNS names are case-insensitive and `x.` is the fully qualified `x`: one spelling per name. */
export function fqdnNameKey(name: string): string {
  return name.trim().toLowerCase().replace(/\.$/, '');
}

/** The toFQDNs selectors of the egress allows that apply to a pod. */
function fqdnPeers(state: ClusterState, pod: Pod): FqdnPeer[] {
  const out: FqdnPeer[] = [];
  for (const m of policiesSelecting(state, pod)) {
    if (!m.fqdnDependent) continue;
    for (const e of m.elements) {
      if (e.direction !== 'egress' || e.deny) continue;
      for (const p of e.peers) if (p.type === 'fqdn' && !out.some((x) => fqdnNameKey(fqdnLabel(x)) === fqdnNameKey(fqdnLabel(p)))) out.push(p);
    }
  }
  return out;
}

/**
 * Could some pod of the state have toFQDNs selectors (fqdnProblem not undefined)? False when no
 * CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy has an FQDN-dependent model (NetworkPolicy has
 * no toFQDNs): fqdnProblem is then undefined for every pod, and fqdn-without-dns-proxy need not judge
 * any class. Kept per content of the two kinds (pod events keep it); an admission overlay's from its
 * base's and the changed policy's own models. An object whose model cannot be built counts as one.
 */
export function hasFqdnRules(state: ClusterState): boolean {
  return fqdnPolicies(state).length > 0;
}

let fqdnScans = 0;

/** How many times the CNPs and CCNPs of a state were scanned for FQDN-dependent models (for tests of the warm-up). */
export function fqdnPolicyScans(): number {
  return fqdnScans;
}

/** The CNPs and CCNPs with an FQDN-dependent model ("kind/namespace/name"). */
function fqdnPolicies(state: ClusterState): readonly string[] {
  const d = overlayDelta(state);
  if (d !== undefined && (d.kind === 'CiliumNetworkPolicy' || d.kind === 'CiliumClusterwideNetworkPolicy')) {
    return perRevision(state, 'fqdnPolicies', () => {
      const ref = policyRef(d.kind, d.kind === 'CiliumNetworkPolicy' ? d.namespace : '', d.name);
      const out = fqdnPolicies(d.base).filter((r) => r !== ref);
      const obj = state.get(d.kind, d.kind === 'CiliumNetworkPolicy' ? d.namespace : undefined, d.name);
      if (obj !== undefined && objectHasFqdn(obj as PolicyObject)) out.push(ref);
      return out;
    });
  }
  return perContentOf(state, 'fqdnPolicies', ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy'], () => {
    fqdnScans++;
    const out: string[] = [];
    for (const kind of ['CiliumClusterwideNetworkPolicy', 'CiliumNetworkPolicy'] as const) {
      for (const o of state.list(kind)) if (objectHasFqdn(o as PolicyObject)) out.push(policyRef(kind, o.metadata.namespace ?? '', o.metadata.name));
    }
    return out;
  });
}

const policyRef = (kind: string, namespace: string, name: string): string => `${kind}/${namespace}/${name}`;

function objectHasFqdn(obj: PolicyObject): boolean {
  try {
    return policyModel(obj).some((m) => m.fqdnDependent);
  } catch {
    return true; // not judged here: no shortcut
  }
}

/** Does a DNS rule let the proxy see every lookup the FQDN selector can match? */
function covers(rule: DnsRule, peer: FqdnPeer): boolean {
  if (peer.matchName !== undefined) return dnsNameMatches(rule, peer.matchName);
  const pattern = peer.matchPattern ?? '';
  if (rule.matchPattern !== undefined) {
    const rp = fqdnNameKey(rule.matchPattern);
    if (rp === '*' || rp === fqdnNameKey(pattern)) return true;
  }
  // A representative name of the pattern (each `*` one label-part) must be seen by the proxy.
  const sample = pattern.replace(/^\*\*\./, 'x.').replace(/\*/g, 'x');
  return sample.length > 0 && dnsNameMatches(rule, sample);
}

export interface FqdnProblem {
  /**
   * no-proxy: DNS allowed without rules.dns; uncovered: rules.dns does not cover some names; no-dns: no
   * DNS at all (reported by dns-egress-missing, but the FQDN traffic was broken then too).
   */
  readonly kind: 'no-proxy' | 'uncovered' | 'no-dns';
  /** The FQDN selectors (matchName or matchPattern) that never match. */
  readonly names: readonly string[];
}

/** The FQDN problem of a pod in a state; undefined when it has no toFQDNs or they work. */
export function fqdnProblem(state: ClusterState, pod: Pod): FqdnProblem | undefined {
  const peers = fqdnPeers(state, pod);
  if (peers.length === 0) return undefined;
  const t = dnsTarget(state);
  if (!t) return undefined;
  const dnsRules: DnsRule[] = [];
  let reachable = false;
  for (const backend of t.pods) {
    const r = evaluate(state, pod, { type: 'pod', pod: backend }, t.port, 'UDP');
    if (!r.allowed) continue;
    reachable = true;
    for (const a of r.egress.allowing) for (const d of a.portSection?.rules?.dns ?? []) dnsRules.push(d);
  }
  if (!reachable) return { kind: 'no-dns', names: peers.map(fqdnLabel) };
  if (dnsRules.length === 0) return { kind: 'no-proxy', names: peers.map(fqdnLabel) };
  const missing = peers.filter((p) => !dnsRules.some((r) => covers(r, p))).map(fqdnLabel);
  return missing.length > 0 ? { kind: 'uncovered', names: missing } : undefined;
}

/**
 * Does the problem now break a name that was not broken before? Without DNS at all before, every FQDN
 * was already unreachable; otherwise a name missing from the earlier problem is new breakage (e.g. the
 * rules.dns that covered it is gone while another name was already uncovered).
 */
export function fqdnNewlyBroken(now: FqdnProblem, prev: FqdnProblem | undefined): boolean {
  if (!prev) return true;
  if (prev.kind === 'no-dns') return false;
  const was = new Set(prev.names.map(fqdnNameKey));
  return now.names.some((n) => !was.has(fqdnNameKey(n)));
}

/** Does a policy object use toFQDNs (then a DNS allow for it needs rules.dns)? False for odd input. */
export function policyUsesFqdn(obj: PolicyObject | undefined): boolean {
  if (!obj) return false;
  try {
    return policyModel(obj).some((m) => m.fqdnDependent);
  } catch {
    return false;
  }
}
