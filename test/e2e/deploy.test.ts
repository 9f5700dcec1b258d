// The deploy manifests, checked by a real kube-apiserver: every overlay renders with kustomize and
// passes `kubectl apply --dry-run=server` (schemas, CEL matchConditions, webhook rules, cert-manager
// kinds through the test CRDs).

import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { parseAllDocuments } from 'yaml';
import { parseConfig } from '../../src/config/config.ts';
import { allRules } from '../../src/rules/registry.ts';
import { kubeBins, REPO_ROOT } from '../helpers/kube-bins.ts';
import { startControlPlane } from './harness.ts';

interface Doc {
  kind: string;
  metadata: { name: string; namespace?: string; annotations?: Record<string, string> };
  [k: string]: unknown;
}

interface Webhook {
  name: string;
  failurePolicy: string;
  sideEffects: string;
  timeoutSeconds: number;
  admissionReviewVersions: string[];
  namespaceSelector?: { matchExpressions?: { key: string; operator: string; values: string[] }[]; matchLabels?: Record<string, string> };
  matchConditions?: { expression: string }[];
  clientConfig: { service?: { name: string; namespace: string; path: string } };
  rules: { apiGroups: string[]; resources: string[]; operations: string[] }[];
}

const OVERLAYS = { enforce: 'Fail', audit: 'Ignore', 'host-network': 'Fail', 'client-auth': 'Fail' } as const;

function render(kubectl: string, overlay: string): string {
  return execFileSync(kubectl, ['kustomize', join(REPO_ROOT, 'deploy', 'overlays', overlay)], { encoding: 'utf8' });
}

t.test('deploy overlays against a real apiserver', async (t) => {
  const bins = kubeBins();
  const cp = await startControlPlane();
  t.teardown(() => cp.stop());
  // Namespaced objects of a dry run need their namespace to exist for real.
  const ns = await cp.kubectl(['create', 'namespace', 'meshguard', '--save-config']);
  t.equal(ns.code, 0, ns.stderr);

  for (const [overlay, policyFailure] of Object.entries(OVERLAYS)) {
    await t.test(overlay, async (t) => {
      const yaml = render(bins.kubectl, overlay);
      const docs = parseAllDocuments(yaml).map((d) => d.toJS() as Doc);
      const r = await cp.kubectl(['apply', '--dry-run=server', '-f', '-'], yaml);
      t.equal(r.code, 0, `apply --dry-run=server: ${r.stderr}`);
      for (const d of docs) {
        const line = new RegExp(`${d.kind.toLowerCase()}[./][^\\s]*${d.metadata.name} (created|configured|unchanged) \\(server dry run\\)`, 'i');
        t.match(r.stdout, line, `${d.kind} ${d.metadata.name} accepted`);
      }

      const vwc = docs.find((d) => d.kind === 'ValidatingWebhookConfiguration');
      const webhooks = (vwc?.webhooks ?? []) as Webhook[];
      t.equal(vwc?.metadata.annotations?.['cert-manager.io/inject-ca-from'], 'meshguard/meshguard-serving', 'CA injected by cert-manager');
      const byName = new Map(webhooks.map((w) => [w.name, w]));
      t.equal(byName.get('policies.meshguard.io')?.failurePolicy, policyFailure, `policy objects: ${policyFailure}`);
      for (const plumbing of ['namespaces.meshguard.io', 'cilium-config.meshguard.io', 'istiod.meshguard.io']) {
        t.equal(byName.get(plumbing)?.failurePolicy, 'Ignore', `${plumbing}: always Ignore`);
      }
      for (const w of webhooks) {
        t.equal(w.sideEffects, 'None', `${w.name}: sideEffects None (dry-run allowed)`);
        t.same(w.admissionReviewVersions, ['v1']);
        t.ok(w.timeoutSeconds >= 1 && w.timeoutSeconds <= 10, `${w.name}: timeoutSeconds ${w.timeoutSeconds}`);
        t.same(w.clientConfig.service, { name: 'meshguard', namespace: 'meshguard', path: '/validate', port: 443 });
        const excluded = w.namespaceSelector?.matchExpressions?.some(
          (e) => e.key === 'kubernetes.io/metadata.name' && e.operator === 'NotIn' && e.values.includes('meshguard'));
        const onlyKubeSystem = w.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === 'kube-system';
        t.ok(excluded || onlyKubeSystem, `${w.name}: never sees meshguard's own namespace`);
        t.notOk(w.namespaceSelector?.matchExpressions?.some((e) => e.operator === 'NotIn' && e.values.includes('kube-system')),
          `${w.name}: kube-system is not excluded wholesale`);
      }
      const cm = byName.get('cilium-config.meshguard.io');
      t.match(cm?.matchConditions?.[0]?.expression, /cilium-config/, 'ConfigMaps limited to cilium-config');
      const dep = byName.get('istiod.meshguard.io');
      t.match(dep?.matchConditions?.[0]?.expression, /istiod/, 'Deployments limited to istiod');
      const policyOps = new Set(byName.get('policies.meshguard.io')?.rules.flatMap((x) => x.operations));
      t.ok(policyOps.has('DELETE'), 'policy DELETEs are judged');

      const config = docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name.startsWith('meshguard-config'));
      const mode = overlay === 'audit' ? 'audit' : 'enforce';
      t.match((config?.data as Record<string, string>)['config.yaml'], new RegExp(`^mode: ${mode}$`, 'm'), `config mode ${mode}`);

      const deploy = docs.find((d) => d.kind === 'Deployment') as unknown as {
        spec: { template: { spec: { hostNetwork?: boolean; dnsPolicy?: string; containers: { args: string[] }[] } } };
      };
      const pod = deploy.spec.template.spec;
      const args = pod.containers[0]!.args;
      if (overlay === 'host-network') {
        t.equal(pod.hostNetwork, true);
        t.equal(pod.dnsPolicy, 'ClusterFirstWithHostNet');
        t.ok(args.includes('--port=10443'), 'a distinct port on the node');
        t.ok(args.includes('--metrics-port=10444'), 'and one for the probes and metrics');
        t.notOk(docs.some((d) => d.kind === 'CiliumNetworkPolicy'), 'no CiliumNetworkPolicy for a host-network pod');
      } else {
        t.notOk(pod.hostNetwork);
        t.ok(args.includes('--metrics-port=9090'), 'probes and metrics on their own port');
        t.ok(docs.some((d) => d.kind === 'CiliumNetworkPolicy'), 'meshguard is covered by its own CiliumNetworkPolicy');
      }
      t.ok(docs.some((d) => d.kind === 'Service' && d.metadata.name === 'meshguard-metrics'), 'a Service for Prometheus');
      // (The policy's sources and ports are judged in test/deploy/network-policy.test.ts.)
      if (overlay === 'client-auth') {
        t.ok(args.includes('--client-ca=/etc/meshguard/client-ca/ca.crt'), 'meshguard requires the apiserver\'s client certificate');
        t.ok(docs.some((d) => d.kind === 'Certificate' && d.metadata.name === 'meshguard-apiserver-client'), 'which cert-manager issues');
      } else {
        t.notOk(args.some((a) => a.startsWith('--client-ca')), 'no client authentication');
      }
    });
  }

  await t.test('the meshguard CLI accepts every rendered config file', async (t) => {
    // The config the overlays ship must load (a bad key would crash-loop the pods in the cluster).
    for (const overlay of Object.keys(OVERLAYS)) {
      const docs = parseAllDocuments(render(bins.kubectl, overlay)).map((d) => d.toJS() as Doc);
      const cm = docs.find((d) => d.kind === 'ConfigMap')!;
      const text = (cm.data as Record<string, string>)['config.yaml']!;
      const config = parseConfig(text, `${overlay}/config.yaml`, allRules());
      t.equal(config.mode, overlay === 'audit' ? 'audit' : 'enforce', `${overlay}: config loads with its mode`);
    }
  });
});
