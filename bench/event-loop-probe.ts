// Preloaded into a benchmarked server (`node --import ./bench/event-loop-probe.ts ...`): measures how
// long its event loop is blocked, from process start on, with perf_hooks.monitorEventLoopDelay. On
// SIGUSR2 it writes the figures since the previous SIGUSR2 (or process start) as one JSON line to the
// file named by MESHGUARD_EVENT_LOOP_FILE, then starts a new period: the benchmark signals once at
// ready (start-up) and once after a load phase (serving). Nothing of meshguard itself is changed.
//
// Besides the histogram's max (the figure the target is checked on), the longest single blocks are
// kept with the time they started (ms since process start), from a 5 ms timer's lateness, so that a
// report can say which part of start-up blocked (the snapshot load before listening, the warm-up, ...).

import { appendFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const file = process.env['MESHGUARD_EVENT_LOOP_FILE'];
if (file) {
  const RESOLUTION_MS = 10;
  const TICK_MS = 5;
  // MESHGUARD_EVENT_LOOP_KEEP raises it, to tell the blocks after a server listens from those before.
  const KEEP = Number(process.env['MESHGUARD_EVENT_LOOP_KEEP'] ?? 5);
  const h = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  h.enable();
  let blocks: { atMs: number; ms: number }[] = [];
  let period = 0;
  let last = performance.now();
  const tick = setInterval(() => {
    const now = performance.now();
    const late = now - last - TICK_MS;
    if (late >= 20) {
      blocks.push({ atMs: Math.round(last), ms: Math.round(late) });
      blocks.sort((a, b) => b.ms - a.ms);
      if (blocks.length > KEEP) blocks.length = KEEP;
    }
    last = now;
  }, TICK_MS);
  tick.unref();
  process.on('SIGUSR2', () => {
    const line = {
      period: period++,
      atMs: Math.round(performance.now()),
      // monitorEventLoopDelay reports nanoseconds. Its first sample comes one resolution after it is
      // enabled, so a block that begins before that (module loading) can show in the 5 ms timer's
      // longest blocks and not in the histogram: the figure checked is the larger of the two.
      maxMs: Math.max(h.max / 1e6, ...blocks.map((b) => b.ms)),
      histogramMaxMs: h.max / 1e6,
      p99Ms: h.percentile(99) / 1e6,
      meanMs: h.mean / 1e6,
      samples: h.count,
      longestBlocks: blocks,
    };
    appendFileSync(file, JSON.stringify(line) + '\n');
    h.reset();
    blocks = [];
  });
}
