// One long-lived MemoryState mutated in place between decisions (as the server's informers do), against
// a fresh process's answer: each decision is compared with the decision of the same request on a state
// built from scratch (cloned objects, so no memo keyed by an object, an array or a revision can answer
// for it) and a fresh createDecide. The per-revision tables, the plans kept per classes array and key
// function, and the answers kept per content token or per namespace must all follow the mutations: pods
// added, removed and relabelled, Namespaces relabelled, policies created and deleted, cilium-config
// flipped, the API server's EndpointSlice and the Nodes changed, a namespace's pods all gone and back;
// between them, reviews cut by the budget, warm-up requests and audits of stored objects on the live
// state. Deterministic seeds; a few hundred steps.

import t from 'tap';
import type { Test } from 'tap';
import type { KubeObject } from '../../src/core/objects.ts';
import type { Rule } from '../../src/core/rule.ts';
import { kindOf } from '../../src/core/kinds.ts';
import type { MemoryState } from '../../src/state/store.ts';
import { defaultConfig } from '../../src/config/config.ts';
import { allRules } from '../../src/rules/registry.ts';
import { auditObject } from '../../src/verdict/audit.ts';
import { createDecide } from '../../src/verdict/decide.ts';
import { tableSteps, warmUpChanges } from '../../src/verdict/warmup.ts';
import { baseCluster, ccnp, ciliumConfigMap, cnp, HEALTHY_CILIUM_CONFIG, memoryState, netpol, ns, pod, type Obj } from '../fixtures/cluster.ts';
import { inRequestScope } from '../../src/state/request-scope.ts';
import { policiesSelecting } from '../../src/policy/selection.ts';
import { policyModel } from '../../src/policy/model.ts';
import type { KindName } from '../../src/core/kinds.ts';
import { makeChange } from '../rules/rule-harness.ts';
import { prng } from '../../bench/cluster-gen.ts';


const NAMESPACES = ['a', 'b', 'c'];
const APPS = ['web', 'db', 'api'];
const NODES: Record<string, string> = { 'node-a': '192.168.0.10', 'node-b': '192.168.0.11' };

const dnsPeer = { toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s-app': 'kube-dns' } }] };
const dnsPorts = (proxy: boolean) => [{ ports: [{ port: '53', protocol: 'ANY' }], ...(proxy ? { rules: { dns: [{ matchPattern: '*' }] } } : {}) }];

class Gen {
  readonly r: () => number;
  n = 0;
  /** Also the churn of a live cluster (see churn()): off for the first seeds, whose sequences stay as they were. */
  readonly churn: boolean;
  constructor(seed: number, churn = false) {
    this.r = prng(seed);
    this.churn = churn;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.r() * xs.length)]!;
  }
  chance(p: number): boolean {
    return this.r() < p;
  }
  selector(): Record<string, unknown> {
    return this.pick([{}, { matchLabels: { app: this.pick(APPS) } }, { matchLabels: { team: this.pick(['x', 'y']) } }]);
  }
  egressRule(): Record<string, unknown> {
    switch (Math.floor(this.r() * 14)) {
      case 0: return { ...dnsPeer, toPorts: dnsPorts(this.chance(0.5)) };
      case 1: return { toEntities: [this.pick(['cluster', 'all', 'world', 'host', 'remote-node', 'kube-apiserver'])] };
      case 2: return { toEndpoints: [{ matchLabels: { app: this.pick(APPS) } }] };
      case 3: return { toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': this.pick([...NAMESPACES, 'kube-system']) } }] };
      case 4: return { toCIDR: [this.pick(['192.168.0.10/32', '192.168.0.0/16', '10.96.0.1/32', '0.0.0.0/0'])] };
      case 5: return { toFQDNs: [{ matchName: 'example.com' }] };
      case 6: return { toEntities: ['kube-apiserver'], toPorts: [{ ports: [{ port: this.pick(['6443', '443']), protocol: 'TCP' }] }] };
      case 7: return { toEndpoints: [{ matchLabels: { 'k8s:io.cilium.k8s.namespace.labels.team': this.pick(['x', 'y']) } }] };
      case 8: return { toEndpoints: [{}] };
      case 9: return { toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'istio-system', app: 'istiod' } }], toPorts: [{ ports: [{ port: '15012', protocol: 'TCP' }] }] };
      case 10: return { toEndpoints: [{ matchLabels: { app: this.pick(APPS) } }], toRequires: [{ matchLabels: { team: this.pick(['x', 'y']) } }] };
      case 11: return { toCIDRSet: [{ cidr: '192.168.0.0/16', except: [this.pick(['192.168.0.10/32', '192.168.0.11/32'])] }], toPorts: [{ ports: [{ port: '6443', protocol: 'TCP' }] }] };
      case 12: return { toEntities: ['cluster'], toPorts: [{ ports: [{ port: '53', protocol: 'UDP' }] }] };
      default: return { toServices: [{ k8sService: { serviceName: this.pick(this.churn ? ['kubernetes', 'kube-dns', 'ext-dns'] : ['kubernetes', 'kube-dns']), namespace: this.pick(['default', 'kube-system']) } }] };
    }
  }
  ingressRule(): Record<string, unknown> {
    switch (Math.floor(this.r() * 8)) {
      case 5: return { fromEndpoints: [{ matchLabels: { app: this.pick(APPS) } }], fromRequires: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': this.pick(NAMESPACES) } }] };
      case 6: return { fromEntities: ['cluster'], toPorts: [{ ports: [{ port: this.pick(['15008', '15012', '53']), protocol: this.pick(['TCP', 'ANY', 'UDP']) }] }] };
      case 7: return { fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system' } }], fromCIDRSet: [{ cidr: '192.168.0.0/16', except: ['192.168.0.10/32'] }] };
      case 0: return { fromEntities: [this.pick(['cluster', 'all', 'world', 'host', 'remote-node', 'kube-apiserver'])] };
      case 1: return { fromEndpoints: [{ matchLabels: { app: this.pick(APPS) } }] };
      case 2: return { fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': this.pick(NAMESPACES) } }] };
      case 3: return { fromCIDR: ['192.168.0.0/16'] };
      default: return { fromEndpoints: [{}], toPorts: [{ ports: [{ port: this.pick(['53', '15012', '15008', '8080']), protocol: 'TCP' }] }] };
    }
  }
  ciliumSpec(clusterwide: boolean): Record<string, unknown> {
    let endpointSelector = this.selector();
    if (clusterwide && this.chance(0.3)) endpointSelector = { matchLabels: { 'k8s:io.kubernetes.pod.namespace': this.pick(['kube-system', 'istio-system', ...NAMESPACES]) } };
    if (clusterwide && this.chance(0.2)) endpointSelector = { matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'istio-system', app: 'istiod' } };
    if (clusterwide && this.chance(0.15)) endpointSelector = { matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s-app': 'kube-dns' } };
    const spec: Record<string, unknown> = { endpointSelector };
    const parts = this.pick(['egress', 'ingress', 'both', 'egressDeny', 'ingressDeny', 'empty-egress']);
    if (parts === 'egress' || parts === 'both') spec['egress'] = Array.from({ length: 1 + Math.floor(this.r() * 2) }, () => this.egressRule());
    if (parts === 'ingress' || parts === 'both') spec['ingress'] = [this.ingressRule()];
    if (parts === 'egressDeny') spec['egressDeny'] = [this.pick([{ toEntities: ['kube-apiserver'] }, { toEntities: ['world'] }, { ...dnsPeer }, { toCIDR: ['192.168.0.10/32'] }])];
    if (parts === 'ingressDeny') spec['ingressDeny'] = [this.pick([{ fromEntities: ['cluster'] }, { fromEndpoints: [{ matchLabels: { app: this.pick(APPS) } }] }])];
    if (parts === 'empty-egress') spec['egress'] = [{}];
    if (this.chance(0.15)) spec['enableDefaultDeny'] = { egress: false, ingress: false };
    return spec;
  }
  policy(): Obj {
    const name = `p${this.n++}`;
    const kind = this.pick(['cnp', 'cnp', 'ccnp', 'netpol']);
    if (kind === 'ccnp') {
      return this.chance(0.2) ? ccnp(name, { specs: [this.ciliumSpec(true), this.ciliumSpec(true)] }) : ccnp(name, this.ciliumSpec(true));
    }
    const namespace = this.pick([...NAMESPACES, 'kube-system', 'istio-system']);
    if (kind === 'cnp') return cnp(namespace, name, this.ciliumSpec(false));
    const types = this.pick([['Egress'], ['Ingress'], ['Ingress', 'Egress']]);
    const spec: Record<string, unknown> = { podSelector: this.selector(), policyTypes: types };
    if (types.includes('Egress')) {
      spec['egress'] = this.pick([
        [],
        [{ to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }], ports: [{ port: 53, protocol: 'UDP' }] }],
        [{ to: [{ ipBlock: { cidr: this.pick(['192.168.0.0/16', '192.168.0.10/32', '0.0.0.0/0']) } }] }],
        [{ to: [{ podSelector: {} }] }],
        [{ to: [{ namespaceSelector: { matchLabels: { team: this.pick(['x', 'y']) } } }] }],
      ]);
    }
    if (types.includes('Ingress')) spec['ingress'] = this.pick([[], [{ from: [{ namespaceSelector: {} }] }], [{ from: [{ podSelector: { matchLabels: { app: this.pick(APPS) } } }] }]]);
    return netpol(namespace, name, spec);
  }
  pod(): Obj {
    const namespace = this.pick([...NAMESPACES, 'kube-system']);
    const labels: Record<string, string> = { app: this.pick(APPS) };
    if (this.chance(0.4)) labels['team'] = this.pick(['x', 'y']);
    const hostNetwork = this.chance(0.12);
    const node = this.pick(Object.keys(NODES));
    const p = pod(namespace, `pod${this.n++}`, labels, {
      hostNetwork,
      sidecar: this.chance(0.3),
      ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
      ...(hostNetwork ? { ip: NODES[node]! } : {}),
    }) as Obj & { spec: Record<string, unknown>; status: Record<string, unknown> };
    p.spec['nodeName'] = node;
    p.status['hostIP'] = NODES[node];
    if (this.chance(0.1)) p.status['phase'] = 'Succeeded';
    if (this.chance(0.05)) delete p.status['podIP'];
    if (this.chance(0.3)) (p.spec['containers'] as Record<string, unknown>[])[0]!['readinessProbe'] = { httpGet: { port: 8080, path: '/ready' } };
    return p;
  }
  namespace(name: string): Obj {
    const labels: Record<string, string> = {};
    if (this.chance(0.5)) labels['team'] = this.pick(['x', 'y']);
    const mode = this.pick(['none', 'ambient', 'sidecar']);
    if (mode === 'ambient') labels['istio.io/dataplane-mode'] = 'ambient';
    if (mode === 'sidecar') labels['istio-injection'] = 'enabled';
    return ns(name, labels);
  }
  ciliumConfig(): Obj {
    const data: Record<string, string> = { ...HEALTHY_CILIUM_CONFIG };
    data['enable-policy'] = this.pick(['default', 'default', 'always', 'never']);
    if (this.chance(0.3)) data['policy-cidr-match-mode'] = 'nodes';
    if (this.chance(0.15)) data['enable-l7-proxy'] = 'false';
    if (this.chance(0.15)) data['enable-non-default-deny-policies'] = 'false';
    return ciliumConfigMap(data);
  }
}

const keyOf = (o: Obj): string => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;

/** The cluster as a map of objects, and the live state mirroring it. */
class World {
  readonly objs = new Map<string, Obj>();
  readonly live: MemoryState;
  constructor(objects: Obj[]) {
    for (const o of objects) this.objs.set(keyOf(o), o);
    this.live = memoryState(objects.map((o) => structuredClone(o)));
  }
  put(o: Obj): void {
    this.objs.set(keyOf(o), o);
    this.live.upsert(kindOf(o as unknown as KubeObject)!, structuredClone(o) as unknown as KubeObject);
  }
  drop(o: Obj): void {
    this.objs.delete(keyOf(o));
    this.live.remove(kindOf(o as unknown as KubeObject)!, o.metadata.namespace, o.metadata.name);
  }
  /** The same objects, cloned, in the order the live state lists them (the order of victims follows it). */
  /** A fresh state with `req` applied as plain objects (no overlay: no shortcut reads a delta). */
  applied(req: Req): MemoryState {
    const objs = new Map(this.objs);
    if (req.op === 'DELETE') objs.delete(keyOf(req.old!));
    else objs.set(keyOf(req.object!), req.object!);
    return memoryState([...objs.values()].map((o) => structuredClone(o)));
  }
  fresh(): MemoryState {
    const kinds = [...new Set([...this.objs.values()].map((o) => kindOf(o as unknown as KubeObject)!))];
    const objects = kinds.flatMap((k) => this.live.list(k)).map((o) => structuredClone(o));
    if (objects.length !== this.objs.size) throw new Error('the live state lost track of the objects');
    return memoryState(objects as KubeObject[]);
  }
  ofKind(kinds: string[]): Obj[] {
    return [...this.objs.values()].filter((o) => kinds.includes(o.kind));
  }
}

const POLICY_KINDS = ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy', 'NetworkPolicy'];

interface Req {
  op: 'CREATE' | 'UPDATE' | 'DELETE';
  object?: Obj;
  old?: Obj;
  label: string;
}

function randomRequest(g: Gen, w: World): Req {
  const policies = w.ofKind(POLICY_KINDS);
  switch (Math.floor(g.r() * 9)) {
    case 0:
    case 1: {
      const p = g.policy();
      return { op: 'CREATE', object: p, label: `CREATE ${keyOf(p)} ${JSON.stringify(p['spec'])}` };
    }
    case 2: {
      if (policies.length === 0) return randomRequest(g, w);
      const old = g.pick(policies);
      return { op: 'DELETE', old, label: `DELETE ${keyOf(old)}` };
    }
    case 3: {
      if (policies.length === 0) return randomRequest(g, w);
      const old = g.pick(policies);
      const fresh = g.policy();
      const object = { ...fresh, kind: old.kind, apiVersion: old.apiVersion, metadata: { ...old.metadata } } as Obj;
      if (old.kind !== fresh.kind) return { op: 'DELETE', old, label: `DELETE ${keyOf(old)}` };
      return { op: 'UPDATE', object, old, label: `UPDATE ${keyOf(old)} -> ${JSON.stringify(object['spec'])}` };
    }
    case 4: {
      const old = w.objs.get('ConfigMap/kube-system/cilium-config')!;
      const object = g.ciliumConfig();
      return { op: 'UPDATE', object, old, label: `UPDATE cilium-config ${JSON.stringify(object['data'])}` };
    }
    case 7: {
      // enable-policy alone (the mesh rules' ingressEnforcementChanged shortcut).
      const old = w.objs.get('ConfigMap/kube-system/cilium-config')!;
      const data = { ...(old['data'] as Record<string, string>), 'enable-policy': g.pick(['default', 'always', 'never']) };
      const object = ciliumConfigMap(data);
      return { op: 'UPDATE', object, old, label: `UPDATE cilium-config enable-policy=${data['enable-policy']}` };
    }
    case 8: {
      // A pod relabelled by its owner (an UPDATE of a stored pod). (Not one of namespaceEvent's.)
      const pods = w.ofKind(['Pod']).filter((p) => p.metadata.namespace !== EXTRA_NAMESPACE);
      const old = g.pick(pods);
      const object = structuredClone(old);
      object.metadata['labels'] = { ...(old.metadata['labels'] as Record<string, string>), app: g.pick(APPS) };
      return { op: 'UPDATE', object, old, label: `UPDATE ${keyOf(old)} labels` };
    }
    case 5: {
      const name = g.pick([...NAMESPACES, 'kube-system', 'istio-system']);
      const old = w.objs.get(`Namespace//${name}`)!;
      const object = g.namespace(name);
      return { op: 'UPDATE', object, old, label: `UPDATE Namespace ${name} ${JSON.stringify(object.metadata.labels)}` };
    }
    default: {
      const p = g.pod();
      return { op: 'CREATE', object: p, label: `CREATE pod ${keyOf(p)}` };
    }
  }
}

/**
 * A selector-less Service in kube-system (a toServices peer reads its EndpointSlice) and that slice,
 * listing a CoreDNS pod's address: the churn seeds' extra objects.
 */
function extDns(addr: string): Obj[] {
  return [
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'ext-dns', namespace: 'kube-system' }, spec: { clusterIP: '10.96.0.53', ports: [{ port: 53, protocol: 'UDP' }] } } as Obj,
    extSlice([addr]),
  ];
}
const extSlice = (addrs: string[]): Obj =>
  ({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'ext-dns-1', namespace: 'kube-system', labels: { 'kubernetes.io/service-name': 'ext-dns' } }, addressType: 'IPv4', endpoints: addrs.map((a) => ({ addresses: [a] })), ports: [{ port: 53, protocol: 'UDP' }] }) as Obj;

/**
 * What a live cluster changes most, on the objects the per-class tables kept across pod events read by
 * name (src/policy/memo.ts keptAcrossPodEvents) and beside them: a pod copied into an existing class, the
 * selector-less Service's slice, kube-dns's own slice (never read), and the CoreDNS backends relabelled,
 * added and removed.
 */
function churn(g: Gen, w: World): string {
  const pods = w.ofKind(['Pod']).filter((p) => p.metadata.name.startsWith('pod'));
  switch (Math.floor(g.r() * 5)) {
    case 0: {
      if (pods.length === 0) return 'noop';
      const p = structuredClone(g.pick(pods)) as Obj & { spec: Record<string, unknown>; status: Record<string, unknown> };
      p.metadata['name'] = `pod${g.n++}`;
      if (p.status['podIP'] !== undefined && p.spec['hostNetwork'] !== true) p.status['podIP'] = `10.0.4.${g.n % 250}`;
      w.put(p);
      return `copy into ${keyOf(p)}`;
    }
    case 1: {
      const dns = w.ofKind(['Pod']).filter((p) => p.metadata.namespace === 'kube-system' && p.metadata.name.startsWith('coredns'));
      const addrs = dns.map((p) => (p as unknown as { status: Record<string, string> }).status['podIP']!).filter((a) => a !== undefined);
      const slice = extSlice(g.chance(0.3) ? ['10.0.9.9'] : [g.pick(addrs.length > 0 ? addrs : ['10.0.9.9'])]);
      w.put(slice);
      return `ext-dns slice -> ${JSON.stringify((slice as Record<string, unknown>)['endpoints'])}`;
    }
    case 2: {
      const slice = { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'kube-dns-x', namespace: 'kube-system', labels: { 'kubernetes.io/service-name': 'kube-dns' } }, addressType: 'IPv4', endpoints: [{ addresses: [`10.0.8.${g.n++ % 250}`] }], ports: [{ name: 'dns', port: 53, protocol: 'UDP' }] } as Obj;
      w.put(slice);
      return 'kube-dns slice';
    }
    case 3: {
      // A backend relabelled: DNS egress policies of the random ones select k8s-app=kube-dns (and the
      // variant label makes it a separate target pod).
      const c = structuredClone(w.objs.get('Pod/kube-system/coredns-1')!);
      c.metadata['labels'] = g.chance(0.5) ? { 'k8s-app': 'kube-dns', variant: g.pick(['b', 'c']) } : { 'k8s-app': g.pick(['kube-dns', 'other-dns']) };
      w.put(c);
      return `coredns-1 labels ${JSON.stringify(c.metadata['labels'])}`;
    }
    default: {
      const extra = pod('kube-system', 'coredns-3', { 'k8s-app': 'kube-dns', variant: 'b' }, { sa: 'coredns', ports: [{ name: 'dns', containerPort: 53, protocol: 'UDP' }, { name: 'dns-tcp', containerPort: 53, protocol: 'TCP' }] });
      if (w.objs.has('Pod/kube-system/coredns-3')) {
        w.drop(extra);
        return 'remove coredns-3';
      }
      w.put(extra);
      return 'add coredns-3';
    }
  }
}

function mutate(g: Gen, w: World): string {
  if (g.churn && g.chance(0.4)) return churn(g, w);
  const pods = w.ofKind(['Pod']).filter((p) => p.metadata.name.startsWith('pod'));
  const policies = w.ofKind(POLICY_KINDS);
  switch (Math.floor(g.r() * 15)) {
    case 14: {
      // RBAC: which pods use the API server (a RoleBinding of a namespace's default account, or a
      // ClusterRoleBinding of a namespace's every account), put or taken away.
      const namespace = g.pick(NAMESPACES);
      const rb = g.chance(0.5)
        ? ({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'reader', namespace }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' }, subjects: [{ kind: 'ServiceAccount', name: 'default' }] } as Obj)
        : ({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: `all-${namespace}` }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' }, subjects: [{ kind: 'Group', name: `system:serviceaccounts:${namespace}` }] } as Obj);
      if (w.objs.has(keyOf(rb))) {
        w.drop(rb);
        return `remove ${keyOf(rb)}`;
      }
      w.put(rb);
      return `put ${keyOf(rb)}`;
    }
    case 10: {
      // A pod rescheduled under the same name (another node, another IP).
      if (pods.length === 0) return 'noop';
      const p = structuredClone(g.pick(pods)) as Obj & { spec: Record<string, unknown>; status: Record<string, unknown> };
      const node: string = p.spec['nodeName'] === 'node-a' ? 'node-b' : 'node-a';
      p.spec['nodeName'] = node;
      p.status['hostIP'] = NODES[node];
      p.status['podIP'] = p.spec['hostNetwork'] === true ? NODES[node] : `10.0.2.${g.n++ % 250}`;
      w.put(p);
      return `move ${keyOf(p)} to ${node}`;
    }
    case 11: {
      // A DNS backend in the host network (the DNS class key then reads the node), or back.
      const c = structuredClone(w.objs.get('Pod/kube-system/coredns-2')!) as Obj & { spec: Record<string, unknown>; status: Record<string, unknown> };
      const host = g.chance(0.5);
      c.spec['hostNetwork'] = host;
      c.spec['nodeName'] = 'node-b';
      c.status['hostIP'] = NODES['node-b'];
      c.status['podIP'] = host ? NODES['node-b'] : '10.0.3.2';
      w.put(c);
      return `coredns-2 hostNetwork=${host}`;
    }
    case 12: {
      // A second istiod, or none but the first.
      const extra = pod('istio-system', 'istiod-2', { app: 'istiod', istio: 'pilot' }, { sa: 'istiod', ports: [{ containerPort: 15017 }, { containerPort: 15012 }] }) as Obj & { spec: Record<string, unknown> };
      extra.spec['nodeName'] = g.pick(Object.keys(NODES));
      if (w.objs.has('Pod/istio-system/istiod-2')) {
        w.drop(extra);
        return 'remove istiod-2';
      }
      w.put(extra);
      return 'add istiod-2';
    }
    case 13: {
      // A pod that stops running (or loses its IP).
      if (pods.length === 0) return 'noop';
      const p = structuredClone(g.pick(pods)) as Obj & { status: Record<string, unknown> };
      if (g.chance(0.5)) p.status['phase'] = g.pick(['Succeeded', 'Failed', 'Pending', 'Running']);
      else delete p.status['podIP'];
      w.put(p);
      return `status of ${keyOf(p)}`;
    }
    case 0:
    case 1: {
      const p = g.pod();
      w.put(p);
      return `add ${keyOf(p)}`;
    }
    case 2: {
      if (pods.length === 0) return 'noop';
      const p = g.pick(pods);
      w.drop(p);
      return `remove ${keyOf(p)}`;
    }
    case 3: {
      if (pods.length === 0) return 'noop';
      const p = structuredClone(g.pick(pods));
      p.metadata['labels'] = { app: g.pick(APPS), ...(g.chance(0.5) ? { team: g.pick(['x', 'y']) } : {}) };
      w.put(p);
      return `relabel ${keyOf(p)}`;
    }
    case 4: {
      const name = g.pick([...NAMESPACES, 'kube-system', 'istio-system']);
      w.put(g.namespace(name));
      return `relabel Namespace ${name}`;
    }
    case 5: {
      const p = g.policy();
      w.put(p);
      return `create ${keyOf(p)}`;
    }
    case 6: {
      if (policies.length === 0) return 'noop';
      const p = g.pick(policies);
      w.drop(p);
      return `delete ${keyOf(p)}`;
    }
    case 7: {
      w.put(g.ciliumConfig());
      return 'cilium-config';
    }
    case 8: {
      const addr = g.pick(['192.168.0.10', '192.168.0.11', '10.0.5.5']);
      const slice = structuredClone(w.objs.get('EndpointSlice/default/kubernetes')!);
      (slice as Record<string, unknown>)['endpoints'] = [{ addresses: [addr] }];
      (slice as Record<string, unknown>)['ports'] = [{ name: 'https', port: g.pick([6443, 443]), protocol: 'TCP' }];
      w.put(slice);
      return `EndpointSlice -> ${addr}`;
    }
    default: {
      const name = g.pick(Object.keys(NODES));
      const addr = g.chance(0.5) ? NODES[name]! : '192.168.0.99';
      w.put({ apiVersion: 'v1', kind: 'Node', metadata: { name }, status: { addresses: [{ type: 'InternalIP', address: addr }] } } as Obj);
      return `Node ${name} -> ${addr}`;
    }
  }
}

/** The namespace whose pods come and go all at once (namespaceEvent); it has no Namespace object. */
const EXTRA_NAMESPACE = 'd';

/**
 * A pod in a namespace that had none, or every pod of that namespace gone (its bucket dropped, and added
 * again after the others): whole-cluster data kept per namespace (policy/classes.ts segmentsOf, the xDS
 * clients per namespace) must follow namespaces that appear and disappear. Driven by a random stream of
 * its own, so that the other mutations and requests of a seed stay what they were.
 */
function namespaceEvent(g: Gen, w: World): string {
  const pods = w.ofKind(['Pod']).filter((p) => p.metadata.namespace === EXTRA_NAMESPACE);
  if (pods.length > 0 && g.chance(0.4)) {
    for (const p of pods) w.drop(p);
    return `every pod of ${EXTRA_NAMESPACE} gone`;
  }
  const p = pod(EXTRA_NAMESPACE, `extra${g.n++}`, { app: g.pick(APPS) }, { sidecar: g.chance(0.5) }) as Obj & { spec: Record<string, unknown> };
  p.spec['nodeName'] = g.pick(Object.keys(NODES));
  w.put(p);
  return `add ${keyOf(p)}`;
}

function changeFor(req: Req, state: MemoryState) {
  const oldObj = req.old;
  const stored = oldObj ? state.get(kindOf(oldObj as unknown as KubeObject)!, oldObj.metadata.namespace, oldObj.metadata.name) : undefined;
  const old = stored ? { stored } : undefined;
  return makeChange(req.op, req.object ? structuredClone(req.object) : undefined, old as never);
}

/**
 * A decision with its order-only differences taken out: the order of victims follows the order in which
 * classes were first met, which a long-lived state and a fresh one may differ in. The sets, the counts
 * and everything else but the prose (message, fix) must be equal; a capped list (fewer names than its count) is compared by count.
 */
function normal(v: unknown, parent?: Record<string, unknown>, key?: string): unknown {
  if (Array.isArray(v)) {
    if (v.every((x) => typeof x === 'string')) {
      const count = key?.endsWith('s') ? parent?.[`${key.slice(0, -1)}Count`] : undefined;
      if (typeof count === 'number' && count > v.length) return `${v.length} of ${count}`;
      return [...v].sort();
    }
    return v.map((x) => normal(x));
  }
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return Object.fromEntries(Object.entries(o).filter(([k]) => k !== 'message' && k !== 'fix').map(([k, x]) => [k, normal(x, o, k)]));
  }
  return v;
}

async function run(t: Test, seed: number, steps: number, churning = false, sliced = false): Promise<void> {
  const g = new Gen(seed, churning);
  const extra = new Gen(seed + 1_000_003);
  // The sliced seeds' own draws (the webhook's path, decide.sliced): kept off `g`, whose sequence the
  // other seeds share.
  const sl = new Gen(seed + 2_000_029, churning);
  const initial: Obj[] = [...NAMESPACES.map((n) => g.namespace(n))];
  for (let i = 0; i < 10; i++) initial.push(g.pod());
  for (let i = 0; i < 4; i++) initial.push(g.policy());
  const objects = baseCluster(initial);
  if (churning) objects.push(...extDns((objects.find((o) => o.metadata.name === 'coredns-2') as unknown as { status: Record<string, string> }).status['podIP']!));
  const w = new World(objects);
  const rules = allRules();
  const config = defaultConfig(rules);
  const liveDecide = createDecide(rules, config);
  // A decide whose budget runs out after `budgetMs` budget checks (a clock that moves one per read):
  // a BudgetExceeded thrown mid-pass must leave no half-built table for the decisions after it.
  let ticks = 0;
  const cutDecide = (budgetMs: number) =>
    createDecide(rules, { ...config, evaluation: { ...config.evaluation, budgetMs } }, { budget: { clock: { now: () => ticks++ }, stride: 1 } });
  let cuts = 0;
  // decide.sliced with one rule per slice; between two slices, what a live server runs meanwhile: other
  // decisions on the live state (whole, cut by their budget) and, once per review, a watch event. Each
  // rule must judge one state: the rules that ran before the event answer as on a fresh copy of the state
  // before it, the rules after it as on a fresh copy of the state after it.
  let ran: string[] = [];
  let between: (() => void) | undefined;
  const tracked = rules.map((r): Rule => ({ ...r, evaluate: (...a: Parameters<Rule['evaluate']>) => (ran.push(r.id), r.evaluate(...a)) }));
  const slicedDecide = createDecide(tracked, config, { sliceMs: 0, handBack: async () => between?.() }).sliced!;
  let midReview = 0;
  const history: string[] = [];
  let mismatches = 0;
  let scratchMismatches = 0;
  let findings = 0;
  let staleModels = 0;
  for (let step = 0; step < steps && mismatches < 3; step++) {
    // One to three requests between mutations, the same request sometimes twice.
    const reqs: Req[] = [];
    const count = 1 + Math.floor(g.r() * 3);
    for (let i = 0; i < count; i++) reqs.push(g.chance(0.2) && reqs.length > 0 ? reqs[reqs.length - 1]! : randomRequest(g, w));
    // Now and then what the server also runs on the live state between reviews: warm-up requests
    // (stored objects as object and oldObject), sometimes cut by the budget, and an audit of one object.
    if (g.chance(0.1)) {
      const changes = warmUpChanges(rules, w.live);
      for (let i = 0; i < 4 && changes.length > 0; i++) {
        const c = g.pick(changes);
        if (g.chance(0.5)) cutDecide(1 + Math.floor(g.r() * 150))(c, w.live);
        else liveDecide(c, w.live);
      }
    }
    // Every seventh step (without drawing from the sequence's generator), the table steps serve's warm-up
    // and its idle refill run (src/verdict/warmup.ts tableSteps): they fill the long-lived state's
    // per-class answers and base facts outside any review, which the reviews after them read.
    if (step % 7 === 3) {
      for (const fill of tableSteps(w.live)) {
        try {
          fill();
        } catch {
          // an object the policy engine cannot read is the decisions' to report
        }
      }
    }
    if (g.chance(0.05)) {
      const p = g.pick(w.ofKind(POLICY_KINDS).length > 0 ? w.ofKind(POLICY_KINDS) : w.ofKind(['Namespace']));
      const k = kindOf(p as unknown as KubeObject)!;
      auditObject(w.live, g.chance(0.5) ? liveDecide : cutDecide(1 + Math.floor(g.r() * 150)), config, k, w.live.get(k, p.metadata.namespace, p.metadata.name)!);
    }
    for (const req of reqs) {
      // A watch event between two rules of an earlier review of this step took the object away.
      if (req.old && w.live.get(kindOf(req.old as unknown as KubeObject)!, req.old.metadata.namespace, req.old.metadata.name) === undefined) continue;
      if (sliced && sl.chance(0.5)) {
        const change = changeFor(req, w.live);
        const pre = w.fresh();
        const wantPre = normal(createDecide(rules, config)(changeFor(req, pre), pre)) as ReturnType<typeof liveDecide>;
        const subject = req.object ?? req.old;
        const subjectKind = subject ? kindOf(subject as unknown as KubeObject)! : undefined;
        const stored = () => (subject ? w.live.get(subjectKind!, subject.metadata.namespace, subject.metadata.name) : undefined);
        const storedPre = stored();
        let hands = 0;
        const at = Math.floor(sl.r() * 4);
        let ranBefore: ReadonlySet<string> | undefined;
        ran = [];
        between = () => {
          if (sl.chance(0.3)) {
            const changes = warmUpChanges(rules, w.live);
            if (changes.length > 0) (sl.chance(0.5) ? cutDecide(1 + Math.floor(sl.r() * 150)) : liveDecide)(sl.pick(changes), w.live);
          }
          if (hands++ === at) {
            ranBefore = new Set(ran);
            history.push(`between two rules: ${mutate(sl, w)}`);
          }
        };
        let got: ReturnType<typeof liveDecide>;
        try {
          got = normal(await slicedDecide(change, w.live)) as ReturnType<typeof liveDecide>;
        } finally {
          between = undefined;
        }
        findings += wantPre.findings.length;
        // An event that replaced the object under review changes the request's own old object: no oracle.
        if (ranBefore !== undefined && stored() !== storedPre) continue;
        const post = w.fresh();
        const wantPost = ranBefore === undefined ? wantPre : (normal(createDecide(rules, config)(changeFor(req, post), post)) as ReturnType<typeof liveDecide>);
        if (ranBefore !== undefined) midReview++;
        const ofRule = (d: ReturnType<typeof liveDecide>, id: string): string => JSON.stringify(d.findings.filter((f) => f.rule === id));
        for (const id of new Set(ran)) {
          const want = ranBefore?.has(id) === true ? wantPre : wantPost;
          if (ofRule(got, id) !== ofRule(want, id)) {
            mismatches++;
            t.same(JSON.parse(ofRule(got, id)), JSON.parse(ofRule(want, id)), `seed ${seed} step ${step}: sliced ${req.label}, rule ${id} (${ranBefore?.has(id) === true ? 'before' : 'after'} the event)\nafter: ${history.slice(-8).join('; ')}`);
          }
        }
        continue;
      }
      if (g.chance(0.3)) {
        const cut = cutDecide(1 + Math.floor(g.r() * 150))(changeFor(req, w.live), w.live);
        if (cut.incomplete?.reason === 'budget') cuts++;
      }
      const got = normal(liveDecide(changeFor(req, w.live), w.live)) as ReturnType<typeof liveDecide>;
      const fresh = w.fresh();
      const want = normal(createDecide(rules, config)(changeFor(req, fresh), fresh)) as ReturnType<typeof liveDecide>;
      findings += want.findings.length;
      // For a cilium-config or Namespace UPDATE, the shortcuts (which read the overlay's delta:
      // enable-policy alone, the servers' ingress decided once, the ambient pods elsewhere) against the
      // rules run on a state built with the change: the same findings, rule by rule. (Not for policy
      // changes: there a rule run on two unrelated states cannot tell what changed, and a pod is two
      // objects, one per state.)
      if (req.object?.kind === 'ConfigMap' || req.object?.kind === 'Namespace') {
        const b2 = w.fresh();
        const change = changeFor(req, b2);
        const rebuilt = w.applied(req);
        const byRule = rules
          .filter((r) => (config.rules[r.id] ?? 'off') !== 'off' && r.triggers.some((tr) => tr.kinds.includes(change.kind!) && tr.operations.includes(change.operation)))
          .flatMap((r) => inRequestScope(() => { try { return r.evaluate(change, b2, rebuilt, { settings: config.settings }).map((f) => ({ rule: r.id, code: f.code, params: f.params })); } catch (e) { return [{ rule: r.id, code: `threw ${String(e)}` }]; } }));
        const fromDecide = (want as unknown as { findings: { rule: string; code: string; params?: unknown; victims?: unknown }[] }).findings.map((f) => ({ rule: f.rule, code: f.code, params: f.params }));
        const a = JSON.stringify(normal(fromDecide));
        const b = JSON.stringify(normal(byRule));
        if (a !== b) {
          scratchMismatches++;
          if (scratchMismatches <= 3) t.same(normal(fromDecide), normal(byRule), `seed ${seed} step ${step}: overlay vs rebuilt: ${req.label}`);
        }
      }
      if (JSON.stringify(got) !== JSON.stringify(want)) {
        mismatches++;
        t.same(got, want, `seed ${seed} step ${step}: ${req.label}\nafter: ${history.slice(-8).join('; ')}`);
      }
    }
    // Every model of a pod's selecting list (kept across requests and pod events) is its policy object's
    // current model: kept tables compare models by identity, so a model made for one request only (its
    // object taken for the request's own) would be taken for another policy's later.
    for (const p of w.live.list('Pod')) {
      for (const m of policiesSelecting(w.live, p)) {
        const o = w.live.get(m.ref.kind as KindName, m.ref.namespace === '' ? undefined : m.ref.namespace, m.ref.name);
        if (o === undefined || policyModel(o as never)[m.specIndex] !== m) {
          staleModels++;
          if (staleModels === 1) t.fail(`seed ${seed} step ${step}: ${p.metadata.namespace}/${p.metadata.name}'s selecting list holds a model of ${m.ref.kind} ${m.ref.namespace}/${m.ref.name} that is not its object's`);
        }
      }
    }
    history.push(mutate(g, w));
    if (extra.chance(0.1)) history.push(namespaceEvent(extra, w));
  }
  t.equal(mismatches, 0, `seed ${seed}: live decisions equal fresh ones (${findings} findings)`);
  t.equal(staleModels, 0, `seed ${seed}: the kept selecting lists hold their policies' current models`);
  t.equal(scratchMismatches, 0, 'the overlay decisions equal the rules run on states rebuilt with the change');
  t.ok(findings > 0, 'the comparison is not of empty decisions');
  t.ok(cuts > 0, `${cuts} decisions cut by the budget before one that ran whole`);
  if (sliced) t.ok(midReview > 0, `${midReview} sliced reviews took a watch event between two rules`);
}

// FUZZ_SEEDS=first:count and FUZZ_STEPS=n run other seeds and longer sequences (a longer hunt); the default eight (47 among them: a warm-up review cut by the budget before a DELETE of a stored policy) run in a few seconds.
const [first, count] = (process.env['FUZZ_SEEDS'] ?? '40:8').split(':').map(Number) as [number, number];
for (let seed = first; seed < first + count; seed++) {
  t.test(`seed ${seed}: a long-lived state mutated between decisions answers as a fresh one`, async (t) => {
    await run(t, seed, Number(process.env['FUZZ_STEPS'] ?? 150));
  });
}
// With the churn of a live cluster too (pods copied into their class, EndpointSlices, CoreDNS backends):
// CHURN_SEEDS=first:count for a longer hunt.
const [churnFirst, churnCount] = (process.env['CHURN_SEEDS'] ?? '140:4').split(':').map(Number) as [number, number];
for (let seed = churnFirst; seed < churnFirst + churnCount; seed++) {
  t.test(`churn seed ${seed}: a long-lived state under pod and EndpointSlice churn answers as a fresh one`, async (t) => {
    await run(t, seed, Number(process.env['FUZZ_STEPS'] ?? 150), true);
  });
}
// The webhook's path: reviews evaluated in slices, with other decisions and watch events between their
// rules (SLICED_SEEDS=first:count for a longer hunt).
const [slicedFirst, slicedCount] = (process.env['SLICED_SEEDS'] ?? '240:8').split(':').map(Number) as [number, number];
for (let seed = slicedFirst; seed < slicedFirst + slicedCount; seed++) {
  t.test(`sliced seed ${seed}: reviews in slices with watch events between their rules answer rule by rule as fresh states`, async (t) => {
    await run(t, seed, Number(process.env['FUZZ_STEPS'] ?? 150), seed % 2 === 1, true);
  });
}
