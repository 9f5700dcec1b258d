// The webhook port's TLS settings, checked with real handshakes: TLS 1.2 at least, and in TLS 1.2 only
// ECDHE key exchange with an AEAD cipher (a client offering only static-RSA or CBC suites gets no
// connection), no client-initiated renegotiation, and the same rules after a certificate reload.

import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import t from 'tap';

import { issueCert, makeCerts } from '../helpers/certs.ts';
import { startServer } from './harness.ts';

/** Handshakes with the server: "TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256", or "refused <code>". */
function handshake(url: string, opts: ConnectionOptions): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: u.hostname, port: Number(u.port), rejectUnauthorized: false, ...opts }, () => {
      resolve(`${socket.getProtocol()} ${socket.getCipher().name}`);
      socket.destroy();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => resolve(`refused ${e.code ?? e.message}`));
  });
}

const tls12 = (ciphers: string): ConnectionOptions => ({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers });

t.test('RSA certificate: only forward-secret AEAD suites in TLS 1.2, and TLS 1.3', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meshguard-tls-policy-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // An RSA key is what would let a server agree to static-RSA key exchange at all.
  const rsa = makeCerts(join(dir, 'rsa'), { keyType: 'rsa' });
  const s = await startServer(t, { tlsCertFile: rsa.cert, tlsKeyFile: rsa.key });

  t.match(await handshake(s.url, tls12('AES128-GCM-SHA256')), /^refused /, 'static RSA key exchange (no forward secrecy), AEAD');
  t.match(await handshake(s.url, tls12('AES128-SHA256')), /^refused /, 'static RSA key exchange, CBC');
  t.match(await handshake(s.url, tls12('ECDHE-RSA-AES128-SHA256')), /^refused /, 'ECDHE with CBC');
  t.match(await handshake(s.url, tls12('ECDHE-RSA-AES256-SHA384')), /^refused /, 'ECDHE with CBC (SHA-384)');
  t.equal(await handshake(s.url, tls12('ECDHE-RSA-AES128-GCM-SHA256')), 'TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256');
  t.equal(await handshake(s.url, tls12('ECDHE-RSA-AES256-GCM-SHA384')), 'TLSv1.2 ECDHE-RSA-AES256-GCM-SHA384');
  t.equal(await handshake(s.url, tls12('ECDHE-RSA-CHACHA20-POLY1305')), 'TLSv1.2 ECDHE-RSA-CHACHA20-POLY1305');
  t.match(await handshake(s.url, {}), /^TLSv1\.3 TLS_/, 'a default client gets TLS 1.3');
  // The client must lower its own security level to even offer TLS 1.1.
  const old = await handshake(s.url, { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
  t.match(old, /^refused /, `TLS 1.1 (${old})`);
});

t.test('ECDSA certificate: ECDHE-ECDSA with GCM only', async (t) => {
  const s = await startServer(t);
  t.match(await handshake(s.url, tls12('ECDHE-ECDSA-AES128-SHA256')), /^refused /, 'CBC');
  t.match(await handshake(s.url, tls12('ECDHE-ECDSA-AES128-SHA')), /^refused /, 'CBC with SHA-1');
  t.equal(await handshake(s.url, tls12('ECDHE-ECDSA-AES128-GCM-SHA256')), 'TLSv1.2 ECDHE-ECDSA-AES128-GCM-SHA256');
});

t.test('a certificate reload keeps the TLS settings', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meshguard-tls-policy-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const first = makeCerts(join(dir, 'a'), { keyType: 'rsa' });
  const second = issueCert(join(dir, 'b'), first, { keyType: 'rsa' });
  const certFile = join(dir, 'live.crt');
  const keyFile = join(dir, 'live.key');
  copyFileSync(first.cert, certFile);
  copyFileSync(first.key, keyFile);
  const s = await startServer(t, { tlsCertFile: certFile, tlsKeyFile: keyFile });
  copyFileSync(second.cert, certFile);
  copyFileSync(second.key, keyFile);
  t.equal(await s.server.reloadTls(), 'reloaded');
  t.equal(s.server.tlsSerial, second.serial);
  // setSecureContext() replaces the whole context: without the settings passed again, Node's default
  // suites (static RSA and CBC among them) would be back.
  t.match(await handshake(s.url, tls12('AES128-GCM-SHA256')), /^refused /, 'static RSA still refused');
  t.match(await handshake(s.url, tls12('ECDHE-RSA-AES128-SHA256')), /^refused /, 'CBC still refused');
  t.equal(await handshake(s.url, tls12('ECDHE-RSA-AES128-GCM-SHA256')), 'TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256');
});

/**
 * A TLS 1.2 client that gets one answer, then asks to renegotiate and sends a second request.
 * Resolves to what happened: the renegotiation's error (if any), the status lines received, and
 * whether the server closed the connection.
 */
function renegotiateThenRequest(url: string): Promise<{ renegotiation: string; statuses: string[]; closed: boolean }> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const statuses: string[] = [];
    let renegotiation = 'not attempted';
    let buffered = '';
    const request = (s: TLSSocket): void => void s.write(`GET /healthz HTTP/1.1\r\nHost: ${u.host}\r\n\r\n`);
    const socket = connect({ host: u.hostname, port: Number(u.port), rejectUnauthorized: false, maxVersion: 'TLSv1.2' }, () => request(socket));
    // A generous bound for a server that would neither answer nor close (hang detection only).
    const hang = setTimeout(() => {
      socket.destroy();
      resolve({ renegotiation, statuses, closed: false });
    }, 15_000);
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      for (const m of buffered.matchAll(/HTTP\/1\.1 (\d{3})[^\r]*\r\n/g)) statuses.push(m[1]!);
      buffered = buffered.replace(/HTTP\/1\.1 (\d{3})[^\r]*\r\n/g, '');
      if (statuses.slice(1).includes('200')) {
        // Served after the renegotiation: the connection is still usable (what must not happen).
        clearTimeout(hang);
        socket.destroy();
        resolve({ renegotiation, statuses, closed: false });
        return;
      }
      if (statuses.length === 1 && renegotiation === 'not attempted') {
        renegotiation = 'pending';
        const started = socket.renegotiate({ rejectUnauthorized: false }, (err) => {
          renegotiation = err ? `error ${(err as NodeJS.ErrnoException).code ?? err.message}` : 'completed';
          if (!err && !socket.destroyed) request(socket);
        });
        if (!started) renegotiation = 'not started';
      }
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      if (renegotiation === 'pending') renegotiation = `error ${e.code ?? e.message}`;
    });
    socket.on('close', () => {
      clearTimeout(hang);
      resolve({ renegotiation, statuses, closed: true });
    });
  });
}

t.test('client-initiated renegotiation is refused and ends the connection', async (t) => {
  const s = await startServer(t);
  const r = await renegotiateThenRequest(s.url);
  t.equal(r.statuses[0], '200', 'the request before the renegotiation was answered');
  t.not(r.renegotiation, 'completed', `renegotiation: ${r.renegotiation}`);
  t.ok(r.closed, 'the server closed the connection');
  t.notOk(r.statuses.slice(1).includes('200'), `nothing was served after the attempt (${r.statuses.join(', ')})`);
});
