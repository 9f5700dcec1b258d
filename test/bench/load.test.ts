// The benchmark's load generator against the benchmark's no-op baseline server: the figures it prints
// must count what the server answered (requests, statuses, errors). How fast it goes here is this
// machine's business; that it keeps the requested rate, and that max mode runs until its time is up
// whatever the answers, is tested on a fake clock in load-loops.test.ts.

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
  const before = Date.now();
  const r = await measureLoad(pid, { port, caFile: certs.caCert, bodiesFile: bodies, mode: 'rate', rate: 200, connections: 4, seconds: 1 });
  const after = Date.now();
  t.equal(r.errors, 0);
  t.same((r as unknown as { statuses: Record<string, number> }).statuses, { 200: 200 }, 'rate x seconds answers, all 200');
  t.equal(r.requests, 200);
  const seconds = (r as unknown as { seconds: number }).seconds;
  t.equal(r.rps, r.requests / seconds, `the rate achieved is reported (${r.rps.toFixed(0)} req/s)`);
  // The loop's wall-clock start (episodes count from it): after the run began, and a whole loop before it ended.
  t.ok(r.startedAtMs! >= before && r.startedAtMs! + seconds * 1000 <= after + 2, `loop start ${r.startedAtMs} within ${before}..${after} less the loop`);
  // Taken where the loop's own clock starts and stops (not before the warm-up): the two clocks agree.
  t.ok(Math.abs(r.endedAtMs! - r.startedAtMs! - seconds * 1000) <= 5, `wall-clock span ${r.endedAtMs! - r.startedAtMs!} ms against the loop's ${(seconds * 1000).toFixed(1)} ms`);
  t.ok(r.p50 > 0 && r.p50 <= r.p99 && r.p99 <= r.p999 && r.p999 <= r.max, 'ordered percentiles');
  t.ok(typeof r.lateP99 === 'number' && r.lateP99 >= 0, 'lateness reported');
  t.ok(Number.isFinite(r.serverCpuMicros) && r.serverCpuMicros! > 0, 'server CPU per request read from /proc');
  // The requests above the p99 (2 of 200, fewer on ties), grouped by time; the slowest one is in them.
  const slow = r.slowEpisodes!;
  t.ok(slow !== undefined && slow.episodes === slow.top.length, 'slow episodes reported');
  const above = slow.top.reduce((n, e) => n + e.requests, 0);
  t.ok(above <= 2, `at most the 1% above the p99 (${above})`);
  if (above > 0) t.equal(Math.max(...slow.top.map((e) => e.maxMs)), Math.round(r.max * 10) / 10, 'the slowest request is in an episode');
});

t.test('answers other than 200 are errors, and max mode keeps going', async (t) => {
  const { port, pid } = await baseline(t);
  const bodies = join(dir, 'mixed.json');
  // Every other body is not JSON: the server answers 400.
  writeFileSync(bodies, JSON.stringify([review('a'), '{not json']));
  const r = await measureLoad(pid, { port, caFile: certs.caCert, bodiesFile: bodies, mode: 'max', rate: 0, connections: 2, seconds: 1 });
  const statuses = (r as unknown as { statuses: Record<string, number> }).statuses;
  const ok = statuses['200'] ?? 0;
  const bad = statuses['400'] ?? 0;
  // How many requests fit in the second is timing; that the bodies alternate is not.
  t.ok(Math.abs(ok - bad) <= 1, `the bodies in turn: 200s and 400s alike (${JSON.stringify(statuses)}, ${r.requests} requests)`);
  t.equal(r.errors, bad, 'each 400 is an error');
  t.equal(ok + bad, r.requests, 'every request answered and counted once');
  t.equal(r.slowEpisodes, undefined, 'no schedule in max mode: no episodes');
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

t.test('traffic shapes: --repeat new numbers every request, twice sends each twice, cycle sends the bodies as they are', async (t) => {
  // A server that records the sequence label of every body it receives.
  const seen: string[] = [];
  let delayMs = 0;
  const server = createServer({ cert: readFileSync(certs.cert), key: readFileSync(certs.key) }, (req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      const labels = (JSON.parse(body) as { request: { object: { metadata: { labels: Record<string, string> } } } }).request.object.metadata.labels;
      seen.push(`${labels['bench.meshguard.io/seq']}/${labels['which']}`);
      const answer = '{}';
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': answer.length });
        res.end(answer);
      }, delayMs);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const labelled = (which: string) =>
    JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: which, kind: { kind: 'ConfigMap' }, operation: 'CREATE', object: { metadata: { name: 'x', labels: { 'bench.meshguard.io/seq': 'seq-00000000', which } } } } });
  const bodies = join(dir, 'seq.json');
  writeFileSync(bodies, JSON.stringify([labelled('a'), labelled('b'), labelled('c')]));
  const run = async (repeat: 'new' | 'twice' | 'cycle', rate = 100): Promise<string[]> => {
    seen.length = 0;
    const r = await measureLoad(undefined, { port, caFile: certs.caCert, bodiesFile: bodies, mode: 'rate', rate, connections: 1, seconds: 0.5, repeat });
    t.equal(r.errors, 0);
    return [...seen];
  };
  const count = (xs: string[]) => [...xs.reduce((m, x) => m.set(x, (m.get(x) ?? 0) + 1), new Map<string, number>()).values()];

  const fresh = await run('new');
  t.ok(fresh.length >= 50, `warm-up and measured requests (${fresh.length})`);
  t.equal(new Set(fresh).size, fresh.length, 'no request sent twice');
  const n0 = Number(fresh[0]!.slice(4, 12));
  const seq = (k: number) => `seq-${String(n0 + k).padStart(8, '0')}`;
  t.same(fresh.slice(0, 4), [`${seq(0)}/a`, `${seq(1)}/b`, `${seq(2)}/c`, `${seq(3)}/a`], 'numbered in order, bodies in turn');
  const again = await run('new');
  t.equal(new Set([...fresh, ...again]).size, fresh.length + again.length, 'the next phase does not reuse numbers');

  const twice = await run('twice');
  t.ok(count(twice).every((n) => n === 2), 'every request exactly twice');
  const m0 = Number(twice[0]!.slice(4, 12));
  const tw = (k: number) => `seq-${String(m0 + k).padStart(8, '0')}`;
  t.same(twice.slice(0, 4), [`${tw(0)}/a`, `${tw(0)}/a`, `${tw(1)}/b`, `${tw(1)}/b`]);
  t.notOk(twice.some((x) => fresh.includes(x) || again.includes(x)), 'nor does a twice phase');

  // A server slower than the rate: requests queue for the one connection, far more of them than there
  // are bodies; each must still go out with its own number.
  delayMs = 15;
  const queued = await run('new', 200);
  delayMs = 0;
  t.equal(queued.length, 106, 'warm-up and every scheduled request answered');
  t.equal(new Set(queued).size, queued.length, 'no request sent twice behind a busy server');

  const cycle = await run('cycle');
  t.same(new Set(cycle), new Set(['seq-00000000/a', 'seq-00000000/b', 'seq-00000000/c']), 'the bodies as they are');
});
