import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { KIND_NAMES, KINDS } from '../../src/core/kinds.ts';
import { dumpSnapshot, listClusterObjects } from '../../src/state/dump.ts';
import { collectionPath } from '../../src/state/live.ts';
import { loadSnapshot } from '../../src/state/snapshot.ts';
import { FakeApiserver } from './fake-apiserver.ts';

t.test('dumpSnapshot writes a List that loadSnapshot reads back', async (t) => {
  const api = new FakeApiserver();
  await api.start();
  t.teardown(() => api.stop());
  for (const k of KIND_NAMES) if (!KINDS[k].optional) api.serve(collectionPath(k));
  api.serve(collectionPath('CiliumNetworkPolicy'));
  const PODS = collectionPath('Pod');
  const CMS = collectionPath('ConfigMap');
  api.put(collectionPath('Namespace'), { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels: { 'istio-injection': 'enabled' } } });
  api.put(PODS, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'b', namespace: 'shop', labels: { app: 'web' } }, spec: { containers: [{ name: 'app', env: [{ name: 'T', value: 'hunter2' }] }] } });
  // Values YAML 1.1 (kubectl) would read as booleans or numbers: the dump must quote them.
  api.put(PODS, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'a', namespace: 'shop', labels: { canary: 'y', legacy: 'no', mode: '0755' } }, spec: { containers: [] } });
  api.put(collectionPath('Deployment'), { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'istiod', namespace: 'mesh-ctl' }, spec: { template: { spec: { containers: [{ name: 'discovery' }] } } } });
  api.put(CMS, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'istio', namespace: 'mesh-ctl' }, data: { mesh: 'rootNamespace: mesh-root\n' } });
  api.put(CMS, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'root-settings', namespace: 'mesh-root' } });
  api.put(CMS, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cilium-config', namespace: 'kube-system' }, data: { 'enable-policy': 'default' } });
  api.put(CMS, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'app', namespace: 'shop' }, data: { password: 'x' } });
  api.put(collectionPath('MutatingWebhookConfiguration'), { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', metadata: { name: 'istio-sidecar-injector' }, webhooks: [{ name: 'i', clientConfig: { caBundle: 'LS0tLS1CRUdJTiBDRVJU', url: 'https://x' } }] });
  api.put(collectionPath('CiliumNetworkPolicy'), { apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: 'p', namespace: 'shop' }, spec: { endpointSelector: {}, egress: [{}] } });

  const text = await dumpSnapshot({ api: api.api() });
  t.match(text, /^# meshguard snapshot of http:\/\/127\.0\.0\.1:\d+\n/);
  t.match(text, /not installed \(empty\): CiliumClusterwideNetworkPolicy, AuthorizationPolicy, PeerAuthentication, Gateway/);
  t.notMatch(text, /hunter2|caBundle|LS0t|password|secret-token/);
  const doc = parse(text) as { kind: string; items: { kind: string; metadata: { name: string; namespace?: string } }[] };
  t.equal(doc.kind, 'List');
  t.same(doc.items.map((o) => `${o.kind} ${o.metadata.namespace ?? ''}/${o.metadata.name}`), [
    'Namespace /shop',
    'Pod shop/a',
    'Pod shop/b',
    'ConfigMap kube-system/cilium-config',
    'ConfigMap mesh-ctl/istio',
    'ConfigMap mesh-root/root-settings',
    'Deployment mesh-ctl/istiod',
    'MutatingWebhookConfiguration /istio-sidecar-injector',
    'CiliumNetworkPolicy shop/p',
  ]);

  const listed = await listClusterObjects({ api: api.api() });
  t.same(listed.objects, doc.items, 'the dump is exactly the listed objects');
  t.same(listed.missing, ['CiliumClusterwideNetworkPolicy', 'AuthorizationPolicy', 'PeerAuthentication', 'Gateway']);
  t.equal(listed.server, api.url);

  const asJson = await dumpSnapshot({ api: api.api(), format: 'json' });
  t.same(JSON.parse(asJson).items, doc.items, 'json format holds the same objects');
  const jdir = t.testdir({ 'snap.json': asJson });
  t.equal(loadSnapshot([join(jdir, 'snap.json')]).list('ConfigMap').length, 3);

  const dir = t.testdir({});
  const file = join(dir, 'snap.yaml');
  writeFileSync(file, text);
  const s = loadSnapshot([file]);
  t.equal(s.list('Pod').length, 2);
  t.same(s.get('Pod', 'shop', 'a')?.metadata.labels, { canary: 'y', legacy: 'no', mode: '0755' }, 'YAML 1.1 scalars round-trip as strings');
  t.same((s.get('ConfigMap', 'kube-system', 'cilium-config') as { data?: unknown }).data, { 'enable-policy': 'default' });
  t.equal(s.list('ConfigMap').length, 3, 'the root namespace ConfigMap is kept on reload too');
  t.same(s.get('CiliumNetworkPolicy', 'shop', 'p')?.metadata.name, 'p');
});

t.test('dumpSnapshot: a refused list is an InputError naming the kind', async (t) => {
  const api = new FakeApiserver();
  await api.start();
  t.teardown(() => api.stop());
  for (const k of KIND_NAMES) if (!KINDS[k].optional && k !== 'Node') api.serve(collectionPath(k));
  await t.rejects(dumpSnapshot({ api: api.api() }), { name: 'InputError', message: /cannot list Node .*HTTP 404/ });
  await t.rejects(dumpSnapshot({ api: api.api('nope') }), { name: 'InputError', message: /cannot list Namespace .*HTTP 401/ });
  await t.rejects(dumpSnapshot({ kubeconfigPath: join(t.testdir({}), 'missing') }), { name: 'InputError', message: /cannot load kubeconfig/ });
});
