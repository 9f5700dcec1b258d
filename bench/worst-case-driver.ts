// A small driver for profiling the worst-case requests of issue 21 in-process, one request at a time:
//   node --cpu-prof --cpu-prof-dir /tmp/prof bench/worst-case-driver.ts [index] [iterations]
// Prints each request's times and verdict (the same summary bench/run.ts prints), and the heap per pod.
// With PROF_DIR=dir, each request is also profiled on its own after its warm-up call (so the profile
// holds the steady state a served process sees, not the first call's cache filling): dir/req<i>.cpuprofile.

import { toChange } from '../src/admission/review.ts';
import type { AdmissionReview } from '../src/admission/schema.ts';
import { defaultConfig } from '../src/config/config.ts';
import { allRules } from '../src/rules/registry.ts';
import { stateFromObjects } from '../src/state/snapshot.ts';
import { createDecide } from '../src/verdict/decide.ts';
import { generateCluster } from './cluster-gen.ts';
import { review } from './requests.ts';
import { timeWorstCases, verdictText, worstCaseRequests } from './worst-case.ts';

// Wall time (what the benchmark reports) and this thread's CPU time per call: on a shared machine the
// CPU time says what the code costs when the wall time says how busy the machine was.
const cpuNow = (): number => {
  const u = process.threadCpuUsage ? process.threadCpuUsage() : process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const only = process.argv[2] !== undefined && process.argv[2] !== 'all' ? Number(process.argv[2]) : undefined;
const iterations = Number(process.argv[3] ?? 3);
const pods = Number(process.env['WORST_PODS'] ?? 50_000);
const objs = generateCluster(pods);
const requests = worstCaseRequests(objs);
const gc = (globalThis as { gc?: () => void }).gc;
gc?.();
const heap0 = process.memoryUsage().heapUsed;
const state = stateFromObjects(objs);
gc?.();
const heapPerPod = (process.memoryUsage().heapUsed - heap0) / pods;
// The evaluation budget counts this thread's CPU time here: on a busy machine a wall-clock budget
// runs out, and the caches it then drops make every later call slower still (a diagnostic, not serving).
const decide = createDecide(allRules(), defaultConfig(allRules()), process.env['WALL_BUDGET'] ? {} : { budget: { clock: { now: cpuNow } } });
const changes = requests
  .map((r, i) => ({ i, label: r.label, change: toChange(review(r.operation, r.object, r.oldObject) as unknown as AdmissionReview) }))
  .filter((c) => only === undefined || c.i === only);
const profDir = process.env['PROF_DIR'];
for (const c of changes) {
  if (profDir) await profile(profDir, c);
  const [t] = timeWorstCases(decide, state, [c], iterations);
  const [u] = timeWorstCases(decide, state, [c], iterations, cpuNow);
  console.log(`${t!.label}: median ${t!.medianMs.toFixed(1)} ms wall (cpu ${u!.medianMs.toFixed(1)} ms), max ${t!.maxMs.toFixed(1)} ms [${t!.samples.map((s) => s.toFixed(1)).join(' ')}]; ${verdictText(t!.verdict)}`);
}
gc?.();
const heapAfter = process.memoryUsage().heapUsed;
console.log(`heap per pod (state only${gc ? '' : ', no --expose-gc'}): ${heapPerPod.toFixed(0)} B; heap after the requests ${(heapAfter / 1e6).toFixed(0)} MB (state and memos; the generated objects ${((heap0) / 1e6).toFixed(0)} MB before the state); rss ${(process.memoryUsage().rss / 1e6).toFixed(0)} MB; load ${(await import('node:os')).loadavg()[0]!.toFixed(2)}`);

async function profile(dir: string, c: (typeof changes)[number]): Promise<void> {
  const { Session } = await import('node:inspector/promises');
  const { mkdirSync, writeFileSync } = await import('node:fs');
  decide(c.change, state);
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
  for (let i = 0; i < iterations; i++) decide(c.change, state);
  const { profile: p } = await session.post('Profiler.stop');
  session.disconnect();
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}/req${c.i}.cpuprofile`, JSON.stringify(p));
}
