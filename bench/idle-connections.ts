// What idle connections cost meshguard, and what --max-connections does about it: starts `meshguard
// serve` (the Deployment's Node flags, the example cluster, an ECDSA certificate like cert-manager's),
// opens N TLS connections that each make one keep-alive request and then stay idle, and reports how
// many were kept and refused and the server's RSS before and with them open. A one-off measurement for
// docs/security.md, not a test:
//
//   node bench/idle-connections.ts [--connections 2000] [--caps 256,65535]

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { makeCerts } from '../test/helpers/certs.ts';
import { deployedNodeFlags, freePort, metricsPage, ROOT, rssOf, startServer, stopServer } from './harness.ts';

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '2000' },
    caps: { type: 'string', default: '256,65535' },
  },
});
const N = Number(values.connections);
const work = mkdtempSync(path.join(os.tmpdir(), 'meshguard-idle-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const certs = makeCerts(work);
const ca = readFileSync(certs.caCert);

/** One connection: a TLS handshake and GET /healthz on a kept-alive socket. "kept" or "refused". */
function openOne(port: number, agents: Agent[]): Promise<'kept' | 'refused'> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca });
  agents.push(agent);
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/healthz', agent, timeout: 20_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200 ? 'kept' : 'refused'));
    });
    req.on('error', () => resolve('refused'));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

const mb = (b: number): string => (b / 2 ** 20).toFixed(1);
const rows: Record<string, unknown>[] = [];
for (const cap of values.caps.split(',').map(Number)) {
  const port = await freePort();
  const metricsPort = await freePort();
  const { child } = await startServer([
    ...deployedNodeFlags(), path.join(ROOT, 'bin/meshguard.js'), 'serve', '--state', path.join(ROOT, 'examples/cluster'),
    '--tls-cert', certs.cert, '--tls-key', certs.key, '--host', '127.0.0.1', '--port', String(port),
    '--metrics-port', String(metricsPort), '--max-connections', String(cap), '--drain-seconds', '0',
  ], port, ca);
  // Let the warm-up and start-up garbage settle before the baseline.
  await new Promise((r) => setTimeout(r, 3000));
  const rssBefore = rssOf(child.pid);
  const agents: Agent[] = [];
  const outcomes: ('kept' | 'refused')[] = [];
  // In batches: a burst of 2,000 handshakes at once would measure the burst, not the idle connections.
  for (let i = 0; i < N; i += 100) {
    outcomes.push(...(await Promise.all(Array.from({ length: Math.min(100, N - i) }, () => openOne(port, agents)))));
  }
  await new Promise((r) => setTimeout(r, 3000));
  const rssOpen = rssOf(child.pid);
  const page = await metricsPage(metricsPort);
  const open = Number(/^meshguard_connections_open (\d+)/m.exec(page)?.[1]);
  const dropped = Number(/^meshguard_connections_dropped_total (\d+)/m.exec(page)?.[1]);
  const row = {
    cap, attempted: N, kept: outcomes.filter((o) => o === 'kept').length, refused: outcomes.filter((o) => o === 'refused').length,
    serverOpen: open, serverDropped: dropped, rssBeforeMB: mb(rssBefore), rssOpenMB: mb(rssOpen), deltaMB: mb(rssOpen - rssBefore),
    perConnectionKB: ((rssOpen - rssBefore) / 1024 / Math.max(1, open)).toFixed(1),
  };
  rows.push(row);
  process.stdout.write(`${JSON.stringify(row)}\n`);
  for (const a of agents) a.destroy();
  await stopServer(child);
}
