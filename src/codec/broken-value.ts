/**
 * A stored value-class instance whose class is no longer registered. It keeps the class name
 * and the stored properties, and is written back exactly as it was read, so a missing class
 * never destroys data.
 *
 * @module
 */

import { reserveClass } from './class-registry.js';

/** A stored instance of a value class that is not registered in this program. */
export class BrokenValue {
  /** The name the instance was stored under. */
  readonly className: string;
  /** Its stored properties, as read. */
  readonly state: Record<string, unknown>;

  // Private: only the codec makes one, through `create`, when it reads such an instance.
  private constructor(className: string, state: Record<string, unknown>) {
    this.className = className;
    this.state = state;
  }

  /** @internal A BrokenValue of `className` with `state`. */
  static create(className: string, state: Record<string, unknown>): BrokenValue {
    return new BrokenValue(className, state);
  }
}

reserveClass(BrokenValue);
