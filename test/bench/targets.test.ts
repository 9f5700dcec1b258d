// The benchmark's own target check (bench/targets.ts): each target's verdict follows the run's figures,
// per traffic shape where the target is per shape, and a run without the target's state says so.

import t from 'tap';

import { checkChurnAdmission, checkChurnLag, checkReadyFromLive, checkRss, checkTargets, type ChurnFigures, floorPercent, targetsTable, type RunFigures, type TargetCheck, type WorstCaseFigures } from '../../bench/targets.ts';

const phase = (p99: number, rps: number, errors = 0) => ({ p99, rps, errors });

/** A full run: baseline at 20k req/s and p99 0.5 ms; meshguard per size and shape as given. */
function run(o: { p99?: Record<string, number>; rps?: Record<string, number>; baselineP99?: number; heap?: number; rss?: number; curve?: [number, number]; eventLoopMs?: number } = {}): RunFigures {
  const shapes = ['new', 'twice', 'cycle'];
  const baseline = Object.fromEntries(shapes.map((s) => [s, { rate: phase(o.baselineP99 ?? 0.5, 20_000), max: phase(3, 20_000) }]));
  const traffic = Object.fromEntries(shapes.map((s) => [s, { rate: phase(o.p99?.[s] ?? 1, 20_000), max: phase(9, o.rps?.[s] ?? 12_000) }]));
  return {
    rate: 500,
    baseline,
    sizes: [1000, 10000, 50000].map((pods) => ({ pods, memory: { heapBytesPerPod: o.heap ?? 900 }, serverRssPeak: (pods === 50000 ? (o.rss ?? 280) : 150) * 2 ** 20, traffic, eventLoop: { startup: { maxMs: 30 }, serving: { maxMs: o.eventLoopMs ?? 20 } } })),
    worstCase: worst(),
    scaleCurve: [
      { pods: 1000, a: 200, b: 100 },
      { pods: 10000, a: 180, b: 120 },
      { pods: 50000, a: o.curve?.[0] ?? 150, b: o.curve?.[1] ?? 130 },
    ],
  };
}

/** Worst-case figures: two requests, both within their limits unless changed. */
function worst(o: { inProcessMs?: number; incomplete?: string; servedP99?: number; status?: number; eventLoopMs?: number } = {}): WorstCaseFigures {
  return {
    pods: 50000,
    inProcess: [
      { label: 'a', medianMs: 12, verdict: {} },
      { label: 'b', medianMs: o.inProcessMs ?? 40, verdict: o.incomplete ? { incomplete: o.incomplete } : {} },
    ],
    served: [
      { label: 'a', p99Ms: 30, verdict: { httpStatus: 200 } },
      { label: 'b', p99Ms: o.servedP99 ?? 90, verdict: { httpStatus: o.status ?? 200 } },
    ],
    eventLoop: { startup: { maxMs: 40 }, servingMix: { maxMs: 20 }, servingWorst: { maxMs: o.eventLoopMs ?? 45 } },
  };
}

const byTarget = (checks: TargetCheck[], prefix: string): TargetCheck => {
  const c = checks.find((x) => x.target.startsWith(prefix));
  if (!c) throw new Error(`no target ${prefix}`);
  return c;
};

t.test('a run that meets every target says so', async (t) => {
  const checks = checkTargets(run());
  t.same(checks.map((c) => c.verdict), ['met', 'met', 'met', 'met', 'met', 'met', 'met', 'met']);
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
  t.same(checks.map((c) => c.verdict), ['not measured', 'met', 'not measured', 'met', 'not measured', 'met', 'met', 'met']);
});

t.test('the RSS check serves the live path too', async (t) => {
  const live = checkRss([{ pods: 10000, serverRssPeak: 200 * 2 ** 20 }, { pods: 50000, serverRssPeak: 257 * 2 ** 20 }], 'live path');
  t.same(live, { target: '< 300 MB RSS at 50k pods (live path, peak)', measured: '257 MB', verdict: 'met' });
  t.equal(checkRss([{ pods: 10000, serverRssPeak: 400 * 2 ** 20 }], 'live path').verdict, 'not measured', 'the limit is for 50k pods');
});

t.test('ready from a live apiserver: the 50k-pod start, within 10 s', async (t) => {
  const at = (ms: number) => [{ pods: 10000, startupMs: 30_000 }, { pods: 50000, startupMs: ms }];
  t.same(checkReadyFromLive(at(7_100)), { target: 'ready from a live apiserver <= 10 s at 50k pods (serve --kubeconfig, start to ready)', measured: '7.1 s', verdict: 'met' }, 'the 10k start is not the one judged');
  t.equal(checkReadyFromLive(at(10_000)).verdict, 'met', 'the limit itself is met');
  t.equal(checkReadyFromLive(at(10_001)).verdict, 'missed');
  t.equal(checkReadyFromLive([...at(7_000), { pods: 50000, startupMs: 12_500 }]).verdict, 'missed', 'every 50k start counts');
  t.equal(checkReadyFromLive([{ pods: 10000, startupMs: 5_000 }]).verdict, 'not measured', 'no 50k cluster');
  t.equal(checkReadyFromLive(at(Number.NaN)).verdict, 'not measured');
});

t.test('figures that cannot be judged give no verdict rather than a wrong one', async (t) => {
  // A baseline that answered nothing: no ratio to judge, not "Infinity%, met".
  const noBaseline = run();
  for (const s of Object.values(noBaseline.baseline)) s.max = phase(3, 0);
  const tp = byTarget(checkTargets(noBaseline), 'max throughput');
  t.equal(tp.verdict, 'not measured');
  t.match(tp.note, /not judged.*all new, each twice, repeated/);
  // A phase with errors is left out of its target, and named.
  const withErrors = run({ p99: { new: 1, twice: 1, cycle: 1 } });
  withErrors.sizes[1]!.traffic = { ...withErrors.sizes[1]!.traffic, new: { rate: phase(0.5, 500, 12), max: phase(9, 12_000) } };
  const p99 = byTarget(checkTargets(withErrors), 'p99');
  t.equal(p99.verdict, 'met', 'the clean shapes met');
  t.same(p99.metFor, ['each twice', 'repeated']);
  t.match(p99.note, /not judged \(errors or no figure\): all new/);
  t.notMatch(p99.measured, /all new/);
  // No RSS reading (no /proc) and an empty scale curve.
  const rss = checkRss([{ pods: 50000, serverRssPeak: Number.NaN }]);
  t.equal(rss.verdict, 'not measured');
  const noCurve = run();
  noCurve.scaleCurve = [{ pods: 1000 }, { pods: 50000 }];
  t.equal(byTarget(checkTargets(noCurve), 'evaluation').verdict, 'not measured');
});

t.test('figures under a limit are shown rounded down, never as the limit', async (t) => {
  const c = checkRss([{ pods: 50000, serverRssPeak: 299.6 * 2 ** 20 }]);
  t.same([c.measured, c.verdict], ['299 MB', 'met']);
  t.equal(byTarget(checkTargets(run({ heap: 2047.6 })), '< 2 KB').measured, '2047 B');
});

t.test('ratios read rounded down, in the target check and in bench/run.ts\'s results table', async (t) => {
  t.equal(floorPercent(0.4999), '49%', 'just under half never reads 50%');
  t.equal(floorPercent(0.6699), '66%');
  t.equal(floorPercent(1), '100%');
  t.equal(floorPercent(Number.NaN), '-', 'a ratio that cannot be judged');
  t.equal(floorPercent(Number.POSITIVE_INFINITY), '-');
});

t.test('worst-case requests: over the limit, or fast without a complete verdict, is missed', async (t) => {
  const withWorst = (w: WorstCaseFigures): RunFigures => ({ ...run(), worstCase: w });
  t.equal(byTarget(checkTargets(withWorst(worst({ inProcessMs: 50 }))), 'worst-case requests <= 50 ms').verdict, 'met', 'exactly 50 ms is within');
  const slow = byTarget(checkTargets(withWorst(worst({ inProcessMs: 642.9 }))), 'worst-case requests <= 50 ms');
  t.equal(slow.verdict, 'missed');
  t.match(slow.measured, /642\.90 ms.*1 of 2/);
  const empty = byTarget(checkTargets(withWorst(worst({ inProcessMs: 1, incomplete: 'budget: dns-egress-missing' }))), 'worst-case requests <= 50 ms');
  t.equal(empty.verdict, 'missed', 'fast because it judged nothing is not met');
  t.match(empty.note, /judged nothing or not all.*\bb\b/);
  t.equal(byTarget(checkTargets(withWorst(worst({ servedP99: 100.5 }))), 'worst-case requests <= 100 ms p99').verdict, 'missed');
  t.equal(byTarget(checkTargets(withWorst(worst({ servedP99: 5, status: 500 }))), 'worst-case requests <= 100 ms p99').verdict, 'missed', 'an error answer is not a met target');
  const none: RunFigures = { ...run() };
  delete none.worstCase;
  t.equal(byTarget(checkTargets(none), 'worst-case requests <= 50 ms').verdict, 'not measured');
});

t.test('event loop: any period of any serving process over 50 ms is missed', async (t) => {
  t.equal(byTarget(checkTargets({ ...run(), worstCase: worst({ eventLoopMs: 825 }) }), 'event loop').verdict, 'missed', 'while serving the worst cases');
  t.equal(byTarget(checkTargets(run({ eventLoopMs: 61 })), 'event loop').verdict, 'missed', 'while serving a size');
  t.equal(byTarget(checkTargets({ ...run(), worstCase: worst({ eventLoopMs: Number.NaN }) }), 'event loop').verdict, 'not measured', 'a probe that did not answer');
  t.match(byTarget(checkTargets(run()), 'event loop').measured, /50000 pods: start-up 40 ms, serving 45 ms/);
});

t.test('event loop: start-up counts from the moment the process listens; the blocks before are reported, not counted', async (t) => {
  const split = (after: number, before = 400): RunFigures => ({ ...run(), worstCase: { ...worst(), eventLoop: { ...worst().eventLoop, startup: { maxMs: Math.max(before, after), beforeListenMaxMs: before, afterListenMaxMs: after } } } });
  const met = byTarget(checkTargets(split(45)), 'event loop');
  t.equal(met.verdict, 'met', 'module loading before listen is not counted');
  t.match(met.measured, /start-up 45 ms \(before listening, not counted: 400 ms\)/);
  t.equal(byTarget(checkTargets(split(51)), 'event loop').verdict, 'missed', 'a block after listening is');
  t.equal(byTarget(checkTargets(split(51, 10)), 'event loop').verdict, 'missed', 'whatever came before');
  // A probe without the split: the whole start-up counts.
  t.equal(byTarget(checkTargets({ ...run(), worstCase: { ...worst(), eventLoop: { ...worst().eventLoop, startup: { maxMs: 400 } } } }), 'event loop').verdict, 'missed');
});

t.test("RSS: the worst-case step's serving process counts too", async (t) => {
  const rss = (worstMb?: number): string => byTarget(checkTargets({ ...run(), worstCase: { ...worst(), ...(worstMb !== undefined ? { serverRssPeak: worstMb * 2 ** 20 } : {}) } }), '< 300 MB RSS').verdict;
  t.equal(rss(), 'met', 'the load phases alone: 280 MB');
  t.equal(rss(299), 'met');
  t.equal(rss(331), 'missed', 'the worst-case process over the limit');
  t.equal(byTarget(checkTargets({ ...run({ rss: 301 }), worstCase: { ...worst(), serverRssPeak: 100 * 2 ** 20 } }), '< 300 MB RSS').verdict, 'missed', 'the highest peak decides');
});

/** bench/live-churn.ts figures: 50k pods, 500 events/s given and applied, three pairs. */
function churn(o: Partial<ChurnFigures> = {}): ChurnFigures {
  return {
    pods: 50000, changesPerSecond: 499.9, changesAcked: 30000, changesApplied: 30000, lagMs: { p99: 113 },
    pairs: [{ quietP99: 8, churnP99: 12, errors: 0 }, { quietP99: 6, churnP99: 30, errors: 0 }, { quietP99: 10, churnP99: 15, errors: 0 }],
    ...o,
  };
}

t.test('live path under churn: the lag at 500 events/s, judged only at that rate and when every change was applied', async (t) => {
  t.same(checkChurnLag(churn()), { target: 'state lag p99 <= 1 s under 500 pod events/s at 50k pods (live path)', measured: '113 ms at 499 events/s', verdict: 'met' });
  t.equal(checkChurnLag(churn({ lagMs: { p99: 1000 } })).verdict, 'met', 'the limit itself is met');
  t.equal(checkChurnLag(churn({ lagMs: { p99: 1000.5 } })).verdict, 'missed');
  const behind = checkChurnLag(churn({ changesApplied: 29999 }));
  t.same([behind.verdict, behind.measured], ['missed', '29999 of 30000 changes applied by the end'], 'a change never applied is not a small lag');
  // The real apiserver on this machine takes ~150 writes/s: such a run cannot show the target met.
  const slow = checkChurnLag(churn({ changesPerSecond: 150, lagMs: { p99: 300 } }));
  t.same([slow.verdict, slow.measured], ['not measured', '150 events/s reached, not 500']);
  t.equal(checkChurnLag(churn({ changesPerSecond: 475 })).verdict, 'met', '95% of the rate is the rate (the schedule slips)');
  t.equal(checkChurnLag(churn({ changesPerSecond: 474.9 })).verdict, 'not measured');
  t.equal(checkChurnLag(churn({ pods: 5000 })).verdict, 'not measured', 'another size');
  t.equal(checkChurnLag(undefined).verdict, 'not measured');
  t.equal(checkChurnLag(churn({ lagMs: { p99: Number.NaN } })).verdict, 'not measured');
});

t.test('live path under churn: admission p99 within 2x, the median of the pairs\' ratios', async (t) => {
  // Ratios 1.5, 5 and 1.5: the median 1.5 (the 30 ms pair alone would be 5x).
  t.same(checkChurnAdmission(churn()), {
    target: 'admission p99 under 500 pod events/s <= 2x without, 50k pods (live path, median over pairs)',
    measured: '1.50x over 3 pairs (p99 medians: 15.00 ms with churn, 8.00 ms without)', verdict: 'met',
  });
  const exactly = churn({ pairs: [{ quietP99: 5, churnP99: 10, errors: 0 }] });
  t.equal(checkChurnAdmission(exactly).verdict, 'met', 'twice the figure is within 2x');
  const over = checkChurnAdmission(churn({ pairs: [{ quietP99: 5, churnP99: 10.01, errors: 0 }] }));
  t.same([over.verdict, over.measured.slice(0, 5)], ['missed', '2.01x'], 'just over the limit, shown rounded up');
  // Pairs are kept together: the medians of each side (10 against 5) would read 2x, but three pairs of
  // four are over 2x (ratios 2.25, 1.83, 12.5, 3.5: median 2.875).
  const four = checkChurnAdmission(churn({ pairs: [{ quietP99: 4, churnP99: 9, errors: 0 }, { quietP99: 6, churnP99: 11, errors: 0 }, { quietP99: 8, churnP99: 100, errors: 0 }, { quietP99: 2, churnP99: 7, errors: 0 }] }));
  t.same([four.verdict, four.measured], ['missed', '2.88x over 4 pairs (p99 medians: 10.00 ms with churn, 5.00 ms without)']);
  // A churn phase faster than its quiet one is a ratio under 1, not an error.
  t.equal(checkChurnAdmission(churn({ pairs: [{ quietP99: 40, churnP99: 9, errors: 0 }] })).verdict, 'met');
  // A pair with errors is left out and named; with none left, no verdict.
  const withErrors = checkChurnAdmission(churn({ pairs: [{ quietP99: 8, churnP99: 9, errors: 0 }, { quietP99: 1, churnP99: 500, errors: 3 }] }));
  t.same([withErrors.verdict, withErrors.note], ['met', '1 pair left out (errors or no figure)']);
  t.equal(checkChurnAdmission(churn({ pairs: [{ quietP99: 1, churnP99: 2, errors: 1 }] })).verdict, 'not measured');
  t.equal(checkChurnAdmission(churn({ pairs: [] })).verdict, 'not measured');
  t.equal(checkChurnAdmission(churn({ changesPerSecond: 136 })).verdict, 'not measured', 'judged at the target rate only');
  t.equal(checkChurnAdmission(churn({ pairs: [{ quietP99: 0, churnP99: 2, errors: 0 }] })).verdict, 'not measured', 'no ratio to a zero p99');
  t.equal(checkChurnAdmission(churn({ pairs: [{ quietP99: Number.NaN, churnP99: 2, errors: 0 }, { quietP99: 4, churnP99: 5, errors: 0 }] })).note, '1 pair left out (errors or no figure)');
});
