// The live path under load: meshguard `serve --kubeconfig` against a real kube-apiserver (the e2e
// harness's etcd + kube-apiserver, built from Go modules) holding the benchmark's synthetic cluster,
// instead of `serve --state <file>`. It measures what the file-based bench cannot:
//   - start to ready through the informers' paginated lists, and the serving RSS with the informers'
//     caches and watches;
//   - latency at the fixed rate and max throughput with the state as the informers built it;
//   - CPU per pod change (watch events with no requests, less the CPU of an equally long quiet window);
//   - latency at the fixed rate while pods change under it (watch events replace objects and start a new
//     state revision, so the per-revision caches are rebuilt while requests arrive), as in a live cluster,
//     in turn with a control (the same churn, meshguard serving a state file), --repeats times.
// Before measuring, it checks that meshguard's view (meshguard_state_objects) holds every object the
// bench created, so the figures are for the whole cluster.
//
// Usage: node bench/live.ts [--pods 10000[,50000]] [--seconds 10] [--rate 500] [--churn 50] [--repeats 3] [--json F] [--no-write]
// Needs `npx tsc -p .` (bin/meshguard.js) and the control-plane binaries (make control-plane).

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';

import { KINDS, type KindName } from '../src/core/kinds.ts';
import { collectionPath } from '../src/state/live.ts';
import type { KubeApi } from '../src/state/kube-api.ts';
import { startControlPlane, type ControlPlane } from '../test/e2e/harness.ts';
import { generateCluster, type Obj } from './cluster-gen.ts';
import { cpuSecondsOf, deployedNodeFlags, eventLoopProbeFlags, eventLoopSince, fmt, freePort, measureLoad, metricsPage, ROOT, rssOf, startServer, stopServer, type EventLoopFigures, type LoadResult } from './harness.ts';
import { checkReadyFromLive, checkRss, targetsTable, type TargetCheck } from './targets.ts';
import { requestMix } from './requests.ts';

const { values } = parseArgs({
  // Imported by bench/live-churn.ts, whose flags are not these: the defaults then.
  args: import.meta.main ? process.argv.slice(2) : [],
  options: {
    pods: { type: 'string', default: '10000' },
    seconds: { type: 'string', default: '10' },
    rate: { type: 'string', default: '500' },
    /** Pod label changes per second during the churn phase. */
    churn: { type: 'string', default: '50' },
    /**
     * Label churn phases, each followed by its control: the machine's stalls (the apiserver and etcd
     * share its cores) land in one phase or another, so one pair of phases cannot be compared.
     */
    repeats: { type: 'string', default: '3' },
    /** Also write the results to this file (JSON). */
    json: { type: 'string' },
    /** Extra Node.js flags for meshguard (e.g. --cpu-prof), for experiments. */
    'node-flags': { type: 'string', default: '' },
    /** Extra `meshguard serve` flags (e.g. --config F), for experiments. */
    'serve-flags': { type: 'string', default: '' },
    /** Do not write bench/results/live-latest.* (for tests). */
    'no-write': { type: 'boolean', default: false },
  },
});
const SIZES = values.pods.split(',').map(Number);
const SECONDS = Number(values.seconds);
const RATE = Number(values.rate);
const CHURN = Number(values.churn);
const REPEATS = Math.max(1, Number(values.repeats));
const CONNECTIONS = 8;
/** Requests in flight while loading the cluster into the apiserver. */
const LOAD_CONCURRENCY = 32;

const log = (m: string): void => void process.stderr.write(`[live] ${m}\n`);

// ---------------------------------------------------------------------------------------------------
// A minimal client for the apiserver (keep-alive, admin token from the harness's kubeconfig).

export interface Api {
  request(method: string, urlPath: string, body?: unknown, contentType?: string): Promise<{ status: number; body: string }>;
  close(): void;
}

export function apiFromKubeconfig(file: string): Api {
  const kc = parseYaml(readFileSync(file, 'utf8')) as {
    clusters: { cluster: { server: string; 'certificate-authority-data': string } }[];
    users: { user: { token: string } }[];
  };
  const server = new URL(kc.clusters[0]!.cluster.server);
  const ca = Buffer.from(kc.clusters[0]!.cluster['certificate-authority-data'], 'base64');
  const token = kc.users[0]!.user.token;
  const agent = new https.Agent({ keepAlive: true, maxSockets: LOAD_CONCURRENCY, ca });
  return {
    request: (method, urlPath, body, contentType = 'application/json') =>
      new Promise((resolve, reject) => {
        const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
        const req = https.request(
          {
            host: server.hostname, port: server.port, path: urlPath, method, agent,
            headers: { authorization: `Bearer ${token}`, accept: 'application/json', ...(data ? { 'content-type': contentType, 'content-length': data.length } : {}) },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
            res.on('error', reject);
          },
        );
        req.setTimeout(60_000, () => req.destroy(new Error(`${method} ${urlPath}: no answer in 60 s`)));
        req.on('error', reject);
        req.end(data);
      }),
    close: () => agent.destroy(),
  };
}

/** Runs `fn` over `items` with at most `limit` calls in flight. */
async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

/** Creation order: what others refer to first; the injector webhook last, so that no pod create calls it. */
const ORDER: readonly string[] = [
  'Node', 'Namespace', 'ServiceAccount', 'ConfigMap', 'Service', 'EndpointSlice', 'RoleBinding', 'ClusterRoleBinding', 'Deployment',
  'CiliumClusterwideNetworkPolicy', 'CiliumNetworkPolicy', 'NetworkPolicy', 'AuthorizationPolicy', 'PeerAuthentication', 'Pod',
  'MutatingWebhookConfiguration',
];

export function pathOf(o: Obj): string {
  if (!(o.kind in KINDS)) throw new Error(`bench/live: no API path for kind ${o.kind}`);
  return collectionPath(o.kind as KindName, o.metadata.namespace);
}

/**
 * Creates every object (the status subresource is written separately: a create drops `status`, and
 * meshguard reads pod IPs and phases and node addresses from it). Objects the apiserver made itself
 * (default/kubernetes, kube-system) are replaced by server-side apply. Returns objects per second.
 */
export async function loadCluster(api: Api, objects: readonly Obj[]): Promise<{ seconds: number; perSecond: number }> {
  const t0 = performance.now();
  const rank = (o: Obj): number => {
    const i = ORDER.indexOf(o.kind);
    if (i < 0) throw new Error(`bench/live: kind ${o.kind} has no place in the creation order`);
    return i;
  };
  const groups = new Map<number, Obj[]>();
  for (const o of objects) {
    const r = rank(o);
    const g = groups.get(r);
    if (g) g.push(o);
    else groups.set(r, [o]);
  }
  for (const [, group] of [...groups].sort(([a], [b]) => a - b)) {
    await pool(group, LOAD_CONCURRENCY, async (o) => {
      const { status: st, ...rest } = o as Obj & { status?: unknown };
      const { uid: _uid, resourceVersion: _rv, ...metadata } = o.metadata as Obj['metadata'] & { uid?: string; resourceVersion?: string };
      const body = { ...rest, metadata };
      const base = pathOf(o);
      const item = `${base}/${encodeURIComponent(o.metadata.name)}`;
      let r = await api.request('POST', base, body);
      // 409: it exists. 422 can mean the same when the allocation check runs before the name check
      // (default/kubernetes owns 10.96.0.1 already): server-side apply then updates it in place.
      if (r.status === 409 || (r.status === 422 && r.body.includes('already allocated'))) {
        r = await api.request('PATCH', `${item}?fieldManager=meshguard-bench&force=true`, body, 'application/apply-patch+yaml');
      }
      if (r.status >= 300) throw new Error(`creating ${o.kind} ${o.metadata.namespace ?? ''}/${o.metadata.name}: ${r.status} ${r.body.slice(0, 300)}`);
      if (st !== undefined) {
        const s = await api.request('PATCH', `${item}/status`, { status: st }, 'application/merge-patch+json');
        if (s.status >= 300) throw new Error(`status of ${o.kind} ${o.metadata.name}: ${s.status} ${s.body.slice(0, 300)}`);
      }
    });
  }
  const seconds = (performance.now() - t0) / 1000;
  return { seconds, perSecond: objects.length / seconds };
}

/** meshguard_state_objects per kind, from meshguard's /metrics. */
async function stateObjects(metricsPort: number): Promise<Record<string, number>> {
  const text = await metricsPage(metricsPort);
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^meshguard_state_objects\{kind="([^"]+)"\} (\d+)$/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

/** The whole body of GET `pathAndQuery` (an error unless HTTP 200), for timing and sizing lists. */
export async function bodyOf(api: KubeApi, pathAndQuery: string, accept: string): Promise<Buffer> {
  const res = await api.get(pathAndQuery, { accept });
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  const body = Buffer.concat(chunks);
  if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${body.subarray(0, 300).toString()}`);
  return body;
}

/**
 * Runs `measure` on the cluster of `kubeconfig`, or, without one, on a control plane started here and
 * loaded with a generated cluster of `pods` pods (with `keep`, left running until interrupted), stopped after.
 */
export async function onCluster(kubeconfig: string | undefined, pods: number, log: (m: string) => void, measure: (kubeconfig: string) => Promise<void>, keep = false): Promise<void> {
  if (kubeconfig !== undefined) return measure(kubeconfig);
  const cp = await startControlPlane();
  const loader = apiFromKubeconfig(cp.kubeconfigPath);
  const load = (): string => os.loadavg()[0]!.toFixed(1);
  try {
    const objects = generateCluster(pods);
    log(`creating ${objects.length} objects, load ${load()}`);
    const loaded = await loadCluster(loader, objects);
    log(`${loaded.perSecond.toFixed(0)} objects/s, load ${load()}`);
    await measure(cp.kubeconfigPath);
    if (keep) {
      log(`kept: KUBECONFIG=${cp.kubeconfigPath} (interrupt to stop)`);
      await new Promise((r) => process.once('SIGINT', r));
    }
  } finally {
    loader.close();
    await cp.stop();
  }
}

/** Pod watch events meshguard has applied (meshguard_state_watch_events_total), by result. */
export async function podEvents(metricsPort: number): Promise<{ changed: number; unchanged: number }> {
  const text = await metricsPage(metricsPort);
  const read = (result: string): number => Number(new RegExp(`^meshguard_state_watch_events_total\\{kind="Pod",result="${result}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
  return { changed: read('changed'), unchanged: read('unchanged') };
}

/** V8 heap in use (nodejs_heap_size_used_bytes from meshguard's /metrics), to set RSS against. */
async function heapUsed(metricsPort: number): Promise<number> {
  const m = /^nodejs_heap_size_used_bytes (\d+)/m.exec(await metricsPage(metricsPort));
  return m ? Number(m[1]) : NaN;
}

/**
 * Changes one pod `perSecond` times a second until stopped. `labels`: a label nothing selects on (as a
 * rollout's pod-template-hash would change): every change is a watch event that replaces a pod in
 * meshguard's state. `status`: the pod's Ready condition through the status subresource, as kubelets
 * report readiness: watch events that change nothing meshguard keeps. Returns a stop function that
 * resolves to the number of changes acknowledged.
 */
/**
 * Values written by churn() so far, over all its calls: a value is never written twice, or a phase that
 * follows another would patch pods to the values they already have, which the apiserver answers without
 * a watch event (until this counter, the label churn phase repeated the idle phase's first half).
 */
let churnValues = 0;

function churn(api: Api, pods: readonly Obj[], perSecond: number, what: 'labels' | 'status' = 'labels'): () => Promise<number> {
  let n = 0;
  let acked = 0;
  let failed = 0;
  const inFlight = new Set<Promise<void>>();
  const t0 = performance.now();
  const timer = setInterval(() => {
    // Catch up to the schedule (timers fire late under load): n changes by now.
    const due = Math.floor(((performance.now() - t0) / 1000) * perSecond);
    while (n < due) {
      const p = pods[(n * 7919) % pods.length]!;
      n++;
      const v = String(++churnValues);
      const req = (what === 'labels'
        ? api.request('PATCH', `${pathOf(p)}/${p.metadata.name}`, { metadata: { labels: { 'bench.meshguard.io/churn': v } } }, 'application/merge-patch+json')
        : api.request('PATCH', `${pathOf(p)}/${p.metadata.name}/status`, { status: { conditions: [{ type: 'Ready', status: n % 2 === 0 ? 'True' : 'False', reason: `bench-${v}` }] } }, 'application/merge-patch+json'))
        .then((r) => void (r.status < 300 ? acked++ : failed++), () => void failed++)
        .finally(() => inFlight.delete(req));
      inFlight.add(req);
    }
  }, 50);
  return async () => {
    clearInterval(timer);
    await Promise.all(inFlight);
    if (failed > 0) throw new Error(`bench/live: ${failed} pod ${what} changes failed`);
    return acked;
  };
}

// ---------------------------------------------------------------------------------------------------

interface SizeResult {
  pods: number;
  objects: number;
  apiserverLoad: { seconds: number; perSecond: number };
  startupMs: number;
  /** The event loop of serve from process start to ready (bench/event-loop-probe.ts). */
  eventLoopStartup: EventLoopFigures;
  stateObjects: Record<string, number>;
  serverRssReady: number;
  serverRssLoaded: number;
  serverRssPeak: number;
  /** V8 heap in use when ready and after the load phases. */
  heapUsedReady: number;
  heapUsedLoaded: number;
  /** The same cluster served from a state file: RSS and heap in use when ready. */
  controlRssReady: number;
  controlHeapUsedReady: number;
  rate: LoadResult;
  max: LoadResult;
  /** The label churn run with the median p99 of the REPEATS runs, and every run's summary. */
  churn: LoadResult & { podChanges: number; podChangesPerSecond: number; cpuMicrosPerPodChange: number; mainCpuMicrosPerPodChange: number; quietCpuSeconds: number; podEvents: { changed: number; unchanged: number }; runs: RunSummary[] };
  /**
   * The same churn and rate against meshguard serving a state file (it sees no events), each run right
   * after a label churn run: the run with the median p99, and every run's summary.
   */
  churnControl: LoadResult & { runs: RunSummary[] };
  /** The rate with as many pod readiness (status) changes a second instead of label changes. */
  statusChurn: LoadResult & { podChanges: number; podEvents: { changed: number; unchanged: number } };
}

/** One of the repeated runs: its p99 and the major collections in the server during it. */
interface RunSummary {
  p99: number;
  majorGcs?: number;
  majorGcMs?: number;
}
const runSummary = (r: LoadResult): RunSummary => ({ p99: r.p99, ...(r.majorGcs === undefined ? {} : { majorGcs: r.majorGcs, majorGcMs: r.majorGcMs ?? NaN }) });

/** The run whose p99 is the median of the runs' (the lower middle one of an even count). */
function medianByP99<T>(runs: readonly T[], p99: (run: T) => number): T {
  return [...runs].sort((a, b) => p99(a) - p99(b))[Math.floor((runs.length - 1) / 2)]!;
}

async function measureSize(pods: number, work: string, ca: Buffer, tls: string[]): Promise<SizeResult> {
  log(`size ${pods}: starting etcd + kube-apiserver`);
  const cp: ControlPlane = await startControlPlane();
  let server: ChildProcess | undefined;
  let controlServer: ChildProcess | undefined;
  const api = apiFromKubeconfig(cp.kubeconfigPath);
  try {
    const objects = generateCluster(pods);
    log(`size ${pods}: creating ${objects.length} objects`);
    const apiserverLoad = await loadCluster(api, objects);
    log(`size ${pods}: ${apiserverLoad.perSecond.toFixed(0)} objects/s; starting meshguard serve --kubeconfig`);
    const port = await freePort();
    const metricsPort = await freePort();
    // The event loop from process start to ready (bench/event-loop-probe.ts): the informers' lists, the
    // state build and the warm-up.
    const eventLoopFile = path.join(os.tmpdir(), `meshguard-event-loop-live-${process.pid}-${pods}.jsonl`);
    rmSync(eventLoopFile, { force: true });
    const started = await startServer(
      [...eventLoopProbeFlags(), ...deployedNodeFlags(), ...values['node-flags'].split(' ').filter((x) => x !== ''), path.join(ROOT, 'bin/meshguard.js'), 'serve', '--kubeconfig', cp.kubeconfigPath, ...tls, '--port', String(port), '--metrics-port', String(metricsPort), '--host', '127.0.0.1', '--drain-seconds', '0', ...values['serve-flags'].split(' ').filter((x) => x !== '')],
      port, ca, undefined, { ...process.env, MESHGUARD_EVENT_LOOP_FILE: eventLoopFile },
    );
    server = started.child;
    const eventLoopStartup = await eventLoopSince(server, eventLoopFile);
    log(`size ${pods}: ready after ${f(started.readyMs, 0)} ms; event loop blocked at most ${f(eventLoopStartup.maxMs, 0)} ms meanwhile`);
    const serverRssReady = rssOf(server.pid);
    const heapUsedReady = await heapUsed(metricsPort);

    // meshguard must see the whole cluster, or the figures would be for a smaller one.
    const expected: Record<string, number> = {};
    for (const o of objects) expected[o.kind] = (expected[o.kind] ?? 0) + 1;
    const seen = await stateObjects(metricsPort);
    for (const [kind, n] of Object.entries(expected)) {
      if ((seen[kind] ?? 0) < n) throw new Error(`bench/live: meshguard's state holds ${seen[kind] ?? 0} ${kind} objects, the bench created ${n}`);
    }

    const bodies = path.join(work, `bodies-${pods}.json`);
    writeFileSync(bodies, JSON.stringify(requestMix(pods, 400).map((r) => JSON.stringify(r.review))));
    const load = (mode: 'rate' | 'max'): Promise<LoadResult> =>
      measureLoad(server!.pid, { port, caFile: path.join(work, 'ca.crt'), bodiesFile: bodies, mode, rate: RATE, connections: CONNECTIONS, seconds: SECONDS, metricsPort });
    const podList = objects.filter((o) => o.kind === 'Pod');
    // What a watch event costs meshguard by itself: pod changes with no admission requests, less the CPU
    // the same process uses over as long with no changes at all (timers, collecting the warm-up's
    // garbage), measured just before. It runs before the load phases: after them, V8's concurrent
    // marking of the load's garbage on its worker threads landed in this window and the figure swung
    // from 100 to 1800 µs between runs; settled, a change costs tens of µs.
    await new Promise((r) => setTimeout(r, Math.min(5000, SECONDS * 500)));
    const windowMs = (SECONDS * 1000) / 2;
    const quietCpu0 = cpuSecondsOf(server.pid);
    const quietMain0 = cpuSecondsOf(server.pid, 'main');
    await new Promise((r) => setTimeout(r, windowMs + 500));
    const quietCpu = cpuSecondsOf(server.pid) - quietCpu0;
    const quietMain = cpuSecondsOf(server.pid, 'main') - quietMain0;
    log(`size ${pods}: ${CHURN} pod changes/s, no requests`);
    const idleCpu0 = cpuSecondsOf(server.pid);
    const idleMain0 = cpuSecondsOf(server.pid, 'main');
    const stopIdle = churn(api, podList, CHURN);
    await new Promise((r) => setTimeout(r, windowMs));
    const idleChanges = await stopIdle();
    // Let the last events arrive before reading the CPU time (the quiet window above was as long).
    await new Promise((r) => setTimeout(r, 500));
    const cpuMicrosPerPodChange = ((cpuSecondsOf(server.pid) - idleCpu0 - quietCpu) * 1e6) / idleChanges;
    // The main thread alone: V8's concurrent marking runs on worker threads, and the first major
    // collection after the warm-up (hundreds of ms of CPU at 50k pods) lands in this window once the
    // events allocate; the main thread's figure is what a request waiting behind the events would feel.
    const mainCpuMicrosPerPodChange = ((cpuSecondsOf(server.pid, 'main') - idleMain0 - quietMain) * 1e6) / idleChanges;
    log(`size ${pods}: ${RATE} req/s`);
    const rate = await load('rate');
    log(`size ${pods}: max`);
    const max = await load('max');
    // Readiness changes first: they leave the state as it is, and the label churn's rebuilt caches
    // would otherwise leave their garbage (a major collection) to this phase. underChurn checks that
    // meshguard applied the events, as state changes or not.
    /**
     * The rate phase while pods change (`what`): its result, the changes acknowledged, its length, and
     * the pod watch events meshguard applied meanwhile (changed or not its state).
     */
    const underChurn = async (what: 'labels' | 'status'): Promise<{ result: LoadResult; changes: number; seconds: number; events: { changed: number; unchanged: number } }> => {
      const events0 = await podEvents(metricsPort);
      log(`size ${pods}: ${RATE} req/s with ${CHURN} pod ${what === 'status' ? 'readiness' : 'label'} changes/s`);
      const t0 = performance.now();
      const stop = churn(api, podList, CHURN, what);
      let result: LoadResult;
      let changes = 0;
      try {
        result = await load('rate');
      } finally {
        changes = await stop();
      }
      const seconds = (performance.now() - t0) / 1000;
      await new Promise((r) => setTimeout(r, 500)); // the last events are on their way
      const events1 = await podEvents(metricsPort);
      const events = { changed: events1.changed - events0.changed, unchanged: events1.unchanged - events0.unchanged };
      // Every change is a watch event; readiness ones must leave the state as it is, label ones not.
      const expected = what === 'status' ? events.unchanged : events.changed;
      if (expected < changes * 0.95) throw new Error(`bench/live: ${changes} pod ${what} changes, but meshguard applied ${JSON.stringify(events)} watch events`);
      return { result, changes, seconds, events };
    };
    const readiness = await underChurn('status');

    // Label churn, each run followed by its control: the same churn on the apiserver while a second
    // meshguard serves a file snapshot of the same cluster and watches nothing, with its verdict cache
    // off (label churn leaves the live one's cache nothing to answer from, so both evaluate every
    // request). The apiserver and etcd share this machine's cores with meshguard and the load
    // generator, so the churn slows requests down even where meshguard does no work for it; the gap
    // between the live p99 and the control's is what the watch events cost meshguard itself: applying
    // them, and rebuilding the per-revision caches each one empties. The live meshguard keeps receiving
    // the events during the control runs, which can only make the control slower (the gap smaller).
    // The runs alternate because a stall of the machine (tens of ms, now and then) sets the p99 of
    // whichever phase it lands in: the medians are compared, and every run's p99 is reported.
    const stateFile = path.join(work, `state-${pods}.json`);
    writeFileSync(stateFile, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }));
    const filePort = await freePort();
    const fileMetricsPort = await freePort();
    const fileServer = await startServer(
      [...deployedNodeFlags(), path.join(ROOT, 'bin/meshguard.js'), 'serve', '--state', stateFile, ...tls, '--port', String(filePort), '--metrics-port', String(fileMetricsPort), '--host', '127.0.0.1', '--drain-seconds', '0', '--verdict-cache', '0'],
      filePort, ca,
    );
    controlServer = fileServer.child;
    const controlRssReady = rssOf(controlServer.pid);
    const controlHeapUsedReady = await heapUsed(fileMetricsPort);
    // The control has just read its file: its first collections of that garbage (concurrent marking on
    // V8's worker threads, hundreds of ms of CPU at 50k pods) would land in the first pair of runs and
    // slow both servers. An unreported load lets them happen first.
    const controlLoad = (seconds: number): Promise<LoadResult> =>
      measureLoad(controlServer!.pid, { port: filePort, caFile: path.join(work, 'ca.crt'), bodiesFile: bodies, mode: 'rate', rate: RATE, connections: CONNECTIONS, seconds, metricsPort: fileMetricsPort });
    await controlLoad(Math.max(1, SECONDS / 2));
    await new Promise((r) => setTimeout(r, 1000));
    const labelRuns: Awaited<ReturnType<typeof underChurn>>[] = [];
    const controlRuns: LoadResult[] = [];
    for (let i = 0; i < REPEATS; i++) {
      labelRuns.push(await underChurn('labels'));
      log(`size ${pods}: control: ${RATE} req/s with ${CHURN} pod changes/s, meshguard on a state file`);
      const stopControl = churn(api, podList, CHURN);
      try {
        controlRuns.push(await controlLoad(SECONDS));
      } finally {
        await stopControl();
      }
    }
    const labels = medianByP99(labelRuns, (x) => x.result.p99);
    const control = medianByP99(controlRuns, (x) => x.p99);
    const churned = labels.result;
    const podChanges = labels.changes;
    const churnSeconds = labels.seconds;
    const after = await stateObjects(metricsPort);
    if ((after['Pod'] ?? 0) < (expected['Pod'] ?? 0)) throw new Error('bench/live: pods went missing from meshguard\'s state during the churn');
    const serverRssLoaded = rssOf(server.pid);
    const serverRssPeak = rssOf(server.pid, 'VmHWM');
    const heapUsedLoaded = await heapUsed(metricsPort);
    await stopServer(server, 'SIGTERM');
    await stopServer(controlServer, 'SIGTERM');
    return {
      pods, objects: objects.length, apiserverLoad, startupMs: started.readyMs, eventLoopStartup, stateObjects: seen,
      serverRssReady, serverRssLoaded, serverRssPeak, heapUsedReady, heapUsedLoaded, controlRssReady, controlHeapUsedReady, rate, max,
      churn: { ...churned, podChanges, podChangesPerSecond: podChanges / churnSeconds, cpuMicrosPerPodChange, mainCpuMicrosPerPodChange, quietCpuSeconds: quietCpu, podEvents: labels.events, runs: labelRuns.map((x) => runSummary(x.result)) },
      churnControl: { ...control, runs: controlRuns.map(runSummary) },
      statusChurn: { ...readiness.result, podChanges: readiness.changes, podEvents: readiness.events },
    };
  } finally {
    api.close();
    if (server) await stopServer(server, 'SIGTERM');
    if (controlServer) await stopServer(controlServer, 'SIGTERM');
    await cp.stop();
  }
}

const f = fmt;
const mb = (b: number): string => f(b / 2 ** 20, 0);
/** A phase's cache hit share and the major collections that fell into it. */
const hits = (r: LoadResult): string =>
  (r.cacheHitRatio === undefined || Number.isNaN(r.cacheHitRatio) ? '-' : `${f(100 * r.cacheHitRatio, 0)}%`) +
  (r.majorGcs === undefined || r.majorGcs === 0 ? '' : Number.isNaN(r.majorGcs) ? '; major GCs unknown' : `; ${r.majorGcs} major GC, ${f(r.majorGcMs, 0)} ms`);

/** Each run's p99 in the order they ran, with its major collections if any. */
const runs = (rs: readonly RunSummary[]): string =>
  rs.map((x) => f(x.p99, 1) + (x.majorGcs === undefined || x.majorGcs === 0 || Number.isNaN(x.majorGcs) ? '' : ` (${x.majorGcs} GC, ${f(x.majorGcMs ?? NaN, 0)} ms)`)).join(', ');

function report(r: { machine: Record<string, unknown>; sizes: SizeResult[]; targets: TargetCheck[] }): string {
  const lines = [
    `## meshguard live path (serve --kubeconfig against kube-apiserver; ${r.machine['cpus']} CPUs, Node ${process.version})`, '',
    `Latency at ${RATE} req/s (open loop, ${SECONDS} s, the repeated traffic shape: the mix's 400 reviews in turn), without pod changes, with ${CHURN} pod readiness changes/s and with ${CHURN} pod label changes/s, and max throughput (${CONNECTIONS} keep-alive connections). The label churn phase and its control (the same churn, meshguard serving a state file) ran ${REPEATS} times in turn (the control with its verdict cache off, as label churn leaves the live one's empty): the run with the median p99 is shown, and in brackets each run's p99 in order, with the major collections in that run's server. In parentheses: the share of requests meshguard answered from its verdict cache in that phase, and V8's major collections (count, total pause) in meshguard during it.`, '',
    '| pods | objects loaded into the apiserver | start to ready ms | serve RSS MB ready / after load / peak | p50 / p99 ms (cache hits) | p50 / p99 ms with label churn (cache hits) [p99 of each run] | same churn, meshguard on a state file, no verdict cache: p50 / p99 ms [p99 of each run] | pod changes/s applied | server CPU µs per pod change: all threads / main thread | p50 / p99 ms with readiness churn (cache hits) | max req/s | server CPU µs/req at max |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const s of r.sizes) {
    lines.push(`| ${s.pods} | ${s.objects} (${f(s.apiserverLoad.perSecond, 0)}/s) | ${f(s.startupMs, 0)} | ${mb(s.serverRssReady)} / ${mb(s.serverRssLoaded)} / ${mb(s.serverRssPeak)} | ${f(s.rate.p50, 3)} / ${f(s.rate.p99, 3)} (${hits(s.rate)}) | ${f(s.churn.p50, 3)} / ${f(s.churn.p99, 3)} (${hits(s.churn)}) [${runs(s.churn.runs)}] | ${f(s.churnControl.p50, 3)} / ${f(s.churnControl.p99, 3)} [${runs(s.churnControl.runs)}] | ${f(s.churn.podChangesPerSecond, 0)} | ${f(s.churn.cpuMicrosPerPodChange, 0)} / ${f(s.churn.mainCpuMicrosPerPodChange, 0)} | ${f(s.statusChurn.p50, 3)} / ${f(s.statusChurn.p99, 3)} (${hits(s.statusChurn)}) | ${f(s.max.rps, 0)} | ${f(s.max.serverCpuMicros, 0)} |`);
  }
  lines.push('', 'Event loop of `serve --kubeconfig` from process start to ready (perf_hooks.monitorEventLoopDelay, bench/event-loop-probe.ts; target: never blocked over 50 ms):', '');
  lines.push('| pods | start to ready ms | event loop blocked at most ms | longest blocks (ms at s since start) |', '|---:|---:|---:|---|');
  for (const s of r.sizes) {
    lines.push(`| ${s.pods} | ${f(s.startupMs, 0)} | ${f(s.eventLoopStartup.maxMs, 0)} | ${s.eventLoopStartup.longestBlocks.map((b) => `${b.ms} at ${f(b.atMs / 1000, 1)}`).join(', ') || '-'} |`);
  }
  lines.push('', 'Memory, live against the same cluster served from a state file (`serve --state`, the control):', '');
  lines.push('| pods | live: RSS MB / heap in use MB, ready | live: heap in use MB after load | state file: RSS MB / heap in use MB, ready |', '|---:|---:|---:|---:|');
  for (const s of r.sizes) {
    lines.push(`| ${s.pods} | ${mb(s.serverRssReady)} / ${mb(s.heapUsedReady)} | ${mb(s.heapUsedLoaded)} | ${mb(s.controlRssReady)} / ${mb(s.controlHeapUsedReady)} |`);
  }
  lines.push('', 'Pod watch events meshguard applied during the churn phases (from `meshguard_state_watch_events_total`): new state / state unchanged:', '');
  lines.push('| pods | readiness churn | label churn |', '|---:|---:|---:|');
  for (const s of r.sizes) lines.push(`| ${s.pods} | ${s.statusChurn.podEvents.changed} / ${s.statusChurn.podEvents.unchanged} | ${s.churn.podEvents.changed} / ${s.churn.podEvents.unchanged} |`);
  const errors = r.sizes.reduce((n, s) => n + s.rate.errors + s.max.errors + s.churn.errors + s.churnControl.errors + s.statusChurn.errors, 0);
  lines.push('', `Errors (non-200 answers or failed requests) over all phases: ${errors}.`, '');
  lines.push('Targets (issues #6 and #21) for the live path, checked against this run:', '', ...targetsTable(r.targets), '');
  return lines.join('\n');
}

async function main(): Promise<void> {
  const work = mkdtempSync(path.join(os.tmpdir(), 'meshguard-bench-live-'));
  try {
    await new Promise<void>((resolve, reject) => {
      const c = spawn(path.join(ROOT, 'scripts/dev-certs.sh'), [work], { stdio: 'ignore' });
      c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error('dev-certs failed'))));
    });
    const ca = readFileSync(path.join(work, 'ca.crt'));
    const tls = ['--tls-cert', path.join(work, 'tls.crt'), '--tls-key', path.join(work, 'tls.key')];
    const results = {
      date: new Date().toISOString(),
      machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, platform: `${os.platform()} ${os.release()}` },
      loadSeconds: SECONDS, rate: RATE, churnPerSecond: CHURN, connections: CONNECTIONS, serverNodeFlags: deployedNodeFlags(),
      sizes: [] as SizeResult[],
      targets: [] as TargetCheck[],
    };
    for (const pods of SIZES) results.sizes.push(await measureSize(pods, work, ca, tls));
    results.targets = [checkRss(results.sizes, 'live path'), checkReadyFromLive(results.sizes)];
    const json = JSON.stringify(results, null, 2) + '\n';
    const text = report(results);
    if (!values['no-write']) {
      mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true });
      writeFileSync(path.join(ROOT, 'bench/results/live-latest.json'), json);
      writeFileSync(path.join(ROOT, 'bench/results/live-latest.md'), text);
    }
    if (values.json) writeFileSync(values.json, json);
    process.stdout.write(text);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

// Run as a script (bench/live-churn.ts imports the apiserver client and the loader from here).
if (import.meta.main) await main();
