/**
 * The header of a data file as an open finds it: read, or written first for a new file
 * (under the writer lock, so two processes creating it at once agree on one header).
 *
 * @module
 */

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { dirname } from 'node:path';
import { CorruptionError, InvalidArgumentError, NotFoundError } from '../../errors.js';
import { wallClockMicros } from '../next-tid.js';
import { ioError } from './file-ops.js';
import {
  decodeFileHeader,
  encodeFileHeader,
  FILE_HEADER_SIZE,
  FILE_MAGIC,
  type FileHeader,
  FORMAT_VERSION,
} from './format.js';
import { readFully } from './log-reader.js';
import { OpenFile } from './open-file.js';
import { syncDirectory } from './sync-directory.js';
import { WriterLock } from './writer-lock.js';

/**
 * Whether the bytes of a file shorter than a header can be a header whose writing was cut
 * short: nothing, zeros (the file grew but the bytes did not reach the disk), or the start of
 * the magic. Anything else is someone else's file, never overwritten.
 */
function isUnfinishedHeader(bytes: Uint8Array): boolean {
  if (bytes.every((byte) => byte === 0)) return true;
  const start = Math.min(bytes.length, FILE_MAGIC.length);
  return FILE_MAGIC.subarray(0, start).equals(bytes.subarray(0, start));
}

/**
 * Reads the header of the data file `file` (open as `fd`), writing it first if the file is
 * new (synced with its directory when `sync`). NotFoundError for a read-only open of a file
 * being created; InvalidArgumentError for a file that is not a trove database, or of another
 * format version; CorruptionError for a header that fails its checksum.
 */
export async function openHeader(
  file: string,
  fd: number,
  options: { readonly busyTimeout: number; readonly sync: boolean },
  readOnly: boolean,
): Promise<FileHeader> {
  const read = () => {
    const bytes = Buffer.alloc(FILE_HEADER_SIZE);
    const n = readFully(fd, bytes, 0, FILE_HEADER_SIZE, 0);
    return { bytes, n, size: fs.fstatSync(fd).size };
  };
  let { bytes, n, size } = read();
  if (size < FILE_HEADER_SIZE && readOnly && isUnfinishedHeader(bytes.subarray(0, n))) {
    // A database being created (or whose creation was cut short) is not there yet, as a
    // missing file is not: a read-only open cannot finish it, and may retry.
    throw new NotFoundError(
      `no database at ${file} yet: its creation has not finished (a read-write open finishes it)`,
    );
  }
  if (size < FILE_HEADER_SIZE && !readOnly && isUnfinishedHeader(bytes.subarray(0, n))) {
    // A new file (or one whose creation was cut short before any data): write the header
    // under the writer lock, so two processes creating it at once agree on one header.
    const lock = new WriterLock(options.busyTimeout, () => file);
    // Not retired by the lock (release closes only a retired file): the caller owns `fd`.
    const opened = new OpenFile(fd);
    await lock.run(
      () => opened,
      async () => {
        ({ bytes, n, size } = read());
        if (size >= FILE_HEADER_SIZE) return; // another process created it meanwhile
        const header = encodeFileHeader({
          version: FORMAT_VERSION,
          generation: randomBytes(8).readBigUInt64LE(0),
          createdAt: wallClockMicros(),
          historyHorizon: 0,
        });
        fs.ftruncateSync(fd, 0);
        fs.writeSync(fd, header, 0, header.length, 0);
        if (options.sync) {
          try {
            fs.fsyncSync(fd);
            syncDirectory(dirname(file));
          } catch (error) {
            // The header stays: another writer may have read it and be about to commit (cut
            // back, the file with that commit would no longer be a database).
            throw ioError('creating', file, error);
          }
        }
        ({ bytes, n, size } = read());
      },
    );
  }
  if (n < FILE_HEADER_SIZE) {
    throw new InvalidArgumentError(`${file} is not a trove database (it is empty or too short)`, {
      argument: 'path',
    });
  }
  const header = decodeFileHeader(bytes);
  if (header === 'magic' || header === 'short') {
    throw new InvalidArgumentError(`${file} is not a trove database`, { argument: 'path' });
  }
  if (header === 'version') {
    throw new InvalidArgumentError(
      `${file} was written in format version ${bytes.readUInt32LE(8)}; this trove reads version ${FORMAT_VERSION}`,
      { argument: 'path' },
    );
  }
  if (header === 'checksum') {
    throw new CorruptionError(`the header of ${file} fails its checksum`, {
      offset: 0,
      path: file,
    });
  }
  return header;
}
