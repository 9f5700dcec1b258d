// `meshguard snapshot` and `meshguard check --kubeconfig` against a real kube-apiserver: the snapshot
// loads back as --state and gives the same verdicts as the live check; the one-shot commands exit
// promptly (no handle left open) and an unreachable cluster is an input error.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { loadSnapshot } from '../../src/state/snapshot.ts';
import { applyObjects, KUBE_DNS, pod, startControlPlane } from './harness.ts';

const main = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'meshguard-cli-live-'));

function meshguard(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  return new Promise((resolve) => {
    const start = Date.now();
    const child = spawn(process.execPath, [main, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const kill = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('exit', (code) => {
      clearTimeout(kill);
      resolve({ code, stdout, stderr, ms: Date.now() - start });
    });
  });
}

const DENY_EGRESS = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: lockdown, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Egress]
`;

t.test('snapshot and check against a live cluster', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.stop());
  await applyObjects(cp.kubectl, [
    ...KUBE_DNS,
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } },
    pod('shop', 'web-0', { app: 'web' }, [{ name: 'http', containerPort: 8080 }]),
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'db', namespace: 'shop' }, stringData: { password: 'hunter2' } },
  ]);
  const manifest = join(dir, 'lockdown.yaml');
  writeFileSync(manifest, DENY_EGRESS);

  const snapFile = join(dir, 'snap.yaml');
  const snap = await meshguard(['snapshot', '--kubeconfig', cp.kubeconfigPath, '--file', snapFile]);
  t.equal(snap.code, 0, snap.stderr);
  t.equal(snap.stdout, '');
  t.match(snap.stderr, /^meshguard: read \d+ objects from https:\/\/[^:]+:\d+: Namespace \d+, Pod \d+, /, 'says what it read');
  t.match(snap.stderr, `meshguard: wrote ${snapFile} (YAML)\n`);
  const state = loadSnapshot([snapFile]);
  t.ok(state.get('Pod', 'shop', 'web-0'), 'the pod is in the snapshot');
  t.ok(state.get('Service', 'kube-system', 'kube-dns'));
  t.equal(state.list('EndpointSlice', 'default').length, 1, 'the kubernetes EndpointSlice');

  // A .json file gets JSON (loaded item by item), with the same objects.
  const jsonFile = join(dir, 'snap.json');
  const snapJson = await meshguard(['snapshot', '--kubeconfig', cp.kubeconfigPath, '--file', jsonFile]);
  t.equal(snapJson.code, 0, snapJson.stderr);
  t.equal((JSON.parse(readFileSync(jsonFile, 'utf8')) as { kind: string }).kind, 'List', 'JSON');
  const fromJson = loadSnapshot([jsonFile]);
  t.same(fromJson.list('Pod').map((p) => p.metadata.name), state.list('Pod').map((p) => p.metadata.name));
  t.equal(fromJson.list('EndpointSlice', 'default').length, 1);

  const live = await meshguard(['check', '--kubeconfig', cp.kubeconfigPath, '-o', 'json', manifest]);
  t.equal(live.code, 1, live.stderr);
  t.ok(live.ms < 60_000, `check exits promptly (${live.ms} ms)`);
  const fromSnap = await meshguard(['check', '--state', snapFile, '--output', 'json', manifest]);
  t.equal(fromSnap.code, 1, fromSnap.stderr);
  const rules = (s: string) => (JSON.parse(s) as { results: { findings: { rule: string }[] }[] }).results.flatMap((r) => r.findings.map((f) => f.rule));
  t.ok(rules(live.stdout).includes('dns-egress-missing'), 'dns-egress-missing fires on the live state');
  t.same(rules(live.stdout), rules(fromSnap.stdout), 'same verdicts live and from the snapshot');
  t.notMatch(live.stdout + snap.stdout, /hunter2/);

  const down = await meshguard(['check', '--kubeconfig', join(dir, 'missing-kubeconfig'), manifest]);
  t.equal(down.code, 2);
  t.equal(down.stdout, '');
  t.match(down.stderr, /^meshguard: .*missing-kubeconfig.*\n$/);
});
