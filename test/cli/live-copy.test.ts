// check --kubeconfig builds its mutable state from the listed objects directly; it must hold what a
// snapshot of the same cluster loads back (the route it used to take through a YAML dump).
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadMutableState } from '../../src/cli/common.ts';
import { dumpSnapshot } from '../../src/state/dump.ts';
import { KIND_NAMES, KINDS } from '../../src/core/kinds.ts';
import { collectionPath } from '../../src/state/live.ts';
import { loadSnapshot } from '../../src/state/snapshot.ts';
import { FakeApiserver } from '../state/fake-apiserver.ts';

t.test('loadMutableState(--kubeconfig) equals the snapshot of the same cluster', async (t) => {
  const api = new FakeApiserver();
  await api.start();
  t.teardown(() => api.stop());
  for (const k of KIND_NAMES) if (!KINDS[k].optional) api.serve(collectionPath(k));
  api.serve(collectionPath('CiliumNetworkPolicy'));
  const CMS = collectionPath('ConfigMap');
  api.put(collectionPath('Namespace'), { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels: { 'istio-injection': 'enabled' } } });
  api.put(collectionPath('Pod'), { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'b', namespace: 'shop', labels: { app: 'web' } }, spec: { containers: [{ name: 'app', ports: [{ containerPort: 8080 }] }] }, status: { podIP: '10.0.0.2' } });
  api.put(collectionPath('Deployment'), { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'istiod', namespace: 'mesh-ctl' }, spec: { template: { spec: { containers: [{ name: 'discovery' }] } } } });
  api.put(CMS, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'istio', namespace: 'mesh-ctl' }, data: { mesh: 'rootNamespace: mesh-root\n' } });
  api.put(CMS, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'root-settings', namespace: 'mesh-root' } });
  api.put(CMS, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'app', namespace: 'shop' }, data: { password: 'x' } });
  api.put(collectionPath('CiliumNetworkPolicy'), { apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: 'p', namespace: 'shop' }, spec: { endpointSelector: {}, egress: [{}] } });

  const dir = t.testdir({});
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, api.kubeconfigYaml());
  const copy = await loadMutableState({ kubeconfig });
  t.equal(copy.describe(), 'live copy');
  const snap = join(dir, 'snap.yaml');
  writeFileSync(snap, await dumpSnapshot({ kubeconfigPath: kubeconfig }));
  const viaDump = loadSnapshot([snap]);
  for (const kind of KIND_NAMES) t.same(copy.list(kind), viaDump.list(kind), kind);
  t.equal(copy.list('Pod').length, 1);
  t.same(copy.list('ConfigMap').map((c) => c.metadata.name).sort(), ['istio', 'root-settings']);
  t.same(copy.podsWithLabel('shop', 'app', 'web').map((p) => p.metadata.name), ['b']);
});
