// `make bench` / `make bench-quick`: measures meshguard against a no-op baseline in one run on one
// machine, prints a markdown table and writes the figures as JSON under bench/results/.
//
//  1. baseline: no-op Fastify HTTPS server, same TLS, same bodies, same load generator
//  2. meshguard serve on synthetic states (1k/10k/50k pods): rate-limited latency and max throughput,
//     for three traffic shapes (every review new, each twice, the mix repeated: see bench/load.ts)
//  3. scale curve: in-process evaluation time vs cluster size and vs pods selected by the policy
//  4. memory: heap and RSS of the cached state, bytes per pod (fresh process per size)
//  5. startup: process start to /readyz 200
//  6. audit: a full audit of the largest state (time, peak memory), and the admission p99 at 500 req/s
//     while serve's background audit runs beside it, against the same server without it
//
// Usage: node --expose-gc bench/run.ts --quick | --full

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { toChange } from '../src/admission/review.ts';
import type { AdmissionReview } from '../src/admission/schema.ts';
import { defaultConfig } from '../src/config/config.ts';
import { allRules } from '../src/rules/registry.ts';
import { tuneHeapForServing } from '../src/server/heap-tuning.ts';
import { stateFromObjects } from '../src/state/snapshot.ts';
import { createDecide } from '../src/verdict/decide.ts';
import { generateCluster, type Obj } from './cluster-gen.ts';
import { deployedNodeFlags, fmt, freePort, measureLoad, metricsPage, ROOT, rssOf, runJson, startServer as spawnServer, stopServer, type LoadResult } from './harness.ts';
import { requestMix, review } from './requests.ts';
import { scaleCurve, timeDecide } from './scale-curve.ts';
import { checkTargets, floorPercent, targetsTable, type RunFigures } from './targets.ts';

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false }, full: { type: 'boolean', default: false } } });
const quick = values.quick || !values.full;
const SIZES = quick ? [1000, 5000] : [1000, 10000, 50000];
const LOAD_SECONDS = quick ? 3 : 10;
const RATE = 500;
/**
 * Traffic shapes (bench/load.ts --repeat): every review new (the verdict cache never helps), each
 * review twice in a row (dry run then apply), and the mix repeated (re-syncs of unchanged manifests).
 */
type Shape = 'new' | 'twice' | 'cycle';
const SHAPES: readonly Shape[] = quick ? ['new', 'cycle'] : ['new', 'twice', 'cycle'];
const SHAPE_NAMES: Record<Shape, string> = { new: 'all new', twice: 'each twice', cycle: 'repeated' };
const CONNECTIONS = 8;
const work = mkdtempSync(path.join(os.tmpdir(), 'meshguard-bench-'));
const children: ChildProcess[] = [];
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

async function startServer(args: string[], port: number, ca: Buffer): Promise<{ child: ChildProcess; readyMs: number }> {
  const started = await spawnServer(args, port, ca);
  children.push(started.child);
  return started;
}

function load(child: ChildProcess, port: number, bodiesFile: string, mode: 'rate' | 'max', repeat: Shape, metricsPort?: number): Promise<LoadResult> {
  return measureLoad(child.pid, { port, caFile: path.join(work, 'ca.crt'), bodiesFile, mode, rate: RATE, connections: CONNECTIONS, seconds: LOAD_SECONDS, repeat, ...(metricsPort ? { metricsPort } : {}) });
}

/** Latency at RATE and max throughput for every traffic shape. */
async function phases(child: ChildProcess, port: number, bodiesFile: string, metricsPort?: number): Promise<Record<Shape, { rate: LoadResult; max: LoadResult }>> {
  const out: Partial<Record<Shape, { rate: LoadResult; max: LoadResult }>> = {};
  for (const shape of SHAPES) {
    const rate = await load(child, port, bodiesFile, 'rate', shape, metricsPort);
    const max = await load(child, port, bodiesFile, 'max', shape, metricsPort);
    out[shape] = { rate, max };
  }
  return out as Record<Shape, { rate: LoadResult; max: LoadResult }>;
}

/**
 * Admission latency at RATE (all new reviews) with serve's background audit running beside it, against
 * the same server with the audit off. The audit starts as soon as the state is loaded and runs at its
 * default 20% CPU share; the phase counts only if the audit was still running when it ended
 * (meshguard_audit_runs_total still 0), so that every request of it had the audit beside it.
 */
async function auditBeside(pods: number, ca: Buffer, tls: string[]): Promise<Record<string, unknown>> {
  const stateFile = path.join(work, `state-${pods}.json`);
  const bodies = path.join(work, `bodies-${pods}.json`);
  const out: Record<string, unknown> = { pods };
  for (const mode of ['off', 'on'] as const) {
    log(`size ${pods}: admission with the background audit ${mode}`);
    const port = await freePort();
    const metricsPort = await freePort();
    const { child } = await startServer(
      [...deployedNodeFlags(), path.join(ROOT, 'bin/meshguard.js'), 'serve', '--state', stateFile, ...tls, '--port', String(port), '--metrics-port', String(metricsPort), '--host', '127.0.0.1', '--background-audit', mode],
      port, ca,
    );
    const rate = await load(child, port, bodies, 'rate', 'new', metricsPort);
    const runs = await auditRuns(metricsPort);
    out[mode] = { p50: rate.p50, p99: rate.p99, p999: rate.p999, errors: rate.errors, auditRunsAfterPhase: runs, auditBesideWholePhase: mode === 'on' ? runs === 0 : undefined };
    await stopServer(child);
  }
  return out;
}

/** meshguard_audit_runs_total from the server's metrics port (NaN when it cannot be read). */
async function auditRuns(metricsPort: number): Promise<number> {
  try {
    const line = (await metricsPage(metricsPort)).split('\n').find((l) => l.startsWith('meshguard_audit_runs_total '));
    return line ? Number(line.split(' ')[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

const fixedRequests: Record<string, Obj> = {
  'CNP egress, 10 pods': {
    apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: 'bench-egress', namespace: 'team-0000' },
    spec: { endpointSelector: { matchLabels: { app: 'app-1' } }, egress: [{ toEndpoints: [{ matchLabels: { app: 'app-2' } }], toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }] }] }] },
  },
  'L7 on sidecar pods, 10 pods': {
    apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: 'bench-l7', namespace: 'team-0000' },
    spec: { endpointSelector: { matchLabels: { app: 'app-1' } }, ingress: [{ toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }], rules: { http: [{ method: 'GET' }] } }] }] },
  },
};

function selectionRequests(pods: number): { label: string; selected: number; obj: Obj }[] {
  const egress = [{ toEndpoints: [{ matchLabels: { app: 'app-2' } }], toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }] }] }];
  return [
    { label: 'CNP app=app-1 in one namespace', selected: 10, obj: { apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: 's1', namespace: 'team-0000' }, spec: { endpointSelector: { matchLabels: { app: 'app-1' } }, egress } } },
    { label: 'CNP {} in one namespace', selected: 50, obj: { apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: 's2', namespace: 'team-0000' }, spec: { endpointSelector: {}, egress } } },
    { label: 'CCNP namespace label team=t3', selected: Math.round(pods / 17), obj: { apiVersion: 'cilium.io/v2', kind: 'CiliumClusterwideNetworkPolicy', metadata: { name: 's3' }, spec: { endpointSelector: { matchLabels: { 'io.cilium.k8s.namespace.labels.team': 't3' } }, egress } } },
    { label: 'CCNP app=app-1 cluster-wide', selected: Math.round(pods / 5), obj: { apiVersion: 'cilium.io/v2', kind: 'CiliumClusterwideNetworkPolicy', metadata: { name: 's4' }, spec: { endpointSelector: { matchLabels: { app: 'app-1' } }, egress } } },
  ];
}

async function main(): Promise<void> {
  // The in-process curves run with the heap tuning `serve` applies (src/server/heap-tuning.ts).
  const pretenuring = tuneHeapForServing();
  const results: Record<string, unknown> = {
    date: new Date().toISOString(),
    mode: quick ? 'quick' : 'full',
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, platform: `${os.platform()} ${os.release()}` },
    loadSeconds: LOAD_SECONDS, rate: RATE, connections: CONNECTIONS, serverNodeFlags: deployedNodeFlags(),
    // Allocation-site pretenuring in this process (the scale and selection curves): 'off' as in serve.
    curvesAllocationSitePretenuring: pretenuring,
  };
  // TLS material shared by the baseline and meshguard.
  await new Promise<void>((resolve, reject) => {
    const c = spawn(path.join(ROOT, 'scripts/dev-certs.sh'), [work], { stdio: 'ignore' });
    c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error('dev-certs failed'))));
  });
  const ca = readFileSync(path.join(work, 'ca.crt'));
  const tls = ['--tls-cert', path.join(work, 'tls.crt'), '--tls-key', path.join(work, 'tls.key')];

  // 1. Baseline, with the request mix of the middle size.
  const midSize = SIZES[Math.min(1, SIZES.length - 1)]!;
  const baseBodies = path.join(work, 'bodies-base.json');
  writeFileSync(baseBodies, JSON.stringify(requestMix(midSize, 400).map((r) => JSON.stringify(r.review))));
  {
    const port = await freePort();
    log('baseline server');
    const { child } = await startServer([path.join(ROOT, 'bench/baseline-server.ts'), ...tls, '--port', String(port)], port, ca);
    results['baseline'] = await phases(child, port, baseBodies);
    await stopServer(child);
  }

  // 2 + 4 + 5. Per cluster size: memory, startup, latency and throughput.
  const sizes: Record<string, unknown>[] = [];
  for (const pods of SIZES) {
    log(`size ${pods}: generating`);
    const objs = generateCluster(pods);
    const stateFile = path.join(work, `state-${pods}.json`);
    writeFileSync(stateFile, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objs }));
    log(`size ${pods}: memory`);
    const memory = await runJson(['--expose-gc', path.join(ROOT, 'bench/memory.ts'), '--pods', String(pods)]);
    const bodies = path.join(work, `bodies-${pods}.json`);
    writeFileSync(bodies, JSON.stringify(requestMix(pods, 400).map((r) => JSON.stringify(r.review))));
    const port = await freePort();
    const metricsPort = await freePort();
    log(`size ${pods}: meshguard serve`);
    const { child, readyMs } = await startServer(
      // Without the background audit: these phases measure admission alone (step 6 measures it beside).
      [...deployedNodeFlags(), path.join(ROOT, 'bin/meshguard.js'), 'serve', '--state', stateFile, ...tls, '--port', String(port), '--metrics-port', String(metricsPort), '--host', '127.0.0.1', '--background-audit', 'off'],
      port, ca,
    );
    const serverRssReady = rssOf(child.pid);
    const traffic = await phases(child, port, bodies, metricsPort);
    const serverRssLoaded = rssOf(child.pid);
    const serverRssPeak = rssOf(child.pid, 'VmHWM');
    await stopServer(child);
    sizes.push({ pods, memory, startupMs: readyMs, serverRssReady, serverRssLoaded, serverRssPeak, traffic });
  }
  results['sizes'] = sizes;

  // 3. Scale curve, in-process (no HTTP): same request against growing clusters; then growing selections.
  log('in-process scale curve');
  const decide = createDecide(allRules(), defaultConfig(allRules()));
  const states = new Map(SIZES.map((pods) => [pods, stateFromObjects(generateCluster(pods))] as const));
  const changes = Object.entries(fixedRequests).map(([label, obj]) => ({ label, change: toChange(review('CREATE', obj, null) as unknown as AdmissionReview) }));
  const curve = scaleCurve(decide, states, changes);
  const largest = SIZES[SIZES.length - 1]!;
  const selection = selectionRequests(largest).map((r) => ({
    label: r.label,
    approxSelected: r.selected,
    micros: timeDecide(decide, states.get(largest)!, toChange(review('CREATE', r.obj, null) as unknown as AdmissionReview), 20),
  }));
  results['scaleCurve'] = curve;
  results['selectionCurve'] = selection;

  // 6. The audit: a full one of the largest state in its own process, then admission beside it.
  log(`audit: full audit of ${largest} pods`);
  results['audit'] = await runJson([...deployedNodeFlags(), path.join(ROOT, 'bench/audit-one.ts'), '--state', path.join(work, `state-${largest}.json`)]);
  // At the largest size the audit outlasts a load phase (at 20% of a core), so every request has it beside.
  results['auditBeside'] = await auditBeside(largest, ca, tls);
  results['targets'] = checkTargets(results as unknown as RunFigures);

  mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true });
  const json = JSON.stringify(results, null, 2) + '\n';
  writeFileSync(path.join(ROOT, `bench/results/${quick ? 'quick' : 'full'}-latest.json`), json);
  const text = report(results);
  writeFileSync(path.join(ROOT, `bench/results/${quick ? 'quick' : 'full'}-latest.md`), text);
  process.stdout.write(text);
}

const f = fmt;

function report(r: Record<string, unknown>): string {
  type Phases = Record<Shape, { rate: LoadResult; max: LoadResult }>;
  const base = r['baseline'] as Phases;
  const sizes = r['sizes'] as { pods: number; memory: Record<string, number>; startupMs: number; serverRssReady: number; serverRssLoaded: number; serverRssPeak: number; traffic: Phases }[];
  const lines: string[] = [];
  lines.push(`## meshguard benchmark (${r['mode']}, ${(r['machine'] as Record<string, unknown>)['cpus']} CPUs, Node ${process.version})`, '');
  lines.push(`Latency at ${RATE} req/s (open loop, ${LOAD_SECONDS}s) and max throughput (${CONNECTIONS} keep-alive connections, ${LOAD_SECONDS}s), per traffic shape:`);
  lines.push(`${SHAPES.map((s) => `${SHAPE_NAMES[s]} (--repeat ${s})`).join(', ')}. Cache hits: share of modeled requests meshguard answered from its verdict cache (at 500 req/s / at max). Major GCs: V8's major collections in meshguard during the 500 req/s phase and during the max phase (count, total pause).`, '');
  lines.push('| server | pods | traffic | cache hits | p50 ms | p99 ms | p99.9 ms | major GCs at 500 req/s | generator late p99 ms | errors | max req/s | vs baseline | major GCs at max | server CPU µs/req at max |');
  lines.push('|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  const pct = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '-' : `${f(100 * x, 0)}%`);
  const gcs = (p: LoadResult): string => (p.majorGcs === undefined || Number.isNaN(p.majorGcs) ? '-' : `${p.majorGcs}, ${f(p.majorGcMs, 0)} ms`);
  const row = (name: string, pods: string, shape: Shape, rate: LoadResult, max: LoadResult, ratio: string, hits: string): string =>
    `| ${name} | ${pods} | ${SHAPE_NAMES[shape]} | ${hits} | ${f(rate.p50, 3)} | ${f(rate.p99, 3)} | ${f(rate.p999, 3)} | ${gcs(rate)} | ${f(rate.lateP99, 3)} | ${rate.errors + max.errors} | ${f(max.rps, 0)} | ${ratio} | ${gcs(max)} | ${f(max.serverCpuMicros, 0)} |`;
  for (const shape of SHAPES) lines.push(row('baseline (no-op)', '-', shape, base[shape].rate, base[shape].max, '100%', '-'));
  for (const s of sizes) {
    for (const shape of SHAPES) {
      const t = s.traffic[shape];
      lines.push(row('meshguard', String(s.pods), shape, t.rate, t.max, floorPercent(t.max.rps / base[shape].max.rps), `${pct(t.rate.cacheHitRatio)} / ${pct(t.max.cacheHitRatio)}`));
    }
  }
  lines.push('', `meshguard serve runs with the Deployment's NODE_OPTIONS: ${(r['serverNodeFlags'] as string[]).join(' ') || '(none)'}`);
  lines.push('', '| pods | state heap MB | heap bytes/pod | RSS MB (state only) | serve RSS MB ready / after load / peak | load ms (transform+index) | start to ready ms |', '|---:|---:|---:|---:|---:|---:|---:|');
  for (const s of sizes) {
    const mb = (n: number): string => f(n / 2 ** 20, 0);
    lines.push(`| ${s.pods} | ${f(s.memory['heapStateBytes']! / 2 ** 20, 1)} | ${f(s.memory['heapBytesPerPod'], 0)} | ${mb(s.memory['rss']!)} | ${mb(s.serverRssReady)} / ${mb(s.serverRssLoaded)} / ${mb(s.serverRssPeak)} | ${f(s.memory['loadMs'], 0)} | ${f(s.startupMs, 0)} |`);
  }
  const curve = r['scaleCurve'] as Record<string, number>[];
  const labels = Object.keys(fixedRequests);
  lines.push('', '| pods in cluster | ' + labels.map((l) => `${l} (µs)`).join(' | ') + ' |', '|---:|' + labels.map(() => '---:').join('|') + '|');
  for (const row of curve) lines.push(`| ${row['pods']} | ${labels.map((l) => f(row[l], 0)).join(' | ')} |`);
  const first = curve[0]!;
  const last = curve[curve.length - 1]!;
  lines.push('', labels.map((l) => `${l}: ${f(last[l]! / first[l]!, 2)}x from ${first['pods']} to ${last['pods']} pods`).join('; '));
  lines.push('', `| policy selecting (at ${last['pods']} pods) | ~pods selected | µs per request |`, '|---|---:|---:|');
  for (const s of r['selectionCurve'] as { label: string; approxSelected: number; micros: number }[]) lines.push(`| ${s.label} | ${s.approxSelected} | ${f(s.micros, 0)} |`);
  const audit = r['audit'] as Record<string, number> | undefined;
  if (audit) {
    lines.push('', `Full audit (\`meshguard audit\`'s engine, one process) of the ${audit['pods']}-pod state: ${audit['objects']} objects in ${f(audit['auditMs']! / 1000, 1)} s (${f(audit['msPerObject'], 2)} ms per object; state load ${f(audit['loadMs']! / 1000, 1)} s), ${audit['findings']} findings on ${audit['withFindings']} objects, peak RSS ${f(audit['peakRssBytes']! / 2 ** 20, 0)} MB.`);
  }
  const beside = r['auditBeside'] as { pods: number; off: Record<string, number>; on: Record<string, number | boolean> } | undefined;
  if (beside) {
    lines.push('', `Admission at ${RATE} req/s (all new, ${beside.pods} pods) with serve's background audit beside it (20% CPU share) and without:`, '', '| background audit | p50 ms | p99 ms | p99.9 ms | errors | audit ran the whole phase |', '|---|---:|---:|---:|---:|---|');
    lines.push(`| off | ${f(beside.off['p50'], 3)} | ${f(beside.off['p99'], 3)} | ${f(beside.off['p999'], 3)} | ${beside.off['errors']} | - |`);
    lines.push(`| on | ${f(beside.on['p50'], 3)} | ${f(beside.on['p99'], 3)} | ${f(beside.on['p999'], 3)} | ${beside.on['errors']} | ${beside.on['auditBesideWholePhase'] ? 'yes' : 'no (finished during the phase)'} |`);
  }
  lines.push('', `Targets (issue #6), checked against this run${quick ? ' (a quick run has no 10k or 50k state)' : ''}:`, '', ...targetsTable(r['targets'] as ReturnType<typeof checkTargets>));
  return lines.join('\n') + '\n';
}

await main();
