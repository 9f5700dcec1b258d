// A page of a Pod list in the kube-apiserver's protobuf encoding (`Accept:
// application/vnd.kubernetes.protobuf`), read into the JSON shape of the fields transformObject keeps
// for a Pod, so that the slim pod is made by the same code whichever encoding the page came in
// (ADR 0008). The apiserver encodes a page of pods as protobuf several times faster than as JSON, and
// at 50k pods that encoding was most of the time to ready (issue 21).
//
// The wire format is read with protobufjs's minimal Reader; the field numbers are those of the
// Kubernetes API (k8s.io/api/core/v1 and k8s.io/apimachinery/pkg/apis/meta/v1 and runtime,
// generated.proto), written here field by field. Every field not listed is skipped by its wire type.
//
// What the JSON encoding would leave out is left out here too: the apiserver's JSON omits empty
// strings, false and empty lists of the fields tagged `omitempty`, which protobuf sends as zero values.
// So a pod decoded from protobuf and handed to transformObject gives an object deep-equal to the one
// its JSON gives (test/e2e/pod-proto.test.ts checks it against a real apiserver).
//
// The body is untrusted input: every length is bounded by the bytes left in its enclosing message
// (the Reader's limit), groups and unknown wire types are refused, and any failure is a
// ProtobufError, never a hang: each step of each loop consumes at least one byte.

import protobuf from 'protobufjs/minimal.js';
import { keepAnnotation, setOwn } from './transform.ts';

type Reader = protobuf.Reader;
type Rec = Record<string, unknown>;

/** The media type of the kube-apiserver's protobuf encoding. */
export const PROTOBUF_MEDIA_TYPE = 'application/vnd.kubernetes.protobuf';
/** Every protobuf body starts with these four bytes ("k8s" and a zero byte). */
const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]);

/** A body that is not a well-formed protobuf Pod list (or Status). */
export class ProtobufError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtobufError';
  }
}

/** Whether a response's Content-Type is the protobuf encoding. */
export function isProtobuf(contentType: string | undefined): boolean {
  return contentType !== undefined && contentType.trim().toLowerCase().startsWith(PROTOBUF_MEDIA_TYPE);
}

// Wire types.
const VARINT = 0;
const LEN = 2;

/** Reads a field's tag; refuses field number 0 and the group wire types (no Kubernetes message has them). */
function tag(r: Reader): number {
  const t = r.uint32();
  const wire = t & 7;
  if (t >>> 3 === 0) throw new ProtobufError(`field number 0 at byte ${r.pos}`);
  if (wire === 3 || wire === 4 || wire > 5) throw new ProtobufError(`wire type ${wire} at byte ${r.pos}`);
  return t;
}

/** Skips a field the decoder does not read. */
function skip(r: Reader, t: number): void {
  r.skipType(t & 7);
}

/** A field the decoder reads, with the wire type it must have: anything else is a schema this code does not know. */
function want(r: Reader, t: number, wire: number, what: string): void {
  if ((t & 7) !== wire) throw new ProtobufError(`${what}: wire type ${t & 7}, expected ${wire}, at byte ${r.pos}`);
}

/**
 * Enters an embedded message: the Reader's limit becomes the message's end (bounded by the enclosing
 * message's), so no read inside it can go past it. Returns the enclosing limit, for leave().
 */
function enter(r: Reader, t: number, what: string): number {
  want(r, t, LEN, what);
  const n = r.uint32();
  const outer = r.len;
  if (n > outer - r.pos) throw new ProtobufError(`${what}: length ${n} past the end (${outer - r.pos} bytes left) at byte ${r.pos}`);
  r.len = r.pos + n;
  return outer;
}

function leave(r: Reader, outer: number): void {
  r.len = outer;
}

function str(r: Reader, t: number, what: string): string {
  want(r, t, LEN, what);
  return r.string();
}

function int32(r: Reader, t: number, what: string): number {
  want(r, t, VARINT, what);
  return r.int32();
}

function int64(r: Reader, t: number, what: string): number {
  want(r, t, VARINT, what);
  const v = r.int64() as unknown as number | { toNumber(): number }; // a Long only where the long package is loaded
  return typeof v === 'number' ? v : v.toNumber();
}

function bool(r: Reader, t: number, what: string): boolean {
  want(r, t, VARINT, what);
  return r.bool();
}

/** A map<string, string> entry (key = 1, value = 2) into `into`; `keep` filters keys before their value is read. */
function mapEntry(r: Reader, t: number, into: Record<string, string>, what: string, keep?: (key: string) => boolean): void {
  const outer = enter(r, t, what);
  let key = '';
  let value = '';
  let kept = true;
  while (r.pos < r.len) {
    const u = tag(r);
    const f = u >>> 3;
    if (f === 1) {
      key = str(r, u, `${what} key`);
      kept = keep === undefined || keep(key);
    } else if (f === 2 && kept) value = str(r, u, `${what} value`);
    else skip(r, u);
  }
  leave(r, outer);
  if (keep === undefined || keep(key)) setOwn(into, key, value);
}

/** meta.v1.Time {seconds = 1, nanos = 2} as the JSON encoding writes it (RFC 3339, whole seconds, UTC). */
function time(r: Reader, t: number, what: string): string {
  const outer = enter(r, t, what);
  let seconds = 0;
  while (r.pos < r.len) {
    const u = tag(r);
    if (u >>> 3 === 1) seconds = int64(r, u, `${what} seconds`);
    else skip(r, u);
  }
  leave(r, outer);
  const d = new Date(seconds * 1000);
  if (Number.isNaN(d.getTime()) || d.getUTCFullYear() > 9999 || d.getUTCFullYear() < 0) throw new ProtobufError(`${what}: ${seconds} s is out of range`);
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** meta.v1.ObjectMeta: name = 1, namespace = 3, deletionTimestamp = 9, labels = 11, annotations = 12. */
function objectMeta(r: Reader, t: number): Rec {
  const outer = enter(r, t, 'metadata');
  const m: Rec = {};
  let labels: Record<string, string> | undefined;
  let annotations: Record<string, string> | undefined;
  while (r.pos < r.len) {
    const u = tag(r);
    switch (u >>> 3) {
      case 1: {
        const name = str(r, u, 'metadata.name');
        if (name !== '') m.name = name;
        break;
      }
      case 3: {
        const ns = str(r, u, 'metadata.namespace');
        if (ns !== '') m.namespace = ns;
        break;
      }
      case 9:
        m.deletionTimestamp = time(r, u, 'metadata.deletionTimestamp');
        break;
      case 11:
        mapEntry(r, u, (labels ??= {}), 'metadata.labels');
        break;
      case 12:
        // Only the annotations transformObject keeps are read (last-applied-configuration can be large).
        mapEntry(r, u, (annotations ??= {}), 'metadata.annotations', keepAnnotation);
        break;
      default:
        skip(r, u);
    }
  }
  leave(r, outer);
  if (labels !== undefined) m.labels = labels;
  if (annotations !== undefined) m.annotations = annotations;
  return m;
}

/** util.intstr.IntOrString {type = 1, intVal = 2, strVal = 3}: a number when type is 0, a string when 1. */
function intOrString(r: Reader, t: number, what: string): number | string {
  const outer = enter(r, t, what);
  let type = 0;
  let intVal = 0;
  let strVal = '';
  while (r.pos < r.len) {
    const u = tag(r);
    const f = u >>> 3;
    if (f === 1) type = int64(r, u, `${what} type`);
    else if (f === 2) intVal = int32(r, u, `${what} intVal`);
    else if (f === 3) strVal = str(r, u, `${what} strVal`);
    else skip(r, u);
  }
  leave(r, outer);
  if (type === 0) return intVal;
  if (type === 1) return strVal;
  throw new ProtobufError(`${what}: IntOrString of type ${type}`);
}

/**
 * A probe's handler action: HTTPGetAction {port = 2 (IntOrString), host = 3}, TCPSocketAction
 * {port = 1 (IntOrString), host = 2}, GRPCAction {port = 1 (int32)}.
 */
function action(r: Reader, t: number, kind: 'httpGet' | 'tcpSocket' | 'grpc'): Rec {
  const what = `probe ${kind}`;
  const outer = enter(r, t, what);
  const portField = kind === 'httpGet' ? 2 : 1;
  const hostField = kind === 'httpGet' ? 3 : kind === 'tcpSocket' ? 2 : -1;
  // `port` has no omitempty: the JSON encoding always writes it (0 when unset).
  const a: Rec = { port: 0 };
  while (r.pos < r.len) {
    const u = tag(r);
    const f = u >>> 3;
    if (f === portField) a.port = kind === 'grpc' ? int32(r, u, `${what} port`) : intOrString(r, u, `${what} port`);
    else if (f === hostField) {
      const host = str(r, u, `${what} host`);
      if (host !== '') a.host = host;
    } else skip(r, u);
  }
  leave(r, outer);
  return a;
}

/** core.v1.Probe {handler = 1: ProbeHandler {exec = 1, httpGet = 2, tcpSocket = 3, grpc = 4}}; the JSON has the handler inline. */
function probe(r: Reader, t: number, what: string): Rec {
  const outer = enter(r, t, what);
  const p: Rec = {};
  while (r.pos < r.len) {
    const u = tag(r);
    if (u >>> 3 !== 1) {
      skip(r, u);
      continue;
    }
    const inner = enter(r, u, `${what} handler`);
    while (r.pos < r.len) {
      const v = tag(r);
      switch (v >>> 3) {
        case 2:
          p.httpGet = action(r, v, 'httpGet');
          break;
        case 3:
          p.tcpSocket = action(r, v, 'tcpSocket');
          break;
        case 4:
          p.grpc = action(r, v, 'grpc');
          break;
        default:
          skip(r, v); // exec (1): no traffic, not kept
      }
    }
    leave(r, inner);
  }
  leave(r, outer);
  return p;
}

/** core.v1.ContainerPort {name = 1, containerPort = 3, protocol = 4}. */
function containerPort(r: Reader, t: number): Rec {
  const outer = enter(r, t, 'container port');
  const p: Rec = { containerPort: 0 }; // no omitempty in the JSON
  while (r.pos < r.len) {
    const u = tag(r);
    switch (u >>> 3) {
      case 1: {
        const name = str(r, u, 'container port name');
        if (name !== '') p.name = name;
        break;
      }
      case 3:
        p.containerPort = int32(r, u, 'containerPort');
        break;
      case 4: {
        const protocol = str(r, u, 'container port protocol');
        if (protocol !== '') p.protocol = protocol;
        break;
      }
      default:
        skip(r, u);
    }
  }
  leave(r, outer);
  return p;
}

/** core.v1.Container {name = 1, image = 2, ports = 6, livenessProbe = 10, readinessProbe = 11, startupProbe = 22}. */
function container(r: Reader, t: number): Rec {
  const outer = enter(r, t, 'container');
  const c: Rec = { name: '' }; // no omitempty in the JSON
  let ports: Rec[] | undefined;
  while (r.pos < r.len) {
    const u = tag(r);
    switch (u >>> 3) {
      case 1:
        c.name = str(r, u, 'container name');
        break;
      case 2: {
        const image = str(r, u, 'container image');
        if (image !== '') c.image = image;
        break;
      }
      case 6:
        (ports ??= []).push(containerPort(r, u));
        break;
      case 10:
        c.livenessProbe = probe(r, u, 'livenessProbe');
        break;
      case 11:
        c.readinessProbe = probe(r, u, 'readinessProbe');
        break;
      case 22:
        c.startupProbe = probe(r, u, 'startupProbe');
        break;
      default:
        skip(r, u);
    }
  }
  leave(r, outer);
  if (ports !== undefined) c.ports = ports;
  return c;
}

/** core.v1.PodSpec {containers = 2, serviceAccountName = 8, nodeName = 10, hostNetwork = 11, initContainers = 20}. */
function podSpec(r: Reader, t: number): Rec {
  const outer = enter(r, t, 'spec');
  const s: Rec = {};
  const containers: Rec[] = [];
  let init: Rec[] | undefined;
  while (r.pos < r.len) {
    const u = tag(r);
    switch (u >>> 3) {
      case 2:
        containers.push(container(r, u));
        break;
      case 8: {
        const sa = str(r, u, 'spec.serviceAccountName');
        if (sa !== '') s.serviceAccountName = sa;
        break;
      }
      case 10: {
        const node = str(r, u, 'spec.nodeName');
        if (node !== '') s.nodeName = node;
        break;
      }
      case 11:
        s.hostNetwork = bool(r, u, 'spec.hostNetwork') ? true : undefined; // omitempty: false is not written
        break;
      case 20:
        (init ??= []).push(container(r, u));
        break;
      default:
        skip(r, u);
    }
  }
  leave(r, outer);
  s.containers = containers;
  if (init !== undefined) s.initContainers = init;
  return s;
}

/** core.v1.PodStatus {phase = 1, hostIP = 5, podIP = 6, podIPs = 12: PodIP {ip = 1}}. */
function podStatus(r: Reader, t: number): Rec {
  const outer = enter(r, t, 'status');
  const s: Rec = {};
  let ips: Rec[] | undefined;
  while (r.pos < r.len) {
    const u = tag(r);
    switch (u >>> 3) {
      case 1:
      case 5:
      case 6: {
        const v = str(r, u, 'status field');
        const key = u >>> 3 === 1 ? 'phase' : u >>> 3 === 5 ? 'hostIP' : 'podIP';
        s[key] = v !== '' ? v : undefined;
        break;
      }
      case 12: {
        const inner = enter(r, u, 'status.podIPs');
        let ip = ''; // no omitempty in the JSON
        while (r.pos < r.len) {
          const v = tag(r);
          if (v >>> 3 === 1) ip = str(r, v, 'status.podIPs ip');
          else skip(r, v);
        }
        leave(r, inner);
        (ips ??= []).push({ ip });
        break;
      }
      default:
        skip(r, u);
    }
  }
  leave(r, outer);
  if (ips !== undefined) s.podIPs = ips;
  return s;
}

/** core.v1.Pod {metadata = 1, spec = 2, status = 3}, in the JSON shape of the fields transformObject reads. */
function pod(r: Reader, t: number): Rec {
  const outer = enter(r, t, 'pod');
  // The JSON encoding always writes metadata, spec and status (structs are never omitted).
  const p: Rec = { metadata: {}, spec: { containers: [] }, status: {} };
  while (r.pos < r.len) {
    const u = tag(r);
    switch (u >>> 3) {
      case 1:
        p.metadata = objectMeta(r, u);
        break;
      case 2:
        p.spec = podSpec(r, u);
        break;
      case 3:
        p.status = podStatus(r, u);
        break;
      default:
        skip(r, u);
    }
  }
  leave(r, outer);
  return p;
}

/** meta.v1.ListMeta {resourceVersion = 2, continue = 3}. */
function listMeta(r: Reader, t: number, into: { resourceVersion?: string; continue?: string }): void {
  const outer = enter(r, t, 'list metadata');
  while (r.pos < r.len) {
    const u = tag(r);
    const f = u >>> 3;
    if (f === 2) into.resourceVersion = str(r, u, 'list resourceVersion');
    else if (f === 3) into.continue = str(r, u, 'list continue');
    else skip(r, u);
  }
  leave(r, outer);
}

/**
 * The magic, then runtime.Unknown {typeMeta = 1: TypeMeta {apiVersion = 1, kind = 2}, raw = 2,
 * contentEncoding = 3}. Calls `body` with the Reader at `raw` and the kind read before it (the
 * apiserver writes typeMeta first).
 */
function envelope(buf: Buffer, body: (r: Reader, t: number, kind: string) => void): void {
  if (buf.length < MAGIC.length || !buf.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new ProtobufError(`the body does not start with the protobuf magic (${JSON.stringify(buf.subarray(0, 8).toString('latin1'))})`);
  }
  const r = protobuf.Reader.create(buf.subarray(MAGIC.length));
  let kind = '';
  let raw = false;
  try {
    while (r.pos < r.len) {
      const u = tag(r);
      switch (u >>> 3) {
        case 1: {
          const outer = enter(r, u, 'typeMeta');
          while (r.pos < r.len) {
            const v = tag(r);
            if (v >>> 3 === 2) kind = str(r, v, 'typeMeta.kind');
            else skip(r, v);
          }
          leave(r, outer);
          break;
        }
        case 2:
          raw = true;
          body(r, u, kind);
          break;
        case 3: {
          const enc = str(r, u, 'contentEncoding');
          if (enc !== '') throw new ProtobufError(`content encoding ${JSON.stringify(enc.slice(0, 40))} is not supported`);
          break;
        }
        default:
          skip(r, u);
      }
    }
  } catch (e) {
    if (e instanceof ProtobufError) throw e;
    // protobufjs's own errors: a length or varint past the end, an invalid varint.
    throw new ProtobufError(`malformed protobuf at byte ${r.pos + MAGIC.length}: ${(e as Error).message}`);
  }
  if (!raw) throw new ProtobufError('the envelope holds no object');
}

export interface PodListPage {
  /** The pods, each in the JSON shape of the fields transformObject reads. */
  readonly items: Rec[];
  readonly resourceVersion?: string;
  readonly continue?: string;
}

/** Decodes one page of a protobuf Pod list (core.v1.PodList {metadata = 1, items = 2}). Throws ProtobufError. */
export function decodePodList(buf: Buffer): PodListPage {
  const d = new PodListDecoder();
  const items = d.push(buf, true);
  return { items, ...d.finish() };
}

/** An envelope field other than the list (typeMeta, contentEncoding...) longer than this is refused. */
const MAX_ENVELOPE_FIELD = 1 << 20;

/**
 * The varint at `pos` (before `end`): [value, position after it], or undefined when the bytes end
 * inside it. At most `maxBytes` bytes (5: a uint32, as tags and lengths are; 10: any varint).
 */
function varintAt(buf: Buffer, pos: number, end: number, maxBytes: number): [number, number] | undefined {
  let value = 0;
  let mul = 1;
  for (let i = 0; i < maxBytes; i++) {
    if (pos + i >= end) return undefined;
    const b = buf[pos + i]!;
    value += (b & 0x7f) * mul;
    if (b < 0x80) return [value, pos + i + 1];
    mul *= 128;
  }
  throw new ProtobufError(`malformed protobuf: invalid varint (more than ${maxBytes} bytes)`);
}

/**
 * A protobuf Pod list read as its bytes arrive (issue 21): push() each chunk of the body and get the
 * pods it completes; finish() at the end checks the body was whole and gives the list metadata. The
 * body is never held whole, only the bytes of the one pod not complete yet: a list of every pod
 * from the apiserver's watch cache comes as one body (the cache ignores `limit`), 128 MB at 50k pods.
 * Each pod is decoded by the same code as decodePodList's (which is push() of the whole body, then
 * finish()), so the pods are the same however the body is cut.
 *
 * The envelope (runtime.Unknown) is read field by field; inside its `raw` field, the PodList's fields
 * are taken one at a time, each once all its bytes are there, and every length is checked against
 * the bytes `raw` says it holds. Throws ProtobufError, from push() or finish().
 */
export class PodListDecoder {
  /** Bytes received and not yet consumed (the start of a field not complete yet). */
  #held: Buffer[] = [];
  /** Their total length. */
  #heldLength = 0;
  /**
   * How many bytes the field they start needs, when its length is known (0: not yet): chunks are only
   * held until then, not joined at every push, so a field spread over many chunks is copied once.
   */
  #need = 0;
  /** Bytes consumed before the held ones (for the positions in errors). */
  #consumed = 0;
  #magic = false;
  #kind = '';
  /** A `raw` field was seen (the envelope holds an object). */
  #raw = false;
  /** While inside `raw`: its length, and the bytes of it consumed so far; -1 outside it. */
  #rawLength = -1;
  #rawDone = 0;
  readonly #meta: { resourceVersion?: string; continue?: string } = {};

  /** The list metadata, once read (the apiserver writes it before the items): the continue token comes early. */
  get meta(): { readonly resourceVersion?: string; readonly continue?: string } {
    return this.#meta;
  }

  /**
   * Takes the next bytes of the body; returns the pods they complete (in the JSON shape, as
   * decodePodList). `last`: no bytes follow (a length past them is refused at once).
   */
  push(chunk: Buffer, last = false): Rec[] {
    const out: Rec[] = [];
    if (!last && this.#heldLength + chunk.length < this.#need) {
      this.#held.push(chunk);
      this.#heldLength += chunk.length;
      return out;
    }
    const buf = this.#heldLength === 0 ? chunk : Buffer.concat([...this.#held, chunk]);
    let pos = 0;
    let need = 0;
    try {
      if (!this.#magic) {
        if (buf.length < MAGIC.length) {
          if (!MAGIC.subarray(0, buf.length).equals(buf)) this.#notMagic(buf);
          return out;
        }
        if (!buf.subarray(0, MAGIC.length).equals(MAGIC)) this.#notMagic(buf);
        this.#magic = true;
        pos = MAGIC.length;
      }
      for (;;) {
        const inRaw = this.#rawLength >= 0;
        // The bytes the current level may still use: what `raw` has left, or everything.
        const end = inRaw ? Math.min(buf.length, pos + this.#rawLength - this.#rawDone) : buf.length;
        if (inRaw && this.#rawDone === this.#rawLength) {
          this.#rawLength = -1;
          continue;
        }
        const at = this.#consumed + pos;
        const t = varintAt(buf, pos, end, 5);
        if (t === undefined) break;
        const [u, afterTag] = t;
        const wire = u & 7;
        if (u >>> 3 === 0) throw new ProtobufError(`field number 0 at byte ${at}`);
        if (wire === 3 || wire === 4 || wire > 5) throw new ProtobufError(`wire type ${wire} at byte ${at}`);
        const field = u >>> 3;
        if (!inRaw && field === 2) {
          // The list itself: entered, and read field by field as it comes.
          if (wire !== LEN) throw new ProtobufError(`raw: wire type ${wire}, expected ${LEN}, at byte ${at}`);
          const l = varintAt(buf, afterTag, end, 5);
          if (l === undefined) break;
          if (this.#kind !== '' && this.#kind !== 'PodList') throw new ProtobufError(`expected a PodList, got a ${JSON.stringify(this.#kind.slice(0, 60))}`);
          if (last && l[0] > buf.length - l[1]) throw new ProtobufError(`raw: length ${l[0]} past the end (${buf.length - l[1]} bytes left) at byte ${this.#consumed + afterTag}`);
          this.#raw = true;
          this.#rawLength = l[0];
          this.#rawDone = 0;
          pos = l[1];
          continue;
        }
        if (inRaw && (field === 1 || field === 2) && wire !== LEN) {
          throw new ProtobufError(`${field === 1 ? 'list metadata' : 'pod'}: wire type ${wire}, expected ${LEN}, at byte ${at}`);
        }
        // The whole field's length: a varint, 8 or 4 bytes, or a length and that many bytes.
        let size: number;
        if (wire === VARINT) {
          const v = varintAt(buf, afterTag, end, 10);
          if (v === undefined) break;
          size = v[1] - pos;
        } else if (wire === 1) {
          size = afterTag + 8 - pos;
        } else if (wire === 5) {
          size = afterTag + 4 - pos;
        } else {
          const l = varintAt(buf, afterTag, end, 5);
          if (l === undefined) break;
          size = l[1] + l[0] - pos;
        }
        if (inRaw && size > this.#rawLength - this.#rawDone) {
          throw new ProtobufError(`${field === 1 ? 'list metadata' : field === 2 ? 'pod' : 'field'}: length past the end of the list (${this.#rawLength - this.#rawDone} bytes left) at byte ${at}`);
        }
        if (!inRaw && size > MAX_ENVELOPE_FIELD) throw new ProtobufError(`envelope field ${field}: ${size} bytes, more than ${MAX_ENVELOPE_FIELD}, at byte ${at}`);
        if (pos + size > buf.length) {
          need = size;
          break;
        }
        const r = protobuf.Reader.create(buf.subarray(afterTag, pos + size));
        try {
          if (inRaw) {
            if (field === 1) listMeta(r, u, this.#meta);
            else if (field === 2) out.push(pod(r, u));
            this.#rawDone += size;
          } else if (field === 1) {
            const outer = enter(r, u, 'typeMeta');
            while (r.pos < r.len) {
              const v = tag(r);
              if (v >>> 3 === 2) this.#kind = str(r, v, 'typeMeta.kind');
              else skip(r, v);
            }
            leave(r, outer);
          } else if (field === 3) {
            const enc = str(r, u, 'contentEncoding');
            if (enc !== '') throw new ProtobufError(`content encoding ${JSON.stringify(enc.slice(0, 40))} is not supported`);
          }
        } catch (e) {
          if (e instanceof ProtobufError) throw e;
          // protobufjs's own errors: a length or varint past the end of the field, an invalid varint.
          throw new ProtobufError(`malformed protobuf at byte ${at + (afterTag - pos) + r.pos}: ${(e as Error).message}`);
        }
        pos += size;
      }
    } finally {
      this.#consumed += pos;
      const rest = buf.subarray(pos);
      this.#held = rest.length > 0 ? [rest] : [];
      this.#heldLength = rest.length;
      this.#need = need;
    }
    return out;
  }

  /** The body has ended: throws unless it was whole; the list metadata. */
  finish(): { resourceVersion?: string; continue?: string } {
    if (!this.#magic) this.#notMagic(Buffer.concat(this.#held));
    if (this.#rawLength >= 0 && this.#rawDone + this.#heldLength < this.#rawLength) {
      throw new ProtobufError(`raw: length ${this.#rawLength} past the end (${this.#rawDone + this.#heldLength} bytes left) at byte ${this.#consumed - this.#rawDone}`);
    }
    if (this.#heldLength > 0) throw new ProtobufError(`malformed protobuf at byte ${this.#consumed}: the body ends inside a field (${this.#heldLength} bytes)`);
    if (!this.#raw) throw new ProtobufError('the envelope holds no object');
    return { ...this.#meta };
  }

  #notMagic(buf: Buffer): never {
    throw new ProtobufError(`the body does not start with the protobuf magic (${JSON.stringify(buf.subarray(0, 8).toString('latin1'))})`);
  }
}

/** The message of a protobuf meta.v1.Status (message = 3), or undefined when the body is not one. Never throws. */
export function protobufStatusMessage(buf: Buffer): string | undefined {
  let message: string | undefined;
  try {
    envelope(buf, (r, t) => {
      const outer = enter(r, t, 'raw');
      while (r.pos < r.len) {
        const u = tag(r);
        if (u >>> 3 === 3) message = str(r, u, 'status message');
        else skip(r, u);
      }
      leave(r, outer);
    });
  } catch {
    return undefined;
  }
  return message;
}
