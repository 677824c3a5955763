/**
 * Broken: what a stored object of an unregistered class loads as.
 *
 * @module
 */

import { reserveClass } from '../codec/class-registry.js';
import { META } from './object-meta.js';
import { FROZEN, Persistent } from './persistent.js';

/** Where a Broken object keeps the name its class was stored under. */
export const BROKEN_CLASS_NAME: unique symbol = Symbol('trove.brokenClassName');

/**
 * A stored object whose class is not registered in this program (renamed without an alias,
 * or removed). Its stored attributes can be read, and references to it keep working, but it
 * cannot be changed: its record stays exactly as stored, so registering the class again (or
 * an alias) brings the object back intact.
 */
export class Broken extends Persistent {
  /**
   * The stored attributes, read as on any persistent object (`broken.title`); of types the
   * program cannot know, since their class is gone.
   */
  readonly [attribute: string]: unknown;

  /** The class name the object was stored under. */
  get brokenClassName(): string {
    return (this as unknown as { [BROKEN_CLASS_NAME]: string })[BROKEN_CLASS_NAME];
  }
}

Object.defineProperty(Broken.prototype, FROZEN, {
  value: (target: { [BROKEN_CLASS_NAME]?: string; [META]?: { oid?: number } }) =>
    `object ${target[META]?.oid} was stored as an instance of class ${target[BROKEN_CLASS_NAME]}, which is not registered in this program: it can be read, not changed. Register the class under that name (or with it as an alias) to change it`,
});
reserveClass(Broken);
