/**
 * A stored value-class instance whose class is no longer registered. It keeps the class name
 * and the stored properties, and is written back exactly as it was read, so a missing class
 * never destroys data.
 *
 * @module
 */

/** A stored instance of a value class that is not registered in this program. */
export class BrokenValue {
  /** The name the instance was stored under. */
  readonly className: string;
  /** Its stored properties, as read. */
  readonly state: Record<string, unknown>;

  /** @internal */
  constructor(className: string, state: Record<string, unknown>) {
    this.className = className;
    this.state = state;
  }
}
