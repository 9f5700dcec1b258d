// bench/watch-injector.ts: the proxy that adds pod watch events for the live-churn bench. Its figures
// are only worth something if meshguard reads a well-formed watch: injected events never split one of
// the apiserver's lines, carry the apiserver's last resourceVersion (so a resumed watch starts where the
// apiserver's events left off), and everything else passes through unchanged.

import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:https';
import type { ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';

import { podEventLine, podTemplate, startWatchInjector, type WatchInjector } from '../../bench/watch-injector.ts';
import { makeCerts } from '../helpers/certs.ts';
import { until } from '../helpers/until.ts';

const dir = mkdtempSync(join(tmpdir(), 'watch-injector-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const certs = makeCerts(dir);
const ca = readFileSync(certs.caCert);
const tls = { cert: readFileSync(certs.cert), key: readFileSync(certs.key) };

const pod = (name: string): Record<string, unknown> => ({
  apiVersion: 'v1', kind: 'Pod',
  metadata: { name, namespace: 'ns-a', resourceVersion: '3', labels: { app: name }, managedFields: [{ manager: 'x' }] },
  spec: { containers: [{ name: 'c' }] },
});

/** The fake apiserver: a namespace list, and a pod watch the test writes to. */
async function upstream(): Promise<{ server: Server; url: string; watches: ServerResponse[]; seen: string[] }> {
  const watches: ServerResponse[] = [];
  const seen: string[] = [];
  const server = createServer(tls, (req, res) => {
    seen.push(`${req.method} ${req.url} ${req.headers.authorization ?? ''}`);
    if (req.url?.startsWith('/api/v1/pods?') && /[?&]watch=(true|1)(&|$)/.test(req.url)) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
      watches.push(res);
      return;
    }
    if (req.url?.startsWith('/api/v1/services?watch=true')) {
      // A watch whose connection dies after its first event.
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"type":"ADDED","object":{"metadata":{"resourceVersion":"5"}}}\n', () => res.socket?.destroy());
      return;
    }
    if (req.url?.startsWith('/api/v1/namespaces?watch=true')) {
      // A quiet kind's watch: headers now, no event yet.
      res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'watch' });
      res.flushHeaders();
      watches.push(res);
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json', 'x-upstream': 'yes' });
    res.end('{"kind":"Status","code":404}');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  return { server, url: `https://127.0.0.1:${port}`, watches, seen };
}

/** The fake apiserver and the proxy in front of it (its pod templates: `pods`), closed when the test ends. */
async function proxied(t: Test, pods = [pod('p1')]): Promise<{ up: Awaited<ReturnType<typeof upstream>>; inj: WatchInjector }> {
  const up = await upstream();
  t.teardown(() => void up.server.close());
  const api = { request: async () => ({ status: 200, body: JSON.stringify({ items: pods }) }), close: () => undefined };
  const inj = await startWatchInjector({ url: up.url, ca }, tls, api);
  t.teardown(() => inj.close());
  return { up, inj };
}

function get(url: string, path: string, onData?: (text: string) => void): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { ca, headers: { authorization: 'Bearer t0k' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
        onData?.(body);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('injected events fall between the apiserver lines and carry its last resourceVersion', async (t) => {
  const { up, inj } = await proxied(t, [pod('p1'), pod('p2')]);

  // Anything else passes through: status, headers, body, the credentials.
  const other = await get(inj.url, '/api/v1/namespaces');
  t.equal(other.status, 404);
  t.equal(other.headers['x-upstream'], 'yes');
  t.equal(other.body, '{"kind":"Status","code":404}');
  t.match(up.seen[0], /^GET \/api\/v1\/namespaces Bearer t0k$/);

  let received = '';
  const watch = get(inj.url, '/api/v1/pods?watch=true&allowWatchBookmarks=true&resourceVersion=5', (body) => (received = body));
  await until('the pod watch reaches the fake apiserver', () => up.watches.length === 1);
  await until('the proxy counts the pod watch', () => inj.stats().podWatches === 1);
  const w = up.watches[0]!;
  // The apiserver's line arrives in two pieces; the proxy must not write an event between them.
  const line = JSON.stringify({ type: 'MODIFIED', object: { ...pod('p9'), metadata: { name: 'p9', namespace: 'ns-a', resourceVersion: '7' } } }) + '\n';
  w.write(line.slice(0, 40));
  await until('the first piece reaches the client', () => received.length === 40);
  const stop = inj.churn(1000);
  await until('changes wait for the end of the line', () => inj.stats().pending > 0);
  t.equal(received, line.slice(0, 40), 'nothing was written inside the line');
  t.equal(inj.stats().injected, 0);
  w.write(line.slice(40));
  await until('some changes are written', () => inj.stats().injected >= 3);
  const result = await stop();
  w.end();
  const body = (await watch).body;

  t.ok(body.startsWith(line), "the apiserver's line comes first and whole");
  const lines = body.split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as { type: string; object: { metadata: { name: string; resourceVersion: string; labels?: Record<string, string>; managedFields?: unknown } } });
  const injected = lines.slice(1);
  t.equal(injected.length, inj.stats().injected, 'every injected line is whole JSON');
  t.equal(result.ackedAt.length, injected.length, 'one time per written change');
  t.equal(result.sent, injected.length + result.failed);
  for (const ev of injected) {
    t.equal(ev.type, 'MODIFIED');
    t.equal(ev.object.metadata.resourceVersion, '7', "the apiserver's last resourceVersion, not the pod's own");
    t.equal(ev.object.metadata.managedFields, undefined);
    t.match(ev.object.metadata.labels, { app: /^p[12]$/, 'bench.meshguard.io/churn': /^i/ });
  }
  const churnValues = injected.map((e) => e.object.metadata.labels!['bench.meshguard.io/churn']);
  t.equal(new Set(churnValues).size, churnValues.length, 'each change writes a value not written before');
});

t.test('changes made while no pod watch is open wait for the next one, with its resourceVersion', async (t) => {
  const { up, inj } = await proxied(t);
  const stop = inj.churn(1000);
  await until('changes are made', () => inj.stats().pending >= 2);
  t.equal(inj.stats().injected, 0);
  const watch = get(inj.url, '/api/v1/pods?watch=1&resourceVersion=11');
  await until('the queued changes are written', () => inj.stats().injected >= 2);
  const result = await stop();
  await until('the pod watch reaches the fake apiserver', () => up.watches.length === 1);
  up.watches[0]!.end();
  const lines = (await watch).body.split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as { object: { metadata: { resourceVersion: string } } });
  t.ok(lines.length >= 2);
  t.ok(lines.every((l) => l.object.metadata.resourceVersion === '11'), "the watch's own resourceVersion before the apiserver sends any line");
  t.equal(result.ackedAt.length, lines.length);
});

t.test("a quiet watch's headers reach meshguard before any event (its watchdog counts them as a sign of life)", async (t) => {
  const { up, inj } = await proxied(t);
  const headers = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const req = request(`${inj.url}/api/v1/namespaces?watch=true&resourceVersion=4`, { ca }, (res) => {
      resolve(res.headers);
      res.destroy();
    });
    req.on('error', reject);
    req.end();
  });
  t.equal(headers['x-upstream'], 'watch');
  t.equal(inj.stats().podWatches, 0, 'not a pod watch: nothing is injected into it');
});

t.test('changes still queued when the churn stops are failed, and never written later', async (t) => {
  const { up, inj } = await proxied(t);
  const stop = inj.churn(1000);
  await until('changes are queued (no pod watch open)', () => inj.stats().pending >= 3);
  const result = await stop();
  t.ok(result.failed >= 3);
  t.equal(result.ackedAt.length, 0);
  t.equal(result.sent, result.failed);
  t.equal(inj.stats().pending, 0);
  // A pod watch opened afterwards gets nothing from the stopped churn.
  let received = '';
  const watch = get(inj.url, '/api/v1/pods?watch=true&resourceVersion=2', (b) => (received = b));
  await until('the pod watch reaches the fake apiserver', () => up.watches.length === 1);
  const line = JSON.stringify({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '3' } } }) + '\n';
  up.watches[0]!.write(line);
  await until('the bookmark reaches the client', () => received.length >= line.length);
  up.watches[0]!.end();
  t.equal((await watch).body, line, 'only the apiserver line');
  t.equal(result.ackedAt.length, 0, 'the stopped churn counts no later write');
  t.equal(inj.stats().injected, 0);
});

t.test('after an ERROR event in the pod watch (meshguard ends that watch) nothing more is written into it', async (t) => {
  const { up, inj } = await proxied(t);
  let received = '';
  const watch = get(inj.url, '/api/v1/pods?watch=true&resourceVersion=2', (b) => (received = b));
  await until('the pod watch reaches the fake apiserver', () => up.watches.length === 1);
  const gone = JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } }) + '\n';
  up.watches[0]!.write(gone);
  await until('the ERROR line reaches the client', () => received.length >= gone.length);
  const stop = inj.churn(1000);
  await until('changes are queued', () => inj.stats().pending >= 2);
  const result = await stop();
  up.watches[0]!.end();
  t.equal((await watch).body, gone, 'nothing after the ERROR line');
  t.equal(result.ackedAt.length, 0);
  t.equal(inj.stats().injected, 0);
});

t.test('the churned label can be another one (a rollout-like label no class reads)', async (t) => {
  const { up, inj } = await proxied(t);
  const watch = get(inj.url, '/api/v1/pods?watch=true&resourceVersion=8');
  await until('the pod watch reaches the fake apiserver', () => up.watches.length === 1);
  await until('the proxy counts the pod watch', () => inj.stats().podWatches === 1);
  const stop = inj.churn(1000, 'pod-template-hash');
  await until('some changes are written', () => inj.stats().injected >= 2);
  await stop();
  up.watches[0]!.end();
  const lines = (await watch).body.split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as { object: { metadata: { labels: Record<string, string> } } });
  t.ok(lines.length >= 2);
  for (const l of lines) {
    t.match(l.object.metadata.labels, { app: 'p1', 'pod-template-hash': /^i/ });
    t.notOk('bench.meshguard.io/churn' in l.object.metadata.labels);
  }
});

t.test('a watch whose apiserver connection dies is cut, not left open or ended with a line of the proxy\'s', async (t) => {
  const { up, inj } = await proxied(t);
  // Another kind's watch (passed through as it is) and the pod watch (read line by line).
  let received = '';
  await t.rejects(get(inj.url, '/api/v1/services?watch=true&resourceVersion=4', (b) => (received = b)), 'the client sees the stream fail');
  t.equal(received, '{"type":"ADDED","object":{"metadata":{"resourceVersion":"5"}}}\n', 'what the apiserver sent, and nothing after it');
  let podReceived = '';
  const pod = get(inj.url, '/api/v1/pods?watch=true&resourceVersion=2', (b) => (podReceived = b));
  await until('the pod watch reaches the fake apiserver', () => up.watches.length === 1);
  up.watches[0]!.write('{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"3"}}}\n', () => up.watches[0]!.socket?.destroy());
  await t.rejects(pod, 'the pod watch fails too');
  t.notMatch(podReceived, /watch-injector/);
});

t.test('an event line is the pod as served, less managedFields, with the resourceVersion and the label filled in', async (t) => {
  const served = { ...pod('p1'), status: { phase: 'Running', podIP: '10.0.0.1' } };
  const line = podEventLine(podTemplate(served), '42', 'bench.meshguard.io/churn', 'i-1');
  t.ok(line.endsWith('}\n') && line.indexOf('\n') === line.length - 1, 'one line');
  const ev = JSON.parse(line) as { type: string; object: { metadata: Record<string, unknown> } & Record<string, unknown> };
  t.equal(ev.type, 'MODIFIED');
  const { managedFields: _m, ...metadata } = (served as unknown as { metadata: Record<string, unknown> }).metadata;
  t.same(ev.object, { ...served, metadata: { ...metadata, resourceVersion: '42', labels: { app: 'p1', 'bench.meshguard.io/churn': 'i-1' } } }, 'everything else as served');
  t.equal(ev.object.metadata['managedFields'], undefined);

  // A pod that has the label already (a rollout's pod-template-hash): changed in place, never sent twice.
  const had = { ...pod('p2'), metadata: { name: 'p2', labels: { 'pod-template-hash': 'old', app: 'p2' } } };
  const hadLine = podEventLine(podTemplate(had), '7', 'pod-template-hash', 'new');
  t.same((JSON.parse(hadLine) as { object: { metadata: { labels: unknown } } }).object.metadata.labels, { 'pod-template-hash': 'new', app: 'p2' });
  t.equal(hadLine.split('"pod-template-hash"').length, 2, 'the key once in the text, as an apiserver sends it');
  t.notMatch(hadLine, /"old"/);
  // The template is not changed by an event: the next one starts from the pod as served.
  const tpl = podTemplate(served);
  podEventLine(tpl, '1', 'x', 'first');
  t.notMatch(podEventLine(tpl, '2', 'y', 'second'), /"first"/);
  // No labels at all, and a key and value that need escaping.
  const bare = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p3' } };
  const parsed = JSON.parse(podEventLine(podTemplate(bare), 'a"b', 'k\\"x', 'v\n"')) as { object: { metadata: { resourceVersion: string; labels: unknown } } };
  t.same(parsed.object.metadata.labels, { 'k\\"x': 'v\n"' }, 'escaped as JSON strings');
  t.equal(parsed.object.metadata.resourceVersion, 'a"b');
  // The marks are control characters no apiserver object carries; one that did is refused, not mangled.
  t.throws(() => podTemplate({ ...bare, metadata: { name: 'p4', annotations: { x: '\u0001rv\u0001' } } }), /mark is missing or repeated/);
  // Everything before the resourceVersion is the pod's own text: a labels mark there stays as it was.
  const odd = JSON.parse(podEventLine(podTemplate({ ...bare, metadata: { name: 'p5' }, spec: { x: '\u0001labels\u0001' } }), '1', 'k', 'v')) as { object: { spec: unknown; metadata: { labels: unknown } } };
  t.same(odd.object.spec, { x: '\u0001labels\u0001' });
  t.same(odd.object.metadata.labels, { k: 'v' });
});
