/**
 * What a transaction that fails its checks means, and cutting off a torn tail.
 *
 * A crash while appending leaves the last transaction (or the last group of transactions
 * written together) incomplete or failing its checksum: that is a torn tail, and it was
 * never acknowledged (or, with durability `os` or `none`, acknowledged but not yet synced,
 * which a power loss may lose), so it is cut off (and kept aside in `app.trove.torn-<n>`). A bad
 * transaction followed by a valid transaction of a later group is different: that later
 * group was written after the bad one had been acknowledged, so the bad one is damage to
 * committed data, and trove refuses to guess (CorruptionError). Zeros after the log are
 * preallocated space, not a torn tail; zeros with data after them are judged like a bad
 * transaction where the zeros begin (writers mark what they write while earlier bytes are
 * not yet durable with the offset those begin at, `group`, so a crash's hole is torn).
 *
 * @module
 */

import * as fs from 'node:fs';
import { dirname } from 'node:path';
import { writeFully } from './file-ops.js';
import { readU64, TX_HEADER_SIZE, TxStatus } from './format.js';
import {
  isTransaction,
  type LogReader,
  readFully,
  type ScannedTransaction,
  type ScanProblem,
} from './log-reader.js';
import { syncDirectory } from './sync-directory.js';

/** How far past a transaction with an unreadable header trove looks for later valid data. */
const SEARCH_LIMIT = 64 * 1024 * 1024;

const STATUSES = new Set<number>(Object.values(TxStatus));

/**
 * The verdict on a bad transaction. `written`: it is valid now; a writer was writing it
 * while it was read (only a judge without the writer lock can see that), so look again.
 */
export type Verdict =
  | {
      readonly kind: 'torn';
      /**
       * Where the torn bytes end: past the last byte that is not zero, and on to the end of
       * a valid transaction whose length's high bytes (zeros) come after it.
       */
      readonly end: number;
    }
  | { readonly kind: 'written' }
  | { readonly kind: 'corrupt'; readonly detail: string };

/** The offset of the group a transaction was written in. */
function groupStart(tx: ScannedTransaction): number {
  return typeof tx.meta.group === 'number' ? tx.meta.group : tx.offset;
}

/** The first valid transaction starting at or after `from`, searching a bounded stretch. */
export function findNextTransaction(
  reader: LogReader,
  from: number,
  fileSize: number,
): ScannedTransaction | undefined {
  const limit = Math.min(fileSize - TX_HEADER_SIZE, from + SEARCH_LIMIT);
  const chunk = Buffer.allocUnsafe(1024 * 1024 + TX_HEADER_SIZE);
  for (let base = from; base <= limit; base += 1024 * 1024) {
    const read = readFully(reader.fd, chunk, 0, chunk.length, base);
    for (let i = 0; i + TX_HEADER_SIZE <= read && base + i <= limit; i++) {
      // Cheap plausibility checks first; the reader verifies checksums.
      const status = chunk[i + 16]!;
      if (!STATUSES.has(status)) continue;
      const length = readU64(chunk, i);
      if (length < TX_HEADER_SIZE || base + i + length > fileSize) continue;
      const candidate = reader.readTransaction(base + i, fileSize);
      if (isTransaction(candidate)) return candidate;
    }
  }
  return undefined;
}

/**
 * Judges the transaction at `offset`, which failed with `problem` in a file of `fileSize`
 * bytes (read while holding the writer lock, so no append is in progress).
 *
 * It is damage to committed data if any valid transaction after it belongs to a later group
 * commit; otherwise (nothing valid after it, or only the rest of its own group) it is a torn
 * tail. Valid transactions after it are found by walking forward from it (when its length
 * can be trusted), by walking backward from the end of the file along the length trailers,
 * and, failing both, by searching a bounded stretch for a transaction header.
 */
export function judge(
  reader: LogReader,
  offset: number,
  fileSize: number,
  problem: ScanProblem,
): Verdict {
  // Incomplete (the file, or its data, ends before the transaction's end is written) and
  // nothing after it: the last write, cut short. Where data follows, a trailer that reads
  // as not written yet may be damage (a zeroed sector): look for later transactions.
  const dataEnd = endOfData(reader.fd, offset, fileSize);
  if (problem.problem === 'incomplete') {
    const end = problem.header === undefined ? offset : offset + problem.header.length;
    if (dataEnd <= end && !isWholeBefore(reader, offset, dataEnd, fileSize)) {
      return { kind: 'torn', end: dataEnd };
    }
  }
  const corrupt = (later: ScannedTransaction): Verdict => {
    // Writers write in order: once a later transaction can be read, an earlier one that was
    // being written when it was first read is complete. (Zeros where the log ends look the
    // same before its writer has written there.)
    reader.invalidate();
    if (isTransaction(reader.readTransaction(offset, fs.fstatSync(reader.fd).size))) {
      return { kind: 'written' };
    }
    return {
      kind: 'corrupt',
      detail: `the transaction at offset ${offset} fails its checks (${problem.problem}) but a transaction written after it was acknowledged, at offset ${later.offset}, is valid`,
    };
  };
  // Forward, from the end of the bad transaction, over the valid transactions that follow.
  if (problem.header !== undefined) {
    for (let at = offset + problem.header.length; at < fileSize; ) {
      const tx = reader.readTransaction(at, fileSize);
      if (!isTransaction(tx)) break;
      if (groupStart(tx) > offset) return corrupt(tx);
      at += tx.length;
    }
  }
  // Backward, from the end of the data: past it only zeros follow (preallocated space), and
  // a transaction's own last bytes may be zeros too (the high bytes of its length).
  let sawValidTail = false;
  let last = dataEnd;
  for (let end = dataEnd; end <= Math.min(fileSize, dataEnd + 8); end++) {
    if (transactionEndingAt(reader, end, fileSize) !== undefined) {
      last = end;
      break;
    }
  }
  for (let end = last; end > offset + TX_HEADER_SIZE; ) {
    const tx = transactionEndingAt(reader, end, fileSize);
    if (tx === undefined || tx.offset <= offset) break;
    sawValidTail = true;
    if (groupStart(tx) > offset) return corrupt(tx);
    end = tx.offset;
  }
  if (!sawValidTail) {
    // Not inside the transaction when its header holds, and with it its length: its bytes
    // are its own, and its data may hold a whole trove file (a blob of a backup), whose
    // transactions are no later commits.
    const from = problem.header !== undefined ? offset + problem.header.length : offset + 1;
    const found = findNextTransaction(reader, from, Math.min(fileSize, dataEnd + 8));
    if (found !== undefined && groupStart(found) > offset) return corrupt(found);
  }
  return { kind: 'torn', end: last };
}

/**
 * Whether the transaction at `offset`, whose header says it ends past the data, is in fact
 * followed by valid transactions up to the data's end, and its own trailer gives the length
 * that reaches them: then its header is damaged, not cut short by a crash. (The bytes of a
 * write cut short are not searched for transactions: a blob may hold a whole trove file.)
 */
function isWholeBefore(
  reader: LogReader,
  offset: number,
  dataEnd: number,
  fileSize: number,
): boolean {
  // A transaction's last bytes may be zeros (the high bytes of its length).
  for (let end = dataEnd; end <= Math.min(fileSize, dataEnd + 8); end++) {
    let start = end;
    for (;;) {
      const tx = transactionEndingAt(reader, start, fileSize);
      if (tx === undefined || tx.offset <= offset) break;
      start = tx.offset;
    }
    if (start < end && start - offset >= TX_HEADER_SIZE + 12) {
      return readU64(reader.fresh(start - 8, 8), 0) === start - offset;
    }
  }
  return false;
}

/** The valid transaction whose trailer ends at `end`, if there is one. */
function transactionEndingAt(
  reader: LogReader,
  end: number,
  fileSize: number,
): ScannedTransaction | undefined {
  if (end < TX_HEADER_SIZE + 12) return undefined;
  const bytes = reader.fresh(end - 8, 8);
  // Short when another process cut the file since its size was measured (judging runs
  // without the writer lock): no transaction ends there now.
  if (bytes.length < 8) return undefined;
  const length = readU64(bytes, 0);
  if (length < TX_HEADER_SIZE || length > end) return undefined;
  const tx = reader.readTransaction(end - length, fileSize);
  return isTransaction(tx) && tx.length === length ? tx : undefined;
}

/**
 * Where the data of the file ends: just past its last byte that is not zero, or `from` when
 * every byte of [from, size) is zero. What follows a log's last transaction is preallocated
 * space, zeros; anything else there is the remains of a write that did not finish.
 */
export function endOfData(fd: number, from: number, size: number): number {
  const chunk = Buffer.allocUnsafe(Math.min(1024 * 1024, Math.max(0, size - from)));
  for (let end = size; end > from; ) {
    const start = Math.max(from, end - chunk.length);
    const read = readFully(fd, chunk, 0, end - start, start);
    // A file cut shorter meanwhile ends where the read did.
    if (read < end - start) return endOfData(fd, from, start + read);
    for (let i = read - 1; i >= 0; i--) if (chunk[i] !== 0) return start + i + 1;
    end = start;
  }
  return from;
}

/**
 * Copies the bytes from `offset` to `end` aside into `<path>.torn-<n>`, for the caller to
 * cut the file at `offset` then. Returns the name of the copy. Every byte is written, and
 * with `sync` made durable with its name, or it fails and removes the copy (unless only its
 * close failed, after it was whole): a write cut short by a full disk reports how much it
 * wrote, and a copy of part of the tail passed for the whole (each failed attempt also left
 * one of its own).
 */
export function copyTornTail(
  path: string,
  fd: number,
  offset: number,
  end: number,
  sync: boolean,
): string {
  let n = 1;
  while (fs.existsSync(`${path}.torn-${n}`)) n++;
  const aside = `${path}.torn-${n}`;
  const out = fs.openSync(aside, 'wx');
  try {
    const buffer = Buffer.allocUnsafe(1024 * 1024);
    for (let at = offset; at < end; ) {
      const read = readFully(fd, buffer, 0, Math.min(buffer.length, end - at), at);
      if (read === 0) break;
      writeFully(out, buffer.subarray(0, read), at - offset);
      at += read;
    }
    if (sync) {
      fs.fsyncSync(out);
      // Its name too, before the tail is cut from the data file.
      syncDirectory(dirname(path));
    }
  } catch (error) {
    // The copy's failure is the one to report (ENOSPC says how much room it needs): a partial
    // copy that cannot be closed or removed either stays, and nothing is cut anyway.
    try {
      fs.closeSync(out);
    } catch {}
    try {
      fs.rmSync(aside, { force: true });
    } catch {}
    throw error;
  }
  fs.closeSync(out);
  return aside;
}
