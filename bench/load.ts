// Load generator for the benchmark, run as its own process (like kube-apiserver is): HTTPS with
// HTTP/1.1 keep-alive, one request in flight per connection (as Go's HTTP client does), microsecond
// timestamps. It writes pre-encoded requests to raw TLS sockets and reads only the status line and
// Content-Length of each answer, so the generator allocates little and its own garbage collection does
// not show up as server latency (Node's https client cost more than the no-op server it measured).
//
// Two modes:
//   rate: open loop at a fixed request rate. Requests are sent at their scheduled times whatever the
//         server is doing; when every connection is busy a request waits for one, and that wait counts
//         (no coordinated omission). Latency counts from the moment the generator hands the request
//         over (so the wait for a free connection counts); how late the generator's own timer fired
//         is reported apart (late*), with the latency counted strictly from the schedule (sched*).
//   max:  closed loop with C connections, as fast as the server answers: the throughput ceiling.
// And three traffic shapes (--repeat), since meshguard answers a request it has seen before on the same
// cluster state from its verdict cache:
//   cycle: the bodies in turn, again and again (re-syncs of unchanged manifests: repeats);
//   twice: every review sent twice in a row, then never again (`kubectl apply --dry-run=server` then
//          `kubectl apply`, or a GitOps diff then sync);
//   new:   no review ever sent twice: the label placeholder of bench/requests.ts gets a fresh number in
//          every request (a burst of new changes).
// Usage: node bench/load.ts --url U --ca FILE --bodies FILE.json --mode rate|max [--repeat cycle|twice|new [--seq-start N]] [--rate R] [--connections C] [--seconds S]
// Prints one JSON object on stdout.

import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { parseArgs } from 'node:util';

import { runMax, runRate, slowEpisodes, type LoopClock } from './load-loops.ts';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    ca: { type: 'string' },
    bodies: { type: 'string' },
    mode: { type: 'string', default: 'max' },
    rate: { type: 'string', default: '500' },
    connections: { type: 'string', default: '8' },
    seconds: { type: 'string', default: '5' },
    repeat: { type: 'string', default: 'cycle' },
    /** First sequence number (new / twice): phases against one server must not reuse each other's. */
    'seq-start': { type: 'string', default: '0' },
  },
});
const repeat = values.repeat!;
if (!['cycle', 'twice', 'new'].includes(repeat)) throw new Error(`--repeat: cycle, twice or new (got ${repeat})`);

const url = new URL(values.url!);
const ca = readFileSync(values.ca!);
const connections = Number(values.connections);
const seconds = Number(values.seconds);
const requests = (JSON.parse(readFileSync(values.bodies!, 'utf8')) as string[]).map((body) => {
  const b = Buffer.from(body);
  const head = `POST ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: ${b.length}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head), b]);
});
/** Where each body's sequence placeholder digits are (see SEQ_PLACEHOLDER in bench/requests.ts). */
const PLACEHOLDER = Buffer.from('"seq-00000000"');
const seqOffsets = requests.map((r) => {
  const at: number[] = [];
  for (let i = r.indexOf(PLACEHOLDER); i >= 0; i = r.indexOf(PLACEHOLDER, i + 1)) at.push(i + 5);
  return at;
});
if (repeat !== 'cycle' && seqOffsets.every((a) => a.length === 0)) throw new Error(`--repeat ${repeat}: the bodies carry no sequence placeholder`);
let sent = 0;
const seqStart = Number(values['seq-start']);
const inPlace = requests.length > 2 * connections;
/** The next request of the traffic shape (warm-up requests count, so measured ones are new too). */
function nextRequest(): Buffer {
  const n = sent++;
  if (repeat === 'cycle') return requests[n % requests.length]!;
  const k = repeat === 'twice' ? Math.floor(n / 2) : n;
  const i = k % requests.length;
  const seq = seqStart + k;
  // Renumbered in place, so that the generator does no more work than for the cycle shape: a body is
  // used again only `requests.length` sends later, long after its write, since it is taken only when a
  // connection is free and at most `connections` requests are in flight. With fewer bodies than that, a
  // copy (a buffer being written must not change).
  const out = inPlace ? requests[i]! : Buffer.from(requests[i]!);
  const digits = String(seq % 1e8).padStart(8, '0');
  for (const at of seqOffsets[i]!) out.write(digits, at, 'latin1');
  return out;
}

let errors = 0;
const statuses = new Map<number, number>();
/** Longest wait for one answer; a request that takes longer is an error and its connection is dropped. */
const REQUEST_TIMEOUT_MS = 10_000;

/** An answer this client cannot frame would turn into made-up numbers: stop the run instead. */
function protocolError(what: string): never {
  process.stderr.write(`load: ${what}; this generator only reads answers framed by Content-Length\n`);
  process.exit(3);
}
const HEADER_END = Buffer.from('\r\n\r\n');

/**
 * One keep-alive connection with at most one request in flight. When the server closes it (after an
 * error answer, say), the request in flight counts as an error and the next send reconnects, as an
 * HTTP client would.
 */
class Connection {
  #socket!: tls.TLSSocket;
  #open = false;
  #pending: Buffer | undefined;
  #done: ((ok: boolean) => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  ready!: Promise<void>;

  constructor() {
    this.#connect();
  }

  #connect(): void {
    const socket = tls.connect({ host: url.hostname, port: Number(url.port), ca, servername: url.hostname === '127.0.0.1' ? undefined : url.hostname });
    this.#socket = socket;
    this.#pending = undefined;
    socket.setNoDelay(true);
    this.ready = new Promise((resolve, reject) => {
      socket.once('secureConnect', () => {
        this.#open = true;
        resolve();
      });
      socket.once('error', reject);
    });
    this.ready.catch(() => undefined);
    // Events of a socket this connection has already replaced must not touch the current request.
    socket.on('data', (chunk: Buffer) => socket === this.#socket && this.#onData(chunk));
    socket.on('error', () => socket === this.#socket && this.#finish(false));
    socket.on('close', () => {
      if (socket !== this.#socket) return;
      this.#open = false;
      this.#finish(false);
    });
  }

  /** Sends one request; resolves when its whole answer has arrived (false on an error). */
  async send(request: Buffer): Promise<boolean> {
    if (!this.#open && this.#socket.destroyed) this.#connect();
    try {
      await this.ready;
    } catch {
      errors++;
      this.#socket.destroy();
      return false;
    }
    return new Promise((resolve) => {
      this.#done = resolve;
      this.#pending = undefined;
      this.#timer = setTimeout(() => {
        this.#open = false;
        this.#socket.destroy();
        this.#finish(false);
      }, REQUEST_TIMEOUT_MS);
      this.#socket.write(request);
    });
  }

  #onData(chunk: Buffer): void {
    if (this.#done === undefined) protocolError('the server sent data with no request in flight');
    const buf = this.#pending ? Buffer.concat([this.#pending, chunk]) : chunk;
    const end = buf.indexOf(HEADER_END);
    if (end < 0) {
      this.#pending = buf;
      return;
    }
    const head = buf.toString('latin1', 0, end);
    if (/\r\ntransfer-encoding:/i.test(head)) protocolError('an answer with Transfer-Encoding');
    const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (!m) protocolError('an answer without Content-Length');
    const total = end + 4 + Number(m[1]);
    if (buf.length > total) protocolError('more data than one answer (the server answered twice?)');
    if (buf.length < total) {
      this.#pending = buf;
      return;
    }
    this.#pending = undefined;
    const status = Number(head.slice(9, 12));
    statuses.set(status, (statuses.get(status) ?? 0) + 1);
    // The server will close this connection: do not send on it again (the next send reconnects).
    if (/\r\nconnection:\s*close/i.test(head)) {
      this.#open = false;
      this.#socket.destroy();
    }
    this.#finish(status === 200);
  }

  #finish(ok: boolean): void {
    clearTimeout(this.#timer);
    const done = this.#done;
    this.#done = undefined;
    if (done === undefined) return;
    if (!ok) errors++;
    done(ok);
  }

  close(): void {
    this.#socket.destroy();
  }
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const idx = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, idx)]!;
}

const pool = Array.from({ length: connections }, () => new Connection());
await Promise.all(pool.map((c) => c.ready));

const WARMUP_REQUESTS = Math.min(200, requests.length * 2);
for (let i = 0; i < WARMUP_REQUESTS; i++) await pool[i % connections]!.send(nextRequest());
errors = 0;
statuses.clear();

/** How late each rate-mode request left after its scheduled time, and its latency from the schedule. */
const late: number[] = [];
const fromSchedule: number[] = [];
const clock: LoopClock = { now: () => performance.now(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)) };

const t0 = performance.now();
// The wall-clock start, to line the phase's slow episodes up with samplers outside this process.
const startedAtMs = Date.now();
const lat =
  values.mode === 'rate'
    ? await runRate(pool, nextRequest, Number(values.rate), seconds, clock, late, fromSchedule)
    : await runMax(pool, nextRequest, seconds, clock);
const elapsed = (performance.now() - t0) / 1000;
const endedAtMs = Date.now();
for (const c of pool) c.close();
const sorted = Float64Array.from(lat).sort();
const lateSorted = Float64Array.from(late).sort();
const schedSorted = Float64Array.from(fromSchedule).sort();
process.stdout.write(
  JSON.stringify({
    mode: values.mode,
    repeat,
    requests: lat.length,
    errors,
    statuses: Object.fromEntries(statuses),
    seconds: elapsed,
    rps: lat.length / elapsed,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    p999: percentile(sorted, 99.9),
    max: sorted[sorted.length - 1] ?? NaN,
    warmupRequests: WARMUP_REQUESTS,
    startedAtMs,
    endedAtMs,
    ...(values.mode === 'rate'
      ? {
          lateP50: percentile(lateSorted, 50), lateP99: percentile(lateSorted, 99), schedP99: percentile(schedSorted, 99), schedP999: percentile(schedSorted, 99.9),
          // Where the requests above the p99 were: a few long stalls or spread over the phase.
          slowEpisodes: slowEpisodes(lat, Number(values.rate), percentile(sorted, 99)),
        }
      : {}),
  }) + '\n',
);
