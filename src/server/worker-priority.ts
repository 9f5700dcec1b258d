// V8's worker threads one step behind the request path, applied by `meshguard serve` once warmed up.
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

/** The nice value V8's workers run above the main thread's, unless --v8-worker-nice says otherwise. */
export const DEFAULT_V8_WORKER_NICE = 5;

/** Linux's lowest priority. */
const NICE_MAX = 19;

/** The name Node gives V8's platform worker threads (the kernel keeps 15 bytes of a thread's name). */
const WORKER_NAME = 'V8Worker';

/** What serve did, for the "listening" log line. */
export type WorkerPriority =
  | 'off'
  | 'unsupported'
  | {
      /** The nice value the workers were given (the main thread's plus the increment, at most 19). */
      readonly nice: number;
      /** Workers found. */
      readonly threads: number;
      /** Workers whose value was raised (the others were at `nice` or above already). */
      readonly changed: number;
      /** Why a worker could not be changed (the first error's code), if one could not. */
      readonly error?: string;
    };

/** The system calls, replaceable in tests. */
export interface PriorityCalls {
  readonly taskDir: string;
  readonly threads: (dir: string) => string[];
  readonly threadName: (dir: string, tid: string) => string;
  /** A thread's nice value (0: the calling thread). */
  readonly get: (tid: number) => number;
  readonly set: (tid: number, nice: number) => void;
}

const linuxCalls: PriorityCalls = {
  taskDir: '/proc/self/task',
  threads: (dir) => readdirSync(dir),
  threadName: (dir, tid) => readFileSync(`${dir}/${tid}/comm`, 'utf8').trim(),
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
 * Never lowers one, never throws: a thread that ended meanwhile is skipped, and a refusal is reported.
 * Call it from the main thread.
 */
export function lowerV8WorkerPriority(increment: number, platform: NodeJS.Platform = process.platform, calls: PriorityCalls = linuxCalls): WorkerPriority {
  if (increment <= 0) return 'off';
  if (platform !== 'linux') return 'unsupported';
  let tids: string[];
  try {
    tids = calls.threads(calls.taskDir);
  } catch {
    return 'unsupported';
  }
  const nice = Math.min(NICE_MAX, calls.get(0) + increment);
  let threads = 0;
  let changed = 0;
  let error: string | undefined;
  for (const tid of tids) {
    if (!/^\d+$/.test(tid)) continue;
    try {
      if (!calls.threadName(calls.taskDir, tid).startsWith(WORKER_NAME)) continue;
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
  return { nice, threads, changed, ...(error !== undefined ? { error } : {}) };
}
