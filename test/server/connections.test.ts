// How many connections the webhook port holds, and how long it holds them: past --max-connections a new
// connection is closed on arrival while the open ones keep being served; idle keep-alive connections,
// unfinished handshakes and stalled headers are cut, which frees their place under the cap.

import { once } from 'node:events';
import { Agent } from 'node:https';
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

import t from 'tap';

import { send, scrape, startServer, type Started } from './harness.ts';

/** A generous bound on waiting for an event that must come (hang detection, not a timing assertion). */
function within<T>(what: string, p: Promise<T>, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
    }),
  ]);
}

/** A TLS connection that completes its handshake ("connected"), or how it failed. */
function tlsOutcome(url: string): Promise<{ outcome: string; socket?: Socket }> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = tlsConnect({ host: u.hostname, port: Number(u.port), rejectUnauthorized: false }, () => resolve({ outcome: 'connected', socket }));
    socket.on('error', (e: NodeJS.ErrnoException) => resolve({ outcome: `error ${e.code ?? e.message}` }));
    socket.on('close', () => resolve({ outcome: 'closed' }));
  });
}

/** The server's side of each connection, by the client's local port. */
function serverSockets(s: Started): Map<number, Socket> {
  const byPort = new Map<number, Socket>();
  s.server.app.server.on('connection', (sock: Socket) => byPort.set(sock.remotePort!, sock));
  return byPort;
}

const healthz = (s: Started, agent: Agent) => send(s.url, '/healthz', { ca: s.ca, method: 'GET', contentType: null, agent });

t.test('beyond --max-connections new connections are refused; the open ones keep being served', async (t) => {
  const s = await startServer(t, { maxConnections: 3 });
  const server = serverSockets(s);
  const agent = new Agent({ keepAlive: true, maxSockets: 3 });
  t.teardown(() => agent.destroy());

  // Three kept-alive connections: the cap.
  const first = await Promise.all([healthz(s, agent), healthz(s, agent), healthz(s, agent)]);
  t.same(first.map((r) => r.status), [200, 200, 200]);
  t.equal(server.size, 3, 'three connections open');

  const extra = await tlsOutcome(s.url);
  extra.socket?.destroy();
  t.not(extra.outcome, 'connected', `a fourth connection gets no TLS session (${extra.outcome})`);
  const extraRequest = await send(s.url, '/healthz', { ca: s.ca, method: 'GET', contentType: null }).then((r) => `status ${r.status}`, (e: NodeJS.ErrnoException) => `error ${e.code}`);
  t.match(extraRequest, /^error /, `nor does a request on a new connection (${extraRequest})`);

  const again = await Promise.all([healthz(s, agent), healthz(s, agent), healthz(s, agent)]);
  t.same(again.map((r) => r.status), [200, 200, 200], 'the three open connections are still served');
  t.ok(again.every((r) => r.reused), 'on the same connections');

  const m = await scrape(s);
  t.match(m.text, /meshguard_connections_dropped_total 2\b/, 'both refused connections counted');
  t.match(m.text, /meshguard_connections_open 3\b/);

  // One connection ends: its place is free again.
  const [port] = [...server.keys()];
  const closing = server.get(port!)!;
  const closed = once(closing, 'close');
  closing.destroy();
  await within('server-side close', closed);
  const fresh = await tlsOutcome(s.url);
  t.equal(fresh.outcome, 'connected', 'a new connection fits once one has closed');
  fresh.socket?.destroy();
});

t.test('the default cap is 256', async (t) => {
  const s = await startServer(t);
  t.equal(s.server.app.server.maxConnections, 256);
});

t.test('an idle keep-alive connection is closed after the keep-alive timeout, and says so', async (t) => {
  const s = await startServer(t, { keepAliveTimeoutMs: 300 });
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const server = serverSockets(s);
  const r = await healthz(s, agent);
  t.equal(r.status, 200);
  t.equal(r.headers['keep-alive'], 'timeout=0', 'the announced timeout (whole seconds, rounded down)');
  const sock = [...server.values()][0]!;
  await within('the idle connection to be closed', once(sock, 'close'));
  t.pass('closed by the server');
});

t.test('by default idle connections are kept 95 s, longer than Go\'s 90 s client idle timeout', async (t) => {
  const s = await startServer(t);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const r = await healthz(s, agent);
  t.equal(r.headers['keep-alive'], 'timeout=95');
});

t.test('a connection that never completes its TLS handshake is cut, and frees its place', async (t) => {
  const s = await startServer(t, { maxConnections: 1, handshakeTimeoutMs: 300 });
  const u = new URL(s.url);
  const silent = tcpConnect({ host: u.hostname, port: Number(u.port) });
  t.teardown(() => silent.destroy());
  await once(silent, 'connect');
  silent.on('error', () => undefined);
  // Sends nothing: no ClientHello.
  await within('the silent connection to be cut', once(silent, 'close'));
  const next = await tlsOutcome(s.url);
  t.equal(next.outcome, 'connected', 'the place under the cap is free again');
  next.socket?.destroy();
});

t.test('a client that stalls inside its request headers is cut', async (t) => {
  const s = await startServer(t, { requestTimeoutMs: 400 });
  const u = new URL(s.url);
  const socket = tlsConnect({ host: u.hostname, port: Number(u.port), rejectUnauthorized: false });
  t.teardown(() => socket.destroy());
  await once(socket, 'secureConnect');
  let answer = '';
  socket.on('data', (c: Buffer) => (answer += c.toString('latin1')));
  socket.on('error', () => undefined);
  socket.write(`GET /healthz HTTP/1.1\r\nHost: ${u.host}\r\nX-Slow: `);
  await within('the stalled connection to be cut', once(socket, 'close'));
  t.match(answer, /^(HTTP\/1\.1 408|$)/, `answered 408 or closed (${answer.split('\r\n')[0] || 'closed'})`);
});
