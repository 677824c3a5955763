/**
 * Temporary files next to a data file: pack files, staged blobs, index files and backups
 * being written. Each is locked (its first byte, by the open file, not the process) for as
 * long as it exists under its temporary name, so a file nobody locks is a leftover of a
 * process or thread that died: opens remove those (and a backup a backup's before it
 * starts). The pid in a name tells nothing: a container restarted gets the same pids, and
 * containers sharing a directory see each other's files under pids of their own.
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
/** The same, for a file that belongs to an owner file (see ownedPath): `-<n>` after it. */
const OWNED = /^(-([1-9]\d{0,9})-[0-9a-f]{12})-[1-9]\d{0,14}$/;

/** A temporary file, open for reading and writing, and locked as in use. */
export interface TemporaryFile {
  readonly path: string;
  readonly fd: number;
}

/**
 * How often a new name is tried when a removal of leftovers took the one just made (it
 * found the file before its lock was taken): each try is a new random name, so one retry
 * is all a real race needs.
 */
const CREATE_ATTEMPTS = 8;

/** The name of a new temporary file of `kind` for the data file at `path`. */
function temporaryPath(path: string, kind: TemporaryKind): string {
  return `${path}.${kind}-${process.pid}-${randomBytes(6).toString('hex')}`;
}

/**
 * Takes the lock of a file just made with exclusive creation at `file`. False when another
 * process's removal of leftovers holds it, or took the file already (it found the file
 * between its creation and this lock): the caller makes another. (The name is compared
 * with the descriptor, not the link count: on NFS a file removed while open is renamed
 * and keeps its count.) Where locking fails outright (a file system without locks), the
 * caller removes the file and closes it.
 */
function claim(file: string, fd: number): boolean {
  // Off Linux the lock library has no byte-range locks (see FileStorage.open): no writer
  // runs there to remove leftovers, so the copy a read-only handle or a MemoryStorage backs
  // up to goes unlocked.
  if (process.platform !== 'linux' && process.platform !== 'android') return true;
  if (!fsx.tryLock(fd, 0, 1)) return false;
  if (namesFile(file, fd)) return true;
  fsx.unlock(fd, 0, 1);
  return false;
}

/**
 * `owner` as it should be for more files to belong to it: still at its name (a user or a
 * cleaner of old files may have removed it, and its files would be leftovers to any open),
 * and touched, so that a cleaner going by age leaves it. Made again at its name when it is
 * gone (the files already staged are in use again), else a new one.
 */
export function renewedOwner(
  owner: TemporaryFile,
  path: string,
  kind: TemporaryKind,
): TemporaryFile {
  if (namesFile(owner.path, owner.fd)) {
    const now = new Date();
    fs.futimesSync(owner.fd, now, now);
    return owner;
  }
  fs.closeSync(owner.fd);
  try {
    const again = makeAt(owner.path);
    if (again !== undefined) return again;
  } catch {
    // Its name is taken, or cannot be made again: a new owner.
  }
  return createTemporary(path, kind);
}

/** True if `file` names the file open as `fd` (not another put at its name, nor none). */
export function namesFile(file: string, fd: number): boolean {
  const named = fs.lstatSync(file, { bigint: true, throwIfNoEntry: false });
  if (named === undefined) return false;
  const opened = fs.fstatSync(fd, { bigint: true });
  return named.ino === opened.ino && named.dev === opened.dev;
}

/**
 * A new temporary file of `kind` for the data file at `path`, locked (see the module). Made
 * and locked synchronously, one step: between the two, another handle's removal of
 * leftovers would take it for one (an await there, on a busy event loop, lost most files
 * of a soak test that way, and the retries ran out).
 */
export function createTemporary(path: string, kind: TemporaryKind): TemporaryFile {
  for (let attempt = 1; ; attempt++) {
    const file = temporaryPath(path, kind);
    const made = makeAt(file);
    if (made !== undefined) return made;
    if (attempt === CREATE_ATTEMPTS) throw lockLost(file);
  }
}

/**
 * A temporary file made at `file` (which must not exist) and claimed; undefined, closed,
 * when a removal of leftovers took it first (see claim). A failure to lock at all removes it.
 */
function makeAt(file: string): TemporaryFile | undefined {
  const fd = fs.openSync(file, 'wx+', 0o644);
  let claimed: boolean;
  try {
    claimed = claim(file, fd);
  } catch (error) {
    discardTemporary({ path: file, fd });
    throw error;
  }
  if (claimed) return { path: file, fd };
  fs.closeSync(fd);
  return undefined;
}

function lockLost(file: string): Error {
  return Object.assign(new Error(`${file} was taken by a removal of leftovers, every time`), {
    code: 'EBUSY',
  });
}

/**
 * Removes a temporary file, then closes it (which frees its lock). Never throws: it runs
 * where something failed already, and a file it could not remove is unlocked from now on,
 * so the next open takes it away.
 */
export function discardTemporary(file: TemporaryFile): void {
  try {
    fs.rmSync(file.path, { force: true });
  } catch {
    // Left to the next open (see above).
  }
  try {
    fs.closeSync(file.fd);
  } catch {
    // Closed already: nothing holds the lock either way.
  }
}

/**
 * The name of the `n`th file that belongs to `owner`, a temporary file its maker holds
 * locked: such a file is in use while its owner is, and is not locked itself. A handle's
 * staged blobs belong to one owner file: a descriptor each, to hold a lock each, ran a
 * process out of descriptors when transactions that staged blobs were retried (their blobs
 * are discarded only when garbage-collected).
 */
export function ownedPath(owner: TemporaryFile, n: number): string {
  return `${owner.path}-${n}`;
}

/**
 * Removes temporary files of `kinds` of `path` that nobody locks; returns their names. Off
 * Linux nothing: there the lock library has no byte-range locks (or, on Windows, mandatory
 * ones), so a file in use cannot be told from a leftover.
 */
export function removeStaleFiles(path: string, kinds: readonly TemporaryKind[]): string[] {
  if (process.platform !== 'linux' && process.platform !== 'android') return [];
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
    // (Only blobs are owned: see ownedPath.)
    const ownedMatch = kind === 'blob' ? OWNED.exec(rest.slice(kind.length)) : null;
    const owned = ownedMatch?.[1];
    if (owned !== undefined && Number(ownedMatch![2]) <= 0x7fff_ffff) {
      // In use while its owner file is held (see ownedPath).
      const file = join(directory, name);
      if (!held(join(directory, `${prefix}${kind}${owned}`)) && removeIfRegular(file)) {
        removed.push(file);
      }
      continue;
    }
    const owner = OWNER_AND_RANDOM.exec(rest.slice(kind.length))?.[1];
    // A pid the system could not have given: not a name trove made.
    if (owner === undefined || Number(owner) > 0x7fff_ffff) continue;
    const file = join(directory, name);
    if (removeIfUnlocked(file)) removed.push(file);
  }
  return removed;
}

/**
 * Removes `file` if nobody holds its lock, holding the lock while it does: a writer that
 * made the file and locks it after this looked finds it gone (see claim). A file renamed
 * meanwhile (a pack's new data file, an index published) is left alone: the name removed
 * must be the file whose lock this took.
 */
function removeIfUnlocked(file: string): boolean {
  return probe(
    file,
    (fd) => {
      // Only a regular file is a temporary file trove made (a FIFO or a device of that name
      // is left alone).
      if (!fs.fstatSync(fd).isFile()) return false;
      if (!fsx.tryLock(fd, 0, 1, { shared: true })) return false;
      if (!namesFile(file, fd)) return false;
      fs.rmSync(file, { force: true });
      return true;
    },
    // Gone already, or not ours to open: either way not ours to remove.
    () => false,
    false,
  );
}

/** True if someone holds the lock of `file` (or it cannot be told); false if it is gone. */
function held(file: string): boolean {
  return probe(
    file,
    (fd) => {
      if (!fsx.tryLock(fd, 0, 1, { shared: true })) return true;
      fsx.unlock(fd, 0, 1);
      return false;
    },
    (error) => (error as { code?: string }).code !== 'ENOENT',
    true,
  );
}

/**
 * Runs `look` on `file` opened to look at its lock: read-only, with a shared lock (it
 * conflicts with a writer's all the same, and a leftover of another user that this one may
 * remove but not write is seen too), not through a symlink, and without waiting for a
 * writer of a FIFO (a name trove made is never either). What `unopened` says when it cannot
 * be opened, `failed` when `look` throws.
 */
function probe<T>(
  file: string,
  look: (fd: number) => T,
  unopened: (error: unknown) => T,
  failed: T,
): T {
  let fd: number;
  try {
    const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;
    fd = fs.openSync(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (error) {
    return unopened(error);
  }
  try {
    return look(fd);
  } catch {
    return failed;
  } finally {
    fs.closeSync(fd);
  }
}

/** Removes `file` if it is a regular file (not a FIFO or a link of that name). */
function removeIfRegular(file: string): boolean {
  try {
    if (!fs.lstatSync(file).isFile()) return false;
    fs.rmSync(file, { force: true });
    return true;
  } catch {
    return false;
  }
}
