/**
 * Counter: a number that concurrent transactions can change without conflicting.
 *
 * @module
 */

import { registerClass } from '../codec/class-registry.js';
import { ConflictError, InvalidArgumentError } from '../errors.js';
import { describe } from '../util/validate.js';
import { Persistent } from './persistent.js';
import { mergeStates } from './state-merge.js';

/**
 * A persistent counter. Concurrent increments never conflict: when two transactions change
 * it at once, the second commit adds its own change to what the first committed.
 */
export class Counter extends Persistent {
  /**
   * The current value. Assigned, it is a change by the difference, merged with concurrent
   * changes as an increment is: a reset to 0 while another transaction adds 3 leaves 3.
   */
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
    return add(this, expectAmount(by), by);
  }

  /** Subtracts `by` (default 1) and returns the new value. */
  decrement(by = 1): number {
    return add(this, -expectAmount(by), by);
  }

  /**
   * Both changes of the value count: committed + (mine - old). Other attributes (of a
   * subclass, say) merge as a map's keys do: a change of one side is kept, and an attribute
   * both sides changed is a conflict.
   */
  static resolveConflict(
    oldState: { value: number },
    committedState: { value: number },
    myState: { value: number },
  ): { value: number } {
    // Thrown, not returned as undefined: a subclass spreading this result into its own
    // (`{ ...super.resolveConflict(...), max }`) would store a counter without a value.
    const value = committedState.value + (myState.value - oldState.value);
    if (!Number.isFinite(value)) {
      throw new ConflictError('the two changes of the counter add up past the finite numbers');
    }
    const { value: _old, ...oldRest } = oldState;
    const { value: _committed, ...committedRest } = committedState;
    const { value: _mine, ...myRest } = myState;
    const merged = mergeStates(oldRest, committedRest, myRest);
    if (merged === undefined) {
      throw new ConflictError('both transactions changed an attribute of the counter');
    }
    return { ...merged, value };
  }
}

/** Adds `change` to the counter's value (a function: `#private` members fail on proxies). */
function add(counter: Counter, change: number, by: number): number {
  const current: unknown = counter.value;
  // An assignment is not checked (`value` is a plain attribute): what it left is named here,
  // not taken for a bad `by`.
  if (typeof current !== 'number' || !Number.isFinite(current)) {
    throw new InvalidArgumentError(
      `the counter's value is ${describe(current)}, not a finite number: assign it one first`,
      { argument: 'value' },
    );
  }
  const next = current + change;
  // Infinity would be stored, and concurrent changes would merge it into NaN.
  if (!Number.isFinite(next)) {
    throw new InvalidArgumentError(
      `changing ${counter.value} by ${by} leaves the range of finite numbers`,
      { argument: 'by' },
    );
  }
  counter.value = next;
  return next;
}

function expectAmount(by: unknown): number {
  if (typeof by !== 'number' || !Number.isFinite(by)) {
    throw new InvalidArgumentError(`by must be a finite number, got ${describe(by)}`, {
      argument: 'by',
    });
  }
  return by;
}

registerClass(Counter, 'trove.Counter');
