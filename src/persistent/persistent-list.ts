/**
 * PersistentList: a persistent object with the whole `Array` API, index access and
 * `length` included.
 *
 * @module
 */

import { registerClass } from '../codec/class-registry.js';
import { expectOptionalIterable } from '../util/validate.js';
import {
  adopt,
  applyInPlace,
  IN_PLACE_METHODS,
  SEARCH_METHODS,
  track,
  unwrapArgument,
} from './change-tracking.js';
import { META, type ObjectMeta } from './object-meta.js';
import {
  GET_STATE,
  INDEXED,
  ITEMS,
  ITEMS_KEY,
  Persistent,
  readTarget,
  refuseReservedKey,
  SET_STATE,
  writeTarget,
} from './persistent.js';

interface ListTarget<T> {
  [ITEMS]: T[];
}

/**
 * A persistent array. `list[i]`, `list.length` and every `Array.prototype` method work as
 * on an array (`Array.isArray` is false: it is a persistent object). Methods that return
 * a new array return a plain array; methods that return the array itself (`sort`,
 * `reverse`, `fill`, `copyWithin`) return the list.
 */
// biome-ignore lint/suspicious/noUnsafeDeclarationMerging: the Array methods are installed on the prototype below
export class PersistentList<T = any> extends Persistent {
  /** @internal The items, kept under a symbol of trove's own. */
  declare [ITEMS]: T[];

  /** A list holding `items`, like `Array.from(items)`. */
  constructor(items?: Iterable<T> | null) {
    super();
    const meta = (this as unknown as { [META]: ObjectMeta })[META];
    const given = expectOptionalIterable<T>(items, 'items');
    this[ITEMS] = given === undefined ? [] : Array.from(given, (item) => adopt(meta, item) as T);
  }

  /** The number of items; setting it truncates or extends the list, as for an array. */
  get length(): number {
    return readTarget<ListTarget<T>>(this)[ITEMS].length;
  }

  set length(length: number) {
    writeTarget<ListTarget<T>>(this)[ITEMS].length = length;
  }

  /**
   * The items, in order. As an array's iterator, it reads the list at each step: kept across
   * a reload of the list (a loop that commits as it goes, when an eviction or another
   * handle's commit loads it again), it goes on at the next index of the state loaded.
   */
  *[Symbol.iterator](): ArrayIterator<T> {
    for (let i = 0; ; i++) {
      // Read again at each step: the items of a dropped state are not the list's.
      const target = readTarget<ListTarget<T>>(this);
      const items = target[ITEMS];
      if (i >= items.length) return undefined;
      yield track(target[META], items[i]) as T;
    }
  }

  /** The items, in order: as `[Symbol.iterator]`. */
  values(): ArrayIterator<T> {
    return this[Symbol.iterator]();
  }

  /** The indexes, in order; read at each step, as `[Symbol.iterator]` reads the items. */
  *keys(): ArrayIterator<number> {
    for (let i = 0; i < readTarget<ListTarget<T>>(this)[ITEMS].length; i++) yield i;
  }

  /** `[index, item]` pairs, in order; read at each step, as `[Symbol.iterator]` reads. */
  *entries(): ArrayIterator<[number, T]> {
    let i = 0;
    for (const item of this) yield [i++, item];
  }

  /** `PersistentList`, for `Object.prototype.toString`. */
  get [Symbol.toStringTag](): string {
    return 'PersistentList';
  }

  /** The items as a plain array (for `JSON.stringify`). */
  toJSON(): T[] {
    return [...readTarget<ListTarget<T>>(this)[ITEMS]];
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
    this[ITEMS] = Array.isArray(items) ? (items as T[]) : [];
    super[SET_STATE](attributes);
  }
}

/**
 * The methods of the Array API whose signatures say something else of a list: those that
 * return the array itself, and those whose callbacks are given the array (both get the list).
 */
type ListSpecific =
  | 'sort'
  | 'reverse'
  | 'fill'
  | 'copyWithin'
  | 'every'
  | 'some'
  | 'forEach'
  | 'map'
  | 'filter'
  | 'reduce'
  | 'reduceRight'
  | 'find'
  | 'findIndex'
  | 'findLast'
  | 'findLastIndex'
  | 'flatMap';

/**
 * Every other method of the Array API, with the signatures of `Array`, except that those
 * that return the array return the list, and callbacks are given the list where an array's
 * get the array. (Omit makes `this` in Array's own signatures `T[]`, hence the redeclared
 * ones.)
 */
export interface PersistentList<T = any>
  extends Omit<
    Array<T>,
    | 'length'
    | 'values'
    | 'keys'
    | 'entries'
    | typeof Symbol.iterator
    | typeof Symbol.unscopables
    | ListSpecific
  > {
  /** Sorts the items in place, as `Array.prototype.sort` does; returns the list. */
  sort(compareFn?: (a: T, b: T) => number): this;
  /** Reverses the items in place; returns the list. */
  reverse(): this;
  /** Sets the items from `start` to `end` to `value`; returns the list. */
  fill(value: T, start?: number, end?: number): this;
  /** Copies the items from `start` to `end` to `target` and on, in place; returns the list. */
  copyWithin(target: number, start: number, end?: number): this;
  /** Whether `predicate` holds for every item (given the item, its index and the list). */
  every<S extends T>(
    predicate: (value: T, index: number, list: this) => value is S,
    thisArg?: any,
  ): this is PersistentList<S>;
  every(predicate: (value: T, index: number, list: this) => unknown, thisArg?: any): boolean;
  /** Whether `predicate` holds for some item (given the item, its index and the list). */
  some(predicate: (value: T, index: number, list: this) => unknown, thisArg?: any): boolean;
  /** Calls `callbackfn` with each item, its index and the list. */
  forEach(callbackfn: (value: T, index: number, list: this) => void, thisArg?: any): void;
  /** A plain array of what `callbackfn` returns for each item, its index and the list. */
  map<U>(callbackfn: (value: T, index: number, list: this) => U, thisArg?: any): U[];
  /** A plain array of the items `predicate` (given the item, its index and the list) keeps. */
  filter<S extends T>(
    predicate: (value: T, index: number, list: this) => value is S,
    thisArg?: any,
  ): S[];
  filter(predicate: (value: T, index: number, list: this) => unknown, thisArg?: any): T[];
  /** Folds the items from the first, as `Array.prototype.reduce`; the callback gets the list. */
  reduce(callbackfn: (previousValue: T, currentValue: T, currentIndex: number, list: this) => T): T;
  reduce(
    callbackfn: (previousValue: T, currentValue: T, currentIndex: number, list: this) => T,
    initialValue: T,
  ): T;
  reduce<U>(
    callbackfn: (previousValue: U, currentValue: T, currentIndex: number, list: this) => U,
    initialValue: U,
  ): U;
  /** Folds the items from the last, as `Array.prototype.reduceRight`; the callback gets the list. */
  reduceRight(
    callbackfn: (previousValue: T, currentValue: T, currentIndex: number, list: this) => T,
  ): T;
  reduceRight(
    callbackfn: (previousValue: T, currentValue: T, currentIndex: number, list: this) => T,
    initialValue: T,
  ): T;
  reduceRight<U>(
    callbackfn: (previousValue: U, currentValue: T, currentIndex: number, list: this) => U,
    initialValue: U,
  ): U;
  /** The first item `predicate` (given the item, its index and the list) holds for. */
  find<S extends T>(
    predicate: (value: T, index: number, list: this) => value is S,
    thisArg?: any,
  ): S | undefined;
  find(predicate: (value: T, index: number, list: this) => unknown, thisArg?: any): T | undefined;
  /** The index of the first item `predicate` holds for, or -1. */
  findIndex(predicate: (value: T, index: number, list: this) => unknown, thisArg?: any): number;
  /** The last item `predicate` (given the item, its index and the list) holds for. */
  findLast<S extends T>(
    predicate: (value: T, index: number, list: this) => value is S,
    thisArg?: any,
  ): S | undefined;
  findLast(
    predicate: (value: T, index: number, list: this) => unknown,
    thisArg?: any,
  ): T | undefined;
  /** The index of the last item `predicate` holds for, or -1. */
  findLastIndex(predicate: (value: T, index: number, list: this) => unknown, thisArg?: any): number;
  /** A plain array of what `callback` returns for each item, flattened one level. */
  flatMap<U, This = undefined>(
    callback: (this: This, value: T, index: number, list: this) => U | ReadonlyArray<U>,
    thisArg?: This,
  ): U[];
}

/** Methods that return the array they were called on; on a list they return the list. */
const RETURNS_RECEIVER = new Set(['copyWithin', 'fill', 'reverse', 'sort']);
/**
 * Methods whose first argument is a callback given the array: on a list it is given the
 * list. (Only these: a function given to another, `concat(fn)` or `join(fn)`, is a value.)
 */
const CALLBACK_METHODS = new Set([
  'every',
  'filter',
  'find',
  'findIndex',
  'findLast',
  'findLastIndex',
  'flatMap',
  'forEach',
  'map',
  'reduce',
  'reduceRight',
  'some',
]);

/**
 * Installs the rest of the Array API, each with the exact semantics of arrays. Searches and
 * the in-place methods run `Array.prototype`'s own algorithm on the stored items (see
 * SEARCH_METHODS, applyInPlace); the others on a change-tracking view of them, so reads hand
 * out tracked values and writes mark the list changed.
 */
function installArrayMethods(): void {
  const own = new Set(Object.getOwnPropertyNames(PersistentList.prototype));
  for (const name of Object.getOwnPropertyNames(Array.prototype)) {
    const method = (Array.prototype as unknown as Record<string, unknown>)[name];
    if (typeof method !== 'function' || name === 'constructor' || own.has(name)) continue;
    const returnsReceiver = RETURNS_RECEIVER.has(name);
    const takesCallback = CALLBACK_METHODS.has(name);
    if (SEARCH_METHODS.has(name)) {
      Object.defineProperty(PersistentList.prototype, name, {
        configurable: true,
        writable: true,
        value: function (this: PersistentList, value: unknown, ...rest: unknown[]) {
          const items = readTarget<ListTarget<unknown>>(this)[ITEMS];
          return method.call(items, unwrapArgument(value), ...rest);
        },
      });
      continue;
    }
    if (IN_PLACE_METHODS.has(name)) {
      Object.defineProperty(PersistentList.prototype, name, {
        configurable: true,
        writable: true,
        value: function (this: PersistentList, ...args: unknown[]) {
          const target = readTarget<ListTarget<unknown>>(this);
          const result = applyInPlace(target[META], name, target[ITEMS], args, () =>
            writeTarget(this),
          );
          return returnsReceiver ? this : result;
        },
      });
      continue;
    }
    Object.defineProperty(PersistentList.prototype, name, {
      configurable: true,
      writable: true,
      value: function (this: PersistentList, ...args: unknown[]) {
        const target = readTarget<ListTarget<unknown>>(this);
        const view = track(target[META], target[ITEMS]);
        // A callback (always the first argument) is given the list itself where an array's
        // would get the array; later arguments (a thisArg, even a function) go as they are.
        const list = this;
        const callback = args[0];
        if (takesCallback && typeof callback === 'function') {
          args[0] = function (this: unknown, ...callbackArgs: unknown[]) {
            return callback.apply(
              this,
              callbackArgs.map((each) => (each === view ? list : each)),
            );
          };
        }
        const result = method.apply(view, args);
        return returnsReceiver ? this : result;
      },
    });
  }
  Object.defineProperty(PersistentList.prototype, INDEXED, { value: true });
  // `[...].concat(list)` spreads a list as it would an array.
  Object.defineProperty(PersistentList.prototype, Symbol.isConcatSpreadable, { value: true });
}

installArrayMethods();
registerClass(PersistentList, 'trove.PersistentList');
