// fqdn-without-dns-proxy judges no class when no policy of the state after the change has toFQDNs
// (src/policy/fqdn.ts hasFqdnRules): fqdnProblem is then undefined for every pod. These tests check the
// answer against a state built with the change (CREATE, UPDATE and DELETE of the one toFQDNs policy,
// changes of other kinds over a base with and without one), that fqdnProblem agrees with it on every
// pod, and that the rule's verdict is the one of the full per-class pass.

import t from 'tap';
import type { Test } from 'tap';
import { fqdnProblem, hasFqdnRules } from '../../src/policy/fqdn.ts';
import { mutationOf } from '../../src/core/change.ts';
import { overlay } from '../../src/state/overlay.ts';
import { inRequestScope } from '../../src/state/request-scope.ts';
import type { ClusterState } from '../../src/core/objects.ts';
import { baseCluster, ccnp, ciliumConfigMap, cnp, HEALTHY_CILIUM_CONFIG, memoryState, netpol, ns, pod, withObject as applied } from '../fixtures/cluster.ts';
import { makeChange } from '../rules/rule-harness.ts';
import { rule } from '../../src/rules/fqdn-without-dns-proxy/index.ts';
import { defaultConfig } from '../../src/config/config.ts';
import { allRules } from '../../src/rules/registry.ts';

type Obj = Parameters<typeof makeChange>[1] & object;
const key = (o: Obj): string => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;

const dnsEgress = { toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s-app': 'kube-dns' } }], toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }] }] };
const fqdnPolicy = cnp('a', 'to-example', { endpointSelector: { matchLabels: { app: 'web' } }, egress: [dnsEgress, { toFQDNs: [{ matchName: 'example.com' }] }] });
const plain = cnp('b', 'b-egress', { endpointSelector: {}, egress: [dnsEgress] });

function objects(extra: Obj[] = []): Obj[] {
  return baseCluster([
    ns('a'), ns('b'),
    pod('a', 'web', { app: 'web' }), pod('a', 'db', { app: 'db' }), pod('b', 'api', { app: 'api' }),
    netpol('b', 'np', { podSelector: {}, policyTypes: ['Egress'], egress: [{}] }),
    ...extra,
  ]) as Obj[];
}

const settings = defaultConfig(allRules()).settings;
const verdict = (change: ReturnType<typeof makeChange>, before: ClusterState, after: ClusterState): string =>
  JSON.stringify(rule.evaluate(change, before, after, { settings } as never).map((f) => [f.code, f.victims]));

/** hasFqdnRules of the overlay equals that of a state built with the change, and false means no pod has a problem. */
function agrees(t: Test, objs: Obj[], change: ReturnType<typeof makeChange>, next: Obj[], expected: boolean, finding: boolean): void {
  const base = memoryState(objs);
  hasFqdnRules(base); // the base's answer memoised first
  const fresh = memoryState(next);
  inRequestScope(() => {
    const after = overlay(base, mutationOf(change));
    t.equal(hasFqdnRules(after), expected, 'the overlay');
    t.equal(hasFqdnRules(fresh), expected, 'a state built with the change');
    if (!expected) for (const p of after.list('Pod')) t.equal(fqdnProblem(after, p), undefined, `no FQDN problem for ${p.metadata.namespace}/${p.metadata.name}`);
    const v = verdict(change, base, after);
    t.equal(v, verdict(change, memoryState(objs), fresh), 'the rule says the same over a state built with the change');
    t.equal(v !== '[]', finding, finding ? 'a finding' : 'no finding');
  });
}

t.test('no toFQDNs anywhere, before or after: nothing to judge', async (t) => {
  const objs = objects();
  t.equal(hasFqdnRules(memoryState(objs)), false);
  agrees(t, objs, makeChange('CREATE', plain), applied(objs, plain), false, false);
  const cm = ciliumConfigMap({ ...HEALTHY_CILIUM_CONFIG, 'enable-policy': 'always' }) as Obj;
  agrees(t, objs, makeChange('UPDATE', cm, objs.find((o) => key(o) === key(cm))), applied(objs, cm), false, false);
});

t.test('a change that adds toFQDNs: judged', async (t) => {
  const objs = objects();
  // a/web now has toFQDNs and a DNS allow without rules.dns: the proxy never sees the lookups.
  agrees(t, objs, makeChange('CREATE', fqdnPolicy), applied(objs, fqdnPolicy), true, true);
  const asCcnp = ccnp('to-example', { endpointSelector: { matchLabels: { app: 'web' } }, egress: [dnsEgress, { toFQDNs: [{ matchPattern: '*.example.com' }] }] });
  agrees(t, objs, makeChange('CREATE', asCcnp), applied(objs, asCcnp), true, true);
});

t.test('a base with toFQDNs: kept by unrelated changes, gone with its policy', async (t) => {
  const objs = objects([fqdnPolicy]);
  t.equal(hasFqdnRules(memoryState(objs)), true);
  agrees(t, objs, makeChange('CREATE', plain), applied(objs, plain), true, false);
  const cm = ciliumConfigMap({ ...HEALTHY_CILIUM_CONFIG, 'enable-policy': 'always' }) as Obj;
  // (fqdn-without-dns-proxy judges policy changes only.)
  agrees(t, objs, makeChange('UPDATE', cm, objs.find((o) => key(o) === key(cm))), applied(objs, cm), true, false);
  // Deleting the only toFQDNs policy leaves none: every pod is skipped.
  agrees(t, objs, makeChange('DELETE', undefined, fqdnPolicy), applied(objs, fqdnPolicy, true), false, false);
  // Updating it into a policy without toFQDNs: the same.
  const without = cnp('a', 'to-example', { endpointSelector: { matchLabels: { app: 'web' } }, egress: [dnsEgress] });
  agrees(t, objs, makeChange('UPDATE', without, fqdnPolicy), applied(objs, without), false, false);
});
