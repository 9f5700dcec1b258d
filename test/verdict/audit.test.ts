// The audit attributes every problem that exists now to the objects that cause it. Built from the
// project's worked examples (examples/policies/<rule>.bad.yaml and .good.yaml, each sourced on its
// rule page): each bad example, added to the example cluster, is reported on the bad object under its
// own rule; each good example adds nothing. Plus the shapes the definition has to get right: a problem
// two objects cause, an object that only looks related, modes and exemptions.

import { readdirSync } from 'node:fs';
import t from 'tap';

import { defaultConfig, type Config } from '../../src/config/config.ts';
import { allRules } from '../../src/rules/registry.ts';
import { readManifests } from '../../src/state/io/manifests.ts';
import { loadSnapshot } from '../../src/state/snapshot.ts';
import { kindOf } from '../../src/core/kinds.ts';
import { transformObject } from '../../src/state/transform.ts';
import type { MemoryState } from '../../src/state/store.ts';
import { auditedKinds, auditState } from '../../src/verdict/audit.ts';
import { createDecide } from '../../src/verdict/decide.ts';

const root = new URL('../../', import.meta.url).pathname;
const rules = allRules();

function stateWith(files: string[]): MemoryState {
  const state = loadSnapshot([`${root}examples/cluster`]);
  for (const d of readManifests(files)) {
    const kind = kindOf(d.object as { apiVersion: string; kind: string });
    if (kind) state.upsert(kind, transformObject(kind, d.object));
  }
  return state;
}

function audit(state: MemoryState, config: Config = defaultConfig(rules)) {
  return auditState(state, createDecide(rules, config), rules, config);
}

/** "Kind ns/name rule action" for every finding, sorted. */
function rows(results: ReturnType<typeof audit>): string[] {
  return results.flatMap((r) => r.findings.map((f) => `${r.kind} ${r.namespace}/${r.name} ${f.rule} ${f.action}${f.shared ? ' shared' : ''}`)).sort();
}

t.test('the example cluster has no problem', async (t) => {
  const results = audit(loadSnapshot([`${root}examples/cluster`]));
  t.ok(results.length > 20, `${results.length} objects audited`);
  t.same(rows(results), []);
});

const examples = readdirSync(`${root}examples/policies`).filter((f) => f.endsWith('.bad.yaml')).sort();

t.test('every bad example is reported on its object, under its rule; every good one is quiet', async (t) => {
  t.equal(examples.length, rules.length, 'one bad example per rule');
  for (const file of examples) {
    const rule = file.replace(/\.bad\.yaml$/, '');
    const bad = readManifests([`${root}examples/policies/${file}`]).map((d) => d.object as { kind: string; metadata: { name: string } });
    const found = rows(audit(stateWith([`${root}examples/policies/${file}`])));
    const mine = found.filter((r) => r.split(' ')[2] === rule);
    t.ok(mine.length > 0, `${rule}: reported (${found.join('; ')})`);
    t.ok(
      mine.some((r) => bad.some((o) => r.startsWith(`${o.kind} `) && r.split(' ')[1]!.endsWith(`/${o.metadata.name}`))),
      `${rule}: on an object of the bad example`,
    );
    const good = rows(audit(stateWith([`${root}examples/policies/${rule}.good.yaml`])));
    t.same(good, [], `${rule}: the good example adds nothing`);
  }
});

t.test('a problem two objects cause is reported on both, shared, at deny level', async (t) => {
  const bad = `${root}examples/policies/dns-egress-missing.bad.yaml`;
  const state = stateWith([bad]);
  const [doc] = readManifests([bad]);
  const copy = structuredClone(doc!.object) as { metadata: { name: string } };
  copy.metadata.name = 'netshoot-egress-copy';
  state.upsert('NetworkPolicy', transformObject('NetworkPolicy', copy as Record<string, unknown>));
  t.same(rows(audit(state)), [
    'NetworkPolicy green/netshoot-egress dns-egress-missing deny shared',
    'NetworkPolicy green/netshoot-egress-copy dns-egress-missing deny shared',
  ]);
});

t.test('near miss: a policy on the same pods that does not take part is not reported', async (t) => {
  const state = stateWith([`${root}examples/policies/dns-egress-missing.bad.yaml`]);
  state.upsert(
    'NetworkPolicy',
    transformObject('NetworkPolicy', {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'ingress-only', namespace: 'green' },
      spec: { podSelector: { matchLabels: { app: 'netshoot' } }, policyTypes: ['Ingress'], ingress: [{ from: [{ podSelector: {} }] }] },
    }),
  );
  t.same(rows(audit(state)), ['NetworkPolicy green/netshoot-egress dns-egress-missing deny']);
});

t.test('config: audit mode reports deny-level problems as audit; off and exempt namespaces report nothing', async (t) => {
  const state = stateWith([`${root}examples/policies/dns-egress-missing.bad.yaml`, `${root}examples/policies/hbone-15008-blocked.bad.yaml`]);
  const base = defaultConfig(rules);
  t.same(rows(audit(state, { ...base, mode: 'audit' })), [
    'CiliumNetworkPolicy hbone-demo/hello-app-ingress hbone-15008-blocked audit',
    'NetworkPolicy green/netshoot-egress dns-egress-missing audit',
  ]);
  t.same(rows(audit(state, { ...base, rules: { ...base.rules, 'dns-egress-missing': 'off' } })), ['CiliumNetworkPolicy hbone-demo/hello-app-ingress hbone-15008-blocked deny']);
  t.same(rows(audit(state, { ...base, exemptions: { namespaces: ['hbone-demo'] } })), ['NetworkPolicy green/netshoot-egress dns-egress-missing deny']);
});

t.test('audited kinds are those a rule judges on CREATE', async (t) => {
  const kinds = auditedKinds(rules);
  for (const k of ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy', 'NetworkPolicy', 'ConfigMap', 'AuthorizationPolicy', 'PeerAuthentication'] as const) t.ok(kinds.includes(k), k);
  t.notOk(kinds.includes('Pod'), 'pods are victims, not causes');
  t.notOk(kinds.includes('EndpointSlice'));
});
