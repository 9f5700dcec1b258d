// Caches keyed by per-request objects, without making the garbage collector pay for them.
//
// V8's young-generation collector (the scavenger) holds the values of a long-lived WeakMap strongly
// while their keys are young: a value cached under a per-request key (the admission overlay, its patched
// lists, the request's own policy and everything derived from them) is copied by the next scavenge and
// promoted by the one after, although nothing but the dead key refers to it. With module-level WeakMaps
// keyed that way, ~7 KB per request survived every scavenge: scavenges took 5-10 ms and old space grew
// until a mark-compact, which was the webhook's latency tail.
//
// So a decision runs inside a request scope: objects that live only for this request are marked
// ephemeral (the overlay marks what it creates; a cache marks what it computes from an ephemeral key),
// and a ScopedWeakMap keeps their entries in a WeakMap that is itself created during the request and
// dropped at its end, so the whole lot dies young. Stable keys (the cluster state's own objects and
// lists) keep using one long-lived WeakMap, as before. Marking is only about memory: both maps are valid
// caches, so a missed or extra mark changes no answer.

class Scope {
  readonly ephemeral = new WeakSet<object>();
  /**
   * Each map's table of this request's entries (with the map's epoch when it was made). Held by the
   * scope, so that a scope entered again (a review's next slice, after other decisions ran in between
   * with scopes of their own) finds its entries where it left them.
   */
  readonly tables = new Map<ScopedWeakMap<object, unknown>, { readonly epoch: number; readonly map: WeakMap<object, unknown> }>();
}

let current: Scope | undefined;

/**
 * Bumped by forgetCachedResults(): every ScopedWeakMap then starts afresh. An evaluation stopped part
 * way (its budget ran out) may have left an entry half-built; dropping everything is the safe answer.
 */
let generation = 0;

/** Empties every ScopedWeakMap (lazily, at its next use). */
export function forgetCachedResults(): void {
  generation++;
}

/** Runs `fn` in a request scope (a nested call joins the enclosing one). */
export function inRequestScope<T>(fn: () => T): T {
  if (current !== undefined) return fn();
  const scope = openRequestScope();
  try {
    return scope.run(fn);
  } finally {
    scope.close();
  }
}

/** A request scope entered more than once (a review evaluated in slices), then closed once. */
export interface RequestScope {
  /** Runs `fn` in this scope (inside another scope: in that one, as inRequestScope does). */
  run<T>(fn: () => T): T;
  /** Ends the scope: its maps drop this request's entries. */
  close(): void;
}

/**
 * A request scope for a review evaluated in slices (verdict/decide.ts): the scope is current only while
 * a slice runs, so what runs between two slices (another review, the warm-up, the audit) gets a scope of
 * its own. A map that served such a scope in between starts this request's map afresh when the next
 * slice uses it: a cache miss, never a wrong answer.
 */
export function openRequestScope(): RequestScope {
  const scope = new Scope();
  return {
    run<T>(fn: () => T): T {
      if (current !== undefined) return fn();
      current = scope;
      try {
        return fn();
      } finally {
        current = undefined;
      }
    },
    close(): void {
      for (const m of scope.tables.keys()) m.dropScoped(scope);
      scope.tables.clear();
    },
  };
}

/** Marks an object as living only for the current request (no-op outside a request scope). */
export function markEphemeral(o: object | undefined | null): void {
  if (current !== undefined && o !== undefined && o !== null) current.ephemeral.add(o);
}

export function isEphemeral(o: object): boolean {
  return current !== undefined && current.ephemeral.has(o);
}

// Entries held on their key (issue 21, the event loop at 50k pods). A WeakMap entry is an ephemeron:
// V8's major collection may mark its value only once it has marked the key, and an entry whose key was
// not yet marked when the marker reached the table is left for the collection's final, stop-the-world
// pause. The memo tables sit a few steps from the roots (module variables), their keys (the state's pods,
// lists and objects) much deeper, so at 50k pods nearly every entry waited: the final pause marked the
// derived tables hanging off 220k entries (10-19 ms of its 20-30 ms), often after V8 gave up iterating
// and fell back to its linear ephemeron pass. The same tables held strongly took that part to 0-2 ms.
// So a memo declared once (at module level: `onKey`) keeps each stable entry in a small record on the
// key object itself, under a symbol no other code reads, not enumerable (spreads, JSON, comparisons and
// structuredClone do not see it): the value is then reachable from its key as an ordinary property, and
// dies with the key as a WeakMap's would. Keys that cannot take a property (frozen or sealed objects)
// keep using the WeakMap. A map created per state, per token or per key (nested memos) must not use a
// record: a record outlives the map, so an entry of a dropped map would live as long as its key.

/**
 * The record on a key object: the key itself (a record found through a prototype is another object's),
 * then [slot, epoch, value] triples, one per onKey map that holds an entry.
 */
const ENTRIES = Symbol('meshguard.memoEntries');
type Holder = { [ENTRIES]?: unknown[] };

/** In a map's WeakMap: the entry was deleted while its key's record, frozen, still holds it. */
const GONE: unique symbol = Symbol('meshguard.memoGone');

/** How many onKey maps the process may declare; a map created over and over with onKey hits it at once. */
export const MAX_ON_KEY_MAPS = 128;
let onKeyMaps = 0;

/** The key's own record, if it has one. */
function recordOf(key: object): unknown[] | undefined {
  const rec = (key as Holder)[ENTRIES];
  return rec !== undefined && rec[0] === key ? rec : undefined;
}

/** How many entries a key object holds in onKey maps' records (tests: where an entry went). */
export function entriesOnKey(key: object): number {
  const rec = recordOf(key);
  return rec === undefined ? 0 : (rec.length - 1) / 3;
}

/** A WeakMap whose entries for ephemeral keys live in a per-request map (see above). */
export class ScopedWeakMap<K extends object, V> {
  #stable = new WeakMap<K, V>();
  /** Whether #stable holds anything (with onKey, only keys that take no property go there). */
  #stableUsed = false;
  #generation = generation;
  #scoped: WeakMap<K, V> | undefined;
  #scope: Scope | undefined;
  /**
   * Kept by forgetCachedResults(): for memos whose entries are stored only once computed whole and are
   * computed only from memos that are kept too (or whose content, not identity, they depend on), so that
   * a review cut by its budget does not make the next one recompute them (and run out in turn).
   */
  readonly #keepOnForget: boolean;
  /** This map's slot in key records (onKey), or -1: stable entries in #stable only. */
  readonly #slot: number;
  /** Every entry stable, a request's own keys too (a plain WeakMap's lifetimes, see `unscoped`). */
  readonly #unscoped: boolean;
  /** Bumped when forgetCachedResults() drops this map's entries: a record entry of another epoch is gone. */
  #epoch = 0;

  /**
   * `onKey`: keep stable entries on their keys (see above); only for a map created once per process
   * (a module-level memo), at most MAX_ON_KEY_MAPS of them. `unscoped`: no per-request map, whatever the
   * key (for a pure function of its key: an object a request made may be kept past it, and its entry
   * with it, as in a plain WeakMap).
   */
  constructor(opts: { readonly keepOnForget?: boolean; readonly onKey?: boolean; readonly unscoped?: boolean } = {}) {
    this.#keepOnForget = opts.keepOnForget === true;
    this.#unscoped = opts.unscoped === true;
    if (opts.onKey === true) {
      if (onKeyMaps >= MAX_ON_KEY_MAPS) throw new Error(`more than ${MAX_ON_KEY_MAPS} ScopedWeakMaps hold entries on their keys: onKey is for maps created once`);
      this.#slot = onKeyMaps++;
    } else {
      this.#slot = -1;
    }
  }

  /** The index of this map's triple in `rec`, or -1. */
  #find(rec: unknown[]): number {
    for (let i = 1; i < rec.length; i += 3) if (rec[i] === this.#slot) return i;
    return -1;
  }

  /**
   * Stores on the key's record; false if the key cannot take one: not extensible, or frozen after it
   * took a record (its record property is then read-only, and a deep freeze freezes the record too),
   * or carrying a read-only record copied from another object. The caller then keeps the entry in the
   * WeakMap, which get() and has() read first.
   */
  #putOnKey(key: K, value: V): boolean {
    const rec = recordOf(key);
    try {
      if (rec === undefined) {
        if (!Object.isExtensible(key)) return false;
        // A record of its own length (an array grown by push keeps room for 17 elements: 136 bytes
        // more per key, 10-15 MB at 50k pods).
        Object.defineProperty(key, ENTRIES, { value: [key, this.#slot, this.#epoch, value], writable: true });
        return true;
      }
      const i = this.#find(rec);
      if (i < 0) {
        (key as Holder)[ENTRIES] = rec.concat([this.#slot, this.#epoch, value]);
      } else {
        rec[i + 1] = this.#epoch;
        rec[i + 2] = value;
      }
      return true;
    } catch {
      // TypeError from a frozen key or record (ES modules are strict): nothing was written.
      return false;
    }
  }

  /** The index of this map's live entry (of this epoch) in `rec`, or -1. */
  #live(rec: unknown[] | undefined): number {
    if (rec === undefined) return -1;
    const i = this.#find(rec);
    return i >= 0 && rec[i + 1] === this.#epoch ? i : -1;
  }

  #scopedFor(key: K): WeakMap<K, V> | undefined {
    const s = current;
    if (s === undefined || !s.ephemeral.has(key)) return undefined;
    return this.#tableIn(s, true);
  }

  /**
   * This map's table in scope `s` (made when `create`): the last scope's is at hand, another's is found
   * on that scope, unless this map forgot its entries since (another epoch).
   */
  #tableIn(s: Scope, create: boolean): WeakMap<K, V> | undefined {
    if (this.#scope === s) return this.#scoped;
    const self = this as unknown as ScopedWeakMap<object, unknown>;
    const t = s.tables.get(self);
    let m = t !== undefined && t.epoch === this.#epoch ? (t.map as WeakMap<K, V>) : undefined;
    if (m === undefined) {
      if (!create) return undefined;
      m = new WeakMap();
      s.tables.set(self, { epoch: this.#epoch, map: m as WeakMap<object, unknown> });
    }
    this.#scope = s;
    this.#scoped = m;
    return m;
  }

  /** This request's table, if the current scope has one for this map. */
  #currentTable(): WeakMap<K, V> | undefined {
    const s = current;
    return s === undefined ? undefined : this.#tableIn(s, false);
  }

  // Reads try the long-lived map first (most keys are stable), then this request's map if it has one:
  // no ephemeral check on the hot path.
  get(key: K): V | undefined {
    if (this.#generation !== generation) this.#forget();
    let v: V | undefined;
    if (this.#slot >= 0) {
      // The WeakMap first when it holds anything: an entry there is newer than its key's record (see
      // #putOnKey), and a deletion that could not touch a frozen record is a GONE there.
      if (this.#stableUsed) {
        const s = this.#stable.get(key);
        if (s !== undefined) return s === (GONE as V) ? this.#scopedGet(key) : s;
        if (this.#stable.has(key)) return this.#scopedGet(key);
      }
      const rec = recordOf(key);
      if (rec !== undefined) {
        // Inline #find: this is every memo's hot path.
        for (let i = 1; i < rec.length; i += 3) {
          if (rec[i] === this.#slot) {
            if (rec[i + 1] === this.#epoch) v = rec[i + 2] as V;
            break;
          }
        }
      }
    } else {
      v = this.#stable.get(key);
    }
    return v !== undefined ? v : this.#scopedGet(key);
  }

  #scopedGet(key: K): V | undefined {
    return this.#currentTable()?.get(key);
  }

  has(key: K): boolean {
    if (this.#generation !== generation) this.#forget();
    if (this.#stableUsed && this.#stable.has(key)) {
      // Only an onKey map keeps GONE (see delete).
      if (this.#slot < 0 || this.#stable.get(key) !== (GONE as V)) return true;
    } else if (this.#slot >= 0 && this.#live(recordOf(key)) >= 0) {
      return true;
    }
    return this.#currentTable()?.has(key) === true;
  }

  set(key: K, value: V): this {
    if (this.#generation !== generation) this.#forget();
    const m = this.#unscoped ? undefined : this.#scopedFor(key);
    if (m === undefined) {
      if (this.#slot < 0 || !this.#putOnKey(key, value)) {
        this.#stable.set(key, value);
        this.#stableUsed = true;
      }
    } else {
      m.set(key, value);
      // What is computed from an ephemeral key is ephemeral too (and may key other caches).
      if (typeof value === 'object' && value !== null) current!.ephemeral.add(value);
    }
    return this;
  }

  delete(key: K): boolean {
    if (this.#generation !== generation) this.#forget();
    const m = this.#unscoped ? undefined : this.#scopedFor(key);
    if (m !== undefined && m.delete(key)) return true;
    if (this.#slot < 0) return this.#stable.delete(key);
    const rec = recordOf(key);
    if (this.#stableUsed && this.#stable.has(key)) {
      if (this.#stable.get(key) === (GONE as V)) return false;
      if (this.#live(rec) < 0) return this.#stable.delete(key);
      // A stale entry in a frozen record below it: keep it hidden.
      this.#stable.set(key, GONE as V);
      return true;
    }
    const i = this.#live(rec);
    if (i >= 0) {
      if (Object.isFrozen(rec)) {
        // Frozen by a deep freeze of its key: hide the entry instead.
        this.#stable.set(key, GONE as V);
        this.#stableUsed = true;
      } else {
        rec![i + 1] = -1;
        rec![i + 2] = undefined;
      }
      return true;
    }
    return this.#stable.delete(key);
  }

  #forget(): void {
    if (this.#keepOnForget) {
      this.#generation = generation;
      return;
    }
    this.#stable = new WeakMap();
    this.#stableUsed = false;
    this.#epoch++;
    this.#scope = undefined;
    this.#scoped = undefined;
    this.#generation = generation;
  }

  /** Called when `scope` ends: its entries go with it. */
  dropScoped(scope: object): void {
    if (this.#scope === scope) {
      this.#scope = undefined;
      this.#scoped = undefined;
    }
  }
}
