// Cluster facts the policy engine and rules need: the DNS backends (kube-dns Service), the kube-apiserver
// endpoints (default/kubernetes EndpointSlice) and the Node addresses (Cilium's host / remote-node
// identities). Cached per state revision.

import type { ClusterState, EndpointSlice, Node, Pod, Service } from '../core/objects.ts';
import type { DnsBackends, Protocol } from './types.ts';
import { perRevision } from './memo.ts';
import { canonicalIp } from './cidr.ts';
import { matchesSelector } from './selectors.ts';
import { nodeAddressCache, slicesReadByList } from './memo.ts';

function protocolOf(p: string | undefined): Protocol {
  const u = (p ?? 'TCP').toUpperCase();
  return u === 'UDP' || u === 'SCTP' ? u : 'TCP';
}

/** Pods a Service's selector selects, in the Service namespace (none for a selector-less Service). */
export function serviceBackendPods(state: ClusterState, svc: Service): readonly Pod[] {
  const sel = svc.spec.selector;
  const entries = Object.entries(sel ?? {});
  const first = entries[0];
  if (!sel || !first) return [];
  const namespace = svc.metadata.namespace ?? 'default';
  return state
    .podsWithLabel(namespace, first[0], first[1])
    .filter((p) => matchesSelector({ matchLabels: sel }, p.metadata.labels ?? {}));
}

/** The backend port a Service port translates to on a pod (named targetPort resolved on its containers). */
export function serviceTargetPort(
  svcPort: { port: number; targetPort?: number | string; protocol?: string },
  pod: Pod | undefined,
): number | undefined {
  const t = svcPort.targetPort;
  if (t === undefined || t === null || t === '' || t === 0) return svcPort.port;
  if (typeof t === 'number') return t;
  if (/^\d+$/.test(t)) return Number(t);
  if (!pod) return undefined;
  return namedPort(pod, t, protocolOf(svcPort.protocol));
}

/**
 * A named container port of a pod, for a protocol. Init containers are searched too unless
 * `policy` is set: the Cilium agent takes a pod's named ports from its containers only
 * (GetPodMetadata), so a port named only on an init container never matches a policy port.
 */
export function namedPort(pod: Pod, name: string, protocol: Protocol | 'ANY', policy = false): number | undefined {
  for (const c of policy ? pod.spec.containers : [...pod.spec.containers, ...(pod.spec.initContainers ?? [])]) {
    for (const p of c.ports ?? []) {
      if (p.name === name && (protocol === 'ANY' || protocolOf(p.protocol) === protocol)) return p.containerPort;
    }
  }
  return undefined;
}

function findDnsService(state: ClusterState): Service | undefined {
  const direct = state.get('Service', 'kube-system', 'kube-dns');
  if (direct) return direct;
  // Some distributions name it differently (e.g. "coredns"); the k8s-app=kube-dns label is the convention.
  return (
    state.list('Service', 'kube-system').find((s) => s.metadata.labels?.['k8s-app'] === 'kube-dns') ??
    state.list('Service').find((s) => s.metadata.labels?.['k8s-app'] === 'kube-dns')
  );
}

export function dnsBackends(state: ClusterState): DnsBackends {
  return perRevision(state, 'dnsBackends', () => {
    const svc = findDnsService(state);
    if (!svc) return { pods: [], ports: [], serviceIPs: [] };
    const pods = serviceBackendPods(state, svc);
    const ports: { port: number; protocol: Protocol }[] = [];
    for (const sp of svc.spec.ports ?? []) {
      const candidates = pods.length > 0 ? pods : [undefined];
      for (const p of candidates) {
        const port = serviceTargetPort(sp, p);
        if (port === undefined) continue;
        const protocol = protocolOf(sp.protocol);
        if (!ports.some((x) => x.port === port && x.protocol === protocol)) ports.push({ port, protocol });
      }
    }
    const ips = svc.spec.clusterIPs?.length ? svc.spec.clusterIPs : svc.spec.clusterIP ? [svc.spec.clusterIP] : [];
    return { pods, ports, serviceIPs: ips.filter((ip) => ip && ip !== 'None') };
  });
}

/** kube-apiserver endpoints from the default/kubernetes EndpointSlice. */
export function apiserverEndpoints(state: ClusterState): { ips: readonly string[]; ports: readonly number[] } {
  return perRevision(state, 'apiserverEndpoints', () => {
    const slices = state
      .list('EndpointSlice', 'default')
      .filter((s) => s.metadata.name === 'kubernetes' || s.metadata.labels?.['kubernetes.io/service-name'] === 'kubernetes');
    const ips: string[] = [];
    const ports: number[] = [];
    for (const s of slices) {
      for (const e of s.endpoints ?? []) for (const a of e.addresses ?? []) if (!ips.includes(a)) ips.push(a);
      for (const p of s.ports ?? []) if (typeof p.port === 'number' && !ports.includes(p.port)) ports.push(p.port);
    }
    return { ips, ports };
  });
}

/**
 * The EndpointSlices whose content the policy engine reads (see keptAcrossPodEvents in memo.ts): every
 * slice of the `default` namespace (the kube-apiserver's endpoints, apiserverEndpoints), and the slices
 * of Services without a selector or of no known Service (a toServices peer reads the backend addresses
 * of a selector-less Service from its slices; a Service with a selector is matched by its selector, and
 * its slices, which follow pod churn, are never read). In the order of the state's lists: the same
 * objects in the same order while none of them changes.
 */
export function endpointSlicesRead(state: ClusterState): readonly object[] {
  return perRevision(state, 'endpointSlicesRead', () => {
    const out: object[] = [];
    for (const ns of state.namespacesWith('EndpointSlice')) for (const es of slicesReadIn(state, ns)) out.push(es);
    return out;
  });
}

function slicesReadIn(state: ClusterState, namespace: string): readonly object[] {
  const slices = state.list('EndpointSlice', namespace);
  const services = state.list('Service', namespace);
  // Per namespace, while neither its slices nor its Services change: a slice event re-reads its namespace only.
  const hit = slicesReadByList.get(slices);
  if (hit !== undefined && hit.services === services) return hit.read;
  const read = namespace === 'default' ? slices : slices.filter((es) => !hasSelector(state, namespace, es));
  slicesReadByList.set(slices, { services, read });
  return read;
}

function hasSelector(state: ClusterState, namespace: string, es: EndpointSlice): boolean {
  const name = es.metadata.labels?.['kubernetes.io/service-name'];
  const svc = name === undefined ? undefined : state.get('Service', namespace, name);
  return svc !== undefined && svc.spec.selector !== undefined && Object.keys(svc.spec.selector).length > 0;
}

// Keyed by the Node list array, which stays identical across revisions (and overlays) that change no Node.
const NO_NODES: ReadonlyMap<string, string> = new Map();

/** Node name by address (InternalIP and ExternalIP, canonical text) of every Node. */
export function nodeAddresses(state: ClusterState): ReadonlyMap<string, string> {
  const nodes = state.list('Node');
  if (nodes.length === 0) return NO_NODES;
  let m = nodeAddressCache.get(nodes);
  if (!m) {
    const out = new Map<string, string>();
    for (const n of nodes) {
      for (const a of n.status?.addresses ?? []) {
        if ((a.type === 'InternalIP' || a.type === 'ExternalIP') && a.address) out.set(canonicalIp(a.address) ?? a.address, n.metadata.name);
      }
    }
    nodeAddressCache.set(nodes, (m = out));
  }
  return m;
}

/** InternalIP (and ExternalIP) addresses of all Nodes. */
export function nodeIPs(state: ClusterState): readonly string[] {
  return perRevision(state, 'nodeIPs', () => [...nodeAddresses(state).keys()]);
}
