// The benchmark's own target check (bench/targets.ts): each target's verdict follows the run's figures,
// per traffic shape where the target is per shape, and a run without the target's state says so.

import t from 'tap';

import { checkRss, checkTargets, targetsTable, type RunFigures, type TargetCheck } from '../../bench/targets.ts';

const phase = (p99: number, rps: number) => ({ p99, rps });

/** A full run: baseline at 20k req/s and p99 0.5 ms; meshguard per size and shape as given. */
function run(o: { p99?: Record<string, number>; rps?: Record<string, number>; baselineP99?: number; heap?: number; rss?: number; curve?: [number, number] } = {}): RunFigures {
  const shapes = ['new', 'twice', 'cycle'];
  const baseline = Object.fromEntries(shapes.map((s) => [s, { rate: phase(o.baselineP99 ?? 0.5, 20_000), max: phase(3, 20_000) }]));
  const traffic = Object.fromEntries(shapes.map((s) => [s, { rate: phase(o.p99?.[s] ?? 1, 20_000), max: phase(9, o.rps?.[s] ?? 12_000) }]));
  return {
    rate: 500,
    baseline,
    sizes: [1000, 10000, 50000].map((pods) => ({ pods, memory: { heapBytesPerPod: o.heap ?? 900 }, serverRssPeak: (pods === 50000 ? (o.rss ?? 280) : 150) * 2 ** 20, traffic })),
    scaleCurve: [
      { pods: 1000, a: 200, b: 100 },
      { pods: 10000, a: 180, b: 120 },
      { pods: 50000, a: o.curve?.[0] ?? 150, b: o.curve?.[1] ?? 130 },
    ],
  };
}

const byTarget = (checks: TargetCheck[], prefix: string): TargetCheck => {
  const c = checks.find((x) => x.target.startsWith(prefix));
  if (!c) throw new Error(`no target ${prefix}`);
  return c;
};

t.test('a run that meets every target says so', async (t) => {
  const checks = checkTargets(run());
  t.same(checks.map((c) => c.verdict), ['met', 'met', 'met', 'met', 'met']);
  t.equal(byTarget(checks, 'p99').note, undefined);
});

t.test('p99: per traffic shape, with the baseline beside it', async (t) => {
  const c = byTarget(checkTargets(run({ p99: { new: 4.9, twice: 1.7, cycle: 1.1 } })), 'p99');
  t.equal(c.verdict, 'partly met');
  t.same(c.metFor, ['each twice', 'repeated']);
  t.match(c.measured, /all new 4\.90 ms \(baseline 0\.50 ms\)/);
  t.equal(byTarget(checkTargets(run({ p99: { new: 2, twice: 3, cycle: 2.5 } })), 'p99').verdict, 'missed', '2 ms is not under 2 ms');
});

t.test("p99: a baseline over the limit is named as the machine's floor", async (t) => {
  const c = byTarget(checkTargets(run({ p99: { new: 5, twice: 3, cycle: 2.6 }, baselineP99: 2.7 })), 'p99');
  t.equal(c.verdict, 'missed');
  t.match(c.note, /baseline's own p99.*cannot show the target met/);
  t.match(targetsTable([c]).join('\n'), /cannot show the target met/);
});

t.test('throughput: every size must reach half the baseline, per shape', async (t) => {
  const c = byTarget(checkTargets(run({ rps: { new: 2000, twice: 9_999, cycle: 10_000 } })), 'max throughput');
  t.equal(c.verdict, 'partly met');
  t.same(c.metFor, ['repeated']);
  t.match(c.measured, /all new 10%; each twice 49%; repeated 50%/, 'rounded down: 49.995% is not shown as 50%');
  t.match(targetsTable([c]).join('\n'), /partly met \(repeated\)/);
});

t.test('scale, heap and RSS limits', async (t) => {
  t.equal(byTarget(checkTargets(run({ curve: [401, 130] })), 'evaluation').verdict, 'missed', '401 us at 50k against 200 at 1k');
  t.equal(byTarget(checkTargets(run({ curve: [400, 200] })), 'evaluation').verdict, 'met', 'exactly 2x is within the target');
  t.equal(byTarget(checkTargets(run({ heap: 2048 })), '< 2 KB').verdict, 'missed');
  const rss = byTarget(checkTargets(run({ rss: 301 })), '< 300 MB');
  t.equal(rss.verdict, 'missed');
  t.equal(rss.measured, '301 MB');
});

t.test('a quick run (1k and 5k pods) does not claim the 10k and 50k targets', async (t) => {
  const full = run();
  const quick: RunFigures = { ...full, sizes: full.sizes.slice(0, 1).concat({ ...full.sizes[0]!, pods: 5000 }), scaleCurve: [full.scaleCurve[0]!, { ...full.scaleCurve[1]!, pods: 5000 }] };
  const checks = checkTargets(quick);
  t.same(checks.map((c) => c.verdict), ['not measured', 'met', 'not measured', 'met', 'not measured']);
});

t.test('the RSS check serves the live path too', async (t) => {
  const live = checkRss([{ pods: 10000, serverRssPeak: 200 * 2 ** 20 }, { pods: 50000, serverRssPeak: 257 * 2 ** 20 }], 'live path');
  t.same(live, { target: '< 300 MB RSS at 50k pods (live path, peak)', measured: '257 MB', verdict: 'met' });
  t.equal(checkRss([{ pods: 10000, serverRssPeak: 400 * 2 ** 20 }], 'live path').verdict, 'not measured', 'the limit is for 50k pods');
});
