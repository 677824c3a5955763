/**
 * The data file's CRC-32C is computed in JavaScript for short spans and natively for long
 * ones: both must give the native library's value for every input, every span of a larger
 * buffer and every starting value, or files written by one path fail to verify on the other.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crc32c as nativeCrc32c } from '@node-rs/crc32';
import fc from 'fast-check';
import type * as ChecksumModule from '../../dist/storage/file/checksum.js';

// Tests run from build/test/properties/, the package from dist/.
const checksum: typeof ChecksumModule = await import(
  new URL('../../../dist/storage/file/checksum.js', import.meta.url).href
);

describe('CRC-32C', () => {
  it('matches the native implementation on known values', () => {
    // The standard check value of CRC-32C: the CRC of the ASCII digits 1 to 9.
    assert.equal(checksum.crc32c(Buffer.from('123456789')), 0xe3069283);
    assert.equal(checksum.crc32c(new Uint8Array(0)), 0);
    assert.equal(checksum.crc32c(new Uint8Array(0), 0x12345678), 0x12345678);
  });

  it('equals the native CRC for every span and starting value', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 700 }),
        fc.nat(),
        fc.nat(),
        fc.integer({ min: 0, max: 0xffffffff }),
        (bytes, a, b, initial) => {
          const start = bytes.length === 0 ? 0 : a % (bytes.length + 1);
          const end = start + (b % (bytes.length - start + 1));
          const span = bytes.subarray(start, end);
          const expected = nativeCrc32c(Buffer.from(span), initial);
          assert.equal(checksum.crc32c(span, initial), expected);
          assert.equal(checksum.crc32cOfRange(bytes, start, end, initial), expected);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('continues across pieces: the CRC of a whole equals the chained CRC of its parts', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1200 }), fc.nat(), (bytes, cut) => {
        const at = bytes.length === 0 ? 0 : cut % (bytes.length + 1);
        const chained = checksum.crc32c(bytes.subarray(at), checksum.crc32c(bytes.subarray(0, at)));
        assert.equal(chained, nativeCrc32c(Buffer.from(bytes)));
      }),
      { numRuns: 1000 },
    );
  });
});
