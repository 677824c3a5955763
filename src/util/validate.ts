/**
 * Argument checks shared by the public entry points. Each throws an InvalidArgumentError whose
 * message names the argument and what was expected, so misuse is reported at the call that
 * made it rather than deep inside.
 *
 * @module
 */

import { sep } from 'node:path';
import { types } from 'node:util';
import { InvalidArgumentError } from '../errors.js';

/** Describes a value for an error message without dumping large or cyclic structures. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    case 'undefined':
      return 'undefined';
    case 'string':
      return value.length > 40 ? `a string of length ${value.length}` : JSON.stringify(value);
    case 'number':
    case 'boolean':
    case 'bigint':
      return `${typeof value} ${String(value)}`;
    case 'function':
      return `a function${value.name ? ` (${value.name})` : ''}`;
    case 'symbol':
      return `a symbol (${value.description ?? ''})`;
    default: {
      const name = (value as object).constructor?.name;
      return name && name !== 'Object' ? `an instance of ${name}` : 'an object';
    }
  }
}

function fail(argument: string, expected: string, value: unknown): never {
  throw new InvalidArgumentError(`${argument} must be ${expected}, got ${describe(value)}`, {
    argument,
  });
}

/**
 * A non-negative safe integer; `expected` says what else the argument may be, when it may
 * (a tid or a Date).
 */
export function expectNonNegativeInteger(
  value: unknown,
  argument: string,
  expected = 'a non-negative integer',
): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    fail(argument, expected, value);
  }
  return value;
}

/** A positive safe integer. */
export function expectPositiveInteger(value: unknown, argument: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    fail(argument, 'a positive integer', value);
  }
  return value;
}

/** A function. */
export function expectFunction<T extends Function>(value: unknown, argument: string): T {
  if (typeof value !== 'function') fail(argument, 'a function', value);
  return value as T;
}

/**
 * An iterable (what `for...of` takes), or undefined or null for none: a collection made
 * from anything else is refused, where a `Map` or `Set` would throw a TypeError and an
 * array-like would be taken by `Array.from` for its length.
 */
export function expectOptionalIterable<T>(
  value: unknown,
  argument: string,
): Iterable<T> | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof (value as { [Symbol.iterator]?: unknown })[Symbol.iterator] !== 'function') {
    fail(argument, 'iterable', value);
  }
  return value as Iterable<T>;
}

/** A non-empty string. */
export function expectNonEmptyString(value: unknown, argument: string): string {
  if (typeof value !== 'string' || value.length === 0) fail(argument, 'a non-empty string', value);
  return value;
}

/**
 * A file path: a non-empty string without a NUL character (which no file name can hold:
 * the system would refuse it as an I/O error, though the argument is what is wrong).
 */
export function expectPath(value: unknown, argument: string): string {
  const path = expectNonEmptyString(value, argument);
  if (path.includes('\0')) fail(argument, 'a path without NUL characters', value);
  // Such a path names a directory; resolved, it would lose its end and name a file.
  const last = path.split(sep === '/' ? '/' : /[\\/]/).pop();
  if (last === '' || last === '.' || last === '..') {
    fail(argument, 'the path of a file (not ending with a separator, . or ..)', value);
  }
  return path;
}

/** A string, if present. */
export function expectOptionalString(value: unknown, argument: string): string | undefined {
  if (value !== undefined && typeof value !== 'string') fail(argument, 'a string', value);
  return value;
}

/**
 * A string that UTF-8 holds as it is (no lone surrogate), or undefined: for text a storage
 * writes as UTF-8 (commit notes), where a lone surrogate would come back as U+FFFD.
 */
export function expectOptionalText(value: unknown, argument: string): string | undefined {
  const text = expectOptionalString(value, argument);
  if (text !== undefined && !(text as unknown as { isWellFormed(): boolean }).isWellFormed()) {
    fail(argument, 'a well-formed string (no lone surrogate)', value);
  }
  return text;
}

/**
 * Every key an options object of type `T` may have, each `true`, or `'internal'` for one the
 * message for an unknown key does not name (a test seam, or a key refused with a message of
 * its own): the compiler checks that none is missing and none is extra, so the list cannot
 * drift from the type.
 */
export type OptionKeys<T> = { readonly [K in keyof Required<T>]: true | 'internal' };

/**
 * A plain options object, or undefined (returned as an empty object). With `known`, a key
 * not among them is refused: a misspelt option (`readonly` for `readOnly`) would otherwise
 * be ignored, and its default taken without a word.
 */
export function expectOptions<T extends object>(
  value: unknown,
  argument: string,
  known?: OptionKeys<T>,
): Partial<T> {
  if (value === undefined) return {};
  // Binary data is an object too (a Buffer given as a path would be read as options).
  if (
    typeof value !== 'object' ||
    value === null ||
    Array.isArray(value) ||
    ArrayBuffer.isView(value) ||
    types.isAnyArrayBuffer(value)
  ) {
    fail(argument, 'an options object', value);
  }
  if (known !== undefined) {
    for (const key of Object.keys(value)) {
      if (!Object.hasOwn(known, key)) {
        throw new InvalidArgumentError(
          `${argument}.${key} is not an option here; the options are ${Object.entries(known)
            .filter(([, kind]) => kind === true)
            .map(([name]) => name)
            .join(', ')}`,
          { argument: `${argument}.${key}` },
        );
      }
    }
  }
  return value as Partial<T>;
}

/** A Uint8Array (Buffer included). */
export function expectBytes(value: unknown, argument: string): Uint8Array {
  if (!(value instanceof Uint8Array)) fail(argument, 'a Uint8Array', value);
  return value;
}

/** One of a fixed set of strings. */
export function expectOneOf<const T extends string>(
  value: unknown,
  choices: readonly T[],
  argument: string,
): T {
  if (typeof value !== 'string' || !choices.includes(value as T)) {
    fail(argument, `one of ${choices.map((c) => `'${c}'`).join(', ')}`, value);
  }
  return value as T;
}

/** A boolean, if present. */
export function expectOptionalBoolean(value: unknown, argument: string): boolean | undefined {
  if (value !== undefined && typeof value !== 'boolean') fail(argument, 'a boolean', value);
  return value;
}

/** True for a Date, of this realm or another (a vm context's, a test sandbox's). */
export function isDate(value: unknown): value is Date {
  return types.isDate(value);
}

/**
 * A valid Date (of any realm), as a plain Date of its time: a subclass's own `getTime` (or a
 * date of another realm) is not asked again by the caller.
 */
export function expectDate(value: unknown, argument: string): Date {
  const time = isDate(value) ? Date.prototype.getTime.call(value) : Number.NaN;
  if (Number.isNaN(time)) fail(argument, 'a valid Date', value);
  return new Date(time);
}
