/**
 * The tid each new transaction gets. Not in types.ts with the other tid functions: the
 * package entry exports that module whole, and this one is for the storages only.
 *
 * @module
 */

import { ReadOnlyError } from '../errors.js';
import type { Tid } from './types.js';

/** Microseconds per millisecond: tids count microseconds (see Tid). */
const MICROS_PER_MS = 1000;

/**
 * The next tid after `last`: the current time in microseconds, or `last + 1` if the clock is
 * behind (tids never go backwards, even when the system clock does). ReadOnlyError past the
 * largest tid, 2^53 - 1 (the year 2255, reached only by a clock set centuries ahead): a
 * larger one could not be read back, and the commit given it would be lost.
 */
export function nextTid(last: Tid): Tid {
  const now = Math.floor((performance.timeOrigin + performance.now()) * MICROS_PER_MS);
  const tid = now > last ? now : last + 1;
  if (tid > Number.MAX_SAFE_INTEGER) {
    throw new ReadOnlyError(
      `the last tid is ${last}, the largest a tid can be: the database can take no more commits`,
    );
  }
  return tid;
}
