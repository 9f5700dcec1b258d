// Graceful shutdown over real HTTPS: readiness fails first, requests keep being served (asking clients
// to reconnect elsewhere) for the drain period, a request in flight at close time still gets its
// answer, idle keep-alive connections are closed, and then nothing listens.

import { Agent, request } from 'node:https';
import type { Socket } from 'node:net';

import t from 'tap';

import { installSignalHandlers } from '../../src/server/server.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { turn, until } from '../helpers/until.ts';
import { postReview, review, send, startServer } from './harness.ts';

// The server's drain and close timeout run on a fake clock here: the drain ends when the test moves the
// clock, however long the requests made during it take.

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
  const clock = new FakeClock();
  const s = await startServer(t, { drainSeconds: 1.5, timers: clock });
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

  // The drain lasts 1.5 s: a moment before its end the server still serves.
  clock.advance(1499);
  t.equal((await get('/readyz')).status, 503, 'still draining a moment before the end');
  t.equal((await get('/healthz')).status, 200, 'and still serving');
  t.equal(s.server.app.server.listening, true);
  // Then it closes: finish the slow request while the server is closing.
  clock.advance(1);
  await until('the server to stop listening', () => !s.server.app.server.listening);
  const status = await slow.finish();
  t.equal(status, 200, 'the request in flight at close time still got its answer');
  await done;
  await idleClosed;
  t.pass('idle keep-alive connection closed');
  await t.rejects(get('/healthz'), { code: 'ECONNREFUSED' }, 'nothing listens after shutdown');
  await t.rejects(send(s.metricsUrl, '/healthz', { ca: s.ca, method: 'GET', contentType: null }), { code: 'ECONNREFUSED' }, 'nor on the monitoring port');
});

t.test('a stuck connection cannot hold shutdown past the close timeout', async (t) => {
  const clock = new FakeClock();
  // Node's own request deadline far away: only the close timeout may cut the stuck request.
  const s = await startServer(t, { drainSeconds: 0, closeTimeoutMs: 300, requestTimeoutMs: 600_000, timers: clock });
  const received = new Promise<void>((r) => s.server.app.server.once('request', () => r()));
  const slow = slowPost(s.url, s.ca, JSON.stringify(review()));
  await received; // the server has the request's head: a connection in use, not an idle one
  let closed = false;
  const shutdown = s.server.shutdown().then(() => (closed = true));
  await until('the server to stop listening', () => !s.server.app.server.listening);
  clock.advance(299);
  await turn();
  t.notOk(closed, 'the stuck request holds the close until the close timeout');
  clock.advance(1);
  await shutdown;
  t.pass('closed at the close timeout');
  await t.rejects(slow.finish(), 'the stuck request is cut');
});

t.test('signal handlers: first signal drains then exits 0, a second exits 1 at once', async (t) => {
  const clock = new FakeClock();
  const s = await startServer(t, { drainSeconds: 0.3, timers: clock });
  const exits: number[] = [];
  let exitedTwice!: () => void;
  const twice = new Promise<void>((r) => (exitedTwice = r));
  let cleanedUp = false;
  const uninstall = installSignalHandlers(s.server, {
    signals: ['SIGUSR2'],
    exit: (code) => {
      exits.push(code);
      if (exits.length === 2) exitedTwice();
    },
    onShutdown: () => {
      cleanedUp = true;
    },
  });
  t.teardown(uninstall);
  // A listener added after meshguard's runs after it: awaiting it awaits meshguard's handling.
  const signal = async (): Promise<void> => {
    const handled = new Promise<void>((r) => process.once('SIGUSR2', () => r()));
    process.kill(process.pid, 'SIGUSR2');
    await handled;
  };
  await signal();
  t.equal(s.server.draining, true, 'draining after the signal');
  clock.advance(299);
  await turn();
  t.same(exits, [], 'not exited during the drain');
  await signal();
  t.same(exits, [1], 'second signal exits 1');
  clock.advance(1);
  await twice;
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
