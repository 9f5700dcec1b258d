// kube-apiserver restarts under a running meshguard: readiness drops while its informers cannot list,
// comes back once they have relisted, and the cache follows changes made after the restart (the
// watches were re-established, not just the first list).

import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { waitFor } from './harness.ts';
import { apply, namespace, out, pod, setup, type Env } from './scenario.ts';

const INGRESS = {
  apiVersion: 'cilium.io/v2',
  kind: 'CiliumNetworkPolicy',
  metadata: { name: 'api-ingress', namespace: 'mesh' },
  spec: {
    endpointSelector: { matchLabels: { app: 'api' } },
    ingress: [{ fromEntities: ['cluster'], toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }] }] }],
  },
};

/** Dry-run of INGRESS: refused (hbone-15008-blocked) once mesh is ambient; the message names the pods. */
async function verdict(env: Env): Promise<{ refused: boolean; message: string }> {
  const r = await apply(env, INGRESS, true);
  if (r.code !== 0 && !/hbone-15008-blocked/.test(r.stderr)) throw new Error(`unexpected refusal: ${out(r)}`);
  return { refused: r.code !== 0, message: r.stderr };
}
async function refused(env: Env): Promise<boolean> {
  return (await verdict(env)).refused;
}

t.test('apiserver restarts', async (t) => {
  const env = await setup(t, {
    objects: [namespace('mesh'), pod('mesh', 'api-0', { app: 'api' }, [{ containerPort: 8080 }])],
  });
  t.equal((await env.mg.get('/readyz')).status, 200, 'ready before');
  t.notOk(await refused(env), 'not ambient: allowed');

  await t.test('an outage fails readiness, recovery restores it', async (t) => {
    // Poll readiness while the apiserver is down for 6 s.
    const seen: number[] = [];
    let polling = true;
    const poller = (async () => {
      while (polling) {
        seen.push((await env.mg.get('/readyz')).status);
        await sleep(200);
      }
    })();
    await env.cp.restartApiserver({ downMs: 6_000 });
    const back = Date.now();
    await waitFor('meshguard ready again', async () => (await env.mg.get('/readyz')).status === 200, 60_000, 250);
    polling = false;
    await poller;
    t.comment(`ready ${Date.now() - back} ms after the apiserver came back`);
    t.ok(seen.includes(503), `readiness failed during the outage (seen: ${[...new Set(seen)].join(',')})`);
    // Ready for good, not flapping while streams finish their backoff.
    const after: number[] = [];
    for (let i = 0; i < 10; i++) {
      after.push((await env.mg.get('/readyz')).status);
      await sleep(300);
    }
    t.same([...new Set(after)], [200], 'stays ready for 3 s after recovering');
  });

  await t.test('watches are live again: changes after the restart reach the cache', async (t) => {
    const label = await env.kubectl(['label', 'namespace', 'mesh', 'istio.io/dataplane-mode=ambient']);
    t.equal(label.code, 0, out(label));
    await waitFor('the relabel to reach meshguard', () => refused(env), 15_000, 250);
    t.match((await verdict(env)).message, /mesh\/api-0/, 'namespace relabel seen; the refusal names api-0');
    // A deletion too: the refusal stops naming the deleted pod.
    const del = await env.kubectl(['delete', 'pod', 'api-0', '-n', 'mesh', '--wait=false']);
    t.equal(del.code, 0, out(del));
    await waitFor('the pod deletion to reach meshguard', async () => !/mesh\/api-0/.test((await verdict(env)).message), 15_000, 250);
    t.pass('pod deletion seen');
  });

  await t.test('a plain restart (no outage window) keeps the cache correct', async (t) => {
    await env.cp.restartApiserver();
    await waitFor('meshguard ready', async () => (await env.mg.get('/readyz')).status === 200, 60_000, 250);
    const created = await env.kubectl(['apply', '-f', '-'], JSON.stringify(pod('mesh', 'api-1', { app: 'api' }, [{ containerPort: 8080 }])));
    t.equal(created.code, 0, out(created));
    await waitFor('the new pod to reach meshguard', async () => /mesh\/api-1/.test((await verdict(env)).message), 15_000, 250);
    t.pass('pod created after the second restart seen');
    const metrics = await env.mg.metrics();
    t.equal(metrics.status, 200);
  });
});
