/**
 * Syncing a directory, so that a file created or renamed in it survives power loss.
 *
 * @module
 */

import * as fs from 'node:fs';

/**
 * What a system answers when it cannot open or sync a directory at all (a file system
 * without directory syncs, a platform without them): the file's own sync is all it offers.
 */
const CANNOT_SYNC_DIRECTORIES = new Set(['EINVAL', 'ENOTSUP', 'EOPNOTSUPP', 'EISDIR', 'EPERM']);

/**
 * Makes a new directory entry durable (after creating or renaming a file in it). Throws
 * the system's error when the sync fails (EIO): the entry may then not survive a power loss,
 * which the caller must not report as done. A system that cannot sync directories at all
 * is no failure.
 */
export function syncDirectory(directory: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(directory, 'r');
    fs.fsyncSync(fd);
  } catch (error) {
    if (!CANNOT_SYNC_DIRECTORIES.has((error as { code?: string }).code ?? '')) throw error;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
