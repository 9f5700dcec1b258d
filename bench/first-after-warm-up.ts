// The first decision of a worst-case request (issue 21) after serve's own warm-up, in-process: the served
// p99 of `make bench` is each request's first send, so what the warm-up leaves cold shows here. One
// request per process (the first of any kind warms code the others share); three sends, each a new
// review. With --cpu-prof FILE, the first send is profiled (V8's sampling profiler, 100 us).
// Usage: node --expose-gc bench/first-after-warm-up.ts <index 0-4> [--cpu-prof FILE]   (WORST_PODS=50000, WARM_SAMPLE=0)

import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { parseArgs } from 'node:util';

import { toChange } from '../src/admission/review.ts';
import type { AdmissionReview } from '../src/admission/schema.ts';
import { defaultConfig } from '../src/config/config.ts';
import { allRules } from '../src/rules/registry.ts';
import { stateFromObjects } from '../src/state/snapshot.ts';
import { createDecide } from '../src/verdict/decide.ts';
import { warmUpInSlices } from '../src/verdict/warmup.ts';
import { warmUpOnSample } from '../src/verdict/warmup-sample.ts';
import { generateCluster } from './cluster-gen.ts';
import { requestMix, review } from './requests.ts';
import { worstCaseRequests } from './worst-case.ts';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { 'cpu-prof': { type: 'string' } } });
const cpuNow = (): number => {
  const u = process.threadCpuUsage();
  return (u.user + u.system) / 1000;
};
const objs = generateCluster(Number(process.env['WORST_PODS'] ?? 50_000));
const state = stateFromObjects(objs);
const rules = allRules();
const decide = createDecide(rules, defaultConfig(rules));
// As serve calls them (src/cli/serve.ts): the costly requests on a sample of the state (left out with
// WARM_SAMPLE=0, to compare), then 2.5 s of decisions, capped at 25 s, in 20 ms slices.
const onSample = process.env['WARM_SAMPLE'] === '0' ? 0 : await warmUpOnSample(decide, rules, state, 20);
const warmed = await warmUpInSlices(decide, rules, () => state, 2500, 25_000, 20);
// MIX=N: N reviews of the ordinary request mix decided after the warm-up, as `make bench` serves them
// (500 req/s for 10 s) before its worst-case sends.
const mixCount = Number(process.env['MIX'] ?? 0);
if (mixCount > 0) {
  const mix = requestMix(objs.filter((o) => o.kind === 'Pod').length, 400).map((m) => JSON.stringify(m.review));
  for (let i = 0; i < mixCount; i++) {
    decide(toChange(JSON.parse(mix[i % mix.length]!.replace('"uid":"', `"uid":"${i}-`)) as AdmissionReview), state);
    if (i % 50 === 49) await new Promise((res) => setTimeout(res, 1));
  }
}
const r = worstCaseRequests(objs)[Number(positionals[0] ?? 0)]!;
const session = values['cpu-prof'] === undefined ? undefined : new Session();
if (session) {
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
}
const sends: number[] = [];
for (let i = 0; i < 3; i++) {
  const change = toChange(review(r.operation, r.object, r.oldObject, false, true) as unknown as AdmissionReview);
  if (i === 0 && session) await session.post('Profiler.start');
  const t = cpuNow();
  decide(change, state);
  sends.push(cpuNow() - t);
  if (i === 0 && session) writeFileSync(values['cpu-prof']!, JSON.stringify((await session.post('Profiler.stop')).profile));
}
console.log(`${r.label}: first send ${sends[0]!.toFixed(1)} ms CPU, then ${sends.slice(1).map((x) => x.toFixed(1)).join(', ')} (warm-up: ${onSample} on the sample, ${warmed} decisions); load ${(await import('node:os')).loadavg()[0]!.toFixed(2)}`);
