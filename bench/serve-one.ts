// One meshguard `serve` measurement outside the full suite, for profiling the server path:
// generates the synthetic state and request mix for one size, starts `bin/meshguard.js serve` (needs
// `npx tsc -p .` first), drives it with bench/load.ts (rate and/or max) and prints the results.
// With --cpu-prof DIR the server runs under `--cpu-prof` and writes its profile there on exit.
// Usage: node bench/serve-one.ts --pods 10000 [--seconds 5] [--modes rate,max] [--repeat cycle|twice|new] [--cpu-prof DIR] [--node-flags=--trace-gc] [--serve-flags=--log-level=warn]

import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { generateCluster } from './cluster-gen.ts';
import { freePort, measureLoad, NODE, ROOT, rssOf, startServer } from './harness.ts';
import { requestMix } from './requests.ts';

const { values } = parseArgs({
  options: {
    pods: { type: 'string', default: '10000' },
    seconds: { type: 'string', default: '5' },
    modes: { type: 'string', default: 'rate,max' },
    rate: { type: 'string', default: '500' },
    /** Traffic shape (bench/load.ts --repeat). */
    repeat: { type: 'string', default: 'cycle' },
    'cpu-prof': { type: 'string' },
    /** Extra Node.js flags for the server (e.g. --trace-gc); its stdout is then shown. */
    'node-flags': { type: 'string', default: '' },
    /** Extra `meshguard serve` flags (e.g. --log-level=warn). */
    'serve-flags': { type: 'string', default: '' },
    /** Write the server's stdout (its decision log) to this file. */
    'server-log': { type: 'string' },
    /** Measure bench/baseline-server.ts (the no-op ceiling) instead of meshguard. */
    baseline: { type: 'boolean', default: false },
  },
});
const pods = Number(values.pods);
const work = mkdtempSync(path.join(os.tmpdir(), 'meshguard-serve-one-'));
let server: ChildProcess | undefined;
process.on('exit', () => {
  server?.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

if (spawnSync(path.join(ROOT, 'scripts/dev-certs.sh'), [work], { stdio: 'ignore' }).status !== 0) throw new Error('dev-certs failed');
const ca = readFileSync(path.join(work, 'ca.crt'));
const stateFile = path.join(work, 'state.json');
writeFileSync(stateFile, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: generateCluster(pods) }));
const bodies = path.join(work, 'bodies.json');
writeFileSync(bodies, JSON.stringify(requestMix(pods, 400).map((r) => JSON.stringify(r.review))));
const port = await freePort();
const metricsPort = await freePort();
const prof = values['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(values['cpu-prof'])] : [];
const nodeFlags = values['node-flags'].split(' ').filter((f) => f !== '');
const target = values.baseline
  ? [path.join(ROOT, 'bench/baseline-server.ts')]
  : [path.join(ROOT, 'bin/meshguard.js'), 'serve', '--state', stateFile, '--host', '127.0.0.1', '--metrics-port', String(metricsPort), ...values['serve-flags'].split(' ').filter((f) => f !== '')];
/** The V8 heap's size and use (MB) from serve's /metrics: total, then each space as used/size. */
async function heapSpaces(onPort: number): Promise<string> {
  const text = await (await fetch(`http://127.0.0.1:${onPort}/metrics`)).text();
  const mb = (re: RegExp): Map<string, number> => new Map([...text.matchAll(re)].map((m) => [m[1]!, Number(m[2]) / 2 ** 20]));
  const size = mb(/^nodejs_heap_space_size_total_bytes\{space="(\w+)"\} (\S+)$/gm);
  const used = mb(/^nodejs_heap_space_size_used_bytes\{space="(\w+)"\} (\S+)$/gm);
  const total = mb(/^nodejs_heap_size_(total)_bytes (\S+)$/gm).get('total') ?? NaN;
  return `${total.toFixed(0)} (${[...size].filter(([, v]) => v >= 1).map(([k, v]) => `${k} ${(used.get(k) ?? 0).toFixed(0)}/${v.toFixed(0)}`).join(', ')})`;
}

const started = await startServer([...nodeFlags, ...prof, ...target,
  '--tls-cert', path.join(work, 'tls.crt'), '--tls-key', path.join(work, 'tls.key'), '--port', String(port)],
port, ca, ['ignore', values['server-log'] ? openSync(values['server-log'], 'w') : nodeFlags.length > 0 ? 'inherit' : 'ignore', 'inherit']);
server = started.child;
process.stdout.write(`ready after ${started.readyMs.toFixed(0)} ms, RSS ${(rssOf(server.pid) / 2 ** 20).toFixed(0)} MB\n`);
for (const mode of values.modes.split(',') as ('rate' | 'max')[]) {
  const r = await measureLoad(server.pid, {
    port, caFile: path.join(work, 'ca.crt'), bodiesFile: bodies, mode, rate: Number(values.rate), connections: 8, seconds: Number(values.seconds),
    repeat: values.repeat as 'cycle' | 'twice' | 'new', ...(values.baseline ? {} : { metricsPort }),
  });
  process.stdout.write(`${pods} pods ${mode}: ${JSON.stringify(r)}\n`);
  if (!values.baseline) process.stdout.write(`  after it: RSS ${(rssOf(server.pid) / 2 ** 20).toFixed(0)} MB (peak ${(rssOf(server.pid, 'VmHWM') / 2 ** 20).toFixed(0)}), V8 heap MB ${await heapSpaces(metricsPort)}\n`);
}
process.stdout.write(`RSS after load ${(rssOf(server.pid) / 2 ** 20).toFixed(0)} MB, peak ${(rssOf(server.pid, 'VmHWM') / 2 ** 20).toFixed(0)} MB\n`);
// SIGINT (SIGTERM for the baseline) lets the server drain and exit normally, so --cpu-prof writes its profile.
await new Promise<void>((resolve) => {
  server!.once('exit', () => resolve());
  server!.kill(values.baseline ? 'SIGTERM' : 'SIGINT');
  setTimeout(() => server!.kill('SIGKILL'), 15_000).unref();
});
