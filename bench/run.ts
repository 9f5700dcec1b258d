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
import { deployedNodeFlags, deployedProcessEnv, eventLoopProbeFlags, eventLoopSince, fmt, freePort, measureLoad, metricsPage, ROOT, rssOf, runJson, startServer as spawnServer, stopServer, type EventLoopFigures, type LoadResult } from './harness.ts';
import { requestMix, review } from './requests.ts';
import { scaleCurve, timeDecide } from './scale-curve.ts';
import { checkTargets, floorPercent, targetsTable, type RunFigures } from './targets.ts';
import { timeWorstCases, verdictText, worstCaseRequests, type InProcessTiming, type ServedTiming } from './worst-case.ts';
import { timeServed } from './worst-case-served.ts';

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
/** The worst-case requests of issue 21 run on this state, in the quick run too. */
const WORST_PODS = 50_000;
/** Timed decide() calls per worst-case request (after one untimed), and sends through serve per request. */
const WORST_ITERATIONS = quick ? 2 : 5;
const WORST_SENDS = quick ? 4 : 20;
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

let probes = 0;
/**
 * A server with bench/event-loop-probe.ts preloaded: `startup` is its event-loop figures from process
 * start to the first ready answer; `since()` gives those of the time since the previous call.
 */
async function startProbed(args: string[], port: number, ca: Buffer): Promise<{ child: ChildProcess; readyMs: number; startup: EventLoopFigures; since: () => Promise<EventLoopFigures> }> {
  const file = path.join(work, `event-loop-${probes++}.jsonl`);
  const started = await spawnServer([...eventLoopProbeFlags(), ...args], port, ca, undefined, { ...process.env, MESHGUARD_EVENT_LOOP_FILE: file });
  children.push(started.child);
  const startup = await eventLoopSince(started.child, file);
  return { ...started, startup, since: () => eventLoopSince(started.child, file) };
}

/** 1-minute load average of the machine (others share it: every figure is read beside it). */
function loadAvg(): number {
  return Number(os.loadavg()[0]!.toFixed(2));
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
    // The Deployment's other process settings as the servers got them (the bench's own environment wins).
    serverEnv: Object.fromEntries(Object.entries(deployedProcessEnv()).map(([k, v]) => [k, process.env[k] ?? v])),
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
    const { child, readyMs, startup, since } = await startProbed(
      // Without the background audit: these phases measure admission alone (step 6 measures it beside).
      [...deployedNodeFlags(), path.join(ROOT, 'bin/meshguard.js'), 'serve', '--state', stateFile, ...tls, '--port', String(port), '--metrics-port', String(metricsPort), '--host', '127.0.0.1', '--background-audit', 'off'],
      port, ca,
    );
    const loadAvgAtStart = loadAvg();
    const serverRssReady = rssOf(child.pid);
    const traffic = await phases(child, port, bodies, metricsPort);
    const serving = await since();
    const serverRssLoaded = rssOf(child.pid);
    const serverRssPeak = rssOf(child.pid, 'VmHWM');
    await stopServer(child);
    sizes.push({ pods, memory, startupMs: readyMs, serverRssReady, serverRssLoaded, serverRssPeak, traffic, eventLoop: { startup, serving, loadAvgAtStart, loadAvgAfterLoad: loadAvg() } });
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
  states.clear();

  // 7. The worst-case requests of issue 21 at 50k pods: in-process, then through meshguard serve.
  results['worstCase'] = await worstCases(decide, ca, tls);

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

/**
 * The worst-case requests on the 50k-pod state: decide() in this process, then each sent through
 * `meshguard serve` (the Deployment's flags, background audit off) with its event loop measured at
 * start-up, under the ordinary request mix at RATE req/s, and while it answers the worst cases.
 */
async function worstCases(decide: ReturnType<typeof createDecide>, ca: Buffer, tls: string[]): Promise<Record<string, unknown>> {
  log(`worst case: generating ${WORST_PODS} pods`);
  const objs = generateCluster(WORST_PODS);
  const requests = worstCaseRequests(objs);
  const stateFile = path.join(work, `state-${WORST_PODS}.json`);
  writeFileSync(stateFile, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objs }));
  const bodies = path.join(work, `bodies-${WORST_PODS}.json`);
  writeFileSync(bodies, JSON.stringify(requestMix(WORST_PODS, 400).map((r) => JSON.stringify(r.review))));
  log('worst case: in-process');
  let inProcess: InProcessTiming[];
  const loadAvgInProcess = loadAvg();
  {
    const state = stateFromObjects(objs);
    const changes = requests.map((r) => ({ label: r.label, change: toChange(review(r.operation, r.object, r.oldObject) as unknown as AdmissionReview) }));
    inProcess = timeWorstCases(decide, state, changes, WORST_ITERATIONS);
  }
  log('worst case: meshguard serve');
  const port = await freePort();
  const metricsPort = await freePort();
  const { child, readyMs, startup, since } = await startProbed(
    [...deployedNodeFlags(), path.join(ROOT, 'bin/meshguard.js'), 'serve', '--state', stateFile, ...tls, '--port', String(port), '--metrics-port', String(metricsPort), '--host', '127.0.0.1', '--background-audit', 'off'],
    port, ca,
  );
  const loadAvgAtStart = loadAvg();
  const mix = await load(child, port, bodies, 'rate', 'new', metricsPort);
  const servingMix = await since();
  const loadAvgServed = loadAvg();
  const served = await timeServed(port, ca, requests.map((r) => ({ label: r.label, body: JSON.stringify(review(r.operation, r.object, r.oldObject, false, true)) })), WORST_SENDS, 1);
  const servingWorst = await since();
  const serverRssPeak = rssOf(child.pid, 'VmHWM');
  await stopServer(child);
  return {
    pods: WORST_PODS, iterations: WORST_ITERATIONS, sends: WORST_SENDS, loadAvgInProcess, loadAvgAtStart, loadAvgServed, loadAvgAfter: loadAvg(),
    inProcess, served, startupMs: readyMs, serverRssPeak,
    mixAtRate: { p50: mix.p50, p99: mix.p99, p999: mix.p999, errors: mix.errors },
    eventLoop: { startup, servingMix, servingWorst },
  };
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
  const env = Object.entries((r['serverEnv'] as Record<string, string> | undefined) ?? {}).map(([k, v]) => `${k}=${v}`);
  lines.push('', `meshguard serve runs with the Deployment's NODE_OPTIONS: ${(r['serverNodeFlags'] as string[]).join(' ') || '(none)'}${env.length > 0 ? `; environment: ${env.join(' ')}` : ''}`);
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
  const w = r['worstCase'] as { pods: number; iterations: number; sends: number; loadAvgInProcess: number; loadAvgAtStart: number; loadAvgServed: number; loadAvgAfter: number; inProcess: InProcessTiming[]; served: ServedTiming[]; startupMs: number; serverRssPeak: number; mixAtRate: Record<string, number>; eventLoop: Record<'startup' | 'servingMix' | 'servingWorst', EventLoopFigures> } | undefined;
  if (w) {
    lines.push('', `Worst-case requests (issue 21) on the ${w.pods}-pod state. In-process: decide() median of ${w.iterations} timed calls after one untimed (load average ${w.loadAvgInProcess}); served: ${w.sends} sends each through \`meshguard serve\`, one at a time, each a verdict-cache miss (load average ${w.loadAvgServed}-${w.loadAvgAfter}); p50/p99 over all sends (the target is that p99), then the first send apart from the others. Verdicts as decided, so that a fast answer that judged nothing shows:`, '');
    // The first send apart from the others: it is the one that finds per-class tables cold (the target is the p99 of all sends).
    lines.push('| request | in-process ms (median / max) | verdict in-process | served p50 ms | served p99 ms | served first send ms | served other sends p50 / p99 ms | served answer |', '|---|---:|---|---:|---:|---:|---:|---|');
    for (const x of w.inProcess) {
      const sv = w.served.find((y) => y.label === x.label);
      const answer = sv ? `HTTP ${sv.verdict.httpStatus}, ${sv.verdict.allowed ? 'allowed' : 'denied'}, ${sv.verdict.warnings} warning${sv.verdict.warnings === 1 ? '' : 's'}` : '-';
      const first = sv?.firstMs !== undefined ? f(sv.firstMs, 1) : '-';
      const rest = sv?.restP50Ms !== undefined && sv.restP99Ms !== undefined ? `${f(sv.restP50Ms, 1)} / ${f(sv.restP99Ms, 1)}` : '-';
      lines.push(`| ${x.label} | ${f(x.medianMs, 1)} / ${f(x.maxMs, 1)} | ${verdictText(x.verdict)} | ${sv ? f(sv.p50Ms, 1) : '-'} | ${sv ? f(sv.p99Ms, 1) : '-'} | ${first} | ${rest} | ${answer} |`);
    }
    // A start-up period also says when the server listened and the longest block before and after;
    // blocks carry the main thread's CPU time in them (the rest is the machine's other work), and the
    // longest GC pauses are listed.
    const el = (e: EventLoopFigures): string => {
      const parts = [`max ${f(e.maxMs, 0)} ms, p99 ${f(e.p99Ms, 0)} ms`];
      if (e.listeningAtMs !== undefined) parts.push(`listening at ${f(e.listeningAtMs / 1000, 1)} s: before ${f(e.beforeListenMaxMs ?? NaN, 0)} ms, after ${f(e.afterListenMaxMs ?? NaN, 0)} ms (CPU ${f(e.afterListenCpuMaxMs ?? NaN, 0)} ms)`);
      if (e.cpuMaxMs !== undefined) parts.push(`most CPU between two timer turns ${f(e.cpuMaxMs, 0)} ms`);
      if (e.longestBlocks.length > 0) parts.push(`longest blocks: ${e.longestBlocks.map((b) => `${b.ms} ms${b.cpuMs !== undefined ? ` (CPU ${b.cpuMs})` : ''} at ${f(b.atMs / 1000, 1)} s`).join(', ')}`);
      if (e.longestGcs && e.longestGcs.length > 0) parts.push(`longest GC pauses: ${e.longestGcs.map((g) => `${g.kind} ${g.ms} ms at ${f(g.atMs / 1000, 1)} s`).join(', ')}`);
      return parts.join('; ');
    };
    lines.push('', `Event loop of \`meshguard serve\` (perf_hooks.monitorEventLoopDelay, bench/event-loop-probe.ts; times since process start):`, '', '| pods | period | event-loop delay | load average |', '|---:|---|---|---:|');
    for (const s of sizes as unknown as { pods: number; eventLoop?: { startup: EventLoopFigures; serving: EventLoopFigures; loadAvgAtStart: number; loadAvgAfterLoad: number } }[]) {
      if (!s.eventLoop) continue;
      lines.push(`| ${s.pods} | start to ready | ${el(s.eventLoop.startup)} | ${s.eventLoop.loadAvgAtStart} |`);
      lines.push(`| ${s.pods} | serving the load phases | ${el(s.eventLoop.serving)} | ${s.eventLoop.loadAvgAfterLoad} |`);
    }
    lines.push(`| ${w.pods} | start to ready (${f(w.startupMs / 1000, 1)} s) | ${el(w.eventLoop.startup)} | ${w.loadAvgAtStart} |`);
    lines.push(`| ${w.pods} | serving the request mix at ${RATE} req/s, all new (p99 ${f(w.mixAtRate['p99'], 1)} ms, ${w.mixAtRate['errors']} errors) | ${el(w.eventLoop.servingMix)} | ${w.loadAvgServed} |`);
    lines.push(`| ${w.pods} | serving the worst-case requests | ${el(w.eventLoop.servingWorst)} | ${w.loadAvgAfter} |`);
  }
  lines.push('', `Targets (issues #6 and #21), checked against this run${quick ? ' (a quick run has no 10k state; its only 50k state is the worst-case step\'s)' : ''}:`, '', ...targetsTable(r['targets'] as ReturnType<typeof checkTargets>));
  return lines.join('\n') + '\n';
}

await main();
