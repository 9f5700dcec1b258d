// The two send loops of bench/load.ts, apart from its sockets and its clock so that their timing can
// be tested on a fake clock (test/bench/load-loops.test.ts). bench/load.ts runs them on
// performance.now() and setTimeout.

/** The clock the loops run on. */
export interface LoopClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

/** A connection with at most one request in flight: send() resolves when its answer has arrived. */
export interface Sender {
  send(request: Buffer): Promise<unknown>;
}

/** max: each connection sends its next request as soon as the last is answered, until `seconds` are up. */
export async function runMax(pool: readonly Sender[], nextRequest: () => Buffer, seconds: number, clock: LoopClock): Promise<number[]> {
  const lat: number[] = [];
  const end = clock.now() + seconds * 1000;
  await Promise.all(
    pool.map(async (conn) => {
      while (clock.now() < end) {
        const request = nextRequest();
        const t0 = clock.now();
        await conn.send(request);
        lat.push(clock.now() - t0);
      }
    }),
  );
  return lat;
}

/**
 * rate: `rate * seconds` requests, each handed over at its scheduled time whatever the server is
 * doing, and sent on the first free connection. Returns each one's latency from the hand-over; fills
 * `late` (how late the hand-over was) and `fromSchedule` (the latency from the schedule).
 */
export async function runRate(
  pool: readonly Sender[],
  nextRequest: () => Buffer,
  rate: number,
  seconds: number,
  clock: LoopClock,
  late: number[],
  fromSchedule: number[],
): Promise<number[]> {
  const total = Math.round(rate * seconds);
  const lat: number[] = new Array(total);
  const idle = [...pool];
  const waiting: ((c: Sender) => void)[] = [];
  const acquire = (): Promise<Sender> => (idle.length > 0 ? Promise.resolve(idle.pop()!) : new Promise((r) => waiting.push(r)));
  const release = (c: Sender): void => {
    const w = waiting.shift();
    if (w) w(c);
    else idle.push(c);
  };
  const start = clock.now();
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const scheduled = start + (i * 1000) / rate;
    // A timer until the send time: never early, up to about a millisecond late (reported as late*).
    // Latency counts from the actual send, and no busy wait takes a core from the server.
    const wait = scheduled - clock.now();
    if (wait > 0) await clock.sleep(Math.ceil(wait));
    const wentOut = clock.now();
    late[i] = wentOut - scheduled;
    inFlight.push(
      acquire().then(async (conn) => {
        // Taken when a connection is free, not when scheduled: requests queued behind a busy server
        // must not share a body that is renumbered in place (see nextRequest).
        await conn.send(nextRequest());
        const done = clock.now();
        release(conn);
        lat[i] = done - wentOut;
        fromSchedule[i] = done - scheduled;
      }),
    );
  }
  await Promise.all(inFlight);
  return lat;
}

/** A run of slow requests close together in time (slowEpisodes). */
export interface SlowEpisode {
  /** When its first slow request was scheduled, ms from the phase's start. */
  readonly atMs: number;
  /** From its first slow request's schedule to its last one's, ms. */
  readonly spanMs: number;
  /** How many of its requests were slow. */
  readonly requests: number;
  readonly maxMs: number;
}

/**
 * The rate loop's slow requests (latency above `thresholdMs`; the phase's p99, say) grouped into
 * episodes: two slow requests scheduled less than `gapMs` apart are one episode. Tells a p99 set by a
 * few long stalls (a major collection, a descheduled process: a few episodes of many requests) from one
 * set by queueing spread over the phase (many episodes of one or two). `latency[i]` is request i's,
 * scheduled at i * 1000 / rate ms. The `limit` episodes with the most slow requests, in time order.
 */
export function slowEpisodes(latency: readonly number[], rate: number, thresholdMs: number, gapMs = 50, limit = 10): { episodes: number; top: SlowEpisode[] } {
  const all: SlowEpisode[] = [];
  let cur: { atMs: number; lastMs: number; requests: number; maxMs: number } | undefined;
  const close = (): void => {
    if (cur) all.push({ atMs: Math.round(cur.atMs), spanMs: Math.round(cur.lastMs - cur.atMs), requests: cur.requests, maxMs: Math.round(cur.maxMs * 10) / 10 });
    cur = undefined;
  };
  for (let i = 0; i < latency.length; i++) {
    const ms = latency[i]!;
    if (!(ms > thresholdMs)) continue;
    const at = (i * 1000) / rate;
    if (cur && at - cur.lastMs >= gapMs) close();
    if (!cur) cur = { atMs: at, lastMs: at, requests: 0, maxMs: 0 };
    cur.lastMs = at;
    cur.requests++;
    cur.maxMs = Math.max(cur.maxMs, ms);
  }
  close();
  const top = [...all].sort((a, b) => b.requests - a.requests || a.atMs - b.atMs).slice(0, limit).sort((a, b) => a.atMs - b.atMs);
  return { episodes: all.length, top };
}
