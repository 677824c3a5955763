/**
 * The tid each new transaction gets, and the wall-clock time files record. Not in types.ts
 * with the other tid functions: the package entry exports that module whole, and this one is
 * for the storages only.
 *
 * @module
 */

import { ReadOnlyError } from '../errors.js';
import type { Tid } from './types.js';

/** Microseconds per millisecond: tids count microseconds (see Tid). */
const MICROS_PER_MS = 1000;

/**
 * The largest tid a commit gets: one less than the largest safe integer, so that a view or
 * a backup of any later time (whose tid is clamped to this) shows it.
 */
export const MAX_COMMIT_TID = Number.MAX_SAFE_INTEGER - 1;

/**
 * The next tid after `last`: the wall-clock time now in microseconds, or `last + 1` if the
 * clock is behind (tids never go backwards, even when the system clock does), or past the
 * largest tid (a clock set centuries ahead: the commit is not refused for it).
 * ReadOnlyError when `last` is the largest tid: a larger one could not be read back, and
 * the commit given it would be lost.
 *
 * The wall clock is read at each commit, not a monotonic one from the process's start
 * (`performance.timeOrigin + performance.now()`): that drifts from the wall clock after an
 * NTP step or while a machine or VM is suspended, and a tid is the commit's time, which
 * views `at` a Date and a pack's `keepHistorySince` compare with real dates. It gives
 * milliseconds: the commits of one millisecond take its microseconds in turn, so each tid
 * stays in the millisecond its commit was made in (digits from another clock, not aligned
 * with the wall clock's milliseconds, could push one into the next).
 */
export function nextTid(last: Tid): Tid {
  const now = Date.now() * MICROS_PER_MS;
  const tid = now > last && now <= MAX_COMMIT_TID ? now : last + 1;
  if (tid > MAX_COMMIT_TID) {
    throw new ReadOnlyError(
      `the last tid is ${last}, the largest a tid can be: the database can take no more commits`,
    );
  }
  return tid;
}

/**
 * The wall-clock time now, in microseconds since 1970, for the times files record (a file
 * header's creation), within what a header holds: 0 for a clock set before 1970, and the
 * largest safe integer for one past 2255.
 */
export function wallClockMicros(): number {
  return Math.min(Math.max(0, Date.now()) * MICROS_PER_MS, Number.MAX_SAFE_INTEGER);
}
