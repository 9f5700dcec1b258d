// The CiliumNetworkPolicy meshguard ships for itself, judged by meshguard's own Cilium policy engine
// on a small cluster: the webhook port is reachable from the kube-apiserver only, the monitoring port
// from the monitoring namespace and the node, nothing else from anywhere. Also: the policy's ports are
// the ones the Deployment listens and probes on, in every overlay, and the patch docs/security.md gives
// for another monitoring namespace works.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import t from 'tap';
import { parseAllDocuments } from 'yaml';

import { evaluate } from '../../src/policy/reachability.ts';
import { baseCluster, memoryState, ns, pod, type Obj } from '../fixtures/cluster.ts';
import { anyKubectl, REPO_ROOT } from '../helpers/kube-bins.ts';

interface Container {
  name: string;
  args: string[];
  ports: { name: string; containerPort: number }[];
  readinessProbe?: { httpGet?: { scheme?: string; port?: string | number; path?: string } };
  livenessProbe?: { httpGet?: { scheme?: string; port?: string | number; path?: string } };
  volumeMounts?: { name: string; mountPath: string }[];
}
interface Doc {
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: Record<string, unknown>;
}

const OVERLAYS = ['enforce', 'audit', 'host-network', 'client-auth'] as const;
const kubectl = anyKubectl();

function renderDir(dir: string): Doc[] {
  return parseAllDocuments(execFileSync(kubectl!, ['kustomize', dir], { encoding: 'utf8' })).map((d) => d.toJS() as Doc);
}

/** An overlay as kustomize renders it; without a kubectl, the base as written (no overlay patches it). */
function render(overlay: string): Doc[] {
  if (kubectl) return renderDir(join(REPO_ROOT, 'deploy', 'overlays', overlay));
  return ['deployment.yaml', 'ciliumnetworkpolicy.yaml', 'service.yaml'].flatMap((f) =>
    parseAllDocuments(readFileSync(join(REPO_ROOT, 'deploy', 'base', f), 'utf8')).map((d) => {
      const doc = d.toJS() as Doc;
      doc.metadata.namespace ??= 'meshguard';
      return doc;
    }));
}

function container(docs: Doc[]): Container {
  const dep = docs.find((d) => d.kind === 'Deployment')!;
  return ((dep.spec as { template: { spec: { containers: Container[] } } }).template.spec.containers)[0]!;
}

function flag(c: Container, name: string): number | undefined {
  const a = c.args.find((x) => x.startsWith(`--${name}=`));
  return a === undefined ? undefined : Number(a.split('=')[1]);
}

/**
 * meshguard on node-b; the API server static pod on node-a (its address is the `kubernetes` endpoint);
 * Prometheus in `monitoringNs`; a workload; a pod in meshguard's own namespace; host-network pods on
 * meshguard's node and on a third node.
 */
function cluster(cnp: Doc, monitoringNs = 'monitoring'): ReturnType<typeof memoryState> {
  const onNode = (o: Obj, node: string, hostIP?: string): Obj => {
    (o.spec as { nodeName: string }).nodeName = node;
    if (hostIP) (o.status as Record<string, unknown>) = { phase: 'Running', podIP: hostIP, hostIP };
    return o;
  };
  return memoryState(baseCluster([
    { apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-c' }, status: { addresses: [{ type: 'InternalIP', address: '192.168.0.12' }] } },
    ns('meshguard'), ns(monitoringNs), ns('shop'), ns('monitoring-ish'),
    onNode(pod('meshguard', 'meshguard-0', { 'app.kubernetes.io/name': 'meshguard' }, { ip: '10.0.2.10' }), 'node-b'),
    onNode(pod('meshguard', 'debug', { app: 'debug' }, { ip: '10.0.2.11' }), 'node-b'),
    onNode(pod('kube-system', 'kube-apiserver-node-a', { component: 'kube-apiserver' }, { hostNetwork: true }), 'node-a', '192.168.0.10'),
    onNode(pod(monitoringNs, 'prometheus-0', { 'app.kubernetes.io/name': 'prometheus' }, { ip: '10.0.3.10' }), 'node-a'),
    onNode(pod('monitoring-ish', 'prometheus-0', { 'app.kubernetes.io/name': 'prometheus' }, { ip: '10.0.3.11' }), 'node-a'),
    onNode(pod('shop', 'web-0', { app: 'web' }, { ip: '10.0.4.10' }), 'node-c'),
    onNode(pod('kube-system', 'agent-node-b', { app: 'agent' }, { hostNetwork: true }), 'node-b', '192.168.0.11'),
    onNode(pod('kube-system', 'agent-node-c', { app: 'agent' }, { hostNetwork: true }), 'node-c', '192.168.0.12'),
    cnp as unknown as Obj,
  ]));
}

function ingressFrom(state: ReturnType<typeof memoryState>, from: string, port: number): string {
  const [fromNs, fromName] = from.split('/');
  const src = state.get('Pod', fromNs!, fromName!)!;
  const dst = state.get('Pod', 'meshguard', 'meshguard-0')!;
  return evaluate(state, src, { type: 'pod', pod: dst }, port, 'TCP').ingress.verdict;
}

if (!kubectl) t.comment('no kubectl found: checking deploy/base as written, overlays skipped');

for (const overlay of kubectl ? OVERLAYS : (['enforce'] as const)) {
  t.test(`${overlay}: ports, probes and the policy agree`, async (t) => {
    const docs = render(overlay);
    const c = container(docs);
    const webhookPort = flag(c, 'port')!;
    const metricsPort = flag(c, 'metrics-port')!;
    t.ok(webhookPort > 0 && metricsPort > 0 && webhookPort !== metricsPort, `--port=${webhookPort} --metrics-port=${metricsPort}`);
    t.same(c.ports.map((p) => [p.name, p.containerPort]), [['https', webhookPort], ['metrics', metricsPort]]);
    for (const probe of [c.readinessProbe, c.livenessProbe]) {
      t.equal(probe?.httpGet?.port, 'metrics', 'probes use the monitoring port');
      t.equal(probe?.httpGet?.scheme, 'HTTP');
    }
    const svc = docs.find((d) => d.kind === 'Service' && d.metadata.name === 'meshguard-metrics');
    t.same((svc?.spec as { ports?: { targetPort: string }[] } | undefined)?.ports?.map((p) => p.targetPort), ['metrics'], 'a Service for Prometheus');

    const cnp = docs.find((d) => d.kind === 'CiliumNetworkPolicy');
    if (overlay === 'host-network') {
      t.notOk(cnp, 'no policy for a host-network pod (it would select nothing)');
      return;
    }
    t.ok(cnp, 'meshguard is covered by its own CiliumNetworkPolicy');
    const ingress = (cnp!.spec as { ingress: { toPorts: { ports: { port: string }[] }[] }[] }).ingress;
    const ports = ingress.flatMap((r) => r.toPorts.flatMap((tp) => tp.ports.map((p) => Number(p.port))));
    t.same([...new Set(ports)].sort(), [webhookPort, metricsPort].sort(), 'the policy names exactly the ports meshguard listens on');

    const state = cluster(cnp!);
    const apiserver = 'kube-system/kube-apiserver-node-a';
    t.equal(ingressFrom(state, apiserver, webhookPort), 'allowed', 'the kube-apiserver reaches the webhook');
    t.equal(ingressFrom(state, apiserver, metricsPort), 'denied', 'but not the monitoring port');
    t.equal(ingressFrom(state, 'monitoring/prometheus-0', metricsPort), 'allowed', 'Prometheus scrapes');
    t.equal(ingressFrom(state, 'monitoring/prometheus-0', webhookPort), 'denied', 'Prometheus cannot call /validate');
    for (const other of ['shop/web-0', 'meshguard/debug', 'monitoring-ish/prometheus-0', 'kube-system/agent-node-c']) {
      t.equal(ingressFrom(state, other, webhookPort), 'denied', `${other} cannot call /validate`);
      t.equal(ingressFrom(state, other, metricsPort), 'denied', `${other} cannot scrape`);
    }
    t.equal(ingressFrom(state, 'kube-system/agent-node-b', metricsPort), 'allowed', 'the local node (kubelet probes)');
  });
}

t.test('client-auth: the apiserver\'s client CA is mounted, without its key, and signs client certificates only', { skip: !kubectl && 'no kubectl' }, async (t) => {
  const docs = render('client-auth');
  const c = container(docs);
  const caArg = c.args.find((a) => a.startsWith('--client-ca='));
  t.equal(caArg, '--client-ca=/etc/meshguard/client-ca/ca.crt');
  const mount = c.volumeMounts?.find((m) => m.mountPath === '/etc/meshguard/client-ca');
  const dep = docs.find((d) => d.kind === 'Deployment')!;
  const volumes = (dep.spec as { template: { spec: { volumes: { name: string; secret?: { secretName: string; items?: { key: string; path: string }[] } }[] } } }).template.spec.volumes;
  const vol = volumes.find((v) => v.name === mount?.name);
  t.same(vol?.secret?.items, [{ key: 'ca.crt', path: 'ca.crt' }], 'only the CA certificate, never the CA key');
  type Cert = Doc & { spec: { secretName: string; isCA?: boolean; usages?: string[]; issuerRef: { name: string } } };
  const certs = docs.filter((d) => d.kind === 'Certificate') as Cert[];
  const issuers = docs.filter((d) => d.kind === 'Issuer') as (Doc & { spec: { ca?: { secretName: string } } })[];
  const clientCa = certs.find((x) => x.spec.secretName === vol?.secret?.secretName);
  t.equal(clientCa?.spec.isCA, true, 'the mounted Secret is a CA');
  const servingCa = certs.find((x) => x.metadata.name === 'meshguard-ca');
  t.not(clientCa?.spec.secretName, servingCa?.spec.secretName, 'not the serving CA');
  const issuer = issuers.find((i) => i.spec.ca?.secretName === clientCa?.spec.secretName);
  const signed = certs.filter((x) => x.spec.issuerRef.name === issuer?.metadata.name);
  t.same(signed.map((x) => x.metadata.name), ['meshguard-apiserver-client'], 'the client CA signs the apiserver\'s certificate and nothing else');
  t.same(signed[0]?.spec.usages?.sort(), ['client auth', 'digital signature']);
  t.ok(docs.filter((d) => d.kind === 'Certificate' || d.kind === 'Issuer').every((d) => d.metadata.namespace === 'meshguard'), 'all in meshguard\'s namespace');
});

t.test('the monitoring-namespace patch in docs/security.md works', { skip: !kubectl && 'no kubectl' }, async (t) => {
  const doc = readFileSync(join(REPO_ROOT, 'docs', 'security.md'), 'utf8');
  const m = /<!-- monitoring-namespace-overlay[^>]*-->\s*```yaml\n([\s\S]*?)```/.exec(doc);
  t.ok(m, 'the documented overlay is found');
  const dir = mkdtempSync(join(tmpdir(), 'meshguard-overlay-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // The doc's overlay sits next to deploy/; kustomize wants the path relative to the overlay.
  const kustomization = m![1]!.replace('../deploy/overlays/enforce', relative(dir, join(REPO_ROOT, 'deploy', 'overlays', 'enforce')));
  writeFileSync(join(dir, 'kustomization.yaml'), kustomization);
  const cnp = renderDir(dir).find((d) => d.kind === 'CiliumNetworkPolicy')!;
  const metricsPort = flag(container(render('enforce')), 'metrics-port')!;
  const state = cluster(cnp, 'observability');
  t.equal(ingressFrom(state, 'observability/prometheus-0', metricsPort), 'allowed', 'the new namespace scrapes');
  const old = cluster(cnp, 'monitoring');
  t.equal(ingressFrom(old, 'monitoring/prometheus-0', metricsPort), 'denied', 'the old one no longer does');
});
