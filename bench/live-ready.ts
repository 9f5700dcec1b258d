// Where the time to ready from a live apiserver goes (issue 21): the e2e kube-apiserver holding
// generateCluster(--pods), then, in this process, the list of every Pod (listKind, as JSON and as
// protobuf) and a LiveSource's first sync of every kind (each way), with this process's and the
// kube-apiserver's CPU; then `meshguard serve --kubeconfig` from process start to ready, listing pods as
// JSON (MESHGUARD_POD_LIST_ENCODING=json) and as protobuf (the default), interleaved (the order
// alternates by run), with its own log lines' times (listening, synced, warmed up), its CPU until ready
// and the apiserver's meanwhile.
// --modes says how each serve run is placed: `unpinned`, and `pinned` (serve on the first CPU alone,
// kube-apiserver, etcd and this process on the others, as where the apiserver has cores of its own;
// harness.ts pinBenchAwayFromServer); both (`--modes unpinned,pinned`) alternate within each run.
// --pin is `--modes pinned`. --kubeconfig runs against an apiserver already holding the cluster (e.g.
// `bench/list-encoding.ts --runs 0 --keep`) instead of starting and loading one.
// The in-process part also lists every other kind alone, one after the other (JSON, as LiveSource does).
// --bins a=PATH,b=PATH compares builds (each a bin/meshguard.js), interleaved; the order alternates by run.
// --bin-env a:VAR=value sets a variable for build a's serve (repeatable), so one bin under two labels
// compares two settings (e.g. --bin-env off:GLIBC_TUNABLES= against the Deployment's).
// --encodings protobuf measures serve with one pod list encoding only. Serve runs at debug level, so
// the report gives when each kind's first list ended (LiveSource's 'kind listed' lines).
// Usage: node bench/live-ready.ts [--pods 50000] [--runs 2] [--pin | --modes unpinned,pinned]
//        [--kubeconfig FILE] [--no-lists] [--no-serve] [--encodings json,protobuf]

import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { KIND_NAMES } from '../src/core/kinds.ts';
import { createLogger } from '../src/server/log-bounds.ts';
import { loadKubeApi } from '../src/state/kube-api.ts';
import { listKind, LiveSource } from '../src/state/live.ts';
import { controlPlanePids, cpuSecondsOf, deployedNodeFlags, freePort, ROOT, SERVER_CPUS, setCpus, startServer, stopServer } from './harness.ts';
import { onCluster } from './live.ts';

const { values } = parseArgs({
  options: {
    pods: { type: 'string', default: '50000' },
    runs: { type: 'string', default: '2' },
    pin: { type: 'boolean', default: false },
    modes: { type: 'string' },
    kubeconfig: { type: 'string' },
    lists: { type: 'boolean', default: true },
    serve: { type: 'boolean', default: true },
    encodings: { type: 'string', default: 'json,protobuf' },
    bins: { type: 'string' },
    'bin-env': { type: 'string', multiple: true },
  },
  allowNegative: true,
});
const modes = (values.modes ?? (values.pin ? 'pinned' : 'unpinned')).split(',').map((m) => m.trim());
for (const m of modes) if (m !== 'pinned' && m !== 'unpinned') throw new Error(`--modes: pinned or unpinned, not ${m}`);
const PODS = Number(values.pods);
const RUNS = Number(values.runs);
const log = (m: string): void => void process.stderr.write(`[live-ready] ${m}\n`);
const la = (): string => os.loadavg()[0]!.toFixed(1);
const ALL_CPUS = `0-${os.availableParallelism() - 1}`;
const OTHER_CPUS = os.availableParallelism() === 2 ? '1' : `1-${os.availableParallelism() - 1}`;
if (modes.includes('pinned') && os.availableParallelism() < 2) throw new Error('pinned needs at least 2 CPUs');
const ENCODINGS = values.encodings!.split(',').map((e) => e.trim()) as ('json' | 'protobuf')[];
for (const e of ENCODINGS) if (e !== 'json' && e !== 'protobuf') throw new Error(`--encodings: json or protobuf, not ${e}`);
/** The builds compared (label=path of a bin/meshguard.js), interleaved; this worktree's by default. */
const BINS = (values.bins ?? `this=${path.join(ROOT, 'bin/meshguard.js')}`).split(',').map((b) => {
  const at = b.indexOf('=');
  if (at <= 0) throw new Error(`--bins: label=path, not ${b}`);
  return { label: b.slice(0, at), bin: b.slice(at + 1) };
});
/** Environment for one build's serve (--bin-env label:VAR=value, repeatable): two labels of one bin compare settings. */
const BIN_ENV = new Map<string, Record<string, string>>();
for (const e of values['bin-env'] ?? []) {
  const m = /^([^:]+):([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(e);
  if (!m || !BINS.some((b) => b.label === m[1])) throw new Error(`--bin-env: label:VAR=value with a label of --bins, not ${e}`);
  BIN_ENV.set(m[1]!, { ...BIN_ENV.get(m[1]!), [m[2]!]: m[3]! });
}

/** Places the control plane and this process for a mode (every thread: taskset -a). */
function place(mode: string, pids: { apiserver?: number; etcd?: number }): void {
  const cpus = mode === 'pinned' ? OTHER_CPUS : ALL_CPUS;
  for (const pid of [process.pid, pids.apiserver, pids.etcd]) if (pid !== undefined) setCpus(pid, cpus);
}

async function measure(kubeconfig: string): Promise<void> {
  const pids = controlPlanePids(kubeconfig);
  if (pids.apiserver === undefined) throw new Error('kube-apiserver not found');
  log(`kube-apiserver pid ${pids.apiserver}, etcd pid ${pids.etcd ?? '?'}; modes ${modes.join(', ')}`);
  const apiCpu = (): number => cpuSecondsOf(pids.apiserver!);
  const api = loadKubeApi(kubeconfig);
  if (values.lists) {
    place('unpinned', pids);
    for (let run = 0; run < RUNS; run++) {
      for (const encoding of run % 2 === 0 ? ENCODINGS : [...ENCODINGS].reverse()) {
        const c0 = process.cpuUsage();
        const a0 = apiCpu();
        const t0 = performance.now();
        const n = (await listKind(api, 'Pod', undefined, undefined, undefined, { encoding })).items.length;
        const c = process.cpuUsage(c0);
        log(`run ${run + 1}, pods as ${encoding}: ${n} in ${(performance.now() - t0).toFixed(0)} ms, CPU: this process ${((c.user + c.system) / 1000).toFixed(0)} ms, kube-apiserver ${((apiCpu() - a0) * 1000).toFixed(0)} ms; load ${la()}`);
      }
      for (const encoding of run % 2 === 0 ? ENCODINGS : [...ENCODINGS].reverse()) {
        const c0 = process.cpuUsage();
        const a0 = apiCpu();
        const t0 = performance.now();
        const src = new LiveSource({ api, logger: createLogger('error', 'bench'), podListEncoding: encoding });
        await src.start();
        const c = process.cpuUsage(c0);
        log(`run ${run + 1}, LiveSource first sync of every kind, pods as ${encoding}: ${(performance.now() - t0).toFixed(0)} ms, CPU: this process ${((c.user + c.system) / 1000).toFixed(0)} ms, kube-apiserver ${((apiCpu() - a0) * 1000).toFixed(0)} ms; load ${la()}`);
        await src.stop();
      }
    }
    const perKind: string[] = [];
    const a0 = apiCpu();
    const t0 = performance.now();
    for (const kind of KIND_NAMES) {
      if (kind === 'Pod') continue;
      const t1 = performance.now();
      let n: number | string;
      try {
        n = (await listKind(api, kind)).items.length;
      } catch (err) {
        n = (err as Error).message.slice(0, 40);
      }
      perKind.push(`${kind} ${n} in ${(performance.now() - t1).toFixed(0)} ms`);
    }
    log(`every other kind alone, one after the other: ${(performance.now() - t0).toFixed(0)} ms, kube-apiserver CPU ${((apiCpu() - a0) * 1000).toFixed(0)} ms: ${perKind.join(', ')}; load ${la()}`);
  }
  api.close();
  if (!values.serve) return;

  // serve, with its log lines
  const work = mkdtempSync(path.join(os.tmpdir(), 'meshguard-live-ready-'));
  try {
    await new Promise<void>((resolve, reject) => spawn(path.join(ROOT, 'scripts/dev-certs.sh'), [work], { stdio: 'ignore' }).on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`dev-certs.sh exited ${code}`)))));
    const ca = readFileSync(path.join(work, 'ca.crt'));
    for (let run = 0; run < RUNS; run++) {
      for (const mode of modes) {
        place(mode, pids);
        for (const { encoding, label, bin } of (run % 2 === 0 ? ENCODINGS : [...ENCODINGS].reverse()).flatMap((encoding) => (run % 2 === 0 ? BINS : [...BINS].reverse()).map((b) => ({ encoding, ...b })))) {
          const port = await freePort();
          const logFile = path.join(work, `serve-${run}-${mode}-${encoding}-${label}.log`);
          const fd = openSync(logFile, 'w');
          const a0 = apiCpu();
          const l0 = la();
          const wall0 = Date.now();
          const { child, readyMs } = await startServer(
            [...deployedNodeFlags(), bin, 'serve', '--kubeconfig', kubeconfig, '--tls-cert', path.join(work, 'tls.crt'), '--tls-key', path.join(work, 'tls.key'), '--port', String(port), '--host', '127.0.0.1', '--background-audit', 'off', '--log-level', 'debug'],
            port, ca, ['ignore', fd, fd], { ...process.env, ...BIN_ENV.get(label), MESHGUARD_POD_LIST_ENCODING: encoding }, mode === 'pinned' ? { cpus: SERVER_CPUS } : {},
          );
          const serveCpu = cpuSecondsOf(child.pid!);
          const apiserverCpu = apiCpu() - a0;
          await new Promise((r) => setTimeout(r, 500));
          await stopServer(child);
          closeSync(fd);
          const out = readFileSync(logFile, 'utf8');
          const lines = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { time: number; msg: string; ms?: number; level?: number; kind?: string; objects?: number });
          // The timeline: each kind's first list (debug lines of LiveSource), the sync, the warm-up.
          const listed = lines.filter((j) => j.msg === 'kind listed').map((j) => `${j.kind} ${j.objects} at ${j.time - wall0}`);
          const marks = lines.filter((j) => /listening|synced|warmed|protobuf/.test(j.msg)).map((j) => `${j.msg} at ${j.time - wall0} ms${j.ms !== undefined ? ` (${j.ms} ms)` : ''}`);
          if (listed.length > 0) marks.unshift(`kinds listed (ms): ${listed.join(', ')}`);
          log(`run ${run + 1}, ${label}, serve ${mode}${mode === 'pinned' ? ` (CPU ${SERVER_CPUS}; the rest on ${OTHER_CPUS})` : ''}, pods as ${encoding}: ready after ${readyMs.toFixed(0)} ms; ${marks.join('; ')}; CPU until ready: serve ${(serveCpu * 1000).toFixed(0)} ms, kube-apiserver ${(apiserverCpu * 1000).toFixed(0)} ms; load ${l0} -> ${la()}`);
        }
      }
    }
  } finally {
    place('unpinned', pids);
    rmSync(work, { recursive: true, force: true });
  }
}

await onCluster(values.kubeconfig, PODS, log, measure);
