// Cluster state from files: what `kubectl get -A -o yaml` or `meshguard snapshot` wrote.

import { InputError } from '../core/errors.ts';
import { CONFIGMAP_NAMESPACES, KIND_NAMES, kindOf, type KindName } from './kinds.ts';
import { type InputLimits } from './io/input.ts';
import { forEachManifest } from './io/manifests.ts';
import { MemoryState } from './store.ts';
import { transformObject } from './transform.ts';
import type { KubeObject, StateSource, StateStats } from './types.ts';

export interface LoadOptions {
  /** Label for describe(). */
  readonly label?: string;
  /**
   * Keep ConfigMaps only from CONFIGMAP_NAMESPACES plus these namespaces (the Istio root namespace).
   * Undefined = keep ConfigMaps from every namespace.
   */
  readonly configMapNamespaces?: readonly string[];
}

/** Load the slim copies of `objs` into `state`; returns how many were kept. */
function load(state: MemoryState, objs: readonly unknown[], opts: LoadOptions): number {
  const cmNamespaces = opts.configMapNamespaces
    ? new Set<string>([...CONFIGMAP_NAMESPACES, ...opts.configMapNamespaces])
    : undefined;
  let n = 0;
  for (const raw of objs) {
    const kind = kindOf(raw as { apiVersion?: string; kind?: string } | null);
    if (!kind) continue;
    const obj = transformObject(kind, raw);
    if (!obj.metadata.name) continue;
    if (kind === 'ConfigMap' && cmNamespaces && !cmNamespaces.has(obj.metadata.namespace ?? '')) continue;
    state.upsert(kind, obj);
    n++;
  }
  return n;
}

/**
 * A MemoryState holding the slim copies of `objs`. Objects of kinds meshguard does not read, and objects
 * without a name, are ignored.
 */
export function stateFromObjects(objs: readonly unknown[], opts: LoadOptions = {}): MemoryState {
  const state = new MemoryState(opts.label ?? 'memory');
  load(state, objs, opts);
  return state;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Namespaces that may be the Istio root namespace, told cheaply from raw objects: where istiod runs (the
 * root namespace defaults to istiod's own) and any `rootNamespace:` in an istio mesh config ConfigMap.
 */
export function istioNamespaces(objs: readonly unknown[]): string[] {
  const out = new Set<string>();
  for (const o of objs) {
    if (!isRecord(o) || !isRecord(o.metadata)) continue;
    const name = o.metadata.name;
    const ns = o.metadata.namespace;
    if (typeof name !== 'string' || typeof ns !== 'string') continue;
    const kind = kindOf(o as { apiVersion?: string; kind?: string });
    if (kind === 'Deployment' && name.startsWith('istiod')) out.add(ns);
    if (kind === 'ConfigMap' && (name === 'istio' || name.startsWith('istio-')) && isRecord(o.data)) {
      const mesh = o.data.mesh;
      const m = typeof mesh === 'string' ? /^rootNamespace:\s*["']?([a-z0-9]([-a-z0-9]*[a-z0-9])?)["']?\s*$/m.exec(mesh) : null;
      if (m?.[1]) out.add(m[1]);
    }
  }
  return [...out];
}

export interface SnapshotOptions {
  /** The Istio root namespace, when known (its ConfigMaps are kept besides kube-system/istio-system). */
  readonly istioRootNamespace?: string;
  /** Size bounds of the files read (default DEFAULT_INPUT_LIMITS). */
  readonly limits?: InputLimits;
}

function describeFiles(paths: readonly string[], files: number): string {
  return `snapshot(${files} file${files === 1 ? '' : 's'}${paths.length === 1 ? `: ${paths[0]}` : ''})`;
}

/**
 * Load a state from manifest files/directories (see readManifests). Kinds meshguard does not read are
 * ignored, and ConfigMaps outside kube-system, istio-system and the Istio root namespace too. Throws
 * InputError on unreadable or invalid files.
 */
export function loadSnapshot(paths: readonly string[], opts: SnapshotOptions = {}): MemoryState {
  const state = new MemoryState('snapshot');
  fill(state, paths, opts);
  return state;
}

function fill(state: MemoryState, paths: readonly string[], opts: SnapshotOptions): void {
  // Each object is slimmed as it is read (a .json List item by item), so the raw objects of a big
  // snapshot never all exist at once. ConfigMaps wait until every Deployment and mesh config has been
  // seen: they tell which namespaces' ConfigMaps are kept. The slim copies keep what that needs (as
  // for the live source).
  const files = new Set<string>();
  const configMaps: KubeObject[] = [];
  const istioHints: KubeObject[] = [];
  let documents = 0;
  forEachManifest(paths, (doc) => {
    documents++;
    files.add(doc.file);
    const kind = kindOf(doc.object as { apiVersion?: string; kind?: string });
    if (!kind) return;
    const obj = transformObject(kind, doc.object);
    if (!obj.metadata.name) return;
    if (kind === 'ConfigMap') {
      configMaps.push(obj);
      istioHints.push(obj);
      return;
    }
    if (kind === 'Deployment') istioHints.push(obj);
    state.upsert(kind, obj);
  }, opts.limits);
  const roots = new Set<string>([...CONFIGMAP_NAMESPACES, ...istioNamespaces(istioHints)]);
  if (opts.istioRootNamespace) roots.add(opts.istioRootNamespace);
  for (const cm of configMaps) if (roots.has(cm.metadata.namespace ?? '')) state.upsert('ConfigMap', cm);
  // An empty state would make every manifest look safe: a mistyped snapshot path in CI must fail, not pass.
  if (documents === 0) throw new InputError(`no Kubernetes objects found in state ${paths.join(', ')}`);
  state.setLabel(describeFiles(paths, files.size));
}

/** A StateSource over files: loaded once by start(), never changes afterwards. */
export class SnapshotSource implements StateSource {
  readonly state: MemoryState;
  readonly #paths: readonly string[];
  readonly #opts: SnapshotOptions;
  #synced = false;

  constructor(paths: readonly string[], opts: SnapshotOptions = {}) {
    this.#paths = [...paths];
    this.#opts = opts;
    this.state = new MemoryState(describeFiles(paths, 0));
  }

  /** Reads the files; rejects with InputError on a bad file. */
  async start(): Promise<void> {
    const loaded = loadSnapshot(this.#paths, this.#opts);
    this.state.adopt(loaded);
    this.state.setLabel(loaded.describe());
    this.#synced = true;
  }

  async stop(): Promise<void> {}

  synced(): boolean {
    return this.#synced;
  }

  stats(): StateStats {
    const objects: Partial<Record<KindName, number>> = {};
    for (const kind of KIND_NAMES) objects[kind] = this.state.count(kind);
    return { objects, synced: this.#synced };
  }
}
