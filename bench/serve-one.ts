// One meshguard `serve` measurement outside the full suite, for profiling the server path:
// generates the synthetic state and request mix for one size, starts `bin/meshguard.js serve` (needs
// `npx tsc -p .` first), drives it with bench/load.ts (rate and/or max) and prints the results.
// With --cpu-prof DIR the server runs under `--cpu-prof` and writes its profile there on exit.
// Usage: node bench/serve-one.ts --pods 10000 [--seconds 5] [--modes rate,max] [--cpu-prof DIR] [--node-flags=--trace-gc]

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { generateCluster } from './cluster-gen.ts';
import { requestMix } from './requests.ts';

const { values } = parseArgs({
  options: {
    pods: { type: 'string', default: '10000' },
    seconds: { type: 'string', default: '5' },
    modes: { type: 'string', default: 'rate,max' },
    rate: { type: 'string', default: '500' },
    'cpu-prof': { type: 'string' },
    /** Extra Node.js flags for the server (e.g. --trace-gc); its stdout is then shown. */
    'node-flags': { type: 'string', default: '' },
    /** Measure bench/baseline-server.ts (the no-op ceiling) instead of meshguard. */
    baseline: { type: 'boolean', default: false },
  },
});
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const NODE = process.execPath;
const pods = Number(values.pods);
const work = mkdtempSync(path.join(os.tmpdir(), 'meshguard-serve-one-'));
let server: ChildProcess | undefined;
process.on('exit', () => {
  server?.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

function readyz(port: number, ca: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const req = https.get({ host: '127.0.0.1', port, path: '/readyz', ca, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => { req.destroy(); resolve(false); });
  });
}

if (spawnSync(path.join(ROOT, 'scripts/dev-certs.sh'), [work], { stdio: 'ignore' }).status !== 0) throw new Error('dev-certs failed');
const ca = readFileSync(path.join(work, 'ca.crt'));
const stateFile = path.join(work, 'state.json');
writeFileSync(stateFile, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: generateCluster(pods) }));
const bodies = path.join(work, 'bodies.json');
writeFileSync(bodies, JSON.stringify(requestMix(pods, 400).map((r) => JSON.stringify(r.review))));
const port = await freePort();
const prof = values['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(values['cpu-prof'])] : [];
const nodeFlags = values['node-flags'].split(' ').filter((f) => f !== '');
const target = values.baseline ? [path.join(ROOT, 'bench/baseline-server.ts')] : [path.join(ROOT, 'bin/meshguard.js'), 'serve', '--state', stateFile, '--host', '127.0.0.1'];
server = spawn(NODE, [...nodeFlags, ...prof, ...target,
  '--tls-cert', path.join(work, 'tls.crt'), '--tls-key', path.join(work, 'tls.key'), '--port', String(port)],
{ cwd: ROOT, stdio: ['ignore', nodeFlags.length > 0 ? 'inherit' : 'ignore', 'inherit'] });
const deadline = performance.now() + 180_000;
while (!(await readyz(port, ca))) {
  if (server.exitCode !== null || performance.now() > deadline) throw new Error('server did not become ready');
  await new Promise((r) => setTimeout(r, 50));
}
for (const mode of values.modes.split(',')) {
  const r = spawnSync(NODE, [path.join(ROOT, 'bench/load.ts'), '--url', `https://127.0.0.1:${port}/validate`, '--ca', path.join(work, 'ca.crt'),
    '--bodies', bodies, '--mode', mode, '--rate', values.rate, '--connections', '8', '--seconds', values.seconds], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`load failed: ${r.stderr}`);
  process.stdout.write(`${pods} pods ${mode}: ${r.stdout.trim().split('\n').pop()}\n`);
}
// SIGINT lets the server drain and exit normally, so --cpu-prof writes its profile.
await new Promise<void>((resolve) => {
  server!.once('exit', () => resolve());
  server!.kill('SIGINT');
  setTimeout(() => server!.kill('SIGKILL'), 15_000).unref();
});
