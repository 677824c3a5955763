/**
 * FileStorage: the embedded default. One append-only, checksummed transaction log that many
 * processes and threads share with no configuration (see DESIGN.md, FileStorage, and
 * docs/format.md for the bytes).
 *
 * - Commits are appended under a kernel advisory lock and made durable with fdatasync before
 *   they are acknowledged (durability `full`); commits that arrive while one is being written
 *   are written together and share one sync (group commit).
 * - Readers never lock: at each transaction start they read at the log's end (a few bytes)
 *   and apply the transactions other writers appended. The file may extend past the log in
 *   zeros that writers preallocate, so the log ends where no transaction starts.
 * - The newest-revision index (oid to offset and tid) lives in pages of typed arrays, and is
 *   saved to `<path>.index` by checkpoints and a clean close, so an open scans only the log
 *   after it.
 * - A pack writes a new file and swaps it in; other handles notice the marker the packer
 *   leaves at the end of the old file and reopen the path.
 *
 * @module
 */

import * as fs from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import fsx from 'fs-native-extensions';
import {
  BusyError,
  CorruptionError,
  type IntegrityFailure,
  InvalidArgumentError,
  NotFoundError,
  StorageIOError,
  type TroveError,
} from '../../errors.js';
import { afterTimers, nextImmediate, TurnBudget } from '../../util/event-loop.js';
import {
  describe,
  expectNonNegativeInteger,
  expectOneOf,
  expectOptionalBoolean,
  expectOptions,
  expectPath,
  type OptionKeys,
} from '../../util/validate.js';
import { nextTid } from '../next-tid.js';
import { snapshotTooOld } from '../snapshot-too-old.js';
import {
  checkOidSpace,
  type IntegrityReport,
  MAX_OID,
  Storage,
  settleConflicts,
} from '../storage.js';
import { keptMeta } from '../transaction-meta.js';
import type {
  BackupResult,
  ChangesSince,
  CommitRequest,
  ConflictInfo,
  HistoricalRecord,
  Oid,
  PackResult,
  RecordWrite,
  StagedBlob,
  StorageStats,
  StoredRecord,
  Tid,
  TransactionRecord,
} from '../types.js';
import { backupFile } from './backup-file.js';
import { blobStream } from './blob-stream.js';
import { crc32c } from './checksum.js';
import { type FileOps, ioError, nodeFileOps, writeFully } from './file-ops.js';
import {
  decodeFileHeader,
  decodeTxHeader,
  FILE_HEADER_SIZE,
  type FileHeader,
  isRecordOffset,
  RECORD_HEADER_SIZE,
  RecordFlag,
  readU64,
  TX_HEADER_SIZE,
  TX_TRAILER_SIZE,
  TxStatus,
} from './format.js';
import { savedCoverage, savedSize, saveIndex } from './index-file.js';
import { checkFile, checkRecordAt } from './integrity.js';
import { endsTransaction, headerEndingAt, loadState } from './log-load.js';
import {
  crc32cOfFile,
  isTransaction,
  LogReader,
  PEEK_SIZE,
  readFully,
  type ScannedTransaction,
} from './log-reader.js';
import { oidsOf } from './oids-of.js';
import { OpenFile } from './open-file.js';
import { openHeader } from './open-header.js';
import { type PackHost, packFile } from './pack.js';
import { Preallocation, zeroBytes } from './preallocation.js';
import { RecentTransactions } from './recent-transactions.js';
import { type ReadRecord, RecordReader } from './record-reader.js';
import { copyTornTail, endOfData, judge } from './recovery.js';
import { applyToState, type ScanState } from './scan-state.js';
import { StagedBlobs } from './staged-blobs.js';
import { type StreamedRecord, writeStreamedTransaction } from './streamed-transaction.js';
import { syncDirectory } from './sync-directory.js';
import { type SyncOn, SyncPlacement } from './sync-placement.js';
import { OPEN_KINDS, removeStaleFiles } from './temporary-files.js';
import { TidMarks } from './tid-marks.js';
import { buildCommit, buildTransaction } from './tx-builder.js';
import { WriterLock } from './writer-lock.js';

/** How hard a commit works to survive a crash. */
export type Durability = 'full' | 'os' | 'none';

export type { SyncOn } from './sync-placement.js';

/** Options of {@link FileStorage.open}. */
export interface FileStorageOptions {
  /** Open without the right to write: no lock is ever taken, nothing is written. */
  readOnly?: boolean | undefined;
  /**
   * `full` (default): a commit is acknowledged after fdatasync, so it survives power loss.
   * `os`: no fsync on commit; commits survive a crash of the process, while a crash of the
   * machine may lose those made since the last sync (before a handle's first commit after it
   * opens or reads the file again, once 8 MiB were written without a sync, and before the
   * index is saved).
   * `none`: no fsync at all (tests, scratch data).
   */
  durability?: Durability | undefined;
  /**
   * Where the fdatasync of a `full` commit runs. `threadpool`: always on libuv's threadpool,
   * so the event loop never waits for the disk. `auto` (default): a commit that is alone
   * (no other commit waiting, a few kilobytes written) syncs on the calling thread once
   * this handle's last 8 syncs each took under a millisecond, which spares the two
   * threadpool hops (on README's machine, a third to a half more lone commits a second).
   * Other syncs go to the threadpool. Once syncs on the calling thread have kept the event
   * loop from a turn for 2 ms, the next one waits for the loop to go round once (a writer
   * committing back to back would otherwise never let timers and I/O run). A sync on the
   * calling thread that turns out slow (the disk got busy) still blocks the event loop for
   * as long as it takes; syncs then go to the threadpool for ten times as long, and until 8
   * in a row are quick again. (A sync on the threadpool counts as quick only if the event
   * loop also heard of it within the millisecond, so a busy event loop keeps syncs there.)
   * Either way a commit is acknowledged only after its sync.
   */
  syncOn?: SyncOn | undefined;
  /** How long a writer waits for the writer lock before BusyError, in ms (default 5000). */
  busyTimeout?: number | undefined;
  /** Show progress of long operations on a terminal (default: when stderr is a TTY). */
  progress?: boolean | undefined;
  /** Where recovery and maintenance messages go (default: console.warn). */
  logger?: ((message: string) => void) | undefined;
  /** Bytes of the file kept in memory for reads, in 8 KiB blocks (default 32 MiB; 0 = none). */
  readCacheBytes?: number | undefined;
  /** @internal Replaces the file operations that can fail, for failure tests. */
  fileOps?: FileOps | undefined;
  /** @internal Replaces the clock (ms) that times syncs (see `syncOn`), for tests. */
  clock?: (() => number) | undefined;
}

/** Where the last transaction a handle applied is, to notice it being cut off (#tailIntact). */
interface AppliedTransaction {
  offset: number;
  length: number;
  tid: Tid;
  status: number;
  /** Its checksum, as its bytes sum. */
  checksum: number;
  /** The start of its group, once known (see #reload). */
  group?: number;
  /** A damaged stored checksum found to cover the bytes applied (see #tailIntact). */
  storedChecksum?: number;
}

/** A commit waiting for its group. */
interface PendingCommit {
  readonly request: CommitRequest;
  readonly resolve: (tid: Tid) => void;
  readonly reject: (error: unknown) => void;
}

/** Thrown inside a locked section when the file was replaced by a pack: retry on the new one. */
class FileReplaced {}

/**
 * First oid reservation size; doubles with demand up to the maximum. Small: what a handle
 * reserved and did not use is lost when it closes (oids are never reused).
 */
const FIRST_OID_BLOCK = 16;
const MAX_OID_BLOCK = 65_536;
/** A last applied transaction up to this size is read whole to see it is still there. */
const TAIL_READ = 4096;
/** Records passed over on the way to an older revision up to this size are read whole to be checked. */
const PASSED_OVER_READ = 64 * 1024;
const DEFAULT_BUSY_TIMEOUT = 5000;
/**
 * How long commits may keep one turn of the event loop when none waits for anything (no
 * sync: durability 'none', or 'os'): back to back, they would starve timers and I/O.
 */
const COMMIT_MS_PER_TURN = 10;
/** A commit this large or larger syncs on the threadpool: its sync has real data to write. */
const CALLING_THREAD_SYNC_BYTES = 64 * 1024;
const DEFAULT_READ_CACHE_BYTES = 32 * 1024 * 1024;
/**
 * How far back a commit without a sync points at most. Such commits point back at the first
 * one not yet durable (`group`), so that a power loss that keeps a later one and loses a page
 * of an earlier one is a torn tail; the bound limits how much of the log damage (a flipped
 * bit, not a crash) would be taken for a torn tail rather than refused. Past it, a commit
 * with durability `os` syncs first, as SQLite's WAL with `synchronous=NORMAL` does at each
 * checkpoint (about every 4 MiB).
 */
const NOSYNC_RUN_BYTES = 8 * 1024 * 1024;
/** Syncs a checkpoint tries without the writer lock while the log keeps moving under it. */
const CHECKPOINT_SYNC_ATTEMPTS = 3;
/**
 * Close leaves the saved index as it is while the log after what it covers is shorter than
 * this (or than a quarter of the index file): scanning that much at the next open takes a
 * few milliseconds (see #indexWorthSaving).
 */
const INDEX_TAIL_BYTES = 1024 * 1024;
/** @internal The keys of {@link FileStorageOptions}, for the entry points that take them. */
export const FILE_STORAGE_OPTION_KEYS: OptionKeys<FileStorageOptions> = {
  readOnly: true,
  durability: true,
  syncOn: true,
  busyTimeout: true,
  progress: true,
  logger: true,
  readCacheBytes: true,
  fileOps: 'internal',
  clock: 'internal',
};
/**
 * The bound for reads that follow the log: where it ends is found by reading (zeros or the
 * end of the file), never by the file's size. On Linux (6.13 and later) asking a file's
 * size or times makes the next write update its modification time for real, and with
 * that every fdatasync after an overwrite cost as much as after an append again.
 */
const UNBOUNDED = Number.MAX_SAFE_INTEGER;
/** How far past zeros at the log's end a writer looks for data before writing there. */
const NEAR_LOOK = PEEK_SIZE;

/** The trove storage on one local file. */
export class FileStorage extends Storage {
  /** What kind of storage this is: 'file'. */
  readonly kind = 'file';
  /** The data file's absolute path, symlinks resolved (the file a pack replaces). */
  readonly path: string;
  /** The durability of commits. */
  readonly durability: Durability;
  /** Where this handle's syncs run (see #sync). */
  readonly #syncPlacement: SyncPlacement;
  /**
   * Whether this handle's commits have run COMMIT_MS_PER_TURN in this turn of the event
   * loop: then timers and I/O get a turn before the next group. (Asked without awaiting: an
   * await there would let a second commit join a lone one's group.)
   */
  readonly #commitTurn: TurnBudget;
  readonly #clock: () => number;
  /** The zeros this handle writes ahead of its commits, in growing steps. */
  readonly #preallocation = new Preallocation();
  /** Commits in the last group this handle wrote (see #writeGroup). */
  #lastGroupSize = 1;
  readonly #ops: FileOps;
  readonly #lock: WriterLock;
  readonly #logger: (message: string) => void;
  readonly #progress: boolean | undefined;
  #file: OpenFile;
  /** A pack of this handle is running. */
  #packing = false;
  #reader: LogReader;
  #header: FileHeader;
  #log: ScanState;
  /** What changesSince answers from. */
  readonly #recent: RecentTransactions;
  #queue: PendingCommit[] = [];
  #flushing: Promise<void> | undefined;
  /**
   * Acknowledgements of the last group written, held back a turn (see `#writeGroup`); run
   * before any later commit is answered, so commits are always answered in order.
   */
  #heldAcks: (() => void) | undefined;
  #oidBlock = { next: 0, end: 0 };
  #oidBlockSize = FIRST_OID_BLOCK;
  #commits = 0;
  /** Set while this handle appends: its own tail scan must not read a group being written. */
  #appending = false;
  /** Files replaced by a pack, to close once no lock on them is held. */
  #replaced: OpenFile[] = [];
  readonly #oneByte = Buffer.allocUnsafe(1);
  /**
   * Whether the preallocated space after the log was checked for remains of writes cut
   * short by a system crash (zeros, then data again), which a look at the log's end alone
   * cannot see. Once per file a handle opens.
   */
  #tailChecked = false;
  /**
   * Where the last transaction this handle applied is, to notice it being cut off; with the
   * start of its group (see #reload), once known.
   */
  #lastApplied: AppliedTransaction | undefined;
  /** Where a damaged stored checksum of a transaction still in place is to be rewritten. */
  #checksumToRepair: { offset: number; checksum: number } | undefined;
  /** Where iterations from a tid start in the current file's log. */
  #tidMarks: TidMarks;
  /** Where #tailIntact reads the last applied transaction (whole, if it fits). */
  readonly #tailBytes = Buffer.allocUnsafe(TAIL_READ);
  /**
   * Damage found where this handle had read valid commits (see #reload). From then on it
   * refuses to read or write, as an open of the file would, rather than serve a state older
   * than one it already served.
   */
  #damage: (IntegrityFailure & { readonly offset: number }) | undefined;
  /**
   * Where the transactions written without a sync at the end of the log begin, if it ends
   * in some: oid reservations (never synced on their own) and commits of handles with less
   * durability (`nosync`). A reservation or a commit without sync after them says so
   * (`group`; see #reserve, #writeGroup). A durable commit syncs them first, so that recovery
   * may take whatever comes before a durable commit as durable (zeros there are damage, not
   * a crash's hole).
   */
  #unsyncedFrom: number | undefined;
  /**
   * Set when this handle loads the log (at open, after reading the file again, after a
   * pack) and cleared when it syncs: the group start of the last transaction loaded, whose
   * writer may have died before its sync. So the first commit (durability `full` or `os`)
   * syncs first (see #syncAfterLoad), and a transaction written without a sync before that
   * points back at it. Kept apart from #unsyncedFrom, which a synced transaction applied
   * clears: the scan of the log after the saved index at open applies transactions too, and
   * must not clear this. A `none` handle, which never syncs, clears it when its commits stop
   * pointing back (see NOSYNC_RUN_BYTES).
   */
  #loadedFrom: number | undefined;
  /**
   * The group start of the last durable commit (durability `full`) that another handle wrote
   * and this one read since its own last sync. That writer holds the writer lock through its
   * write and its sync, so the commit is durable unless the writer died in between; this
   * handle cannot tell. If it did, a commit written here next could outlive it in a power
   * loss during this handle's sync, and a hole in it before an intact later commit would be
   * refused as damage. So what this handle writes next points back at it (`group`) instead
   * of syncing first: the sync would cost every commit that follows another process's a
   * second flush of the disk (about 70 µs here, on commits that sync in about 150).
   * Used no further back than #durableTo (see #notDurableFrom): the group of that commit
   * may reach back into what this handle itself made durable since (without that, handles
   * taking turns would each point back at the other's pointer, and the groups would stretch
   * back to the first commit). So it covers the last commit of each other handle that wrote
   * since this handle's last sync: each of those may have died before its sync.
   */
  #followedFrom: number | undefined;
  /**
   * Where the log is known durable up to since it was loaded: the end of what this handle
   * had read or written when its last sync began (0 until then).
   */
  #durableTo = 0;
  /**
   * Whether this handle synced the directory of its file, as it does before its first
   * durable commit to a file: a commit is durable only if the file's name is too, and the
   * file may have been made by a handle whose sync of it failed (its open refused, and the
   * header left for another to use), or that synced nothing (durability `none`).
   */
  #directorySynced = false;
  /** Counts the loads of the log (#unsyncedAtLoad). */
  #loads = 0;
  /** Counts the transactions applied and the loads: whether this handle read anything. */
  #reads = 0;
  /** Whether this handle found no usable saved index and read the whole log instead. */
  #indexRebuilt = false;
  /** The blobs this handle staged, not yet committed or discarded. */
  readonly #staged: StagedBlobs;
  readonly #blockCacheBytes: number;
  /** The record reads of the current file. */
  #records: RecordReader;

  private constructor(
    path: string,
    options: FileStorageOptions,
    fd: number,
    header: FileHeader,
    state: ScanState,
    lastChecksum: number | undefined,
  ) {
    super(options.readOnly === true);
    this.path = path;
    this.durability = options.durability ?? 'full';
    this.#syncPlacement = new SyncPlacement(options.syncOn ?? 'auto');
    this.#clock = options.clock ?? (() => performance.now());
    this.#commitTurn = new TurnBudget(COMMIT_MS_PER_TURN, this.#clock);
    this.#ops = options.fileOps ?? nodeFileOps;
    this.#logger = options.logger ?? ((message) => console.warn(message));
    this.#progress = options.progress;
    this.#staged = new StagedBlobs(path);
    this.#lock = new WriterLock(options.busyTimeout ?? DEFAULT_BUSY_TIMEOUT, () => this.path);
    this.#file = new OpenFile(fd);
    this.#reader = new LogReader(fd);
    this.#blockCacheBytes = options.readCacheBytes ?? DEFAULT_READ_CACHE_BYTES;
    this.#records = new RecordReader(fd, path, this.#blockCacheBytes);
    this.#header = header;
    this.#log = state;
    this.#tidMarks = new TidMarks(state.end, state.lastTid);
    this.#lastApplied = this.#loadedTail(state.end, lastChecksum);
    this.#unsyncedAtLoad();
    this.#recent = new RecentTransactions(state.lastTid);
  }

  /**
   * Opens (creating it if needed, unless read-only) the data file at `path`: loads the saved
   * index or rebuilds it, reads the log after it, and cuts off a torn last transaction.
   */
  static async open(path: string, options?: FileStorageOptions): Promise<FileStorage> {
    let file = resolve(expectPath(path, 'path'));
    const opts = expectOptions<FileStorageOptions>(options, 'options', FILE_STORAGE_OPTION_KEYS);
    const readOnly = expectOptionalBoolean(opts.readOnly, 'options.readOnly') === true;
    if (opts.durability !== undefined)
      expectOneOf(opts.durability, ['full', 'os', 'none'], 'options.durability');
    if (opts.syncOn !== undefined)
      expectOneOf(opts.syncOn, ['auto', 'threadpool'], 'options.syncOn');
    if (opts.busyTimeout !== undefined)
      expectNonNegativeInteger(opts.busyTimeout, 'options.busyTimeout');
    expectOptionalBoolean(opts.progress, 'options.progress');
    if (opts.readCacheBytes !== undefined)
      expectNonNegativeInteger(opts.readCacheBytes, 'options.readCacheBytes');
    for (const key of ['logger', 'clock'] as const) {
      if (opts[key] !== undefined && typeof opts[key] !== 'function') {
        throw new InvalidArgumentError(
          `options.${key} must be a function, got ${describe(opts[key])}`,
          { argument: `options.${key}` },
        );
      }
    }
    const ops = opts.fileOps as Partial<Record<keyof FileOps, unknown>> | undefined;
    if (
      ops !== undefined &&
      (typeof ops !== 'object' ||
        ops === null ||
        !(['write', 'sync', 'truncate'] as const).every(
          (name) => typeof ops[name] === 'function',
        ) ||
        !(['writeNow', 'truncateNow'] as const).every(
          (name) => ops[name] === undefined || typeof ops[name] === 'function',
        ))
    ) {
      throw new InvalidArgumentError(
        `options.fileOps must have the functions write, sync and truncate (and writeNow and truncateNow, if any), got ${describe(ops)}`,
        { argument: 'options.fileOps' },
      );
    }

    // A writer's locks are byte ranges of open file descriptions, which the lock library has
    // on Linux only: on macOS it locks whole files (a byte range is EINVAL), and Windows
    // locks are mandatory (a reader would be refused the writer lock's bytes). A read-only
    // open takes no lock: it reads a copy anywhere.
    if (!readOnly && process.platform !== 'linux' && process.platform !== 'android') {
      throw new StorageIOError(
        `a file storage that writes runs on Linux only, not on ${process.platform} (a read-only open, or a MemoryStorage, runs anywhere)`,
        {
          cause: Object.assign(
            new Error('byte-range locks of open file descriptions are not available'),
            { code: 'ENOTSUP' },
          ),
        },
      );
    }
    // Only a regular file (or none yet) is opened: a read-only open of a FIFO waited for a
    // writer of it, for ever. (Not by opening without blocking: that fails at once where a
    // lease is held, as file servers hold them, instead of waiting for it.)
    const notAFile = (stat: fs.Stats | undefined): TroveError | undefined => {
      if (stat === undefined || stat.isFile()) return undefined;
      // A directory is the system's refusal, as a writable open of one is (EISDIR).
      if (stat.isDirectory()) {
        return ioError('opening', file, Object.assign(new Error('EISDIR'), { code: 'EISDIR' }));
      }
      return new InvalidArgumentError(`${file} is not a trove database (not a regular file)`, {
        argument: 'path',
      });
    };
    let named: fs.Stats | undefined;
    try {
      named = fs.statSync(file, { throwIfNoEntry: false });
    } catch {
      // The open says what is wrong (a directory on the way that cannot be searched).
    }
    const before = notAFile(named);
    if (before !== undefined) throw before;
    let fd: number;
    try {
      fd = fs.openSync(file, readOnly ? 'r' : fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
    } catch (error) {
      if ((error as { code?: string }).code === 'ENOENT') {
        throw new NotFoundError(`no database file at ${file}`, { cause: error });
      }
      throw ioError('opening', file, error);
    }
    let after: TroveError | undefined;
    try {
      // Another file put at the path in between.
      after = notAFile(fs.fstatSync(fd));
    } catch (error) {
      after = ioError('opening', file, error);
    }
    if (after !== undefined) {
      fs.closeSync(fd);
      throw after;
    }
    try {
      // The file's real name, symlinks resolved: a pack puts the new file at this name, and
      // the index and temporary files sit beside it. (At a symlink's name, a pack replaced
      // the link with the new file, and handles opened by the real name went on with the
      // old one: two databases from then on.)
      file = fs.realpathSync(file);
    } catch (error) {
      fs.closeSync(fd);
      throw ioError('opening', file, error);
    }
    let storage: FileStorage | undefined;
    try {
      const header = await openHeader(
        file,
        fd,
        {
          busyTimeout: opts.busyTimeout ?? DEFAULT_BUSY_TIMEOUT,
          sync: opts.durability !== 'none',
        },
        readOnly,
      );
      const { state, rebuilt, lastChecksum } = loadState(file, fd, header, opts.progress);
      storage = new FileStorage(file, opts, fd, header, state, lastChecksum);
      storage.#indexRebuilt = rebuilt;
      if (!readOnly) {
        for (const stale of removeStaleFiles(file, OPEN_KINDS))
          storage.#logger(`trove: removed ${stale}, a temporary file nobody held any more`);
      }
      await storage.#recoverTail();
      return storage;
    } catch (error) {
      // Once the storage exists it owns the files: recovery may have followed a pack to a
      // new one (and closed `fd` already).
      if (storage === undefined) fs.closeSync(fd);
      else {
        storage.#retireReplaced();
        storage.#file.retire();
      }
      // The system's refusals (a directory opened read-only reads with EISDIR) are I/O errors.
      if ((error as { syscall?: unknown }).syscall !== undefined)
        throw ioError('opening', file, error);
      throw error;
    }
  }

  /** The current file descriptor. */
  get #fd(): number {
    return this.#file.fd;
  }

  // ---- reading -----------------------------------------------------------------------------

  protected _load(oid: Oid): StoredRecord {
    this.#refuseIfDamaged();
    const offset = this.#log.index.offset(oid);
    if (offset === 0) throw new NotFoundError(`no object with oid ${oid}`);
    const record = this.#readRecord(offset, oid);
    if ((record.flags & RecordFlag.blob) !== 0) {
      throw new InvalidArgumentError(`object ${oid} is blob content; read it through its Blob`, {
        argument: 'oid',
      });
    }
    // The record read is a StoredRecord already (its other fields are extra): a cold read
    // makes one object fewer.
    return record;
  }

  protected _loadBefore(oid: Oid, tid: Tid): HistoricalRecord | undefined {
    this.#refuseIfDamaged();
    const found = this.#revisionBefore(oid, tid);
    if (found === undefined) return undefined;
    const record = this.#readRecord(found.offset, oid);
    // The newest revision is found by the index's tid, which a checksum of its own covers
    // but nothing checks against the record.
    if (record.tid >= tid) {
      throw new CorruptionError(
        `the index says object ${oid} was last written before tid ${tid}; its record at offset ${found.offset} has tid ${record.tid}`,
        { offset: found.offset, path: this.path },
      );
    }
    return {
      oid,
      tid: record.tid,
      data: record.data,
      refs: record.refs,
      nextTid: found.nextTid,
      ...((record.flags & RecordFlag.blob) !== 0 ? { blob: true } : {}),
    };
  }

  /**
   * The offset of the newest revision of `oid` with a tid below `tid` (and the tid of the
   * revision after it), or undefined if the object did not exist then.
   *
   * It walks back from the newest revision through the record headers (a revision read whole
   * at each step would read every later revision of the object, blobs included). The chain
   * must stay in the log and lead back in it (so the walk ends) and in time, through records
   * of this object; and the last header passed over, whose tid and previous offset decided
   * where the walk stopped, must pass its checksum (the revision found is checked when read).
   * One damaged tid or offset in a header would otherwise give another revision silently.
   */
  #revisionBefore(oid: Oid, tid: Tid): { offset: number; nextTid: Tid | undefined } | undefined {
    const index = this.#log.index;
    let offset = index.offset(oid);
    if (offset !== 0 && index.tid(oid) < tid) return { offset, nextTid: undefined };
    let nextTid: Tid | undefined;
    /** The revision passed over last (where the walk came from), and the sizes in it. */
    let newer = 0;
    let newerRefCount = 0;
    let newerDataLength = 0;
    const head = Buffer.allocUnsafe(RECORD_HEADER_SIZE);
    while (offset !== 0) {
      const broken = (what: string): never => {
        throw new CorruptionError(
          `the revision chain of object ${oid} is broken at offset ${offset}: ${what}`,
          { offset, path: this.path },
        );
      };
      if (!isRecordOffset(offset, newer === 0 ? this.#log.end : newer)) {
        broken('it does not lead back through the log');
      }
      if (
        readFully(this.#fd, head, 0, RECORD_HEADER_SIZE, offset) < RECORD_HEADER_SIZE ||
        readU64(head, 0) !== oid
      ) {
        broken('there is no record of it there');
      }
      const revisionTid = readU64(head, 8);
      // Equal tids are a pack's: one that keeps history can copy a revision twice.
      if (nextTid !== undefined && revisionTid > nextTid) broken('it does not lead back in time');
      if (revisionTid < tid) {
        if (newer !== 0) this.#checkPassedOver(newer, oid, newerRefCount, newerDataLength);
        return { offset, nextTid };
      }
      nextTid = revisionTid;
      newer = offset;
      newerRefCount = head.readUInt32LE(32);
      newerDataLength = readU64(head, 24);
      offset = readU64(head, 16);
    }
    if (newer !== 0) this.#checkPassedOver(newer, oid, newerRefCount, newerDataLength);
    const horizon = this.#header.historyHorizon;
    if (horizon > 0 && tid <= horizon) throw snapshotTooOld(oid, tid);
    return undefined;
  }

  /**
   * CorruptionError unless the record of `oid` at `offset` (with the sizes its header gives)
   * passes its checksum: a small one read as any record is (through the block cache), a
   * large one in pieces (it may be a blob of gigabytes).
   */
  #checkPassedOver(offset: number, oid: Oid, refCount: number, dataLength: number): void {
    const size = RECORD_HEADER_SIZE + refCount * 4 + dataLength;
    if (size <= PASSED_OVER_READ) {
      this.#readRecord(offset, oid);
      return;
    }
    if (offset + size > this.#log.end || !checkRecordAt(this.#fd, offset, refCount, dataLength)) {
      throw new CorruptionError(
        `the record of object ${oid} at offset ${offset}, on the way to an older revision, fails its checksum`,
        { offset, path: this.path },
      );
    }
  }

  protected _lastTid(): Tid {
    return this.#log.lastTid;
  }

  protected _changesSince(tid: Tid): ChangesSince {
    this.#poll();
    return this.#recent.since(tid);
  }

  /**
   * Reads and checks the record at `offset`: of the current file, or of `file` (a file an
   * iterator holds, which a pack may have replaced since) whose log ends at `file.end`.
   */
  #readRecord(
    offset: number,
    oid: Oid,
    file?: { readonly fd: number; readonly end: number },
  ): ReadRecord {
    const end = this.#log.end;
    return this.#records.read(offset, oid, file?.end ?? end, end, file?.fd);
  }

  // ---- following the log -------------------------------------------------------------------

  /**
   * Reads the transactions other writers appended since the last look (a read at the log's
   * end, one or two microseconds). Every transaction start looks: one that starts after another
   * process's commit finished, as told by any channel, sees it. (Sharing a look among the
   * starts of one turn of the event loop missed commits a pipe or a timer told of.) This
   * handle's own commits are applied as they are written.
   */
  #poll(): void {
    this.#refuseIfDamaged();
    if (this.#appending) return;
    if (!this.#tailIntact()) this.#reload();
    const stop = this.#scan();
    if (stop?.moved !== undefined && this.#followMove()) {
      this.#retireReplaced();
      this.#poll();
    }
  }

  /** Whether the sync owed after loading the log (see #loadedFrom) is still owed. */
  get #syncAfterLoad(): boolean {
    return this.#loadedFrom !== undefined;
  }

  /** Sets #unsyncedFrom and #loadedFrom for a log just loaded; counts it. */
  #unsyncedAtLoad(): void {
    this.#loads++;
    this.#reads++;
    const last = this.#lastApplied;
    this.#unsyncedFrom = undefined;
    this.#loadedFrom = undefined;
    this.#followedFrom = undefined;
    this.#durableTo = 0;
    if (last === undefined) return;
    const meta = this.#reader.metaAt(last.offset);
    // As #apply reads it: a group that is not a number (in a file trove did not write) is
    // no group.
    this.#loadedFrom = typeof meta?.group === 'number' ? meta.group : last.offset;
    last.group = this.#loadedFrom;
    if (last.status === TxStatus.oids || meta?.nosync === true) {
      this.#unsyncedFrom = this.#loadedFrom;
    }
  }

  /** Closes the files packs replaced (when no lock on them is held any more). */
  #retireReplaced(): void {
    for (const file of this.#replaced) file.retire();
    this.#replaced = [];
  }

  /**
   * Whether the last transaction this handle applied is still where it was. A writer whose
   * sync failed cuts its transaction off again, after another handle may already have read
   * it; the next commit may then be written in the same place.
   */
  #tailIntact(): boolean {
    const last = this.#lastApplied;
    if (last === undefined) {
      const end = this.#log.end;
      return end === FILE_HEADER_SIZE || readFully(this.#fd, this.#oneByte, 0, 1, end - 1) === 1;
    }
    // Cut off (below its header's end, too), or another transaction in its place: gone.
    // Another in its place may have its tid and length too (a commit written in the same
    // millisecond as the one cut back, as long): its checksum tells them apart. Read whole
    // when small, as most are: one read, as the header alone was.
    const bytes = this.#tailBytes;
    const whole = last.length <= bytes.length;
    const want = whole ? last.length : TX_HEADER_SIZE;
    if (readFully(this.#fd, bytes, 0, want, last.offset) < want) return false;
    const header = decodeTxHeader(bytes, 0);
    if (header === undefined || header.tid !== last.tid || header.length !== last.length) {
      return false;
    }
    const trailer = last.length - TX_TRAILER_SIZE;
    let stored: number;
    if (whole) {
      stored = bytes.readUInt32LE(trailer);
    } else if (readFully(this.#fd, bytes, 0, 4, last.offset + trailer) < 4) {
      return false;
    } else {
      stored = bytes.readUInt32LE(0);
    }
    if (stored === last.checksum) return true;
    if (stored === last.storedChecksum) return true;
    if (crc32cOfFile(this.#fd, last.offset, trailer) !== last.checksum) return false;
    last.storedChecksum = stored;
    this.#checksumToRepair = { offset: last.offset + trailer, checksum: last.checksum };
    // Taken for intact, it must not stay damaged: the next open (or one without the index)
    // would cut it off with every commit after it. A writer rewrites it under the lock.
    this.#logger(
      `trove: ${this.path}: the stored checksum of the transaction at offset ${last.offset} is damaged, its bytes are intact; a writer rewrites it`,
    );
    return true;
  }

  /**
   * Reads the file again from its index (or from scratch): what was applied is gone.
   *
   * A failed commit cuts back only what its writer wrote since it took the lock, and a torn
   * tail that an open cuts holds nothing acknowledged. So where the log read again stops
   * before the end this handle had read, at a transaction that fails its checks, and that
   * an open would refuse (see judge) or that lies before the group of the transaction cut
   * back (its writer began writing at or after that), acknowledged commits are lost: the
   * handle refuses from then on (#damage). Going on would serve an older state than it
   * already served.
   */
  #reload(): void {
    const readTo = this.#log.end;
    const last = this.#lastApplied;
    const floor = last?.group === undefined ? FILE_HEADER_SIZE : Math.min(last.group, last.offset);
    this.#logger(
      `trove: ${this.path}: the end of the log was rewritten by a failed commit; reading it again`,
    );
    for (let attempt = 1; ; attempt++) {
      const { state, rebuilt, lastChecksum } = loadState(
        this.path,
        this.#fd,
        this.#header,
        this.#progress,
      );
      this.#switchTo(this.#file, this.#header, state, lastChecksum);
      this.#indexRebuilt = rebuilt;
      this.#recent.forget(state.lastTid);
      this.invalidateCaches();
      const stop = this.#scan('all');
      if (stop?.problem === undefined || stop.offset >= readTo) return;
      const verdict = judge(this.#reader, stop.offset, fs.fstatSync(this.#fd).size, stop.problem);
      if (verdict.kind === 'written' || (verdict.kind === 'torn' && stop.offset >= floor)) return;
      // What it judged may lie inside commits written over a cut-back one since, themselves
      // cut back meanwhile: read again (a few times; then leave it to the next look).
      if (!this.#tailIntact()) {
        if (attempt < 3) continue;
        return;
      }
      this.#damage = {
        kind: stop.problem.problem === 'header' ? 'structure' : 'checksum',
        offset: stop.offset,
        detail: `${
          verdict.kind === 'corrupt'
            ? verdict.detail
            : `the transaction at offset ${stop.offset} fails its checks (${stop.problem.problem}) before the group of a commit cut back since, at offset ${floor}`
        }, and this handle had read on to offset ${readTo}`,
      };
      this.#refuseIfDamaged();
    }
  }

  /** CorruptionError if this handle found damage where it had read valid commits. */
  #refuseIfDamaged(): void {
    const damage = this.#damage;
    if (damage !== undefined) {
      throw new CorruptionError(damage.detail, { offset: damage.offset, path: this.path });
    }
  }

  /**
   * Applies the complete transactions after the read position. Stops where the log ends
   * (the end of the file, or preallocated space: zeros), at the first transaction that
   * fails its checks (not repaired here: a writer may still be appending it), and at a
   * marker saying a pack replaced the file. Zeros with data after them are a problem too,
   * looked for (`look`) up to the end of the file (once; see #tailChecked) or in the few
   * kilobytes after them (by a writer about to write there: zeros where a transaction's
   * header was, from damage, would otherwise be taken for the end and overwritten).
   */
  #scan(
    look: 'none' | 'near' | 'all' = 'none',
  ): { offset: number; problem?: ScannedProblem; moved?: ScannedTransaction } | undefined {
    // Bytes past the applied end may have been cut off and written again: never trust a
    // window that held them.
    this.#reader.invalidate();
    const reader = this.#reader;
    for (let first = true; ; first = false) {
      const offset = this.#log.end;
      // Most looks find nothing new: a few bytes tell, where a transaction read would read
      // a window of zeros. A writer's look takes in the few kilobytes after them at once.
      const peek = look === 'near' ? NEAR_LOOK : TX_HEADER_SIZE;
      const nothing = first && reader.nothingAt(offset, peek);
      const tx = nothing ? undefined : reader.readTransaction(offset, UNBOUNDED);
      if (tx !== undefined && isTransaction(tx)) {
        if (tx.status === TxStatus.moved) return { offset, moved: tx };
        this.#apply(tx, false);
        continue;
      }
      const problem = tx ?? { problem: 'header' };
      if (nothing || reader.nothingAt(offset, peek)) {
        if (look !== 'all') return undefined;
        if (endOfData(this.#fd, offset, fs.fstatSync(this.#fd).size) === offset) return undefined;
      }
      return { offset, problem };
    }
  }

  #apply(tx: ScannedTransaction, own: boolean): void {
    applyToState(this.#log, tx);
    this.#tidMarks.applied(this.#log.end, this.#log.lastTid);
    this.#reads++;
    const synced = tx.status !== TxStatus.oids && tx.meta.nosync !== true;
    const group = typeof tx.meta.group === 'number' ? tx.meta.group : tx.offset;
    // An unsynced transaction that points back less far than this handle knows does not
    // move the start: its writer may have synced first (`os`), or just stopped pointing
    // further back (`none`, see NOSYNC_RUN_BYTES), and the two look the same. A durable
    // commit's writer synced what it knew not to be durable first, and its group covers
    // what it could not know (see #followedFrom).
    if (synced) {
      this.#unsyncedFrom = undefined;
      // This handle's own commit is applied after its sync, which cleared #followedFrom.
      if (own) this.#durableTo = Math.max(this.#durableTo, tx.offset + tx.length);
      else this.#followedFrom = group;
    } else {
      this.#unsyncedFrom ??= group;
    }
    this.#lastApplied = {
      offset: tx.offset,
      length: tx.length,
      tid: tx.tid,
      status: tx.status,
      checksum: tx.checksum,
      group,
    };
    this.#recent.add(
      tx.tid,
      tx.records.map((record) => record.oid),
    );
  }

  /**
   * Follows a pack (this handle read the marker a packer leaves at the end of the file it
   * replaced): if the file at the path is no longer the one this handle has open, switch to
   * it. Returns false when it still is (the packer has not renamed yet, or failed or died
   * before it did).
   */
  #followMove(): boolean {
    let fd: number;
    try {
      fd = fs.openSync(this.path, this.readOnly ? 'r' : 'r+');
    } catch {
      return false;
    }
    try {
      const theirs = fs.fstatSync(fd);
      const ours = fs.fstatSync(this.#fd);
      const bytes = Buffer.alloc(FILE_HEADER_SIZE);
      const header = decodeFileHeader(
        bytes.subarray(0, readFully(fd, bytes, 0, FILE_HEADER_SIZE, 0)),
      );
      if ((theirs.ino === ours.ino && theirs.dev === ours.dev) || typeof header === 'string') {
        fs.closeSync(fd);
        return false;
      }
      const { state, rebuilt, lastChecksum } = loadState(this.path, fd, header, this.#progress);
      this.#indexRebuilt = rebuilt;
      // The old file may still be locked by this handle: it is closed once that is over.
      this.#replaced.push(this.#switchTo(new OpenFile(fd), header, state, lastChecksum));
      // The pack removed objects this handle's connections may hold: they reload everything.
      this.#recent.forget(state.lastTid);
      this.invalidateCaches();
      return true;
    } catch (error) {
      fs.closeSync(fd);
      throw error;
    }
  }

  /**
   * What the tail check compares against until this handle applies a transaction itself: the
   * transaction ending the log loaded up to `end`. With the checksum the index recorded for
   * it (`lastChecksum`), when its stored one was found damaged by the load: the first look
   * at the log's end finds the bytes intact, and has a writer rewrite it (see #tailIntact).
   */
  #loadedTail(end: number, lastChecksum: number | undefined): AppliedTransaction | undefined {
    const last = headerEndingAt(this.#reader, end);
    if (last !== undefined && lastChecksum !== undefined) last.checksum = lastChecksum;
    return last;
  }

  /** Makes `file` the data file; returns the old one (to retire, unless it is the same). */
  #switchTo(file: OpenFile, header: FileHeader, state: ScanState, lastChecksum?: number): OpenFile {
    const old = this.#file;
    this.#file = file;
    if (file !== old) this.#directorySynced = false;
    this.#reader = new LogReader(file.fd);
    this.#records = new RecordReader(file.fd, this.path, this.#blockCacheBytes);
    this.#header = header;
    this.#log = { ...state, nextOid: Math.max(state.nextOid, this.#log.nextOid) };
    this.#tidMarks = new TidMarks(state.end, state.lastTid);
    this.#lastApplied = this.#loadedTail(state.end, lastChecksum);
    this.#tailChecked = false;
    this.#unsyncedAtLoad();
    return old;
  }

  /**
   * At open: if the log ends in a transaction that fails its checks, decide whether it is a
   * torn tail (cut it off) or damage to committed data (refuse). Cutting needs the writer
   * lock; if another writer holds it (it may be appending right now), the open leaves the
   * tail to it and reads up to it.
   */
  async #recoverTail(): Promise<void> {
    const stop = this.#scan('all');
    if (stop === undefined) {
      this.#tailChecked = true;
      return;
    }
    if (stop.moved !== undefined && this.#followMove()) {
      this.#retireReplaced();
      return this.#recoverTail();
    }
    if (stop.problem !== undefined) {
      const size = fs.fstatSync(this.#fd).size;
      const verdict = judge(this.#reader, stop.offset, size, stop.problem);
      if (verdict.kind === 'written') return this.#recoverTail();
      if (verdict.kind === 'corrupt') {
        // As in #checkBeyondLog: the end judged may lie inside commits written over one that
        // was cut back after this handle read it.
        if (!this.#tailIntact()) {
          this.#reload();
          return this.#recoverTail();
        }
        throw new CorruptionError(verdict.detail, { offset: stop.offset, path: this.path });
      }
    }
    if (this.readOnly) return;
    const fd = this.#fd;
    if (!fsx.tryLock(fd, 0, 1)) return;
    try {
      this.#catchUpLocked();
    } catch (error) {
      if (!(error instanceof FileReplaced)) throw error;
    } finally {
      fsx.unlock(fd, 0, 1);
      this.#retireReplaced();
    }
  }

  /**
   * With the writer lock held: read the whole log, cutting off a torn tail (or a marker a
   * packer left when it died before swapping files). Throws FileReplaced when a pack
   * replaced the file.
   */
  #catchUpLocked(): void {
    this.#refuseIfDamaged();
    for (;;) {
      if (!this.#tailIntact()) this.#reload();
      const repair = this.#checksumToRepair;
      this.#checksumToRepair = undefined;
      if (repair !== undefined && this.#lastApplied?.storedChecksum !== undefined) {
        const word = Buffer.alloc(4);
        word.writeUInt32LE(repair.checksum, 0);
        try {
          writeFully(this.#fd, word, repair.offset);
          if (this.durability !== 'none') fs.fsyncSync(this.#fd);
        } catch (error) {
          // Still owed: appending after the damaged transaction would let the next open cut
          // it off with what follows (found in review: a failed write was never tried again).
          this.#checksumToRepair = repair;
          throw ioError('rewriting a damaged checksum in', this.path, error);
        }
        delete this.#lastApplied.storedChecksum;
        this.#reader.invalidate();
      }
      const stop = this.#scan(this.#tailChecked ? 'near' : 'all');
      if (stop === undefined) {
        this.#tailChecked = true;
        return;
      }
      // Something to repair: only now the file's size is asked (see UNBOUNDED).
      const size = fs.fstatSync(this.#fd).size;
      if (stop.moved !== undefined) {
        if (this.#followMove()) throw new FileReplaced();
        // The packer died (or failed) between writing its marker and renaming its file.
        // The marker holds no data: cut it without keeping a copy.
        const end = stop.moved.offset + stop.moved.length;
        const dataEnd = endOfData(this.#fd, end, size);
        if (dataEnd === end)
          this.#truncate(stop.offset, 'a pack marker left by a pack that did not finish');
        else
          this.#cut(
            stop.offset,
            dataEnd,
            'a pack marker left by a pack that did not finish, and what follows it',
          );
        continue;
      }
      const verdict = judge(this.#reader, stop.offset, size, stop.problem!);
      if (verdict.kind === 'written') continue;
      if (verdict.kind === 'corrupt') {
        throw new CorruptionError(verdict.detail, { offset: stop.offset, path: this.path });
      }
      this.#cut(
        stop.offset,
        verdict.end,
        'an incomplete last transaction (never acknowledged, or with durability os or none not yet synced)',
      );
    }
  }

  /**
   * Cuts the file at `offset`, keeping the bytes up to `end` aside (past it, zeros:
   * preallocated space, as far as anything can tell).
   */
  #cut(offset: number, end: number, what: string): void {
    const sync = this.durability !== 'none';
    let aside: string;
    try {
      aside = copyTornTail(this.path, this.#fd, offset, end, sync);
    } catch (error) {
      const code = (error as { code?: string }).code;
      const space =
        code === 'ENOSPC' || code === 'EDQUOT'
          ? `: its ${end - offset} bytes are copied aside first, which needs that much free space`
          : '';
      throw new StorageIOError(
        `keeping a copy of ${what} of ${this.path} failed${code ? ` (${code})` : ''}${space}; nothing was cut, and a read-only open works meanwhile`,
        { cause: error },
      );
    }
    try {
      fs.ftruncateSync(this.#fd, offset);
      if (sync) fs.fsyncSync(this.#fd);
    } catch (error) {
      throw ioError(`cutting off ${what} (kept in ${aside}) of`, this.path, error);
    } finally {
      this.#reader.invalidate();
    }
    this.#logger(
      `trove: ${this.path}: cut off ${what} at offset ${offset} (${end - offset} bytes); the bytes are kept in ${aside}`,
    );
  }

  #truncate(offset: number, what: string): void {
    fs.ftruncateSync(this.#fd, offset);
    if (this.durability !== 'none') fs.fsyncSync(this.#fd);
    this.#reader.invalidate();
    this.#logger(`trove: ${this.path}: removed ${what} at offset ${offset}`);
  }

  /** Runs `fn` holding the writer lock of the current file, with the log read to its end. */
  async #withLock<T>(fn: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        return await this.#lock.run(
          () => this.#file,
          async () => {
            this.#catchUpLocked();
            return fn();
          },
        );
      } catch (error) {
        if (!(error instanceof FileReplaced)) throw error;
      } finally {
        this.#retireReplaced();
      }
    }
  }

  // ---- writing -----------------------------------------------------------------------------

  protected async _newOids(count: number): Promise<Oid[]> {
    const oids = this.#takeReserved(count, []);
    if (oids.length === count) return oids;
    const missing = count - oids.length;
    await this.#withLock(async () => {
      const { bytes, apply } = this.#reserve(missing);
      // No sync: a reservation only matters once a commit using its oids is durable, and
      // that commit's sync makes the reservation (earlier in the file) durable too.
      await this.#append(async () => this.#ops.write(this.#fd, bytes, this.#log.end), false, apply);
    });
    return this.#takeReserved(count, oids);
  }

  /**
   * Oids without waiting: from the block this handle reserved, and if that is short, from a
   * new block reserved right now when the writer lock is free and nothing of this handle is
   * under way (the reservation is a small append, written synchronously like other small
   * appends). Otherwise fewer, and the caller waits for the rest through newOids.
   */
  protected override _newOidsNow(count: number): Oid[] {
    const oids = this.#takeReserved(count, []);
    const ops = this.#ops;
    if (oids.length === count || ops.writeNow === undefined || ops.truncateNow === undefined) {
      return oids;
    }
    const missing = count - oids.length;
    try {
      this.#lock.tryRunNow(this.#fd, () => {
        this.#catchUpLocked();
        const { bytes, apply } = this.#reserve(missing);
        this.#appendNow(bytes, ops.writeNow!, ops.truncateNow!);
        apply();
      });
    } catch (error) {
      // A pack replaced the file: the handle follows it; the caller waits for its oids.
      if (!(error instanceof FileReplaced)) throw error;
    } finally {
      this.#retireReplaced();
    }
    return this.#takeReserved(count, oids);
  }

  /** Moves oids from the reserved block into `oids` until it holds `count`; returns it. */
  #takeReserved(count: number, oids: Oid[]): Oid[] {
    const block = this.#oidBlock;
    while (oids.length < count && block.next < block.end) oids.push(block.next++);
    return oids;
  }

  /**
   * Where the bytes not yet known to be durable begin, for a transaction written now without
   * a sync of its own first: #unsyncedFrom, or else `loaded` (#loadedFrom unless the caller
   * drops it), or #followedFrom when that is further back.
   */
  #notDurableFrom(loaded = this.#loadedFrom): number | undefined {
    const before = this.#unsyncedFrom ?? loaded;
    // Clamped here, where it is used: this handle's own syncs may have made it durable since
    // it was read, without clearing it (something was read during the sync).
    const followed =
      this.#followedFrom === undefined ? undefined : Math.max(this.#followedFrom, this.#durableTo);
    return before === undefined || (followed !== undefined && followed < before)
      ? followed
      : before;
  }

  /**
   * With the writer lock held and the log read to its end: the oid reservation transaction
   * for at least `missing` oids (blocks grow, so a handle that keeps creating objects seldom
   * reserves), and what to do once it is in the file.
   */
  #reserve(missing: number): { bytes: Buffer; apply: () => void } {
    const want = Math.max(missing, this.#oidBlockSize);
    this.#oidBlockSize = Math.min(this.#oidBlockSize * 2, MAX_OID_BLOCK);
    const first = this.#log.nextOid;
    checkOidSpace(first, missing);
    // Not at the last transaction loaded when 8 MiB or more of transactions taken as synced
    // followed it (see NOSYNC_RUN_BYTES): recovery takes those as written after it was
    // durable anyway. #unsyncedFrom itself is bounded by the commits' syncs and resets, and
    // #followedFrom by the group of one commit.
    const loaded = this.#loadedFrom;
    const notDurableFrom = this.#notDurableFrom(
      this.#unsyncedFrom === undefined &&
        loaded !== undefined &&
        this.#log.end - loaded >= NOSYNC_RUN_BYTES
        ? undefined
        : loaded,
    );
    const high = Math.min(first + want, MAX_OID + 1);
    const { bytes, scanned } = buildTransaction(
      {
        tid: nextTid(this.#log.lastTid),
        status: TxStatus.oids,
        // After bytes not known to be durable, say where they begin (`group`): a crash may
        // lose those and keep this one, which is then torn too, not a later write.
        meta: {
          oidHigh: high,
          ...(notDurableFrom === undefined ? {} : { group: notDurableFrom }),
        },
        records: [],
      },
      this.#log.end,
    );
    return {
      bytes,
      apply: () => {
        this.#apply(scanned, true);
        this.#oidBlock = { next: first, end: high };
      },
    };
  }

  protected _commit(request: CommitRequest): Promise<Tid> {
    // Its staged blobs' files stay open while it is queued and written, even if discarded
    // meanwhile: the group it joins reads them (one gone would fail the whole group).
    const pinned: StagedBlob[] = [];
    for (const write of request.writes) {
      if (write.blob === undefined) continue;
      if (!this.#staged.pin(write.blob)) {
        for (const blob of pinned) void this.#staged.unpin(blob);
        return Promise.reject(
          new InvalidArgumentError('a blob of this commit was discarded before it was committed', {
            argument: 'request',
          }),
        );
      }
      pinned.push(write.blob);
    }
    const committed = new Promise<Tid>((resolve, reject) => {
      this.#queue.push({ request, resolve, reject });
      if (this.#flushing === undefined) this.#flushing = this.#flush();
    });
    if (pinned.length === 0) return committed;
    // Settled once a file discarded meanwhile is removed.
    return committed.finally(() => Promise.all(pinned.map((blob) => this.#staged.unpin(blob))));
  }

  /** Writes queued commits, one group at a time; a group is whatever queued meanwhile. */
  async #flush(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        // After a group of several commits answered at once (nothing else was waiting), their
        // writers are doing their next transactions now, in microtasks; the first of them to
        // commit would otherwise make a group of its own, with a sync of its own, before the
        // others get here. Waiting a turn lets them all join one group (with 8 writers,
        // nearly twice the commits a second). A lone writer (last group of one) does not
        // wait, nor does a group that queued while the last one was written: its writers
        // are all in it.
        try {
          if (this.#lastGroupSize > 1 && this.#heldAcks === undefined) await nextImmediate();
          if (this.#commitTurn.isUp()) await afterTimers();
        } catch (error) {
          // (A clock that throws, a test's.) The commits waiting fail, rather than never
          // settle.
          const waiting = this.#queue;
          this.#queue = [];
          this.#fail(waiting, error);
          // Never done before _commit has taken this run as #flushing: done synchronously,
          // it would clear #flushing first, and no later commit would start another.
          await null;
          continue;
        }
        const group = this.#queue;
        this.#queue = [];
        try {
          await this.#withLock(() => this.#writeGroup(group));
        } catch (error) {
          this.#fail(group, error);
        }
      }
    } finally {
      this.#releaseAcks();
      this.#flushing = undefined;
    }
  }

  /** Checks, writes and syncs one group of commits; settles each of them. */
  async #writeGroup(group: PendingCommit[]): Promise<void> {
    const groupStart = this.#log.end;
    /** Writes accepted earlier in this group, by oid: what a later conflict reports. */
    const written = new Map<Oid, StoredRecord>();
    const accepted: Array<{ pending: PendingCommit; writes: readonly RecordWrite[]; tid: Tid }> =
      [];
    let tid = this.#log.lastTid;
    for (let i = 0; i < group.length; i++) {
      const pending = group[i]!;
      let writes: readonly RecordWrite[];
      try {
        writes = settleConflicts(pending.request, (current) =>
          this.#conflicts(current, pending.request, written),
        );
      } catch (error) {
        this.#fail([pending], error);
        continue;
      }
      tid = nextTid(tid);
      // Only later commits of the group look at what earlier ones wrote.
      if (i < group.length - 1) {
        for (const write of writes)
          written.set(write.oid, { oid: write.oid, tid, data: write.data, refs: write.refs });
      }
      accepted.push({ pending, writes, tid });
    }
    if (accepted.length === 0) return;
    const lastGroupSize = this.#lastGroupSize;
    this.#lastGroupSize = accepted.length;

    const done: ScannedTransaction[] = [];
    /** Whether the group is one small commit, written over preallocated space. */
    let lone = false;
    const sync = this.durability === 'full' ? () => lone : false;
    try {
      await this.#append(
        async () => {
          const notDurableFrom = this.#notDurableFrom();
          const longRun =
            notDurableFrom !== undefined && groupStart - notDurableFrom >= NOSYNC_RUN_BYTES;
          if (
            this.durability === 'full'
              ? this.#unsyncedFrom !== undefined || this.#syncAfterLoad
              : this.durability === 'os' && (longRun || this.#syncAfterLoad)
          ) {
            try {
              await this.#sync(false);
            } catch (error) {
              // Nothing of the group is written yet: the sync failed, not the append.
              throw ioError('syncing (before appending to)', this.path, error);
            }
            this.#unsyncedFrom = undefined;
          } else if (longRun && this.durability === 'none') {
            // Durability `none` never syncs: its commits just point back no further (a hole
            // from a crash before that is then reported as damage).
            this.#unsyncedFrom = undefined;
            this.#loadedFrom = undefined;
            this.#followedFrom = undefined;
          }
          if (this.durability === 'full' && !this.#directorySynced) {
            try {
              syncDirectory(dirname(this.path));
            } catch (error) {
              throw ioError('syncing the directory of', this.path, error);
            }
            this.#directorySynced = true;
          }
          let offset = groupStart;
          // Commits without a sync say where the bytes not yet durable before them begin, as
          // reservations do: a power loss may keep a later one and lose a page of an earlier
          // one, which is then torn, not damage (see NOSYNC_RUN_BYTES). A durable commit
          // synced those just above, so its group starts with it, or with the last durable
          // commit of another handle it read since its last sync (see #followedFrom).
          const groupFrom = this.#notDurableFrom() ?? groupStart;
          const latest = new Map<Oid, number>();
          let buffers: Buffer[] = [];
          let buffered = offset;
          const flush = async () => {
            if (buffers.length === 0) return;
            const bytes = buffers.length === 1 ? buffers[0]! : Buffer.concat(buffers);
            await this.#ops.write(this.#fd, bytes, buffered);
            buffers = [];
          };
          for (let t = 0; t < accepted.length; t++) {
            const { pending, writes, tid: txTid } = accepted[t]!;
            const meta = {
              ...keptMeta(pending.request.meta),
              ...(offset === groupFrom ? {} : { group: groupFrom }),
              ...(this.durability === 'full' ? {} : { nosync: true }),
            };
            const prev = (oid: Oid) => latest.get(oid) ?? this.#log.index.offset(oid);
            let scanned: ScannedTransaction;
            if (writes.some((write) => write.blob !== undefined)) {
              await flush();
              scanned = await this.#writeWithBlobs(offset, txTid, meta, writes, prev);
              buffered = offset + scanned.length;
            } else {
              const built = buildCommit(txTid, meta, writes, prev, offset);
              if (buffers.length === 0) buffered = offset;
              buffers.push(built.bytes);
              scanned = built.scanned;
            }
            // Only later transactions of the group need the offsets of this one's records.
            if (t < accepted.length - 1) {
              for (const record of scanned.records) latest.set(record.oid, record.offset);
            }
            offset += scanned.length;
            done.push(scanned);
          }
          await flush();
          // Without syncs, appends cost no journal commits; and overwrites, unlike appends,
          // may reach the disk in any order, so a power loss could leave zeros before later
          // commits.
          const zeros =
            this.durability === 'full'
              ? this.#preallocation.zerosAfter(this.#fd, offset)
              : undefined;
          if (zeros !== undefined) {
            try {
              await this.#ops.write(this.#fd, zeros, offset);
            } catch {
              // No room to grow ahead (a disk nearly full): the commits are written; the next
              // ones append instead of overwriting, which costs time, not data.
            }
          }
          lone =
            accepted.length === 1 &&
            lastGroupSize === 1 &&
            zeros === undefined &&
            offset - groupStart < CALLING_THREAD_SYNC_BYTES;
        },
        sync,
        () => {
          for (const scanned of done) {
            this.#apply(scanned, true);
            this.#commits++;
          }
        },
      );
    } catch (error) {
      this.#fail(
        accepted.map((a) => a.pending),
        error,
      );
      return;
    }
    const settle = () => {
      for (let i = 0; i < accepted.length; i++) accepted[i]!.pending.resolve(done[i]!.tid);
    };
    // When more commits wait, acknowledge these a turn of the event loop later: the next
    // group's write and sync start in microtasks, which would otherwise run only after the
    // writers resumed here had done their next transactions' work. This way that work
    // overlaps the next sync instead of adding to it (with 64 writers, a third more commits
    // a second). A lone writer is answered at once.
    this.#releaseAcks();
    if (this.#queue.length > 0) {
      this.#heldAcks = settle;
      setImmediate(() => this.#releaseAcks());
    } else {
      settle();
    }
  }

  /**
   * Makes the log durable (fdatasync), on the calling thread or the threadpool as
   * #syncPlacement chooses; a `lone` commit (see #writeGroup) may sync on the calling thread.
   */
  async #sync(lone: boolean): Promise<void> {
    const placement = this.#syncPlacement;
    let start = this.#clock();
    if (placement.waitsForNextTurn(lone, this.#queue.length > 0, start)) {
      await afterTimers();
      start = this.#clock();
    }
    const onCallingThread = placement.onCallingThread(lone, this.#queue.length > 0, start);
    const loads = this.#loads;
    const reads = this.#reads;
    const durableTo = this.#log.end;
    // Held while the sync runs (on the threadpool): a handle that closes, or follows a pack
    // meanwhile, retires the file, and its descriptor must not be closed under the sync.
    const file = this.#file;
    file.acquire();
    const syncing = this.#ops.sync(file.fd, onCallingThread).finally(() => file.release());
    // A sync on the calling thread is over when the call returns: awaiting the settled
    // promise may run other microtasks first, which are not the disk's time.
    let end = this.#clock();
    try {
      await syncing;
      // Whatever the file held when the sync began is durable now: the log this handle had
      // loaded and read to its end then, unless it loaded the log again meanwhile (a load may
      // follow a cut-back, and what was read before may have been rewritten); and what it
      // read before the sync, unless it read more meanwhile (that may be newer than the sync).
      if (this.#loads === loads) {
        this.#loadedFrom = undefined;
        this.#durableTo = Math.max(this.#durableTo, durableTo);
      }
      if (this.#reads === reads) this.#followedFrom = undefined;
    } finally {
      if (!onCallingThread) end = this.#clock();
      placement.took(start, end, onCallingThread);
    }
  }

  /** Refuses `commits` with `error`, after the acknowledgements held back (they came first). */
  #fail(commits: readonly PendingCommit[], error: unknown): void {
    this.#releaseAcks();
    for (const pending of commits) pending.reject(error);
  }

  /** Runs the held-back acknowledgements, if any are still held. */
  #releaseAcks(): void {
    const acks = this.#heldAcks;
    if (acks === undefined) return;
    this.#heldAcks = undefined;
    acks();
  }

  /** Writes one transaction whose blob content streams from staged files. */
  async #writeWithBlobs(
    offset: number,
    tid: Tid,
    meta: Record<string, unknown>,
    writes: readonly RecordWrite[],
    prev: (oid: Oid) => number,
  ): Promise<ScannedTransaction> {
    const records: StreamedRecord[] = writes.map((write) => {
      const base = { oid: write.oid, tid, prev: prev(write.oid), refs: write.refs };
      if (write.blob === undefined) return { ...base, flags: 0, source: { bytes: write.data } };
      // Held by the commit since _commit (see there): there, even if discarded meanwhile.
      const path = this.#staged.pathOf(write.blob);
      return { ...base, flags: RecordFlag.blob, source: { path, length: write.blob.size } };
    });
    return await writeStreamedTransaction(this.#ops, this.#fd, offset, {
      tid,
      status: TxStatus.committed,
      meta,
      records,
    });
  }

  /**
   * Runs `write` (which appends at the end of the log) and syncs if `sync` is given; `sync`
   * then tells whether what was written is one lone commit (see #sync). Then `applied`
   * applies what was written, still within the append: a look at the log's end between
   * the two would take it for another handle's and apply it too. On failure the file is cut
   * back to where it was, so a failed append leaves nothing behind.
   */
  async #append(
    write: () => Promise<void>,
    sync: false | (() => boolean),
    applied: () => void,
  ): Promise<void> {
    const start = this.#log.end;
    this.#appending = true;
    try {
      try {
        await write();
        if (sync !== false) await this.#sync(sync());
      } catch (error) {
        try {
          await this.#ops.truncate(this.#fd, start);
        } catch (truncateError) {
          await this.#zeroFailedAppend(start, truncateError);
        }
        this.#reader.invalidate();
        throw ioError('appending to', this.path, error);
      }
      // Written and (if asked) synced: what follows must not cut it back.
      applied();
    } finally {
      this.#appending = false;
    }
  }

  /** As #append without a sync, for `bytes`, written before it returns. */
  #appendNow(
    bytes: Uint8Array,
    writeNow: NonNullable<FileOps['writeNow']>,
    truncateNow: NonNullable<FileOps['truncateNow']>,
  ): void {
    const start = this.#log.end;
    try {
      writeNow(this.#fd, bytes, start);
    } catch (error) {
      try {
        truncateNow(this.#fd, start);
      } catch (truncateError) {
        this.#cutBackFailed(start, truncateError);
      }
      this.#reader.invalidate();
      throw ioError('appending to', this.path, error);
    }
  }

  #cutBackFailed(start: number, truncateError: unknown): void {
    // What is left may begin with zeros: look past them at the next catch-up.
    this.#tailChecked = false;
    this.#logger(
      `trove: ${this.path}: could not cut back a failed append at offset ${start}: ${String(truncateError)}; the next writer will cut it off`,
    );
  }

  /**
   * After a failed append whose cut-back failed too: overwrites what it wrote with zeros,
   * preallocated space that no one reads as a transaction. Left as it was, transactions
   * it wrote whole (when only the sync failed) would be read as committed by the next look,
   * though their commits were refused.
   */
  async #zeroFailedAppend(start: number, truncateError: unknown): Promise<void> {
    // Zeros partly written may leave zeros, then data: look past them at the next catch-up.
    this.#tailChecked = false;
    try {
      const end = endOfData(this.#fd, start, fs.fstatSync(this.#fd).size);
      const zeros = zeroBytes();
      for (let at = start; at < end; at += zeros.length) {
        await this.#ops.write(this.#fd, zeros.subarray(0, Math.min(zeros.length, end - at)), at);
      }
      this.#logger(
        `trove: ${this.path}: could not cut back a failed append at offset ${start}: ${String(truncateError)}; overwrote it with zeros instead`,
      );
    } catch (zeroError) {
      this.#logger(
        `trove: ${this.path}: could not cut back a failed append at offset ${start} (${String(truncateError)}) nor overwrite it with zeros (${String(zeroError)}); what it wrote whole may be read as committed`,
      );
    }
  }

  /** The conflicts of `writes` against the log and the writes earlier in the group. */
  #conflicts(
    writes: readonly RecordWrite[],
    request: CommitRequest,
    written: Map<Oid, StoredRecord>,
  ): ConflictInfo[] {
    const conflicts: ConflictInfo[] = [];
    const index = this.#log.index;
    const currentTid = (oid: Oid) => written.get(oid)?.tid ?? index.tid(oid);
    const committed = (oid: Oid): StoredRecord | undefined => {
      const inGroup = written.get(oid);
      if (inGroup !== undefined) return inGroup;
      const offset = index.offset(oid);
      if (offset === 0) return undefined;
      const record = this.#readRecord(offset, oid);
      return { oid, tid: record.tid, data: record.data, refs: record.refs };
    };
    for (const write of writes) {
      if (currentTid(write.oid) !== write.expectedTid) {
        conflicts.push({
          oid: write.oid,
          kind: 'write',
          expectedTid: write.expectedTid,
          committed: committed(write.oid),
        });
      }
    }
    for (const guard of request.readCurrent ?? []) {
      if (currentTid(guard.oid) !== guard.tid) {
        conflicts.push({
          oid: guard.oid,
          kind: 'read',
          expectedTid: guard.tid,
          committed: committed(guard.oid),
        });
      }
    }
    // A ref to an object without a record (one a pack removed after the writer's snapshot)
    // would dangle: refuse it as a read conflict, so a retry sees the object gone.
    let writtenHere: ((oid: Oid) => boolean) | undefined;
    for (const write of writes) {
      for (const ref of write.refs) {
        if (index.offset(ref) !== 0 || written.has(ref)) continue;
        writtenHere ??= oidsOf(writes);
        if (!writtenHere(ref))
          conflicts.push({ oid: ref, kind: 'read', expectedTid: 0, committed: undefined });
      }
    }
    return conflicts;
  }

  // ---- blobs -----------------------------------------------------------------------------------

  protected _stageBlob(
    chunks: AsyncIterable<Uint8Array>,
    stopped: AbortSignal,
  ): Promise<StagedBlob> {
    return this.#staged.stage(chunks, stopped);
  }

  protected _discardBlob(blob: StagedBlob): Promise<void> {
    return this.#staged.discard(blob);
  }

  protected _openBlob(oid: Oid): Readable {
    this.#refuseIfDamaged();
    const offset = this.#log.index.offset(oid);
    const file = this.#file;
    const head = Buffer.allocUnsafe(RECORD_HEADER_SIZE);
    if (offset !== 0 && !isRecordOffset(offset, this.#log.end)) {
      throw new CorruptionError(
        `the index has offset ${offset} for object ${oid}, outside the log`,
        {
          offset,
          path: this.path,
        },
      );
    }
    if (offset === 0) throw new NotFoundError(`no blob content with oid ${oid}`);
    if (
      readFully(file.fd, head, 0, RECORD_HEADER_SIZE, offset) < RECORD_HEADER_SIZE ||
      readU64(head, 0) !== oid
    ) {
      throw new CorruptionError(
        `the record of object ${oid} at offset ${offset} is not a record of it`,
        {
          offset,
          path: this.path,
        },
      );
    }
    if ((head.readUInt16LE(36) & RecordFlag.blob) === 0) {
      // An object's record, or a blob's with its flag damaged: its checksum tells which.
      this.#readRecord(offset, oid);
      throw new NotFoundError(`no blob content with oid ${oid}: it is an object's record`);
    }
    const refsBytes = head.readUInt32LE(32) * 4;
    const length = readU64(head, 24);
    const start = offset + RECORD_HEADER_SIZE + refsBytes;
    const expected = head.readUInt32LE(44);
    let crc = crc32c(head.subarray(0, 44));
    if (refsBytes > 0) {
      const refs = Buffer.allocUnsafe(refsBytes);
      readFully(file.fd, refs, 0, refsBytes, offset + RECORD_HEADER_SIZE);
      crc = crc32c(refs, crc);
    }
    return blobStream(file, {
      oid,
      path: this.path,
      offset,
      start,
      length,
      crcBefore: crc,
      expected,
    });
  }

  // ---- maintenance ---------------------------------------------------------------------------

  protected async _pack(keepHistorySince: Tid | undefined): Promise<PackResult> {
    // Packs of other handles and processes are kept out by a lock on the file, which two
    // packs of this handle (one open of the file) would share.
    if (this.#packing) throw new BusyError(`another pack of ${this.path} is running`);
    this.#packing = true;
    try {
      return await this.#packNow(keepHistorySince);
    } finally {
      this.#packing = false;
    }
  }

  async #packNow(keepHistorySince: Tid | undefined): Promise<PackResult> {
    // The file the pack replaced, once it did: retired however the pack ends.
    let replaced: OpenFile | undefined;
    const host: PackHost = {
      path: this.path,
      ops: this.#ops,
      sync: this.durability !== 'none',
      progress: this.#progress,
      fd: () => this.#fd,
      header: () => this.#header,
      log: () => this.#log,
      poll: () => this.#poll(),
      loads: () => this.#loads,
      withLock: (fn) => this.#withLock(fn),
      revisionAt: (oid, tid) => this.#revisionBefore(oid, tid + 1)?.offset,
      warn: (message) => this.#logger(message),
      switchTo: (fd, header, state) => {
        replaced = this.#switchTo(new OpenFile(fd), header, state);
        // The pack saved an index for the new file.
        this.#indexRebuilt = false;
        // The pack removed objects this handle's connections may hold.
        this.invalidateCaches();
      },
    };
    try {
      return await packFile(host, keepHistorySince);
    } finally {
      replaced?.retire();
    }
  }

  protected override async _backup(path: string, at: Tid | undefined): Promise<BackupResult> {
    this.#poll();
    // The file, its header and its log as of now: a pack may switch them while this copies.
    const file = this.#file;
    file.acquire();
    try {
      return await backupFile(
        {
          path: this.path,
          file,
          header: this.#header,
          log: this.#log,
          lastChecksum: this.#lastChecksum,
          ops: this.#ops,
          warn: (message) => this.#logger(message),
        },
        path,
        at,
      );
    } finally {
      file.release();
    }
  }

  protected async *_iterator(fromTid: Tid): AsyncIterable<TransactionRecord> {
    // (Storage.iterator checks the storage is open when this runs, at the first next().)
    // The log to its end now, as a backup's: other handles' commits included.
    this.#poll();
    const end = this.#log.end;
    const file = this.#file;
    const start = this.#tidMarks.startFor(fromTid);
    file.acquire();
    const source = { fd: file.fd, end };
    try {
      const reader = new LogReader(file.fd);
      for (let offset = start; offset < end; ) {
        const tx = reader.readTransaction(offset, end);
        if (!isTransaction(tx)) {
          throw new CorruptionError(`the transaction at offset ${offset} fails its checks`, {
            offset,
            path: this.path,
          });
        }
        offset += tx.length;
        if (tx.tid < fromTid || tx.records.length === 0) continue;
        yield {
          tid: tx.tid,
          meta: keptMeta(tx.meta),
          records: tx.records.map((record) => {
            const read = this.#readRecord(record.offset, record.oid, source);
            const blob = (read.flags & RecordFlag.blob) !== 0;
            return {
              oid: record.oid,
              tid: read.tid,
              data: read.data,
              refs: read.refs,
              ...(blob ? { blob } : {}),
            };
          }),
        };
      }
    } finally {
      file.release();
    }
  }

  protected async _checkpoint(): Promise<void> {
    if (this.readOnly) return;
    this.#poll();
    // The saved index is synced, and an open trusts the log it covers without reading it: what
    // it covers must be durable too, or a power loss could leave a hole there that no open
    // looks for. This handle cannot know that of what others wrote (a writer may still be in
    // its sync, or have died before it), so it syncs the log it read: no lock is needed, as
    // a sync makes durable whatever was written before it, by anyone. Then the index is saved
    // at once, unless this handle read or wrote more meanwhile (then again; under the writer
    // lock if the log keeps moving).
    if (this.durability !== 'none') {
      for (let attempt = 0; ; attempt++) {
        if (attempt === CHECKPOINT_SYNC_ATTEMPTS) {
          await this.#withLock(async () => {
            await this.#syncForIndex();
            this.#saveIndex();
          });
          return;
        }
        const reads = this.#reads;
        await this.#syncForIndex();
        this.#poll();
        if (this.#reads === reads) break;
      }
    }
    this.#saveIndex();
  }

  /** Syncs the log before an index over it is saved: everything this handle read is durable. */
  async #syncForIndex(): Promise<void> {
    const reads = this.#reads;
    try {
      await this.#sync(false);
    } catch (error) {
      throw ioError('syncing before saving the index of', this.path, error);
    }
    if (this.#reads === reads) this.#unsyncedFrom = undefined;
  }

  /**
   * The checksum of the transaction ending the log as this handle read it (0 if none), for an
   * index of it: the file may hold another transaction there by now (one this handle read was
   * cut back), which the index must not be taken to cover. What its bytes sum to, never a
   * damaged stored one not yet rewritten: an index recording that would match it, and no
   * handle loading the index would see the damage to have it rewritten.
   */
  get #lastChecksum(): number {
    const last = this.#lastApplied;
    return last !== undefined && last.offset + last.length === this.#log.end ? last.checksum : 0;
  }

  #saveIndex(): void {
    try {
      saveIndex(
        this.path,
        {
          generation: this.#header.generation,
          coveredOffset: this.#log.end,
          lastTid: this.#log.lastTid,
          lastChecksum: this.#lastChecksum,
          nextOid: this.#log.nextOid,
          index: this.#log.index,
        },
        this.durability !== 'none',
      );
      this.#indexRebuilt = false;
    } catch (error) {
      throw ioError('saving the index of', this.path, error);
    }
  }

  /**
   * Whether close should save the index. Not when this handle could use the one it loaded
   * (or has saved one since), and the saved one (by its header) is for this file, ends
   * where a transaction of this log ends (as an open checks), and leaves less of the log for
   * the next open to scan than INDEX_TAIL_BYTES or a quarter of the index's own size. A
   * process that opens a large database, commits a little and closes would otherwise write
   * the whole index each time (16 MB and its sync for a million objects: 55 ms of a 60 ms
   * close, measured), where the next open scans a few hundred bytes of log instead.
   */
  #indexWorthSaving(): boolean {
    // One that could not be used (damaged, say) would cost every open a full read.
    if (this.#indexRebuilt) return true;
    const saved = savedCoverage(this.path);
    if (saved === undefined || saved.generation !== this.#header.generation) return true;
    const end = this.#log.end;
    if (!endsTransaction(this.#reader, saved, end)) return true;
    const tail = end - saved.coveredOffset;
    return tail > Math.max(INDEX_TAIL_BYTES, savedSize(this.#log.index) / 4);
  }

  protected async _integrityCheck(): Promise<IntegrityReport> {
    let beyond: IntegrityFailure | undefined;
    try {
      beyond = this.#checkBeyondLog();
    } catch (error) {
      // Damage below the log this handle had read (found now or before) is a failure too.
      if (this.#damage === undefined) throw error;
      beyond = this.#damage;
    }
    // The check gives the event loop turns: its file is held, so a pack meanwhile does not
    // close it, and it reads the log as it is now (commits meanwhile only append).
    const file = this.#file;
    const log = this.#log;
    file.acquire();
    let report: IntegrityReport;
    try {
      report = await checkFile(
        file.fd,
        log.end,
        log.index,
        () => log.end,
        () => this.checkOpen(),
      );
    } finally {
      file.release();
    }
    return beyond === undefined ? report : { ok: false, failures: [...report.failures, beyond] };
  }

  /**
   * Reads the log to its end, and judges what follows it up to the end of the file as an
   * open would (see #recoverTail), cutting nothing: damage there that an open would refuse
   * (a transaction that fails its checks, or zeros where one begins, with a transaction of a
   * later group after it) is a failure. A torn tail is not: nothing acknowledged is in it,
   * and it may be a commit being written right now.
   */
  #checkBeyondLog(): IntegrityFailure | undefined {
    for (let attempt = 1, reloads = 0; ; attempt++) {
      this.#poll();
      // What follows is this handle's own commit being written (and not yet synced: it may
      // still be cut back), which only the commit may apply.
      if (this.#appending) return undefined;
      const stop = this.#scan('all');
      if (stop === undefined) return undefined;
      if (stop.moved !== undefined) {
        // A pack replaced the file: check the new one. (Its packer may not have renamed it
        // yet: the marker then ends the log.)
        if (!this.#followMove()) return undefined;
        this.#retireReplaced();
        continue;
      }
      const problem = stop.problem!;
      const verdict = judge(this.#reader, stop.offset, fs.fstatSync(this.#fd).size, problem);
      if (verdict.kind === 'corrupt') {
        // A commit this handle read may have been cut back (its sync failed) and others
        // written in its place since: then the end it judged lies inside one of them.
        if (!this.#tailIntact()) {
          this.#reload();
          attempt--;
          if (++reloads < 3) continue;
          return undefined;
        }
        return {
          kind: problem.problem === 'header' ? 'structure' : 'checksum',
          offset: stop.offset,
          detail: verdict.detail,
        };
      }
      // `written`: a writer finished it while it was judged; read on (a few times: writers
      // that keep appending make every look a little late, and what they write is theirs to
      // check).
      if (verdict.kind === 'torn' || attempt === 3) return undefined;
    }
  }

  protected _stats(): StorageStats {
    return {
      kind: this.kind,
      objects: this.#log.index.count,
      lastTid: this.#log.lastTid,
      commits: this.#commits,
      bytes: this.#log.end,
      path: this.path,
      durability: this.durability,
      indexBytes: this.#log.index.byteSize,
    };
  }

  /**
   * At close, when no writer is busy: gives back the preallocated space after the log, so a
   * closed database is just its log. Only zeros are cut; anything else stays for recovery.
   */
  #trimPreallocation(): void {
    try {
      this.#lock.tryRunNow(this.#fd, () => {
        this.#catchUpLocked();
        const end = this.#log.end;
        const size = fs.fstatSync(this.#fd).size;
        if (size > end && endOfData(this.#fd, end, size) === end) fs.ftruncateSync(this.#fd, end);
      });
    } catch (error) {
      // Zeros left after the log cost some space and nothing else.
      if (!(error instanceof FileReplaced)) {
        this.#logger(`trove: ${this.path}: could not trim the file at close: ${String(error)}`);
      }
    } finally {
      this.#retireReplaced();
    }
  }

  protected async _close(): Promise<void> {
    // Commits already queued finish first; new ones are refused by the closed check.
    while (this.#flushing !== undefined) await this.#flushing;
    await this.#lock.drain();
    try {
      // A handle that found damage leaves the file as it is (see #reload).
      if (!this.readOnly && this.#damage === undefined) {
        this.#trimPreallocation();
        try {
          this.#poll();
          if (this.#indexWorthSaving()) await this._checkpoint();
        } catch (error) {
          // The index is a cache: a failed save costs the next open a scan, nothing more.
          this.#logger(`trove: ${this.path}: could not save the index at close: ${String(error)}`);
        }
      }
    } finally {
      this.#file.retire();
      await this.#staged.close();
    }
  }
}

type ScannedProblem = Exclude<ReturnType<LogReader['readTransaction']>, ScannedTransaction>;
