/**
 * The index checkpoint (`app.trove.index`): the newest-revision index saved with the data
 * file offset it covers, so that an open reads it and scans only the log after that offset.
 *
 * Layout (little-endian): magic `TROVEIDX`, u32 version (3), u32 the stored checksum of the
 * transaction ending at the covered offset (0 if none), u64 data-file generation, u64 covered offset, u64 last tid, u64 oid high-water mark, u64 page count n,
 * u32 CRC32C of the header's first 56 bytes, u32 CRC32C of what follows it; then n u32
 * page numbers, ascending, and n pages, each PAGE_OIDS f64 offsets and PAGE_OIDS f64 tids
 * (slot j of page number p is oid p * PAGE_OIDS + j; offset 0 means no record). A page
 * none of whose oids has a record is left out (see oid-index.ts).
 *
 * It is a cache: written to a temporary name and renamed into place, and ignored (and
 * rebuilt by a scan) when missing, damaged, or made for another generation of the file.
 *
 * @module
 */

import * as fs from 'node:fs';
import { MAX_OID } from '../oid-limit.js';
import { crc32c } from './checksum.js';
import { writeFully } from './file-ops.js';
import { RECORD_HEADER_SIZE, readU64, writeU64 } from './format.js';
import { readFully } from './log-reader.js';
import { OidIndex, PAGE_OIDS } from './oid-index.js';
import { createTemporary, discardTemporary, type TemporaryFile } from './temporary-files.js';

const MAGIC = Buffer.from('TROVEIDX', 'latin1');
// Version 1 held an entry for every oid up to the largest; version 2 did not record the last
// covered transaction's checksum. An index of either is ignored, and rebuilt by a scan, as
// one of another format.
const VERSION = 3;
const HEADER_SIZE = 64;
const PAGE_BYTES = PAGE_OIDS * 16;
/** Pages the largest oid needs. */
const MAX_PAGES = Math.ceil((MAX_OID + 1) / PAGE_OIDS);

/**
 * Pages are read (and their checksum computed) a gibibyte at a time: a Buffer over more than
 * 4 GiB is refused on Node 20, and a larger index (over 268 million objects) was never used.
 */
const READ_PIECE = 2 ** 30;

/** The size of an index file of `pages` pages. */
const fileSize = (pages: number) => HEADER_SIZE + pages * 4 + pages * PAGE_BYTES;

/** The size of the index file `index` is saved as. */
export function savedSize(index: OidIndex): number {
  return fileSize(index.pageCount);
}

/** What an index file holds. */
export interface SavedIndex {
  readonly generation: bigint;
  /** The data file offset up to which the index is complete (a transaction boundary). */
  readonly coveredOffset: number;
  readonly lastTid: number;
  /**
   * The stored checksum of the transaction that ends at the covered offset, as the index's
   * writer read it (0 if none): a transaction written in the same place after that one was
   * cut back (its sync failed), as long and with the same tid, is told from it by this.
   */
  readonly lastChecksum: number;
  readonly nextOid: number;
  readonly index: OidIndex;
}

/** The index file's path for a data file. */
export function indexPath(dataPath: string): string {
  return `${dataPath}.index`;
}

/**
 * Writes the index file atomically (temporary file, fsync unless `sync` is false, rename).
 */
export function saveIndex(dataPath: string, saved: SavedIndex, sync: boolean): void {
  publishIndex(dataPath, prepareIndex(dataPath, saved, sync));
}

/** Gives a prepared index file (see prepareIndex) its final name, and closes it. */
export function publishIndex(dataPath: string, temporary: TemporaryFile): void {
  try {
    fs.renameSync(temporary.path, indexPath(dataPath));
  } catch (error) {
    discardTemporary(temporary);
    throw error;
  }
  fs.closeSync(temporary.fd);
}

/**
 * Writes an index for `dataPath` to a temporary file and returns it, open (and so marked
 * in use), for publishIndex or discardTemporary: a pack prepares the new file's index
 * before the swap and publishes it right after.
 */
export function prepareIndex(dataPath: string, saved: SavedIndex, sync: boolean): TemporaryFile {
  const pages = [...saved.index.pages()];
  const n = pages.length;
  const numbers = Buffer.from(Uint32Array.from(pages, ({ number }) => number).buffer);
  const header = Buffer.alloc(HEADER_SIZE);
  MAGIC.copy(header, 0);
  header.writeUInt32LE(VERSION, 8);
  header.writeUInt32LE(saved.lastChecksum, 12);
  header.writeBigUInt64LE(saved.generation, 16);
  writeU64(header, 24, saved.coveredOffset);
  writeU64(header, 32, saved.lastTid);
  writeU64(header, 40, saved.nextOid);
  writeU64(header, 48, n);
  const pageBytes = pages.map(({ page }) => Buffer.from(page.buffer, page.byteOffset, PAGE_BYTES));
  header.writeUInt32LE(crc32c(header.subarray(0, 56)), 56);
  header.writeUInt32LE(
    pageBytes.reduce((crc, bytes) => crc32c(bytes, crc), crc32c(numbers)),
    60,
  );

  const temporary = createTemporary(dataPath, 'index.tmp');
  const { fd } = temporary;
  try {
    writeFully(fd, header, 0);
    writeFully(fd, numbers, HEADER_SIZE);
    let at = HEADER_SIZE + numbers.length;
    for (const bytes of pageBytes) {
      writeFully(fd, bytes, at);
      at += PAGE_BYTES;
    }
    if (sync) fs.fdatasyncSync(fd);
  } catch (error) {
    discardTemporary(temporary);
    throw error;
  }
  return temporary;
}

/** The header of an open index file, if it is one this version reads and its size fits. */
function readHeader(fd: number): Buffer | undefined {
  const header = Buffer.alloc(HEADER_SIZE);
  if (
    fs.readSync(fd, header, 0, HEADER_SIZE, 0) < HEADER_SIZE ||
    !header.subarray(0, 8).equals(MAGIC)
  )
    return undefined;
  if (header.readUInt32LE(56) !== crc32c(header.subarray(0, 56))) return undefined;
  if (header.readUInt32LE(8) !== VERSION) return undefined;
  const n = readU64(header, 48);
  // Judged before its pages are read: one crafted with a huge count would make arrays of
  // gigabytes for nothing.
  if (n > MAX_PAGES || fs.fstatSync(fd).size !== fileSize(n)) return undefined;
  return header;
}

/**
 * Runs `read` on the open index file; undefined if there is none, or it is not a regular
 * file, or reading it fails in any way: a cache that cannot be read is rebuilt, never a
 * reason to refuse the database (a directory at its path made every open fail with EISDIR).
 */
function withIndexFile<T>(dataPath: string, read: (fd: number) => T | undefined): T | undefined {
  let fd: number;
  try {
    // Not blocking: the open of a FIFO waits for a writer, for ever.
    fd = fs.openSync(indexPath(dataPath), fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    return fs.fstatSync(fd).isFile() ? read(fd) : undefined;
  } catch {
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * What the index file covers, from its header alone (the entries are not read or checked):
 * undefined if it is missing or its header is not valid.
 */
export function savedCoverage(
  dataPath: string,
): Pick<SavedIndex, 'generation' | 'coveredOffset' | 'lastTid' | 'lastChecksum'> | undefined {
  return withIndexFile(dataPath, (fd) => {
    const header = readHeader(fd);
    if (header === undefined) return undefined;
    return {
      generation: header.readBigUInt64LE(16),
      coveredOffset: readU64(header, 24),
      lastTid: readU64(header, 32),
      lastChecksum: header.readUInt32LE(12),
    };
  });
}

/**
 * Reads the index file of a data file of `dataSize` bytes; undefined if it is missing or
 * not valid, or made for a data file of another generation than `generation`. (`pieceBytes`
 * is smaller in tests, to read a small index in several pieces.)
 */
export function loadIndex(
  dataPath: string,
  generation: bigint,
  dataSize: number,
  pieceBytes = READ_PIECE,
): SavedIndex | undefined {
  return withIndexFile(dataPath, (fd) => {
    const header = readHeader(fd);
    // Judged by its header before its pages are read: an index of another file would make
    // arrays for nothing.
    if (header === undefined || header.readBigUInt64LE(16) !== generation) return undefined;
    const n = readU64(header, 48);
    const coveredOffset = readU64(header, 24);
    // Each page has a record of its own in the log the index covers: a count the file cannot
    // hold (the header and size of a crafted or sparse file say nothing of its pages) would
    // allocate and read gigabytes before the pages' checksum failed.
    if (coveredOffset > dataSize || n * RECORD_HEADER_SIZE > coveredOffset) return undefined;
    // Read straight into the arrays the index will use: no intermediate copy.
    const numbers = new Uint32Array(n);
    const data = new Float64Array(n * 2 * PAGE_OIDS);
    const numberBytes = Buffer.from(numbers.buffer);
    if (readFully(fd, numberBytes, 0, numberBytes.length, HEADER_SIZE) < numberBytes.length)
      return undefined;
    let crc = crc32c(numberBytes);
    for (let at = 0; at < data.byteLength; at += pieceBytes) {
      const piece = Buffer.from(data.buffer, at, Math.min(pieceBytes, data.byteLength - at));
      const position = HEADER_SIZE + numberBytes.length + at;
      if (readFully(fd, piece, 0, piece.length, position) < piece.length) return undefined;
      crc = crc32c(piece, crc);
    }
    if (header.readUInt32LE(60) !== crc) return undefined;
    // Ascending and in range, as this version writes them (the checksum holds for a crafted
    // file too): the index could not place them otherwise.
    for (let i = 0; i < n; i++) {
      if (numbers[i]! >= MAX_PAGES || (i > 0 && numbers[i]! <= numbers[i - 1]!)) return undefined;
    }
    const index = OidIndex.fromPages(numbers, data);
    if (index === undefined) return undefined;
    return {
      generation: header.readBigUInt64LE(16),
      coveredOffset,
      lastTid: readU64(header, 32),
      lastChecksum: header.readUInt32LE(12),
      nextOid: readU64(header, 40),
      index,
    };
  });
}
