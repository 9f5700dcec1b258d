// The worst-case requests of issue 21 right after a pod event, in-process (what the steady-state figures
// of bench/worst-case-driver.ts leave out). In a live cluster pods come and go all the time, and every
// event that changes what the state keeps (a new pod, a deleted one, new labels or address) moves the
// state's revision, which empties the per-revision tables the requests' "before" halves are read from.
// For each request: its median CPU time on an unchanged state (after one untimed call), then the median
// of `iterations` calls each right after one new pod (a copy of an existing pod under a new name and
// address: same identity, so no new class; the cheapest event that moves the revision).
// With PROF_DIR=dir, the calls right after a pod event (each event and its decision) are profiled apart:
// dir/after<i>.cpuprofile (the events' own cost shows under podEvent).
// Usage: node --expose-gc bench/worst-case-after-event.ts [index|all] [iterations]   (WORST_PODS=50000)

import { toChange } from '../src/admission/review.ts';
import type { AdmissionReview } from '../src/admission/schema.ts';
import { defaultConfig } from '../src/config/config.ts';
import type { Pod } from '../src/core/objects.ts';
import { allRules } from '../src/rules/registry.ts';
import { stateFromObjects } from '../src/state/snapshot.ts';
import { transformObject } from '../src/state/transform.ts';
import { createDecide } from '../src/verdict/decide.ts';
import { generateCluster } from './cluster-gen.ts';
import { review } from './requests.ts';
import { verdictText, summarize, worstCaseRequests } from './worst-case.ts';

const cpuNow = (): number => {
  const u = process.threadCpuUsage();
  return (u.user + u.system) / 1000;
};
const only = process.argv[2] !== undefined && process.argv[2] !== 'all' ? Number(process.argv[2]) : undefined;
const iterations = Number(process.argv[3] ?? 5);
const objs = generateCluster(Number(process.env['WORST_PODS'] ?? 50_000));
const state = stateFromObjects(objs);
const decide = createDecide(allRules(), defaultConfig(allRules()), { budget: { clock: { now: cpuNow } } });
const pods = objs.filter((o) => o.kind === 'Pod') as unknown as Pod[];
let n = 0;
/** One new pod: a copy of an existing one under a new name and address (same identity and node). */
function podEvent(): void {
  const p = pods[(n * 7919) % pods.length]!;
  n++;
  const ip = `10.250.${(n >> 8) & 255}.${n & 255}`;
  const copy: Pod = { ...p, metadata: { ...p.metadata, name: `${p.metadata.name}-e${n}` }, status: { ...p.status, podIP: ip, podIPs: [{ ip }] } };
  state.upsert('Pod', transformObject('Pod', copy as unknown as Record<string, unknown>)); // as src/state/live.ts applies an event
}
const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const requests = worstCaseRequests(objs).map((r, i) => ({ i, label: r.label, change: toChange(review(r.operation, r.object, r.oldObject) as unknown as AdmissionReview) }));
for (const r of requests.filter((x) => only === undefined || x.i === only)) {
  decide(r.change, state);
  const steady: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t = cpuNow();
    decide(r.change, state);
    steady.push(cpuNow() - t);
  }
  const after: number[] = [];
  let last = decide(r.change, state);
  const profDir = process.env['PROF_DIR'];
  const session = profDir ? new (await import('node:inspector/promises')).Session() : undefined;
  if (session) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 100 });
    await session.post('Profiler.start');
  }
  for (let i = 0; i < iterations; i++) {
    podEvent();
    const t = cpuNow();
    last = decide(r.change, state);
    after.push(cpuNow() - t);
  }
  if (session) {
    const { profile: p } = await session.post('Profiler.stop');
    session.disconnect();
    const { mkdirSync, writeFileSync } = await import('node:fs');
    mkdirSync(profDir!, { recursive: true });
    writeFileSync(`${profDir}/after${r.i}.cpuprofile`, JSON.stringify(p));
  }
  console.log(`${r.label}: steady ${median(steady).toFixed(1)} ms CPU, right after a pod event ${median(after).toFixed(1)} ms CPU [${after.map((x) => x.toFixed(0)).join(' ')}]; ${verdictText(summarize(last))}`);
}
console.log(`load ${(await import('node:os')).loadavg()[0]!.toFixed(2)}`);
