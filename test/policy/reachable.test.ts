// reachable() and evaluate() share one decision (decideDirection in reachability.ts); evaluate() adds the
// explanation through a tracer. On every query below both must give the same verdict for the connection,
// for its egress side and for its ingress side.

import t, { type Test } from 'tap';

import { evaluate, reachable, TARGET_ENTITIES } from '../../src/policy/reachability.ts';
import type { Protocol, Target } from '../../src/policy/types.ts';
import { loadSnapshot, stateFromObjects } from '../../src/state/snapshot.ts';
import type { ClusterState, Pod, Service } from '../../src/core/objects.ts';
import { generateCluster } from '../../bench/cluster-gen.ts';

const EXAMPLES = new URL('../../examples/cluster', import.meta.url).pathname;
const PORTS: [number, Protocol][] = [[53, 'UDP'], [53, 'TCP'], [80, 'TCP'], [443, 'TCP'], [8080, 'TCP'], [9090, 'TCP'], [15008, 'TCP'], [0, 'TCP']];

function targets(state: ClusterState, pods: readonly Pod[]): Target[] {
  const out: Target[] = pods.map((pod) => ({ type: 'pod', pod }));
  for (const p of pods) if (p.status?.podIP) out.push({ type: 'ip', ip: p.status.podIP });
  for (const s of state.list('Service') as readonly Service[]) if (s.spec.clusterIP && s.spec.clusterIP !== 'None') out.push({ type: 'ip', ip: s.spec.clusterIP });
  for (const n of state.list('Node')) for (const a of (n as { status?: { addresses?: { type: string; address: string }[] } }).status?.addresses ?? []) if (a.type.endsWith('IP')) out.push({ type: 'ip', ip: a.address });
  out.push({ type: 'ip', ip: '8.8.8.8' });
  for (const name of ['api.example.com', 'www.example.com', 'api.example.org']) out.push({ type: 'fqdn', name });
  for (const e of TARGET_ENTITIES) out.push({ type: 'entity', entity: e });
  return out;
}

function compare(t: Test, state: ClusterState, pods: readonly Pod[], label: string): void {
  let queries = 0;
  const mismatches: string[] = [];
  const all = targets(state, pods);
  for (const from of pods) {
    for (const to of all) {
      for (const [port, protocol] of PORTS) {
        const r = evaluate(state, from, to, port, protocol);
        const got = [reachable(state, from, to, port, protocol), reachable(state, from, to, port, protocol, 'egress'), reachable(state, from, to, port, protocol, 'ingress')];
        const want = [r.allowed, r.egress.verdict === 'allowed', r.ingress.verdict === 'allowed'];
        queries++;
        if (got.join() !== want.join() && mismatches.length < 5) {
          mismatches.push(`${from.metadata.namespace}/${from.metadata.name} -> ${JSON.stringify(to.type === 'pod' ? to.pod.metadata.name : to)} ${port}/${protocol}: ${got} vs ${want}`);
        }
      }
    }
  }
  t.same(mismatches, [], `${label}: ${queries} queries agree`);
  t.ok(queries > 1000, `${label}: enough queries (${queries})`);
}

t.test('the example cluster', async (t) => {
  const state = loadSnapshot([EXAMPLES]);
  compare(t, state, state.list('Pod') as readonly Pod[], 'examples/cluster');
});

t.test('the synthetic bench cluster (sidecar, ambient and plain namespaces)', async (t) => {
  const state = stateFromObjects(generateCluster(150));
  const pods = (state.list('Pod') as readonly Pod[]).filter((_, i) => i % 3 === 0);
  compare(t, state, pods, 'bench cluster');
});

t.test('toFQDNs allows, with and without the DNS proxy seeing the lookup', async (t) => {
  const dnsToKubeDns = { toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s:k8s-app': 'kube-dns' } }] };
  const fqdnPolicy = (name: string, namespace: string, withDnsRules: boolean) => ({
    apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name, namespace },
    spec: {
      endpointSelector: {},
      egress: [
        { ...dnsToKubeDns, toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }], ...(withDnsRules ? { rules: { dns: [{ matchPattern: '*.example.com' }] } } : {}) }] },
        { toFQDNs: [{ matchName: 'api.example.com' }, { matchPattern: '*.example.org' }], toPorts: [{ ports: [{ port: '443', protocol: 'TCP' }] }] },
      ],
    },
  });
  const base = loadSnapshot([EXAMPLES]);
  const namespaces = [...new Set((base.list('Pod') as readonly Pod[]).map((p) => p.metadata.namespace ?? ''))].filter((n) => n !== 'kube-system').slice(0, 2);
  t.equal(namespaces.length, 2);
  const state = stateFromObjects([
    ...(base.list('Pod') as unknown[]), ...base.list('Namespace'), ...base.list('Service'), ...base.list('EndpointSlice'), ...base.list('ConfigMap'), ...base.list('Node'),
    fqdnPolicy('fqdn-seen', namespaces[0]!, true),
    fqdnPolicy('fqdn-unseen', namespaces[1]!, false),
  ]);
  const pods = (state.list('Pod') as readonly Pod[]).filter((p) => namespaces.includes(p.metadata.namespace ?? ''));
  compare(t, state, pods, 'toFQDNs');
  // The case the comparison must cover: an FQDN allow that holds only when the proxy sees the lookup.
  const seen = pods.find((p) => p.metadata.namespace === namespaces[0])!;
  const unseen = pods.find((p) => p.metadata.namespace === namespaces[1])!;
  t.equal(reachable(state, seen, { type: 'fqdn', name: 'api.example.com' }, 443, 'TCP'), true, 'allowed: the DNS rules see *.example.com');
  t.equal(reachable(state, unseen, { type: 'fqdn', name: 'api.example.com' }, 443, 'TCP'), false, 'no DNS rules: the proxy never learns the name');
});
