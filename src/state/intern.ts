// A bounded cache of shared values, used to keep one copy of what many cached objects repeat.

/**
 * A bounded cache from a key to a shared value, in two generations: when the young one is full it
 * becomes the old one and the previous old one is dropped, so values still in use stay shared and the
 * cache never holds more than 2 x `max` entries (pods come and go; their values must not pile up).
 */
export class Interner<V> {
  #young = new Map<string, V>();
  #old = new Map<string, V>();
  readonly #max: number;
  constructor(max: number) {
    this.#max = max;
  }
  get(key: string): V | undefined {
    let v = this.#young.get(key);
    if (v === undefined) {
      v = this.#old.get(key);
      if (v !== undefined) this.set(key, v);
    }
    return v;
  }
  set(key: string, v: V): void {
    if (this.#young.size >= this.#max) {
      this.#old = this.#young;
      this.#young = new Map();
    }
    this.#young.set(key, v);
  }
}

// Keys derived from a pod (its identity, its shape) are cached per pod object but equal across the
// replicas of a workload: one shared copy each instead of one string per pod.
const derivedKeys = new Interner<string>(1 << 16);

/** The shared copy of a derived key string. */
export function internKey(key: string): string {
  const hit = derivedKeys.get(key);
  if (hit !== undefined) return hit;
  derivedKeys.set(key, key);
  return key;
}
