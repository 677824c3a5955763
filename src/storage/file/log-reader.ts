/**
 * Reading the transaction log: validating and parsing transactions at given offsets, with a
 * read window so a sequential scan reads the file in large pieces rather than a few bytes at
 * a time. Reading never repairs anything; deciding what a bad transaction means is
 * recovery's job.
 *
 * @module
 */

import * as fs from 'node:fs';
import { Packr } from 'msgpackr';
import { MAX_OID } from '../oid-limit.js';
import { crc32c } from './checksum.js';
import { MAX_IO } from './file-ops.js';
import {
  decodeTxHeader,
  RECORD_HEADER_SIZE,
  readU32,
  readU64,
  TX_HEADER_SIZE,
  TX_TRAILER_SIZE,
  type TxHeader,
  TxStatus,
} from './format.js';

/** Descriptive data stored in a transaction (msgpack map; unknown keys are kept). */
export interface TxMeta {
  /** Commit time, µs since 1970. */
  readonly time?: number;
  readonly note?: string;
  readonly user?: string;
  /** For oid reservations: the new oid high-water mark. */
  readonly oidHigh?: number;
  /**
   * Where the bytes not yet durable when this transaction was written begin, when that is
   * not this transaction: the first of its group commit, or for an oid reservation, the
   * transactions not yet durable before it. Recovery uses it to tell a torn tail from damage.
   */
  readonly group?: number;
  /** Written without a sync (durability other than `full`): it may not be durable yet. */
  readonly nosync?: boolean;
  readonly [key: string]: unknown;
}

const metaPackr = new Packr({ useRecords: false });

/** Encodes transaction metadata. */
export function encodeMeta(meta: TxMeta): Buffer {
  return metaPackr.pack(meta);
}

/** One data record of a scanned transaction. */
export interface ScannedRecord {
  readonly oid: number;
  readonly tid: number;
  /** Offset of the record header in the file. */
  readonly offset: number;
  readonly prev: number;
  readonly flags: number;
  readonly dataLength: number;
  readonly refCount: number;
}

/** Receives each record of a scanned transaction instead of a record object. */
export type RecordSink = (oid: number, offset: number, tid: number) => void;

/** A transaction that passed its checks. */
export interface ScannedTransaction {
  readonly offset: number;
  readonly length: number;
  readonly tid: number;
  readonly status: number;
  readonly meta: TxMeta;
  readonly records: readonly ScannedRecord[];
  /**
   * The body checksum in its trailer: what tells it from another transaction written in its
   * place with the same tid and length (see FileStorage#tailIntact).
   */
  readonly checksum: number;
}

/** Why a transaction at an offset could not be read. */
export interface ScanProblem {
  /**
   * `incomplete`: the file ends before the transaction does (or before its header).
   * `header`: the header checksum or fields are wrong.
   * `body`: the header is sane but the body checksum, trailer or record layout is wrong.
   */
  readonly problem: 'incomplete' | 'header' | 'body';
  /** The header, when it was readable. */
  readonly header?: TxHeader;
}

export type ScanResult = ScannedTransaction | ScanProblem;

/** True for a scan result that is a transaction. */
export function isTransaction(result: ScanResult): result is ScannedTransaction {
  return (result as ScanProblem).problem === undefined;
}

/** Bytes of the buffer for small reads past the window. */
export const PEEK_SIZE = 4096;
/** Largest window for sequential reads. */
const WINDOW = 4 * 1024 * 1024;
/**
 * The first window after a jump: past the log's end lies preallocated space (zeros up to
 * megabytes), so a look for one new transaction must not read a whole large window.
 */
const FIRST_WINDOW = 16 * 1024;
/** Transactions larger than this are checksummed in pieces instead of read whole. */
const WHOLE_READ_LIMIT = 64 * 1024 * 1024;
const CHUNK = 8 * 1024 * 1024;

/** Reads exactly `length` bytes at `position` into `target`; returns bytes read. */
export function readFully(
  fd: number,
  target: Buffer,
  targetOffset: number,
  length: number,
  position: number,
): number {
  let done = 0;
  while (done < length) {
    const ask = Math.min(length - done, MAX_IO);
    const n = fs.readSync(fd, target, targetOffset + done, ask, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/**
 * The CRC-32C of `length` bytes of `fd` at `offset`, read a piece at a time (of CHUNK, or
 * less when less is asked for); undefined if the file ends first.
 */
export function crc32cOfFile(fd: number, offset: number, length: number): number | undefined {
  const chunk = Buffer.allocUnsafe(Math.min(CHUNK, length));
  let crc = 0;
  for (let done = 0; done < length; ) {
    const n = Math.min(chunk.length, length - done);
    if (readFully(fd, chunk, 0, n, offset + done) < n) return undefined;
    crc = crc32c(chunk.subarray(0, n), crc);
    done += n;
  }
  return crc;
}

export class LogReader {
  readonly fd: number;
  #window: Buffer = Buffer.allocUnsafe(0);
  #windowStart = 0;
  #windowLength = 0;
  /** The size of the next window read: doubles while reads follow on, up to WINDOW. */
  #nextWindow = FIRST_WINDOW;
  /** For small reads past the window (headers, a look at the log's end). */
  readonly #peek = Buffer.allocUnsafe(PEEK_SIZE);

  constructor(fd: number) {
    this.fd = fd;
  }

  /** The bytes [position, position + length) read from the file now, bypassing the window. */
  fresh(position: number, length: number): Buffer {
    const bytes = Buffer.alloc(length);
    return bytes.subarray(0, readFully(this.fd, bytes, 0, length, position));
  }

  /**
   * True when no transaction starts at `position` (yet): the file ends there, or the first
   * `length` bytes there (a transaction header's by default; as many as there are, up to
   * PEEK_SIZE) are zeros, preallocated space. Read from the file now, bypassing the window.
   */
  nothingAt(position: number, length = TX_HEADER_SIZE): boolean {
    const peek = this.#peek;
    const n = readFully(this.fd, peek, 0, Math.min(length, PEEK_SIZE), position);
    for (let i = 0; i < n; i++) if (peek[i] !== 0) return false;
    return true;
  }

  /** The header at `offset`, read from the file now; undefined if it is short or bad. */
  headerAt(offset: number): TxHeader | undefined {
    const n = readFully(this.fd, this.#peek, 0, TX_HEADER_SIZE, offset);
    return n < TX_HEADER_SIZE ? undefined : decodeTxHeader(this.#peek, 0);
  }

  /** The metadata of the transaction at `offset` (its header and meta only are read). */
  metaAt(offset: number): TxMeta | undefined {
    const header = this.headerAt(offset);
    if (header === undefined) return undefined;
    if (header.metaLength === 0) return {};
    try {
      const decoded = metaPackr.unpack(this.fresh(offset + TX_HEADER_SIZE, header.metaLength));
      return typeof decoded === 'object' && decoded !== null ? (decoded as TxMeta) : undefined;
    } catch {
      return undefined;
    }
  }

  /** Forgets buffered bytes (after the file was truncated or rewritten). */
  invalidate(): void {
    this.#windowLength = 0;
    this.#nextWindow = FIRST_WINDOW;
  }

  /**
   * The bytes [position, position + length) as a buffer view, valid until the next call.
   * Returns fewer bytes if the file ends first.
   */
  bytes(position: number, length: number): Buffer {
    const end = position + length;
    if (position >= this.#windowStart && end <= this.#windowStart + this.#windowLength) {
      return this.#window.subarray(position - this.#windowStart, end - this.#windowStart);
    }
    // A read that moves on from the window (a scan) gets a larger one than a jump.
    const follows =
      this.#windowLength > 0 &&
      position >= this.#windowStart &&
      position <= this.#windowStart + this.#windowLength;
    this.#nextWindow = follows ? Math.min(this.#nextWindow * 2, WINDOW) : FIRST_WINDOW;
    const size = Math.max(length, this.#nextWindow);
    if (this.#window.length < size) this.#window = Buffer.allocUnsafe(size);
    const read = readFully(this.fd, this.#window, 0, size, position);
    this.#windowStart = position;
    this.#windowLength = read;
    return this.#window.subarray(0, Math.min(read, length));
  }

  /** Reads and checks the transaction at `offset` of a file of `fileSize` bytes. */
  readTransaction(offset: number, fileSize: number, onRecord?: RecordSink): ScanResult {
    if (offset + TX_HEADER_SIZE > fileSize) return { problem: 'incomplete' };
    const head = this.bytes(offset, TX_HEADER_SIZE);
    if (head.length < TX_HEADER_SIZE) return { problem: 'incomplete' };
    const header = decodeTxHeader(head, 0);
    if (header === undefined) return { problem: 'header' };
    if (offset + header.length > fileSize) return { problem: 'incomplete', header };
    // The length again at the end, read first: where it is not written yet (the file ends
    // before it, or zeros of preallocated space), the transaction is still being written or
    // never was whole. A look at a large write in progress reads 8 bytes, not all of it.
    const again = this.#lengthAt(offset + header.length - 8);
    if (again === undefined) return { problem: 'incomplete', header };
    if (again !== header.length) return { problem: 'body', header };
    if (header.length > WHOLE_READ_LIMIT) return this.#readLarge(offset, header, onRecord);
    const body = this.bytes(offset, header.length);
    if (body.length < header.length) return { problem: 'incomplete', header };
    const trailer = header.length - TX_TRAILER_SIZE;
    if (readU64(body, trailer + 4) !== header.length) return { problem: 'body', header };
    const checksum = body.readUInt32LE(trailer);
    if (checksum !== crc32c(body.subarray(0, trailer))) return { problem: 'body', header };
    return this.#parse(offset, header, checksum, body, onRecord);
  }

  /** The u64 at `position`; undefined when the file ends before it or it is zero. */
  #lengthAt(position: number): number | undefined {
    let bytes: Buffer;
    const start = this.#windowStart;
    if (position >= start && position + 8 <= start + this.#windowLength) {
      bytes = this.#window.subarray(position - start, position - start + 8);
    } else {
      bytes = this.#peek.subarray(0, readFully(this.fd, this.#peek, 0, 8, position));
      if (bytes.length < 8) return undefined;
    }
    const value = readU64(bytes, 0);
    return value === 0 ? undefined : value;
  }

  /** A transaction too large to read whole: checksummed in chunks, then parsed. */
  #readLarge(offset: number, header: TxHeader, onRecord: RecordSink | undefined): ScanResult {
    const trailerAt = offset + header.length - TX_TRAILER_SIZE;
    const crc = crc32cOfFile(this.fd, offset, trailerAt - offset);
    if (crc === undefined) return { problem: 'incomplete', header };
    const trailer = Buffer.allocUnsafe(TX_TRAILER_SIZE);
    if (readFully(this.fd, trailer, 0, TX_TRAILER_SIZE, trailerAt) < TX_TRAILER_SIZE) {
      return { problem: 'incomplete', header };
    }
    if (trailer.readUInt32LE(0) !== crc || readU64(trailer, 4) !== header.length) {
      return { problem: 'body', header };
    }
    return this.#parse(offset, header, crc, undefined, onRecord);
  }

  /**
   * Parses metadata and record headers of a checksummed transaction: from `body` (the whole
   * transaction) when given, else through the read window. The layout is checked in full
   * first; then each record is passed to `onRecord` when given (no record objects are made:
   * the scan of a large log makes millions), else collected into `records`.
   */
  #parse(
    offset: number,
    header: TxHeader,
    checksum: number,
    body: Buffer | undefined,
    onRecord: RecordSink | undefined,
  ): ScanResult {
    let meta: TxMeta = {};
    if (header.metaLength > 0) {
      try {
        const start = offset + TX_HEADER_SIZE;
        const bytes =
          body !== undefined
            ? body.subarray(TX_HEADER_SIZE, TX_HEADER_SIZE + header.metaLength)
            : this.bytes(start, header.metaLength);
        const decoded = metaPackr.unpack(bytes);
        if (typeof decoded === 'object' && decoded !== null) meta = decoded as TxMeta;
      } catch {
        return { problem: 'body', header };
      }
      // An oid high-water mark past the oid range would leave no oid to hand out, ever.
      const high = meta.oidHigh;
      if (high !== undefined && !(Number.isInteger(high) && high >= 0 && high <= MAX_OID + 1)) {
        return { problem: 'body', header };
      }
    }
    const first = offset + TX_HEADER_SIZE + header.metaLength;
    const end = offset + header.length - TX_TRAILER_SIZE;
    let position = first;
    // (No tuples in these loops: they run once per record, millions of times in a scan.)
    let buf: Buffer;
    let base: number;
    for (let i = 0; i < header.recordCount; i++) {
      if (position + RECORD_HEADER_SIZE > end) return { problem: 'body', header };
      if (body !== undefined) {
        buf = body;
        base = position - offset;
      } else {
        buf = this.bytes(position, RECORD_HEADER_SIZE);
        base = 0;
      }
      position += RECORD_HEADER_SIZE + readU32(buf, base + 32) * 4 + readU64(buf, base + 24);
      if (position > end) return { problem: 'body', header };
      // Oids are u32 in refs, and the index has pages for oids up to MAX_OID only (none larger
      // is written).
      if (readU64(buf, base) > MAX_OID) return { problem: 'body', header };
      // A committed transaction's records carry its tid; a pack's keep theirs, not later.
      const tid = readU64(buf, base + 8);
      if (header.status === TxStatus.committed ? tid !== header.tid : tid > header.tid) {
        return { problem: 'body', header };
      }
    }
    if (position !== end) return { problem: 'body', header };

    const records: ScannedRecord[] = onRecord === undefined ? new Array(header.recordCount) : [];
    position = first;
    for (let i = 0; i < header.recordCount; i++) {
      if (body !== undefined) {
        buf = body;
        base = position - offset;
      } else {
        buf = this.bytes(position, RECORD_HEADER_SIZE);
        base = 0;
      }
      const refCount = readU32(buf, base + 32);
      const dataLength = readU64(buf, base + 24);
      const oid = readU64(buf, base);
      const tid = readU64(buf, base + 8);
      if (onRecord !== undefined) {
        onRecord(oid, position, tid);
      } else {
        records[i] = {
          oid,
          tid,
          offset: position,
          prev: readU64(buf, base + 16),
          flags: buf[base + 36]! + buf[base + 37]! * 0x100,
          dataLength,
          refCount,
        };
      }
      position += RECORD_HEADER_SIZE + refCount * 4 + dataLength;
    }
    return {
      offset,
      length: header.length,
      tid: header.tid,
      status: header.status,
      meta,
      records,
      checksum,
    };
  }
}
