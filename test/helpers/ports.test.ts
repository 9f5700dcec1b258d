import t from 'tap';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { candidateRange, canBind, freePort, portTaken } from './ports.ts';

function hold(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(port, '127.0.0.1', () => resolve(srv));
  });
}

t.test('ports come from below the ephemeral range, where outgoing connections never land', async (t) => {
  const { from, to } = candidateRange();
  let low = 32768;
  try {
    low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  } catch {
    /* default */
  }
  t.equal(to, low, 'the range ends where the ephemeral range starts');
  t.ok(from >= 10_000 && from < to, `range [${from}, ${to})`);
  const seen = new Set<number>();
  for (let i = 0; i < 20; i++) {
    const p = await freePort();
    t.ok(p >= from && p < to, `${p} is below the ephemeral range`);
    seen.add(p);
  }
  t.ok(seen.size > 1, 'ports are spread, so parallel test files rarely meet');
});

t.test('a port is handed out only when it can be bound', async (t) => {
  const port = await freePort();
  t.ok(await canBind(port), 'free port binds');
  const srv = await hold(port);
  t.teardown(() => new Promise<void>((r) => srv.close(() => r())));
  t.notOk(await canBind(port), 'a held port is reported taken');
  for (let i = 0; i < 50; i++) t.not(await freePort(), port);
});

t.test('"port taken" is recognised in Go and Node wording only', async (t) => {
  t.ok(portTaken('{"msg":"failed to start etcd","error":"listen tcp 127.0.0.1:40509: bind: address already in use"}'));
  t.ok(portTaken('meshguard: cannot listen on 127.0.0.1:4443: EADDRINUSE'));
  t.notOk(portTaken('listen tcp: permission denied'));
  t.notOk(portTaken('etcd exited: code=1'));
});
