// How the apiserver's time for a first list depends on what the list asks (issue 21, ready from a live
// apiserver): the pods (protobuf) and the CiliumNetworkPolicies (JSON), with limit=500 and no
// resourceVersion (a consistent read: what listKind asks), with resourceVersion=0 (served from the
// apiserver's watch cache, as client-go's reflector asks first), and with larger pages. Bytes only:
// the body is read, the continue token picked out, nothing decoded. Runs alternate; the
// kube-apiserver's CPU per list is read from /proc. Needs an apiserver holding the cluster
// (`bench/list-encoding.ts --runs 0 --keep`).
// Usage: node bench/list-options.ts --kubeconfig FILE [--runs 3] [--kinds Pod,CiliumNetworkPolicy]

import os from 'node:os';
import { parseArgs } from 'node:util';

import { KINDS, type KindName } from '../src/core/kinds.ts';
import { decodePodList } from '../src/state/pod-proto.ts';
import { loadKubeApi, type KubeApi } from '../src/state/kube-api.ts';
import { collectionPath } from '../src/state/live.ts';
import { controlPlanePids, cpuSecondsOf } from './harness.ts';
import { bodyOf } from './live.ts';

const { values } = parseArgs({ options: { kubeconfig: { type: 'string' }, runs: { type: 'string', default: '3' }, kinds: { type: 'string', default: 'Pod,CiliumNetworkPolicy' }, variants: { type: 'string' } } });
if (!values.kubeconfig) throw new Error('--kubeconfig FILE');
const log = (m: string): void => void process.stderr.write(`[list-options] ${m}\n`);
const la = (): string => os.loadavg()[0]!.toFixed(1);

interface Variant { readonly name: string; readonly limit: number; readonly rv0: boolean }
const ALL: Variant[] = [
  { name: 'limit=500', limit: 500, rv0: false },
  { name: 'limit=500,rv=0', limit: 500, rv0: true },
  { name: 'limit=5000', limit: 5000, rv0: false },
  { name: 'no limit,rv=0', limit: 0, rv0: true },
];
const variants = values.variants ? ALL.filter((v) => values.variants!.split(',').includes(v.name)) : ALL;

function continueOf(kind: KindName, body: Buffer): { cont?: string; items: number } {
  if (kind === 'Pod') {
    const p = decodePodList(body);
    return { ...(p.continue ? { cont: p.continue } : {}), items: p.items.length };
  }
  const j = JSON.parse(body.toString('utf8')) as { items: unknown[]; metadata: { continue?: string } };
  return { ...(j.metadata.continue ? { cont: j.metadata.continue } : {}), items: j.items.length };
}

async function list(api: KubeApi, kind: KindName, v: Variant): Promise<{ items: number; pages: number; bytes: number }> {
  const accept = kind === 'Pod' ? 'application/vnd.kubernetes.protobuf' : 'application/json';
  let cont: string | undefined;
  let items = 0;
  let pages = 0;
  let bytes = 0;
  do {
    const q = new URLSearchParams();
    if (v.limit > 0) q.set('limit', String(v.limit));
    if (cont) q.set('continue', cont);
    else if (v.rv0) q.set('resourceVersion', '0');
    const body = await bodyOf(api, `${collectionPath(kind)}?${q.toString()}`, accept);
    const r = continueOf(kind, body);
    cont = r.cont;
    items += r.items;
    pages++;
    bytes += body.length;
  } while (cont);
  return { items, pages, bytes };
}

const api = loadKubeApi(values.kubeconfig);
const pids = controlPlanePids(values.kubeconfig);
const kinds = values.kinds!.split(',') as KindName[];
for (const k of kinds) if (!KINDS[k]) throw new Error(`unknown kind ${k}`);
for (let run = 0; run < Number(values.runs); run++) {
  const order = run % 2 === 0 ? variants : [...variants].reverse();
  for (const kind of kinds) {
    for (const v of order) {
      const a0 = cpuSecondsOf(pids.apiserver!);
      const e0 = pids.etcd !== undefined ? cpuSecondsOf(pids.etcd) : 0;
      const t0 = performance.now();
      const r = await list(api, kind, v);
      const ms = performance.now() - t0;
      log(`run ${run + 1} ${kind} ${v.name}: ${r.items} items, ${r.pages} pages, ${(r.bytes / 1e6).toFixed(1)} MB in ${ms.toFixed(0)} ms; CPU kube-apiserver ${((cpuSecondsOf(pids.apiserver!) - a0) * 1000).toFixed(0)} ms, etcd ${(((pids.etcd !== undefined ? cpuSecondsOf(pids.etcd) : 0) - e0) * 1000).toFixed(0)} ms; load ${la()}`);
    }
  }
}
api.close();
