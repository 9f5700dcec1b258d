// Verdicts kept across requests. kube-apiserver sends the same review again and again: `kubectl apply
// --dry-run=server` followed by `kubectl apply`, Argo CD and Flux diffing every object with a
// server-side dry run on each reconcile, re-syncs of unchanged manifests, a client's retry after a
// timeout. Rules are pure functions of the request's slim objects and the cluster state, so while the
// state has not changed (same state object, same revision) the same request gets the same decision:
// it is answered from memory instead of being evaluated again.
//
// The key is everything a decision reads from a Change: operation, kind, namespace, name and the slim
// objects (after the state transform, so a new request uid, managedFields timestamps or fields no rule
// reads do not make a request look new). It leaves out what no rule reads: request.uid, dryRun and
// userInfo. A new Change field that rules read must be added to cacheKey() (test/verdict/cache.test.ts
// fails when Change gains a field, as a reminder).
//
// Any state change (a watch event that changes a field the transform keeps, a relist) starts a new
// revision and empties the cache, so a cached verdict never outlives the state it was computed on. An
// event that changes nothing kept (a pod's readiness) leaves the revision as it was (store.ts upsert).

import { hash } from 'node:crypto';

import type { Change } from '../core/change.ts';
import type { Decide, Decision } from '../core/decision.ts';
import type { ClusterState } from '../core/objects.ts';

/** Default number of decisions kept. */
export const DEFAULT_VERDICT_CACHE_ENTRIES = 4096;
/**
 * The text the kept decisions may hold, in characters (findings, fixes, notices): most decisions have
 * none or one short finding, but a denial of a cluster-wide change can carry several long ones.
 */
export const VERDICT_CACHE_TEXT_BUDGET = 4 * 1024 * 1024;
/** A kept entry's own cost besides its text: the key, the decision and finding objects. */
const ENTRY_OVERHEAD = 256;
/** As many entries as the text budget can hold when they carry no text at all. */
export const MAX_VERDICT_CACHE_ENTRIES = VERDICT_CACHE_TEXT_BUDGET / ENTRY_OVERHEAD;

export interface VerdictCacheStats {
  /** Requests of modeled kinds answered from the cache. */
  readonly hits: number;
  /** Requests of modeled kinds evaluated (and then kept). */
  readonly misses: number;
  /** Decisions held now. */
  readonly entries: number;
  /** Their weight (decisionWeight), at most the text budget. */
  readonly weight: number;
}

export interface CachingDecide extends Decide {
  /**
   * The counters. Given the current state, entries of an older one are dropped first (they would
   * otherwise be counted, and held, until the next request).
   */
  stats(current?: ClusterState): VerdictCacheStats;
}

/** The cache key of a change: a digest of what decide() reads from it. */
export function cacheKey(change: Change): string {
  const text = JSON.stringify([
    change.operation,
    change.gvk.group,
    change.gvk.version,
    change.gvk.kind,
    change.namespace,
    change.name,
    change.object ?? null,
    change.oldObject ?? null,
  ]);
  return hash('sha256', text, 'base64');
}

/** Roughly what a decision holds, in characters: its text plus a fixed overhead per object. */
export function decisionWeight(d: Decision): number {
  let n = ENTRY_OVERHEAD + (d.exemptReason?.length ?? 0);
  for (const f of d.findings) {
    n += 64 + f.rule.length + f.message.length + (f.fix?.length ?? 0);
    for (const v of f.victims ?? []) n += v.length;
  }
  for (const x of d.notices ?? []) n += x.length;
  for (const x of d.skipped) n += x.length;
  return n;
}

/** A rule that threw gave a warning instead of findings; that may not happen twice, so it is not kept. */
function hasRuleFailure(decision: Decision): boolean {
  return decision.findings.some((f) => f.failed === true);
}

/**
 * `decide` with a bounded cache of its decisions for the current state revision: at most `maxEntries`
 * decisions and `textBudget` of decisionWeight() (a decision heavier than a 16th of that is not kept).
 * A decision answered from the cache carries `cached: true`, and is the same object on every hit of its
 * entry. Requests of kinds meshguard does not model are cheaper to decide than to key: they always go
 * through.
 */
export function cachingDecide(decide: Decide, maxEntries = DEFAULT_VERDICT_CACHE_ENTRIES, textBudget = VERDICT_CACHE_TEXT_BUDGET): CachingDecide {
  let forState: ClusterState | undefined;
  let forRevision = Number.NaN;
  // Insertion order is recency order: a hit is moved to the end, the first entry is the oldest. The
  // value is what a hit returns: one object per entry, so that callers can key their own per-decision
  // work on it (the server keeps the serialized answer).
  const entries = new Map<string, { readonly decision: Decision; readonly weight: number }>();
  let weight = 0;
  let hits = 0;
  let misses = 0;

  /** Empties the cache unless it holds decisions for `state` as it is now. */
  const keepOnlyFor = (state: ClusterState): void => {
    if (state !== forState || state.revision !== forRevision) {
      entries.clear();
      weight = 0;
      forState = state;
      forRevision = state.revision;
    }
  };
  /** The kept decision for `change` on `state` as it is now (counted as a hit), or its key (a miss). */
  const lookup = (change: Change, state: ClusterState): { readonly key: string; readonly hit?: Decision } => {
    keepOnlyFor(state);
    const key = cacheKey(change);
    const hit = entries.get(key);
    if (hit === undefined) {
      misses++;
      return { key };
    }
    hits++;
    entries.delete(key);
    entries.set(key, hit);
    return { key, hit: hit.decision };
  };
  const cached = (change: Change, state: ClusterState): Decision => {
    if (maxEntries <= 0 || change.kind === undefined) return decide(change, state);
    const { key, hit } = lookup(change, state);
    if (hit !== undefined) return hit;
    const revision = state.revision;
    const decision = decide(change, state);
    keep(key, state, revision, decision);
    return decision;
  };
  /**
   * Keeps a decision made on `state` at `revision`, unless the state moved while it was made (a sliced
   * decision lets watch events in between its rules: it would key a verdict of two states) or the
   * cache has moved on to another state meanwhile.
   */
  const keep = (key: string, state: ClusterState, revision: number, decision: Decision): void => {
    const w = decisionWeight(decision);
    if (state !== forState || state.revision !== revision || hasRuleFailure(decision) || w > textBudget / 16) return;
    // Oldest first out, until both the count and the text fit.
    for (const [k, e] of entries) {
      if (entries.size < maxEntries && weight + w <= textBudget) break;
      entries.delete(k);
      weight -= e.weight;
    }
    entries.set(key, { decision: { ...decision, cached: true }, weight: w });
    weight += w;
  };
  const stats = (current?: ClusterState): VerdictCacheStats => {
    if (current !== undefined) keepOnlyFor(current);
    return { hits, misses, entries: entries.size, weight };
  };
  const inner = decide.sliced;
  if (inner === undefined) return Object.assign(cached, { stats });
  // Sliced decisions in flight, by key: a repeat that arrives while the first is still being made (a
  // client's retry after a timeout, two controllers diffing one object) waits for it instead of queueing
  // a second evaluation, when the state has not moved since the first began.
  const inFlight = new Map<string, { readonly state: ClusterState; readonly revision: number; readonly decision: Promise<Decision> }>();
  // decide.sliced behind the same cache: a hit is answered at once, a miss evaluated in slices.
  const sliced = async (change: Change, state: ClusterState): Promise<Decision> => {
    if (maxEntries <= 0 || change.kind === undefined) return inner(change, state);
    const { key, hit } = lookup(change, state);
    if (hit !== undefined) return hit;
    const first = inFlight.get(key);
    if (first !== undefined && first.state === state && first.revision === state.revision) {
      try {
        const d = await first.decision;
        // A decision the cache would not keep (a rule failed, the budget ran out: a retry after a timeout
        // is the usual repeat, and its first may well have run out) is not handed on: this one is evaluated.
        if (d.incomplete === undefined && !hasRuleFailure(d)) return d;
      } catch {
        // the first one's failure is its own: this one is evaluated below
      }
    }
    const revision = state.revision;
    const pending = inner(change, state);
    inFlight.set(key, { state, revision, decision: pending });
    try {
      const decision = await pending;
      keep(key, state, revision, decision);
      return decision;
    } finally {
      if (inFlight.get(key)?.decision === pending) inFlight.delete(key);
    }
  };
  return Object.assign(cached, { stats, sliced });
}
