/**
 * Leftovers of processes that died mid-operation: temporary pack files, staged blobs, index
 * files and backups being written. Their names carry the writer's pid; a pack file is also
 * locked by its packer. They are removed at open, and a backup's before a backup to the same
 * target, when their writer is gone.
 *
 * @module
 */

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { basename, dirname, join } from 'node:path';
import fsx from 'fs-native-extensions';

/** The suffixes of temporary files next to a data file, each followed by `-<pid>-<random>`. */
export const TEMPORARY_KINDS = ['pack', 'blob', 'index.tmp', 'backup'] as const;
type TemporaryKind = (typeof TEMPORARY_KINDS)[number];

/**
 * The temporary files an open removes: those of a database's own work. A backup's are named
 * after its target, not after the database it copies: a backup removes those (see Storage).
 */
export const OPEN_KINDS: readonly TemporaryKind[] = ['pack', 'blob', 'index.tmp'];

/**
 * What follows the kind in a temporary file's name, exactly as temporaryPath writes it: only
 * such a name is ever removed, never a file of the user's that merely starts alike
 * (`app.trove.backup-20240601`).
 */
const OWNER_AND_RANDOM = /^-([1-9]\d{0,9})-[0-9a-f]{12}$/;

/** The name of a new temporary file of `kind` for the data file at `path`. */
export function temporaryPath(path: string, kind: TemporaryKind): string {
  return `${path}.${kind}-${process.pid}-${randomBytes(6).toString('hex')}`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === 'EPERM';
  }
}

/** Removes temporary files of `kinds` of `path` whose writers are gone; returns their names. */
export function removeStaleFiles(path: string, kinds: readonly TemporaryKind[]): string[] {
  const directory = dirname(path);
  const prefix = `${basename(path)}.`;
  const removed: string[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(directory);
  } catch {
    return removed;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const rest = name.slice(prefix.length);
    const kind = kinds.find((k) => rest.startsWith(`${k}-`));
    if (kind === undefined) continue;
    const owner = OWNER_AND_RANDOM.exec(rest.slice(kind.length))?.[1];
    if (owner === undefined) continue;
    const pid = Number(owner);
    const own = pid === process.pid;
    // A pid the system could not have given is not a writer that died.
    if (pid > 0x7fff_ffff || (!own && alive(pid))) continue;
    // This process's files are another thread's work in progress, unless (a pack's) nobody
    // holds its lock: then the worker thread that made it was terminated (its descriptors
    // closed). Locks are the open file's, so another thread's lock counts here too.
    if (own && kind !== 'pack') continue;
    const file = join(directory, name);
    if (kind === 'pack' && !unlocked(file)) continue;
    try {
      fs.rmSync(file, { force: true });
      removed.push(file);
    } catch {
      // Someone else removed it, or it cannot be removed: either way not ours to worry about.
    }
  }
  return removed;
}

/** True if nobody holds the lock on the file's first byte. */
function unlocked(file: string): boolean {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r+');
    if (!fsx.tryLock(fd, 0, 1)) return false;
    fsx.unlock(fd, 0, 1);
    return true;
  } catch {
    return false;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
