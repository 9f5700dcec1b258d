// Synthetic cluster states for the benchmark: realistic label sets, one policy per 5-10 pods, a mix of
// CNP / CCNP / NetworkPolicy / AuthorizationPolicy / PeerAuthentication, sidecar, ambient and
// unmeshed namespaces. Deterministic for a given size (seeded PRNG), so runs compare.

export type Obj = Record<string, unknown> & { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; [key: string]: unknown } };

export const PODS_PER_NAMESPACE = 50;
export const APPS_PER_NAMESPACE = 5;

/** Small deterministic PRNG (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * From this size on, the last BULK_PODS pods live in one namespace (BULK_NAMESPACE, unmeshed): the
 * worst-case Namespace relabel of issue 21 moves that many pods into ambient at once. Smaller states
 * are generated as before.
 */
export const BULK_MIN_PODS = 50_000;
export const BULK_PODS = 2_500;
export const BULK_NAMESPACE = 'bulk-0000';

/** How many team-NNNN namespaces (PODS_PER_NAMESPACE pods each) a state of `pods` pods has. */
export function regularNamespaces(pods: number): number {
  return Math.max(1, Math.ceil((pods - (pods >= BULK_MIN_PODS ? BULK_PODS : 0)) / PODS_PER_NAMESPACE));
}

export type MeshFlavour = 'sidecar' | 'ambient' | 'none';
export function flavourOf(nsIndex: number): MeshFlavour {
  return (['sidecar', 'ambient', 'none'] as const)[nsIndex % 3]!;
}
export function nsName(i: number): string {
  return `team-${String(i).padStart(4, '0')}`;
}

function hex(rand: () => number, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += Math.floor(rand() * 16).toString(16);
  return s;
}

/** Every object of a synthetic cluster with `pods` application pods. */
export function generateCluster(pods: number, seed = 42): Obj[] {
  const rand = prng(seed);
  const out: Obj[] = [];
  const nodes = Math.max(3, Math.ceil(pods / 30));

  for (let n = 0; n < nodes; n++) {
    out.push({
      apiVersion: 'v1', kind: 'Node',
      metadata: { name: `node-${n}`, labels: { 'kubernetes.io/hostname': `node-${n}`, 'topology.kubernetes.io/zone': `zone-${n % 3}` } },
      spec: { podCIDR: `10.${100 + Math.floor(n / 256)}.${n % 256}.0/24` },
      status: { addresses: [{ type: 'InternalIP', address: `192.168.${Math.floor(n / 250)}.${(n % 250) + 1}` }, { type: 'Hostname', address: `node-${n}` }] },
    });
  }
  // Control plane and cluster plumbing.
  for (const name of ['default', 'kube-system', 'istio-system']) {
    out.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { 'kubernetes.io/metadata.name': name } } });
  }
  out.push({
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { name: 'kubernetes', namespace: 'default', labels: { 'kubernetes.io/service-name': 'kubernetes' } },
    addressType: 'IPv4', endpoints: [{ addresses: ['192.168.0.1'] }], ports: [{ name: 'https', port: 6443, protocol: 'TCP' }],
  });
  out.push({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'kubernetes', namespace: 'default' }, spec: { clusterIP: '10.96.0.1', ports: [{ name: 'https', port: 443, targetPort: 6443, protocol: 'TCP' }] } });
  out.push({
    apiVersion: 'v1', kind: 'Service', metadata: { name: 'kube-dns', namespace: 'kube-system', labels: { 'k8s-app': 'kube-dns' } },
    spec: { clusterIP: '10.96.0.10', selector: { 'k8s-app': 'kube-dns' }, ports: [{ name: 'dns', port: 53, targetPort: 53, protocol: 'UDP' }, { name: 'dns-tcp', port: 53, targetPort: 53, protocol: 'TCP' }] },
  });
  for (let i = 0; i < 2; i++) {
    out.push(podObj('kube-system', `coredns-${hex(rand, 5)}`, { 'k8s-app': 'kube-dns', 'pod-template-hash': hex(rand, 10) }, 'coredns', `10.100.0.${10 + i}`, `node-${i}`, false, [{ name: 'dns', containerPort: 53, protocol: 'UDP' }, { name: 'dns-tcp', containerPort: 53, protocol: 'TCP' }]));
  }
  out.push({
    apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cilium-config', namespace: 'kube-system' },
    data: { 'routing-mode': 'native', 'kube-proxy-replacement': 'true', 'bpf-lb-sock-hostns-only': 'true', 'cni-exclusive': 'false', 'enable-policy': 'default', 'enable-l7-proxy': 'true' },
  });
  out.push({
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'istiod', namespace: 'istio-system', labels: { app: 'istiod' } },
    spec: { replicas: 2, selector: { matchLabels: { app: 'istiod' } }, template: { metadata: { labels: { app: 'istiod', istio: 'pilot' } }, spec: { serviceAccountName: 'istiod', containers: [{ name: 'discovery', image: 'istio/pilot:1.28.1', ports: [{ containerPort: 15017 }, { containerPort: 15012 }] }] } } },
  });
  for (let i = 0; i < 2; i++) {
    out.push(podObj('istio-system', `istiod-${hex(rand, 5)}`, { app: 'istiod', istio: 'pilot' }, 'istiod', `10.100.0.${20 + i}`, `node-${i}`, false, [{ containerPort: 15017 }, { containerPort: 15012 }]));
  }
  out.push({
    apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', metadata: { name: 'istio-sidecar-injector' },
    webhooks: [{ name: 'namespace.sidecar-injector.istio.io', clientConfig: { service: { name: 'istiod', namespace: 'istio-system', path: '/inject', port: 443 } }, failurePolicy: 'Fail', sideEffects: 'None', admissionReviewVersions: ['v1'] }],
  });
  // A few cluster-wide policies: allow everything to reach DNS, and a host-firewall-free baseline.
  out.push({
    apiVersion: 'cilium.io/v2', kind: 'CiliumClusterwideNetworkPolicy', metadata: { name: 'allow-dns-everywhere' },
    spec: { endpointSelector: { matchExpressions: [{ key: 'io.kubernetes.pod.namespace', operator: 'NotIn', values: ['kube-system'] }] }, egress: [{ toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s-app': 'kube-dns' } }], toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }], rules: { dns: [{ matchPattern: '*' }] } }] }] },
  });
  out.push({
    apiVersion: 'cilium.io/v2', kind: 'CiliumClusterwideNetworkPolicy', metadata: { name: 'allow-apiserver-for-operators' },
    spec: { endpointSelector: { matchLabels: { 'role': 'operator' } }, egress: [{ toEntities: ['kube-apiserver'] }] },
  });
  // Selected by a Namespace label: production namespaces take metrics scrapes from monitoring only.
  out.push({
    apiVersion: 'cilium.io/v2', kind: 'CiliumClusterwideNetworkPolicy', metadata: { name: 'prod-metrics-from-monitoring' },
    spec: {
      endpointSelector: { matchLabels: { 'io.cilium.k8s.namespace.labels.env': 'prod' } },
      ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'monitoring' } }], toPorts: [{ ports: [{ port: '9090', protocol: 'TCP' }] }] }],
    },
  });

  const bulk = pods >= BULK_MIN_PODS ? BULK_PODS : 0;
  const regular = regularNamespaces(pods);
  const spaces: { ns: string; i: number; flavour: MeshFlavour; size: number }[] = [];
  for (let i = 0; i < regular; i++) spaces.push({ ns: nsName(i), i, flavour: flavourOf(i), size: PODS_PER_NAMESPACE });
  if (bulk > 0) spaces.push({ ns: BULK_NAMESPACE, i: regular, flavour: 'none', size: bulk });
  let podNo = 0;
  for (const { ns, i, flavour, size } of spaces) {
    if (podNo >= pods) break;
    const nsLabels: Record<string, string> = { 'kubernetes.io/metadata.name': ns, team: `t${i % 17}`, env: i % 4 === 0 ? 'prod' : 'dev' };
    if (flavour === 'sidecar') nsLabels['istio-injection'] = 'enabled';
    if (flavour === 'ambient') nsLabels['istio.io/dataplane-mode'] = 'ambient';
    out.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: nsLabels } });
    out.push({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default', namespace: ns } });
    for (let a = 0; a < APPS_PER_NAMESPACE; a++) {
      const app = `app-${a}`;
      out.push({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: app, namespace: ns } });
      out.push({
        apiVersion: 'v1', kind: 'Service', metadata: { name: app, namespace: ns },
        spec: { selector: { app }, clusterIP: `10.${97 + Math.floor(i / 250)}.${i % 250}.${a + 10}`, ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }] },
      });
    }
    // One app per namespace talks to the API server (an RBAC subject).
    out.push({
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'app-0-reader', namespace: ns },
      roleRef: { kind: 'ClusterRole', name: 'view' }, subjects: [{ kind: 'ServiceAccount', name: 'app-0', namespace: ns }],
    });
    const hash = hex(rand, 10);
    const podNames = new Set<string>();
    for (let p = 0; p < size && podNo < pods; p++, podNo++) {
      const a = p % APPS_PER_NAMESPACE;
      const labels: Record<string, string> = {
        app: `app-${a}`, version: `v${1 + (p % 2)}`, tier: (['web', 'api', 'worker', 'db', 'cache'] as const)[a]!,
        'pod-template-hash': hash, 'app.kubernetes.io/part-of': `product-${i % 23}`,
      };
      if (flavour === 'sidecar') { labels['security.istio.io/tlsMode'] = 'istio'; labels['service.istio.io/canonical-name'] = `app-${a}`; }
      const ip = `10.${100 + Math.floor(podNo / 65000)}.${Math.floor(podNo / 250) % 256}.${(podNo % 250) + 2}`;
      // Five random hex digits, as a ReplicaSet names its pods; drawn again on the rare clash (about one
      // in five 50k-pod clusters has one), which a real apiserver would refuse as a duplicate.
      let name = `app-${a}-${hash}-${hex(rand, 5)}`;
      while (podNames.has(name)) name = `app-${a}-${hash}-${hex(rand, 5)}`;
      podNames.add(name);
      out.push(podObj(ns, name, labels, `app-${a}`, ip, `node-${podNo % nodes}`, flavour === 'sidecar', [{ name: 'http', containerPort: 8080, protocol: 'TCP' }]));
    }
    // Policies: ~1 per 7 pods.
    out.push({
      apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: 'default-deny-with-dns', namespace: ns },
      spec: {
        endpointSelector: {},
        ingress: [{ fromEndpoints: [{}] }],
        egress: [
          { toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s-app': 'kube-dns' } }], toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }] }] },
          { toEndpoints: [{}] },
        ],
      },
    });
    for (let a = 1; a < APPS_PER_NAMESPACE; a++) {
      out.push({
        apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: `app-${a}-from-app-${a - 1}`, namespace: ns },
        spec: { endpointSelector: { matchLabels: { app: `app-${a}` } }, ingress: [{ fromEndpoints: [{ matchLabels: { app: `app-${a - 1}` } }], toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }, ...(flavour === 'ambient' ? [{ port: '15008', protocol: 'TCP' }] : [])] }] }, ...(flavour === 'ambient' ? [{ fromCIDR: ['169.254.7.127/32'] }] : [])] },
      });
    }
    out.push({
      apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'allow-monitoring', namespace: ns },
      spec: { podSelector: {}, policyTypes: ['Ingress'], ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }], ports: [{ port: 9090, protocol: 'TCP' }] }] },
    });
    if (flavour !== 'none') {
      out.push({
        apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'app-1-l4', namespace: ns },
        spec: { selector: { matchLabels: { app: 'app-1' } }, action: 'ALLOW', rules: [{ from: [{ source: { principals: [`cluster.local/ns/${ns}/sa/app-0`] } }], to: [{ operation: { ports: ['8080'] } }] }] },
      });
      out.push({ apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'default', namespace: ns }, spec: { mtls: { mode: i % 2 === 0 ? 'STRICT' : 'PERMISSIVE' } } });
    }
  }
  return out;
}

function podObj(namespace: string, name: string, labels: Record<string, string>, sa: string, ip: string, node: string, sidecar: boolean, ports: unknown[]): Obj {
  const containers: Record<string, unknown>[] = [{ name: 'app', image: 'registry.example/app:1.0', ports, resources: { requests: { cpu: '100m', memory: '128Mi' } }, env: [{ name: 'LOG_LEVEL', value: 'info' }] }];
  if (sidecar) containers.push({ name: 'istio-proxy', image: 'istio/proxyv2:1.28.1', ports: [{ name: 'http-envoy-prom', containerPort: 15090, protocol: 'TCP' }] });
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: {
      name, namespace, labels, uid: `uid-${name}`, resourceVersion: '1',
      annotations: { ...(sidecar ? { 'sidecar.istio.io/status': '{"initContainers":["istio-init"],"containers":["istio-proxy"]}' } : {}), 'kubectl.kubernetes.io/restartedAt': '2026-11-01T00:00:00Z' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${labels['app'] ?? 'x'}-rs`, uid: 'rs', controller: true }],
    },
    spec: { serviceAccountName: sa, nodeName: node, containers, ...(sidecar ? { initContainers: [{ name: 'istio-init', image: 'istio/proxyv2:1.28.1' }] } : {}), volumes: [{ name: 'kube-api-access', projected: { sources: [] } }] },
    status: { phase: 'Running', podIP: ip, podIPs: [{ ip }], hostIP: '192.168.0.1', conditions: [{ type: 'Ready', status: 'True' }] },
  };
}
