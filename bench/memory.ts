// Heap and RSS of the cached state for one cluster size, measured in a fresh process so sizes do not
// disturb each other. The state is loaded the way `serve --state` loads it (loadSnapshot of a JSON List
// file), through the same transform the informers apply on arrival.
// Usage: node --expose-gc bench/memory.ts --pods N    (prints one JSON object)
//
// The parent generates the cluster and writes it to a temporary file, then measures in a child process:
// the generated objects would otherwise sit in the measured heap and RSS. The load runs in a function
// and the figures are taken after an await, because V8 keeps dead temporaries of a running frame (the
// raw objects, the file text) alive until that frame returns or suspends.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadSnapshot } from '../src/state/snapshot.ts';
import type { MemoryState } from '../src/state/store.ts';
import { generateCluster } from './cluster-gen.ts';

const { values } = parseArgs({ options: { pods: { type: 'string' }, file: { type: 'string' } } });

if (values.file === undefined) {
  const pods = Number(values.pods);
  if (!Number.isInteger(pods) || pods <= 0) throw new Error('--pods N is required');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'meshguard-memory-'));
  try {
    const file = path.join(dir, 'state.json');
    writeFileSync(file, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: generateCluster(pods) }));
    const self = fileURLToPath(import.meta.url);
    const r = spawnSync(process.execPath, [...process.execArgv, self, '--file', file], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`memory measurement exited ${r.status}`);
    process.stdout.write(r.stdout);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
} else {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  const file = values.file;
  const settle = async (): Promise<void> => {
    await new Promise((r) => setTimeout(r, 50));
    for (let i = 0; i < 3; i++) gc();
  };

  // Warm the modules and JIT on a tiny state so their code is not counted as state.
  const warm = path.join(path.dirname(file), 'warm.json');
  writeFileSync(warm, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: generateCluster(50, 1) }));
  loadSnapshot([warm]);
  await settle();
  const heapBefore = process.memoryUsage().heapUsed;
  const rssBefore = process.memoryUsage().rss;

  let loadMs = 0;
  const load = (): MemoryState => {
    const t0 = performance.now();
    const s = loadSnapshot([file]);
    loadMs = performance.now() - t0;
    return s;
  };
  const state = load();
  await settle();
  const mem = process.memoryUsage();
  const podCount = state.list('Pod').length;
  process.stdout.write(
    JSON.stringify({
      pods: podCount,
      objects: { policies: state.list('CiliumNetworkPolicy').length + state.list('NetworkPolicy').length + state.list('CiliumClusterwideNetworkPolicy').length },
      loadMs,
      heapStateBytes: mem.heapUsed - heapBefore,
      heapBytesPerPod: (mem.heapUsed - heapBefore) / podCount,
      heapUsed: mem.heapUsed,
      rss: mem.rss,
      rssBefore,
    }) + '\n',
  );
}
