// The benchmark's load generator against the benchmark's no-op baseline server: the figures it prints
// must count what the server answered (requests, statuses, errors) and keep the requested rate.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { freePort, measureLoad, ROOT, runJson, startServer } from '../../bench/harness.ts';
import { makeCerts } from '../helpers/certs.ts';

const dir = mkdtempSync(join(tmpdir(), 'meshguard-load-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const certs = makeCerts(dir);

const review = (uid: string) =>
  JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid, kind: { kind: 'ConfigMap' }, operation: 'CREATE', object: { metadata: { name: 'x' } } } });

async function baseline(t: { teardown(fn: () => void): void }): Promise<{ port: number; pid: number | undefined }> {
  const port = await freePort();
  const args = [join(ROOT, 'bench/baseline-server.ts'), '--tls-cert', certs.cert, '--tls-key', certs.key, '--port', String(port)];
  const { child } = await startServer(args, port, readFileSync(certs.caCert));
  t.teardown(() => child.kill('SIGKILL'));
  return { port, pid: child.pid };
}

t.test('rate mode sends the scheduled number of requests and counts the answers', async (t) => {
  const { port, pid } = await baseline(t);
  const bodies = join(dir, 'ok.json');
  writeFileSync(bodies, JSON.stringify([review('a'), review('b'), review('c')]));
  const r = await measureLoad(pid, { port, caFile: certs.caCert, bodiesFile: bodies, mode: 'rate', rate: 200, connections: 4, seconds: 1 });
  t.equal(r.errors, 0);
  t.same((r as unknown as { statuses: Record<string, number> }).statuses, { 200: 200 }, 'rate x seconds answers, all 200');
  t.ok(r.rps > 150 && r.rps < 250, `about 200 req/s (${r.rps.toFixed(0)})`);
  t.ok(r.p50 > 0 && r.p50 <= r.p99 && r.p99 <= r.p999 && r.p999 <= r.max, 'ordered percentiles');
  t.ok(typeof r.lateP99 === 'number' && r.lateP99 >= 0, 'lateness reported');
  t.ok(Number.isFinite(r.serverCpuMicros) && r.serverCpuMicros! > 0, 'server CPU per request read from /proc');
});

t.test('answers other than 200 are errors, and max mode keeps going', async (t) => {
  const { port, pid } = await baseline(t);
  const bodies = join(dir, 'mixed.json');
  // Every other body is not JSON: the server answers 400.
  writeFileSync(bodies, JSON.stringify([review('a'), '{not json']));
  const r = await measureLoad(pid, { port, caFile: certs.caCert, bodiesFile: bodies, mode: 'max', rate: 0, connections: 2, seconds: 1 });
  const statuses = (r as unknown as { statuses: Record<string, number> }).statuses;
  t.ok(r.requests > 50, `requests made (${r.requests})`);
  t.ok(statuses['200']! > 0 && statuses['400']! > 0, `both answers seen (${JSON.stringify(statuses)})`);
  t.equal(r.errors, statuses['400'], 'each 400 is an error');
  t.equal(statuses['200']! + statuses['400']!, r.requests, 'every request answered and counted once');
});

t.test('answers it cannot frame stop the run instead of becoming numbers', async (t) => {
  // Chunked answers (no Content-Length): the generator must refuse, not count body bytes as answers.
  const server = createServer({ cert: readFileSync(certs.cert), key: readFileSync(certs.key) }, (req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"a":');
      res.end('1}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const bodies = join(dir, 'one.json');
  writeFileSync(bodies, JSON.stringify([review('a')]));
  await t.rejects(
    runJson([join(ROOT, 'bench/load.ts'), '--url', `https://127.0.0.1:${port}/validate`, '--ca', certs.caCert, '--bodies', bodies, '--mode', 'max', '--connections', '1', '--seconds', '1']),
    /Transfer-Encoding/,
  );
});
