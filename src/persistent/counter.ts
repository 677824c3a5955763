/**
 * Counter: a number that concurrent transactions can change without conflicting.
 *
 * @module
 */

import { registerClass } from '../codec/class-registry.js';
import { InvalidArgumentError } from '../errors.js';
import { describe } from '../util/validate.js';
import { Persistent } from './persistent.js';

/**
 * A persistent counter. Concurrent increments never conflict: when two transactions change
 * it at once, the second commit adds its own change to what the first committed.
 */
export class Counter extends Persistent {
  /** The current value. */
  value: number;

  /** A counter starting at `initial`. */
  constructor(initial = 0) {
    super();
    if (typeof initial !== 'number' || !Number.isFinite(initial)) {
      throw new InvalidArgumentError(`initial must be a finite number, got ${describe(initial)}`, {
        argument: 'initial',
      });
    }
    this.value = initial;
  }

  /** Adds `by` (default 1) and returns the new value. */
  increment(by = 1): number {
    if (typeof by !== 'number' || !Number.isFinite(by)) {
      throw new InvalidArgumentError(`by must be a finite number, got ${describe(by)}`, {
        argument: 'by',
      });
    }
    this.value += by;
    return this.value;
  }

  /** Subtracts `by` (default 1) and returns the new value. */
  decrement(by = 1): number {
    return this.increment(-by);
  }

  /** Both changes count: committed + (mine - old). */
  static resolveConflict(
    oldState: { value: number },
    committedState: { value: number },
    myState: { value: number },
  ): { value: number } {
    return { ...myState, value: committedState.value + (myState.value - oldState.value) };
  }
}

registerClass(Counter, 'trove.Counter');
