// The worst-case requests (issue 21) through `meshguard serve`, as `make bench` sends them, with V8's
// --trace-gc-nvp on in the server: prints each send's time beside the collections that ran during it,
// so a served p99 can be read as "the send was slow" or "a major collection landed in it".
// Extra node flags for the server (after the Deployment's) come from --node-flags; --mix sends the
// ordinary request mix at 500 req/s for 10 s first, as `make bench` does.
// Usage: node bench/worst-case-gc.ts [--pods 50000] [--sends 20] [--mix] [--node-flags="--max-semi-space-size=16"]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { generateCluster } from './cluster-gen.ts';
import { deployedNodeFlags, freePort, measureLoad, metricsPage, ROOT, rssOf, startServer, stopServer } from './harness.ts';
import { requestMix, review, SEQ_PLACEHOLDER } from './requests.ts';
import { worstCaseRequests } from './worst-case.ts';
import { timeServed } from './worst-case-served.ts';

const { values } = parseArgs({ options: { pods: { type: 'string', default: '50000' }, sends: { type: 'string', default: '20' }, mix: { type: 'boolean', default: false }, 'node-flags': { type: 'string', default: '' } } });
const work = mkdtempSync(path.join(os.tmpdir(), 'meshguard-wcgc-'));
await new Promise<void>((resolve, reject) => {
  const c = spawn(path.join(ROOT, 'scripts/dev-certs.sh'), [work], { stdio: 'ignore' });
  c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error('dev-certs failed'))));
});
const ca = readFileSync(path.join(work, 'ca.crt'));
const tls = ['--tls-cert', path.join(work, 'tls.crt'), '--tls-key', path.join(work, 'tls.key')];
const pods = Number(values.pods);
const objs = generateCluster(pods);
const requests = worstCaseRequests(objs);
const stateFile = path.join(work, 'state.json');
writeFileSync(stateFile, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objs }));
const bodiesFile = path.join(work, 'bodies.json');
writeFileSync(bodiesFile, JSON.stringify(requestMix(pods, 400).map((r) => JSON.stringify(r.review))));
const bodies = requests.map((r) => ({ label: r.label, body: JSON.stringify(review(r.operation, r.object, r.oldObject, false, true)) }));
if (!bodies.every((b) => b.body.includes(SEQ_PLACEHOLDER))) throw new Error('no sequence placeholder');

const flags = [...deployedNodeFlags(), ...values['node-flags'].split(/\s+/).filter((f) => f !== ''), '--trace-gc-nvp'];
const port = await freePort();
const metricsPort = await freePort();
// GC lines on stdout, each stamped with the time it arrived here.
const gc: { at: number; line: string }[] = [];
const traceLines: string[] = [];
const { child, readyMs } = await startServer(
  [...flags, path.join(ROOT, 'bin/meshguard.js'), 'serve', '--state', stateFile, ...tls, '--port', String(port), '--host', '127.0.0.1', '--background-audit', 'off', '--log-level', 'warn', '--metrics-port', String(metricsPort)],
  port, ca, ['ignore', 'pipe', 'pipe'],
);
let buf = '';
child.stdout!.on('data', (d: Buffer) => {
  buf += d.toString();
  let i;
  while ((i = buf.indexOf('\n')) >= 0) {
    const line = buf.slice(0, i);
    buf = buf.slice(i + 1);
    if (line.includes('pause=')) gc.push({ at: performance.now(), line });
    // With --node-flags=--trace-incremental-marking, V8's marking lines (why and when a major collection
    // started and finished) go to GC_DUMP too.
    else if (line.includes('Mark-Compact') || line.includes('Scavenge') || line.includes('[IncrementalMarking]')) traceLines.push(line);
  }
});
const rssReady = rssOf(child.pid);
/** Where the resident memory is: V8's spaces (size, used), external memory and the rest (native, code). */
async function memory(when: string): Promise<void> {
  const page = await metricsPage(metricsPort);
  const v = (re: RegExp): number => [...page.matchAll(re)].reduce((s, m) => s + Number(m[1]), 0);
  const spaces = [...page.matchAll(/^nodejs_heap_space_size_total_bytes\{space="(\w+)"\} (\S+)/gm)].map((m) => [m[1]!, Number(m[2])] as const);
  const used = new Map([...page.matchAll(/^nodejs_heap_space_size_used_bytes\{space="(\w+)"\} (\S+)/gm)].map((m) => [m[1]!, Number(m[2])]));
  const mb = (x: number): string => (x / 2 ** 20).toFixed(0);
  const heapTotal = spaces.reduce((s, [, x]) => s + x, 0);
  const rss = rssOf(child.pid);
  // Resident memory by mapping (/proc/PID/smaps): the program's files, glibc's brk heap, anonymous mappings.
  const byKind = new Map<string, number>();
  let kind = '';
  for (const line of readFileSync(`/proc/${child.pid}/smaps`, 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+(?:\s+(.*))?$/.exec(line);
    if (head) kind = head[1] === undefined || head[1] === '' ? 'anonymous' : head[1].startsWith('/') ? 'files' : head[1];
    const rssLine = /^Rss:\s+(\d+) kB/.exec(line);
    if (rssLine) byKind.set(kind, (byKind.get(kind) ?? 0) + Number(rssLine[1]) * 1024);
  }
  const maps = [...byKind].filter(([, x]) => x > 2 ** 20).map(([k, x]) => `${k} ${mb(x)}`).join(', ');
  console.log(`memory ${when}: [${maps}] RSS ${mb(rss)} MB = heap ${mb(heapTotal)} (${spaces.filter(([, x]) => x > 2 ** 20).map(([n, x]) => `${n} ${mb(x)}/${mb(used.get(n) ?? 0)}`).join(', ')}) + external ${mb(v(/^nodejs_external_memory_bytes (\S+)/gm))} + other ${mb(rss - heapTotal)}`);
}
await memory('at ready');
console.log(`flags: ${flags.join(' ')}; ready in ${readyMs.toFixed(0)} ms, RSS ${(rssReady / 2 ** 20).toFixed(0)} MB`);
const mixStart = gc.length;
if (values.mix) {
  const m = await measureLoad(child.pid, { port, caFile: path.join(work, 'ca.crt'), bodiesFile, mode: 'rate', rate: 500, connections: 8, seconds: 10, repeat: 'new' });
  console.log(`mix at 500 req/s: p99 ${m.p99.toFixed(1)} ms`);
  await memory('after the mix');
}
const kv = (line: string): Record<string, string> => Object.fromEntries([...line.matchAll(/(\S+)=(\S+)/g)].map((m) => [m[1]!, m[2]!]));
const before = gc.length;
const t0 = performance.now();
const served = await timeServed(port, ca, bodies, Number(values.sends), 1);
await new Promise((r) => setTimeout(r, 200));
const inPhase = gc.slice(before).map((g) => ({ ...g, kv: kv(g.line) }));
const majors = inPhase.filter((g) => g.kv['gc'] === 'mc' || g.kv['gc'] === 'mmc');
const scav = inPhase.filter((g) => g.kv['gc'] === 's');
const promoted = scav.reduce((s, g) => s + Number(g.kv['promoted'] ?? 0), 0);
// Sends run back to back: each one's window is rebuilt from the durations (the gaps between are tiny).
let at = t0;
const slow: string[] = [];
const perRequest: string[] = [];
for (const s of served) {
  const from = at;
  for (const [k, d] of s.samples.entries()) {
    const during = inPhase.filter((g) => g.at >= at && g.at <= at + d + 2);
    if (d > 90) slow.push(`  ${s.label.slice(0, 28)} send ${k + 1}: ${d.toFixed(0)} ms; GCs in it: ${during.map((g) => `${g.kv['gc']} ${Number(g.kv['pause']).toFixed(0)}`).join(', ') || 'none'}`);
    at += d;
  }
  const mine = inPhase.filter((g) => g.at >= from && g.at < at);
  const sc = mine.filter((g) => g.kv['gc'] === 's');
  perRequest.push(`  ${s.label.slice(0, 28)}: per send ${(sc.length / s.samples.length).toFixed(1)} scavenges, ${(sc.reduce((x, g) => x + Number(g.kv['promoted'] ?? 0), 0) / s.samples.length / 1e6).toFixed(2)} MB promoted; majors ${mine.length - sc.length}`);
}
for (const s of served) {
  const sorted = [...s.samples].sort((a, b) => a - b);
  console.log(`${s.label.padEnd(50)} first ${s.samples[0]!.toFixed(0)}  p50 ${sorted[Math.floor(sorted.length / 2)]!.toFixed(0)}  max ${sorted.at(-1)!.toFixed(0)}  sends ${s.samples.map((x) => x.toFixed(0)).join(' ')}`);
}
console.log(`phase ${((performance.now() - t0) / 1000).toFixed(1)} s: scavenges ${scav.length} (${scav.reduce((s, g) => s + Number(g.kv['pause']), 0).toFixed(0)} ms, promoted ${(promoted / 1e6).toFixed(0)} MB); majors ${majors.length}: ${majors.map((g) => `${Number(g.kv['pause']).toFixed(0)}ms [mark ${g.kv['mark']} evacuate ${g.kv['evacuate']} clear ${g.kv['clear']} sweep ${g.kv['sweep']}; ${(Number(g.kv['start_object_size']) / 1e6).toFixed(0)}->${(Number(g.kv['end_object_size']) / 1e6).toFixed(0)} MB]`).join(', ')}`);
console.log(`young generation by request:\n${perRequest.join('\n')}`);
await memory('after the worst cases');
console.log(`sends over 90 ms:\n${slow.join('\n')}`);
console.log(`RSS now ${(rssOf(child.pid) / 2 ** 20).toFixed(0)} MB, peak ${(rssOf(child.pid, "VmHWM") / 2 ** 20).toFixed(0)} MB; load ${os.loadavg()[0]!.toFixed(2)}`);
// SMAPS_DUMP=file keeps the server's /proc/PID/smaps after the worst cases (which mappings hold the memory).
if (process.env['SMAPS_DUMP']) writeFileSync(process.env['SMAPS_DUMP'], readFileSync(`/proc/${child.pid}/smaps`));
// GC_DUMP=file keeps every collection's line, each with the phase it ran in (start-up, mix, worst).
const phaseOf = (i: number): string => (i < mixStart ? 'start-up' : i < before ? 'mix' : 'worst');
if (process.env['GC_DUMP']) writeFileSync(process.env['GC_DUMP'], [...gc.map((g, i) => `${g.line} phase=${phaseOf(i)}`), ...traceLines].join('\n'));
if (process.env['SNAPSHOT_DIR']) {
  // --node-flags must carry --heapsnapshot-signal=SIGUSR2 (and --diagnostic-dir=SNAPSHOT_DIR).
  process.kill(child.pid!, 'SIGUSR2');
  await new Promise((r) => setTimeout(r, Number(process.env['SNAPSHOT_WAIT'] ?? 60_000)));
}
// HOLD_MS keeps the server up that long before stopping it (to attach a debugger or read /proc).
if (process.env['HOLD_MS']) {
  console.log(`holding server ${child.pid} for ${process.env['HOLD_MS']} ms`);
  await new Promise((r) => setTimeout(r, Number(process.env['HOLD_MS'])));
}
await stopServer(child);
process.exit(0);
