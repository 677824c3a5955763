/**
 * Syncing a directory, so that a file created or renamed in it survives power loss.
 *
 * @module
 */

import * as fs from 'node:fs';

/** Makes a new directory entry durable (after creating or renaming a file in it). */
export function syncDirectory(directory: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(directory, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Some platforms cannot open or sync a directory; the file's own sync is all they offer.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
