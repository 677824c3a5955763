/**
 * The stream of a stored blob's content, read from the data file and checked against the
 * record's checksum before a byte of it is handed out.
 *
 * @module
 */

import * as fs from 'node:fs';
import { Readable } from 'node:stream';
import { CorruptionError } from '../../errors.js';
import type { Oid } from '../types.js';
import { crc32c } from './checksum.js';
import type { OpenFile } from './open-file.js';

/** Chunk size of blob streams. */
const BLOB_CHUNK = 1024 * 1024;

/** Releases the file of a blob stream collected unfinished (see blobStream). */
const fileOfDroppedStream = new FinalizationRegistry<() => void>((release) => release());

/** Where a blob's content lies, and what it must sum to. */
export interface BlobContent {
  /** The blob's oid, and the data file's path, for errors. */
  readonly oid: Oid;
  readonly path: string;
  /** The offset of its record, for errors. */
  readonly offset: number;
  /** Where its content starts in the file, and its length. */
  readonly start: number;
  readonly length: number;
  /** The checksum of the record's bytes before the content (its header and references). */
  readonly crcBefore: number;
  /** The record's stored checksum. */
  readonly expected: number;
}

/**
 * A stream of `content` from `file`, which it holds (acquired here) until it ends, is
 * destroyed, or is collected unfinished.
 */
export function blobStream(file: OpenFile, content: BlobContent): Readable {
  const { oid, path, offset, start, length, crcBefore, expected } = content;
  file.acquire();
  let released = false;
  // Set when the stream ends or is destroyed while a read is under way: the file is given
  // back when that read is done, not under it (a closed descriptor may be another file's).
  let releaseAfterRead = false;
  let reading = false;
  const unregister = {};
  const release = () => {
    if (released) return;
    if (reading) {
      releaseAfterRead = true;
      return;
    }
    released = true;
    fileOfDroppedStream.unregister(unregister);
    file.release();
  };
  const cutShort = () => new CorruptionError(`blob content ${oid} is cut short`, { offset, path });
  const failsChecksum = () =>
    new CorruptionError(`blob content ${oid} at offset ${offset} fails its checksum`, {
      offset,
      path,
    });
  /**
   * Reads `size` bytes of the content at `at` into `into`; `done` is not called once the
   * stream has ended (or was destroyed) meanwhile, and no read starts after that.
   */
  const readAt = (
    into: Buffer,
    size: number,
    at: number,
    done: (error: Error | null) => void,
  ): void => {
    if (released || releaseAfterRead) return;
    reading = true;
    fs.read(file.fd, into, 0, size, start + at, (error, bytesRead) => {
      reading = false;
      if (releaseAfterRead) {
        release();
        return;
      }
      done(error ?? (bytesRead < size ? cutShort() : null));
    });
  };
  /**
   * Reads the content through once, for its checksum, before a byte of it is handed out:
   * a reader acting on each chunk as it comes (writing it out, sending it on) must never
   * get damaged bytes, and the record's checksum covers all of it. Content of one chunk is
   * kept, and handed out as read; larger content is read again as it streams (and checked
   * again at its end, should the bytes have changed between the two reads).
   */
  const check = (done: (error: Error | null, whole?: Buffer) => void): void => {
    let at = 0;
    let sum = crcBefore;
    const piece = Buffer.allocUnsafe(Math.min(BLOB_CHUNK, length));
    const step = (): void => {
      if (at >= length) {
        if (sum !== expected) done(failsChecksum());
        else done(null, length <= BLOB_CHUNK ? piece : undefined);
        return;
      }
      const size = Math.min(piece.length, length - at);
      readAt(piece, size, at, (error) => {
        if (error !== null) {
          done(error);
          return;
        }
        sum = crc32c(piece.subarray(0, size), sum);
        at += size;
        step();
      });
    };
    step();
  };
  let checked: 'no' | 'checking' | 'yes' = 'no';
  let position = 0;
  let streamed = crcBefore;
  const stream = new Readable({
    highWaterMark: BLOB_CHUNK,
    read() {
      if (checked === 'checking') return;
      if (checked === 'no') {
        checked = 'checking';
        check((error, whole) => {
          if (error !== null) {
            this.destroy(error);
            return;
          }
          checked = 'yes';
          if (whole !== undefined) {
            position = length;
            streamed = expected;
            if (length > 0) this.push(whole);
            else this._read(BLOB_CHUNK);
          } else {
            this._read(BLOB_CHUNK);
          }
        });
        return;
      }
      if (position >= length) {
        release();
        if (streamed !== expected) this.destroy(failsChecksum());
        else this.push(null);
        return;
      }
      const chunk = Buffer.allocUnsafe(Math.min(BLOB_CHUNK, length - position));
      readAt(chunk, chunk.length, position, (error) => {
        if (error !== null) {
          this.destroy(error);
          return;
        }
        position += chunk.length;
        streamed = crc32c(chunk, streamed);
        this.push(chunk);
      });
    },
    destroy(error, callback) {
      release();
      callback(error);
    },
  });
  // A stream dropped unfinished (never read to its end, never destroyed) gives the file
  // back when it is collected: a file a pack replaced is closed then, not at exit.
  fileOfDroppedStream.register(stream, release, unregister);
  return stream;
}
