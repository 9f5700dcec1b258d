// l7-proxy-disabled: with `enable-l7-proxy: "false"` the Cilium agent refuses any rule carrying L7
// rules ("L7 policy is not supported since L7 proxy is not enabled"), so the whole policy is not
// applied: neither its L7 filtering nor its L3/L4 allows and default deny. kubectl apply succeeds; only
// the agent logs and the policy status say so.

import type { Change } from '../core/change.ts';
import { ciliumConfig, formatPolicyRef, podsSelectedBy, policyModel, type PolicyModel } from '../policy/index.ts';
import type { ClusterState, Pod, PolicyObject } from '../state/types.ts';
import type { Finding, Rule, RuleContext } from './types.ts';
import { changeRef, isCiliumConfigChange } from '../impact/index.ts';
import { podRef, victimsOf } from './render-helpers.ts';

const ID = 'l7-proxy-disabled';

function l7ProxyEnabled(state: ClusterState): boolean {
  return ciliumConfig(state).l7Proxy;
}

/** The L7 protocols a policy object uses ("http", "dns", ...), empty when none. */
function l7Kinds(obj: PolicyObject | undefined): string[] {
  if (!obj) return [];
  const kinds = new Set<string>();
  const models: readonly PolicyModel[] = policyModel(obj);
  for (const m of models) {
    if (!m.hasL7) continue;
    for (const e of m.elements) {
      for (const s of e.ports) {
        const r = s.rules;
        if (!r) continue;
        if ((r.http?.length ?? 0) > 0) kinds.add('http');
        if ((r.kafka?.length ?? 0) > 0) kinds.add('kafka');
        if ((r.dns?.length ?? 0) > 0) kinds.add('dns');
        if ((r.l7?.length ?? 0) > 0 || r.l7proto) kinds.add(r.l7proto ?? 'l7');
      }
    }
  }
  return [...kinds];
}

function forPolicy(change: Change, before: ClusterState, after: ClusterState): Finding[] {
  const obj = change.object as PolicyObject | undefined;
  const kinds = l7Kinds(obj);
  if (!obj || kinds.length === 0 || l7ProxyEnabled(after)) return [];
  // Already rejected before this request (same L7 use, proxy already off): a reminder, not news.
  const preexisting = change.operation === 'UPDATE' && l7Kinds(change.oldObject as PolicyObject | undefined).length > 0 && !l7ProxyEnabled(before);
  const pods = podsSelectedBy(after, obj);
  return [
    {
      rule: ID,
      message:
        `${changeRef(change)} has L7 rules (${kinds.join(', ')}) but enable-l7-proxy is "false": ` +
        `the Cilium agent rejects the whole policy, none of its rules apply`,
      fix: `remove the toPorts[].rules sections (keep L3/L4 only), or set enable-l7-proxy: "true" in kube-system/cilium-config`,
      ...(pods.length > 0 ? victimsOf(pods) : {}),
      ...(preexisting ? { preexisting: true } : {}),
    },
  ];
}

function forConfig(before: ClusterState, after: ClusterState): Finding[] {
  if (!l7ProxyEnabled(before) || l7ProxyEnabled(after)) return [];
  // A rare, cluster-wide request: listing every Cilium policy is acceptable here.
  const names: string[] = [];
  const pods = new Map<string, Pod>();
  for (const obj of [...after.list('CiliumNetworkPolicy'), ...after.list('CiliumClusterwideNetworkPolicy')]) {
    if (l7Kinds(obj).length === 0) continue;
    const m = policyModel(obj)[0];
    names.push(m ? formatPolicyRef(m.ref) : obj.metadata.name);
    for (const p of podsSelectedBy(after, obj)) pods.set(podRef(p), p);
  }
  if (names.length === 0) return [];
  const shown = names.length > 3 ? `${names.slice(0, 3).join(', ')} and ${names.length - 3} more` : names.join(', ');
  return [
    {
      rule: ID,
      message: `setting enable-l7-proxy to "false" makes the Cilium agent reject ${names.length} polic${names.length === 1 ? 'y' : 'ies'} with L7 rules: ${shown}`,
      fix: `keep enable-l7-proxy: "true", or first remove the L7 rules (toPorts[].rules) from ${shown}`,
      ...(pods.size > 0 ? victimsOf([...pods.values()]) : {}),
    },
  ];
}

function evaluateL7(change: Change, before: ClusterState, after: ClusterState, _ctx: RuleContext): Finding[] {
  if (change.kind === 'CiliumNetworkPolicy' || change.kind === 'CiliumClusterwideNetworkPolicy') return forPolicy(change, before, after);
  if (isCiliumConfigChange(change) && change.operation !== 'DELETE') return forConfig(before, after);
  return [];
}

export const rule: Rule = {
  id: ID,
  severity: 'I',
  summary: 'L7 rules (http, kafka, dns) while enable-l7-proxy is "false": the agent rejects the whole policy',
  docs: 'docs/rules/l7-proxy-disabled.md',
  triggers: [
    { kinds: ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy'], operations: ['CREATE', 'UPDATE'] },
    { kinds: ['ConfigMap'], operations: ['CREATE', 'UPDATE'] },
  ],
  evaluate: evaluateL7,
};
