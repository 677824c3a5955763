/**
 * The byte layout of a trove data file (`app.trove`): pure encoders and decoders, no I/O.
 * docs/format.md describes the same layout for readers of other languages; keep the two in
 * step.
 *
 * All integers are little-endian. Offsets and lengths are 64-bit (read as JavaScript
 * numbers, so files up to 2^53 bytes). Checksums are CRC32C (Castagnoli).
 *
 * @module
 */

import { crc32c, crc32cOfRange } from './checksum.js';

/** `TROVE\0\r\n`: the \r\n catches a file mangled by newline translation, the \0 a text tool. */
export const FILE_MAGIC = Buffer.from([0x54, 0x52, 0x4f, 0x56, 0x45, 0x00, 0x0d, 0x0a]);
/** The version of this layout. */
export const FORMAT_VERSION = 1;
/** Bytes of the file header. */
export const FILE_HEADER_SIZE = 64;
/** Bytes of a transaction header. */
export const TX_HEADER_SIZE = 32;
/** The high half of 2^53: a u64 field whose high half reaches it does not read exactly. */
const U53_HIGH = 0x20_0000;
/** Bytes after a transaction's records: body checksum and the length again. */
export const TX_TRAILER_SIZE = 12;
/** Bytes of a data record header. */
export const RECORD_HEADER_SIZE = 48;

/** Transaction status bytes. */
export const TxStatus = {
  /** A committed transaction. */
  committed: 0x43, // 'C'
  /** Records a pack copied into a new file (each keeps its original tid). */
  packed: 0x50, // 'P'
  /** An oid reservation: no records; the metadata holds the new oid high-water mark. */
  oids: 0x4f, // 'O'
  /** The file was replaced by a packed copy; readers reopen the path. No records. */
  moved: 0x4d, // 'M'
} as const;

/** Data record flags. */
export const RecordFlag = {
  /** The data is the raw content of a blob, not an encoded object state. */
  blob: 1,
} as const;

/** The file header. */
export interface FileHeader {
  readonly version: number;
  /** A random id of this file instance; a pack makes a new one. */
  readonly generation: bigint;
  /** When the file was created (µs since 1970). */
  readonly createdAt: number;
  /**
   * Revisions older than this tid may have been removed by the pack that made this file:
   * historical reads before it are not answered (0 for a file never packed).
   */
  readonly historyHorizon: number;
}

/** Why a header could not be read. */
export type HeaderProblem = 'magic' | 'version' | 'checksum' | 'short';

export function encodeFileHeader(header: FileHeader): Buffer {
  const buf = Buffer.alloc(FILE_HEADER_SIZE);
  FILE_MAGIC.copy(buf, 0);
  buf.writeUInt32LE(header.version, 8);
  buf.writeUInt32LE(FILE_HEADER_SIZE, 12);
  buf.writeBigUInt64LE(header.generation, 16);
  writeU64(buf, 24, header.createdAt);
  writeU64(buf, 32, header.historyHorizon);
  buf.writeUInt32LE(crc32c(buf.subarray(0, 60)), 60);
  return buf;
}

export function decodeFileHeader(buf: Uint8Array): FileHeader | HeaderProblem {
  if (buf.length < FILE_HEADER_SIZE) return 'short';
  const b = Buffer.from(buf.buffer, buf.byteOffset, FILE_HEADER_SIZE);
  if (!b.subarray(0, 8).equals(FILE_MAGIC)) return 'magic';
  if (b.readUInt32LE(60) !== crc32c(b.subarray(0, 60))) return 'checksum';
  const version = b.readUInt32LE(8);
  if (version !== FORMAT_VERSION) return 'version';
  return {
    version,
    generation: b.readBigUInt64LE(16),
    createdAt: readU64(b, 24),
    historyHorizon: readU64(b, 32),
  };
}

/** A transaction header, as read. */
export interface TxHeader {
  /** Total bytes of the transaction record, header and trailer included. */
  readonly length: number;
  readonly tid: number;
  readonly status: number;
  readonly metaLength: number;
  readonly recordCount: number;
}

export function encodeTxHeader(target: Buffer, offset: number, header: TxHeader): void {
  writeU64(target, offset, header.length);
  writeU64(target, offset + 8, header.tid);
  target[offset + 16] = header.status;
  target[offset + 17] = 0;
  target.writeUInt16LE(0, offset + 18);
  target.writeUInt32LE(header.metaLength, offset + 20);
  target.writeUInt32LE(header.recordCount, offset + 24);
  target.writeUInt32LE(crc32c(target.subarray(offset, offset + 28)), offset + 28);
}

/** Reads a transaction header; undefined if its checksum or fields are not sane. */
export function decodeTxHeader(buf: Buffer, offset: number): TxHeader | undefined {
  if (buf.readUInt32LE(offset + 28) !== crc32c(buf.subarray(offset, offset + 28))) return undefined;
  const header = {
    length: readU64(buf, offset),
    tid: readU64(buf, offset + 8),
    status: buf[offset + 16]!,
    metaLength: buf.readUInt32LE(offset + 20),
    recordCount: buf.readUInt32LE(offset + 24),
  };
  const minimum =
    TX_HEADER_SIZE + header.metaLength + header.recordCount * RECORD_HEADER_SIZE + TX_TRAILER_SIZE;
  if (header.length < minimum || !Object.values(TxStatus).includes(header.status as never)) {
    return undefined;
  }
  // A tid past 2^53 does not read exactly (a length that long is past any file anyway);
  // markers and reservations hold no records (a marker taken for one would have its records
  // indexed, or cut off with it).
  if (buf.readUInt32LE(offset + 12) >= U53_HIGH) return undefined;
  if (
    header.recordCount > 0 &&
    header.status !== TxStatus.committed &&
    header.status !== TxStatus.packed
  ) {
    return undefined;
  }
  return header;
}

/** A data record header, as read. */
export interface RecordHeader {
  readonly oid: number;
  readonly tid: number;
  /** Offset of the previous revision's record, 0 if none. */
  readonly prev: number;
  readonly dataLength: number;
  readonly refCount: number;
  readonly flags: number;
  readonly checksum: number;
}

/**
 * Whether `offset` can be where a record starts in a log ending at `end`. Offsets come from
 * the index file and from record headers, checksummed but not proof against a writer's bug:
 * one outside the log would make a read fail with a RangeError.
 */
export function isRecordOffset(offset: number, end: number): boolean {
  return Number.isInteger(offset) && offset >= FILE_HEADER_SIZE && offset < end;
}

/** Bytes of a whole data record. */
export function recordSize(dataLength: number, refCount: number): number {
  return RECORD_HEADER_SIZE + refCount * 4 + dataLength;
}

/**
 * Writes a data record header and its refs at `offset` (the data goes right after, written
 * by the caller), with the checksum over header, refs and `data`.
 */
export function encodeRecord(
  target: Buffer,
  offset: number,
  fields: Omit<RecordHeader, 'checksum' | 'refCount' | 'dataLength'>,
  refs: readonly number[],
  data: Uint8Array,
): number {
  writeU64(target, offset, fields.oid);
  writeU64(target, offset + 8, fields.tid);
  writeU64(target, offset + 16, fields.prev);
  writeU64(target, offset + 24, data.byteLength);
  target.writeUInt32LE(refs.length, offset + 32);
  target.writeUInt16LE(fields.flags, offset + 36);
  target.writeUInt16LE(0, offset + 38);
  target.writeUInt32LE(0, offset + 40);
  let position = offset + RECORD_HEADER_SIZE;
  for (const ref of refs) {
    target.writeUInt32LE(ref, position);
    position += 4;
  }
  target.set(data, position);
  const end = position + data.byteLength;
  let crc = crc32cOfRange(target, offset, offset + 44);
  crc = crc32cOfRange(target, offset + RECORD_HEADER_SIZE, end, crc);
  target.writeUInt32LE(crc, offset + 44);
  return end;
}

export function decodeRecordHeader(buf: Buffer, offset: number): RecordHeader {
  return {
    oid: readU64(buf, offset),
    tid: readU64(buf, offset + 8),
    prev: readU64(buf, offset + 16),
    dataLength: readU64(buf, offset + 24),
    refCount: buf.readUInt32LE(offset + 32),
    flags: buf.readUInt16LE(offset + 36),
    checksum: buf.readUInt32LE(offset + 44),
  };
}

/** The record checksum of a header (first 44 bytes) followed by `rest` (refs, data). */
export function recordChecksum(header: Buffer, headerOffset: number, rest: Uint8Array[]): number {
  let crc = crc32c(header.subarray(headerOffset, headerOffset + 44));
  for (const part of rest) crc = crc32c(part, crc);
  return crc;
}

/** Reads the refs of a record whose refs start at `offset`. */
export function decodeRefs(buf: Buffer, offset: number, count: number): number[] {
  const refs = new Array<number>(count);
  for (let i = 0; i < count; i++) refs[i] = buf.readUInt32LE(offset + i * 4);
  return refs;
}

/** Writes a transaction trailer (body checksum over `[start, trailer)`, then the length). */
export function encodeTxTrailer(target: Buffer, start: number, length: number): void {
  const trailer = start + length - TX_TRAILER_SIZE;
  target.writeUInt32LE(crc32c(target.subarray(start, trailer)), trailer);
  writeU64(target, trailer + 4, length);
}

export function writeU64(buf: Buffer, offset: number, value: number): void {
  buf.writeUInt32LE(value >>> 0, offset);
  buf.writeUInt32LE(Math.floor(value / 0x1_0000_0000), offset + 4);
}

export function readU64(buf: Uint8Array, offset: number): number {
  // Plain arithmetic on bytes: the scan of a large log calls this millions of times.
  const low =
    buf[offset]! +
    buf[offset + 1]! * 0x100 +
    buf[offset + 2]! * 0x1_0000 +
    buf[offset + 3]! * 0x100_0000;
  const high =
    buf[offset + 4]! +
    buf[offset + 5]! * 0x100 +
    buf[offset + 6]! * 0x1_0000 +
    buf[offset + 7]! * 0x100_0000;
  return low + high * 0x1_0000_0000;
}

/** A 32-bit little-endian unsigned integer (as readU64, without Buffer's checks). */
export function readU32(buf: Uint8Array, offset: number): number {
  return (
    buf[offset]! +
    buf[offset + 1]! * 0x100 +
    buf[offset + 2]! * 0x1_0000 +
    buf[offset + 3]! * 0x100_0000
  );
}
