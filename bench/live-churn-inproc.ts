// The live path under pod churn, in one process, without kube-apiserver (issue 21): the store side of
// `bench/live-churn.ts` at rates the local apiserver cannot take. Pod watch events (the JSON line an
// apiserver sends, with the metadata, managedFields and status a real pod carries) go through the same
// steps as src/state/live.ts applies them (JSON.parse, transformObject, MemoryState.upsert), and
// admission reviews through the same steps as the webhook (JSON.parse, toChange, the verdict cache,
// decide), all on one event loop, open loop: each event and request has a scheduled time, and is late
// when the loop is busy with others. Measured per phase: the events' lag (applied - scheduled), the
// requests' latency (decided - scheduled), CPU time of the process, the longest event-loop block.
// No HTTP, no TLS, no logging: the figures are what meshguard's own work costs, not the served path's.
//
// Each label change writes a value no pod had (`bench.meshguard.io/churn`), so each moves its pod into
// a class of its own, as bench/live-churn.ts does; --churn-label pod-template-hash changes a label that
// no class or identity reads instead (a rollout's), and --churn-kind ready changes only the pod's
// Ready condition (the bulk of a live cluster's pod events).
//
// Usage: node [--cpu-prof] bench/live-churn-inproc.ts [--pods 5000] [--events 500] [--rate 500] [--seconds 10]
//          [--repeat new|cycle] [--churn-label bench.meshguard.io/churn] [--churn-kind label|ready] [--json FILE]

import os from 'node:os';
import { constants, monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { toChange } from '../src/admission/review.ts';
import type { AdmissionReview } from '../src/admission/schema.ts';
import { defaultConfig } from '../src/config/config.ts';
import { allRules } from '../src/rules/registry.ts';
import { tuneHeapForServing } from '../src/server/heap-tuning.ts';
import { stateFromObjects } from '../src/state/snapshot.ts';
import { transformObject } from '../src/state/transform.ts';
import { cachingDecide } from '../src/verdict/cache.ts';
import { createDecide } from '../src/verdict/decide.ts';
import { warmUpInSlices } from '../src/verdict/warmup.ts';
import { generateCluster, type Obj } from './cluster-gen.ts';
import { requestMix, SEQ_PLACEHOLDER } from './requests.ts';

const { values } = parseArgs({
  options: {
    pods: { type: 'string', default: '5000' },
    events: { type: 'string', default: '500' },
    rate: { type: 'string', default: '500' },
    seconds: { type: 'string', default: '10' },
    repeat: { type: 'string', default: 'new' },
    'churn-label': { type: 'string', default: 'bench.meshguard.io/churn' },
    'churn-kind': { type: 'string', default: 'label' },
    json: { type: 'string' },
  },
});
const PODS = Number(values.pods);
const EVENTS = Number(values.events);
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const log = (m: string): void => void process.stderr.write(`[live-churn-inproc] ${m}\n`);

tuneHeapForServing(); // as `meshguard serve` does before loading its state
const objects = generateCluster(PODS);
const state = stateFromObjects(objects);
const pods = objects.filter((o) => o.kind === 'Pod');
const rules = allRules();
const uncached = createDecide(rules, defaultConfig(rules));
const decide = cachingDecide(uncached);
const mix = requestMix(PODS, 400).map((r) => JSON.stringify(r.review));

let rv = 1_000_000;
/** A pod as kube-apiserver sends it in a watch event: what the generator makes plus what the apiserver adds. */
function watchLine(p: Obj, n: number): string {
  const m = p.metadata as Obj['metadata'] & { labels?: Record<string, string> };
  const labels = values['churn-kind'] === 'label' ? { ...m.labels, [values['churn-label']!]: `c${n}` } : m.labels;
  const t = '2026-12-06T12:00:00Z';
  const raw = {
    ...p,
    metadata: {
      ...m, labels, uid: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`, resourceVersion: String(++rv), creationTimestamp: t,
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${m.name}-rs`, uid: '11111111-0000-4000-8000-000000000000', controller: true, blockOwnerDeletion: true }],
      managedFields: [
        { manager: 'kube-controller-manager', operation: 'Update', apiVersion: 'v1', time: t, fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': { 'f:labels': Object.fromEntries(Object.keys(labels ?? {}).map((k) => [`f:${k}`, {}])), 'f:ownerReferences': {} }, 'f:spec': { 'f:containers': {}, 'f:dnsPolicy': {}, 'f:restartPolicy': {} } } },
        { manager: 'kubelet', operation: 'Update', apiVersion: 'v1', time: t, fieldsType: 'FieldsV1', subresource: 'status', fieldsV1: { 'f:status': { 'f:conditions': {}, 'f:containerStatuses': {}, 'f:hostIP': {}, 'f:phase': {}, 'f:podIP': {}, 'f:podIPs': {}, 'f:startTime': {} } } },
      ],
    },
    status: {
      ...(p['status'] as object | undefined),
      conditions: ['Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map((type) => ({ type, status: values['churn-kind'] === 'ready' && type === 'Ready' ? (n % 2 ? 'False' : 'True') : 'True', lastTransitionTime: t })),
      containerStatuses: [{ name: 'app', ready: true, restartCount: 0, image: 'nginx:1.27', imageID: 'docker.io/library/nginx@sha256:0000', containerID: 'containerd://0000', started: true, state: { running: { startedAt: t } } }],
      startTime: t,
      qosClass: 'BestEffort',
    },
  };
  return JSON.stringify({ type: 'MODIFIED', object: raw });
}

/** What src/state/live.ts does with one watch line of a Pod stream (its #event, less the bookkeeping). */
function applyLine(line: string): void {
  const ev = JSON.parse(line) as { type: string; object: Record<string, unknown> };
  const obj = transformObject('Pod', ev.object);
  state.upsert('Pod', obj);
}

let seq = 0;
/** What the webhook does with one review body (less HTTP): parse, the Change, the cached decide. */
function review(body: string): void {
  const text = values.repeat === 'new' ? body.replaceAll(SEQ_PLACEHOLDER, `seq-${String(++seq).padStart(8, '0')}`) : body;
  decide(toChange(JSON.parse(text) as AdmissionReview), state);
}

const pct = (xs: readonly number[], p: number): number => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
const r2 = (x: number): number => Math.round(x * 100) / 100;

// Major collections (count and pause time) and scavenges, per phase: what the events leave for the old
// generation shows as more major collections in the same time. An entry reaches the observer a few
// turns of the loop after its collection, so each phase counts the entries that started within it.
const gcEntries: { at: number; major: boolean; ms: number }[] = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
    if (kind === constants.NODE_PERFORMANCE_GC_MAJOR || kind === constants.NODE_PERFORMANCE_GC_MINOR) gcEntries.push({ at: e.startTime, major: kind === constants.NODE_PERFORMANCE_GC_MAJOR, ms: e.duration });
  }
}).observe({ entryTypes: ['gc'] });
/** The collections that started between `from` and `to` (performance.now() times). */
function gcsBetween(from: number, to: number): { major: number; majorMs: number; minor: number; minorMs: number } {
  const out = { major: 0, majorMs: 0, minor: 0, minorMs: 0 };
  for (const g of gcEntries) {
    if (g.at < from || g.at >= to) continue;
    if (g.major) {
      out.major++;
      out.majorMs += g.ms;
    } else {
      out.minor++;
      out.minorMs += g.ms;
    }
  }
  return out;
}

let changeN = 0;
/** One phase: `events`/s pod changes and `rate`/s reviews for `seconds`, open loop on this event loop. */
async function phase(name: string, events: number, rate: number, seconds: number): Promise<Record<string, unknown>> {
  // Events and requests in scheduled order; the lines are built beforehand (the apiserver's work).
  type Item = { at: number; line?: string; body?: string };
  const items: Item[] = [];
  for (let i = 0; i < events * seconds; i++) items.push({ at: (i * 1000) / events, line: watchLine(pods[(changeN * 7919) % pods.length]!, ++changeN) });
  for (let i = 0; i < rate * seconds; i++) items.push({ at: (i * 1000) / rate, body: mix[i % mix.length]! });
  items.sort((a, b) => a.at - b.at);
  const lag: number[] = [];
  const latency: number[] = [];
  let applyMs = 0;
  let decideMs = 0;
  // CPU time (process.cpuUsage, all threads) of each step: unlike wall time, not stretched by other processes.
  let applyCpu = 0;
  let decideCpu = 0;
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const cpu0 = process.cpuUsage();
  const rev0 = state.revision;
  const heap0 = process.memoryUsage().heapUsed;
  const index0 = state.labelIndexStats();
  const t0 = performance.now();
  let i = 0;
  while (i < items.length) {
    const now = performance.now() - t0;
    // Everything due now, then the loop is handed back (as a server's I/O callbacks would be).
    const sliceEnd = performance.now() + 5;
    while (i < items.length && items[i]!.at <= now && performance.now() < sliceEnd) {
      const it = items[i++]!;
      const s = performance.now();
      const c = process.cpuUsage();
      if (it.line !== undefined) applyLine(it.line);
      else review(it.body!);
      const e = performance.now();
      const cu = process.cpuUsage(c);
      if (it.line !== undefined) {
        applyCpu += cu.user + cu.system;
        applyMs += e - s;
        lag.push(e - t0 - it.at);
      } else {
        decideCpu += cu.user + cu.system;
        decideMs += e - s;
        latency.push(e - t0 - it.at);
      }
    }
    const next = items[i]?.at;
    const wait = next === undefined ? 0 : Math.max(0, next - (performance.now() - t0));
    await new Promise((r) => (wait >= 1 ? setTimeout(r, Math.floor(wait)) : setImmediate(r)));
  }
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  loop.disable();
  const heapMB = (process.memoryUsage().heapUsed - heap0) / 2 ** 20;
  const tEnd = performance.now();
  // The observer's entries for the phase's last collections arrive a few turns later.
  await new Promise((r) => setTimeout(r, 50));
  const gc = gcsBetween(t0, tEnd);
  const index = state.labelIndexStats();
  const stats = decide.stats(state);
  return {
    phase: name, eventsPerSecond: events, reviewsPerSecond: rate, seconds, wallSeconds: r2(wall),
    cpuSeconds: r2((cpu.user + cpu.system) / 1e6), newRevisions: state.revision - rev0,
    eventLagMs: { p50: r2(pct(lag, 50)), p99: r2(pct(lag, 99)), max: r2(pct(lag, 100)) },
    reviewMs: { p50: r2(pct(latency, 50)), p99: r2(pct(latency, 99)), max: r2(pct(latency, 100)) },
    applyMicrosPerEvent: lag.length ? Math.round((applyMs * 1000) / lag.length) : 0,
    decideMsPerReview: latency.length ? Math.round((decideMs / latency.length) * 1000) / 1000 : 0,
    cpuMicrosPerEvent: lag.length ? Math.round(applyCpu / lag.length) : 0,
    cpuMicrosPerReview: latency.length ? Math.round(decideCpu / latency.length) : 0,
    eventLoopMaxMs: r2(loop.max / 1e6),
    gc: { major: gc.major, majorMs: r2(gc.majorMs), minor: gc.minor, minorMs: r2(gc.minorMs), heapUsedChangeMB: r2(heapMB) },
    labelGroups: { copiedForReaders: index.copiedForReaders - index0.copiedForReaders, changedInPlace: index.changedInPlace - index0.changedInPlace },
    verdictCache: { hits: stats.hits, misses: stats.misses },
    loadAverage: r2(os.loadavg()[0]!),
  };
}

log(`${PODS} pods, ${objects.length} objects; warming up`);
await warmUpInSlices(uncached, rules, () => state, 5000, 20_000);
// A first pass over the mix, as the served benchmarks' first phase does for the JIT.
await phase('warm', 0, RATE, 2);
const results = [];
for (const [name, events] of [['no churn', 0], [`${EVENTS} pod ${values['churn-kind']} changes/s`, EVENTS], ['no churn, again', 0]] as const) {
  const r = await phase(name, events, RATE, SECONDS);
  log(JSON.stringify(r));
  results.push(r);
}
const out = { date: new Date().toISOString(), pods: PODS, repeat: values.repeat, churnLabel: values['churn-label'], churnKind: values['churn-kind'], node: process.version, cpus: os.cpus().length, phases: results };
if (values.json) writeFileSync(values.json, JSON.stringify(out, null, 2) + '\n');
process.stdout.write(JSON.stringify(out) + '\n');
