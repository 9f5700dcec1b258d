// Where the time to ready from a live apiserver goes (issue 21): the e2e kube-apiserver holding
// generateCluster(--pods), then, in this process, the list of every Pod page by page (the current
// client, which asks for the next page before slimming this one, and a sequential loop that does
// not), and a LiveSource's first sync of every kind; then `meshguard serve --kubeconfig` from process
// start to ready, with its own log lines' times (listening, synced, warmed up). With --pin, serve runs
// on the first CPU alone and everything else on the others (harness.ts pinBenchAwayFromServer), as
// where the apiserver has cores of its own; the in-process lists then share the apiserver's.
// Usage: node bench/live-ready.ts [--pods 50000] [--runs 2] [--pin]

import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { createLogger } from '../src/server/log-bounds.ts';
import { loadKubeApi, readBody } from '../src/state/kube-api.ts';
import { collectionPath, listKind, LiveSource } from '../src/state/live.ts';
import { transformObject } from '../src/state/transform.ts';
import { startControlPlane } from '../test/e2e/harness.ts';
import { generateCluster } from './cluster-gen.ts';
import { deployedNodeFlags, freePort, pinBenchAwayFromServer, ROOT, startServer, stopServer } from './harness.ts';
import { apiFromKubeconfig, loadCluster } from './live.ts';

const { values } = parseArgs({ options: { pods: { type: 'string', default: '50000' }, runs: { type: 'string', default: '2' }, pin: { type: 'boolean', default: false } } });
const pinned = values.pin ? pinBenchAwayFromServer() : undefined;
const PODS = Number(values.pods);
const log = (m: string): void => void process.stderr.write(`[live-ready] ${m}\n`);
const la = (): string => os.loadavg()[0]!.toFixed(1);

const work = mkdtempSync(path.join(os.tmpdir(), 'meshguard-live-ready-'));
const cp = await startControlPlane();
const loader = apiFromKubeconfig(cp.kubeconfigPath);
try {
  const objects = generateCluster(PODS);
  log(`creating ${objects.length} objects`);
  const loaded = await loadCluster(loader, objects);
  log(`${loaded.perSecond.toFixed(0)} objects/s`);
  const api = loadKubeApi(cp.kubeconfigPath);
  /** The list as it was before: each page asked for after the previous one is slimmed. */
  const sequential = async (): Promise<number> => {
    let cont: string | undefined;
    let n = 0;
    do {
      const q = new URLSearchParams({ limit: '500', ...(cont ? { continue: cont } : {}) });
      const body = JSON.parse(await readBody(await api.get(`${collectionPath('Pod')}?${q}`))) as { items: unknown[]; metadata: { continue?: string } };
      for (const raw of body.items) if (transformObject('Pod', raw).metadata.name) n++;
      cont = body.metadata.continue || undefined;
    } while (cont);
    return n;
  };
  for (let run = 0; run < Number(values.runs); run++) {
    for (const [name, list] of [['pods, page ahead', async () => (await listKind(api, 'Pod')).items.length], ['pods, sequential', sequential]] as const) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const n = await list();
      const c = process.cpuUsage(c0);
      log(`${name}: ${n} in ${(performance.now() - t0).toFixed(0)} ms, this process's CPU ${((c.user + c.system) / 1000).toFixed(0)} ms, load ${la()}`);
    }
    const t0 = performance.now();
    const src = new LiveSource({ api, logger: createLogger('error', 'bench') });
    await src.start();
    log(`LiveSource first sync of every kind: ${(performance.now() - t0).toFixed(0)} ms, load ${la()}`);
    await src.stop();
  }
  // serve, with its log lines
  spawn(path.join(ROOT, 'scripts/dev-certs.sh'), [work], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 2000));
  const ca = readFileSync(path.join(work, 'ca.crt'));
  for (let run = 0; run < Number(values.runs); run++) {
    const port = await freePort();
    const logFile = path.join(work, `serve-${run}.log`);
    const fd = openSync(logFile, 'w');
    const wall0 = Date.now();
    const { child, readyMs } = await startServer(
      [...deployedNodeFlags(), path.join(ROOT, 'bin/meshguard.js'), 'serve', '--kubeconfig', cp.kubeconfigPath, '--tls-cert', path.join(work, 'tls.crt'), '--tls-key', path.join(work, 'tls.key'), '--port', String(port), '--host', '127.0.0.1', '--background-audit', 'off', '--log-level', 'info'],
      port, ca, ['ignore', fd, fd], process.env, pinned ? { cpus: pinned.serverCpus } : {},
    );
    await new Promise((r) => setTimeout(r, 500));
    await stopServer(child);
    closeSync(fd);
    const out = readFileSync(logFile, 'utf8');
    const marks = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { time: number; msg: string; ms?: number })
      .filter((j) => /listening|synced|warmed/.test(j.msg)).map((j) => `${j.msg} at ${j.time - wall0} ms${j.ms !== undefined ? ` (${j.ms} ms)` : ''}`);
    log(`serve${pinned ? ` (on CPU ${pinned.serverCpus}, the rest on ${pinned.otherCpus})` : ''}: ready after ${readyMs.toFixed(0)} ms; ${marks.join('; ')}; load ${la()}`);
  }
} finally {
  loader.close();
  await cp.stop();
  rmSync(work, { recursive: true, force: true });
}
