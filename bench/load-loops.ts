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
