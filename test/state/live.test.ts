import t from 'tap';
import { Writable } from 'node:stream';
import pino from 'pino';
import { KIND_NAMES, KINDS } from '../../src/state/kinds.ts';
import { collectionPath, listKind, LiveSource } from '../../src/state/live.ts';
import type { ConfigMap, Pod } from '../../src/state/types.ts';
import { FakeApiserver } from './fake-apiserver.ts';

function capture(): { logger: pino.Logger; lines: () => Record<string, unknown>[] } {
  const out: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      out.push(String(chunk));
      cb();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines: () => out.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l)) };
}

async function until(what: string, cond: () => boolean, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const PODS = collectionPath('Pod');
const CMS = collectionPath('ConfigMap');
const SVCS = collectionPath('Service');
const CNPS = collectionPath('CiliumNetworkPolicy');
const GWS = collectionPath('Gateway');

function pod(namespace: string, name: string, labels: Record<string, string> = {}) {
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name, namespace, labels, annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{"big":"blob"}' }, managedFields: [{}] },
    spec: { containers: [{ name: 'app', image: 'x', env: [{ name: 'TOKEN', value: 'hunter2' }] }] },
  };
}

async function fake(t: { teardown(fn: () => unknown): void }): Promise<FakeApiserver> {
  const api = new FakeApiserver();
  await api.start();
  t.teardown(() => api.stop());
  for (const k of KIND_NAMES) if (!KINDS[k].optional) api.serve(collectionPath(k));
  api.serve(CNPS); // Cilium is installed, Istio and the Gateway API are not
  return api;
}

/**
 * A LiveSource over a fake apiserver holding one pod, shop/a, started; `beforeStart` can set the fake
 * up first (say, refuse watches).
 */
async function startedWithOnePod(
  t: { teardown(fn: () => unknown): void },
  watchdogSeconds: number,
  beforeStart: (api: FakeApiserver) => void = () => undefined,
): Promise<{ api: FakeApiserver; log: ReturnType<typeof capture>; src: LiveSource }> {
  const api = await fake(t);
  api.put(PODS, pod('shop', 'a'));
  const log = capture();
  const src = new LiveSource({ logger: log.logger, api: api.api(), watchdogSeconds });
  t.teardown(() => src.stop());
  beforeStart(api);
  await src.start();
  return { api, log, src };
}

/** Pod list requests the fake has seen: first pages only, unless `withContinue`. */
const podListCount = (api: FakeApiserver, withContinue = false): number =>
  api.requests.filter((r) => r.startsWith(`GET ${PODS}?limit=`) && (withContinue || !r.includes('continue='))).length;
/** Pod watch requests the fake has seen, in order. */
const podWatchRequests = (api: FakeApiserver): string[] => api.requests.filter((r) => r.startsWith(`GET ${PODS}?watch=true`));

t.test('collection paths', async (t) => {
  t.equal(collectionPath('Pod'), '/api/v1/pods');
  t.equal(collectionPath('ConfigMap', 'kube-system'), '/api/v1/namespaces/kube-system/configmaps');
  t.equal(collectionPath('Namespace', 'ignored'), '/api/v1/namespaces');
  t.equal(collectionPath('CiliumClusterwideNetworkPolicy'), '/apis/cilium.io/v2/ciliumclusterwidenetworkpolicies');
});

t.test('listKind paginates and transforms', async (t) => {
  const api = await fake(t);
  for (let i = 0; i < 5; i++) api.put(PODS, pod('shop', `p${i}`));
  const { items, resourceVersion } = await listKind(api.api(), 'Pod');
  t.equal(items.length, 5);
  t.equal(resourceVersion, '105');
  t.equal(api.requests.filter((r) => r.startsWith('GET /api/v1/pods?')).length, 3, 'three pages of 2');
  t.same(items[0], { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p0', namespace: 'shop' }, spec: { containers: [{ name: 'app' }] } });
  await t.rejects(listKind(api.api(), 'Gateway'), { name: 'ApiStatusError', statusCode: 404 });
});

t.test('LiveSource: sync, events, missing CRDs, ConfigMap namespaces', async (t) => {
  const api = await fake(t);
  api.put(PODS, pod('shop', 'web-1', { app: 'web' }));
  api.put(CMS, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cilium-config', namespace: 'kube-system' }, data: { 'routing-mode': 'tunnel' } });
  api.put(CMS, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'app', namespace: 'shop' }, data: { password: 'x' } });
  api.put(CMS, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'istio', namespace: 'mesh-root' }, data: { mesh: 'x' } });
  const log = capture();
  const src = new LiveSource({ logger: log.logger, api: api.api(), istioRootNamespace: 'mesh-root' });
  t.teardown(() => src.stop());
  t.equal(src.synced(), false);
  await src.start();
  t.equal(src.synced(), true);
  const s = src.state;
  t.equal(s.list('Pod').length, 1);
  t.equal(s.podsWithLabel('shop', 'app', 'web').length, 1);
  t.equal((s.list('Pod')[0] as Pod).metadata.annotations, undefined, 'transformed on arrival');
  t.same(s.list('ConfigMap').map((c) => `${c.metadata.namespace}/${c.metadata.name}`).sort(), ['kube-system/cilium-config', 'mesh-root/istio']);
  t.same((s.get('ConfigMap', 'kube-system', 'cilium-config') as ConfigMap).data, { 'routing-mode': 'tunnel' });
  // ConfigMaps are watched per namespace only.
  t.notOk(api.requests.some((r) => r.startsWith(`GET ${CMS}`)), 'no cluster-wide ConfigMap list or watch');

  const st = src.stats();
  t.equal(st.synced, true);
  t.equal(st.objects.Pod, 1);
  t.equal(st.objects.ConfigMap, 2);
  t.same([...(st.missingKinds ?? [])].sort(), ['AuthorizationPolicy', 'CiliumClusterwideNetworkPolicy', 'Gateway', 'PeerAuthentication']);
  t.ok((st.secondsSinceLastEvent ?? 99) < 5);
  t.ok(log.lines().some((l) => l.kind === 'Gateway' && /CRD not installed/.test(String(l.msg))), 'missing CRD logged');

  // Watch events reach the state.
  await until('watches open', () => api.openWatches(PODS) === 1);
  api.put(PODS, pod('shop', 'web-2', { app: 'web' }));
  await until('web-2 added', () => s.get('Pod', 'shop', 'web-2') !== undefined);
  t.equal(s.podsWithLabel('shop', 'app', 'web').length, 2);
  api.put(PODS, pod('shop', 'web-2', { app: 'api' }));
  await until('web-2 relabelled', () => s.get('Pod', 'shop', 'web-2')?.metadata.labels?.app === 'api');
  t.equal(s.podsWithLabel('shop', 'app', 'web').length, 1);
  // An event that changes only what the transform drops (status conditions, resourceVersion) keeps
  // the stored object and the revision; the next real change moves both.
  const before = s.get('Pod', 'shop', 'web-2');
  const revision = s.revision;
  api.put(PODS, { ...pod('shop', 'web-2', { app: 'api' }), status: { conditions: [{ type: 'Ready', status: 'True' }] } });
  api.put(PODS, pod('shop', 'web-2', { app: 'api', v: '2' }));
  await until('web-2 relabelled again', () => s.get('Pod', 'shop', 'web-2')?.metadata.labels?.v === '2');
  t.equal(s.revision, revision + 1, 'only the label change moved the revision');
  // Watch events since the list: web-2 added, relabelled, made ready, relabelled again.
  t.same(src.stats().watchEvents?.Pod, { changed: 3, unchanged: 1 });
  t.not(s.get('Pod', 'shop', 'web-2'), before);
  api.delete(PODS, 'shop', 'web-1');
  await until('web-1 deleted', () => s.get('Pod', 'shop', 'web-1') === undefined);
  api.put(CMS, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'other', namespace: 'shop' } });
  api.put(CMS, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'coredns', namespace: 'kube-system' }, data: { Corefile: '.:53' } });
  await until('coredns added', () => s.get('ConfigMap', 'kube-system', 'coredns') !== undefined);
  t.equal(s.get('ConfigMap', 'shop', 'other'), undefined);
  t.notMatch(JSON.stringify(s.list('Pod')), /hunter2|last-applied|managedFields/);
  t.notMatch(JSON.stringify(log.lines()), /hunter2|secret-token/, 'no secrets in logs');

  await src.stop();
  t.equal(src.synced(), false);
  await until('watches closed', () => api.openWatches() === 0);
});

t.test('LiveSource recovers from dropped watches, failing lists, silent watches and late CRDs', async (t) => {
  const { api, log, src } = await startedWithOnePod(t, 1);
  const s = src.state;

  // An apiserver restart: every watch is cut; changes made meanwhile must show up.
  await until('pod watch open', () => api.openWatches(PODS) >= 1);
  api.dropWatches();
  api.put(PODS, pod('shop', 'b'));
  await until('b after reconnect', () => s.get('Pod', 'shop', 'b') !== undefined);

  // Lists fail (apiserver up but erroring): synced() goes false, then recovers.
  api.failLists.add(PODS);
  api.dropWatches();
  await until('unsynced while listing fails', () => !src.synced());
  t.ok(log.lines().some((l) => l.kind === 'Pod' && /list failed/.test(String(l.msg))));
  api.failLists.delete(PODS);
  api.put(PODS, pod('shop', 'c'));
  await until('synced again', () => src.synced() && s.get('Pod', 'shop', 'c') !== undefined);

  // A watch that is connected but delivers nothing (a connection dead without a FIN, a stuck proxy): it
  // is opened again from its resourceVersion after an idle period (half a watchdog period), and the new
  // watch replays what the old one missed, without a relist.
  const serviceLists = () => api.requests.filter((r) => r.startsWith(`GET ${SVCS}?limit=`) && !r.includes('continue=')).length;
  await new Promise((r) => setTimeout(r, 2500)); // past any backoff relist caused by the changes above
  api.hangWatches.add(SVCS);
  api.dropWatches();
  await until('hanging service watch open', () => api.openWatches(SVCS) >= 1);
  const listsBefore = serviceLists();
  api.put(SVCS, { apiVersion: 'v1', kind: 'Service', metadata: { name: 'missed', namespace: 'shop' }, spec: { ports: [{ port: 80 }] } });
  await new Promise((r) => setTimeout(r, 400));
  t.equal(s.get('Service', 'shop', 'missed'), undefined, 'not delivered while the watch hangs');
  api.hangWatches.delete(SVCS);
  await until('missed service replayed', () => s.get('Service', 'shop', 'missed') !== undefined);
  t.equal(serviceLists(), listsBefore, 'replayed by a new watch, not by a relist');

  // A stream whose watches stay connected but never deliver, one after the other: after 20 silent idle
  // periods (0.5 s each here) it relists, so a change no event announced still arrives.
  api.hangWatches.add(SVCS);
  api.dropWatches();
  await until('hanging service watch open again', () => api.openWatches(SVCS) >= 1);
  api.putSilently(SVCS, { apiVersion: 'v1', kind: 'Service', metadata: { name: 'stuck', namespace: 'shop' }, spec: { ports: [{ port: 80 }] } });
  await until('relisted after silent watches', () => s.get('Service', 'shop', 'stuck') !== undefined, 20_000);
  t.ok(log.lines().some((l) => l.kind === 'Service' && /no watch event for a while; relisting/.test(String(l.msg))), 'the relist is logged');
  t.notOk(log.lines().some((l) => l.kind === 'Service' && Number(l.level) >= 40 && /relisting to confirm/.test(String(l.msg))), 'at info level, not as a warning');
  api.hangWatches.delete(SVCS);

  // A watch that cannot even connect: the watchdog relists, so a change that no event announced arrives.
  api.stallWatches.add(SVCS);
  api.dropWatches();
  await new Promise((r) => setTimeout(r, 2500));
  api.putSilently(SVCS, { apiVersion: 'v1', kind: 'Service', metadata: { name: 'quiet', namespace: 'shop' }, spec: { ports: [{ port: 80 }] } });
  await until('relisted service', () => s.get('Service', 'shop', 'quiet') !== undefined);
  api.stallWatches.delete(SVCS);

  // A CRD installed after start is picked up by the watchdog's re-check.
  t.ok(src.stats().missingKinds?.includes('Gateway'));
  api.serve(GWS);
  api.put(GWS, { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'waypoint', namespace: 'shop' }, spec: { gatewayClassName: 'istio-waypoint' } });
  await until('gateway seen', () => s.get('Gateway', 'shop', 'waypoint') !== undefined);
  t.notOk(src.stats().missingKinds?.includes('Gateway'));
  t.ok(log.lines().some((l) => l.kind === 'Gateway' && /now served/.test(String(l.msg))));

  // And a CRD removed: the kind empties.
  api.unserve(GWS);
  api.dropWatches();
  await until('gateway gone', () => s.list('Gateway').length === 0);
  t.ok(src.synced(), 'a missing optional kind does not make the state unsynced');

  // Lists slower than the watchdog period: informers get replaced while listing, and a replaced one
  // must not open its watch when its list finally returns.
  api.slowLists.set(PODS, 2500);
  api.dropWatches();
  await new Promise((r) => setTimeout(r, 5000));
  api.slowLists.delete(PODS);
  t.ok(api.openWatches(PODS) <= 1, `open pod watches ${api.openWatches(PODS)} <= 1`);
  api.put(PODS, pod('shop', 'd'));
  await until('pods recover after slow lists', () => s.get('Pod', 'shop', 'd') !== undefined);

  // After all these restarts, at most one watch per stream is open (replaced informers hold none).
  await new Promise((r) => setTimeout(r, 1500));
  const streams = KIND_NAMES.length - 1 + 2; // ConfigMaps: one per namespace (kube-system, istio-system)
  t.ok(api.openWatches() <= streams, `open watches ${api.openWatches()} <= ${streams}`);
  await src.stop();
  await until('all watches closed', () => api.openWatches() === 0);
});

t.test('a watch the apiserver ends is resumed from its last resourceVersion; an expired one relists', async (t) => {
  const { api, log, src } = await startedWithOnePod(t, 60);
  const s = src.state;
  const podLists = () => podListCount(api);
  const podWatches = () => podWatchRequests(api);
  await until('pod watch open', () => api.openWatches(PODS) >= 1);
  t.match(podWatches()[0], /allowWatchBookmarks=true&resourceVersion=\d+&timeoutSeconds=\d+/);
  const timeout = Number(/timeoutSeconds=(\d+)/.exec(podWatches()[0]!)![1]);
  t.ok(timeout >= 300 && timeout < 600, `timeoutSeconds ${timeout} in [300, 600)`);

  api.put(PODS, pod('shop', 'b'));
  await until('b', () => s.get('Pod', 'shop', 'b') !== undefined);
  const lists = podLists();
  api.endWatches();
  await until('watch resumed', () => podWatches().length === 2 && api.openWatches(PODS) === 1);
  t.equal(podLists(), lists, 'no relist after a clean end');
  const resumedAt = Number(/resourceVersion=(\d+)/.exec(podWatches()[1]!)![1]);
  const firstAt = Number(/resourceVersion=(\d+)/.exec(podWatches()[0]!)![1]);
  t.ok(resumedAt > firstAt, `resumed from b's resourceVersion (${resumedAt}), not the list's (${firstAt})`);
  api.put(PODS, pod('shop', 'c'));
  await until('c after resume', () => s.get('Pod', 'shop', 'c') !== undefined);

  api.expireWatches();
  await until('relisted', () => podLists() === lists + 1 && api.openWatches(PODS) === 1);
  t.ok(log.lines().some((l) => l.kind === 'Pod' && /expired; relisting/.test(String(l.msg))));
  t.notOk(log.lines().some((l) => /watch failed/.test(String(l.msg))), 'neither an ended nor an expired watch is reported as a failure');
  api.put(PODS, pod('shop', 'd'));
  await until('d after relist', () => s.get('Pod', 'shop', 'd') !== undefined);
  t.same(s.list('Pod').map((p) => p.metadata.name).sort(), ['a', 'b', 'c', 'd']);
});

t.test('bookmarks move the resume point; 410 at watch start relists; a watch ended at once is not reopened in a spin', async (t) => {
  const { api, log, src } = await startedWithOnePod(t, 60);
  const podLists = () => podListCount(api);
  const podWatches = () => podWatchRequests(api);
  await until('pod watch open', () => api.openWatches(PODS) >= 1);

  // A bookmark carries no object, but the next watch resumes from its resourceVersion.
  const rv = api.bookmark(PODS);
  await new Promise((r) => setTimeout(r, 200));
  const lists = podLists();
  api.endWatches();
  await until('resumed', () => podWatches().length === 2);
  t.match(podWatches()[1], new RegExp(`resourceVersion=${rv}&`), `resumed from the bookmark's resourceVersion ${rv}`);
  t.equal(src.state.list('Pod').length, 1, 'a bookmark changes nothing in the state');

  // 410 as the watch's HTTP status (not an ERROR event) on a resumed watch: relist at once, no warning.
  await until('pod watch open again', () => api.openWatches(PODS) >= 1);
  api.goneWatches.add(PODS);
  api.endWatches();
  await until('relisted on 410', () => podLists() >= lists + 1);
  t.ok(log.lines().some((l) => l.kind === 'Pod' && /expired; relisting/.test(String(l.msg))));
  // The watch after that list gets 410 too: that one backs off (1, 2 s...) instead of relisting in a spin.
  await new Promise((r) => setTimeout(r, 2000));
  t.ok(podLists() - lists <= 3, `${podLists() - lists} relists in about 2 s while every watch answers 410`);
  t.ok(log.lines().some((l) => l.kind === 'Pod' && /expired right after its list/.test(String(l.err))), 'the repeated 410 goes through the backoff');
  api.goneWatches.delete(PODS);
  await until('watch open after the 410s', () => api.openWatches(PODS) >= 1, 15_000);

  // Watches that end at once with nothing in them (an apiserver shutting down): reopened after a pause.
  await until('pod watch open a third time', () => api.openWatches(PODS) >= 1);
  api.emptyWatches.add(PODS);
  const before = podWatches().length;
  api.endWatches();
  await new Promise((r) => setTimeout(r, 2500));
  const reopened = podWatches().length - before;
  api.emptyWatches.delete(PODS);
  t.ok(reopened >= 1 && reopened <= 4, `${reopened} watches in 2.5 s, one per second at most`);
  api.put(PODS, pod('shop', 'b'));
  await until('events flow again', () => src.state.get('Pod', 'shop', 'b') !== undefined);
});

t.test('a watch refused after every good list backs off instead of relisting every second', async (t) => {
  const { api, log, src } = await startedWithOnePod(t, 60, (fakeApi) => fakeApi.forbidWatches.add(PODS));
  const podLists = () => podListCount(api, true);
  const first = podLists();
  await new Promise((r) => setTimeout(r, 6000));
  // Backoff 1, 2, 4 s (jittered +-20%): at most 3 more lists in 6 s; without it, one a second.
  t.ok(podLists() - first <= 3, `${podLists() - first} relists in 6 s`);
  t.ok(log.lines().some((l) => l.kind === 'Pod' && l.statusCode === 403), 'the refusal is logged with its status');
  api.forbidWatches.delete(PODS);
  api.put(PODS, pod('shop', 'b'));
  await until('recovers once watches are allowed', () => src.state.get('Pod', 'shop', 'b') !== undefined, 15_000);
});

t.test('LiveSource follows the Istio control plane namespace for ConfigMaps', async (t) => {
  const api = await fake(t);
  const DEPLOYS = collectionPath('Deployment');
  api.put(CMS, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'istio', namespace: 'mesh-ctl' }, data: { mesh: 'rootNamespace: mesh-root\n' } });
  api.put(CMS, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings', namespace: 'mesh-root' } });
  api.put(CMS, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'unrelated', namespace: 'shop' } });
  const src = new LiveSource({ logger: capture().logger, api: api.api(), watchdogSeconds: 1 });
  t.teardown(() => src.stop());
  await src.start();
  const names = () => src.state.list('ConfigMap').map((c) => `${c.metadata.namespace}/${c.metadata.name}`).sort();
  t.same(names(), [], 'no istiod yet: only kube-system and istio-system are watched');
  // istiod shows up in mesh-ctl; its mesh config names mesh-root as the root namespace.
  api.put(DEPLOYS, { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'istiod', namespace: 'mesh-ctl' }, spec: { template: { spec: { containers: [] } } } });
  await until('istiod namespace and root namespace watched', () => names().length === 2);
  t.same(names(), ['mesh-ctl/istio', 'mesh-root/settings']);
  api.put(CMS, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'later', namespace: 'mesh-root' } });
  await until('events in the followed namespace', () => names().includes('mesh-root/later'));
  t.notOk(names().includes('shop/unrelated'));
  t.ok(src.synced());
});

t.test('start() with bad credentials retries, and can time out', async (t) => {
  const api = await fake(t);
  const log = capture();
  const src = new LiveSource({ logger: log.logger, api: api.api('wrong'), startTimeoutSeconds: 1 });
  t.teardown(() => src.stop());
  await t.rejects(src.start(), /not synced after 1s \(waiting for: .*Pod/);
  t.equal(src.synced(), false);
  t.ok(log.lines().some((l) => l.statusCode === 401));
});

t.test('a bad kubeconfig path is an InputError', async (t) => {
  const src = new LiveSource({ logger: capture().logger, kubeconfigPath: '/nonexistent/kubeconfig' });
  await t.rejects(src.start(), { name: 'InputError', file: '/nonexistent/kubeconfig' });
});
