/**
 * The walk over an object's state that runs before it is encoded. It finds the persistent
 * objects the state references (the record's refs, and new objects to store by
 * reachability), refuses values that cannot be stored with the path to them, swaps
 * change-tracking views for the raw values behind them, and notices shared or cyclic values
 * (which need msgpackr's slower structured-clone mode).
 *
 * msgpackr itself would silently write a function as undefined and an unregistered class
 * instance as a plain object; a database must refuse those instead of losing data, so the
 * checks happen here, once, before anything is written.
 *
 * @module
 */

import { InvalidArgumentError } from '../errors.js';
import { describe } from '../util/validate.js';
import { BrokenValue } from './broken-value.js';
import { type AnyClass, builtInBase, nameOfClass } from './class-registry.js';
import { ERROR_PART_KEYS } from './error-values.js';
import { isExoticKey, isExoticPrimitive, isStoredAsArray } from './exotic-values.js';
import { isPersistentClass, type ReferenceType, referenceType } from './reference-type.js';

/** What the scan found. */
export interface ScanResult {
  /** True when some non-persistent value is reachable twice (shared or cyclic). */
  readonly sharedValues: boolean;
  /** True when some value needs a marker to be stored exactly (see exotic-values). */
  readonly exoticValues: boolean;
  /** True when the state holds a Map (plain MessagePack maps cannot tell one from an object). */
  readonly maps: boolean;
  /** True when the state holds instances of value classes (or values of unknown ones). */
  readonly valueClasses: boolean;
}

/**
 * How deep values may nest inside one object's state: the value of an attribute is at depth
 * 1, a value inside it at 2. Encoding, decoding and merging recurse once a level, and the
 * costliest shapes (objects with a null prototype, value class instances) overflowed the
 * stack at about 360 levels; a limit well below that keeps a commit from failing with a
 * RangeError half way through, whatever the shape, with room left for the caller's stack
 * (a commit called from thousands of frames deep can still overflow). Deeper structures
 * are built from persistent objects, which are records of their own.
 */
export const MAX_NESTING = 256;

/**
 * The most items an array in one object's state may have. Holes are stored one by one (as
 * undefined), so `list[2 ** 32 - 2] = x` made a commit encode four billion items and never
 * finish; a collection this large belongs in many objects, each a record of its own.
 */
export const MAX_ARRAY_LENGTH = 2 ** 24;

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** Renders a path segment the way JavaScript would write the access. */
export function pathSegment(key: unknown): string {
  if (typeof key === 'number') return `[${key}]`;
  if (typeof key === 'string') return IDENTIFIER.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
  return `[${describe(key)}]`;
}

/**
 * The prototypes of the objects msgpackr stores whole and gives back as they were. Exactly
 * these: a subclass of one (or one of another realm) would be written as its base class, or
 * under a code msgpackr cannot read back.
 */
const LEAF_PROTOTYPES: ReadonlySet<object> = new Set<object>([
  Date.prototype,
  RegExp.prototype,
  ArrayBuffer.prototype,
  DataView.prototype,
  Buffer.prototype,
  Uint8Array.prototype,
  Uint8ClampedArray.prototype,
  Int8Array.prototype,
  Uint16Array.prototype,
  Int16Array.prototype,
  Uint32Array.prototype,
  Int32Array.prototype,
  Float32Array.prototype,
  Float64Array.prototype,
  BigUint64Array.prototype,
  BigInt64Array.prototype,
]);

/**
 * True for the prototypes of values msgpackr stores whole (see LEAF_PROTOTYPES): what a
 * copy of a nested value must copy as one piece, keeping its class.
 */
export function isStoredWhole(proto: object | null): boolean {
  return proto !== null && LEAF_PROTOTYPES.has(proto);
}

/** The built-ins stored as they are, whose subclasses could be stored as their base. */
const STORED_BUILT_INS: ReadonlySet<unknown> = new Set([
  Object,
  Array,
  Map,
  Set,
  ...[...LEAF_PROTOTYPES].map((proto) => proto.constructor),
]);

/** True if `obj`'s prototype chain ends in this realm's Object.prototype. */
function ofThisRealm(obj: object): boolean {
  let proto = Object.getPrototypeOf(obj) as object | null;
  while (proto !== null) {
    const next = Object.getPrototypeOf(proto) as object | null;
    if (next === null) return proto === Object.prototype;
    proto = next;
  }
  return true;
}

/**
 * Why `obj` (of class `cls`, not stored as it is) cannot be stored: what to do instead.
 */
function whyNotStored(obj: object, cls: AnyClass | undefined): string {
  if (!ofThisRealm(obj)) {
    return 'an object of another realm, as a vm context makes: copy it into this one';
  }
  if (typeof cls === 'function' && isPersistentClass(cls)) {
    return 'an object with the prototype of a persistent class, not made by its constructor (a copy made with Object.create): make it with new';
  }
  const builtIn = typeof cls === 'function' ? builtInBase(cls) : undefined;
  if (builtIn === undefined) {
    return `an unregistered class: register it with registerClass(${cls?.name || 'Class'}, 'app.${cls?.name || 'Name'}')`;
  }
  if (builtIn === cls || !STORED_BUILT_INS.has(builtIn)) {
    return 'a built-in object of a kind that cannot be stored';
  }
  return `a subclass of ${builtIn.name}: store a ${builtIn.name}`;
}

/** Every possible result, made once: a scan answers one of them, never a new object. */
const RESULTS: readonly ScanResult[] = Array.from({ length: 16 }, (_, bits) =>
  Object.freeze({
    sharedValues: (bits & 1) !== 0,
    exoticValues: (bits & 2) !== 0,
    maps: (bits & 4) !== 0,
    valueClasses: (bits & 8) !== 0,
  }),
);

/**
 * Told of every persistent object a state refers to; returns what the reference is, if it
 * cannot be stored (`a reference to ...`), so the refusal names where it is.
 */
export type ReferenceCheck = (obj: object) => string | undefined;

const ignoreReference = (): undefined => undefined;
const nowhere = (): string => '';

/**
 * The scanner. A large commit scans many small states, so one scanner serves scan after
 * scan, and a scan allocates nothing of its own (the set of visited values is made only once
 * a state holds more than one nested value, which the states of most objects never do).
 */
class Scan {
  sharedValues = false;
  exoticValues = false;
  maps = false;
  valueClasses = false;
  #refType: ReferenceType = referenceType();
  #onReference: ReferenceCheck = ignoreReference;
  #where: () => string = nowhere;
  /** A state key whose value stands for the object itself (a list's items), left out of paths. */
  #itemsKey: string | undefined = undefined;
  readonly #path: unknown[] = [];
  /** The first nested value visited, and the set of them once there is a second. */
  #first: object | undefined = undefined;
  #visited: Set<object> | undefined = undefined;

  /** Scans `state`; the scanner is ready for the next scan afterwards, even if this throws. */
  run(
    state: Record<string, unknown>,
    onReference: ReferenceCheck,
    where: () => string,
    itemsKey: string | undefined,
  ): ScanResult {
    this.#refType = referenceType();
    this.#onReference = onReference;
    this.#where = where;
    this.#itemsKey = itemsKey;
    this.sharedValues = false;
    this.exoticValues = false;
    this.maps = false;
    this.valueClasses = false;
    try {
      // Symbol-keyed attributes are the object's volatile state: not stored, not refused.
      this.properties(state, false);
      return RESULTS[
        (this.sharedValues ? 1 : 0) |
          (this.exoticValues ? 2 : 0) |
          (this.maps ? 4 : 0) |
          (this.valueClasses ? 8 : 0)
      ]!;
    } finally {
      // Nothing of this scan is kept: not its values, not the caller's callbacks.
      this.#path.length = 0;
      this.#first = undefined;
      this.#visited = undefined;
      this.#onReference = ignoreReference;
      this.#where = nowhere;
    }
  }

  fail(what: string, hint = ''): never {
    // A list's items key stands for the list itself: its item 2 is at `list[2]`.
    const path = this.#path[0] === this.#itemsKey ? this.#path.slice(1) : this.#path;
    const at = this.#where() + path.map(pathSegment).join('');
    throw new InvalidArgumentError(`cannot store ${what} at ${at}${hint}`, { path: at });
  }

  /** Notes `obj` as visited; true if it was already. */
  #seen(obj: object): boolean {
    if (this.#first === undefined) {
      this.#first = obj;
      return false;
    }
    if (obj === this.#first) return true;
    if (this.#visited === undefined) this.#visited = new Set();
    else if (this.#visited.has(obj)) return true;
    this.#visited.add(obj);
    return false;
  }

  /** Scans `value`; returns the value to store in its place (the raw object behind a view). */
  value(value: unknown): unknown {
    if (typeof value !== 'object') {
      if (typeof value === 'function') this.fail(describe(value));
      if (typeof value === 'symbol') this.fail(describe(value));
      if (!this.exoticValues && isExoticPrimitive(value)) this.exoticValues = true;
      return value;
    }
    if (value === null) return value;
    const obj = this.#refType.rawOf(value) ?? value;
    if (this.#refType.isReference(obj)) {
      const refused = this.#onReference(obj);
      if (refused !== undefined) this.fail(refused);
      return obj;
    }
    if (this.#seen(obj)) {
      this.sharedValues = true;
      return obj;
    }
    const path = this.#path;
    // A list's items key stands for the list itself, so its items are at depth 1.
    if (path.length - (path[0] === this.#itemsKey ? 1 : 0) > MAX_NESTING) {
      this.fail(`a value nested more than ${MAX_NESTING} levels deep`);
    }
    const proto = Object.getPrototypeOf(obj) as object | null;
    const asArray = isStoredAsArray(obj, proto);
    if (!asArray && (proto === Object.prototype || proto === null)) {
      // A null prototype is kept by a marker (MessagePack maps read back as plain objects).
      if (proto === null) this.exoticValues = true;
      this.properties(obj as Record<string, unknown>, true);
    } else if (asArray) {
      const array = obj as unknown[];
      if (array.length > MAX_ARRAY_LENGTH) {
        this.fail(
          `an array of ${array.length} items`,
          ` (at most ${MAX_ARRAY_LENGTH} in one object: spread them over several, or use a list of lists)`,
        );
      }
      for (let i = 0; i < array.length; i++) {
        path.push(i);
        const item = array[i];
        const stored = this.value(item);
        if (stored !== item) array[i] = stored;
        path.pop();
      }
    } else if (proto === Map.prototype) {
      this.maps = true;
      const map = obj as Map<unknown, unknown>;
      for (const [key, item] of map) {
        path.push(key);
        this.value(key);
        const stored = this.value(item);
        if (stored !== item) map.set(key, stored);
        path.pop();
      }
    } else if (proto === Set.prototype) {
      let index = 0;
      for (const item of obj as Set<unknown>) {
        path.push(index++);
        this.value(item);
        path.pop();
      }
    } else if (isStoredWhole(proto)) {
      // Stored whole by msgpackr (dates, binary data, regular expressions).
    } else if (obj instanceof Error) {
      // Written as its parts (see error-values); among shared values, as a marker object
      // (msgpackr would rebuild an error in a cycle as a plain object).
      this.valueClasses = true;
      const error = obj as unknown as Record<string, unknown>;
      for (const key of ERROR_PART_KEYS) {
        // Own enumerable ones are scanned with the other properties below.
        if (Object.prototype.propertyIsEnumerable.call(error, key)) continue;
        path.push(key);
        this.value(error[key]);
        path.pop();
      }
      // The error is the user's: views in it are read through (see errorParts), not replaced.
      this.properties(obj as unknown as Record<string, unknown>, false, false);
    } else if (obj instanceof BrokenValue) {
      this.valueClasses = true;
      this.properties(obj.state, false);
    } else {
      this.valueClasses = true;
      const cls = (proto as { constructor?: AnyClass }).constructor;
      if (cls === undefined || nameOfClass(cls) === undefined || isPersistentClass(cls)) {
        this.fail(describe(obj), ` (${whyNotStored(obj, cls)})`);
      }
      this.properties(obj as Record<string, unknown>, true);
    }
    return obj;
  }

  /** Scans the properties of `obj`, storing raw values in place of views if `replaceViews`. */
  properties(obj: Record<string, unknown>, checkSymbols: boolean, replaceViews = true): void {
    if (checkSymbols && Object.getOwnPropertySymbols(obj).length > 0) {
      this.fail('an object with symbol-keyed properties', ' (symbol keys cannot be stored)');
    }
    const path = this.#path;
    for (const key of Object.keys(obj)) {
      if (!this.exoticValues && isExoticKey(key)) {
        this.exoticValues = true;
      }
      path.push(key);
      const item = obj[key];
      const stored = this.value(item);
      if (stored !== item && replaceViews) obj[key] = stored;
      path.pop();
    }
  }
}

/** The scanner not in use (a scan started from inside another one makes its own). */
let idleScan: Scan | undefined;

/**
 * Scans the values of `state` (an object's persisted properties). Calls `onReference` for
 * every persistent object referenced, and refuses the reference if it says why. Throws InvalidArgumentError naming the path to a
 * value that cannot be stored; `where` gives the path of the object whose state this is,
 * and `itemsKey` a key of the state left out of the path (a list's items).
 */
export function scanState(
  state: Record<string, unknown>,
  onReference: ReferenceCheck,
  where: () => string,
  itemsKey?: string,
): ScanResult {
  const scan = idleScan ?? new Scan();
  idleScan = undefined;
  try {
    return scan.run(state, onReference, where, itemsKey);
  } finally {
    idleScan = scan;
  }
}
