// The live path under pod churn (issue 21): `meshguard serve --kubeconfig` against the real kube-apiserver
// (the e2e control plane), with `--events` pod label changes a second made through the apiserver, each a
// watch event that replaces a pod in meshguard's state. Measured:
//   - start to ready from the apiserver, and the event loop meanwhile (bench/event-loop-probe.ts);
//   - the lag from the apiserver's answer to a change (the change is committed and its watch event
//     sent) to meshguard having applied its event: meshguard applies a stream's events in order, so the
//     k-th change is in the state once meshguard_state_watch_events_total{kind="Pod",result="changed"}
//     has grown by k; the counter is read every POLL_MS (the resolution of the figure);
//   - admission latency at --rate req/s without churn, then with it (target: p99 within 2x), with
//     meshguard's CPU time and the load average in each phase;
//   - the control (--control, on by default): a second meshguard serving the same cluster from a file,
//     loaded the same way under the same churn (after the first quiet phase, before the live server's
//     first churn phase; then stopped, so its idle-time collections stay out of the pairs), so that
//     what the churn costs the machine (kube-apiserver, etcd, the writers on the same two cores) can
//     be told from what the events cost meshguard.
// The changes come from --writers concurrent writers, at most one change in flight each.
// With --threads, bench/thread-sampler.ts samples every thread of meshguard, the control, the load
// generator, this process (the proxy), kube-apiserver and etcd, and each slow episode of 20+ requests
// is given what they ran and waited over its window (`threads` in the JSON; a summary line in the log).
// With --cpu-prof DIR, meshguard runs under V8's CPU profiler and writes its profile to DIR when it stops.
// With --pin, meshguard (and the control) run on the first CPU alone, and kube-apiserver, etcd, the writers
// and the load generator on the others (harness.ts pinBenchAwayFromServer): in a cluster the apiserver
// does not share the webhook's cores, and on this 2-core machine the churn otherwise takes them from it.
// With --kubeconfig FILE, an apiserver already holding generateCluster(--pods) is used (bench/list-encoding.ts
// --runs 0 --keep), instead of starting one and loading the cluster (minutes at 50k pods); the churn
// changes its pods' labels. --bin PATH runs another build's bin/meshguard.js as the live server.
// Usage: node bench/live-churn.ts [--kubeconfig FILE] [--bin PATH] [--pods 5000] [--events 500] [--seconds 20] [--rate 500] [--writers 16] [--no-control] [--pin] [--inject] [--churn-label L] [--threads] [--repeats 1] [--node-flags F] [--server-stdout FILE] [--json FILE] [--cpu-prof DIR]

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';

import { startControlPlane } from '../test/e2e/harness.ts';
import { generateCluster, type Obj } from './cluster-gen.ts';
import { cpuSecondsOf, deployedNodeFlags, NODE, pinBenchAwayFromServer, eventLoopProbeFlags, eventLoopSince, freePort, measureLoad, ROOT, rssOf, startServer, stopServer, type LoadResult } from './harness.ts';
import { apiFromKubeconfig, loadCluster, pathOf, podEvents, type Api } from './live.ts';
import { requestMix } from './requests.ts';
import { checkChurnAdmission, checkChurnLag, targetsTable, type ChurnFigures } from './targets.ts';
import { episodeThreads, readSamples, type EpisodeThreads, type ThreadSample } from './thread-sampler.ts';
import { startWatchInjector, type WatchInjector } from './watch-injector.ts';

const { values } = parseArgs({
  allowNegative: true,
  options: {
    pods: { type: 'string', default: '5000' },
    events: { type: 'string', default: '500' },
    seconds: { type: 'string', default: '20' },
    rate: { type: 'string', default: '500' },
    writers: { type: 'string', default: '16' },
    control: { type: 'boolean', default: true },
    pin: { type: 'boolean', default: false },
    inject: { type: 'boolean', default: false },
    /** Sample every thread's CPU and run-queue time (bench/thread-sampler.ts) and read it over each slow episode. */
    threads: { type: 'boolean', default: false },
    /**
     * The label each change sets to a new value. The default moves each changed pod into a class
     * (identity) of its own, the costly case; pod-template-hash is one no class reads (a rollout's).
     */
    'churn-label': { type: 'string', default: 'bench.meshguard.io/churn' },
    repeats: { type: 'string', default: '1' },
    /** Extra Node.js flags for the live meshguard (e.g. --trace-gc), and a file for its stdout. */
    'node-flags': { type: 'string', default: '' },
    'server-stdout': { type: 'string' },
    json: { type: 'string' },
    'cpu-prof': { type: 'string' },
    kubeconfig: { type: 'string' },
    bin: { type: 'string' },
  },
});
const PODS = Number(values.pods);
const EVENTS = Number(values.events);
const SECONDS = Number(values.seconds);
const RATE = Number(values.rate);
const WRITERS = Number(values.writers);
// Pairs of phases (no churn, then churn) on the live server: one p99 is set by whichever stall of this
// shared machine lands in its phase, so the target is judged on the median of the pairs' ratios.
const REPEATS = Math.max(1, Number(values.repeats));
// Each scrape of meshguard's /metrics renders all its metrics (2.7 ms of wall time each in a profile
// at load average 14): 10 a second (the lag's resolution), not 40 as before, which took 7% of the live
// server's main thread in that profile, a cost the control did not pay.
const POLL_MS = 100;
const log = (m: string): void => void process.stderr.write(`[live-churn] ${m}\n`);
// --threads: the sampler's interval (its own CPU time is reported at the end of the run).
const THREAD_SAMPLE_MS = 20;
const CONTROL_SETTLE_MS = 15_000;

const pct = (xs: readonly number[], p: number): number => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};

/**
 * `perSecond` label changes a second from `writers` concurrent writers (each sends its next change when
 * the schedule says and its previous one was answered, so at most `writers` are in flight: when the
 * apiserver takes fewer, the schedule slips and the rate reached is what it took), each with a value
 * never written before (so each is a watch event that changes meshguard's state); the time each was
 * answered by the apiserver, in the order answered.
 */
function churn(api: Api, pods: readonly Obj[], perSecond: number, writers: number, label: string): () => Promise<{ ackedAt: number[]; failed: number; sent: number }> {
  let n = 0;
  let failed = 0;
  let stopped = false;
  const ackedAt: number[] = [];
  const t0 = performance.now();
  // Unique to this run: an apiserver kept across runs (--kubeconfig) already holds earlier runs' values.
  const run = Date.now().toString(36);
  const writer = async (): Promise<void> => {
    while (!stopped) {
      const wait = t0 + (n * 1000) / perSecond - performance.now();
      if (wait > 0) {
        await new Promise((r) => setTimeout(r, wait));
        continue;
      }
      const p = pods[(n * 7919) % pods.length]!;
      n++;
      try {
        const r = await api.request('PATCH', `${pathOf(p)}/${p.metadata.name}`, { metadata: { labels: { [label]: `c${run}-${n}` } } }, 'application/merge-patch+json');
        if (r.status < 300) ackedAt.push(performance.now());
        else failed++;
      } catch {
        failed++;
      }
    }
  };
  const running = Array.from({ length: writers }, () => writer());
  return async () => {
    stopped = true;
    await Promise.all(running);
    return { ackedAt, failed, sent: n };
  };
}

/**
 * --threads: each phase's slow episodes of 20 requests or more, with what every watched thread did over
 * them, and a count of the live server's episodes in which its V8 workers ran longer than its main thread
 * (a major collection's concurrent marking taking the CPUs the requests wait for).
 */
function threadFigures(samples: readonly ThreadSample[], pairs: readonly Record<string, unknown>[], controlQuiet?: Record<string, unknown>, controlChurn?: Record<string, unknown>): Record<string, unknown> {
  const of = (startedAtMs: unknown, eps: unknown): EpisodeThreads[] =>
    typeof startedAtMs === 'number' && eps !== undefined ? episodeThreads(samples, startedAtMs, (eps as NonNullable<LoadResult['slowEpisodes']>).top, THREAD_SAMPLE_MS) : [];
  const live = pairs.map((p) => ({ quiet: of(p['quietStartedAtMs'], p['quietSlowEpisodes']), churn: of(p['churnStartedAtMs'], p['churnSlowEpisodes']) }));
  const all = live.flatMap((p) => [...p.quiet, ...p.churn]);
  const run = (e: EpisodeThreads, g: string): number => e.threads[g]?.runMs ?? 0;
  const markingLed = all.filter((e) => run(e, 'live/v8') > run(e, 'live/main')).length;
  const summary = `${markingLed} of the live server's ${all.length} episodes of 20+ slow requests had its V8 workers on a CPU longer than its main thread`;
  log(`threads: ${summary}`);
  for (const e of all) {
    const others = Object.entries(e.threads).filter(([g]) => !g.startsWith('live/')).sort((a, b) => b[1].runMs - a[1].runMs).slice(0, 2);
    log(`  ${e.requests} slow over ${e.windowMs} ms (samples up to ${e.maxGapMs} ms apart): main ran ${run(e, 'live/main')} waited ${e.threads['live/main']?.waitMs ?? 0}; V8 workers ran ${run(e, 'live/v8')}; then ${others.map(([g, v]) => `${g} ${v.runMs}`).join(', ')}`);
  }
  const samplerCpuMs = samples.at(-1)?.samplerCpuMs;
  if (samplerCpuMs !== undefined) log(`threads: the sampler itself used ${(samplerCpuMs / 1000).toFixed(1)} s of CPU`);
  return {
    intervalMs: THREAD_SAMPLE_MS, samples: samples.length, samplerCpuMs, summary, markingLedEpisodes: markingLed, episodes: all.length, pairs: live,
    control: { quiet: of(controlQuiet?.['startedAtMs'], controlQuiet?.['slowEpisodes']), churn: of(controlChurn?.['startedAtMs'], controlChurn?.['slowEpisodes']) },
  };
}

async function main(): Promise<void> {
  // Before anything is started: every child from here on inherits the split.
  const pinned = values.pin ? pinBenchAwayFromServer() : undefined;
  if (pinned) log(`pinned: meshguard on CPU ${pinned.serverCpus}, the rest on ${pinned.otherCpus}`);
  const serverCpus = pinned ? { cpus: pinned.serverCpus } : {};
  const work = mkdtempSync(path.join(os.tmpdir(), 'meshguard-live-churn-'));
  // --kubeconfig: an apiserver already holding generateCluster(--pods) (bench/list-encoding.ts --keep).
  const cp = values.kubeconfig ? { kubeconfigPath: values.kubeconfig, stop: async (): Promise<void> => undefined } : await startControlPlane();
  const api = apiFromKubeconfig(cp.kubeconfigPath);
  let server: ChildProcess | undefined;
  let controlServer: ChildProcess | undefined;
  let injector: WatchInjector | undefined;
  let sampler: ChildProcess | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      const c = spawn(path.join(ROOT, 'scripts/dev-certs.sh'), [work], { stdio: 'ignore' });
      c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error('dev-certs failed'))));
    });
    const ca = readFileSync(path.join(work, 'ca.crt'));
    const stateFile = path.join(work, 'state.json');
    const tls = ['--tls-cert', path.join(work, 'tls.crt'), '--tls-key', path.join(work, 'tls.key')];
    const loaded = await (async () => {
      // Only what later steps need is kept: this process shares the cores with meshguard, and its own
      // major collections of 70k objects would land in the phases as stalls (bench/thread-sampler.ts).
      const objects = generateCluster(PODS);
      let perSecond = Number.NaN;
      if (!values.kubeconfig) {
        log(`creating ${objects.length} objects (${PODS} pods)`);
        perSecond = (await loadCluster(api, objects)).perSecond;
        log(`${perSecond.toFixed(0)} objects/s`);
      }
      if (values.control) writeFileSync(stateFile, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }));
      return { perSecond, objects: objects.length, pods: values.inject ? [] : objects.filter((o) => o.kind === 'Pod') };
    })();
    // --inject: meshguard's kubeconfig names the proxy (the same token, passed through; the dev CA).
    let kubeconfig = cp.kubeconfigPath;
    if (values.inject) {
      const kc = parseYaml(readFileSync(cp.kubeconfigPath, 'utf8')) as { clusters: { cluster: { server: string; 'certificate-authority-data': string } }[] };
      const cluster = kc.clusters[0]!.cluster;
      injector = await startWatchInjector(
        { url: cluster.server, ca: Buffer.from(cluster['certificate-authority-data'], 'base64') },
        { cert: readFileSync(path.join(work, 'tls.crt')), key: readFileSync(path.join(work, 'tls.key')) },
        api,
      );
      cluster.server = injector.url;
      cluster['certificate-authority-data'] = ca.toString('base64');
      kubeconfig = path.join(work, 'kubeconfig-injector');
      writeFileSync(kubeconfig, stringifyYaml(kc), { mode: 0o600 });
      log(`pod events injected by ${injector.url}`);
    }
    const port = await freePort();
    const metricsPort = await freePort();
    const probe = path.join(work, 'event-loop.jsonl');
    const stdoutFd = values['server-stdout'] ? openSync(values['server-stdout'], 'w') : undefined;
    const started = await startServer(
      [...eventLoopProbeFlags(), ...deployedNodeFlags(), ...values['node-flags'].split(/\s+/).filter((f) => f !== ''), ...(values['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${values['cpu-prof']}`] : []), values.bin ?? path.join(ROOT, 'bin/meshguard.js'), 'serve', '--kubeconfig', kubeconfig, ...tls, '--port', String(port), '--metrics-port', String(metricsPort), '--host', '127.0.0.1', '--drain-seconds', '0', '--background-audit', 'off'],
      port, ca, ['ignore', stdoutFd ?? 'ignore', 'pipe'], { ...process.env, MESHGUARD_EVENT_LOOP_FILE: probe }, serverCpus,
    );
    if (stdoutFd !== undefined) closeSync(stdoutFd);
    server = started.child;
    const startup = await eventLoopSince(server, probe);
    // --threads: who runs and who waits for a CPU, every THREAD_SAMPLE_MS, read over each slow episode.
    const samplesFile = path.join(work, 'threads.jsonl');
    if (values.threads) {
      sampler = spawn(NODE, [
        path.join(ROOT, 'bench/thread-sampler.ts'), '--out', samplesFile, '--interval', String(THREAD_SAMPLE_MS),
        `live=pid:${server.pid}`, `bench=pid:${process.pid}`, 'control=cmd:serve --state', 'load=cmd:bench/load.ts', 'apiserver=cmd:kube-apiserver', 'etcd=cmd:bin/etcd ',
      ], { cwd: ROOT, stdio: 'ignore' });
    }
    log(`ready after ${started.readyMs.toFixed(0)} ms, event loop blocked at most ${startup.maxMs.toFixed(0)} ms`);
    const bodies = path.join(work, 'bodies.json');
    writeFileSync(bodies, JSON.stringify(requestMix(PODS, 400).map((r) => JSON.stringify(r.review))));
    const load = (pid = server!.pid, onPort = port, onMetrics = metricsPort): Promise<LoadResult> =>
      measureLoad(pid, { port: onPort, caFile: path.join(work, 'ca.crt'), bodiesFile: bodies, mode: 'rate', rate: RATE, connections: 8, seconds: SECONDS, repeat: 'new', metricsPort: onMetrics });
    /** A load phase with meshguard's CPU (all threads, main thread) and the load average around it. */
    const measured = async (run: () => Promise<LoadResult>, pid = server!.pid): Promise<Record<string, unknown>> => {
      const cpu0 = cpuSecondsOf(pid);
      const main0 = cpuSecondsOf(pid, 'main');
      const la0 = os.loadavg()[0]!;
      const t = performance.now();
      const r = await run();
      return {
        p50: r.p50, p99: r.p99, max: r.max, rps: r.rps, errors: r.errors, requests: r.requests, generatorLateP99: r.lateP99, serverCpuMicrosPerRequest: r.serverCpuMicros,
        majorGcs: r.majorGcs, majorGcMs: r.majorGcMs, slowEpisodes: r.slowEpisodes, startedAtMs: r.startedAtMs, wallSeconds: (performance.now() - t) / 1000,
        cpuSeconds: cpuSecondsOf(pid) - cpu0, mainThreadCpuSeconds: cpuSecondsOf(pid, 'main') - main0, loadAverage: [la0, os.loadavg()[0]!],
      };
    };
    await new Promise((r) => setTimeout(r, 3000)); // the warm-up's garbage
    log(`${RATE} req/s, no churn`);
    const quiet = await measured(() => load());
    const quietLoop = await eventLoopSince(server, probe);

    // The control: a second meshguard serving the same cluster from a file (no watch events), loaded
    // under the same churn next (before the live server's churn phase), so that what the churn costs
    // the machine (apiserver, etcd and the writers; with --inject, the proxy and the live server
    // applying the events) can be told from what its events cost meshguard.
    let control: { child: ChildProcess; port: number; metricsPort: number } | undefined;
    let controlQuiet: Record<string, unknown> | undefined;
    if (values.control) {
      const cport = await freePort();
      const cmetrics = await freePort();
      const c = await startServer(
        [...deployedNodeFlags(), path.join(ROOT, 'bin/meshguard.js'), 'serve', '--state', stateFile, ...tls, '--port', String(cport), '--metrics-port', String(cmetrics), '--host', '127.0.0.1', '--drain-seconds', '0', '--background-audit', 'off'],
        cport, ca, undefined, process.env, serverCpus,
      );
      control = { child: c.child, port: cport, metricsPort: cmetrics };
      controlServer = c.child;
      log('control (state file) ready; one quiet phase (its warm-up, and its figure without churn)');
      controlQuiet = await measured(() => load(c.child.pid, cport, cmetrics), c.child.pid);
      // Once idle, V8's memory reducer collects about 8 s after a process's last burst of allocation
      // (and again later). Waited out here, outside any phase, so that the first of them stays out of
      // the control's own churn phase; the control is stopped after that phase, which keeps the later
      // ones out of the live server's (below).
      log(`${CONTROL_SETTLE_MS / 1000} s for the control's idle-time collections`);
      await new Promise((r) => setTimeout(r, CONTROL_SETTLE_MS));
    }

    log(`${RATE} req/s with ${EVENTS} pod label changes/s asked, ${injector ? 'injected into the pod watch' : `${WRITERS} writers`}`);
    const base = (await podEvents(metricsPort)).changed;
    const applied: { t: number; n: number }[] = [];
    let polling = true;
    // A scrape meshguard does not answer in time (a saturated process) is a gap in the figure's
    // resolution, counted in missedPolls, not the end of the run.
    let missedPolls = 0;
    const poller = (async () => {
      while (polling) {
        try {
          const n = (await podEvents(metricsPort)).changed - base;
          applied.push({ t: performance.now(), n });
        } catch {
          missedPolls++;
        }
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
    })();
    // Every churn phase's changes, in the order given, and how long churn ran in all.
    const changes = { ackedAt: [] as number[], failed: 0, sent: 0 };
    let churnSeconds = 0;
    /** Runs `measure` under churn, then stops the churn and adds its changes to `changes`. */
    const underChurn = async <T>(measure: () => Promise<T>): Promise<T> => {
      const t0 = performance.now();
      const stop = injector ? injector.churn(EVENTS, values['churn-label']) : churn(api, loaded.pods, EVENTS, WRITERS, values['churn-label']);
      try {
        return await measure();
      } finally {
        const m = await stop();
        for (const at of m.ackedAt) changes.ackedAt.push(at);
        changes.sent += m.sent;
        changes.failed += m.failed;
        churnSeconds += (performance.now() - t0) / 1000;
      }
    };
    // The control's churn phase comes first, and then the control is stopped: V8's memory reducer
    // collects in an idle process again and again, 8 s and more after its last load, so while it
    // lives its collections can land in any of the live server's phases (--threads: in one run the
    // control's V8 workers ran 142-148 ms and its main thread 59-73 ms inside a churn-phase stall of
    // the live server, 30 s after the control's last phase).
    let controlChurned: Record<string, unknown> | undefined;
    if (control) {
      log('the same churn, load on the control (then it is stopped)');
      controlChurned = await underChurn(() => measured(() => load(control.child.pid, control.port, control.metricsPort), control.child.pid));
      await stopServer(control.child);
      controlServer = undefined;
    }
    log('the same churn, load on the live server');
    const churned = await underChurn(() => measured(() => load()));
    const churnLoop = await eventLoopSince(server, probe);
    const pairOf = (q: Record<string, unknown>, c: Record<string, unknown>): Record<string, unknown> => ({
      quietP99: q['p99'], churnP99: c['p99'], errors: (q['errors'] as number) + (c['errors'] as number), quietMajorGcs: q['majorGcs'], churnMajorGcs: c['majorGcs'],
      quietCpuMicrosPerRequest: q['serverCpuMicrosPerRequest'], churnCpuMicrosPerRequest: c['serverCpuMicrosPerRequest'],
      quietSlowEpisodes: q['slowEpisodes'], churnSlowEpisodes: c['slowEpisodes'], quietStartedAtMs: q['startedAtMs'], churnStartedAtMs: c['startedAtMs'],
    });
    const pairs = [pairOf(quiet, churned)];
    for (let r = 1; r < REPEATS; r++) {
      log(`pair ${r + 1} of ${REPEATS}: no churn, then churn`);
      const q = await measured(() => load());
      pairs.push(pairOf(q, await underChurn(() => measured(() => load()))));
    }
    const repeatsLoop = REPEATS > 1 ? await eventLoopSince(server, probe) : undefined;
    // Until every acknowledged change is applied (or 30 s).
    const deadline = performance.now() + 30_000;
    while (performance.now() < deadline && (applied.at(-1)?.n ?? 0) < changes.ackedAt.length) await new Promise((r) => setTimeout(r, POLL_MS));
    polling = false;
    await poller;
    // The k-th acknowledged change is applied at the first poll that shows at least k changes. Answers
    // can come back slightly out of commit order: the k-th answer is matched with the k-th event.
    const acked = [...changes.ackedAt].sort((a, b) => a - b);
    const lags: number[] = [];
    let j = 0;
    for (let k = 0; k < acked.length; k++) {
      while (j < applied.length && applied[j]!.n < k + 1) j++;
      if (j >= applied.length) break;
      lags.push(Math.max(0, applied[j]!.t - acked[k]!));
    }
    let threads: Record<string, unknown> | undefined;
    if (sampler) {
      await stopServer(sampler, 'SIGTERM');
      sampler = undefined;
      // The sampler is a diagnostic: without its file the run's other figures still stand.
      try {
        threads = threadFigures(readSamples(samplesFile), pairs, controlQuiet, controlChurned);
      } catch (e) {
        log(`threads: no samples (${(e as Error).message})`);
      }
    }
    const result = {
      date: new Date().toISOString(), pinned: pinned ?? false, pods: PODS, objects: loaded.objects, apiserverLoadPerSecond: loaded.perSecond,
      readyMs: started.readyMs, startupEventLoop: startup,
      eventsAsked: EVENTS, churnLabel: values['churn-label'], injected: injector?.stats() ?? false, writers: injector ? 0 : WRITERS, changesSent: changes.sent, changesAcked: acked.length, changesFailed: changes.failed, changesPerSecond: acked.length / churnSeconds,
      changesApplied: applied.at(-1)?.n ?? 0, lagMs: { p50: pct(lags, 50), p99: pct(lags, 99), max: pct(lags, 100), resolutionMs: POLL_MS, matched: lags.length, missedPolls },
      admission: { rate: RATE, quiet, churn: churned, controlQuiet, controlChurn: controlChurned, p99Ratio: (churned['p99'] as number) / (quiet['p99'] as number),
        pairs },
      eventLoop: { quietMaxMs: quietLoop.maxMs, churnMaxMs: churnLoop.maxMs, churnLongest: churnLoop.longestBlocks, repeats: repeatsLoop },
      loadAverage: os.loadavg()[0],
      // The live server's peak resident memory so far (Linux; NaN elsewhere): the serving target is < 300 MB.
      liveServerPeakRssMB: rssOf(server.pid, 'VmHWM') / 2 ** 20,
      ...(threads ? { threads } : {}),
    };
    const figures: ChurnFigures = {
      pods: PODS, changesPerSecond: result.changesPerSecond, changesAcked: result.changesAcked, changesApplied: result.changesApplied, lagMs: result.lagMs,
      pairs: pairs.map((p) => ({ quietP99: p['quietP99'] as number, churnP99: p['churnP99'] as number, errors: p['errors'] as number })),
    };
    const targets = [checkChurnLag(figures), checkChurnAdmission(figures)];
    log(`targets (issue 21, live path under churn):\n${targetsTable(targets).join('\n')}`);
    const json = JSON.stringify({ ...result, targets }, null, 2);
    if (values.json) writeFileSync(values.json, json + '\n');
    process.stdout.write(json + '\n');
  } finally {
    if (sampler) await stopServer(sampler, 'SIGTERM');
    api.close();
    await injector?.close();
    if (server) await stopServer(server, 'SIGTERM');
    if (controlServer) await stopServer(controlServer);
    await cp.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
