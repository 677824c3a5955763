/**
 * Reads and writes of 2 GiB or more: Node refuses such a length in one call (a RangeError),
 * so the file layer asks for at most MAX_IO bytes a call. An index file of 130 million
 * objects, a commit or a blob that large, is one such write. The devices that take any write and
 * give zeros to any read stand in for a file: writing and reading 4 GiB of a real one took
 * 18 s here, nearly all of it the kernel's.
 */

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { after, before, describe, it } from 'node:test';
import { fileOps, logReader } from '../crash/support.js';

const SIZE = 2 ** 31 + 4096;

// Skipped (with this reason) where there are no such devices, or where the machine cannot
// spare the 2 GiB buffer without swapping.
const skip =
  !fs.existsSync('/dev/zero') || !fs.existsSync('/dev/null')
    ? 'needs /dev/zero and /dev/null'
    : os.totalmem() < 6 * 2 ** 30
      ? 'needs 6 GiB of memory'
      : false;

describe('reads and writes of more than 2 GiB', { skip }, () => {
  let buffer: Buffer;
  before(() => {
    buffer = Buffer.allocUnsafe(SIZE);
  });
  after(() => {
    buffer = Buffer.alloc(0);
  });

  it('a read fills all of its buffer', () => {
    const marks = [0, 2 ** 30, 2 ** 31, SIZE - 1];
    for (const at of marks) buffer[at] = 7;
    const fd = fs.openSync('/dev/zero', 'r');
    try {
      assert.equal(logReader.readFully(fd, buffer, 0, SIZE, 0), SIZE);
    } finally {
      fs.closeSync(fd);
    }
    assert.deepEqual(
      marks.map((at) => buffer[at]),
      [0, 0, 0, 0],
    );
  });

  it('a synchronous write (an index file that large) writes it all', () => {
    const fd = fs.openSync('/dev/null', 'w');
    try {
      assert.doesNotThrow(() => fileOps.writeFully(fd, buffer, 0));
    } finally {
      fs.closeSync(fd);
    }
  });

  it('a write off the event loop (a blob staged that large) writes it all', async () => {
    const fd = fs.openSync('/dev/null', 'w');
    try {
      await assert.doesNotReject(fileOps.writeFullyLater(fd, buffer, 0));
    } finally {
      fs.closeSync(fd);
    }
  });

  it('an asynchronous write (a commit that large) writes it all', async () => {
    const fd = fs.openSync('/dev/null', 'w');
    try {
      await assert.doesNotReject(fileOps.nodeFileOps.write(fd, buffer, 0));
    } finally {
      fs.closeSync(fd);
    }
  });
});
