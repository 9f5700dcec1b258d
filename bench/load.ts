// Load generator for the benchmark, run as its own process (like kube-apiserver is): HTTPS, HTTP/1.1
// keep-alive, microsecond latencies. Two modes:
//   rate: open loop at a fixed request rate; latency counts from the *scheduled* send time, so a
//         stalled server is not hidden by the generator waiting (no coordinated omission).
//   max:  closed loop with C connections, as fast as the server answers: the throughput ceiling.
// Usage: node bench/load.ts --url U --ca FILE --bodies FILE.json --mode rate|max [--rate R] [--connections C] [--seconds S]
// Prints one JSON object on stdout.

import { readFileSync } from 'node:fs';
import https from 'node:https';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    ca: { type: 'string' },
    bodies: { type: 'string' },
    mode: { type: 'string', default: 'max' },
    rate: { type: 'string', default: '500' },
    connections: { type: 'string', default: '8' },
    seconds: { type: 'string', default: '5' },
  },
});

const url = new URL(values.url!);
const bodies = (JSON.parse(readFileSync(values.bodies!, 'utf8')) as string[]).map((b) => Buffer.from(b));
const connections = Number(values.connections);
const seconds = Number(values.seconds);
const agent = new https.Agent({ keepAlive: true, maxSockets: connections, ca: readFileSync(values.ca!) });

let errors = 0;
const statuses = new Map<number, number>();

function send(body: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const req = https.request(
      { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': body.length } },
      (res) => {
        statuses.set(res.statusCode ?? 0, (statuses.get(res.statusCode ?? 0) ?? 0) + 1);
        if (res.statusCode !== 200) errors++;
        res.resume();
        res.on('end', resolve);
        res.on('error', () => { errors++; resolve(); });
      },
    );
    req.on('error', () => { errors++; resolve(); });
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.end(body);
  });
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const idx = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, idx)]!;
}

async function warmup(): Promise<void> {
  const n = Math.min(200, bodies.length * 2);
  for (let i = 0; i < n; i++) await send(bodies[i % bodies.length]!);
}

async function runMax(): Promise<number[]> {
  const lat: number[] = [];
  const end = performance.now() + seconds * 1000;
  let next = 0;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < end) {
        const body = bodies[next++ % bodies.length]!;
        const t0 = performance.now();
        await send(body);
        lat.push(performance.now() - t0);
      }
    }),
  );
  return lat;
}

async function runRate(rate: number): Promise<number[]> {
  const total = Math.round(rate * seconds);
  const lat: number[] = new Array(total);
  const start = performance.now();
  const pending: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const scheduled = start + (i * 1000) / rate;
    const wait = scheduled - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const body = bodies[i % bodies.length]!;
    pending.push(send(body).then(() => { lat[i] = performance.now() - scheduled; }));
  }
  await Promise.all(pending);
  return lat;
}

await warmup();
errors = 0;
statuses.clear();
const t0 = performance.now();
const lat = values.mode === 'rate' ? await runRate(Number(values.rate)) : await runMax();
const elapsed = (performance.now() - t0) / 1000;
const sorted = Float64Array.from(lat).sort();
agent.destroy();
process.stdout.write(
  JSON.stringify({
    mode: values.mode,
    requests: lat.length,
    errors,
    statuses: Object.fromEntries(statuses),
    seconds: elapsed,
    rps: lat.length / elapsed,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    p999: percentile(sorted, 99.9),
    max: sorted[sorted.length - 1] ?? NaN,
  }) + '\n',
);
