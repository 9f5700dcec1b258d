// The benchmark's request mix: AdmissionReview bodies as kube-apiserver would send them for a
// realistic stream of applies against a synthetic cluster (see cluster-gen.ts).

import { type Obj, APPS_PER_NAMESPACE, flavourOf, nsName, regularNamespaces } from './cluster-gen.ts';

export interface BenchRequest {
  /** Label for per-kind reporting. */
  readonly label: string;
  readonly review: Record<string, unknown>;
}

function gvk(apiVersion: string, kind: string): { group: string; version: string; kind: string } {
  const i = apiVersion.indexOf('/');
  return i < 0 ? { group: '', version: apiVersion, kind } : { group: apiVersion.slice(0, i), version: apiVersion.slice(i + 1), kind };
}

/**
 * Every object of the mix carries this label. bench/load.ts can overwrite its digits per request
 * (`--repeat new` / `twice`) so that no two requests are alike: the label survives the state transform,
 * so it is part of the verdict cache's key, and no rule or selector reads it.
 */
export const SEQ_LABEL = 'bench.meshguard.io/seq';
export const SEQ_PLACEHOLDER = 'seq-00000000';

function withSeq(o: Obj): Obj {
  const m = o.metadata as Obj['metadata'] & { labels?: Record<string, string> };
  return { ...o, metadata: { ...m, labels: { ...m.labels, [SEQ_LABEL]: SEQ_PLACEHOLDER } } };
}

let uidSeq = 0;
export function review(operation: string, object: Obj | null, oldObject: Obj | null, dryRun = false, seq = false): Record<string, unknown> {
  if (seq) {
    object = object && withSeq(object);
    oldObject = oldObject && withSeq(oldObject);
  }
  const subject = (object ?? oldObject)!;
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: `bench-${++uidSeq}`,
      kind: gvk(subject.apiVersion, subject.kind),
      resource: { group: gvk(subject.apiVersion, subject.kind).group, version: gvk(subject.apiVersion, subject.kind).version, resource: subject.kind.toLowerCase() + 's' },
      requestKind: gvk(subject.apiVersion, subject.kind),
      name: subject.metadata.name,
      namespace: subject.metadata.namespace ?? '',
      operation,
      userInfo: { username: 'kubernetes-admin', groups: ['system:masters', 'system:authenticated'] },
      object,
      oldObject,
      dryRun,
      options: null,
    },
  };
}

/** A namespace index that exists in a cluster of `pods` pods with the wanted mesh flavour. */
function nsWith(pods: number, flavour: 'sidecar' | 'ambient' | 'none', k: number): number {
  const namespaces = regularNamespaces(pods);
  for (let i = k % namespaces, tries = 0; tries < namespaces; tries++, i = (i + 1) % namespaces) {
    if (flavourOf(i) === flavour) return i;
  }
  return 0;
}

/**
 * A deterministic mix of `count` requests:
 * 30% CNP create with egress rules (DNS / apiserver checks), 15% L7 policy on meshed workloads,
 * 10% Namespace label updates (half of a label a policy selects on), 10% policy DELETEs, 10% policy UPDATEs, 25% objects meshguard does not model.
 */
export function requestMix(pods: number, count: number): BenchRequest[] {
  const out: BenchRequest[] = [];
  const namespaces = regularNamespaces(pods);
  for (let k = 0; k < count; k++) {
    const slot = k % 20;
    const ns = nsName(k % namespaces);
    const app = `app-${k % APPS_PER_NAMESPACE}`;
    if (slot < 6) {
      const cnp: Obj = {
        apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: `egress-${k}`, namespace: ns },
        spec: {
          endpointSelector: { matchLabels: { app } },
          egress: k % 2 === 0
            ? [{ toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s-app': 'kube-dns' } }], toPorts: [{ ports: [{ port: '53', protocol: 'UDP' }] }] }, { toEntities: ['kube-apiserver'] }]
            : [{ toEndpoints: [{ matchLabels: { app: 'app-2' } }], toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }] }] }],
        },
      };
      out.push({ label: 'cnp-egress-create', review: review('CREATE', cnp, null, false, true) });
    } else if (slot < 9) {
      const meshed = nsName(nsWith(pods, k % 2 === 0 ? 'sidecar' : 'ambient', k));
      const cnp: Obj = {
        apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: `l7-${k}`, namespace: meshed },
        spec: { endpointSelector: { matchLabels: { app } }, ingress: [{ fromEndpoints: [{}], toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }], rules: { http: [{ method: 'GET', path: '/ip' }] } }] }] },
      };
      out.push({ label: 'l7-meshed-create', review: review('CREATE', cnp, null, false, true) });
    } else if (slot < 11) {
      const i = k % namespaces;
      const labels: Record<string, string> = { 'kubernetes.io/metadata.name': ns, team: `t${i % 17}`, env: i % 4 === 0 ? 'prod' : 'dev' };
      if (flavourOf(i) === 'sidecar') labels['istio-injection'] = 'enabled';
      if (flavourOf(i) === 'ambient') labels['istio.io/dataplane-mode'] = 'ambient';
      const old: Obj = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels } };
      // Half change a label a policy selects on (env), half one nothing reads (cost-center).
      const changed = slot === 9 ? { ...labels, env: labels['env'] === 'prod' ? 'dev' : 'prod' } : { ...labels, 'cost-center': `cc-${k}` };
      const updated: Obj = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: changed } };
      out.push({ label: 'namespace-update', review: review('UPDATE', updated, old, false, true) });
    } else if (slot < 13) {
      const a = 1 + (k % (APPS_PER_NAMESPACE - 1));
      const flavour = flavourOf(k % namespaces);
      const old: Obj = {
        apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: `app-${a}-from-app-${a - 1}`, namespace: ns },
        spec: { endpointSelector: { matchLabels: { app: `app-${a}` } }, ingress: [{ fromEndpoints: [{ matchLabels: { app: `app-${a - 1}` } }], toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }, ...(flavour === 'ambient' ? [{ port: '15008', protocol: 'TCP' }] : [])] }] }, ...(flavour === 'ambient' ? [{ fromCIDR: ['169.254.7.127/32'] }] : [])] },
      };
      out.push({ label: 'policy-delete', review: review('DELETE', null, old, false, true) });
    } else if (slot < 15) {
      const old: Obj = {
        apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'allow-monitoring', namespace: ns },
        spec: { podSelector: {}, policyTypes: ['Ingress'], ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }], ports: [{ port: 9090, protocol: 'TCP' }] }] },
      };
      const updated: Obj = { ...old, spec: { ...(old['spec'] as object), ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }], ports: [{ port: 9090, protocol: 'TCP' }, { port: 9091, protocol: 'TCP' }] }] } };
      out.push({ label: 'policy-update', review: review('UPDATE', updated, old, false, true) });
    } else {
      const cm: Obj = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `app-config-${k}`, namespace: ns }, data: { 'settings.yaml': 'a: 1\nb: 2\n'.repeat(20) } };
      out.push({ label: 'irrelevant', review: review('CREATE', cm, null, false, true) });
    }
  }
  return out;
}
