// GC probe: runs decide() over the benchmark mix in-process, paced like the server (one request per
// 2 ms of work is not simulated: back to back), for reading --trace-gc survival per scavenge.
// Usage: node --trace-gc bench/gc-probe.ts [--pods 10000] [--requests 20000] [--parse]
import { parseArgs } from 'node:util';

import { toChange } from '../src/admission/review.ts';
import type { AdmissionReview } from '../src/admission/schema.ts';
import { defaultConfig } from '../src/config/config.ts';
import { allRules } from '../src/rules/registry.ts';
import { stateFromObjects } from '../src/state/snapshot.ts';
import { createDecide } from '../src/verdict/decide.ts';
import { generateCluster } from './cluster-gen.ts';
import { requestMix } from './requests.ts';

const { values } = parseArgs({ options: { pods: { type: 'string', default: '10000' }, requests: { type: 'string', default: '20000' }, only: { type: 'string' } } });
const state = stateFromObjects(generateCluster(Number(values.pods)));
const decide = createDecide(allRules(), defaultConfig(allRules()));
const mix = requestMix(Number(values.pods), 400).filter((r) => values.only === undefined || r.label === values.only);
const bodies = mix.map((r) => JSON.stringify(r.review));
console.log('--- start');
const n = Number(values.requests);
const t0 = performance.now();
for (let i = 0; i < n; i++) {
  const change = toChange(JSON.parse(bodies[i % bodies.length]!) as AdmissionReview);
  decide(change, state);
}
console.log(`--- ${((performance.now() - t0) / n).toFixed(3)} ms/request`);
