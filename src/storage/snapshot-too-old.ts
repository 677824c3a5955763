import { ConflictError } from '../errors.js';
import type { Oid, Tid } from './types.js';

/**
 * The error for a historical read that needs a revision a pack removed. It is a read
 * conflict, so `db.transaction` retries on a fresh snapshot, where the read succeeds.
 *
 * @internal
 */
export function snapshotTooOld(oid: Oid, tid: Tid): ConflictError {
  // `tid` is the one a read before it was asked for (see loadBefore): the snapshot's is one less.
  return new ConflictError(
    `object ${oid} as of tid ${Math.max(0, tid - 1)} is no longer kept (removed by a pack): the snapshot is too old`,
    { oid, kind: 'read' },
  );
}
