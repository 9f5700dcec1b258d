// bench/live.ts end to end, on a small cluster: it loads the synthetic cluster into a real kube-apiserver,
// meshguard's live view must then hold every object, and each phase must report figures for answered
// requests (no errors), the churn phase pod changes that the apiserver accepted.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { generateCluster } from '../../bench/cluster-gen.ts';
import { REPO_ROOT } from '../helpers/kube-bins.ts';

const PODS = 300;

t.test('bench/live.ts measures the live path on a real apiserver', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meshguard-bench-live-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'live.json');
  const args = [join(REPO_ROOT, 'bench/live.ts'), '--pods', String(PODS), '--seconds', '1', '--rate', '100', '--churn', '20', '--repeats', '2', '--no-write', '--json', out];
  const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err = (err + d).slice(-6000)));
    child.on('exit', (c) => resolve({ code: c, stderr: err }));
  });
  t.equal(code, 0, `bench/live.ts exits 0${code === 0 ? '' : `:\n${stderr}`}`);
  if (code !== 0) return;

  const r = JSON.parse(readFileSync(out, 'utf8')) as { sizes: Record<string, any>[]; targets: { target: string; verdict: string }[] };
  t.equal(r.sizes.length, 1);
  t.same(
    r.targets.map((x) => [x.target, x.verdict]),
    [
      ['< 300 MB RSS at 50k pods (live path, peak)', 'not measured'],
      ['ready from a live apiserver <= 10 s at 50k pods (serve --kubeconfig, start to ready)', 'not measured'],
    ],
    `the live RSS and ready targets are checked, and not claimed at ${PODS} pods`,
  );
  const s = r.sizes[0]!;
  const expected: Record<string, number> = {};
  for (const o of generateCluster(PODS)) expected[o.kind] = (expected[o.kind] ?? 0) + 1;
  t.equal(s['objects'], Object.values(expected).reduce((a, b) => a + b, 0), 'every generated object was loaded');
  for (const [kind, n] of Object.entries(expected)) {
    t.ok(s['stateObjects'][kind] >= n, `meshguard's live state holds the ${n} ${kind} objects (${s['stateObjects'][kind]})`);
  }
  t.equal(s['stateObjects']['Pod'], PODS + 4, 'pods: the application pods plus CoreDNS and istiod');
  for (const phase of ['rate', 'max', 'churn', 'churnControl']) {
    const l = s[phase];
    t.equal(l.errors, 0, `${phase}: no errors`);
    t.ok(l.requests > 0 && l.p50 > 0 && l.p50 <= l.p99, `${phase}: ${l.requests} requests, ordered percentiles`);
  }
  // Two label churn runs in turn with two control runs: each run's p99, and the one shown is one of them.
  for (const phase of ['churn', 'churnControl']) {
    const runs = s[phase].runs as { p99: number; majorGcs: number }[];
    t.equal(runs.length, 2, `${phase}: both runs reported`);
    const p99s = runs.map((x) => x.p99);
    t.ok(p99s.includes(s[phase].p99), `${phase}: the run shown is one of them (${s[phase].p99} in ${p99s.join(', ')})`);
    t.ok(runs.every((x) => Number.isInteger(x.majorGcs) && x.majorGcs >= 0), `${phase}: each with the major collections read from its server (${runs.map((x) => x.majorGcs).join(', ')})`);
  }
  // The control evaluates every request, as the live server must under label churn.
  t.notOk(s['churnControl'].cacheHitRatio > 0, `the control answers nothing from a verdict cache (${s['churnControl'].cacheHitRatio})`);
  t.notOk(s['rate'].cacheHitRatio === 0, `the live server's cache answers repeated reviews (${s['rate'].cacheHitRatio})`);
  t.ok(s['churn'].podChanges >= 10, `pod changes were made during the churn phase (${s['churn'].podChanges})`);
  // At 300 pods and 1 s the quiet baseline subtracted can outweigh 10 small events: check the figures are
  // read, not their size.
  t.ok(Number.isFinite(s['churn'].cpuMicrosPerPodChange) && Number.isFinite(s['churn'].mainCpuMicrosPerPodChange) && s['churn'].quietCpuSeconds >= 0, `server CPU per pod change measured against a quiet baseline (${s['churn'].cpuMicrosPerPodChange} µs)`);
  t.ok(s['startupMs'] > 0 && s['serverRssReady'] > 0 && s['serverRssPeak'] >= s['serverRssReady'], 'startup and RSS measured');
  for (const k of ['heapUsedReady', 'heapUsedLoaded', 'controlHeapUsedReady']) t.ok(s[k] > 1e6 && s[k] < s['serverRssPeak'] * 2, `${k} read from /metrics (${s[k]})`);
});
