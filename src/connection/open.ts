/**
 * open(): the way into a database.
 *
 * @module
 */

import { InvalidArgumentError } from '../errors.js';
import {
  FILE_STORAGE_OPTION_KEYS,
  FileStorage,
  type FileStorageOptions,
} from '../storage/file/file-storage.js';
import { SnapshotStorage } from '../storage/snapshot-storage.js';
import { Storage, snapshotTid } from '../storage/storage.js';
import type { Tid } from '../storage/types.js';
import {
  describe,
  expectOptionalBoolean,
  expectOptions,
  expectPath,
  type OptionKeys,
} from '../util/validate.js';
import {
  checkDatabaseOptions,
  DATABASE_OPTION_KEYS,
  Database,
  type DatabaseOptions,
} from './database.js';

/** Options of `open()` with a storage given explicitly. */
export interface OpenStorageOptions extends DatabaseOptions {
  /** The storage to open the database on, for example `new MemoryStorage()`. */
  storage: Storage;
}

/** Options of `open(path)`: the database handle's and the file storage's. */
export interface OpenFileOptions
  extends DatabaseOptions,
    Omit<FileStorageOptions, 'fileOps' | 'clock'> {
  /**
   * Open a read-only view of the database as it was at this tid or time (everything
   * committed at or before it). Implies `readOnly` (`readOnly: false` with it is refused).
   */
  at?: Tid | Date | undefined;
}

// fileOps and clock, FileStorage's test seams, are no options of open(path).
const { fileOps: _fileOps, clock: _clock, ...FILE_OPTION_KEYS } = FILE_STORAGE_OPTION_KEYS;
const OPEN_FILE_OPTION_KEYS: OptionKeys<OpenFileOptions> = {
  ...DATABASE_OPTION_KEYS,
  ...FILE_OPTION_KEYS,
  at: true,
};

/**
 * Opens (creating it if needed) the database file at `target`: the embedded default.
 * `{ at }` opens a read-only view of the past instead.
 */
export function open(target: string, options?: OpenFileOptions): Promise<Database>;
/** Opens a database on the given storage, for example `open({ storage: new MemoryStorage() })`. */
export function open(options: OpenStorageOptions): Promise<Database>;
/** Either of the above, for a target whose kind is known only at run time. */
export function open(target: string | OpenStorageOptions): Promise<Database>;
export async function open(
  target: string | OpenStorageOptions,
  options?: OpenFileOptions,
): Promise<Database> {
  if (typeof target === 'string') {
    expectPath(target, 'target');
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(target)) {
      throw new InvalidArgumentError(
        `target ${JSON.stringify(target)} is a URL; this version of trove opens database files and storages, not servers`,
        { argument: 'target' },
      );
    }
    const opts = expectOptions<OpenFileOptions>(options, 'options', OPEN_FILE_OPTION_KEYS);
    // Checked before the file is opened: a refused open creates nothing.
    checkDatabaseOptions(opts);
    const readOnly = expectOptionalBoolean(opts.readOnly, 'options.readOnly');
    if (opts.at !== undefined && readOnly === false) {
      throw new InvalidArgumentError(
        'options.at opens a historical view, which is read-only: drop readOnly: false',
        {
          argument: 'options.at',
        },
      );
    }
    const at = opts.at === undefined ? undefined : snapshotTid(opts.at, 'options.at');
    const { at: _at, cacheSize: _cs, cacheBytes: _cb, poolSize: _ps, ...fileOptions } = opts;
    const file = await FileStorage.open(target, {
      ...fileOptions,
      readOnly: at !== undefined || readOnly === true,
    });
    const storage = at === undefined ? file : new SnapshotStorage(file, at, { closeInner: true });
    try {
      return await Database.create(storage, opts).start();
    } catch (error) {
      await storage.close();
      throw error;
    }
  }
  if (typeof target !== 'object' || target === null || ArrayBuffer.isView(target)) {
    // A path given as bytes (a Buffer) is not one: paths are strings here.
    throw new InvalidArgumentError(
      `target must be a path (a string) or { storage }, got ${describe(target)}`,
      { argument: 'target' },
    );
  }
  if (target instanceof Storage) {
    // Its own properties (readOnly) would otherwise be taken for misplaced options.
    throw new InvalidArgumentError('target is a Storage: open it with open({ storage })', {
      argument: 'target',
    });
  }
  if (options !== undefined) {
    throw new InvalidArgumentError('options go inside the first argument when it is an object', {
      argument: 'options',
    });
  }
  const opts = expectOptions<OpenStorageOptions & Pick<OpenFileOptions, 'readOnly' | 'at'>>(
    target,
    'target',
    // readOnly and at are refused below, with a message that says whose options they are.
    { ...DATABASE_OPTION_KEYS, storage: true, readOnly: 'internal', at: 'internal' },
  );
  for (const fileOnly of ['readOnly', 'at'] as const) {
    // Options of open(path): a storage is opened read-only, or as of a time, by its maker
    // (new SnapshotStorage(storage, tid) for a view); ignored, they would leave it writable.
    if (opts[fileOnly] !== undefined) {
      throw new InvalidArgumentError(
        `options.${fileOnly} is an option of open(path), not of open({ storage })`,
        { argument: `options.${fileOnly}` },
      );
    }
  }
  if (!(opts.storage instanceof Storage)) {
    throw new InvalidArgumentError(
      `options.storage must be a Storage (for example new MemoryStorage()), got ${describe(opts.storage)}`,
      { argument: 'options.storage' },
    );
  }
  return Database.create(opts.storage, opts).start();
}
