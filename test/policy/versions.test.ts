// Cilium and Istio versions from the state (image tags of the agent pods and istiod), and the
// behaviour gated on them: enableDefaultDeny and endPort need Cilium 1.16, CIDR-selects-nodes 1.15.

import t from 'tap';
import { evaluate } from '../../src/policy/reachability.ts';
import { policySettings } from '../../src/policy/selection.ts';
import { atLeast, clusterVersions, formatVersions, releaseOfImage, SUPPORTED, unsupported } from '../../src/policy/versions.ts';
import { transformObject } from '../../src/state/transform.ts';
import type { Pod } from '../../src/core/objects.ts';
import { baseCluster, cnp, findPod, memoryState, ns, pod } from '../fixtures/cluster.ts';

t.test('releases from image references', async (t) => {
  t.same(releaseOfImage('quay.io/cilium/cilium:v1.16.3@sha256:abcd'), { major: 1, minor: 16, patch: 3 });
  t.same(releaseOfImage('docker.io/istio/pilot:1.24.0-distroless'), { major: 1, minor: 24, patch: 0 });
  t.same(releaseOfImage('registry:5000/cilium/cilium:v1.19'), { major: 1, minor: 19, patch: 0 }, 'a registry port is not a tag');
  t.equal(releaseOfImage('registry:5000/cilium/cilium'), undefined, 'no tag');
  t.equal(releaseOfImage('quay.io/cilium/cilium:latest'), undefined);
  t.equal(releaseOfImage('quay.io/cilium/cilium@sha256:abcd'), undefined, 'digest only');
});

const agent = (name: string, image: string, containerName = 'cilium-agent') => ({
  apiVersion: 'v1', kind: 'Pod',
  metadata: { name, namespace: 'kube-system', labels: { 'k8s-app': 'cilium' } },
  spec: { hostNetwork: true, nodeName: 'node-a', containers: [{ name: containerName, image }] },
  status: { phase: 'Running' },
});

t.test('versions from the state; unknown when it shows none', async (t) => {
  const none = clusterVersions(memoryState(baseCluster()));
  t.same(none, { cilium: { version: 'unknown' }, istio: { version: 'unknown' } });
  t.equal(atLeast(none.cilium, 1, 16), true, 'unknown = the newest behaviour');
  const s = memoryState(baseCluster([
    agent('cilium-1', 'quay.io/cilium/cilium:v1.16.3'),
    agent('cilium-2', 'quay.io/cilium/cilium:v1.15.7'),
    { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'istiod-x', namespace: 'istio-system', labels: { app: 'istiod' } }, spec: { containers: [{ name: 'discovery', image: 'docker.io/istio/pilot:1.27.1' }] }, status: { phase: 'Running' } },
  ] as never));
  const v = clusterVersions(s);
  t.equal(v.cilium.version, '1.15.7', 'mid-upgrade: the oldest agent decides');
  t.same(v.cilium.others, ['1.16.3']);
  t.match(v.cilium.source, /pod kube-system\/cilium-2 container cilium-agent/);
  t.equal(v.istio.version, '1.27.1');
  t.equal(formatVersions(v), 'Cilium 1.15.7 (also 1.16.3), Istio 1.27.1');
});

t.test('supported range', async (t) => {
  const v = (s: string) => ({ version: s, release: releaseOfImage(`x/cilium:v${s}`)! });
  t.equal(unsupported(v('1.14.0'), SUPPORTED.cilium), false);
  t.equal(unsupported(v('1.20.9'), SUPPORTED.cilium), false);
  t.equal(unsupported(v('1.13.4'), SUPPORTED.cilium), true);
  t.equal(unsupported(v('1.21.0'), SUPPORTED.cilium), true);
  t.equal(unsupported({ version: 'unknown' }, SUPPORTED.cilium), false);
});

t.test('the state keeps images of the agent and istiod only', async (t) => {
  const kept = transformObject('Pod', agent('cilium-1', 'quay.io/cilium/cilium:v1.17.0')) as Pod;
  t.equal(kept.spec.containers[0]!.image, 'quay.io/cilium/cilium:v1.17.0');
  const app = transformObject('Pod', { ...pod('shop', 'web', { app: 'web' }), spec: { containers: [{ name: 'app', image: 'nginx:1.27' }] } }) as Pod;
  t.equal(app.spec.containers[0]!.image, undefined, 'an ordinary pod keeps no image');
});

t.test('gates: enableDefaultDeny and endPort from Cilium 1.16, CIDR selecting nodes from 1.15', async (t) => {
  const objs = (image: string | undefined, extra: unknown[] = []) =>
    memoryState(baseCluster([ns('shop'), pod('shop', 'a', { app: 'a' }), pod('shop', 'b', { app: 'b' }), ...(image ? [agent('cilium-1', image)] : []), ...extra] as never, {
      'policy-cidr-match-mode': 'nodes',
    }));
  const audit = cnp('shop', 'audit', { endpointSelector: { matchLabels: { app: 'a' } }, enableDefaultDeny: { egress: false }, egress: [{ toEntities: ['world'] }] });
  const range = cnp('shop', 'range', { endpointSelector: { matchLabels: { app: 'a' } }, egress: [{ toEndpoints: [{}], toPorts: [{ ports: [{ port: '8000', endPort: 8100, protocol: 'TCP' }] }] }] });
  for (const [image, newer] of [[undefined, true], ['quay.io/cilium/cilium:v1.16.0', true], ['quay.io/cilium/cilium:v1.15.9', false]] as const) {
    const label = image ?? 'unknown version';
    t.equal(policySettings(objs(image)).endPortSupported, newer, `${label}: endPort`);
    // enableDefaultDeny: false leaves egress open on 1.16+; before, the field does not exist and the
    // egress section enforces.
    const s = objs(image, [audit]);
    const verdict = (port: number) => evaluate(s, findPod(s, 'shop/a'), { type: 'pod', pod: findPod(s, 'shop/b') }, port, 'TCP').egress.verdict;
    t.equal(verdict(9000), newer ? 'allowed' : 'denied', `${label}: enableDefaultDeny: false ${newer ? 'honoured' : 'ignored'}`);
    // endPort: the range 8000-8100 on 1.16+, port 8000 alone before.
    const r = objs(image, [range]);
    const inRange = (port: number) => evaluate(r, findPod(r, 'shop/a'), { type: 'pod', pod: findPod(r, 'shop/b') }, port, 'TCP').egress.verdict;
    t.equal(inRange(8000), 'allowed', `${label}: the first port of the range`);
    t.equal(inRange(8050), newer ? 'allowed' : 'denied', `${label}: inside the range`);
  }
  t.equal(policySettings(objs('quay.io/cilium/cilium:v1.14.5')).cidrMatchesNodes, false, '1.14: CIDR never selects nodes');
  t.equal(policySettings(objs('quay.io/cilium/cilium:v1.15.0')).cidrMatchesNodes, true, '1.15: policy-cidr-match-mode honoured');
});

t.test('the supported matrix in docs/semantics.md is the one the code gates on', async (t) => {
  const { readFileSync } = await import('node:fs');
  const doc = readFileSync(new URL('../../docs/semantics.md', import.meta.url), 'utf8');
  t.ok(doc.includes(`| Cilium | ${SUPPORTED.cilium.oldest} – ${SUPPORTED.cilium.newest} |`), 'Cilium range');
  t.ok(doc.includes(`| Istio | ${SUPPORTED.istio.oldest} – ${SUPPORTED.istio.newest} |`), 'Istio range');
  // Every release gate of the policy engine is named in the table's Cilium row (each is tested here or
  // in test/policy/truth-tables.test.ts 27 and 33).
  const row = doc.split('\n').find((l) => l.startsWith('| Cilium |')) ?? '';
  for (const gate of ['`policy-default-local-cluster`', '1.19', '`policy-cidr-match-mode: nodes` from 1.15', '`enableDefaultDeny` from 1.16', '`endPort` from 1.16', 'allow-localhost only beside ingress rules from 1.20']) {
    t.ok(row.includes(gate), `the matrix names ${gate}`);
  }
});
