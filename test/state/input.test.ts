// Bounded inputs (src/state/io/input.ts) and YAML read as kubectl reads it (src/state/io/yaml.ts):
// devices and oversized files are refused before anything is read, streams stop at their bound,
// and values kubectl would refuse (a label `yes` is a YAML 1.1 boolean) are an input error.

import { mkdtempSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { InputError } from '../../src/core/errors.ts';
import { readManifests } from '../../src/state/io/manifests.ts';
import { checkYamlSize, parseByteSize, readBounded, startsLikeJson, DEFAULT_INPUT_LIMITS } from '../../src/state/io/input.ts';

const dir = mkdtempSync(join(tmpdir(), 'meshguard-input-'));
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

t.test('sizes as Kubernetes quantities', async (t) => {
  t.equal(parseByteSize('--x', '16Mi'), 16 * 1024 * 1024);
  t.equal(parseByteSize('--x', '1Gi'), 1024 ** 3);
  t.equal(parseByteSize('--x', '2k'), 2000);
  t.equal(parseByteSize('--x', '4096'), 4096);
  t.throws(() => parseByteSize('--x', 'lots'), /--x: not a size/);
  t.throws(() => parseByteSize('--x', '10'), /at least 1Ki/);
  t.throws(() => parseByteSize('--x', '-1Mi'), /not a size/);
});

t.test('a file over the bound is refused before it is read', async (t) => {
  const big = join(dir, 'sparse.json');
  writeFileSync(big, '');
  truncateSync(big, 2 * 1024 ** 3); // 2 GiB of holes: reading it would take seconds and 2 GiB
  t.throws(() => readBounded(big, 1024 ** 3), { name: 'InputError', message: /sparse\.json: larger than 1Gi: refused \(raise the bound with --max-input-bytes\)/ });
  t.throws(() => readManifests([big]), /larger than 1Gi/, 'the JSON fast path checks the bound too');
  const small = file('small.yaml', 'x'.repeat(5000));
  t.equal(readBounded(small, 5000).length, 5000, 'exactly at the bound is read');
  t.throws(() => readBounded(small, 4999), /larger than 4999 bytes/, 'one byte over is not');
});

t.test('devices are refused, not read', async (t) => {
  t.throws(() => readBounded('/dev/zero', 1024 ** 3), { name: 'InputError', message: /\/dev\/zero: is a character device, not a file or a pipe/ });
  t.throws(() => readManifests(['/dev/zero']), /character device/);
  t.throws(() => readBounded(join(dir, 'missing.yaml'), 100), /missing\.yaml: cannot read: ENOENT/);
});

t.test('YAML has its own, smaller bound; JSON in a .yaml file does not', async (t) => {
  const limits = { maxBytes: 1024 * 1024, maxYamlBytes: 2048 };
  const items = Array.from({ length: 40 }, (_, i) => `- {apiVersion: v1, kind: Namespace, metadata: {name: ns-${i}}}`).join('\n');
  const yaml = file('big.yaml', `apiVersion: v1\nkind: List\nitems:\n${items}\n`);
  t.throws(() => readManifests([yaml], limits), /big\.yaml: YAML larger than 2Ki: refused/);
  t.equal(readManifests([yaml]).length, 40, 'under the default bound it is read');
  const json = file('big-as-json.yaml', JSON.stringify({ apiVersion: 'v1', kind: 'List', items: Array.from({ length: 40 }, (_, i) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: `ns-${i}` } })) }));
  t.equal(readManifests([json], limits).length, 40, 'JSON is parsed without the YAML bound');
  t.doesNotThrow(() => checkYamlSize('f', DEFAULT_INPUT_LIMITS.maxYamlBytes, DEFAULT_INPUT_LIMITS), 'at the bound');
  t.throws(() => checkYamlSize('f', DEFAULT_INPUT_LIMITS.maxYamlBytes + 1, DEFAULT_INPUT_LIMITS), InputError);
});

t.test('a YAML file over the YAML bound is refused from its first bytes; a large JSON one in .yaml is not', async (t) => {
  const sparse = join(dir, 'huge.yaml');
  writeFileSync(sparse, 'apiVersion: v1\n');
  truncateSync(sparse, 100 * 1024 * 1024);
  t.throws(() => readManifests([sparse]), /huge\.yaml: YAML larger than 16Mi: refused/);
  const limits = { maxBytes: 1024 * 1024, maxYamlBytes: 1024 };
  const json = file('list-as.yaml', '# comment\n' + JSON.stringify({ apiVersion: 'v1', kind: 'List', items: Array.from({ length: 30 }, (_, i) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: `n${i}` } })) }));
  t.equal(readManifests([json], limits).length, 30);
});

t.test('how a stream is told JSON from YAML', async (t) => {
  t.ok(startsLikeJson(Buffer.from('  \n# comment\n{"a":1}')));
  t.ok(startsLikeJson(Buffer.from('[1]')));
  t.ok(startsLikeJson(Buffer.from('\ufeff{')), 'after a byte order mark');
  t.notOk(startsLikeJson(Buffer.from('y\ny\n')));
  t.notOk(startsLikeJson(Buffer.from('# c\napiVersion: v1')));
});

const policyWithLabel = (value: string) => `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: p
  namespace: team-a
  labels:
    enabled: ${value}
spec:
  endpointSelector: {}
`;

t.test('YAML 1.1 as kubectl reads it: unquoted yes/no/on/off/y/n are booleans, and kubectl refuses them as labels', async (t) => {
  for (const v of ['yes', 'y', 'on', 'off', 'No', 'true']) {
    t.throws(() => readManifests([file(`l-${v}.yaml`, policyWithLabel(v))]), {
      name: 'InputError',
      message: new RegExp(`l-${v}\\.yaml:1: .*metadata\\.labels\\.enabled is the boolean (true|false) .*kubectl refuses it.*quote it`),
    }, `label value ${v}`);
  }
  for (const v of ['"yes"', "'on'", 'enabled', 'yes-please']) {
    const [doc] = readManifests([file('ok.yaml', policyWithLabel(v))]);
    t.type((doc!.object.metadata as { labels: Record<string, unknown> }).labels.enabled, 'string', `${v} stays a string`);
  }
  t.throws(() => readManifests([file('n.yaml', policyWithLabel('0755'))]), /metadata\.labels\.enabled is the number 493/, '0755 is octal in YAML 1.1');
});

t.test('other places kubectl wants strings: annotations, ConfigMap data, matchLabels, Service selectors', async (t) => {
  const cm = file('cm.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cilium-config, namespace: kube-system}\ndata:\n  bpf-lb-sock-hostns-only: yes\n');
  t.throws(() => readManifests([cm]), /data\.bpf-lb-sock-hostns-only is the boolean true/);
  const ann = file('ann.yaml', 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  annotations: {owner: on}\n');
  t.throws(() => readManifests([ann]), /metadata\.annotations\.owner is the boolean true/);
  const sel = file('sel.yaml', 'apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p, namespace: a}\nspec:\n  endpointSelector: {}\n  ingress:\n    - fromEndpoints:\n        - matchLabels: {trusted: y}\n');
  t.throws(() => readManifests([sel]), /spec\.ingress\[0\]\.fromEndpoints\[0\]\.matchLabels\.trusted is the boolean true/);
  const svc = file('svc.yaml', 'apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: a}\nspec:\n  selector: {canary: off}\n');
  t.throws(() => readManifests([svc]), /spec\.selector\.canary is the boolean false/);
  // Near miss: the same keys with strings, and a boolean where the API takes one.
  const fine = file('fine.yaml', 'apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: a, labels: {x: "yes"}}\nspec:\n  hostNetwork: yes\n');
  t.equal(readManifests([fine]).length, 1, 'hostNetwork: yes is a boolean field: fine');
  const empty = file('null-label.yaml', 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  labels:\n    team:\n');
  t.equal(readManifests([empty]).length, 1, 'a label with no value (null) is what the API server stores as "": accepted');
  const json = file('bad.json', JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'a', labels: { x: true } } }));
  t.throws(() => readManifests([json]), /metadata\.labels\.x is the boolean true/, 'JSON too');
});
