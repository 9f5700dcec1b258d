// Runs one rule the way the verdict layer does: before = the fixture state, after = its overlay with
// the change applied. Keeps rule tests short and identical in shape.

import type { Change, Operation } from '../../src/admission/change.ts';
import { groupOf, kindOf } from '../../src/state/kinds.ts';
import { overlay } from '../../src/state/overlay.ts';
import type { ClusterState, KubeObject } from '../../src/state/types.ts';
import type { Finding, Rule, RuleContext, RuleSettings } from '../../src/rules/types.ts';
import { memoryState } from '../fixtures/cluster.ts';

export const DEFAULT_SETTINGS: RuleSettings = {
  apiserverClients: [
    { namespace: 'kube-system', selector: { matchLabels: { 'k8s-app': 'kube-dns' } } },
    { namespace: 'istio-system', selector: { matchLabels: { app: 'istiod' } } },
  ],
  controlPlane: 'auto',
};

type Obj = Record<string, unknown> & { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } };

export function makeChange(op: Operation, object: Obj | undefined, oldObject?: Obj): Change {
  const subject = (object ?? oldObject)!;
  const apiVersion = subject.apiVersion;
  const slash = apiVersion.indexOf('/');
  return {
    uid: 'test-uid',
    operation: op,
    gvk: { group: groupOf(apiVersion), version: slash < 0 ? apiVersion : apiVersion.slice(slash + 1), kind: subject.kind },
    kind: kindOf(subject),
    namespace: subject.metadata.namespace ?? '',
    name: subject.metadata.name,
    ...(object ? { object: object as unknown as KubeObject } : {}),
    ...(oldObject ? { oldObject: oldObject as unknown as KubeObject } : {}),
    dryRun: false,
    userInfo: { username: 'tester' },
  };
}

export interface RuleRun {
  findings: Finding[];
  before: ClusterState;
  after: ClusterState;
}

/**
 * Evaluate `rule` for a request on a cluster made of `objects`. For UPDATE and DELETE the old object is
 * taken from the state when not given (like the apiserver does).
 */
export function runRule(
  rule: Rule,
  objects: Obj[],
  op: Operation,
  object: Obj | undefined,
  opts: { oldObject?: Obj; settings?: Partial<RuleSettings> } = {},
): RuleRun {
  const before = memoryState(objects);
  let oldObject = opts.oldObject;
  if (!oldObject && op !== 'CREATE') {
    const subject = object!;
    const k = kindOf(subject);
    const found = k ? before.get(k, subject.metadata.namespace, subject.metadata.name) : undefined;
    if (found) oldObject = found as unknown as Obj;
  }
  const change = makeChange(op, op === 'DELETE' ? undefined : object, op === 'DELETE' ? (oldObject ?? object) : oldObject);
  const after = overlay(before, change);
  const ctx: RuleContext = { settings: { ...DEFAULT_SETTINGS, ...opts.settings } };
  return { findings: rule.evaluate(change, before, after, ctx), before, after };
}
