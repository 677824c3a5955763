/**
 * A connection's object cache: the identity map (one oid, one object) and the budget of
 * loaded states.
 *
 * Loaded objects are held strongly and counted against the budget (objects and bytes);
 * ghosts are held weakly, so an object nobody references any more can be collected, while
 * as long as something references it, looking up its oid finds that same object. When the
 * budget is exceeded, the least recently used loaded objects are turned back into ghosts;
 * that happens at transaction boundaries, never in the middle of a transaction's work.
 *
 * @internal
 * @module
 */

import { type ObjectMeta, ObjectState } from '../persistent/object-meta.js';
import { ghostify } from '../persistent/persistent.js';
import type { Oid } from '../storage/types.js';

/** Limits of one connection's cache. */
export interface CacheLimits {
  /** Loaded objects kept in memory. */
  readonly objects: number;
  /** Bytes of loaded state (measured as stored record bytes) kept in memory. */
  readonly bytes: number;
}

/** Counters of one cache. */
export interface CacheCounters {
  /** Lookups answered by an object whose state was already loaded. */
  hits: number;
  /** Loads from the storage (a ghost's first access, or a lookup of an unknown oid). */
  misses: number;
  /** Loaded objects turned back into ghosts to stay within the limits. */
  evictions: number;
}

export class ObjectCache {
  readonly limits: CacheLimits;
  readonly counters: CacheCounters = { hits: 0, misses: 0, evictions: 0 };
  /** Objects with loaded state (and new objects just stored). */
  readonly #loaded = new Map<Oid, ObjectMeta>();
  /** Every object of the connection, ghosts included, held weakly. */
  readonly #all = new Map<Oid, WeakRef<ObjectMeta>>();
  readonly #collected = new FinalizationRegistry<Oid>((oid) => {
    const ref = this.#all.get(oid);
    if (ref !== undefined && ref.deref() === undefined) this.#all.delete(oid);
  });
  #bytes = 0;

  constructor(limits: CacheLimits) {
    this.limits = limits;
  }

  /** Loaded objects. */
  get loadedCount(): number {
    return this.#loaded.size;
  }

  /** Bytes of loaded state. */
  get loadedBytes(): number {
    return this.#bytes;
  }

  /** The object for `oid` if the cache has it. */
  get(oid: Oid): ObjectMeta | undefined {
    return this.#loaded.get(oid) ?? this.#all.get(oid)?.deref();
  }

  /** Adds an object (ghost or loaded) under its oid. */
  add(meta: ObjectMeta): void {
    const oid = meta.oid!;
    this.#all.set(oid, new WeakRef(meta));
    // The registry is keyed on the proxy: the meta lives exactly as long as it does.
    this.#collected.register(meta.proxy, oid);
    if (meta.state !== ObjectState.Ghost) this.loaded(meta);
  }

  /** Records that an object's state was loaded (or replaced). */
  loaded(meta: ObjectMeta): void {
    const previous = this.#loaded.get(meta.oid!);
    if (previous !== undefined) this.#bytes -= previous.size;
    this.#loaded.set(meta.oid!, meta);
    this.#bytes += meta.size;
  }

  /** Turns an object back into a ghost (its state reloads on next access). */
  unload(meta: ObjectMeta): void {
    if (meta.state === ObjectState.Ghost) return;
    ghostify(meta);
    if (this.#loaded.delete(meta.oid!)) this.#bytes -= meta.size;
  }

  /** Removes an object from the cache entirely (a new object whose commit failed). */
  remove(meta: ObjectMeta): void {
    const oid = meta.oid!;
    if (this.#loaded.get(oid) === meta) {
      this.#loaded.delete(oid);
      this.#bytes -= meta.size;
    }
    if (this.#all.get(oid)?.deref() === meta) this.#all.delete(oid);
  }

  /** Every loaded object. */
  loadedObjects(): IterableIterator<ObjectMeta> {
    return this.#loaded.values();
  }

  /**
   * Ghosts the least recently used unchanged objects until the cache is within its limits
   * (with a tenth of headroom, so the next transaction does not evict again at once).
   */
  shrink(): void {
    const { objects, bytes } = this.limits;
    if (this.#loaded.size <= objects && this.#bytes <= bytes) return;
    const targetObjects = Math.floor(objects * 0.9);
    const targetBytes = Math.floor(bytes * 0.9);
    const candidates = [...this.#loaded.values()]
      .filter((meta) => meta.state === ObjectState.Saved)
      .sort((a, b) => a.access - b.access);
    for (const meta of candidates) {
      if (this.#loaded.size <= targetObjects && this.#bytes <= targetBytes) break;
      this.unload(meta);
      this.counters.evictions++;
    }
  }

  /** Ghosts every unchanged loaded object (after the storage said to flush). */
  unloadAll(): void {
    for (const meta of [...this.#loaded.values()]) {
      if (meta.state === ObjectState.Saved) this.unload(meta);
    }
  }

  /** Forgets everything (the connection closes). */
  clear(): void {
    this.#loaded.clear();
    this.#all.clear();
    this.#bytes = 0;
  }
}
