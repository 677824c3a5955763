/**
 * CRC-32C (Castagnoli), the checksum of every part of the data and index files.
 *
 * Most records are a few hundred bytes, and the native implementation's call costs more
 * than the JavaScript table walk over that many bytes: loading a small object checksums two
 * short spans, and those calls were a visible part of a cold read. So short inputs take the
 * slicing-by-8 table walk here and long ones the native code (which uses the CPU's CRC32
 * instruction); both give the same value, which a property test checks.
 *
 * @module
 */

import { crc32c as nativeCrc32c } from '@node-rs/crc32';

/** Inputs shorter than this take the JavaScript path: below it, it beats the native call. */
const NATIVE_FROM = 256;

/** The reflected CRC-32C polynomial. */
const POLYNOMIAL = 0x82f63b78;

/** Eight 256-entry tables: table k gives the CRC of a byte followed by k zero bytes. */
const TABLES = makeTables();

function makeTables(): Int32Array {
  const tables = new Int32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLYNOMIAL : c >>> 1;
    tables[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    for (let k = 1; k < 8; k++) {
      const previous = tables[(k - 1) * 256 + n]!;
      tables[k * 256 + n] = (previous >>> 8) ^ tables[previous & 0xff]!;
    }
  }
  return tables;
}

/**
 * The CRC-32C of `bytes`, continuing from `initial` (the CRC of what precedes them), as
 * `@node-rs/crc32`'s `crc32c` computes it.
 */
export function crc32c(bytes: Uint8Array, initial = 0): number {
  return crc32cOfRange(bytes, 0, bytes.length, initial);
}

/**
 * The CRC-32C of `bytes[start..end)`, continuing from `initial`: the same as `crc32c` of
 * that subarray, without making one for a short span.
 */
export function crc32cOfRange(bytes: Uint8Array, start: number, end: number, initial = 0): number {
  if (end - start >= NATIVE_FROM) {
    return nativeCrc32c(
      start === 0 && end === bytes.length ? bytes : bytes.subarray(start, end),
      initial,
    );
  }
  const t = TABLES;
  let crc = ~initial;
  let i = start;
  for (; i + 8 <= end; i += 8) {
    const word =
      crc ^ (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24));
    crc =
      t[1792 + (word & 0xff)]! ^
      t[1536 + ((word >>> 8) & 0xff)]! ^
      t[1280 + ((word >>> 16) & 0xff)]! ^
      t[1024 + (word >>> 24)]! ^
      t[768 + bytes[i + 4]!]! ^
      t[512 + bytes[i + 5]!]! ^
      t[256 + bytes[i + 6]!]! ^
      t[bytes[i + 7]!]!;
  }
  for (; i < end; i++) crc = t[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}
