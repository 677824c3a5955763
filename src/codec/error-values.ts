/**
 * Errors stored whole. msgpackr alone keeps an error's name, message and cause, and loses
 * the rest: its stack (a loaded error had the stack of the decoder), the class of a subclass,
 * an `AggregateError`'s errors (and its message) and every property of its own, such as a
 * system error's `code`. trove writes an error as its parts instead (see ErrorParts) and
 * builds a real error of the same kind from them when reading.
 *
 * @module
 */

import { addExtension } from 'msgpackr';
import { defineData } from '../util/define-data.js';
import { type AnyClass, classForName, nameOfClass } from './class-registry.js';
import { referenceType } from './reference-type.js';

const ERROR_EXTENSION = 0x1d;

/**
 * The built-in error classes, by name: an error is rebuilt as the nearest of them in its
 * prototype chain (so it stays a real error, `Error.captureStackTrace` and `util.inspect`
 * treat it as one), then given its registered class, if any.
 */
const BUILT_IN_ERRORS = new Map<string, ErrorConstructor | AggregateErrorConstructor>([
  ['Error', Error],
  ['TypeError', TypeError],
  ['RangeError', RangeError],
  ['ReferenceError', ReferenceError],
  ['SyntaxError', SyntaxError],
  ['EvalError', EvalError],
  ['URIError', URIError],
  ['AggregateError', AggregateError],
]);
const BUILT_IN_PROTOTYPES = new Map<object, string>(
  [...BUILT_IN_ERRORS].map(([name, cls]) => [cls.prototype, name]),
);

/** The parts of an error kept besides its own enumerable properties. */
export const ERROR_PART_KEYS = ['name', 'message', 'stack', 'cause', 'errors'] as const;

/** Which of the optional parts an error has (they are own properties that are not enumerable). */
const HAS_MESSAGE = 1;
const HAS_STACK = 2;
const HAS_CAUSE = 4;
const HAS_ERRORS = 8;

/**
 * An error as stored: `[builtIn, registeredName, name, flags, message, stack, cause, errors,
 * properties]`. `name` and `message` are kept even when inherited (a subclass that is not
 * registered here gets them back as its own); `stack`, `cause` and an `AggregateError`'s
 * `errors` only when the error has them as its own. `properties` are its own enumerable
 * string-keyed properties (`code`, `errno`, a `name` assigned in a constructor).
 */
export type ErrorPartList = [
  builtIn: string,
  registeredName: string | null,
  name: unknown,
  flags: number,
  message: unknown,
  stack: unknown,
  cause: unknown,
  errors: unknown,
  properties: Record<string, unknown>,
];

/**
 * The class names errors were stored under whose class is not registered in this program
 * (they load as their built-in base): written again as stored, so a program that registers
 * the class gets it back.
 */
const storedClassNames = new WeakMap<Error, string>();

/** An error's parts already copied (see faithfulCopy), written as an error. */
export class ErrorParts {
  constructor(readonly parts: ErrorPartList) {}
}

/**
 * The parts of `error` to store. Symbol-keyed properties are left out (Node's own errors
 * carry some as internal marks); so are own properties that are not enumerable other than
 * message, stack, cause and errors, as in structured cloning.
 */
export function errorParts(error: Error): ErrorPartList {
  // A nested value read from a persistent object is a view: stored is the value behind it.
  const rawOf = referenceType().rawOf;
  const raw = (value: unknown): unknown =>
    typeof value === 'object' && value !== null ? (rawOf(value) ?? value) : value;
  const own = (key: string): PropertyDescriptor | undefined =>
    Object.getOwnPropertyDescriptor(error, key);
  const hidden = (key: string): boolean => {
    const descriptor = own(key);
    return descriptor !== undefined && descriptor.enumerable !== true;
  };
  let flags = 0;
  if (hidden('message')) flags |= HAS_MESSAGE;
  if (hidden('stack')) flags |= HAS_STACK;
  if (hidden('cause')) flags |= HAS_CAUSE;
  if (hidden('errors')) flags |= HAS_ERRORS;
  const properties: Record<string, unknown> = {};
  for (const key of Object.keys(error)) {
    defineData(properties, key, raw((error as unknown as Record<string, unknown>)[key]));
  }
  const cls = (error as { constructor?: unknown }).constructor;
  return [
    builtInOf(error),
    (typeof cls === 'function' ? nameOfClass(cls as AnyClass) : undefined) ??
      storedClassNames.get(error) ??
      null,
    raw(error.name),
    flags,
    raw(error.message),
    (flags & HAS_STACK) !== 0 ? raw(error.stack) : null,
    (flags & HAS_CAUSE) !== 0 ? raw(error.cause) : null,
    (flags & HAS_ERRORS) !== 0 ? raw((error as AggregateError).errors) : null,
    properties,
  ];
}

/** The name of the nearest built-in error class in the prototype chain of `error`. */
function builtInOf(error: Error): string {
  for (
    let proto = Object.getPrototypeOf(error);
    proto !== null;
    proto = Object.getPrototypeOf(proto)
  ) {
    const name = BUILT_IN_PROTOTYPES.get(proto as object);
    if (name !== undefined) return name;
  }
  return 'Error';
}

/**
 * Builds the error `parts` describe. `created` is told the error before any part is read
 * through `part`, so a part that refers back to the error (a cycle) can be given it.
 */
export function errorFromParts(
  parts: ErrorPartList,
  part: (value: unknown) => unknown = (value) => value,
  created: (error: Error) => void = () => {},
): Error {
  const [builtIn, registeredName, name, flags, message, stack, cause, errors, properties] = parts;
  const base = BUILT_IN_ERRORS.get(builtIn) ?? Error;
  const error: Error =
    base === AggregateError ? new AggregateError([]) : new (base as ErrorConstructor)();
  const cls = typeof registeredName === 'string' ? classForName(registeredName) : undefined;
  if (cls !== undefined && cls.prototype instanceof base) {
    Object.setPrototypeOf(error, cls.prototype);
  } else if (typeof registeredName === 'string') {
    storedClassNames.set(error, registeredName);
  }
  created(error);
  const hide = (key: string, value: unknown): void => {
    Object.defineProperty(error, key, {
      value,
      writable: true,
      enumerable: false,
      configurable: true,
    });
  };
  // What the construction above made up is not the stored error's.
  delete (error as { stack?: unknown }).stack;
  delete (error as { errors?: unknown }).errors;
  if ((flags & HAS_MESSAGE) !== 0) hide('message', part(message));
  if ((flags & HAS_STACK) !== 0) hide('stack', part(stack));
  if ((flags & HAS_CAUSE) !== 0) hide('cause', part(cause));
  if ((flags & HAS_ERRORS) !== 0) hide('errors', part(errors));
  const stored = part(properties) as Record<string, unknown>;
  for (const key of Object.keys(stored)) defineData(error, key, stored[key]);
  // Inherited name and message come back from the class; an unregistered one's are kept as
  // its own, so the error still says what it was. Read last, with the error complete: a
  // class's getter may read its other properties, or throw (then the stored value stands).
  if ((flags & HAS_MESSAGE) === 0 && !inherits(error, 'message', message)) {
    hide('message', part(message));
  }
  if (!Object.hasOwn(stored, 'name') && !inherits(error, 'name', name)) hide('name', part(name));
  return error;
}

/** Whether `error` gives `value` for `key` as it is (false if reading it throws). */
function inherits(error: Error, key: 'name' | 'message', value: unknown): boolean {
  try {
    return Object.is((error as unknown as Record<string, unknown>)[key], value);
  } catch {
    return false;
  }
}

/** True if `parts` has the shape of an ErrorPartList (read back from a marker object). */
export function isErrorPartList(value: unknown): value is ErrorPartList {
  return (
    Array.isArray(value) &&
    value.length === 9 &&
    typeof value[0] === 'string' &&
    typeof value[3] === 'number' &&
    typeof value[8] === 'object' &&
    value[8] !== null
  );
}

const readError = (parts: unknown): Error => {
  if (!isErrorPartList(parts)) throw new TypeError('a stored error is not in a form trove writes');
  return errorFromParts(parts);
};

// Registered for every error (addExtension catches subclasses too), and for parts already
// copied; both read back the same way.
addExtension({ Class: Error, type: ERROR_EXTENSION, write: errorParts, read: readError });
addExtension({
  Class: ErrorParts,
  type: ERROR_EXTENSION,
  write: (value: ErrorParts) => value.parts,
  read: readError,
});
