// cilium-cni-exclusive: with cni-exclusive on (the agent's default), Cilium keeps /etc/cni/net.d to itself
// and removes or renames every other CNI configuration it finds. Istio's CNI plugin (istio-cni, required
// by ambient and used by sidecars when the CNI mode is installed) chains itself into that configuration:
// the two keep undoing each other's work, istio-cni never becomes ready, and pods start without Istio's
// traffic redirection (or not at all).
//
// The rule folder: index.ts (this file: metadata, scope, check), messages.ts (the words, per code),
// testdata/*.yaml (fixtures run by test/rules/fixtures.test.ts). docs/adding-a-rule.md explains the layout.

import type { Change } from '../../core/change.ts';
import { ciliumConfig, istioCniUsage } from '../../policy/index.ts';
import type { ClusterState } from '../../core/objects.ts';
import { enablesAmbient, enablesInjection, isCiliumConfigChange as isCiliumConfig } from '../../impact/index.ts';
import type { Finding } from '../../core/finding.ts';
import type { Rule, RuleContext } from '../../core/rule.ts';
import { messages } from './messages.ts';

const ID = 'cilium-cni-exclusive';

/** What the request does that this rule judges; undefined: nothing to judge. */
type Subject =
  | { readonly by: 'cilium-config' }
  | { readonly by: 'ambient-namespace'; readonly namespace: string }
  | { readonly by: 'injection-namespace'; readonly namespace: string };

/** Cheap, from the request alone: a cilium-config write, or a Namespace newly enrolled in ambient or injection. */
export function scope(change: Change): Subject | undefined {
  if (isCiliumConfig(change) && change.operation !== 'DELETE') return { by: 'cilium-config' };
  if (enablesAmbient(change)) return { by: 'ambient-namespace', namespace: change.name };
  if (enablesInjection(change)) return { by: 'injection-namespace', namespace: change.name };
  return undefined;
}

function inUse(state: ClusterState): { cniAgent: boolean; ztunnel: boolean; ambientNamespaces: readonly string[] } {
  const u = istioCniUsage(state);
  return { cniAgent: u.cniAgent, ztunnel: u.ztunnel, ambientNamespaces: u.ambientNamespaces };
}

/** Cilium is exclusive while something uses istio-cni. */
function conflict(state: ClusterState): boolean {
  const cfg = ciliumConfig(state);
  if (!cfg.present || !cfg.cniExclusive) return false;
  const u = istioCniUsage(state);
  return u.cniAgent || u.ztunnel || u.ambientNamespaces.length > 0;
}

export function check(subject: Subject, before: ClusterState, after: ClusterState): Finding[] {
  // Injection only depends on istio-cni when its node agent is installed; then the conflict preexists.
  if (subject.by === 'injection-namespace' && !istioCniUsage(after).cniAgent) return [];
  if (!conflict(after)) return [];
  const preexisting = conflict(before);
  const usage = inUse(after);
  switch (subject.by) {
    case 'cilium-config':
      return [messages.finding(preexisting ? 'config-keeps-on' : 'config-turns-on', usage, { preexisting })];
    case 'ambient-namespace':
      return [messages.finding('namespace-joins-ambient', { ...usage, namespace: subject.namespace }, { preexisting })];
    case 'injection-namespace':
      return [messages.finding('namespace-enables-injection', { ...usage, namespace: subject.namespace }, { preexisting })];
  }
}

export const rule: Rule = {
  id: ID,
  severity: 'B',
  summary: 'cni-exclusive not "false" while istio-cni / ambient is in use: Cilium deletes Istio\'s CNI configuration',
  docs: `docs/rules/${ID}.md`,
  triggers: [
    { kinds: ['ConfigMap'], operations: ['CREATE', 'UPDATE'], when: 'only `kube-system/cilium-config`; always examined' },
    {
      kinds: ['Namespace'],
      operations: ['CREATE', 'UPDATE'],
      when: 'only when the request enrolls it in ambient, or enables injection while the istio-cni agent runs',
    },
  ],
  messages,
  evaluate: (change: Change, before: ClusterState, after: ClusterState, _ctx: RuleContext): Finding[] => {
    const subject = scope(change);
    return subject ? check(subject, before, after) : [];
  },
};
