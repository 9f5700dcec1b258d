// Encodes Pod lists (and a Status) in the kube-apiserver's protobuf encoding, for tests of
// src/state/pod-proto.ts: the fields that decoder reads, written as the apiserver writes them (every
// scalar of a message that is present, zero values included; map keys sorted), with protobufjs's
// Writer. Field numbers: the Kubernetes API's generated.proto (meta/v1, core/v1, runtime, intstr).

import protobuf from 'protobufjs/minimal.js';

type Writer = protobuf.Writer;
type Rec = Record<string, unknown>;

export const MAGIC = Buffer.from('k8s\0', 'latin1');

const LEN = 2;
const VARINT = 0;
const key = (field: number, wire: number): number => (field << 3) | wire;

function str(w: Writer, field: number, v: unknown): void {
  w.uint32(key(field, LEN)).string(typeof v === 'string' ? v : '');
}
function int(w: Writer, field: number, v: unknown): void {
  w.uint32(key(field, VARINT)).int32(typeof v === 'number' ? v : 0);
}
/** An embedded message: `body` writes its fields. */
function msg(w: Writer, field: number, body: (w: Writer) => void): void {
  w.uint32(key(field, LEN)).fork();
  body(w);
  w.ldelim();
}
function map(w: Writer, field: number, m: unknown): void {
  if (typeof m !== 'object' || m === null) return;
  for (const k of Object.keys(m).sort()) {
    msg(w, field, (e) => {
      str(e, 1, k);
      str(e, 2, (m as Rec)[k]);
    });
  }
}
const rec = (v: unknown): Rec => (typeof v === 'object' && v !== null ? (v as Rec) : {});
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

function intOrString(w: Writer, field: number, v: unknown): void {
  msg(w, field, (m) => {
    m.uint32(key(1, VARINT)).int64(typeof v === 'string' ? 1 : 0);
    int(m, 2, typeof v === 'number' ? v : 0);
    str(m, 3, typeof v === 'string' ? v : '');
  });
}

function probe(w: Writer, field: number, p: unknown): void {
  if (p === undefined) return;
  const r = rec(p);
  msg(w, field, (m) => {
    msg(m, 1, (h) => {
      if (r.exec !== undefined) msg(h, 1, (e) => { for (const c of list(rec(r.exec).command)) str(e, 1, c); });
      if (r.httpGet !== undefined) {
        const a = rec(r.httpGet);
        msg(h, 2, (x) => { str(x, 1, a.path); intOrString(x, 2, a.port); str(x, 3, a.host); str(x, 4, a.scheme ?? 'HTTP'); });
      }
      if (r.tcpSocket !== undefined) {
        const a = rec(r.tcpSocket);
        msg(h, 3, (x) => { intOrString(x, 1, a.port); str(x, 2, a.host); });
      }
      if (r.grpc !== undefined) msg(h, 4, (x) => int(x, 1, rec(r.grpc).port));
    });
    int(m, 2, 0);
    int(m, 3, 1);
    int(m, 4, 10);
  });
}

function container(w: Writer, field: number, c: unknown): void {
  const r = rec(c);
  msg(w, field, (m) => {
    str(m, 1, r.name);
    str(m, 2, r.image);
    for (const p of list(r.ports)) {
      const q = rec(p);
      msg(m, 6, (x) => { str(x, 1, q.name); int(x, 2, 0); int(x, 3, q.containerPort); str(x, 4, q.protocol ?? 'TCP'); str(x, 5, ''); });
    }
    probe(m, 10, r.livenessProbe);
    probe(m, 11, r.readinessProbe);
    str(m, 13, '/dev/termination-log');
    str(m, 14, 'IfNotPresent');
    probe(m, 22, r.startupProbe);
  });
}

/** One Pod (core.v1.Pod) from its JSON form. */
export function writePod(w: Writer, field: number, pod: Rec): void {
  const meta = rec(pod.metadata);
  const spec = rec(pod.spec);
  const status = rec(pod.status);
  msg(w, field, (p) => {
    msg(p, 1, (m) => {
      str(m, 1, meta.name);
      str(m, 2, '');
      str(m, 3, meta.namespace);
      str(m, 5, meta.uid ?? '0c6d5a54-0000-4000-8000-000000000000');
      str(m, 6, meta.resourceVersion ?? '1');
      m.uint32(key(7, VARINT)).int64(0);
      msg(m, 8, (t) => { t.uint32(key(1, VARINT)).int64(1_700_000_000); t.uint32(key(2, VARINT)).int32(0); });
      if (typeof meta.deletionTimestamp === 'string') {
        const s = Math.floor(Date.parse(meta.deletionTimestamp) / 1000);
        msg(m, 9, (t) => { t.uint32(key(1, VARINT)).int64(s); t.uint32(key(2, VARINT)).int32(0); });
      }
      map(m, 11, meta.labels);
      map(m, 12, meta.annotations);
      for (const o of list(meta.ownerReferences)) {
        const q = rec(o);
        msg(m, 13, (x) => { str(x, 1, q.kind); str(x, 3, q.name); str(x, 4, q.uid); str(x, 5, q.apiVersion); });
      }
    });
    msg(p, 2, (s) => {
      for (const c of list(spec.containers)) container(s, 2, c);
      str(s, 3, 'Always');
      str(s, 6, 'ClusterFirst');
      str(s, 8, spec.serviceAccountName);
      str(s, 9, spec.serviceAccountName);
      str(s, 10, spec.nodeName);
      s.uint32(key(11, VARINT)).bool(spec.hostNetwork === true);
      s.uint32(key(12, VARINT)).bool(false);
      for (const c of list(spec.initContainers)) container(s, 20, c);
    });
    msg(p, 3, (s) => {
      str(s, 1, status.phase);
      str(s, 5, status.hostIP);
      str(s, 6, status.podIP);
      for (const ip of list(status.podIPs)) msg(s, 12, (x) => str(x, 1, rec(ip).ip));
    });
  });
}

/** The magic and a runtime.Unknown holding `raw`, of kind `kind`. */
export function envelope(kind: string, raw: Uint8Array, contentEncoding = ''): Buffer {
  const w = protobuf.Writer.create();
  msg(w, 1, (t) => { str(t, 1, 'v1'); str(t, 2, kind); });
  w.uint32(key(2, LEN)).bytes(raw);
  str(w, 3, contentEncoding);
  str(w, 4, '');
  return Buffer.concat([MAGIC, w.finish()]);
}

/** A page of a Pod list as the apiserver sends it in protobuf. */
export function encodePodList(pods: readonly Rec[], meta: { resourceVersion?: string; continue?: string } = {}): Buffer {
  const w = protobuf.Writer.create();
  msg(w, 1, (m) => { str(m, 1, ''); str(m, 2, meta.resourceVersion ?? ''); str(m, 3, meta.continue ?? ''); });
  for (const p of pods) writePod(w, 2, p);
  return envelope('PodList', w.finish());
}

/** A meta.v1.Status in protobuf (an error answer). */
export function encodeStatus(code: number, message: string): Buffer {
  const w = protobuf.Writer.create();
  msg(w, 1, () => undefined);
  str(w, 2, 'Failure');
  str(w, 3, message);
  str(w, 4, 'Expired');
  w.uint32(key(6, VARINT)).int32(code);
  return envelope('Status', w.finish());
}

/** A Writer, for tests that write messages by hand. */
export function writer(): Writer {
  return protobuf.Writer.create();
}
