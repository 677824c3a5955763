/**
 * Giving the event loop a turn from code that would otherwise run on in microtasks.
 *
 * @internal
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
