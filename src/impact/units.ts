// A per-pod question asked per judging unit (issue 21): rules that list what they find pod by pod
// (conflicts, hits keyed by pod) ask it of the first pod of each unit, and of the other pods of a unit
// only when the first one found something. A unit (policy/mesh-classes.ts: mtlsUnits, classUnits) holds
// pods that get the same answer but for their names, so a unit whose first pod finds nothing has no pod
// that finds anything: a Namespace relabel with nothing to report costs per class, not per pod. What is
// found is listed exactly as the per-pod pass lists it: every pod's own findings, in the order of `pods`.

import type { ClusterState, Pod } from '../core/objects.ts';
import { classUnits, mtlsUnits, podClassesIn } from '../policy/index.ts';

let asked = 0;

/** How many pods perUnitInOrder has asked its question about (for tests that count per-unit work). */
export function unitQuestions(): number {
  return asked;
}

/**
 * `pods.flatMap(find)`, asking `find` once per unit of `units` when its first pod finds nothing. `units`
 * must partition `pods` (the same pod objects, each in one unit); when they do not add up to `pods`,
 * or are undefined, every pod is asked.
 */
export function perUnitInOrder<T>(pods: readonly Pod[], units: readonly (readonly Pod[])[] | undefined, find: (pod: Pod) => readonly T[]): T[] {
  let n = 0;
  if (units !== undefined) for (const u of units) n += u.length;
  if (units === undefined || n !== pods.length) {
    const out: T[] = [];
    for (const p of pods) {
      asked++;
      out.push(...find(p));
    }
    return out;
  }
  // The pods of units whose first pod found something, with that first pod's answer.
  let hit: Map<Pod, readonly T[] | undefined> | undefined;
  for (const u of units) {
    if (u.length === 0) continue;
    asked++;
    const first = find(u[0]!);
    if (first.length === 0) continue;
    hit ??= new Map();
    hit.set(u[0]!, first);
    for (let i = 1; i < u.length; i++) hit.set(u[i]!, undefined);
  }
  if (hit === undefined) return [];
  const out: T[] = [];
  for (const p of pods) {
    if (!hit.has(p)) continue;
    let found = hit.get(p);
    if (found === undefined) {
      asked++;
      found = find(p);
    }
    out.push(...found);
  }
  return out;
}

/**
 * The pods of Namespace `namespace` (`after.list('Pod', namespace)`) as judging units, when `before`
 * holds the same pods there (the same list: a request that changes no pod of it, as a Namespace
 * relabel): per class (classUnits), or with `mtls`, per class and the per-pod labels a
 * PeerAuthentication selector of either state reads (mtlsUnits). `{}` otherwise: every pod is asked.
 */
export function namespaceUnits(before: ClusterState, after: ClusterState, namespace: string, opts: { readonly mtls?: boolean } = {}): { readonly units?: readonly (readonly Pod[])[] } {
  if (before.list('Pod', namespace) !== after.list('Pod', namespace)) return {};
  const classes = podClassesIn(after, namespace);
  return { units: opts.mtls === true ? mtlsUnits(classes, [before, after]) : classUnits(classes) };
}
