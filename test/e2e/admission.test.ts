// meshguard in enforce mode behind a real kube-apiserver: what `kubectl apply` / `delete` print, what is
// stored, and verdicts that follow the live cluster state through the informers.

import t from 'tap';
import { apply, exists, namespace, out, pod, setup } from './scenario.ts';
import { waitFor } from './harness.ts';

const DNS_ALLOW = {
  toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s-app': 'kube-dns' } }],
  toPorts: [{ ports: [{ port: '53', protocol: 'UDP' }, { port: '53', protocol: 'TCP' }] }],
};
const TO_DB = {
  toEndpoints: [{ matchLabels: { app: 'db' } }],
  toPorts: [{ ports: [{ port: '5432', protocol: 'TCP' }] }],
};

function cnp(name: string, ns: string, spec: Record<string, unknown>): Record<string, unknown> {
  return { apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name, namespace: ns }, spec };
}

// web may only talk to db: its pods lose cluster DNS.
const BAD = cnp('web-egress', 'shop', { endpointSelector: { matchLabels: { app: 'web' } }, egress: [TO_DB] });
// The same policy with the DNS allow.
const GOOD = cnp('web-egress', 'shop', { endpointSelector: { matchLabels: { app: 'web' } }, egress: [TO_DB, DNS_ALLOW] });

t.test('enforce mode through kube-apiserver', async (t) => {
  const env = await setup(t, {
    objects: [
      namespace('shop'),
      pod('shop', 'web-0', { app: 'web' }, [{ name: 'http', containerPort: 8080 }]),
      pod('shop', 'db-0', { app: 'db' }, [{ name: 'pg', containerPort: 5432 }]),
      // Live-state scenarios
      namespace('mesh'),
      pod('mesh', 'api-0', { app: 'api' }, [{ name: 'http', containerPort: 8080 }]),
      namespace('pay', { 'istio-injection': 'enabled' }),
      pod('pay', 'checkout-0', { app: 'checkout' }, [{ name: 'http', containerPort: 8080 }], { sidecar: true }),
      namespace('blog'),
      pod('blog', 'ghost-0', { app: 'ghost' }, [{ name: 'http', containerPort: 2368 }]),
    ],
  });

  await t.test('dry-run of a bad policy is refused with the rule id, nothing stored', async (t) => {
    const r = await apply(env, BAD, true);
    t.equal(r.code, 1, out(r));
    t.match(r.stderr, /admission webhook "e2e\.meshguard\.io" denied the request/, out(r));
    t.match(r.stderr, /dns-egress-missing/, out(r));
    t.match(r.stderr, /shop\/web-0/, 'names the pod that loses DNS');
    t.match(r.stderr, /Docs: https:\/\/github\.com\/meshguard\/meshguard\/blob\/main\/docs\/rules\/dns-egress-missing\.md/, 'links the rule page');
    t.notOk(await exists(env, 'cnp', 'shop', 'web-egress'), 'nothing stored');
  });

  await t.test('the same without dry-run fails the same way', async (t) => {
    const r = await apply(env, BAD);
    t.equal(r.code, 1, out(r));
    t.match(r.stderr, /dns-egress-missing/, out(r));
    t.notOk(await exists(env, 'cnp', 'shop', 'web-egress'), 'nothing stored');
  });

  await t.test('the good twin is created', async (t) => {
    const dry = await apply(env, GOOD, true);
    t.equal(dry.code, 0, out(dry));
    t.match(dry.stdout, /ciliumnetworkpolicy\.cilium\.io\/web-egress created \(server dry run\)/);
    const r = await apply(env, GOOD);
    t.equal(r.code, 0, out(r));
    t.match(r.stdout, /ciliumnetworkpolicy\.cilium\.io\/web-egress created/);
    t.notMatch(r.stderr, /Warning/, 'no warnings for a correct policy');
    t.ok(await exists(env, 'cnp', 'shop', 'web-egress'));
  });

  await t.test('deleting the policy that allowed DNS is refused while pods would lose DNS', async (t) => {
    // A second policy keeps web egress-enforced; DNS comes only from web-egress.
    const second = cnp('web-to-db', 'shop', { endpointSelector: { matchLabels: { app: 'web' } }, egress: [TO_DB] });
    const c = await apply(env, second);
    t.equal(c.code, 0, `web keeps DNS through web-egress: ${out(c)}`);
    const dry = await env.kubectl(['delete', 'cnp', 'web-egress', '-n', 'shop', '--dry-run=server']);
    t.equal(dry.code, 1, out(dry));
    t.match(dry.stderr, /dns-egress-missing/, out(dry));
    const d = await env.kubectl(['delete', 'cnp', 'web-egress', '-n', 'shop']);
    t.equal(d.code, 1, out(d));
    t.match(d.stderr, /denied the request.*dns-egress-missing/s, out(d));
    t.ok(await exists(env, 'cnp', 'shop', 'web-egress'), 'still there');
    // Deleting the one that does not carry DNS is fine.
    const ok = await env.kubectl(['delete', 'cnp', 'web-to-db', '-n', 'shop']);
    t.equal(ok.code, 0, out(ok));
    t.match(ok.stdout, /deleted/);
  });

  await t.test('relabelling a namespace into ambient changes the verdict (informers, no restart)', async (t) => {
    // Ingress lockdown to api on 8080: fine for a plain pod, but ambient pods receive HBONE on 15008.
    const ingress = cnp('api-ingress', 'mesh', {
      endpointSelector: { matchLabels: { app: 'api' } },
      ingress: [{ fromEntities: ['cluster'], toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }] }] }],
    });
    const before = await apply(env, ingress, true);
    t.equal(before.code, 0, `not ambient yet: ${out(before)}`);
    const label = await env.kubectl(['label', 'namespace', 'mesh', 'istio.io/dataplane-mode=ambient']);
    t.equal(label.code, 0, out(label));
    const start = Date.now();
    let last = before;
    await waitFor('the verdict to change after the relabel', async () => {
      last = await apply(env, ingress, true);
      return last.code !== 0;
    }, 15_000, 250);
    t.comment(`verdict changed ${Date.now() - start} ms after the relabel`);
    t.match(last.stderr, /hbone-15008-blocked/, out(last));
    // And back: the informer sees the label removed.
    const unlabel = await env.kubectl(['label', 'namespace', 'mesh', 'istio.io/dataplane-mode-']);
    t.equal(unlabel.code, 0, out(unlabel));
    await waitFor('the verdict to change back', async () => (await apply(env, ingress, true)).code === 0, 15_000, 250);
    t.pass('allowed again once the namespace left ambient');
  });

  await t.test('a PeerAuthentication DISABLE makes Cilium L7 on sidecar pods acceptable', async (t) => {
    const l7 = cnp('checkout-l7', 'pay', {
      endpointSelector: { matchLabels: { app: 'checkout' } },
      ingress: [{
        fromEntities: ['cluster'],
        toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }], rules: { http: [{ method: 'GET', path: '/.*' }] } }],
      }],
    });
    const before = await apply(env, l7, true);
    t.equal(before.code, 1, out(before));
    t.match(before.stderr, /split-brain-l7-sidecar/, out(before));
    t.match(before.stderr, /pay\/checkout-0/, out(before));

    const pa = {
      apiVersion: 'security.istio.io/v1',
      kind: 'PeerAuthentication',
      metadata: { name: 'checkout-plaintext', namespace: 'pay' },
      spec: { selector: { matchLabels: { app: 'checkout' } }, mtls: { mode: 'DISABLE' } },
    };
    const created = await apply(env, pa);
    t.equal(created.code, 0, out(created));
    const start = Date.now();
    let last = before;
    await waitFor('the verdict to change after the PeerAuthentication', async () => {
      last = await apply(env, l7, true);
      return last.code === 0;
    }, 15_000, 250);
    t.comment(`verdict changed ${Date.now() - start} ms after the PeerAuthentication`);
    t.match(last.stdout, /checkout-l7 created \(server dry run\)/, out(last));
  });

  await t.test('Kubernetes NetworkPolicy: DNS on TCP only (the protocol default) is refused, UDP is fine', async (t) => {
    const np = (ports: Record<string, unknown>[]) => ({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'egress-dns', namespace: 'blog' },
      spec: { podSelector: {}, policyTypes: ['Egress'], egress: [{ ports }] },
    });
    const tcpOnly = await apply(env, np([{ port: 53 }]));
    t.equal(tcpOnly.code, 1, out(tcpOnly));
    t.match(tcpOnly.stderr, /\[dns-egress-missing\] NetworkPolicy blog\/egress-dns/, out(tcpOnly));
    t.match(tcpOnly.stderr, /blog\/ghost-0/, out(tcpOnly));
    t.match(tcpOnly.stderr, /UDP/, 'says what is missing');
    t.notOk(await exists(env, 'networkpolicy', 'blog', 'egress-dns'), 'nothing stored');
    const udp = await apply(env, np([{ port: 53, protocol: 'UDP' }, { port: 53, protocol: 'TCP' }]));
    t.equal(udp.code, 0, out(udp));
    t.match(udp.stdout, /networkpolicy\.networking\.k8s\.io\/egress-dns created/);
  });

  await t.test('meshguard is ready and counted every request', async (t) => {
    const ready = await env.mg.get('/readyz');
    t.equal(ready.status, 200);
    const metrics = await env.mg.metrics();
    t.equal(metrics.status, 200);
    t.match(metrics.body, /denied/, 'denials are in the metrics');
    t.match(env.mg.logs(), /"verdict":"denied"/, 'decisions are logged');
  });
});
