/**
 * Values MessagePack cannot carry as they are, kept exactly anyway: `-0` (MessagePack has
 * one integer zero), strings with unpaired UTF-16 surrogates (MessagePack strings are UTF-8,
 * which cannot hold them) and objects with an own property named `__proto__` (decoders drop
 * it, to keep the prototype safe). The state scan flags records holding any; only those are
 * copied with such values replaced by extension markers, so ordinary records cost nothing.
 *
 * @module
 */

import { addExtension } from 'msgpackr';
import { defineData } from '../util/define-data.js';
import { BrokenValue } from './broken-value.js';
import { type AnyClass, classForName, nameOfClass } from './class-registry.js';
import {
  type ErrorPartList,
  ErrorParts,
  errorFromParts,
  errorParts,
  isErrorPartList,
} from './error-values.js';
import { isPersistentClass, referenceType } from './reference-type.js';

const NEGATIVE_ZERO_EXTENSION = 0x1a;
const UTF16_STRING_EXTENSION = 0x1b;
const ENTRIES_OBJECT_EXTENSION = 0x1c;

class NegativeZero {}
class Utf16String {
  constructor(readonly units: Uint16Array) {}
}
/**
 * Objects read from a EntriesObject: the user's own data, never a class marker, even with a
 * CLASS_KEY key (see restoreValueClasses).
 */
const readFromEntries = new WeakSet<object>();

/**
 * An object written as its entries: one with a key MessagePack or a decoder cannot keep as
 * it is (`__proto__`, a lone surrogate, CLASS_KEY), or with a null prototype, or such a
 * value-class instance (then with its class name).
 */
class EntriesObject {
  constructor(
    readonly entries: Array<[string, unknown]>,
    readonly nullPrototype: boolean,
    readonly className: string | null = null,
  ) {}
}

/** Builds the object a EntriesObject (or its kind-3 marker) describes, into `object`. */
function fromEntries(
  object: Record<string, unknown>,
  entries: Array<[string, unknown]>,
  nullPrototype: boolean,
  className: string | null,
): object {
  readFromEntries.add(object);
  // Defined, not assigned: `__proto__` is an ordinary own property here.
  for (const [key, value] of entries) defineData(object, key, value);
  if (nullPrototype) Object.setPrototypeOf(object, null);
  if (className === null) return object;
  const cls = classForName(className);
  if (cls !== undefined && !isPersistentClass(cls))
    return Object.setPrototypeOf(object, cls.prototype);
  return BrokenValue.create(className, object);
}

addExtension({
  Class: NegativeZero,
  type: NEGATIVE_ZERO_EXTENSION,
  write: () => 0,
  read: () => -0,
});
addExtension({
  Class: Utf16String,
  type: UTF16_STRING_EXTENSION,
  write: (value: Utf16String) =>
    Buffer.from(value.units.buffer, value.units.byteOffset, value.units.byteLength),
  read: (bytes: Uint8Array) => {
    const units = new Uint16Array(bytes.byteLength / 2);
    new Uint8Array(units.buffer).set(bytes);
    let text = '';
    for (let i = 0; i < units.length; i += 8192)
      text += String.fromCharCode(...units.subarray(i, i + 8192));
    return text;
  },
});
addExtension({
  Class: EntriesObject,
  type: ENTRIES_OBJECT_EXTENSION,
  write: (value: EntriesObject) =>
    value.className === null
      ? [value.nullPrototype, value.entries]
      : [value.nullPrototype, value.entries, value.className],
  read: ([nullPrototype, entries, className]: [boolean, Array<[string, unknown]>, string?]) =>
    fromEntries({}, entries, nullPrototype, className ?? null),
});

const isWellFormed = (text: string): boolean =>
  (text as unknown as { isWellFormed(): boolean }).isWellFormed();

/** True for a value that needs a marker of its own (not for containers holding one). */
export function isExoticPrimitive(value: unknown): boolean {
  return (
    (value === 0 && Object.is(value, -0)) || (typeof value === 'string' && !isWellFormed(value))
  );
}

/**
 * True for a key an object must be written as its entries for (see EntriesObject): one
 * that would not read back as it is (`__proto__`; a lone surrogate; CLASS_KEY, which in the
 * user's data must not read back as a class marker).
 */
export function isExoticKey(key: string): boolean {
  return key === '__proto__' || key === CLASS_KEY || !isWellFormed(key);
}

/**
 * True for the arrays stored as arrays: those of this realm's Array.prototype, and those
 * without a prototype (msgpackr writes any array as one; it loads with Array.prototype).
 *
 * @internal
 */
export function isStoredAsArray(value: object, proto: object | null): boolean {
  return proto === Array.prototype || (proto === null && Array.isArray(value));
}

/**
 * A copy of a state with exotic values replaced by markers. Containers are copied (shared
 * and cyclic ones once, so structure is kept); persistent objects and leaf values (dates,
 * binary) are kept as they are.
 */
export function faithfulCopy(
  state: Record<string, unknown>,
  markValueClasses = false,
): Record<string, unknown> {
  const base = referenceType().base;
  const copies = new Map<object, unknown>();
  const copy = (value: unknown): unknown => {
    if (typeof value === 'number') return Object.is(value, -0) ? new NegativeZero() : value;
    if (typeof value === 'string')
      return isWellFormed(value) ? value : new Utf16String(unitsOf(value));
    if (typeof value !== 'object' || value === null || value instanceof base) return value;
    const done = copies.get(value);
    if (done !== undefined) return done;
    const proto = Object.getPrototypeOf(value) as object | null;
    if (isStoredAsArray(value, proto)) {
      const array = value as unknown[];
      const out: unknown[] = [];
      copies.set(value, out);
      for (let i = 0; i < array.length; i++) out.push(copy(array[i]));
      return out;
    }
    if (proto === Map.prototype) {
      const out = new Map();
      copies.set(value, out);
      for (const [key, item] of value as Map<unknown, unknown>) out.set(copy(key), copy(item));
      return out;
    }
    if (proto === Set.prototype) {
      const out = new Set();
      copies.set(value, out);
      for (const item of value as Set<unknown>) out.add(copy(item));
      return out;
    }
    if (value instanceof BrokenValue) {
      if (needsEntries(value.state, false)) {
        return asEntries(value, value.state, false, value.className);
      }
      if (markValueClasses) return marked(value, value.className, value.state);
      const out = BrokenValue.create(value.className, {});
      copies.set(value, out);
      copyProperties(value.state, out.state);
      return out;
    }
    const plain = proto === Object.prototype || proto === null;
    if (plain || isValueClassInstance(value, proto)) {
      const name = plain
        ? undefined
        : nameOfClass((proto as { constructor: AnyClass }).constructor);
      const source = value as Record<string, unknown>;
      if (needsEntries(source, proto === null)) {
        return asEntries(value, source, proto === null, name ?? null);
      }
      if (markValueClasses && name !== undefined) return marked(value, name, source);
      // Registered before its contents are copied, so a cycle through it finds the copy.
      const out: Record<string, unknown> = plain ? {} : Object.create(proto);
      copies.set(value, out);
      copyProperties(source, out);
      return out;
    }
    if (value instanceof Error) {
      const parts = errorParts(value);
      const copied = [...parts] as ErrorPartList;
      // Among shared values an error is a marker object (see restoreValueClasses): msgpackr
      // would rebuild an error in a cycle as a plain object.
      const out = markValueClasses ? { [CLASS_KEY]: copied } : new ErrorParts(copied);
      copies.set(value, out);
      for (let i = 0; i < copied.length; i++) copied[i] = copy(copied[i]);
      return out;
    }
    return value; // dates, binary, regular expressions
  };
  // A value-class instance as a plain object with its class name under CLASS_KEY.
  const marked = (value: object, name: string, properties: Record<string, unknown>): unknown => {
    const out: Record<string, unknown> = { [CLASS_KEY]: name };
    copies.set(value, out);
    copyProperties(properties, out);
    return out;
  };
  /**
   * An object as its entries (see EntriesObject). Among shared values it is a plain object
   * holding them under CLASS_KEY, rebuilt in place when read (restoreValueClasses): msgpackr
   * would rebuild an extension value in a cycle as a plain object.
   */
  const asEntries = (
    value: object,
    source: Record<string, unknown>,
    nullPrototype: boolean,
    className: string | null,
  ): unknown => {
    const entries: Array<[string, unknown]> = [];
    const out = markValueClasses
      ? { [CLASS_KEY]: { nullPrototype, className, entries } }
      : new EntriesObject(entries, nullPrototype, className);
    copies.set(value, out);
    for (const key of Object.keys(source)) entries.push([copy(key) as string, copy(source[key])]);
    return out;
  };
  const copyProperties = (source: Record<string, unknown>, target: Record<string, unknown>) => {
    for (const key of Object.keys(source)) defineData(target, key, copy(source[key]));
  };
  // The state itself: its keys are attribute names, with the same needs.
  if (needsEntries(state, false)) {
    const entries = Object.keys(state).map((key): [string, unknown] => [
      copy(key) as string,
      copy(state[key]),
    ]);
    return new EntriesObject(entries, false) as unknown as Record<string, unknown>;
  }
  const copied: Record<string, unknown> = {};
  copyProperties(state, copied);
  return copied;
}

/** Whether an object must be written as its entries: a null prototype, or an exotic key. */
function needsEntries(source: Record<string, unknown>, nullPrototype: boolean): boolean {
  return nullPrototype || Object.keys(source).some(isExoticKey);
}

/**
 * The key under which records with shared or cyclic values keep the class name of a value
 * class instance, written as a plain object: msgpackr rebuilds a cyclic extension value as a
 * plain object, which would lose its class. The instance gets its prototype back in place
 * after decoding (restoreValueClasses), so its identity in cycles is kept.
 */
export const CLASS_KEY = '\u0000trove.class';

/**
 * Gives the objects marked with CLASS_KEY in a decoded state their class again, in place.
 * An object of a class not registered here becomes a BrokenValue, in place too (others in the
 * state may refer to it), and is written back with its class name, shared or not. (Left
 * marked, it was written back as a plain object with the marker as a key once nothing
 * shared it any more, and lost its class.) An error's marker (its parts under CLASS_KEY)
 * cannot become an error in place: it is replaced by the error wherever it is.
 */
export function restoreValueClasses(state: unknown): void {
  const seen = new Set<object>();
  const errors = new Map<object, Error>();
  const referenceBase = referenceType().base;
  const visit = (value: unknown): unknown => {
    if (typeof value !== 'object' || value === null || value instanceof referenceBase) {
      return value;
    }
    const error = errors.get(value);
    if (error !== undefined) return error;
    if (seen.has(value)) return value;
    seen.add(value);
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        const item = visit(value[i]);
        if (item !== value[i]) value[i] = item;
      }
      return value;
    }
    if (value instanceof Set) {
      const items = [...value].map(visit);
      if (items.some((item) => !value.has(item))) {
        value.clear();
        for (const item of items) value.add(item);
      }
      return value;
    }
    if (value instanceof Map) {
      const entries = [...value].map(([key, item]): [unknown, unknown, unknown] => [
        key,
        visit(key),
        visit(item),
      ]);
      if (entries.some(([key, restored]) => restored !== key)) {
        value.clear();
        for (const [, key, item] of entries) value.set(key, item);
      } else {
        for (const [key, , item] of entries) if (item !== value.get(key)) value.set(key, item);
      }
      return value;
    }
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) return value;
    const record = value as Record<string, unknown>;
    const marked = readFromEntries.has(record) ? undefined : record[CLASS_KEY];
    if (isErrorPartList(marked)) {
      return errorFromParts(marked, visit, (made) => errors.set(record, made));
    }
    if (isEntriesMarker(marked)) {
      // Rebuilt in place: what refers to it (a cycle) keeps referring to it.
      delete record[CLASS_KEY];
      const entries = marked.entries.map(([key, item]): [string, unknown] => [key, visit(item)]);
      fromEntries(record, entries, marked.nullPrototype, null);
      return marked.className === null ? record : restoreClass(record, marked.className);
    }
    for (const key of Object.keys(record)) {
      const item = visit(record[key]);
      if (item !== record[key]) record[key] = item;
    }
    if (typeof marked !== 'string') return value;
    delete record[CLASS_KEY];
    return restoreClass(record, marked);
  };
  visit(state);
}

/**
 * Gives `record` (the properties of a value-class instance) the class registered under
 * `className`, in place; or makes it, in place too, a BrokenValue holding them.
 */
function restoreClass(record: Record<string, unknown>, className: string): object {
  const cls = classForName(className);
  if (cls !== undefined && !isPersistentClass(cls))
    return Object.setPrototypeOf(record, cls.prototype);
  const properties: Record<string, unknown> = {};
  for (const key of Object.keys(record)) {
    // Defined, not assigned: a key '__proto__' is data here.
    defineData(properties, key, record[key]);
    delete record[key];
  }
  Object.setPrototypeOf(record, BrokenValue.prototype);
  Object.defineProperty(record, 'className', { value: className, enumerable: true });
  Object.defineProperty(record, 'state', { value: properties, enumerable: true });
  return record;
}

/** The shape of the kind-3 marker of an object written as its entries (see asEntries). */
function isEntriesMarker(value: unknown): value is {
  nullPrototype: boolean;
  className: string | null;
  entries: Array<[string, unknown]>;
} {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    Array.isArray((value as { entries?: unknown }).entries) &&
    typeof (value as { nullPrototype?: unknown }).nullPrototype === 'boolean'
  );
}

function isValueClassInstance(value: object, proto: object | null): boolean {
  return (
    proto !== null &&
    !ArrayBuffer.isView(value) &&
    !(value instanceof ArrayBuffer) &&
    !(value instanceof Date) &&
    !(value instanceof RegExp) &&
    !(value instanceof Error)
  );
}

function unitsOf(text: string): Uint16Array {
  const units = new Uint16Array(text.length);
  for (let i = 0; i < text.length; i++) units[i] = text.charCodeAt(i);
  return units;
}
