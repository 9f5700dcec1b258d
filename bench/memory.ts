// Heap and RSS of the cached state for one cluster size, measured in a fresh process so sizes do not
// disturb each other. Objects go through the same transform the informers apply on arrival.
// Usage: node --expose-gc bench/memory.ts --pods N    (prints one JSON object)

import { parseArgs } from 'node:util';
import { stateFromObjects } from '../src/state/snapshot.ts';
import { generateCluster } from './cluster-gen.ts';

const { values } = parseArgs({ options: { pods: { type: 'string' } } });
const pods = Number(values.pods);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');

function settle(): void {
  for (let i = 0; i < 3; i++) gc!();
}

// Warm the modules and JIT on a tiny state so their code is not counted as state.
stateFromObjects(generateCluster(50, 1));
settle();
const heapBefore = process.memoryUsage().heapUsed;
const rssBefore = process.memoryUsage().rss;

// Objects arrive one by one in a live cluster; here they arrive as one list, which is then dropped.
let raw: unknown[] | undefined = JSON.parse(JSON.stringify(generateCluster(pods))) as unknown[];
const t0 = performance.now();
const state = stateFromObjects(raw);
const loadMs = performance.now() - t0;
raw = undefined;
settle();
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
