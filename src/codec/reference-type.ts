/**
 * How the codec recognises references to other persistent objects without importing the
 * persistent layer above it: that layer describes its base class here once, at load.
 *
 * @module
 */

import type { Oid } from '../storage/types.js';

/**
 * What every class is, as a type: a constructor that may be abstract, and public or
 * protected (as Blob's is: its subclasses are made by `from`, never by `new`). A type only,
 * never a class at run time; {@link AnyClass} is its `typeof`.
 */
export declare abstract class ClassShape {
  protected constructor(...args: any[]);
}

/**
 * Any class trove can store (persistent classes and value classes). Its constructor may be
 * protected: `abstract new (...args: any[]) => object` would refuse the subclasses of Blob.
 */
export type AnyClass = typeof ClassShape;

/** What the codec needs to know about persistent objects. */
export interface ReferenceType {
  /** The base class of every persistent object. */
  readonly base: AnyClass;
  /**
   * True when `obj` is a persistent object. The scan asks this of every object in a state;
   * `instanceof base` would answer the same, but through the proxy's `getPrototypeOf` trap,
   * which V8 runs far slower than a property read.
   */
  isReference(obj: object): boolean;
  /** The oid of a persistent object that is about to be stored (assigned before packing). */
  oidOf(obj: object): Oid;
  /**
   * The raw object behind a change-tracking view of a nested value, or undefined if `obj`
   * is not such a view. Stored data must hold raw values, never views.
   */
  rawOf(obj: object): object | undefined;
}

let current: ReferenceType | undefined;

/** Installs the persistent layer's description. */
export function setReferenceType(type: ReferenceType): void {
  current = type;
}

/** The installed description; the persistent layer installs it when it loads. */
export function referenceType(): ReferenceType {
  if (current === undefined) throw new Error('trove: the persistent layer is not loaded');
  return current;
}

/** True when `cls` makes persistent objects (stored by reference, not by value). */
export function isPersistentClass(cls: AnyClass): boolean {
  const base = current?.base;
  return base !== undefined && (cls === base || cls.prototype instanceof base);
}

let encodingDepth = 0;

/**
 * Runs `fn` as part of encoding. While encoding, persistent objects that are ghosts must not
 * load their state just because the encoder looks at them (msgpackr reads `constructor`
 * and uses `instanceof` on every object it packs); the persistent layer asks
 * {@link isEncoding} to tell the encoder's look from the program's.
 */
export function whileEncoding<T>(fn: () => T): T {
  encodingDepth++;
  try {
    return fn();
  } finally {
    encodingDepth--;
  }
}

/** True while {@link whileEncoding} runs. */
export function isEncoding(): boolean {
  return encodingDepth > 0;
}
