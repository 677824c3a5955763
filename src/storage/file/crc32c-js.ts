/**
 * CRC32C (Castagnoli) in JavaScript, for a few bytes at a time: a record header's checksum
 * is 44 bytes, and a native call (with the Buffer view it needs) costs more than the loop.
 * Gives the same values as `crc32c` of @node-rs/crc32, and continues one the same way.
 *
 * @internal
 * @module
 */

const TABLE = (() => {
  const table = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[n] = c;
  }
  return table;
})();

/** The CRC32C of `bytes[start, end)`, continuing `crc` (0 to start a new one). */
export function crc32cOf(bytes: Uint8Array, start: number, end: number, crc = 0): number {
  let c = ~crc;
  for (let i = start; i < end; i++) c = TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
