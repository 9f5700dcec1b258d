// Who had the CPUs during a stall: samples, every --interval ms, each thread's time on a CPU and its time
// waiting in a run queue (Linux /proc/<pid>/task/<tid>/schedstat, in ns) for the processes it is told to
// watch, summed per process label and thread class, and writes one JSON line per sample. The bench's
// load phases report their slow episodes with a wall-clock start (bench/load.ts startedAtMs), so the
// samples over an episode's window say whether meshguard's main thread ran, waited for a CPU, or
// waited for nothing (idle), and which threads ran meanwhile: its V8 helpers (concurrent marking),
// the load generator, the proxy writing the churn, kube-apiserver.
//
// A process is watched by pid (`live=pid:1234`) or by a substring of its command line
// (`load=cmd:bench/load.ts`: processes started later are found within RESCAN_MS, and counted from their
// second sample on). Thread classes:
// the main thread (tid = pid), V8's worker threads (`V8Worker`: concurrent marking, parallel
// scavenges, compilation), libuv's pool (`libuv-worker`), and the rest. The first sample of a thread
// only sets its starting point.
//
// Usage: node bench/thread-sampler.ts --out FILE [--interval 20] label=pid:N|label=cmd:TEXT ...
// (stops on SIGTERM or SIGINT, or when its parent exits).

import { appendFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';

import { V8_WORKER_THREAD_NAME } from '../src/server/worker-priority.ts';
import type { SlowEpisode } from './load-loops.ts';

/** One watched process: by pid, or by a substring of its command line. */
export type Watch = { readonly label: string; readonly pid: number } | { readonly label: string; readonly cmd: string };

export type ThreadClass = 'main' | 'v8' | 'libuv' | 'other';

/**
 * One line of the sampler's output: per `label/class`, µs on a CPU and µs waiting for one since the
 * last sample, which was `dt` ms before `t` (more than the interval when the sampler itself waited for a
 * CPU). The last line of a run also gives the sampler's own CPU time.
 */
export interface ThreadSample {
  readonly t: number;
  readonly dt?: number;
  readonly g: Record<string, readonly [runUs: number, waitUs: number]>;
  readonly samplerCpuMs?: number;
}

/** How often watches by command line look for new processes. */
const RESCAN_MS = 250;

/** `label=pid:N` or `label=cmd:TEXT`. */
export function parseWatch(arg: string): Watch {
  const m = /^([a-z][a-z0-9-]*)=(pid|cmd):(.+)$/.exec(arg);
  if (!m) throw new Error(`not label=pid:N or label=cmd:TEXT: ${arg}`);
  if (m[2] === 'pid') {
    const pid = Number(m[3]);
    if (!Number.isInteger(pid) || pid <= 0) throw new Error(`not a pid: ${arg}`);
    return { label: m[1]!, pid };
  }
  return { label: m[1]!, cmd: m[3]! };
}

export function threadClass(comm: string, isMain: boolean): ThreadClass {
  if (isMain) return 'main';
  if (comm.startsWith(V8_WORKER_THREAD_NAME)) return 'v8';
  if (comm.startsWith('libuv-worker')) return 'libuv';
  return 'other';
}

/** The first two fields of a schedstat file: ns on a CPU, ns waiting in a run queue. */
export function parseSchedstat(text: string): { runNs: number; waitNs: number } | undefined {
  const [run, wait] = text.trim().split(/\s+/);
  const runNs = Number(run);
  const waitNs = Number(wait);
  return run !== '' && Number.isFinite(runNs) && Number.isFinite(waitNs) ? { runNs, waitNs } : undefined;
}

/**
 * What a thread did between two readings of its counters, in µs: nothing to say for a thread seen for
 * the first time, or one whose counters went down (its tid was reused by a new thread).
 */
export function threadDelta(prev: { runNs: number; waitNs: number } | undefined, cur: { runNs: number; waitNs: number }): [runUs: number, waitUs: number] | undefined {
  if (prev === undefined || cur.runNs < prev.runNs || cur.waitNs < prev.waitNs) return undefined;
  return [Math.round((cur.runNs - prev.runNs) / 1000), Math.round((cur.waitNs - prev.waitNs) / 1000)];
}

/**
 * Sums the samples taken in (from, to] (epoch ms) per group, in ms: what ran and what waited over a
 * window. A sample covers the interval before its time, so a window should be widened by one interval
 * on each side by the caller when it matters.
 */
export function windowSums(samples: readonly ThreadSample[], from: number, to: number): Record<string, { runMs: number; waitMs: number }> {
  const out: Record<string, { runMs: number; waitMs: number }> = {};
  for (const s of samples) {
    if (s.t <= from || s.t > to) continue;
    for (const [k, [run, wait]] of Object.entries(s.g)) {
      const o = (out[k] ??= { runMs: 0, waitMs: 0 });
      o.runMs += run / 1000;
      o.waitMs += wait / 1000;
    }
  }
  for (const o of Object.values(out)) {
    o.runMs = Math.round(o.runMs * 10) / 10;
    o.waitMs = Math.round(o.waitMs * 10) / 10;
  }
  return out;
}

/** Reads a sampler's output file. */
export function readSamples(file: string): ThreadSample[] {
  const out: ThreadSample[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    try {
      out.push(JSON.parse(line) as ThreadSample);
    } catch {
      // A line cut short when the sampler was stopped mid-write.
    }
  }
  return out;
}

/** The pids that match the watches now (pid watches as given, cmd watches by /proc/<pid>/cmdline). */
function resolve(watches: readonly Watch[]): Map<number, string> {
  const out = new Map<number, string>();
  const byCmd = watches.filter((w): w is Extract<Watch, { cmd: string }> => 'cmd' in w);
  for (const w of watches) if ('pid' in w) out.set(w.pid, w.label);
  if (byCmd.length === 0) return out;
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || out.has(pid) || pid === process.pid) continue;
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      continue;
    }
    const w = byCmd.find((x) => cmd.includes(x.cmd));
    if (w) out.set(pid, w.label);
  }
  return out;
}

/** Runs the sampler until stopped: one JSON line per interval appended to `out`. */
export function runSampler(watches: readonly Watch[], out: string, intervalMs: number): () => void {
  writeFileSync(out, '');
  let pids = resolve(watches);
  let resolvedAt = Date.now();
  // Per thread (pid/tid): its counters at the last sample, and its name. Rebuilt each tick, so threads
  // that ended are dropped; a counter that went down is a reused tid, started afresh.
  let last = new Map<string, { runNs: number; waitNs: number; comm: string }>();
  let buffer = '';
  let flushedAt = Date.now();
  let prevTick = Date.now();
  const cpu0 = process.cpuUsage();
  const tick = (): void => {
    const now = Date.now();
    if (now - resolvedAt >= RESCAN_MS) {
      pids = resolve(watches);
      resolvedAt = now;
    }
    const g: Record<string, [number, number]> = {};
    const next = new Map<string, { runNs: number; waitNs: number; comm: string }>();
    for (const [pid, label] of pids) {
      let tids: string[];
      try {
        tids = readdirSync(`/proc/${pid}/task`);
      } catch {
        continue; // exited
      }
      for (const tid of tids) {
        const key = `${pid}/${tid}`;
        let stat: ReturnType<typeof parseSchedstat>;
        try {
          stat = parseSchedstat(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8'));
        } catch {
          continue; // ended between the listing and the read
        }
        if (!stat) continue;
        const prev = last.get(key);
        const d = threadDelta(prev, stat);
        let comm = prev?.comm ?? '';
        if (d === undefined) {
          try {
            comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
          } catch {
            continue;
          }
        }
        next.set(key, { ...stat, comm });
        if (d === undefined) continue;
        const group = `${label}/${threadClass(comm, tid === String(pid))}`;
        const o = (g[group] ??= [0, 0]);
        o[0] += d[0];
        o[1] += d[1];
      }
    }
    last = next;
    buffer += JSON.stringify({ t: now, dt: now - prevTick, g }) + '\n';
    prevTick = now;
    if (now - flushedAt >= 1000) {
      appendFileSync(out, buffer);
      buffer = '';
      flushedAt = now;
    }
  };
  const timer = setInterval(tick, intervalMs);
  return () => {
    clearInterval(timer);
    const cpu = process.cpuUsage(cpu0);
    buffer += JSON.stringify({ t: Date.now(), g: {}, samplerCpuMs: Math.round((cpu.user + cpu.system) / 1000) }) + '\n';
    appendFileSync(out, buffer);
    buffer = '';
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { out: { type: 'string' }, interval: { type: 'string', default: '20' } } });
  if (values.out === undefined || positionals.length === 0) {
    process.stderr.write('usage: node bench/thread-sampler.ts --out FILE [--interval 20] label=pid:N|label=cmd:TEXT ...\n');
    process.exit(2);
  }
  const interval = Number(values.interval);
  if (!Number.isInteger(interval) || interval < 5) {
    process.stderr.write(`--interval: a whole number of ms, 5 or more (got ${values.interval})\n`);
    process.exit(2);
  }
  const stop = runSampler(positionals.map(parseWatch), values.out, interval);
  const end = (): void => {
    stop();
    process.exit(0);
  };
  process.on('SIGTERM', end);
  process.on('SIGINT', end);
  // Stop with the bench that started it, even if it could not say so.
  const parent = process.ppid;
  setInterval(() => {
    try {
      process.kill(parent, 0);
    } catch {
      end();
    }
  }, 1000).unref();
}

/** A slow episode (bench/load-loops.ts SlowEpisode) with what the watched threads did over its window. */
export interface EpisodeThreads extends SlowEpisode {
  /**
   * The window read: from one interval before the episode's first slow request was due to one after
   * its last one was due plus the slowest latency in the episode (latency counts from the send, so a
   * generator that sent late makes the true end later).
   */
  readonly windowMs: number;
  /** The longest time between two samples in the window: the figures' resolution there. */
  readonly maxGapMs: number;
  /** Per `label/class`: ms on a CPU and ms waiting for one in the window (groups under 1 ms of either left out). */
  readonly threads: Record<string, { runMs: number; waitMs: number }>;
}

/**
 * The phase's episodes of at least `minRequests` slow requests, each with the threads' figures over
 * its window: [first slow request's schedule - interval, last one's schedule + its latency bound + interval].
 */
export function episodeThreads(
  samples: readonly ThreadSample[],
  startedAtMs: number,
  episodes: readonly SlowEpisode[],
  intervalMs: number,
  minRequests = 20,
): EpisodeThreads[] {
  const out: EpisodeThreads[] = [];
  for (const e of episodes) {
    if (e.requests < minRequests) continue;
    const from = startedAtMs + e.atMs - intervalMs;
    const to = startedAtMs + e.atMs + e.spanMs + e.maxMs + intervalMs;
    const all = windowSums(samples, from, to);
    const threads = Object.fromEntries(Object.entries(all).filter(([, v]) => v.runMs >= 1 || v.waitMs >= 1).sort(([a], [b]) => a.localeCompare(b)));
    let maxGapMs = 0;
    for (const s of samples) if (s.t > from && s.t <= to) maxGapMs = Math.max(maxGapMs, s.dt ?? 0);
    out.push({ ...e, windowMs: Math.round(to - from), maxGapMs, threads });
  }
  return out;
}
