// policiesSelecting of an admission overlay is derived from its base's answer (issue 21): only the models
// the overlay adds are tested against a pod. These tests compare every derived answer with the answer of a
// state built from scratch with the change applied (same models, same order), for each kind of change, and
// check that a pod the change cannot concern gets the base's own array back (the derivation was taken).

import t from 'tap';
import { policiesSelecting } from '../../src/policy/selection.ts';
import { mutationOf } from '../../src/core/change.ts';
import { overlay } from '../../src/state/overlay.ts';
import { inRequestScope } from '../../src/state/request-scope.ts';
import type { ClusterState, Pod } from '../../src/core/objects.ts';
import type { PolicyModel } from '../../src/policy/types.ts';
import { baseCluster, ccnp, cnp, memoryState, netpol, ns, pod, withObject as applied } from '../fixtures/cluster.ts';
import { makeChange } from '../rules/rule-harness.ts';

type Obj = Parameters<typeof makeChange>[1] & object;

const nsSel = (key: string, values: string[]): Record<string, unknown> => ({
  matchExpressions: [{ key: `io.cilium.k8s.namespace.labels.${key}`, operator: 'In', values }],
});

function objects(): Obj[] {
  return baseCluster([
    ns('a', { team: 'red' }), ns('b', { team: 'blue' }), ns('c'),
    pod('a', 'web', { app: 'web' }), pod('a', 'db', { app: 'db' }),
    pod('b', 'web', { app: 'web' }), pod('b', 'api', { app: 'api' }),
    pod('c', 'job', { app: 'job' }),
    ccnp('first', { endpointSelector: {}, egress: [{ toEntities: ['world'] }] }),
    ccnp('red-only', { endpointSelector: nsSel('team', ['red']), ingress: [{ fromEntities: ['cluster'] }] }),
    ccnp('web-only', { endpointSelector: { matchLabels: { app: 'web' } }, ingress: [{}] }),
    cnp('a', 'a-web', { endpointSelector: { matchLabels: { app: 'web' } }, ingress: [{}] }),
    netpol('b', 'b-all', { podSelector: {}, policyTypes: ['Ingress'] }),
  ]) as Obj[];
}

const refs = (models: readonly PolicyModel[]): string[] => models.map((m) => `${m.ref.kind}/${m.ref.namespace}/${m.ref.name}#${m.specIndex}`);
const key = (o: Obj): string => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;


const pods = (s: ClusterState): readonly Pod[] => s.list('Pod');

const cases: { name: string; op: 'CREATE' | 'UPDATE' | 'DELETE'; obj: Obj }[] = [
  { name: 'CREATE of a CCNP selecting every pod', op: 'CREATE', obj: ccnp('all', { endpointSelector: {}, egress: [{ toEntities: ['cluster'] }] }) },
  { name: 'CREATE of a CCNP selecting some namespaces', op: 'CREATE', obj: ccnp('blue', { endpointSelector: nsSel('team', ['blue']), egress: [{}] }) },
  { name: 'UPDATE of the first CCNP to select web only (order kept)', op: 'UPDATE', obj: ccnp('first', { endpointSelector: { matchLabels: { app: 'web' } }, egress: [{}] }) },
  { name: 'UPDATE of a CCNP to select other pods', op: 'UPDATE', obj: ccnp('web-only', { endpointSelector: { matchLabels: { app: 'db' } }, ingress: [{}] }) },
  { name: 'UPDATE of a CCNP into two specs', op: 'UPDATE', obj: { ...ccnp('red-only', {}), specs: [{ endpointSelector: {}, ingress: [{}] }, { endpointSelector: { matchLabels: { app: 'api' } }, egress: [{}] }] } as Obj },
  { name: 'DELETE of a CCNP', op: 'DELETE', obj: ccnp('first', { endpointSelector: {}, egress: [{ toEntities: ['world'] }] }) },
  { name: 'CREATE of a CNP in one namespace', op: 'CREATE', obj: cnp('b', 'b-api', { endpointSelector: { matchLabels: { app: 'api' } }, egress: [{}] }) },
  { name: 'DELETE of a NetworkPolicy', op: 'DELETE', obj: netpol('b', 'b-all', { podSelector: {}, policyTypes: ['Ingress'] }) },
  { name: 'Namespace relabel into a CCNP namespace selector', op: 'UPDATE', obj: ns('c', { team: 'red' }) },
  { name: 'Namespace relabel out of a CCNP namespace selector', op: 'UPDATE', obj: ns('a', { team: 'green' }) },
  { name: 'a Pod relabelled', op: 'UPDATE', obj: pod('c', 'job', { app: 'web' }) },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const objs = objects();
    const base = memoryState(objs);
    // The base's answers first, as a served process has them (the overlay derives from these).
    const baseAnswers = new Map(pods(base).map((p) => [`${p.metadata.namespace}/${p.metadata.name}`, policiesSelecting(base, p)]));
    const old = objs.find((x) => key(x) === key(c.obj));
    const fresh = memoryState(applied(objs, c.obj, c.op === 'DELETE'));
    inRequestScope(() => {
      const change = c.op === 'DELETE' ? makeChange('DELETE', undefined, old!) : makeChange(c.op, c.obj, c.op === 'UPDATE' ? old : undefined);
      const after = overlay(base, mutationOf(change));
      for (const p of pods(after)) {
        const ref = `${p.metadata.namespace}/${p.metadata.name}`;
        const q = fresh.get('Pod', p.metadata.namespace, p.metadata.name)!;
        const derived = policiesSelecting(after, p);
        t.same(refs(derived), refs(policiesSelecting(fresh, q)), `${ref}: as a state built with the change`);
        // Unchanged answers are the base's own arrays: caches keyed by the list keep hitting.
        const was = baseAnswers.get(ref) ?? [];
        if (derived.length === was.length && derived.every((m, i) => m === was[i])) {
          t.equal(derived, baseAnswers.get(ref), `${ref}: the base's array`);
        }
      }
    });
  });
}

t.test('equal derived answers are one array', async (t) => {
  const objs = objects();
  const base = memoryState(objs);
  for (const p of pods(base)) policiesSelecting(base, p);
  inRequestScope(() => {
    const after = overlay(base, mutationOf(makeChange('CREATE', ccnp('all', { endpointSelector: {}, egress: [{}] }))));
    // a/web and b/web have different base answers; b/web and b/api too (b-all + web-only): compare a pair
    // with the same base answer plus the same added model.
    const aDb = policiesSelecting(after, after.get('Pod', 'a', 'db')!);
    const again = policiesSelecting(after, after.get('Pod', 'a', 'db')!);
    t.equal(aDb, again);
    t.same(refs(aDb).at(-1), 'CiliumClusterwideNetworkPolicy//all#0');
  });
});
