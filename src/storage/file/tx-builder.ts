/**
 * Building transaction records in memory, ready to be appended.
 *
 * @internal
 * @module
 */

import {
  encodeRecord,
  encodeTxHeader,
  encodeTxTrailer,
  recordSize,
  TX_HEADER_SIZE,
  TX_TRAILER_SIZE,
} from './format.js';
import {
  encodeMeta,
  type ScannedRecord,
  type ScannedTransaction,
  type TxMeta,
} from './log-reader.js';

/** One record to write. */
export interface RecordInput {
  readonly oid: number;
  /** The record's tid; the transaction's unless a pack copies an older revision. */
  readonly tid: number;
  /** Offset of the previous revision's record, 0 if none. */
  readonly prev: number;
  readonly flags: number;
  readonly refs: readonly number[];
  readonly data: Uint8Array;
}

/** A transaction to write. */
export interface TransactionInput {
  readonly tid: number;
  readonly status: number;
  readonly meta: TxMeta;
  readonly records: readonly RecordInput[];
}

/** Total bytes a transaction will take. */
export function transactionSize(metaLength: number, records: readonly RecordInput[]): number {
  let size = TX_HEADER_SIZE + metaLength + TX_TRAILER_SIZE;
  for (const record of records) size += recordSize(record.data.byteLength, record.refs.length);
  return size;
}

/**
 * Encodes a transaction that will start at file offset `fileOffset`; returns its bytes and
 * what a scan of it would report (so the writer can apply it without reading it back).
 */
export function buildTransaction(
  input: TransactionInput,
  fileOffset: number,
): { bytes: Buffer; scanned: ScannedTransaction } {
  const meta = encodeMeta(input.meta);
  const length = transactionSize(meta.length, input.records);
  const bytes = Buffer.allocUnsafe(length);
  encodeTxHeader(bytes, 0, {
    length,
    tid: input.tid,
    status: input.status,
    metaLength: meta.length,
    recordCount: input.records.length,
  });
  meta.copy(bytes, TX_HEADER_SIZE);
  let position = TX_HEADER_SIZE + meta.length;
  const records: ScannedRecord[] = new Array(input.records.length);
  input.records.forEach((record, i) => {
    records[i] = {
      oid: record.oid,
      tid: record.tid,
      offset: fileOffset + position,
      prev: record.prev,
      flags: record.flags,
      dataLength: record.data.byteLength,
      refCount: record.refs.length,
    };
    position = encodeRecord(bytes, position, record, record.refs, record.data);
  });
  encodeTxTrailer(bytes, 0, length);
  return {
    bytes,
    scanned: {
      offset: fileOffset,
      length,
      tid: input.tid,
      status: input.status,
      meta: input.meta,
      records,
    },
  };
}
