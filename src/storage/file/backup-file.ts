/**
 * A backup of a data file: a copy of a prefix of its log. The log only grows, so the bytes
 * up to any transaction boundary are a consistent database (as of that transaction). The
 * copy gets a generation of its own, and is named only once it is whole and synced.
 *
 * @module
 */

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { CorruptionError, InvalidArgumentError } from '../../errors.js';
import { wallClockMicros } from '../next-tid.js';
import type { BackupResult, Tid } from '../types.js';
import type { FileOps } from './file-ops.js';
import { encodeFileHeader, FILE_HEADER_SIZE, type FileHeader } from './format.js';
import { saveIndex } from './index-file.js';
import { isTransaction, LogReader } from './log-reader.js';
import { publish, syncPublished } from './log-writer.js';
import type { OpenFile } from './open-file.js';
import type { ScanState } from './scan-state.js';
import { createTemporary, discardTemporary, type TemporaryFile } from './temporary-files.js';

/** Bytes of log a backup checks between turns of the event loop. */
const BACKUP_CHECK_STRETCH = 16 * 1024 * 1024;
/** A record sink that keeps nothing: a check of transactions makes no record objects. */
const ignoreRecord = (): void => {};

/** The data file a backup copies, as the storage has it when the backup starts. */
export interface BackupSource {
  /** The data file's path, for errors. */
  readonly path: string;
  /** The file, held (acquired) by the caller until the backup is over. */
  readonly file: OpenFile;
  readonly header: FileHeader;
  /**
   * The log's state, which goes on taking the file's commits while the backup copies: an
   * index is saved for the copy only if its end is still the cut.
   */
  readonly log: ScanState;
  /** The stored checksum of the transaction ending the log as the storage read it. */
  readonly lastChecksum: number;
  /** The storage's file operations (a test can hold a backup in the middle of its writes). */
  readonly ops: FileOps;
  readonly warn: (message: string) => void;
}

/**
 * Copies the log of `source` up to its end now, or up to the last transaction at or before
 * `at`, to a new file at `path`. Every transaction copied is checked first, as a read of it
 * would be: damage copied without a word would be found only when the copy is needed.
 */
export async function backupFile(
  source: BackupSource,
  path: string,
  at: Tid | undefined,
): Promise<BackupResult> {
  const { file, header, log } = source;
  let out: TemporaryFile | undefined;
  let named = false;
  try {
    const end = log.end;
    const endTid = log.lastTid;
    const past = at !== undefined && at < endTid;
    if (past && at < header.historyHorizon) {
      throw new InvalidArgumentError(
        `the history before tid ${header.historyHorizon} was removed by a pack; options.at ${at} is older`,
        { argument: 'options.at' },
      );
    }
    // (A damaged transaction was taken for the end of the log, and a backup as of a later
    // tid stopped short.)
    const reader = new LogReader(file.fd);
    let cut = FILE_HEADER_SIZE;
    let lastTid = 0;
    let lastChecksum = 0;
    let yielded = cut;
    while (cut < end) {
      const tx = reader.readTransaction(cut, end, ignoreRecord);
      if (!isTransaction(tx)) {
        throw new CorruptionError(`the transaction at offset ${cut} fails its checks`, {
          offset: cut,
          path: source.path,
        });
      }
      if (past && tx.tid > at) break;
      cut += tx.length;
      lastTid = Math.max(lastTid, tx.tid);
      lastChecksum = tx.checksum;
      // The check reads synchronously: the event loop gets a turn between stretches.
      if (cut - yielded >= BACKUP_CHECK_STRETCH) {
        yielded = cut;
        await new Promise(setImmediate);
      }
    }
    if (!past) lastTid = endTid;
    out = createTemporary(path, 'backup');
    await copyRange(source.ops, file.fd, out.fd, cut);
    const generation = randomBytes(8).readBigUInt64LE(0);
    fs.writeSync(
      out.fd,
      encodeFileHeader({ ...header, generation, createdAt: wallClockMicros() }),
      0,
      FILE_HEADER_SIZE,
      0,
    );
    // On the threadpool: the sync of a copy of gigabytes took a second of the event loop.
    await source.ops.sync(out.fd);
    publish(out.path, path);
    named = true;
    try {
      syncPublished(path, out.fd);
    } finally {
      fs.closeSync(out.fd);
    }
    // The storage's index covers what it read: only if the copy ends in that same last
    // transaction (not one written in its place since) is it the copy's index too.
    if (cut === log.end && lastChecksum === source.lastChecksum) {
      // The copy is whole and in place: an index it cannot have is rebuilt by its first
      // open, not a reason to report the backup failed (a retry would find the target).
      const { index, nextOid } = log;
      try {
        saveIndex(
          path,
          { generation, coveredOffset: cut, lastTid, lastChecksum, nextOid, index },
          true,
        );
      } catch (error) {
        source.warn(`trove: ${path}: the backup's index could not be saved: ${error}`);
      }
    }
    return { path, tid: lastTid, bytes: cut };
  } finally {
    if (out !== undefined && !named) discardTemporary(out);
  }
}

/**
 * Copies the first `length` bytes of `from` to `to`, in pieces, off the event loop. Writes go
 * through `ops` like the storage's others, so a test can hold a backup in the middle.
 */
async function copyRange(ops: FileOps, from: number, to: number, length: number): Promise<void> {
  const piece = Buffer.allocUnsafe(8 * 1024 * 1024);
  const read = (position: number, size: number) =>
    new Promise<number>((resolve, reject) => {
      fs.read(from, piece, 0, size, position, (error, n) => (error ? reject(error) : resolve(n)));
    });
  for (let done = 0; done < length; ) {
    const n = await read(done, Math.min(piece.length, length - done));
    if (n === 0) throw new Error(`the data file ended at ${done} bytes while copying ${length}`);
    await ops.write(to, piece.subarray(0, n), done);
    done += n;
  }
}
