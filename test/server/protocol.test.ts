// The webhook protocol over real HTTPS: the AdmissionReview round trip, the error statuses, probes,
// metrics and the decision log line.

import t from 'tap';

import { toAdmissionReview } from '../../src/admission/review.ts';
import type { Decision } from '../../src/core/decision.ts';
import { cachingDecide } from '../../src/verdict/cache.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { turn } from '../helpers/until.ts';
import { allow, finding, postReview, recordingDecide, review, scrape, send, startServer, fakeSource } from './harness.ts';

t.test('allowed review: uid echoed, envelope, decide sees the Change and the state', async (t) => {
  const decide = recordingDecide();
  const s = await startServer(t, { decide });
  const body = review();
  const uid = (body.request as { uid: string }).uid;
  t.equal(s.server.lastReviewAt, undefined, 'no review yet (the background audit reads this to find quiet moments)');
  const sent = performance.now();
  const res = await postReview(s.url, body, { ca: s.ca });
  t.equal(res.status, 200);
  t.ok(s.server.lastReviewAt !== undefined && s.server.lastReviewAt >= sent, 'the review was heard as it arrived');
  t.match(res.headers['content-type'], /application\/json/);
  t.same(res.json, { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid, allowed: true } });
  t.equal(decide.calls.length, 1);
  const c = decide.calls[0]!;
  t.equal(c.uid, uid);
  t.equal(c.operation, 'CREATE');
  t.equal(c.kind, 'CiliumNetworkPolicy');
  t.equal(c.namespace, 'blue');
  t.equal(c.name, 'deny-all');
  t.equal(c.dryRun, false);
  t.same(c.userInfo, { username: 'alice', groups: ['system:authenticated'] });
  t.same((c.object as { spec?: unknown }).spec, { endpointSelector: {}, egress: [{}] });
  t.equal(c.oldObject, undefined);
});

t.test('docsUrl: the server links findings where it is told (the config\'s docs.baseUrl)', async (t) => {
  const decide = recordingDecide(() => ({ allowed: false, skipped: [], findings: [finding('dns-egress-missing', 'deny', 'drops DNS'), finding('dual-l7-authz', 'warn', 'two L7 layers')] }));
  const s = await startServer(t, { decide, docsUrl: (rule) => `https://docs.example.com/r/${rule}.md` });
  const r = (await postReview(s.url, review(), { ca: s.ca })).json.response;
  t.equal(r.status.message, 'meshguard denied this request:\n[dns-egress-missing] drops DNS Docs: https://docs.example.com/r/dns-egress-missing.md');
  t.same(r.warnings, ['[dual-l7-authz] two L7 layers', '  Docs: https://docs.example.com/r/dual-l7-authz.md']);
});

t.test('dryRun is passed through to decide', async (t) => {
  const decide = recordingDecide();
  const s = await startServer(t, { decide });
  await postReview(s.url, review({ dryRun: true }), { ca: s.ca });
  await postReview(s.url, review({ dryRun: false }), { ca: s.ca });
  t.same(decide.calls.map((c) => c.dryRun), [true, false]);
});

t.test('DELETE with oldObject only reaches decide with the old object', async (t) => {
  const decide = recordingDecide();
  const s = await startServer(t, { decide });
  const old = { apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: 'allow-dns', namespace: 'blue' }, spec: { endpointSelector: {} } };
  const res = await postReview(s.url, review({ operation: 'DELETE', name: 'allow-dns', object: null, oldObject: old }), { ca: s.ca });
  t.equal(res.status, 200);
  t.equal(res.json.response.allowed, true);
  const c = decide.calls[0]!;
  t.equal(c.operation, 'DELETE');
  t.equal(c.object, undefined);
  t.equal(c.oldObject?.metadata.name, 'allow-dns');
});

t.test('deny, warn and audit shapes', async (t) => {
  const decide = recordingDecide(() => ({
    allowed: false,
    skipped: [],
    findings: [
      // A message kind that does not name its victims (list-victims): the denial appends them.
      finding('webhook-ingress-apiserver-entity', 'deny', 'default-deny ingress cuts xDS for 3 pods in blue', {
        code: 'webhook-ingress-apiserver-entity/blocks-webhook', fix: 'allow 15012 from the cluster', victims: ['blue/a'], victimCount: 3,
      }),
      finding('apiserver-egress-missing', 'deny', 'pods lose the kube-apiserver', { fix: 'add toEntities: [kube-apiserver]' }),
      finding('l7-policy-split-brain', 'warn', 'L7 rules are enforced by both Cilium and the waypoint'),
      finding('peer-auth-port-mismatch', 'audit', 'port-level mTLS names a service port'),
    ],
  }));
  const s = await startServer(t, { decide });
  const body = review();
  const res = await postReview(s.url, body, { ca: s.ca });
  t.equal(res.status, 200);
  const r = res.json.response;
  t.equal(r.uid, (body.request as { uid: string }).uid);
  t.equal(r.allowed, false);
  t.equal(r.status.code, 403);
  t.equal(r.status.reason, 'Forbidden');
  const docs = 'https://github.com/meshguard/meshguard/blob/main/docs/rules';
  t.equal(
    r.status.message,
    'meshguard denied this request:\n' +
      `[webhook-ingress-apiserver-entity] default-deny ingress cuts xDS for 3 pods in blue Affected: blue/a and 2 more. Fix: allow 15012 from the cluster Docs: ${docs}/webhook-ingress-apiserver-entity.md\n` +
      `[apiserver-egress-missing] pods lose the kube-apiserver Fix: add toEntities: [kube-apiserver] Docs: ${docs}/apiserver-egress-missing.md`,
  );
  t.same(r.warnings, ['[l7-policy-split-brain] L7 rules are enforced by both Cilium and the waypoint', `  Docs: ${docs}/l7-policy-split-brain.md`]);
  t.same(r.auditAnnotations, { 'peer-auth-port-mismatch': 'port-level mTLS names a service port' });

  // One decision line, without the object, plus one line per audit finding.
  const decisions = s.lines.filter((l) => l.msg === 'admission decision');
  t.equal(decisions.length, 1);
  const d = decisions[0]!;
  t.match(d, {
    uid: r.uid, kind: 'CiliumNetworkPolicy.cilium.io', namespace: 'blue', name: 'deny-all', operation: 'CREATE',
    dryRun: false, user: 'alice', verdict: 'denied',
    rules: ['webhook-ingress-apiserver-entity:deny', 'apiserver-egress-missing:deny', 'l7-policy-split-brain:warn', 'peer-auth-port-mismatch:audit'],
  });
  t.type(d.latencyMs, 'number');
  t.notOk(JSON.stringify(s.lines).includes('endpointSelector'), 'no object content in logs');
  const audits = s.lines.filter((l) => l.msg === 'audit finding');
  t.equal(audits.length, 1);
  t.match(audits[0], { uid: r.uid, rule: 'peer-auth-port-mismatch', message: 'port-level mTLS names a service port' });
});

t.test('many long warnings stay within the apiserver limits', async (t) => {
  const findings = Array.from({ length: 80 }, (_, i) => finding(`rule-${i}`, 'warn', `warning number ${i} `.repeat(20)));
  const s = await startServer(t, { decide: recordingDecide(() => ({ allowed: true, skipped: [], findings })) });
  const res = await postReview(s.url, review(), { ca: s.ca });
  const warnings: string[] = res.json.response.warnings;
  t.ok(warnings.every((w) => [...w].length <= 120), 'each warning at most 120 characters');
  t.ok(Buffer.byteLength(warnings.join(''), 'utf8') < 4096, 'total below 4 KiB');
  t.ok(warnings.length < 80);
  t.match(warnings.at(-1), /^meshguard: \d+ more warnings not shown$/);
  // A finding's wrapped lines stay together; the note counts findings left out.
  const shown = warnings.slice(0, -1).filter((w) => !w.startsWith('  ')).length;
  t.equal(warnings.at(-1), `meshguard: ${80 - shown} more warnings not shown`);
  t.ok(warnings[0]!.startsWith('[rule-0] warning number 0') && warnings[1]!.startsWith('  '), 'a long finding is wrapped, not cut');
});

t.test('400: malformed JSON, empty body, schema failures', async (t) => {
  const decide = recordingDecide();
  const s = await startServer(t, { decide });
  const bad = async (body: string, what: string, re: RegExp) => {
    const res = await send(s.url, '/validate', { ca: s.ca, body });
    t.equal(res.status, 400, what);
    t.equal(res.json?.error, 'Bad Request', `${what}: JSON error`);
    t.match(res.json?.message, re, `${what}: message`);
  };
  await bad('{"apiVersion":', 'truncated JSON', /JSON/i);
  await bad('', 'empty body', /empty|body/i);
  await bad('[]', 'array', /invalid AdmissionReview/);
  await bad(JSON.stringify({ ...review(), apiVersion: 'admission.k8s.io/v1beta1' }), 'v1beta1', /apiVersion/);
  const r = review() as { request: Record<string, unknown> };
  await bad(JSON.stringify({ ...r, request: { ...r.request, uid: 42 } }), 'numeric uid (no coercion)', /uid/);
  await bad(JSON.stringify({ ...r, request: { ...r.request, uid: undefined } }), 'missing uid', /uid/);
  await bad(JSON.stringify({ ...r, request: { ...r.request, operation: 'PATCH' } }), 'unknown operation', /operation/);
  await bad(JSON.stringify({ ...r, request: { ...r.request, object: null } }), 'CREATE without object', /object/);
  await bad(JSON.stringify({ ...r, request: { ...r.request, operation: 'DELETE', oldObject: null } }), 'DELETE without oldObject', /oldObject/);
  await bad(JSON.stringify({ ...r, request: { ...r.request, object: { metadata: { labels: { a: 1 } } } } }), 'non-string label', /labels/);
  await bad('{"__proto__":{"x":1}}', 'prototype pollution', /.+/);
  t.equal(decide.calls.length, 0, 'decide never called for invalid input');
});

t.test('415 for non-JSON content types, 413 over the body limit', async (t) => {
  const s = await startServer(t, { bodyLimitBytes: 64 * 1024 });
  const body = JSON.stringify(review());
  for (const ct of ['text/plain', 'application/x-www-form-urlencoded', 'application/yaml']) {
    const res = await send(s.url, '/validate', { ca: s.ca, body, contentType: ct });
    t.equal(res.status, 415, ct);
    t.equal(res.json?.error, 'Unsupported Media Type');
  }
  const noType = await send(s.url, '/validate', { ca: s.ca, body, contentType: null });
  t.equal(noType.status, 415, 'missing content type');
  const withCharset = await send(s.url, '/validate', { ca: s.ca, body, contentType: 'application/json; charset=utf-8' });
  t.equal(withCharset.status, 200, 'charset parameter accepted');

  const big = review({ object: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' }, data: { blob: 'x'.repeat(100 * 1024) } } });
  const res = await send(s.url, '/validate', { ca: s.ca, body: JSON.stringify(big) });
  t.equal(res.status, 413);
  t.equal(res.json?.error, 'Payload Too Large');
});

t.test('default body limit accepts object + oldObject of 3 MiB each', async (t) => {
  const decide = recordingDecide();
  const s = await startServer(t, { decide });
  const cm = (v: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'big', namespace: 'kube-system' }, data: { blob: v } });
  const big = 'y'.repeat(3 * 1024 * 1024 - 200);
  const body = review({
    kind: { group: '', version: 'v1', kind: 'ConfigMap' }, namespace: 'kube-system', name: 'big', operation: 'UPDATE',
    object: cm(big), oldObject: cm(big),
  });
  const res = await postReview(s.url, body, { ca: s.ca, timeoutMs: 30_000 });
  t.equal(res.status, 200);
  t.equal(res.json.response.allowed, true);
  t.equal(decide.calls[0]?.kind, 'ConfigMap');
});

t.test('a throwing decide gives a 500 JSON error and the server keeps serving', async (t) => {
  let fail = true;
  const s = await startServer(t, {
    decide: recordingDecide(() => {
      if (fail) throw new Error('boom in a rule');
      return allow;
    }),
  });
  const res = await postReview(s.url, review(), { ca: s.ca });
  t.equal(res.status, 500);
  t.same(res.json, { error: 'Internal Server Error', message: 'internal error while evaluating the request' });
  t.ok(s.lines.some((l) => l.msg === 'evaluation failed'));
  fail = false;
  const ok = await postReview(s.url, review(), { ca: s.ca });
  t.equal(ok.status, 200);
});

t.test('probes and unknown routes', async (t) => {
  const source = fakeSource(false);
  const s = await startServer(t, { source });
  const get = (p: string) => send(s.url, p, { ca: s.ca, method: 'GET', contentType: null });
  t.equal((await get('/healthz')).status, 200);
  t.equal((await get('/readyz')).status, 503, 'not ready before the state synced');
  source.setSynced(true);
  t.equal((await get('/readyz')).status, 200);
  const nf = await get('/nope');
  t.equal(nf.status, 404);
  t.same(nf.json, { error: 'Not Found', message: 'no route GET /nope' }, 'a JSON 404 naming method and path');
  t.equal((await get('/validate')).status, 404, 'GET /validate is not a route');
  t.equal((await get('/metrics')).status, 404, 'metrics are not on the webhook port');
});

t.test('the monitoring listener: plain HTTP, metrics and probes, nothing else', async (t) => {
  const source = fakeSource(false);
  const s = await startServer(t, { source });
  t.match(s.metricsUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
  t.not(new URL(s.metricsUrl).port, new URL(s.url).port, 'a port of its own');
  const get = (p: string) => send(s.metricsUrl, p, { ca: s.ca, method: 'GET', contentType: null });
  t.equal((await get('/healthz')).status, 200);
  const notReady = await get('/readyz');
  t.equal(notReady.status, 503, 'readiness is the same as on the webhook port');
  t.same(notReady.json, { status: 'state not synced' });
  source.setSynced(true);
  t.equal((await get('/readyz')).status, 200);
  const m = await scrape(s);
  t.equal(m.status, 200);
  t.match(m.text, /meshguard_admission_requests_total/);
  const validate = await send(s.metricsUrl, '/validate', { ca: s.ca, body: JSON.stringify(review()) });
  t.equal(validate.status, 404, 'no reviews answered in plain HTTP');
  t.same(validate.json, { error: 'Not Found', message: 'no route POST /validate' }, 'the same JSON 404 as the webhook port');
  t.equal((await send(s.metricsUrl, '/metrics', { ca: s.ca, body: 'x', contentType: 'text/plain' })).status, 404, 'GET only');
});

t.test('without metricsPort there is no monitoring listener', async (t) => {
  const s = await startServer(t, { metricsPort: undefined });
  t.equal(s.server.metricsUrl, undefined);
  t.equal(s.server.monitor, undefined);
});

t.test('readiness waits for the warm-up, and probes are answered while it runs', async (t) => {
  const source = fakeSource(false);
  let finish!: () => void;
  let started = 0;
  // The server's own 250 ms check for a synced state is on a clock that does not move: here, probes
  // start the warm-up.
  const s = await startServer(t, {
    source,
    timers: new FakeClock(),
    warmUp: () => {
      started++;
      return new Promise<void>((r) => (finish = r));
    },
  });
  const ready = async () => {
    const r = await send(s.url, '/readyz', { ca: s.ca, method: 'GET', contentType: null });
    return `${r.status} ${r.json.status}`;
  };
  s.server.startWarmUp();
  t.equal(started, 0, 'no warm-up before the state is synced');
  t.equal(await ready(), '503 state not synced');
  source.setSynced(true);
  t.equal(await ready(), '503 warming up', 'the first synced probe starts the warm-up');
  t.equal(started, 1);
  t.equal(await ready(), '503 warming up');
  const during = await postReview(s.url, review(), { ca: s.ca });
  t.equal(during.status, 200, 'reviews are answered during the warm-up');
  s.server.startWarmUp();
  t.equal(started, 1, 'started once');
  finish();
  await new Promise((r) => setImmediate(r));
  t.equal(await ready(), '200 ready');
});

t.test('the warm-up starts as soon as the state syncs, without waiting for a probe, and hears about shutdown', async (t) => {
  const source = fakeSource(false);
  let started = 0;
  let stop: (() => boolean) | undefined;
  // The server checks for a synced state every 250 ms, on this clock.
  const clock = new FakeClock();
  const s = await startServer(t, {
    source,
    drainSeconds: 1,
    timers: clock,
    warmUp: (shouldStop) => {
      started++;
      stop = shouldStop;
      return new Promise<void>(() => undefined); // still running when shutdown begins
    },
  });
  clock.advance(1000);
  await turn();
  t.equal(started, 0, 'not before the state is synced');
  source.setSynced(true);
  clock.advance(249);
  await turn();
  t.equal(started, 0, 'not before the next check');
  clock.advance(1);
  await turn();
  t.equal(started, 1, 'started by itself once synced, at the next check');
  t.equal(stop?.(), false);
  const done = s.server.shutdown();
  t.equal(stop?.(), true, 'told to stop when shutdown begins');
  clock.advance(1000);
  await done;
});

t.test('no warm-up starts once shutdown has begun', async (t) => {
  const source = fakeSource(false);
  let started = 0;
  const clock = new FakeClock();
  const s = await startServer(t, { source, drainSeconds: 1, timers: clock, warmUp: () => void started++ });
  const done = s.server.shutdown();
  source.setSynced(true);
  s.server.startWarmUp();
  // Through the drain, with the 250 ms checks for a synced state on the way.
  clock.advance(999);
  await turn();
  t.equal(started, 0);
  clock.advance(1);
  await done;
  t.equal(started, 0);
});

t.test('a failed warm-up is logged and does not keep the webhook unready', async (t) => {
  const s = await startServer(t, { warmUp: () => Promise.reject(new Error('boom')) });
  s.server.startWarmUp();
  await new Promise((r) => setImmediate(r));
  const r = await send(s.url, '/readyz', { ca: s.ca, method: 'GET', contentType: null });
  t.equal(r.status, 200);
  t.ok(s.lines.some((l) => l.msg === 'warm-up failed' && l.err === 'boom'));
});

t.test('metrics: verdicts, findings, latency, state gauges', async (t) => {
  const source = fakeSource(true);
  source.state.upsert('Pod', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'blue' } });
  let deny = false;
  const s = await startServer(t, {
    source,
    decide: recordingDecide(() =>
      deny ? { allowed: false, skipped: [], findings: [finding('dns-egress-missing', 'deny', 'x')] } : allow,
    ),
  });
  await postReview(s.url, review(), { ca: s.ca });
  deny = true;
  await postReview(s.url, review(), { ca: s.ca });
  await send(s.url, '/validate', { ca: s.ca, body: '{' });
  const m = await scrape(s);
  t.equal(m.status, 200);
  t.match(m.headers['content-type'], /text\/plain/);
  t.match(m.text, /meshguard_admission_requests_total\{verdict="allowed"\} 1\b/);
  t.match(m.text, /meshguard_admission_requests_total\{verdict="denied"\} 1\b/);
  t.match(m.text, /meshguard_admission_requests_total\{verdict="invalid"\} 1\b/);
  t.match(m.text, /meshguard_findings_total\{rule="dns-egress-missing",action="deny"\} 1\b/);
  t.match(m.text, /meshguard_admission_duration_seconds_count 2\b/);
  t.match(m.text, /meshguard_admission_duration_seconds_bucket\{le="0.0005"\}/);
  t.match(m.text, /meshguard_state_synced 1\b/);
  t.match(m.text, /meshguard_state_objects\{kind="Pod"\} 1\b/);
  t.match(m.text, /meshguard_state_seconds_since_last_event 1.5\b/);
  t.match(m.text, /meshguard_state_watch_events_total\{kind="Pod",result="changed"\} 2\b/);
  t.match(m.text, /meshguard_state_watch_events_total\{kind="Pod",result="unchanged"\} 5\b/);
  t.match(m.text, /meshguard_tls_reloads_total\{result="success"\} 0\b/);
  t.match(m.text, /process_resident_memory_bytes/);
  source.setSynced(false);
  const m2 = await scrape(s);
  t.match(m2.text, /meshguard_state_synced 0\b/);
});

t.test('keep-alive: several requests share one TLS connection', async (t) => {
  const { Agent } = await import('node:https');
  const s = await startServer(t);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const answers = [];
  for (let i = 0; i < 5; i++) answers.push(await postReview(s.url, review(), { ca: s.ca, agent }));
  t.ok(answers.every((a) => a.status === 200));
  t.same(answers.map((a) => a.reused), [false, true, true, true, true]);
});

t.test('a missing or mismatched certificate is a clear startup error', async (t) => {
  const { createServer } = await import('../../src/server/server.ts');
  const { memoryLogger } = await import('./harness.ts');
  const { makeCerts, issueCert } = await import('../helpers/certs.ts');
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'meshguard-badcert-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const a = makeCerts(dir);
  const b = issueCert(dir, a, { name: 'other' });
  const base = { source: fakeSource(), decide: recordingDecide(), port: 0, logger: memoryLogger().logger };
  await t.rejects(createServer({ ...base, tlsCertFile: join(dir, 'missing.crt'), tlsKeyFile: a.key }), { name: 'InputError', message: /missing\.crt/ });
  await t.rejects(createServer({ ...base, tlsCertFile: a.cert, tlsKeyFile: b.key }), { name: 'InputError', message: /does not match/ });
});

t.test('a client that stalls mid-body is answered 408 and cut, not left hanging', async (t) => {
  const { request } = await import('node:https');
  const s = await startServer(t, { requestTimeoutMs: 400 });
  // Node cuts the request at its deadline, checking every 100 ms (a quarter of it): what meshguard sets
  // is what it was given. (How soon Node acts on it is Node's timing, not asserted here.)
  const server = s.server.app.server as import('node:https').Server;
  t.equal(server.requestTimeout, 400);
  t.equal(server.headersTimeout, 400);
  t.equal((server as unknown as { connectionsCheckingInterval: number }).connectionsCheckingInterval, 100);
  const outcome = await new Promise<string>((resolve) => {
    const req = request(new URL('/validate', s.url), {
      method: 'POST', ca: s.ca, agent: false, headers: { 'content-type': 'application/json', 'content-length': '1000' },
    });
    req.on('response', (res) => {
      res.resume();
      resolve(`status ${res.statusCode}`);
    });
    req.on('error', (e) => resolve(`error ${(e as NodeJS.ErrnoException).code ?? e.message}`));
    req.write('{"apiVersion":');
    // Only a hang detector: the deadline is 400 ms.
    setTimeout(() => resolve('hang'), 60_000).unref();
  });
  t.not(outcome, 'hang');
  t.match(outcome, /status 408|error (ECONNRESET|EPIPE)/);
  t.equal((await send(s.url, '/healthz', { ca: s.ca, method: 'GET', contentType: null })).status, 200);
});

t.test('verdict cache: a repeated review is answered from memory, logged as cached and counted', async (t) => {
  const source = fakeSource(true);
  const inner = recordingDecide(() => ({ allowed: false, skipped: [], findings: [finding('dns-egress-missing', 'deny', 'x')] }));
  const decide = cachingDecide(inner);
  const s = await startServer(t, { source, decide, verdictCacheStats: () => decide.stats(source.state) });
  const first = await postReview(s.url, review(), { ca: s.ca });
  // A new uid and a dry run: the same request for every rule.
  const again = review({ dryRun: true });
  const second = await postReview(s.url, again, { ca: s.ca });
  t.equal(inner.calls.length, 1, 'decided once');
  t.equal(second.json.response.uid, (again.request as { uid: string }).uid, 'the answer carries its own uid');
  t.same({ ...second.json.response, uid: '' }, { ...first.json.response, uid: '' }, 'the same answer');
  const lines = s.lines.filter((l) => l.msg === 'admission decision');
  t.equal(lines[0]!.cached, undefined);
  t.equal(lines[1]!.cached, true);
  t.equal(lines[1]!.dryRun, true);
  let m = await scrape(s);
  t.match(m.text, /meshguard_verdict_cache_lookups_total\{result="hit"\} 1\b/);
  t.match(m.text, /meshguard_verdict_cache_lookups_total\{result="miss"\} 1\b/);
  t.match(m.text, /meshguard_verdict_cache_entries 1\b/);
  t.match(m.text, /meshguard_findings_total\{rule="dns-egress-missing",action="deny"\} 2\b/, 'findings of cached answers count');
  // A watch event: the state changes, the request is evaluated again.
  source.state.upsert('Pod', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'blue' } });
  m = await scrape(s);
  t.match(m.text, /meshguard_verdict_cache_entries 0\b/, 'entries of the old state are not counted (nor kept)');
  await postReview(s.url, review(), { ca: s.ca });
  t.equal(inner.calls.length, 2);
  m = await scrape(s);
  t.match(m.text, /meshguard_verdict_cache_lookups_total\{result="miss"\} 2\b/);
});

t.test('verdict cache: the cached answer is byte for byte the one toAdmissionReview gives, for any uid', async (t) => {
  const decision: Decision = { allowed: false, skipped: [], findings: [finding('dns-egress-missing', 'deny', 'a "quoted" message \\ with a backslash'), finding('x', 'warn', 'w')] };
  const decide = cachingDecide(recordingDecide(() => decision));
  const s = await startServer(t, { decide });
  const uids = ['plain', 'with "quotes" and \\ backslash', 'line\u2028separator', 'lone \ud800 surrogate'];
  for (const [i, uid] of uids.entries()) {
    const body = review();
    (body.request as { uid: string }).uid = uid;
    const res = await postReview(s.url, body, { ca: s.ca });
    t.equal(res.status, 200);
    // (Assertion names without the uid: TAP output breaks on U+2028.)
    t.ok(res.text === JSON.stringify(toAdmissionReview(uid, decision)), `uid #${i}: the same bytes`);
    t.match(res.headers['content-type'], /^application\/json/);
  }
  t.equal(decide.stats().hits, 3, 'all but the first from the cache');
});

t.test('without a verdict cache the cache metrics read zero', async (t) => {
  const s = await startServer(t);
  await postReview(s.url, review(), { ca: s.ca });
  await postReview(s.url, review(), { ca: s.ca });
  const m = await scrape(s);
  t.match(m.text, /meshguard_verdict_cache_lookups_total\{result="hit"\} 0\b/);
  t.match(m.text, /meshguard_verdict_cache_entries 0\b/);
});

t.test('answers are exactly toAdmissionReview as JSON, fresh or from the verdict cache, each with its own uid', async (t) => {
  const source = fakeSource(true);
  const decisions: Decision[] = [
    allow,
    { allowed: false, skipped: [], findings: [finding('dns-egress-missing', 'deny', 'pods "web" lose DNS\n\tsee \\docs\\ <here>'), finding('l7-on-non-sidecar', 'warn', 'ünïcödé → ok')] },
    { allowed: true, skipped: [], notices: ['state not synced'], findings: [finding('hbone-15008-blocked', 'audit', 'would break "ambient"', { wouldDeny: true }), finding('dns-egress-missing', 'warn', 'old', { preexisting: true })] },
  ];
  let next = 0;
  const inner = recordingDecide(() => decisions[next]!);
  const decide = cachingDecide(inner);
  const s = await startServer(t, { source, decide });
  for (let i = 0; i < decisions.length; i++) {
    next = i;
    // Each request is new for the cache (another name); the second is the same request again: a hit.
    const over = { name: `n-${i}`, object: { ...(review().request as { object: Record<string, unknown> }).object, metadata: { name: `n-${i}`, namespace: 'blue' } } };
    for (const uid of [`uid-"${i}"-\\-\u2028`, `second-${i}`]) {
      const body = review({ ...over, uid });
      const res = await postReview(s.url, body, { ca: s.ca });
      t.equal(res.status, 200);
      const expected = { ...decisions[i]!, cached: uid.startsWith('second') };
      t.equal(res.text, JSON.stringify(toAdmissionReview(uid, expected)), `decision ${i}, ${uid.startsWith('second') ? 'cached' : 'fresh'}: the same bytes`);
    }
  }
  t.equal(inner.calls.length, decisions.length, 'each second request was answered from the cache');
});
