// Preloaded into a benchmarked server (`node --import ./bench/event-loop-probe.ts ...`): measures how
// long its event loop is blocked, from process start on, with perf_hooks.monitorEventLoopDelay. On
// SIGUSR2 it writes the figures since the previous SIGUSR2 (or process start) as one JSON line to the
// file named by MESHGUARD_EVENT_LOOP_FILE, then starts a new period: the benchmark signals once at
// ready (start-up) and once after a load phase (serving). Nothing of meshguard itself is changed.
//
// Besides the histogram's max (the figure the target is checked on), the longest single blocks are
// kept with the time they started (ms since process start), from a 5 ms timer's lateness, so that a
// report can say which part of start-up blocked (the snapshot load before listening, the warm-up, ...).
// The first period also says when the process first listened (net's `net.server.listen` tracing
// channel) and the longest block before and after that moment: before it no client can be kept
// waiting (a connection is refused), after it a block delays probes and reviews.

import { subscribe } from 'node:diagnostics_channel';
import { appendFileSync } from 'node:fs';
import { constants, monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';

const file = process.env['MESHGUARD_EVENT_LOOP_FILE'];
if (file) {
  const RESOLUTION_MS = 10;
  const TICK_MS = 5;
  // MESHGUARD_EVENT_LOOP_KEEP raises it, to tell the blocks after a server listens from those before.
  const KEEP = Number(process.env['MESHGUARD_EVENT_LOOP_KEEP'] ?? 5);
  const h = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  h.enable();
  let blocks: { atMs: number; ms: number; cpuMs: number }[] = [];
  // Main-thread CPU time during each block: on a shared machine a block's wall time also counts the
  // time other processes held the CPU; its CPU time is the process's own work (GC helper threads aside).
  const threadCpuMs = (): number => {
    const u = process.threadCpuUsage();
    return (u.user + u.system) / 1000;
  };
  let lastCpu = threadCpuMs();
  let cpuMaxMs = 0;
  let afterListenCpuMaxMs = 0;
  let period = 0;
  let last = performance.now();
  /** When the first server of the process listened (ms since process start), and the longest blocks before and after. */
  let listeningAtMs: number | undefined;
  let beforeListenMaxMs = 0;
  let afterListenMaxMs = 0;
  subscribe('tracing:net.server.listen:asyncEnd', () => {
    if (listeningAtMs === undefined) listeningAtMs = Math.round(performance.now());
  });
  // Garbage-collection pauses of 10 ms or more, to tell a collection from a piece of work.
  const GC_KINDS: Record<number, string> = { [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major', [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor', [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental', [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weak callbacks' };
  let gcs: { atMs: number; ms: number; kind: string }[] = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (e.duration < 10) continue;
      gcs.push({ atMs: Math.round(e.startTime), ms: Math.round(e.duration), kind: GC_KINDS[((e as unknown as { detail?: { kind?: number } }).detail)?.kind ?? -1] ?? 'other' });
      gcs.sort((a, b) => b.ms - a.ms);
      if (gcs.length > KEEP) gcs.length = KEEP;
    }
  }).observe({ entryTypes: ['gc'] });
  const tick = setInterval(() => {
    const now = performance.now();
    const late = now - last - TICK_MS;
    const cpuNow = threadCpuMs();
    const cpu = cpuNow - lastCpu;
    lastCpu = cpuNow;
    if (listeningAtMs !== undefined && last >= listeningAtMs) afterListenCpuMaxMs = Math.max(afterListenCpuMaxMs, cpu);
    cpuMaxMs = Math.max(cpuMaxMs, cpu);
    if (listeningAtMs === undefined || last < listeningAtMs) beforeListenMaxMs = Math.max(beforeListenMaxMs, late);
    else afterListenMaxMs = Math.max(afterListenMaxMs, late);
    if (late >= 20) {
      blocks.push({ atMs: Math.round(last), ms: Math.round(late), cpuMs: Math.round(cpu) });
      blocks.sort((a, b) => b.ms - a.ms);
      if (blocks.length > KEEP) blocks.length = KEEP;
    }
    last = now;
  }, TICK_MS);
  tick.unref();
  process.on('SIGUSR2', () => {
    const first = period === 0;
    const line = {
      period: period++,
      atMs: Math.round(performance.now()),
      // monitorEventLoopDelay reports nanoseconds. Its first sample comes one resolution after it is
      // enabled, so a block that begins before that (module loading) can show in the 5 ms timer's
      // longest blocks and not in the histogram: the figure checked is the larger of the two.
      maxMs: Math.max(h.max / 1e6, ...blocks.map((b) => b.ms)),
      histogramMaxMs: h.max / 1e6,
      // The most main-thread CPU time spent between two turns of the 5 ms timer: the longest own work.
      cpuMaxMs: Math.round(cpuMaxMs),
      p99Ms: h.percentile(99) / 1e6,
      meanMs: h.mean / 1e6,
      samples: h.count,
      longestBlocks: blocks,
      longestGcs: gcs,
      // The first period (start to ready): the 5 ms timer's longest lateness before and after listening.
      ...(first ? { listeningAtMs, beforeListenMaxMs: Math.round(beforeListenMaxMs), afterListenMaxMs: Math.round(afterListenMaxMs), afterListenCpuMaxMs: Math.round(afterListenCpuMaxMs) } : {}),
    };
    appendFileSync(file, JSON.stringify(line) + '\n');
    h.reset();
    blocks = [];
    gcs = [];
    cpuMaxMs = 0;
  });
}
