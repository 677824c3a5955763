/**
 * The file operations FileStorage performs that can fail for reasons outside the program
 * (disk full, device errors). They go through this seam so tests can make them fail and
 * check that a failed commit leaves the database as it was.
 *
 * @module
 */

import * as fs from 'node:fs';
import { StorageIOError, TroveError } from '../../errors.js';

/** Writes, syncs and truncations of the data file. Reads stay synchronous and direct. */
export interface FileOps {
  /** Writes all of `buffer` at `position`. */
  write(fd: number, buffer: Uint8Array, position: number): Promise<void>;
  /**
   * Flushes the file's data to stable storage (fdatasync). With `onCallingThread`, the
   * caller asks for the sync to run before this returns (a settled promise), sparing the
   * two threadpool hops; an implementation may ignore the hint and sync as usual.
   */
  sync(fd: number, onCallingThread?: boolean): Promise<void>;
  /** Cuts the file to `length` bytes. */
  truncate(fd: number, length: number): Promise<void>;
  /**
   * Writes all of `buffer` at `position` before returning, for a small append that must not
   * wait (an oid reservation in the middle of a commit's walk). Absent: the storage never
   * writes synchronously, and waits instead.
   */
  writeNow?(fd: number, buffer: Uint8Array, position: number): void;
  /** Cuts the file to `length` bytes before returning (cutting back a failed `writeNow`). */
  truncateNow?(fd: number, length: number): void;
}

/**
 * The most bytes one read or write asks for: Node refuses a length of 2 GiB or more with a
 * RangeError (and Linux moves at most 2 GiB less a page a call), which an index of 130
 * million objects, or a commit that large, would reach.
 */
export const MAX_IO = 1024 * 1024 * 1024;

/**
 * Writes all of `buffer` at `position` off the event loop, in pieces of MAX_IO, whatever its
 * size (a large commit; a staged blob's chunks).
 */
export function writeFullyLater(fd: number, buffer: Uint8Array, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (done: number): void => {
      if (done === buffer.byteLength) {
        resolve();
        return;
      }
      const length = Math.min(buffer.byteLength - done, MAX_IO);
      fs.write(fd, buffer, done, length, position + done, (error, written) => {
        if (error) reject(error);
        else step(done + written);
      });
    };
    step(0);
  });
}

/**
 * Appends up to this size are written synchronously: copying a few kilobytes into the page
 * cache takes microseconds, far less than a round trip through the threadpool. Larger ones
 * go to the threadpool, so the event loop never waits for the disk; so do syncs, unless the
 * caller asks for one on its own thread (FileStorage's `syncOn`).
 */
const SYNC_WRITE_LIMIT = 256 * 1024;

/** Writes all of `buffer` at `position` before returning. */
export function writeFully(fd: number, buffer: Uint8Array, position: number): void {
  let done = 0;
  while (done < buffer.byteLength) {
    const length = Math.min(buffer.byteLength - done, MAX_IO);
    done += fs.writeSync(fd, buffer, done, length, position + done);
  }
}

/** The real thing. */
export const nodeFileOps: FileOps = {
  write: (fd, buffer, position) => {
    if (buffer.byteLength > SYNC_WRITE_LIMIT) return writeFullyLater(fd, buffer, position);
    try {
      writeFully(fd, buffer, position);
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  },
  writeNow: writeFully,
  truncateNow: (fd, length) => fs.ftruncateSync(fd, length),
  sync: (fd, onCallingThread) => {
    if (onCallingThread === true) {
      try {
        fs.fdatasyncSync(fd);
        return Promise.resolve();
      } catch (error) {
        return Promise.reject(error);
      }
    }
    return new Promise((resolve, reject) => {
      fs.fdatasync(fd, (error) => (error ? reject(error) : resolve()));
    });
  },
  truncate: (fd, length) =>
    new Promise((resolve, reject) => {
      fs.ftruncate(fd, length, (error) => (error ? reject(error) : resolve()));
    }),
};

/**
 * The error a failed file operation of the storage gives: a StorageIOError saying what was
 * being done to which file, with the system's error as its cause and its code (ENOSPC, EIO)
 * in the message. A TroveError is passed on as it is: it says what failed already.
 */
export function ioError(action: string, path: string, cause: unknown): TroveError {
  if (cause instanceof TroveError) return cause;
  const code = (cause as { code?: string }).code;
  return new StorageIOError(`${action} ${path} failed${code ? ` (${code})` : ''}`, { cause });
}
