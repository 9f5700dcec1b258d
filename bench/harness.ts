// Process plumbing shared by bench/run.ts and bench/serve-one.ts: free ports, starting a server and
// waiting for /readyz, the load generator, and reading a child's RSS and CPU time from /proc.

import { execFileSync, spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { freePort } from '../test/helpers/ports.ts';
import type { SlowEpisode } from './load-loops.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const NODE = process.execPath;

/**
 * The Node.js flags the shipped Deployment runs meshguard with (its NODE_OPTIONS), so the benchmark
 * measures the configuration users get.
 */
export function deployedNodeFlags(): string[] {
  const value = deployedEnvVars().find((e) => e.name === 'NODE_OPTIONS')?.value ?? '';
  return value.split(/\s+/).filter((f) => f !== '');
}

function deployedEnvVars(): { name: string; value?: string }[] {
  const doc = parseYaml(readFileSync(path.join(ROOT, 'deploy/base/deployment.yaml'), 'utf8')) as {
    spec: { template: { spec: { containers: { name: string; env?: { name: string; value?: string }[] }[] } } };
  };
  return doc.spec.template.spec.containers.flatMap((c) => c.env ?? []);
}

/**
 * The process tunables the shipped Deployment sets besides NODE_OPTIONS (GLIBC_TUNABLES: glibc's
 * malloc), which startServer gives every server it starts. A variable already set in the bench's own
 * environment wins, so `GLIBC_TUNABLES= make bench` measures without it.
 */
export function deployedProcessEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of deployedEnvVars()) if (e.name === 'GLIBC_TUNABLES' && e.value !== undefined) out[e.name] = e.value;
  return out;
}

export interface LoadResult {
  readonly mode: string;
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly errors: number;
  readonly requests: number;
  /** Median / p99 of how late the generator sent a request after its scheduled time (rate mode). */
  readonly lateP50?: number;
  readonly lateP99?: number;
  /** The requests above the p99 grouped by time (rate mode; bench/load-loops.ts slowEpisodes). */
  readonly slowEpisodes?: { episodes: number; top: SlowEpisode[] };
  /** When the load loop started and ended, ms since the epoch (episodes' `atMs` count from the start). */
  readonly startedAtMs?: number;
  readonly endedAtMs?: number;
  /** Server CPU (user + system) per answered request, in microseconds; filled in by measureLoad. */
  serverCpuMicros?: number;
  /** Share of the phase's requests of modeled kinds answered from meshguard's verdict cache (0-1). */
  cacheHitRatio?: number;
  /** V8 major (mark-compact) collections in the server during the phase: how many, and their pause time in ms. */
  majorGcs?: number;
  majorGcMs?: number;
}

/** Ports are chosen outside the kernel's ephemeral range; see test/helpers/ports.ts. */
export { freePort };

export function readyz(port: number, ca: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const req = https.get({ host: '127.0.0.1', port, path: '/readyz', ca, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
  });
}

/** Spawns a server and resolves once its /readyz answers 200, with the time that took. */
export async function startServer(
  args: string[],
  port: number,
  ca: Buffer,
  stdio: StdioOptions = ['ignore', 'ignore', 'pipe'],
  env: NodeJS.ProcessEnv = process.env,
  opts: { readonly cpus?: string } = {},
): Promise<{ child: ChildProcess; readyMs: number }> {
  const t0 = performance.now();
  env = { ...deployedProcessEnv(), ...env };
  // With `cpus`, the server runs on those CPUs only (taskset execs Node in place: the pid is the server's).
  const child = opts.cpus !== undefined ? spawn('taskset', ['-c', opts.cpus, NODE, ...args], { cwd: ROOT, stdio, env }) : spawn(NODE, args, { cwd: ROOT, stdio, env });
  let err = '';
  child.stderr?.on('data', (d) => (err = (err + d).slice(-4000)));
  const deadline = t0 + 180_000;
  while (performance.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited ${child.exitCode}: ${err}`);
    if (await readyz(port, ca)) return { child, readyMs: performance.now() - t0 };
    await new Promise((r) => setTimeout(r, 20));
  }
  child.kill('SIGKILL');
  throw new Error(`server not ready after 180 s: ${err}`);
}

/** Runs a Node.js script and parses the last line of its stdout as JSON. */
export function runJson(args: string[]): Promise<Record<string, number> & Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`${args.join(' ')} exited ${code}: ${err.slice(-2000)}`));
      resolve(JSON.parse(out.trim().split('\n').pop()!));
    });
  });
}

/** Resident set size of a process (or its peak so far, `VmHWM`), from /proc (Linux), in bytes; NaN elsewhere. */
export function rssOf(pid: number | undefined, field: 'VmRSS' | 'VmHWM' = 'VmRSS'): number {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux); NaN elsewhere. */
export function cpuSecondsOf(pid: number | undefined, thread: 'all' | 'main' = 'all'): number {
  try {
    // Fields after the command name (which may contain spaces) start at state; utime and stime are
    // fields 14 and 15 of the whole line, in clock ticks (100 per second on Linux). The main thread's
    // own figures (the JavaScript, where requests wait) are its task's, whose id is the pid.
    const stat = readFileSync(thread === 'main' ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / 100;
  } catch {
    return NaN;
  }
}

export interface LoadOptions {
  readonly port: number;
  readonly caFile: string;
  readonly bodiesFile: string;
  readonly mode: 'rate' | 'max';
  readonly rate: number;
  readonly connections: number;
  readonly seconds: number;
  /** Traffic shape (bench/load.ts --repeat): cycle, twice or new. Default cycle. */
  readonly repeat?: 'cycle' | 'twice' | 'new';
  /** Read meshguard's verdict cache counters from /metrics around the phase: its --metrics-port. */
  readonly metricsPort?: number;
}

/** More requests than a phase sends (30k req/s for 10 s is 300k). */
const SEQ_PER_PHASE = 1_000_000;
/**
 * Sequence numbers handed to load phases so far: every phase of a run numbers its requests anew. Not
 * from 0: `seq-00000000` is the placeholder the cycle shape sends as it is.
 */
let seqBase = SEQ_PER_PHASE;

/**
 * One load phase from bench/load.ts in its own process, with the server's CPU time per answered
 * request (the generator's warm-up requests are counted too, so the figure is a slight overestimate).
 */
export async function measureLoad(serverPid: number | undefined, o: LoadOptions): Promise<LoadResult> {
  const seqStart = seqBase;
  seqBase = Math.max(SEQ_PER_PHASE, (seqBase + SEQ_PER_PHASE) % 1e8);
  const cache0 = o.metricsPort ? await serverCounters(o.metricsPort) : undefined;
  const cpu0 = cpuSecondsOf(serverPid);
  const r = (await runJson([
    path.join(ROOT, 'bench/load.ts'), '--url', `https://127.0.0.1:${o.port}/validate`, '--ca', o.caFile,
    '--bodies', o.bodiesFile, '--mode', o.mode, '--rate', String(o.rate), '--connections', String(o.connections), '--seconds', String(o.seconds),
    '--repeat', o.repeat ?? 'cycle', '--seq-start', String(seqStart),
  ])) as unknown as LoadResult;
  const cpu = cpuSecondsOf(serverPid) - cpu0;
  r.serverCpuMicros = (cpu * 1e6) / (r.requests + Number(r['warmupRequests' as keyof LoadResult] ?? 0));
  if (cache0 && o.metricsPort) {
    const cache1 = await serverCounters(o.metricsPort);
    const hits = cache1.hit - cache0.hit;
    const lookups = hits + cache1.miss - cache0.miss;
    r.cacheHitRatio = lookups > 0 ? hits / lookups : NaN;
    r.majorGcs = cache1.majorGcs - cache0.majorGcs;
    r.majorGcMs = (cache1.majorGcSeconds - cache0.majorGcSeconds) * 1000;
  }
  return r;
}

/** The counters measureLoad reads from meshguard's /metrics page. */
export interface ServerCounters {
  hit: number;
  miss: number;
  majorGcs: number;
  majorGcSeconds: number;
}

/**
 * One sample's value from a Prometheus text page. A labelled series appears only once it has been
 * observed (prom-client: the first verdict cache lookup, V8's first major collection), so a metric the
 * page declares (`# TYPE`) without that series counts as 0; a metric the page does not declare, or a
 * line for the series that cannot be read (more labels than asked for), is NaN.
 */
export function sampleValue(text: string, sample: string, labels: string, metric: string): number {
  const escape = (x: string): string => x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  // The value, then an optional timestamp (the exposition format allows one).
  const m = new RegExp(`^${escape(sample)}\\{${escape(labels)}\\} (\\S+)(?: -?\\d+)?$`, 'm').exec(text);
  if (m) return m[1] === '+Inf' ? Infinity : m[1] === '-Inf' ? -Infinity : Number(m[1]);
  if (new RegExp(`^${escape(sample)}\\{[^}]*${escape(labels)}`, 'm').test(text)) return Number.NaN;
  return new RegExp(`^# TYPE ${escape(metric)} `, 'm').test(text) ? 0 : Number.NaN;
}

/** The counters from a /metrics page (see serverCounters). */
export function parseServerCounters(text: string): ServerCounters {
  const lookups = (result: string): number => sampleValue(text, 'meshguard_verdict_cache_lookups_total', `result="${result}"`, 'meshguard_verdict_cache_lookups_total');
  const gc = (what: 'sum' | 'count'): number => sampleValue(text, `nodejs_gc_duration_seconds_${what}`, 'kind="major"', 'nodejs_gc_duration_seconds');
  return { hit: lookups('hit'), miss: lookups('miss'), majorGcs: gc('count'), majorGcSeconds: gc('sum') };
}

/**
 * Counters from meshguard's /metrics (plain HTTP on its --metrics-port): its verdict cache lookups
 * (meshguard_verdict_cache_lookups_total) and V8's major collections (prom-client's
 * nodejs_gc_duration_seconds{kind="major"}).
 */
export function serverCounters(metricsPort: number): Promise<ServerCounters> {
  return metricsPage(metricsPort).then(parseServerCounters);
}

/** meshguard's /metrics page, from its plain-HTTP --metrics-port on 127.0.0.1. */
export function metricsPage(metricsPort: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: metricsPort, path: '/metrics', timeout: 5000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error(`/metrics answered ${res.statusCode}`));
        else resolve(text);
      });
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('metrics timeout')));
  });
}

/** Stops a server started by startServer: `signal` (SIGKILL by default), SIGKILL after 15 s. */
export async function stopServer(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill(signal);
    setTimeout(() => child.kill('SIGKILL'), 15_000).unref();
  });
}

/** A figure for a results table: fixed digits, or the value as text when it is not a finite number. */
export function fmt(n: unknown, digits = 2): string {
  return typeof n === 'number' && Number.isFinite(n) ? n.toFixed(digits) : String(n);
}

/** What bench/event-loop-probe.ts writes per period: event-loop delay in ms, and the longest blocks. */
export interface EventLoopFigures {
  readonly maxMs: number;
  readonly p99Ms: number;
  readonly meanMs: number;
  readonly samples: number;
  readonly longestBlocks: readonly { readonly atMs: number; readonly ms: number; readonly cpuMs?: number }[];
  /** The most main-thread CPU time between two turns of the probe's 5 ms timer (the longest own work, whatever the machine's load). */
  readonly cpuMaxMs?: number;
  /** The longest garbage-collection pauses (10 ms or more) in the period, with their kind. */
  readonly longestGcs?: readonly { readonly atMs: number; readonly ms: number; readonly kind: string }[];
  /** First period only: when the process first listened (ms since start), and the longest block before and after. */
  readonly listeningAtMs?: number;
  readonly beforeListenMaxMs?: number;
  readonly afterListenMaxMs?: number;
  readonly afterListenCpuMaxMs?: number;
}

/** Node flags that preload the event-loop probe into a server (its figures go to `file`). */
export function eventLoopProbeFlags(): string[] {
  return ['--import', path.join(ROOT, 'bench/event-loop-probe.ts')];
}

/**
 * The event-loop figures of a server started with eventLoopProbeFlags() and MESHGUARD_EVENT_LOOP_FILE
 * = `file`, since the previous call (or process start): signals it, waits for its line (the probe
 * answers once its loop is free again; NaN figures after 30 s).
 */
export async function eventLoopSince(child: ChildProcess, file: string): Promise<EventLoopFigures> {
  const lines = (): string[] => {
    try {
      return readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
    } catch {
      return [];
    }
  };
  const before = lines().length;
  child.kill('SIGUSR2');
  const deadline = performance.now() + 30_000;
  while (performance.now() < deadline) {
    const now = lines();
    if (now.length > before) return JSON.parse(now[now.length - 1]!) as EventLoopFigures;
    await new Promise((r) => setTimeout(r, 10));
  }
  return { maxMs: Number.NaN, p99Ms: Number.NaN, meanMs: Number.NaN, samples: 0, longestBlocks: [] };
}

/**
 * Splits the machine for benches of the live path (`--pin`): this process and every process it starts
 * from now on (kube-apiserver, etcd, writers, the load generator) run on the CPUs after the first, and
 * meshguard (startServer with `cpus: SERVER_CPUS`) on the first alone, as in a cluster where the
 * apiserver runs on other machines than the webhook. Throws when the machine cannot be split (one CPU,
 * no taskset): a pinned figure must not silently be an unpinned one.
 */
export const SERVER_CPUS = '0';
export function pinBenchAwayFromServer(): { readonly serverCpus: string; readonly otherCpus: string } {
  const n = os.availableParallelism();
  if (n < 2) throw new Error('--pin needs at least 2 CPUs');
  const otherCpus = n === 2 ? '1' : `1-${n - 1}`;
  try {
    execFileSync('taskset', ['-a', '-p', '-c', otherCpus, String(process.pid)], { stdio: 'ignore' });
  } catch (err) {
    throw new Error(`--pin: taskset failed (${(err as Error).message})`);
  }
  return { serverCpus: SERVER_CPUS, otherCpus };
}

/** Sets the CPUs every thread of process `pid` may run on (taskset -a -p; Linux). */
export function setCpus(pid: number, cpus: string): void {
  execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
}

/** The kube-apiserver serving `kubeconfig` and its etcd, found by their command lines (the port, the etcd URL). */
export function controlPlanePids(kubeconfig: string): { apiserver?: number; etcd?: number } {
  const port = /server: https:\/\/127\.0\.0\.1:(\d+)/.exec(readFileSync(kubeconfig, 'utf8'))?.[1];
  const procs: { pid: number; args: string[] }[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      procs.push({ pid: Number(d), args: readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0') });
    } catch {
      // gone
    }
  }
  const apiserver = procs.find((p) => p.args[0]?.endsWith('kube-apiserver') && p.args.includes(`--secure-port=${port}`));
  const etcdUrl = apiserver?.args.find((a) => a.startsWith('--etcd-servers='))?.slice('--etcd-servers='.length);
  const etcd = procs.find((p) => p.args[0]?.endsWith('etcd') && p.args.some((a) => a === `--listen-client-urls=${etcdUrl}` || a === `--advertise-client-urls=${etcdUrl}`));
  return { ...(apiserver ? { apiserver: apiserver.pid } : {}), ...(etcd ? { etcd: etcd.pid } : {}) };
}
