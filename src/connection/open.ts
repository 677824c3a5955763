/**
 * open(): the way into a database.
 *
 * @module
 */

import { InvalidArgumentError } from '../errors.js';
import { Storage } from '../storage/storage.js';
import { describe, expectOptions } from '../util/validate.js';
import { Database, type DatabaseOptions } from './database.js';

/** Options of `open()` with a storage given explicitly. */
export interface OpenStorageOptions extends DatabaseOptions {
  /** The storage to open the database on, for example `new MemoryStorage()`. */
  storage: Storage;
}

/**
 * Opens a database.
 *
 * - `open({ storage })` opens a database on the given storage.
 */
export async function open(target: OpenStorageOptions): Promise<Database> {
  const options = expectOptions<OpenStorageOptions>(target, 'target');
  if (!(options.storage instanceof Storage)) {
    throw new InvalidArgumentError(
      `options.storage must be a Storage (for example new MemoryStorage()), got ${describe(options.storage)}`,
      { argument: 'options.storage' },
    );
  }
  return new Database(options.storage, options).start();
}
