/**
 * The storage contract: the seam every layer above rests on. A storage keeps opaque records
 * keyed by oid, versioned by tid, and knows nothing of classes.
 *
 * Following abstract-level, {@link Storage} is a base class whose public methods check their
 * arguments and the storage's state and then delegate to a backend method of the same name
 * with a leading underscore. Backends (MemoryStorage, FileStorage, ...) implement only the
 * underscored methods, so every backend reports misuse the same way, and one conformance
 * suite checks them all.
 *
 * Reads (`load`, `loadBefore`, `changesSince`) are synchronous: a persistent object's first
 * attribute access loads its state, and attribute access cannot wait. Writes are asynchronous.
 *
 * @module
 */

import {
  ClosedError,
  type ConflictDetails,
  ConflictError,
  type IntegrityFailure,
  InvalidArgumentError,
  ReadOnlyError,
} from '../errors.js';
import {
  describe,
  expectBytes,
  expectDate,
  expectNonNegativeInteger,
  expectOptions,
} from '../util/validate.js';
import {
  type ChangesSince,
  type CommitRequest,
  dateToTid,
  type HistoricalRecord,
  type Oid,
  type PackOptions,
  type PackResult,
  type RecordWrite,
  type StorageStats,
  type StoredRecord,
  type Tid,
  type TransactionRecord,
} from './types.js';

/** The outcome of an integrity check. */
export interface IntegrityReport {
  /** True when no failure was found. */
  readonly ok: boolean;
  /** Every problem found, in the order found. */
  readonly failures: readonly IntegrityFailure[];
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
 * A commit conflict as a storage reports it: every conflicting object with its committed
 * revision, so the connection above can try class-defined conflict resolution and retry.
 *
 * @internal
 */
export class StorageConflictError extends ConflictError {
  /** Every conflicting object, with the committed revision. */
  readonly conflicts: readonly ConflictInfo[];

  constructor(conflicts: readonly ConflictInfo[], details: ConflictDetails = {}) {
    const first = conflicts[0];
    super(
      `commit conflict on ${conflicts.length} object(s), first oid ${first?.oid}: changed by another transaction`,
      { ...details, ...(first ? { oid: first.oid, kind: first.kind } : {}) },
    );
    this.conflicts = conflicts;
  }
}

/** The largest oid trove stores: oids index typed-array tables, so they stay 32-bit. */
export const MAX_OID: Oid = 0xffff_fffe;

function expectOid(value: unknown, argument: string): Oid {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_OID) {
    throw new InvalidArgumentError(
      `${argument} must be an oid (an integer from 0 to ${MAX_OID}), got ${describe(value)}`,
      { argument },
    );
  }
  return value;
}

function expectRefs(value: unknown, argument: string): readonly Oid[] {
  if (!Array.isArray(value)) {
    throw new InvalidArgumentError(`${argument} must be an array of oids, got ${describe(value)}`, {
      argument,
    });
  }
  for (let i = 0; i < value.length; i++) expectOid(value[i], `${argument}[${i}]`);
  return value;
}

/** Checks a commit request's shape; returns nothing, throws InvalidArgumentError. */
function checkCommitRequest(request: unknown): asserts request is CommitRequest {
  const req = expectOptions<CommitRequest>(request, 'commit request');
  expectNonNegativeInteger(req.baseTid, 'commit request baseTid');
  if (!Array.isArray(req.writes)) {
    throw new InvalidArgumentError(
      `commit request writes must be an array, got ${describe(req.writes)}`,
      { argument: 'writes' },
    );
  }
  const seen = new Set<Oid>();
  req.writes.forEach((write: RecordWrite, i: number) => {
    const where = `writes[${i}]`;
    expectOptions<RecordWrite>(write, where);
    expectOid(write.oid, `${where}.oid`);
    expectBytes(write.data, `${where}.data`);
    expectRefs(write.refs, `${where}.refs`);
    expectNonNegativeInteger(write.expectedTid, `${where}.expectedTid`);
    if (seen.has(write.oid)) {
      throw new InvalidArgumentError(`${where}.oid ${write.oid} is written twice in one commit`, {
        argument: `${where}.oid`,
      });
    }
    seen.add(write.oid);
  });
  if (req.readCurrent !== undefined) {
    if (!Array.isArray(req.readCurrent)) {
      throw new InvalidArgumentError('commit request readCurrent must be an array', {
        argument: 'readCurrent',
      });
    }
    req.readCurrent.forEach((guard, i) => {
      expectOid(guard?.oid, `readCurrent[${i}].oid`);
      expectNonNegativeInteger(guard?.tid, `readCurrent[${i}].tid`);
    });
  }
  if (req.meta !== undefined) {
    const meta = expectOptions<{ note: string; user: string }>(req.meta, 'commit request meta');
    for (const key of ['note', 'user'] as const) {
      if (meta[key] !== undefined && typeof meta[key] !== 'string') {
        throw new InvalidArgumentError(`meta.${key} must be a string`, { argument: `meta.${key}` });
      }
    }
  }
}

/** Resolves `keepHistorySince` (tid or Date) to a tid; undefined keeps no history. */
export function historyCutTid(options: PackOptions): Tid | undefined {
  const since = options.keepHistorySince;
  if (since === undefined) return undefined;
  if (since instanceof Date) return dateToTid(expectDate(since, 'keepHistorySince'));
  return expectNonNegativeInteger(since, 'keepHistorySince');
}

/**
 * The base class of every storage backend. See the module comment for the contract.
 */
export abstract class Storage {
  /** A short name of the backend, for example `memory` or `file`. */
  abstract readonly kind: string;
  /** True when the storage refuses writes (commits, new oids, pack). */
  readonly readOnly: boolean;
  #closed = false;
  #closing: Promise<void> | undefined;

  protected constructor(readOnly: boolean) {
    this.readOnly = readOnly;
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The newest revision of `oid`. Throws NotFoundError if the object has none. */
  load(oid: Oid): StoredRecord {
    this.checkOpen();
    return this._load(expectOid(oid, 'oid'));
  }

  /**
   * The newest revision of `oid` committed before `tid` (with tid < `tid`), or undefined if
   * the object did not exist then. Throws ConflictError (`read`) if that revision is no longer
   * kept (removed by a pack), because the snapshot asking for it is too old.
   */
  loadBefore(oid: Oid, tid: Tid): HistoricalRecord | undefined {
    this.checkOpen();
    return this._loadBefore(expectOid(oid, 'oid'), expectNonNegativeInteger(tid, 'tid'));
  }

  /** The tid of the newest committed transaction this storage knows, or 0 if none. */
  lastTid(): Tid {
    this.checkOpen();
    return this._lastTid();
  }

  /** Allocates `count` new oids, never handed out before. */
  async newOids(count: number): Promise<Oid[]> {
    this.checkWritable();
    expectNonNegativeInteger(count, 'count');
    if (count === 0) return [];
    return this._newOids(count);
  }

  /**
   * Stores every write atomically and durably (per the storage's durability setting) as one
   * new transaction, and returns its tid. Rejects with a {@link StorageConflictError} listing
   * every write whose `expectedTid` is not the current revision's tid, and every read guard
   * that is stale; nothing is stored then.
   */
  async commit(request: CommitRequest): Promise<Tid> {
    this.checkWritable();
    checkCommitRequest(request);
    return this._commit(request);
  }

  /**
   * The transactions committed after `tid`, oldest first, or `'flush'` if the storage cannot
   * list them all. Also brings the storage up to date with commits made elsewhere (other
   * processes), so call it at the start of a transaction, then `lastTid()` for the snapshot.
   */
  changesSince(tid: Tid): ChangesSince {
    this.checkOpen();
    return this._changesSince(expectNonNegativeInteger(tid, 'tid'));
  }

  /** Removes objects unreachable from the root and, by default, every old revision. */
  async pack(options?: PackOptions): Promise<PackResult> {
    this.checkWritable();
    const opts = expectOptions<PackOptions>(options, 'options');
    return this._pack(historyCutTid(opts));
  }

  /** Every committed transaction with tid >= `fromTid`, oldest first. */
  iterator(fromTid: Tid = 0): AsyncIterable<TransactionRecord> {
    this.checkOpen();
    return this._iterator(expectNonNegativeInteger(fromTid, 'fromTid'));
  }

  /** Saves whatever makes the next open fast (a file storage's index). */
  async checkpoint(): Promise<void> {
    this.checkOpen();
    await this._checkpoint();
  }

  /** Checks the stored data; never throws for damage it can report. */
  async integrityCheck(): Promise<IntegrityReport> {
    this.checkOpen();
    return this._integrityCheck();
  }

  /** Counters for `db.stats()`. */
  stats(): StorageStats {
    this.checkOpen();
    return this._stats();
  }

  /** Releases the storage's resources; later calls fail with ClosedError. Idempotent. */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    this.#closing = this._close();
    return this.#closing;
  }

  /** Throws ClosedError if the storage was closed. */
  protected checkOpen(): void {
    if (this.#closed) throw new ClosedError(`the ${this.kind} storage is closed`);
  }

  /** Throws ClosedError if closed, ReadOnlyError if read-only. */
  protected checkWritable(): void {
    this.checkOpen();
    if (this.readOnly) throw new ReadOnlyError(`the ${this.kind} storage is read-only`);
  }

  /** @internal */
  protected abstract _load(oid: Oid): StoredRecord;
  /** @internal */
  protected abstract _loadBefore(oid: Oid, tid: Tid): HistoricalRecord | undefined;
  /** @internal */
  protected abstract _lastTid(): Tid;
  /** @internal */
  protected abstract _newOids(count: number): Promise<Oid[]>;
  /** @internal */
  protected abstract _commit(request: CommitRequest): Promise<Tid>;
  /** @internal */
  protected abstract _changesSince(tid: Tid): ChangesSince;
  /** @internal */
  protected abstract _pack(keepHistorySince: Tid | undefined): Promise<PackResult>;
  /** @internal */
  protected abstract _iterator(fromTid: Tid): AsyncIterable<TransactionRecord>;
  /** @internal */
  protected abstract _checkpoint(): Promise<void>;
  /** @internal */
  protected abstract _integrityCheck(): Promise<IntegrityReport>;
  /** @internal */
  protected abstract _stats(): StorageStats;
  /** @internal */
  protected abstract _close(): Promise<void>;
}
