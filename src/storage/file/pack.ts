/**
 * Online pack of a data file: copy what is reachable from the root (following stored refs,
 * so no class is needed) and the history newer than the cut into a new file, then swap it
 * in atomically. Commits go on meanwhile, from this process and others; they are copied in
 * rounds, the last one under the writer lock, right before the swap.
 *
 * The swap: the new file is synced and its index saved; a marker naming the new file is
 * appended to the old one and synced; the new file is renamed over the old path. Handles
 * reading the old file find the marker at its end and reopen the path. If anything fails
 * before the rename, the temporary file is removed (the marker too, if written) and the
 * database is as it was; a packer that dies leaves a temporary file the next open removes.
 *
 * A commit after the pack's snapshot may refer to an object that was unreachable at the
 * snapshot (it held a reference from an older snapshot): such objects are copied too, right
 * before the commit that needs them, so nothing is ever left dangling.
 *
 * @module
 */

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { dirname } from 'node:path';
import fsx from 'fs-native-extensions';
import { BusyError, CorruptionError, StorageIOError, TroveError } from '../../errors.js';
import { afterTimers, nextImmediate, TurnBudget } from '../../util/event-loop.js';
import { type Progress, startProgress } from '../../util/progress.js';
import { wallClockMicros } from '../next-tid.js';
import { keptMeta } from '../transaction-meta.js';
import type { PackResult, Tid } from '../types.js';
import { crc32c } from './checksum.js';
import type { FileOps } from './file-ops.js';
import {
  encodeFileHeader,
  FILE_HEADER_SIZE,
  type FileHeader,
  FORMAT_VERSION,
  isRecordOffset,
  RECORD_HEADER_SIZE,
  readU64,
  TxStatus,
} from './format.js';
import { prepareIndex, publishIndex } from './index-file.js';
import { isTransaction, LogReader, readFully, type TxMeta } from './log-reader.js';
import { OidIndex } from './oid-index.js';
import { OidMarks } from './oid-marks.js';
import { applyToState, type ScanState } from './scan-state.js';
import { type StreamedRecord, writeStreamedTransaction } from './streamed-transaction.js';
import { syncDirectory } from './sync-directory.js';
import { createTemporary, discardTemporary, type TemporaryFile } from './temporary-files.js';
import { buildTransaction } from './tx-builder.js';
import { yieldToWaitingWriters } from './writer-lock.js';

/** What the packer needs from the storage it packs. */
export interface PackHost {
  readonly path: string;
  readonly ops: FileOps;
  /** Whether to fsync (false for durability `none`). */
  readonly sync: boolean;
  readonly progress: boolean | undefined;
  fd(): number;
  header(): FileHeader;
  log(): ScanState;
  /** Reads what other writers appended. */
  poll(): void;
  /**
   * How many times the handle has loaded the log: it loads it again when a commit it had
   * read was cut back (its writer's sync failed), and what was read before may be gone.
   */
  loads(): number;
  /** Runs `fn` holding the writer lock, the log read to its end. */
  withLock<T>(fn: () => Promise<T>): Promise<T>;
  /** Offset of the revision of `oid` current at `tid` (tid <= `tid`), if it existed. */
  revisionAt(oid: number, tid: Tid): number | undefined;
  /** Makes the new file the storage's (which retires the old one once the pack is over). */
  switchTo(fd: number, header: FileHeader, state: ScanState): void;
  /** Reports what went wrong after the swap (the index not saved): the pack is done. */
  warn(message: string): void;
}

/** Records up to this size are copied through memory, larger ones streamed. */
const SMALL_RECORD = 1024 * 1024;
/** Bytes of records gathered into one packed transaction. */
const BATCH_BYTES = 8 * 1024 * 1024;
/**
 * Records gathered into one packed transaction at most: one of 300,000 small records was
 * written in one stretch of the event loop, a quarter of a second.
 */
const BATCH_RECORDS = 16_384;
/** The tail is copied without the lock until what is left is this small. */
const FINAL_TAIL_BYTES = 1024 * 1024;
const MAX_UNLOCKED_ROUNDS = 8;

/** How long a pack lets waiting writers go first before it takes the writer lock. */
const YIELD_LIMIT_MS = 1000;

/** Milliseconds of a turn of the event loop the pack takes before it lets others have one. */
const TURN_MS = 10;
/**
 * Objects or transactions handled between looks at the clock: few, as one may cost much
 * (an object's revisions since the cut, a transaction of many records).
 */
const STEPS_PER_LOOK = 16;

/** A record read for copying: header fields, refs, and its data or where the data is. */
interface RawRecord {
  readonly oid: number;
  readonly tid: Tid;
  readonly flags: number;
  readonly refs: number[];
  readonly source: StreamedRecord['source'];
}

/** Reads the record at `offset` of `fd` for copying, verifying its checksum. */
function readRaw(fd: number, offset: number, path: string): RawRecord {
  const head = Buffer.allocUnsafe(RECORD_HEADER_SIZE);
  const damaged = (): never => {
    throw new CorruptionError(`the record at offset ${offset} fails its checks; pack stopped`, {
      offset,
      path,
    });
  };
  if (readFully(fd, head, 0, RECORD_HEADER_SIZE, offset) < RECORD_HEADER_SIZE) damaged();
  const refCount = head.readUInt32LE(32);
  const dataLength = readU64(head, 24);
  const refBytes = Buffer.allocUnsafe(refCount * 4);
  if (readFully(fd, refBytes, 0, refBytes.length, offset + RECORD_HEADER_SIZE) < refBytes.length)
    damaged();
  const dataOffset = offset + RECORD_HEADER_SIZE + refBytes.length;
  let crc = crc32c(refBytes, crc32c(head.subarray(0, 44)));
  let source: StreamedRecord['source'];
  if (dataLength <= SMALL_RECORD) {
    const data = Buffer.allocUnsafe(dataLength);
    if (readFully(fd, data, 0, dataLength, dataOffset) < dataLength) damaged();
    crc = crc32c(data, crc);
    source = { bytes: data };
  } else {
    const piece = Buffer.allocUnsafe(8 * 1024 * 1024);
    for (let done = 0; done < dataLength; ) {
      const n = Math.min(piece.length, dataLength - done);
      if (readFully(fd, piece, 0, n, dataOffset + done) < n) damaged();
      crc = crc32c(piece.subarray(0, n), crc);
      done += n;
    }
    source = { fd, offset: dataOffset, length: dataLength };
  }
  if (crc !== head.readUInt32LE(44)) damaged();
  const refs = new Array<number>(refCount);
  for (let i = 0; i < refCount; i++) refs[i] = refBytes.readUInt32LE(i * 4);
  return {
    oid: readU64(head, 0),
    tid: readU64(head, 8),
    flags: head.readUInt16LE(36),
    refs,
    source,
  };
}

/** Packs the host's file. */
export async function packFile(
  host: PackHost,
  keepHistorySince: Tid | undefined,
): Promise<PackResult> {
  host.poll();
  const oldFd = host.fd();
  // Byte 1 of the data file marks a running pack: one at a time, across processes.
  if (!fsx.tryLock(oldFd, 1, 1)) throw new BusyError(`another pack of ${host.path} is running`);
  let temp: TemporaryFile | undefined;
  let renamed = false;
  const bar = startProgress('trove: packing', host.log().end * 2, host.progress);
  try {
    temp = createTemporary(host.path, 'pack');
    return await copyAndSwap(host, oldFd, temp, keepHistorySince, bar, () => {
      renamed = true;
    });
  } catch (error) {
    if (!renamed && temp !== undefined) discardTemporary(temp);
    if (error instanceof TroveError) throw error;
    const code = (error as { code?: string }).code;
    throw new StorageIOError(
      `packing ${host.path} failed${code ? ` (${code})` : ''}; the database is unchanged`,
      {
        cause: error,
      },
    );
  } finally {
    bar.stop();
    fsx.unlock(oldFd, 1, 1);
  }
}

async function copyAndSwap(
  host: PackHost,
  oldFd: number,
  temp: TemporaryFile,
  keepHistorySince: Tid | undefined,
  bar: Progress,
  onRenamed: () => void,
): Promise<PackResult> {
  // A pack is long work: it lets the event loop run between its phases, even when every
  // step it takes completes at once (small files, no sync).
  await nextImmediate();
  const newFd = temp.fd;
  const start = host.log();
  const loads = host.loads();
  // What the pack copies from the old file is what the handle had read; if the handle loads
  // the log again meanwhile, some of that was cut back (a commit whose sync failed, maybe
  // rewritten in place by another since): copied on, it would store a refused commit and
  // leave out the one that took its place.
  const checkLogKept = (): void => {
    if (host.loads() !== loads) {
      throw new BusyError(
        `the log of ${host.path} was cut back while the pack copied it (a commit failed); the pack stopped, try it again`,
      );
    }
  };
  /**
   * Before damage found in the old file is reported: it may be a commit the handle had read,
   * cut back since (the handle reads the log again at its next look, and checkLogKept tells).
   */
  const damageOrCutBack = (): void => {
    try {
      host.poll();
    } catch {
      return; // (The handle found damage itself: the pack's error says where.)
    }
    checkLogKept();
  };
  /** readRaw of the old file; see damageOrCutBack. */
  const readOld = (offset: number): RawRecord => {
    try {
      return readRaw(oldFd, offset, host.path);
    } catch (error) {
      damageOrCutBack();
      throw error;
    }
  };
  const snapshot = start.lastTid;
  const snapshotEnd = start.end;
  bar.setTotal(snapshotEnd * 2);
  const cut =
    keepHistorySince === undefined
      ? snapshot
      : Math.max(Math.min(keepHistorySince, snapshot), host.header().historyHorizon);

  // Which objects are reachable from the root in any revision the pack keeps (the one
  // current at the cut and every later one up to the snapshot): a historical read after
  // the cut must find every object it could reach then, even one unreachable now.
  // The walk and the copies read synchronously: the event loop gets a turn between
  // stretches of TURN_MS (at a million objects, each phase held it for a second or two).
  const budget = new TurnBudget(TURN_MS);
  let steps = 0;
  const turn = async (): Promise<void> => {
    if (++steps % STEPS_PER_LOOK === 0 && budget.isUp()) await afterTimers();
  };
  const reachable = new OidMarks();
  const existing = new OidMarks();
  let existingCount = 0;
  for (const oid of start.index.oids()) {
    await turn();
    if (host.revisionAt(oid, snapshot) !== undefined) {
      existing.add(oid);
      existingCount++;
    }
  }
  const head = Buffer.allocUnsafe(RECORD_HEADER_SIZE);
  // Past the revision revisionAt found (checked as far as it walked), the walk reads record
  // headers and refs only, unchecked (a checksum needs the data too; the copy below checks
  // the records it copies): what it reads must lie in the log and lead back along the
  // object's revisions, or a damaged header sends it round in a circle.
  const keptRefs = (oid: number): number[] => {
    const refs: number[] = [];
    let newer = snapshotEnd;
    for (let offset = host.revisionAt(oid, snapshot) ?? 0; offset !== 0; ) {
      const damaged = (): never => {
        throw new CorruptionError(
          `the revisions of object ${oid} are damaged at offset ${offset}; pack stopped`,
          { offset, path: host.path },
        );
      };
      if (!isRecordOffset(offset, newer)) damaged();
      if (readFully(oldFd, head, 0, RECORD_HEADER_SIZE, offset) < RECORD_HEADER_SIZE) damaged();
      const count = head.readUInt32LE(32);
      if (readU64(head, 0) !== oid || offset + RECORD_HEADER_SIZE + count * 4 > snapshotEnd) {
        damaged();
      }
      const bytes = Buffer.allocUnsafe(count * 4);
      readFully(oldFd, bytes, 0, bytes.length, offset + RECORD_HEADER_SIZE);
      for (let i = 0; i < count; i++) refs.push(bytes.readUInt32LE(i * 4));
      if (readU64(head, 8) <= cut) break;
      newer = offset;
      offset = readU64(head, 16);
    }
    return refs;
  };
  let kept = 0;
  const stack: number[] = [];
  const mark = (oid: number) => {
    if (existing.has(oid) && reachable.add(oid)) {
      kept++;
      stack.push(oid);
    }
  };
  mark(0);
  while (stack.length > 0) {
    await turn();
    for (const ref of keptRefs(stack.pop()!)) mark(ref);
  }

  const generation = randomBytes(8).readBigUInt64LE(0);
  const header: FileHeader = {
    version: FORMAT_VERSION,
    generation,
    createdAt: wallClockMicros(),
    historyHorizon: cut,
  };
  fs.writeSync(newFd, encodeFileHeader(header), 0, FILE_HEADER_SIZE, 0);
  const state: ScanState = {
    index: new OidIndex(),
    end: FILE_HEADER_SIZE,
    lastTid: 0,
    nextOid: start.nextOid,
  };
  let written = 0;
  /** The checksum of the last transaction written to the new file, for its index. */
  let lastChecksum = 0;
  const writeTx = async (tid: Tid, status: number, meta: TxMeta, records: StreamedRecord[]) => {
    const tx = await writeStreamedTransaction(host.ops, newFd, state.end, {
      tid,
      status,
      meta,
      records,
    });
    applyToState(state, tx);
    lastChecksum = tx.checksum;
    written += records.length;
  };
  const copy = (raw: RawRecord): StreamedRecord => ({
    oid: raw.oid,
    tid: raw.tid,
    prev: state.index.offset(raw.oid),
    flags: raw.flags,
    refs: raw.refs,
    source: raw.source,
  });

  // The base: each reachable object as it was at the cut.
  let batch: StreamedRecord[] = [];
  let batchBytes = 0;
  for (const oid of reachable.oids()) {
    await turn();
    const offset = host.revisionAt(oid, cut);
    if (offset === undefined) continue; // created after the cut: comes with its transaction
    const record = copy(readOld(offset));
    batch.push(record);
    batchBytes += 'bytes' in record.source ? record.source.bytes.byteLength : SMALL_RECORD;
    if (batchBytes >= BATCH_BYTES || batch.length >= BATCH_RECORDS) {
      await writeTx(cut, TxStatus.packed, {}, batch);
      batch = [];
      batchBytes = 0;
      bar.update(state.end);
    }
  }
  if (batch.length > 0 || state.end === FILE_HEADER_SIZE)
    await writeTx(cut, TxStatus.packed, {}, batch);

  // History after the cut, up to the snapshot: each transaction, reachable objects only.
  let oldRecords = 0;
  const reader = new LogReader(oldFd);
  for (let offset = FILE_HEADER_SIZE; offset < snapshotEnd; ) {
    await turn();
    const tx = reader.readTransaction(offset, snapshotEnd);
    if (!isTransaction(tx)) {
      damageOrCutBack();
      throw new CorruptionError(
        `the transaction at offset ${offset} fails its checks; pack stopped`,
        {
          offset,
          path: host.path,
        },
      );
    }
    offset += tx.length;
    oldRecords += tx.records.length;
    if (tx.tid <= cut || tx.records.length === 0) continue;
    const records = tx.records
      .filter((record) => reachable.has(record.oid))
      .map((record) => copy(readOld(record.offset)));
    if (records.length > 0) await writeTx(tx.tid, tx.status, keptMeta(tx.meta), records);
    bar.update(snapshotEnd + offset);
  }
  const historyWritten = written;

  // Commits made since the snapshot, in rounds; the last under the lock.
  const copyTail = async (from: number, to: number) => {
    const tail = new LogReader(oldFd);
    for (let offset = from; offset < to; ) {
      const tx = tail.readTransaction(offset, to);
      if (!isTransaction(tx)) {
        damageOrCutBack();
        throw new CorruptionError(
          `the transaction at offset ${offset} fails its checks; pack stopped`,
          {
            offset,
            path: host.path,
          },
        );
      }
      offset += tx.length;
      if (tx.records.length === 0) continue;
      const records = tx.records.map((record) => readOld(record.offset));
      await rescue(records);
      await writeTx(tx.tid, tx.status, keptMeta(tx.meta), records.map(copy));
    }
  };
  // Objects the tail refers to that the pack left out: copy them (as of the snapshot) first.
  const rescue = async (records: RawRecord[]) => {
    const here = new Set(records.map((record) => record.oid));
    const missing: RawRecord[] = [];
    const queue = records.flatMap((record) => record.refs);
    const seen = new Set<number>();
    while (queue.length > 0) {
      const oid = queue.pop()!;
      if (here.has(oid) || seen.has(oid) || state.index.offset(oid) !== 0) continue;
      seen.add(oid);
      const offset = host.revisionAt(oid, snapshot);
      if (offset === undefined) continue;
      const raw = readOld(offset);
      missing.push(raw);
      for (const ref of raw.refs) queue.push(ref);
    }
    // At the tid of the transaction before it (tids never go back along a file: it may be
    // a tail commit's, past the snapshot); the records keep their own, older, tids.
    if (missing.length > 0) {
      await writeTx(Math.max(snapshot, state.lastTid), TxStatus.packed, {}, missing.map(copy));
    }
  };

  let copied = snapshotEnd;
  for (let round = 0; round < MAX_UNLOCKED_ROUNDS; round++) {
    await nextImmediate();
    host.poll();
    checkLogKept();
    const end = host.log().end;
    if (end - copied < FINAL_TAIL_BYTES) break;
    await copyTail(copied, end);
    copied = end;
  }

  let bytesBefore = 0;
  // Writers of other processes kept waiting go first: the swap holds the lock a while.
  await yieldToWaitingWriters(oldFd, YIELD_LIMIT_MS);
  await host.withLock(async () => {
    checkLogKept();
    const log = host.log();
    await copyTail(copied, log.end);
    // The new file ends with the oid high-water mark, at the last tid (a pack is not a
    // transaction: it makes no tid of its own).
    const finalTid = log.lastTid;
    await writeTx(finalTid, TxStatus.oids, { oidHigh: log.nextOid }, []);
    if (host.sync) await host.ops.sync(newFd);
    bytesBefore = log.end;
    const marker = buildTransaction(
      {
        tid: finalTid,
        status: TxStatus.moved,
        meta: { generation: generation.toString() },
        records: [],
      },
      log.end,
    );
    // Made last before the swap: nothing but the swap's failure may leave it unpublished.
    const index = prepareIndex(
      host.path,
      {
        generation,
        coveredOffset: state.end,
        lastTid: state.lastTid,
        lastChecksum,
        nextOid: state.nextOid,
        index: state.index,
      },
      host.sync,
    );
    try {
      // The old file's commits first (those of durability 'os' may not be synced yet): a
      // power loss could otherwise keep the marker and lose a page of a commit before it,
      // and an open would take that for damage to committed data, not a torn tail.
      if (host.sync) await host.ops.sync(oldFd);
      await host.ops.write(oldFd, marker.bytes, log.end);
      if (host.sync) await host.ops.sync(oldFd);
      fs.renameSync(temp.path, host.path);
    } catch (error) {
      // Undo the marker (nothing was renamed): the old file is exactly as it was.
      discardTemporary(index);
      try {
        await host.ops.truncate(oldFd, log.end);
        if (host.sync) await host.ops.sync(oldFd);
      } catch (undoError) {
        // The swap's failure is the one to report. A marker left after the log, whole or
        // not, names no file at the path: the next writer cuts it off, as a dead packer's.
        host.warn(
          `trove: ${host.path}: the failed pack's marker could not be taken back (the next commit cuts it off): ${String(undoError)}`,
        );
      }
      throw error;
    }
    onRenamed();
    // The new file is the data file now: nothing may keep this handle from switching to it
    // and freeing its writer lock, the one other writers take (left held, every writer of
    // every process waited on it until this process ended). The index is a cache, which
    // the next open rebuilds if it cannot be published.
    try {
      publishIndex(host.path, index);
    } catch (error) {
      host.warn(`trove: ${host.path}: the packed file's index could not be saved: ${error}`);
    }
    // The rename durable before any writer can take the new file's lock and commit there:
    // a power loss could otherwise undo the rename, and with it their commits. If the disk
    // refuses (EIO), the pack is done all the same (the lock must be freed, as above): it is
    // reported, as the commits' own syncs will likely fail too.
    if (host.sync) {
      try {
        syncDirectory(dirname(host.path));
      } catch (error) {
        host.warn(
          `trove: ${host.path}: the directory could not be synced after the pack's rename (the packed file's name may not survive a power loss): ${error}`,
        );
      }
    }
    fsx.unlock(newFd, 0, 1);
    host.switchTo(newFd, header, { ...state });
  });
  bar.finish();
  return {
    objectsKept: kept,
    objectsRemoved: existingCount - kept,
    revisionsRemoved: Math.max(0, oldRecords - historyWritten),
    bytesBefore,
    bytesAfter: state.end,
  };
}
