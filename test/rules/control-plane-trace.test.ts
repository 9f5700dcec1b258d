// mesh-control-plane-blocked and webhook-ingress-apiserver-entity agree with `meshguard trace` (issue 18,
// section 3: trace showed the traffic denied while check admitted the policy). Against the bundled cluster,
// Istio's documented allow-ambient-hostprobes CCNP (https://istio.io/latest/docs/ambient/install/platform-prerequisites/,
// Cilium section; paraphrased) is denied by `check` with both rules naming the cluster-wide `{}` cause,
// and `trace` shows the flows those findings name denied: a sidecar to istiod on 15012, and the
// kube-apiserver (a host-network static pod on its node address, as kubeadm and kind run it) to a
// webhook backend. The fixed CCNP (`enableDefaultDeny: {ingress: false}`) is admitted by both rules
// and trace shows the same flows allowed.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';

import { runCli } from '../../src/cli/program.ts';

const root = new URL('../../', import.meta.url).pathname;
const CLUSTER = `${root}examples/cluster`;
const dir = mkdtempSync(join(tmpdir(), 'meshguard-cp-trace-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function hostprobes(fixed: boolean): Record<string, unknown> {
  return {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumClusterwideNetworkPolicy',
    metadata: { name: 'allow-ambient-hostprobes' },
    spec: {
      description: 'SNAT-ed kubelet probes into ambient pods',
      endpointSelector: {},
      ...(fixed ? { enableDefaultDeny: { ingress: false, egress: false } } : {}),
      ingress: [{ fromCIDR: ['169.254.7.127/32'] }],
    },
  };
}

// The API server as kind runs it: a static pod in the host network of kind-control-plane, whose address is
// the default/kubernetes endpoint (examples/cluster/00-cluster.yaml).
const apiserverPod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'kube-apiserver-kind-control-plane', namespace: 'kube-system', labels: { component: 'kube-apiserver', tier: 'control-plane' } },
  spec: { nodeName: 'kind-control-plane', hostNetwork: true, containers: [{ name: 'kube-apiserver' }] },
  status: { phase: 'Running', podIP: '172.18.0.2', hostIP: '172.18.0.2' },
};

function write(name: string, obj: Record<string, unknown>): string {
  const file = join(dir, name);
  writeFileSync(file, stringify(obj));
  return file;
}

async function cli(args: string[]): Promise<{ code: number; stdout: string }> {
  let stdout = '';
  const code = await runCli(args, { io: { stdout: (s) => void (stdout += s), stderr: () => undefined } });
  return { code, stdout };
}

async function codes(file: string): Promise<string[]> {
  const r = await cli(['check', '--state', CLUSTER, '--output', 'json', file]);
  const results = (JSON.parse(r.stdout) as { results: { findings: { code?: string }[] }[] }).results;
  return results.flatMap((x) => x.findings.map((f) => f.code ?? ''));
}

async function traceVerdict(extra: string, from: string, to: string, port: string): Promise<string> {
  const r = await cli(['trace', '--state', CLUSTER, '--state', extra, '--state', write('apiserver.yaml', apiserverPod), '--from', from, '--to', to, '--port', port, '-o', 'json']);
  const out = JSON.parse(r.stdout) as { allowed?: boolean; verdict?: string };
  return out.allowed === undefined ? String(out.verdict) : out.allowed ? 'allowed' : 'denied';
}

const SIDECAR = 'red/netshoot-7d5c8f9b6c-r4t8n';
const ISTIOD = 'istio-system/istiod-5d8f7c9b6d-hx2lp';
const APISERVER = 'kube-system/kube-apiserver-kind-control-plane';
const WEBHOOK_BACKEND = 'policy-hooks/label-validator-6f5d-x2k9q';

t.test('the allow-ambient-hostprobes CCNP: check denies it through both rules, trace shows the flows denied', async (t) => {
  const file = write('hostprobes.yaml', hostprobes(false));
  const found = await codes(file);
  t.ok(found.includes('mesh-control-plane-blocked/cluster-default-deny'), 'mesh-control-plane-blocked names the {} cause');
  t.ok(found.includes('webhook-ingress-apiserver-entity/cluster-default-deny'), 'webhook-ingress-apiserver-entity names the {} cause');
  t.equal(await traceVerdict(file, SIDECAR, ISTIOD, '15012/tcp'), 'denied', 'trace: sidecar -> istiod xDS denied');
  t.equal(await traceVerdict(file, APISERVER, ISTIOD, '15017/tcp'), 'denied', 'trace: kube-apiserver -> istiod webhook denied');
  t.equal(await traceVerdict(file, APISERVER, WEBHOOK_BACKEND, '9443/tcp'), 'denied', 'trace: kube-apiserver -> webhook backend denied');
});

t.test('the fixed CCNP (enableDefaultDeny ingress false): neither rule fires, trace shows the flows allowed', async (t) => {
  const file = write('hostprobes-fixed.yaml', hostprobes(true));
  const found = await codes(file);
  t.notOk(found.some((c) => c.startsWith('mesh-control-plane-blocked/') || c.startsWith('webhook-ingress-apiserver-entity/')), `no finding of the two rules (${found.join(', ') || 'none'})`);
  t.equal(await traceVerdict(file, SIDECAR, ISTIOD, '15012/tcp'), 'allowed', 'trace: sidecar -> istiod xDS allowed');
  t.equal(await traceVerdict(file, APISERVER, ISTIOD, '15017/tcp'), 'allowed', 'trace: kube-apiserver -> istiod webhook allowed');
  t.equal(await traceVerdict(file, APISERVER, WEBHOOK_BACKEND, '9443/tcp'), 'allowed', 'trace: kube-apiserver -> webhook backend allowed');
});
