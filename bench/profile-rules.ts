// In-process profile of decide() on the benchmark's request mix: per request kind (mean, p50, p99, max
// in ms) and the rules that cost the most in total. No HTTP: this is the evaluation cost alone.
// With --churn N, one pod's labels change before every Nth request (as a watch event would change the
// live state: a new state revision, so the per-revision caches are rebuilt).
// With --new, every request's objects get a fresh `bench.meshguard.io/seq` label value (as `bench/load.ts
// --repeat new` sends them): caches keyed by an object's content never see the same object twice.
// With --slowest N, the N slowest single requests are listed with what they were and the V8 collections
// that ran during each.
// Usage: node [--cpu-prof] bench/profile-rules.ts [--pods 10000] [--rounds 5] [--top 15] [--only <request kind>] [--churn N] [--new] [--slowest N]

import { PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

import { toChange } from '../src/admission/review.ts';
import type { AdmissionReview } from '../src/admission/schema.ts';
import { DEFAULT_SETTINGS, defaultConfig } from '../src/config/config.ts';
import { allRules } from '../src/rules/registry.ts';
import { tuneHeapForServing } from '../src/server/heap-tuning.ts';
import { mutationOf } from '../src/core/change.ts';
import { overlay } from '../src/state/overlay.ts';
import { stateFromObjects } from '../src/state/snapshot.ts';
import { transformObject } from '../src/state/transform.ts';
import { createDecide } from '../src/verdict/decide.ts';
import { generateCluster } from './cluster-gen.ts';
import { requestMix, SEQ_PLACEHOLDER } from './requests.ts';

const { values } = parseArgs({
  options: { pods: { type: 'string', default: '10000' }, rounds: { type: 'string', default: '5' }, top: { type: 'string', default: '15' }, only: { type: 'string' }, churn: { type: 'string', default: '0' }, new: { type: 'boolean', default: false }, slowest: { type: 'string', default: '0' } },
});
// As `meshguard serve` does before loading its state (see src/server/heap-tuning.ts).
tuneHeapForServing();
const churnEvery = Number(values.churn);
const pods = Number(values.pods);
const rounds = Number(values.rounds);
const objects = generateCluster(pods);
const state = stateFromObjects(objects);
const podObjects = objects.filter((o) => o.kind === 'Pod');
let changes = 0;
/** A watch event's worth of change: one pod's labels, replaced in the state. */
function changeAPod(): void {
  const p = podObjects[(changes++ * 7919) % podObjects.length]!;
  state.upsert('Pod', transformObject('Pod', { ...p, metadata: { ...p.metadata, labels: { ...p.metadata.labels, 'bench.meshguard.io/churn': String(changes) } } }));
}
const decide = createDecide(allRules(), defaultConfig(allRules()));
const mix = requestMix(pods, 400).filter((r) => values.only === undefined || r.label === values.only);
let seq = 0;
/** The request's review; with --new, a copy with a sequence number no earlier request had. */
function reviewOf(r: (typeof mix)[number]): AdmissionReview {
  if (!values.new) return r.review as unknown as AdmissionReview;
  const n = String(++seq).padStart(8, '0');
  return JSON.parse(JSON.stringify(r.review).replaceAll(SEQ_PLACEHOLDER, `seq-${n}`)) as AdmissionReview;
}

// Collections, to tell a request slowed by one from a slow request (entries arrive after the loop).
const gcs: { start: number; ms: number }[] = [];
const gcObserver = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcs.push({ start: e.startTime, ms: e.duration });
});
gcObserver.observe({ entryTypes: ['gc'] });

// Round 0 warms up the JIT and the per-revision caches of the state; later rounds are measured.
const byLabel = new Map<string, number[]>();
const all: number[] = [];
const slow: { ms: number; start: number; what: string }[] = [];
let total = 0;
let n = 0;
for (let round = 0; round <= rounds; round++) {
  for (const r of mix) {
    if (churnEvery > 0 && round > 0 && n++ % churnEvery === 0) changeAPod();
    const change = toChange(reviewOf(r));
    const t0 = performance.now();
    decide(change, state);
    const dt = performance.now() - t0;
    if (round === 0) continue;
    total += dt;
    all.push(dt);
    slow.push({ ms: dt, start: t0, what: `${r.label} ${change.operation} ${change.gvk.kind} ${change.namespace}/${change.name} (round ${round})` });
    const a = byLabel.get(r.label) ?? [];
    a.push(dt);
    byLabel.set(r.label, a);
  }
}
const pct = (a: number[], p: number): number => a[Math.min(a.length - 1, Math.ceil((p / 100) * a.length) - 1)]!;
all.sort((x, y) => x - y);
console.log(`${pods} pods, ${rounds} rounds of ${mix.length} ${values.new ? 'new ' : ''}requests${churnEvery > 0 ? `, a pod change before every ${churnEvery}th (${changes} changes)` : ''}: mean ${(total / (rounds * mix.length)).toFixed(3)} ms/request, p50 ${pct(all, 50).toFixed(3)}, p99 ${pct(all, 99).toFixed(3)}`);
console.log('kind'.padEnd(20), 'mean'.padStart(7), 'p50'.padStart(7), 'p99'.padStart(7), 'max'.padStart(7), '   n');
for (const [label, a] of byLabel) {
  a.sort((x, y) => x - y);
  const mean = a.reduce((x, y) => x + y, 0) / a.length;
  console.log(label.padEnd(20), ...[mean, pct(a, 50), pct(a, 99), a[a.length - 1]!].map((v) => v.toFixed(3).padStart(7)), String(a.length).padStart(4));
}
if (Number(values.slowest) > 0) {
  await new Promise((resolve) => setTimeout(resolve, 200)); // let the observer deliver
  gcObserver.disconnect();
  console.log(`\n${gcs.length} collections during the run, ${gcs.reduce((n, g) => n + g.ms, 0).toFixed(1)} ms`);
  console.log('\nslowest requests (ms; with the collections that ran during the request):');
  for (const x of slow.sort((a, b) => b.ms - a.ms).slice(0, Number(values.slowest))) {
    const during = gcs.filter((g) => g.start < x.start + x.ms && g.start + g.ms > x.start);
    const gc = during.length === 0 ? '' : `  [GC ${during.map((g) => g.ms.toFixed(2)).join(' + ')} ms]`;
    console.log(`${x.ms.toFixed(3).padStart(8)}  ${x.what}${gc}`);
  }
}

// Per rule and request kind, total time over one round (rules called directly, as decide() does).
const perRule = new Map<string, number>();
const rules = allRules();
for (const r of mix) {
  const change = toChange(reviewOf(r));
  if (!change.kind) continue;
  const after = overlay(state, mutationOf(change));
  for (const rule of rules) {
    if (!rule.triggers.some((t) => t.kinds.includes(change.kind!) && t.operations.includes(change.operation))) continue;
    const t0 = performance.now();
    try {
      rule.evaluate(change, state, after, { settings: DEFAULT_SETTINGS });
    } catch {
      // measured either way
    }
    const key = `${rule.id} (${r.label})`;
    perRule.set(key, (perRule.get(key) ?? 0) + performance.now() - t0);
  }
}
console.log(`\ntop rules by total ms over ${mix.length} requests:`);
for (const [k, v] of [...perRule].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top))) console.log(`${v.toFixed(1).padStart(8)}  ${k}`);
