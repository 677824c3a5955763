/**
 * Syncing a directory, so that a file created or renamed in it survives power loss.
 *
 * @module
 */

import * as fs from 'node:fs';

/**
 * What opening a directory to sync it answers where this process may not (a directory it
 * can write and search but not read): the file's own sync is all it can do.
 */
const CANNOT_OPEN = new Set(['EACCES', 'EPERM']);
/** What a sync answers on a file system that cannot sync directories at all. */
const CANNOT_SYNC = new Set(['EINVAL', 'ENOTSUP', 'EOPNOTSUPP']);

/**
 * Makes a new directory entry durable (after creating or renaming a file in it). Throws
 * the system's error when the sync fails (EIO): the entry may then not survive a power loss,
 * which the caller must not report as done. A directory this process may not open, or a file
 * system that cannot sync directories, is no failure.
 */
export function syncDirectory(directory: string): void {
  // Windows has no directory sync: its sync of a directory is refused (EPERM), always.
  if (process.platform === 'win32') return;
  let fd: number;
  try {
    fd = fs.openSync(directory, 'r');
  } catch (error) {
    if (CANNOT_OPEN.has((error as { code?: string }).code ?? '')) return;
    throw error;
  }
  try {
    fs.fsyncSync(fd);
  } catch (error) {
    if (!CANNOT_SYNC.has((error as { code?: string }).code ?? '')) throw error;
  } finally {
    fs.closeSync(fd);
  }
}
