/**
 * The writer lock of a data file: an open-file-description (OFD) lock on its first byte.
 *
 * The kernel holds it, so a process that dies, however it dies, releases it: there is no
 * lock file to go stale. OFD locks belong to one open of the file, so two handles in one
 * process (or in two worker threads) exclude each other like two processes do. Within one
 * handle, an async mutex keeps the handle's own operations from overlapping.
 *
 * @internal
 * @module
 */

import fsx from 'fs-native-extensions';
import { BusyError } from '../../errors.js';
import { AsyncMutex } from '../../util/async-mutex.js';

/** Waits between attempts grow to this (ms), so a long wait costs little CPU. */
const MAX_POLL_MS = 8;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class WriterLock {
  readonly #mutex = new AsyncMutex();
  readonly #busyTimeout: number;
  readonly #describe: () => string;

  constructor(busyTimeout: number, describe: () => string) {
    this.#busyTimeout = busyTimeout;
    this.#describe = describe;
  }

  /**
   * Runs `fn` holding the lock of the file `fd()` names (asked again after each wait, since
   * the file can be replaced while waiting). BusyError if the lock is not free within the
   * busy timeout.
   */
  run<T>(fd: () => number, fn: () => Promise<T>): Promise<T> {
    return this.#mutex.run(async () => {
      const held = await this.#acquire(fd);
      try {
        return await fn();
      } finally {
        fsx.unlock(held, 0, 1);
      }
    });
  }

  /** Resolves once every operation queued so far has finished. */
  drain(): Promise<void> {
    return this.#mutex.drain();
  }

  async #acquire(fd: () => number): Promise<number> {
    const deadline = Date.now() + this.#busyTimeout;
    for (let wait = 0.25; ; wait = Math.min(wait * 2, MAX_POLL_MS)) {
      const current = fd();
      if (fsx.tryLock(current, 0, 1)) return current;
      if (Date.now() >= deadline) {
        throw new BusyError(
          `the writer lock of ${this.#describe()} was not free within ${this.#busyTimeout} ms`,
        );
      }
      await sleep(wait);
    }
  }
}
