/**
 * How far a handle has read the log, and the index that reading built.
 *
 * @module
 */

import type { Oid, Tid } from '../types.js';
import type { ScannedTransaction } from './log-reader.js';
import type { OidIndex } from './oid-index.js';

/** How far the log has been read, and the index that reading built. */
export interface ScanState {
  index: OidIndex;
  /** The offset up to which the log has been read and applied. */
  end: number;
  lastTid: Tid;
  /** One past the largest oid in use or reserved in the file. */
  nextOid: Oid;
}

/** Applies a valid transaction to the index and log position. */
export function applyToState(state: ScanState, tx: ScannedTransaction): void {
  const index = state.index;
  let nextOid = state.nextOid;
  for (const record of tx.records) {
    index.set(record.oid, record.offset, record.tid);
    if (record.oid >= nextOid) nextOid = record.oid + 1;
  }
  const high = tx.meta.oidHigh;
  if (typeof high === 'number' && high > nextOid) nextOid = high;
  state.nextOid = nextOid;
  if (tx.tid > state.lastTid) state.lastTid = tx.tid;
  state.end = tx.offset + tx.length;
}
