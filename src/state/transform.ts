// Reduce a Kubernetes object (from a file, an informer or an AdmissionReview) to the slim shape of
// types.ts: only the fields some rule or semantic reads. This keeps memory small in large clusters and
// keeps secrets (Secret data, webhook caBundles, last-applied-configuration) out of the cache and logs.
//
// The input is untrusted (user files, random admission bodies): transformObject never throws, it
// returns the most plausible minimal object (missing labels -> none, a bad port -> dropped).

import { isRawObject } from '../core/change.ts';
import { Interner } from './intern.ts';
import { KINDS, type KindName } from '../core/kinds.ts';
import type { Container, ContainerPort, Probe, ProbeTarget, KubeObject, LabelSelector, LabelSelectorRequirement, Labels, ObjectMeta, Pod, ServicePort, Subject, WebhookClientConfig } from '../core/objects.ts';

type Rec = Record<string, unknown>;

const isRec: (v: unknown) => v is Rec = isRawObject;
function rec(v: unknown): Rec {
  return isRec(v) ? v : {};
}
function arr(v: unknown): readonly unknown[] {
  return Array.isArray(v) ? v : [];
}
function str(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  // client-node deserializes timestamps into Date objects.
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? undefined : v.toISOString();
  return undefined;
}
function num(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && /^\d+$/.test(v)) return Number(v);
  return undefined;
}
function bool(v: unknown): boolean | undefined {
  return typeof v === 'boolean' ? v : undefined;
}
/**
 * Without the keys whose value is undefined, so the slim objects print and compare cleanly. A new object
 * is built rather than `delete`d from: deleting puts V8 objects in dictionary mode, which costs ~400
 * bytes per object, and a large cluster holds a few per pod.
 */
/**
 * out[k] = v for a key that comes from the input. JSON.parse makes `"__proto__"` an own key; assigned,
 * it would set the copy's prototype instead (its fields then read through it and no key comparison sees
 * them), so it is defined as the data it is.
 */
export function setOwn(out: Record<string, unknown>, k: string, v: unknown): void {
  if (k === '__proto__') Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  else out[k] = v;
}

function compact<T extends Rec>(o: T): T {
  let all = true;
  for (const k in o) {
    if (o[k] === undefined) {
      all = false;
      break;
    }
  }
  if (all) return o;
  const out: Rec = {};
  for (const k in o) {
    const v = o[k];
    if (v !== undefined) out[k] = v;
  }
  return out as T;
}
/**
 * The array, or undefined when empty. Copied to its exact length: an array grown by push keeps spare
 * capacity (17 slots after the first push), which adds up over thousands of cached objects.
 */
function nonEmpty<T>(a: T[]): T[] | undefined {
  return a.length > 0 ? a.slice() : undefined;
}
/** A pushed-to array copied to its exact length (see nonEmpty). */
function exact<T>(a: T[]): T[] {
  return a.length > 0 ? a.slice() : a;
}

// Values repeated across many cached objects (namespace, node, service account, label values, container
// and port names, protocols) are kept once: JSON.parse gives every occurrence its own copy. Unique
// values (names, IPs) are not interned, they would only churn the cache.
const strings = new Interner<string>(1 << 15);
const INTERN_MAX_LENGTH = 256;
/**
 * False while transforming an admission request's objects: they live for one request, so they reuse
 * the shared values the state already has but add none (every request would otherwise push its own
 * names and label values into the interners, to be promoted to the old generation and churned out).
 */
let addShared = true;
function intern(s: string): string {
  if (s.length > INTERN_MAX_LENGTH) return s;
  const hit = strings.get(s);
  if (hit !== undefined) return hit;
  if (addShared) strings.set(s, s);
  return s;
}
function istr(v: unknown): string | undefined {
  const s = str(v);
  return s === undefined ? undefined : intern(s);
}

// Identical label and annotation maps (every replica of a Deployment has the same ones) and identical
// container lists are shared by the objects that have them. Shared values are never mutated (the state
// contract: cached objects are read-only).
const stringMaps = new Interner<Labels>(1 << 14);
const containerLists = new Interner<Container[]>(1 << 13);
/** Appends a length-prefixed string to an interner key (injective: no separator can be forged). */
function keyPart(key: string, s: string): string {
  return key + s.length + ':' + s;
}

/**
 * A string map (labels, annotations, ConfigMap data); scalars are stringified, anything else dropped.
 * Maps with the same entries in the same order are shared (`share`, default on; off for ConfigMap data).
 */
function stringMap(v: unknown, keep?: (key: string) => boolean, share = true): Labels | undefined {
  if (!isRec(v)) return undefined;
  const out: Record<string, string> = {};
  let n = 0;
  // Length-prefixed entries, joined into one flat string (cheaper to hash than a chain of concatenations).
  const parts: (string | number)[] = [];
  for (const [k, val] of Object.entries(v)) {
    if (keep && !keep(k)) continue;
    let s: string | undefined;
    if (typeof val === 'string') s = val;
    else if (typeof val === 'number' || typeof val === 'boolean') s = String(val);
    else if (val === null) s = ''; // `key:` with no value: the API server stores 
    if (s === undefined) continue;
    s = share ? intern(s) : s;
    setOwn(out, k, s);
    if (share) parts.push(k.length, ':', k, s.length, ':', s);
    n++;
  }
  if (n === 0) return undefined;
  if (!share) return out;
  const key = parts.join('');
  const hit = stringMaps.get(key);
  if (hit !== undefined) return hit;
  if (addShared) stringMaps.set(key, out);
  return out;
}

// Annotation prefixes meshguard reads (by the key's domain). kubectl.kubernetes.io/* (default-container,
// last-applied-configuration) is deliberately not among them.
const ANNOTATION_DOMAINS = ['meshguard.io', 'sidecar.istio.io', 'ambient.istio.io', 'istio.io'];

/** Whether an annotation key is one meshguard keeps. */
export function keepAnnotation(key: string): boolean {
  const slash = key.indexOf('/');
  if (slash < 0) return false;
  return ANNOTATION_DOMAINS.includes(key.slice(0, slash));
}

/**
 * A deep copy of plain JSON data (policy specs are kept whole). Dates become ISO strings, functions and
 * undefined are dropped, and cycles (YAML aliases can make them) or absurd depth are cut, never thrown.
 */
function plainJson(v: unknown, depth = 0, seen: Set<object> = new Set()): unknown {
  if (typeof v === 'string') return intern(v);
  if (v === null || typeof v === 'boolean') return v;
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof Date) return str(v);
  if (typeof v !== 'object' || depth > 64 || seen.has(v)) return undefined;
  seen.add(v);
  try {
    if (Array.isArray(v)) {
      const out: unknown[] = [];
      for (const x of v) {
        const c = plainJson(x, depth + 1, seen);
        if (c !== undefined) out.push(c);
      }
      return exact(out);
    }
    const out: Rec = {};
    for (const [k, x] of Object.entries(v)) {
      const c = plainJson(x, depth + 1, seen);
      if (c !== undefined) setOwn(out, k, c);
    }
    return out;
  } finally {
    seen.delete(v);
  }
}

function meta(kind: KindName, raw: Rec): ObjectMeta {
  const m = rec(raw.metadata);
  const name = str(m.name) ?? '';
  const namespace = KINDS[kind].namespaced ? istr(m.namespace) : undefined;
  // resourceVersion is not kept: no rule reads it (the informers resume from the raw event's), and
  // without it a watch event that changes nothing meshguard keeps (a pod's readiness, its conditions)
  // gives an object equal to the stored one, which the store then keeps with its caches (store.ts).
  const labels = stringMap(m.labels);
  const annotations = stringMap(m.annotations, keepAnnotation);
  const deletionTimestamp = str(m.deletionTimestamp);
  // The common four-field shape as one literal: V8 then keeps all its fields in the object (compact()
  // builds from {} and may put later fields in a separate property array).
  // Istio settles conflicting PeerAuthentications at one level by age; no other rule reads it.
  const creationTimestamp = kind === 'PeerAuthentication' ? str(m.creationTimestamp) : undefined;
  if (namespace !== undefined && labels !== undefined && annotations !== undefined && deletionTimestamp === undefined && creationTimestamp === undefined) {
    return { name, namespace, labels, annotations };
  }
  return compact({ name, namespace, labels, annotations, deletionTimestamp, creationTimestamp }) as unknown as ObjectMeta;
}

function labelSelector(v: unknown): LabelSelector | undefined {
  if (!isRec(v)) return undefined;
  const exprs: LabelSelectorRequirement[] = [];
  for (const e of arr(v.matchExpressions)) {
    if (!isRec(e)) continue;
    const key = istr(e.key);
    const operator = istr(e.operator);
    if (key === undefined || operator === undefined) continue;
    const values = Array.isArray(e.values) ? e.values.map((x) => intern(typeof x === 'string' ? x : String(x))) : undefined;
    exprs.push(compact({ key, operator, values }) as LabelSelectorRequirement);
  }
  // An empty selector object is meaningful ({} = everything), so it is kept as {}.
  return compact({ matchLabels: stringMap(v.matchLabels), matchExpressions: nonEmpty(exprs) }) as LabelSelector;
}

function containerPorts(v: unknown): ContainerPort[] | undefined {
  const out: ContainerPort[] = [];
  for (const p of arr(v)) {
    if (!isRec(p)) continue;
    const containerPort = num(p.containerPort);
    if (containerPort === undefined) continue;
    out.push(compact({ name: istr(p.name), containerPort, protocol: istr(p.protocol) }) as ContainerPort);
  }
  return nonEmpty(out);
}

/**
 * A probe as far as the network sees it: its HTTP, TCP or gRPC handler with the port and nothing else.
 * An exec probe runs inside the container and sends no traffic; a probe with its own `host` goes to that
 * host, not to the pod: neither is kept.
 */
function probe(v: unknown): Probe | undefined {
  if (!isRec(v)) return undefined;
  for (const kind of ['httpGet', 'tcpSocket', 'grpc'] as const) {
    const h = v[kind];
    if (!isRec(h)) continue;
    if (typeof h.host === 'string' && h.host !== '') return undefined;
    const port = num(h.port) ?? istr(h.port);
    return port === undefined || port === '' ? undefined : ({ [kind]: { port } } as Probe);
  }
  return undefined;
}

/** A probe's part of an interner key. */
function probeKey(key: string, field: string, p: Probe | undefined): string {
  if (p === undefined) return key;
  const [kind, target] = Object.entries(p)[0] as [string, ProbeTarget];
  return keyPart(keyPart(keyPart(key + 'q', field), kind), `${typeof target.port}:${target.port}`);
}

/** An interner key part for an optional string: "-" when absent, else length-prefixed. */
function keyOpt(key: string, s: string | undefined): string {
  return s === undefined ? key + '-' : keyPart(key, s);
}

/**
 * Workloads whose container image tags tell the Cilium or Istio release (src/policy/versions.ts): the
 * Cilium agent pods (`k8s-app: cilium`) and istiod (`app: istiod` / `istio: pilot`, pods and the
 * Deployment's template). Only their images are kept: a few strings per cluster, not one per pod.
 */
export function carriesVersion(labels: Readonly<Record<string, string>> | undefined): boolean {
  return labels?.['k8s-app'] === 'cilium' || labels?.app === 'istiod' || labels?.istio === 'pilot';
}

/** The slim container list; identical lists (the replicas of one workload) are shared. */
function containers(v: unknown, keepImages = false): Container[] {
  const out: Container[] = [];
  let key = '';
  for (const c of arr(v)) {
    if (!isRec(c)) continue;
    const image = keepImages ? istr(c.image) : undefined;
    const container = compact({
      name: istr(c.name) ?? '',
      image,
      ports: containerPorts(c.ports),
      livenessProbe: probe(c.livenessProbe),
      readinessProbe: probe(c.readinessProbe),
      startupProbe: probe(c.startupProbe),
    }) as Container;
    out.push(container);
    key = keyOpt(keyPart(key + 'c', container.name), image);
    for (const p of container.ports ?? []) key = keyOpt(keyOpt(keyPart(key + 'p', String(p.containerPort)), p.name), p.protocol);
    key = probeKey(probeKey(probeKey(key, 'l', container.livenessProbe), 'r', container.readinessProbe), 's', container.startupProbe);
  }
  const hit = containerLists.get(key);
  if (hit !== undefined) return hit;
  const list = exact(out);
  if (addShared) containerLists.set(key, list);
  return list;
}

/** The pod spec fields meshguard reads (pods and Deployment templates). */
export function transformPodSpec(v: unknown, keepImages = false): Pod['spec'] {
  const s = rec(v);
  const init = containers(s.initContainers);
  return compact({
    serviceAccountName: istr(s.serviceAccountName),
    hostNetwork: bool(s.hostNetwork),
    nodeName: istr(s.nodeName),
    containers: containers(s.containers, keepImages),
    // The shared list itself (a copy per pod cost 31,700 arrays at 50k pods, and as many class-id memo
    // entries keyed by them).
    initContainers: init.length > 0 ? init : undefined,
  }) as Pod['spec'];
}

function podStatus(v: unknown): Pod['status'] {
  if (!isRec(v)) return undefined;
  const podIP = str(v.podIP);
  const ips: { ip: string }[] = [];
  for (const p of arr(v.podIPs)) {
    const ip = isRec(p) ? str(p.ip) : undefined;
    // podIPs[0] repeats podIP: keep one string.
    if (ip !== undefined) ips.push({ ip: ip === podIP ? podIP : ip });
  }
  const status = compact({ phase: istr(v.phase), podIP, podIPs: nonEmpty(ips), hostIP: istr(v.hostIP) });
  // A status with nothing kept is no status: a pending pod's first conditions then change nothing.
  return Object.keys(status).length === 0 ? undefined : status;
}

function stringList(v: unknown): string[] | undefined {
  if (!Array.isArray(v)) return undefined;
  return exact(v.filter((x): x is string => typeof x === 'string'));
}

// ConfigMaps whose data rules read: Cilium agent config, Istio mesh config (default and per revision)
// and CoreDNS. Everything else keeps metadata only (CA bundles, injector templates, app config).
function keepConfigMapData(name: string): boolean {
  if (name === 'cilium-config' || name === 'coredns' || name === 'istio') return true;
  return name.startsWith('istio-') && !name.startsWith('istio-sidecar-injector') && name !== 'istio-ca-root-cert';
}

const POLICY_KINDS: ReadonlySet<KindName> = new Set([
  'NetworkPolicy',
  'CiliumNetworkPolicy',
  'CiliumClusterwideNetworkPolicy',
  'AuthorizationPolicy',
  'PeerAuthentication',
]);

function body(kind: KindName, raw: Rec, metadata: ObjectMeta): Rec {
  const spec = rec(raw.spec);
  switch (kind) {
    case 'Pod':
      return { spec: transformPodSpec(raw.spec, carriesVersion(metadata.labels)), status: podStatus(raw.status) };
    case 'Node': {
      const addresses: { type: string; address: string }[] = [];
      for (const a of arr(rec(raw.status).addresses)) {
        if (!isRec(a)) continue;
        const type = istr(a.type);
        const address = str(a.address);
        if (type !== undefined && address !== undefined) addresses.push({ type, address });
      }
      return {
        spec: isRec(raw.spec) ? compact({ podCIDR: str(spec.podCIDR), podCIDRs: stringList(spec.podCIDRs) }) : undefined,
        status: isRec(raw.status) ? compact({ addresses: nonEmpty(addresses) }) : undefined,
      };
    }
    case 'Service': {
      const ports: ServicePort[] = [];
      for (const p of arr(spec.ports)) {
        if (!isRec(p)) continue;
        const port = num(p.port);
        if (port === undefined) continue;
        const targetPort = typeof p.targetPort === 'string' ? (num(p.targetPort) ?? p.targetPort) : num(p.targetPort);
        ports.push(compact({ name: istr(p.name), port, targetPort: typeof targetPort === 'string' ? intern(targetPort) : targetPort, protocol: istr(p.protocol) }) as ServicePort);
      }
      return {
        spec: compact({
          selector: stringMap(spec.selector),
          ports: nonEmpty(ports),
          clusterIP: str(spec.clusterIP),
          clusterIPs: stringList(spec.clusterIPs),
          type: istr(spec.type),
        }),
      };
    }
    case 'EndpointSlice': {
      const endpoints: Rec[] = [];
      // Addresses only: rules judge every endpoint a Service may send to. Readiness (conditions) and the
      // targetRef are not kept: nothing reads them, and a readiness flip would otherwise be a new state.
      for (const e of arr(raw.endpoints)) {
        if (!isRec(e)) continue;
        endpoints.push({ addresses: stringList(e.addresses) ?? [] });
      }
      const ports: Rec[] = [];
      for (const p of arr(raw.ports)) {
        if (!isRec(p)) continue;
        ports.push(compact({ name: istr(p.name), port: num(p.port), protocol: istr(p.protocol) }));
      }
      return {
        addressType: istr(raw.addressType),
        endpoints: Array.isArray(raw.endpoints) ? exact(endpoints) : undefined,
        ports: Array.isArray(raw.ports) ? exact(ports) : undefined,
      };
    }
    case 'ConfigMap':
      return { data: keepConfigMapData(metadata.name) ? (stringMap(raw.data, undefined, false) ?? {}) : undefined };
    case 'Deployment': {
      const tmpl = rec(spec.template);
      const tmeta = rec(tmpl.metadata);
      const tm = compact({ labels: stringMap(tmeta.labels), annotations: stringMap(tmeta.annotations, keepAnnotation) });
      return {
        spec: compact({
          replicas: num(spec.replicas),
          selector: labelSelector(spec.selector),
          template: compact({
            metadata: Object.keys(tm).length > 0 ? tm : undefined,
            spec: transformPodSpec(tmpl.spec, carriesVersion(tm.labels ?? metadata.labels)),
          }),
        }),
      };
    }
    case 'RoleBinding':
    case 'ClusterRoleBinding': {
      const r = isRec(raw.roleRef) ? raw.roleRef : undefined;
      const subjects: Subject[] = [];
      for (const s of arr(raw.subjects)) {
        if (!isRec(s)) continue;
        const k = istr(s.kind);
        const name = str(s.name);
        if (k === undefined || name === undefined) continue;
        subjects.push(compact({ kind: k, name, namespace: istr(s.namespace) }) as Subject);
      }
      return {
        roleRef: r ? { kind: istr(r.kind) ?? '', name: istr(r.name) ?? '' } : undefined,
        subjects: Array.isArray(raw.subjects) ? exact(subjects) : undefined,
      };
    }
    case 'MutatingWebhookConfiguration':
    case 'ValidatingWebhookConfiguration': {
      const webhooks: Rec[] = [];
      for (const w of arr(raw.webhooks)) {
        if (!isRec(w)) continue;
        const cc = rec(w.clientConfig);
        const svc = isRec(cc.service) ? cc.service : undefined;
        // caBundle is never kept: it is not needed and has no place in logs or dumps.
        const clientConfig: WebhookClientConfig = compact({
          url: str(cc.url),
          service: svc
            ? compact({ name: str(svc.name) ?? '', namespace: str(svc.namespace) ?? '', port: num(svc.port), path: str(svc.path) })
            : undefined,
        });
        webhooks.push(
          compact({
            name: str(w.name) ?? '',
            clientConfig,
            failurePolicy: str(w.failurePolicy),
            namespaceSelector: labelSelector(w.namespaceSelector),
            objectSelector: labelSelector(w.objectSelector),
          }),
        );
      }
      return { webhooks: Array.isArray(raw.webhooks) ? exact(webhooks) : undefined };
    }
    case 'Gateway': {
      const listeners: Rec[] = [];
      for (const l of arr(spec.listeners)) {
        if (!isRec(l)) continue;
        const ns = isRec(l.allowedRoutes) && isRec(l.allowedRoutes.namespaces) ? l.allowedRoutes.namespaces : undefined;
        const allowedRoutes = ns ? { namespaces: compact({ from: istr(ns.from), selector: labelSelector(ns.selector) }) } : undefined;
        listeners.push(compact({ name: istr(l.name), port: num(l.port), protocol: istr(l.protocol), allowedRoutes }));
      }
      return {
        spec: isRec(raw.spec)
          ? compact({ gatewayClassName: str(spec.gatewayClassName), listeners: Array.isArray(spec.listeners) ? exact(listeners) : undefined })
          : undefined,
      };
    }
    case 'Namespace':
    case 'ServiceAccount':
      return {};
    default: {
      if (POLICY_KINDS.has(kind)) {
        const specs = Array.isArray(raw.specs) ? (plainJson(raw.specs.filter(isRec)) as Rec[]) : undefined;
        return { spec: isRec(raw.spec) ? plainJson(raw.spec) : undefined, specs };
      }
      return {};
    }
  }
}

function apiVersionFor(kind: KindName, raw: Rec): string {
  const given = str(raw.apiVersion);
  if (given) return intern(given);
  const k = KINDS[kind];
  return k.group ? `${k.group}/${k.version}` : k.version;
}

/** transformObject() for an object that lives for one admission request (see `addShared`). */
export function transformRequestObject(kind: KindName, raw: unknown): KubeObject {
  const previous = addShared;
  addShared = false;
  try {
    return transformObject(kind, raw);
  } finally {
    addShared = previous;
  }
}

/**
 * The slim copy of `raw` as kind `kind`: the fields listed in types.ts, nothing else. Never throws; odd
 * input gives a minimal valid object (empty name, no labels, empty container list, ...).
 */
export function transformObject(kind: KindName, raw: unknown): KubeObject {
  const r = rec(raw);
  try {
    const metadata = meta(kind, r);
    const b = body(kind, r, metadata);
    // A literal for pods, the bulk of the cache, so all five fields sit in the object (see meta()).
    if (kind === 'Pod') return compact({ apiVersion: apiVersionFor(kind, r), kind, metadata, spec: b.spec, status: b.status }) as KubeObject;
    return compact({ apiVersion: apiVersionFor(kind, r), kind, metadata, ...b }) as KubeObject;
  } catch {
    // Throwing getters or proxies on exotic input: fall back to the smallest object of that kind.
    return { apiVersion: apiVersionFor(kind, {}), kind, metadata: { name: '' }, ...minimalBody(kind) } as KubeObject;
  }
}

function minimalBody(kind: KindName): Rec {
  switch (kind) {
    case 'Pod':
      return { spec: { containers: [] } };
    case 'Service':
      return { spec: {} };
    case 'Deployment':
      return { spec: { template: { spec: { containers: [] } } } };
    default:
      return {};
  }
}
