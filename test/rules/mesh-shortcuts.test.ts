// The mesh rules' shortcuts (src/policy/mesh-memo.ts) against a state rebuilt from scratch: for a
// cilium-config change of `enable-policy` alone, only pods whose ingress enforcement changes are judged
// (ingressEnforcementChanged), and istiod's xDS flows are decided once per state where its ingress has no
// element that could tell client classes apart (podSourceIngress). A state built from the objects with the
// change applied is no overlay: there every pod is judged in full, so the findings must be the same.
// Near-misses: an istiod (or ambient pod) with one ingress allow from a namespace selector, a deny on its
// ingress, a host-network client; the counts show the per-class work that is skipped.

import t from 'tap';
import { mutationOf } from '../../src/core/change.ts';
import type { ClusterState, Pod } from '../../src/core/objects.ts';
import type { Rule, RuleContext } from '../../src/core/rule.ts';
import {
  enforcement,
  enforcementChangeScans,
  ingressEnforcementChanged,
  ingressMayAdmitTcp,
  mayAdmitTcpByList,
  mayAdmitTcpChecks,
  podIngressJudgements,
  podSourceIngress,
  plainPodSource,
  reachable,
} from '../../src/policy/index.ts';
import { classifiedPods } from '../../src/policy/classes.ts';
import { rule as meshControlPlane } from '../../src/rules/mesh-control-plane-blocked/index.ts';
import { rule as hbone } from '../../src/rules/hbone-15008-blocked/index.ts';
import { rule as probeSnat } from '../../src/rules/ambient-probe-snat-blocked/index.ts';
import { overlay } from '../../src/state/overlay.ts';
import { baseCluster, ccnp, ciliumConfigMap, cnp, HEALTHY_CILIUM_CONFIG, memoryState, netpol, ns, pod, type Obj } from '../fixtures/cluster.ts';
import { DEFAULT_SETTINGS, makeChange } from './rule-harness.ts';

const ctx: RuleContext = { settings: DEFAULT_SETTINGS };
const RULES: readonly Rule[] = [meshControlPlane, hbone, probeSnat];

/** An ambient pod with an HTTP readiness probe on its app port (the probe SNAT rule judges it). */
function ambientPod(namespace: string, name: string, labels: Record<string, string>): Obj {
  const p = pod(namespace, name, labels, { ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] }) as Obj & { spec: { containers: Record<string, unknown>[] } };
  p.spec.containers[0]!['readinessProbe'] = { httpGet: { port: 8080, path: '/ready' } };
  return p;
}

/** Ambient and sidecar workloads, some with ingress policy (enforced either way), some without. */
function workloads(): Obj[] {
  return [
    ns('amb', { 'istio.io/dataplane-mode': 'ambient' }),
    ns('side', { 'istio-injection': 'enabled', team: 'blue' }),
    ns('plain', { team: 'red' }),
    // No policy: ingress enforced only under `always` (its probes and any HBONE then lost).
    ambientPod('amb', 'open-1', { app: 'open' }),
    // Enforced in both: admits the clients on 8080 only (HBONE cut before and after: not this change's).
    ambientPod('amb', 'web-1', { app: 'web' }),
    cnp('amb', 'web-in', { endpointSelector: { matchLabels: { app: 'web' } }, ingress: [{ fromEndpoints: [{ matchLabels: { app: 'client' } }], toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }] }] }] }),
    // Not enforced under `default` (enableDefaultDeny off), enforced under `always`: an allow on 8080
    // from a namespace selector, not on 15008: HBONE lost under `always`.
    ambientPod('amb', 'half-1', { app: 'half' }),
    cnp('amb', 'half-in', {
      endpointSelector: { matchLabels: { app: 'half' } },
      enableDefaultDeny: { ingress: false },
      ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'amb' } }], toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }] }] }],
    }),
    ambientPod('amb', 'client-1', { app: 'client' }),
    ambientPod('amb', 'client-2', { app: 'client', version: 'v2' }),
    // xDS clients of several classes, in two namespaces.
    pod('side', 'client-1', { app: 'client' }, { sidecar: true }),
    pod('side', 'other-1', { app: 'other' }, { sidecar: true }),
    pod('side', 'client-2', { app: 'client', version: 'v2' }, { sidecar: true }),
    pod('istio-system', 'ztunnel-1', { app: 'ztunnel' }),
    pod('plain', 'gw-1', { app: 'gw' }, { sidecar: false }),
    // A host-network pod on istiod's node (never an xDS client: the rules ask reachable() for it).
    pod('plain', 'host-1', { app: 'host' }, { hostNetwork: true }),
  ];
}

/** istiod's ingress in each case (the near-misses of podSourceIngress and ingressEnforcementChanged). */
const ISTIOD_CASES: Record<string, Obj[]> = {
  'no policy on istiod': [],
  'one ingress allow from a namespace selector (NetworkPolicy)': [
    netpol('istio-system', 'istiod-from-blue', { podSelector: { matchLabels: { app: 'istiod' } }, policyTypes: ['Ingress'], ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'blue' } } }] }] }),
  ],
  'an allow from a namespace selector, not enforcing under default': [
    cnp('istio-system', 'istiod-from-blue', {
      endpointSelector: { matchLabels: { app: 'istiod' } },
      enableDefaultDeny: { ingress: false },
      ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'side' } }], toPorts: [{ ports: [{ port: '15012', protocol: 'TCP' }] }] }],
    }),
  ],
  'a deny on the ingress': [
    ccnp('deny-red-to-istiod', {
      endpointSelector: { matchLabels: { app: 'istiod', 'k8s:io.kubernetes.pod.namespace': 'istio-system' } },
      ingressDeny: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'side', app: 'other' } }] }],
    }),
  ],
};

const CONFIGS: Record<string, [Record<string, string>, Record<string, string>]> = {
  'default -> always': [HEALTHY_CILIUM_CONFIG, { ...HEALTHY_CILIUM_CONFIG, 'enable-policy': 'always' }],
  'always -> default': [{ ...HEALTHY_CILIUM_CONFIG, 'enable-policy': 'always' }, HEALTHY_CILIUM_CONFIG],
  // Not enable-policy alone: no shortcut (every pod judged).
  'default -> always, non-default-deny off': [HEALTHY_CILIUM_CONFIG, { ...HEALTHY_CILIUM_CONFIG, 'enable-policy': 'always', 'enable-non-default-deny-policies': 'false' }],
};

/** The findings of each rule for an UPDATE of cilium-config to `newObject`: after = the overlay, and after rebuilt from scratch. */
function bothWays(objects: Obj[], newObject: Obj): { overlaid: unknown[]; scratch: unknown[]; before: ClusterState; after: ClusterState } {
  const before = memoryState(objects);
  const old = before.get('ConfigMap', newObject.metadata.namespace, newObject.metadata.name);
  const change = makeChange('UPDATE', newObject, old ? { stored: old } : undefined);
  const after = overlay(before, mutationOf(change));
  const rebuilt = memoryState([...objects.filter((o) => !(o.kind === newObject.kind && o.metadata.name === newObject.metadata.name && o.metadata.namespace === newObject.metadata.namespace)), newObject]);
  // A fresh `before` for the scratch run too, so no memo of the first run can answer for it.
  const before2 = memoryState(objects);
  return {
    overlaid: RULES.map((r) => r.evaluate(change, before, after, ctx)),
    scratch: RULES.map((r) => r.evaluate(change, before2, rebuilt, ctx)),
    before,
    after,
  };
}

t.test('cilium-config changes: the overlay (shortcuts) and a state rebuilt from scratch give the same findings', async (t) => {
  let nonEmpty = 0;
  for (const [caseName, istiodObjs] of Object.entries(ISTIOD_CASES)) {
    for (const [configName, [from, to]] of Object.entries(CONFIGS)) {
      const objects = baseCluster([...workloads(), ...istiodObjs], from);
      const { overlaid, scratch } = bothWays(objects, ciliumConfigMap(to));
      t.same(overlaid, scratch, `${caseName}, ${configName}`);
      nonEmpty += (overlaid as unknown[][]).filter((f) => f.length > 0).length;
    }
  }
  // Not a comparison of empty lists: most cases find something (istiod's flows, probes, HBONE).
  t.ok(nonEmpty >= 10, `findings in ${nonEmpty} rule runs`);
});

t.test('default -> always finds the losses the shortcut must not skip', async (t) => {
  const objects = baseCluster(workloads(), HEALTHY_CILIUM_CONFIG);
  const { overlaid } = bothWays(objects, ciliumConfigMap({ ...HEALTHY_CILIUM_CONFIG, 'enable-policy': 'always' }));
  const [mcp, hb, probe] = overlaid as { code: string; victims?: string[]; params?: Record<string, unknown> }[][];
  t.same(mcp!.map((f) => f.code), ['mesh-control-plane-blocked/change-blocks-istiod']);
  // Every xDS client named, in kind order (sidecars, then ztunnel, then the API server).
  t.same(mcp![0]!.params!['clients'], ['side/client-1', 'side/other-1', 'side/client-2', 'istio-system/ztunnel-1', 'kube-apiserver']);
  t.same(mcp![0]!.params!['cut'], ['sidecar:15012', 'ztunnel:15012', 'kube-apiserver:15017']);
  // half-1 (not enforced before): HBONE lost; web-1 (cut before and after): not this change's.
  t.same(hb!.map((f) => f.victims), [['amb/half-1']]);
  // The pods with no policy (and half-1) lose their probes; web-1's were already dropped.
  t.same(probe!.map((f) => f.victims), [['amb/open-1', 'amb/half-1', 'amb/client-1', 'amb/client-2']]);
});

t.test('ingressEnforcementChanged: exactly the pods whose ingress enforcement differs, scanned once per base revision', async (t) => {
  const objects = baseCluster(workloads(), HEALTHY_CILIUM_CONFIG);
  const before = memoryState(objects);
  const change = makeChange('UPDATE', ciliumConfigMap({ ...HEALTHY_CILIUM_CONFIG, 'enable-policy': 'always' }), { stored: before.get('ConfigMap', 'kube-system', 'cilium-config')! });
  const after = overlay(before, mutationOf(change));
  const pods = classifiedPods(after);
  const scans = enforcementChangeScans();
  const changed = ingressEnforcementChanged(before, after, pods);
  const expected = pods.filter((p) => enforcement(before, p, 'ingress').enforced !== enforcement(after, p, 'ingress').enforced);
  t.same(new Set(changed!.map(ref)), new Set(expected.map(ref)));
  t.ok(expected.length > 0 && expected.length < pods.length, 'some pods change, some do not');
  t.equal(enforcementChangeScans(), scans + 1);
  // Another request of the same revision (a new overlay): nothing scanned.
  const again = overlay(before, mutationOf(change));
  t.equal(ingressEnforcementChanged(before, again, classifiedPods(again)), changed);
  t.equal(enforcementChangeScans(), scans + 1, 'the second request judges no class');
  // Any other change: no shortcut.
  const nddOff = makeChange('UPDATE', ciliumConfigMap({ ...HEALTHY_CILIUM_CONFIG, 'enable-policy': 'always', 'enable-non-default-deny-policies': 'false' }), { stored: before.get('ConfigMap', 'kube-system', 'cilium-config')! });
  t.equal(ingressEnforcementChanged(before, overlay(before, mutationOf(nddOff)), pods), undefined);
  const never = makeChange('UPDATE', ciliumConfigMap({ ...HEALTHY_CILIUM_CONFIG, 'enable-policy': 'never' }), { stored: before.get('ConfigMap', 'kube-system', 'cilium-config')! });
  t.equal(ingressEnforcementChanged(before, overlay(before, mutationOf(never)), pods), undefined);
  const policy = makeChange('CREATE', cnp('amb', 'x', { endpointSelector: {}, ingress: [{}] }));
  t.equal(ingressEnforcementChanged(before, overlay(before, mutationOf(policy)), pods), undefined);
  // Not an overlay of `before` (a rebuilt state): no shortcut.
  t.equal(ingressEnforcementChanged(before, memoryState(objects), pods), undefined);
});

t.test('podSourceIngress answers for every pod source exactly when reachable() does the same for each', async (t) => {
  for (const [caseName, istiodObjs] of Object.entries(ISTIOD_CASES)) {
    for (const config of [HEALTHY_CILIUM_CONFIG, { ...HEALTHY_CILIUM_CONFIG, 'enable-policy': 'always' }, { ...HEALTHY_CILIUM_CONFIG, 'enable-policy': 'never' }]) {
      const state = memoryState(baseCluster([...workloads(), ...istiodObjs], config));
      const istiod = state.get('Pod', 'istio-system', 'istiod-1')!;
      for (const port of [15012, 15017]) {
        const any = podSourceIngress(state, istiod, port, 'TCP');
        // An element whose peers select endpoints reads the source: no answer for every source then.
        const readsSource = caseName !== 'no policy on istiod' && config['enable-policy'] !== 'never' && !(caseName.startsWith('an allow') && port === 15017);
        if (readsSource) t.equal(any, undefined, `${caseName}: an ingress element on ${port}, judged per source`);
        if (caseName === 'no policy on istiod') t.not(any, undefined, `no policy: one answer on ${port}`);
        for (const p of state.list('Pod')) {
          const truth = reachable(state, p, { type: 'pod', pod: istiod }, port, 'TCP', 'ingress');
          if (any !== undefined && plainPodSource(p, istiod)) t.equal(any, truth, `${caseName} ${config['enable-policy']}: ${ref(p)} on ${port}`);
        }
      }
    }
  }
  // The host-network pod is no plain source (allow-localhost), nor is istiod itself.
  const state = memoryState(baseCluster(workloads(), { ...HEALTHY_CILIUM_CONFIG, 'enable-policy': 'always' }));
  const istiod = state.get('Pod', 'istio-system', 'istiod-1')!;
  t.notOk(plainPodSource(state.get('Pod', 'plain', 'host-1')!, istiod));
  t.notOk(plainPodSource(istiod, istiod));
  t.ok(plainPodSource(state.get('Pod', 'side', 'client-1')!, istiod));
});

t.test("istiod's flows: decided once per state with no ingress element, per client class otherwise", async (t) => {
  const many: Obj[] = [];
  for (let i = 0; i < 20; i++) many.push(pod('side', `c-${i}`, { app: `c-${i}` }, { sidecar: true }));
  const always = { ...HEALTHY_CILIUM_CONFIG, 'enable-policy': 'always' };
  // No element on istiod: not one class judged on its own, in either state.
  let n = podIngressJudgements();
  const plain = bothWays(baseCluster([...workloads(), ...many], HEALTHY_CILIUM_CONFIG), ciliumConfigMap(always));
  const [mcp] = plain.overlaid as { params?: Record<string, unknown> }[][];
  t.equal(mcp![0]!.params!['clientCount'], 25, '23 sidecars, ztunnel and the API server');
  // The scratch run judges the same way (podSourceIngress reads the state, not the overlay): counted together.
  t.equal(podIngressJudgements() - n, 0, 'no per-class reachable() call');
  // One allow from a namespace selector: every class (24 client classes, before and after) on its own.
  n = podIngressJudgements();
  const nearMiss = bothWays(baseCluster([...workloads(), ...many, ...ISTIOD_CASES['an allow from a namespace selector, not enforcing under default']!], HEALTHY_CILIUM_CONFIG), ciliumConfigMap(always));
  t.same(nearMiss.overlaid, nearMiss.scratch);
  t.ok(podIngressJudgements() - n >= 2 * 24, `${podIngressJudgements() - n} per-class calls`);
  const [cut] = nearMiss.overlaid as { params?: Record<string, unknown> }[][];
  // Only the xDS clients outside namespace `side` are cut: ztunnel (the API server, on istiod's node,
  // still gets in as the local host: istiod's policy has an ingress section).
  t.same(cut![0]!.params!['clients'], ['istio-system/ztunnel-1']);
});

t.test('a policy on istiod: per class where it has elements, and the same findings as a rebuilt state', async (t) => {
  const objects = baseCluster(workloads(), HEALTHY_CILIUM_CONFIG);
  for (const policy of [
    ...ISTIOD_CASES['one ingress allow from a namespace selector (NetworkPolicy)']!,
    ...ISTIOD_CASES['a deny on the ingress']!,
    cnp('istio-system', 'istiod-closed', { endpointSelector: { matchLabels: { app: 'istiod' } }, ingress: [{}] }),
  ]) {
    const before = memoryState(objects);
    const change = makeChange('CREATE', policy);
    const after = overlay(before, mutationOf(change));
    const rebuilt = memoryState([...objects, policy]);
    for (const r of RULES) t.same(r.evaluate(change, before, after, ctx), r.evaluate(change, memoryState(objects), rebuilt, ctx), `${policy.metadata.name}: ${r.id}`);
  }
});

/** Ambient destinations in three namespaces and a namespace `legacy` outside the mesh, to be relabelled. */
function relabelCluster(extra: Obj[] = []): Obj[] {
  const out: Obj[] = [ns('legacy', { team: 'green' })];
  out.push(pod('legacy', 'caller-1', { app: 'caller' }), pod('legacy', 'caller-2', { app: 'caller', version: 'v2' }));
  for (const n of ['d1', 'd2', 'd3']) {
    out.push(ns(n, { 'istio.io/dataplane-mode': 'ambient' }));
    // Two classes per app with the same selecting models (equal lists, distinct arrays).
    for (const app of ['web', 'api']) for (const v of ['v1', 'v2']) out.push(ambientPod(n, `${app}-${v}`, { app, version: v }));
    // Admits nothing from legacy: its own namespace only.
    out.push(cnp(n, 'own-ns', { endpointSelector: {}, ingress: [{ fromEndpoints: [{}] }] }));
  }
  // Near-miss: d2's web admits legacy by a namespace selector on 8080 only (not 15008): the relabel into
  // ambient cuts legacy's callers off from it.
  out.push(netpol('d2', 'web-from-green', { podSelector: { matchLabels: { app: 'web' } }, policyTypes: ['Ingress'], ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'green' } } }], ports: [{ port: 8080, protocol: 'TCP' }] }] }));
  return [...out, ...extra];
}

t.test('a Namespace relabel: the ambient pods elsewhere, once per selecting list, as a rebuilt state finds them', async (t) => {
  const cases: Record<string, Obj[]> = {
    'a namespace selector admits legacy': [],
    // A host-network pod in legacy (not a mesh peer: not a source of the scan).
    'a host-network caller': [pod('legacy', 'host-caller', { app: 'hc' }, { hostNetwork: true, sidecar: false })],
    // A deny on d2's ingress from legacy: no cut-off to report there.
    'a deny from legacy': [ccnp('deny-green', { endpointSelector: { matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'd2' } }, ingressDeny: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'legacy' } }] }] })],
  };
  let found = 0;
  for (const [name, extra] of Object.entries(cases)) {
    const objects = baseCluster(relabelCluster(extra));
    const before = memoryState(objects);
    const relabelled = ns('legacy', { team: 'green', 'istio.io/dataplane-mode': 'ambient' });
    const change = makeChange('UPDATE', relabelled, { stored: before.get('Namespace', undefined, 'legacy')! });
    const after = overlay(before, mutationOf(change));
    const n = mayAdmitTcpChecks();
    const overlaid = hbone.evaluate(change, before, after, ctx);
    const checks = mayAdmitTcpChecks() - n;
    const rebuilt = memoryState([...objects.filter((o) => !(o.kind === 'Namespace' && o.metadata.name === 'legacy')), relabelled]);
    t.same(overlaid, hbone.evaluate(change, memoryState(objects), rebuilt, ctx), name);
    found += overlaid.length;
    // 12 ambient destination classes (3 namespaces x 2 apps x 2 versions), 4 distinct selecting lists
    // by content (d1's and d3's pods: own-ns alone; d2: own-ns, and own-ns with web-from-green). A
    // host-network pod is never a mesh source (never enrolled): the callers stay pod-network pods.
    t.equal(checks, 4, `${name}: ${checks} ingress checks`);
  }
  t.equal(found, 2, 'the cut-off is found (not with the deny)');
});

t.test('mayAdmitTcpByList: host-network sources and other pairs of states are asked one by one, with the same answers', async (t) => {
  const objects = baseCluster(relabelCluster());
  const before = memoryState(objects);
  const relabelled = ns('legacy', { team: 'green', 'istio.io/dataplane-mode': 'ambient' });
  const after = overlay(before, mutationOf(makeChange('UPDATE', relabelled, { stored: before.get('Namespace', undefined, 'legacy')! })));
  const dests = after.list('Pod').filter((p) => p.metadata.namespace?.startsWith('d'));
  const host = { ...after.get('Pod', 'legacy', 'caller-1')!, spec: { ...after.get('Pod', 'legacy', 'caller-1')!.spec, hostNetwork: true } } as Pod;
  for (const [name, sources, b, perList] of [
    ['pod-network callers', after.list('Pod', 'legacy'), before, true],
    ['a host-network caller', [host], before, false],
    ['not an overlay of before', after.list('Pod', 'legacy'), memoryState(objects), false],
  ] as const) {
    const n = mayAdmitTcpChecks();
    const may = mayAdmitTcpByList(b, after, 'legacy', sources);
    for (const d of dests) t.equal(may(d), ingressMayAdmitTcp(after, sources, d), `${name}: ${ref(d)}`);
    t.equal(mayAdmitTcpChecks() - n, perList ? 4 : dests.length, `${name}: checks`);
  }
});

function ref(p: Pod): string {
  return `${p.metadata.namespace}/${p.metadata.name}`;
}
