/**
 * PersistentMap: a persistent object with the whole `Map` API. The database root is one.
 *
 * @module
 */

import { registerClass } from '../codec/class-registry.js';
import { InvalidArgumentError } from '../errors.js';
import { describe, expectFunction, expectOptionalIterable } from '../util/validate.js';
import { adopt, unwrapArgument } from './change-tracking.js';
import { META, type ObjectMeta } from './object-meta.js';
import {
  GET_STATE,
  ITEMS,
  ITEMS_KEY,
  itemsOfState,
  Persistent,
  readTarget,
  refuseReservedKey,
  SET_STATE,
  trackItem,
  writeTarget,
} from './persistent.js';
import { mergeStates } from './state-merge.js';

const entriesOf = (target: object): MapIterator<[unknown, unknown]> =>
  (target as MapTarget<unknown, unknown>)[ITEMS].entries();
const keysOf = (target: object): MapIterator<unknown> =>
  (target as MapTarget<unknown, unknown>)[ITEMS].keys();
const entryKey = (entry: readonly [unknown, unknown]): unknown => entry[0];
const itself = (key: unknown): unknown => key;

interface MapTarget<K, V> {
  [ITEMS]: Map<K, V>;
}

/**
 * A persistent `Map`. Keys are compared as in a `Map` (persistent objects by identity);
 * values may be anything storable, including other persistent objects. Concurrent
 * transactions that change different keys both commit (a key-by-key three-way merge).
 */
export class PersistentMap<K = any, V = any> extends Persistent implements Map<K, V> {
  /** @internal The items, kept under a symbol of trove's own. */
  declare [ITEMS]: Map<K, V>;

  /** A map holding `entries`, like `new Map(entries)`. */
  constructor(entries?: Iterable<readonly [K, V]> | null) {
    super();
    const items = new Map<K, V>();
    const given = expectOptionalIterable<readonly [K, V]>(entries, 'entries');
    if (given !== undefined) {
      const meta = (this as unknown as { [META]: ObjectMeta })[META];
      for (const entry of given) {
        // As a Map: an entry is an object (a string 'ab' is not [a, b]).
        if (typeof entry !== 'object' || entry === null) {
          throw new InvalidArgumentError(
            `entries must hold [key, value] entries, got ${describe(entry)}`,
            { argument: 'entries' },
          );
        }
        const [key, value] = entry;
        items.set(adopt(meta, key, true) as K, adopt(meta, value) as V);
      }
    }
    this[ITEMS] = items;
  }

  /** The number of entries. */
  get size(): number {
    return readTarget<MapTarget<K, V>>(this)[ITEMS].size;
  }

  /**
   * The value stored under `key`, or undefined. A view of a stored object (see
   * change-tracking) stands for that object here, in `has` and in `delete`.
   */
  get(key: K): V | undefined {
    const target = readTarget<MapTarget<K, V>>(this);
    return trackItem(target, target[ITEMS].get(unwrapArgument(key) as K)) as V | undefined;
  }

  /** Whether an entry exists for `key`. */
  has(key: K): boolean {
    return readTarget<MapTarget<K, V>>(this)[ITEMS].has(unwrapArgument(key) as K);
  }

  /** Stores `value` under `key`. */
  set(key: K, value: V): this {
    const target = writeTarget<MapTarget<K, V>>(this);
    target[ITEMS].set(adopt(target[META], key, true) as K, adopt(target[META], value) as V);
    return this;
  }

  /** Removes the entry for `key`; true if there was one. */
  delete(key: K): boolean {
    if (!this.has(key)) return false;
    return writeTarget<MapTarget<K, V>>(this)[ITEMS].delete(unwrapArgument(key) as K);
  }

  /** Removes every entry. */
  clear(): void {
    if (this.size > 0) writeTarget<MapTarget<K, V>>(this)[ITEMS].clear();
  }

  /** Calls `callback` for each entry, in insertion order. */
  forEach(callback: (value: V, key: K, map: Map<K, V>) => void, thisArg?: unknown): void {
    expectFunction(callback, 'callback');
    for (const [key, value] of this.entries()) callback.call(thisArg, value, key, this);
  }

  /**
   * The entries, in insertion order. Like a Map's, the iterator is live; kept across a
   * reload of the map, it goes on in the new state (see itemsOfState).
   */
  *entries(): MapIterator<[K, V]> {
    const target = readTarget<MapTarget<K, V>>(this);
    for (const [key, value] of itemsOfState(this, entriesOf, entryKey))
      yield [key as K, trackItem(target, value) as V];
  }

  /**
   * The keys, in insertion order, as stored: an object key is not a view, so a change made
   * to it is not seen (call `markChanged(map)`). As a view it would be copied when used as
   * a key of another map, and no longer find its entry there.
   */
  *keys(): MapIterator<K> {
    yield* itemsOfState(this, keysOf, itself) as MapIterator<K>;
  }

  /** The values, in insertion order. */
  *values(): MapIterator<V> {
    const target = readTarget<MapTarget<K, V>>(this);
    for (const [, value] of itemsOfState(this, entriesOf, entryKey))
      yield trackItem(target, value) as V;
  }

  /** The entries, in insertion order. */
  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.entries();
  }

  /** `PersistentMap`, for `Object.prototype.toString`. */
  get [Symbol.toStringTag](): string {
    return 'PersistentMap';
  }

  /**
   * Resolves concurrent changes key by key (entries and attributes): changes to different
   * keys both stay; undefined (a conflict) when both sides changed one key.
   */
  static resolveConflict(
    oldState: Record<string, unknown>,
    committedState: Record<string, unknown>,
    myState: Record<string, unknown>,
  ): Record<string, unknown> | undefined {
    return mergeStates(oldState, committedState, myState);
  }

  /** @internal */
  override [GET_STATE](): Record<string, unknown> {
    const state = super[GET_STATE]();
    refuseReservedKey(state, ITEMS_KEY);
    state[ITEMS_KEY] = this[ITEMS];
    return state;
  }

  /** @internal */
  override [SET_STATE](state: Record<string, unknown>): void {
    const { [ITEMS_KEY]: items, ...attributes } = state;
    this[ITEMS] = items instanceof Map ? (items as Map<K, V>) : new Map();
    super[SET_STATE](attributes);
  }
}

registerClass(PersistentMap, 'trove.PersistentMap');
