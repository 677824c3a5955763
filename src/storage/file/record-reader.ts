/**
 * Reads one record of the log and checks it: that it is the record of the object asked
 * for, lies within the log, and matches its checksum.
 *
 * @module
 */

import { CorruptionError } from '../../errors.js';
import type { Oid, Tid } from '../types.js';
import { BLOCK_SIZE, BlockCache } from './block-cache.js';
import { crc32cOfRange } from './checksum.js';
import { decodeRefs, isRecordOffset, RECORD_HEADER_SIZE, readU64 } from './format.js';
import { readFully } from './log-reader.js';

/** Bytes read at once for a record not in the cache (most records fit). */
const LOAD_READ = 4096;
/** The refs of a record that has none (shared: records are never changed once read). */
const NO_REFS: readonly Oid[] = Object.freeze([]);

/** A record as read: its header's fields, its references and its data. */
export interface ReadRecord {
  oid: Oid;
  tid: Tid;
  /** The offset of the object's previous record, 0 if none. */
  prev: number;
  flags: number;
  refs: readonly Oid[];
  data: Uint8Array;
}

/** The record reads of one data file, through a cache of its blocks. */
export class RecordReader {
  readonly #fd: number;
  readonly #path: string;
  readonly #blocks: BlockCache;
  readonly #scratch = Buffer.allocUnsafe(LOAD_READ);

  /** Reads of the file `fd` (at `path`, for errors), with a cache of `cacheBytes`. */
  constructor(fd: number, path: string, cacheBytes: number) {
    this.#fd = fd;
    this.#path = path;
    this.#blocks = new BlockCache(fd, cacheBytes);
  }

  /**
   * Reads and checks the record of `oid` at `offset` of a log that ends at `end`: in this
   * reader's file, or in `fd` (a file an iterator holds, which a pack may have replaced
   * since; read past the cache). Only blocks wholly below `cachedBelow` are cached: the end
   * of the log as the handle knows it now, which an iterator's end can be past (after a
   * commit it had read was cut back). CorruptionError if the record is not there intact.
   */
  read(offset: number, oid: Oid, end: number, cachedBelow: number, fd = this.#fd): ReadRecord {
    const damaged = (what: string): never => {
      throw new CorruptionError(`the record of object ${oid} at offset ${offset} ${what}`, {
        offset,
        path: this.#path,
      });
    };
    if (!isRecordOffset(offset, end)) damaged('is outside the log');
    let bytes: Buffer;
    let at: number;
    // From a cached block when the whole record lies in one, else straight from the file.
    const block =
      fd === this.#fd ? this.#blocks.block(offset, Math.min(end, cachedBelow)) : undefined;
    const within = offset % BLOCK_SIZE;
    if (block !== undefined && within + RECORD_HEADER_SIZE <= BLOCK_SIZE) {
      bytes = block;
      at = within;
    } else {
      bytes = this.#scratch;
      at = 0;
      if (readFully(fd, bytes, 0, LOAD_READ, offset) < RECORD_HEADER_SIZE) damaged('is cut short');
    }
    const refCount = bytes.readUInt32LE(at + 32);
    const dataLength = readU64(bytes, at + 24);
    const size = RECORD_HEADER_SIZE + refCount * 4 + dataLength;
    if (offset + size > end || readU64(bytes, at) !== oid) damaged('is not a record of it');
    if (at + size > bytes.length || (bytes === this.#scratch && size > LOAD_READ)) {
      bytes = Buffer.allocUnsafe(size);
      at = 0;
      if (readFully(fd, bytes, 0, size, offset) < size) damaged('is cut short');
    }
    const crc = crc32cOfRange(
      bytes,
      at + RECORD_HEADER_SIZE,
      at + size,
      crc32cOfRange(bytes, at, at + 44),
    );
    if (crc !== bytes.readUInt32LE(at + 44)) damaged('fails its checksum');
    const dataStart = at + RECORD_HEADER_SIZE + refCount * 4;
    return {
      oid,
      tid: readU64(bytes, at + 8),
      prev: readU64(bytes, at + 16),
      flags: bytes.readUInt16LE(at + 36),
      refs: refCount === 0 ? NO_REFS : decodeRefs(bytes, at + RECORD_HEADER_SIZE, refCount),
      // The scratch buffer is reused, so its bytes are copied out; a cached block never
      // changes (and decoding copies byte arrays out), so a view of it is enough.
      data:
        bytes === this.#scratch
          ? Buffer.from(bytes.subarray(dataStart, at + size))
          : bytes.subarray(dataStart, at + size),
    };
  }
}
