// The load generator's send loops (bench/load-loops.ts) on a fake clock, with fake connections that
// answer after a set time: when each request goes out and what latency it gets follow from the clock
// alone. (test/bench/load.test.ts runs the generator for real, and checks what it counts.)

import t from 'tap';

import { runMax, runRate, slowEpisodes, type LoopClock, type Sender } from '../../bench/load-loops.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { turn } from '../helpers/until.ts';

function loopClock(clock: FakeClock): LoopClock {
  return { now: clock.now, sleep: (ms) => new Promise<void>((r) => clock.setTimeout(r, ms)) };
}

/**
 * Runs `work` to its end on the fake clock: lets every promise callback run, then moves the clock to the
 * next timer, and again. Nothing else moves it, so every run is the same.
 */
async function drive<T>(clock: FakeClock, work: Promise<T>): Promise<T> {
  let settled = false;
  work.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (;;) {
    await turn();
    if (settled) return work;
    const next = clock.pending()[0];
    if (next === undefined) throw new Error('the loop waits for something that never comes');
    clock.advance(next);
  }
}

/** A connection whose answers take `ms` on the clock; records when each request went on the wire. */
function connection(clock: FakeClock, ms: number, answer: (n: number) => boolean = () => true): Sender & { sent: number[] } {
  const sent: number[] = [];
  let busy = false;
  return {
    sent,
    async send() {
      if (busy) throw new Error('two requests in flight on one connection');
      busy = true;
      sent.push(clock.now());
      await new Promise<void>((r) => clock.setTimeout(r, ms));
      busy = false;
      return answer(sent.length);
    },
  };
}

const body = Buffer.from('{}');

t.test('rate mode hands each request over at its scheduled time', async (t) => {
  const clock = new FakeClock();
  const t0 = clock.now();
  const pool = [connection(clock, 2), connection(clock, 2), connection(clock, 2), connection(clock, 2)];
  const late: number[] = [];
  const fromSchedule: number[] = [];
  let made = 0;
  const lat = await drive(clock, runRate(pool, () => (made++, body), 200, 1, loopClock(clock), late, fromSchedule));
  t.equal(lat.length, 200, 'rate x seconds requests');
  t.equal(made, 200);
  const sent = pool.flatMap((c) => c.sent).map((at) => at - t0).sort((a, b) => a - b);
  t.same(sent, Array.from({ length: 200 }, (_, i) => i * 5), 'one every 5 ms, from the start: 200 per second');
  t.ok(late.every((x) => x === 0), 'none late');
  t.ok(lat.every((x) => x === 2) && fromSchedule.every((x) => x === 2), 'latency: the answer time');
  t.equal(clock.now() - t0, 995 + 2, 'the last one answered 2 ms after its time');
});

t.test('rate mode behind a slow server: requests queue for the connection, and the wait counts', async (t) => {
  const clock = new FakeClock();
  const t0 = clock.now();
  // One connection answering in 15 ms, requests every 5 ms: request i goes on the wire when request
  // i - 1 is answered, at 15 i ms, and is answered at 15 (i + 1); handed over at 5 i.
  const conn = connection(clock, 15);
  const late: number[] = [];
  const fromSchedule: number[] = [];
  const lat = await drive(clock, runRate([conn], () => body, 200, 0.05, loopClock(clock), late, fromSchedule));
  t.same(conn.sent.map((at) => at - t0), Array.from({ length: 10 }, (_, i) => 15 * i), 'one at a time on the connection');
  t.same(late, Array.from({ length: 10 }, () => 0), 'handed over on schedule all the same');
  t.same(lat, Array.from({ length: 10 }, (_, i) => 10 * i + 15), 'latency counts the wait for the connection');
  t.same(fromSchedule, lat);
});

t.test('max mode: each connection sends again as soon as answered, until the time is up, whatever the answers', async (t) => {
  const clock = new FakeClock();
  const t0 = clock.now();
  // Every other answer on the second connection is an error.
  const pool = [connection(clock, 10), connection(clock, 10, (n) => n % 2 === 1)];
  const lat = await drive(clock, runMax(pool, () => body, 0.1, loopClock(clock)));
  const every10 = Array.from({ length: 10 }, (_, i) => 10 * i);
  t.same(pool[0]!.sent.map((at) => at - t0), every10, 'back to back for 100 ms');
  t.same(pool[1]!.sent.map((at) => at - t0), every10, 'errors do not stop a connection');
  t.same(lat, Array.from({ length: 20 }, () => 10));
});

t.test('slowEpisodes groups the requests above a threshold by time', async (t) => {
  // 100 req/s: request i is scheduled at 10 i ms.
  const lat = new Array<number>(200).fill(1);
  for (const i of [10, 11, 12, 15]) lat[i] = 20; // one episode at 100 ms: 100-150 ms, gaps of 10-30 ms
  lat[30] = 9; // at the threshold: not slow
  for (const i of [60, 61]) lat[i] = 40; // another at 600 ms
  lat[66] = 12; // 50 ms after the last: a third (a gap of exactly gapMs splits)
  lat[199] = 15; // the last request: one of its own
  const r = slowEpisodes(lat, 100, 9, 50);
  t.equal(r.episodes, 4);
  t.same(r.top, [
    { atMs: 100, spanMs: 50, requests: 4, maxMs: 20 },
    { atMs: 600, spanMs: 10, requests: 2, maxMs: 40 },
    { atMs: 660, spanMs: 0, requests: 1, maxMs: 12 },
    { atMs: 1990, spanMs: 0, requests: 1, maxMs: 15 },
  ]);
  // The limit keeps the episodes with the most slow requests (ties: the earlier), in time order.
  t.same(slowEpisodes(lat, 100, 9, 50, 2).top.map((e) => e.atMs), [100, 600]);
  t.same(slowEpisodes(lat, 100, 9, 50, 3).top.map((e) => e.atMs), [100, 600, 660]);
  t.same(slowEpisodes([], 100, 9), { episodes: 0, top: [] });
});
