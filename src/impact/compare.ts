// Before/after judged per identity class: the one comparison primitive of the rules. A change breaks
// what worked before and no longer does ("lost"); what was already broken and still is ("still
// missing") is reported as pre-existing, or not at all. Items (pods, conflicts) that share a class key
// get one verdict: the predicate runs once per class, and victims are counted per class. This is where
// issue 21's per-identity judging lives (judge per class, count victims per class, cap what is listed).

import { rethrowIfBudget } from '../core/budget.ts';
import type { ClusterState, Pod } from '../core/objects.ts';
import { classPlan, groupsOf, podClassKey, readsNode, withClasses, type ClassKeyFn, type PodClass } from '../policy/index.ts';
import { decidedByOf, type LossDecidedBy } from './decided-by.ts';

/** The verdict on one class: fine after the change, lost by it, missing before and after, or not judged. */
export type Outcome = 'ok' | 'lost' | 'still' | 'skip';

/** A class verdict with what the caller wants to say about it (the targets lost, the peer cut off...). */
export interface Judged<D> {
  readonly outcome: Outcome;
  readonly detail?: D;
}

/** One judged class: its key, its first item (the representative that was judged), and how many items it has. */
export interface ClassVerdict<T, D> {
  readonly key: string;
  readonly first: T;
  readonly outcome: Outcome;
  readonly detail: D | undefined;
  count: number;
}

export interface ByClass<T, D> {
  /**
   * Every item of a lost class, in input order (grouped pods: in class order). Grouped pods that are all
   * lost are the input array itself, registered with the input's classes; otherwise a new array
   * registered with one class per judged unit (under the judging key). Read-only either way: it may be
   * the state's own array.
   */
  readonly lost: readonly T[];
  /** Every item of a still-missing class, in the same order. */
  readonly stillMissing: readonly T[];
  /** Lost classes, in the order their first item came. */
  readonly lostClasses: ClassVerdict<T, D>[];
  /** Still-missing classes, in the order their first item came. */
  readonly stillClasses: ClassVerdict<T, D>[];
  /** How many distinct classes were judged (the predicate's call count). */
  readonly classes: number;
}

/**
 * Judge items by class: `judge` runs on the first item of each class (by `classKey`) and its outcome
 * counts for every item of the class. A judge that throws (odd input) skips the class: no finding
 * rather than a crash.
 */
export function judgeByClass<T, D = undefined>(items: Iterable<T>, classKey: (item: T) => string, judge: (item: T) => Judged<D>): ByClass<T, D> {
  const lostClasses: ClassVerdict<T, D>[] = [];
  const stillClasses: ClassVerdict<T, D>[] = [];
  // A class judged fine (or skipped) is only counted as judged: no verdict object is made for it (most
  // classes of most requests), and a lost or still-missing one gets its verdict as it is judged.
  const verdictOf = (key: string, item: T): ClassVerdict<T, D> | null => {
    let j: Judged<D>;
    try {
      j = judge(item);
    } catch (e) {
      rethrowIfBudget(e);
      return null;
    }
    if (j.outcome !== 'lost' && j.outcome !== 'still') return null;
    const v: ClassVerdict<T, D> = { key, first: item, outcome: j.outcome, detail: j.detail, count: 0 };
    (j.outcome === 'lost' ? lostClasses : stillClasses).push(v);
    return v;
  };
  const groups = Array.isArray(items) ? groupsOf(items as readonly T[]) : undefined;
  if (groups) {
    // Pods grouped by pod class (policy/classes.ts): one key and at most one judgement per class (per
    // class and node token when the key reads the node), and the class's pods counted at once. The
    // units and their keys come from the plan kept per classes array and key function.
    const plan = classPlan(groups, classKey as ClassKeyFn);
    // undefined: not judged yet; null: fine or skipped.
    const verdicts: (ClassVerdict<T, D> | null | undefined)[] = new Array(plan.keys.length);
    // Each unit's outcome, marked here and gathered after: at 50k pods a request that touches every pod
    // (a cilium-config change) judges 9.5k units, and the arrays gathered for it outlive the
    // scavenges that run during the request (issue 21: they are promoted, then collected by a major GC).
    const marks = new Uint8Array(plan.units.length);
    let lostPods = 0;
    let stillPods = 0;
    for (let u = 0; u < plan.units.length; u++) {
      const members = plan.units[u]!;
      const k = plan.keyIndex[u]!;
      let v = verdicts[k];
      if (v === undefined) verdicts[k] = v = verdictOf(plan.keys[k]!, members[0]! as unknown as T);
      if (v === null) continue;
      v.count += members.length;
      if (v.outcome === 'lost') {
        marks[u] = LOST_MARK;
        lostPods += members.length;
      } else {
        marks[u] = STILL_MARK;
        stillPods += members.length;
      }
    }
    const pods = items as readonly Pod[];
    const lost = gathered(pods, plan.units, plan.keys, plan.keyIndex, marks, LOST_MARK, lostPods) as unknown as readonly T[];
    const stillMissing = gathered(pods, plan.units, plan.keys, plan.keyIndex, marks, STILL_MARK, stillPods) as unknown as readonly T[];
    return { lost, stillMissing, lostClasses, stillClasses, classes: plan.keys.length };
  }
  const byKey = new Map<string, ClassVerdict<T, D> | null>();
  const lost: T[] = [];
  const stillMissing: T[] = [];
  for (const item of items) {
    const key = classKey(item);
    let v = byKey.get(key);
    if (v === undefined) byKey.set(key, (v = verdictOf(key, item)));
    if (v === null) continue;
    v.count++;
    (v.outcome === 'lost' ? lost : stillMissing).push(item);
  }
  return { lost, stillMissing, lostClasses, stillClasses, classes: byKey.size };
}
const SKIP: Judged<never> = { outcome: 'skip' };

/** How many classes askPerClass asks between two steps (a few hundred µs of asks at 50k pods). */
const ASK_STEP = 128;

/**
 * Asks the pod judgeByClass would judge for each class of `pods` (by `classKey`, per unit of its plan:
 * one per class, or per class and node token), `every` classes per step: a rule's prepare (core/rule.ts),
 * which fills the per-class answers its check then reads. The asking function comes from `asker`, made
 * again when one of `states` has moved between two steps (a live state takes watch events while the
 * event loop is handed back): an asker of a state's old revision would fill tables no check reads. An ask
 * that throws (odd input) is the check's to meet again: skipped here, but for a spent budget, which ends
 * the steps.
 */
export function* askPerClass(
  pods: readonly Pod[],
  classKey: (pod: Pod) => string,
  asker: () => (pod: Pod) => void,
  states: readonly ClusterState[],
  every = ASK_STEP,
): Generator<void, void, void> {
  let revisions = states.map((s) => s.revision);
  let ask = asker();
  const one = (pod: Pod): void => {
    try {
      ask(pod);
    } catch (e) {
      rethrowIfBudget(e);
    }
  };
  const step = function* (): Generator<void, void, void> {
    yield;
    if (states.some((s, i) => s.revision !== revisions[i])) {
      revisions = states.map((s) => s.revision);
      ask = asker();
    }
  };
  const groups = groupsOf(pods);
  let n = 0;
  if (groups) {
    const plan = classPlan(groups, classKey as ClassKeyFn);
    const asked = new Uint8Array(plan.keys.length);
    for (let u = 0; u < plan.units.length; u++) {
      const k = plan.keyIndex[u]!;
      if (asked[k] === 1) continue;
      asked[k] = 1;
      one(plan.units[u]![0]!);
      if (++n % every === 0) yield* step();
    }
    return;
  }
  const asked = new Set<string>();
  for (const pod of pods) {
    let key: string;
    try {
      key = classKey(pod);
    } catch (e) {
      rethrowIfBudget(e);
      continue;
    }
    if (asked.has(key)) continue;
    asked.add(key);
    one(pod);
    if (++n % every === 0) yield* step();
  }
}

const LOST_MARK = 1;
const STILL_MARK = 2;
const NO_PODS: readonly Pod[] = withClasses(Object.freeze([]) as readonly Pod[], []);

/**
 * The pods of the units marked `mark` (`count` of them) as one array in unit order, registered with
 * their classes. Every pod (`count` is the input's length, in the same order: always, unless a class
 * was split by node) is the input array itself, and none is one shared empty array: no copy of 50k pods
 * for a request every pod loses something to.
 */
function gathered(
  items: readonly Pod[],
  units: readonly (readonly Pod[])[],
  keys: readonly string[],
  keyIndex: readonly number[],
  marks: Uint8Array,
  mark: number,
  count: number,
): readonly Pod[] {
  if (count === 0) return NO_PODS;
  if (count === items.length && inUnitOrder(items, units)) return items;
  const groups: PodClass[] = [];
  const out: Pod[] = new Array(count);
  let i = 0;
  for (let u = 0; u < units.length; u++) {
    if (marks[u] !== mark) continue;
    const members = units[u]!;
    groups.push({ key: keys[keyIndex[u]!]!, pods: members });
    for (const p of members) out[i++] = p;
  }
  return withClasses(out, groups);
}

/** Is `items` the units' pods one after the other? */
function inUnitOrder(items: readonly Pod[], units: readonly (readonly Pod[])[]): boolean {
  let i = 0;
  for (const members of units) for (const p of members) if (items[i++] !== p) return false;
  return i === items.length;
}

/** The first `max` items and the total, for naming victims without listing them all. */
export function capVictims<T>(items: readonly T[], max: number): { readonly listed: readonly T[]; readonly count: number } {
  return { listed: items.length > max ? items.slice(0, max) : items, count: items.length };
}

// ---------- pods that reach a target, before and after ----------

/** Pods that lose something with this request, and pods that lacked it before and still do. */
export interface Loss {
  readonly lost: readonly Pod[];
  readonly stillMissing: readonly Pod[];
  /** Which rule decides the lost pods' flow after the change: a deny element, or default deny (decided-by.ts). */
  readonly decidedBy?: LossDecidedBy;
  /** The same for the still-missing pods. */
  readonly stillDecidedBy?: LossDecidedBy;
}

/** Like Loss, with the targets the lost pods can no longer reach. */
export interface ReachLoss extends Loss {
  /** Targets reached before and not after, by any lost class of pods. */
  readonly lostTargets: readonly string[];
}

/** The default class key: a pod's identity, host network and phase (no node). */
export const byPodClass: ClassKeyFn = readsNode((pod: Pod): string => podClassKey(pod, pod.spec.nodeName ?? ''), (pod) => pod.spec.nodeName ?? '');

/**
 * compareLoss for a check with several targets a pod should reach all of (say, every API server
 * endpoint, balanced over by a Service): a pod is lost when it reaches fewer targets than before, even
 * if it already missed some; still missing when it misses some and reaches as many as before (a
 * request that swaps which endpoint is missing, or reaches more of them, makes nothing worse). `reach`
 * returns the targets reached (undefined when it cannot judge: after, the pod is then ignored; before,
 * the pod, say not there yet, is taken to have reached everything).
 */
export function compareReach(
  pods: readonly Pod[],
  before: ClusterState,
  after: ClusterState,
  targets: readonly string[],
  reach: (state: ClusterState, pod: Pod) => readonly string[] | undefined,
  classKey: (pod: Pod) => string,
  opts: CompareOptions = {},
): ReachLoss {
  const onLost = opts.onLost;
  // The last lost verdict and the answers it was made from: askers hand out shared answer arrays (and
  // compareLoss has two), so most lost classes share one verdict instead of each allocating its own.
  let lastWas: readonly string[] | undefined;
  let lastNow: readonly string[] | undefined;
  let lastLost: Judged<readonly string[]> | undefined;
  const r = judgeByClass<Pod, readonly string[]>(pods, classKey, (pod) => {
    const now = reach(after, pod);
    if (now === undefined) return SKIP;
    if (includesAll(now, targets)) return OK;
    const was = reach(before, pod) ?? targets;
    if (now.length >= was.length) return STILL;
    if (was !== lastWas || now !== lastNow || lastLost === undefined) {
      lastLost = { outcome: 'lost', detail: was.filter((t) => !now.includes(t)) };
      lastWas = was;
      lastNow = now;
    }
    const lost = lastLost;
    if (onLost !== undefined) {
      try {
        onLost(pod);
      } catch (e) {
        rethrowIfBudget(e);
        // the caller's question, not the comparison's: its verdict stands
      }
    }
    return lost;
  });
  const lostTargets = new Set<string>();
  for (const c of r.lostClasses) for (const t of c.detail ?? []) lostTargets.add(t);
  const ask = (pod: Pod): unknown => reach(after, pod);
  const out = { lost: r.lost, stillMissing: r.stillMissing, lostTargets: targets.filter((t) => lostTargets.has(t)) };
  // Asked again only when a rule reads it (it has a finding to word): the comparison's calls stay one per class and state.
  lazily(out, 'decidedBy', () => decidedByOf(r.lost, r.lostClasses, classKey, ask, after));
  lazily(out, 'stillDecidedBy', () => decidedByOf(r.stillMissing, r.stillClasses, classKey, ask, after));
  return out;
}
const OK: Judged<never> = { outcome: 'ok' };

function includesAll(have: readonly string[], targets: readonly string[]): boolean {
  for (const t of targets) if (!have.includes(t)) return false;
  return true;
}

/** Options of compareReach and compareLoss. */
export interface CompareOptions {
  /**
   * Called with the representative of each lost class (by the comparison's class key), once, as the
   * class is judged lost: for a question the caller asks of every lost class anyway (its wording),
   * without a second pass over the lost pods. A throw is the caller's to handle: the class stays lost.
   */
  readonly onLost?: (pod: Pod) => void;
}
const STILL: Judged<never> = { outcome: 'still' };

/**
 * Compare a per-pod check before and after. `ok` returns undefined when it cannot judge (the pod is
 * then ignored). Synthetic pods are evaluated in both states all the same: they stand for pods that
 * would be created.
 */
export function compareLoss(
  pods: readonly Pod[],
  before: ClusterState,
  after: ClusterState,
  ok: (state: ClusterState, pod: Pod) => boolean | undefined,
  classKey: (pod: Pod) => string = byPodClass,
  opts: CompareOptions = {},
): Loss {
  const reach = (state: ClusterState, pod: Pod): readonly string[] | undefined => {
    const v = ok(state, pod);
    return v === undefined ? undefined : v ? ONE_TARGET : NO_TARGET;
  };
  const r = compareReach(pods, before, after, ONE_TARGET, reach, classKey, opts);
  const out = { lost: r.lost, stillMissing: r.stillMissing };
  lazily(out, 'decidedBy', () => r.decidedBy);
  lazily(out, 'stillDecidedBy', () => r.stillDecidedBy);
  return out;
}
const ONE_TARGET: readonly string[] = ['ok'];

/** A read-only property computed on first read and kept. */
function lazily<T>(obj: object, name: string, compute: () => T): void {
  let done = false;
  let value: T;
  Object.defineProperty(obj, name, {
    enumerable: false,
    get: () => {
      if (!done) {
        value = compute();
        done = true;
      }
      return value;
    },
  });
}
const NO_TARGET: readonly string[] = [];

// ---------- keyed problems, before and after ----------

/**
 * Problems (keyed, e.g. L7 conflicts) present after but not before (added), and present in both (kept):
 * each key counts once, represented by its first problem after the change.
 */
export function diffKeyed<T extends { readonly key: string }>(before: readonly T[], after: readonly T[]): { added: T[]; kept: T[] } {
  const old = new Set(before.map((c) => c.key));
  const r = judgeByClass<T>(after, (c) => c.key, (c) => (old.has(c.key) ? STILL : LOST));
  return { added: r.lostClasses.map((c) => c.first), kept: r.stillClasses.map((c) => c.first) };
}
const LOST: Judged<never> = { outcome: 'lost' };

/**
 * Does `test` hold for one pod of every class (by `classKey`, per pod class when `pods` is grouped)?
 * False when `test` or `classKey` throws: no claim on odd input.
 */
export function everyClass(pods: readonly Pod[], classKey: (pod: Pod) => string, test: (pod: Pod) => boolean): boolean {
  let threw = false;
  try {
    const r = judgeByClass<Pod>(pods, classKey, (p) => {
      try {
        return test(p) ? OK : LOST;
      } catch (e) {
        rethrowIfBudget(e);
        threw = true;
        return LOST;
      }
    });
    return !threw && r.lostClasses.length === 0;
  } catch (e) {
    rethrowIfBudget(e);
    return false; // the class key threw
  }
}
