// `meshguard serve` raises the nice value of V8's worker threads (src/server/worker-priority.ts). The
// choices are checked with the system calls replaced; the effect is checked on Linux in a child process,
// by reading each thread's nice value back from /proc (field 19 of /proc/<pid>/task/<tid>/stat).

import { spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import t from 'tap';

import { DEFAULT_V8_WORKER_NICE, lowerV8WorkerPriority, thenUnlessStopping, type PriorityCalls } from '../../src/server/worker-priority.ts';
import { threadNice } from '../helpers/thread-nice.ts';

interface FakeThread {
  name: string;
  nice: number;
  /** Ends before its name is read (ENOENT), or before its value is set (ESRCH). */
  ends?: 'name' | 'set';
  /** set() refuses with this errno. */
  refuses?: string;
}

function systemError(code: string): Error {
  return Object.assign(new Error(`A system error occurred: uv_os_setpriority returned ${code}`), { code: 'ERR_SYSTEM_ERROR', info: { code } });
}

/** Calls over a fake thread table; thread 100 is the calling (main) thread. */
function fake(threads: Record<string, FakeThread>): { calls: PriorityCalls; sets: [number, number][] } {
  const sets: [number, number][] = [];
  const calls: PriorityCalls = {
    pid: 100,
    threads: () => Object.keys(threads),
    threadName: (tid) => {
      const th = threads[tid]!;
      if (th.ends === 'name') throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
      return th.name;
    },
    get: (tid) => threads[String(tid === 0 ? 100 : tid)]!.nice,
    set: (tid, nice) => {
      const th = threads[String(tid)]!;
      if (th.ends === 'set') throw systemError('ESRCH');
      if (th.refuses) throw systemError(th.refuses);
      sets.push([tid, nice]);
      th.nice = nice;
    },
  };
  return { calls, sets };
}

const node24 = (): Record<string, FakeThread> => ({
  '100': { name: 'MainThread', nice: 0 },
  '101': { name: 'DelayedTaskSche', nice: 0 },
  '102': { name: 'V8Worker', nice: 0 },
  '103': { name: 'V8Worker', nice: 0 },
  '104': { name: 'V8Worker', nice: 0 },
  '105': { name: 'SignalInspector', nice: 0 },
  '106': { name: 'libuv-worker', nice: 0 },
});

t.test("only V8's workers get the main thread's value plus the increment", async (t) => {
  const threads = node24();
  const { calls, sets } = fake(threads);
  t.same(lowerV8WorkerPriority(5, 'linux', calls), { nice: 5, threads: 3, changed: 3 });
  t.same(sets, [[102, 5], [103, 5], [104, 5]]);
  t.equal(threads['100']!.nice, 0, 'the main thread keeps its value');
  t.equal(threads['106']!.nice, 0, "libuv's pool keeps its value");
  t.equal(DEFAULT_V8_WORKER_NICE, 5, 'the documented default (docs/cli.md, ADR 0012)');
});

t.test("relative to the main thread's value, capped at 19, and never lowered", async (t) => {
  const threads = node24();
  threads['100']!.nice = 10;
  threads['103']!.nice = 17; // already lower in priority than 15: left alone
  const { calls, sets } = fake(threads);
  t.same(lowerV8WorkerPriority(5, 'linux', calls), { nice: 15, threads: 3, changed: 2 });
  t.same(sets, [[102, 15], [104, 15]]);
  t.equal(threads['103']!.nice, 17);

  const capped = node24();
  capped['100']!.nice = 16;
  capped['102']!.nice = 19;
  const c = fake(capped);
  t.same(lowerV8WorkerPriority(5, 'linux', c.calls), { nice: 19, threads: 3, changed: 2 }, 'at most 19');
  t.same(c.sets, [[103, 19], [104, 19]]);

  const same = node24();
  same['102']!.nice = 5; // exactly at the target: nothing to do
  const s = fake(same);
  t.same(lowerV8WorkerPriority(5, 'linux', s.calls), { nice: 5, threads: 3, changed: 2 });
  t.same(s.sets, [[103, 5], [104, 5]]);
});

t.test('0 leaves every thread alone; other systems are reported, not touched', async (t) => {
  const { calls, sets } = fake(node24());
  t.equal(lowerV8WorkerPriority(0, 'linux', calls), 'off');
  t.equal(lowerV8WorkerPriority(5, 'darwin', calls), 'unsupported');
  t.same(sets, []);
});

t.test('on Linux, whatever keeps it from taking is reported as an error, never thrown', async (t) => {
  const { calls, sets } = fake(node24());
  const enoent = () => {
    throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
  };
  t.same(lowerV8WorkerPriority(5, 'linux', { ...calls, threads: enoent }), { threads: 0, changed: 0, error: 'ENOENT' }, 'no /proc mounted');
  t.same(lowerV8WorkerPriority(5, 'linux', { ...calls, get: () => { throw systemError('EACCES'); } }), { threads: 0, changed: 0, error: 'EACCES' }, "the main thread's value unreadable");
  t.same(lowerV8WorkerPriority(5, 'linux', { ...calls, pid: 7 }), { threads: 0, changed: 0, error: '/proc shows another PID namespace' }, "our pid is not among /proc's thread ids");
  t.same(sets, [], 'nothing set in any of these');
  const renamed = node24();
  for (const tid of ['102', '103', '104']) renamed[tid]!.name = 'V8 Worker';
  t.same(lowerV8WorkerPriority(5, 'linux', fake(renamed).calls), { nice: 5, threads: 0, changed: 0, error: 'no V8Worker threads' }, 'a Node that names its workers otherwise');
});

t.test("serve's warm-up lowers the priority after it has settled, unless the server is stopping", async (t) => {
  const events: string[] = [];
  let release!: () => void;
  const warmUp = thenUnlessStopping(
    async () => {
      events.push('warm-up started');
      await new Promise<void>((r) => (release = r));
      events.push('warm-up done');
    },
    () => events.push('lowered'),
  );
  const running = warmUp(() => false);
  await new Promise((r) => setImmediate(r));
  t.same(events, ['warm-up started'], 'not while the warm-up runs');
  release();
  await running;
  t.same(events, ['warm-up started', 'warm-up done', 'lowered']);

  const failed: string[] = [];
  const throwing = thenUnlessStopping(async () => {
    throw new Error('boom');
  }, () => failed.push('lowered'));
  await t.rejects(throwing(() => false), /boom/, "the warm-up's error goes on");
  t.same(failed, ['lowered'], 'and the priority is lowered all the same');

  const stopped: string[] = [];
  await thenUnlessStopping(async () => undefined, () => stopped.push('lowered'))(() => true);
  t.same(stopped, [], 'a draining server is left alone');
});

t.test('a thread that ends meanwhile is skipped; a refusal is reported and the rest still changed', async (t) => {
  const threads = node24();
  threads['102']!.ends = 'name';
  threads['103']!.ends = 'set';
  const { calls, sets } = fake(threads);
  t.same(lowerV8WorkerPriority(5, 'linux', calls), { nice: 5, threads: 2, changed: 1 }, 'no error for threads that ended');
  t.same(sets, [[104, 5]]);

  const refused = node24();
  refused['102']!.refuses = 'EACCES';
  refused['104']!.refuses = 'EPERM';
  const r = fake(refused);
  t.same(lowerV8WorkerPriority(5, 'linux', r.calls), { nice: 5, threads: 3, changed: 1, error: 'EACCES' }, 'the first refusal is named');
  t.same(r.sets, [[103, 5]]);
});

t.test("on Linux, a real process's V8 workers run at the raised value and the rest keep theirs", { skip: process.platform !== 'linux' && 'Linux only' }, async (t) => {
  const url = (p: string) => JSON.stringify(pathToFileURL(new URL(p, import.meta.url).pathname).href);
  const script = `
    import { lowerV8WorkerPriority } from ${url('../../src/server/worker-priority.ts')};
    import { threadNice } from ${url('../helpers/thread-nice.ts')};
    const result = lowerV8WorkerPriority(Number(process.argv[1]));
    console.log(JSON.stringify({ result, threads: threadNice() }));
  `;
  const run = (increment: number) => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, String(increment)], { encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0) throw new Error(`probe failed (${r.status}): ${r.stderr}`);
    return JSON.parse(r.stdout) as { result: { nice: number; threads: number; changed: number } | string; threads: { name: string; nice: number }[] };
  };
  // The child starts at this process's main-thread value (inherited), whatever the machine runs tests at.
  const base = threadNice().find((th) => th.tid === process.pid)!.nice;
  const want = Math.min(19, base + 5);
  const raised = run(5);
  const workers = raised.threads.filter((th) => th.name === 'V8Worker');
  t.ok(workers.length >= 1, `${workers.length} V8Worker threads`);
  t.same(raised.result, { nice: want, threads: workers.length, changed: base < 19 ? workers.length : 0 });
  t.same(workers.map((w) => w.nice), workers.map(() => want), `every V8Worker at ${want}`);
  const others = raised.threads.filter((th) => th.name !== 'V8Worker');
  t.same(others.map((th) => th.nice), others.map(() => base), `${others.map((th) => th.name).join(', ')} keep ${base}`);

  const off = run(0);
  t.equal(off.result, 'off');
  t.same(off.threads.map((th) => th.nice), off.threads.map(() => base), 'with 0 nothing changes');
});
