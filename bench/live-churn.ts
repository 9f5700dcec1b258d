// The live path under pod churn (issue 21): `meshguard serve --kubeconfig` against the real kube-apiserver
// (the e2e control plane), with `--events` pod label changes a second made through the apiserver, each a
// watch event that replaces a pod in meshguard's state. Measured:
//   - start to ready from the apiserver, and the event loop meanwhile (bench/event-loop-probe.ts);
//   - the lag from the apiserver's answer to a change (the change is committed and its watch event
//     sent) to meshguard having applied its event: meshguard applies a stream's events in order, so the
//     k-th change is in the state once meshguard_state_watch_events_total{kind="Pod",result="changed"}
//     has grown by k; the counter is read every POLL_MS (the resolution of the figure);
//   - admission latency at --rate req/s without churn, then with it (target: p99 within 2x).
// Usage: node bench/live-churn.ts [--pods 5000] [--events 500] [--seconds 20] [--rate 500]

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { startControlPlane } from '../test/e2e/harness.ts';
import { generateCluster, type Obj } from './cluster-gen.ts';
import { deployedNodeFlags, eventLoopProbeFlags, eventLoopSince, freePort, measureLoad, ROOT, startServer, stopServer, type LoadResult } from './harness.ts';
import { apiFromKubeconfig, loadCluster, pathOf, podEvents, type Api } from './live.ts';
import { requestMix } from './requests.ts';

const { values } = parseArgs({
  options: {
    pods: { type: 'string', default: '5000' },
    events: { type: 'string', default: '500' },
    seconds: { type: 'string', default: '20' },
    rate: { type: 'string', default: '500' },
    json: { type: 'string' },
  },
});
const PODS = Number(values.pods);
const EVENTS = Number(values.events);
const SECONDS = Number(values.seconds);
const RATE = Number(values.rate);
const POLL_MS = 25;
const log = (m: string): void => void process.stderr.write(`[live-churn] ${m}\n`);

const pct = (xs: readonly number[], p: number): number => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};

/**
 * `perSecond` label changes a second, on a schedule (caught up when timers fire late), each with a value
 * never written before (so each is a watch event that changes meshguard's state); the time each was
 * answered by the apiserver, in the order answered.
 */
function churn(api: Api, pods: readonly Obj[], perSecond: number): () => Promise<{ ackedAt: number[]; failed: number; sent: number }> {
  let n = 0;
  let failed = 0;
  const ackedAt: number[] = [];
  const inFlight = new Set<Promise<void>>();
  const t0 = performance.now();
  const timer = setInterval(() => {
    const due = Math.floor(((performance.now() - t0) / 1000) * perSecond);
    while (n < due) {
      const p = pods[(n * 7919) % pods.length]!;
      n++;
      const req = api
        .request('PATCH', `${pathOf(p)}/${p.metadata.name}`, { metadata: { labels: { 'bench.meshguard.io/churn': `c${n}` } } }, 'application/merge-patch+json')
        .then((r) => void (r.status < 300 ? ackedAt.push(performance.now()) : failed++), () => void failed++)
        .finally(() => inFlight.delete(req));
      inFlight.add(req);
    }
  }, 20);
  return async () => {
    clearInterval(timer);
    await Promise.all(inFlight);
    return { ackedAt, failed, sent: n };
  };
}

async function main(): Promise<void> {
  const work = mkdtempSync(path.join(os.tmpdir(), 'meshguard-live-churn-'));
  const cp = await startControlPlane();
  const api = apiFromKubeconfig(cp.kubeconfigPath);
  let server: ChildProcess | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      const c = spawn(path.join(ROOT, 'scripts/dev-certs.sh'), [work], { stdio: 'ignore' });
      c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error('dev-certs failed'))));
    });
    const ca = readFileSync(path.join(work, 'ca.crt'));
    const tls = ['--tls-cert', path.join(work, 'tls.crt'), '--tls-key', path.join(work, 'tls.key')];
    const objects = generateCluster(PODS);
    log(`creating ${objects.length} objects (${PODS} pods)`);
    const loaded = await loadCluster(api, objects);
    log(`${loaded.perSecond.toFixed(0)} objects/s`);
    const port = await freePort();
    const metricsPort = await freePort();
    const probe = path.join(work, 'event-loop.jsonl');
    const started = await startServer(
      [...eventLoopProbeFlags(), ...deployedNodeFlags(), path.join(ROOT, 'bin/meshguard.js'), 'serve', '--kubeconfig', cp.kubeconfigPath, ...tls, '--port', String(port), '--metrics-port', String(metricsPort), '--host', '127.0.0.1', '--drain-seconds', '0', '--background-audit', 'off'],
      port, ca, undefined, { ...process.env, MESHGUARD_EVENT_LOOP_FILE: probe },
    );
    server = started.child;
    const startup = await eventLoopSince(server, probe);
    log(`ready after ${started.readyMs.toFixed(0)} ms, event loop blocked at most ${startup.maxMs.toFixed(0)} ms`);
    const bodies = path.join(work, 'bodies.json');
    writeFileSync(bodies, JSON.stringify(requestMix(PODS, 400).map((r) => JSON.stringify(r.review))));
    const load = (): Promise<LoadResult> => measureLoad(server!.pid, { port, caFile: path.join(work, 'ca.crt'), bodiesFile: bodies, mode: 'rate', rate: RATE, connections: 8, seconds: SECONDS, repeat: 'new', metricsPort });
    await new Promise((r) => setTimeout(r, 3000)); // the warm-up's garbage
    log(`${RATE} req/s, no churn`);
    const quiet = await load();
    const quietLoop = await eventLoopSince(server, probe);

    log(`${RATE} req/s with ${EVENTS} pod label changes/s`);
    const base = (await podEvents(metricsPort)).changed;
    const applied: { t: number; n: number }[] = [];
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const n = (await podEvents(metricsPort)).changed - base;
        applied.push({ t: performance.now(), n });
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
    })();
    const t0 = performance.now();
    const stop = churn(api, objects.filter((o) => o.kind === 'Pod'), EVENTS);
    let churned: LoadResult;
    let changes: { ackedAt: number[]; failed: number; sent: number };
    try {
      churned = await load();
    } finally {
      changes = await stop();
    }
    const churnSeconds = (performance.now() - t0) / 1000;
    const churnLoop = await eventLoopSince(server, probe);
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
    const result = {
      date: new Date().toISOString(), pods: PODS, objects: objects.length, apiserverLoadPerSecond: loaded.perSecond,
      readyMs: started.readyMs, startupEventLoop: startup,
      eventsAsked: EVENTS, changesSent: changes.sent, changesAcked: acked.length, changesFailed: changes.failed, changesPerSecond: acked.length / churnSeconds,
      changesApplied: applied.at(-1)?.n ?? 0, lagMs: { p50: pct(lags, 50), p99: pct(lags, 99), max: pct(lags, 100), resolutionMs: POLL_MS, matched: lags.length },
      admission: { rate: RATE, quiet: { p50: quiet.p50, p99: quiet.p99, errors: quiet.errors }, churn: { p50: churned.p50, p99: churned.p99, errors: churned.errors }, p99Ratio: churned.p99 / quiet.p99 },
      eventLoop: { quietMaxMs: quietLoop.maxMs, churnMaxMs: churnLoop.maxMs, churnLongest: churnLoop.longestBlocks },
      loadAverage: os.loadavg()[0],
    };
    const json = JSON.stringify(result, null, 2);
    if (values.json) writeFileSync(values.json, json + '\n');
    process.stdout.write(json + '\n');
  } finally {
    api.close();
    if (server) await stopServer(server, 'SIGTERM');
    await cp.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
