// Small helpers shared by the rules: naming victims and shaping messages consistently.

import type { Pod } from '../state/types.ts';
import { ScopedWeakMap } from '../state/request-scope.ts';

/** How many victims a finding names before saying "and N more". */
export const MAX_VICTIMS = 5;

export function podRef(pod: Pod): string {
  // Rules key pod sets by this many times per request; pods in a state are never modified.
  let ref = podRefs.get(pod);
  if (ref === undefined) {
    ref = `${pod.metadata.namespace ?? ''}/${pod.metadata.name}`;
    podRefs.set(pod, ref);
  }
  return ref;
}
const podRefs = new ScopedWeakMap<Pod, string>();

/** The first few pod names and the total, for Finding.victims / victimCount. */
export function victimsOf(pods: readonly Pod[]): { victims: string[]; victimCount: number } {
  return { victims: pods.slice(0, MAX_VICTIMS).map(podRef), victimCount: pods.length };
}

/** "blue/httpbin-1, blue/httpbin-2 and 3 more" */
export function describeVictims(pods: readonly Pod[]): string {
  const names = pods.slice(0, 3).map(podRef);
  const rest = pods.length - names.length;
  return rest > 0 ? `${names.join(', ')} and ${rest} more` : names.join(', ');
}
