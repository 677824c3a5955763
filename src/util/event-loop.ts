/**
 * Giving the event loop a turn from code that would otherwise run on in microtasks.
 *
 * @module
 */

import { setImmediate as immediate, setTimeout as timeout } from 'node:timers/promises';

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return timeout(ms);
}

/** Resolves in the check phase of the event loop: I/O callbacks may run first. */
export function nextImmediate(): Promise<void> {
  return immediate();
}

/**
 * Resolves once timers have had their turn too. One immediate is not enough from the poll
 * phase (code that began in an I/O callback): it runs in the same round of the loop, before
 * that round's timers; the second runs after them.
 */
export async function afterTimers(): Promise<void> {
  await immediate();
  await immediate();
}

/**
 * Tells work that runs on in microtasks (commit after commit that never waits for I/O)
 * when it has had `ms` milliseconds of one turn of the event loop: then it should let
 * timers and I/O have theirs (`afterTimers`). Asked without awaiting, so the caller decides.
 */
export class TurnBudget {
  readonly #ms: number;
  readonly #clock: () => number;
  #since: number | undefined;

  constructor(ms: number, clock: () => number = () => performance.now()) {
    this.#ms = ms;
    this.#clock = clock;
  }

  /** Whether this turn's time is up (the first call of a turn starts its clock). */
  isUp(): boolean {
    const now = this.#clock();
    if (this.#since === undefined) {
      this.#since = now;
      setImmediate(() => {
        this.#since = undefined;
      });
      return false;
    }
    return now - this.#since >= this.#ms;
  }
}
