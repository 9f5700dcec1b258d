// What the apiserver does when meshguard cannot answer: failurePolicy Ignore lets applies through,
// Fail refuses them with the apiserver's webhook error, and timeoutSeconds bounds a hung webhook.

import { createServer, type Server } from 'node:https';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { makeCerts } from '../helpers/certs.ts';
import { freePort, POLICY_RULES, registerWebhook, waitFor, type KubectlResult } from './harness.ts';
import { apply, exists, namespace, out, pod, setup } from './scenario.ts';

const BAD = {
  apiVersion: 'cilium.io/v2',
  kind: 'CiliumNetworkPolicy',
  metadata: { name: 'web-lockdown', namespace: 'shop' },
  spec: { endpointSelector: { matchLabels: { app: 'web' } }, egress: [{ toEntities: ['world'] }] },
};

t.test('failure behaviour', async (t) => {
  const env = await setup(t, {
    objects: [namespace('shop'), pod('shop', 'web-0', { app: 'web' }, [{ containerPort: 8080 }])],
  });
  const { kubectl } = env;

  await t.test('meshguard up, Fail: the bad policy is refused by meshguard', async (t) => {
    const r = await apply(env, BAD, true);
    t.equal(r.code, 1, out(r));
    t.match(r.stderr, /dns-egress-missing/);
  });

  // Register with Ignore while meshguard still answers, so the probe proves the new config is in use.
  await registerWebhook(kubectl, { url: env.mg.url, caBundle: env.mg.caBundle, failurePolicy: 'Ignore', timeoutSeconds: 5, rules: POLICY_RULES });
  await env.mg.stop({ kill: true });

  await t.test('meshguard down, failurePolicy Ignore: applies succeed', async (t) => {
    const dry = await apply(env, BAD, true);
    t.equal(dry.code, 0, out(dry));
    t.match(dry.stdout, /web-lockdown created \(server dry run\)/);
    const ns = await kubectl(['label', 'namespace', 'shop', 'team=web']);
    t.equal(ns.code, 0, `namespace updates too: ${out(ns)}`);
  });

  await t.test('meshguard down, failurePolicy Fail: refused with the apiserver webhook error', async (t) => {
    await registerWebhook(kubectl, { url: env.mg.url, caBundle: env.mg.caBundle, failurePolicy: 'Fail', timeoutSeconds: 5, rules: POLICY_RULES, probe: null });
    let r: KubectlResult | undefined;
    await waitFor('the apiserver to use failurePolicy Fail', async () => {
      r = await apply(env, BAD);
      return r.code !== 0;
    }, 20_000, 300);
    t.equal(r!.code, 1, out(r!));
    t.match(r!.stderr, /failed calling webhook "e2e\.meshguard\.io"/, out(r!));
    t.match(r!.stderr, /connection refused/, out(r!));
    t.notOk(await exists(env, 'cnp', 'shop', 'web-lockdown'), 'nothing stored');
    // A kind meshguard is not registered for is not affected.
    const cm = await kubectl(['create', 'configmap', 'unrelated', '-n', 'shop', '--from-literal=a=b']);
    t.equal(cm.code, 0, out(cm));
  });

  await t.test('timeoutSeconds is honoured for a webhook that never answers', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'meshguard-e2e-hang-'));
    const certs = makeCerts(dir, { sans: ['127.0.0.1'] });
    const hung: Server = createServer({ cert: readFileSync(certs.cert), key: readFileSync(certs.key) }, () => {
      // Accept the AdmissionReview and never answer.
    });
    const port = await freePort();
    await new Promise<void>((resolve) => hung.listen(port, '127.0.0.1', resolve));
    t.teardown(async () => {
      hung.closeAllConnections();
      await new Promise((r) => hung.close(r));
      rmSync(dir, { recursive: true, force: true });
    });
    const caBundle = Buffer.from(readFileSync(certs.caCert)).toString('base64');
    const url = `https://127.0.0.1:${port}/validate`;
    const TIMEOUT_S = 2;

    await registerWebhook(kubectl, { url, caBundle, failurePolicy: 'Fail', timeoutSeconds: TIMEOUT_S, rules: POLICY_RULES, probe: null });
    await waitFor('the hung webhook to be in use', async () => {
      const r = await apply(env, BAD, true);
      return /failed calling webhook/.test(r.stderr) && !/connection refused/.test(r.stderr);
    }, 30_000, 300);
    let start = Date.now();
    const failed = await apply(env, BAD, true);
    let took = Date.now() - start;
    t.equal(failed.code, 1, out(failed));
    t.match(failed.stderr, /failed calling webhook "e2e\.meshguard\.io"/);
    t.match(failed.stderr, /deadline exceeded|timeout|Timeout/, out(failed));
    t.ok(took >= TIMEOUT_S * 1000 - 100 && took < (TIMEOUT_S + 6) * 1000, `Fail: refused after the ${TIMEOUT_S} s timeout (took ${took} ms)`);

    await registerWebhook(kubectl, { url, caBundle, failurePolicy: 'Ignore', timeoutSeconds: TIMEOUT_S, rules: POLICY_RULES, probe: null });
    let ok: KubectlResult | undefined;
    await waitFor('failurePolicy Ignore on the hung webhook', async () => {
      ok = await apply(env, BAD, true);
      return ok.code === 0;
    }, 30_000, 300);
    start = Date.now();
    ok = await apply(env, BAD, true);
    took = Date.now() - start;
    t.equal(ok.code, 0, out(ok));
    t.ok(took >= TIMEOUT_S * 1000 - 100 && took < (TIMEOUT_S + 6) * 1000, `Ignore: admitted after the ${TIMEOUT_S} s timeout (took ${took} ms)`);
  });
});
