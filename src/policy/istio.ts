// Istio semantics: which data plane serves a pod (sidecar / ambient / none), the effective
// PeerAuthentication mTLS mode for a pod and port, where an AuthorizationPolicy is enforced, which of
// its attributes need HTTP, and which waypoint serves a pod. Pure functions over a ClusterState.

import { parse as parseYaml } from 'yaml';
import type { ClusterState, Gateway, KubeObject, Labels, Namespace, Pod, PolicyObject, Service } from '../core/objects.ts';
import type { AuthzAttachment, EffectiveMtls, MeshMode, MtlsMode } from './types.ts';
import { perRevision, perRevisionFor } from './memo.ts';
import { matchesSelector } from './selectors.ts';

export const DEFAULT_ROOT_NAMESPACE = 'istio-system';
export const WAYPOINT_GATEWAY_CLASS = 'istio-waypoint';

const INJECT_LABEL = 'sidecar.istio.io/inject';
const INJECTION_NS_LABEL = 'istio-injection';
const REV_LABEL = 'istio.io/rev';
const DATAPLANE_MODE_LABEL = 'istio.io/dataplane-mode';
const REDIRECTION_ANNOTATION = 'ambient.istio.io/redirection';
const USE_WAYPOINT_LABEL = 'istio.io/use-waypoint';
const USE_WAYPOINT_NS_LABEL = 'istio.io/use-waypoint-namespace';
/** The injector and istio-cni never touch pods of these namespaces (Istio's defaults). */
const MESH_EXCLUDED_NAMESPACES = new Set(['kube-system', 'kube-public']);

// ---------- mesh mode ----------

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Gateways, waypoints and ztunnel run their proxy as the pod's only container, named istio-proxy: they
 * are mesh proxies themselves, neither sidecar workloads nor captured by ambient.
 */
export function isMeshProxyPod(pod: Pod): boolean {
  const cs = pod.spec?.containers ?? [];
  return cs.length > 0 && cs.every((c) => c?.name === 'istio-proxy');
}

/** A pod that already went through the injector (istio-proxy as container or native sidecar). */
function hasSidecar(pod: Pod): boolean {
  if (pod.metadata.annotations?.['sidecar.istio.io/status'] !== undefined) return true;
  const named = (cs: readonly { name: string }[] | undefined): boolean => (cs ?? []).some((c) => c?.name === 'istio-proxy');
  return named(pod.spec?.containers) || named(pod.spec?.initContainers);
}

function namespaceOf(state: ClusterState, pod: Pod): Namespace | undefined {
  return state.get('Namespace', undefined, pod.metadata.namespace ?? '');
}

/**
 * A namespace's own injection setting, as the injection webhooks' namespace selectors read it:
 * `istio-injection` wins (only `enabled` injects; any other value, e.g. `disabled`, turns injection off
 * for the namespace), then `istio.io/rev` (injects); undefined when the namespace sets neither (its
 * pods' own labels decide).
 */
function namespaceInjection(nsLabels: Labels): boolean | undefined {
  const inj = nsLabels[INJECTION_NS_LABEL];
  if (inj !== undefined) return inj === 'enabled';
  return nsLabels[REV_LABEL] !== undefined ? true : undefined;
}

/**
 * The namespace asks for sidecar injection of its pods (see namespaceInjection; kube-system and
 * kube-public never). Its pods may still opt out one by one (injectionRequested).
 */
export function namespaceInjectionEnabled(ns: KubeObject | undefined): boolean {
  if (!ns || MESH_EXCLUDED_NAMESPACES.has(ns.metadata.name)) return false;
  return namespaceInjection(ns.metadata.labels ?? {}) === true;
}

/**
 * The namespace is enrolled in ambient (`istio.io/dataplane-mode=ambient`; kube-system and kube-public
 * never). Its pods may still opt out (pod label `istio.io/dataplane-mode`, e.g. `none`; see meshMode).
 */
export function namespaceAmbientEnabled(ns: KubeObject | undefined): boolean {
  if (!ns || MESH_EXCLUDED_NAMESPACES.has(ns.metadata.name)) return false;
  return ns.metadata.labels?.[DATAPLANE_MODE_LABEL] === 'ambient';
}

/**
 * Whether the sidecar injector would inject this pod, following the selectors of Istio's injection
 * webhooks: namespace `istio-injection` wins (only `enabled` injects; any other value, e.g. `disabled`,
 * turns injection off for the namespace), then namespace `istio.io/rev`; in both cases the pod can opt out
 * with `sidecar.istio.io/inject=false`. In an unlabelled namespace only a pod labelled
 * `sidecar.istio.io/inject=true` or `istio.io/rev` is injected.
 */
export function injectionRequested(state: ClusterState, pod: Pod): boolean {
  const nsName = pod.metadata.namespace ?? '';
  if (MESH_EXCLUDED_NAMESPACES.has(nsName) || pod.spec?.hostNetwork) return false;
  const podLabels: Labels = pod.metadata.labels ?? {};
  const podAnn: Labels = pod.metadata.annotations ?? {};
  // The (deprecated) annotation still makes the injector skip the pod.
  const podOptOut = podLabels[INJECT_LABEL] === 'false' || (podLabels[INJECT_LABEL] === undefined && podAnn[INJECT_LABEL] === 'false');
  const nsInjection = namespaceInjection(namespaceOf(state, pod)?.metadata.labels ?? {});
  if (nsInjection !== undefined) return nsInjection && !podOptOut;
  if (podOptOut) return false;
  return podLabels[INJECT_LABEL] === 'true' || podLabels[REV_LABEL] !== undefined;
}

/** Whether ambient captures this pod (namespace or pod `istio.io/dataplane-mode=ambient`, not opted out). */
function ambientEnrolled(state: ClusterState, pod: Pod): boolean {
  const nsName = pod.metadata.namespace ?? '';
  if (MESH_EXCLUDED_NAMESPACES.has(nsName) || pod.spec?.hostNetwork) return false;
  if (pod.metadata.annotations?.[REDIRECTION_ANNOTATION] === 'disabled') return false;
  const podMode = pod.metadata.labels?.[DATAPLANE_MODE_LABEL];
  if (podMode !== undefined) return podMode === 'ambient';
  return namespaceAmbientEnabled(namespaceOf(state, pod));
}

/**
 * The data plane serving a pod. Mesh proxies (gateways, waypoints, ztunnel) are `none`. A live pod with
 * istio-proxy next to its app containers (or the injector's status annotation) is `sidecar`; otherwise the injection labels decide what the pod gets when it is (re)created; a sidecar
 * takes precedence over ambient enrolment.
 */
export function meshMode(state: ClusterState, pod: Pod): MeshMode {
  if (!pod?.metadata || !pod.spec) return 'none';
  if (isMeshProxyPod(pod)) return 'none';
  if (hasSidecar(pod)) return 'sidecar';
  if (injectionRequested(state, pod)) return 'sidecar';
  return ambientEnrolled(state, pod) ? 'ambient' : 'none';
}

// ---------- mesh config ----------

export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

/** What meshguard reads from Istio's mesh config. */
export interface IstioMeshConfig {
  /** `rootNamespace`, default istio-system. */
  readonly rootNamespace: string;
  /** `trustDomain`, default cluster.local: the first segment of every SPIFFE principal. */
  readonly trustDomain: string;
}

function nonEmptyString(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/**
 * The mesh config (istio ConfigMap `mesh` key in istio-system; revisioned installs name it
 * `istio-<revision>`): the first ConfigMap that has a `mesh` string decides, fields it leaves out (or a
 * `mesh` Istio would reject as YAML) take Istio's defaults. Parsed once per state revision.
 */
export function meshConfig(state: ClusterState): IstioMeshConfig {
  return perRevision(state, 'istioMeshConfig', () => {
    const cms = [state.get('ConfigMap', DEFAULT_ROOT_NAMESPACE, 'istio')];
    for (const cm of state.list('ConfigMap', DEFAULT_ROOT_NAMESPACE)) if (cm.metadata.name.startsWith('istio-')) cms.push(cm);
    for (const cm of cms) {
      const mesh = cm?.data?.['mesh'];
      if (typeof mesh !== 'string') continue;
      let parsed: unknown;
      try {
        parsed = parseYaml(mesh);
      } catch {
        // A mesh config Istio itself would reject: the defaults apply.
      }
      const m = isObj(parsed) ? parsed : {};
      return {
        rootNamespace: nonEmptyString(m['rootNamespace']) ?? DEFAULT_ROOT_NAMESPACE,
        trustDomain: nonEmptyString(m['trustDomain']) ?? DEFAULT_TRUST_DOMAIN,
      };
    }
    return { rootNamespace: DEFAULT_ROOT_NAMESPACE, trustDomain: DEFAULT_TRUST_DOMAIN };
  });
}

/** Root namespace from the mesh config (rootNamespace), default istio-system. */
export function istioRootNamespace(state: ClusterState): string {
  return meshConfig(state).rootNamespace;
}

/** The trust domain of the mesh (mesh config `trustDomain`), default cluster.local. */
export function istioTrustDomain(state: ClusterState): string {
  return meshConfig(state).trustDomain;
}

/** The SPIFFE principal Istio gives a pod's workload: <trust domain>/ns/<namespace>/sa/<service account>. */
export function principalOf(state: ClusterState, pod: Pod): string {
  return `${istioTrustDomain(state)}/ns/${pod.metadata.namespace ?? ''}/sa/${pod.spec?.serviceAccountName || 'default'}`;
}

// ---------- workload selectors ----------

/**
 * An Istio policy's `selector` (PeerAuthentication, AuthorizationPolicy): `none` when absent or with
 * an empty `matchLabels` (Istio: `selector == nil || labels ⊆ workload labels`, so an empty one selects
 * like none), `labels` otherwise, `invalid` when `selector` or `matchLabels` is not a map or a value is
 * not a string: the API server rejects such an object against Istio's CRD schema (map<string, string>),
 * so Istio never sees it and it applies to no pod.
 */
export type IstioSelector = { readonly kind: 'none' } | { readonly kind: 'labels'; readonly labels: Labels } | { readonly kind: 'invalid' };

export function istioSelectorOf(spec: Readonly<Record<string, unknown>> | undefined): IstioSelector {
  const sel = spec?.['selector'];
  if (sel === undefined || sel === null) return { kind: 'none' };
  if (!isObj(sel)) return { kind: 'invalid' };
  const ml = sel['matchLabels'];
  if (ml === undefined || ml === null) return { kind: 'none' };
  if (!isObj(ml)) return { kind: 'invalid' };
  const out: Record<string, string> = {};
  let n = 0;
  for (const [k, v] of Object.entries(ml)) {
    if (typeof v !== 'string') return { kind: 'invalid' };
    out[k] = v;
    n++;
  }
  return n > 0 ? { kind: 'labels', labels: out } : { kind: 'none' };
}

/** The selector's labels, or undefined for no selector and for an invalid one (callers that must tell them apart use istioSelectorOf). */
export function istioMatchLabels(spec: Readonly<Record<string, unknown>> | undefined): Labels | undefined {
  const sel = istioSelectorOf(spec);
  return sel.kind === 'labels' ? sel.labels : undefined;
}

function labelsMatch(matchLabels: Labels, labels: Labels | undefined): boolean {
  for (const [k, v] of Object.entries(matchLabels)) if (labels?.[k] !== v) return false;
  return true;
}

// ---------- PeerAuthentication ----------

/** STRICT / PERMISSIVE / DISABLE, or undefined for UNSET, a missing `mtls` or an unknown value. */
function modeOf(mtls: unknown): MtlsMode | undefined {
  if (!isObj(mtls)) return undefined;
  const m = mtls['mode'];
  return m === 'STRICT' || m === 'PERMISSIVE' || m === 'DISABLE' ? m : undefined;
}

function creationTimeOf(obj: PolicyObject): number {
  const ts = obj.metadata.creationTimestamp;
  const t = typeof ts === 'string' ? Date.parse(ts) : NaN;
  return Number.isNaN(t) ? Number.POSITIVE_INFINITY : t;
}

/** Istio resolves conflicts at one level by taking the oldest policy; name breaks ties deterministically. */
function older(a: PolicyObject, b: PolicyObject | undefined): boolean {
  if (!b) return true;
  const ta = creationTimeOf(a);
  const tb = creationTimeOf(b);
  if (ta !== tb) return ta < tb;
  return a.metadata.name < b.metadata.name;
}

/**
 * The mTLS mode a pod's sidecar/ztunnel accepts on `port` (the container port). Mesh-wide (root
 * namespace, no selector) < namespace (no selector) < workload (selector in the pod's namespace) <
 * workload `portLevelMtls`; UNSET inherits; a selector policy in the root namespace does not apply to
 * other namespaces' workloads; the default is PERMISSIVE.
 */
export function effectiveMtls(state: ClusterState, pod: Pod, port?: number): EffectiveMtls {
  const root = istioRootNamespace(state);
  const nsName = pod?.metadata?.namespace ?? '';
  let mesh: PolicyObject | undefined;
  let namespace: PolicyObject | undefined;
  let workload: PolicyObject | undefined;
  const consider = (pa: PolicyObject): void => {
    const sel = istioSelectorOf(pa.spec);
    if (sel.kind === 'invalid') return;
    const ml = sel.kind === 'labels' ? sel.labels : undefined;
    const paNs = pa.metadata.namespace ?? '';
    if (!ml) {
      if (paNs === root) {
        if (older(pa, mesh)) mesh = pa;
      } else if (paNs === nsName && older(pa, namespace)) namespace = pa;
    } else if (paNs === nsName && paNs !== root && labelsMatch(ml, pod.metadata.labels) && older(pa, workload)) {
      workload = pa;
    }
  };
  for (const pa of state.list('PeerAuthentication', nsName)) consider(pa);
  if (root !== nsName) for (const pa of state.list('PeerAuthentication', root)) consider(pa);

  let result: EffectiveMtls = { mode: 'PERMISSIVE' };
  const source = (pa: PolicyObject, level: 'root' | 'namespace' | 'workload' | 'port'): EffectiveMtls['source'] => ({
    namespace: pa.metadata.namespace ?? '',
    name: pa.metadata.name,
    level,
  });
  const meshMode_ = mesh && modeOf(mesh.spec?.['mtls']);
  if (mesh && meshMode_) result = { mode: meshMode_, source: source(mesh, 'root') };
  const nsMode = namespace && modeOf(namespace.spec?.['mtls']);
  if (namespace && nsMode) result = { mode: nsMode, source: source(namespace, 'namespace') };
  if (!workload) return result;
  const wlMode = modeOf(workload.spec?.['mtls']);
  if (wlMode) result = { mode: wlMode, source: source(workload, 'workload') };
  if (port !== undefined) {
    const perPort = workload.spec?.['portLevelMtls'];
    if (isObj(perPort)) {
      const pm = modeOf(perPort[String(port)]);
      if (pm) result = { mode: pm, source: source(workload, 'port') };
    }
  }
  return result;
}

// ---------- AuthorizationPolicy ----------

/**
 * An AuthorizationPolicy's targetRefs as Istio reads them (`model.GetTargetRefs`): `targetRefs` when it
 * lists any, else the deprecated singular `targetRef`; entries that are not objects are dropped.
 */
function targetRefsOf(spec: Readonly<Record<string, unknown>> | undefined): readonly Readonly<Record<string, unknown>>[] {
  const many = spec?.['targetRefs'];
  if (Array.isArray(many) && many.length > 0) return many.filter(isObj);
  const one = spec?.['targetRef'];
  return isObj(one) ? [one] : [];
}

/**
 * Where an AuthorizationPolicy is enforced and for which pods. `targetRefs` attach it to a waypoint (or
 * gateway) and `pods` is then empty; otherwise it applies to the pods its selector matches (in its
 * namespace, or in every namespace from the root namespace), or to every pod of its namespace (every pod
 * of the mesh from the root namespace); an invalid selector (see istioSelectorOf) applies to no pod.
 * `pods` lists every such pod whatever its mesh mode; `enforcer` says who enforces it for the meshed ones.
 */
export function authzAttachment(state: ClusterState, authorizationPolicy: PolicyObject): AuthzAttachment {
  return perRevisionFor(state, 'authzAttachment', authorizationPolicy, () => computeAttachment(state, authorizationPolicy));
}

function computeAttachment(state: ClusterState, ap: PolicyObject): AuthzAttachment {
  const spec = isObj(ap?.spec) ? ap.spec : undefined;
  const apNs = ap?.metadata?.namespace ?? '';
  const root = istioRootNamespace(state);
  const isRoot = apNs === root;
  const targetRefs = targetRefsOf(spec);
  const sel = istioSelectorOf(spec);
  const scope: AuthzAttachment['scope'] = sel.kind !== 'none' ? 'workload' : isRoot ? 'root' : 'namespace';
  if (targetRefs.length > 0) return { enforcer: 'waypoint', scope, pods: [], targetRefs };

  let pods: readonly Pod[];
  const searchNs = isRoot ? undefined : apNs;
  if (sel.kind === 'invalid') pods = [];
  else if (sel.kind === 'labels') {
    const ml = sel.labels;
    const [k, v] = Object.entries(ml)[0]!;
    pods = state.podsWithLabel(searchNs, k, v).filter((p) => labelsMatch(ml, p.metadata.labels));
  } else {
    pods = isRoot ? state.list('Pod') : state.list('Pod', apNs);
  }
  let ambient = 0;
  let sidecar = 0;
  for (const p of pods) {
    const m = meshMode(state, p);
    if (m === 'ambient') ambient++;
    else if (m === 'sidecar') sidecar++;
  }
  const enforcer: AuthzAttachment['enforcer'] =
    ambient > 0 && sidecar > 0 ? 'mixed' : ambient > 0 ? 'ztunnel' : sidecar > 0 ? 'sidecar' : 'none';
  return { enforcer, scope, pods, targetRefs };
}

/**
 * Does the workload's own proxy (ztunnel or sidecar) enforce this AuthorizationPolicy for `pod`? The
 * per-pod form of authzAttachment's `pods`: no targetRefs, the pod's namespace (any namespace from the
 * root namespace), and a valid selector matching its labels (no selector: every pod).
 */
export function authzSelectsPod(state: ClusterState, ap: PolicyObject, pod: Pod): boolean {
  const spec = isObj(ap?.spec) ? ap.spec : undefined;
  if (targetRefsOf(spec).length > 0) return false;
  const apNs = ap.metadata.namespace ?? '';
  if (apNs !== (pod.metadata.namespace ?? '') && apNs !== istioRootNamespace(state)) return false;
  const sel = istioSelectorOf(spec);
  return sel.kind === 'none' || (sel.kind === 'labels' && labelsMatch(sel.labels, pod.metadata.labels));
}

/** The AuthorizationPolicies a pod's own proxy (ztunnel or sidecar) enforces (see authzSelectsPod). */
export function workloadAuthorizationPolicies(state: ClusterState, pod: Pod): PolicyObject[] {
  const ns = pod.metadata.namespace ?? '';
  const root = istioRootNamespace(state);
  const candidates = root === ns ? state.list('AuthorizationPolicy', ns) : [...state.list('AuthorizationPolicy', ns), ...state.list('AuthorizationPolicy', root)];
  return candidates.filter((ap) => authzSelectsPod(state, ap, pod));
}

// ---------- which attributes need HTTP ----------

/** Source fields only an HTTP proxy can judge (ztunnel drops them: Istio's ambient authorization conversion). */
export const HTTP_SOURCE_FIELDS = ['requestPrincipals', 'notRequestPrincipals', 'remoteIpBlocks', 'notRemoteIpBlocks'] as const;
/** Operation fields only an HTTP proxy can judge. */
export const HTTP_OPERATION_FIELDS = ['hosts', 'notHosts', 'methods', 'notMethods', 'paths', 'notPaths'] as const;
/**
 * The `when` keys ztunnel enforces (Istio's ambient conversion: `l4WhenAttributes`); every other key
 * (request.*, remote.ip, connection.sni, experimental.envoy.filters.*) needs a proxy that sees the request.
 */
export const L4_CONDITION_KEYS: ReadonlySet<string> = new Set(['source.ip', 'source.namespace', 'source.principal', 'destination.ip', 'destination.port']);

function nonEmpty(v: unknown): boolean {
  return Array.isArray(v) ? v.length > 0 : v !== undefined && v !== null;
}

/**
 * The attributes of one AuthorizationPolicy rule that need HTTP (ztunnel cannot judge them), added to
 * `out` as "to.operation.paths", "when request.headers"...; ports, principals, namespaces, service
 * accounts, ipBlocks and the L4 `when` keys are not listed.
 */
export function ruleHttpAttributes(rule: unknown, out: Set<string>): void {
  if (!isObj(rule)) return;
  for (const from of Array.isArray(rule['from']) ? rule['from'] : []) {
    const src = isObj(from) ? from['source'] : undefined;
    if (!isObj(src)) continue;
    for (const f of HTTP_SOURCE_FIELDS) if (nonEmpty(src[f])) out.add(`from.source.${f}`);
  }
  for (const to of Array.isArray(rule['to']) ? rule['to'] : []) {
    const op = isObj(to) ? to['operation'] : undefined;
    if (!isObj(op)) continue;
    for (const f of HTTP_OPERATION_FIELDS) if (nonEmpty(op[f])) out.add(`to.operation.${f}`);
  }
  for (const cond of Array.isArray(rule['when']) ? rule['when'] : []) {
    const key = isObj(cond) ? cond['key'] : undefined;
    if (typeof key !== 'string' || key === '' || L4_CONDITION_KEYS.has(key)) continue;
    // "request.headers[x-user]" -> "request.headers": the attribute, not the header name.
    const bracket = key.indexOf('[');
    out.add(`when ${bracket < 0 ? key : key.slice(0, bracket)}`);
  }
}

/**
 * HTTP-only attributes an AuthorizationPolicy uses (e.g. ["to.operation.paths", "when request.headers"]),
 * each once (see ruleHttpAttributes).
 */
export function httpAttributesOf(authorizationPolicy: PolicyObject): readonly string[] {
  const out = new Set<string>();
  const rules = authorizationPolicy?.spec?.['rules'];
  if (!Array.isArray(rules)) return [];
  for (const rule of rules) ruleHttpAttributes(rule, out);
  return [...out];
}

// ---------- waypoints ----------

/** A waypoint asked for by label: the Gateway's namespace and name, whether or not it exists. */
export interface WaypointRequest {
  readonly namespace: string;
  readonly name: string;
}

/**
 * The waypoint an object asks for through `istio.io/use-waypoint` (its own label, else its namespace's;
 * `none` on the object opts it out of its namespace's waypoint). The Gateway lives in
 * `istio.io/use-waypoint-namespace` when set on the same object, else in the labelled object's namespace.
 */
function waypointRequest(state: ClusterState, namespace: string, labels: Labels): WaypointRequest | undefined {
  let name = labels[USE_WAYPOINT_LABEL];
  let gwNs = labels[USE_WAYPOINT_NS_LABEL];
  if (name === undefined) {
    const nsLabels: Labels = state.get('Namespace', undefined, namespace)?.metadata.labels ?? {};
    name = nsLabels[USE_WAYPOINT_LABEL];
    gwNs = nsLabels[USE_WAYPOINT_NS_LABEL];
  }
  if (!name || name === 'none') return undefined;
  return { namespace: gwNs || namespace, name };
}

/** The Gateway a request names, if it exists, is of class istio-waypoint and admits `namespace`. */
function resolveWaypoint(state: ClusterState, want: WaypointRequest | undefined, namespace: string): Gateway | undefined {
  if (!want) return undefined;
  const gw = state.get('Gateway', want.namespace, want.name);
  if (gw?.spec?.gatewayClassName !== WAYPOINT_GATEWAY_CLASS) return undefined;
  // A waypoint in another namespace serves only the namespaces its HBONE listener lets attach.
  return (gw.metadata.namespace ?? '') === namespace || attachAllowed(state, gw, namespace) ? gw : undefined;
}

/** The waypoint a pod asks for (pod label, else namespace label), whether or not it exists. */
export function requestedWaypoint(state: ClusterState, pod: Pod): WaypointRequest | undefined {
  return waypointRequest(state, pod?.metadata?.namespace ?? '', pod?.metadata?.labels ?? {});
}

/** The waypoint a Service asks for (Service label, else namespace label), whether or not it exists. */
export function requestedServiceWaypoint(state: ClusterState, svc: Service): WaypointRequest | undefined {
  return waypointRequest(state, svc.metadata.namespace ?? '', svc.metadata.labels ?? {});
}

/** The waypoint Gateway serving a pod (see requestedWaypoint), if it exists and admits the pod's namespace. */
export function waypointFor(state: ClusterState, pod: Pod): Gateway | undefined {
  return resolveWaypoint(state, requestedWaypoint(state, pod), pod?.metadata?.namespace ?? '');
}

/** The waypoint Gateway serving traffic to a Service's ClusterIP (see requestedServiceWaypoint). */
export function serviceWaypointFor(state: ClusterState, svc: Service): Gateway | undefined {
  return resolveWaypoint(state, requestedServiceWaypoint(state, svc), svc.metadata.namespace ?? '');
}

/**
 * May pods of `namespace` use a waypoint of another namespace? Its HBONE listener's
 * `allowedRoutes.namespaces` decides: `All`, or a `Selector` matching the namespace's labels; Gateway
 * API's default, `Same`, and a waypoint without an HBONE listener admit only their own namespace.
 */
function attachAllowed(state: ClusterState, gw: Gateway, namespace: string): boolean {
  const hbone = gw.spec?.listeners?.find((l) => l.protocol === 'HBONE');
  const from = hbone?.allowedRoutes?.namespaces?.from ?? 'Same';
  if (from === 'All') return true;
  if (from !== 'Selector') return false;
  const selector = hbone?.allowedRoutes?.namespaces?.selector;
  if (!selector) return false;
  const labels = { 'kubernetes.io/metadata.name': namespace, ...(state.get('Namespace', undefined, namespace)?.metadata.labels ?? {}) };
  return matchesSelector(selector, labels);
}

const GATEWAY_API_GROUP = 'gateway.networking.k8s.io';

/** A targetRef naming a Gateway API kind. Istio reads a missing group as core: it must be Gateway API's. */
function isGatewayApiRef(ref: Readonly<Record<string, unknown>>, kind: 'Gateway' | 'GatewayClass'): boolean {
  return ref['kind'] === kind && ref['group'] === GATEWAY_API_GROUP;
}

/**
 * Does an AuthorizationPolicy's `targetRefs` attach it to this waypoint? Either through the Gateway
 * itself (the policy must live in the Gateway's namespace: a targetRef does not cross namespaces), or,
 * from the root namespace, through the `istio-waypoint` GatewayClass, which applies to every waypoint
 * (Istio 1.25 and later).
 */
export function targetsWaypoint(state: ClusterState, ap: PolicyObject, waypoint: Gateway): boolean {
  const apNs = ap.metadata.namespace ?? '';
  for (const ref of authzAttachment(state, ap).targetRefs) {
    if (isGatewayApiRef(ref, 'Gateway') && ref['name'] === waypoint.metadata.name && apNs === (waypoint.metadata.namespace ?? '')) return true;
    if (isGatewayApiRef(ref, 'GatewayClass') && ref['name'] === WAYPOINT_GATEWAY_CLASS && apNs === istioRootNamespace(state)) return true;
  }
  return false;
}

/**
 * Pods whose waypoint an AuthorizationPolicy attaches to through its Gateway or GatewayClass targetRefs.
 * A waypoint serves the pods of its own namespace and of any namespace (or pod) that names it with
 * `istio.io/use-waypoint-namespace`; the GatewayClass attaches to every waypoint of the mesh.
 */
export function podsBehindTargetedWaypoints(state: ClusterState, ap: PolicyObject): Pod[] {
  const refs = authzAttachment(state, ap).targetRefs;
  const apNs = ap.metadata.namespace ?? '';
  let candidates: readonly Pod[];
  if (refs.some((r) => isGatewayApiRef(r, 'GatewayClass') && r['name'] === WAYPOINT_GATEWAY_CLASS) && apNs === istioRootNamespace(state)) {
    candidates = state.list('Pod');
  } else if (refs.some((r) => isGatewayApiRef(r, 'Gateway'))) {
    const out = new Set<Pod>(state.list('Pod', apNs));
    for (const n of state.list('Namespace')) {
      if (n.metadata.labels?.[USE_WAYPOINT_NS_LABEL] === apNs) for (const p of state.list('Pod', n.metadata.name)) out.add(p);
    }
    for (const p of state.podsWithLabel(undefined, USE_WAYPOINT_NS_LABEL, apNs)) out.add(p);
    candidates = [...out];
  } else {
    return [];
  }
  return candidates.filter((p) => {
    const wp = waypointFor(state, p);
    return wp !== undefined && targetsWaypoint(state, ap, wp);
  });
}

/** A targetRef naming this Service (core group): a waypoint enforces the policy for traffic to it. */
function isServiceRef(ref: Readonly<Record<string, unknown>>, svc: Service): boolean {
  return ref['kind'] === 'Service' && (ref['group'] ?? '') === '' && ref['name'] === svc.metadata.name;
}

/**
 * The AuthorizationPolicies a waypoint enforces for traffic it takes: those attached to the waypoint
 * (targetsWaypoint) and, for traffic addressed to Service `svc`, those whose targetRefs name the Service
 * from its own namespace.
 */
export function waypointAuthorizationPolicies(state: ClusterState, waypoint: Gateway, svc: Service | undefined): PolicyObject[] {
  const out: PolicyObject[] = [];
  for (const ap of state.list('AuthorizationPolicy')) {
    // targetRefsOf, not authzAttachment: a workload policy's attachment would list its pods.
    const refs = targetRefsOf(isObj(ap.spec) ? ap.spec : undefined);
    if (refs.length === 0) continue;
    if (targetsWaypoint(state, ap, waypoint)) out.push(ap);
    else if (svc && (ap.metadata.namespace ?? '') === (svc.metadata.namespace ?? '') && refs.some((r) => isServiceRef(r, svc))) out.push(ap);
  }
  return out;
}
