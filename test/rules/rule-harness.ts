// Runs one rule the way the verdict layer does: before = the fixture state, after = its overlay with
// the change applied. Keeps rule tests short and identical in shape.

import { buildChange, gvkOf, mutationOf, type Change, type ObjectInput, type Operation, type StoredObject } from '../../src/core/change.ts';
import type { Finding } from '../../src/core/finding.ts';
import { kindOf } from '../../src/core/kinds.ts';
import type { ClusterState, KubeObject } from '../../src/core/objects.ts';
import type { Rule, RuleContext, RuleSettings } from '../../src/core/rule.ts';
import { overlay } from '../../src/state/overlay.ts';
import { slimRequestObject } from '../../src/state/slim.ts';
import { memoryState } from '../fixtures/cluster.ts';

export const DEFAULT_SETTINGS: RuleSettings = {
  apiserverClients: [
    { namespace: 'kube-system', selector: { matchLabels: { 'k8s-app': 'kube-dns' } } },
    { namespace: 'istio-system', selector: { matchLabels: { app: 'istiod' } } },
  ],
  controlPlane: 'auto',
};

type Obj = Record<string, unknown> & { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } };

/**
 * The Change of a request with these objects, built like the webhook builds it (objects slimmed by the
 * state transform). An object that is a state's own (`stored`) is taken as it is.
 */
export function makeChange(op: Operation, object: Obj | undefined, oldObject?: Obj | StoredObject): Change {
  const old: ObjectInput | undefined = oldObject === undefined ? undefined : isStored(oldObject) ? oldObject : { sent: oldObject };
  const subject: { apiVersion: string; kind: string } = object ?? (old && 'stored' in old ? old.stored : (oldObject as Obj));
  return buildChange(
    {
      uid: 'test-uid',
      operation: op,
      gvk: gvkOf(subject.apiVersion, subject.kind),
      ...(object ? { object: { sent: object } } : {}),
      ...(old ? { oldObject: old } : {}),
      userInfo: { username: 'tester' },
    },
    slimRequestObject,
  );
}

const isStored = (o: Obj | StoredObject): o is StoredObject => !('apiVersion' in o) && 'stored' in o;

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
  let oldObject: Obj | StoredObject | undefined = opts.oldObject;
  if (!oldObject && op !== 'CREATE') {
    const subject = object!;
    const k = kindOf(subject);
    const found = k ? before.get(k, subject.metadata.namespace, subject.metadata.name) : undefined;
    if (found) oldObject = { stored: found };
  }
  const change = makeChange(op, op === 'DELETE' ? undefined : object, op === 'DELETE' ? (oldObject ?? object) : oldObject);
  const after = overlay(before, mutationOf(change));
  const ctx: RuleContext = { settings: { ...DEFAULT_SETTINGS, ...opts.settings } };
  return { findings: rule.evaluate(change, before, after, ctx), before, after };
}
