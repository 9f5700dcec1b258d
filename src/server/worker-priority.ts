// V8's worker threads a few nice steps behind the request path: `meshguard serve --v8-worker-nice N`,
// 5 by default, applied once serve is warmed up (docs/adr/0012-v8-workers-yield-to-reviews.md).
//
// V8 runs its concurrent marking, parallel scavenges and background compiles on a pool of platform
// threads that Node names `V8Worker` (four by default). When a major collection marks the ~2 M heap
// objects of a 50k-pod state, those threads can take both of a small node's cores for 50-300 ms while
// the main thread, which answers the API server, waits in the run queue for a core. Measured with the
// per-thread sampler under 500 pod events/s (BENCHMARKS.md, issue 21): V8's workers ran longer than
// the main thread in 14 of 15 slow episodes.
//
// A higher nice value gives these threads a smaller share of the CPU only while a thread with a lower
// one (the main thread) wants it; when the main thread is idle they still get every cycle, so marking
// is not starved, it yields. Raising one's own threads' nice value needs no privilege (CAP_SYS_NICE is
// only needed to lower it), and inside the pod's cgroup it only moves CPU between meshguard's own
// threads: other pods' shares are untouched.
//
// Linux only: nice is per thread there (setpriority on a thread id), and /proc/self/task names the
// threads. Elsewhere this reports 'unsupported' and changes nothing. The worker pool is created when
// Node starts and lasts as long as the process, so one pass is enough. Threads made later (libuv's
// pool, made by the main thread) inherit the main thread's value, not the workers'.
//
// serve does it after the warm-up, not at start: while the state is loaded and the warm-up runs,
// nothing waits on the main thread but readiness, and workers slowed then left the process holding
// more memory once ready (BENCHMARKS.md, issue 21).

import { readdirSync, readFileSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

import type { WarmUp } from './plugins/health.ts';

/**
 * How many nice steps above the main thread V8's workers run unless --v8-worker-nice says otherwise.
 * At 50k pods it kept the served worst cases under 100 ms in most runs where the default missed them
 * all, for 20-35 MB more peak RSS at full throughput (ADR 0012); 0 gives V8's default back.
 */
export const DEFAULT_V8_WORKER_NICE = 5;

/** Linux's lowest priority. */
const NICE_MAX = 19;

/** The name Node gives V8's platform worker threads (the kernel keeps 15 bytes of a thread's name). */
export const V8_WORKER_THREAD_NAME = 'V8Worker';

/** What serve did, for its log: 'off' for --v8-worker-nice 0, 'unsupported' off Linux. */
export type WorkerPriority =
  | 'off'
  | 'unsupported'
  | {
      /** The nice value the workers were given (the main thread's plus the increment, at most 19). */
      readonly nice?: number;
      /** Workers found. */
      readonly threads: number;
      /** Workers whose value was raised (the others were at `nice` or above already). */
      readonly changed: number;
      /** Why it did not take (the first error's code, or what was missing), if it did not. */
      readonly error?: string;
    };

/** The system calls, replaceable in tests. */
export interface PriorityCalls {
  /** This process's id, which must be among the thread ids listed (else /proc shows another PID namespace). */
  readonly pid: number;
  /** This process's thread ids, as /proc/self/task lists them. */
  readonly threads: () => string[];
  readonly threadName: (tid: string) => string;
  /** A thread's nice value (0: the calling thread). */
  readonly get: (tid: number) => number;
  readonly set: (tid: number, nice: number) => void;
}

const linuxCalls: PriorityCalls = {
  pid: process.pid,
  threads: () => readdirSync('/proc/self/task'),
  threadName: (tid) => readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim(),
  get: (tid) => getPriority(tid),
  set: (tid, nice) => setPriority(tid, nice),
};

/** The errno name: os.getPriority/setPriority throw ERR_SYSTEM_ERROR with the errno in `info`. */
function codeOf(e: unknown): string {
  const err = e as NodeJS.ErrnoException & { info?: { code?: unknown } };
  if (typeof err.info?.code === 'string') return err.info.code;
  return typeof err.code === 'string' ? err.code : String(err.message).slice(0, 80);
}

/**
 * Raises the nice value of V8's worker threads to the calling thread's plus `increment` (at most 19).
 * Never lowers one and never throws: a thread that ended meanwhile is skipped; a refusal, or no worker
 * found, is reported in `error`. Call it from the main thread.
 */
export function lowerV8WorkerPriority(increment: number, platform: NodeJS.Platform = process.platform, calls: PriorityCalls = linuxCalls): WorkerPriority {
  if (increment <= 0) return 'off';
  if (platform !== 'linux') return 'unsupported';
  let tids: string[];
  let nice: number;
  try {
    tids = calls.threads();
    nice = Math.min(NICE_MAX, calls.get(0) + increment);
  } catch (e) {
    return { threads: 0, changed: 0, error: codeOf(e) };
  }
  // The ids /proc lists are those of its mount's PID namespace; setpriority takes ours. They differ
  // only if /proc was mounted from another namespace, and then an id could name another process.
  if (!tids.includes(String(calls.pid))) return { threads: 0, changed: 0, error: '/proc shows another PID namespace' };
  let threads = 0;
  let changed = 0;
  let error: string | undefined;
  for (const tid of tids) {
    if (!/^\d+$/.test(tid)) continue;
    try {
      if (!calls.threadName(tid).startsWith(V8_WORKER_THREAD_NAME)) continue;
      threads++;
      if (calls.get(Number(tid)) >= nice) continue;
      calls.set(Number(tid), nice);
      changed++;
    } catch (e) {
      // ENOENT/ESRCH: the thread ended between the listing and here; nothing to do.
      const code = codeOf(e);
      if (code !== 'ENOENT' && code !== 'ESRCH') error ??= code;
    }
  }
  if (threads === 0) error ??= `no ${V8_WORKER_THREAD_NAME} threads`;
  return { nice, threads, changed, ...(error !== undefined ? { error } : {}) };
}

/**
 * `warmUp`, then `after` once it has settled (also when it threw, whose error still goes on), unless
 * the server is stopping by then. serve lowers the workers' priority this way (see the top of this file).
 */
export function thenUnlessStopping(warmUp: WarmUp, after: () => void): (shouldStop: () => boolean) => Promise<void> {
  return async (shouldStop) => {
    try {
      await warmUp(shouldStop);
    } finally {
      if (!shouldStop()) after();
    }
  };
}
