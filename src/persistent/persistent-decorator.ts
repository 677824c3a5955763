/**
 * The `@persistent('app.User')` class decorator.
 *
 * @module
 */

import {
  type AnyClass,
  type RegisterClassOptions,
  registerClass,
} from '../codec/class-registry.js';
import { InvalidArgumentError } from '../errors.js';
import { describe } from '../util/validate.js';
import { Persistent } from './persistent.js';

/** A class whose instances are persistent objects: Persistent or a subclass of it. */
export type PersistentClass = AnyClass & {
  /** A persistent object: the class's instances inherit from it. */
  readonly prototype: Persistent;
};

/**
 * Registers the decorated class, which must extend {@link Persistent}, under the stable
 * `name` (see `registerClass`). Works with standard (TC39) decorators and with TypeScript's
 * `experimentalDecorators`.
 */
export function persistent(
  name: string,
  options?: RegisterClassOptions,
): <C extends PersistentClass>(cls: C, context?: unknown) => void {
  return (cls, _context) => {
    if (typeof cls !== 'function' || !(cls.prototype instanceof Persistent)) {
      throw new InvalidArgumentError(
        `@persistent('${String(name)}') must decorate a class that extends Persistent, got ${describe(cls)}; register value classes with registerClass`,
        { argument: 'cls' },
      );
    }
    registerClass(cls, name, options);
  };
}
