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
  readonly maps: ScopedWeakMap<object, unknown>[] = [];
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
  const scope = new Scope();
  current = scope;
  try {
    return fn();
  } finally {
    current = undefined;
    for (const m of scope.maps) m.dropScoped(scope);
  }
}

/** Marks an object as living only for the current request (no-op outside a request scope). */
export function markEphemeral(o: object | undefined | null): void {
  if (current !== undefined && o !== undefined && o !== null) current.ephemeral.add(o);
}

export function isEphemeral(o: object): boolean {
  return current !== undefined && current.ephemeral.has(o);
}

/** A WeakMap whose entries for ephemeral keys live in a per-request map (see above). */
export class ScopedWeakMap<K extends object, V> {
  #stable = new WeakMap<K, V>();
  #generation = generation;
  #scoped: WeakMap<K, V> | undefined;
  #scope: Scope | undefined;
  /**
   * Kept by forgetCachedResults(): for memos whose entries are stored only once computed whole and are
   * computed only from memos that are kept too (or whose content, not identity, they depend on), so that
   * a review cut by its budget does not make the next one recompute them (and run out in turn).
   */
  readonly #keepOnForget: boolean;

  constructor(opts: { readonly keepOnForget?: boolean } = {}) {
    this.#keepOnForget = opts.keepOnForget === true;
  }

  #scopedFor(key: K): WeakMap<K, V> | undefined {
    const s = current;
    if (s === undefined || !s.ephemeral.has(key)) return undefined;
    if (this.#scope !== s) {
      this.#scope = s;
      this.#scoped = new WeakMap();
      s.maps.push(this as unknown as ScopedWeakMap<object, unknown>);
    }
    return this.#scoped;
  }

  // Reads try the long-lived map first (most keys are stable), then this request's map if it has one:
  // no ephemeral check on the hot path.
  get(key: K): V | undefined {
    if (this.#generation !== generation) this.#forget();
    const v = this.#stable.get(key);
    if (v !== undefined || this.#scoped === undefined || this.#scope !== current) return v;
    return this.#scoped.get(key);
  }

  has(key: K): boolean {
    if (this.#generation !== generation) this.#forget();
    return this.#stable.has(key) || (this.#scoped !== undefined && this.#scope === current && this.#scoped.has(key));
  }

  set(key: K, value: V): this {
    if (this.#generation !== generation) this.#forget();
    const m = this.#scopedFor(key);
    if (m === undefined) {
      this.#stable.set(key, value);
    } else {
      m.set(key, value);
      // What is computed from an ephemeral key is ephemeral too (and may key other caches).
      if (typeof value === 'object' && value !== null) current!.ephemeral.add(value);
    }
    return this;
  }

  delete(key: K): boolean {
    if (this.#generation !== generation) this.#forget();
    const m = this.#scopedFor(key);
    return (m !== undefined && m.delete(key)) || this.#stable.delete(key);
  }

  #forget(): void {
    if (this.#keepOnForget) {
      this.#generation = generation;
      return;
    }
    this.#stable = new WeakMap();
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
