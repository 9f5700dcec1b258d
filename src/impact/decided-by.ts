// Which rule decided a loss: for the classes a comparison found lost (or still missing), whether a deny
// element decides their flow (no allow can fix it: Cilium's deny wins over every allow) or default deny
// (an allow fixes it). Worked out only for those classes, after the comparison, by asking the class's
// question again under recordDenials: the comparison itself stays on the fast path.

import type { Pod } from '../core/objects.ts';
import { recordDenials, type DenyMatch } from '../policy/index.ts';

/** Why the pods of a loss lose: the deny elements that decide, and which pods a deny or default deny decides. */
export interface LossDecidedBy {
  /** Every deny element that decides some class's flow, first seen first, each once. */
  readonly denies: readonly DenyMatch[];
  /** Pods whose flow a deny decides (an allow does not help them). */
  readonly byDeny: readonly Pod[];
  /** Pods whose flow no deny decides: default deny (or not judged); an allow fixes these. */
  readonly byDefault: readonly Pod[];
}

/** A class as the comparison judged it: its key and the representative that was asked. */
interface JudgedClass {
  readonly key: string;
  readonly first: Pod;
}

/**
 * LossDecidedBy for `pods` (the items of `classes`, in order). `ask` repeats the class's question in the
 * state after the change. A class is decided by a deny when any direction it found denied was decided by
 * a deny element. `classKey` splits pods by class only when some classes are and some are not.
 */
export function decidedByOf(pods: readonly Pod[], classes: readonly JudgedClass[], classKey: (pod: Pod) => string, ask: (pod: Pod) => unknown): LossDecidedBy {
  if (classes.length === 0) return NONE;
  const denies: DenyMatch[] = [];
  const denyKeys = new Set<string>();
  for (const c of classes) {
    let found = false;
    try {
      for (const d of recordDenials(() => ask(c.first)).denials) {
        if (d.decidedBy.by !== 'deny') continue;
        found = true;
        for (const m of d.decidedBy.denies) if (!denies.some((x) => sameElement(x, m))) denies.push(m);
      }
    } catch {
      // Odd input: the comparison skipped it too; no claim about its cause.
    }
    if (found) denyKeys.add(c.key);
  }
  if (denyKeys.size === 0) return { denies, byDeny: [], byDefault: pods };
  if (denyKeys.size === classes.length) return { denies, byDeny: pods, byDefault: [] };
  const byDeny: Pod[] = [];
  const byDefault: Pod[] = [];
  for (const p of pods) (denyKeys.has(classKey(p)) ? byDeny : byDefault).push(p);
  return { denies, byDeny, byDefault };
}
const NONE: LossDecidedBy = Object.freeze({ denies: [], byDeny: [], byDefault: [] });

function sameElement(a: DenyMatch, b: DenyMatch): boolean {
  return a.index === b.index && a.section === b.section && a.specIndex === b.specIndex && a.policy.kind === b.policy.kind && a.policy.namespace === b.policy.namespace && a.policy.name === b.policy.name;
}
