/**
 * Membership in the oids of a commit's writes, for checks that ask it of many refs.
 *
 * @module
 */

import type { Oid, RecordWrite } from '../types.js';

/**
 * Whether an oid is among those of `writes`. A commit's writes usually come in ascending
 * oids (a connection writes the objects in the order it found them, new ones numbered in
 * that order), and then a binary search answers without a set of every oid.
 */
export function oidsOf(writes: readonly RecordWrite[]): (oid: Oid) => boolean {
  for (let i = 1; i < writes.length; i++) {
    if (writes[i]!.oid <= writes[i - 1]!.oid) {
      const set = new Set(writes.map((write) => write.oid));
      return (oid) => set.has(oid);
    }
  }
  return (oid) => {
    let low = 0;
    let high = writes.length - 1;
    while (low <= high) {
      const middle = (low + high) >>> 1;
      const found = writes[middle]!.oid;
      if (found === oid) return true;
      if (found < oid) low = middle + 1;
      else high = middle - 1;
    }
    return false;
  };
}
