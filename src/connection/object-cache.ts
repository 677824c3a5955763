/**
 * A connection's object cache: the identity map (one oid, one object) and the budget of
 * loaded states.
 *
 * Oids are dense, so the map is an array of pages indexed by oid: a lookup is two array
 * reads, and memory follows the ranges of oids the cache holds (one array up to the highest
 * oid held made every pooled connection that read a recent object of a large database hold
 * an array the size of its index). It holds its objects strongly, ghosts included, until
 * the cache shrinks (at transaction boundaries, never in the middle of a transaction's
 * work): then the least recently used loaded objects beyond the budget (objects and bytes)
 * are turned back into ghosts, and, when there are many ghosts, ghosts are moved to a table
 * of weak references, so an object nobody references any more can be collected while one
 * that is still referenced keeps its identity. Weak references are costly to make, so only
 * that move makes them.
 *
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

/**
 * Oids a page holds (a power of two): 32 KiB a page. Pages of 256 or 1,024 oids made hot
 * reads over 200,000 cached objects 10 to 15% slower (random lookups over hundreds of
 * arrays); 4,096 cost about 4%, and a page held for one object stays small.
 */
const PAGE_BITS = 12;
const PAGE_SIZE = 1 << PAGE_BITS;
const PAGE_MASK = PAGE_SIZE - 1;

/** Objects of consecutive oids. */
type Page = Array<ObjectMeta | undefined>;

export class ObjectCache {
  readonly limits: CacheLimits;
  readonly counters: CacheCounters = { hits: 0, misses: 0, evictions: 0 };
  /**
   * Objects held strongly, by oid: page `oid >>> PAGE_BITS`. Taking in another connection's
   * commits looks up every oid they wrote, and most are not in this cache: the page array,
   * a few kilobytes, answers that for most.
   */
  #pages: Array<Page | undefined> = [];
  /** How many slots of each page are taken (a page emptied is dropped). */
  #taken: number[] = [];
  /** Objects held strongly (loaded and ghosts). */
  #held = 0;
  /** Loaded objects and their bytes. */
  #loaded = 0;
  #bytes = 0;
  /** Ghosts released to weak references, by oid. */
  readonly #released = new Map<Oid, WeakRef<ObjectMeta>>();
  /**
   * Set when ghosts were released (see takeReleased): the engine keeps the target of every
   * weak reference made or read in a job until the job ends.
   */
  #releasedInJob = false;

  constructor(limits: CacheLimits) {
    this.limits = limits;
  }

  /** Loaded objects. */
  get loadedCount(): number {
    return this.#loaded;
  }

  /** Bytes of loaded state. */
  get loadedBytes(): number {
    return this.#bytes;
  }

  /** The object for `oid` if the cache has it. */
  get(oid: Oid): ObjectMeta | undefined {
    const meta = this.#pages[oid >>> PAGE_BITS]?.[oid & PAGE_MASK];
    if (meta !== undefined || this.#released.size === 0) return meta;
    const released = this.#released.get(oid)?.deref();
    if (released !== undefined) {
      // Found again while still alive: hold it strongly again.
      this.#released.delete(oid);
      this.#hold(released);
    }
    return released;
  }

  /**
   * The object for `oid` if the cache holds it strongly (ghosts released to weak references
   * are not looked at, nor held again).
   */
  held(oid: Oid): ObjectMeta | undefined {
    return this.#pages[oid >>> PAGE_BITS]?.[oid & PAGE_MASK];
  }

  /** Adds an object (ghost or loaded) under its oid. */
  add(meta: ObjectMeta): void {
    this.#hold(meta);
    if (meta.state !== ObjectState.Ghost) {
      this.#loaded++;
      this.#bytes += meta.size;
    }
  }

  /**
   * Records that a ghost in the cache was loaded. A ghost released to a weak reference is
   * loaded through a reference to it, not a lookup: it is held strongly again, as every
   * loaded object is (so the cache can evict it, and commits elsewhere find it).
   */
  loaded(meta: ObjectMeta): void {
    const oid = meta.oid!;
    if (this.held(oid) !== meta) {
      this.#released.delete(oid);
      this.#hold(meta);
    }
    this.#loaded++;
    this.#bytes += meta.size;
  }

  /** Records that a loaded object's record size changed (it was committed). */
  resized(meta: ObjectMeta, previousSize: number): void {
    this.#bytes += meta.size - previousSize;
  }

  /** Turns a loaded object back into a ghost (its state reloads on next access). */
  unload(meta: ObjectMeta): void {
    if (meta.state === ObjectState.Ghost) return;
    ghostify(meta);
    this.#loaded--;
    this.#bytes -= meta.size;
  }

  /** Removes an object from the cache entirely (a new object whose commit failed). */
  remove(meta: ObjectMeta): void {
    const oid = meta.oid!;
    if (this.held(oid) !== meta) return;
    this.#free(oid);
    if (meta.state !== ObjectState.Ghost) {
      this.#loaded--;
      this.#bytes -= meta.size;
    }
  }

  /** Every loaded object. */
  *loadedObjects(): IterableIterator<ObjectMeta> {
    for (const meta of this.#everyHeld()) if (meta.state !== ObjectState.Ghost) yield meta;
  }

  /** Every object held strongly, in oid order. */
  *#everyHeld(): IterableIterator<ObjectMeta> {
    for (const page of this.#pages) {
      if (page === undefined) continue;
      for (const meta of page) if (meta !== undefined) yield meta;
    }
  }

  /**
   * Ghosts the least recently used unchanged objects until the cache is within its limits
   * (with a tenth of headroom, so the next transaction does not evict again at once), then
   * releases ghosts to weak references if more are held than the object budget allows.
   */
  shrink(): void {
    const { objects, bytes } = this.limits;
    if (this.#loaded > objects || this.#bytes > bytes) {
      const targetObjects = Math.floor(objects * 0.9);
      const targetBytes = Math.floor(bytes * 0.9);
      const candidates: ObjectMeta[] = [];
      for (const meta of this.#everyHeld())
        if (meta.state === ObjectState.Saved) candidates.push(meta);
      candidates.sort((a, b) => a.access - b.access);
      for (const meta of candidates) {
        if (this.#loaded <= targetObjects && this.#bytes <= targetBytes) break;
        this.unload(meta);
        this.counters.evictions++;
      }
    }
    if (this.#held - this.#loaded > objects) this.#releaseGhosts();
  }

  /** Ghosts every unchanged loaded object (after the storage said to flush). */
  unloadAll(): void {
    for (const meta of this.#everyHeld()) if (meta.state === ObjectState.Saved) this.unload(meta);
  }

  /** Forgets everything (the connection closes). */
  clear(): void {
    this.#pages = [];
    this.#taken = [];
    this.#released.clear();
    this.#held = 0;
    this.#loaded = 0;
    this.#bytes = 0;
  }

  #hold(meta: ObjectMeta): void {
    const oid = meta.oid!;
    const index = oid >>> PAGE_BITS;
    let page = this.#pages[index];
    if (page === undefined) {
      page = new Array<ObjectMeta | undefined>(PAGE_SIZE).fill(undefined);
      this.#pages[index] = page;
      this.#taken[index] = 0;
    }
    const slot = oid & PAGE_MASK;
    if (page[slot] === undefined) {
      this.#held++;
      this.#taken[index]!++;
    }
    page[slot] = meta;
  }

  /** Empties the slot of `oid` (which holds an object), and its page if that was the last. */
  #free(oid: Oid): void {
    const index = oid >>> PAGE_BITS;
    this.#pages[index]![oid & PAGE_MASK] = undefined;
    this.#held--;
    if (--this.#taken[index]! === 0) this.#pages[index] = undefined;
  }

  /**
   * Whether ghosts were released since the last call: then they can be collected only once
   * the job that released them has ended, and a loop of transactions that reads without
   * waiting for I/O never ends it (it kept every object it passed, a gigabyte after a
   * million), unless it is given a turn of the event loop.
   */
  takeReleased(): boolean {
    const released = this.#releasedInJob;
    this.#releasedInJob = false;
    return released;
  }

  /** Moves every ghost to a weak reference, and forgets the references that died. */
  #releaseGhosts(): void {
    this.#releasedInJob = true;
    for (const [oid, ref] of this.#released)
      if (ref.deref() === undefined) this.#released.delete(oid);
    for (const meta of [...this.#everyHeld()]) {
      if (meta.state === ObjectState.Ghost) {
        this.#released.set(meta.oid!, new WeakRef(meta));
        this.#free(meta.oid!);
      }
    }
  }
}
