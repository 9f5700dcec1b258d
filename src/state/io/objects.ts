// The objects a manifest file holds: each document must be a Kubernetes object (apiVersion, kind,
// metadata.name) that kubectl would accept, and a List (`kind: List`, `PodList`...) stands for its items.

import { InputError } from '../../core/errors.ts';

export interface ManifestDoc {
  readonly object: Record<string, unknown>;
  readonly file: string;
  /** 1-based line where the object starts. */
  readonly line: number;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Whether a document is a List whose items are the real objects. */
export function isList(o: Record<string, unknown>): boolean {
  return typeof o.kind === 'string' && o.kind.endsWith('List') && Array.isArray(o.items);
}

/** Throws unless `o` looks like a Kubernetes object. */
export function checkObject(o: unknown, file: string, line: number, what = 'document'): asserts o is Record<string, unknown> {
  if (!isRecord(o)) throw new InputError(`${what} is not a Kubernetes object (a mapping)`, { file, line });
  for (const f of ['apiVersion', 'kind'] as const) {
    if (typeof o[f] !== 'string' || o[f] === '') throw new InputError(`${what} has no ${f}`, { file, line });
  }
  if (isList(o)) return;
  const m = o.metadata;
  if (!isRecord(m) || typeof m.name !== 'string' || m.name === '') {
    throw new InputError(`${what} (${String(o.kind)}) has no metadata.name`, { file, line });
  }
  const rejected = kubectlRejects(o);
  if (rejected) throw new InputError(`${what} (${String(o.kind)} ${m.name}): ${rejected}`, { file, line });
}

function describeValue(v: unknown): string {
  if (typeof v === 'boolean') return `the boolean ${v} (in YAML 1.1, as kubectl reads it, yes/no/on/off/y/n are booleans)`;
  if (typeof v === 'number') return `the number ${v}`;
  if (v === null) return 'null';
  return Array.isArray(v) ? 'a list' : `a ${typeof v}`;
}

/** The first value of a string map that is not a string, as "key: description". */
function nonString(map: unknown, path: string): string | undefined {
  if (map === undefined || map === null) return undefined;
  if (!isRecord(map)) return `${path} must be a map of strings, not ${describeValue(map)}`;
  for (const [k, v] of Object.entries(map)) {
    // `key:` with nothing after it is null: kubectl sends it and the API server stores "".
    if (typeof v !== 'string' && v !== null) return `${path}.${k} is ${describeValue(v)}; kubectl refuses it: values here must be strings, quote it`;
  }
  return undefined;
}

/** Every `matchLabels` below `v` (selectors in policies, Services, Deployments), depth-bounded. */
function matchLabelsProblem(v: unknown, path: string, depth: number): string | undefined {
  if (depth > 32 || typeof v !== 'object' || v === null) return undefined;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const p = matchLabelsProblem(v[i], `${path}[${i}]`, depth + 1);
      if (p) return p;
    }
    return undefined;
  }
  for (const [k, x] of Object.entries(v)) {
    const here = `${path}.${k}`;
    const p = k === 'matchLabels' ? nonString(x, here) : matchLabelsProblem(x, here, depth + 1);
    if (p) return p;
  }
  return undefined;
}

const BULK_KINDS = new Set(['Pod', 'Node', 'EndpointSlice']);

/**
 * What kubectl would refuse in an object because of how YAML 1.1 read it: label, annotation,
 * ConfigMap data and matchLabels values that are not strings (`enabled: yes` is a boolean). meshguard
 * says so rather than judge an object the API server would never see.
 */
export function kubectlRejects(o: Record<string, unknown>): string | undefined {
  const m = o.metadata as Record<string, unknown>;
  return (
    nonString(m.labels, 'metadata.labels') ??
    nonString(m.annotations, 'metadata.annotations') ??
    (o.kind === 'ConfigMap' && o.apiVersion === 'v1' ? nonString(o.data, 'data') : undefined) ??
    (o.kind === 'Service' && o.apiVersion === 'v1' && isRecord(o.spec) ? nonString(o.spec.selector, 'spec.selector') : undefined) ??
    // Pods, Nodes and EndpointSlices (most of a state) hold no selectors: not walked.
    (BULK_KINDS.has(String(o.kind)) ? undefined : matchLabelsProblem(o.spec, 'spec', 0))
  );
}

/** Push a document's objects (itself, or a List's items) with their lines. */
export function collect(obj: unknown, file: string, line: number, itemLine: (i: number) => number | undefined, out: ManifestDoc[] | ((doc: ManifestDoc) => void)): void {
  checkObject(obj, file, line);
  const push = typeof out === 'function' ? out : (d: ManifestDoc) => void out.push(d);
  if (!isList(obj)) {
    push({ object: obj, file, line });
    return;
  }
  (obj.items as unknown[]).forEach((item, i) => {
    const at = itemLine(i) ?? line;
    if (item === null || item === undefined) return;
    checkObject(item, file, at, `item ${i} of the ${String(obj.kind)}`);
    // A List inside a List is not something kubectl prints; treat it as an object like any other.
    push({ object: item, file, line: at });
  });
}
