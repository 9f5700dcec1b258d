// The ValidatingWebhookConfiguration that deploy/ ships, used for real: the enforce overlay's entries,
// with only clientConfig pointed at the test meshguard (a URL instead of the in-cluster Service, and the
// caBundle cert-manager would inject). Checks what the apiserver sends to meshguard (namespaceSelector,
// matchConditions) and what each entry does when meshguard is down (failurePolicy per entry).

import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { parseAllDocuments } from 'yaml';
import { kubeBins, REPO_ROOT } from '../helpers/kube-bins.ts';
import {
  applyObjects,
  DEFAULT_PROBE,
  ensureProbeFixture,
  startControlPlane,
  startMeshguard,
  waitFor,
  type KubectlResult,
  type Meshguard,
} from './harness.ts';
import { BASE_CLUSTER, namespace, out, pod } from './scenario.ts';

interface Doc {
  kind: string;
  metadata: { name: string; annotations?: Record<string, string> };
  webhooks?: { name: string; clientConfig: Record<string, unknown> }[];
}

/** A CNP that locks `ns` pods' egress to the world only: they lose cluster DNS. */
function lockdown(ns: string): Record<string, unknown> {
  return {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNetworkPolicy',
    metadata: { name: 'lockdown', namespace: ns },
    spec: { endpointSelector: {}, egress: [{ toEntities: ['world'] }] },
  };
}

/** Decision log lines of meshguard for an object name. */
function decisions(mg: Meshguard, name: string): { namespace?: string; verdict?: string }[] {
  return mg.logs().split('\n').flatMap((l) => {
    if (!l.startsWith('{')) return [];
    try {
      const j = JSON.parse(l) as { msg?: string; name?: string; namespace?: string; verdict?: string };
      return j.msg === 'admission decision' && j.name === name ? [j] : [];
    } catch {
      return [];
    }
  });
}

t.test('the shipped webhook configuration against a real apiserver', async (t) => {
  const cp = await startControlPlane();
  let mg: Meshguard | undefined;
  t.teardown(async () => {
    await mg?.stop({ kill: true });
    await cp.stop();
  });
  const { kubectl } = cp;
  await applyObjects(kubectl, [
    ...BASE_CLUSTER,
    namespace('shop'),
    pod('shop', 'web-0', { app: 'web' }),
    namespace('meshguard'),
    pod('meshguard', 'meshguard-0', { 'app.kubernetes.io/name': 'meshguard' }),
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'other', namespace: 'kube-system' }, data: { a: '1' } },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', namespace: 'shop' },
      spec: {
        selector: { matchLabels: { app: 'web' } },
        template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'app', image: 'registry.example/app:1' }] } },
      },
    },
  ]);
  await ensureProbeFixture(kubectl);
  const started = await startMeshguard({ kubeconfigPath: cp.kubeconfigPath });
  mg = started;
  t.teardown(() => {
    if (!t.passing()) t.comment(`meshguard log (last 4000 chars):\n${started.logs().slice(-4000)}`);
  });

  const rendered = execFileSync(kubeBins().kubectl, ['kustomize', join(REPO_ROOT, 'deploy', 'overlays', 'enforce')], { encoding: 'utf8' });
  const vwc = parseAllDocuments(rendered).map((d) => d.toJS() as Doc).find((d) => d.kind === 'ValidatingWebhookConfiguration')!;
  for (const w of vwc.webhooks ?? []) w.clientConfig = { url: `${started.url}/validate`, caBundle: started.caBundle };
  const reg = await kubectl(['apply', '-f', '-'], JSON.stringify(vwc));
  t.equal(reg.code, 0, out(reg));
  let probe: KubectlResult | undefined;
  await waitFor('the shipped webhook to be in use', async () => {
    probe = await kubectl(['apply', '--dry-run=server', '-f', '-'], DEFAULT_PROBE.manifest);
    return DEFAULT_PROBE.done(probe);
  }, 30_000, 300);
  t.match(probe!.stderr, /admission webhook "policies\.meshguard\.io" denied the request/);

  await t.test('policy objects are judged, but never in meshguard\'s own namespace', async (t) => {
    const shop = await kubectl(['apply', '-f', '-'], JSON.stringify(lockdown('shop')));
    t.equal(shop.code, 1, out(shop));
    t.match(shop.stderr, /"policies\.meshguard\.io" denied the request.*dns-egress-missing/s);
    const own = await kubectl(['apply', '-f', '-'], JSON.stringify(lockdown('meshguard')));
    t.equal(own.code, 0, `meshguard's namespace is excluded: ${out(own)}`);
    t.same(decisions(started, 'lockdown').map((d) => d.namespace), ['shop'], 'only the shop request reached meshguard');
    const del = await kubectl(['delete', 'cnp', 'lockdown', '-n', 'meshguard']);
    t.equal(del.code, 0, out(del));
  });

  await t.test('ConfigMaps: only kube-system/cilium-config is sent (matchConditions)', async (t) => {
    const other = await kubectl(['label', 'configmap', 'other', '-n', 'kube-system', 'touched=1']);
    t.equal(other.code, 0, out(other));
    const cilium = await kubectl(['label', 'configmap', 'cilium-config', '-n', 'kube-system', 'touched=1']);
    t.equal(cilium.code, 0, out(cilium));
    await waitFor('the cilium-config decision', () => decisions(started, 'cilium-config').length > 0, 5_000);
    t.equal(decisions(started, 'other').length, 0, 'other ConfigMaps never reach meshguard');
  });

  await t.test('Deployments: only istiod is sent (matchConditions)', async (t) => {
    const web = await kubectl(['label', 'deployment', 'web', '-n', 'shop', 'touched=1']);
    t.equal(web.code, 0, out(web));
    const istiod = await kubectl(['label', 'deployment', 'istiod', '-n', 'istio-system', 'touched=1']);
    t.equal(istiod.code, 0, out(istiod));
    await waitFor('the istiod decision', () => decisions(started, 'istiod').length > 0, 5_000);
    t.equal(decisions(started, 'web').length, 0, 'other Deployments never reach meshguard');
  });

  await t.test('Namespace relabels are sent; meshguard\'s own namespace is not', async (t) => {
    const own = await kubectl(['label', 'namespace', 'meshguard', 'touched=1']);
    t.equal(own.code, 0, out(own));
    const shop = await kubectl(['label', 'namespace', 'shop', 'touched=1']);
    t.equal(shop.code, 0, out(shop));
    await waitFor('the shop namespace decision', () => decisions(started, 'shop').length > 0, 5_000);
    t.equal(decisions(started, 'meshguard').length, 0);
  });

  await t.test('meshguard down: policy changes refused (Fail), cluster plumbing admitted (Ignore)', async (t) => {
    await started.stop({ kill: true });
    const policy = await kubectl(['apply', '-f', '-'], JSON.stringify(lockdown('shop')));
    t.equal(policy.code, 1, out(policy));
    t.match(policy.stderr, /failed calling webhook "policies\.meshguard\.io"/, out(policy));
    const cilium = await kubectl(['label', 'configmap', 'cilium-config', '-n', 'kube-system', 'touched=2', '--overwrite']);
    t.equal(cilium.code, 0, `cilium-config can always be repaired: ${out(cilium)}`);
    const istiod = await kubectl(['label', 'deployment', 'istiod', '-n', 'istio-system', 'touched=2', '--overwrite']);
    t.equal(istiod.code, 0, `istiod can always be repaired: ${out(istiod)}`);
    const ns = await kubectl(['label', 'namespace', 'shop', 'touched=2', '--overwrite']);
    t.equal(ns.code, 0, `namespaces can always be relabelled: ${out(ns)}`);
    const ownPolicy = await kubectl(['apply', '-f', '-'], JSON.stringify(lockdown('meshguard')));
    t.equal(ownPolicy.code, 0, `meshguard's own namespace stays repairable: ${out(ownPolicy)}`);
    const vwcDelete = await kubectl(['delete', 'validatingwebhookconfiguration', 'meshguard']);
    t.equal(vwcDelete.code, 0, `the webhook can always be removed: ${out(vwcDelete)}`);
  });
});
