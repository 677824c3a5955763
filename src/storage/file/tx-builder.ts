/**
 * Building transaction records in memory, ready to be appended.
 *
 * @module
 */

import {
  encodeRecord,
  encodeTxHeader,
  encodeTxTrailer,
  recordSize,
  TX_HEADER_SIZE,
  TX_TRAILER_SIZE,
  TxStatus,
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

/** What a record of a commit holds beyond what the transaction gives all of them. */
export interface CommitRecord {
  readonly oid: number;
  readonly refs: readonly number[];
  readonly data: Uint8Array;
}

/** The parts of a record that decide its size. */
type RecordSize = Pick<CommitRecord, 'refs' | 'data'>;

/** Total bytes a transaction will take. */
export function transactionSize(metaLength: number, records: readonly RecordSize[]): number {
  let size = TX_HEADER_SIZE + metaLength + TX_TRAILER_SIZE;
  for (const record of records) size += recordSize(record.data.byteLength, record.refs.length);
  return size;
}

/** A record being built: one object, filled in for record after record. */
interface RecordFields {
  oid: number;
  tid: number;
  prev: number;
  flags: number;
  refs: readonly number[];
  data: Uint8Array;
}

/**
 * Encodes a transaction that will start at file offset `fileOffset`; returns its bytes and
 * what a scan of it would report (so the writer can apply it without reading it back).
 */
export function buildTransaction(
  input: TransactionInput,
  fileOffset: number,
): { bytes: Buffer; scanned: ScannedTransaction } {
  const records = input.records;
  return build(input.tid, input.status, input.meta, records, fileOffset, (i, fields) => {
    const record = records[i]!;
    fields.oid = record.oid;
    fields.tid = record.tid;
    fields.prev = record.prev;
    fields.flags = record.flags;
    fields.refs = record.refs;
    fields.data = record.data;
  });
}

/**
 * As {@link buildTransaction}, for a commit: every record a new revision at the
 * transaction's tid, after the revision at `prev(oid)`. Built straight from the writes: a
 * large commit makes no input object per record.
 */
export function buildCommit(
  tid: number,
  meta: TxMeta,
  records: readonly CommitRecord[],
  prev: (oid: number) => number,
  fileOffset: number,
): { bytes: Buffer; scanned: ScannedTransaction } {
  return build(tid, TxStatus.committed, meta, records, fileOffset, (i, fields) => {
    const record = records[i]!;
    fields.oid = record.oid;
    fields.tid = tid;
    fields.prev = prev(record.oid);
    fields.flags = 0;
    fields.refs = record.refs;
    fields.data = record.data;
  });
}

function build(
  tid: number,
  status: number,
  txMeta: TxMeta,
  sizes: readonly RecordSize[],
  fileOffset: number,
  fill: (i: number, fields: RecordFields) => void,
): { bytes: Buffer; scanned: ScannedTransaction } {
  const meta = encodeMeta(txMeta);
  const length = transactionSize(meta.length, sizes);
  const bytes = Buffer.allocUnsafe(length);
  encodeTxHeader(bytes, 0, {
    length,
    tid,
    status,
    metaLength: meta.length,
    recordCount: sizes.length,
  });
  meta.copy(bytes, TX_HEADER_SIZE);
  let position = TX_HEADER_SIZE + meta.length;
  const records: ScannedRecord[] = new Array(sizes.length);
  const fields: RecordFields = { oid: 0, tid: 0, prev: 0, flags: 0, refs: [], data: bytes };
  for (let i = 0; i < sizes.length; i++) {
    fill(i, fields);
    records[i] = {
      oid: fields.oid,
      tid: fields.tid,
      offset: fileOffset + position,
      prev: fields.prev,
      flags: fields.flags,
      dataLength: fields.data.byteLength,
      refCount: fields.refs.length,
    };
    position = encodeRecord(bytes, position, fields, fields.refs, fields.data);
  }
  encodeTxTrailer(bytes, 0, length);
  return {
    bytes,
    scanned: {
      offset: fileOffset,
      length,
      tid,
      status,
      meta: txMeta,
      records,
      checksum: bytes.readUInt32LE(length - TX_TRAILER_SIZE),
    },
  };
}
