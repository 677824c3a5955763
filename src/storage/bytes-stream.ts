/**
 * A readable stream over bytes held in memory: a memory storage's blob content, and a blob's
 * bytes before they are stored.
 *
 * @module
 */

import { Readable } from 'node:stream';

/** The largest chunk of a stream of bytes in memory, as of a file's blob stream. */
const BYTES_STREAM_CHUNK = 1024 * 1024;

/** A readable stream over `bytes`, in chunks that are copies. */
export function bytesStream(bytes: Uint8Array): Readable {
  // Copies, made as they are read: a reader may change the chunks it is given (decrypt in
  // place), and these are the stored bytes themselves. In chunks, so that a stream still
  // being read when its storage closes is ended then, as a file's is (one chunk of all of
  // it had ended, and went on being delivered from the reader's buffer).
  let at = 0;
  return new Readable({
    read() {
      if (at >= bytes.byteLength) {
        this.push(null);
        return;
      }
      const end = Math.min(bytes.byteLength, at + BYTES_STREAM_CHUNK);
      this.push(Buffer.from(bytes.subarray(at, end)));
      at = end;
    },
  });
}
