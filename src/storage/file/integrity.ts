/**
 * The integrity check of a data file: every transaction's checksums and structure, every
 * record's checksum, each object's chain of revisions, agreement of the in-memory index with
 * the log, and refs that point at objects without a record. It reports; it never throws for
 * damage it can read past.
 *
 * @module
 */

import type { IntegrityFailure } from '../../errors.js';
import { afterTimers, TurnBudget } from '../../util/event-loop.js';
import type { IntegrityReport } from '../storage.js';
import { crc32c } from './checksum.js';
import {
  decodeRecordHeader,
  FILE_HEADER_SIZE,
  RECORD_HEADER_SIZE,
  type RecordHeader,
  readU32,
  readU64,
  recordChecksum,
  recordSize,
  TxStatus,
} from './format.js';
import { isTransaction, LogReader, readFully } from './log-reader.js';
import { OidIndex } from './oid-index.js';
import { findNextTransaction } from './recovery.js';

/** Records larger than this are checked in pieces. */
const PIECE = 8 * 1024 * 1024;

/**
 * Whether the record at `offset` (its header says how long it is) passes its checksum, read
 * in pieces, never whole (it may be a blob of gigabytes).
 *
 * @internal
 */
export function checkRecordAt(
  fd: number,
  offset: number,
  refCount: number,
  dataLength: number,
): boolean {
  const refsEnd = RECORD_HEADER_SIZE + refCount * 4;
  const head = Buffer.allocUnsafe(refsEnd);
  if (readFully(fd, head, 0, refsEnd, offset) < refsEnd) return false;
  let crc = recordChecksum(head, 0, [head.subarray(RECORD_HEADER_SIZE)]);
  const piece = Buffer.allocUnsafe(Math.min(PIECE, Math.max(dataLength, 1)));
  for (let done = 0; done < dataLength; ) {
    const length = Math.min(piece.length, dataLength - done);
    if (readFully(fd, piece, 0, length, offset + refsEnd + done) < length) return false;
    crc = crc32c(piece.subarray(0, length), crc);
    done += length;
  }
  return crc === head.readUInt32LE(44);
}

/**
 * The header of the record at `at` (in a transaction `reader` has just read) if the record
 * passes its checksum. Records up to this size are checked in the reader's window, which
 * holds them already; larger ones are read in pieces.
 */
const WINDOW_RECORD = 1024 * 1024;

function checkedRecord(reader: LogReader, at: number): RecordHeader | undefined {
  const head = reader.bytes(at, RECORD_HEADER_SIZE);
  if (head.length < RECORD_HEADER_SIZE) return undefined;
  const record = decodeRecordHeader(head, 0);
  const size = recordSize(record.dataLength, record.refCount);
  if (size > WINDOW_RECORD) {
    return checkRecordAt(reader.fd, at, record.refCount, record.dataLength) ? record : undefined;
  }
  const bytes = reader.bytes(at, size);
  if (bytes.length < size) return undefined;
  const crc = recordChecksum(bytes, 0, [bytes.subarray(RECORD_HEADER_SIZE)]);
  return crc === record.checksum ? record : undefined;
}

/** Milliseconds of a turn of the event loop the check takes before it lets others have one. */
const TURN_MS = 10;
/** Records or objects checked between looks at the clock. */
const OBJECTS_PER_LOOK = 1024;

/**
 * The refs of the record at `offset` (checked already), read again from the file: a check
 * of a large file kept an array of them for every object, some 300 bytes an object.
 */
function refsAt(
  fd: number,
  offset: number,
  record: { oid: number; tid: number; end: number },
  scratch: Buffer,
): number[] | undefined {
  // The bytes may have changed since they were checked: a commit of another writer whose
  // sync failed is cut back, and another written there. Such a record is not judged again.
  if (readFully(fd, scratch, 0, RECORD_HEADER_SIZE, offset) < RECORD_HEADER_SIZE) return undefined;
  const count = readU32(scratch, 32);
  const bytes = count * 4;
  if (
    readU64(scratch, 0) !== record.oid ||
    readU64(scratch, 8) !== record.tid ||
    offset + RECORD_HEADER_SIZE + bytes > record.end
  ) {
    return undefined;
  }
  const into = bytes <= scratch.length ? scratch : Buffer.allocUnsafe(bytes);
  if (readFully(fd, into, 0, bytes, offset + RECORD_HEADER_SIZE) < bytes) return undefined;
  const refs = new Array<number>(count);
  for (let i = 0; i < count; i++) refs[i] = readU32(into, i * 4);
  return refs;
}

/**
 * Checks the log of `fd` up to `end` against `index`, giving the event loop a turn every few
 * milliseconds (a check of a large file ran for seconds without one). `index` may move on
 * meanwhile, with this handle's commits: its entries between `end` and where the log has
 * come to (`logEnd()`) are not this check's; one past that is damage. After each turn it
 * calls `goOn`, which throws to end the check (the storage was closed: a close would
 * otherwise wait for a check of a large file to the end).
 */
export async function checkFile(
  fd: number,
  end: number,
  index: OidIndex,
  logEnd: () => number,
  goOn: () => void,
): Promise<IntegrityReport> {
  const writtenSince = (offset: number) => offset >= end && offset < logEnd();
  const budget = new TurnBudget(TURN_MS);
  const turn = async () => {
    await afterTimers();
    goOn();
  };
  const failures: IntegrityFailure[] = [];
  const reader = new LogReader(fd);
  const latest = new OidIndex();
  /** Byte ranges of damage reported already: a revision naming one as its previous is not. */
  // Noted in the order of the scan, so by offset: found by a binary search (a file with much
  // damage had each revision compared with every range).
  const reported: [number, number][] = [];
  const isReported = (at: number) => {
    let low = 0;
    let high = reported.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (reported[middle]![0] <= at) low = middle + 1;
      else high = middle;
    }
    return low > 0 && at < reported[low - 1]![1];
  };
  const recordOffsets: number[] = [];
  const addOffset = (_oid: number, at: number) => {
    recordOffsets.push(at);
  };
  let previousTid: number | undefined;
  let offset = FILE_HEADER_SIZE;
  while (offset < end) {
    if (budget.isUp()) await turn();
    // Where its records are, and nothing more: a transaction of millions of records read as
    // record objects took some 200 bytes a record while it was checked.
    recordOffsets.length = 0;
    const tx = reader.readTransaction(offset, end, addOffset);
    if (!isTransaction(tx)) {
      failures.push({
        kind: tx.problem === 'header' ? 'structure' : 'checksum',
        offset,
        detail: `the transaction at offset ${offset} fails its checks (${tx.problem})`,
      });
      const next = findNextTransaction(reader, offset + 1, end);
      reported.push([offset, next?.offset ?? end]);
      if (next === undefined) break;
      offset = next.offset;
      continue;
    }
    // A read of the past takes the newest revision at or before a tid: tids that go back
    // along the file would make it take the wrong one.
    if (
      previousTid !== undefined &&
      (tx.tid < previousTid || (tx.tid === previousTid && tx.status === TxStatus.committed))
    ) {
      failures.push({
        kind: 'structure',
        offset,
        detail: `the transaction at offset ${offset} has tid ${tx.tid}, not above the tid ${previousTid} of the transaction before it`,
      });
    }
    previousTid = tx.tid;
    for (let i = 0; i < recordOffsets.length; i++) {
      // A large transaction (a bulk commit, a pack's) gives turns within it too.
      if (i % OBJECTS_PER_LOOK === OBJECTS_PER_LOOK - 1 && budget.isUp()) await turn();
      const at = recordOffsets[i]!;
      const record = checkedRecord(reader, at);
      if (record === undefined) {
        // (The file may have been cut back under it since: another writer's failed sync.)
        const head = reader.bytes(at, 8);
        const oid = head.length === 8 ? readU64(head, 0) : undefined;
        failures.push({
          kind: 'checksum',
          ...(oid === undefined ? {} : { oid }),
          offset: at,
          detail: `the record of object ${oid ?? '(unreadable)'} at offset ${at} fails its checksum`,
        });
        reported.push([at, at + 1]);
        continue;
      }
      // Reads of the past follow `prev` from the newest revision back: each must lead to the
      // revision before, which the scan met last (a damaged one is reported already).
      // (Equal tids are a pack's: one that keeps history can copy a revision twice.)
      const before = latest.offset(record.oid);
      if (
        (record.prev !== before && !isReported(record.prev)) ||
        (before !== 0 && record.tid < latest.tid(record.oid))
      ) {
        failures.push({
          kind: 'revision-chain',
          oid: record.oid,
          offset: at,
          detail: `the record of object ${record.oid} at offset ${at} (tid ${record.tid}) names offset ${record.prev} as its previous revision; the log has offset ${before} (tid ${before === 0 ? 'none' : latest.tid(record.oid)})`,
        });
      }
      latest.set(record.oid, at, record.tid);
    }
    offset = tx.offset + tx.length;
  }

  const scratch = Buffer.allocUnsafe(4096);
  let compared = 0;
  for (const oid of latest.oids()) {
    if (++compared % OBJECTS_PER_LOOK === 0 && budget.isUp()) await turn();
    // Written again since the check began: the index is ahead of the log the check read.
    if (writtenSince(index.offset(oid))) continue;
    if (index.offset(oid) !== latest.offset(oid)) {
      failures.push({
        kind: 'index',
        oid,
        offset: latest.offset(oid),
        detail: `the index has offset ${index.offset(oid)} for object ${oid}, the log ${latest.offset(oid)}`,
      });
    } else if (index.tid(oid) !== latest.tid(oid)) {
      // Conflict checks compare with this tid: a wrong one fails every commit of the object.
      failures.push({
        kind: 'index',
        oid,
        offset: latest.offset(oid),
        detail: `the index has tid ${index.tid(oid)} for object ${oid}, the log ${latest.tid(oid)}`,
      });
    }
    const found = { oid, tid: latest.tid(oid), end };
    for (const ref of refsAt(fd, latest.offset(oid), found, scratch) ?? []) {
      if (latest.offset(ref) === 0 && index.offset(ref) === 0) {
        failures.push({
          kind: 'dangling-ref',
          oid,
          detail: `object ${oid} refers to object ${ref}, which has no record`,
        });
      }
    }
  }
  for (const oid of index.oids()) {
    if (++compared % OBJECTS_PER_LOOK === 0 && budget.isUp()) await turn();
    // Made since the check began (or written again): not in the log the check read.
    if (latest.offset(oid) === 0 && !writtenSince(index.offset(oid))) {
      failures.push({
        kind: 'index',
        oid,
        offset: index.offset(oid),
        detail: `the index lists object ${oid}, which has no valid record in the log`,
      });
    }
  }
  return { ok: failures.length === 0, failures };
}
