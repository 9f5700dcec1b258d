// Warm-up before readiness: the first few hundred decisions of a fresh process run in V8's interpreter
// and fill the per-state caches, at several times the steady cost (2-13 ms instead of 0.3 ms at 10k
// pods). Running decisions on requests built from the state's own objects before the webhook reports
// ready moves that cost out of the apiserver's path. decide() is pure: the answers are discarded and
// only the JIT and the caches of the stable state (which any real request would fill the same way) keep
// anything.

import type { Change } from '../core/change.ts';
import { BudgetExceeded, withBudget } from '../core/budget.ts';
import { KINDS, type KindName } from '../core/kinds.ts';
import type { ClusterState, KubeObject } from '../core/objects.ts';
import type { Decide } from '../core/decision.ts';
import type { Rule } from '../core/rule.ts';

/** Objects picked per (kind, operation) the rules trigger on, spread over the state's list. */
const PER_TRIGGER = 8;

function spread(objs: readonly KubeObject[], n: number): KubeObject[] {
  if (objs.length <= n) return [...objs];
  const out: KubeObject[] = [];
  for (let i = 0; i < n; i++) out.push(objs[Math.floor((i * objs.length) / n)]!);
  return out;
}

/** Requests the rules react to, each an UPDATE/CREATE/DELETE of an object already in the state. */
export function warmUpChanges(rules: readonly Rule[], state: ClusterState): Change[] {
  const seen = new Set<string>();
  const out: Change[] = [];
  for (const rule of rules) {
    for (const t of rule.triggers) {
      for (const kind of t.kinds) {
        for (const operation of t.operations) {
          const key = `${kind} ${operation}`;
          if (seen.has(key) || operation === 'CONNECT') continue;
          seen.add(key);
          for (const obj of spread(state.list(kind as KindName), PER_TRIGGER)) {
            const k = KINDS[kind as KindName];
            out.push({
              uid: 'meshguard-warm-up',
              operation,
              gvk: { group: k.group, version: k.version, kind },
              kind: kind as KindName,
              namespace: k.namespaced ? (obj.metadata.namespace ?? '') : '',
              name: obj.metadata.name,
              ...(operation === 'DELETE' ? {} : { object: obj }),
              ...(operation === 'CREATE' ? {} : { oldObject: obj }),
              dryRun: true,
              userInfo: { username: 'meshguard-warm-up' },
            });
          }
        }
      }
    }
  }
  return out;
}

/**
 * Runs decide() over warmUpChanges(): whole rounds until `budgetMs` is spent, but never past `capMs`;
 * returns the number of decisions made. It hands the event loop back every `sliceMs`, so readiness
 * probes and metrics scrapes are answered while it runs. Budgets count the warm-up's own work, not the
 * time others spend in between. `state` is read again for every decision: a live state keeps changing
 * meanwhile. `now` is the clock the budgets are measured with (tests pass a fake one).
 *
 * One decision is itself held to `sliceMs` (an evaluation budget, src/core/budget.ts, that the decision's
 * own joins): on a large state one warm-up request can touch every pod (the CREATE of a cluster-wide
 * policy took 1.9 s at 50k pods, issue 21), and a decision cannot yield halfway. A decision that starts
 * late in a slice can run the slice out and one more slice, so the loop is held at most about twice
 * `sliceMs` (plus what the policy engine does between two budget checks). A cut decision is
 * discarded like any decision past its budget: decide() drops every memo of src/policy/memo.ts
 * (forgetCachedResults; an entry may be half-built), keeping only the pod classes, so a cut throws
 * away what the warm-up had filled before it. The price: on a state where single decisions take
 * longer than a slice the warm-up warms the JIT and the pod classes but not the memos, and the first
 * real requests pay for them (issue 21).
 */
export async function warmUpInSlices(
  decide: Decide,
  rules: readonly Rule[],
  state: () => ClusterState,
  budgetMs: number,
  capMs = 10 * budgetMs,
  sliceMs = 20,
  shouldStop: () => boolean = () => false,
  now: () => number = () => performance.now(),
): Promise<number> {
  const changes = warmUpChanges(rules, state());
  let spent = 0;
  let n = 0;
  let sliceStart = now();
  const yieldNow = async (): Promise<void> => {
    spent += now() - sliceStart;
    await new Promise((r) => setImmediate(r));
    sliceStart = now();
  };
  const used = (): number => spent + now() - sliceStart;
  const clock = { now };
  const decideOne = (c: Change): void => {
    try {
      withBudget(sliceMs, () => decide(c, state()), { clock });
    } catch (e) {
      // decide() answers a spent budget itself; a Decide that does not (a test's) ends the same way.
      if (!(e instanceof BudgetExceeded)) throw e;
    }
  };
  while (changes.length > 0 && used() < budgetMs) {
    for (const c of changes) {
      decideOne(c);
      n++;
      if (used() > capMs) return n;
      if (now() - sliceStart >= sliceMs) {
        await yieldNow();
        if (shouldStop()) return n;
      }
    }
  }
  return n;
}
