// The apiserver's list of every Pod (limit=500, continue), as JSON and as protobuf, runs alternating
// (issue 21): how long the kube-apiserver takes to serve the same pages in each encoding, read as
// bytes only (the continue token picked out, nothing else decoded), then the same lists decoded into
// slim pods by listKind both ways. The e2e control plane holds generateCluster(--pods), as in
// bench/live-ready.ts. With --keep the control plane stays up after the runs (its kubeconfig is
// printed) until the process is interrupted; --kubeconfig runs against such a kept apiserver instead.
// Usage: node bench/list-encoding.ts [--pods 50000] [--runs 3] [--keep] [--kubeconfig FILE] [--no-decoded]

import os from 'node:os';
import { parseArgs } from 'node:util';
import protobuf from 'protobufjs/minimal.js';

import { loadKubeApi, type KubeApi } from '../src/state/kube-api.ts';
import { collectionPath, listKind } from '../src/state/live.ts';
import { controlPlanePids, cpuSecondsOf } from './harness.ts';
import { bodyOf, onCluster } from './live.ts';

const { values } = parseArgs({
  options: { pods: { type: 'string', default: '50000' }, runs: { type: 'string', default: '3' }, keep: { type: 'boolean', default: false }, kubeconfig: { type: 'string' }, decoded: { type: 'boolean', default: true } },
  allowNegative: true,
});
const PODS = Number(values.pods);
const log = (m: string): void => void process.stderr.write(`[list-encoding] ${m}\n`);
const la = (): string => os.loadavg()[0]!.toFixed(1);

/** The continue token of a JSON PodList page (its metadata comes first). */
function jsonContinue(body: Buffer): string | undefined {
  const head = body.subarray(0, 4096).toString('utf8');
  const at = head.indexOf('"continue":"');
  if (at < 0) return undefined;
  const from = at + '"continue":"'.length;
  return head.slice(from, head.indexOf('"', from)) || undefined;
}

/** The continue token of a protobuf PodList page: runtime.Unknown.raw (2) -> PodList.metadata (1) -> ListMeta.continue (3). */
function protoContinue(body: Buffer): string | undefined {
  if (body.subarray(0, 4).toString('latin1') !== 'k8s\0') throw new Error(`not protobuf: ${body.subarray(0, 40).toString()}`);
  const field = (buf: Uint8Array, wanted: number): Uint8Array | undefined => {
    const r = protobuf.Reader.create(buf);
    while (r.pos < r.len) {
      const tag = r.uint32();
      if (tag >>> 3 === wanted && (tag & 7) === 2) return r.bytes();
      r.skipType(tag & 7);
    }
    return undefined;
  };
  const raw = field(body.subarray(4), 2);
  const meta = raw && field(raw, 1);
  const cont = meta && field(meta, 3);
  return cont && cont.length > 0 ? Buffer.from(cont).toString('utf8') : undefined;
}

async function listBytes(api: KubeApi, accept: string, next: (b: Buffer) => string | undefined): Promise<{ pages: number; bytes: number }> {
  let cont: string | undefined;
  let pages = 0;
  let bytes = 0;
  do {
    const q = new URLSearchParams({ limit: '500', ...(cont ? { continue: cont } : {}) });
    const body = await bodyOf(api, `${collectionPath('Pod')}?${q}`, accept);
    pages++;
    bytes += body.length;
    cont = next(body);
  } while (cont);
  return { pages, bytes };
}

async function measure(kubeconfig: string): Promise<void> {
  const api = loadKubeApi(kubeconfig);
  const pids = controlPlanePids(kubeconfig);
  log(`kube-apiserver pid ${pids.apiserver ?? '?'}, etcd pid ${pids.etcd ?? '?'}`);
  const variants: [string, () => Promise<string>][] = [
    ['bytes, JSON', async () => {
      const r = await listBytes(api, 'application/json', jsonContinue);
      return `${r.pages} pages, ${(r.bytes / 1e6).toFixed(1)} MB`;
    }],
    ['bytes, protobuf', async () => {
      const r = await listBytes(api, 'application/vnd.kubernetes.protobuf', protoContinue);
      return `${r.pages} pages, ${(r.bytes / 1e6).toFixed(1)} MB`;
    }],
  ];
  if (values.decoded) {
    for (const encoding of ['json', 'protobuf'] as const) {
      variants.push([`listKind, ${encoding}`, async () => {
        const r = await listKind(api, 'Pod', undefined, undefined, undefined, { encoding });
        return `${r.items.length} pods`;
      }]);
    }
  }
  for (let run = 0; run < Number(values.runs); run++) {
    for (const [name, fn] of variants) {
      const c0 = process.cpuUsage();
      const a0 = pids.apiserver ? cpuSecondsOf(pids.apiserver) : NaN;
      const e0 = pids.etcd ? cpuSecondsOf(pids.etcd) : NaN;
      const t0 = performance.now();
      const what = await fn();
      const c = process.cpuUsage(c0);
      const a = pids.apiserver ? cpuSecondsOf(pids.apiserver) - a0 : NaN;
      const e = pids.etcd ? cpuSecondsOf(pids.etcd) - e0 : NaN;
      log(`run ${run + 1}, ${name}: ${what} in ${(performance.now() - t0).toFixed(0)} ms, CPU: this process ${((c.user + c.system) / 1000).toFixed(0)} ms, kube-apiserver ${(a * 1000).toFixed(0)} ms, etcd ${(e * 1000).toFixed(0)} ms; load ${la()}`);
    }
  }
  api.close();
}

await onCluster(values.kubeconfig, PODS, log, measure, values.keep);
