/**
 * PersistentSet: a persistent object with the whole `Set` API.
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

const valuesOf = (target: object): SetIterator<unknown> =>
  (target as SetTarget<unknown>)[ITEMS].values();

interface SetTarget<T> {
  [ITEMS]: Set<T>;
}

/** What the set-algebra methods accept as the other operand (like ES2025's set methods). */
export interface SetLike<T> {
  /** The number of elements. */
  readonly size: number;
  /** Whether `value` is an element. */
  has(value: T): boolean;
  /** The elements. */
  keys(): Iterator<T>;
}

/**
 * `other`, checked to be set-like as ES2025's set methods check it (a numeric size, `has`
 * and `keys` methods): an array, say, has none, where its indexes would be taken for its
 * elements.
 */
function setRecord<T>(other: SetLike<T>): SetLike<T> {
  const like = other as Partial<SetLike<T>> | null;
  if (
    typeof like !== 'object' ||
    like === null ||
    typeof like.size !== 'number' ||
    Number.isNaN(like.size) ||
    typeof like.has !== 'function' ||
    typeof like.keys !== 'function'
  ) {
    throw new InvalidArgumentError(
      `other must be set-like (a size, has and keys), got ${describe(other)}`,
      { argument: 'other' },
    );
  }
  return other;
}

/** Whether `other` holds `value`, an element as read, or the element as stored. */
function holds(other: SetLike<unknown>, value: unknown): boolean {
  if (other.has(value)) return true;
  const stored = unwrapArgument(value);
  return stored !== value && other.has(stored);
}

function* iterate<T>(iterator: Iterator<T>): Generator<T> {
  for (let step = iterator.next(); !step.done; step = iterator.next()) yield step.value;
}

/**
 * A persistent `Set`. Concurrent transactions that add or remove different elements both
 * commit (a three-way merge).
 */
export class PersistentSet<T = any> extends Persistent implements Set<T> {
  /** @internal The items, kept under a symbol of trove's own. */
  declare [ITEMS]: Set<T>;

  /** A set holding `values`, like `new Set(values)`. */
  constructor(values?: Iterable<T> | null) {
    super();
    const items = new Set<T>();
    const given = expectOptionalIterable<T>(values, 'values');
    if (given !== undefined) {
      const meta = (this as unknown as { [META]: ObjectMeta })[META];
      for (const value of given) items.add(adopt(meta, value, true) as T);
    }
    this[ITEMS] = items;
  }

  /** The number of elements. */
  get size(): number {
    return readTarget<SetTarget<T>>(this)[ITEMS].size;
  }

  /**
   * Whether `value` is an element. An object element read from this set is a view of the
   * stored one (see change-tracking), and stands for it here and in `delete`.
   */
  has(value: T): boolean {
    return readTarget<SetTarget<T>>(this)[ITEMS].has(unwrapArgument(value) as T);
  }

  /** Adds `value`. */
  add(value: T): this {
    if (!this.has(value)) {
      const target = writeTarget<SetTarget<T>>(this);
      target[ITEMS].add(adopt(target[META], value, true) as T);
    }
    return this;
  }

  /** Removes `value`; true if it was an element. */
  delete(value: T): boolean {
    if (!this.has(value)) return false;
    return writeTarget<SetTarget<T>>(this)[ITEMS].delete(unwrapArgument(value) as T);
  }

  /** Removes every element. */
  clear(): void {
    if (this.size > 0) writeTarget<SetTarget<T>>(this)[ITEMS].clear();
  }

  /** Calls `callback` for each element, in insertion order. */
  forEach(callback: (value: T, value2: T, set: Set<T>) => void, thisArg?: unknown): void {
    expectFunction(callback, 'callback');
    for (const value of this.values()) callback.call(thisArg, value, value, this);
  }

  /**
   * The elements, in insertion order. Like a Set's, the iterator is live; kept across a
   * reload of the set, it goes on in the new state (see itemsOfState).
   */
  *values(): SetIterator<T> {
    const target = readTarget<SetTarget<T>>(this);
    for (const value of itemsOfState(this, valuesOf, (element) => element))
      yield trackItem(target, value) as T;
  }

  /** The elements (a Set's keys are its values). */
  keys(): SetIterator<T> {
    return this.values();
  }

  /** `[value, value]` for each element, as `Set.prototype.entries`. */
  *entries(): SetIterator<[T, T]> {
    for (const value of this.values()) yield [value, value];
  }

  /** The elements, in insertion order. */
  [Symbol.iterator](): SetIterator<T> {
    return this.values();
  }

  // The set-algebra methods ask `other` about an object element both as read (a view of the
  // stored one, see change-tracking: what a set made from this one's elements holds) and as
  // stored (what a set made from the objects added holds). The sets they return hold the
  // elements as read, as iteration gives them.

  /** A new Set of the elements of this set and `other`. */
  union<U>(other: SetLike<U>): Set<T | U> {
    const record = setRecord(other);
    const result = new Set<T | U>(this);
    for (const value of iterate(record.keys()))
      if (!this.has(value as unknown as T)) result.add(value);
    return result;
  }

  /** A new Set of the elements in both this set and `other`. */
  intersection<U>(other: SetLike<U>): Set<T & U> {
    const record = setRecord(other);
    return new Set([...this].filter((value) => holds(record, value))) as Set<T & U>;
  }

  /** A new Set of the elements of this set that are not in `other`. */
  difference<U>(other: SetLike<U>): Set<T> {
    const record = setRecord(other);
    return new Set([...this].filter((value) => !holds(record, value)));
  }

  /** A new Set of the elements in exactly one of this set and `other`. */
  symmetricDifference<U>(other: SetLike<U>): Set<T | U> {
    const result = new Set<T | U>(this.difference(other));
    for (const value of iterate(other.keys()))
      if (!this.has(value as unknown as T)) result.add(value);
    return result;
  }

  /** Whether every element of this set is in `other`. */
  isSubsetOf(other: SetLike<unknown>): boolean {
    const record = setRecord(other);
    return [...this].every((value) => holds(record, value));
  }

  /** Whether every element of `other` is in this set. */
  isSupersetOf(other: SetLike<unknown>): boolean {
    const record = setRecord(other);
    for (const value of iterate(record.keys())) if (!this.has(value as T)) return false;
    return true;
  }

  /** Whether this set and `other` have no element in common. */
  isDisjointFrom(other: SetLike<unknown>): boolean {
    const record = setRecord(other);
    return [...this].every((value) => !holds(record, value));
  }

  /** `PersistentSet`, for `Object.prototype.toString`. */
  get [Symbol.toStringTag](): string {
    return 'PersistentSet';
  }

  /**
   * Resolves concurrent changes element by element (and attributes key by key): additions
   * and removals on both sides all count, an element both added or both removed once;
   * undefined (a conflict) when both sides changed one attribute.
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
    this[ITEMS] = items instanceof Set ? (items as Set<T>) : new Set();
    super[SET_STATE](attributes);
  }
}

registerClass(PersistentSet, 'trove.PersistentSet');
