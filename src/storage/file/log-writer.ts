/**
 * Writing a new data file from a sequence of transactions (keeping their tids): how a
 * storage that is not a file (memory, a historical view) is backed up into one.
 *
 * @module
 */

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { dirname } from 'node:path';
import { StorageIOError } from '../../errors.js';
import { wallClockMicros } from '../next-tid.js';
import { keptMeta } from '../transaction-meta.js';
import type { TransactionRecord } from '../types.js';
import { nodeFileOps } from './file-ops.js';
import {
  encodeFileHeader,
  FILE_HEADER_SIZE,
  FORMAT_VERSION,
  RecordFlag,
  TxStatus,
} from './format.js';
import { saveIndex } from './index-file.js';
import { OidIndex } from './oid-index.js';
import { applyToState, type ScanState } from './scan-state.js';
import { writeStreamedTransaction } from './streamed-transaction.js';
import { syncDirectory } from './sync-directory.js';
import { createTemporary, discardTemporary, namesFile } from './temporary-files.js';

/**
 * Writes `transactions` into a new data file at `path` (which must not exist). Its index is
 * saved too; one that cannot be is passed to `warn`, not thrown: the file is whole and in
 * place by then (a retry would find the target taken), and its first open rebuilds the index.
 */
export async function writeLogFile(
  path: string,
  transactions: AsyncIterable<TransactionRecord>,
  sync: boolean,
  historyHorizon: number,
  warn: (message: string) => void,
): Promise<{ lastTid: number; bytes: number }> {
  const temporary = createTemporary(path, 'backup');
  const fd = temporary.fd;
  let named = false;
  try {
    const generation = randomBytes(8).readBigUInt64LE(0);
    fs.writeSync(
      fd,
      encodeFileHeader({
        version: FORMAT_VERSION,
        generation,
        createdAt: wallClockMicros(),
        historyHorizon,
      }),
      0,
      FILE_HEADER_SIZE,
      0,
    );
    const state: ScanState = {
      index: new OidIndex(),
      end: FILE_HEADER_SIZE,
      lastTid: 0,
      nextOid: 1,
    };
    /** The checksum of the last transaction written, for the copy's index. */
    let lastChecksum = 0;
    for await (const transaction of transactions) {
      const tx = await writeStreamedTransaction(nodeFileOps, fd, state.end, {
        tid: transaction.tid,
        // Records a pack copied keep their older tids: such a transaction is a packed one
        // (a committed one's records all carry its tid).
        status: transaction.records.every((record) => record.tid === transaction.tid)
          ? TxStatus.committed
          : TxStatus.packed,
        meta: keptMeta(transaction.meta),
        records: transaction.records.map((record) => ({
          oid: record.oid,
          tid: record.tid,
          prev: state.index.offset(record.oid),
          flags: record.blob === true ? RecordFlag.blob : 0,
          refs: record.refs,
          source: { bytes: record.data },
        })),
      });
      applyToState(state, tx);
      lastChecksum = tx.checksum;
    }
    if (sync) fs.fsyncSync(fd);
    publish(temporary.path, path);
    named = true;
    try {
      if (sync) syncPublished(path, fd);
    } finally {
      fs.closeSync(fd);
    }
    try {
      saveIndex(
        path,
        {
          generation,
          coveredOffset: state.end,
          lastTid: state.lastTid,
          lastChecksum,
          nextOid: state.nextOid,
          index: state.index,
        },
        sync,
      );
    } catch (error) {
      warn(`trove: ${path}: the copy's index could not be saved: ${error}`);
    }
    return { lastTid: state.lastTid, bytes: state.end };
  } catch (error) {
    if (!named) discardTemporary(temporary);
    throw error;
  }
}

/**
 * Makes the name of a copy just published durable. If that fails, the copy goes again: a
 * copy whose name may not survive a power loss is no copy to report as made, and left in
 * place it would be in the way of a retry (the target exists).
 */
export function syncPublished(path: string, fd: number): void {
  try {
    syncDirectory(dirname(path));
  } catch (error) {
    // Still open (and locked) as `fd`: no one has taken the copy for a database to commit
    // to, and the name is removed only if it is still this copy's.
    try {
      if (namesFile(path, fd)) fs.rmSync(path, { force: true });
    } catch (removeError) {
      // The sync's failure is the one to report, with where that leaves the copy.
      const code = (error as { code?: string }).code;
      const removeCode = (removeError as { code?: string }).code;
      throw new StorageIOError(
        `syncing the directory of ${path} failed${code ? ` (${code})` : ''}, and the copy could not be removed again${removeCode ? ` (${removeCode})` : ''}: it is in place, but its name may not survive a power loss`,
        { cause: error },
      );
    }
    throw error;
  }
}

/**
 * Gives a finished file its final name, never replacing an existing file (a hard link
 * fails if the name is taken, where a rename would silently replace it).
 */
export function publish(temporary: string, path: string): void {
  fs.linkSync(temporary, path);
  try {
    fs.rmSync(temporary, { force: true });
  } catch {
    // The copy is whole and named: a second name left is no reason to report it failed. It
    // is a link to the same bytes (it takes no room), left as a backup killed just after
    // naming its copy leaves one, for the next backup to this path to remove.
  }
}
