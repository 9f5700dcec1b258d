// Client-certificate authentication (--client-ca): /validate is answered only for a client certificate
// the CA bundle verifies (401 without one, 403 with one it does not), before the body is read; the
// probes stay open; the bundle is reloaded like the serving pair, and a bad bundle is refused.

import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import t from 'tap';

import { createServer } from '../../src/server/server.ts';
import { issueCert, makeCa, type CaPaths } from '../helpers/certs.ts';
import { fakeSource, memoryLogger, postReview, recordingDecide, review, scrape, send, startServer } from './harness.ts';

interface Client {
  readonly cert: Buffer;
  readonly key: Buffer;
}

function clientOf(dir: string, ca: CaPaths, name: string, usage: 'client' | 'server' = 'client'): Client {
  const c = issueCert(dir, ca, { name, cn: `e2e-${name}`, usage });
  return { cert: readFileSync(c.cert), key: readFileSync(c.key) };
}

function fixture(t: { teardown(fn: () => unknown): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'meshguard-client-auth-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const trusted = makeCa(join(dir, 'trusted'), 'apiserver-client-ca');
  const other = makeCa(join(dir, 'other'), 'someone-else-ca');
  const caFile = join(dir, 'client-ca.crt');
  copyFileSync(trusted.caCert, caFile);
  return {
    dir,
    caFile,
    trusted,
    other,
    apiserver: clientOf(join(dir, 'trusted'), trusted, 'apiserver'),
    stranger: clientOf(join(dir, 'other'), other, 'stranger'),
    // Signed by the trusted CA, but for serving only (no clientAuth in its extended key usage).
    serverOnly: clientOf(join(dir, 'trusted'), trusted, 'server-only', 'server'),
  };
}

t.test('/validate answers only a client certificate the CA verifies', async (t) => {
  const f = fixture(t);
  const decide = recordingDecide();
  const s = await startServer(t, { decide, clientCaFile: f.caFile });

  const none = await postReview(s.url, review(), { ca: s.ca });
  t.equal(none.status, 401, 'no certificate: 401');
  t.same(none.json, {
    error: 'Unauthorized', message: 'a client certificate is required',
    // A Kubernetes Status too: the apiserver quotes its message in its webhook error.
    kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Unauthorized', code: 401,
  });

  const stranger = await postReview(s.url, review(), { ca: s.ca, ...f.stranger });
  t.equal(stranger.status, 403, 'a certificate from another CA: 403');
  t.equal(stranger.json.error, 'Forbidden');
  t.match(stranger.json, { kind: 'Status', status: 'Failure', reason: 'Forbidden', code: 403 });
  t.match(stranger.json.message, /^client certificate not accepted: /);

  const serverOnly = await postReview(s.url, review(), { ca: s.ca, ...f.serverOnly });
  t.equal(serverOnly.status, 403, 'the right CA, but not a client certificate: 403');

  t.equal(decide.calls.length, 0, 'nothing refused reached the rules');

  const ok = await postReview(s.url, review(), { ca: s.ca, ...f.apiserver });
  t.equal(ok.status, 200);
  t.equal(ok.json.response.allowed, true);
  t.equal(decide.calls.length, 1);

  const m = await scrape(s);
  t.match(m.text, /meshguard_client_auth_refusals_total\{reason="no-certificate"\} 1\b/);
  t.match(m.text, /meshguard_client_auth_refusals_total\{reason="untrusted-certificate"\} 2\b/);
  t.match(m.text, /meshguard_admission_requests_total\{verdict="allowed"\} 1\b/);
  const refusals = s.lines.filter((l) => l.msg === 'client authentication failed');
  t.same(refusals.map((l) => l.reason), ['no-certificate', 'untrusted-certificate', 'untrusted-certificate']);
});

t.test('the probes stay open, every other route needs the certificate', async (t) => {
  const f = fixture(t);
  const s = await startServer(t, { clientCaFile: f.caFile });
  const get = (p: string, client: Partial<Client> = {}) => send(s.url, p, { ca: s.ca, method: 'GET', contentType: null, ...client });
  t.equal((await get('/healthz')).status, 200);
  t.equal((await get('/readyz')).status, 200);
  t.equal((await get('/nope')).status, 401, 'routes are not revealed to an unauthenticated caller');
  t.equal((await get('/nope', f.apiserver)).status, 404);
  t.equal((await send(s.url, '/healthz', { ca: s.ca, body: '{}' })).status, 401, 'POST /healthz is not a probe');
});

t.test('an unauthenticated caller is answered before its body is read', async (t) => {
  const f = fixture(t);
  const s = await startServer(t, { clientCaFile: f.caFile });
  // Announces 5 MB and sends none of it: a server that read the body first would wait for it.
  const status = await new Promise<number | string>((resolve) => {
    const req = request(new URL('/validate', s.url), {
      method: 'POST', ca: s.ca, agent: false,
      headers: { 'content-type': 'application/json', 'content-length': String(5 * 1024 * 1024) },
    });
    const hang = setTimeout(() => {
      req.destroy();
      resolve('no answer within 10 s');
    }, 10_000);
    req.on('response', (res) => {
      clearTimeout(hang);
      res.resume();
      resolve(res.statusCode ?? 0);
      req.destroy();
    });
    req.on('error', (e) => {
      clearTimeout(hang);
      resolve(`error ${e.message}`);
    });
    req.flushHeaders();
  });
  t.equal(status, 401);
});

t.test('without --client-ca no certificate is asked for', async (t) => {
  const s = await startServer(t);
  const r = await postReview(s.url, review(), { ca: s.ca });
  t.equal(r.status, 200);
});

t.test('the client CA bundle is reloaded with the serving pair; a bad bundle is not installed', async (t) => {
  const f = fixture(t);
  const { logger, lines } = memoryLogger();
  const certs = issueCert(join(f.dir, 'serving'), makeCa(join(f.dir, 'serving'), 'serving-ca'));
  const caPem = readFileSync(join(f.dir, 'serving', 'ca.crt'));
  const server = await createServer({
    source: fakeSource(), decide: recordingDecide(), tlsCertFile: certs.cert, tlsKeyFile: certs.key,
    clientCaFile: f.caFile, host: '127.0.0.1', port: 0, drainSeconds: 0, logger, tlsDebounceMs: 60_000, tlsPollSeconds: 0,
  });
  t.teardown(() => server.shutdown());
  const url = await server.listen();
  const status = async (c: Client) => (await postReview(url, review(), { ca: caPem, ...c })).status;
  t.equal(await status(f.apiserver), 200);
  t.equal(await status(f.stranger), 403);

  // The bundle now names the other CA.
  copyFileSync(f.other.caCert, f.caFile);
  t.equal(await server.reloadTls(), 'reloaded');
  t.equal(await status(f.stranger), 200, 'the new CA is trusted');
  t.equal(await status(f.apiserver), 403, 'the old one no longer is');
  t.ok(lines.some((l) => l.msg === 'tls: serving certificate reloaded' && JSON.stringify(l.clientCa).includes('someone-else-ca')));

  // A leaf certificate where the CA should be, then an empty file: neither is installed.
  copyFileSync(certs.cert, f.caFile);
  t.equal(await server.reloadTls(), 'failed');
  t.ok(lines.some((l) => /is not a CA certificate/.test(String(l.err))), 'says why');
  writeFileSync(f.caFile, '');
  t.equal(await server.reloadTls(), 'failed');
  t.equal(await status(f.stranger), 200, 'the last good bundle stays');
});

t.test('a missing or unusable client CA file is a startup error', async (t) => {
  const f = fixture(t);
  const certs = issueCert(join(f.dir, 'serving'), f.trusted);
  const base = { source: fakeSource(), decide: recordingDecide(), port: 0, logger: memoryLogger().logger, tlsCertFile: certs.cert, tlsKeyFile: certs.key };
  await t.rejects(createServer({ ...base, clientCaFile: join(f.dir, 'missing.crt') }), { name: 'InputError', message: /client CA.*missing\.crt/ });
  await t.rejects(createServer({ ...base, clientCaFile: certs.cert }), { name: 'InputError', message: /is not a CA certificate/ });
  const empty = join(f.dir, 'empty.crt');
  writeFileSync(empty, 'not a certificate\n');
  await t.rejects(createServer({ ...base, clientCaFile: empty }), { name: 'InputError', message: /no PEM certificate/ });
});
