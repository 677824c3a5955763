/**
 * Defines an own property the way an assignment to a plain object creates one. Used where
 * assigning would not: a key `__proto__` (assigned, it sets the prototype) and keys whose
 * setters are inherited.
 *
 * @module
 */

/** Defines `key` on `target` as a writable, enumerable, configurable `value`. */
export function defineData(target: object, key: PropertyKey, value: unknown): void {
  Object.defineProperty(target, key, {
    value,
    writable: true,
    enumerable: true,
    configurable: true,
  });
}
