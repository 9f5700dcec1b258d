// The seed scenarios (issue 4) played through `meshguard check` on the bundled example cluster, with the
// objects applied in order the way a user would apply them.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { runCli } from '../../src/cli/program.ts';

const root = new URL('../../', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'meshguard-scenarios-'));
let n = 0;

interface Result {
  kind: string;
  namespace: string;
  name: string;
  operation: string;
  allowed: boolean;
  findings: { rule: string; action: string; message: string }[];
}

/** Check `docs` (YAML documents, applied in order) against the example cluster. */
async function check(docs: string[], ...flags: string[]): Promise<Result[]> {
  const file = join(dir, `s${n++}.yaml`);
  writeFileSync(file, docs.join('\n---\n'));
  let stdout = '';
  let stderr = '';
  await runCli(['check', '--state', `${root}examples/cluster`, '--output', 'json', ...flags, file], {
    io: { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s) },
  });
  if (stderr) throw new Error(stderr);
  return (JSON.parse(stdout) as { results: Result[] }).results;
}

const rulesOf = (r: Result | undefined) => (r?.findings ?? []).filter((f) => f.action === 'deny').map((f) => f.rule);

// ---- seed 001: the Cilium Istio guide (red/blue injected, green not)
const L7_POLICY = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: httpbin-l7
  namespace: blue
spec:
  endpointSelector:
    matchLabels: {app: httpbin}
  ingress:
  - fromEndpoints:
    - matchLabels: {k8s:io.kubernetes.pod.namespace: red}
    - matchLabels: {k8s:io.kubernetes.pod.namespace: blue}
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
      rules:
        http:
        - {method: GET, path: /ip}`;
const PA_DISABLE = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: blue
spec:
  mtls: {mode: DISABLE}`;
const PA_STRICT_WORKLOAD = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: httpbin-strict
  namespace: blue
spec:
  selector:
    matchLabels: {app: httpbin}
  mtls: {mode: STRICT}`;

t.test('seed 001: the L4 policy in blue is admitted as it stands', async (t) => {
  const [r] = await check([
    `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: httpbin-l4, namespace: blue}
spec:
  endpointSelector:
    matchLabels: {app: httpbin}
  ingress:
  - fromEndpoints:
    - matchLabels: {k8s:io.kubernetes.pod.namespace: red}
    - matchLabels: {k8s:io.kubernetes.pod.namespace: blue}
    toPorts:
    - ports: [{port: "80", protocol: TCP}]`,
  ]);
  t.equal(r?.operation, 'UPDATE');
  t.equal(r?.allowed, true);
  t.same(r?.findings, []);
});

t.test('seed 001: the L7 /ip policy is denied on sidecar pods with mTLS', async (t) => {
  const [r] = await check([L7_POLICY]);
  t.equal(r?.allowed, false);
  t.same(rulesOf(r), ['split-brain-l7-sidecar']);
  t.match(r?.findings[0]?.message, /httpbin/);
});

t.test('seed 001: after PeerAuthentication DISABLE in blue, the L7 policy is admitted', async (t) => {
  const [pa, l7] = await check([PA_DISABLE, L7_POLICY]);
  t.equal(pa?.allowed, true);
  t.equal(l7?.allowed, true, JSON.stringify(l7?.findings));
  t.same(rulesOf(l7), []);
});

t.test('seed 001: a workload STRICT overriding the namespace DISABLE brings the denial back', async (t) => {
  const [, , l7] = await check([PA_DISABLE, PA_STRICT_WORKLOAD, L7_POLICY]);
  t.equal(l7?.allowed, false);
  t.same(rulesOf(l7), ['split-brain-l7-sidecar']);
});

// ---- seed 004: the ambient lab (demo)
const INGRESS = (ports: string[], probes: boolean) => `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: hello-app-ingress, namespace: demo}
spec:
  endpointSelector:
    matchLabels: {app: hello-app}
  ingress:
  - fromEndpoints:
    - matchLabels: {gateway.networking.k8s.io/gateway-name: hello-gateway}
    toPorts:
    - ports: [${ports.map((p) => `{port: "${p}", protocol: TCP}`).join(', ')}]${
      probes
        ? `
  - fromCIDR: [169.254.7.127/32]`
        : ''
    }`;

t.test('seed 004: ambient ingress without 15008 is denied (hbone-15008-blocked)', async (t) => {
  const [r] = await check([INGRESS(['8000'], true)]);
  t.equal(r?.allowed, false);
  t.same(rulesOf(r), ['hbone-15008-blocked']);
});

t.test('seed 004: ambient ingress without the probe SNAT address is denied (ambient-probe-snat-blocked)', async (t) => {
  const [r] = await check([INGRESS(['8000', '15008'], false)]);
  t.equal(r?.allowed, false);
  t.same(rulesOf(r), ['ambient-probe-snat-blocked']);
});

t.test('seed 004: with 15008 and the probe address, the ingress policy is admitted', async (t) => {
  const [r] = await check([INGRESS(['8000', '15008'], true)]);
  t.equal(r?.allowed, true, JSON.stringify(r?.findings));
});

const AUTHZ = (paths: boolean) => `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: hello-app-policy, namespace: demo}
spec:
  selector:
    matchLabels: {app: hello-app}
  action: ALLOW
  rules:
  - from:
    - source:
        principals: [cluster.local/ns/demo/sa/hello-gateway-istio]
    to:
    - operation:
        ports: ["8000"]${paths ? '\n        paths: ["/api/*"]' : ''}`;

t.test('seed 004: the L4 AuthorizationPolicy by principal and port is admitted', async (t) => {
  const [r] = await check([AUTHZ(false)]);
  t.equal(r?.allowed, true, JSON.stringify(r?.findings));
  t.same(rulesOf(r), []);
});

t.test('seed 004: the same policy with paths is denied (ztunnel-l7-authz)', async (t) => {
  const [r] = await check([AUTHZ(true)]);
  t.equal(r?.allowed, false);
  t.same(rulesOf(r), ['ztunnel-l7-authz']);
});

// ---- seed 000: egress
const DENY_EGRESS = (withDns: boolean) => `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-egress, namespace: green}
spec:
  podSelector:
    matchLabels: {app: netshoot}
  policyTypes: [Egress]
  egress:${
    withDns
      ? `
  - to:
    - namespaceSelector:
        matchLabels: {kubernetes.io/metadata.name: kube-system}
      podSelector:
        matchLabels: {k8s-app: kube-dns}
    ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}`
      : ' []'
  }`;

t.test('seed 000: a default-deny egress without DNS is denied; adding the kube-dns rule admits it', async (t) => {
  const [bad] = await check([DENY_EGRESS(false)]);
  t.equal(bad?.allowed, false);
  t.same(rulesOf(bad), ['dns-egress-missing']);
  const [good] = await check([DENY_EGRESS(true)]);
  t.equal(good?.allowed, true, JSON.stringify(good?.findings));
});

t.test('seed 000: deleting the DNS-allow policy while another keeps the pods egress-enforced is denied', async (t) => {
  // demo/allow-dns is the only egress policy there: deleting it un-enforces egress, which is safe.
  const alone = await check([`apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: allow-dns, namespace: demo}\nspec: {}`], '--operation', 'DELETE');
  t.equal(alone[0]?.allowed, true, JSON.stringify(alone[0]?.findings));
  // With an egress allow list for hello-app in place, deleting the DNS allow cuts its DNS.
  const results = await check([
    `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: hello-app-egress, namespace: demo}
spec:
  endpointSelector:
    matchLabels: {app: hello-app}
  egress:
  - toEndpoints:
    - matchLabels: {app: postgres}
    toPorts:
    - ports: [{port: "5432", protocol: TCP}]`,
  ]);
  t.equal(results[0]?.allowed, true, 'the egress policy itself is fine while allow-dns exists');
  const stateFile = join(dir, 'with-egress.yaml');
  writeFileSync(
    stateFile,
    `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: hello-app-egress, namespace: demo}
spec:
  endpointSelector:
    matchLabels: {app: hello-app}
  egress:
  - toEndpoints:
    - matchLabels: {app: postgres}
    toPorts:
    - ports: [{port: "5432", protocol: TCP}]`,
  );
  const del = await check([`apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: allow-dns, namespace: demo}\nspec: {}`], '--state', stateFile, '--operation', 'DELETE');
  t.equal(del[0]?.allowed, false);
  t.same(rulesOf(del[0]), ['dns-egress-missing']);
});
