// Bytes allocated per steady send of each worst-case request of issue 21, in-process (what a served
// process promotes and collects: the major collections that stretch single sends). Run with a new space
// large enough that no collection happens during one send, so the heap's growth over a send is what it
// allocated:
//   node --expose-gc --min-semi-space-size=512 --max-semi-space-size=512 bench/alloc-per-send.ts [index|all] [--sample FILE]
// The evaluation budget counts CPU time. Each request is sent twice to warm it, then five times measured (gc() before each, a new review each
// time, as serve sees them). With --sample FILE, V8's sampling heap profiler records where the sends
// allocate (objects collected since included), written as FILE.<index>.heapprofile.
// (WORST_PODS=50000)

import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';

import { toChange } from '../src/admission/review.ts';
import type { AdmissionReview } from '../src/admission/schema.ts';
import { defaultConfig } from '../src/config/config.ts';
import { allRules } from '../src/rules/registry.ts';
import { stateFromObjects } from '../src/state/snapshot.ts';
import { createDecide } from '../src/verdict/decide.ts';
import { generateCluster } from './cluster-gen.ts';
import { review } from './requests.ts';
import { median } from './scale-curve.ts';
import { worstCaseRequests } from './worst-case.ts';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { sample: { type: 'string' } } });
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');
const objs = generateCluster(Number(process.env['WORST_PODS'] ?? 50_000));
const state = stateFromObjects(objs);
const rules = allRules();
// The budget on this thread's CPU time (as bench/worst-case-driver.ts): on a busy machine a wall-clock
// budget cuts sends, and a cut drops the memos, which the next send builds again (not what it allocates).
const cpuNow = (): number => {
  const u = process.threadCpuUsage();
  return (u.user + u.system) / 1000;
};
const decide = createDecide(rules, defaultConfig(rules), { budget: { clock: { now: cpuNow } } });
const requests = worstCaseRequests(objs);
const only = positionals[0] !== undefined && positionals[0] !== 'all' ? Number(positionals[0]) : undefined;
const session = values.sample === undefined ? undefined : new Session();
session?.connect();
for (const [i, r] of requests.entries()) {
  if (only !== undefined && i !== only) continue;
  const send = (): void => {
    decide(toChange(review(r.operation, r.object, r.oldObject, false, true) as unknown as AdmissionReview), state);
  };
  send();
  send();
  if (session) await session.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  const bytes: number[] = [];
  for (let k = 0; k < 5; k++) {
    gc();
    const before = process.memoryUsage().heapUsed;
    send();
    bytes.push(process.memoryUsage().heapUsed - before);
  }
  if (session) {
    const { profile } = await session.post('HeapProfiler.stopSampling');
    writeFileSync(`${values.sample}.${i}.heapprofile`, JSON.stringify(profile));
  }
  console.log(`${r.label}: ${(median(bytes) / 1e6).toFixed(1)} MB allocated per send (median of 5: ${bytes.map((b) => (b / 1e6).toFixed(1)).join(' ')}); load ${loadavg()[0]!.toFixed(2)}`);
}
