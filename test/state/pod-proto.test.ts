// The protobuf Pod list decoder (src/state/pod-proto.ts): what it reads gives the same slim pod as
// the JSON of the same pod, and a malformed body is a ProtobufError, never a hang, a crash or
// another kind of error. The bodies are written with protobufjs's Writer (test/helpers/pod-proto-encode.ts)
// the way the apiserver writes them; the e2e test test/e2e/pod-proto.test.ts compares with a real one.

import t, { type Test } from 'tap';
import { decodePodList, isProtobuf, PodListDecoder, ProtobufError, protobufStatusMessage } from '../../src/state/pod-proto.ts';
import { transformObject } from '../../src/state/transform.ts';
import { encodePodList, encodeStatus, envelope, MAGIC, writePod, writer } from '../helpers/pod-proto-encode.ts';

type Rec = Record<string, unknown>;

/** Pods in the JSON form the apiserver sends (what transformObject gets on the JSON path). */
const PODS: Rec[] = [
  {
    metadata: {
      name: 'web-0', namespace: 'shop',
      labels: { app: 'web', '10': 'numeric-key', 'example.com/odd': 'a_b.c-d', empty: '' },
      annotations: { 'sidecar.istio.io/inject': 'true', 'istio.io/rev': 'canary', 'kubectl.kubernetes.io/last-applied-configuration': '{"x":1}', 'meshguard.io/note': 'ünïcödé "quoted"\nline' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d9f', uid: 'u1' }],
    },
    spec: {
      serviceAccountName: 'web', nodeName: 'node-1',
      initContainers: [{ name: 'init', image: 'busybox' }],
      containers: [
        {
          name: 'app', image: 'registry/app:1',
          ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }, { containerPort: 9090, protocol: 'UDP' }],
          livenessProbe: { httpGet: { path: '/healthz', port: 'http' } },
          readinessProbe: { tcpSocket: { port: 8080 } },
          startupProbe: { grpc: { port: 9090 } },
        },
        { name: 'sidecar', image: 'proxy', readinessProbe: { exec: { command: ['true'] } }, livenessProbe: { httpGet: { port: 80, host: '10.1.1.1' } } },
      ],
    },
    status: { phase: 'Running', hostIP: '192.168.1.10', podIP: '10.0.0.5', podIPs: [{ ip: '10.0.0.5' }, { ip: 'fd00::5' }] },
  },
  // Host network, no labels, no ports, a pending pod with no IPs.
  { metadata: { name: 'agent', namespace: 'kube-system' }, spec: { hostNetwork: true, containers: [{ name: 'agent', image: 'cilium' }] }, status: { phase: 'Pending' } },
  // The Cilium agent: its images are kept.
  { metadata: { name: 'cilium-x', namespace: 'kube-system', labels: { 'k8s-app': 'cilium' } }, spec: { containers: [{ name: 'cilium-agent', image: 'quay.io/cilium/cilium:v1.16.3' }] }, status: {} },
  // Being deleted.
  { metadata: { name: 'gone', namespace: 'shop', deletionTimestamp: '2026-12-06T22:11:11Z' }, spec: { containers: [{ name: 'c' }] }, status: { phase: 'Running', podIP: 'fd00::9', podIPs: [{ ip: 'fd00::9' }] } },
];

/** The JSON the apiserver would send for a pod: what the protobuf's zero values stand for, left out. */
function asJson(p: Rec): Rec {
  return JSON.parse(JSON.stringify(p)) as Rec;
}

t.test('a protobuf page gives the slim pods its JSON gives, and the list metadata', async (t) => {
  const page = decodePodList(encodePodList(PODS, { resourceVersion: '4242', continue: 'eyJydiI6NDJ9' }));
  t.equal(page.resourceVersion, '4242');
  t.equal(page.continue, 'eyJydiI6NDJ9');
  t.equal(page.items.length, PODS.length);
  for (let i = 0; i < PODS.length; i++) {
    t.same(transformObject('Pod', page.items[i]), transformObject('Pod', asJson(PODS[i]!)), `pod ${i}`);
    t.strictSame(transformObject('Pod', page.items[i]), transformObject('Pod', asJson(PODS[i]!)), `pod ${i}, strictly`);
  }
  // What the decoder hands on: no annotation transformObject drops, no false hostNetwork, no empty strings.
  const first = page.items[0] as { metadata: { annotations: Rec }; spec: Rec };
  t.same(Object.keys(first.metadata.annotations).sort(), ['istio.io/rev', 'meshguard.io/note', 'sidecar.istio.io/inject']);
  t.equal((page.items[2] as { spec: Rec }).spec.hostNetwork, undefined);
  t.equal((page.items[3] as { metadata: Rec }).metadata.deletionTimestamp, '2026-12-06T22:11:11Z');
  // The last page: no continue.
  t.equal(decodePodList(encodePodList([], { resourceVersion: '1' })).continue, '');
});

t.test('unknown fields of every wire type are skipped, at every level', async (t) => {
  const w = writer();
  w.uint32((1 << 3) | 2).fork().uint32((2 << 3) | 2).string('7').ldelim(); // ListMeta.resourceVersion
  w.uint32((99 << 3) | 0).uint64(123456789); // varint
  w.uint32((98 << 3) | 1).fixed64(7); // 64-bit
  w.uint32((97 << 3) | 5).fixed32(7); // 32-bit
  w.uint32((96 << 3) | 2).bytes(new Uint8Array([1, 2, 3])); // length-delimited
  // A pod with unknown fields inside its metadata and spec.
  w.uint32((2 << 3) | 2).fork()
    .uint32((1 << 3) | 2).fork().uint32((1 << 3) | 2).string('p').uint32((500 << 3) | 0).uint32(1).uint32((3 << 3) | 2).string('ns').ldelim()
    .uint32((2 << 3) | 2).fork().uint32((77 << 3) | 5).fixed32(1).uint32((2 << 3) | 2).fork().uint32((1 << 3) | 2).string('c').ldelim().ldelim()
    .uint32((1000 << 3) | 2).bytes(new Uint8Array(10))
    .ldelim();
  const page = decodePodList(envelope('PodList', w.finish()));
  t.equal(page.resourceVersion, '7');
  t.same(transformObject('Pod', page.items[0]), { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'ns' }, spec: { containers: [{ name: 'c' }] } });
});

/** The error decodePodList throws for `buf` (fails the test when it throws none or another kind). */
function failure(t: Test, buf: Buffer, what: string): string {
  try {
    decodePodList(buf);
  } catch (e) {
    t.type(e, ProtobufError, `${what}: a ProtobufError`);
    return (e as Error).message;
  }
  t.fail(`${what}: decoded without an error`);
  return '';
}

t.test('malformed bodies are a ProtobufError that says what is wrong', async (t) => {
  const good = encodePodList(PODS, { resourceVersion: '1' });
  t.match(failure(t, Buffer.from('{"kind":"PodList"}'), 'JSON'), /does not start with the protobuf magic/);
  t.match(failure(t, Buffer.from('k8s'), 'shorter than the magic'), /magic/);
  t.match(failure(t, Buffer.concat([Buffer.from('k9s\0'), good.subarray(4)]), 'wrong magic'), /magic/);
  t.match(failure(t, MAGIC, 'the magic alone'), /holds no object/);
  // Cut anywhere inside: a varint, a length or a message ends early.
  let cuts = 0;
  for (let n = 5; n < good.length; n += 7) {
    const cut = good.subarray(0, n);
    try {
      decodePodList(cut);
    } catch (e) {
      if (!(e instanceof ProtobufError)) t.fail(`cut at ${n}: ${String(e)}`);
      cuts++;
    }
  }
  t.ok(cuts > 0);
  // A varint cut in its middle (a continuation bit, then nothing).
  t.match(failure(t, Buffer.concat([MAGIC, Buffer.from([0x12, 0x80])]), 'truncated varint'), /malformed protobuf|past the end|index out of range/);
  t.match(failure(t, Buffer.concat([MAGIC, Buffer.from([0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])]), 'an 11-byte varint'), /malformed protobuf|invalid varint/);
  // Lengths past the end: the envelope's raw, a pod inside a page, a string inside a pod.
  t.match(failure(t, Buffer.concat([MAGIC, Buffer.from([0x12, 0x05, 0x01])]), 'raw longer than the body'), /length 5 past the end \(1 bytes left\)/);
  t.match(failure(t, Buffer.concat([MAGIC, Buffer.from([0x12, 0xff, 0xff, 0xff, 0xff, 0x0f])]), 'a 4 GiB length'), /length 4294967295 past the end/);
  {
    // A pod that says it is longer than the page holding it (the page itself is well-formed).
    const page = writer().uint32((2 << 3) | 2).bytes(new Uint8Array([0x0a, 0x7f, 0x0a, 0x01, 0x61])).finish();
    t.match(failure(t, envelope('PodList', page), 'metadata past its pod'), /metadata: length 127 past the end \(3 bytes left\)/);
  }
  {
    const page = writer().uint32((2 << 3) | 2).fork().uint32((1 << 3) | 2).fork().uint32((1 << 3) | 2).uint32(1000).ldelim().ldelim().finish();
    t.match(failure(t, envelope('PodList', page), 'a name past its metadata'), /malformed protobuf.*index out of range/);
  }
  // A known field with another wire type, field number 0, a group.
  t.match(failure(t, envelope('PodList', writer().uint32((2 << 3) | 0).uint32(5).finish()), 'an item as a varint'), /raw|pod: wire type 0, expected 2/);
  t.match(failure(t, envelope('PodList', writer().uint32((0 << 3) | 0).uint32(5).finish()), 'field 0'), /field number 0/);
  t.match(failure(t, envelope('PodList', writer().uint32((5 << 3) | 3).uint32((5 << 3) | 4).finish()), 'a group'), /wire type 3/);
  t.match(failure(t, envelope('PodList', writer().uint32((5 << 3) | 7).finish()), 'wire type 7'), /wire type 7/);
  // What is not a PodList.
  t.match(failure(t, encodeStatus(410, 'too old'), 'a Status'), /expected a PodList, got a "Status"/);
  t.match(failure(t, envelope('PodList', new Uint8Array(), 'gzip'), 'a content encoding'), /content encoding "gzip"/);
  {
    const pod = writer();
    writePod(pod, 2, { metadata: { name: 'p' }, spec: { containers: [{ name: 'c', readinessProbe: { tcpSocket: { port: 80 } } }] } });
    const bytes = Buffer.from(pod.finish());
    // IntOrString {type: 0, intVal: 80}: its type set to 2.
    const at = bytes.indexOf(Buffer.from([0x08, 0x00, 0x10, 80]));
    t.ok(at > 0, 'found the IntOrString');
    bytes[at + 1] = 0x02;
    t.match(failure(t, envelope('PodList', bytes), 'an IntOrString of type 2'), /IntOrString of type 2/);
  }
  {
    const page = writer();
    writePod(page, 2, { metadata: { name: 'p', deletionTimestamp: '2026-01-01T00:00:00Z' }, spec: { containers: [] } });
    const bytes = Buffer.from(page.finish());
    // A timestamp in the year 300,000: seconds = 2^43.
    const w = writer();
    w.uint32((2 << 3) | 2).fork().uint32((1 << 3) | 2).fork().uint32((1 << 3) | 2).string('p').uint32((9 << 3) | 2).fork().uint32((1 << 3) | 0).int64(2 ** 43).ldelim().ldelim().ldelim();
    t.match(failure(t, envelope('PodList', w.finish()), 'a timestamp out of range'), /deletionTimestamp: \d+ s is out of range/);
    t.ok(decodePodList(envelope('PodList', bytes)).items.length === 1);
  }
});

t.test('any corruption of a good page is a ProtobufError or a page, never another error or a hang', async (t) => {
  const good = encodePodList(PODS, { resourceVersion: '1', continue: 'c' });
  let seed = 12345;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  let errors = 0;
  for (let i = 0; i < 3000; i++) {
    const b = Buffer.from(good);
    for (let k = 0; k <= rand(4); k++) b[4 + rand(b.length - 4)] = rand(256);
    try {
      decodePodList(b);
    } catch (e) {
      if (!(e instanceof ProtobufError)) {
        t.fail(`mutation ${i}: ${String(e)}`);
        return;
      }
      errors++;
    }
  }
  t.ok(errors > 0, `${errors} of 3000 corrupted pages refused`);
});

t.test('a protobuf Status gives its message; anything else gives none', async (t) => {
  t.equal(protobufStatusMessage(encodeStatus(410, 'The provided continue parameter is too old')), 'The provided continue parameter is too old');
  t.equal(protobufStatusMessage(Buffer.from('{"message":"json"}')), undefined);
  t.equal(protobufStatusMessage(Buffer.concat([MAGIC, Buffer.from([0x12, 0x09])])), undefined);
});

t.test('the protobuf media type is recognised with parameters and in any case', async (t) => {
  t.ok(isProtobuf('application/vnd.kubernetes.protobuf'));
  t.ok(isProtobuf('Application/VND.kubernetes.protobuf;stream=watch'));
  t.notOk(isProtobuf('application/json'));
  t.notOk(isProtobuf(undefined));
});

/** Decodes `buf` pushed in pieces of the given sizes (cycled), as listKind reads a streamed body. */
function streamed(buf: Buffer, sizes: readonly number[]): { items: Rec[]; resourceVersion?: string; continue?: string } {
  const d = new PodListDecoder();
  const items: Rec[] = [];
  for (let at = 0, i = 0; at < buf.length; i++) {
    const n = sizes[i % sizes.length]!;
    items.push(...d.push(buf.subarray(at, at + n)));
    at += n;
  }
  return { items, ...d.finish() };
}

t.test('a body pushed in pieces gives the pods and metadata of the whole body, however it is cut', async (t) => {
  const good = encodePodList(PODS, { resourceVersion: '77', continue: 'next' });
  const whole = decodePodList(good);
  t.same(streamed(good, [1]), whole, 'a byte at a time');
  for (let cut = 1; cut < good.length; cut++) {
    const d = new PodListDecoder();
    const items = [...d.push(good.subarray(0, cut)), ...d.push(good.subarray(cut))];
    const r = { items, ...d.finish() };
    if (JSON.stringify(r) !== JSON.stringify(whole)) {
      t.fail(`cut at ${cut}`);
      return;
    }
  }
  t.same(streamed(good, [3, 17, 64]), whole, 'uneven pieces');
  // Pods are handed over as soon as their bytes are in, and the list metadata (written first) before them.
  const d = new PodListDecoder();
  const inLast = good.lastIndexOf(Buffer.from('gone')); // the last pod's name
  t.ok(inLast > 0);
  t.equal(d.push(good.subarray(0, inLast)).length, PODS.length - 1, 'every pod but the one cut');
  t.equal(d.meta.continue, 'next', 'the continue token is known early');
  t.equal(d.push(good.subarray(inLast)).length, 1);
  t.equal(d.finish().resourceVersion, '77');
});

t.test('a body cut short or corrupted is a ProtobufError when pushed in pieces too', async (t) => {
  const good = encodePodList(PODS, { resourceVersion: '1', continue: 'c' });
  for (let n = 0; n < good.length; n += 5) {
    try {
      streamed(good.subarray(0, n), [7]);
      t.fail(`cut at ${n}: no error`);
    } catch (e) {
      if (!(e instanceof ProtobufError)) t.fail(`cut at ${n}: ${String(e)}`);
    }
  }
  t.throws(() => streamed(Buffer.concat([MAGIC, Buffer.from([0x12, 0x05])]), [1]), /raw: length 5 past the end \(0 bytes left\)/);
  t.throws(() => streamed(Buffer.from('{"items":[]}'), [2]), /does not start with the protobuf magic/);
  let seed = 777;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  let errors = 0;
  for (let i = 0; i < 2000; i++) {
    const b = Buffer.from(good);
    for (let k = 0; k <= rand(4); k++) b[4 + rand(b.length - 4)] = rand(256);
    try {
      streamed(b, [1 + rand(40)]);
    } catch (e) {
      if (!(e instanceof ProtobufError)) {
        t.fail(`mutation ${i}: ${String(e)}`);
        return;
      }
      errors++;
    }
  }
  t.ok(errors > 0, `${errors} of 2000 corrupted bodies refused`);
});

t.test('a big pod spread over many pieces is joined once, not at every piece', async (t) => {
  // A pod with 512 KB of annotations, pushed 4 KB at a time (how a TLS socket hands a body over). Joined
  // at every push, its bytes would be copied about 128 times (34 MB); held until its length is there, once.
  const big = { metadata: { name: 'big', namespace: 'ns', annotations: { note: 'x'.repeat(512 * 1024) } }, spec: { containers: [] } };
  const body = encodePodList([big, { metadata: { name: 'small', namespace: 'ns' }, spec: { containers: [] } }], { resourceVersion: '3' });
  const concat = Buffer.concat;
  let copied = 0;
  Buffer.concat = ((list: readonly Uint8Array[], total?: number) => {
    const b = concat(list, total);
    copied += b.length;
    return b;
  }) as typeof Buffer.concat;
  let items: unknown[] = [];
  const d = new PodListDecoder();
  try {
    for (let at = 0; at < body.length; at += 4096) items.push(...d.push(body.subarray(at, at + 4096)));
  } finally {
    Buffer.concat = concat;
  }
  t.same((items as { metadata: { name: string } }[]).map((p) => p.metadata.name), ['big', 'small']);
  t.equal(d.finish().resourceVersion, '3');
  t.ok(copied < 3 * body.length, `bytes copied joining pieces: ${copied}, for a body of ${body.length}`);
});
