/**
 * What an open (or a handle reading its file again) knows of the log before it reads on:
 * the state the saved index covers, or, without a usable one, the state of the whole log
 * read from the start; and the transaction a given offset ends.
 *
 * @module
 */

import * as fs from 'node:fs';
import { startProgress } from '../../util/progress.js';
import type { Tid } from '../types.js';
import {
  decodeTxHeader,
  FILE_HEADER_SIZE,
  type FileHeader,
  readU64,
  TX_HEADER_SIZE,
  TX_TRAILER_SIZE,
  TxStatus,
} from './format.js';
import { loadIndex, type SavedIndex } from './index-file.js';
import { crc32cOfFile, isTransaction, LogReader } from './log-reader.js';
import { OidIndex } from './oid-index.js';
import { applyToState, type ScanState } from './scan-state.js';

/** What loadState found. */
export interface LoadedLog {
  readonly state: ScanState;
  /** Whether there was no usable index, and the whole log was read. */
  readonly rebuilt: boolean;
  /**
   * The checksum the index recorded for the transaction ending at its covered offset (when
   * it was used): the stored one may be damaged (see endsTransaction).
   */
  readonly lastChecksum: number | undefined;
}

/**
 * The state of the log up to what the saved index covers, or, without a usable index, of
 * the whole log read from the start (`rebuilt`).
 */
export function loadState(
  file: string,
  fd: number,
  header: FileHeader,
  progress: boolean | undefined,
): LoadedLog {
  const size = fs.fstatSync(fd).size;
  const saved = loadIndex(file, header.generation, size);
  const reader = new LogReader(fd);
  if (
    saved !== undefined &&
    saved.coveredOffset >= FILE_HEADER_SIZE &&
    saved.coveredOffset <= size &&
    endsTransaction(reader, saved, size, fd)
  ) {
    const state = {
      index: saved.index,
      end: saved.coveredOffset,
      lastTid: saved.lastTid,
      nextOid: saved.nextOid,
    };
    return { state, rebuilt: false, lastChecksum: saved.lastChecksum };
  }
  // No usable index: rebuild it by reading the whole log.
  const state: ScanState = { index: new OidIndex(), end: FILE_HEADER_SIZE, lastTid: 0, nextOid: 1 };
  const index = state.index;
  const bar = startProgress('trove: rebuilding the index', size, progress);
  const onRecord = (oid: number, offset: number, tid: number) => {
    index.set(oid, offset, tid);
    if (oid >= state.nextOid) state.nextOid = oid + 1;
  };
  try {
    for (;;) {
      const tx = reader.readTransaction(state.end, size, onRecord);
      if (!isTransaction(tx) || tx.status === TxStatus.moved) break;
      applyToState(state, tx);
      bar.update(state.end);
    }
    bar.finish();
  } finally {
    bar.stop();
  }
  return { state, rebuilt: true, lastChecksum: undefined };
}

/**
 * True when the transaction an index covers to ends exactly at its covered offset, within a
 * file of `size` bytes: the trailer there leads back to a header with a good checksum and
 * the same length, and the transaction has the index's last tid and stored checksum. (The
 * body is not read: the index file has its own checksum; this only ties it to this log.)
 *
 * With `fd`, one whose stored checksum differs is taken too when its bytes sum to the
 * recorded one: it is the transaction the index covers, its stored checksum damaged since
 * (a bit flipped while the file was closed), which a writer rewrites. (Read whole, but only
 * then.) Without the index, an open would take it for a torn tail and cut it off.
 */
export function endsTransaction(
  reader: LogReader,
  saved: Pick<SavedIndex, 'coveredOffset' | 'lastTid' | 'lastChecksum'>,
  size: number,
  fd?: number,
): boolean {
  const { coveredOffset: offset, lastTid, lastChecksum } = saved;
  if (offset === FILE_HEADER_SIZE) return lastTid === 0;
  if (offset > size) return false;
  const last = headerEndingAt(reader, offset);
  if (last?.tid !== lastTid) return false;
  if (last.checksum === lastChecksum) return true;
  return (
    fd !== undefined &&
    crc32cOfFile(fd, last.offset, last.length - TX_TRAILER_SIZE) === lastChecksum
  );
}

/**
 * Where the transaction whose trailer ends at `end` starts, its length and tid, when its
 * header there has a good checksum and the same length (its body is not read).
 */
export function headerEndingAt(
  reader: LogReader,
  end: number,
): { offset: number; length: number; tid: Tid; status: number; checksum: number } | undefined {
  if (end < FILE_HEADER_SIZE + TX_HEADER_SIZE + TX_TRAILER_SIZE) return undefined;
  const tail = reader.bytes(end - TX_TRAILER_SIZE, TX_TRAILER_SIZE);
  if (tail.length < TX_TRAILER_SIZE) return undefined;
  const checksum = tail.readUInt32LE(0);
  const length = readU64(tail, 4);
  const start = end - length;
  if (start < FILE_HEADER_SIZE) return undefined;
  const head = reader.bytes(start, TX_HEADER_SIZE);
  const header = head.length < TX_HEADER_SIZE ? undefined : decodeTxHeader(head, 0);
  if (header === undefined || header.length !== length) return undefined;
  return { offset: start, length, tid: header.tid, status: header.status, checksum };
}
