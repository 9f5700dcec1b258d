import t, { type Test } from 'tap';
import { PassThrough, Writable } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import type { KubeApi } from '../../src/state/kube-api.ts';
import pino from 'pino';
import { KIND_NAMES, KINDS } from '../../src/core/kinds.ts';
import { collectionPath, FIRST_FILL_CHUNK, listKind, LiveSource } from '../../src/state/live.ts';
import type { ConfigMap, Pod } from '../../src/core/objects.ts';
import { MemoryState } from '../../src/state/store.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { FakeApiserver } from './fake-apiserver.ts';
import { encodePodList, encodeStatus } from '../helpers/pod-proto-encode.ts';
import { loopTurns } from '../helpers/loop-turns.ts';

// LiveSource runs on a fake clock here: its backoffs, idle periods and watchdog move only when a test
// advances the clock, and a test waits for what a step causes (a request, an answer, a log line, a
// state change) before it takes the next one. Nothing depends on how fast the machine is.
// A timer that falls due runs inside clock.advance(), and LiveSource makes its next request from there
// synchronously: `api.client` (what the client side did) can be checked right after an advance.

type Line = Record<string, unknown>;

function capture(): { logger: pino.Logger; lines: () => Line[] } {
  const out: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      out.push(String(chunk));
      cb();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines: () => out.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l)) };
}

/**
 * Waits for a condition that I/O brings about. LiveSource's timers are fake, so the deadline only turns
 * a hang into a failure that names what never came.
 */
async function until(what: string, cond: () => boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Waits for the n-th log line (1-based) that `match` accepts, and returns it. */
async function logged(log: ReturnType<typeof capture>, what: string, match: (l: Line) => boolean, n = 1): Promise<Line> {
  let line: Line | undefined;
  await until(what, () => (line = log.lines().filter(match)[n - 1]) !== undefined);
  return line!;
}

/** Log lines about one kind whose message matches. */
const about = (kind: string, msg: RegExp) => (l: Line): boolean => l.kind === kind && msg.test(String(l.msg));
const WATCH_FAILED = /watch failed; relisting after backoff/;

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

function service(name: string) {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'shop' }, spec: { ports: [{ port: 80 }] } };
}

async function fake(t: { teardown(fn: () => unknown): void }): Promise<FakeApiserver> {
  const api = new FakeApiserver();
  await api.start();
  t.teardown(() => api.stop());
  for (const k of KIND_NAMES) if (!KINDS[k].optional) api.serve(collectionPath(k));
  api.serve(CNPS); // Cilium is installed, Istio and the Gateway API are not
  return api;
}

/** The streams (one watch each) of a LiveSource over fake(): ConfigMaps once per watched namespace. */
const streamCount = (configMapNamespaces = 2): number =>
  KIND_NAMES.filter((k) => !KINDS[k].optional && k !== 'ConfigMap').length + configMapNamespaces + 1; // + CNPs

/**
 * A LiveSource on a fake clock over a fake apiserver holding one pod, shop/a, started, with every watch
 * answered; `beforeStart` can set the fake up first (say, refuse watches, and then not all are answered).
 */
async function startedWithOnePod(
  t: { teardown(fn: () => unknown): void },
  watchdogSeconds: number,
  beforeStart?: (api: FakeApiserver) => void,
): Promise<{ api: FakeApiserver; log: ReturnType<typeof capture>; src: LiveSource; clock: FakeClock }> {
  const api = await fake(t);
  api.put(PODS, pod('shop', 'a'));
  return { api, ...(await startedOn(t, api, watchdogSeconds, beforeStart)) };
}

/** A LiveSource on a fake clock over `api` (set up by the caller), started as startedWithOnePod starts its own. */
async function startedOn(
  t: { teardown(fn: () => unknown): void },
  api: FakeApiserver,
  watchdogSeconds: number,
  beforeStart?: (api: FakeApiserver) => void,
): Promise<{ log: ReturnType<typeof capture>; src: LiveSource; clock: FakeClock }> {
  const log = capture();
  const clock = new FakeClock();
  const src = new LiveSource({ logger: log.logger, api: api.api(), watchdogSeconds, timers: clock });
  t.teardown(() => src.stop());
  beforeStart?.(api);
  await src.start();
  if (!beforeStart) await until('every watch answered', () => api.client.answered.of() === streamCount());
  return { log, src, clock };
}

/** Pod list requests the fake has seen: first pages only, unless `withContinue`. */
const podListCount = (api: FakeApiserver, withContinue = false): number =>
  api.requests.filter((r) => r.startsWith(`GET ${PODS}?limit=`) && (withContinue || !r.includes('continue='))).length;
/** Pod watch requests the fake has seen, in order. */
const podWatchRequests = (api: FakeApiserver): string[] => api.requests.filter((r) => r.startsWith(`GET ${PODS}?watch=true`));

/**
 * Drops the watch of `path` and moves the clock through the backoff that follows (read from its log
 * line): the stream relists, and watches again. Returns the backoff.
 */
async function dropAndRelist(
  t: Test,
  ctx: { api: FakeApiserver; log: ReturnType<typeof capture>; clock: FakeClock },
  kind: string,
  path: string,
): Promise<number> {
  const { api, log, clock } = ctx;
  const failures = log.lines().filter(about(kind, WATCH_FAILED)).length;
  const lists = api.client.lists.of(path);
  api.dropWatches(path);
  const failed = await logged(log, `${kind} watch failure logged`, about(kind, WATCH_FAILED), failures + 1);
  const retryMs = Number(failed.retryMs);
  clock.advance(retryMs - 1);
  t.equal(api.client.lists.of(path), lists, `${kind}: no relist before the backoff (${retryMs} ms) is over`);
  clock.advance(1);
  t.equal(api.client.lists.of(path), lists + 1, `${kind}: relisted when the backoff is over`);
  return retryMs;
}

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

t.test('listKind asks for the next page before slimming this one, and a failed page ahead is the list\'s error', async (t) => {
  const api = await fake(t);
  for (let i = 0; i < 5; i++) api.put(PODS, pod('shop', `p${i}`));
  // Pages of 2: when a page's objects have been slimmed (onPage), the next page has been asked for already.
  const askedAtPage: number[] = [];
  const { items } = await listKind(api.api(), 'Pod', undefined, () => askedAtPage.push(api.client.lists.of(PODS)));
  t.equal(items.length, 5);
  t.same(askedAtPage, [2, 3, 3], 'pages 2 and 3 asked for before pages 1 and 2 were slimmed; nothing after the last');
  // The page asked for ahead fails: the list fails with its status, nothing is left unhandled.
  let pages = 0;
  await t.rejects(
    listKind(api.api(), 'Pod', undefined, () => {
      if (++pages === 1) api.failLists.add(PODS);
    }),
    { name: 'ApiStatusError', statusCode: 500 },
  );
  api.failLists.delete(PODS);
});

t.test('LiveSource: sync, events, missing CRDs, ConfigMap namespaces', async (t) => {
  const api = await fake(t);
  api.put(PODS, pod('shop', 'web-1', { app: 'web' }));
  api.put(CMS, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cilium-config', namespace: 'kube-system' }, data: { 'routing-mode': 'tunnel' } });
  api.put(CMS, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'app', namespace: 'shop' }, data: { password: 'x' } });
  api.put(CMS, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'istio', namespace: 'mesh-root' }, data: { mesh: 'x' } });
  const log = capture();
  const clock = new FakeClock();
  const src = new LiveSource({ logger: log.logger, api: api.api(), istioRootNamespace: 'mesh-root', timers: clock });
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
  t.ok(log.lines().some((l) => l.kind === 'Gateway' && /CRD not installed/.test(String(l.msg))), 'missing CRD logged');
  // Seconds since the last sign of life (a list, a watch connected, an event), on the source's clock.
  await until('every watch answered', () => api.client.answered.of() === streamCount(3));
  t.equal(src.stats().secondsSinceLastEvent, 0);
  clock.advance(3000);
  t.equal(src.stats().secondsSinceLastEvent, 3, 'three quiet seconds');

  // Watch events reach the state.
  t.equal(api.openWatches(PODS), 1);
  api.put(PODS, pod('shop', 'web-2', { app: 'web' }));
  await until('web-2 added', () => s.get('Pod', 'shop', 'web-2') !== undefined);
  t.equal(src.stats().secondsSinceLastEvent, 0, 'an event is a sign of life');
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

t.test('a dropped watch relists after a backoff, and changes made meanwhile arrive', async (t) => {
  const ctx = await startedWithOnePod(t, 60);
  const { api, log, src } = ctx;
  // An apiserver restart: the watch is cut; a change made meanwhile must show up.
  api.put(PODS, pod('shop', 'b'));
  await until('b by the watch', () => src.state.get('Pod', 'shop', 'b') !== undefined);
  const lists = podListCount(api);
  api.dropWatches(PODS);
  api.put(PODS, pod('shop', 'c'));
  const failed = await logged(log, 'the failure', about('Pod', WATCH_FAILED));
  t.ok(Number(failed.retryMs) >= 800 && Number(failed.retryMs) <= 1200, `a first backoff of 1 s +- 20% (${failed.retryMs} ms)`);
  t.equal(src.state.get('Pod', 'shop', 'c'), undefined, 'not before the relist');
  t.ok(src.synced(), 'a cut watch alone leaves the state synced');
  const { clock } = ctx;
  clock.advance(Number(failed.retryMs));
  await until('c after the relist', () => src.state.get('Pod', 'shop', 'c') !== undefined);
  t.equal(podListCount(api), lists + 1, 'one relist');
});

t.test('lists that fail make the state unsynced until one succeeds', async (t) => {
  const ctx = await startedWithOnePod(t, 60);
  const { api, log, src, clock } = ctx;
  api.failLists.add(PODS);
  await dropAndRelist(t, ctx, 'Pod', PODS);
  await logged(log, 'the failed list', about('Pod', /list failed/));
  t.equal(src.synced(), false, 'unsynced while listing fails');
  // The next list comes after a longer backoff (2 s +- 20%), and succeeds.
  const backoff = clock.pending()[0]!;
  t.ok(backoff >= 1600 && backoff <= 2400, `the next relist in 2 s +- 20% (${backoff} ms)`);
  api.failLists.delete(PODS);
  api.put(PODS, pod('shop', 'c'));
  const lists = api.client.lists.of(PODS);
  clock.advance(backoff - 1);
  t.equal(api.client.lists.of(PODS), lists, 'no relist before then');
  t.equal(src.synced(), false);
  clock.advance(1);
  await until('synced again', () => src.synced() && src.state.get('Pod', 'shop', 'c') !== undefined);
  t.ok(log.lines().some(about('Pod', /list recovered/)));
});

t.test('a connected watch that delivers nothing is opened again after an idle period, and replays what it missed', async (t) => {
  // A watch connected but delivering nothing (a connection dead without a FIN, a stuck proxy) is opened
  // again from its resourceVersion after an idle period (half the watchdog period, 30 s here), and the
  // new watch replays what the old one missed, without a relist.
  const ctx = await startedWithOnePod(t, 60);
  const { api, src, clock } = ctx;
  api.hangWatches.add(SVCS);
  await dropAndRelist(t, ctx, 'Service', SVCS);
  await until('the hanging service watch answered', () => api.client.answered.of(SVCS) === 2);
  const lists = api.client.lists.of(SVCS);
  const watches = api.client.watches.of(SVCS);
  api.put(SVCS, service('missed'));
  // Other watches deliver meanwhile; this one does not.
  api.put(PODS, pod('shop', 'b'));
  await until('b by the pod watch', () => src.state.get('Pod', 'shop', 'b') !== undefined);
  t.equal(src.state.get('Service', 'shop', 'missed'), undefined, 'not delivered while the watch hangs');
  api.hangWatches.delete(SVCS);
  clock.advance(30_000 - 1);
  t.equal(api.client.watches.of(SVCS), watches, 'the watch is kept for a whole idle period');
  clock.advance(1);
  t.equal(api.client.watches.of(SVCS), watches + 1, 'then opened again');
  await until('missed service replayed', () => src.state.get('Service', 'shop', 'missed') !== undefined);
  t.equal(api.client.lists.of(SVCS), lists, 'replayed by a new watch, not by a relist');
});

t.test('watches that stay connected but never deliver: the stream relists after 20 idle periods', async (t) => {
  // One silent watch after the other: after 20 idle periods (30 s each here) the stream relists, so a
  // change no event announced still arrives.
  const ctx = await startedWithOnePod(t, 60);
  const { api, log, src, clock } = ctx;
  api.hangWatches.add(SVCS);
  await dropAndRelist(t, ctx, 'Service', SVCS);
  const answered = 2;
  await until('the hanging service watch answered', () => api.client.answered.of(SVCS) === answered);
  api.putSilently(SVCS, service('stuck'));
  const lists = api.client.lists.of(SVCS);
  for (let i = 1; i < 20; i++) {
    clock.advance(30_000);
    await until(`silent watch ${i + 1} answered`, () => api.client.answered.of(SVCS) === answered + i);
  }
  t.equal(api.client.lists.of(SVCS), lists, '19 silent periods: watches opened again, no relist');
  t.equal(src.state.get('Service', 'shop', 'stuck'), undefined);
  clock.advance(30_000);
  t.equal(api.client.lists.of(SVCS), lists + 1, 'the 20th: a relist');
  await until('relisted after silent watches', () => src.state.get('Service', 'shop', 'stuck') !== undefined);
  t.ok(log.lines().some(about('Service', /no watch event for a while; relisting/)), 'the relist is logged');
  t.notOk(log.lines().some((l) => l.kind === 'Service' && Number(l.level) >= 40 && /relisting to confirm/.test(String(l.msg))), 'at info level, not as a warning');
});

t.test('a watch that cannot even connect: the watchdog relists the silent stream', async (t) => {
  const t0 = new FakeClock().now();
  const ctx = await startedWithOnePod(t, 60);
  const { api, log, src, clock } = ctx;
  t.equal(clock.now(), t0);
  api.stallWatches.add(SVCS);
  await dropAndRelist(t, ctx, 'Service', SVCS);
  await until('the stalled watch reached the apiserver', () => api.openWatches(SVCS) === 1);
  t.equal(api.client.answered.of(SVCS), 1, 'no answer to the new watch');
  const watches = api.client.watches.of(SVCS);
  api.putSilently(SVCS, service('quiet'));
  const lists = api.client.lists.of(SVCS);
  // The watchdog ticks every 60 s; it relists a stream with no watch connected and nothing heard for
  // longer than that. At the first tick the stream listed less than 60 s ago.
  clock.advanceTo(t0 + 60_000);
  t.equal(api.client.lists.of(SVCS), lists, 'not at the first tick: silent for less than a period');
  clock.advanceTo(t0 + 120_000);
  t.equal(api.client.lists.of(SVCS), lists + 1, 'relisted at the second tick');
  t.equal(api.client.watches.of(SVCS), watches, 'no watch opened meanwhile: the stalled one was still waiting');
  t.ok(log.lines().some(about('Service', /watch silent too long; relisting/)));
  await until('relisted service', () => src.state.get('Service', 'shop', 'quiet') !== undefined);
  api.stallWatches.delete(SVCS);
});

t.test('a CRD installed after start is picked up by the watchdog; one removed empties its kind', async (t) => {
  const { api, log, src, clock } = await startedWithOnePod(t, 60);
  t.ok(src.stats().missingKinds?.includes('Gateway'));
  api.serve(GWS);
  api.put(GWS, { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'waypoint', namespace: 'shop' }, spec: { gatewayClassName: 'istio-waypoint' } });
  const lists = api.client.lists.of(GWS);
  clock.advance(60_000 - 1);
  t.equal(api.client.lists.of(GWS), lists, 'not re-checked before the watchdog ticks');
  clock.advance(1);
  t.equal(api.client.lists.of(GWS), lists + 1, 're-checked at the tick');
  await until('gateway seen', () => src.state.get('Gateway', 'shop', 'waypoint') !== undefined);
  t.notOk(src.stats().missingKinds?.includes('Gateway'));
  t.ok(log.lines().some((l) => l.kind === 'Gateway' && /now served/.test(String(l.msg))));

  // And a CRD removed: the kind empties.
  await until('gateway watch answered', () => api.client.answered.of(GWS) === 1);
  api.unserve(GWS);
  api.dropWatches(GWS);
  const failed = await logged(log, 'the gateway watch failure', about('Gateway', WATCH_FAILED));
  clock.advance(Number(failed.retryMs));
  await until('gateway gone', () => src.state.list('Gateway').length === 0);
  t.ok(src.stats().missingKinds?.includes('Gateway'));
  t.ok(src.synced(), 'a missing optional kind does not make the state unsynced');
});

t.test('lists slower than the watchdog period: a replaced list opens no watch', async (t) => {
  // Informers get replaced while listing, and a replaced one must not open its watch when its list
  // finally returns: after all the restarts, one watch per stream.
  const t0 = new FakeClock().now();
  const ctx = await startedWithOnePod(t, 60);
  const { api, log, src, clock } = ctx;
  api.holdLists.add(PODS);
  await dropAndRelist(t, ctx, 'Pod', PODS);
  await until('the first relist held', () => api.heldLists(PODS) === 1);
  // The watchdog replaces it at its second tick (at the first, the list is less than a period old).
  clock.advanceTo(t0 + 120_000);
  t.ok(log.lines().some(about('Pod', /watch silent too long; relisting/)), 'replaced by the watchdog');
  await until('the second relist held', () => api.heldLists(PODS) === 2);
  const watches = api.client.watches.of(PODS);
  api.holdLists.delete(PODS);
  api.releaseLists();
  await until('a pod watch answered', () => api.client.answered.of(PODS) >= 2);
  api.put(PODS, pod('shop', 'd'));
  await until('pods recover after slow lists', () => src.state.get('Pod', 'shop', 'd') !== undefined);
  t.equal(api.client.watches.of(PODS), watches + 1, 'one watch opened, by the list that was not replaced');
  t.equal(api.openWatches(PODS), 1, 'one pod watch open');
  await until('one watch per stream', () => api.openWatches() === streamCount());
});

t.test('a watch the apiserver ends is resumed from its last resourceVersion; an expired one relists', async (t) => {
  const { api, log, src } = await startedWithOnePod(t, 60);
  const s = src.state;
  const podLists = () => podListCount(api);
  const podWatches = () => podWatchRequests(api);
  t.equal(api.openWatches(PODS), 1);
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
  const { api, log, src, clock } = await startedWithOnePod(t, 60);
  const podLists = () => podListCount(api);
  const podWatches = () => podWatchRequests(api);

  // A bookmark carries no object, but the next watch resumes from its resourceVersion.
  clock.advance(1000); // so that the bookmark's arrival shows as the stream's latest sign of life
  const rv = api.bookmark(PODS);
  await until('bookmark received', () => src.stats().secondsSinceLastEventByKind?.Pod === 0);
  const lists = podLists();
  api.endWatches(PODS);
  await until('resumed', () => podWatches().length === 2);
  t.match(podWatches()[1], new RegExp(`resourceVersion=${rv}&`), `resumed from the bookmark's resourceVersion ${rv}`);
  t.equal(src.state.list('Pod').length, 1, 'a bookmark changes nothing in the state');

  // 410 as the watch's HTTP status (not an ERROR event) on a resumed watch: relist at once, no warning.
  await until('pod watch answered again', () => api.client.answered.of(PODS) === 2);
  clock.advance(1000); // the watch has been open a while: its end is resumed at once (see below)
  api.goneWatches.add(PODS);
  api.endWatches(PODS);
  await until('relisted on 410', () => podLists() === lists + 1);
  t.ok(log.lines().some(about('Pod', /expired; relisting/)));
  t.notOk(log.lines().some((l) => about('Pod', WATCH_FAILED)(l) && !/expired right after its list/.test(String(l.err))), 'no warning');
  // The watch after that list gets 410 too: that one backs off (1, 2, 4 s +- 20%) instead of relisting
  // in a spin, one list per step.
  const expiredAfterList = (l: Line) => l.kind === 'Pod' && WATCH_FAILED.test(String(l.msg)) && /expired right after its list/.test(String(l.err));
  let retryMs = 0;
  for (let step = 1; step <= 3; step++) {
    const failed = await logged(log, `410 after list ${step}`, expiredAfterList, step);
    retryMs = Number(failed.retryMs);
    const base = 1000 * 2 ** (step - 1);
    t.ok(retryMs >= 0.8 * base && retryMs <= 1.2 * base, `backoff ${step}: ${retryMs} ms, ${base} ms +- 20%`);
    t.equal(podLists(), lists + step, `list ${step} after the 410s`);
    if (step < 3) clock.advance(retryMs);
  }
  api.goneWatches.delete(PODS);
  const answered = api.client.answered.of(PODS);
  clock.advance(retryMs);
  await until('watch answered after the 410s', () => api.client.answered.of(PODS) === answered + 1);

  // Watches that end at once with nothing in them (an apiserver shutting down): reopened after a pause.
  clock.advance(1000); // this watch has been open a while: its end is resumed at once
  api.emptyWatches.add(PODS);
  const watches = api.client.watches.of(PODS);
  const closed = api.client.closed.of(PODS);
  api.endWatches(PODS);
  await until('the resumed watch ended at once too', () => api.client.closed.of(PODS) >= closed + 2);
  t.equal(api.client.watches.of(PODS), watches + 1, 'resumed at once, then a pause');
  for (let reopen = 2; reopen <= 3; reopen++) {
    clock.advance(999);
    t.equal(api.client.watches.of(PODS), watches + reopen - 1, 'not within the second');
    clock.advance(1);
    t.equal(api.client.watches.of(PODS), watches + reopen, 'reopened a second later');
    await until(`empty watch ${reopen} ended`, () => api.client.closed.of(PODS) >= closed + reopen + 1);
  }
  api.emptyWatches.delete(PODS);
  clock.advance(1000);
  await until('a watch answered again', () => api.client.answered.of(PODS) === answered + 5);
  api.put(PODS, pod('shop', 'b'));
  await until('events flow again', () => src.state.get('Pod', 'shop', 'b') !== undefined);
});

t.test('a watch refused after every good list backs off instead of relisting every second', async (t) => {
  const { api, log, src, clock } = await startedWithOnePod(t, 60, (fakeApi) => fakeApi.forbidWatches.add(PODS));
  const podLists = () => podListCount(api, true);
  const first = podLists();
  // Backoff 1, 2, 4 s (jittered +-20%) between the lists; without it, one a second.
  const refused = (l: Line) => l.kind === 'Pod' && l.statusCode === 403;
  let retryMs = 0;
  for (let step = 1; step <= 3; step++) {
    const failed = await logged(log, `refusal ${step}`, refused, step);
    retryMs = Number(failed.retryMs);
    const base = 1000 * 2 ** (step - 1);
    t.ok(retryMs >= 0.8 * base && retryMs <= 1.2 * base, `backoff ${step}: ${retryMs} ms, ${base} ms +- 20%`);
    t.equal(podLists(), first + step - 1, `list ${step}`);
    if (step < 3) clock.advance(retryMs);
  }
  t.ok(WATCH_FAILED.test(String(log.lines().find(refused)?.msg)), 'the refusal is logged with its status');
  api.forbidWatches.delete(PODS);
  clock.advance(retryMs);
  api.put(PODS, pod('shop', 'b'));
  await until('recovers once watches are allowed', () => src.state.get('Pod', 'shop', 'b') !== undefined);
});

t.test('LiveSource follows the Istio control plane namespace for ConfigMaps', async (t) => {
  const api = await fake(t);
  const DEPLOYS = collectionPath('Deployment');
  api.put(CMS, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'istio', namespace: 'mesh-ctl' }, data: { mesh: 'rootNamespace: mesh-root\n' } });
  api.put(CMS, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings', namespace: 'mesh-root' } });
  api.put(CMS, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'unrelated', namespace: 'shop' } });
  const clock = new FakeClock();
  const src = new LiveSource({ logger: capture().logger, api: api.api(), watchdogSeconds: 1, timers: clock });
  t.teardown(() => src.stop());
  await src.start();
  const names = () => src.state.list('ConfigMap').map((c) => `${c.metadata.namespace}/${c.metadata.name}`).sort();
  t.same(names(), [], 'no istiod yet: only kube-system and istio-system are watched');
  // istiod shows up in mesh-ctl; its mesh config names mesh-root as the root namespace. The Deployment
  // arrives by its watch; the watchdog's tick looks for the control plane again.
  await until('every watch answered', () => api.client.answered.of() === streamCount());
  api.put(DEPLOYS, { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'istiod', namespace: 'mesh-ctl' }, spec: { template: { spec: { containers: [] } } } });
  await until('istiod seen', () => src.state.get('Deployment', 'mesh-ctl', 'istiod') !== undefined);
  t.same(names(), []);
  clock.advance(1000);
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
  const clock = new FakeClock();
  const src = new LiveSource({ logger: log.logger, api: api.api('wrong'), startTimeoutSeconds: 5, timers: clock });
  t.teardown(() => src.stop());
  const started = src.start();
  let settled = false;
  started.catch(() => undefined).finally(() => (settled = true));
  const rejected = t.rejects(started, /not synced after 5s \(waiting for: .*Pod/);
  await logged(log, 'the refused pod list', (l) => l.kind === 'Pod' && l.statusCode === 401);
  const lists = api.client.lists.of(PODS);
  clock.advance(1200); // the first backoff, 1 s +- 20%
  t.equal(api.client.lists.of(PODS), lists + 1, 'retried');
  await logged(log, 'the refused retry', (l) => l.kind === 'Pod' && l.statusCode === 401, 2);
  clock.advance(5000 - 1200 - 1);
  await new Promise((r) => setImmediate(r)); // a rejection by a timer that ran would have settled by now
  t.notOk(settled, 'still waiting before 5 s');
  t.equal(src.synced(), false);
  clock.advance(1);
  await rejected;
  t.equal(src.synced(), false);
});

t.test('a bad kubeconfig path is an InputError', async (t) => {
  const src = new LiveSource({ logger: capture().logger, kubeconfigPath: '/nonexistent/kubeconfig' });
  await t.rejects(src.start(), { name: 'InputError', file: '/nonexistent/kubeconfig' });
});

t.test('a large first list goes into the state in chunks, with the event loop handed back in between', async (t) => {
  const api = await fake(t);
  const n = 2 * FIRST_FILL_CHUNK + 500;
  for (let i = 0; i < n; i++) api.put(PODS, pod('shop', `web-${i}`, { app: i % 2 === 0 ? 'web' : 'api' }));
  const src = new LiveSource({ logger: capture().logger, api: api.api(), timers: new FakeClock() });
  t.teardown(() => src.stop());
  // Every pod put into the state records the turn of the event loop it came in.
  const loop = loopTurns();
  const turnOfPod: number[] = [];
  const state = src.state;
  const upsert = state.upsert.bind(state);
  state.upsert = (kind, obj) => {
    if (kind === 'Pod') turnOfPod.push(loop.turns);
    return upsert(kind, obj);
  };
  await src.start();
  loop.stop();
  t.equal(src.synced(), true);
  t.equal(state.list('Pod').length, n, 'every pod is in the state');
  t.equal(state.podsWithLabel('shop', 'app', 'web').length, Math.ceil(n / 2), 'indexed as a whole list would be');
  t.equal(turnOfPod.length, n);
  // Pods put in during one turn of the event loop: never more than a chunk.
  const perTurn = new Map<number, number>();
  for (const x of turnOfPod) perTurn.set(x, (perTurn.get(x) ?? 0) + 1);
  t.ok(Math.max(...perTurn.values()) <= FIRST_FILL_CHUNK, `at most ${FIRST_FILL_CHUNK} pods per turn (${Math.max(...perTurn.values())})`);
  t.ok(perTurn.size >= 3, `spread over ${perTurn.size} turns of the event loop`);
});

t.test('a large relist after sync is built aside in chunks and swapped in whole: a review sees the old pods or the new, never a mix', async (t) => {
  const api = await fake(t);
  const n = 2 * FIRST_FILL_CHUNK + 500;
  for (let i = 0; i < n; i++) api.put(PODS, pod('shop', `web-${i}`, { gen: 'old' }));
  const src = new LiveSource({ logger: capture().logger, api: api.api(), timers: new FakeClock() });
  t.teardown(() => src.stop());
  await src.start();
  const state = src.state;
  t.equal(state.podsWithLabel('shop', 'gen', 'old').length, n);
  // An event first (a watch expired before any event backs off instead of relisting at once).
  api.put(PODS, pod('other', 'marker'));
  await until('marker', () => state.get('Pod', 'other', 'marker') !== undefined);
  // Every pod changes while no watch tells (as over an expired watch), then the watch expires: a relist.
  for (let i = 0; i < n; i++) api.putSilently(PODS, pod('shop', `web-${i}`, { gen: 'new' }));

  // Once per turn of the event loop, what a review would read: every pod of one generation, and the
  // label index agreeing with the objects. Every pod put into any state records the turn it came in.
  let turns = 0;
  let running = true;
  const seen: string[] = [];
  const turn = (): void => {
    turns++;
    const pods = state.list('Pod').filter((p) => p.metadata.namespace === 'shop');
    const gens = new Set(pods.map((p) => p.metadata.labels?.gen));
    const indexed = `${state.podsWithLabel('shop', 'gen', 'old').length}/${state.podsWithLabel('shop', 'gen', 'new').length}`;
    seen.push(`${pods.length} ${[...gens].join(',')} ${indexed}`);
    if (running) setImmediate(turn);
  };
  const turnOfPod: number[] = [];
  const upsert = MemoryState.prototype.upsert;
  MemoryState.prototype.upsert = function (this: MemoryState, kind, obj) {
    if (kind === 'Pod') turnOfPod.push(turns);
    return upsert.call(this, kind, obj);
  };
  t.teardown(() => {
    MemoryState.prototype.upsert = upsert;
  });
  setImmediate(turn);
  api.expireWatches();
  await until('relisted', () => state.podsWithLabel('shop', 'gen', 'new').length === n);
  running = false;
  MemoryState.prototype.upsert = upsert;
  turn(); // one more sample: the state the relist left

  const consistent = new Set([`${n} old ${n}/0`, `${n} new 0/${n}`]);
  t.same(seen.filter((s) => !consistent.has(s)), [], 'every turn saw one whole generation');
  t.ok(seen.includes(`${n} old ${n}/0`) && seen.includes(`${n} new 0/${n}`), 'old before, new after');
  t.equal(turnOfPod.length, n + 1, 'each listed pod put in once (aside), none into the served state one by one');
  const perTurn = new Map<number, number>();
  for (const x of turnOfPod) perTurn.set(x, (perTurn.get(x) ?? 0) + 1);
  t.ok(Math.max(...perTurn.values()) <= FIRST_FILL_CHUNK, `at most ${FIRST_FILL_CHUNK} pods per turn (${Math.max(...perTurn.values())})`);
  t.ok(perTurn.size >= 3, `spread over ${perTurn.size} turns of the event loop`);
  t.same(state.list('Pod').map((p) => p.metadata.name).sort(), [...Array.from({ length: n }, (_, i) => `web-${i}`), 'marker'].sort());
});

// Pods in protobuf (src/state/pod-proto.ts, ADR 0008): the fake answers pod pages in protobuf when
// asked (protobufPage), and the knobs below break that.

const PROTOBUF = 'application/vnd.kubernetes.protobuf';
/** The Accept header of each pod list request (every page), in order. */
const podListAccepts = (api: FakeApiserver): string[] => api.requests.flatMap((r, i) => (r.startsWith(`GET ${PODS}?limit=`) ? [api.accepts[i]!] : []));
/** A pod in the fake's store, with a port, a probe and a status, so that more than names is compared. */
function richPod(namespace: string, name: string, labels: Record<string, string> = {}) {
  return {
    ...pod(namespace, name, labels),
    spec: { serviceAccountName: 'web', containers: [{ name: 'app', image: 'x', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }], readinessProbe: { httpGet: { port: 'http' } } }] },
    status: { phase: 'Running', podIP: `10.0.0.${name.length}`, podIPs: [{ ip: `10.0.0.${name.length}` }, { ip: 'fd00::1' }] },
  };
}

t.test('Pods are listed in protobuf where the server has it, to the same slim pods; other kinds and the JSON path ask for JSON', async (t) => {
  const api = await fake(t);
  for (let i = 0; i < 5; i++) api.put(PODS, richPod('shop', `p${i}`, { app: `a${i % 2}` }));
  api.put(SVCS, service('web'));
  const json = await listKind(api.api(), 'Pod', undefined, undefined, undefined, { encoding: 'json' });
  t.same(podListAccepts(api), ['application/json', 'application/json', 'application/json'], 'asked for JSON');
  // The fake answers protobuf from now on when asked.
  let protobufPages = 0;
  api.protobufPage = (items, meta) => (protobufPages++, encodePodList(items, meta));
  const proto = await listKind(api.api(), 'Pod');
  t.equal(protobufPages, 3, 'three protobuf pages');
  t.same(podListAccepts(api).slice(3), Array(3).fill(`${PROTOBUF}, application/json`), 'asked for protobuf, JSON taken too');
  t.strictSame(proto.items, json.items, 'the same slim pods');
  t.equal(proto.resourceVersion, json.resourceVersion);
  t.equal(proto.items.length, 5);
  await listKind(api.api(), 'Service');
  t.equal(api.accepts[api.requests.findIndex((r) => r.startsWith(`GET ${SVCS}?`))], 'application/json', 'a Service list asks for JSON');
});

t.test('a protobuf page that cannot be read restarts the list as JSON, once; a server that sends it anyway fails the list', async (t) => {
  const api = await fake(t);
  for (let i = 0; i < 5; i++) api.put(PODS, richPod('shop', `p${i}`));
  const expected = (await listKind(api.api(), 'Pod', undefined, undefined, undefined, { encoding: 'json' })).items;
  const before = podListAccepts(api).length;
  // The second page is cut short.
  api.protobufPage = (items, meta) => {
    const b = encodePodList(items, meta);
    return meta.continue === '4' ? b.subarray(0, b.length - 3) : b;
  };
  const failures: Error[] = [];
  const { items } = await listKind(api.api(), 'Pod', undefined, undefined, undefined, { onProtobufFailed: (e) => failures.push(e) });
  t.equal(failures.length, 1, 'told once');
  t.match(failures[0], { name: 'ProtobufError', message: /malformed protobuf|past the end/ });
  t.strictSame(items, expected, 'every pod, from the JSON list');
  t.same(
    podListAccepts(api).slice(before),
    // The third page is asked for as soon as the second one's continue token is read (its list
    // metadata comes before its pods), before the second one is found cut short; it is dropped.
    [`${PROTOBUF}, application/json`, `${PROTOBUF}, application/json`, `${PROTOBUF}, application/json`, 'application/json', 'application/json', 'application/json'],
    'two protobuf pages and the one asked ahead, then the list from its start in JSON',
  );
  t.same(api.requests.filter((r) => r.startsWith(`GET ${PODS}?`)).slice(-3).map((r) => r.includes('continue=')), [false, true, true], 'restarted from the first page');
  // Bad protobuf even for JSON: a list failure (the stream's backoff), not a loop.
  api.protobufAlways = true;
  api.protobufPage = () => Buffer.from('k8s\0\x12\x7f');
  const n = api.requests.length;
  await t.rejects(listKind(api.api(), 'Pod', undefined, undefined, undefined, { onProtobufFailed: (e) => failures.push(e) }), { name: 'ProtobufError' });
  t.equal(api.requests.length - n, 2, 'the first page asked for twice: protobuf, then JSON');
  t.equal(failures.length, 2);
});

t.test('an error answered in protobuf keeps its status and message', async (t) => {
  const api = await fake(t);
  api.protobufStatus.set(PODS, { code: 403, body: encodeStatus(403, 'pods is forbidden: User "x" cannot list resource "pods"') });
  await t.rejects(listKind(api.api(), 'Pod'), { name: 'ApiStatusError', statusCode: 403, message: 'HTTP 403: pods is forbidden: User "x" cannot list resource "pods"' });
  api.protobufStatus.set(PODS, { code: 500, body: Buffer.from('k8s\0garbage') });
  await t.rejects(listKind(api.api(), 'Pod'), { name: 'ApiStatusError', statusCode: 500, message: 'HTTP 500' });
});

t.test('LiveSource: a protobuf list it cannot read is logged once and Pods are listed as JSON from then on', async (t) => {
  const api = await fake(t);
  api.put(PODS, richPod('shop', 'a'));
  api.put(PODS, richPod('shop', 'b'));
  api.put(PODS, richPod('shop', 'c'));
  api.protobufPage = () => Buffer.from('k8s\0\x12\x05\x12\x03\x0a\x09');
  const { log, src, clock } = await startedOn(t, api, 60);
  t.same(src.state.list('Pod').map((p) => p.metadata.name).sort(), ['a', 'b', 'c']);
  t.equal((src.state.get('Pod', 'shop', 'a') as Pod).status?.podIP, '10.0.0.1');
  const warned = log.lines().filter((l) => /protobuf page of the list could not be read; listing as JSON from now on/.test(String(l.msg)));
  t.equal(warned.length, 1, 'logged once');
  t.equal(warned[0]?.kind, 'Pod');
  t.same(podListAccepts(api), [`${PROTOBUF}, application/json`, 'application/json', 'application/json']);
  // A relist later: JSON straight away, nothing logged again.
  await dropAndRelist(t, { api, log, clock }, 'Pod', PODS);
  await until('relist done', () => podListAccepts(api).length === 5);
  t.same(podListAccepts(api).slice(3), ['application/json', 'application/json']);
  t.equal(log.lines().filter((l) => /listing as JSON/.test(String(l.msg))).length, 1);
});

t.test('LiveSource lists Pods in protobuf and its state is the one a JSON list gives', async (t) => {
  const api = await fake(t);
  for (let i = 0; i < 7; i++) api.put(PODS, richPod(i % 2 ? 'shop' : 'web', `p${i}`, { app: `a${i % 3}` }));
  api.protobufPage = (items, meta) => encodePodList(items, meta);
  const src = new LiveSource({ logger: capture().logger, api: api.api(), timers: new FakeClock() });
  t.teardown(() => src.stop());
  await src.start();
  t.ok(podListAccepts(api).every((a) => a.startsWith(PROTOBUF)), 'every pod page asked for in protobuf');
  const json = await listKind(api.api(), 'Pod', undefined, undefined, undefined, { encoding: 'json' });
  const byName = (a: { metadata: { name: string } }, b: { metadata: { name: string } }): number => a.metadata.name.localeCompare(b.metadata.name);
  t.strictSame([...src.state.list('Pod')].sort(byName), [...json.items].sort(byName));
  t.equal(src.state.podsWithLabel('shop', 'app', 'a1').length, 1);
});

t.test('LiveSource with podListEncoding json asks for Pods in JSON from the first page, the server having protobuf', async (t) => {
  const api = await fake(t);
  for (let i = 0; i < 5; i++) api.put(PODS, richPod('shop', `p${i}`));
  let protobufPages = 0;
  api.protobufPage = (items, meta) => (protobufPages++, encodePodList(items, meta));
  const log = capture();
  const src = new LiveSource({ logger: log.logger, api: api.api(), timers: new FakeClock(), podListEncoding: 'json' });
  t.teardown(() => src.stop());
  await src.start();
  t.same(podListAccepts(api), ['application/json', 'application/json', 'application/json'], 'every pod page asked for in JSON');
  t.equal(protobufPages, 0);
  t.equal(src.state.list('Pod').length, 5);
  t.equal(log.lines().filter((l) => /listing as JSON/.test(String(l.msg))).length, 0, 'no fallback logged');
});

// The first list of each stream from the apiserver's watch cache (resourceVersion=0; ADR 0009).

/** The first-page list requests of `path` (no continue token), in order. */
const firstPages = (api: FakeApiserver, path: string): string[] => api.requests.filter((r) => r.startsWith(`GET ${path}?limit=`) && !r.includes('continue='));

t.test('LiveSource asks for its first lists from the watch cache (resourceVersion=0), taken whole; a relist reads the latest version', async (t) => {
  const api = await fake(t);
  api.cacheAnswersWhole = true;
  for (let i = 0; i < 7; i++) api.put(PODS, richPod(i % 2 ? 'shop' : 'web', `p${i}`, { app: `a${i % 3}` }));
  for (let i = 0; i < 5; i++) api.put(SVCS, service(`s${i}`));
  api.protobufPage = (items, meta) => encodePodList(items, meta);
  const { log, src, clock } = await startedOn(t, api, 60);
  // Every kind: one page, asked with resourceVersion=0 (pages of 2 would have taken 4 and 3).
  t.same(firstPages(api, PODS), [`GET ${PODS}?limit=500&resourceVersion=0`]);
  t.same(firstPages(api, SVCS), [`GET ${SVCS}?limit=500&resourceVersion=0`]);
  t.equal(api.requests.filter((r) => r.includes('continue=')).length, 0, 'no page after the first');
  t.ok(api.requests.filter((r) => r.includes('?limit=')).every((r) => r.includes('resourceVersion=0')), 'every first list from the cache');
  // The same state as a list of the latest version gives.
  const byName = (a: { metadata: { name: string } }, b: { metadata: { name: string } }): number => a.metadata.name.localeCompare(b.metadata.name);
  const latest = await listKind(api.api(), 'Pod', undefined, undefined, undefined, { encoding: 'json' });
  t.strictSame([...src.state.list('Pod')].sort(byName), [...latest.items].sort(byName));
  t.equal(src.state.list('Service').length, 5);
  // The watch goes on from the list's resourceVersion: a later change comes as an event.
  api.put(PODS, richPod('shop', 'late'));
  await until('the new pod', () => src.state.get('Pod', 'shop', 'late') !== undefined);
  // A relist (the watch dropped): the latest version, paged as before.
  await dropAndRelist(t, { api, log, clock }, 'Pod', PODS);
  await until('relist done', () => firstPages(api, PODS).length === 2 && api.requests.filter((r) => r.startsWith(`GET ${PODS}?`) && r.includes('continue=')).length === 3);
  t.equal(firstPages(api, PODS)[1], `GET ${PODS}?limit=500`, 'the relist reads the latest version');
  await until('relisted state', () => src.state.list('Pod').length === 8);
});

t.test('LiveSource lists Pods in JSON page by page, never whole from the cache', async (t) => {
  const api = await fake(t);
  api.cacheAnswersWhole = true;
  for (let i = 0; i < 5; i++) api.put(PODS, richPod('shop', `p${i}`));
  const src = new LiveSource({ logger: capture().logger, api: api.api(), timers: new FakeClock(), podListEncoding: 'json' });
  t.teardown(() => src.stop());
  await src.start();
  t.same(firstPages(api, PODS), [`GET ${PODS}?limit=500`], 'no resourceVersion=0');
  t.equal(api.requests.filter((r) => r.startsWith(`GET ${PODS}?`) && r.includes('continue=')).length, 2, 'pages of 2');
  t.equal(src.state.list('Pod').length, 5);
  t.same(firstPages(api, SVCS), [`GET ${SVCS}?limit=500&resourceVersion=0`], 'other kinds from the cache');
});

t.test('a protobuf Pod list from the cache that cannot be read starts over as JSON, page by page', async (t) => {
  const api = await fake(t);
  api.cacheAnswersWhole = true;
  for (let i = 0; i < 5; i++) api.put(PODS, richPod('shop', `p${i}`));
  api.protobufPage = (items, meta) => encodePodList(items, meta).subarray(0, 20);
  const failures: Error[] = [];
  const { items } = await listKind(api.api(), 'Pod', undefined, undefined, undefined, { fromCache: true, onProtobufFailed: (e) => failures.push(e) });
  t.equal(failures.length, 1);
  t.equal(items.length, 5);
  t.same(firstPages(api, PODS), [`GET ${PODS}?limit=500&resourceVersion=0`, `GET ${PODS}?limit=500`]);
});

/**
 * A KubeApi whose every GET answers 200 with a protobuf body the test writes itself (the response is
 * destroyed when the request's signal aborts, as node's http client does).
 */
function handWrittenBody(contentType = 'application/vnd.kubernetes.protobuf'): { api: KubeApi; body: () => PassThrough; asked: () => number } {
  const bodies: PassThrough[] = [];
  const api: KubeApi = {
    server: 'http://hand-written', source: 'test',
    get: async (_path, opts) => {
      const res = Object.assign(new PassThrough(), { statusCode: 200, headers: { 'content-type': contentType } });
      opts?.signal?.addEventListener('abort', () => res.destroy(opts.signal!.reason as Error), { once: true });
      bodies.push(res);
      return res as unknown as IncomingMessage;
    },
    send: async () => ({ status: 500, body: '' }),
    close: () => undefined,
  };
  return { api, body: () => bodies.at(-1)!, asked: () => bodies.length };
}

/** Lets `n` turns of the event loop pass (the stream's data and the list's awaits). */
const turns = async (n: number): Promise<void> => {
  for (let k = 0; k < n; k++) await new Promise<void>((r) => setImmediate(r));
};

/** Writes `bytes` to the body in `pieces` pieces, 59 s of the fake clock before each, then ends it. */
async function dribble(clock: FakeClock, body: () => PassThrough, bytes: Buffer, pieces: number): Promise<void> {
  const step = Math.ceil(bytes.length / pieces);
  for (let at = 0; at < bytes.length; at += step) {
    clock.advance(59_000);
    body().write(bytes.subarray(at, at + step));
    await turns(3);
  }
  body().end();
}

t.test('a list page times out after 60 s without a byte, however long the whole body takes', async (t) => {
  const pods = Array.from({ length: 40 }, (_, i) => richPod('shop', `p${i}`));
  const bytes = encodePodList(pods, { resourceVersion: '9' });
  // A body that keeps coming: a piece every 59 s (about 20 minutes in all) is listed whole.
  {
    const clock = new FakeClock();
    const { api, body, asked } = handWrittenBody();
    let listed = 0;
    const done = listKind(api, 'Pod', undefined, (n) => (listed = n), undefined, { timers: clock, fromCache: true });
    await until('asked', () => asked() === 1);
    await dribble(clock, body, Buffer.from(bytes), 20);
    const { items, resourceVersion } = await done;
    t.equal(items.length, 40, 'every pod, after 20 minutes of a body that never paused 60 s');
    t.equal(resourceVersion, '9');
    t.equal(listed, 40);
  }
  // A body that stops: the list fails 60 s after its last byte, not before.
  {
    const clock = new FakeClock();
    const { api, body, asked } = handWrittenBody();
    const done = listKind(api, 'Pod', undefined, undefined, undefined, { timers: clock });
    done.catch(() => undefined);
    await until('asked', () => asked() === 1);
    await turns(3);
    body().write(bytes.subarray(0, 1000));
    await turns(3);
    clock.advance(59_999);
    await turns(3);
    let failed = false;
    done.then(() => undefined, () => (failed = true));
    await turns(3);
    t.notOk(failed, 'not failed a moment before 60 s without a byte');
    clock.advance(1);
    await t.rejects(done, /nothing received for 60 s/, 'failed at 60 s without a byte');
  }
  // A JSON body (a kind other than Pods, whole from the cache) the same way.
  {
    const clock = new FakeClock();
    const { api, body, asked } = handWrittenBody('application/json');
    const text = Buffer.from(JSON.stringify({ kind: 'ServiceList', metadata: { resourceVersion: '5' }, items: Array.from({ length: 30 }, (_, i) => service(`s${i}`)) }));
    const done = listKind(api, 'Service', undefined, undefined, undefined, { timers: clock, fromCache: true });
    await until('asked', () => asked() === 1);
    await dribble(clock, body, text, 10);
    t.equal((await done).items.length, 30, 'every Service, after 10 minutes of a body that never paused 60 s');
  }
});
