// Who gets answers from meshguard, with a real kube-apiserver in front of it:
//  - client certificates: the apiserver is configured (AdmissionConfiguration -> WebhookAdmissionConfiguration
//    -> kubeconfig) to present a client certificate to meshguard, which runs with --client-ca. Its
//    denials come through; a direct call without the certificate is refused; a meshguard trusting
//    another CA refuses the apiserver, which then fails the call (failurePolicy Fail), not meshguard.
//  - the connection cap: with meshguard's connections all taken, the apiserver's call is refused and
//    failurePolicy decides; once a connection frees up, meshguard answers again.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { issueCert, makeCa } from '../helpers/certs.ts';
import {
  DEFAULT_PROBE,
  ensureProbeFixture,
  freePort,
  POLICY_RULES,
  registerWebhook,
  startControlPlane,
  startMeshguard,
  unregisterWebhook,
  waitFor,
  type KubectlResult,
  type Meshguard,
} from './harness.ts';
import { out } from './scenario.ts';

/** POST a review to meshguard directly, optionally with a client certificate. */
function postDirect(mg: Meshguard, client?: { cert: Buffer; key: Buffer }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'direct-1' } });
    const req = request(new URL('/validate', mg.url), {
      method: 'POST', ca: mg.caPem, agent: false, timeout: 10_000,
      headers: { 'content-type': 'application/json' },
      ...(client ?? {}),
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end(body);
  });
}

/** A dry-run apply of the known-bad probe policy (default-deny egress that loses DNS). */
const applyBad = (kubectl: (args: string[], input?: string) => Promise<KubectlResult>) =>
  kubectl(['apply', '--dry-run=server', '-f', '-'], DEFAULT_PROBE.manifest);

const metric = (text: string, line: RegExp): number => Number(line.exec(text)?.[1] ?? NaN);

t.test('client certificates and the connection cap through a real apiserver', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meshguard-e2e-access-'));
  // The CA that signs the apiserver's client certificate (and nothing else), and an unrelated one.
  const clientCa = makeCa(join(dir, 'client-ca'), 'e2e-apiserver-client-ca');
  const apiserverCert = issueCert(join(dir, 'client-ca'), clientCa, { name: 'apiserver-client', cn: 'kube-apiserver', usage: 'client' });
  const otherCa = makeCa(join(dir, 'other-ca'), 'e2e-other-ca');
  const stranger = issueCert(join(dir, 'other-ca'), otherCa, { name: 'stranger', cn: 'stranger', usage: 'client' });
  // Webhook URLs are https://127.0.0.1:PORT: the apiserver looks its client certificate up by host:port,
  // so the ports are chosen before it starts.
  const [goodPort, wrongCaPort] = [await freePort(), await freePort()];
  const cp = await startControlPlane({
    webhookClientCerts: {
      [`127.0.0.1:${goodPort}`]: apiserverCert,
      [`127.0.0.1:${wrongCaPort}`]: apiserverCert,
    },
  });
  const started: Meshguard[] = [];
  t.teardown(async () => {
    for (const mg of started) await mg.stop({ kill: true });
    await cp.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  t.teardown(() => {
    if (t.passing()) return;
    for (const mg of started) t.comment(`meshguard ${mg.url} log (last 3000 chars):\n${mg.logs().slice(-3000)}`);
    t.comment(`apiserver log (last 3000 chars):\n${cp.logs().slice(-3000)}`);
  });
  const { kubectl } = cp;
  await ensureProbeFixture(kubectl);

  const mg = await startMeshguard({ kubeconfigPath: cp.kubeconfigPath, port: goodPort, extraArgs: ['--client-ca', clientCa.caCert] });
  started.push(mg);

  await t.test('with the client certificate configured, meshguard\'s denial comes through the apiserver', async (t) => {
    // registerWebhook waits until a dry run of the bad policy is denied by meshguard's rule.
    await registerWebhook(kubectl, { url: mg.url, caBundle: mg.caBundle, failurePolicy: 'Fail', timeoutSeconds: 5, rules: POLICY_RULES });
    const r = await applyBad(kubectl);
    t.equal(r.code, 1, out(r));
    t.match(r.stderr, /admission webhook "e2e\.meshguard\.io" denied the request: meshguard denied this request:/);
    t.match(r.stderr, /\[dns-egress-missing\]/);
    const m = (await mg.metrics()).body;
    t.equal(metric(m, /^meshguard_client_auth_refusals_total\{reason="no-certificate"\} (\d+)/m), 0, 'the apiserver never came without its certificate');
    t.equal(metric(m, /^meshguard_client_auth_refusals_total\{reason="untrusted-certificate"\} (\d+)/m), 0);
  });

  await t.test('a direct call without the apiserver\'s certificate is refused', async (t) => {
    const none = await postDirect(mg);
    t.equal(none.status, 401);
    t.match(JSON.parse(none.body), { error: 'Unauthorized', message: 'a client certificate is required', kind: 'Status', code: 401 });
    const other = await postDirect(mg, { cert: readFileSync(stranger.cert), key: readFileSync(stranger.key) });
    t.equal(other.status, 403);
    t.match(JSON.parse(other.body).message, /^client certificate not accepted/);
    t.equal((await mg.get('/readyz')).status, 200, 'the probes need no certificate');
    t.match(mg.logs(), /"msg":"client authentication failed"/);
  });

  await t.test('meshguard trusting another CA: the apiserver\'s call fails, and failurePolicy Fail refuses', async (t) => {
    const wrong = await startMeshguard({ kubeconfigPath: cp.kubeconfigPath, port: wrongCaPort, extraArgs: ['--client-ca', otherCa.caCert] });
    started.push(wrong);
    await unregisterWebhook(kubectl);
    await registerWebhook(kubectl, { url: wrong.url, caBundle: wrong.caBundle, failurePolicy: 'Fail', timeoutSeconds: 5, rules: POLICY_RULES, probe: null, name: 'meshguard-e2e-wrong-ca' });
    let r: KubectlResult | undefined;
    await waitFor('the apiserver to call the meshguard that trusts another CA', async () => {
      r = await applyBad(kubectl);
      return r.code !== 0;
    }, 30_000, 300);
    t.equal(r!.code, 1, out(r!));
    t.match(r!.stderr, /failed calling webhook "e2e\.meshguard\.io"/, 'a webhook call error');
    t.match(r!.stderr, /a client certificate is required|client certificate not accepted/, 'that quotes why meshguard refused the call');
    t.notMatch(r!.stderr, /denied the request/, 'not meshguard\'s denial');
    t.notMatch(r!.stderr, /dns-egress-missing/, 'no rule ran');
    t.comment(`apiserver: ${r!.stderr.trim()}`);
    const m = (await wrong.metrics()).body;
    const refused = metric(m, /^meshguard_client_auth_refusals_total\{reason="no-certificate"\} (\d+)/m) + metric(m, /^meshguard_client_auth_refusals_total\{reason="untrusted-certificate"\} (\d+)/m);
    t.ok(refused >= 1, `meshguard refused the apiserver (${refused} refusals)`);
    t.equal(metric(m, /^meshguard_admission_requests_total\{verdict="denied"\} (\d+)/m), 0, 'and decided nothing');
    await unregisterWebhook(kubectl, 'meshguard-e2e-wrong-ca');
  });

  await t.test('every connection taken: the apiserver\'s call is refused, then served once one frees up', async (t) => {
    // No client authentication here: only the cap is under test.
    const capped = await startMeshguard({ kubeconfigPath: cp.kubeconfigPath, extraArgs: ['--max-connections', '1'] });
    started.push(capped);
    // Take the only place before the apiserver ever connects, with a kept-alive connection, once the
    // readiness checks' connections have closed on meshguard's side.
    await waitFor('meshguard to hold no connection', async () =>
      metric((await capped.metrics()).body, /^meshguard_connections_open (\d+)/m) === 0, 10_000, 100);
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: capped.caPem });
    t.teardown(() => agent.destroy());
    const held = await new Promise<number>((resolve, reject) => {
      request(new URL('/readyz', capped.url), { agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      }).on('error', reject).end();
    });
    t.equal(held, 200, 'our connection holds the only place');
    await registerWebhook(kubectl, { url: capped.url, caBundle: capped.caBundle, failurePolicy: 'Fail', timeoutSeconds: 5, rules: POLICY_RULES, probe: null, name: 'meshguard-e2e-capped' });
    let r: KubectlResult | undefined;
    await waitFor('the apiserver to call the capped meshguard', async () => {
      r = await applyBad(kubectl);
      return r.code !== 0;
    }, 30_000, 300);
    t.match(r!.stderr, /failed calling webhook "e2e\.meshguard\.io"/, `refused with the apiserver's webhook error: ${out(r!)}`);
    t.notMatch(r!.stderr, /dns-egress-missing/);
    t.comment(`apiserver: ${r!.stderr.trim()}`);
    const m = (await capped.metrics()).body;
    const dropped = metric(m, /^meshguard_connections_dropped_total (\d+)/m);
    t.ok(dropped >= 1, `meshguard dropped the apiserver's connection attempts (${dropped})`);

    agent.destroy();
    await waitFor('meshguard to answer through the apiserver again', async () => {
      r = await applyBad(kubectl);
      return /dns-egress-missing/.test(r.stderr);
    }, 30_000, 300);
    t.match(r!.stderr, /denied the request/);
    await unregisterWebhook(kubectl, 'meshguard-e2e-capped');
  });
});
