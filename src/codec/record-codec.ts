/**
 * The record codec: an object's class name and state to bytes and back, with msgpackr.
 *
 * A record is the msgpack array `[FORMAT_VERSION, className, state]`. Inside the state,
 * references to other persistent objects are a msgpack extension holding the oid, and
 * instances of registered value classes an extension holding `[name, properties]`. Each
 * record is self-contained (msgpackr's record structures are defined inline, never shared
 * between records), so any record can be read alone, by any process, in any order.
 *
 * @module
 */

import { addExtension, Packr, Unpackr } from 'msgpackr';
import { CorruptionError } from '../errors.js';
import type { Oid } from '../storage/types.js';
import { BrokenValue } from './broken-value.js';
import { classForName, onClassRegistered } from './class-registry.js';
import { faithfulCopy, restoreValueClasses } from './exotic-values.js';
import { isPersistentClass, type ReferenceType, setReferenceType } from './reference-type.js';
import type { ScanResult } from './state-scanner.js';

/**
 * The first element of a record says how it was encoded (so a reader picks the decoder):
 * - `1`: plain MessagePack maps for objects (fastest; records without Maps or sharing);
 * - `2`: msgpackr record structures, defined inline, for records holding a Map (plain maps
 *   could not tell a Map from an object);
 * - `3`: record structures with msgpackr's structured clone, for records whose values are
 *   shared or cyclic.
 * Any other first element is a version this trove cannot read.
 */
export const RecordKind = { plain: 1, structured: 2, cloned: 3 } as const;

/** msgpack extension type of a reference to a persistent object (its oid). */
const REFERENCE_EXTENSION = 0x1e;
/** msgpack extension type of a value-class instance (`[name, properties]`). */
const VALUE_EXTENSION = 0x1f;

const plainPackr = new Packr({ useRecords: false, moreTypes: true });
// The fast writer above gives every object a 16-bit size: one with 65,536 keys or more fails
// there and is written by this one, which sizes each object exactly (and costs more).
const largePlainPackr = new Packr({ useRecords: false, moreTypes: true, variableMapSize: true });
// Record structures are defined inline in each record (maxSharedStructures 0): shared
// structures would make a record unreadable without the structure table it was written with.
const structuredPackr = new Packr({ moreTypes: true, maxSharedStructures: 0 });
const clonePackr = new Packr({ structuredClone: true, moreTypes: true, maxSharedStructures: 0 });
// 64-bit integers come only from bigints (msgpackr writes large numbers as floats), so
// reading them back as bigints round-trips both exactly. Byte arrays are copied out
// (copyBuffers): record bytes may be a view of the storage's read cache, which a decoded
// object must neither pin nor share.
const plainUnpackr = new Unpackr({
  useRecords: false,
  moreTypes: true,
  int64AsType: 'bigint',
  copyBuffers: true,
});
const structuredUnpackr = new Unpackr({
  copyBuffers: true,
  structuredClone: true,
  moreTypes: true,
  maxSharedStructures: 0,
  int64AsType: 'bigint',
});

type Resolver = (oid: Oid) => object;
let resolveReference: Resolver | undefined;

function readValue([name, properties]: [string, Record<string, unknown>]): object {
  const cls = classForName(name);
  if (cls === undefined || isPersistentClass(cls)) return BrokenValue.create(name, properties);
  // The properties object itself becomes the instance: references to the instance from
  // inside it (a cycle through itself) were decoded as references to this very object.
  return Object.setPrototypeOf(properties, cls.prototype) as object;
}

function addValueExtension(cls: Function, write: (value: object) => unknown): void {
  addExtension({ Class: cls, type: VALUE_EXTENSION, write, read: readValue });
}

addValueExtension(BrokenValue, (value) => {
  const broken = value as BrokenValue;
  return [broken.className, broken.state];
});

/** The registered value classes, by class, with their names. */
const valueClassNames = new Map<Function, string>();

onClassRegistered((cls, name) => {
  // Errors of a registered class are written as errors, with their class name (error-values).
  if (!isPersistentClass(cls) && !(cls.prototype instanceof Error)) valueClassNames.set(cls, name);
});

/**
 * Every registered value class, as one extension: msgpackr tries its extensions in turn
 * with `instanceof`, so one for each class made every reference, Date or Set written slower
 * with each class registered (with 800, a list of 20,000 references took 60 times as long).
 * An instance is an object whose prototype's class is registered (the scanner refused the
 * rest already).
 */
// biome-ignore lint/complexity/noStaticOnlyClass: msgpackr takes an extension's class and asks it with instanceof
class RegisteredValue {
  static [Symbol.hasInstance](value: unknown): boolean {
    if (typeof value !== 'object' || value === null) return false;
    const proto = Object.getPrototypeOf(value) as { constructor?: unknown } | null;
    return proto !== null && valueClassNames.has(proto.constructor as Function);
  }
}

addValueExtension(RegisteredValue, (value) => {
  const proto = Object.getPrototypeOf(value) as { constructor: Function };
  return [valueClassNames.get(proto.constructor)!, { ...value }];
});

/**
 * Installs the persistent layer's base class as the class stored by reference.
 */
export function installReferenceType(type: ReferenceType): void {
  setReferenceType(type);
  // msgpackr picks an extension by `instanceof`, which on a persistent object (a Proxy) runs
  // the `getPrototypeOf` trap: V8 runs that far slower than the property read isReference
  // makes (writing a list of 100,000 references took twice as long).
  // biome-ignore lint/complexity/noStaticOnlyClass: msgpackr takes an extension's class and asks it with instanceof
  class Reference {
    static [Symbol.hasInstance](value: unknown): boolean {
      return typeof value === 'object' && value !== null && type.isReference(value);
    }
  }
  addExtension({
    Class: Reference,
    type: REFERENCE_EXTENSION,
    write: (obj: object) => type.oidOf(obj),
    read: (oid: Oid) => {
      if (resolveReference === undefined) throw new Error('trove: no reference resolver');
      return resolveReference(oid);
    },
  });
}

/**
 * Encodes a record in the cheapest kind its state allows (see RecordKind), as the scan of
 * the state found it; exotic values are stored through a faithful copy.
 */
export function encodeRecord(
  className: string,
  state: Record<string, unknown>,
  scan: ScanResult,
): Uint8Array {
  if (scan.sharedValues) {
    const marked = scan.exoticValues || scan.valueClasses;
    return clonePackr.pack([
      RecordKind.cloned,
      className,
      marked ? faithfulCopy(state, true) : state,
    ]);
  }
  const stored = scan.exoticValues ? faithfulCopy(state) : state;
  if (scan.maps) return structuredPackr.pack([RecordKind.structured, className, stored]);
  const record = [RecordKind.plain, className, stored];
  try {
    return plainPackr.pack(record);
  } catch {
    return largePlainPackr.pack(record);
  }
}

/** A decoded record. */
export interface DecodedRecord {
  /** The stable name of the object's class. */
  readonly className: string;
  /** The object's persisted properties. */
  readonly state: Record<string, unknown>;
}

/**
 * Decodes a record. References to persistent objects become whatever `resolve` returns for
 * their oid (the connection's object for it). Throws CorruptionError for bytes that are not
 * a record this version can read.
 */
export function decodeRecord(data: Uint8Array, resolve: Resolver, oid?: Oid): DecodedRecord {
  const outer = resolveReference;
  resolveReference = resolve;
  let decoded: unknown;
  try {
    // Byte 1 is the kind (the first element of the 3-array), a positive fixint.
    decoded = (data[1] === RecordKind.plain ? plainUnpackr : structuredUnpackr).unpack(data);
    if (Array.isArray(decoded) && decoded[0] === RecordKind.cloned) restoreValueClasses(decoded[2]);
  } catch (error) {
    throw new CorruptionError(`record of object ${oid ?? '?'} cannot be decoded`, {
      cause: error,
    });
  } finally {
    resolveReference = outer;
  }
  if (
    !Array.isArray(decoded) ||
    decoded.length !== 3 ||
    typeof decoded[1] !== 'string' ||
    typeof decoded[2] !== 'object' ||
    decoded[2] === null
  ) {
    throw new CorruptionError(`record of object ${oid ?? '?'} is not a trove record`);
  }
  if (
    decoded[0] !== RecordKind.plain &&
    decoded[0] !== RecordKind.structured &&
    decoded[0] !== RecordKind.cloned
  ) {
    throw new CorruptionError(
      `record of object ${oid ?? '?'} has kind ${String(decoded[0])}, which this trove cannot read`,
    );
  }
  return { className: decoded[1], state: decoded[2] as Record<string, unknown> };
}

/** Class names recently peeked, with their bytes: records of a few classes repeat them. */
const peekedNames: { bytes: Uint8Array; name: string }[] = [];
const PEEKED_NAMES = 8;

/**
 * The class name of a record, read from its first bytes without decoding the state (so a
 * loaded object can be made with its class from the start). Undefined if the record does
 * not start the usual way; decode it then.
 */
export function peekClassName(data: Uint8Array): string | undefined {
  // [version, className, state]: a 3-array, a positive fixint, then a fixstr or str8.
  if (data[0] !== 0x93 || data[1]! > 0x7f) return undefined;
  const tag = data[2]!;
  let start: number;
  let length: number;
  if (tag >= 0xa0 && tag <= 0xbf) {
    start = 3;
    length = tag & 0x1f;
  } else if (tag === 0xd9) {
    start = 4;
    length = data[3]!;
  } else {
    return undefined;
  }
  if (start + length > data.length) return undefined;
  // Comparing a few bytes with a name seen before is cheaper than making the string again.
  next: for (const peeked of peekedNames) {
    const bytes = peeked.bytes;
    if (bytes.length !== length) continue;
    for (let i = 0; i < length; i++) if (bytes[i] !== data[start + i]) continue next;
    return peeked.name;
  }
  let name = '';
  for (let i = start; i < start + length; i++) {
    const code = data[i]!;
    if (code > 0x7f) return undefined; // registered names are ASCII; decode anything else fully
    name += String.fromCharCode(code);
  }
  if (peekedNames.length === PEEKED_NAMES) peekedNames.shift();
  peekedNames.push({ bytes: data.slice(start, start + length), name });
  return name;
}
