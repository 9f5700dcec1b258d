// The bench's thread sampler: parsing, the sums over a window, the episodes it reads, and (on Linux) that
// a thread's CPU time reaches its output in full. Nothing here depends on how fast this machine is: the
// live test burns a fixed amount of the child's own thread CPU time and waits for explicit events
// (the sampler's output showing the thread, the child saying it is done), never for a wall-clock window.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { NODE, ROOT } from '../../bench/harness.ts';
import { episodeThreads, parseSchedstat, parseWatch, readSamples, threadClass, threadDelta, windowSums, type ThreadSample } from '../../bench/thread-sampler.ts';
import { until } from '../helpers/until.ts';

t.test('watches are label=pid:N or label=cmd:TEXT', async (t) => {
  t.same(parseWatch('live=pid:1234'), { label: 'live', pid: 1234 });
  t.same(parseWatch('load=cmd:bench/load.ts --x'), { label: 'load', cmd: 'bench/load.ts --x' }, 'the text runs to the end, spaces included');
  for (const bad of ['live=pid:0', 'live=pid:-3', 'live=pid:1.5', 'live=pid:abc', 'live:pid:1', '=pid:1', 'Live=pid:1', 'live=tid:1', 'live=cmd:']) {
    t.throws(() => parseWatch(bad), `refused: ${bad}`);
  }
});

t.test('thread classes and schedstat lines', async (t) => {
  t.equal(threadClass('node', true), 'main');
  t.equal(threadClass('V8Worker', true), 'main', 'the main thread is main whatever its name');
  t.equal(threadClass('V8Worker', false), 'v8');
  t.equal(threadClass('libuv-worker', false), 'libuv');
  t.equal(threadClass('DelayedTaskSche', false), 'other');
  t.same(parseSchedstat('226461500 23512002 971\n'), { runNs: 226461500, waitNs: 23512002 });
  t.equal(parseSchedstat(''), undefined);
  t.equal(parseSchedstat('12'), undefined, 'a line without the wait field');
  t.equal(parseSchedstat('x y z'), undefined);
});

t.test("a thread's delta: none on first sight or when its counters go down (a reused tid)", async (t) => {
  t.equal(threadDelta(undefined, { runNs: 5e6, waitNs: 1e6 }), undefined);
  t.same(threadDelta({ runNs: 1e6, waitNs: 1e6 }, { runNs: 3.5e6, waitNs: 1e6 }), [2500, 0]);
  t.same(threadDelta({ runNs: 1e6, waitNs: 1e6 }, { runNs: 1e6, waitNs: 1e6 }), [0, 0], 'an idle thread');
  t.equal(threadDelta({ runNs: 9e6, waitNs: 1e6 }, { runNs: 2e6, waitNs: 3e6 }), undefined, 'run time went down');
  t.equal(threadDelta({ runNs: 1e6, waitNs: 9e6 }, { runNs: 2e6, waitNs: 3e6 }), undefined, 'wait time went down');
});

const samples: ThreadSample[] = [
  { t: 1000, g: { 'live/main': [5000, 1000], 'live/v8': [0, 0] } },
  { t: 1020, g: { 'live/main': [8000, 12000], 'live/v8': [30000, 10000], 'load/main': [700, 300] } },
  { t: 1040, g: { 'live/main': [4000, 16000], 'live/v8': [36000, 4000] } },
  { t: 1060, g: { 'live/main': [20000, 0] } },
];
// A group that only waited (under 1 ms on a CPU, over 1 ms in the queue): kept in an episode.
samples[2] = { t: 1040, g: { ...samples[2]!.g, 'etcd/other': [300, 2000] } };

t.test('window sums: samples in (from, to], in ms', async (t) => {
  t.same(windowSums(samples, 1000, 1040), { 'live/main': { runMs: 12, waitMs: 28 }, 'live/v8': { runMs: 66, waitMs: 14 }, 'load/main': { runMs: 0.7, waitMs: 0.3 }, 'etcd/other': { runMs: 0.3, waitMs: 2 } }, 'the sample at `from` is left out, the one at `to` counted');
  t.same(windowSums(samples, 999, 1000), { 'live/main': { runMs: 5, waitMs: 1 }, 'live/v8': { runMs: 0, waitMs: 0 } });
  t.same(windowSums(samples, 1060, 2000), {}, 'nothing after the last sample');
});

t.test('episodes: 20 slow requests or more, read over their window', async (t) => {
  const eps = [
    { atMs: 10, spanMs: 5, requests: 19, maxMs: 3 },
    { atMs: 20, spanMs: 10, requests: 20, maxMs: 10 },
  ];
  // Started at 990: the second episode's window is [990 + 20 - 20, 990 + 20 + 10 + 10 + 20] = [990, 1050].
  const out = episodeThreads(samples, 990, eps, 20);
  t.equal(out.length, 1, 'the episode of 19 is left out');
  t.equal(out[0]!.requests, 20);
  t.equal(out[0]!.windowMs, 60);
  t.same(out[0]!.threads, { 'etcd/other': { runMs: 0.3, waitMs: 2 }, 'live/main': { runMs: 17, waitMs: 29 }, 'live/v8': { runMs: 66, waitMs: 14 } }, 'the samples at 1000-1040; groups under 1 ms of both left out');
  t.equal(out[0]!.maxGapMs, 0, 'no sample in the window says how far apart it was');
  const gaps = samples.map((s, i) => ({ ...s, dt: [5, 20, 35, 20][i] }));
  t.equal(episodeThreads(gaps, 990, eps, 20)[0]!.maxGapMs, 35, 'the longest gap in the window');
  t.equal(episodeThreads(gaps, 1010, eps, 20)[0]!.maxGapMs, 35, 'the window moved by 20 ms: still holds the 35 ms gap');
  t.equal(episodeThreads(samples, 990, eps, 20, 19).length, 2, 'the threshold is a parameter');
});

const linux = existsSync('/proc/self/task') && existsSync('/proc/self/schedstat');

t.test('a thread burning 300 ms of CPU shows 300 ms in the samples', { skip: linux ? false : 'needs Linux schedstat' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meshguard-sampler-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'threads.jsonl');
  // Waits for a line on stdin, then spins its main thread until it has used 300 ms of CPU, says so, and idles.
  const burner = spawn(NODE, ['-e', `process.stdin.once('data', () => { const s = process.threadCpuUsage(); for (;;) { const u = process.threadCpuUsage(s); if (u.user + u.system >= 300000) break; } process.stdout.write('done\\n'); setInterval(() => {}, 1000); });`], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.teardown(() => burner.kill('SIGKILL'));
  const sampler = spawn(NODE, [join(ROOT, 'bench/thread-sampler.ts'), '--out', out, '--interval', '10', `burn=pid:${burner.pid}`, 'nothing=cmd:no-such-process-anywhere-42'], { stdio: 'ignore' });
  t.teardown(() => sampler.kill('SIGKILL'));
  const read = (): ThreadSample[] => (existsSync(out) ? readSamples(out) : []);
  // The sampler has the thread's starting point once a sample carries its group.
  await until('the burner in a sample', () => read().some((s) => 'burn/main' in s.g));
  const started = Math.max(...read().map((s) => s.t));
  let done = 0;
  burner.stdout.once('data', () => (done = Date.now()));
  burner.stdin.write('go\n');
  await until('the burner to finish', () => done > 0);
  await until('a sample after it finished', () => read().some((s) => s.t > done));
  await new Promise<void>((r) => {
    sampler.once('exit', () => r());
    sampler.kill('SIGTERM');
  });
  const all = readSamples(out);
  const burn = windowSums(all, started, Infinity)['burn/main'];
  t.ok(burn !== undefined, 'the main thread is labelled by its watch');
  t.ok(burn!.runMs >= 300, `all 300 ms of the spin counted (${burn!.runMs} ms)`);
  t.ok(burn!.runMs < 400, `and not much besides (${burn!.runMs} ms)`);
  t.ok(all.every((s) => Object.keys(s.g).every((g) => g.startsWith('burn/'))), 'only the watched process');
  t.ok(all.every((s, i) => i === 0 || s.t >= all[i - 1]!.t), 'samples in time order');
  t.ok(readFileSync(out, 'utf8').endsWith('\n'), 'the last line written whole on SIGTERM');
  t.ok(typeof all.at(-1)!.samplerCpuMs === 'number' && all.at(-1)!.samplerCpuMs! >= 0, "and it gives the sampler's own CPU time");
});

t.test('a watched process that exits leaves the samples, and the sampler keeps going', { skip: linux ? false : 'needs Linux schedstat' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meshguard-sampler-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'threads.jsonl');
  const child = spawn(NODE, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  t.teardown(() => child.kill('SIGKILL'));
  const sampler = spawn(NODE, [join(ROOT, 'bench/thread-sampler.ts'), '--out', out, '--interval', '10', `gone=pid:${child.pid}`], { stdio: 'ignore' });
  t.teardown(() => sampler.kill('SIGKILL'));
  const read = (): ThreadSample[] => (existsSync(out) ? readSamples(out) : []);
  await until('the child in a sample', () => read().some((s) => 'gone/main' in s.g));
  await new Promise<void>((r) => {
    child.once('exit', () => r());
    child.kill('SIGKILL');
  });
  const exited = Date.now();
  // Two flushes later (the sampler writes its lines once a second).
  await until('samples after the exit', () => read().filter((s) => s.t > exited + 1000).length > 0);
  t.equal(sampler.exitCode, null, 'the sampler still runs');
  t.ok(read().filter((s) => s.t > exited + 50).every((s) => Object.keys(s.g).length === 0), 'nothing from the exited process once it is gone');
  await new Promise<void>((r) => {
    sampler.once('exit', () => r());
    sampler.kill('SIGTERM');
  });
});

t.test('a bad interval is refused with exit 2', async (t) => {
  const r = spawn(NODE, [join(ROOT, 'bench/thread-sampler.ts'), '--out', join(tmpdir(), 'never.jsonl'), '--interval', 'abc', 'x=pid:1'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  r.stderr.on('data', (d) => (err += d));
  const code = await new Promise<number | null>((res) => r.once('exit', (c) => res(c)));
  t.equal(code, 2);
  t.match(err, /--interval/);
});
