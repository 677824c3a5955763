/**
 * The class registry: stable names for the classes whose instances trove stores. Records
 * carry the name, never the constructor's `name`, so minifiers and renames do not break
 * stored data; aliases let data written under an old name load as the new class.
 *
 * @module
 */

import { types } from 'node:util';
import { InvalidArgumentError } from '../errors.js';
import {
  describe,
  expectNonEmptyString,
  expectOptionalBoolean,
  expectOptions,
} from '../util/validate.js';
import { type AnyClass, type ClassShape, isPersistentClass } from './reference-type.js';

// Defined with the reference type, which needs it and cannot import this module.
export type { AnyClass, ClassShape };

/** Options of {@link registerClass}. */
export interface RegisterClassOptions {
  /** Older names under which stored records of this class may exist. */
  aliases?: readonly string[] | undefined;
  /**
   * For persistent classes: make each object loaded from the database by calling the
   * class's constructor with no arguments, then install its stored state over what the
   * constructor assigned. Without it a loaded object is made without running a
   * constructor, so it has no `#private` fields (a method that uses one throws a
   * `TypeError`) and no volatile state a constructor sets up. The constructor runs once
   * per object and handle (a subclass inherits the option) and must accept no arguments;
   * an error it throws is thrown wherever the object is used in that handle. Default
   * false.
   */
  constructOnLoad?: boolean | undefined;
}

const classByName = new Map<string, AnyClass>();
const nameByClass = new Map<AnyClass, string>();
const constructedOnLoad = new Set<AnyClass>();
/** constructsOnLoad's answers (asked at every load), forgotten at every registration. */
const constructsAnswers = new Map<AnyClass, boolean>();

/** A name is dotted words, like `app.User` or `billing.v2.Invoice`. */
const NAME_PATTERN = /^[A-Za-z_$][\w$]*(?:[.:/-][A-Za-z_$][\w$]*)*$/;

function checkName(name: unknown, argument: string): string {
  const value = expectNonEmptyString(name, argument);
  if (!NAME_PATTERN.test(value)) {
    throw new InvalidArgumentError(
      `${argument} must be a dotted name like 'app.User', got ${describe(value)}`,
      { argument },
    );
  }
  return value;
}

function claim(name: string, cls: AnyClass, argument: string): void {
  const holder = classByName.get(name);
  if (holder !== undefined && holder !== cls) {
    throw new InvalidArgumentError(
      `${argument} '${name}' is already registered for class ${holder.name || '(anonymous)'}`,
      { argument },
    );
  }
}

const NATIVE_SOURCE = /\{\s*\[native code\]\s*\}\s*$/;

/** True for the engine's own functions (built-in classes, of any realm). */
function isNative(fn: unknown): boolean {
  return typeof fn === 'function' && NATIVE_SOURCE.test(Function.prototype.toString.call(fn));
}

/**
 * The built-in class `cls` is, or extends (of this realm or another) other than Object and
 * the error classes; undefined if none. Instances of such a class hold their contents in
 * the engine's internal slots (a Map's entries, a Date's time, a typed array's bytes), which
 * a value class's stored properties cannot give back: trove stores the built-ins it knows
 * as they are, and cannot store subclasses of them. Errors are stored by their parts, and a
 * registered subclass of Error is a value class.
 *
 * @internal
 */
export function builtInBase(cls: Function): Function | undefined {
  if (isNative(cls)) return cls;
  for (
    let proto: unknown = cls.prototype;
    proto !== null && proto !== Object.prototype && typeof proto === 'object';
    proto = Object.getPrototypeOf(proto)
  ) {
    const base = Object.getOwnPropertyDescriptor(proto, 'constructor')?.value as Function;
    if (!isNative(base)) continue;
    if (base === Error || base.prototype instanceof Error) return undefined;
    return base;
  }
  return undefined;
}

/** Classes of trove's own that are stored under no name of their own (see reserveClass). */
const reservedClasses = new WeakSet<object>();

/**
 * Marks a class of trove's own that must not be registered: the base class of persistent
 * objects, and what an object or value of an unregistered class loads as (registered, those
 * would be written under the name given, and what they stand for lost).
 *
 * @internal
 */
export function reserveClass(cls: object): void {
  reservedClasses.add(cls);
}

/**
 * Registers `cls` under the stable `name` (and `aliases` for names it was stored under
 * before). Persistent classes must be registered before their instances are committed;
 * other classes (value classes) must be registered before their instances can be stored
 * inside persistent objects. Built-in classes are refused (those trove can store, Map, Date,
 * Uint8Array and others, it stores as they are), and so are classes that extend one other
 * than Error: a value class is stored by its properties, and theirs live in internal slots. Registering the same class under the same name again is
 * allowed (module reloads); anything else that would make a name ambiguous throws
 * InvalidArgumentError.
 */
export function registerClass<C extends AnyClass>(
  cls: C,
  name: string,
  options?: RegisterClassOptions,
): C {
  // A Proxy of a class is not the class its instances have as their constructor.
  if (typeof cls !== 'function' || cls.prototype === undefined || types.isProxy(cls)) {
    throw new InvalidArgumentError(`cls must be a class, got ${describe(cls)}`, {
      argument: 'cls',
    });
  }
  const builtIn = builtInBase(cls);
  if (builtIn !== undefined) {
    throw new InvalidArgumentError(
      builtIn === cls
        ? `${cls.name || 'a built-in class'} is a built-in class, which cannot be registered (the built-ins trove can store, it stores as they are)`
        : `class ${cls.name || '(anonymous)'} extends the built-in ${builtIn.name}: its instances cannot be stored (their contents live in the engine's internal slots)`,
      { argument: 'cls' },
    );
  }
  if (reservedClasses.has(cls)) {
    throw new InvalidArgumentError(
      `${cls.name} is trove's own class, which cannot be registered (register your own classes, extending Persistent for persistent objects)`,
      { argument: 'cls' },
    );
  }
  const stableName = checkName(name, 'name');
  const opts = expectOptions<RegisterClassOptions>(options, 'options', {
    aliases: true,
    constructOnLoad: true,
  });
  const aliases = opts.aliases ?? [];
  if (!Array.isArray(aliases)) {
    throw new InvalidArgumentError(`options.aliases must be an array of names`, {
      argument: 'options.aliases',
    });
  }
  aliases.forEach((alias, i) => {
    checkName(alias, `options.aliases[${i}]`);
  });
  const constructOnLoad = expectOptionalBoolean(opts.constructOnLoad, 'options.constructOnLoad');
  if (constructOnLoad === true && !isPersistentClass(cls)) {
    // A value-class instance is its decoded properties given the class: nothing to construct.
    throw new InvalidArgumentError('options.constructOnLoad is for persistent classes only', {
      argument: 'options.constructOnLoad',
    });
  }
  const previous = nameByClass.get(cls);
  if (previous !== undefined && previous !== stableName) {
    throw new InvalidArgumentError(
      `class ${cls.name || '(anonymous)'} is already registered as '${previous}'`,
      { argument: 'name' },
    );
  }
  claim(stableName, cls, 'name');
  aliases.forEach((alias, i) => {
    claim(alias, cls, `options.aliases[${i}]`);
  });

  classByName.set(stableName, cls);
  for (const alias of aliases) classByName.set(alias, cls);
  nameByClass.set(cls, stableName);
  if (constructOnLoad === true) constructedOnLoad.add(cls);
  else if (constructOnLoad === false) constructedOnLoad.delete(cls);
  constructsAnswers.clear();
  registrations++;
  for (const listener of listeners) listener(cls, stableName);
  return cls;
}

let registrations = 0;

/**
 * How many registrations there were so far: a change tells a connection holding objects of
 * unregistered classes (Broken) to load them again.
 *
 * @internal
 */
export function registrationCount(): number {
  return registrations;
}

/** The class registered under `name` (or an alias of it), if any. */
export function classForName(name: string): AnyClass | undefined {
  return classByName.get(name);
}

/**
 * The stable name `cls` is registered under. Only the class itself counts: a subclass of a
 * registered class needs a name of its own, or its instances would load as the parent.
 */
export function nameOfClass(cls: AnyClass): string | undefined {
  return nameByClass.get(cls);
}

/**
 * Whether objects of `cls` are made by its constructor when loaded (see
 * RegisterClassOptions.constructOnLoad).
 *
 * @internal
 */
export function constructsOnLoad(cls: AnyClass): boolean {
  let answer = constructsAnswers.get(cls);
  if (answer === undefined) {
    // A subclass of such a class too: its construction runs the base's constructor, which
    // defines the base's #private fields.
    answer = false;
    for (let each: unknown = cls; typeof each === 'function'; each = Object.getPrototypeOf(each)) {
      if (constructedOnLoad.has(each as AnyClass)) answer = true;
    }
    constructsAnswers.set(cls, answer);
  }
  return answer;
}

type RegistrationListener = (cls: AnyClass, name: string) => void;
const listeners: RegistrationListener[] = [];

/**
 * Calls `listener` for every class registered from now on.
 *
 * @internal
 */
export function onClassRegistered(listener: RegistrationListener): void {
  listeners.push(listener);
}
