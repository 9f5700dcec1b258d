// LiveSource against a real kube-apiserver: objects created with kubectl show up (slimmed) in the
// informer-fed state, updates and deletes follow, a CRD installed after start is picked up, and the cache
// recovers from an apiserver restart.

import t from 'tap';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { LiveSource } from '../../src/state/live.ts';
import { dumpSnapshot } from '../../src/state/dump.ts';
import type { ConfigMap, Pod, PolicyObject } from '../../src/core/objects.ts';
import { REPO_ROOT } from '../helpers/kube-bins.ts';
import { applyObjects, pod, startControlPlane, waitFor } from './harness.ts';

t.test('LiveSource follows a real apiserver', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.stop());
  const { kubectl } = cp;

  // Start without the Gateway API installed: that kind must be empty, not an error.
  const del = await kubectl(['delete', 'crd', 'gateways.gateway.networking.k8s.io', '--wait=true']);
  t.equal(del.code, 0, del.stderr);

  await applyObjects(kubectl, [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'live', labels: { 'istio.io/dataplane-mode': 'ambient' } } },
    pod('live', 'web-1', { app: 'web' }, [{ name: 'http', containerPort: 8080 }], { annotations: { 'sidecar.istio.io/inject': 'false', 'example.com/note': 'dropped' } }),
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cilium-config', namespace: 'kube-system' }, data: { 'routing-mode': 'tunnel' } },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'app-config', namespace: 'live' }, data: { password: 'hunter2' } },
    {
      apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: 'allow-dns', namespace: 'live' },
      spec: { endpointSelector: {}, egress: [{ toPorts: [{ ports: [{ port: '53', protocol: 'UDP' }], rules: { dns: [{ matchPattern: '*' }] } }] }] },
    },
  ]);

  const logLines: string[] = [];
  const logger = pino({ level: 'info' }, new Writable({ write(c, _e, cb) { logLines.push(String(c)); cb(); } }));
  const src = new LiveSource({ kubeconfigPath: cp.kubeconfigPath, logger, watchdogSeconds: 3 });
  t.teardown(() => src.stop());
  await src.start();
  t.ok(src.synced(), 'synced after start');
  const s = src.state;

  const web1 = s.get('Pod', 'live', 'web-1') as Pod | undefined;
  t.ok(web1, 'pod listed');
  t.same(web1?.metadata.annotations, { 'sidecar.istio.io/inject': 'false' }, 'annotations filtered');
  t.same(web1?.spec.containers, [{ name: 'app', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] }]);
  t.equal(s.podsWithLabel('live', 'app', 'web').length, 1);
  t.equal(s.get('Namespace', undefined, 'live')?.metadata.labels?.['istio.io/dataplane-mode'], 'ambient');
  t.same((s.get('ConfigMap', 'kube-system', 'cilium-config') as ConfigMap).data, { 'routing-mode': 'tunnel' });
  t.equal(s.get('ConfigMap', 'live', 'app-config'), undefined, 'ConfigMaps outside kube-system/istio-system are not watched');
  t.same((s.get('CiliumNetworkPolicy', 'live', 'allow-dns') as PolicyObject).spec?.endpointSelector, {});
  t.equal(s.list('EndpointSlice', 'default').length, 1, 'default/kubernetes EndpointSlice');
  t.ok(src.stats().missingKinds?.includes('Gateway'), 'Gateway reported missing');
  t.ok(logLines.some((l) => /Gateway/.test(l) && /CRD not installed/.test(l)), 'missing CRD logged');
  t.notOk(logLines.some((l) => /hunter2/.test(l)));

  // Creates, updates and deletes follow through the watches.
  await applyObjects(kubectl, [pod('live', 'web-2', { app: 'web' })]);
  await waitFor('web-2 in the cache', () => s.get('Pod', 'live', 'web-2') !== undefined, 20_000, 50);
  t.equal(s.podsWithLabel('live', 'app', 'web').length, 2);
  const relabel = await kubectl(['label', 'pod', '-n', 'live', 'web-2', 'app=api', '--overwrite']);
  t.equal(relabel.code, 0, relabel.stderr);
  await waitFor('web-2 relabelled', () => s.get('Pod', 'live', 'web-2')?.metadata.labels?.app === 'api', 20_000, 50);
  t.equal(s.podsWithLabel('live', 'app', 'web').length, 1);
  const delPod = await kubectl(['delete', 'pod', '-n', 'live', 'web-1', '--grace-period=0', '--force']);
  t.equal(delPod.code, 0, delPod.stderr);
  await waitFor('web-1 gone', () => s.get('Pod', 'live', 'web-1') === undefined, 20_000, 50);

  // A CRD installed after start is picked up by the watchdog's re-check.
  const crd = await kubectl(['apply', '--server-side', '-f', join(REPO_ROOT, 'test', 'e2e', 'crds', 'gateway-api.yaml')]);
  t.equal(crd.code, 0, crd.stderr);
  const est = await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', 'gateways.gateway.networking.k8s.io']);
  t.equal(est.code, 0, est.stderr);
  await applyObjects(kubectl, [
    { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'waypoint', namespace: 'live' }, spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] } },
  ]);
  await waitFor('Gateway in the cache', () => s.get('Gateway', 'live', 'waypoint') !== undefined, 30_000, 100);
  t.notOk(src.stats().missingKinds?.includes('Gateway'));

  // Apiserver restart with a few seconds of outage: the cache recovers and follows new changes.
  await cp.restartApiserver({ downMs: 2000 });
  await applyObjects(kubectl, [pod('live', 'web-3', { app: 'web' })]);
  await waitFor('web-3 after the restart', () => s.get('Pod', 'live', 'web-3') !== undefined, 45_000, 100);
  const delCm = await kubectl(['delete', 'configmap', '-n', 'kube-system', 'cilium-config']);
  t.equal(delCm.code, 0, delCm.stderr);
  await waitFor('cilium-config deleted after the restart', () => s.get('ConfigMap', 'kube-system', 'cilium-config') === undefined, 45_000, 100);
  await waitFor('synced again', () => src.synced(), 45_000, 100);
  const st = src.stats();
  t.ok((st.secondsSinceLastEvent ?? 99) < 10, `recent activity (${st.secondsSinceLastEvent}s)`);
  t.equal(st.objects.Pod, 2);

  // The same cluster through `meshguard snapshot`'s backend.
  const dump = await dumpSnapshot({ kubeconfigPath: cp.kubeconfigPath });
  t.match(dump, /name: web-3/);
  t.match(dump, /gatewayClassName: istio-waypoint/);
  t.notMatch(dump, /hunter2|managedFields|last-applied/);

  await src.stop();
  t.notOk(src.synced());
});
