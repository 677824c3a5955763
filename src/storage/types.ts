/**
 * The data types of the storage contract. A storage keeps opaque records keyed by oid and
 * versioned by tid; it knows nothing of classes. See {@link Storage}.
 *
 * @module
 */

import { expectDate, expectNonNegativeInteger } from '../util/validate.js';

/** An object id: a dense non-negative integer; oid 0 is the root object. */
export type Oid = number;

/**
 * A transaction id: a positive integer that grows with every commit. trove's storages derive
 * it from the commit time in microseconds since 1970 (never going backwards), so a tid can be
 * turned into a time with {@link tidToDate} and a time into a tid with {@link dateToTid}.
 * `0` means "before the first transaction".
 */
export type Tid = number;

/** The oid of the root object. */
export const ROOT_OID: Oid = 0;

/** One stored revision of one object. */
export interface StoredRecord {
  /** The object this revision belongs to. */
  readonly oid: Oid;
  /** The transaction that wrote this revision. */
  readonly tid: Tid;
  /** The encoded state, opaque to the storage. */
  readonly data: Uint8Array;
  /** The oids this revision references, so pack and integrity checks need no classes. */
  readonly refs: readonly Oid[];
  /** True for blob content (then `data` is the blob's bytes). */
  readonly blob?: boolean;
}

/** A revision found by `loadBefore`, with the tid of the revision that replaced it, if any. */
export interface HistoricalRecord extends StoredRecord {
  /** The tid of the next revision of the object, or `undefined` if this one is still current. */
  readonly nextTid: Tid | undefined;
}

/** Bytes staged by `storage.stageBlob`, waiting for the commit that stores them. */
export interface StagedBlob {
  /** The number of bytes. */
  readonly size: number;
}

/** One object written by a commit. */
export interface RecordWrite {
  /** The object written. */
  readonly oid: Oid;
  /** Its new encoded state (empty for blob content). */
  readonly data: Uint8Array;
  /**
   * Set for blob content: the staged bytes become the object's record (raw bytes, read
   * back with `openBlob`). Blob content is written once and never changed.
   */
  readonly blob?: StagedBlob | undefined;
  /** The oids the new state references. */
  readonly refs: readonly Oid[];
  /**
   * The tid of the revision this write replaces (the one the writer read), or 0 for a new
   * object. If the current revision has another tid, the commit fails with a conflict.
   */
  readonly expectedTid: Tid;
}

/** An object that was only read, guarded against concurrent change (`tx.readCurrent`). */
export interface ReadGuard {
  /** The object read. */
  readonly oid: Oid;
  /** The tid of the revision that was read. */
  readonly tid: Tid;
}

/** Descriptive data stored with a transaction. */
export interface TransactionMeta {
  /** A note from the application, for example what the transaction did. */
  readonly note?: string | undefined;
  /** Who made the change, as the application names users. */
  readonly user?: string | undefined;
}

/** One object whose commit conflicted, with what is committed now. */
export interface ConflictInfo {
  /** The conflicting object. */
  readonly oid: Oid;
  /** `write` for a written object, `read` for a `readCurrent` guard. */
  readonly kind: 'write' | 'read';
  /** The tid the committing transaction expected. */
  readonly expectedTid: Tid;
  /** The current committed revision, or undefined if the object has none. */
  readonly committed: StoredRecord | undefined;
}

/**
 * Resolves write conflicts while the storage holds its commit lock: returns a replacement
 * write (with `expectedTid` set to the committed tid) for every conflict, or throws (a
 * ConflictError) when they cannot be resolved. Must be synchronous and quick.
 */
export type ConflictResolver = (conflicts: readonly ConflictInfo[]) => readonly RecordWrite[];

/** What a commit asks a storage to store atomically. */
export interface CommitRequest {
  /** The snapshot the writing transaction read from. */
  readonly baseTid: Tid;
  /** The objects written. */
  readonly writes: readonly RecordWrite[];
  /** Objects that were only read but must not have changed since they were read. */
  readonly readCurrent?: readonly ReadGuard[] | undefined;
  /** Descriptive data kept with the transaction. */
  readonly meta?: TransactionMeta | undefined;
  /**
   * Resolves conflicts in place instead of failing the commit (storages that cannot call
   * back, such as a remote one, may ignore it and report the conflicts).
   */
  readonly resolveConflicts?: ConflictResolver | undefined;
}

/** The oids one committed transaction changed. */
export interface TransactionChanges {
  /** The committed transaction. */
  readonly tid: Tid;
  /** The objects it wrote. */
  readonly oids: readonly Oid[];
}

/**
 * The answer of `changesSince`: the transactions committed after the given tid, oldest first,
 * or `'flush'` when the storage no longer knows them all and every cached object must be
 * treated as changed.
 */
export type ChangesSince = readonly TransactionChanges[] | 'flush';

/** One committed transaction, as the storage iterator yields it. */
export interface TransactionRecord {
  /** The transaction id. */
  readonly tid: Tid;
  /** Descriptive data stored with it. */
  readonly meta: TransactionMeta;
  /** The revisions it wrote. */
  readonly records: readonly StoredRecord[];
}

/** Options of `pack`. */
export interface PackOptions {
  /**
   * Keep every revision committed at or after this time (a tid or a Date), so that
   * historical reads back to it still work. By default only current revisions are kept.
   */
  readonly keepHistorySince?: Tid | Date | undefined;
}

/** What a pack did. */
export interface PackResult {
  /** Objects reachable from the root (kept). */
  readonly objectsKept: number;
  /** Objects no longer reachable from the root (removed). */
  readonly objectsRemoved: number;
  /** Old revisions removed. */
  readonly revisionsRemoved: number;
  /** Size of the stored data before the pack, in bytes (estimated for storages without files). */
  readonly bytesBefore: number;
  /** Size after the pack, in bytes. */
  readonly bytesAfter: number;
}

/** Counters a storage reports in `db.stats()`. */
export interface StorageStats {
  /** The kind of storage, for example `memory` or `file`. */
  readonly kind: string;
  /** Objects with a current revision. */
  readonly objects: number;
  /** The last committed transaction. */
  readonly lastTid: Tid;
  /** Commits done through this storage instance. */
  readonly commits: number;
  /** Bytes of stored data (file size for a file storage). */
  readonly bytes: number;
  /** Backend-specific counters. */
  readonly [key: string]: unknown;
}

/** Microseconds per millisecond, the scale between tids and `Date` times. */
const MICROS_PER_MS = 1000;

/**
 * The tid for a point in time: the first possible tid at or after `date` (0 for a date
 * before 1970, the largest tid for one past 2255). InvalidArgumentError for anything but a
 * valid Date.
 */
export function dateToTid(date: Date): Tid {
  const tid = expectDate(date, 'date').getTime() * MICROS_PER_MS;
  // Dates run to the year 275760; tids, as safe integers, to 2255.
  return Math.max(0, Math.min(tid, Number.MAX_SAFE_INTEGER));
}

/**
 * The time a tid was committed at (to the millisecond). InvalidArgumentError for anything
 * but a tid (a non-negative integer).
 */
export function tidToDate(tid: Tid): Date {
  return new Date(Math.floor(expectNonNegativeInteger(tid, 'tid') / MICROS_PER_MS));
}

/** Options of `backup`. */
export interface BackupOptions {
  /** Copy the database as it was at this tid or time (everything committed at or before it). */
  readonly at?: Tid | Date | undefined;
}

/** What a backup wrote. */
export interface BackupResult {
  /**
   * The file written. Its index is saved beside it as `<path>.index` when it can be (a
   * failure to is reported, not thrown): a cache that its first open uses, and rebuilds
   * when it is missing or old. Remove both when the copy goes.
   */
  readonly path: string;
  /** The last transaction the copy holds. */
  readonly tid: Tid;
  /** Its size in bytes. */
  readonly bytes: number;
}
