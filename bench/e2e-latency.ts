// `make bench-e2e`: the latency users see, through a real kube-apiserver (the e2e control plane of
// test/e2e/harness.ts, binaries from .cache/kube): `kubectl apply --dry-run=server` of a policy, a few
// hundred times, with
//   (a) no admission check,
//   (b) a ValidatingAdmissionPolicy (CEL, evaluated inside the apiserver) doing a comparable check
//       (an egress CiliumNetworkPolicy must allow DNS to kube-dns), the floor any check can reach,
//   (c) meshguard as the validating webhook (failurePolicy Fail, as deploy/ registers it).
// Two figures per setup: the whole `kubectl apply` process (what a user or a CI job waits for, kubectl's
// own start-up included) and the apiserver's answer alone (a dry-run POST over one keep-alive
// connection, the same object), each as p50/p99. The setups run one after the other in one process, on
// one control plane; the machine's load average is printed beside each. Not part of `make test`.
//
// Usage: node bench/e2e-latency.ts [--count 300] [--direct-count 1000]

import https from 'node:https';
import os from 'node:os';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';

import { applyObjects, registerWebhook, POLICY_RULES, startControlPlane, startMeshguard, unregisterWebhook, waitFor, type ControlPlane, type Kubectl } from '../test/e2e/harness.ts';
import { BASE_CLUSTER, namespace, pod } from '../test/e2e/scenario.ts';
import { percentile } from './worst-case.ts';

const { values } = parseArgs({ options: { count: { type: 'string', default: '300' }, 'direct-count': { type: 'string', default: '1000' } } });
const COUNT = Number(values.count);
const DIRECT_COUNT = Number(values['direct-count']);

const NS = 'shop';
const DNS_ALLOW = { toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s-app': 'kube-dns' } }], toPorts: [{ ports: [{ port: '53', protocol: 'UDP' }, { port: '53', protocol: 'TCP' }] }] };
/** The policy applied: egress of web to db plus DNS, which every check admits. */
const POLICY = {
  apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: 'web-egress', namespace: NS },
  spec: { endpointSelector: { matchLabels: { app: 'web' } }, egress: [{ toEndpoints: [{ matchLabels: { app: 'db' } }], toPorts: [{ ports: [{ port: '5432', protocol: 'TCP' }] }] }, DNS_ALLOW] },
};
/** Its bad twin (no DNS), used only to see that a check is in force before measuring. */
const BAD = { ...POLICY, metadata: { name: 'web-egress-bad', namespace: NS }, spec: { ...POLICY.spec, egress: [POLICY.spec.egress[0]] } };

/** The CEL check: a CiliumNetworkPolicy with egress rules must have one towards kube-dns. */
const VAP = {
  apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingAdmissionPolicy', metadata: { name: 'egress-keeps-dns' },
  spec: {
    failurePolicy: 'Fail',
    matchConstraints: { resourceRules: [{ apiGroups: ['cilium.io'], apiVersions: ['v2'], resources: ['ciliumnetworkpolicies'], operations: ['CREATE', 'UPDATE'] }] },
    validations: [{
      expression: "!has(object.spec.egress) || object.spec.egress.exists(e, has(e.toEndpoints) && e.toEndpoints.exists(s, has(s.matchLabels) && 'k8s-app' in s.matchLabels && s.matchLabels['k8s-app'] == 'kube-dns'))",
      message: 'egress without a rule to kube-dns: the selected pods lose cluster DNS',
    }],
  },
};
const VAP_BINDING = {
  apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingAdmissionPolicyBinding', metadata: { name: 'egress-keeps-dns' },
  spec: { policyName: 'egress-keeps-dns', validationActions: ['Deny'] },
};

function log(msg: string): void {
  process.stderr.write(`[bench-e2e] ${msg}\n`);
}

/** The apiserver URL and bearer token of the control plane's kubeconfig. */
function apiOf(cp: ControlPlane): { url: URL; token: string; ca: Buffer } {
  const kc = parseYaml(readFileSync(cp.kubeconfigPath, 'utf8')) as { clusters: { cluster: { server: string; 'certificate-authority'?: string; 'certificate-authority-data'?: string } }[]; users: { user: { token: string } }[] };
  const cluster = kc.clusters[0]!.cluster;
  const ca = cluster['certificate-authority-data'] ? Buffer.from(cluster['certificate-authority-data'], 'base64') : readFileSync(cluster['certificate-authority']!);
  return { url: new URL(cluster.server), token: kc.users[0]!.user.token, ca };
}

async function timeKubectl(kubectl: Kubectl, n: number): Promise<number[]> {
  const body = JSON.stringify(POLICY);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const r = await kubectl(['apply', '--dry-run=server', '-f', '-'], body);
    out.push(performance.now() - t0);
    if (r.code !== 0) throw new Error(`kubectl apply --dry-run=server failed: ${r.stderr}`);
  }
  return out;
}

/** Dry-run creates of the policy straight to the apiserver, one at a time over one connection. */
async function timeDirect(cp: ControlPlane, n: number): Promise<number[]> {
  const { url, token, ca } = apiOf(cp);
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca });
  const body = JSON.stringify(POLICY);
  const post = (): Promise<number> => new Promise((resolve, reject) => {
    const req = https.request({
      host: url.hostname, port: url.port, method: 'POST', agent, path: `/apis/cilium.io/v2/namespaces/${NS}/ciliumnetworkpolicies?dryRun=All&fieldManager=bench`,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
  const out: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const status = await post();
      out.push(performance.now() - t0);
      if (status !== 201) throw new Error(`dry-run POST answered ${status}`);
    }
  } finally {
    agent.destroy();
  }
  return out;
}

interface Row { setup: string; loadBefore: number; loadAfter: number; kubectl: number[]; direct: number[] }

async function measure(cp: ControlPlane, setup: string): Promise<Row> {
  log(`${setup}: ${COUNT} kubectl applies, ${DIRECT_COUNT} direct dry-run POSTs`);
  const loadBefore = os.loadavg()[0]!;
  // A few unmeasured rounds first: connections, the apiserver's caches, the webhook's JIT.
  await timeKubectl(cp.kubectl, 5);
  await timeDirect(cp, 50);
  const kubectl = await timeKubectl(cp.kubectl, COUNT);
  const direct = await timeDirect(cp, DIRECT_COUNT);
  return { setup, loadBefore, loadAfter: os.loadavg()[0]!, kubectl, direct };
}

/** Waits until a dry-run of the bad twin is refused (`refused` true) or admitted. */
async function until(cp: ControlPlane, refused: boolean, what: string): Promise<void> {
  await waitFor(what, async () => (await cp.kubectl(['apply', '--dry-run=server', '-f', '-'], JSON.stringify(BAD))).code !== 0 === refused, 60_000, 300);
}

const cp = await startControlPlane();
const rows: Row[] = [];
try {
  await applyObjects(cp.kubectl, [
    ...BASE_CLUSTER,
    namespace(NS),
    pod(NS, 'web-0', { app: 'web' }, [{ name: 'http', containerPort: 8080 }]),
    pod(NS, 'db-0', { app: 'db' }, [{ name: 'pg', containerPort: 5432 }]),
  ]);
  await until(cp, false, 'no check in force');
  rows.push(await measure(cp, 'no admission check'));

  const a = await cp.kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [VAP, VAP_BINDING] }));
  if (a.code !== 0) throw new Error(`ValidatingAdmissionPolicy: ${a.stderr}`);
  await until(cp, true, 'the ValidatingAdmissionPolicy to refuse the bad twin');
  rows.push(await measure(cp, 'ValidatingAdmissionPolicy (CEL)'));
  await cp.kubectl(['delete', 'validatingadmissionpolicybinding,validatingadmissionpolicy', 'egress-keeps-dns', '--wait=true']);
  await until(cp, false, 'the ValidatingAdmissionPolicy to be gone');

  const mg = await startMeshguard({ kubeconfigPath: cp.kubeconfigPath, extraArgs: ['--log-level', 'warn'] });
  try {
    await registerWebhook(cp.kubectl, { url: mg.url, caBundle: mg.caBundle, failurePolicy: 'Fail', timeoutSeconds: 10, rules: POLICY_RULES });
    await until(cp, true, 'meshguard to refuse the bad twin');
    rows.push(await measure(cp, 'meshguard webhook'));
    await unregisterWebhook(cp.kubectl);
  } finally {
    await mg.stop({ kill: true });
  }
} finally {
  await cp.stop();
}

const f = (x: number): string => x.toFixed(1);
const lines = [
  `## kubectl apply --dry-run=server through kube-apiserver (${os.cpus().length} CPUs, Node ${process.version}, ${new Date().toISOString()})`,
  '',
  `One CiliumNetworkPolicy (allowed by every check); kubectl: ${COUNT} runs of the whole \`kubectl apply\` process; direct: ${DIRECT_COUNT} dry-run POSTs to the apiserver over one keep-alive connection.`,
  '',
  '| admission check | kubectl p50 ms | kubectl p99 ms | direct p50 ms | direct p99 ms | load average before / after |',
  '|---|---:|---:|---:|---:|---:|',
  ...rows.map((r) => `| ${r.setup} | ${f(percentile(r.kubectl, 50))} | ${f(percentile(r.kubectl, 99))} | ${f(percentile(r.direct, 50))} | ${f(percentile(r.direct, 99))} | ${r.loadBefore.toFixed(2)} / ${r.loadAfter.toFixed(2)} |`),
];
process.stdout.write(lines.join('\n') + '\n');
