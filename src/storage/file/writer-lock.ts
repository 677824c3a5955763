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

/** Waits between attempts grow to this (ms): short, so a waiter sees a brief gap. */
const MAX_POLL_MS = 2;
/** The byte of the writer lock. */
const WRITER_BYTE = 0;
/**
 * The byte writers that are kept waiting hold a shared lock on, so a long or repeated lock
 * holder (a pack) can see that someone is waiting and let them go first.
 */
const WAITING_BYTE = 2;

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

  /**
   * Runs `fn` holding the lock of the file `fd`, if that is possible without waiting: no
   * operation of this handle is queued or running, and no other holds the lock. Returns
   * `{ value }` with what `fn` returned, or undefined (and runs nothing) when it would wait.
   */
  tryRunNow<T>(fd: number, fn: () => T): { value: T } | undefined {
    if (!this.#mutex.idle || !fsx.tryLock(fd, WRITER_BYTE, 1)) return undefined;
    try {
      return { value: fn() };
    } finally {
      fsx.unlock(fd, WRITER_BYTE, 1);
    }
  }

  /** Resolves once every operation queued so far has finished. */
  drain(): Promise<void> {
    return this.#mutex.drain();
  }

  async #acquire(fd: () => number): Promise<number> {
    const deadline = Date.now() + this.#busyTimeout;
    let waitingOn: number | undefined;
    try {
      for (let wait = 0.25; ; wait = Math.min(wait * 2, MAX_POLL_MS)) {
        const current = fd();
        if (fsx.tryLock(current, WRITER_BYTE, 1)) return current;
        if (waitingOn !== current) {
          if (waitingOn !== undefined) fsx.unlock(waitingOn, WAITING_BYTE, 1);
          waitingOn = fsx.tryLock(current, WAITING_BYTE, 1, { shared: true }) ? current : undefined;
        }
        if (Date.now() >= deadline) {
          throw new BusyError(
            `the writer lock of ${this.#describe()} was not free within ${this.#busyTimeout} ms`,
          );
        }
        await sleep(wait);
      }
    } finally {
      if (waitingOn !== undefined) fsx.unlock(waitingOn, WAITING_BYTE, 1);
    }
  }
}

/**
 * Waits (up to `limit` ms) while other processes wait for the writer lock of `fd`, so that
 * a caller about to take it again and again (a pack) does not starve them.
 */
export async function yieldToWaitingWriters(fd: number, limit: number): Promise<void> {
  const deadline = Date.now() + limit;
  while (Date.now() < deadline) {
    if (fsx.tryLock(fd, WAITING_BYTE, 1)) {
      fsx.unlock(fd, WAITING_BYTE, 1);
      return;
    }
    await sleep(1);
  }
}
