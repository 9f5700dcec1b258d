// The synthetic clusters must be loadable into a real kube-apiserver (bench/live.ts creates them there):
// the apiserver refuses a Service whose clusterIP another Service holds or that lies outside the service
// range, a Deployment container without an image, a webhook without sideEffects. The end-to-end test of
// bench/live.ts loads a small cluster; these checks cover the sizes it does not load.

import ipaddr from 'ipaddr.js';
import t from 'tap';

import { BULK_NAMESPACE, BULK_PODS, generateCluster, type Obj } from '../../bench/cluster-gen.ts';
import { worstCaseRequests } from '../../bench/worst-case.ts';
import { requestMix, SEQ_PLACEHOLDER } from '../../bench/requests.ts';
import { toChange } from '../../src/admission/review.ts';
import type { AdmissionReview } from '../../src/admission/schema.ts';
import { defaultConfig } from '../../src/config/config.ts';
import { allRules } from '../../src/rules/registry.ts';
import { stateFromObjects } from '../../src/state/snapshot.ts';
import { cacheKey } from '../../src/verdict/cache.ts';
import { createDecide } from '../../src/verdict/decide.ts';

/** --service-cluster-ip-range of the test control plane (test/e2e/harness.ts). */
const SERVICE_RANGE = ipaddr.parseCIDR('10.96.0.0/12');

const specOf = (o: Obj): Record<string, unknown> => (o['spec'] ?? {}) as Record<string, unknown>;

for (const pods of [10_000, 50_000]) {
  t.test(`${pods} pods: every Service has its own clusterIP inside the service range`, async (t) => {
    const services = generateCluster(pods).filter((o) => o.kind === 'Service');
    const byIp = new Map<string, string>();
    const clashes: string[] = [];
    const outside: string[] = [];
    for (const s of services) {
      const ip = specOf(s)['clusterIP'] as string;
      const name = `${s.metadata.namespace}/${s.metadata.name}`;
      if (byIp.has(ip)) clashes.push(`${name} and ${byIp.get(ip)} share ${ip}`);
      byIp.set(ip, name);
      if (!ipaddr.parse(ip).match(SERVICE_RANGE)) outside.push(`${name}: ${ip}`);
    }
    // Five per namespace of 50 pods; at 50k pods 2,500 of them share one namespace (BULK_NAMESPACE).
    t.ok(services.length > pods / 11, `${services.length} Services`);
    t.same(clashes.slice(0, 5), [], 'no two Services share a clusterIP');
    t.same(outside.slice(0, 5), [], 'every clusterIP lies in 10.96.0.0/12');
    t.equal(byIp.get('10.96.0.10'), 'kube-system/kube-dns', 'kube-dns keeps 10.96.0.10');
  });
}

t.test('objects carry the fields the apiserver requires', async (t) => {
  const objs = generateCluster(1_000);
  for (const d of objs.filter((o) => o.kind === 'Deployment')) {
    const containers = ((specOf(d)['template'] as { spec: { containers: { image?: string }[] } }).spec.containers);
    t.ok(containers.every((c) => typeof c.image === 'string' && c.image !== ''), `${d.metadata.name}: every container has an image`);
  }
  for (const w of objs.filter((o) => o.kind === 'MutatingWebhookConfiguration')) {
    for (const hook of w['webhooks'] as { sideEffects?: string; admissionReviewVersions?: string[] }[]) {
      t.ok(hook.sideEffects && hook.admissionReviewVersions?.length, `${w.metadata.name}: sideEffects and admissionReviewVersions set`);
    }
  }
});

t.test('50k pods: no two objects of a kind share a namespace and name', async (t) => {
  const seen = new Set<string>();
  const dups: string[] = [];
  for (const o of generateCluster(50_000)) {
    const id = `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
    if (seen.has(id)) dups.push(id);
    seen.add(id);
  }
  t.same(dups.slice(0, 5), [], 'names are unique (the apiserver refuses a second object of one name)');
});

t.test('every request of the mix can be made new: its sequence label is part of the verdict cache key, and changes no decision', async (t) => {
  const mix = requestMix(1000, 40);
  const state = stateFromObjects(generateCluster(1000));
  const decide = createDecide(allRules(), defaultConfig(allRules()));
  for (const r of mix) {
    const text = JSON.stringify(r.review);
    const objects = ['object', 'oldObject'].filter((k) => (r.review['request'] as Record<string, unknown>)[k]);
    t.equal(text.split(`"${SEQ_PLACEHOLDER}"`).length - 1, objects.length, `${r.label}: one placeholder per object`);
    const renumbered = JSON.parse(text.replaceAll(`"${SEQ_PLACEHOLDER}"`, '"seq-00000042"')) as AdmissionReview;
    const a = toChange(r.review as unknown as AdmissionReview);
    const b = toChange(renumbered);
    if (a.kind === undefined) continue;
    t.not(cacheKey(a), cacheKey(b), `${r.label}: renumbered is a new request`);
    t.same(decide(b, state), decide(a, state), `${r.label}: same decision`);
  }
});

t.test('50k pods: the objects the worst-case requests of issue 21 act on are there', async (t) => {
  const objs = generateCluster(50_000);
  t.equal(objs.filter((o) => o.kind === 'Pod' && o.metadata.namespace === BULK_NAMESPACE).length, BULK_PODS, 'one namespace holds the pods a Namespace relabel moves');
  t.equal(objs.filter((o) => o.kind === 'Pod' && o.metadata.namespace?.startsWith('team-')).length, 50_000 - BULK_PODS);
  const requests = worstCaseRequests(objs);
  t.same(requests.map((r) => r.operation), ['CREATE', 'CREATE', 'UPDATE', 'UPDATE', 'DELETE']);
  const del = requests[4]!;
  t.equal(del.oldObject?.metadata.name, 'allow-dns-everywhere', 'the DELETE removes the cluster-wide DNS policy');
  t.match(JSON.stringify(del.oldObject), /kube-dns/);
  t.notOk(generateCluster(10_000).some((o) => o.metadata.namespace === BULK_NAMESPACE), 'smaller states are generated as before');
});
