// Which rule decided a loss: for the classes a comparison found lost (or still missing), whether a deny
// element decides their flow (no allow can fix it: Cilium's deny wins over every allow) or default deny
// (an allow fixes it). Worked out only for those classes, after the comparison, by asking the class's
// question again under recordDenials: the comparison itself stays on the fast path.

import { BudgetExceeded } from '../core/budget.ts';
import type { ClusterState, Pod } from '../core/objects.ts';
import { hasDenyRules, recordDenials, type DenyMatch } from '../policy/index.ts';

/**
 * Why the items of a loss (pods, or a rule's flows) lose: the deny elements that decide, and which items
 * a deny or default deny decides.
 */
export interface LossDecidedBy<T = Pod> {
  /** Every deny element that decides some class's flow, first seen first, each once. */
  readonly denies: readonly DenyMatch[];
  /** Items whose flow a deny decides (an allow does not help them). */
  readonly byDeny: readonly T[];
  /** Items whose flow no deny decides: default deny (or not judged); an allow fixes these. */
  readonly byDefault: readonly T[];
}

/** A class as the comparison judged it: its key and the representative that was asked. */
interface JudgedClass<T> {
  readonly key: string;
  readonly first: T;
}

/**
 * LossDecidedBy for `pods` (the items of `classes`, in order: pods, or any other judged item). `ask` repeats the class's question in the
 * state after the change. A class is decided by a deny when any direction it found denied was decided by
 * a deny element. `classKey` splits pods by class only when some classes are and some are not. `state`,
 * the state `ask` asks in, lets a state without deny elements skip the asking.
 */
export function decidedByOf<T = Pod>(
  pods: readonly T[],
  classes: readonly JudgedClass<T>[],
  classKey: (item: T) => string,
  ask: (item: T) => unknown,
  state?: ClusterState,
): LossDecidedBy<T> {
  if (classes.length === 0) return { denies: [], byDeny: [], byDefault: [] };
  // `state` (where `ask` is asked): with no deny element in it, default deny decides every class.
  if (state !== undefined && !hasDenyRules(state)) return { denies: [], byDeny: [], byDefault: pods };
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
    } catch (err) {
      // The evaluation budget ran out: the decision stops here like any other step of it.
      if (err instanceof BudgetExceeded) throw err;
      // Odd input: the comparison skipped it too; no claim about its cause.
    }
    if (found) denyKeys.add(c.key);
  }
  if (denyKeys.size === 0) return { denies, byDeny: [], byDefault: pods };
  if (denyKeys.size === classes.length) return { denies, byDeny: pods, byDefault: [] };
  const byDeny: T[] = [];
  const byDefault: T[] = [];
  for (const p of pods) (denyKeys.has(classKey(p)) ? byDeny : byDefault).push(p);
  return { denies, byDeny, byDefault };
}

function sameElement(a: DenyMatch, b: DenyMatch): boolean {
  return a.index === b.index && a.section === b.section && a.specIndex === b.specIndex && a.policy.kind === b.policy.kind && a.policy.namespace === b.policy.namespace && a.policy.name === b.policy.name;
}
