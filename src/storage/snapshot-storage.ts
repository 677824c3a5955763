/**
 * SnapshotStorage: a read-only view of another storage as it was at one tid: the historical
 * view behind `open(path, { at })`.
 *
 * @module
 */

import type { Readable } from 'node:stream';
import { InvalidArgumentError, NotFoundError } from '../errors.js';
import {
  describe,
  expectNonNegativeInteger,
  expectOptionalBoolean,
  expectOptions,
} from '../util/validate.js';
import { type IntegrityReport, Storage, snapshotTid } from './storage.js';
import type {
  BackupResult,
  ChangesSince,
  CommitRequest,
  HistoricalRecord,
  Oid,
  PackResult,
  StagedBlob,
  StorageStats,
  StoredRecord,
  Tid,
  TransactionRecord,
} from './types.js';

/** Options of a {@link SnapshotStorage}. */
export interface SnapshotStorageOptions {
  /**
   * Close the storage viewed when the view closes (default false: others may use it, as a
   * database handle on it does).
   */
  closeInner?: boolean | undefined;
}

/** A read-only view of `inner` as of `tid`: later commits are invisible, nothing changes. */
export class SnapshotStorage extends Storage {
  /** What kind of storage this is: 'snapshot'. */
  readonly kind = 'snapshot';
  readonly #inner: Storage;
  readonly #tid: Tid;
  readonly #closeInner: boolean;

  /** A view of `inner` showing what was committed at or before `tid`. */
  constructor(inner: Storage, tid: Tid, options?: SnapshotStorageOptions) {
    super(true);
    if (!(inner instanceof Storage)) {
      throw new InvalidArgumentError(`inner must be a Storage, got ${describe(inner)}`, {
        argument: 'inner',
      });
    }
    this.#inner = inner;
    const asked = snapshotTid(expectNonNegativeInteger(tid, 'tid'), 'tid');
    const opts = expectOptions<SnapshotStorageOptions>(options, 'options', { closeInner: true });
    this.#closeInner = expectOptionalBoolean(opts.closeInner, 'options.closeInner') ?? false;
    // Clamped to the storage's last tid now: a view as of the future shows what is committed
    // now and keeps showing it. (Left above it, the view took in later commits whenever the
    // storage read them, while objects it had loaded kept their older states.) The storage
    // reads what other handles committed first (a file's handle reads them when asked for
    // changes): its last tid could be one it read long ago.
    inner.changesSince(inner.lastTid());
    this.#tid = Math.min(asked, inner.lastTid());
  }

  /**
   * The tid this view shows the storage as of: the one it was made with, or the storage's
   * last tid when it was made if that is earlier.
   */
  get tid(): Tid {
    return this.#tid;
  }

  protected _load(oid: Oid): StoredRecord {
    const record = this.#inner.loadBefore(oid, this.#tid + 1);
    if (record === undefined)
      throw new NotFoundError(`no object with oid ${oid} as of tid ${this.#tid}`);
    // As the storages refuse it: its bytes are the user's, not a state to decode.
    if (record.blob === true) {
      throw new InvalidArgumentError(`object ${oid} is blob content; read it through its Blob`, {
        argument: 'oid',
      });
    }
    return record;
  }

  protected _loadBefore(oid: Oid, tid: Tid): HistoricalRecord | undefined {
    const record = this.#inner.loadBefore(oid, Math.min(tid, this.#tid + 1));
    if (record === undefined) return undefined;
    return {
      ...record,
      nextTid:
        record.nextTid !== undefined && record.nextTid <= this.#tid ? record.nextTid : undefined,
    };
  }

  protected _lastTid(): Tid {
    return Math.min(this.#tid, this.#inner.lastTid());
  }

  protected _changesSince(): ChangesSince {
    return [];
  }

  protected async _newOids(): Promise<Oid[]> {
    throw new Error('unreachable: the base class refuses writes to a read-only storage');
  }

  protected async _commit(_request: CommitRequest): Promise<Tid> {
    throw new Error('unreachable: the base class refuses writes to a read-only storage');
  }

  protected async _pack(): Promise<PackResult> {
    throw new Error('unreachable: the base class refuses writes to a read-only storage');
  }

  protected async *_iterator(fromTid: Tid): AsyncIterable<TransactionRecord> {
    for await (const transaction of this.#inner.iterator(fromTid)) {
      if (transaction.tid > this.#tid) return;
      yield transaction;
    }
  }

  protected async _checkpoint(): Promise<void> {
    // A view saves nothing.
  }

  protected _integrityCheck(): Promise<IntegrityReport> {
    return this.#inner.integrityCheck();
  }

  protected _stats(): StorageStats {
    return {
      ...this.#inner.stats(),
      kind: this.kind,
      lastTid: this._lastTid(),
      snapshotOf: this.#inner.kind,
    };
  }

  protected override _backup(path: string, at: Tid | undefined): Promise<BackupResult> {
    return this.#inner.backup(path, { at: Math.min(at ?? this.#tid, this.#tid) });
  }

  protected async _stageBlob(): Promise<StagedBlob> {
    throw new Error('unreachable: the base class refuses writes to a read-only storage');
  }

  protected async _discardBlob(): Promise<void> {
    // Nothing is ever staged on a read-only view.
  }

  protected _openBlob(oid: Oid): Readable {
    try {
      return this.#inner.openBlob(oid);
    } catch (error) {
      // Content a pack removed after this view's tid is a read of the past, as an object's
      // is: loadBefore says the view is too old (ConflictError) if the pack removed it.
      if (error instanceof NotFoundError) this.#inner.loadBefore(oid, this.#tid + 1);
      throw error;
    }
  }

  /** Closes the view; the storage it views too, when made with `closeInner`. */
  override close(): Promise<void> {
    const closing = super.close();
    // Begun at once, not once this view's operations are done (close waits for them): an
    // integrity check of the storage it owns, under way, ends at that storage's close.
    if (this.#closeInner) this.#inner.close().catch(() => undefined);
    return closing;
  }

  protected async _close(): Promise<void> {
    if (this.#closeInner) await this.#inner.close();
  }
}
