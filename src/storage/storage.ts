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

import * as fs from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import type { Readable } from 'node:stream';
import {
  ClosedError,
  type ConflictDetails,
  ConflictError,
  type IntegrityFailure,
  InvalidArgumentError,
  ReadOnlyError,
  StorageIOError,
  TroveError,
} from '../errors.js';
import {
  describe,
  expectBytes,
  expectDate,
  expectNonNegativeInteger,
  expectOptionalText,
  expectOptions,
  expectPath,
  isDate,
} from '../util/validate.js';
import { writeLogFile } from './file/log-writer.js';
import { removeStaleFiles } from './file/temporary-files.js';
import { MAX_COMMIT_TID } from './next-tid.js';
import { MAX_OID } from './oid-limit.js';
import {
  type BackupOptions,
  type BackupResult,
  type ChangesSince,
  type CommitRequest,
  type ConflictInfo,
  dateToTid,
  type HistoricalRecord,
  type Oid,
  type PackOptions,
  type PackResult,
  type RecordWrite,
  type StagedBlob,
  type StorageStats,
  type StoredRecord,
  type Tid,
  type TransactionRecord,
} from './types.js';

export { MAX_OID } from './oid-limit.js';

/** The outcome of an integrity check. */
export interface IntegrityReport {
  /** True when no failure was found. */
  readonly ok: boolean;
  /** Every problem found, in the order found. */
  readonly failures: readonly IntegrityFailure[];
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

/**
 * Throws InvalidArgumentError if `count` new oids starting at `next` would pass MAX_OID.
 *
 * @internal
 */
export function checkOidSpace(next: Oid, count: number): void {
  if (next + count > MAX_OID + 1) {
    throw new InvalidArgumentError(
      `cannot allocate ${count} more oids: only ${Math.max(0, MAX_OID + 1 - next)} are left below ${MAX_OID}`,
      { argument: 'count' },
    );
  }
}

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

export type { ConflictInfo };

function isOid(value: unknown): boolean {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= MAX_OID;
}

/**
 * True for a write of object data that passes every check below. A large commit has many
 * writes: they are checked without building the names of their fields, which only a
 * failing check needs.
 */
function isPlainValidWrite(write: unknown): boolean {
  if (typeof write !== 'object' || write === null || Array.isArray(write)) return false;
  const { oid, data, refs, expectedTid, blob } = write as RecordWrite;
  if (!isOid(oid) || !(data instanceof Uint8Array) || !Array.isArray(refs)) return false;
  if (typeof expectedTid !== 'number' || !Number.isSafeInteger(expectedTid) || expectedTid < 0) {
    return false;
  }
  for (let i = 0; i < refs.length; i++) if (!isOid(refs[i])) return false;
  return blob === undefined;
}

/** Checks a commit request's shape; returns nothing, throws InvalidArgumentError. */
function checkCommitRequest(
  request: unknown,
  isStaged: (blob: unknown) => boolean,
): asserts request is CommitRequest {
  const req = expectOptions<CommitRequest>(request, 'commit request');
  expectNonNegativeInteger(req.baseTid, 'commit request baseTid');
  if (!Array.isArray(req.writes)) {
    throw new InvalidArgumentError(
      `commit request writes must be an array, got ${describe(req.writes)}`,
      { argument: 'writes' },
    );
  }
  const writes = req.writes;
  // Writes usually come in ascending oids, and then none is written twice: the set of oids
  // seen is made only once one comes out of order.
  let highest = -1;
  let seen: Set<Oid> | undefined;
  const firstTime = (oid: Oid, i: number): boolean => {
    if (seen === undefined) {
      if (oid > highest) {
        highest = oid;
        return true;
      }
      seen = new Set();
      for (let j = 0; j < i; j++) seen.add(writes[j]!.oid);
    }
    if (seen.has(oid)) return false;
    seen.add(oid);
    return true;
  };
  writes.forEach((write: RecordWrite, i: number) => {
    if (isPlainValidWrite(write) && firstTime(write.oid, i)) return;
    const where = `writes[${i}]`;
    expectOptions<RecordWrite>(write, where);
    expectOid(write.oid, `${where}.oid`);
    expectBytes(write.data, `${where}.data`);
    expectRefs(write.refs, `${where}.refs`);
    expectNonNegativeInteger(write.expectedTid, `${where}.expectedTid`);
    if (write.blob !== undefined) {
      if (!isStaged(write.blob)) {
        throw new InvalidArgumentError(
          `${where}.blob must be a blob staged on this storage and not yet stored`,
          {
            argument: `${where}.blob`,
          },
        );
      }
      if (write.data.byteLength !== 0 || write.refs.length !== 0 || write.expectedTid !== 0) {
        throw new InvalidArgumentError(
          `${where} stores blob content: data and refs must be empty, expectedTid 0`,
          {
            argument: where,
          },
        );
      }
    }
    if (!firstTime(write.oid, i)) {
      throw new InvalidArgumentError(`${where}.oid ${write.oid} is written twice in one commit`, {
        argument: `${where}.oid`,
      });
    }
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
  if (req.resolveConflicts !== undefined && typeof req.resolveConflicts !== 'function') {
    throw new InvalidArgumentError('commit request resolveConflicts must be a function', {
      argument: 'resolveConflicts',
    });
  }
  if (req.meta !== undefined) {
    const meta = expectOptions<{ note: string; user: string }>(req.meta, 'commit request meta');
    for (const key of ['note', 'user'] as const) expectOptionalText(meta[key], `meta.${key}`);
  }
}

/**
 * The largest tid a view is taken at: the largest a commit gets. A view as of any later tid
 * or time shows everything, and views look up revisions before `tid + 1`, which must stay a
 * safe integer (a date after the year 2255 gives more than 2^53 microseconds).
 */
const MAX_SNAPSHOT_TID = MAX_COMMIT_TID;

/** What an option taking a time must be. */
const TID_OR_DATE = 'a tid (a non-negative integer) or a Date';

/** The tid that shows everything committed at or before `at` (a tid, or a time). */
export function snapshotTid(at: Tid | Date, argument: string): Tid {
  const tid = isDate(at)
    ? expectDate(at, argument).getTime() * 1000 + 999
    : expectNonNegativeInteger(at, argument, TID_OR_DATE);
  // A date before 1970 shows what was committed before the first commit: nothing.
  return Math.max(0, Math.min(tid, MAX_SNAPSHOT_TID));
}

/** Resolves `keepHistorySince` (tid or Date) to a tid; undefined keeps no history. */
export function historyCutTid(options: PackOptions): Tid | undefined {
  const since = options.keepHistorySince;
  if (since === undefined) return undefined;
  if (isDate(since)) return dateToTid(expectDate(since, 'options.keepHistorySince'));
  return expectNonNegativeInteger(since, 'options.keepHistorySince', TID_OR_DATE);
}

/** What runs when a reader a storage tracks (see Storage's #track) is collected. */
const readerCollection = new FinalizationRegistry<() => void>((collected) => collected());

/**
 * The methods a backend implements (see the module comment). They are not published, so a
 * subclass made outside trove has none of them; the constructor refuses one that lacks any.
 */
const BACKEND_METHODS = [
  '_load',
  '_loadBefore',
  '_lastTid',
  '_newOids',
  '_commit',
  '_changesSince',
  '_pack',
  '_iterator',
  '_checkpoint',
  '_integrityCheck',
  '_stats',
  '_close',
  '_stageBlob',
  '_discardBlob',
  '_openBlob',
] as const;

/**
 * The base class of every storage: MemoryStorage, FileStorage and SnapshotStorage. Custom
 * storages are not supported yet: the methods a backend implements are not part of the
 * published API, and constructing a subclass that lacks them throws InvalidArgumentError.
 */
export abstract class Storage {
  /** A short name of the backend, for example `memory` or `file`. */
  abstract readonly kind: string;
  /** True when the storage refuses writes (commits, new oids, pack). */
  readonly readOnly: boolean;
  #closed = false;
  #closing: Promise<void> | undefined;
  /**
   * Packs, backups, checkpoints and integrity checks under way: close() waits for them to
   * end, as it does for queued commits, rather than close the file they read and write (an
   * integrity check ends early: it looks at every turn whether the storage is closing).
   */
  readonly #running = new Set<Promise<unknown>>();
  /** Blobs staged and not yet stored or discarded. */
  readonly #staged = new Set<StagedBlob>();
  /**
   * What stops each staging under way: close() does, as it ends readers, rather than wait
   * for a source that may be slow or never end (an upload), or leave it writing a file.
   */
  readonly #stagings = new Set<() => void>();
  #cacheEpoch = 0;

  /**
   * For the storages of trove. InvalidArgumentError (`argument` `new.target`) for a subclass
   * that lacks the backend methods: refused here, it would fail at its first use instead.
   */
  protected constructor(readOnly: boolean) {
    const missing = BACKEND_METHODS.filter(
      (name) => typeof (this as unknown as Record<string, unknown>)[name] !== 'function',
    );
    if (missing.length > 0) {
      throw new InvalidArgumentError(
        `${new.target.name || 'this class'} lacks the backend methods ${missing.join(', ')}: custom storages are not supported yet (use MemoryStorage, FileStorage or SnapshotStorage)`,
        { argument: 'new.target' },
      );
    }
    this.readOnly = readOnly;
  }

  /** Blob streams and iterations not finished: close() ends them (see #track). */
  readonly #readers = new Set<WeakRef<object>>();
  readonly #endReader = new WeakMap<object, () => void>();

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Changes whenever objects a cache may hold stopped matching the storage in a way
   * `changesSince` cannot list (a pack removed objects; a file was replaced or reread).
   * A connection that sees it change reloads every object.
   */
  get cacheEpoch(): number {
    return this.#cacheEpoch;
  }

  /** Tells connections to reload every object (see cacheEpoch). */
  protected invalidateCaches(): void {
    this.#cacheEpoch++;
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

  /**
   * The newest tid this storage knows, or 0 if none: its newest committed transaction's, or
   * later (a file storage's oid reservations take tids of their own). Every later commit
   * gets a larger tid.
   */
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
   * Up to `count` new oids, never handed out before, that can be had without waiting for
   * anything: possibly fewer, possibly none (then ask {@link newOids} for the rest). For a
   * caller that must not yield between finding how many it needs and using them.
   *
   * @internal
   */
  newOidsNow(count: number): Oid[] {
    this.checkWritable();
    expectNonNegativeInteger(count, 'count');
    if (count === 0) return [];
    return this._newOidsNow(count);
  }

  /**
   * Stores every write atomically and durably (per the storage's durability setting) as one
   * new transaction, and returns its tid. Rejects with a ConflictError when a write's
   * `expectedTid` is not the current revision's tid, or a read guard is stale (the error
   * lists them all, for trove's own use); nothing is stored then.
   */
  async commit(request: CommitRequest): Promise<Tid> {
    this.checkWritable();
    checkCommitRequest(request, (blob) => this.#staged.has(blob as StagedBlob));
    const tid = await this._commit(request);
    for (const write of request.writes) {
      if (write.blob !== undefined && this.#staged.delete(write.blob)) {
        // The commit is durable: a staged copy that cannot be removed now (the disk refuses)
        // must not report it failed, which would have the caller take its objects for new
        // and store them again. What is left is the backend's to remove later (a file
        // storage's next open removes the staged files of handles no longer open).
        await this._discardBlob(write.blob).catch(() => undefined);
      }
    }
    return tid;
  }

  /**
   * Stages the bytes of a blob (streamed, never held whole in memory by file storages) for a
   * later commit that writes them as an object's record (`RecordWrite.blob`).
   */
  async stageBlob(
    source: Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
  ): Promise<StagedBlob> {
    this.checkWritable();
    const { chunks, release } = toChunks(source);
    const controller = new AbortController();
    const stop = () => {
      controller.abort();
      try {
        release();
      } catch {}
    };
    this.#stagings.add(stop);
    let staged: StagedBlob;
    try {
      staged = await this._stageBlob(chunks, controller.signal);
    } catch (error) {
      // The staging's failure is the one to report: a source whose own destroy() throws
      // (an application's) must not take its place.
      try {
        release();
      } catch {}
      // Stopped by close(): ClosedError, whatever the source said as it was stopped.
      this.checkOpen();
      throw error;
    } finally {
      this.#stagings.delete(stop);
    }
    if (this.#closed) {
      // close() has discarded the staged blobs already, or is doing so: this one too.
      await this._discardBlob(staged).catch(() => undefined);
      this.checkOpen();
    }
    this.#staged.add(staged);
    return staged;
  }

  /** Frees a staged blob that will not be committed. Idempotent. */
  async discardBlob(blob: StagedBlob): Promise<void> {
    if (this.#staged.delete(blob)) await this._discardBlob(blob);
  }

  /**
   * Streams the content of the blob stored as object `oid`. NotFoundError if there is none.
   * Unfinished when the storage closes, the stream ends with ClosedError if it has an
   * 'error' listener (as `for await`, `pipeline` and Blob's stream() give it), and is
   * destroyed without one otherwise (it closes without 'end').
   */
  openBlob(oid: Oid): Readable {
    this.checkOpen();
    const stream = this._openBlob(expectOid(oid, 'oid'));
    const untrack = this.#track(stream, () => {
      // Whoever reads it (it listens for errors) learns why it ended; a stream nobody reads
      // just ends, since an error nobody listens for would end the process.
      if (stream.listenerCount('error') === 0) stream.destroy();
      else
        stream.destroy(
          new ClosedError(`the ${this.kind} storage was closed while a blob was read`),
        );
    });
    stream.once('close', untrack);
    return stream;
  }

  /**
   * Notes a reader (a blob stream, an iteration) that close() ends, held weakly: one
   * dropped unfinished is collected, and `collected` runs then. Returns what to call when it
   * ends by itself: it forgets the reader at once (what the collection callback holds, the
   * iteration's state, would otherwise stay until the registry's cleanup got a turn).
   */
  #track(reader: object, end: () => void, collected?: () => void): () => void {
    const ref = new WeakRef(reader);
    this.#readers.add(ref);
    this.#endReader.set(reader, end);
    readerCollection.register(
      reader,
      () => {
        this.#readers.delete(ref);
        collected?.();
      },
      ref,
    );
    return () => {
      this.#readers.delete(ref);
      readerCollection.unregister(ref);
    };
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
    const opts = expectOptions<PackOptions>(options, 'options', { keepHistorySince: true });
    return this.#run(this._pack(historyCutTid(opts)));
  }

  /**
   * Every committed transaction with tid >= `fromTid`, oldest first, up to the end of the
   * log when the iteration began (its first `next()`; a file storage reads other handles'
   * commits first). After a pack, what it kept from before its cut comes back as transactions
   * at the cut's tid, without a note or user. Another handle's commit
   * still in its sync may be among them; if that sync fails, the commit is cut back (it
   * never was committed), and the iteration may then fail with CorruptionError there.
   */
  iterator(fromTid: Tid = 0): AsyncIterable<TransactionRecord> {
    this.checkOpen();
    const inner = this._iterator(expectNonNegativeInteger(fromTid, 'fromTid'))[
      Symbol.asyncIterator
    ]();
    // Ended (what it holds released) by close(), or when the iteration is dropped unfinished
    // and collected: a file storage's iteration holds its file from its first step.
    const end = () => void inner.return?.().catch(() => undefined);
    const outer = this.#whileOpen(inner, () => untrack());
    const untrack = this.#track(outer, end, end);
    return outer;
  }

  /**
   * The transactions of `iteration` while the storage is open; ClosedError after. (A
   * generator runs from its first next(), which may come after close().)
   */
  async *#whileOpen(
    iteration: AsyncIterator<TransactionRecord>,
    done: () => void,
  ): AsyncIterable<TransactionRecord> {
    try {
      this.checkOpen();
      for (;;) {
        const step = await iteration.next();
        if (step.done === true) break;
        this.checkOpen();
        yield step.value;
      }
      // An iteration a close ended early ends with ClosedError too, not as if complete.
      this.checkOpen();
    } finally {
      done();
      await iteration.return?.();
    }
  }

  /**
   * Writes a consistent copy of the database to a new trove file at `target` (which must not
   * exist), while commits go on; with `at`, the database as it was then. Returns what it
   * wrote. Open the copy like any database file. What a backup to the same target left
   * half written when its process died is removed first.
   */
  async backup(target: string, options?: BackupOptions): Promise<BackupResult> {
    this.checkOpen();
    const path = resolvePath(expectPath(target, 'target'));
    const opts = expectOptions<BackupOptions>(options, 'options', { at: true });
    const at = opts.at === undefined ? undefined : snapshotTid(opts.at, 'options.at');
    // A backup to this target that a killed process left (half written, or a second name of
    // a finished copy) is in the way of nothing, but nothing else would ever remove it: also
    // when the target exists, as it does after a backup killed just after it was named.
    removeStaleFiles(path, ['backup']);
    if (fs.existsSync(path)) {
      throw new InvalidArgumentError(`target ${path} exists; a backup never replaces a file`, {
        argument: 'target',
      });
    }
    try {
      return await this.#run(this._backup(path, at));
    } catch (error) {
      if (error instanceof TroveError) throw error;
      const code = (error as { code?: string }).code;
      if (code === 'EEXIST') {
        throw new InvalidArgumentError(`target ${path} exists; a backup never replaces a file`, {
          argument: 'target',
          cause: error,
        });
      }
      throw new StorageIOError(`backing up to ${path} failed${code ? ` (${code})` : ''}`, {
        cause: error,
      });
    }
  }

  /** Saves whatever makes the next open fast (a file storage's index). */
  async checkpoint(): Promise<void> {
    this.checkOpen();
    await this.#run(this._checkpoint());
  }

  /** Tracks an operation close() waits for. */
  async #run<T>(operation: Promise<T>): Promise<T> {
    this.#running.add(operation);
    try {
      return await operation;
    } finally {
      this.#running.delete(operation);
    }
  }

  /**
   * Checks the stored data; never throws for damage it can report. A close() while it runs
   * ends it: it rejects with ClosedError.
   */
  async integrityCheck(): Promise<IntegrityReport> {
    this.checkOpen();
    // close() waits for it, as for a pack; a long check looks (checkOpen) at every turn it
    // gives the event loop, and ends there when the storage is closing.
    return this.#run(this._integrityCheck());
  }

  /** Counters for `db.stats()`. */
  stats(): StorageStats {
    this.checkOpen();
    return this._stats();
  }

  /**
   * Releases the storage's resources; later calls fail with ClosedError. Waits for queued
   * commits, packs, backups and checkpoints; ends readers and blob stagings under way (a
   * staging fails with ClosedError, its source released: a Node stream is destroyed, a web
   * stream cancelled, and a source that cannot be stopped is asked for no more). Idempotent.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    for (const stop of this.#stagings) stop();
    this.#closing = (async () => {
      try {
        // Their failures are theirs to report, to whoever awaits them.
        await Promise.allSettled([...this.#running]);
        // Readers still open end now, releasing what they hold (a file a pack replaced).
        for (const ref of this.#readers) {
          const reader = ref.deref();
          if (reader !== undefined) this.#endReader.get(reader)?.();
        }
        this.#readers.clear();
        await this._close();
      } finally {
        for (const blob of this.#staged) await this._discardBlob(blob).catch(() => undefined);
        this.#staged.clear();
      }
    })();
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
  /** @internal The oids {@link newOidsNow} hands out; none unless a storage can do better. */
  protected _newOidsNow(_count: number): Oid[] {
    return [];
  }
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
  /**
   * @internal The tid before which a pack removed the history (reads of the past before it
   * are refused); 0 while it is all kept. A backup keeps it.
   */
  protected _historyHorizon(): Tid {
    return 0;
  }

  /**
   * @internal Writes the backup; by default by replaying the iterator into a new file, which
   * keeps the history horizon (its views of before it refuse, as this storage's do).
   */
  protected async _backup(path: string, at: Tid | undefined): Promise<BackupResult> {
    const horizon = this._historyHorizon();
    if (at !== undefined && at < horizon) {
      throw new InvalidArgumentError(
        `the history before tid ${horizon} was removed by a pack; options.at ${at} is older`,
        { argument: 'options.at' },
      );
    }
    const source = this._iterator(0);
    async function* upTo(): AsyncIterable<TransactionRecord> {
      for await (const transaction of source) {
        if (at !== undefined && transaction.tid > at) return;
        yield transaction;
      }
    }
    const { lastTid, bytes } = await writeLogFile(path, upTo(), true, horizon, (message) =>
      console.warn(message),
    );
    return { path, tid: lastTid, bytes };
  }

  /**
   * @internal Stages `chunks`. `stopped` is aborted when the storage closes: the staging then
   * ends as soon as it can (its source is released too), leaving nothing behind.
   */
  protected abstract _stageBlob(
    chunks: AsyncIterable<Uint8Array>,
    stopped: AbortSignal,
  ): Promise<StagedBlob>;
  /** @internal */
  protected abstract _discardBlob(blob: StagedBlob): Promise<void>;
  /** @internal */
  protected abstract _openBlob(oid: Oid): Readable;
}

/**
 * A blob source as byte chunks, with `release`, which ends the source after a failed
 * staging: a Node stream is destroyed (unless it is already: it failed, or the staging
 * ended it), a web stream cancelled. A staging that failed before the stream gave its first
 * chunk (its file could not be made) cannot end it through its iterator, whose `return`
 * waits for that chunk: a stalled upload kept its socket open for good. Destroyed without
 * an error, which would be thrown where the application listens for none.
 */
interface BlobChunks {
  readonly chunks: AsyncIterable<Uint8Array>;
  readonly release: () => void;
}

/** Chunks that must be bytes (see toChunks). */
function checkedChunk(chunk: unknown): Uint8Array {
  // Not a string: it is text decoded from bytes by some encoding (a stream with
  // setEncoding('latin1')), and stored as UTF-8 it would be other bytes.
  if (chunk instanceof Uint8Array) return chunk;
  throw new InvalidArgumentError(
    `a blob source yielded ${describe(chunk)}, not bytes (a stream with an encoding gives strings: leave it without one)`,
    { argument: 'source' },
  );
}

/** Any accepted blob source as byte chunks (see BlobChunks). */
function toChunks(source: unknown): BlobChunks {
  if (source instanceof Uint8Array) {
    const chunks = (async function* () {
      yield source;
    })();
    return { chunks, release: () => undefined };
  }
  if (source instanceof ReadableStream) {
    if (source.locked) {
      throw new InvalidArgumentError(
        'source is a readable stream that something else reads (it has a reader): release its reader first',
        { argument: 'source' },
      );
    }
    // Through a reader of its own, which release can cancel while a read waits.
    const reader = source.getReader() as ReadableStreamDefaultReader<unknown>;
    const chunks = (async function* () {
      let ended = false;
      try {
        for (;;) {
          const step = await reader.read();
          if (step.done) {
            ended = true;
            return;
          }
          yield checkedChunk(step.value);
        }
      } finally {
        // Ended early (a failed staging, a chunk that is no bytes): the source is told.
        if (!ended) reader.cancel().catch(() => undefined);
      }
    })();
    return { chunks, release: () => void reader.cancel().catch(() => undefined) };
  }
  const iterable = source as {
    [Symbol.asyncIterator]?: unknown;
    [Symbol.iterator]?: unknown;
  } | null;
  if (
    typeof iterable?.[Symbol.asyncIterator] === 'function' ||
    typeof iterable?.[Symbol.iterator] === 'function'
  ) {
    const chunks = (async function* () {
      for await (const chunk of source as AsyncIterable<unknown>) yield checkedChunk(chunk);
    })();
    const stream = source as { destroy?: unknown; destroyed?: unknown };
    const release = () => {
      if (typeof stream.destroy === 'function' && stream.destroyed === false) {
        (stream.destroy as () => void)();
      }
    };
    return { chunks, release };
  }
  throw new InvalidArgumentError(
    `source must be bytes, a readable stream or an iterable of bytes, got ${describe(source)}`,
    {
      argument: 'source',
    },
  );
}

/**
 * Finds the conflicts of a commit and lets its resolver replace the conflicting writes,
 * until none are left; then returns the writes to store. Throws StorageConflictError when
 * conflicts remain and there is no resolver (or it gives up), and whatever the resolver
 * throws. `findConflicts` sees the current writes each round.
 *
 * @internal
 */
export function settleConflicts(
  request: CommitRequest,
  findConflicts: (writes: readonly RecordWrite[]) => ConflictInfo[],
): readonly RecordWrite[] {
  let writes = request.writes;
  for (let round = 0; ; round++) {
    const conflicts = findConflicts(writes);
    if (conflicts.length === 0) return writes;
    const resolve = request.resolveConflicts;
    if (
      resolve === undefined ||
      round >= MAX_RESOLUTION_ROUNDS ||
      conflicts.some((c) => c.kind === 'read')
    ) {
      throw new StorageConflictError(conflicts);
    }
    const replacements = new Map(resolve(conflicts).map((write) => [write.oid, write]));
    writes = writes.map((write) => replacements.get(write.oid) ?? write);
  }
}

/** Rounds of resolution one commit may take inside a storage (each sees newer data only
 * if another writer slipped in, which the commit lock prevents; so one round is usual). */
const MAX_RESOLUTION_ROUNDS = 4;
