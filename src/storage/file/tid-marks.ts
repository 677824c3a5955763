/**
 * Places in a log that an iteration from a tid can start at, so that a consumer polling
 * for what is new (`storage.iterator(lastSeen)`) reads the end of the log, not all of it.
 *
 * @module
 */

import type { Tid } from '../types.js';
import { FILE_HEADER_SIZE } from './format.js';

/**
 * Bytes of log between two marks: a mark costs a few dozen bytes of memory, an iteration
 * reads at most this much before its first transaction.
 */
const TID_MARK_SPACING = 1024 * 1024;

/** A place in the log: every transaction before `end` has a tid of at most `tid`. */
interface TidMark {
  readonly end: number;
  readonly tid: Tid;
}

/**
 * The marks of one log, ascending (tids never go down along a log): one where the log was
 * loaded, then one a mebibyte of transactions applied after it. Nothing is known of the log
 * before the first mark but that it is older.
 */
export class TidMarks {
  #marks: TidMark[];

  /** Marks of a log loaded up to `end`, whose last transaction has `tid`. */
  constructor(end: number, tid: Tid) {
    this.#marks = [{ end, tid }];
  }

  /** Notes that the log now ends at `end` with a transaction of `tid`. */
  applied(end: number, tid: Tid): void {
    const last = this.#marks.at(-1)!;
    if (end - last.end >= TID_MARK_SPACING) this.#marks.push({ end, tid });
  }

  /**
   * Where an iteration from `fromTid` starts: the end of the last mark whose tid is below it
   * (every transaction before it is older), else the log's start.
   */
  startFor(fromTid: Tid): number {
    const marks = this.#marks;
    let low = 0;
    let high = marks.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (marks[middle]!.tid < fromTid) low = middle + 1;
      else high = middle;
    }
    return low === 0 ? FILE_HEADER_SIZE : marks[low - 1]!.end;
  }
}
