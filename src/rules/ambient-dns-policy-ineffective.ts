// ambient-dns-policy-ineffective: Cilium DNS restrictions (rules.dns with specific names, or toFQDNs) on
// ambient pods whose DNS is captured by ztunnel (the default since Istio 1.25). ztunnel answers lookups
// for mesh Services and ServiceEntries itself, so Cilium's DNS proxy never sees them, and older ztunnel
// forwarded the rest from its own pod rather than from the workload's: the restriction does not apply as
// written, and toFQDNs may not learn the addresses. Silently ineffective, so a warning.

import type { Change } from '../core/change.ts';
import { atLeast, clusterVersions, meshMode, policiesSelecting, policyModel, type PolicyModel, ambientIngressClassKey } from '../policy/index.ts';
import type { ClusterState, Pod, PolicyObject } from '../state/types.ts';
import type { Finding, Rule, RuleContext } from './types.ts';
import { changeRef, compareLoss, touchedPods, enablesAmbient } from '../impact/index.ts';
import { describeVictims, victimsOf } from './render-helpers.ts';

const ID = 'ambient-dns-policy-ineffective';

/** The DNS restrictions a policy rule makes, as short texts ("rules.dns api.github.com", "toFQDNs *.example.com"). */
export function dnsRestrictions(models: readonly PolicyModel[]): string[] {
  const out: string[] = [];
  const add = (s: string): void => {
    if (!out.includes(s)) out.push(s);
  };
  for (const m of models) {
    for (const el of m.elements) {
      if (el.direction !== 'egress' || el.deny) continue;
      for (const p of el.peers) if (p.type === 'fqdn') add(`toFQDNs ${p.matchName ?? p.matchPattern ?? '?'}`);
      for (const s of el.ports) {
        const dns = s.rules?.dns;
        // `matchPattern: "*"` anywhere in the list allows every name: visibility, not a restriction.
        if (!dns || dns.length === 0 || dns.some((d) => d.matchPattern?.trim() === '*')) continue;
        for (const d of dns) add(`rules.dns ${d.matchName ?? d.matchPattern ?? '?'}`);
      }
    }
  }
  return out;
}

/** ztunnel captures this pod's DNS (ambient, not opted out per pod). */
function dnsCaptured(state: ClusterState, pod: Pod): boolean {
  if (meshMode(state, pod) !== 'ambient') return false;
  const a = pod.metadata.annotations ?? {};
  // Ambient captures DNS by default from Istio 1.25 on; an older istiod (by its image tag) does only
  // for pods that ask for it. An unknown version is taken as the newest.
  if (!atLeast(clusterVersions(state).istio, 1, 25)) return a['ambient.istio.io/dns-capture'] === 'true';
  return a['ambient.istio.io/dns-capture'] !== 'false' && a['ambient.istio.io/bypass-dns-capture'] !== 'true';
}

function evaluateDnsAmbient(change: Change, before: ClusterState, after: ClusterState, _ctx: RuleContext): Finding[] {
  const isCilium = change.kind === 'CiliumNetworkPolicy' || change.kind === 'CiliumClusterwideNetworkPolicy';
  let restrictions: string[];
  if (isCilium && change.object && change.operation !== 'DELETE') {
    // Only a policy that itself restricts DNS is reported; other policy changes would only repeat it.
    restrictions = dnsRestrictions(policyModel(change.object as PolicyObject));
    if (restrictions.length === 0) return [];
  } else if (enablesAmbient(change)) {
    restrictions = [];
  } else {
    return [];
  }
  const touched = touchedPods(change, before, after);
  if (touched.pods.length === 0) return [];
  const found = new Set<string>(restrictions);
  // ok = the pod's DNS policy applies as written (no restriction, or ztunnel does not capture its DNS).
  const ok = (state: ClusterState, pod: Pod): boolean | undefined => {
    if (!dnsCaptured(state, pod)) return undefined;
    const r = dnsRestrictions(policiesSelecting(state, pod));
    if (state === after) for (const x of r) found.add(x);
    return r.length === 0;
  };
  // The verdict reads the pod's data plane (containers, sidecar and ambient annotations) besides its
  // identity: replicas with equal labels can differ there (mid-migration, per-pod opt-outs).
  const { lost, stillMissing } = compareLoss(touched.pods, before, after, ok, ambientIngressClassKey);
  const victims = lost.length > 0 ? lost : stillMissing;
  if (victims.length === 0) return [];
  const shown = [...found].slice(0, 2).join(', ') + (found.size > 2 ? ` and ${found.size - 2} more` : '');
  const n = victims.length;
  const who = `${n} ambient pod${n === 1 ? '' : 's'}${touched.synthetic ? ' (pods this policy would select)' : ''}`;
  const message =
    `${changeRef(change)}: DNS restrictions (${shown}) on ${who} whose DNS ztunnel captures: ` +
    `lookups ztunnel answers never reach Cilium's DNS proxy, so they do not apply as written: ${describeVictims(victims)}`;
  const fix =
    'restrict DNS where it is resolved (ztunnel, or Istio ServiceEntry/egress policy), or opt the pods out of ambient DNS capture with the annotation ambient.istio.io/dns-capture: "false"';
  return [{ rule: ID, message, fix, ...victimsOf(victims), ...(lost.length > 0 ? {} : { preexisting: true }) }];
}

export const rule: Rule = {
  id: ID,
  severity: 'I',
  summary: 'Cilium DNS restrictions (rules.dns names, toFQDNs) on ambient pods whose DNS ztunnel proxies do not apply as written',
  docs: `docs/rules/${ID}.md`,
  triggers: [
    { kinds: ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy'], operations: ['CREATE', 'UPDATE'] },
    { kinds: ['Namespace'], operations: ['UPDATE'] },
  ],
  evaluate: evaluateDnsAmbient,
};
