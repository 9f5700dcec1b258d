// Identity and class keys: when two pods are interchangeable for a question, so that a check is judged
// once per class and its verdict counted for every pod of the class (issue 21 builds on this). Every key
// is computed once per pod object (a state never modifies a pod; an update replaces it) and interned.
//
// - podIdentityKey: Cilium's security identity of a pod (namespace, service account, labels). Two pods
//   with the same key are selected by the same policy subject and peer selectors (Namespace labels are
//   read through the namespace, which the key includes).
// - podClassKey(pod, node): identity plus what else policy evaluation reads from a pod: host network and
//   phase (whether it is a Cilium endpoint at all) and, for node-level targets, a node.
// - dnsClassKey / apiserverClassKey: podClassKey with the node only where the target's identity depends
//   on it (a host-network DNS backend; an API server on the nodes).
// - ingressShapeKey (per state) and ambientIngressClassKey (any state): the ingress checks of ambient pods
//   (HBONE, probe SNAT, ambient DNS capture), which also read mesh labels, annotations and ports.

import { internKey } from '../state/intern.ts';
import type { ClusterState, Container, Pod } from '../core/objects.ts';
import { ipFamily } from './cidr.ts';
import { apiserverEndpoints, dnsBackends, nodeAddresses } from './cluster.ts';
import { perContentOf, podKeys, rulesKeys } from './memo.ts';
import { policiesSelecting } from './selection.ts';
import { readsNode, type ClassKeyFn } from './classes.ts';
import type { PolicyModel } from './types.ts';

/** "namespace/name" of a pod: how pod sets are keyed and victims named. */
export function podRef(pod: Pod): string {
  const r = podKeys(pod);
  return (r.ref ??= `${pod.metadata.namespace ?? ''}/${pod.metadata.name}`);
}

/**
 * What Cilium's identity of a pod is made of, besides its Namespace's labels: namespace, service
 * account (empty means `default`) and pod labels, as one string.
 */
export function podIdentityKey(pod: Pod): string {
  const r = podKeys(pod);
  let key = r.identity;
  if (key === undefined) {
    const labels = pod.metadata.labels ?? {};
    let k = (pod.metadata.namespace ?? '') + '\u0000' + (pod.spec.serviceAccountName || 'default');
    for (const l of Object.keys(labels).sort()) k += '\u0000' + l + '\u0001' + labels[l];
    key = r.identity = internKey(k);
  }
  return key;
}

/**
 * Everything policy evaluation reads from a pod: its identity, host network, phase, and `node`: the
 * pod's node when the target is node-level (host vs remote-node depends on it), else a constant the
 * caller picks, so replicas spread over nodes share one verdict. Host-network pods are always keyed by
 * their own node (their identity is their node's: host on its own node, remote-node elsewhere, and the
 * local host always reaches its endpoints).
 */
export function podClassKey(pod: Pod, node: string): string {
  if (pod.spec.hostNetwork === true) node = pod.spec.nodeName ?? '';
  // Asked with '', '*' (apiserverClassKey: "not an API server node") or the pod's own node almost always:
  // those are kept per pod, anything else is built on demand.
  const own = node === (pod.spec.nodeName ?? '');
  const which = own ? 0 : node === '' ? 1 : node === '*' ? 2 : 3;
  const r = which === 3 ? undefined : podKeys(pod);
  let key = r === undefined ? undefined : which === 0 ? r.classOwnNode : which === 1 ? r.classNoNode : r.classAnyNode;
  if (key === undefined) {
    key = internKey(`${JSON.stringify(node)}\u0000${pod.spec.hostNetwork === true ? 'h' : 'p'}\u0000${pod.status?.phase ?? ''}\u0000${podIdentityKey(pod)}`);
    if (r !== undefined) {
      if (which === 0) r.classOwnNode = key;
      else if (which === 1) r.classNoNode = key;
      else r.classAnyNode = key;
    }
  }
  return key;
}

/** Class key for DNS checks: the node matters only when a DNS backend runs in the host network. */
export function dnsClassKey(state: ClusterState): ClassKeyFn {
  // One function per answer (what is kept per key function, a judging pass's plan, is then reused).
  return dnsBackends(state).pods.some((p) => p.spec.hostNetwork === true) ? DNS_KEY_BY_NODE : DNS_KEY;
}
const DNS_KEY: ClassKeyFn = (pod: Pod): string => podClassKey(pod, '');
const DNS_KEY_BY_NODE: ClassKeyFn = readsNode(
  (pod: Pod): string => podClassKey(pod, pod.spec.nodeName ?? ''),
  (pod) => pod.spec.nodeName ?? '',
);

/**
 * Class key for API server checks: when the API server runs on nodes, a pod on one of those nodes sees
 * it as `host`, elsewhere as `remote-node`; pods on other nodes share one class.
 */
export function apiserverClassKey(state: ClusterState): ClassKeyFn {
  // Per content of the two kinds it reads (Nodes, the API server's EndpointSlices): one function for
  // every request that changes neither, so what is kept per key function (node token splits) is reused.
  return perContentOf(state, 'apiserverClassKey', ['Node', 'EndpointSlice'], () => computeApiserverClassKey(state));
}

function computeApiserverClassKey(state: ClusterState): ClassKeyFn {
  const byIp = nodeAddresses(state);
  const apiNodes = new Set(apiserverEndpoints(state).ips.map((ip) => byIp.get(ip)).filter((n): n is string => n !== undefined));
  const nodeArg = (pod: Pod): string => {
    const node = pod.spec.nodeName ?? '';
    return apiNodes.has(node) ? node : apiNodes.size > 0 ? '*' : '';
  };
  const key = (pod: Pod): string => podClassKey(pod, nodeArg(pod));
  return apiNodes.size > 0 ? readsNode(key, nodeArg) : key;
}

/** Pod labels that decide the mesh mode or the waypoint (the rest only matter through policy selection). */
const MESH_LABELS = ['istio.io/dataplane-mode', 'sidecar.istio.io/inject', 'istio.io/rev', 'istio.io/use-waypoint', 'istio.io/use-waypoint-namespace'];

/**
 * A key under which two pods of one state get the same ingress verdicts from the ambient checks: same
 * namespace, same selecting policy rules, same mesh labels/annotations, same container ports (named
 * ports) and probes, and address family. Lets a rule judge a 3,000-pod namespace by its few distinct shapes.
 */
export function ingressShapeKey(state: ClusterState, pod: Pod): string {
  return `${rulesKey(policiesSelecting(state, pod))}\u0000${podShapeKey(pod)}`;
}

/**
 * A class key for the ambient checks (HBONE, probe SNAT, ambient DNS capture): pods with the same key
 * have the same mesh mode and the same ingressShapeKey in any state (identity for policy selection, plus
 * the pod's own shape and container names), so one of them stands for all. Unlike podClassKey it leaves
 * out the node, which these checks do not read: replicas spread over nodes are judged once.
 */
export function ambientIngressClassKey(pod: Pod): string {
  const r = podKeys(pod);
  let key = r.ambient;
  if (key === undefined) {
    const names = [...pod.spec.containers, ...(pod.spec.initContainers ?? [])].map((c) => c.name);
    key = r.ambient = internKey(`${podIdentityKey(pod)}\u0000${podShapeKey(pod)}\u0000${JSON.stringify(names)}`);
  }
  return key;
}

// A pod's selecting-model list is shared by every pod with the same answer (and cached): key it once.
function rulesKey(models: readonly PolicyModel[]): string {
  let key = rulesKeys.get(models);
  if (key === undefined) {
    key = JSON.stringify(models.map((m) => `${m.ref.kind}/${m.ref.namespace}/${m.ref.name}#${m.specIndex}`));
    rulesKeys.set(models, key);
  }
  return key;
}

/** A container's probe targets, for podShapeKey. */
function probePortsKey(c: Container): string {
  let key = '';
  for (const p of [c.livenessProbe, c.readinessProbe, c.startupProbe]) {
    const t = p?.httpGet ?? p?.tcpSocket ?? p?.grpc;
    key += t === undefined ? ';' : `;${typeof t.port}:${t.port}@${t.host ?? ''}`;
  }
  return key;
}

function podShapeKey(pod: Pod): string {
  const r = podKeys(pod);
  let key = r.shape;
  if (key === undefined) {
    const labels = pod.metadata.labels ?? {};
    const mesh = MESH_LABELS.map((k) => labels[k] ?? '');
    const ports = [...pod.spec.containers, ...(pod.spec.initContainers ?? [])].map(
      (c) =>
        (c.ports ?? []).map((p) => `${p.name ?? ''}:${p.containerPort}/${p.protocol ?? ''}`).join(',') +
        // The kubelet's probes (ambient-probe-snat-blocked judges each probe port).
        probePortsKey(c),
    );
    const ips = [pod.status?.podIP, ...(pod.status?.podIPs ?? []).map((x) => x.ip)].map((ip) => (ip ? ipFamily(ip) : ''));
    key = r.shape = internKey(JSON.stringify([pod.metadata.namespace ?? '', pod.spec.hostNetwork === true, pod.status?.phase ?? '', mesh, pod.metadata.annotations ?? {}, ports, ips]));
  }
  return key;
}
