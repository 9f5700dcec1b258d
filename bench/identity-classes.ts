// What the 200k-pod projection in BENCHMARKS.md is built on (issue 21): for generated clusters of
// growing size, the state's heap per pod, the time to build it, and how many identity classes the pods
// fall into (Cilium identities: podIdentityKey; policy classes: podClassKey without a node), largest
// class included. One process per size would be cleaner for the heap; sizes run smallest first with a
// full collection between, and the heap figure is the growth over the empty process.
// Usage: node --expose-gc bench/identity-classes.ts [--pods 10000,50000,200000]

import { parseArgs } from 'node:util';

import { podClassKey, podIdentityKey } from '../src/policy/identity.ts';
import { stateFromObjects } from '../src/state/snapshot.ts';
import { generateCluster } from './cluster-gen.ts';

const { values } = parseArgs({ options: { pods: { type: 'string', default: '10000,50000' } } });
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');

for (const pods of values.pods.split(',').map(Number)) {
  gc();
  const heap0 = process.memoryUsage().heapUsed;
  let objs: unknown[] | undefined = generateCluster(pods);
  const t0 = performance.now();
  const state = stateFromObjects(objs);
  const buildMs = performance.now() - t0;
  const objects = objs.length;
  objs = undefined;
  gc();
  const heap = process.memoryUsage().heapUsed - heap0;
  const identities = new Map<string, number>();
  const classes = new Map<string, number>();
  const list = state.list('Pod');
  for (const p of list) {
    const id = podIdentityKey(p);
    identities.set(id, (identities.get(id) ?? 0) + 1);
    const c = podClassKey(p, '');
    classes.set(c, (classes.get(c) ?? 0) + 1);
  }
  console.log(JSON.stringify({
    pods: list.length, objects, namespaces: state.count('Namespace'), policies: state.count('CiliumNetworkPolicy') + state.count('CiliumClusterwideNetworkPolicy') + state.count('NetworkPolicy'),
    stateHeapMB: +(heap / 2 ** 20).toFixed(1), heapBytesPerPod: Math.round(heap / list.length), buildMs: Math.round(buildMs),
    identities: identities.size, podsPerIdentity: +(list.length / identities.size).toFixed(1), largestIdentity: Math.max(...identities.values()),
    classes: classes.size, largestClass: Math.max(...classes.values()),
  }));
  void state;
}
