// Cluster state from files: what `kubectl get -A -o yaml` or `meshguard snapshot` wrote.

import { InputError } from '../core/errors.ts';
import { CONFIGMAP_NAMESPACES, KIND_NAMES, kindOf, type KindName } from '../core/kinds.ts';
import { type InputLimits } from './io/input.ts';
import { forEachManifest, manifestDocs, PAUSE, type ManifestDoc } from './io/manifests.ts';
import { MemoryState } from './store.ts';
import { transformObject } from './transform.ts';
import type { KubeObject, StateSource, StateStats } from '../core/objects.ts';

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
  const filler = new Filler(paths, opts);
  forEachManifest(paths, (doc) => filler.visit(doc), opts.limits);
  return filler.finish();
}

/** How a load hands the event loop back (loadSnapshotInSlices). */
export interface SliceOptions {
  /** Longest stretch of work between two turns of the event loop, in ms (default 20). */
  readonly sliceMs?: number;
  /** The clock slices are measured on (default performance.now). */
  readonly now?: () => number;
  /** Hands the event loop back (default: a setImmediate turn, so timers and I/O run). */
  readonly yieldNow?: () => Promise<void>;
  /** Asked between slices: true ends the load early with an AbortError (a shutdown began). */
  readonly shouldStop?: () => boolean;
}

export const DEFAULT_LOAD_SLICE_MS = 20;

/**
 * loadSnapshot, handing the event loop back at least every `sliceMs` (at the pause points of the readers,
 * state/io/manifests.ts manifestDocs: between the objects of a .json List and the 1 MiB chunks of a big
 * one's scan). The state is built aside and returned whole, so nothing sees it part-filled. What cannot
 * be cut: the parse of one YAML text (a 16 MiB `kubectl get -o yaml` List is one parse), and the read
 * and layout scan of a .json file under 8 MiB (chunkedJsonList.fromBytes).
 */
export async function loadSnapshotInSlices(paths: readonly string[], opts: SnapshotOptions & SliceOptions = {}): Promise<MemoryState> {
  const sliceMs = opts.sliceMs ?? DEFAULT_LOAD_SLICE_MS;
  const now = opts.now ?? (() => performance.now());
  const yieldNow = opts.yieldNow ?? (() => new Promise<void>((r) => setImmediate(r)));
  const filler = new Filler(paths, opts);
  const docs = manifestDocs(paths, opts.limits);
  try {
    let sliceStart = now();
    for (;;) {
      const r = docs.next();
      if (r.done) break;
      if (r.value !== PAUSE) filler.visit(r.value);
      if (now() - sliceStart >= sliceMs) {
        await yieldNow();
        if (opts.shouldStop?.()) throw Object.assign(new Error('snapshot load stopped'), { name: 'AbortError' });
        sliceStart = now();
      }
    }
  } finally {
    docs.return(false);
  }
  return filler.finish();
}

/**
 * The state built from a snapshot's objects, one object at a time. Each object is slimmed as it is read
 * (a .json List item by item), so the raw objects of a big snapshot never all exist at once. ConfigMaps
 * wait until every Deployment and mesh config has been seen: they tell which namespaces' ConfigMaps are
 * kept. The slim copies keep what that needs (as for the live source).
 */
class Filler {
  readonly state = new MemoryState('snapshot');
  readonly #files = new Set<string>();
  readonly #configMaps: KubeObject[] = [];
  readonly #istioHints: KubeObject[] = [];
  #documents = 0;

  readonly paths: readonly string[];
  readonly opts: SnapshotOptions;

  constructor(paths: readonly string[], opts: SnapshotOptions) {
    this.paths = paths;
    this.opts = opts;
  }

  visit(doc: ManifestDoc): void {
    this.#documents++;
    this.#files.add(doc.file);
    const kind = kindOf(doc.object as { apiVersion?: string; kind?: string });
    if (!kind) return;
    const obj = transformObject(kind, doc.object);
    if (!obj.metadata.name) return;
    if (kind === 'ConfigMap') {
      this.#configMaps.push(obj);
      this.#istioHints.push(obj);
      return;
    }
    if (kind === 'Deployment') this.#istioHints.push(obj);
    this.state.upsert(kind, obj);
  }

  finish(): MemoryState {
    const roots = new Set<string>([...CONFIGMAP_NAMESPACES, ...istioNamespaces(this.#istioHints)]);
    if (this.opts.istioRootNamespace) roots.add(this.opts.istioRootNamespace);
    for (const cm of this.#configMaps) if (roots.has(cm.metadata.namespace ?? '')) this.state.upsert('ConfigMap', cm);
    // An empty state would make every manifest look safe: a mistyped snapshot path in CI must fail, not pass.
    if (this.#documents === 0) throw new InputError(`no Kubernetes objects found in state ${this.paths.join(', ')}`);
    this.state.setLabel(describeFiles(this.paths, this.#files.size));
    return this.state;
  }
}

/** A StateSource over files: loaded once by start(), never changes afterwards. */
export class SnapshotSource implements StateSource {
  readonly state: MemoryState;
  readonly #paths: readonly string[];
  readonly #opts: SnapshotOptions & SliceOptions;
  #synced = false;

  constructor(paths: readonly string[], opts: SnapshotOptions & SliceOptions = {}) {
    this.#paths = [...paths];
    this.#opts = opts;
    this.state = new MemoryState(describeFiles(paths, 0));
  }

  /**
   * Reads the files in slices (loadSnapshotInSlices: the event loop is handed back every 20 ms or so);
   * synced() turns true once the whole state is in. Rejects with InputError on a bad file.
   */
  async start(): Promise<void> {
    const loaded = await loadSnapshotInSlices(this.#paths, this.#opts);
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
