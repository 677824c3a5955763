/**
 * Reading the transaction log: validating and parsing transactions at given offsets, with a
 * read window so a sequential scan reads the file in large pieces rather than a few bytes at
 * a time. Reading never repairs anything; deciding what a bad transaction means is
 * recovery's job.
 *
 * @internal
 * @module
 */

import * as fs from 'node:fs';
import { crc32c } from '@node-rs/crc32';
import { Packr } from 'msgpackr';
import {
  decodeTxHeader,
  RECORD_HEADER_SIZE,
  readU64,
  TX_HEADER_SIZE,
  TX_TRAILER_SIZE,
  type TxHeader,
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
   * Offset of the first transaction written in the same group commit, when it is not this
   * one: recovery uses it to tell a torn group from damage in older data.
   */
  readonly group?: number;
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

/** A transaction that passed its checks. */
export interface ScannedTransaction {
  readonly offset: number;
  readonly length: number;
  readonly tid: number;
  readonly status: number;
  readonly meta: TxMeta;
  readonly records: readonly ScannedRecord[];
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

/** Window size for sequential reads. */
const WINDOW = 4 * 1024 * 1024;
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
    const n = fs.readSync(fd, target, targetOffset + done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

export class LogReader {
  readonly fd: number;
  #window: Buffer = Buffer.allocUnsafe(0);
  #windowStart = 0;
  #windowLength = 0;

  constructor(fd: number) {
    this.fd = fd;
  }

  /** Forgets buffered bytes (after the file was truncated or rewritten). */
  invalidate(): void {
    this.#windowLength = 0;
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
    const size = Math.max(length, WINDOW);
    if (this.#window.length < size) this.#window = Buffer.allocUnsafe(size);
    const read = readFully(this.fd, this.#window, 0, size, position);
    this.#windowStart = position;
    this.#windowLength = read;
    return this.#window.subarray(0, Math.min(read, length));
  }

  /** Reads and checks the transaction at `offset` of a file of `fileSize` bytes. */
  readTransaction(offset: number, fileSize: number): ScanResult {
    if (offset + TX_HEADER_SIZE > fileSize) return { problem: 'incomplete' };
    const head = this.bytes(offset, TX_HEADER_SIZE);
    if (head.length < TX_HEADER_SIZE) return { problem: 'incomplete' };
    const header = decodeTxHeader(head, 0);
    if (header === undefined) return { problem: 'header' };
    if (offset + header.length > fileSize) return { problem: 'incomplete', header };
    if (header.length > WHOLE_READ_LIMIT) return this.#readLarge(offset, header);
    const body = this.bytes(offset, header.length);
    if (body.length < header.length) return { problem: 'incomplete', header };
    const trailer = header.length - TX_TRAILER_SIZE;
    if (readU64(body, trailer + 4) !== header.length) return { problem: 'body', header };
    if (body.readUInt32LE(trailer) !== crc32c(body.subarray(0, trailer))) {
      return { problem: 'body', header };
    }
    return this.#parse(offset, header, body);
  }

  /** A transaction too large to read whole: checksummed in chunks, then parsed. */
  #readLarge(offset: number, header: TxHeader): ScanResult {
    const trailerAt = offset + header.length - TX_TRAILER_SIZE;
    const chunk = Buffer.allocUnsafe(CHUNK);
    let crc = 0;
    for (let at = offset; at < trailerAt; ) {
      const length = Math.min(CHUNK, trailerAt - at);
      if (readFully(this.fd, chunk, 0, length, at) < length)
        return { problem: 'incomplete', header };
      crc = crc32c(chunk.subarray(0, length), crc);
      at += length;
    }
    const trailer = Buffer.allocUnsafe(TX_TRAILER_SIZE);
    if (readFully(this.fd, trailer, 0, TX_TRAILER_SIZE, trailerAt) < TX_TRAILER_SIZE) {
      return { problem: 'incomplete', header };
    }
    if (trailer.readUInt32LE(0) !== crc || readU64(trailer, 4) !== header.length) {
      return { problem: 'body', header };
    }
    return this.#parse(offset, header, undefined);
  }

  /**
   * Parses metadata and record headers of a checksummed transaction: from `body` (the whole
   * transaction) when given, else with small reads from the file.
   */
  #parse(offset: number, header: TxHeader, body: Buffer | undefined): ScanResult {
    const piece = (at: number, length: number): [Buffer, number] => {
      if (body !== undefined) return [body, at - offset];
      const bytes = Buffer.allocUnsafe(length);
      readFully(this.fd, bytes, 0, length, at);
      return [bytes, 0];
    };
    let meta: TxMeta = {};
    if (header.metaLength > 0) {
      try {
        const [buf, base] = piece(offset + TX_HEADER_SIZE, header.metaLength);
        const decoded = metaPackr.unpack(buf.subarray(base, base + header.metaLength));
        if (typeof decoded === 'object' && decoded !== null) meta = decoded as TxMeta;
      } catch {
        return { problem: 'body', header };
      }
    }
    const records: ScannedRecord[] = new Array(header.recordCount);
    let at = offset + TX_HEADER_SIZE + header.metaLength;
    const end = offset + header.length - TX_TRAILER_SIZE;
    for (let i = 0; i < header.recordCount; i++) {
      if (at + RECORD_HEADER_SIZE > end) return { problem: 'body', header };
      const [buf, base] = piece(at, RECORD_HEADER_SIZE);
      const refCount = buf.readUInt32LE(base + 32);
      const dataLength = readU64(buf, base + 24);
      const size = RECORD_HEADER_SIZE + refCount * 4 + dataLength;
      if (at + size > end) return { problem: 'body', header };
      records[i] = {
        oid: readU64(buf, base),
        tid: readU64(buf, base + 8),
        offset: at,
        prev: readU64(buf, base + 16),
        flags: buf.readUInt16LE(base + 36),
        dataLength,
        refCount,
      };
      at += size;
    }
    if (at !== end) return { problem: 'body', header };
    return {
      offset,
      length: header.length,
      tid: header.tid,
      status: header.status,
      meta,
      records,
    };
  }
}
