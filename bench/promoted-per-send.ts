// Where the objects that outlive a scavenge during a worst-case send (issue 21) are allocated, in-process
// with serve's heap settings and warm-up: what a served process promotes to the old generation and only
// a major collection frees (the collections that stretch single sends; bench/worst-case-gc.ts measures
// the promoted megabytes per request kind in serve itself). V8's sampling heap profiler keeps objects a
// major collection freed and drops those a scavenge freed, so what it reports over five sends is what
// survived a scavenge (plus the last send's still-young objects). Prints the top allocation sites per
// send with the rule they ran under; with a FILE argument, writes the profile (.heapprofile) as well.
// Usage: node --expose-gc --max-semi-space-size=8 --no-allocation-site-pretenuring bench/promoted-per-send.ts <index 0-4> [FILE]
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';

import { toChange } from '../src/admission/review.ts';
import type { AdmissionReview } from '../src/admission/schema.ts';
import { defaultConfig } from '../src/config/config.ts';
import { allRules } from '../src/rules/registry.ts';
import { stateFromObjects } from '../src/state/snapshot.ts';
import { createDecide } from '../src/verdict/decide.ts';
import { warmUpInSlices } from '../src/verdict/warmup.ts';
import { warmUpOnSample } from '../src/verdict/warmup-sample.ts';
import { generateCluster } from './cluster-gen.ts';
import { review } from './requests.ts';
import { worstCaseRequests } from './worst-case.ts';

type CallFrame = { functionName: string; url: string; lineNumber: number };
type Node = { callFrame: CallFrame; selfSize: number; children: Node[] };
const SENDS = 5;
const objs = generateCluster(Number(process.env['WORST_PODS'] ?? 50_000));
const state = stateFromObjects(objs);
const rules = allRules();
const decide = createDecide(rules, defaultConfig(rules));
await warmUpOnSample(decide, rules, state, 20);
await warmUpInSlices(decide, rules, () => state, 2500, 25_000, 20);
const r = worstCaseRequests(objs)[Number(process.argv[2] ?? 0)]!;
const send = (): unknown => decide(toChange(review(r.operation, r.object, r.oldObject, false, true) as unknown as AdmissionReview), state);
for (let i = 0; i < 3; i++) send();
(globalThis as unknown as { gc: () => void }).gc();
const session = new Session();
session.connect();
await session.post('HeapProfiler.startSampling', { samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: false });
for (let i = 0; i < SENDS; i++) send();
const { profile } = (await session.post('HeapProfiler.stopSampling')) as unknown as { profile: { head: Node } };
if (process.argv[3]) writeFileSync(process.argv[3], JSON.stringify(profile));

// Self size per site (function, file:line) and the innermost rule's check it ran under.
const sites = new Map<string, number>();
const name = (f: CallFrame): string => `${f.functionName || '(anonymous)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}`;
const walk = (n: Node, rule: string, caller: string): void => {
  const here = name(n.callFrame);
  const inRule = /\/rules\/[^/]+\/index\.ts/.test(n.callFrame.url) ? n.callFrame.url.split('/').at(-2)! : rule;
  if (n.selfSize > 0) {
    const k = `${here}  (from ${caller}) [${inRule}]`;
    sites.set(k, (sites.get(k) ?? 0) + n.selfSize);
  }
  for (const c of n.children) walk(c, inRule, n.callFrame.url.includes('/src/') ? name(n.callFrame) : caller);
};
walk(profile.head, '-', '-');
const total = [...sites.values()].reduce((a, b) => a + b, 0);
console.log(`${r.label}: ${(total / SENDS / 1e6).toFixed(2)} MB per send survived a scavenge (sampled)`);
for (const [k, v] of [...sites].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`  ${(v / SENDS / 1e6).toFixed(2)} MB  ${k}`);
process.exit(0);
