/**
 * FileStorage: the embedded default. One append-only, checksummed transaction log that many
 * processes and threads share with no configuration (see DESIGN.md, FileStorage, and
 * docs/format.md for the bytes).
 *
 * - Commits are appended under a kernel advisory lock and made durable with fdatasync before
 *   they are acknowledged (durability `full`); commits that arrive while one is being written
 *   are written together and share one sync (group commit).
 * - Readers never lock: at each transaction start they look at the file size (one fstat) and
 *   read the transactions other writers appended.
 * - The newest-revision index (oid to offset and tid) lives in typed arrays and is saved to
 *   `<path>.index` by checkpoints and a clean close, so an open scans only the log after it.
 *
 * @module
 */

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { dirname, resolve } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import {
  CorruptionError,
  InvalidArgumentError,
  NotFoundError,
  StorageIOError,
  TroveError,
} from '../../errors.js';
import { startProgress } from '../../util/progress.js';
import {
  describe,
  expectNonEmptyString,
  expectNonNegativeInteger,
  expectOneOf,
  expectOptionalBoolean,
  expectOptions,
} from '../../util/validate.js';
import { snapshotTooOld } from '../snapshot-too-old.js';
import {
  type ConflictInfo,
  type IntegrityReport,
  Storage,
  StorageConflictError,
} from '../storage.js';
import {
  type ChangesSince,
  type CommitRequest,
  type HistoricalRecord,
  nextTid,
  type Oid,
  type PackResult,
  type StorageStats,
  type StoredRecord,
  type Tid,
  type TransactionChanges,
  type TransactionRecord,
} from '../types.js';
import { type FileOps, nodeFileOps } from './file-ops.js';
import {
  decodeFileHeader,
  decodeRefs,
  encodeFileHeader,
  FILE_HEADER_SIZE,
  type FileHeader,
  FORMAT_VERSION,
  RECORD_HEADER_SIZE,
  RecordFlag,
  readU64,
  TxStatus,
} from './format.js';
import { loadIndex, saveIndex } from './index-file.js';
import { checkFile } from './integrity.js';
import { isTransaction, LogReader, readFully, type ScannedTransaction } from './log-reader.js';
import { OidIndex } from './oid-index.js';
import { cutTornTail, judge } from './recovery.js';
import { buildTransaction, type RecordInput } from './tx-builder.js';
import { WriterLock } from './writer-lock.js';

/** How hard a commit works to survive a crash. */
export type Durability = 'full' | 'os' | 'none';

/** Options of {@link FileStorage.open}. */
export interface FileStorageOptions {
  /** Open without the right to write: no lock is ever taken, nothing is written. */
  readOnly?: boolean;
  /**
   * `full` (default): a commit is acknowledged after fdatasync, so it survives power loss.
   * `os`: no fsync on commit; commits survive a crash of the process, not of the machine.
   * `none`: no fsync at all (tests, scratch data).
   */
  durability?: Durability;
  /** How long a writer waits for the writer lock before BusyError, in ms (default 5000). */
  busyTimeout?: number;
  /** Show progress of long operations on a terminal (default: when stderr is a TTY). */
  progress?: boolean;
  /** Where recovery and maintenance messages go (default: console.warn). */
  logger?: (message: string) => void;
  /** @internal Replaces the file operations that can fail, for failure tests. */
  fileOps?: FileOps;
}

/** A transaction the process knows about, for changesSince. */
interface RecentTransaction {
  readonly tid: Tid;
  readonly oids: readonly Oid[];
}

/** A commit waiting for its group. */
interface PendingCommit {
  readonly request: CommitRequest;
  readonly resolve: (tid: Tid) => void;
  readonly reject: (error: unknown) => void;
}

/** Recent transactions kept for changesSince; older snapshots are told to flush. */
const MAX_RECENT_TRANSACTIONS = 10_000;
const MAX_RECENT_OIDS = 1_000_000;
/** First oid reservation size; doubles with demand up to the maximum. */
const FIRST_OID_BLOCK = 64;
const MAX_OID_BLOCK = 65_536;
/** Bytes read at once for a record load (most records fit). */
const LOAD_READ = 4096;
const DEFAULT_BUSY_TIMEOUT = 5000;

function ioError(action: string, path: string, cause: unknown): TroveError {
  if (cause instanceof TroveError) return cause;
  const code = (cause as { code?: string }).code;
  return new StorageIOError(`${action} ${path} failed${code ? ` (${code})` : ''}`, { cause });
}

/** The trove storage on one local file. */
export class FileStorage extends Storage {
  readonly kind = 'file';
  /** The data file's absolute path. */
  readonly path: string;
  /** The durability of commits. */
  readonly durability: Durability;
  readonly #ops: FileOps;
  readonly #lock: WriterLock;
  readonly #logger: (message: string) => void;
  #fd: number;
  #reader: LogReader;
  #header: FileHeader;
  /** The index, and how far the log has been read and applied. */
  readonly #log: ScanState;
  #recent: RecentTransaction[] = [];
  #recentOids = 0;
  /** Every transaction after this tid is in #recent. */
  #knownSince: Tid;
  #queue: PendingCommit[] = [];
  #flushing: Promise<void> | undefined;
  #oidBlock = { next: 0, end: 0 };
  #oidBlockSize = FIRST_OID_BLOCK;
  #commits = 0;
  /** Set while this process appends: the tail scan must not read a group being written. */
  #appending = false;
  readonly #scratch = Buffer.allocUnsafe(LOAD_READ);

  private constructor(
    path: string,
    options: FileStorageOptions,
    fd: number,
    header: FileHeader,
    state: ScanState,
  ) {
    super(options.readOnly === true);
    this.path = path;
    this.durability = options.durability ?? 'full';
    this.#ops = options.fileOps ?? nodeFileOps;
    this.#logger = options.logger ?? ((message) => console.warn(message));
    this.#lock = new WriterLock(options.busyTimeout ?? DEFAULT_BUSY_TIMEOUT, () => this.path);
    this.#fd = fd;
    this.#reader = new LogReader(fd);
    this.#header = header;
    this.#log = state;
    this.#knownSince = state.lastTid;
  }

  /**
   * Opens (creating it if needed, unless read-only) the data file at `path`: loads the saved
   * index or rebuilds it, reads the log after it, and cuts off a torn last transaction.
   */
  static async open(path: string, options?: FileStorageOptions): Promise<FileStorage> {
    const file = resolve(expectNonEmptyString(path, 'path'));
    const opts = expectOptions<FileStorageOptions>(options, 'options');
    const readOnly = expectOptionalBoolean(opts.readOnly, 'options.readOnly') === true;
    if (opts.durability !== undefined) {
      expectOneOf(opts.durability, ['full', 'os', 'none'], 'options.durability');
    }
    if (opts.busyTimeout !== undefined)
      expectNonNegativeInteger(opts.busyTimeout, 'options.busyTimeout');
    expectOptionalBoolean(opts.progress, 'options.progress');
    if (opts.logger !== undefined && typeof opts.logger !== 'function') {
      throw new InvalidArgumentError(
        `options.logger must be a function, got ${describe(opts.logger)}`,
        {
          argument: 'options.logger',
        },
      );
    }

    let fd: number;
    try {
      fd = fs.openSync(file, readOnly ? 'r' : fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
    } catch (error) {
      if ((error as { code?: string }).code === 'ENOENT') {
        throw new NotFoundError(`no database file at ${file}`, { cause: error });
      }
      throw ioError('opening', file, error);
    }
    try {
      const header = await FileStorage.#openHeader(file, fd, opts, readOnly);
      const state = FileStorage.#loadState(file, fd, header, opts.progress);
      const storage = new FileStorage(file, opts, fd, header, state);
      await storage.#recoverTail();
      return storage;
    } catch (error) {
      fs.closeSync(fd);
      throw error;
    }
  }

  /** Reads the file header, writing it first if the file is new. */
  static async #openHeader(
    file: string,
    fd: number,
    options: FileStorageOptions,
    readOnly: boolean,
  ): Promise<FileHeader> {
    const read = () => {
      const bytes = Buffer.alloc(FILE_HEADER_SIZE);
      const n = readFully(fd, bytes, 0, FILE_HEADER_SIZE, 0);
      return { bytes, n, size: fs.fstatSync(fd).size };
    };
    let { bytes, n, size } = read();
    if (size < FILE_HEADER_SIZE && !readOnly) {
      // A new file (or one whose creation was cut short before any data): write the header
      // under the writer lock, so two processes creating it at once agree on one header.
      const lock = new WriterLock(options.busyTimeout ?? DEFAULT_BUSY_TIMEOUT, () => file);
      await lock.run(
        () => fd,
        async () => {
          ({ bytes, n, size } = read());
          if (size >= FILE_HEADER_SIZE) return;
          const header = encodeFileHeader({
            version: FORMAT_VERSION,
            generation: randomBytes(8).readBigUInt64LE(0),
            createdAt: Date.now() * 1000,
            historyHorizon: 0,
          });
          fs.ftruncateSync(fd, 0);
          fs.writeSync(fd, header, 0, header.length, 0);
          if (options.durability !== 'none') {
            fs.fsyncSync(fd);
            syncDirectory(dirname(file));
          }
          ({ bytes, n, size } = read());
        },
      );
    }
    if (n < FILE_HEADER_SIZE) {
      throw new InvalidArgumentError(`${file} is not a trove database (it is empty or too short)`, {
        argument: 'path',
      });
    }
    const header = decodeFileHeader(bytes);
    if (header === 'magic' || header === 'short') {
      throw new InvalidArgumentError(`${file} is not a trove database`, { argument: 'path' });
    }
    if (header === 'version') {
      throw new InvalidArgumentError(
        `${file} was written in format version ${bytes.readUInt32LE(8)}; this trove reads version ${FORMAT_VERSION}`,
        { argument: 'path' },
      );
    }
    if (header === 'checksum') {
      throw new CorruptionError(`the header of ${file} fails its checksum`, {
        offset: 0,
        path: file,
      });
    }
    return header;
  }

  /** The index and log position: from the saved index if it is valid, else by a full scan. */
  static #loadState(
    file: string,
    fd: number,
    header: FileHeader,
    progress: boolean | undefined,
  ): ScanState {
    const size = fs.fstatSync(fd).size;
    const saved = loadIndex(file);
    const reader = new LogReader(fd);
    if (
      saved !== undefined &&
      saved.generation === header.generation &&
      saved.coveredOffset >= FILE_HEADER_SIZE &&
      saved.coveredOffset <= size &&
      endsTransaction(reader, saved.coveredOffset, saved.lastTid, size)
    ) {
      return {
        index: saved.index,
        end: saved.coveredOffset,
        lastTid: saved.lastTid,
        nextOid: saved.nextOid,
      };
    }
    // No usable index: rebuild it by reading the whole log.
    const state: ScanState = {
      index: new OidIndex(),
      end: FILE_HEADER_SIZE,
      lastTid: 0,
      nextOid: 1,
    };
    const bar = startProgress('trove: rebuilding the index', size, progress);
    try {
      for (;;) {
        const tx = reader.readTransaction(state.end, size);
        if (!isTransaction(tx)) break;
        applyToState(state, tx);
        bar.update(state.end);
      }
    } finally {
      bar.stop();
    }
    return state;
  }

  // ---- reading -----------------------------------------------------------------------------

  protected _load(oid: Oid): StoredRecord {
    const offset = this.#log.index.offset(oid);
    if (offset === 0) throw new NotFoundError(`no object with oid ${oid}`);
    const record = this.#readRecord(offset, oid);
    if ((record.flags & RecordFlag.blob) !== 0) {
      throw new InvalidArgumentError(`object ${oid} is blob content; read it through its Blob`, {
        argument: 'oid',
      });
    }
    return record;
  }

  protected _loadBefore(oid: Oid, tid: Tid): HistoricalRecord | undefined {
    let offset = this.#log.index.offset(oid);
    let nextTid: Tid | undefined;
    if (offset !== 0 && this.#log.index.tid(oid) < tid) {
      return { ...this.#readRecord(offset, oid), nextTid: undefined };
    }
    const head = Buffer.allocUnsafe(RECORD_HEADER_SIZE);
    while (offset !== 0) {
      if (
        readFully(this.#fd, head, 0, RECORD_HEADER_SIZE, offset) < RECORD_HEADER_SIZE ||
        readU64(head, 0) !== oid
      ) {
        throw new CorruptionError(
          `the revision chain of object ${oid} is broken at offset ${offset}`,
          {
            offset,
            path: this.path,
          },
        );
      }
      const revisionTid = readU64(head, 8);
      if (revisionTid < tid) return { ...this.#readRecord(offset, oid), nextTid };
      nextTid = revisionTid;
      offset = readU64(head, 16);
    }
    if (tid <= this.#header.historyHorizon) throw snapshotTooOld(oid, tid);
    return undefined;
  }

  protected _lastTid(): Tid {
    return this.#log.lastTid;
  }

  protected _changesSince(tid: Tid): ChangesSince {
    this.#poll();
    if (tid < this.#knownSince) return 'flush';
    const recent = this.#recent;
    let low = 0;
    let high = recent.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (recent[middle]!.tid <= tid) low = middle + 1;
      else high = middle;
    }
    return recent.slice(low) as TransactionChanges[];
  }

  /** Reads and checks the record at `offset`. */
  #readRecord(offset: number, oid: Oid): StoredRecord & { flags: number; prev: number } {
    const scratch = this.#scratch;
    const got = readFully(this.#fd, scratch, 0, LOAD_READ, offset);
    const damaged = (what: string): never => {
      throw new CorruptionError(`the record of object ${oid} at offset ${offset} ${what}`, {
        offset,
        path: this.path,
      });
    };
    if (got < RECORD_HEADER_SIZE) damaged('is cut short');
    const refCount = scratch.readUInt32LE(32);
    const dataLength = readU64(scratch, 24);
    const size = RECORD_HEADER_SIZE + refCount * 4 + dataLength;
    if (offset + size > this.#log.end || readU64(scratch, 0) !== oid)
      damaged('is not a record of it');
    let bytes = scratch;
    if (size > got) {
      bytes = Buffer.allocUnsafe(size);
      scratch.copy(bytes, 0, 0, got);
      if (readFully(this.#fd, bytes, got, size - got, offset + got) < size - got)
        damaged('is cut short');
    }
    const checksum = bytes.readUInt32LE(44);
    const crc = crc32cChain(bytes.subarray(0, 44), bytes.subarray(RECORD_HEADER_SIZE, size));
    if (crc !== checksum) damaged('fails its checksum');
    const dataStart = RECORD_HEADER_SIZE + refCount * 4;
    return {
      oid,
      tid: readU64(bytes, 8),
      prev: readU64(bytes, 16),
      flags: bytes.readUInt16LE(36),
      refs: refCount === 0 ? [] : decodeRefs(bytes, RECORD_HEADER_SIZE, refCount),
      // A copy: decoded values may keep views of it, and the scratch buffer is reused.
      data: Buffer.from(bytes.subarray(dataStart, size)),
    };
  }

  // ---- following the log -------------------------------------------------------------------

  /** Reads transactions other writers appended since the last look. */
  #poll(): void {
    if (this.#appending) return;
    const size = fs.fstatSync(this.#fd).size;
    if (size > this.#log.end) this.#scan(size);
  }

  /**
   * Applies complete transactions from #end up to `size`; returns the first transaction that
   * failed its checks, if any (not repaired here: a writer may still be appending it).
   */
  #scan(size: number) {
    for (;;) {
      if (this.#log.end >= size) return undefined;
      const tx = this.#reader.readTransaction(this.#log.end, size);
      if (!isTransaction(tx)) return { offset: this.#log.end, problem: tx };
      this.#apply(tx);
    }
  }

  #apply(tx: ScannedTransaction): void {
    applyToState(this.#log, tx);
    if (tx.records.length > 0) {
      this.#recent.push({ tid: tx.tid, oids: tx.records.map((record) => record.oid) });
      this.#recentOids += tx.records.length;
      while (this.#recent.length > MAX_RECENT_TRANSACTIONS || this.#recentOids > MAX_RECENT_OIDS) {
        const dropped = this.#recent.shift()!;
        this.#recentOids -= dropped.oids.length;
        this.#knownSince = dropped.tid;
      }
    }
  }

  /**
   * At open: if the log ends in a transaction that fails its checks, decide under the writer
   * lock whether it is a torn tail (cut it off) or damage to committed data (refuse).
   */
  async #recoverTail(): Promise<void> {
    const size = fs.fstatSync(this.#fd).size;
    const bad = this.#scan(size);
    if (bad === undefined) return;
    if (this.readOnly) {
      const verdict = judge(this.#reader, bad.offset, size, bad.problem);
      if (verdict.kind === 'corrupt')
        throw new CorruptionError(verdict.detail, { offset: bad.offset, path: this.path });
      return; // a torn tail (or a writer still appending): read up to it
    }
    await this.#lock.run(
      () => this.#fd,
      async () => this.#catchUpLocked(),
    );
  }

  /** With the writer lock held: read the whole log, cutting off a torn tail. */
  #catchUpLocked(): void {
    const size = fs.fstatSync(this.#fd).size;
    const bad = this.#scan(size);
    if (bad === undefined) return;
    const verdict = judge(this.#reader, bad.offset, size, bad.problem);
    if (verdict.kind === 'corrupt') {
      throw new CorruptionError(verdict.detail, { offset: bad.offset, path: this.path });
    }
    const aside = cutTornTail(this.path, this.#fd, bad.offset, size, this.durability !== 'none');
    this.#reader.invalidate();
    this.#logger(
      `trove: ${this.path}: cut off an incomplete last transaction at offset ${bad.offset} (${size - bad.offset} bytes, never acknowledged); the bytes are kept in ${aside}`,
    );
  }

  // ---- writing -----------------------------------------------------------------------------

  protected async _newOids(count: number): Promise<Oid[]> {
    const oids: Oid[] = [];
    const take = () => {
      while (oids.length < count && this.#oidBlock.next < this.#oidBlock.end)
        oids.push(this.#oidBlock.next++);
    };
    take();
    if (oids.length === count) return oids;
    const want = Math.max(count - oids.length, this.#oidBlockSize);
    this.#oidBlockSize = Math.min(this.#oidBlockSize * 2, MAX_OID_BLOCK);
    await this.#withLock(async () => {
      const first = this.#log.nextOid;
      const high = first + want;
      const { bytes, scanned } = buildTransaction(
        {
          tid: nextTid(this.#log.lastTid),
          status: TxStatus.oids,
          meta: { oidHigh: high },
          records: [],
        },
        this.#log.end,
      );
      // No sync: a reservation only matters once a commit using its oids is durable, and
      // that commit's sync makes the reservation (earlier in the file) durable too.
      await this.#append(bytes, false);
      this.#apply(scanned);
      this.#oidBlock = { next: first, end: high };
    });
    take();
    return oids;
  }

  protected _commit(request: CommitRequest): Promise<Tid> {
    return new Promise<Tid>((resolve, reject) => {
      this.#queue.push({ request, resolve, reject });
      if (this.#flushing === undefined) this.#flushing = this.#flush();
    });
  }

  /** Writes queued commits, one group at a time; a group is whatever queued meanwhile. */
  async #flush(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const group = this.#queue;
        this.#queue = [];
        try {
          await this.#withLock(() => this.#writeGroup(group));
        } catch (error) {
          for (const pending of group) pending.reject(error);
        }
      }
    } finally {
      this.#flushing = undefined;
    }
  }

  /** Runs `fn` holding the writer lock, with the log read up to its end. */
  #withLock<T>(fn: () => Promise<T>): Promise<T> {
    return this.#lock.run(
      () => this.#fd,
      async () => {
        this.#catchUpLocked();
        return fn();
      },
    );
  }

  /** Checks, writes and syncs one group of commits; settles each of them. */
  async #writeGroup(group: PendingCommit[]): Promise<void> {
    const groupStart = this.#log.end;
    const accepted: Array<{ pending: PendingCommit; scanned: ScannedTransaction; bytes: Buffer }> =
      [];
    /** Writes earlier in this group: oid to [offset, tid]. */
    const written = new Map<Oid, [number, Tid]>();
    let tid = this.#log.lastTid;
    let offset = groupStart;
    for (const pending of group) {
      const conflicts = this.#conflicts(pending.request, written);
      if (conflicts.length > 0) {
        pending.reject(new StorageConflictError(conflicts));
        continue;
      }
      tid = nextTid(tid);
      const records: RecordInput[] = pending.request.writes.map((write) => ({
        oid: write.oid,
        tid,
        prev: written.get(write.oid)?.[0] ?? this.#log.index.offset(write.oid),
        flags: 0,
        refs: write.refs,
        data: write.data,
      }));
      const { note, user } = pending.request.meta ?? {};
      const meta = {
        ...(note === undefined ? {} : { note }),
        ...(user === undefined ? {} : { user }),
        ...(offset === groupStart ? {} : { group: groupStart }),
      };
      const { bytes, scanned } = buildTransaction(
        { tid, status: TxStatus.committed, meta, records },
        offset,
      );
      for (const record of scanned.records) written.set(record.oid, [record.offset, tid]);
      accepted.push({ pending, scanned, bytes });
      offset += bytes.length;
    }
    if (accepted.length === 0) return;
    const bytes =
      accepted.length === 1 ? accepted[0]!.bytes : Buffer.concat(accepted.map((a) => a.bytes));
    try {
      await this.#append(bytes, this.durability === 'full');
    } catch (error) {
      for (const { pending } of accepted) pending.reject(error);
      return;
    }
    for (const { pending, scanned } of accepted) {
      this.#apply(scanned);
      this.#commits++;
      pending.resolve(scanned.tid);
    }
  }

  /**
   * Appends `bytes` at the end of the log (and syncs if asked). On failure the file is cut
   * back to where it was, so a failed append leaves nothing behind.
   */
  async #append(bytes: Buffer, sync: boolean): Promise<void> {
    const start = this.#log.end;
    this.#appending = true;
    try {
      await this.#ops.write(this.#fd, bytes, start);
      if (sync) await this.#ops.sync(this.#fd);
    } catch (error) {
      try {
        await this.#ops.truncate(this.#fd, start);
        this.#reader.invalidate();
      } catch (truncateError) {
        this.#logger(
          `trove: ${this.path}: could not cut back a failed append at offset ${start}: ${String(truncateError)}; the next writer will cut it off`,
        );
      }
      throw ioError('appending to', this.path, error);
    } finally {
      this.#appending = false;
    }
  }

  /** The conflicts of a commit against the log and the writes earlier in its group. */
  #conflicts(request: CommitRequest, written: Map<Oid, [number, Tid]>): ConflictInfo[] {
    const conflicts: ConflictInfo[] = [];
    const currentTid = (oid: Oid) => written.get(oid)?.[1] ?? this.#log.index.tid(oid);
    const committed = (oid: Oid): StoredRecord | undefined => {
      const offset = written.get(oid)?.[0] ?? this.#log.index.offset(oid);
      return offset === 0 ? undefined : this.#readCommitted(offset, oid);
    };
    for (const write of request.writes) {
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
    let writtenHere: Set<Oid> | undefined;
    for (const write of request.writes) {
      for (const ref of write.refs) {
        if (this.#log.index.offset(ref) !== 0 || written.has(ref)) continue;
        writtenHere ??= new Set(request.writes.map((w) => w.oid));
        if (!writtenHere.has(ref))
          conflicts.push({ oid: ref, kind: 'read', expectedTid: 0, committed: undefined });
      }
    }
    return conflicts;
  }

  /** A committed record for a conflict report (written earlier in this group or in the log). */
  #readCommitted(offset: number, oid: Oid): StoredRecord | undefined {
    if (offset >= this.#log.end) return undefined; // written earlier in this group: not readable yet
    const record = this.#readRecord(offset, oid);
    return { oid: record.oid, tid: record.tid, data: record.data, refs: record.refs };
  }

  // ---- maintenance ---------------------------------------------------------------------------

  protected async _pack(_keepHistorySince: Tid | undefined): Promise<PackResult> {
    throw new InvalidArgumentError('pack is not available yet');
  }

  protected async *_iterator(fromTid: Tid): AsyncIterable<TransactionRecord> {
    const end = this.#log.end;
    const reader = new LogReader(this.#fd);
    for (let offset = FILE_HEADER_SIZE; offset < end; ) {
      const tx = reader.readTransaction(offset, end);
      if (!isTransaction(tx)) {
        throw new CorruptionError(`the transaction at offset ${offset} fails its checks`, {
          offset,
          path: this.path,
        });
      }
      offset += tx.length;
      if (tx.tid < fromTid || tx.records.length === 0) continue;
      const { note, user } = tx.meta;
      yield {
        tid: tx.tid,
        meta: { ...(note === undefined ? {} : { note }), ...(user === undefined ? {} : { user }) },
        records: tx.records.map((record) => {
          const { oid, tid, data, refs } = this.#readRecord(record.offset, record.oid);
          return { oid, tid, data, refs };
        }),
      };
    }
  }

  protected async _checkpoint(): Promise<void> {
    if (this.readOnly) return;
    this.#poll();
    try {
      saveIndex(
        this.path,
        {
          generation: this.#header.generation,
          coveredOffset: this.#log.end,
          lastTid: this.#log.lastTid,
          nextOid: this.#log.nextOid,
          index: this.#log.index,
        },
        this.durability !== 'none',
      );
    } catch (error) {
      throw ioError('saving the index of', this.path, error);
    }
  }

  protected async _integrityCheck(): Promise<IntegrityReport> {
    this.#poll();
    return checkFile(this.#fd, this.#log.end, this.#log.index);
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

  protected async _close(): Promise<void> {
    // Commits already queued finish first; new ones are refused by the closed check.
    while (this.#flushing !== undefined) await this.#flushing;
    await this.#lock.drain();
    try {
      if (!this.readOnly) {
        try {
          await this._checkpoint();
        } catch (error) {
          // The index is a cache: a failed save costs the next open a scan, nothing more.
          this.#logger(`trove: ${this.path}: could not save the index at close: ${String(error)}`);
        }
      }
    } finally {
      fs.closeSync(this.#fd);
    }
  }
}

/** The scan state a transaction is applied to. */
interface ScanState {
  index: OidIndex;
  end: number;
  lastTid: Tid;
  nextOid: Oid;
}

/** Applies a valid transaction to the index and log position. */
function applyToState(state: ScanState, tx: ScannedTransaction): void {
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

/** True when a valid transaction with tid `lastTid` ends exactly at `offset`. */
function endsTransaction(reader: LogReader, offset: number, lastTid: Tid, size: number): boolean {
  if (offset === FILE_HEADER_SIZE) return lastTid === 0;
  if (offset < FILE_HEADER_SIZE + 8) return false;
  const length = readU64(reader.bytes(offset - 8, 8), 0);
  const start = offset - length;
  if (start < FILE_HEADER_SIZE) return false;
  const tx = reader.readTransaction(start, size);
  return isTransaction(tx) && tx.length === length && tx.tid === lastTid;
}

function crc32cChain(first: Uint8Array, second: Uint8Array): number {
  return crc32c(second, crc32c(first));
}

/** Makes a new directory entry durable (after creating or renaming a file in it). */
export function syncDirectory(directory: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(directory, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Some platforms cannot open or sync a directory; the file's own sync is all they offer.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
