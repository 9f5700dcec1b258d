// `meshguard snapshot`: list every kind meshguard reads once from a live cluster, slimmed the same way as
// the live cache, and write one `kind: List` YAML document that `--state` loads back.

import { stringify } from 'yaml';
import { InputError } from '../core/errors.ts';
import { CONFIGMAP_NAMESPACES, KIND_NAMES, KINDS, type KindName } from '../core/kinds.ts';
import type { KubeApi } from './kube-api.ts';
import { ApiStatusError, listKind, loadKubeConfig } from './live.ts';
import { istioNamespaces } from './snapshot.ts';
import type { KubeObject } from '../core/objects.ts';

export interface DumpOptions {
  readonly kubeconfigPath?: string;
  /** The kubeconfig context to use instead of current-context. */
  readonly context?: string;
  /** The Istio root namespace when it is neither istio-system nor istiod's namespace. */
  readonly istioRootNamespace?: string;
  /** Use this apiserver instead of loading a kubeconfig (tests). */
  readonly api?: KubeApi;
  /** Told when each list starts (listed 0) and after each of its pages (big kinds take a while). */
  readonly onProgress?: (progress: ListProgress) => void;
  /**
   * `yaml` (default): block YAML with a comment header. `json`: a JSON List (also valid YAML), which
   * loads ~40x faster than YAML for large clusters (readManifests takes a JSON fast path).
   */
  readonly format?: 'yaml' | 'json';
}

function byNamespaceName(a: KubeObject, b: KubeObject): number {
  const an = a.metadata.namespace ?? '';
  const bn = b.metadata.namespace ?? '';
  if (an !== bn) return an < bn ? -1 : 1;
  return a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0;
}

/** How far a list has got: `listed` objects of `kind` (in `namespace` for ConfigMaps) so far. */
export interface ListProgress {
  readonly kind: KindName;
  readonly namespace?: string;
  readonly listed: number;
}

export interface ClusterObjects {
  /** Slim objects, kinds in KIND_NAMES order, then by namespace/name. */
  readonly objects: readonly KubeObject[];
  /** Objects kept per kind, for every kind that is installed (missing ones are absent). */
  readonly counts: Readonly<Partial<Record<KindName, number>>>;
  /** Optional kinds whose CRD is not installed. */
  readonly missing: readonly KindName[];
  /** The apiserver URL they came from. */
  readonly server: string;
}

/**
 * List every kind meshguard reads once (no watches: a one-shot command fails fast), slimmed like the
 * live cache. CRDs that are not installed are skipped. ConfigMaps come only from kube-system,
 * istio-system, istiod's namespace and the mesh config's root namespace. Throws InputError for a bad
 * kubeconfig or when the cluster refuses a list.
 */
export async function listClusterObjects(opts: DumpOptions): Promise<ClusterObjects> {
  const api = opts.api ?? loadKubeConfig(opts.kubeconfigPath, opts.context);
  const server = api.server;
  try {
    const byKind = new Map<KindName, KubeObject[]>();
    const missing: KindName[] = [];

    const list = async (kind: KindName, namespace?: string): Promise<KubeObject[] | undefined> => {
      const progress = (listed: number) => opts.onProgress?.({ kind, ...(namespace !== undefined ? { namespace } : {}), listed });
      progress(0);
      try {
        return (await listKind(api, kind, namespace, progress)).items;
      } catch (err) {
        if (err instanceof ApiStatusError && err.statusCode === 404 && KINDS[kind].optional) return undefined;
        const why = err instanceof Error ? err.message : String(err);
        throw new InputError(`cannot list ${kind}${namespace ? ` in ${namespace}` : ''} from ${server}: ${why}`);
      }
    };

    for (const kind of KIND_NAMES) {
      if (kind === 'ConfigMap') continue; // below, once Deployments tell where istiod runs
      const items = await list(kind);
      if (items === undefined) missing.push(kind);
      else byKind.set(kind, items);
    }

    const cmNamespaces = new Set<string>([...CONFIGMAP_NAMESPACES, ...istioNamespaces(byKind.get('Deployment') ?? [])]);
    if (opts.istioRootNamespace) cmNamespaces.add(opts.istioRootNamespace);
    const configMaps: KubeObject[] = [];
    const done = new Set<string>();
    // Two rounds: the mesh config found in the first may name a root namespace not listed yet.
    for (let round = 0; round < 2; round++) {
      for (const ns of [...cmNamespaces].sort()) {
        if (done.has(ns)) continue;
        done.add(ns);
        configMaps.push(...((await list('ConfigMap', ns)) ?? []));
      }
      for (const ns of istioNamespaces(configMaps)) cmNamespaces.add(ns);
    }
    byKind.set('ConfigMap', configMaps);

    const objects: KubeObject[] = [];
    const counts: Partial<Record<KindName, number>> = {};
    for (const kind of KIND_NAMES) {
      const items = byKind.get(kind);
      if (items === undefined) continue;
      counts[kind] = items.length;
      objects.push(...items.slice().sort(byNamespaceName));
    }
    return { objects, counts, missing, server };
  } finally {
    if (!opts.api) api.close(); // a one-shot command: no idle connection left behind
  }
}

/**
 * The objects meshguard reads from the cluster (see listClusterObjects) as one YAML `kind: List`
 * document that `--state` loads back, with a comment header saying where and when it was taken.
 */
export async function dumpSnapshot(opts: DumpOptions): Promise<string> {
  return snapshotText(await listClusterObjects(opts), opts.format);
}

/** Listed objects as the snapshot file's text (see dumpSnapshot). */
export function snapshotText(listed: ClusterObjects, format: DumpOptions['format'] = 'yaml'): string {
  const { objects: items, missing, server } = listed;
  if (format === 'json') return `${JSON.stringify({ apiVersion: 'v1', kind: 'List', metadata: {}, items }, null, 2)}\n`;
  const header = [
    ` meshguard snapshot of ${server}`,
    ` taken ${new Date().toISOString()}; ${items.length} objects`,
    ...(missing.length > 0 ? [` not installed (empty): ${missing.join(', ')}`] : []),
    ' load with: meshguard check --state <this file> ...',
  ].join('\n');
  const body = stringify({ apiVersion: 'v1', kind: 'List', metadata: {}, items }, { lineWidth: 0, aliasDuplicateObjects: false, version: '1.1' });
  return `${header
    .split('\n')
    .map((l) => `#${l}`)
    .join('\n')}\n${body}`;
}
