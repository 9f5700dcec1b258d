// fqdn-without-dns-proxy: toFQDNs selects IPs learned by Cilium's DNS proxy, and the proxy only sees
// lookups that an egress allow toward the DNS server redirects to it with `rules.dns`. Without such a
// rule (or with patterns that do not cover the names) the FQDN's IP set stays empty and the traffic
// the policy meant to allow is dropped.

import type { Change } from '../core/change.ts';
import { dnsNameMatches, evaluate, policiesSelecting, type Peer, dnsClassKey, dnsTarget, withoutDnsBackends } from '../policy/index.ts';
import type { ClusterState, Pod } from '../state/types.ts';
import type { Finding, Rule, RuleContext } from './types.ts';
import { changeRef, judgeByClass, touchedPods } from '../impact/index.ts';
import { describeVictims, victimsOf, dnsAllowRule } from './render-helpers.ts';

const ID = 'fqdn-without-dns-proxy';

type FqdnPeer = Extract<Peer, { type: 'fqdn' }>;
type DnsRule = { readonly matchName?: string; readonly matchPattern?: string };

function fqdnLabel(p: FqdnPeer): string {
  return p.matchName ?? p.matchPattern ?? '?';
}

/** DNS names are case-insensitive and `x.` is the fully qualified `x`: one spelling per name. */
function nameKey(name: string): string {
  return name.trim().toLowerCase().replace(/\.$/, '');
}

/** The toFQDNs selectors of the egress allows that apply to a pod. */
function fqdnPeers(state: ClusterState, pod: Pod): FqdnPeer[] {
  const out: FqdnPeer[] = [];
  for (const m of policiesSelecting(state, pod)) {
    if (!m.fqdnDependent) continue;
    for (const e of m.elements) {
      if (e.direction !== 'egress' || e.deny) continue;
      for (const p of e.peers) if (p.type === 'fqdn' && !out.some((x) => nameKey(fqdnLabel(x)) === nameKey(fqdnLabel(p)))) out.push(p);
    }
  }
  return out;
}

/** Does a DNS rule let the proxy see every lookup the FQDN selector can match? */
function covers(rule: DnsRule, peer: FqdnPeer): boolean {
  if (peer.matchName !== undefined) return dnsNameMatches(rule, peer.matchName);
  const pattern = peer.matchPattern ?? '';
  if (rule.matchPattern !== undefined) {
    const rp = rule.matchPattern.trim().toLowerCase().replace(/\.$/, '');
    if (rp === '*' || rp === pattern.trim().toLowerCase().replace(/\.$/, '')) return true;
  }
  // A representative name of the pattern (each `*` one label-part) must be seen by the proxy.
  const sample = pattern.replace(/^\*\*\./, 'x.').replace(/\*/g, 'x');
  return sample.length > 0 && dnsNameMatches(rule, sample);
}

interface Problem {
  /**
   * no-proxy: DNS allowed without rules.dns; uncovered: rules.dns does not cover some names; no-dns: no
   * DNS at all (reported by dns-egress-missing, but the FQDN traffic was broken then too).
   */
  readonly kind: 'no-proxy' | 'uncovered' | 'no-dns';
  readonly names: readonly string[];
}

/** The FQDN problem of a pod in a state; undefined when it has no toFQDNs or they work. */
function fqdnProblem(state: ClusterState, pod: Pod): Problem | undefined {
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
function newlyBroken(now: Problem, prev: Problem | undefined): boolean {
  if (!prev) return true;
  if (prev.kind === 'no-dns') return false;
  const was = new Set(prev.names.map(nameKey));
  return now.names.some((n) => !was.has(nameKey(n)));
}

function evaluateFqdn(change: Change, before: ClusterState, after: ClusterState, _ctx: RuleContext): Finding[] {
  const touched = touchedPods(change, before, after, { direction: 'egress' });
  if (touched.pods.length === 0) return [];
  // Pods of one class (same identity) get the same answer: judge each class once.
  const judged = judgeByClass<Pod, Problem>(withoutDnsBackends(after, touched.pods), dnsClassKey(after), (pod) => {
    const now = fqdnProblem(after, pod);
    // No DNS at all is dns-egress-missing's finding; one denial per cause.
    if (!now || now.kind === 'no-dns') return { outcome: 'skip' };
    return { outcome: newlyBroken(now, fqdnProblem(before, pod)) ? 'lost' : 'still', detail: now };
  });
  const isLost = judged.lost.length > 0;
  const pods = isLost ? judged.lost : judged.stillMissing;
  if (pods.length === 0) return [];
  const group = (isLost ? judged.lostClasses : judged.stillClasses).map((c) => ({ pod: c.first, problem: c.detail! }));
  const names = [...new Set(group.flatMap((x) => x.problem.names))];
  const shownNames = names.length > 3 ? `${names.slice(0, 3).join(', ')} and ${names.length - 3} more` : names.join(', ');
  const noProxy = group.some((x) => x.problem.kind === 'no-proxy');
  const t = dnsTarget(after);
  const dnsName = `UDP ${t?.port ?? 53} to ${t?.namespace ?? 'kube-system'}/kube-dns`;
  const who = `${pods.length} pod${pods.length === 1 ? '' : 's'}${touched.synthetic ? ' (pods this policy would select)' : ''}`;
  const why = noProxy
    ? `their DNS egress (${dnsName}) has no rules.dns, so the DNS proxy never sees the lookups`
    : `their rules.dns patterns do not cover these names, so the DNS proxy never learns their IPs`;
  const prefix = isLost ? (change.operation === 'DELETE' ? `deleting ${changeRef(change)}: ` : `${changeRef(change)}: `) : '';
  const where = change.operation === 'DELETE' ? 'a remaining egress policy of these pods' : changeRef(change);
  const fix = noProxy
    ? `in ${where}, allow DNS through the proxy: ${dnsAllowRule('CiliumNetworkPolicy', t, true)}`
    : `in ${where}, widen rules.dns on the DNS egress to cover ${shownNames} (e.g. matchPattern: "*")`;
  return [
    {
      rule: ID,
      message:
        `${prefix}toFQDNs ${shownNames} never match for ${who}: ${why} and the traffic is dropped` +
        `${isLost ? '' : ' (already the case before this request)'}: ${describeVictims(pods)}`,
      fix,
      ...victimsOf(pods),
      ...(isLost ? {} : { preexisting: true }),
    },
  ];
}

export const rule: Rule = {
  id: ID,
  severity: 'B',
  summary: 'toFQDNs on endpoints whose DNS egress has no rules.dns (the DNS proxy never sees the lookups, the FQDN traffic is dropped)',
  docs: 'docs/rules/fqdn-without-dns-proxy.md',
  triggers: [{ kinds: ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy'], operations: ['CREATE', 'UPDATE', 'DELETE'] }],
  evaluate: evaluateFqdn,
};
