/**
 * The writer lock of a data file: an open-file-description (OFD) lock on its first byte.
 *
 * The kernel holds it, so a process that dies, however it dies, releases it: there is no
 * lock file to go stale. OFD locks belong to one open of the file, so two handles in one
 * process (or in two worker threads) exclude each other like two processes do. Within one
 * handle, an async mutex keeps the handle's own operations from overlapping.
 *
 * @module
 */

import fsx from 'fs-native-extensions';
import { BusyError } from '../../errors.js';
import { AsyncMutex } from '../../util/async-mutex.js';
import { sleep } from '../../util/event-loop.js';
import type { OpenFile } from './open-file.js';

/** Waits between attempts grow to this (ms): short, so a waiter sees a brief gap. */
const MAX_POLL_MS = 2;
/** The byte of the writer lock. */
const WRITER_BYTE = 0;
/**
 * The byte writers that are kept waiting hold a shared lock on, so a long or repeated lock
 * holder (a pack) can see that someone is waiting and let them go first.
 */
const WAITING_BYTE = 2;

/**
 * Handles of this process kept waiting for the writer lock of a file (by path), first come
 * first: a handle that releases the lock wakes the first of them at once. A handle that
 * commits back to back releases the lock and takes it again within microtasks; a waiter of
 * the same process tries it from a timer, which does not run meanwhile, and so waited for
 * the whole run (past its busy timeout: BusyError). Woken in a microtask, it tries before
 * the releasing handle can take the lock again. (Waiters in other processes see the gaps:
 * their timers run while this process works.)
 */
const waitingInProcess = new Map<string, Set<() => void>>();

/** Wakes the first handle of this process waiting for the lock of `path`, if any. */
function wakeWaiter(path: string): void {
  const waiting = waitingInProcess.get(path);
  if (waiting === undefined) return;
  for (const wake of waiting) {
    wake();
    return;
  }
}

/**
 * Waits `ms`, or less if a handle of this process releases the lock of `path` meanwhile
 * (the caller then tries it at once).
 */
function waitForRelease(path: string, ms: number): Promise<void> {
  let waiting = waitingInProcess.get(path);
  if (waiting === undefined) {
    waiting = new Set();
    waitingInProcess.set(path, waiting);
  }
  const queue = waiting;
  return new Promise<void>((resolve) => {
    const wake = () => {
      clearTimeout(timer);
      queue.delete(wake);
      if (queue.size === 0 && waitingInProcess.get(path) === queue) waitingInProcess.delete(path);
      resolve();
    };
    const timer = setTimeout(wake, ms);
    queue.add(wake);
  });
}

export class WriterLock {
  readonly #mutex = new AsyncMutex();
  readonly #busyTimeout: number;
  readonly #describe: () => string;

  constructor(busyTimeout: number, describe: () => string) {
    this.#busyTimeout = busyTimeout;
    this.#describe = describe;
  }

  /**
   * Runs `fn` holding the lock of the file `file()` (asked again after each wait, since the
   * file can be replaced while waiting). BusyError if the lock is not free within the busy
   * timeout. A file this holds a lock on is kept open (see OpenFile) until the lock is let
   * go: a handle that follows a pack retires the old file, maybe while this waits on it.
   */
  run<T>(file: () => OpenFile, fn: () => Promise<T>): Promise<T> {
    return this.#mutex.run(async () => {
      const held = await this.#acquire(file);
      try {
        return await fn();
      } finally {
        fsx.unlock(held.fd, WRITER_BYTE, 1);
        held.release();
        wakeWaiter(this.#describe());
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
      wakeWaiter(this.#describe());
    }
  }

  /** Resolves once every operation queued so far has finished. */
  drain(): Promise<void> {
    return this.#mutex.drain();
  }

  async #acquire(file: () => OpenFile): Promise<OpenFile> {
    // A monotonic clock: a wall-clock step during the wait made it end at once, or last as
    // long as the step.
    const deadline = performance.now() + this.#busyTimeout;
    let waitingOn: OpenFile | undefined;
    const stopWaiting = () => {
      if (waitingOn === undefined) return;
      fsx.unlock(waitingOn.fd, WAITING_BYTE, 1);
      waitingOn.release();
      waitingOn = undefined;
    };
    try {
      for (let wait = 0.25; ; wait = Math.min(wait * 2, MAX_POLL_MS)) {
        const current = file();
        // Held before its descriptor is used: ClosedError if the handle closed the file while
        // this waited (the descriptor may be another file's by now).
        current.acquire();
        let held = false;
        try {
          if (fsx.tryLock(current.fd, WRITER_BYTE, 1)) {
            held = true;
            return current;
          }
          if (waitingOn !== current) {
            stopWaiting();
            if (fsx.tryLock(current.fd, WAITING_BYTE, 1, { shared: true })) {
              current.acquire();
              waitingOn = current;
            }
          }
        } finally {
          if (!held) current.release();
        }
        if (performance.now() >= deadline) {
          throw new BusyError(
            `the writer lock of ${this.#describe()} was not free within ${this.#busyTimeout} ms`,
          );
        }
        await waitForRelease(this.#describe(), wait);
      }
    } finally {
      stopWaiting();
    }
  }
}

/**
 * Waits (up to `limit` ms) while other processes wait for the writer lock of `fd`, so that
 * a caller about to take it again and again (a pack) does not starve them.
 */
export async function yieldToWaitingWriters(fd: number, limit: number): Promise<void> {
  const deadline = performance.now() + limit;
  while (performance.now() < deadline) {
    if (fsx.tryLock(fd, WAITING_BYTE, 1)) {
      fsx.unlock(fd, WAITING_BYTE, 1);
      return;
    }
    await sleep(1);
  }
}
