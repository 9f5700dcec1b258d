// The control plane's own reachability: the admission webhook backends the kube-apiserver must reach,
// istiod's ports and the xDS clients that must reach istiod, and the cluster-wide `{}` policies that
// put every pod into ingress default deny. Semantics only (which pods, which ports, which sources);
// the verdicts come from the reachability engine (evaluateIngressFromAddress, reachable).

import type { ClusterState, Pod, PolicyObject, Service, Webhook } from '../core/objects.ts';
import { APISERVER_ENTITY as APISERVER_SOURCE_ENTITY, apiserverTargets as apiserverSources } from './apiserver.ts';
import { serviceBackendPods, serviceTargetPort } from './cluster.ts';
import { istiodDeployments, istiodPods } from './istio-usage.ts';
import { podClassKey } from './identity.ts';
import { isMeshProxyPod } from './istio.ts';
import { perContentOf, xdsClientsByList, type NamespaceXdsClients } from './memo.ts';
import { overlayDelta } from '../state/overlay.ts';
import { policyModel } from './model.ts';
import { evaluateIngressFromAddress } from './reachability.ts';
import { policySettings } from './selection.ts';
import { isEmptySelector } from './selectors.ts';
import { clusterVersions } from './versions.ts';
import type { DirectionVerdict } from './types.ts';

/**
 * The sources the API server calls webhooks from are apiserverTargets (its endpoint IPs, or the entity
 * APISERVER_ENTITY when they are unknown): the same addresses as a destination.
 */
export { APISERVER_SOURCE_ENTITY, apiserverSources };

/** The verdict on one API server source (an endpoint IP or the entity) calling `dest` on TCP `port`. */
export function apiserverIngress(state: ClusterState, dest: Pod, source: string, port: number): DirectionVerdict {
  return evaluateIngressFromAddress(state, dest, source === APISERVER_SOURCE_ENTITY ? undefined : source, port, 'TCP');
}

/** The API server sources (endpoint IPs, or the entity) that may call `dest` on TCP `port`. */
export function apiserverReachesPod(state: ClusterState, dest: Pod, port: number): string[] {
  return apiserverSources(state).filter((s) => apiserverIngress(state, dest, s, port).verdict === 'allowed');
}

// ---------- admission webhook backends ----------

/** One admission webhook served from inside the cluster: the configuration, the webhook, its Service. */
export interface WebhookBackend {
  /** `MutatingWebhookConfiguration/<name>` or `ValidatingWebhookConfiguration/<name>`. */
  readonly configuration: string;
  readonly webhook: string;
  /** `Fail` (the default of admissionregistration.k8s.io/v1) or `Ignore`. */
  readonly failurePolicy: 'Fail' | 'Ignore';
  /** `namespace/name` of the Service. */
  readonly service: string;
  /** The Service port the API server calls (clientConfig.service.port, default 443). */
  readonly servicePort: number;
}

/** A backend pod of a webhook, with the port the API server's connection arrives on. */
export interface WebhookTarget {
  readonly backend: WebhookBackend;
  readonly pod: Pod;
  readonly port: number;
}

/**
 * Every webhook of every Mutating/ValidatingWebhookConfiguration whose clientConfig names a Service
 * (a `url` backend is outside the cluster: no pod policy applies to it), meshguard's own included.
 */
export function webhookBackends(state: ClusterState): WebhookBackend[] {
  const out: WebhookBackend[] = [];
  const add = (kind: string, name: string, hooks: readonly Webhook[] | undefined): void => {
    for (const w of hooks ?? []) {
      const svc = w?.clientConfig?.service;
      if (!svc || !svc.name || !svc.namespace) continue;
      out.push({
        configuration: `${kind}/${name}`,
        webhook: w.name,
        failurePolicy: w.failurePolicy === 'Ignore' ? 'Ignore' : 'Fail',
        service: `${svc.namespace}/${svc.name}`,
        servicePort: typeof svc.port === 'number' ? svc.port : 443,
      });
    }
  };
  for (const c of state.list('MutatingWebhookConfiguration')) add('MutatingWebhookConfiguration', c.metadata.name, c.webhooks);
  for (const c of state.list('ValidatingWebhookConfiguration')) add('ValidatingWebhookConfiguration', c.metadata.name, c.webhooks);
  return out;
}

/**
 * The webhook targets among `pods`: for each pod that backs a webhook's Service, the pod's port for the
 * webhook's Service port. Cost: the webhooks (a handful) and their Services' backends, then one lookup
 * per pod.
 */
export function webhookTargetsAmong(state: ClusterState, pods: readonly Pod[]): WebhookTarget[] {
  const byPod = new Map<Pod, { backend: WebhookBackend; sp: NonNullable<Service['spec']['ports']>[number] }[]>();
  for (const backend of webhookBackends(state)) {
    const [ns, name] = backend.service.split('/') as [string, string];
    const svc = state.get('Service', ns, name);
    const sp = svc?.spec.ports?.find((p) => p.port === backend.servicePort && (p.protocol ?? 'TCP').toUpperCase() === 'TCP');
    if (!svc || !sp) continue;
    for (const p of serviceBackendPods(state, svc)) {
      let l = byPod.get(p);
      if (!l) byPod.set(p, (l = []));
      l.push({ backend, sp });
    }
  }
  const out: WebhookTarget[] = [];
  if (byPod.size === 0) return out;
  for (const pod of pods) {
    for (const { backend, sp } of byPod.get(pod) ?? []) {
      const port = serviceTargetPort(sp, pod);
      if (port !== undefined && port > 0) out.push({ backend, pod, port });
    }
  }
  return out;
}

// ---------- istiod ----------

/** Istio's ports on istiod (https://istio.io/latest/docs/ops/deployment/requirements/#ports-used-by-istio). */
export const ISTIOD_XDS_PORT = 15012;
export const ISTIOD_WEBHOOK_PORT = 15017;

/** istiod's pods: app=istiod, plus pods of an istiod Deployment's template labels. */
export function istiodPodSet(state: ClusterState): ReadonlySet<Pod> {
  const set = new Set<Pod>(istiodPods(state));
  for (const d of istiodDeployments(state)) {
    const sel = d.spec?.selector?.matchLabels;
    const first = sel ? Object.entries(sel)[0] : undefined;
    if (!sel || !first) continue;
    for (const p of state.podsWithLabel(d.metadata.namespace, first[0], first[1])) {
      if (Object.entries(sel).every(([k, v]) => p.metadata.labels?.[k] === v)) set.add(p);
    }
  }
  return set;
}

/**
 * istiod's xDS (mTLS) and webhook ports on a pod: the targetPorts of the istiod Service's `https-dns`
 * (15012) and `https-webhook` (443 -> 15017) ports when the Service is in the state, else Istio's defaults.
 */
export function istiodPorts(state: ClusterState, pod: Pod): { readonly xds: number; readonly webhook: number } {
  let xds = ISTIOD_XDS_PORT;
  let webhook = ISTIOD_WEBHOOK_PORT;
  const ns = pod.metadata.namespace ?? '';
  for (const svc of state.list('Service', ns)) {
    const n = svc.metadata.name;
    if (n !== 'istiod' && !n.startsWith('istiod-')) continue;
    const sel = svc.spec.selector ?? {};
    if (Object.keys(sel).length === 0 || !Object.entries(sel).every(([k, v]) => pod.metadata.labels?.[k] === v)) continue;
    for (const sp of svc.spec.ports ?? []) {
      const target = serviceTargetPort(sp, pod);
      if (target === undefined) continue;
      if (sp.name === 'https-dns' || sp.port === ISTIOD_XDS_PORT) xds = target;
      if (sp.name === 'https-webhook') webhook = target;
    }
    break;
  }
  return { xds, webhook };
}

/** Who asks istiod for configuration over xDS. */
export type XdsClientKind = 'sidecar' | 'ztunnel' | 'gateway';

/**
 * The xDS clients of the cluster, by kind: ztunnel pods (app=ztunnel), gateways and waypoints (pods
 * whose only container is istio-proxy) and live injected workloads (the injector's status annotation or
 * an istio-proxy container next to the app; a live pod without one never gets one). Reads only Pods
 * (direct fields, no namespace lookups), kept per Pod content, and built from the clients of each
 * namespace (xdsClientClasses).
 */
export function xdsClients(state: ClusterState): readonly { readonly kind: XdsClientKind; readonly pod: Pod }[] {
  return xdsClientClasses(state).clients;
}

/** xdsClients grouped by client kind and class (podClassKey without a node): one stands for each class. */
export interface XdsClientClasses {
  readonly clients: readonly { readonly kind: XdsClientKind; readonly pod: Pod }[];
  /** The class of each client, by index into `classes`. */
  readonly classOf: readonly number[];
  /** Each class's kind and first client pod, in the order of their first client. */
  readonly classes: readonly { readonly kind: XdsClientKind; readonly pod: Pod }[];
}

let namespacesScanned = 0;

/** How many namespace Pod lists xdsClientClasses has scanned for clients (for tests that count per-namespace work). */
export function xdsNamespaceScans(): number {
  return namespacesScanned;
}

/**
 * xdsClients(state) with their classes: per content of the Pod kind, like xdsClients. Assembled from
 * each namespace's clients and classes, kept per the namespace's Pod list array (xdsClientsByList): a
 * client's kind and class read the pod alone, and a class key starts with the pod's namespace (its
 * identity key does), so no class spans two namespaces and a pod event, which replaces one namespace's
 * array, makes only that namespace be scanned again. The store lists every pod namespace by namespace
 * (namespacesWith's order), so the assembled lists are in list('Pod') order; an overlay that changes a
 * pod (which appends a new pod to the end of that list) is scanned whole, as the order then differs.
 */
export function xdsClientClasses(state: ClusterState): XdsClientClasses {
  return perContentOf(state, 'xdsClientClasses', ['Pod'], () => {
    if (overlayDelta(state)?.kind === 'Pod') return clientClassesOf(state.list('Pod'));
    const parts: NamespaceXdsClients[] = [];
    for (const ns of state.namespacesWith('Pod')) {
      const list = state.list('Pod', ns);
      let part = xdsClientsByList.get(list);
      if (part === undefined) xdsClientsByList.set(list, (part = clientClassesOf(list)));
      if (part.clients.length > 0) parts.push(part);
    }
    if (parts.length === 1) return parts[0] as XdsClientClasses;
    // Sized up front (every pod may be a client).
    let n = 0;
    let k = 0;
    for (const part of parts) {
      n += part.clients.length;
      k += part.classes.length;
    }
    const clients: { kind: XdsClientKind; pod: Pod }[] = new Array(n);
    const classOf: number[] = new Array(n);
    const classes: { kind: XdsClientKind; pod: Pod }[] = new Array(k);
    let i = 0;
    let offset = 0;
    for (const part of parts) {
      const pc = part.clients as XdsClientClasses['clients'];
      for (let j = 0; j < pc.length; j++, i++) {
        clients[i] = pc[j]!;
        classOf[i] = part.classOf[j]! + offset;
      }
      const cs = part.classes as XdsClientClasses['classes'];
      for (let j = 0; j < cs.length; j++) classes[offset + j] = cs[j]!;
      offset += cs.length;
    }
    return { clients, classOf, classes };
  });
}

/**
 * Builds one namespace's share of xdsClientClasses (its clients and classes, kept per the namespace's Pod
 * list array), so that the warm-up can build the whole a namespace per step: the first cilium-config
 * request after start-up built every namespace's in one piece (about 40 ms of CPU at 50k pods).
 */
export function indexXdsClientsOf(state: ClusterState, namespace: string): void {
  const list = state.list('Pod', namespace);
  if (list.length > 0 && xdsClientsByList.get(list) === undefined) xdsClientsByList.set(list, clientClassesOf(list));
}

/** The xDS clients of `pods` (in order) and their classes. */
function clientClassesOf(pods: readonly Pod[]): XdsClientClasses {
  namespacesScanned++;
  const clients: { kind: XdsClientKind; pod: Pod }[] = [];
  for (const pod of pods) {
    if (pod.spec.hostNetwork === true) continue;
    const phase = pod.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') continue;
    if (pod.metadata.labels?.['app'] === 'ztunnel') clients.push({ kind: 'ztunnel', pod });
    else if (isMeshProxyPod(pod)) clients.push({ kind: 'gateway', pod });
    else if (hasSidecar(pod)) clients.push({ kind: 'sidecar', pod });
  }
  const index = new Map<string, number>();
  const classes: { kind: XdsClientKind; pod: Pod }[] = [];
  const classOf: number[] = [];
  for (const c of clients) {
    const k = `${c.kind}\u0000${podClassKey(c.pod, '')}`;
    let i = index.get(k);
    if (i === undefined) {
      index.set(k, (i = classes.length));
      classes.push(c);
    }
    classOf.push(i);
  }
  return { clients, classOf, classes };
}

function hasSidecar(pod: Pod): boolean {
  if (pod.metadata.annotations?.['sidecar.istio.io/status'] !== undefined) return true;
  for (const c of pod.spec.containers ?? []) if (c?.name === 'istio-proxy') return true;
  for (const c of pod.spec.initContainers ?? []) if (c?.name === 'istio-proxy') return true;
  return false;
}

// ---------- cluster-wide ingress default deny ----------

/**
 * A CiliumClusterwideNetworkPolicy rule with `endpointSelector: {}` that by itself puts every pod of
 * the cluster into ingress default deny (an ingress section, no `enableDefaultDeny.ingress: false`
 * honoured). Istio's documented CCNP for ambient host probes is one.
 */
export function clusterWideIngressDefaultDeny(state: ClusterState, obj: PolicyObject | undefined): boolean {
  if (!obj || obj.kind !== 'CiliumClusterwideNetworkPolicy') return false;
  const honoured = policySettings(state).nonDefaultDenyPolicies;
  return policyModel(obj).some((m) => !m.selectsNodes && isEmptySelector(m.subjectSelector) && (m.enforces.ingress || (!honoured && m.hasSection.ingress)));
}

/**
 * Whether `enableDefaultDeny: {ingress: false}` would take the default deny away: the agent honours the
 * field from Cilium 1.16 on, and only while enable-non-default-deny-policies is on. With the Cilium
 * version found in the state, for the message.
 */
export function nonDefaultDenyHonoured(state: ClusterState): { readonly honoured: boolean; readonly cilium: string } {
  return { honoured: policySettings(state).nonDefaultDenyPolicies, cilium: clusterVersions(state).cilium.version ?? 'unknown' };
}
