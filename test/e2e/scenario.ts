// Shared setup of the e2e scenarios: one control plane + one meshguard per test file, the objects a
// Cilium + Istio cluster would have, and small kubectl assertions.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import {
  applyObjects,
  KUBE_DNS,
  pod,
  POLICY_RULES,
  registerWebhook,
  startControlPlane,
  startMeshguard,
  type ControlPlane,
  type KubectlResult,
  type Meshguard,
  type RegisterWebhookOptions,
} from './harness.ts';

/** cilium-config of a tunnel-mode (VXLAN) cluster with the L7 proxy on (the agent's defaults). */
export const CILIUM_CONFIG = {
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name: 'cilium-config', namespace: 'kube-system' },
  data: {
    'routing-mode': 'tunnel',
    'tunnel-protocol': 'vxlan',
    'enable-policy': 'default',
    'enable-l7-proxy': 'true',
    'cni-exclusive': 'false',
    'kube-proxy-replacement': 'false',
  },
};

/** istiod running as a normal (pod-network) Deployment in istio-system. */
export const ISTIOD = [
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'istio-system' } },
  {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'istiod', namespace: 'istio-system', labels: { app: 'istiod' } },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: 'istiod' } },
      template: {
        metadata: { labels: { app: 'istiod', 'istio.io/rev': 'default' } },
        spec: { containers: [{ name: 'discovery', image: 'registry.example/pilot:1', ports: [{ containerPort: 15012 }] }] },
      },
    },
  },
];

/** The cluster plumbing every scenario starts from. */
export const BASE_CLUSTER: unknown[] = [...KUBE_DNS, CILIUM_CONFIG, ...ISTIOD];

export function namespace(name: string, labels: Record<string, string> = {}): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } };
}

export { pod };

export interface Env {
  cp: ControlPlane;
  mg: Meshguard;
  kubectl: ControlPlane['kubectl'];
  dir: string;
}

/** Writes a meshguard config file into a temp dir and returns its path. */
export function configFile(dir: string, yaml: string, name = 'config.yaml'): string {
  const p = join(dir, name);
  writeFileSync(p, yaml);
  return p;
}

/**
 * Control plane with BASE_CLUSTER (+ `objects`), meshguard started against it and registered for the
 * policy kinds. Everything is torn down at the end of `t`.
 */
export async function setup(
  t: Test,
  opts: { objects?: unknown[]; config?: string; webhook?: Partial<RegisterWebhookOptions> } = {},
): Promise<Env> {
  const dir = mkdtempSync(join(tmpdir(), 'meshguard-e2e-scn-'));
  const cp = await startControlPlane();
  let mg: Meshguard | undefined;
  t.teardown(async () => {
    await mg?.stop({ kill: true });
    await cp.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await applyObjects(cp.kubectl, [...BASE_CLUSTER, ...(opts.objects ?? [])]);
  mg = await startMeshguard({
    kubeconfigPath: cp.kubeconfigPath,
    ...(opts.config ? { configFile: configFile(dir, opts.config) } : {}),
  });
  const started = mg;
  t.teardown(() => {
    if (t.passing()) return;
    t.comment(`meshguard log (last 4000 chars):\n${started.logs().slice(-4000)}`);
  });
  await registerWebhook(cp.kubectl, {
    url: mg.url,
    caBundle: mg.caBundle,
    failurePolicy: 'Fail',
    timeoutSeconds: 10,
    rules: POLICY_RULES,
    ...opts.webhook,
  });
  return { cp, mg, kubectl: cp.kubectl, dir };
}

/** kubectl's whole output, for assertion messages. */
export function out(r: KubectlResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

export function apply(env: Env, obj: unknown, dryRun = false): Promise<KubectlResult> {
  return env.kubectl(['apply', ...(dryRun ? ['--dry-run=server'] : []), '-f', '-'], JSON.stringify(obj));
}

/** `kubectl get KIND NAME -n NS`: true when the object exists. */
export async function exists(env: Env, kind: string, ns: string, name: string): Promise<boolean> {
  const r = await env.kubectl(['get', kind, name, '-n', ns, '-o', 'name', '--ignore-not-found']);
  if (r.code !== 0) throw new Error(`kubectl get ${kind} failed: ${r.stderr}`);
  return r.stdout.trim() !== '';
}
