// Graceful shutdown over real HTTPS: readiness fails first, requests keep being served (asking clients
// to reconnect elsewhere) for the drain period, a request in flight at close time still gets its
// answer, idle keep-alive connections are closed, and then nothing listens.

import { Agent, request } from 'node:https';
import type { Socket } from 'node:net';

import t from 'tap';

import { installSignalHandlers } from '../../src/server/server.ts';
import { postReview, review, send, startServer } from './harness.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts a POST whose body arrives in two parts; `finish()` sends the rest and resolves to the status. */
function slowPost(url: string, ca: Buffer, body: string): { finish(): Promise<number>; started: Promise<void> } {
  const buf = Buffer.from(body);
  let resolveStatus!: (n: number) => void;
  let rejectStatus!: (e: Error) => void;
  const status = new Promise<number>((res, rej) => {
    resolveStatus = res;
    rejectStatus = rej;
  });
  const req = request(new URL('/validate', url), {
    method: 'POST', ca, agent: false,
    headers: { 'content-type': 'application/json', 'content-length': String(buf.length) },
  });
  req.on('error', rejectStatus);
  req.on('response', (res) => {
    res.resume();
    res.on('end', () => resolveStatus(res.statusCode ?? 0));
  });
  const started = new Promise<void>((res) => req.on('socket', (s) => s.once('secureConnect', () => res())));
  req.write(buf.subarray(0, 20));
  return {
    started,
    finish() {
      req.end(buf.subarray(20));
      return status;
    },
  };
}

t.test('shutdown: readiness 503 during the drain, requests still served, then closed', async (t) => {
  const s = await startServer(t, { drainSeconds: 1.5 });
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const get = (p: string, a?: Agent) => send(s.url, p, { ca: s.ca, method: 'GET', contentType: null, ...(a ? { agent: a } : {}) });

  t.equal((await get('/readyz')).status, 200, 'ready before shutdown');
  // An idle keep-alive connection, open before the shutdown.
  const warm = await postReview(s.url, review(), { ca: s.ca, agent });
  t.equal(warm.status, 200);
  const idleSocket = await new Promise<Socket>((res) => {
    const r = request(new URL('/healthz', s.url), { ca: s.ca, agent });
    let sock: Socket | undefined;
    r.on('socket', (x) => (sock = x));
    r.on('response', (resp) => {
      resp.resume();
      resp.on('end', () => res(sock!));
    });
    r.end();
  });
  const idleClosed = new Promise<void>((res) => idleSocket.once('close', () => res()));

  // A request that will be in flight when the drain ends.
  const slow = slowPost(s.url, s.ca, JSON.stringify(review()));
  await slow.started;

  const began = Date.now();
  const done = s.server.shutdown();
  t.equal(s.server.draining, true);
  t.equal((await get('/readyz')).status, 503, 'readiness fails at once');
  t.equal((await get('/healthz')).status, 200, 'still alive');
  // The Deployment probes the monitoring listener: it must say the same.
  const probe = (p: string) => send(s.metricsUrl, p, { ca: s.ca, method: 'GET', contentType: null });
  t.equal((await probe('/readyz')).status, 503, 'readiness fails on the monitoring port too');
  t.equal((await probe('/healthz')).status, 200, 'and liveness holds there');
  const during = await postReview(s.url, review(), { ca: s.ca });
  t.equal(during.status, 200, 'reviews still answered during the drain');
  t.equal(during.json.response.allowed, true);
  t.equal(during.headers.connection, 'close', 'clients are asked to reconnect elsewhere');
  t.equal(s.server.shutdown(), done, 'shutdown is idempotent');

  // Finish the slow request after the drain period, while the server is closing.
  await sleep(1600);
  const status = await slow.finish();
  t.equal(status, 200, 'the request in flight at close time still got its answer');
  await done;
  const took = Date.now() - began;
  t.ok(took >= 1500, `drain lasted ${took} ms`);
  t.ok(await Promise.race([idleClosed.then(() => true), sleep(2000).then(() => false)]), 'idle keep-alive connection closed');
  await t.rejects(get('/healthz'), { code: 'ECONNREFUSED' }, 'nothing listens after shutdown');
  await t.rejects(send(s.metricsUrl, '/healthz', { ca: s.ca, method: 'GET', contentType: null }), { code: 'ECONNREFUSED' }, 'nor on the monitoring port');
});

t.test('a stuck connection cannot hold shutdown past the close timeout', async (t) => {
  const s = await startServer(t, { drainSeconds: 0, closeTimeoutMs: 300 });
  const slow = slowPost(s.url, s.ca, JSON.stringify(review()));
  await slow.started;
  await sleep(50);
  const began = Date.now();
  await s.server.shutdown();
  t.ok(Date.now() - began < 2000, 'closed after the close timeout');
  await t.rejects(slow.finish(), 'the stuck request is cut');
});

t.test('signal handlers: first signal drains then exits 0, a second exits 1 at once', async (t) => {
  const s = await startServer(t, { drainSeconds: 0.3 });
  const exits: number[] = [];
  let cleanedUp = false;
  const uninstall = installSignalHandlers(s.server, {
    signals: ['SIGUSR2'],
    exit: (code) => exits.push(code),
    onShutdown: () => {
      cleanedUp = true;
    },
  });
  t.teardown(uninstall);
  process.kill(process.pid, 'SIGUSR2');
  await sleep(50);
  t.equal(s.server.draining, true, 'draining after the signal');
  t.same(exits, [], 'not exited during the drain');
  process.kill(process.pid, 'SIGUSR2');
  await sleep(50);
  t.same(exits, [1], 'second signal exits 1');
  for (let i = 0; i < 40 && exits.length < 2; i++) await sleep(50);
  t.same(exits, [1, 0], 'drain completed, exit 0');
  t.ok(cleanedUp, 'onShutdown ran');
});

t.test('readiness follows the state sync', async (t) => {
  const { fakeSource } = await import('./harness.ts');
  const source = fakeSource(false);
  const s = await startServer(t, { source });
  const ready = async () => (await send(s.url, '/readyz', { ca: s.ca, method: 'GET', contentType: null })).status;
  t.equal(await ready(), 503);
  source.setSynced(true);
  t.equal(await ready(), 200);
  source.setSynced(false);
  t.equal(await ready(), 503, 'a lost sync fails readiness again');
});
