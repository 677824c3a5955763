/**
 * The JavaScript CRC32C that record headers use gives the same values as the native one,
 * alone and continuing a checksum, so the bytes written stay the same.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { crc32c } from '@node-rs/crc32';
import type * as Crc32cJs from '../../dist/storage/file/crc32c-js.js';

// Tests run from build/test/unit/, the package from dist/ (see test/crash/support.ts).
const { crc32cOf } = (await import(
  new URL('../../../dist/storage/file/crc32c-js.js', import.meta.url).href
)) as typeof Crc32cJs;

describe('crc32cOf', () => {
  it('matches the native crc32c on ranges of random bytes, and continues it the same way', () => {
    for (const length of [0, 1, 3, 44, 48, 100, 1000]) {
      const bytes = randomBytes(length + 16);
      const start = 7;
      const end = start + length;
      const expected = crc32c(bytes.subarray(start, end));
      assert.equal(crc32cOf(bytes, start, end), expected, `length ${length}`);
      const seed = crc32c(randomBytes(10));
      assert.equal(
        crc32cOf(bytes, start, end, seed),
        crc32c(bytes.subarray(start, end), seed),
        `length ${length}, continued`,
      );
    }
  });

  it('a known value: "123456789" is 0xe3069283', () => {
    const bytes = Buffer.from('123456789');
    assert.equal(crc32cOf(bytes, 0, bytes.length), 0xe3069283);
  });
});
