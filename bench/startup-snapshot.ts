// Start-up of `meshguard serve --state` from a big snapshot, with the event loop measured from process
// start to the first ready answer (bench/event-loop-probe.ts): the snapshot as a .json List (what
// `make bench` writes) and as one YAML List document (what `kubectl get -A -o yaml` writes), so both
// of the load's paths are shown (issue 21). Prints one JSON line per run.
//
// With --cpu-prof DIR, each server runs under V8's CPU profiler and writes its profile to DIR when it stops.
// With --state-dir DIR, the snapshot files are kept in DIR and reused by later runs (generating and
// writing 50k pods takes longer than a start-up).
//
// With --mix-seconds N, each server then serves the request mix of `make bench` (all new reviews) at
// --rate req/s for N seconds, and the event loop of that period, the latency and the peak RSS are printed
// too (the worst-case step's "serving the request mix" figure, issue 21).
//
// Usage: node bench/startup-snapshot.ts [--pods 50000] [--runs 1] [--formats json,yaml] [--cpu-prof DIR] [--state-dir DIR]
//          [--mix-seconds 0] [--rate 500] [--node-flags='--max-old-space-size=384 ...' (default: the Deployment's NODE_OPTIONS)]

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { stringify } from 'yaml';

import { generateCluster } from './cluster-gen.ts';
import { deployedNodeFlags, eventLoopProbeFlags, eventLoopSince, freePort, measureLoad, ROOT, rssOf, startServer, stopServer } from './harness.ts';
import { requestMix } from './requests.ts';

const { values } = parseArgs({
  options: { pods: { type: 'string', default: '50000' }, runs: { type: 'string', default: '1' }, formats: { type: 'string', default: 'json,yaml' }, 'cpu-prof': { type: 'string' }, 'state-dir': { type: 'string' }, 'mix-seconds': { type: 'string', default: '0' }, 'node-flags': { type: 'string' }, rate: { type: 'string', default: '500' } },
});
const pods = Number(values.pods);
const runs = Number(values.runs);
const formats = values.formats.split(',');
const work = mkdtempSync(path.join(os.tmpdir(), 'meshguard-startup-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

await new Promise<void>((resolve, reject) => {
  const c = spawn(path.join(ROOT, 'scripts/dev-certs.sh'), [work], { stdio: 'ignore' });
  c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error('dev-certs failed'))));
});
const ca = readFileSync(path.join(work, 'ca.crt'));
const tls = ['--tls-cert', path.join(work, 'tls.crt'), '--tls-key', path.join(work, 'tls.key')];

const stateDir = values['state-dir'] ?? work;
mkdirSync(stateDir, { recursive: true });
let objs: ReturnType<typeof generateCluster> | undefined;
const files: Record<string, string> = {};
for (const format of formats) {
  const file = path.join(stateDir, `state-${pods}.${format}`);
  if (!values['state-dir'] || !existsSync(file)) {
    objs ??= generateCluster(pods);
    const list = { apiVersion: 'v1', kind: 'List', items: objs };
    writeFileSync(file, format === 'json' ? JSON.stringify(list) : stringify(list));
  }
  files[format] = file;
}

const mixSeconds = Number(values['mix-seconds']);
const bodies = path.join(work, 'bodies.json');
if (mixSeconds > 0) writeFileSync(bodies, JSON.stringify(requestMix(pods, 400).map((r) => JSON.stringify(r.review))));

for (const format of formats) {
  for (let run = 0; run < runs; run++) {
    const port = await freePort();
    const metricsPort = await freePort();
    const probe = path.join(work, `event-loop-${format}-${run}.jsonl`);
    const args = [
      ...eventLoopProbeFlags(), ...(values['node-flags'] !== undefined ? values['node-flags'].split(/\s+/).filter((x) => x !== '') : deployedNodeFlags()), ...(values['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${values['cpu-prof']}`] : []),
      path.join(ROOT, 'bin/meshguard.js'), 'serve', '--state', files[format]!, ...tls,
      '--port', String(port), '--metrics-port', String(metricsPort), '--host', '127.0.0.1', '--background-audit', 'off',
      // A YAML snapshot this big is over the default YAML bound (which exists against hostile input).
      ...(format === 'yaml' ? ['--max-yaml-bytes', String(statSync(files[format]!).size + 1)] : []),
    ];
    const loadBefore = os.loadavg()[0]!;
    const { child, readyMs } = await startServer(args, port, ca, ['ignore', 'ignore', 'pipe'], { ...process.env, MESHGUARD_EVENT_LOOP_FILE: probe });
    const startup = await eventLoopSince(child, probe);
    const rssReadyMB = Math.round(rssOf(child.pid) / 1e6);
    let serving: Record<string, unknown> | undefined;
    if (mixSeconds > 0) {
      const loadAtMix = os.loadavg()[0]!;
      const mix = await measureLoad(child.pid, { port, caFile: path.join(work, 'ca.crt'), bodiesFile: bodies, mode: 'rate', rate: Number(values.rate), connections: 8, seconds: mixSeconds, repeat: 'new', metricsPort });
      const loop = await eventLoopSince(child, probe);
      serving = {
        rate: Number(values.rate), seconds: mixSeconds, p50: mix.p50, p99: mix.p99, errors: mix.errors, blockedAtMostMs: Math.round(loop.maxMs), cpuMaxMs: loop.cpuMaxMs, p99LoopMs: Math.round(loop.p99Ms),
        longestBlocks: loop.longestBlocks, longestGcs: loop.longestGcs, majorGcs: mix.majorGcs, majorGcMs: mix.majorGcMs, rssPeakMB: Math.round(rssOf(child.pid, 'VmHWM') / 1e6), loadAverage: [Number(loadAtMix.toFixed(2)), Number(os.loadavg()[0]!.toFixed(2))],
      };
    }
    await stopServer(child, values['cpu-prof'] ? 'SIGTERM' : 'SIGKILL'); // the profile is written at a clean exit
    console.log(JSON.stringify({
      pods, format, bytes: statSync(files[format]!).size, readyMs: Math.round(readyMs), blockedAtMostMs: Math.round(startup.maxMs),
      listeningAtMs: startup.listeningAtMs, beforeListenMaxMs: startup.beforeListenMaxMs, afterListenMaxMs: startup.afterListenMaxMs, afterListenCpuMaxMs: startup.afterListenCpuMaxMs,
      longestBlocks: startup.longestBlocks, longestGcs: startup.longestGcs, rssReadyMB, loadAverage: [Number(loadBefore.toFixed(2)), Number(os.loadavg()[0]!.toFixed(2))],
      ...(serving ? { serving } : {}),
    }));
  }
}
