/**
 * Writing a transaction whose record data may come from a file region (a staged blob, or a
 * large record a pack copies) without holding that data in memory.
 *
 * A record's checksum sits in its header, before its data, and the transaction checksum
 * covers that header: so the data is read twice, once for the record checksum and once to
 * copy it (from the page cache, at memory speed). Output is gathered in a bounded buffer.
 *
 * @module
 */

import fs from 'node:fs';
import { crc32c } from './checksum.js';
import type { FileOps } from './file-ops.js';
import {
  encodeTxHeader,
  RECORD_HEADER_SIZE,
  recordSize,
  TX_HEADER_SIZE,
  TX_TRAILER_SIZE,
  writeU64,
} from './format.js';
import {
  encodeMeta,
  readFully,
  type ScannedRecord,
  type ScannedTransaction,
  type TxMeta,
} from './log-reader.js';

/** A region of an open file. */
interface FileRegion {
  readonly fd: number;
  readonly offset: number;
  readonly length: number;
}

/**
 * Where a record's data comes from: bytes, a region of an open file, or the whole of a file
 * by name. A named file is opened only while its record is written: a commit of many staged
 * blobs holding each one's descriptor from the start ran out of descriptors (EMFILE).
 */
export type RecordSource =
  | { readonly bytes: Uint8Array }
  | FileRegion
  | { readonly path: string; readonly length: number };

/** One record of a streamed transaction. */
export interface StreamedRecord {
  readonly oid: number;
  readonly tid: number;
  readonly prev: number;
  readonly flags: number;
  readonly refs: readonly number[];
  readonly source: RecordSource;
}

const BUFFER = 8 * 1024 * 1024;

function sourceLength(source: RecordSource): number {
  return 'bytes' in source ? source.bytes.byteLength : source.length;
}

/** Successive pieces of a file region, each read into `piece` (valid until the next). */
function* piecesOf(source: FileRegion, piece: Buffer): Generator<Buffer> {
  for (let done = 0; done < source.length; ) {
    const length = Math.min(piece.length, source.length - done);
    if (readFully(source.fd, piece, 0, length, source.offset + done) < length) {
      throw new Error(`a record source ended early at offset ${source.offset + done}`);
    }
    yield piece.subarray(0, length);
    done += length;
  }
}

/** The 48-byte header and refs of a record, checksum included: its data is `data`. */
function recordHead(
  record: StreamedRecord,
  data: { readonly bytes: Uint8Array } | FileRegion,
  piece: Buffer,
): Buffer {
  const length = sourceLength(data);
  const head = Buffer.alloc(RECORD_HEADER_SIZE + record.refs.length * 4);
  writeU64(head, 0, record.oid);
  writeU64(head, 8, record.tid);
  writeU64(head, 16, record.prev);
  writeU64(head, 24, length);
  head.writeUInt32LE(record.refs.length, 32);
  head.writeUInt16LE(record.flags, 36);
  record.refs.forEach((ref, i) => {
    head.writeUInt32LE(ref, RECORD_HEADER_SIZE + i * 4);
  });
  let crc = crc32c(head.subarray(RECORD_HEADER_SIZE), crc32c(head.subarray(0, 44)));
  if ('bytes' in data) crc = crc32c(data.bytes, crc);
  else for (const bytes of piecesOf(data, piece)) crc = crc32c(bytes, crc);
  head.writeUInt32LE(crc, 44);
  return head;
}

/**
 * Writes one transaction at `offset` of `fd`; returns what a scan of it would report.
 */
export async function writeStreamedTransaction(
  ops: FileOps,
  fd: number,
  offset: number,
  tx: { tid: number; status: number; meta: TxMeta; records: readonly StreamedRecord[] },
): Promise<ScannedTransaction> {
  const meta = encodeMeta(tx.meta);
  let length = TX_HEADER_SIZE + meta.length + TX_TRAILER_SIZE;
  for (const record of tx.records)
    length += recordSize(sourceLength(record.source), record.refs.length);

  // No larger than what they will hold: a small blob's commit, or each of the many small
  // transactions a pack keeping history copies, allocated 16 MiB here.
  let largestFileSource = 0;
  for (const record of tx.records) {
    if (!('bytes' in record.source))
      largestFileSource = Math.max(largestFileSource, record.source.length);
  }
  const piece = Buffer.allocUnsafe(Math.min(BUFFER, largestFileSource));
  const out = Buffer.allocUnsafe(Math.min(BUFFER, length));
  let used = 0;
  let position = offset;
  let crc = 0;
  const flush = async () => {
    if (used === 0) return;
    await ops.write(fd, out.subarray(0, used), position);
    position += used;
    used = 0;
  };
  /** Buffers bytes for writing; `checked` bytes count towards the transaction checksum. */
  const emit = async (bytes: Uint8Array, checked = true) => {
    if (checked) crc = crc32c(bytes, crc);
    for (let done = 0; done < bytes.byteLength; ) {
      if (used === out.length) await flush();
      const n = Math.min(out.length - used, bytes.byteLength - done);
      out.set(bytes.subarray(done, done + n), used);
      used += n;
      done += n;
    }
  };

  const header = Buffer.alloc(TX_HEADER_SIZE);
  encodeTxHeader(header, 0, {
    length,
    tid: tx.tid,
    status: tx.status,
    metaLength: meta.length,
    recordCount: tx.records.length,
  });
  await emit(header);
  await emit(meta);
  const records: ScannedRecord[] = [];
  let at = offset + TX_HEADER_SIZE + meta.length;
  for (const record of tx.records) {
    const dataLength = sourceLength(record.source);
    records.push({
      oid: record.oid,
      tid: record.tid,
      offset: at,
      prev: record.prev,
      flags: record.flags,
      dataLength,
      refCount: record.refs.length,
    });
    at += recordSize(dataLength, record.refs.length);
    const source = record.source;
    if ('bytes' in source) {
      await emit(recordHead(record, source, piece));
      await emit(source.bytes);
      continue;
    }
    const region =
      'path' in source
        ? { fd: fs.openSync(source.path, 'r'), offset: 0, length: source.length }
        : source;
    try {
      await emit(recordHead(record, region, piece));
      for (const bytes of piecesOf(region, piece)) await emit(bytes);
    } finally {
      if ('path' in source) fs.closeSync(region.fd);
    }
  }
  const trailer = Buffer.alloc(TX_TRAILER_SIZE);
  trailer.writeUInt32LE(crc, 0);
  writeU64(trailer, 4, length);
  await emit(trailer, false);
  await flush();
  return { offset, length, tid: tx.tid, status: tx.status, meta: tx.meta, records, checksum: crc };
}
