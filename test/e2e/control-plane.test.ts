// Smoke test of the e2e harness: a real etcd + kube-apiserver, CRDs installed, kubectl works, an
// apiserver restart keeps the stored objects, and stop() leaves no process behind.

import t from 'tap';
import { httpGet, startControlPlane } from './harness.ts';

t.test('control plane: start, kubectl, restart, stop', async (t) => {
  const cp = await startControlPlane();
  let stopped = false;
  t.teardown(async () => {
    if (!stopped) await cp.stop();
  });
  const { kubectl } = cp;

  const ns = await kubectl(['create', 'namespace', 'smoke']);
  t.equal(ns.code, 0, `create namespace: ${ns.stderr}`);
  t.match(ns.stdout, /namespace\/smoke created/);

  const cnp = {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNetworkPolicy',
    metadata: { name: 'allow-dns', namespace: 'smoke' },
    spec: { endpointSelector: {}, egress: [{ toPorts: [{ ports: [{ port: '53', protocol: 'UDP' }] }] }] },
  };
  const created = await kubectl(['apply', '-f', '-'], JSON.stringify(cnp));
  t.equal(created.code, 0, `apply CNP: ${created.stderr}`);
  t.match(created.stdout, /ciliumnetworkpolicy\.cilium\.io\/allow-dns created/);

  const got = await kubectl(['get', 'cnp', '-n', 'smoke', 'allow-dns', '-o', 'json']);
  t.equal(got.code, 0, got.stderr);
  t.same(JSON.parse(got.stdout).spec, cnp.spec, 'unknown fields preserved by the test CRD');

  for (const crd of ['ciliumclusterwidenetworkpolicies.cilium.io', 'authorizationpolicies.security.istio.io',
    'peerauthentications.security.istio.io', 'gateways.gateway.networking.k8s.io', 'certificates.cert-manager.io',
    'issuers.cert-manager.io']) {
    const r = await kubectl(['get', 'crd', crd, '-o', 'jsonpath={.status.conditions[?(@.type=="Established")].status}']);
    t.equal(r.stdout, 'True', `${crd} Established`);
  }

  const slice = await kubectl(['get', 'endpointslice', '-n', 'default', 'kubernetes', '-o', 'jsonpath={.endpoints[0].addresses[0]}']);
  t.equal(slice.code, 0, slice.stderr);
  t.match(slice.stdout, /^\d+\.\d+\.\d+\.\d+$/, 'default/kubernetes EndpointSlice published');

  // RBAC is on: an unknown identity is refused.
  const anon = await kubectl(['get', 'namespaces', '--token=not-a-token']);
  t.not(anon.code, 0, 'a bad token is refused');

  const before = Date.now();
  await cp.restartApiserver();
  t.comment(`apiserver restart took ${Date.now() - before} ms`);
  const after = await kubectl(['get', 'cnp', '-n', 'smoke', 'allow-dns', '-o', 'name']);
  t.equal(after.code, 0, after.stderr);
  t.equal(after.stdout.trim(), 'ciliumnetworkpolicy.cilium.io/allow-dns', 'stored objects survive the restart');
  const again = await kubectl(['create', 'namespace', 'smoke-2']);
  t.equal(again.code, 0, 'writes work after the restart');

  const url = cp.serverUrl;
  const pids = cp.pids();
  t.equal(pids.length, 3, 'etcd and two apiserver incarnations');
  await cp.stop();
  stopped = true;
  const gone = await httpGet(`${url}/readyz`);
  t.equal(gone.status, 0, 'apiserver port closed after stop()');
  const alive = pids.filter((pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  });
  t.same(alive, [], 'no process left behind');
});
